/* An open-loop HTTP/1.1 load generator for bench/profiles.py (what wrk2 does, in one small file).

     openloop PORT CONNECTIONS RATE SECONDS REQUESTS_FILE      (prints one JSON document)

   Why not our Python client: on a two-core machine the generator shares the cores it measures. The
   Python one spent about 0.2 ms of CPU per request and waited for a core 12% of its time, and an
   answer that arrived while it waited counted as late. This one spends a few microseconds.

   The schedule is bench/loadgen.py's: connection i sends its k-th request at start + (k * conns + i)
   / rate, or as soon as its previous answer is in when that came later, and a request's latency
   counts from the instant it was due (no coordinated omission). One thread, ppoll(2) over every
   connection with nanosecond timeouts. REQUESTS_FILE holds requests without bodies, each ending in
   an empty line; connection i starts at request i and sends them in turn. Answers are tallied by
   status and X-Retain-Source, as the Python client does. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_NS 30000000000LL /* silence after which the answers still awaited count as lost */
#define BUF 262144

struct conn { int fd; long sent; int64_t due; int busy, finished; size_t len; char *buf; };
struct tally { char key[64]; long n; } tallies[32];
static int ntallies;

static int64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void die(const char *what) { perror(what); exit(1); }

static void count(const char *key) {
  for (int i = 0; i < ntallies; i++)
    if (!strcmp(tallies[i].key, key)) { tallies[i].n++; return; }
  if (ntallies == 32) return;
  snprintf(tallies[ntallies].key, sizeof tallies[0].key, "%s", key);
  tallies[ntallies++].n = 1;
}

static void dial(struct conn *c, int port) {
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
  int one = 1;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) < 0) die("socket");
  if (connect(c->fd, (struct sockaddr *)&to, sizeof to) < 0) die("connect");
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->len = 0;
}

/* Consumes the answers complete in c->buf; returns how many. */
static int answers(struct conn *c) {
  int done = 0;
  for (;;) {
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4), status[4] = "", source[48] = "", key[64];
    long length = 0;
    if (!end) return done;
    for (char *line = memchr(c->buf, '\n', end - c->buf); line && line < end; line = memchr(line, '\n', end - line)) {
      line++;
      if (!strncasecmp(line, "content-length:", 15)) length = strtol(line + 15, NULL, 10);
      else if (!strncasecmp(line, "x-retain-source:", 16)) sscanf(line + 16, " %47[^\r\n]", source);
    }
    size_t whole = (size_t)(end - c->buf) + 4 + (size_t)length;
    if (c->len < whole) return done;
    memcpy(status, c->buf + 9, 3);
    snprintf(key, sizeof key, *source ? "%s %s" : "%s", status, source);
    count(key);
    memmove(c->buf, c->buf + whole, c->len - whole);
    c->len -= whole;
    done++;
  }
}

