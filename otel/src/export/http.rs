//! OTLP/HTTP transport: binary protobuf bodies POSTed with reqwest (rustls over ring).

use std::io::Write as _;
use std::time::Duration;

use flate2::Compression as Level;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use reqwest::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use thiserror::Error;

use super::config::{Compression, SignalConfig};
use super::retry::Retryable;
use super::{PartialSuccess, USER_AGENT};

const PROTOBUF: &str = "application/x-protobuf";
/// Longest error text kept from a response body.
const MAX_ERROR_TEXT: usize = 256;

/// A failed HTTP export.
#[derive(Debug, Error)]
pub enum HttpError {
    /// The HTTP client could not be built (TLS setup).
    #[error("http client setup failed")]
    Client(#[source] reqwest::Error),
    /// A configured header is not a valid HTTP header.
    #[error("invalid http header {name:?}")]
    Header {
        /// The header name.
        name: String,
    },
    /// Compressing the body failed.
    #[error("gzip of the request body failed")]
    Gzip(#[source] std::io::Error),
    /// No response: connection refused or reset, timeout, TLS failure.
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// A non-2xx response.
    #[error("http status {status}{}", if .message.is_empty() { String::new() } else { format!(": {}", .message) })]
    Status {
        /// The status code.
        status: u16,
        /// The server's message (from its `google.rpc.Status` body, or the body's text).
        message: String,
        /// The server's `Retry-After`, in seconds.
        retry_after: Option<Duration>,
    },
}

impl Retryable for HttpError {
    /// 429, 502, 503 and 504 (the OTLP spec's list) and failures to get a response at all.
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            Self::Request(_) => true,
            Self::Client(_) | Self::Header { .. } | Self::Gzip(_) => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP error responses (only the fields we read).
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

/// Sends one signal to one OTLP/HTTP URL.
#[derive(Clone, Debug)]
pub struct HttpExporter {
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    gzip: bool,
}

impl HttpExporter {
    /// A client for `config`; nothing is connected until the first export.
    pub fn new(config: &SignalConfig) -> Result<Self, HttpError> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(USER_AGENT);
        if let Some(ca) = &config.tls.ca {
            for cert in reqwest::Certificate::from_pem_bundle(&ca.0).map_err(HttpError::Client)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some((cert, key)) = &config.tls.identity {
            let both = [cert.0.as_slice(), b"\n", key.0.as_slice()].concat();
            builder =
                builder.identity(reqwest::Identity::from_pem(&both).map_err(HttpError::Client)?);
        }
        let client = builder.build().map_err(HttpError::Client)?;
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let bad = || HttpError::Header { name: name.clone() };
            let key = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(value).map_err(|_| bad())?;
            headers.insert(key, value);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
        let gzip = config.compression == Some(Compression::Gzip);
        if gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        Ok(Self {
            client,
            url: config.endpoint.clone(),
            headers,
            gzip,
        })
    }

    /// The request body: the encoded message, gzipped if configured.
    pub fn body(&self, message: &impl Message) -> Result<Vec<u8>, HttpError> {
        let raw = message.encode_to_vec();
        if !self.gzip {
            return Ok(raw);
        }
        let mut encoder = GzEncoder::new(Vec::with_capacity(raw.len() / 4), Level::fast());
        encoder.write_all(&raw).map_err(HttpError::Gzip)?;
        encoder.finish().map_err(HttpError::Gzip)
    }

    async fn post(&self, body: Vec<u8>) -> Result<Vec<u8>, HttpError> {
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(HttpError::Request)?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let is_protobuf = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(PROTOBUF));
        let bytes = response.bytes().await.map_err(HttpError::Request)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let message = match RpcStatus::decode(bytes.as_ref()) {
            Ok(s) if is_protobuf => s.message,
            _ => String::from_utf8_lossy(&bytes).trim().to_owned(),
        };
        let message = message.chars().take(MAX_ERROR_TEXT).collect();
        Err(HttpError::Status {
            status: status.as_u16(),
            message,
            retry_after,
        })
    }

    /// POST an encoded `ExportTraceServiceRequest` (from [`body`](Self::body)).
    pub async fn export_traces(&self, body: Vec<u8>) -> Result<PartialSuccess, HttpError> {
        let answer = self.post(body).await?;
        Ok(ExportTraceServiceResponse::decode(answer.as_slice())
            .ok()
            .and_then(|r| r.partial_success)
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_spans, p.error_message)
            }))
    }

    /// POST an encoded `ExportMetricsServiceRequest` (from [`body`](Self::body)).
    pub async fn export_metrics(&self, body: Vec<u8>) -> Result<PartialSuccess, HttpError> {
        let answer = self.post(body).await?;
        Ok(ExportMetricsServiceResponse::decode(answer.as_slice())
            .ok()
            .and_then(|r| r.partial_success)
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_data_points, p.error_message)
            }))
    }

    /// POST an encoded `ExportLogsServiceRequest` (from [`body`](Self::body)).
    pub async fn export_logs(&self, body: Vec<u8>) -> Result<PartialSuccess, HttpError> {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
        let answer = self.post(body).await?;
        Ok(ExportLogsServiceResponse::decode(answer.as_slice())
            .ok()
            .and_then(|r| r.partial_success)
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_log_records, p.error_message)
            }))
    }

    /// POST an encoded `ExportProfilesServiceRequest` (from [`body`](Self::body)).
    pub async fn export_profiles(&self, body: Vec<u8>) -> Result<PartialSuccess, HttpError> {
        use opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceResponse;
        let answer = self.post(body).await?;
        Ok(ExportProfilesServiceResponse::decode(answer.as_slice())
            .ok()
            .and_then(|r| r.partial_success)
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_profiles, p.error_message)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses() {
        let status = |s| HttpError::Status {
            status: s,
            message: String::new(),
            retry_after: None,
        };
        for s in [429, 502, 503, 504] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 500] {
            assert!(!status(s).is_retryable(), "{s}");
        }
        assert_eq!(status(400).to_string(), "http status 400");
    }
}
