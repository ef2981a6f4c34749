//! Every OpenTelemetry attribute and metric name wirelens emits, in one place.
//!
//! Every name is checked against the semantic-conventions registry **v1.45.0** (the
//! `@opentelemetry/semantic-conventions` 1.45.0 package, by `tests/semconv/check_semconv.mjs`):
//! HTTP, database, RPC (stable since 1.45: `rpc.status_code`, no longer
//! `rpc.response.status_code`), server/client, network, URL and error names are stable ones;
//! messaging, DNS, TLS and the resource's `process`/`host`/`container`/`telemetry` names are in
//! the registry's development part. Names of our own are under `wirelens.*`.

/// Instrumentation scope name on every span and metric.
pub const SCOPE_NAME: &str = "wirelens";
/// Version of this crate, used as scope version and `telemetry.distro.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// Resource attributes.

/// `service.name`
pub const SERVICE_NAME: &str = "service.name";
/// `process.pid`
pub const PROCESS_PID: &str = "process.pid";
/// `process.executable.name`
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
/// `process.executable.path`
pub const PROCESS_EXECUTABLE_PATH: &str = "process.executable.path";
/// `process.command_line`
pub const PROCESS_COMMAND_LINE: &str = "process.command_line";
/// `host.name`
pub const HOST_NAME: &str = "host.name";
/// `container.id`
pub const CONTAINER_ID: &str = "container.id";
/// `container.name`: the name the runtime gives the container (`podman ps`, `crictl ps`).
pub const CONTAINER_NAME: &str = "container.name";
/// `container.runtime.name` (`podman`, `docker`, `containerd`, `cri-o`); replaces the
/// deprecated `container.runtime`.
pub const CONTAINER_RUNTIME_NAME: &str = "container.runtime.name";
/// `container.image.name`: the image reference without its tag or digest.
pub const CONTAINER_IMAGE_NAME: &str = "container.image.name";
/// `container.image.tags` (`string[]`); replaces the deprecated `container.image.tag`.
pub const CONTAINER_IMAGE_TAGS: &str = "container.image.tags";
/// `k8s.pod.name`
pub const K8S_POD_NAME: &str = "k8s.pod.name";
/// `k8s.pod.uid`
pub const K8S_POD_UID: &str = "k8s.pod.uid";
/// `k8s.namespace.name`
pub const K8S_NAMESPACE_NAME: &str = "k8s.namespace.name";
/// `k8s.container.name`
pub const K8S_CONTAINER_NAME: &str = "k8s.container.name";
/// `k8s.node.name`.
pub const K8S_NODE_NAME: &str = "k8s.node.name";
/// `k8s.deployment.name`.
pub const K8S_DEPLOYMENT_NAME: &str = "k8s.deployment.name";
/// `k8s.replicaset.name`.
pub const K8S_REPLICASET_NAME: &str = "k8s.replicaset.name";
/// `k8s.statefulset.name`.
pub const K8S_STATEFULSET_NAME: &str = "k8s.statefulset.name";
/// `k8s.daemonset.name`.
pub const K8S_DAEMONSET_NAME: &str = "k8s.daemonset.name";
/// `k8s.job.name`.
pub const K8S_JOB_NAME: &str = "k8s.job.name";
/// `k8s.cronjob.name`.
pub const K8S_CRONJOB_NAME: &str = "k8s.cronjob.name";
/// Prefix of `k8s.pod.label.<key>`.
pub const K8S_POD_LABEL_PREFIX: &str = "k8s.pod.label.";
/// Prefix of `k8s.pod.annotation.<key>`.
pub const K8S_POD_ANNOTATION_PREFIX: &str = "k8s.pod.annotation.";
/// `service.namespace`: the pod's namespace, for Kubernetes workloads (also part of the
/// Prometheus `job`).
pub const SERVICE_NAMESPACE: &str = "service.namespace";
/// `service.instance.id`: `<namespace>.<pod>.<container>` for Kubernetes workloads (the
/// Prometheus `instance` when set).
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// `telemetry.distro.name`: who produced the telemetry (we are not an SDK inside the process).
pub const TELEMETRY_DISTRO_NAME: &str = "telemetry.distro.name";
/// `telemetry.distro.version`
pub const TELEMETRY_DISTRO_VERSION: &str = "telemetry.distro.version";