static double runqueue_s(void) { /* the second field: time spent waiting for a core */
  unsigned long long ran, waited = 0;
  FILE *f = fopen("/proc/self/schedstat", "r");
  if (f) { if (fscanf(f, "%llu %llu", &ran, &waited) != 2) waited = 0; fclose(f); }
  return waited / 1e9;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

static int by_value(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: openloop PORT CONNECTIONS RATE SECONDS REQUESTS_FILE\n"); return 2; }
  int port = atoi(argv[1]), n = atoi(argv[2]);
  double rate = atof(argv[3]), seconds = atof(argv[4]);
  if (port <= 0 || n <= 0 || rate <= 0 || seconds <= 0) { fprintf(stderr, "openloop: bad arguments\n"); return 2; }
  FILE *f = fopen(argv[5], "rb");
  if (!f) die(argv[5]);
  static char text[1 << 24];
  size_t size = fread(text, 1, sizeof text - 1, f), nreqs = 0, cap = 1024;
  fclose(f);
  char **reqs = malloc(cap * sizeof *reqs);
  size_t *lens = malloc(cap * sizeof *lens);
  for (char *at = text, *end; (end = memmem(at, size - (at - text), "\r\n\r\n", 4)); at = end + 4) {
    if (nreqs == cap) { cap *= 2; reqs = realloc(reqs, cap * sizeof *reqs); lens = realloc(lens, cap * sizeof *lens); }
    reqs[nreqs] = at;
    lens[nreqs++] = (size_t)(end + 4 - at);
  }
  if (!nreqs) { fprintf(stderr, "openloop: no requests in %s\n", argv[5]); return 2; }
  prctl(PR_SET_TIMERSLACK, 1UL); /* wake at the instant a request is due, not up to 50 us later */

  struct conn *cs = calloc(n, sizeof *cs);
  struct pollfd *fds = calloc(n, sizeof *fds);
  int *polled = calloc(n, sizeof *polled); /* fds[k] is connection polled[k]'s */
  for (int i = 0; i < n; i++) { cs[i].buf = malloc(BUF); dial(&cs[i], port); }
  size_t nlat = 0, latcap = (size_t)(rate * seconds) + 1024;
  int *lat = malloc(latcap * sizeof *lat);
  long closed = 0, unanswered = 0;
  double cpu0 = cpu_s(), wait0 = runqueue_s();
  int64_t start = now_ns() + 50000000LL, stop = start + (int64_t)(seconds * 1e9), heard = stop;
  for (;;) {
    int64_t now = now_ns(), wake = -1;
    int busy = 0, idle = 0;
    for (int i = 0; i < n; i++) {
      struct conn *c = &cs[i];
      if (c->busy || c->finished) { busy += c->busy; continue; }
      int64_t due = start + (int64_t)((c->sent * n + i) * 1e9 / rate);
      if (due >= stop) { close(c->fd); c->finished = 1; continue; }
      idle = 1;
      if (due <= now) {
        const char *r = reqs[(i + c->sent) % nreqs];
        size_t len = lens[(i + c->sent) % nreqs];
        if (send(c->fd, r, len, MSG_NOSIGNAL) != (ssize_t)len) die("send"); /* a request fits the buffer */
        c->sent++, c->due = due, c->busy = 1, busy++;
      } else if (wake < 0 || due < wake) wake = due;
    }
    if (!busy && !idle) break;
    if (now > (heard > stop ? heard : stop) + DRAIN_NS) { unanswered += busy; break; }
    int m = 0;
    for (int i = 0; i < n; i++)
      if (!cs[i].finished) polled[m] = i, fds[m++] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
    int64_t left = wake < 0 ? 1000000000LL : wake - now_ns();
    if (left < 0) left = 0;
    struct timespec timeout = {left / 1000000000LL, left % 1000000000LL};
    if (ppoll(fds, m, &timeout, NULL) < 0 && errno != EINTR) die("ppoll");
    for (int k = 0; k < m; k++) {
      if (!fds[k].revents) continue;
      struct conn *c = &cs[polled[k]];
      ssize_t got = recv(c->fd, c->buf + c->len, BUF - c->len, 0);
      if (got <= 0) { /* the server closed the connection: count it, reconnect */
        closed++;
        close(c->fd);
        dial(c, port);
        c->busy = 0;
        continue;
      }
      c->len += (size_t)got;
      if (answers(c) && c->busy) {
        heard = now_ns();
        if (nlat == latcap) lat = realloc(lat, (latcap *= 2) * sizeof *lat);
        lat[nlat++] = (int)((heard - c->due) / 1000);
        c->busy = 0;
      }
    }
  }
  double elapsed = (now_ns() - start) / 1e9;
  if (elapsed < 1e-3) elapsed = 1e-3;
  qsort(lat, nlat, sizeof *lat, by_value);
#define AT(q) (nlat ? lat[(size_t)((q) * nlat) < nlat - 1 ? (size_t)((q) * nlat) : nlat - 1] / 1000.0 : 0.0)
  printf("{\"requests\": %zu, \"seconds\": %.2f, \"rps\": %.0f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
         "\"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f, \"answers\": {",
         nlat, elapsed, nlat / elapsed, AT(0.5), AT(0.9), AT(0.99), AT(0.999), AT(1.0));
  for (int i = 0; i < ntallies; i++) printf("%s\"%s\": %ld", i ? ", " : "", tallies[i].key, tallies[i].n);
  if (closed) printf("%s\"closed\": %ld", ntallies ? ", " : "", closed);
  if (unanswered) printf("%s\"unanswered\": %ld", ntallies || closed ? ", " : "", unanswered);
  printf("}, \"loadgen_cpu_cores\": %.3f, \"loadgen_runqueue_share\": %.3f}\n",
         (cpu_s() - cpu0) / elapsed, (runqueue_s() - wait0) / elapsed);
  return 0;
}
