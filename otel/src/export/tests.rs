//! The exporter end to end, against in-process OTLP receivers on 127.0.0.1: a tonic gRPC server
//! and a minimal hand-rolled HTTP/1 server.

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::read::GzDecoder;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::metrics::v1::{Metric, ScopeMetrics, metric::Data};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::codec::CompressionEncoding;
use url::Url;

use super::*;
use crate::test_util::{attr_map, client_obs, process, server_obs};

// ---------------------------------------------------------------------------------------------
// Receivers

/// What a receiver got: decoded requests and the tenant header of each.
#[derive(Debug, Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    tenants: Vec<String>,
    paths: Vec<String>,
}

type Shared<T> = Arc<Mutex<T>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, Default)]
struct GrpcReceiver(Shared<Received>);

impl GrpcReceiver {
    fn tenant<T>(request: &tonic::Request<T>) -> String {
        request
            .metadata()
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = lock(&self.0);
        got.tenants.push(Self::tenant(&request));
        got.traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let mut got = lock(&self.0);
        got.tenants.push(Self::tenant(&request));
        got.metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn start_grpc() -> (SocketAddr, Shared<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind grpc receiver");
    let addr = listener.local_addr().expect("grpc receiver address");
    let receiver = GrpcReceiver::default();
    let got = Arc::clone(&receiver.0);
    let server = tonic::transport::Server::builder()
        .add_service(
            TraceServiceServer::new(receiver.clone()).accept_compressed(CompressionEncoding::Gzip),
        )
        .add_service(
            MetricsServiceServer::new(receiver).accept_compressed(CompressionEncoding::Gzip),
        )
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(async move { server.await.expect("grpc receiver") });
    (addr, got)
}

/// An HTTP/1.1 OTLP receiver answering each request with the next status of `script` (200 once
/// it runs out).
async fn start_http(script: Vec<u16>) -> (SocketAddr, Shared<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind http receiver");
    let addr = listener.local_addr().expect("http receiver address");
    let got: Shared<Received> = Arc::default();
    let script = Arc::new(Mutex::new(script.into_iter()));
    let received = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (got, script) = (Arc::clone(&received), Arc::clone(&script));
            tokio::spawn(async move { serve_http(stream, got, script).await });
        }
    });
    (addr, got)
}

async fn serve_http(
    mut stream: TcpStream,
    got: Shared<Received>,
    script: Arc<Mutex<std::vec::IntoIter<u16>>>,
) {
    let mut buf = Vec::new();
    loop {
        // Read one request head.
        let (head_len, path, length, gzip, tenant) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).into_owned())
                };
                let length = header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                assert_eq!(
                    header("content-type").as_deref(),
                    Some("application/x-protobuf")
                );
                let gzip = header("content-encoding").as_deref() == Some("gzip");
                let path = req.path.unwrap_or_default().to_owned();
                break (
                    n,
                    path,
                    length,
                    gzip,
                    header("x-tenant").unwrap_or_default(),
                );
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        while buf.len() < head_len + length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let mut body: Vec<u8> = buf[head_len..head_len + length].to_vec();
        buf.drain(..head_len + length);
        if gzip {
            let mut plain = Vec::new();
            GzDecoder::new(body.as_slice())
                .read_to_end(&mut plain)
                .expect("gzip body");
            body = plain;
        }
        let status = lock(&script).next().unwrap_or(200);
        if status == 200 {
            let mut r = lock(&got);
            match path.as_str() {
                "/v1/traces" => r
                    .traces
                    .push(ExportTraceServiceRequest::decode(body.as_slice()).expect("traces body")),
                "/v1/metrics" => r.metrics.push(
                    ExportMetricsServiceRequest::decode(body.as_slice()).expect("metrics body"),
                ),
                other => panic!("unexpected path {other}"),
            }
            r.tenants.push(tenant);
            r.paths.push(path);
        }
        let answer = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n"
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn signal(url: &str, protocol: Protocol, gzip: bool) -> SignalConfig {
    SignalConfig {
        endpoint: Url::parse(url).expect("test url"),
        protocol,
        headers: vec![("x-tenant".into(), "t1".into())],
        timeout: Duration::from_secs(5),
        compression: gzip.then_some(Compression::Gzip),
        tls: crate::export::TlsConfig::default(),
    }
}

