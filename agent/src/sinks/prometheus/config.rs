//! Where the Prometheus endpoint listens, from the flag, `WIRELENS_PROMETHEUS_LISTEN`, the
//! config file, or `OTEL_METRICS_EXPORTER=prometheus`.
//!
//! Precedence, highest first: `--prometheus-listen`, `WIRELENS_PROMETHEUS_LISTEN`,
//! `prometheus_listen` in the config file (all three resolved by `cli.rs`), then
//! `OTEL_METRICS_EXPORTER` naming `prometheus`, which listens on
//! `OTEL_EXPORTER_PROMETHEUS_HOST` (default `localhost`) : `OTEL_EXPORTER_PROMETHEUS_PORT`
//! (default 9464) as the OpenTelemetry specification says. Otherwise the endpoint is off.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use thiserror::Error;

/// The port OpenTelemetry reserves for Prometheus exporters.
pub const DEFAULT_PORT: u16 = 9464;

/// The Prometheus endpoint's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// Address and port to listen on (`127.0.0.1:9464` unless told otherwise).
    pub listen: SocketAddr,
}

/// A listen address that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{source_name} {value:?} is not an address to listen on: {reason} (e.g. 127.0.0.1:9464)")]
pub struct ListenError {
    /// The flag, variable or key the value came from.
    pub source_name: String,
    /// The value.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PrometheusConfig {
    /// The endpoint's settings: `listen` (flag, `WIRELENS_*` variable or config file, already
    /// picked by precedence) wins, else `prometheus` (`OTEL_METRICS_EXPORTER` names it) turns
    /// it on with the `OTEL_EXPORTER_PROMETHEUS_*` variables read through `lookup`. `None`:
    /// off. `listen_name` names where `listen` came from, for errors.
    pub fn resolve(
        listen: Option<&str>,
        listen_name: &str,
        prometheus: bool,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ListenError> {
        if let Some(value) = listen {
            return parse_listen(listen_name, value).map(|listen| Some(Self { listen }));
        }
        if !prometheus {
            return Ok(None);
        }
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let host = get("OTEL_EXPORTER_PROMETHEUS_HOST").unwrap_or_else(|| "localhost".into());
        let port = match get("OTEL_EXPORTER_PROMETHEUS_PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().map_err(|_| ListenError {
                source_name: "OTEL_EXPORTER_PROMETHEUS_PORT".into(),
                value: p.clone(),
                reason: "not a port number",
            })?,
        };
        let ip = parse_host(&host).ok_or_else(|| ListenError {
            source_name: "OTEL_EXPORTER_PROMETHEUS_HOST".into(),
            value: host.clone(),
            reason: "not an IP address or localhost",
        })?;
        Ok(Some(Self {
            listen: SocketAddr::new(ip, port),
        }))
    }
}

/// `127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`, `0.0.0.0:9464`, or a bare port (on
/// 127.0.0.1).
fn parse_listen(name: &str, value: &str) -> Result<SocketAddr, ListenError> {
    let error = |reason| ListenError {
        source_name: name.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let value = value.trim();
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(error("no port"));
    };
    let port = port
        .parse::<u16>()
        .map_err(|_| error("not a port number"))?;
    let ip = parse_host(host).ok_or_else(|| error("not an IP address or localhost"))?;
    Ok(SocketAddr::new(ip, port))
}

fn parse_host(host: &str) -> Option<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn listen(value: &str) -> Result<Option<PrometheusConfig>, ListenError> {
        PrometheusConfig::resolve(Some(value), "--prometheus-listen", false, env(&[]))
    }

    #[test]
    fn off_unless_asked() {
        assert_eq!(
            PrometheusConfig::resolve(None, "--prometheus-listen", false, env(&[])),
            Ok(None)
        );
    }

    #[test]
    fn listen_values() {
        let addr = |s: &str| listen(s).expect("valid").expect("on").listen.to_string();
        assert_eq!(addr("127.0.0.1:9464"), "127.0.0.1:9464");
        assert_eq!(addr("localhost:9000"), "127.0.0.1:9000");
        assert_eq!(addr("[::1]:9464"), "[::1]:9464");
        assert_eq!(addr("0.0.0.0:9464"), "0.0.0.0:9464");
        assert_eq!(addr("9100"), "127.0.0.1:9100");
        for bad in [
            "",
            "nowhere",
            "example.com:9464",
            "127.0.0.1:99999",
            "127.0.0.1:",
        ] {
            let err = listen(bad).expect_err(bad).to_string();
            assert!(err.starts_with("--prometheus-listen "), "{err}");
        }
    }

    #[test]
    fn otel_variables() {
        let on = |vars: &[(&str, &str)]| {
            PrometheusConfig::resolve(None, "--prometheus-listen", true, env(vars))
        };
        assert_eq!(
            on(&[]).expect("valid").expect("on").listen.to_string(),
            "127.0.0.1:9464"
        );
        let c = on(&[
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "0.0.0.0"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "9999"),
        ]);
        assert_eq!(
            c.expect("valid").expect("on").listen.to_string(),
            "0.0.0.0:9999"
        );
        let err = on(&[("OTEL_EXPORTER_PROMETHEUS_PORT", "x")]).expect_err("bad port");
        assert!(err.to_string().starts_with("OTEL_EXPORTER_PROMETHEUS_PORT"));
        // The flag wins over the variables.
        let c = PrometheusConfig::resolve(
            Some("127.0.0.2:1"),
            "--prometheus-listen",
            true,
            env(&[("OTEL_EXPORTER_PROMETHEUS_PORT", "9999")]),
        );
        assert_eq!(
            c.expect("valid").expect("on").listen.to_string(),
            "127.0.0.2:1"
        );
    }
}
