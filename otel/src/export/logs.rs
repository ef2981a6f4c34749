//! Logs transport: rows from the script source, batched into OTLP log requests, spooled, and
//! sent over gRPC or HTTP with the traces exporter's retry and spool rules.
//!
//! ```text
//!  script threads ──try_send──▶ [queue: max_queue_size] ──▶ batcher task ──▶ [spool: bytes] ──▶ logs worker ──▶ backend
//!   (never block; a full queue counts a drop)               (every schedule_delay,  (oldest dropped    (retry; put back
//!                                                            or a full batch)        past the limit)    while it is down)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use super::config::{Protocol, SignalConfig};
use super::grpc::GrpcExporter;
use super::http::HttpExporter;
use super::retry::{RetryPolicy, retry};
use super::spool::{Spool, Spooled};
use super::{ExportError, SPOOL_RETRY_MAX_WAIT, Streak, one_line};
use crate::logs::{ScriptRow, logs_request, record_count};

/// How the logs exporter batches and spools (from the same variables as traces:
/// [`super::ExportConfig`]).
#[derive(Clone, Copy, Debug)]
pub struct LogsSettings {
    /// Longest a row waits for its batch.
    pub schedule_delay: Duration,
    /// Rows queued between the sources and the batcher.
    pub max_queue_size: usize,
    /// Rows per export request.
    pub max_export_batch_size: usize,
    /// Encoded bytes of requests kept while the backend is down.
    pub spool_bytes: usize,
    /// Retries of one export call.
    pub retry: RetryPolicy,
}

impl LogsSettings {
    /// The settings of `config` (the traces exporter's batching, queue and spool values).
    pub fn from_export(config: &super::ExportConfig) -> Self {
        Self {
            schedule_delay: config.schedule_delay,
            max_queue_size: config.max_queue_size,
            max_export_batch_size: config.max_export_batch_size,
            spool_bytes: config.spool_bytes,
            retry: config.retry,
        }
    }
}

/// What the logs exporter did, in log records.
#[derive(Debug, Default)]
pub struct LogExportStats {
    /// Records the backend accepted.
    pub exported: AtomicU64,
    /// Records lost: queue full, spool full, export failed or rejected.
    pub dropped: AtomicU64,
    /// Export calls that failed after their retries.
    pub failures: AtomicU64,
}

/// The sources' end of the queue: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct LogsSender {
    tx: mpsc::Sender<ScriptRow>,
    stats: Arc<LogExportStats>,
}

impl LogsSender {
    /// Queue `row`; false (and counted as dropped) when the queue is full.
    pub fn try_send(&self, row: ScriptRow) -> bool {
        match self.tx.try_send(row) {
            Ok(()) => true,
            Err(_) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The exporter's counters.
    pub fn stats(&self) -> Arc<LogExportStats> {
        Arc::clone(&self.stats)
    }
}

/// The running exporter's tasks.
#[derive(Debug)]
pub struct LogsHandle {
    tasks: Vec<JoinHandle<()>>,
}

impl LogsHandle {
    /// Wait up to `timeout` for what is queued to go out (call after dropping every sender).
    pub async fn shutdown(self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                tracing::warn!("otlp logs export did not finish within {timeout:?}: abandoned");
            }
        }
    }
}

enum Client {
    Grpc(GrpcExporter),
    Http(HttpExporter),
}

impl Client {
    async fn export(
        &self,
        request: &ExportLogsServiceRequest,
        policy: &RetryPolicy,
    ) -> Result<super::PartialSuccess, ExportError> {
        match self {
            Self::Grpc(c) => retry(policy, || c.export_logs(request))
                .await
                .map_err(Into::into),
            Self::Http(c) => {
                let body = c.body(request)?;
                retry(policy, || c.export_logs(body.clone()))
                    .await
                    .map_err(Into::into)
            }
        }
    }
}