fn config(traces: Option<SignalConfig>, metrics: Option<SignalConfig>) -> ExportConfig {
    ExportConfig {
        traces,
        metrics,
        metric_interval: Duration::from_secs(3600),
        schedule_delay: Duration::from_millis(20),
        max_queue_size: 64,
        max_export_batch_size: 2,
        max_metric_series: 100,
        spool_bytes: 1 << 20,
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            max_elapsed: Duration::from_secs(2),
        },
        mapping: MappingOptions::default(),
        sampler: crate::export::Sampler::default(),
        resource_attributes: Vec::new(),
    }
}

fn observations() -> Vec<Observation> {
    vec![
        server_obs(1, "GET", "/a", Some(200)),
        server_obs(1, "POST", "/b", Some(500)),
        client_obs(2, "GET", "/c", Some(200)),
    ]
}

/// A port with nothing listening.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address")
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Spans per pid across all requests, and the total.
fn spans_by_pid(requests: &[ExportTraceServiceRequest]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for rs in requests.iter().flat_map(|r| &r.resource_spans) {
        let attrs = attr_map(&rs.resource.as_ref().expect("resource").attributes);
        let pid = attrs["process.pid"].clone();
        let n: usize = rs.scope_spans.iter().map(|s| s.spans.len()).sum();
        match out.iter_mut().find(|(p, _)| *p == pid) {
            Some(slot) => slot.1 += n,
            None => out.push((pid, n)),
        }
    }
    out.sort();
    out
}