// HTTP span and metric attributes.

/// `http.request.method`: a known method, or `_OTHER`.
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
/// `http.request.method_original`: the method as sent, when it was not a known one.
pub const HTTP_REQUEST_METHOD_ORIGINAL: &str = "http.request.method_original";
/// `http.response.status_code` (int)
pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
/// `url.path`
pub const URL_PATH: &str = "url.path";
/// `url.query`
pub const URL_QUERY: &str = "url.query";
/// `url.scheme`
pub const URL_SCHEME: &str = "url.scheme";
/// `url.full`
pub const URL_FULL: &str = "url.full";
/// `server.address`
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port` (int)
pub const SERVER_PORT: &str = "server.port";
/// `client.address`
pub const CLIENT_ADDRESS: &str = "client.address";
/// `server.service.name`: on a CLIENT span, the logical service of the server it called.
pub const SERVER_SERVICE_NAME: &str = "server.service.name";
/// `server.service.namespace`: on a CLIENT span, the namespace of that service.
pub const SERVER_SERVICE_NAMESPACE: &str = "server.service.namespace";
/// `client.service.name`: on a SERVER span, the logical service of the client that called.
pub const CLIENT_SERVICE_NAME: &str = "client.service.name";
/// `client.service.namespace`: on a SERVER span, the namespace of that service.
pub const CLIENT_SERVICE_NAMESPACE: &str = "client.service.namespace";
/// Prefix of our names for the other end's Kubernetes identity, on spans: the registry has no
/// `k8s.peer.*`, so `wirelens.peer.` + a `k8s.*` resource name (`wirelens.peer.k8s.pod.name`).
pub const WIRELENS_PEER_PREFIX: &str = "wirelens.peer.";
/// `k8s.service.name`: not in the registry; only used after [`WIRELENS_PEER_PREFIX`].
pub const K8S_SERVICE_NAME: &str = "k8s.service.name";
/// `client.port` (int)
pub const CLIENT_PORT: &str = "client.port";
/// `network.peer.address`
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
/// `network.peer.port` (int)
pub const NETWORK_PEER_PORT: &str = "network.peer.port";
/// `network.protocol.name`
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
/// `network.protocol.version`
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// `network.transport`
pub const NETWORK_TRANSPORT: &str = "network.transport";
/// `user_agent.original`
pub const USER_AGENT_ORIGINAL: &str = "user_agent.original";
/// `error.type`
pub const ERROR_TYPE: &str = "error.type";

// Database span and metric attributes.

/// `db.system.name`: the DBMS (`mysql`, `mariadb`, `postgresql`, `redis`, `cassandra`).
pub const DB_SYSTEM_NAME: &str = "db.system.name";
/// `db.operation.name`: the SQL/CQL verb or the command (`SELECT`, `HSET`).
pub const DB_OPERATION_NAME: &str = "db.operation.name";
/// `db.collection.name`: the one table the operation acts on.
pub const DB_COLLECTION_NAME: &str = "db.collection.name";
/// `db.namespace`: database, keyspace, or Redis database index.
pub const DB_NAMESPACE: &str = "db.namespace";
/// `db.query.text`: the statement, literals replaced by `?` unless raw statements are opted in.
/// Spans only, never metrics.
pub const DB_QUERY_TEXT: &str = "db.query.text";
/// `db.query.summary`: low-cardinality summary of the query (`SELECT users`); the span name.
pub const DB_QUERY_SUMMARY: &str = "db.query.summary";
/// `db.response.status_code`: SQLSTATE, error number, Redis error prefix, CQL error code.
pub const DB_RESPONSE_STATUS_CODE: &str = "db.response.status_code";
/// `db.response.returned_rows` (int, development): rows returned (or affected).
pub const DB_RESPONSE_RETURNED_ROWS: &str = "db.response.returned_rows";
/// `db.operation.batch.size` (int): operations in a batch, set only for 2 or more.
pub const DB_OPERATION_BATCH_SIZE: &str = "db.operation.batch.size";

// Messaging span and metric attributes (development status).

/// `messaging.system.name`: `kafka`, `nats`, `rabbitmq` (semconv 1.45 renamed `messaging.system`
/// to this).
pub const MESSAGING_SYSTEM_NAME: &str = "messaging.system.name";
/// `messaging.operation.name`: the system's own name for the operation (`send`, `ack`...).
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// `messaging.operation.type`: `send`, `receive`, `process`, `settle` (or `create`).
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// `messaging.destination.name`: topic, subject, or RabbitMQ `{exchange}:{routing key}`.
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// `messaging.destination.partition.id` (string): the Kafka partition.
pub const MESSAGING_DESTINATION_PARTITION_ID: &str = "messaging.destination.partition.id";
/// `messaging.destination.anonymous` (bool): the destination's name was generated.
pub const MESSAGING_DESTINATION_ANONYMOUS: &str = "messaging.destination.anonymous";
/// `messaging.destination.temporary` (bool): the destination may be gone once used.
pub const MESSAGING_DESTINATION_TEMPORARY: &str = "messaging.destination.temporary";
/// `rabbitmq.destination.routing_key` (semconv 1.45 renamed
/// `messaging.rabbitmq.destination.routing_key` to this).
pub const RABBITMQ_DESTINATION_ROUTING_KEY: &str = "rabbitmq.destination.routing_key";
/// `messaging.client.id`
pub const MESSAGING_CLIENT_ID: &str = "messaging.client.id";
/// `messaging.consumer.group.name`: the Kafka consumer group.
pub const MESSAGING_CONSUMER_GROUP_NAME: &str = "messaging.consumer.group.name";
/// `messaging.batch.message_count` (int): set for batches only (never for one message).
pub const MESSAGING_BATCH_MESSAGE_COUNT: &str = "messaging.batch.message_count";
/// `messaging.message.body.size` (int): set for single messages only.
pub const MESSAGING_MESSAGE_BODY_SIZE: &str = "messaging.message.body.size";

// DNS span and metric attributes (development status).

/// `dns.question.name`: the name queried, non-printable characters escaped.
pub const DNS_QUESTION_NAME: &str = "dns.question.name";
/// `dns.answers` (string[]): the IPv4 and IPv6 addresses resolved.
pub const DNS_ANSWERS: &str = "dns.answers";

// RPC (stable conventions, semconv 1.45: `rpc.system.name`, fully qualified `rpc.method`,
// `rpc.status_code`).
/// `rpc.system.name`.
pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
/// `rpc.method`: `service/method`.
pub const RPC_METHOD: &str = "rpc.method";
/// `rpc.status_code`: the status name (`OK`, `NOT_FOUND`). Semconv 1.45 renamed
/// `rpc.response.status_code` (1.39–1.44) to this.
pub const RPC_STATUS_CODE: &str = "rpc.status_code";
/// gRPC messages the client sent in the call (wirelens' own attribute).
pub const WIRELENS_RPC_REQUEST_MESSAGES: &str = "wirelens.rpc.request.messages";
/// gRPC messages the server sent in the call (wirelens' own attribute).
pub const WIRELENS_RPC_RESPONSE_MESSAGES: &str = "wirelens.rpc.response.messages";

// Attribute values.

/// `rpc.method` when the method is not known.
pub const RPC_METHOD_OTHER: &str = "_OTHER";
/// `http.request.method` value for methods outside [`HTTP_KNOWN_METHODS`].
pub const HTTP_METHOD_OTHER: &str = "_OTHER";
/// Methods kept as they are in `http.request.method` (RFC 9110 and RFC 5789 PATCH).
pub const HTTP_KNOWN_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];
/// Span name when the method is not a known one.
pub const HTTP_SPAN_NAME_OTHER: &str = "HTTP";
/// `error.type` when there is no better identifier (e.g. the response never came).
pub const ERROR_TYPE_OTHER: &str = "_OTHER";
/// `network.protocol.name` for HTTP.
pub const PROTOCOL_HTTP: &str = "http";
/// `url.scheme` for plain HTTP.
pub const SCHEME_HTTP: &str = "http";
/// `url.scheme` for HTTP over TLS.
pub const SCHEME_HTTPS: &str = "https";
/// `tls.protocol.name`: set on spans of non-HTTP protocols read as TLS plaintext.
pub const TLS_PROTOCOL_NAME: &str = "tls.protocol.name";
/// The `tls.protocol.name` value (OpenSSL does not say which version on these calls).
pub const TLS: &str = "tls";

/// `url.scheme` of HTTP over TLS or not.
pub fn http_scheme(tls: bool) -> &'static str {
    if tls { SCHEME_HTTPS } else { SCHEME_HTTP }
}
/// `network.transport` for TCP.
pub const TRANSPORT_TCP: &str = "tcp";
/// `network.transport` for UDP.
pub const TRANSPORT_UDP: &str = "udp";
/// RabbitMQ `messaging.destination.name` of a message sent to the default exchange with no
/// routing key.
pub const RABBITMQ_DEFAULT_EXCHANGE: &str = "amq.default";
/// Span name of DNS queries, followed by the question type (`DNS AAAA`). The conventions define
/// no DNS span.
pub const DNS_SPAN_NAME: &str = "DNS";
/// `error.type` of a DNS query that got no response.
pub const DNS_ERROR_TIMEOUT: &str = "timeout";

// Metrics.

/// Histogram of server request durations, seconds.
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";
/// Histogram of client request durations, seconds.
pub const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
/// Histogram of database client operation durations, seconds.
pub const DB_CLIENT_OPERATION_DURATION: &str = "db.client.operation.duration";
/// Histogram of database operation durations as the database process served them, seconds.
/// The semantic conventions define only the client side, so this is under our own namespace;
/// it has the client metric's attributes (no `network.peer.*`: the peer is the client) and
/// buckets.
pub const WIRELENS_DB_SERVER_OPERATION_DURATION: &str = "wirelens.db.server.operation.duration";
/// Histogram of messaging operations the traced process started as a producer or consumer
/// client (everything but `process`), seconds.
pub const MESSAGING_CLIENT_OPERATION_DURATION: &str = "messaging.client.operation.duration";
/// Histogram of DNS lookups, seconds.
pub const DNS_LOOKUP_DURATION: &str = "dns.lookup.duration";
/// Histogram: duration of RPCs served (seconds).
pub const RPC_SERVER_CALL_DURATION: &str = "rpc.server.call.duration";
/// Histogram: duration of RPCs made (seconds).
pub const RPC_CLIENT_CALL_DURATION: &str = "rpc.client.call.duration";
/// Set (`true`) on the one series per metric that takes what is past the series cap.
pub const OTEL_METRIC_OVERFLOW: &str = "otel.metric.overflow";
/// Unit of duration histograms.
pub const UNIT_SECONDS: &str = "s";
/// Unit of counters of events (the agent's own counters, unless they count bytes).
pub const UNIT_EVENTS: &str = "{event}";
/// Unit of counters of bytes.
pub const UNIT_BYTES: &str = "By";
/// Default explicit bucket boundaries of duration histograms (seconds), as the HTTP, messaging
/// and DNS semantic conventions advise.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Explicit bucket boundaries of database operation durations (seconds), as the database
/// semantic conventions advise for `db.client.operation.duration`.
pub const DB_DURATION_BUCKETS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0];

// The exporter's own counters, exported with the agent's counters under the agent's Resource.

/// Spans accepted by the backend.
pub const WIRELENS_EXPORT_SPANS: &str = "wirelens.export.spans";
/// Spans lost: observation queue full, batch queue full, or export failed.
pub const WIRELENS_EXPORT_SPANS_DROPPED: &str = "wirelens.export.spans_dropped";
/// Spans the sampler (`OTEL_TRACES_SAMPLER`) left out; metrics still count them.
pub const WIRELENS_EXPORT_SPANS_SAMPLED_OUT: &str = "wirelens.export.spans_sampled_out";
/// Export calls that failed after their retries (traces and metrics).
pub const WIRELENS_EXPORT_FAILURES: &str = "wirelens.export.failures";
/// Log records accepted by the backend.
pub const WIRELENS_EXPORT_LOGS: &str = "wirelens.export.logs";
/// Log records lost: queue full, spool full, or export failed.
pub const WIRELENS_EXPORT_LOGS_DROPPED: &str = "wirelens.export.logs_dropped";

// bpftrace scripts (the agent's `scripts` source): each row is a log record.

/// Attribute of every script row: the script's name, which is its table's name (also the log
/// record's `event_name`).
pub const WIRELENS_SCRIPT_NAME: &str = "wirelens.script.name";
/// Rows read from scripts.
pub const WIRELENS_SCRIPT_ROWS: &str = "wirelens.script.rows";
/// Script output lines that were not rows of their table (counted, not exported).
pub const WIRELENS_SCRIPT_ROWS_DROPPED: &str = "wirelens.script.rows_dropped";
/// Times a script was started again after it exited or was killed.
pub const WIRELENS_SCRIPT_RESTARTS: &str = "wirelens.script.restarts";

/// Observations not aggregated into metrics because the series limit was reached.
pub const WIRELENS_METRICS_SERIES_OVERFLOW: &str = "wirelens.metrics.series_overflow";

// JVM metrics, read from hsperfdata (`jvm_metrics.rs`). The `jvm.*` names are the stable JVM
// runtime conventions; GC counts and time are our own, see `jvm_metrics.rs` for why.

/// `jvm.memory.used` (By, up-down)
pub const JVM_MEMORY_USED: &str = "jvm.memory.used";
/// `jvm.memory.committed` (By, up-down)
pub const JVM_MEMORY_COMMITTED: &str = "jvm.memory.committed";
/// `jvm.memory.limit` (By, up-down)
pub const JVM_MEMORY_LIMIT: &str = "jvm.memory.limit";
/// `jvm.memory.type`: `heap` or `non_heap`
pub const JVM_MEMORY_TYPE: &str = "jvm.memory.type";
/// `jvm.memory.pool.name`
pub const JVM_MEMORY_POOL_NAME: &str = "jvm.memory.pool.name";
/// `jvm.thread.count` ({thread}, up-down)
pub const JVM_THREAD_COUNT: &str = "jvm.thread.count";
/// `jvm.thread.daemon`
pub const JVM_THREAD_DAEMON: &str = "jvm.thread.daemon";
/// `jvm.class.loaded` ({class}, monotonic)
pub const JVM_CLASS_LOADED: &str = "jvm.class.loaded";
/// `jvm.class.unloaded` ({class}, monotonic)
pub const JVM_CLASS_UNLOADED: &str = "jvm.class.unloaded";
/// `jvm.class.count` ({class}, up-down)
pub const JVM_CLASS_COUNT: &str = "jvm.class.count";
/// `jvm.cpu.time` (s, monotonic): the JVM process's CPU time, user and system, from
/// `/proc/<pid>/stat` (no hsperfdata counter holds it).
pub const JVM_CPU_TIME: &str = "jvm.cpu.time";
/// `jvm.gc.name`
pub const JVM_GC_NAME: &str = "jvm.gc.name";
/// Collections per collector ({collection}, monotonic): `jvm.gc.duration` is a histogram of
/// pauses, which cumulative counters cannot give.
pub const WIRELENS_JVM_GC_COUNT: &str = "wirelens.jvm.gc.count";
/// Time spent in collections per collector (s, monotonic).
pub const WIRELENS_JVM_GC_TIME: &str = "wirelens.jvm.gc.time";

/// Gauge: encoded bytes of span requests waiting in the export spool.
pub const WIRELENS_EXPORT_SPOOL_BYTES: &str = "wirelens.export.spool.bytes";
/// Gauge: span requests waiting in the export spool.
pub const WIRELENS_EXPORT_SPOOL_REQUESTS: &str = "wirelens.export.spool.requests";
/// Gauge: observations waiting in the exporter's queue.
pub const WIRELENS_EXPORT_QUEUE_OBSERVATIONS: &str = "wirelens.export.queue.observations";
/// Gauge: connections the agent tracks now.
pub const WIRELENS_CONNECTIONS_TRACKED: &str = "wirelens.connections.tracked";
/// Gauge: bytes buffered in tracked connections (not yet parsed).
pub const WIRELENS_CONNECTIONS_BUFFERED_BYTES: &str = "wirelens.connections.buffered_bytes";
/// Gauge: processes in the agent's process cache.
pub const WIRELENS_PROCESSES_CACHED: &str = "wirelens.processes.cached";
/// Gauge: the agent's resident memory.
pub const WIRELENS_MEMORY_RSS_BYTES: &str = "wirelens.memory.rss_bytes";
/// Gauge: files (libraries, executables) carrying the agent's user-space probes now.
pub const WIRELENS_UPROBE_FILES_ATTACHED: &str = "wirelens.uprobe.files_attached";
/// Gauge: the agent's user-space probe links now (each holds an fd).
pub const WIRELENS_UPROBE_LINKS: &str = "wirelens.uprobe.links";
// Service graph metrics (Tempo's metrics-generator names, which Grafana's service graph reads).

/// Requests per edge (monotonic).
pub const SERVICE_GRAPH_REQUEST_TOTAL: &str = "traces_service_graph_request_total";
/// Failed requests per edge (monotonic).
pub const SERVICE_GRAPH_REQUEST_FAILED_TOTAL: &str = "traces_service_graph_request_failed_total";
/// Histogram of the server side's durations per edge (seconds).
pub const SERVICE_GRAPH_REQUEST_SERVER_SECONDS: &str =
    "traces_service_graph_request_server_seconds";
/// Histogram of the client side's durations per edge (seconds).
pub const SERVICE_GRAPH_REQUEST_CLIENT_SECONDS: &str =
    "traces_service_graph_request_client_seconds";
/// Label: the calling service.
pub const SERVICE_GRAPH_CLIENT: &str = "client";
/// Label: the called service.
pub const SERVICE_GRAPH_SERVER: &str = "server";
/// Label: how they talk (empty, `virtual_node`, `database`, `messaging_system`).
pub const SERVICE_GRAPH_CONNECTION_TYPE: &str = "connection_type";
/// Label: the calling service's `service.namespace`.
pub const SERVICE_GRAPH_CLIENT_NAMESPACE: &str = "client_service_namespace";
/// Label: the called service's `service.namespace`.
pub const SERVICE_GRAPH_SERVER_NAMESPACE: &str = "server_service_namespace";
/// Unit of request counters.
pub const UNIT_REQUESTS: &str = "{request}";
// Resource metrics of processes, containers and pods, read from /proc and the cgroup files
// (`resource_metrics.rs`). Units and instruments as the registry's `process.*`, `container.*`
// and `k8s.pod.*` metrics give them.

/// `process.cpu.time` (s, monotonic) per `cpu.mode`
pub const PROCESS_CPU_TIME: &str = "process.cpu.time";
/// `process.cpu.utilization` (1, gauge) per `cpu.mode`
pub const PROCESS_CPU_UTILIZATION: &str = "process.cpu.utilization";
/// `process.memory.usage` (By, up-down): resident set size
pub const PROCESS_MEMORY_USAGE: &str = "process.memory.usage";
/// `process.memory.virtual` (By, up-down)
pub const PROCESS_MEMORY_VIRTUAL: &str = "process.memory.virtual";
/// `process.disk.io` (By, monotonic) per `disk.io.direction`
pub const PROCESS_DISK_IO: &str = "process.disk.io";
/// `process.paging.faults` ({fault}, monotonic) per `system.paging.fault.type`
pub const PROCESS_PAGING_FAULTS: &str = "process.paging.faults";
/// `process.thread.count` ({thread}, up-down)
pub const PROCESS_THREAD_COUNT: &str = "process.thread.count";
/// `process.unix.file_descriptor.count` ({file_descriptor}, up-down); replaces the deprecated
/// `process.open_file_descriptor.count`.
pub const PROCESS_UNIX_FILE_DESCRIPTOR_COUNT: &str = "process.unix.file_descriptor.count";
/// `process.context_switches` ({context_switch}, monotonic) per `process.context_switch.type`
pub const PROCESS_CONTEXT_SWITCHES: &str = "process.context_switches";
/// `container.cpu.time` (s, monotonic) per `cpu.mode`
pub const CONTAINER_CPU_TIME: &str = "container.cpu.time";
/// `container.memory.usage` (By): the cgroup's memory charge
pub const CONTAINER_MEMORY_USAGE: &str = "container.memory.usage";
/// `container.disk.io` (By, monotonic) per `disk.io.direction`
pub const CONTAINER_DISK_IO: &str = "container.disk.io";
/// `container.paging.faults` ({fault}, monotonic) per `system.paging.fault.type`
pub const CONTAINER_PAGING_FAULTS: &str = "container.paging.faults";
/// CFS periods the container's CPU quota was enforced in ({period}, monotonic): no
/// convention names CPU throttling.
pub const WIRELENS_CONTAINER_CPU_PERIODS: &str = "wirelens.container.cpu.periods";
/// Of those, the periods in which the container was throttled ({period}, monotonic).
pub const WIRELENS_CONTAINER_CPU_THROTTLED_PERIODS: &str =
    "wirelens.container.cpu.throttled.periods";
/// Time the container spent throttled (s, monotonic).
pub const WIRELENS_CONTAINER_CPU_THROTTLED_TIME: &str = "wirelens.container.cpu.throttled.time";
/// `k8s.pod.cpu.time` (s, monotonic) per `cpu.mode`
pub const K8S_POD_CPU_TIME: &str = "k8s.pod.cpu.time";
/// `k8s.pod.memory.usage` (By)
pub const K8S_POD_MEMORY_USAGE: &str = "k8s.pod.memory.usage";
/// `k8s.pod.paging.faults` ({fault}, monotonic) per `system.paging.fault.type`
pub const K8S_POD_PAGING_FAULTS: &str = "k8s.pod.paging.faults";
/// `cpu.mode`: `user`, `system`
pub const CPU_MODE: &str = "cpu.mode";
/// `disk.io.direction`: `read`, `write`
pub const DISK_IO_DIRECTION: &str = "disk.io.direction";
/// `system.paging.fault.type`: `major`, `minor`; replaces the deprecated
/// `process.paging.fault_type`.
pub const SYSTEM_PAGING_FAULT_TYPE: &str = "system.paging.fault.type";
/// `process.context_switch.type`: `voluntary`, `involuntary`
pub const PROCESS_CONTEXT_SWITCH_TYPE: &str = "process.context_switch.type";
// Network and connection metrics (`net_metrics.rs`). Per interface: the `system.network.*`
// conventions; per process and remote endpoint none exist, so `wirelens.*`.

/// `system.network.io` (By, monotonic): bytes per interface and direction.
pub const SYSTEM_NETWORK_IO: &str = "system.network.io";
/// `system.network.packet.count` ({packet}, monotonic).
pub const SYSTEM_NETWORK_PACKET_COUNT: &str = "system.network.packet.count";
/// `system.network.errors` ({error}, monotonic).
pub const SYSTEM_NETWORK_ERRORS: &str = "system.network.errors";
/// `system.network.packet.dropped` ({packet}, monotonic).
pub const SYSTEM_NETWORK_PACKET_DROPPED: &str = "system.network.packet.dropped";
/// `network.interface.name`
pub const NETWORK_INTERFACE_NAME: &str = "network.interface.name";
/// `network.io.direction`: `transmit` or `receive`.
pub const NETWORK_IO_DIRECTION: &str = "network.io.direction";
/// `network.type`: `ipv4` or `ipv6`.
pub const NETWORK_TYPE: &str = "network.type";
/// `network.local.port` (int): on endpoints of accepted connections, the listening port.
pub const NETWORK_LOCAL_PORT: &str = "network.local.port";
/// Inode of a network namespace (`/proc/<pid>/ns/net`), on its Resource.
pub const WIRELENS_NETWORK_NAMESPACE: &str = "wirelens.network.namespace";
/// Bytes a process sent and received on TCP connections per remote endpoint (By, monotonic).
pub const WIRELENS_NETWORK_IO: &str = "wirelens.network.io";
/// TCP segments per remote endpoint and direction ({packet}, monotonic), from `tcp_info`.
pub const WIRELENS_NETWORK_PACKET_COUNT: &str = "wirelens.network.packet.count";
/// TCP connections established ({connection}, monotonic).
pub const WIRELENS_TCP_CONNECTION_OPENED: &str = "wirelens.tcp.connection.opened";
/// TCP connections closed after being established ({connection}, monotonic).
pub const WIRELENS_TCP_CONNECTION_CLOSED: &str = "wirelens.tcp.connection.closed";
/// TCP connects that never got established ({connection}, monotonic), per `error.type`
/// (the `CONNECT_ERROR_*` values).
pub const WIRELENS_TCP_CONNECTION_FAILED: &str = "wirelens.tcp.connection.failed";
/// `error.type` of a failed connect: the peer answered with a reset (`ECONNREFUSED`).
pub const CONNECT_ERROR_REFUSED: &str = "refused";
/// `error.type` of a failed connect: the kernel gave up resending the SYN (`ETIMEDOUT`).
pub const CONNECT_ERROR_TIMEOUT: &str = "timeout";
/// `error.type` of a failed connect: an ICMP error said the peer cannot be reached
/// (`EHOSTUNREACH`, `ENETUNREACH`).
pub const CONNECT_ERROR_UNREACHABLE: &str = "unreachable";
/// `error.type` of a failed connect: the process closed the socket before any answer (its
/// own connect timeout, or a connect it no longer wanted); the kernel reported no error.
pub const CONNECT_ERROR_ABORTED: &str = "aborted";
/// TCP connections established now ({connection}, up-down).
pub const WIRELENS_TCP_CONNECTION_ACTIVE: &str = "wirelens.tcp.connection.active";
/// Retransmitted TCP segments (skbs) ({segment}, monotonic).
pub const WIRELENS_TCP_RETRANSMITS: &str = "wirelens.tcp.retransmits";
/// Smoothed RTT, mean over the endpoint's sampled connections (s, gauge).
pub const WIRELENS_TCP_RTT: &str = "wirelens.tcp.rtt";
/// RTT variance (`rttvar`, the mean deviation), mean over the endpoint's sampled connections
/// (s, gauge).
pub const WIRELENS_TCP_RTT_VARIANCE: &str = "wirelens.tcp.rtt.variance";
/// `network.io.direction` of sent bytes.
pub const DIRECTION_TRANSMIT: &str = "transmit";
/// `network.io.direction` of received bytes.
pub const DIRECTION_RECEIVE: &str = "receive";