/// Start the logs exporter on `runtime`; rows without a process go under `host`. Nothing here
/// touches the network.
pub fn spawn(
    config: &SignalConfig,
    settings: LogsSettings,
    host: Resource,
    runtime: &tokio::runtime::Handle,
) -> Result<(LogsSender, LogsHandle), ExportError> {
    let _guard = runtime.enter();
    let client = match config.protocol {
        Protocol::Grpc => Client::Grpc(GrpcExporter::new(config)?),
        Protocol::HttpProtobuf => Client::Http(HttpExporter::new(config)?),
    };
    let (tx, rx) = mpsc::channel(settings.max_queue_size.max(1));
    let stats = Arc::new(LogExportStats::default());
    let spool = Arc::new(Spool::<ExportLogsServiceRequest>::new(settings.spool_bytes));
    let batcher = runtime.spawn(batch(
        rx,
        settings,
        host,
        Arc::clone(&spool),
        Arc::clone(&stats),
    ));
    let worker = runtime.spawn(send(
        client,
        config.endpoint.to_string(),
        settings.retry,
        spool,
        Arc::clone(&stats),
    ));
    Ok((
        LogsSender { tx, stats },
        LogsHandle {
            tasks: vec![batcher, worker],
        },
    ))
}

/// Rows into requests in the spool, every `schedule_delay` or full batch; closes the spool
/// when every sender is gone.
async fn batch(
    mut rx: mpsc::Receiver<ScriptRow>,
    settings: LogsSettings,
    host: Resource,
    spool: Arc<Spool<ExportLogsServiceRequest>>,
    stats: Arc<LogExportStats>,
) {
    let max = settings.max_export_batch_size.max(1);
    let mut rows = Vec::with_capacity(max);
    let delay = settings.schedule_delay;
    let mut flush = interval_at(Instant::now() + delay, delay);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let push = |rows: &mut Vec<ScriptRow>| {
        if rows.is_empty() {
            return;
        }
        let request = logs_request(rows, &host);
        let dropped = spool.push(Spooled::new(request, rows.len() as u64));
        stats.dropped.fetch_add(dropped, Ordering::Relaxed);
        rows.clear();
    };
    loop {
        tokio::select! {
            _ = flush.tick() => push(&mut rows),
            received = rx.recv() => match received {
                Some(row) => {
                    rows.push(row);
                    if rows.len() >= max {
                        push(&mut rows);
                    }
                }
                None => break,
            },
        }
    }
    push(&mut rows);
    spool.close();
}

/// Take requests off the spool and export them; a transient failure puts the request back.
async fn send(
    client: Client,
    endpoint: String,
    policy: RetryPolicy,
    spool: Arc<Spool<ExportLogsServiceRequest>>,
    stats: Arc<LogExportStats>,
) {
    let mut streak = Streak::new("logs", endpoint.clone());
    let mut down_for = 0u32;
    while let Some(item) = spool.pop().await {
        let n = record_count(&item.request);
        match client.export(&item.request, &policy).await {
            Ok(partial) => {
                let rejected = partial.rejected.min(n);
                stats.exported.fetch_add(n - rejected, Ordering::Relaxed);
                stats.dropped.fetch_add(rejected, Ordering::Relaxed);
                if rejected > 0 {
                    tracing::warn!(
                        "otlp logs export to {endpoint} partly rejected: {rejected} records: {}",
                        partial.message
                    );
                }
                streak.succeeded("log records dropped");
                down_for = 0;
            }
            Err(e) if e.is_transient() && !spool.is_closed() => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                let (_, queued) = spool.depth();
                streak.failed(
                    &one_line(&e),
                    queued + n,
                    "log records spooled, not lost yet",
                );
                let dropped = spool.push_front(item);
                stats.dropped.fetch_add(dropped, Ordering::Relaxed);
                let wait = policy.backoff(down_for.min(16)).min(SPOOL_RETRY_MAX_WAIT);
                down_for = down_for.saturating_add(1);
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                stats.dropped.fetch_add(n, Ordering::Relaxed);
                streak.failed(&one_line(&e), n, "log records dropped");
            }
        }
    }
}
