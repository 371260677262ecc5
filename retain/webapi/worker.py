"""retain's own gunicorn worker for the API (``RETAIN_API_WORKER=epoll``, the default): threads that
take turns at leading, that is waiting on the process's one epoll and serving the connections it
wakes them for.

gthread's event loop hands each request to a pool thread, which hands the connection back to the
loop through a pipe: three wake-ups per request, each a trip through the scheduler (and, on a
virtual machine, often an interrupt to wake the other core). Here the leader is woken by a
connection with a request waiting, parses it, calls the app, answers and re-arms the connection:
one wake-up. The other threads (followers) sleep on the lead meanwhile rather than on the epoll: two
threads serving at once would only contend for Python's interpreter lock, which on a busy machine
made each request wait for a core several times (see the README). The leader hands the lead over to
a follower when it is about to wait, on Cassandra, a fill lock, S3 or a client slow to send its
request or read its answer (retain.handover), so a waiting request never holds up the process's other
connections; it finishes its request, then follows. The connection is registered with
``EPOLLONESHOT``, so no second thread is woken for it, and only the thread holding it ever closes
it (a file descriptor is never closed under a thread about to use it).

The HTTP parts are gunicorn's own (``TConn``, ``handle``, ``handle_request``), except for plain
GETs, which retain.webapi.plainget parses and answers (``RETAIN_API_PLAIN_GET``); this worker
replaces gthread's loop and pool. The main thread keeps the heartbeat and the connection board
(retain.webapi.board), and ends kept-alive connections idle past their time by shutting their read
side: that wakes the connection's thread, which reads the end and closes it.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import struct
import threading
import time
from typing import Any

from gunicorn.workers.gthread import DEFAULT_WORKER_DATA_TIMEOUT, STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from retain.handover import before_waiting, on_waiting
from retain.webapi.board import BoardMember
from retain.webapi.plainget import PlainServer

ONESHOT = select.EPOLLIN | select.EPOLLONESHOT
TURN_SECONDS = 1.0  # the main thread's turn: heartbeat, board, expiries
DECLINED_SECONDS = 0.005  # how long a listener stays parked after the board said "a peer's turn"
IO_TIMEOUT_SECONDS = int(DEFAULT_WORKER_DATA_TIMEOUT)  # gunicorn's own bound on a client's silence
IO_TIMEOUT = struct.pack("ll", IO_TIMEOUT_SECONDS, 0)  # struct timeval

log = logging.getLogger("retain.api")


class ClientSocket(socket.socket):
    """An accepted connection whose blocking reads and writes give up after ``IO_TIMEOUT`` (set with
    SO_RCVTIMEO and SO_SNDTIMEO): the stall then reads to gunicorn as the client going away, which
    it closes without a traceback. A read or write that would block hands the lead over first."""

    def recv(self, size: int, flags: int = 0) -> bytes:
        try:
            return super().recv(size, flags | socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass
        before_waiting()
        try:
            return super().recv(size, flags)
        except BlockingIOError:
            raise self._stalled("sending its request") from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        data = memoryview(data).cast("B")
        try:
            sent = super().send(data, flags | socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        before_waiting()
        try:
            super().sendall(data[sent:], flags)
        except BlockingIOError:
            raise self._stalled("reading its answer") from None

    def _stalled(self, doing: str) -> OSError:
        log.warning("Closing a connection: its client stalled %ss while %s", IO_TIMEOUT_SECONDS, doing)
        return ConnectionResetError(errno.ECONNRESET, f"the client stalled while {doing}")


class EpollThreadWorker(BoardMember, ThreadWorker):
    """See the module's docstring; ``threads`` threads, ``worker_connections`` connections at most."""

    plain_get = True  # plain GETs past gunicorn's parser (retain.webapi.plainget); set by the server

    def init_process(self) -> None:
        self.epoll = select.epoll()
        self.plain = PlainServer(self) if self.plain_get else None
        self.lead = threading.Lock()  # held by the thread waiting on the epoll and serving
        self.local = threading.local()  # .leading: whether this thread holds the lead
        self.conns: dict[int, TConn] = {}
        self.lock = threading.Lock()  # conns and nr_conns
        self.listeners = {s.fileno(): s for s in self.sockets}
        self.parked: set[int] = set()  # listeners left unarmed for a moment (declined, or full)
        self.accepting = True
        self.quit_r, self.quit_w = os.pipe()  # readable: the threads return
        self.epoll.register(self.quit_r, select.EPOLLIN)
        # gthread's handle_request asks how many connections are kept alive; the cap is applied at
        # accept instead (worker_connections).
        self.keepalived_conns, self.max_keepalived = (), 1
        # Skips gthread's pool and selector, not the base worker's setup (which ends by calling run).
        super(ThreadWorker, self).init_process()

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False  # the signal also wrote to self.PIPE, which wakes the main thread

    def handle_quit(self, sig: int, frame: Any) -> None:
        super(ThreadWorker, self).handle_quit(sig, frame)

    # The main thread.

    def run(self) -> None:
        for listener in self.sockets:
            listener.setblocking(False)
            self.epoll.register(listener.fileno(), ONESHOT)
        threads = [threading.Thread(target=self.serve, name=f"api-{i}", daemon=True)
                   for i in range(self.cfg.threads)]
        for thread in threads:
            thread.start()
        while self.alive and self.is_parent_alive():
            self.turn()
            self.wait(TURN_SECONDS)  # a parked listener ends it early
            if self.parked:
                time.sleep(DECLINED_SECONDS)  # the peer whose turn it was takes the connection meanwhile
        self.stop(threads)

    def turn(self) -> None:
        self.notify()
        self.post(self.nr_conns, self.alive)
        self.expire(time.monotonic())
        if self.alive:
            for fd in list(self.parked):
                self.parked.discard(fd)
                self.epoll.modify(fd, ONESHOT)

    def wait(self, seconds: float) -> None:
        """Up to ``seconds``, less when a signal arrives (it writes to self.PIPE)."""
        if select.select([self.PIPE[0]], [], [], seconds)[0]:
            try:
                os.read(self.PIPE[0], 4096)
            except BlockingIOError:
                pass

    def expire(self, now: float) -> None:
        with self.lock:
            due = [c for c in self.conns.values() if c.timeout is not None and c.timeout < now]
        for conn in due:
            conn.timeout = None  # once: its thread closes it
            try:
                conn.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass  # the client is gone already: the connection's thread is woken all the same

    def stop(self, threads: list[threading.Thread]) -> None:
        """Stop accepting, answer what is in flight, close kept-alive connections within the linger
        (a request arriving meanwhile is answered with "Connection: close"), then end the threads."""
        # Also when the loop ended because the master died (alive is still True then): turn() must
        # neither re-arm a listener nor tell the peers this worker takes connections.
        self.alive = False
        self.accepting = False
        self.parked.clear()
        for fd in self.listeners:
            try:
                self.epoll.unregister(fd)
            except OSError:
                pass
        linger = time.monotonic() + STOP_KEEPALIVE_LINGER
        with self.lock:
            for conn in self.conns.values():
                if conn.timeout is not None:
                    conn.timeout = min(conn.timeout, linger)
        deadline = time.monotonic() + self.cfg.graceful_timeout
        while self.nr_conns and time.monotonic() < deadline:
            self.turn()
            self.wait(0.1)
        os.write(self.quit_w, b"q")
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for conn in list(self.conns.values()):
            conn.close()
        self.epoll.close()
        for listener in self.sockets:
            listener.close()

    # The serving threads.

    def serve(self) -> None:
        while self.follow_then_lead():
            pass

    def follow_then_lead(self) -> bool:
        """Wait for the lead, then serve until handing it over (True) or until the worker stops."""
        self.lead.acquire()
        self.local.leading = True
        on_waiting(self.hand_over)
        try:
            while self.local.leading:
                if not self.serve_next():
                    return False
            return True
        finally:
            if self.local.leading:
                self.hand_over()  # stopping: the next thread reads the quit pipe too

    def hand_over(self) -> None:
        """This thread is about to wait: a follower leads (and serves) meanwhile."""
        self.local.leading = False
        on_waiting(None)
        self.lead.release()

    def serve_next(self) -> bool:
        """Serve what the epoll wakes the leader for next; False when the worker stops."""
        for fd, _ in self.epoll.poll(-1, 1):
            if fd == self.quit_r:
                return False
            if fd in self.listeners:
                try:
                    self.accept(self.listeners[fd])
                except Exception:  # noqa: BLE001 - as below; and the listener must stay armed
                    if self.accepting:  # (not: the stop unregistered it meanwhile)
                        self.log.exception("Error accepting a connection")
                        self.park(fd)
            elif (conn := self.conns.get(fd)) is not None:
                try:
                    self.answer(fd, conn)
                except Exception:  # noqa: BLE001 - a thread must outlive any one connection
                    self.log.exception("Error serving a connection")
                    self.close(fd, conn, graceful=False)
        return True

    def may_take(self) -> bool:
        return self.nr_conns < self.worker_connections and self.may_accept(self.nr_conns)

    def accept(self, listener: socket.socket) -> None:
        fd = listener.fileno()
        if not self.accepting:
            return
        if not self.may_take():
            # A peer's turn (it was woken by the same connection), or this worker is full.
            self.park(fd)
            return
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                # Out of file descriptors, most likely: try again in a moment.
                self.log.error("Cannot accept a connection: %s", exc)
                self.park(fd)
        else:
            self.adopt(sock, addr, listener.getsockname())
        if self.accepting and fd not in self.parked:
            self.epoll.modify(fd, ONESHOT)  # level-triggered: fires again while more wait

    def park(self, fd: int) -> None:
        """Leave a listener unarmed for a moment (the main thread re-arms it) rather than spin on it."""
        self.parked.add(fd)
        self.wake_main()

    def wake_main(self) -> None:
        try:
            os.write(self.PIPE[1], b".")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def adopt(self, sock: socket.socket, addr: Any, server: Any) -> None:
        # A client that stalls halfway through a request (or stops reading its answer) gets a
        # socket error after IO_TIMEOUT instead of holding one of the few threads for good.
        sock = ClientSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            sock.setsockopt(socket.SOL_SOCKET, option, IO_TIMEOUT)
        conn = TConn(self.cfg, sock, addr, server)
        conn.set_timeout()  # a client that connects and says nothing is ended like an idle one
        with self.lock:
            self.conns[sock.fileno()] = conn
            self.nr_conns += 1
        self.epoll.register(sock.fileno(), ONESHOT)
        # Now, not at the main thread's next turn: the peers woken by the same connection decide
        # meanwhile.
        self.post(self.nr_conns, self.alive)

    def answer(self, fd: int, conn: TConn) -> None:
        """Serve the requests waiting on ``conn``, then re-arm it or close it."""
        conn.timeout = None  # busy: not the main thread's to expire
        conn.data_ready = True  # epoll said so (gthread would otherwise wait for data first)
        serve = self.plain.handle if self.plain else self.handle
        keep = serve(conn)
        # A body drain or a pipelining client can leave whole requests in the parser's buffer,
        # where epoll cannot see them.
        while keep is True and conn.parser.unreader.buf.getvalue():
            keep = serve(conn)
        if keep is not True:
            self.close(fd, conn, graceful=True)
            return
        conn.set_timeout()
        if not self.alive:
            conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.wake_main()  # after max_requests: the main thread starts the stop now
        self.epoll.modify(fd, ONESHOT)

    def close(self, fd: int, conn: TConn, graceful: bool) -> None:
        with self.lock:
            if self.conns.pop(fd, None) is None:
                return
            self.nr_conns -= 1
        # Now too, not at the main thread's next turn: a burst of new connections arriving meanwhile
        # would otherwise all go to the peers, this worker looking fuller than it is.
        self.post(self.nr_conns, self.alive)
        try:
            self.epoll.unregister(fd)
        except OSError:
            pass
        conn.close(graceful=graceful)