fn metric_names(request: &ExportMetricsServiceRequest) -> Vec<String> {
    let mut names: Vec<String> = request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| m.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

async fn deliver_all(traces: SignalConfig, metrics: SignalConfig, got: &Shared<Received>) {
    let (sender, handle) = spawn(
        config(Some(traces), Some(metrics)),
        process(99),
        &tokio::runtime::Handle::current(),
    );
    for obs in observations() {
        assert!(sender.try_send(obs));
    }
    handle.set_agent_counters(vec![("wirelens.events", 7)]);
    // A source's metrics replace its previous ones and go out as they are.
    let source = |name: &str| ResourceMetrics {
        scope_metrics: vec![ScopeMetrics {
            metrics: vec![Metric {
                name: name.into(),
                ..Metric::default()
            }],
            ..ScopeMetrics::default()
        }],
        ..ResourceMetrics::default()
    };
    handle.set_source_metrics("jvm", vec![source("jvm.replaced")]);
    handle
        .monitor()
        .set_source_metrics("jvm", vec![source("jvm.memory.used")]);
    let stats = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(stats.spans_exported, 3, "{stats:?}");
    assert_eq!(stats.spans_dropped, 0, "{stats:?}");
    assert_eq!(stats.export_failures, 0, "{stats:?}");
    assert_eq!(stats.metrics_exports, 1, "{stats:?}");
    assert!(stats.metric_points >= 3, "{stats:?}");

    let got = lock(got);
    assert_eq!(
        spans_by_pid(&got.traces),
        [("1".into(), 2), ("2".into(), 1)]
    );
    assert_eq!(got.metrics.len(), 1);
    let names = metric_names(&got.metrics[0]);
    for name in [
        "http.client.request.duration",
        "http.server.request.duration",
        "wirelens.events",
        "wirelens.export.spans",
        "jvm.memory.used",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    assert!(!names.iter().any(|n| n == "jvm.replaced"), "{names:?}");
    let server = got.metrics[0]
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .find(|m| m.name == "http.server.request.duration")
        .expect("server histogram");
    match &server.data {
        Some(Data::Histogram(h)) => assert_eq!(h.data_points.len(), 2),
        other => panic!("not a histogram: {other:?}"),
    }
    assert!(got.tenants.iter().all(|t| t == "t1"), "{:?}", got.tenants);
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_delivers_traces_and_metrics() {
    let (addr, got) = start_grpc().await;
    let url = format!("http://{addr}");
    deliver_all(
        signal(&url, Protocol::Grpc, true),
        signal(&url, Protocol::Grpc, false),
        &got,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_delivers_traces_and_metrics() {
    let (addr, got) = start_http(Vec::new()).await;
    deliver_all(
        signal(
            &format!("http://{addr}/v1/traces"),
            Protocol::HttpProtobuf,
            true,
        ),
        signal(
            &format!("http://{addr}/v1/metrics"),
            Protocol::HttpProtobuf,
            false,
        ),
        &got,
    )
    .await;
    let paths = lock(&got).paths.clone();
    assert!(paths.contains(&"/v1/traces".to_owned()) && paths.contains(&"/v1/metrics".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_retries_unavailable() {
    let (addr, got) = start_http(vec![503, 429]).await;
    let traces = signal(
        &format!("http://{addr}/v1/traces"),
        Protocol::HttpProtobuf,
        false,
    );
    let (sender, handle) = spawn(
        config(Some(traces), None),
        process(99),
        &tokio::runtime::Handle::current(),
    );
    assert!(sender.try_send(server_obs(1, "GET", "/", Some(200))));
    let stats = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (stats.spans_exported, stats.export_failures),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(lock(&got).traces.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_permanent_error_is_not_retried() {
    let (addr, got) = start_http(vec![400, 200]).await;
    let traces = signal(
        &format!("http://{addr}/v1/traces"),
        Protocol::HttpProtobuf,
        false,
    );
    let (sender, handle) = spawn(
        config(Some(traces), None),
        process(99),
        &tokio::runtime::Handle::current(),
    );
    assert!(sender.try_send(server_obs(1, "GET", "/", Some(200))));
    let stats = handle.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        (stats.spans_dropped, stats.export_failures),
        (1, 1),
        "{stats:?}"
    );
    assert!(lock(&got).traces.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_endpoints_count_failures_and_shut_down_in_time() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let addr = closed_port().await;
        let grpc = protocol == Protocol::Grpc;
        let (t, m) = if grpc {
            ("", "")
        } else {
            ("/v1/traces", "/v1/metrics")
        };
        let traces = signal(&format!("http://{addr}{t}"), protocol, false);
        let metrics = signal(&format!("http://{addr}{m}"), protocol, false);
        let (sender, handle) = spawn(
            config(Some(traces), Some(metrics)),
            process(99),
            &tokio::runtime::Handle::current(),
        );
        for obs in observations() {
            assert!(sender.try_send(obs));
        }
        wait_for("a failed export", || handle.stats().export_failures > 0).await;
        let started = Instant::now();
        let stats = handle.shutdown(Duration::from_secs(2)).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{protocol:?}: shutdown took {:?}",
            started.elapsed()
        );
        assert_eq!(stats.spans_exported, 0, "{protocol:?}: {stats:?}");
        assert_eq!(stats.spans_dropped, 3, "{protocol:?}: {stats:?}");
        assert!(stats.export_failures >= 2, "{protocol:?}: {stats:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_backend_does_not_hold_shutdown() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut traces = signal(
        &format!("http://{addr}/v1/traces"),
        Protocol::HttpProtobuf,
        false,
    );
    traces.timeout = Duration::from_secs(30);
    let (sender, handle) = spawn(
        config(Some(traces), None),
        process(99),
        &tokio::runtime::Handle::current(),
    );
    for obs in observations() {
        assert!(sender.try_send(obs));
    }
    let started = Instant::now();
    let stats = handle.shutdown(Duration::from_millis(300)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert_eq!(
        (stats.spans_exported, stats.spans_dropped),
        (0, 3),
        "{stats:?}"
    );
}

#[test]
fn full_queue_refuses_without_blocking() {
    // A current-thread runtime runs nothing until blocked on, so the queue fills deterministically;
    // try_send is called from this plain thread, outside any runtime.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut cfg = config(None, None);
    cfg.max_queue_size = 2;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let url = format!("http://{closed}/v1/traces");
    cfg.traces = Some(signal(&url, Protocol::HttpProtobuf, false));
    let (sender, handle) = spawn(cfg, process(99), runtime.handle());
    let accepted: Vec<bool> = observations()
        .into_iter()
        .chain(observations())
        .map(|obs| sender.clone().try_send(obs))
        .collect();
    assert_eq!(accepted, [true, true, false, false, false, false]);
    let stats = handle.stats();
    assert_eq!((stats.queue_full, stats.spans_dropped), (4, 4));
    let stats = runtime.block_on(handle.shutdown(Duration::from_millis(500)));
    assert_eq!(stats.spans_dropped, 6, "{stats:?}");
}
