//! Transport: a bounded queue from the agent, span batching, metric intervals, and OTLP export
//! over gRPC or HTTP with retries.
//!
//! ```text
//!  agent threads ──try_send──▶ [queue: max_queue_size] ──▶ collector task ──▶ [spool: bytes] ──▶ traces worker ──▶ backend
//!   (never block; a full                                   │ every observation  (oldest dropped    (retry; put back
//!    queue counts a drop)                                  │ feeds MetricsAggregator past the limit)  while it is down)
//!                                                          └── every metric_interval ──▶ [1 request] ──▶ metrics worker ──▶ backend
//! ```
//!
//! The collector never waits for the network: span batches become requests in the byte-bounded
//! [`spool`], which keeps them through a backend outage or stall and delivers them when it
//! answers again; past its limit the oldest are dropped and counted. Metrics keep aggregating
//! every observation and, being cumulative, catch up at the next successful export. Failures
//! are logged once per failure streak.
//!
//! A [`MetricsReader`] (from [`spawn_with_reader`]) asks the collector for the same cumulative
//! request the metrics worker gets, at any time: the Prometheus endpoint renders it. With a
//! reader, metrics are aggregated even when no OTLP metrics destination is set, and every
//! `metric_interval` the series of processes that are gone are retired all the same
//! ([`MetricsAggregator::retire`]). Spans are sampled ([`Sampler`]) as a batch becomes a
//! request; metrics count every observation.

pub mod config;
pub mod grpc;
pub mod http;
pub mod logs;
pub mod profiles;
pub mod retry;
pub mod sampler;
mod spool;
pub mod tls;

use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use crate::metrics::{MetricsAggregator, point_count};
use crate::{MappingOptions, Observation, ProcessInfo, semconv, traces};
use spool::{Spool, Spooled};

pub use config::{
    Compression, ConfigError, ExportConfig, Exporters, Overrides, Protocol, RAW_DB_STATEMENTS_VAR,
    SignalConfig, logs_from_env, metrics_exporters_from_env, profiles_from_env,
};
pub use grpc::{GrpcError, GrpcExporter};
pub use http::{HttpError, HttpExporter};
pub use retry::{RetryPolicy, Retryable};
pub use sampler::Sampler;
pub use tls::{Pem, TlsConfig};

/// `User-Agent` of every export request.
pub(crate) const USER_AGENT: &str = concat!("wirelens/", env!("CARGO_PKG_VERSION"));

/// Longest wait between two tries of a spooled request while the backend is down.
const SPOOL_RETRY_MAX_WAIT: Duration = Duration::from_secs(5);

/// What a backend said it did not accept, in an otherwise successful answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    /// Spans or data points rejected.
    pub rejected: u64,
    /// The server's explanation.
    pub message: String,
}

impl PartialSuccess {
    pub(crate) fn new(rejected: i64, message: String) -> Self {
        Self {
            rejected: u64::try_from(rejected).unwrap_or(0),
            message,
        }
    }
}

