"""A local Apache Cassandra 5.0 node run from Maven Central's jars on Java 17.

Node N listens on the Nth of RETAIN_STACK_CASSANDRA_ADDRESSES (all of 127.0.0.0/8 reaches the
loopback interface), forms datacenter ``dcN`` and serves JMX on RETAIN_STACK_JMX_PORT + 100*(N-1),
so two datacenters fit on one machine with the standard ports.
"""

from __future__ import annotations

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy

from retain.config import Settings
from retain.store.cassandra import CASSANDRA_ERRORS
from retain.stack.jars import cassandra_lib
from retain.stack.java import find_java, module_flags
from retain.stack.process import port_open
from retain.stack.service import Launch, Service

STORAGE_PORT = 7000

_GC_AND_MISC = [
    "-XX:+UseG1GC", "-XX:+ParallelRefProcEnabled", "-XX:MaxTenuringThreshold=1",
    "-XX:G1HeapRegionSize=16m", "-XX:MaxGCPauseMillis=300", "-XX:InitiatingHeapOccupancyPercent=70",
    "-Xss256k", "-ea", "-da:net.openhft...", "-Djava.net.preferIPv4Stack=true",
    "-Dchronicle.analytics.disable=true", "-Djdk.attach.allowAttachSelf=true",
    "-Dio.netty.tryReflectionSetAccessible=true", "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11", "-XX:+ExitOnOutOfMemoryError",
    # The approximate clock's refresher wakes every 2 ms by default: on a 2-core machine shared with
    # the API and the workers, a tenth of a core and 500 preemptions a second of whatever runs there
    # (the API's lookups among them). Cassandra 3's 10 ms is precise enough for a node's timeouts.
    "-Dcassandra.approximate_time_precision_ms=10",
]

_LOGBACK = """<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
  <logger name="org.apache.cassandra" level="INFO"/>
</configuration>
"""


def node_dc(index: int) -> str:
    return f"dc{index}"


class CassandraNode(Service):
    """Node ``index`` (1-based) of the local cluster, alone in datacenter dc<index>."""

    stop_timeout = 90.0

    def __init__(self, settings: Settings, index: int) -> None:
        if not 1 <= index <= len(settings.stack_cassandra_addresses):
            raise ValueError(f"no address configured for Cassandra node {index}")
        self.index = index
        self.name = f"cassandra-{node_dc(index)}"
        super().__init__(settings)

    @property
    def ip(self) -> str:
        return self.settings.stack_cassandra_addresses[self.index - 1]

    @property
    def jmx_port(self) -> int:
        return self.settings.stack_jmx_port + 100 * (self.index - 1)

    @property
    def address(self) -> tuple[str, int]:
        return self.ip, self.settings.cassandra_port

    def busy_ports(self) -> list[tuple[str, int]]:
        return [self.address, (self.ip, STORAGE_PORT), ("127.0.0.1", self.jmx_port)]

    def yaml(self) -> str:
        node = self.data_dir()
        seeds = ",".join(dict.fromkeys([self.settings.stack_cassandra_addresses[0], self.ip]))
        # One token per node, distinct per DC: the standard layout for a small multi-DC ring. Each
        # node lists itself as a seed so that it starts without bootstrapping (no 30 s sleep).
        token = (self.index - 1) * 100
        return f"""cluster_name: retain
num_tokens: 1
initial_token: {token}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: GossipingPropertyFileSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seeds}"
listen_address: {self.ip}
rpc_address: {self.ip}
storage_port: {STORAGE_PORT}
native_transport_port: {self.settings.cassandra_port}
start_native_transport: true
commitlog_sync: periodic
commitlog_sync_period: 10000ms
commitlog_segment_size: 5MiB
data_file_directories:
  - {node}/data
commitlog_directory: {node}/commitlog
hints_directory: {node}/hints
saved_caches_directory: {node}/saved_caches
cdc_raw_directory: {node}/cdc_raw
auto_snapshot: false
cdc_enabled: false
"""

    def prepare(self) -> Launch:
        java = find_java(self.settings.java_home)
        lib = cassandra_lib(self.settings.cache_dir, self.settings.cassandra_version)
        conf = self.home / "conf" / self.name
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "cassandra.yaml").write_text(self.yaml())
        (conf / "logback.xml").write_text(_LOGBACK)
        (conf / "cassandra-rackdc.properties").write_text(f"dc={node_dc(self.index)}\nrack=rack1\n")
        logs = self.process.log_file.parent
        heap = self.settings.cassandra_heap_mb
        props = [
            f"-Dcassandra.config=file://{conf}/cassandra.yaml",
            f"-Dcassandra-rackdc.properties=file://{conf}/cassandra-rackdc.properties",
            f"-Dlogback.configurationFile={conf}/logback.xml",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={self.data_dir()}",
            f"-Dcassandra.logdir={logs}",
            f"-Dcassandra.jmx.local.port={self.jmx_port}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            # A restarted node waits this long for peers it remembers (the other DC, perhaps not
            # started); 30 s by default, far more than loopback needs.
            "-Dcassandra.ring_delay_ms=5000",
        ]
        if self.settings.stack_cassandra_unsafe:
            props.append("-Dcassandra.unsafesystem=true")
        argv = [java, f"-Xms{heap}m", f"-Xmx{heap}m", *_GC_AND_MISC, *module_flags(), *props,
                "-cp", f"{conf}:{lib}/*", "org.apache.cassandra.service.CassandraDaemon"]
        return Launch(argv)

    def ready(self) -> bool:
        return port_open(*self.address)

    def peers(self) -> set[str]:
        """Addresses of the other nodes this node knows, with their datacenter, as gossip has it."""
        only_this = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([self.ip]))
        cluster = Cluster([self.ip], port=self.settings.cassandra_port, protocol_version=5, connect_timeout=5,
                          execution_profiles={EXEC_PROFILE_DEFAULT: only_this})
        try:
            rows = cluster.connect().execute("SELECT peer, data_center FROM system.peers_v2")
            return {row.peer for row in rows if row.data_center}
        except CASSANDRA_ERRORS:
            return set()
        finally:
            cluster.shutdown()
