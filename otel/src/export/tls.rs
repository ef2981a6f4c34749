//! TLS to the OTLP backend from `OTEL_EXPORTER_OTLP_{CERTIFICATE,CLIENT_CERTIFICATE,
//! CLIENT_KEY,INSECURE}` and their per-signal forms: the CA that signs the backend's
//! certificate, and a client certificate and key for backends that require one (mutual TLS).
//!
//! The files are read when the configuration is read, so a missing or unreadable one stops
//! the start with the variable's name. The gRPC (tonic) and HTTP (reqwest) clients both take
//! the PEM through rustls; the system roots stay trusted beside a configured CA.

use std::fmt;

use super::ConfigError;

/// PEM text read from a file; its `Debug` shows only its size (a key must not reach logs).
#[derive(Clone, PartialEq, Eq)]
pub struct Pem(pub Vec<u8>);

impl fmt::Debug for Pem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pem({} bytes)", self.0.len())
    }
}

/// TLS settings of one signal; used for `https://` endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// CA certificates trusted for the backend, beside the system roots
    /// (`OTEL_EXPORTER_OTLP_CERTIFICATE`).
    pub ca: Option<Pem>,
    /// Client certificate and key (`OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`, `_CLIENT_KEY`).
    pub identity: Option<(Pem, Pem)>,
}

/// The TLS settings: `pick(setting)` gives the per-signal or generic variable's name and
/// value, the first that is set.
pub(crate) fn tls_config(
    pick: &impl Fn(&str) -> Option<(String, String)>,
) -> Result<TlsConfig, ConfigError> {
    let read = |setting: &str| -> Result<Option<(String, Pem)>, ConfigError> {
        let Some((var, path)) = pick(setting) else {
            return Ok(None);
        };
        let bytes = std::fs::read(&path).map_err(|e| ConfigError::Tls {
            var: var.clone(),
            reason: format!("cannot read {path}: {e}"),
        })?;
        if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
            return Err(ConfigError::Tls {
                var,
                reason: format!("{path} is not a PEM file"),
            });
        }
        Ok(Some((var, Pem(bytes))))
    };
    let ca = read("CERTIFICATE")?.map(|(_, pem)| pem);
    let identity = match (read("CLIENT_CERTIFICATE")?, read("CLIENT_KEY")?) {
        (Some((_, cert)), Some((_, key))) => Some((cert, key)),
        (None, None) => None,
        (Some((var, _)), None) | (None, Some((var, _))) => {
            return Err(ConfigError::Tls {
                var,
                reason: "a client certificate needs its key and the key its certificate \
                         (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY)"
                    .into(),
            });
        }
    };
    Ok(TlsConfig { ca, identity })
}

/// `OTEL_EXPORTER_OTLP_INSECURE` (or per signal): `true` or `false`, default `false`.
pub(crate) fn insecure(
    pick: &impl Fn(&str) -> Option<(String, String)>,
) -> Result<bool, ConfigError> {
    match pick("INSECURE") {
        None => Ok(false),
        Some((var, value)) => match value.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(ConfigError::Tls {
                var,
                reason: format!("{value:?} is not true or false"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick<'a>(vars: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<(String, String)> + 'a {
        |setting| {
            let var = format!("OTEL_EXPORTER_OTLP_{setting}");
            vars.iter()
                .find(|(k, _)| *k == var)
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
        }
    }

    #[test]
    fn files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("wirelens-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pem = dir.join("a.pem");
        std::fs::write(
            &pem,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let not_pem = dir.join("b.txt");
        std::fs::write(&not_pem, "hello").expect("write");
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();

        assert_eq!(tls_config(&pick(&[])), Ok(TlsConfig::default()));
        let c = tls_config(&pick(&[
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&pem)),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", path(&pem)),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", path(&pem)),
        ]))
        .expect("valid");
        assert!(c.ca.is_some() && c.identity.is_some());
        let shown = format!("{:?}", c.identity);
        assert!(
            shown.contains(" bytes)") && !shown.contains("BEGIN"),
            "{shown}"
        );

        let err =
            |vars: &[(&str, String)]| tls_config(&pick(vars)).expect_err("invalid").to_string();
        let e = err(&[(
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            path(&dir.join("none.pem")),
        )]);
        assert!(
            e.starts_with("invalid OTEL_EXPORTER_OTLP_CERTIFICATE: cannot read"),
            "{e}"
        );
        let e = err(&[("OTEL_EXPORTER_OTLP_CERTIFICATE", path(&not_pem))]);
        assert!(e.contains("is not a PEM file"), "{e}");
        let e = err(&[("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", path(&pem))]);
        assert!(
            e.starts_with("invalid OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            "{e}"
        );

        assert_eq!(insecure(&pick(&[])), Ok(false));
        assert_eq!(
            insecure(&pick(&[("OTEL_EXPORTER_OTLP_INSECURE", "TRUE".into())])),
            Ok(true)
        );
        assert!(insecure(&pick(&[("OTEL_EXPORTER_OTLP_INSECURE", "yes".into())])).is_err());
    }
}
