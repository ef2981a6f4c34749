//! Where observations go: the live view on stdout, the OTLP exporter, and the Prometheus
//! endpoint (which reads the exporter's metrics).

pub mod live;
pub mod prometheus;
