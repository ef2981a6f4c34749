//! Where observations go: the live view on stdout and the OTLP exporter.

pub mod live;
