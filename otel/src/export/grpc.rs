//! OTLP/gRPC transport: tonic clients over one lazily connected channel per signal.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, logs_service_client::LogsServiceClient,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, metrics_service_client::MetricsServiceClient,
};
use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesServiceRequest, profiles_service_client::ProfilesServiceClient,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use thiserror::Error;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Status};

use super::config::{Compression, SignalConfig};
use super::retry::Retryable;
use super::{PartialSuccess, USER_AGENT};

/// A failed gRPC export.
#[derive(Debug, Error)]
pub enum GrpcError {
    /// The endpoint could not be turned into a channel.
    #[error("invalid grpc endpoint {endpoint}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// A configured header is not valid metadata.
    #[error("invalid grpc metadata {name:?}")]
    Metadata {
        /// The header name.
        name: String,
    },
    /// The server (or the channel) answered with a non-OK status.
    #[error("grpc status {code:?}: {message}{cause}")]
    Status {
        /// The status code.
        code: Code,
        /// The status message.
        message: String,
        /// The causes behind a status made by the channel (`: connection refused`), or empty.
        cause: String,
    },
    /// No answer within the export timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl Retryable for GrpcError {
    /// The codes the OTLP spec lists as retryable (`RESOURCE_EXHAUSTED` included: the spec
    /// retries it when the server says when to, and a short backoff is harmless otherwise).
    fn is_retryable(&self) -> bool {
        match self {
            Self::Status { code, .. } => matches!(
                code,
                Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::Unavailable
                    | Code::DataLoss
            ),
            Self::Timeout(_) => true,
            Self::Endpoint { .. } | Self::Metadata { .. } => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl From<Status> for GrpcError {
    fn from(status: Status) -> Self {
        let mut cause = String::new();
        let mut source = std::error::Error::source(&status);
        while let Some(error) = source {
            let text = error.to_string();
            if !text.is_empty() && !cause.contains(&text) && text != status.message() {
                cause.push_str(": ");
                cause.push_str(&text);
            }
            source = error.source();
        }
        Self::Status {
            code: status.code(),
            message: status.message().to_owned(),
            cause,
        }
    }
}

/// Sends one signal to one OTLP/gRPC endpoint.
#[derive(Clone, Debug)]
pub struct GrpcExporter {
    channel: Channel,
    metadata: MetadataMap,
    timeout: Duration,
    gzip: bool,
}

impl GrpcExporter {
    /// A client for `config`. The connection is made on first use (and remade after failures),
    /// so a dead endpoint does not fail here. Must be called inside a tokio runtime.
    pub fn new(config: &SignalConfig) -> Result<Self, GrpcError> {
        let endpoint = config.endpoint.as_str().to_owned();
        let error = |source| GrpcError::Endpoint {
            endpoint: endpoint.clone(),
            source,
        };
        let mut builder = Endpoint::from_shared(endpoint.clone())
            .map_err(error)?
            .user_agent(USER_AGENT)
            .map_err(error)?
            .timeout(config.timeout)
            .connect_timeout(config.timeout);
        if config.endpoint.scheme() == "https" {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &config.tls.ca {
                tls = tls.ca_certificate(Certificate::from_pem(&ca.0));
            }
            if let Some((cert, key)) = &config.tls.identity {
                tls = tls.identity(Identity::from_pem(&cert.0, &key.0));
            }
            builder = builder.tls_config(tls).map_err(error)?;
        }
        let mut metadata = MetadataMap::new();
        for (name, value) in &config.headers {
            let bad = || GrpcError::Metadata { name: name.clone() };
            let key = MetadataKey::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let value = MetadataValue::try_from(value.as_str()).map_err(|_| bad())?;
            metadata.insert(key, value);
        }
        Ok(Self {
            channel: builder.connect_lazy(),
            metadata,
            timeout: config.timeout,
            gzip: config.compression == Some(Compression::Gzip),
        })
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        *request.metadata_mut() = self.metadata.clone();
        request.set_timeout(self.timeout);
        request
    }

    /// Export spans; the server's partial-success answer, if any.
    pub async fn export_traces(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> Result<PartialSuccess, GrpcError> {
        let mut client = TraceServiceClient::new(self.channel.clone());
        if self.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let call = client.export(self.request(request.clone()));
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| GrpcError::Timeout(self.timeout))?
            .map_err(GrpcError::from)?;
        Ok(response
            .into_inner()
            .partial_success
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_spans, p.error_message)
            }))
    }

    /// Export metrics; the server's partial-success answer, if any.
    pub async fn export_metrics(
        &self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<PartialSuccess, GrpcError> {
        let mut client = MetricsServiceClient::new(self.channel.clone());
        if self.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let call = client.export(self.request(request.clone()));
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| GrpcError::Timeout(self.timeout))?
            .map_err(GrpcError::from)?;
        Ok(response
            .into_inner()
            .partial_success
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_data_points, p.error_message)
            }))
    }

    /// Export log records; the server's partial-success answer, if any.
    pub async fn export_logs(
        &self,
        request: &ExportLogsServiceRequest,
    ) -> Result<PartialSuccess, GrpcError> {
        let mut client = LogsServiceClient::new(self.channel.clone());
        if self.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let call = client.export(self.request(request.clone()));
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| GrpcError::Timeout(self.timeout))?
            .map_err(GrpcError::from)?;
        Ok(response
            .into_inner()
            .partial_success
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_log_records, p.error_message)
            }))
    }

    /// Export profiles; the server's partial-success answer, if any.
    pub async fn export_profiles(
        &self,
        request: &ExportProfilesServiceRequest,
    ) -> Result<PartialSuccess, GrpcError> {
        let mut client = ProfilesServiceClient::new(self.channel.clone());
        if self.gzip {
            client = client.send_compressed(CompressionEncoding::Gzip);
        }
        let call = client.export(self.request(request.clone()));
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| GrpcError::Timeout(self.timeout))?
            .map_err(GrpcError::from)?;
        Ok(response
            .into_inner()
            .partial_success
            .map_or_else(PartialSuccess::default, |p| {
                PartialSuccess::new(p.rejected_profiles, p.error_message)
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_codes() {
        let retryable = |code| GrpcError::from(Status::new(code, "x")).is_retryable();
        assert!(retryable(Code::Unavailable));
        assert!(retryable(Code::ResourceExhausted));
        assert!(retryable(Code::DeadlineExceeded));
        assert!(!retryable(Code::InvalidArgument));
        assert!(!retryable(Code::Unauthenticated));
        assert!(!retryable(Code::PermissionDenied));
        assert!(GrpcError::Timeout(Duration::from_secs(1)).is_retryable());
    }
}