/// A failed export, whichever the transport.
#[derive(Debug, Error)]
pub enum ExportError {
    /// Over gRPC.
    #[error(transparent)]
    Grpc(#[from] GrpcError),
    /// Over HTTP.
    #[error(transparent)]
    Http(#[from] HttpError),
}

impl Retryable for ExportError {
    fn is_retryable(&self) -> bool {
        match self {
            Self::Grpc(e) => e.is_retryable(),
            Self::Http(e) => e.is_retryable(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Grpc(e) => e.retry_after(),
            Self::Http(e) => e.retry_after(),
        }
    }
}

impl ExportError {
    /// Whether a spooled request should be kept for a later try: every retryable error, and
    /// over gRPC also `UNKNOWN` and `INTERNAL`, which is what a connection broken mid-call
    /// (a backend restarting, a stalled one closing) comes back as. Only answers that say the
    /// request itself is wrong (`INVALID_ARGUMENT`, HTTP 400...) or a broken set-up drop it.
    fn is_transient(&self) -> bool {
        match self {
            Self::Grpc(GrpcError::Status { code, .. }) => {
                self.is_retryable() || matches!(code, tonic::Code::Unknown | tonic::Code::Internal)
            }
            _ => self.is_retryable(),
        }
    }
}

/// An error and its causes on one line (`a: b: c`), for logs.
fn one_line(error: &ExportError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// One signal's client, whichever the transport.
enum Transport {
    Grpc(GrpcExporter),
    Http(HttpExporter),
}

impl Transport {
    fn new(config: &SignalConfig) -> Result<Self, ExportError> {
        Ok(match config.protocol {
            Protocol::Grpc => Self::Grpc(GrpcExporter::new(config)?),
            Protocol::HttpProtobuf => Self::Http(HttpExporter::new(config)?),
        })
    }

    async fn export_traces(
        &self,
        request: &ExportTraceServiceRequest,
        policy: &RetryPolicy,
    ) -> Result<PartialSuccess, ExportError> {
        match self {
            Self::Grpc(g) => retry::retry(policy, || g.export_traces(request))
                .await
                .map_err(Into::into),
            Self::Http(h) => {
                let body = h.body(request)?;
                retry::retry(policy, || h.export_traces(body.clone()))
                    .await
                    .map_err(Into::into)
            }
        }
    }

    async fn export_metrics(
        &self,
        request: &ExportMetricsServiceRequest,
        policy: &RetryPolicy,
    ) -> Result<PartialSuccess, ExportError> {
        match self {
            Self::Grpc(g) => retry::retry(policy, || g.export_metrics(request))
                .await
                .map_err(Into::into),
            Self::Http(h) => {
                let body = h.body(request)?;
                retry::retry(policy, || h.export_metrics(body.clone()))
                    .await
                    .map_err(Into::into)
            }
        }
    }
}

/// The exporter's counters, as of the call to [`ExportHandle::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Spans the backend accepted.
    pub spans_exported: u64,
    /// Spans lost: queue full, exporter behind, export failed or rejected, shutdown timed out.
    pub spans_dropped: u64,
    /// Export calls (traces or metrics) that failed after their retries.
    pub export_failures: u64,
    /// Successful metrics exports.
    pub metrics_exports: u64,
    /// Data points sent in successful metrics exports, summed over exports.
    pub metric_points: u64,
    /// Observations refused by [`ObservationSender::try_send`] because the queue was full.
    pub queue_full: u64,
    /// Observations that went to an overflow series because the series cap was reached.
    pub metric_series_overflow: u64,
    /// Spans not exported because the sampler dropped them (not a loss: metrics count them).
    pub spans_sampled_out: u64,
}

#[derive(Debug, Default)]
struct Counters {
    spans_exported: AtomicU64,
    spans_dropped: AtomicU64,
    export_failures: AtomicU64,
    metrics_exports: AtomicU64,
    metric_points: AtomicU64,
    queue_full: AtomicU64,
    metric_series_overflow: AtomicU64,
    spans_sampled_out: AtomicU64,
    /// Spans taken off the queue whose fate (exported or dropped) is not known yet.
    spans_pending: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ExportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExportStats {
            spans_exported: get(&self.spans_exported),
            spans_dropped: get(&self.spans_dropped),
            export_failures: get(&self.export_failures),
            metrics_exports: get(&self.metrics_exports),
            metric_points: get(&self.metric_points),
            queue_full: get(&self.queue_full),
            metric_series_overflow: get(&self.metric_series_overflow),
            spans_sampled_out: get(&self.spans_sampled_out),
        }
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
}

#[derive(Default)]
struct Shared {
    counters: Counters,
    agent_counters: Mutex<Vec<(&'static str, u64)>>,
    /// The agent's own gauges (values now), by name.
    agent_gauges: Mutex<Vec<(&'static str, i64)>>,
    /// The latest metrics of each source outside the aggregator (JVM...), by source name.
    source_metrics: Mutex<Vec<(&'static str, Vec<ResourceMetrics>)>>,
    /// The traces spool, once the exporter has one.
    spool: std::sync::OnceLock<Arc<Spool>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Replace `source`'s metrics.
    fn set_source_metrics(&self, source: &'static str, metrics: Vec<ResourceMetrics>) {
        let mut current = match self.source_metrics.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match current.iter_mut().find(|(n, _)| *n == source) {
            Some(slot) => slot.1 = metrics,
            None => current.push((source, metrics)),
        }
    }

    /// Every source's latest metrics.
    fn source_metrics(&self) -> Vec<ResourceMetrics> {
        let current = match self.source_metrics.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        current
            .iter()
            .flat_map(|(_, m)| m.iter().cloned())
            .collect()
    }

    /// Merge `gauges` into the agent's gauges by name.
    fn set_agent_gauges(&self, gauges: Vec<(&'static str, i64)>) {
        let mut current = match self.agent_gauges.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (name, value) in gauges {
            match current.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => current.push((name, value)),
            }
        }
    }

    /// Merge `counters` into the agent's counters by name.
    fn set_agent_counters(&self, counters: Vec<(&'static str, u64)>) {
        let mut current = match self.agent_counters.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (name, value) in counters {
            match current.iter_mut().find(|(n, _)| *n == name) {
                Some(slot) => slot.1 = value,
                None => current.push((name, value)),
            }
        }
    }
}

/// The agent's end of the exporter queue: cheap to clone, callable from any thread, never
/// blocks.
#[derive(Clone, Debug)]
pub struct ObservationSender {
    tx: mpsc::Sender<Observation>,
    shared: Arc<Shared>,
    traces_on: bool,
}

impl ObservationSender {
    /// Queue an observation for export. `false` when the queue is full (or the exporter has
    /// stopped): the observation is dropped and counted.
    pub fn try_send(&self, obs: Observation) -> bool {
        match self.tx.try_send(obs) {
            Ok(()) => true,
            Err(_) => {
                add(&self.shared.counters.queue_full, 1);
                if self.traces_on {
                    add(&self.shared.counters.spans_dropped, 1);
                }
                false
            }
        }
    }
}

/// Controls a running exporter: counters, the agent's own metrics, and shutdown.
#[derive(Debug)]
pub struct ExportHandle {
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    tasks: Vec<JoinHandle<()>>,
    queue: mpsc::WeakSender<Observation>,
    traces_on: bool,
}

impl ExportHandle {
    /// The counters now.
    pub fn stats(&self) -> ExportStats {
        self.shared.counters.snapshot()
    }

    /// Set the agent's own cumulative counters (`wirelens.*`), exported as monotonic sums under
    /// the agent's Resource at each metrics export. Counters not named keep their last value.
    pub fn set_agent_counters(&self, counters: Vec<(&'static str, u64)>) {
        self.shared.set_agent_counters(counters);
    }

    /// Set the agent's own gauges (`wirelens.*` values now: tracked connections, cached
    /// processes), exported as gauges under the agent's Resource at each metrics export.
    /// Gauges not named keep their last value.
    pub fn set_agent_gauges(&self, gauges: Vec<(&'static str, i64)>) {
        self.shared.set_agent_gauges(gauges);
    }

    /// Set the metrics of a source that keeps its own cumulative state (the JVM reader): they
    /// replace that source's previous ones and go out, as they are, with every metrics export
    /// until replaced again.
    pub fn set_source_metrics(&self, source: &'static str, metrics: Vec<ResourceMetrics>) {
        self.shared.set_source_metrics(source, metrics);
    }

    /// A view of this exporter that other threads can hold.
    pub fn monitor(&self) -> ExportMonitor {
        ExportMonitor {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Stop: export what is queued and one last metrics request, waiting at most `timeout`;
    /// then abort what is left (counting its spans as dropped). Returns the final counters.
    pub async fn shutdown(mut self, timeout: Duration) -> ExportStats {
        if let Some(stop) = self.stop.take() {
            // The collector may already be gone; nothing to tell it then.
            let _ = stop.send(());
        }
        let deadline = Instant::now() + timeout;
        let mut finished = true;
        for task in &mut self.tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                finished = false;
                break;
            }
        }
        if !finished {
            for task in &self.tasks {
                task.abort();
            }
            let counters = &self.shared.counters;
            let queued = self
                .queue
                .upgrade()
                .map_or(0, |tx| tx.max_capacity() - tx.capacity());
            let mut lost = counters.spans_pending.swap(0, Ordering::Relaxed);
            if self.traces_on {
                lost += queued as u64;
            }
            add(&counters.spans_dropped, lost);
            tracing::warn!("otlp export did not finish within {timeout:?}; {lost} spans dropped");
        }
        self.stats()
    }
}

/// A cloneable view of a running exporter for other threads: counters in and out, no control.
#[derive(Clone, Debug)]
pub struct ExportMonitor {
    shared: Arc<Shared>,
}

impl ExportMonitor {
    /// The counters now.
    pub fn stats(&self) -> ExportStats {
        self.shared.counters.snapshot()
    }

    /// As [`ExportHandle::set_agent_counters`].
    pub fn set_agent_counters(&self, counters: Vec<(&'static str, u64)>) {
        self.shared.set_agent_counters(counters);
    }

    /// As [`ExportHandle::set_agent_gauges`].
    pub fn set_agent_gauges(&self, gauges: Vec<(&'static str, i64)>) {
        self.shared.set_agent_gauges(gauges);
    }

    /// As [`ExportHandle::set_source_metrics`].
    pub fn set_source_metrics(&self, source: &'static str, metrics: Vec<ResourceMetrics>) {
        self.shared.set_source_metrics(source, metrics);
    }

    /// Drop the oldest three quarters of the spooled span requests (the memory limiter's
    /// last resort), counted as dropped; returns the spans dropped.
    pub fn shed_queued(&self) -> u64 {
        let Some(spool) = self.shared.spool.get() else {
            return 0;
        };
        let dropped = spool.shed();
        let counters = &self.shared.counters;
        sub(&counters.spans_pending, dropped);
        add(&counters.spans_dropped, dropped);
        dropped
    }
}

/// Pending questions from [`MetricsReader`]s; the collector answers between observations.
const READS_IN_FLIGHT: usize = 4;

/// Asks a running exporter for its cumulative metrics as of now (cheap to clone).
#[derive(Clone, Debug)]
pub struct MetricsReader {
    tx: mpsc::Sender<oneshot::Sender<ExportMetricsServiceRequest>>,
}

impl MetricsReader {
    /// Every series as the next OTLP metrics export would carry it, the agent's own counters
    /// brought up to date. `None` once the exporter has stopped, or while more than a few
    /// reads are already waiting.
    pub async fn read(&self) -> Option<ExportMetricsServiceRequest> {
        let (tx, rx) = oneshot::channel();
        self.tx.try_send(tx).ok()?;
        rx.await.ok()
    }
}

/// Start exporting on `handle`'s runtime: returns the queue's sending end for the agent's
/// threads and the handle to read counters and shut down. Nothing here touches the network; a
/// dead or slow backend only shows as failures and drops in [`ExportStats`].
pub fn spawn(
    config: ExportConfig,
    agent: ProcessInfo,
    handle: &tokio::runtime::Handle,
) -> (ObservationSender, ExportHandle) {
    let (sender, export, _) = start(config, agent, handle, false);
    (sender, export)
}

/// As [`spawn`], with a [`MetricsReader`]: metrics are aggregated (and readable) even when
/// `config` has no OTLP metrics destination.
pub fn spawn_with_reader(
    config: ExportConfig,
    agent: ProcessInfo,
    handle: &tokio::runtime::Handle,
) -> (ObservationSender, ExportHandle, MetricsReader) {
    let (sender, export, reader) = start(config, agent, handle, true);
    let reader = match reader {
        Some(reader) => reader,
        // `start` makes one whenever asked; a closed one only answers `None`.
        None => MetricsReader {
            tx: mpsc::channel(1).0,
        },
    };
    (sender, export, reader)
}

fn start(
    config: ExportConfig,
    agent: ProcessInfo,
    handle: &tokio::runtime::Handle,
    with_reader: bool,
) -> (ObservationSender, ExportHandle, Option<MetricsReader>) {
    let shared = Arc::new(Shared::default());
    let (obs_tx, obs_rx) = mpsc::channel(config.max_queue_size.max(1));
    let (stop_tx, stop_rx) = oneshot::channel();
    let mut workers = Vec::new();
    let spool = config.traces.clone().map(|signal| {
        let spool = Arc::new(Spool::new(config.spool_bytes));
        let _ = shared.spool.set(Arc::clone(&spool));
        workers.push(handle.spawn(traces_worker(
            signal,
            config.retry,
            Arc::clone(&spool),
            Arc::clone(&shared),
        )));
        spool
    });
    let metric_requests = config.metrics.clone().map(|signal| {
        let (tx, rx) = mpsc::channel(1);
        workers.push(handle.spawn(metrics_worker(
            signal,
            config.retry,
            rx,
            Arc::clone(&shared),
        )));
        tx
    });
    let traces_on = spool.is_some();
    let (reader, reads) = if with_reader {
        let (tx, rx) = mpsc::channel(READS_IN_FLIGHT);
        (Some(MetricsReader { tx }), Some(rx))
    } else {
        (None, None)
    };
    let collector = Collector {
        aggregator: (metric_requests.is_some() || reads.is_some()).then(|| {
            let mut aggregator =
                MetricsAggregator::with_max_series(agent, config.max_metric_series);
            aggregator.set_agent_attributes(config.resource_attributes.clone());
            aggregator
        }),
        batch: Vec::new(),
        max_batch: config.max_export_batch_size.max(1),
        spool,
        mapping: config.mapping,
        sampler: config.sampler,
        metric_requests,
        reads,
        shared: Arc::clone(&shared),
        queued: 0,
    };
    let mut tasks = vec![handle.spawn(collector.run(
        obs_rx,
        stop_rx,
        config.schedule_delay,
        config.metric_interval,
    ))];
    tasks.extend(workers);
    let sender = ObservationSender {
        tx: obs_tx.clone(),
        shared: Arc::clone(&shared),
        traces_on,
    };
    let export = ExportHandle {
        shared,
        stop: Some(stop_tx),
        tasks,
        queue: obs_tx.downgrade(),
        traces_on,
    };
    (sender, export, reader)
}

/// Takes observations off the queue: spans into batches, durations into metrics.
struct Collector {
    aggregator: Option<MetricsAggregator>,
    batch: Vec<Observation>,
    max_batch: usize,
    spool: Option<Arc<Spool>>,
    mapping: MappingOptions,
    sampler: Sampler,
    metric_requests: Option<mpsc::Sender<ExportMetricsServiceRequest>>,
    /// Questions from [`MetricsReader`]s, when there is a reader.
    reads: Option<mpsc::Receiver<oneshot::Sender<ExportMetricsServiceRequest>>>,
    shared: Arc<Shared>,
    /// Observations waiting in the queue when the last metrics request was built.
    queued: usize,
}

impl Collector {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Observation>,
        mut stop: oneshot::Receiver<()>,
        schedule_delay: Duration,
        metric_interval: Duration,
    ) {
        let start = Instant::now();
        let mut flush = interval_at(start + schedule_delay, schedule_delay);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut export = interval_at(start + metric_interval, metric_interval);
        export.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut open = true;
        let mut reads = self.reads.take();
        loop {
            tokio::select! {
                biased;
                // A dropped ExportHandle stops the exporter too.
                _ = &mut stop => break,
                _ = flush.tick() => self.flush(false).await,
                _ = export.tick() => {
                    self.queued = rx.len();
                    self.export_metrics(false).await;
                }
                Some(answer) = recv_read(&mut reads) => {
                    self.queued = rx.len();
                    // The reader may have given up waiting; nothing to do then.
                    let _ = answer.send(self.metrics_request());
                }
                received = rx.recv(), if open => match received {
                    Some(obs) => self.take(obs, false).await,
                    None => open = false,
                },
            }
        }
        rx.close();
        while let Ok(obs) = rx.try_recv() {
            self.take(obs, true).await;
        }
        self.flush(true).await;
        if let Some(spool) = &self.spool {
            spool.close();
        }
        self.export_metrics(true).await;
    }

    async fn take(&mut self, obs: Observation, last: bool) {
        if let Some(aggregator) = &mut self.aggregator
            && !aggregator.record(&obs)
        {
            add(&self.shared.counters.metric_series_overflow, 1);
        }
        if self.spool.is_some() {
            add(&self.shared.counters.spans_pending, 1);
            self.batch.push(obs);
            if self.batch.len() >= self.max_batch {
                self.flush(last).await;
            }
        }
    }

    /// Turn the current batch into a request for the spool (which never waits: past its byte
    /// limit it drops the oldest requests, counted here).
    async fn flush(&mut self, _last: bool) {
        let Some(spool) = &self.spool else { return };
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.max_batch));
        let mut request = traces::spans_request_with(&batch, &self.mapping);
        let pending = batch.len() as u64;
        let sampled_out = self.sampler.apply(&mut request).min(pending);
        if sampled_out > 0 {
            let counters = &self.shared.counters;
            sub(&counters.spans_pending, sampled_out);
            add(&counters.spans_sampled_out, sampled_out);
        }
        if sampled_out == pending {
            return;
        }
        let dropped = spool.push(Spooled::new(request, pending - sampled_out));
        if dropped > 0 {
            let counters = &self.shared.counters;
            sub(&counters.spans_pending, dropped);
            add(&counters.spans_dropped, dropped);
            tracing::debug!("otlp traces spool full; {dropped} older spans dropped");
        }
    }

    /// Build the cumulative metrics request and hand it to the metrics worker (skipped while it
    /// is still busy with the previous one, except at shutdown); then retire the series of
    /// processes that are gone.
    async fn export_metrics(&mut self, last: bool) {
        if self.metric_requests.is_some() {
            let request = self.metrics_request();
            let Some(requests) = &self.metric_requests else {
                return;
            };
            if last {
                // Fails only if the worker is gone; then there is no one to export anyway.
                let _ = requests.send(request).await;
            } else if requests.try_send(request).is_err() {
                tracing::debug!("previous metrics export still running; this interval skipped");
            }
        }
        if let Some(aggregator) = &mut self.aggregator {
            let retired = aggregator.retire();
            if retired > 0 {
                tracing::debug!(series = retired, "series of exited processes dropped");
            }
        }
    }

    /// Every series now, with the agent's own counters brought up to date (empty without an
    /// aggregator).
    fn metrics_request(&mut self) -> ExportMetricsServiceRequest {
        let Some(aggregator) = &mut self.aggregator else {
            return ExportMetricsServiceRequest::default();
        };
        let mut counters = match self.shared.agent_counters.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let own = self.shared.counters.snapshot();
        counters.extend([
            (semconv::WIRELENS_EXPORT_SPANS, own.spans_exported),
            (semconv::WIRELENS_EXPORT_SPANS_DROPPED, own.spans_dropped),
            (semconv::WIRELENS_EXPORT_FAILURES, own.export_failures),
            (
                semconv::WIRELENS_METRICS_SERIES_OVERFLOW,
                own.metric_series_overflow,
            ),
            (
                semconv::WIRELENS_EXPORT_SPANS_SAMPLED_OUT,
                own.spans_sampled_out,
            ),
        ]);
        aggregator.set_agent_counters(&counters);
        let mut gauges = match self.shared.agent_gauges.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let (spooled_bytes, spooled_requests) = self
            .shared
            .spool
            .get()
            .map_or((0, 0), |spool| spool.occupancy());
        gauges.extend([
            (semconv::WIRELENS_EXPORT_SPOOL_BYTES, to_i64(spooled_bytes)),
            (
                semconv::WIRELENS_EXPORT_SPOOL_REQUESTS,
                to_i64(spooled_requests),
            ),
            (
                semconv::WIRELENS_EXPORT_QUEUE_OBSERVATIONS,
                to_i64(self.queued),
            ),
        ]);
        aggregator.set_agent_gauges(&gauges);
        let mut request = aggregator.export_request(crate::unix_now_ns());
        // Sources with their own cumulative state (the JVM reader) go out as they are.
        request
            .resource_metrics
            .extend(self.shared.source_metrics());
        request
    }
}

/// The next question from a reader; pending forever without one (or once all are gone).
async fn recv_read(
    reads: &mut Option<mpsc::Receiver<oneshot::Sender<ExportMetricsServiceRequest>>>,
) -> Option<oneshot::Sender<ExportMetricsServiceRequest>> {
    match reads {
        Some(rx) => match rx.recv().await {
            Some(answer) => Some(answer),
            None => {
                *reads = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// Logs a failure once per streak of failures, and the recovery.
struct Streak {
    signal: &'static str,
    endpoint: String,
    failing: bool,
    lost: u64,
}

impl Streak {
    fn new(signal: &'static str, endpoint: String) -> Self {
        Self {
            signal,
            endpoint,
            failing: false,
            lost: 0,
        }
    }

    fn failed(&mut self, error: &str, lost: u64, what: &str) {
        let (signal, endpoint) = (self.signal, &self.endpoint);
        if self.failing {
            tracing::debug!("otlp {signal} export to {endpoint} failed again: {error}");
        } else {
            tracing::warn!("otlp {signal} export to {endpoint} failed: {error}; {lost} {what}");
        }
        self.failing = true;
        self.lost += lost;
    }

    fn succeeded(&mut self, what: &str) {
        if self.failing {
            let (signal, endpoint, lost) = (self.signal, &self.endpoint, self.lost);
            tracing::info!(
                "otlp {signal} export to {endpoint} recovered; {lost} {what} while it failed"
            );
        }
        self.failing = false;
        self.lost = 0;
    }
}

async fn traces_worker(
    config: SignalConfig,
    policy: RetryPolicy,
    spool: Arc<Spool>,
    shared: Arc<Shared>,
) {
    let counters = &shared.counters;
    let mut streak = Streak::new("traces", config.endpoint.to_string());
    let transport = Transport::new(&config);
    if let Err(e) = &transport {
        tracing::error!(
            "otlp traces exporter for {} cannot start: {}; spans are dropped",
            config.endpoint,
            one_line(e)
        );
    }
    // Tries of the same request since the backend last answered.
    let mut down_for = 0u32;
    while let Some(item) = spool.pop().await {
        let n = item.count;
        let result = match &transport {
            Ok(t) => Some(t.export_traces(&item.request, &policy).await),
            Err(_) => None,
        };
        match result {
            Some(Ok(partial)) => {
                sub(&counters.spans_pending, n);
                let rejected = partial.rejected.min(n);
                add(&counters.spans_exported, n - rejected);
                add(&counters.spans_dropped, rejected);
                if rejected > 0 {
                    tracing::warn!(
                        "otlp traces export to {} partly rejected: {} spans: {}",
                        config.endpoint,
                        rejected,
                        partial.message
                    );
                }
                streak.succeeded("spans dropped");
                down_for = 0;
            }
            Some(Err(e)) if e.is_transient() && !spool.is_closed() => {
                // Down or stalled: keep the request (it goes out first when the backend is
                // back) and wait before the next try.
                add(&counters.export_failures, 1);
                let (_, queued) = spool.depth();
                streak.failed(&one_line(&e), queued + n, "spans spooled, not lost yet");
                let dropped = spool.push_front(item);
                sub(&counters.spans_pending, dropped);
                add(&counters.spans_dropped, dropped);
                let wait = policy.backoff(down_for.min(16)).min(SPOOL_RETRY_MAX_WAIT);
                down_for = down_for.saturating_add(1);
                tokio::time::sleep(wait).await;
            }
            Some(Err(e)) => {
                sub(&counters.spans_pending, n);
                add(&counters.export_failures, 1);
                add(&counters.spans_dropped, n);
                streak.failed(&one_line(&e), n, "spans dropped");
            }
            None => {
                sub(&counters.spans_pending, n);
                add(&counters.export_failures, 1);
                add(&counters.spans_dropped, n);
            }
        }
    }
}

async fn metrics_worker(
    config: SignalConfig,
    policy: RetryPolicy,
    mut rx: mpsc::Receiver<ExportMetricsServiceRequest>,
    shared: Arc<Shared>,
) {
    let counters = &shared.counters;
    let mut streak = Streak::new("metrics", config.endpoint.to_string());
    let transport = Transport::new(&config);
    if let Err(e) = &transport {
        tracing::error!(
            "otlp metrics exporter for {} cannot start: {}; metrics are not exported",
            config.endpoint,
            one_line(e)
        );
    }
    while let Some(request) = rx.recv().await {
        let points = point_count(&request);
        let result = match &transport {
            Ok(t) => t.export_metrics(&request, &policy).await,
            Err(_) => {
                add(&counters.export_failures, 1);
                continue;
            }
        };
        match result {
            Ok(partial) => {
                add(&counters.metrics_exports, 1);
                add(
                    &counters.metric_points,
                    points.saturating_sub(partial.rejected),
                );
                if partial.rejected > 0 {
                    tracing::warn!(
                        "otlp metrics export to {} partly rejected: {} points: {}",
                        config.endpoint,
                        partial.rejected,
                        partial.message
                    );
                }
                streak.succeeded("points not delivered (cumulative, resent since)");
            }
            Err(e) => {
                add(&counters.export_failures, 1);
                streak.failed(
                    &one_line(&e),
                    points,
                    "points not delivered (cumulative: resent next interval)",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
