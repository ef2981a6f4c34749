//! Profiles transport: a queue of one request from the profiler thread to an export task,
//! sent over gRPC or HTTP with the usual retries.
//!
//! ```text
//!  profiler thread ──try_send──▶ [queue: 1 request] ──▶ profiles task ──▶ backend (retry)
//!   (never blocks; a full queue drops the new profile and counts its samples)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::{Protocol, SignalConfig};
use super::grpc::GrpcExporter;
use super::http::HttpExporter;
use super::retry::{RetryPolicy, retry};
use super::{ExportError, one_line};
use crate::profiles::sample_count;

/// Profile requests waiting for the task; a profile finished while one waits is dropped.
const QUEUE: usize = 1;

/// What the profiles exporter did, in samples.
#[derive(Debug, Default)]
pub struct ProfileExportStats {
    /// Samples in requests the backend accepted.
    pub exported: AtomicU64,
    /// Samples dropped: queue full or export failed for good.
    pub dropped: AtomicU64,
    /// Export calls that failed for good.
    pub failures: AtomicU64,
}

/// The profiler's end of the queue.
#[derive(Clone)]
pub struct ProfilesSender {
    tx: mpsc::Sender<ExportProfilesServiceRequest>,
    stats: Arc<ProfileExportStats>,
}

impl ProfilesSender {
    /// Queue `request` without waiting; false (and its samples counted as dropped) when full.
    pub fn try_send(&self, request: ExportProfilesServiceRequest) -> bool {
        let n = sample_count(&request);
        match self.tx.try_send(request) {
            Ok(()) => true,
            Err(_) => {
                self.stats.dropped.fetch_add(n, Ordering::Relaxed);
                false
            }
        }
    }

    /// The exporter's counters.
    pub fn stats(&self) -> Arc<ProfileExportStats> {
        self.stats.clone()
    }
}

enum Client {
    Grpc(GrpcExporter),
    Http(HttpExporter),
}

impl Client {
    async fn export(&self, request: &ExportProfilesServiceRequest) -> Result<(), ExportError> {
        match self {
            Self::Grpc(c) => c.export_profiles(request).await.map(drop)?,
            Self::Http(c) => {
                let body = c.body(request)?;
                c.export_profiles(body).await.map(drop)?
            }
        }
        Ok(())
    }
}

/// Start the export task on `runtime`. The task ends when every sender is dropped and the
/// queue is empty.
pub fn spawn(
    config: &SignalConfig,
    policy: RetryPolicy,
    runtime: &tokio::runtime::Handle,
) -> Result<(ProfilesSender, JoinHandle<()>), ExportError> {
    let _guard = runtime.enter();
    let client = match config.protocol {
        Protocol::Grpc => Client::Grpc(GrpcExporter::new(config)?),
        Protocol::HttpProtobuf => Client::Http(HttpExporter::new(config)?),
    };
    let (tx, mut rx) = mpsc::channel::<ExportProfilesServiceRequest>(QUEUE);
    let stats = Arc::new(ProfileExportStats::default());
    let task_stats = stats.clone();
    let handle = runtime.spawn(async move {
        // Logged once per failure streak (a backend without profiles support fails every time).
        let mut failing = false;
        while let Some(request) = rx.recv().await {
            let n = sample_count(&request);
            match retry(&policy, || client.export(&request)).await {
                Ok(()) => {
                    task_stats.exported.fetch_add(n, Ordering::Relaxed);
                    if failing {
                        tracing::info!("profile export works again");
                        failing = false;
                    }
                }
                Err(e) => {
                    task_stats.failures.fetch_add(1, Ordering::Relaxed);
                    task_stats.dropped.fetch_add(n, Ordering::Relaxed);
                    if !failing {
                        tracing::warn!(error = %one_line(&e), samples = n, "profile export failed (logged once until it works again)");
                        failing = true;
                    }
                }
            }
        }
    });
    Ok((ProfilesSender { tx, stats }, handle))
}

/// Wait up to `timeout` for the task to send what is queued (call after dropping the senders).
pub async fn shutdown(handle: JoinHandle<()>, timeout: Duration) {
    if tokio::time::timeout(timeout, handle).await.is_err() {
        tracing::warn!("profile export still running at shutdown: abandoned");
    }
}
