//! The Prometheus endpoint: `/metrics` for scrapers, `/healthz` and `/readyz` for probes.
//!
//! A sink beside OTLP: it reads the exporter's aggregation ([`MetricsReader`]), the same
//! cumulative request an OTLP metrics export carries, and renders it in the scraper's text
//! format (`wirelens_otel::prometheus`). Nothing here touches the reader thread. `/healthz` is
//! 200 while the agent runs; `/readyz` is 503 until the probes are attached and the reader
//! runs ([`Health::set_ready`]), then 200.

pub mod config;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use wirelens_otel::export::MetricsReader;
use wirelens_otel::prometheus::{Format, render};

pub use config::PrometheusConfig;

/// Tells the endpoint the agent is ready (probes attached, reader running).
#[derive(Clone, Debug, Default)]
pub struct Health {
    ready: Arc<AtomicBool>,
}

impl Health {
    /// From now on `/readyz` answers 200.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct Endpoint {
    reader: MetricsReader,
    health: Health,
}

/// Listen on `config.listen` now (so a taken port fails the start) and serve on `runtime`.
/// Returns the address bound (the port, when 0 was asked) and the readiness switch.
pub fn serve(
    config: &PrometheusConfig,
    reader: MetricsReader,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<(SocketAddr, Health)> {
    let listener = std::net::TcpListener::bind(config.listen).with_context(|| {
        format!(
            "cannot listen on {} for the Prometheus endpoint (--prometheus-listen)",
            config.listen
        )
    })?;
    let bound = listener
        .local_addr()
        .context("cannot read the Prometheus endpoint's address")?;
    listener
        .set_nonblocking(true)
        .context("cannot set up the Prometheus endpoint's socket")?;
    let listener = {
        let _entered = runtime.enter();
        tokio::net::TcpListener::from_std(listener)
            .context("cannot set up the Prometheus endpoint's socket")?
    };
    let health = Health::default();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(Endpoint {
            reader,
            health: health.clone(),
        });
    runtime.spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(%err, "the Prometheus endpoint stopped");
        }
    });
    Ok((bound, health))
}

async fn metrics(State(endpoint): State<Endpoint>, headers: HeaderMap) -> Response {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let Some(request) = endpoint.reader.read().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metrics not available\n").into_response();
    };
    // Many series take a while to write: off the async worker.
    match tokio::task::spawn_blocking(move || render(&request, format)).await {
        Ok(text) => ([(header::CONTENT_TYPE, format.content_type())], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "rendering failed\n").into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoint): State<Endpoint>) -> (StatusCode, &'static str) {
    if endpoint.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "probes not attached yet\n")
    }
}
