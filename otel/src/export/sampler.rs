//! Trace sampling from `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`: which spans are
//! exported. Metrics are not sampled: they count every observation whatever is decided here.
//!
//! `always_on`, `always_off`, `traceidratio` and their `parentbased_*` forms (the default is
//! `parentbased_always_on`), as the OpenTelemetry SDK configuration specifies. The ratio
//! decision is a function of the trace id alone (its last 8 bytes, big-endian, below
//! `ratio × 2^64`), so every span of a trace, client and server, on any host that samples
//! alike, is kept or dropped together. Parent-based samplers follow a parent's W3C `sampled`
//! flag when the span has one (a `traceparent` came with the request), else the root sampler.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;

use super::ConfigError;

/// `OTEL_TRACES_SAMPLER`.
pub const SAMPLER_VAR: &str = "OTEL_TRACES_SAMPLER";
/// `OTEL_TRACES_SAMPLER_ARG`.
pub const SAMPLER_ARG_VAR: &str = "OTEL_TRACES_SAMPLER_ARG";

/// A sampler for spans with no parent (or all spans, when not parent-based).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Root {
    /// Keep every trace.
    AlwaysOn,
    /// Keep none.
    AlwaysOff,
    /// Keep this fraction of trace ids, 0 to 1.
    TraceIdRatio(f64),
}

/// Which spans are exported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampler {
    /// The decision for spans without a parent.
    pub root: Root,
    /// Follow the parent's `sampled` flag when there is a parent.
    pub parent_based: bool,
}

impl Default for Sampler {
    /// `parentbased_always_on`, the specification's default.
    fn default() -> Self {
        Self {
            root: Root::AlwaysOn,
            parent_based: true,
        }
    }
}

impl Sampler {
    /// From the two variables, read through `get` (trimmed, empty meaning unset).
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let Some(name) = get(SAMPLER_VAR) else {
            return Ok(Self::default());
        };
        let lower = name.to_ascii_lowercase();
        let (parent_based, root) = match lower.strip_prefix("parentbased_") {
            Some(root) => (true, root),
            None => (false, lower.as_str()),
        };
        let root = match root {
            "always_on" => Root::AlwaysOn,
            "always_off" => Root::AlwaysOff,
            "traceidratio" => Root::TraceIdRatio(match get(SAMPLER_ARG_VAR) {
                None => 1.0,
                Some(arg) => arg
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or(ConfigError::SamplerArg { value: arg })?,
            }),
            _ => return Err(ConfigError::Sampler { value: name }),
        };
        Ok(Self { root, parent_based })
    }

    /// Whether `span` is exported.
    pub fn keep(&self, span: &Span) -> bool {
        if self.parent_based && !span.parent_span_id.is_empty() {
            // The W3C trace flags are the low byte of the OTLP span flags.
            return span.flags & 0x01 != 0;
        }
        match self.root {
            Root::AlwaysOn => true,
            Root::AlwaysOff => false,
            Root::TraceIdRatio(ratio) => keep_ratio(&span.trace_id, ratio),
        }
    }

    /// Drop from `request` the spans not sampled; returns how many were dropped.
    pub fn apply(&self, request: &mut ExportTraceServiceRequest) -> u64 {
        if *self
            == (Self {
                root: Root::AlwaysOn,
                parent_based: false,
            })
        {
            return 0;
        }
        let mut dropped = 0;
        for rs in &mut request.resource_spans {
            for ss in &mut rs.scope_spans {
                let before = ss.spans.len();
                ss.spans.retain(|s| self.keep(s));
                dropped += (before - ss.spans.len()) as u64;
            }
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        request
            .resource_spans
            .retain(|rs| !rs.scope_spans.is_empty());
        dropped
    }
}

fn keep_ratio(trace_id: &[u8], ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let Some(last) = trace_id
        .len()
        .checked_sub(8)
        .and_then(|i| trace_id.get(i..))
    else {
        return false;
    };
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(last);
    // ratio < 1: the bound fits in a u64.
    let bound = (ratio * 2f64.powi(64)) as u64;
    u64::from_be_bytes(bytes) < bound
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Sampler, ConfigError> {
        Sampler::from_lookup(&|name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    fn span(trace_last: u64, parent: Option<u32>) -> Span {
        let mut trace_id = vec![0xab; 8];
        trace_id.extend_from_slice(&trace_last.to_be_bytes());
        Span {
            trace_id,
            parent_span_id: parent.map(|_| vec![1; 8]).unwrap_or_default(),
            flags: parent.unwrap_or(0x01),
            ..Span::default()
        }
    }

    #[test]
    fn variables() {
        assert_eq!(parse(&[]), Ok(Sampler::default()));
        assert_eq!(
            parse(&[(SAMPLER_VAR, "traceidratio"), (SAMPLER_ARG_VAR, "0.1")]),
            Ok(Sampler {
                root: Root::TraceIdRatio(0.1),
                parent_based: false
            })
        );
        assert_eq!(
            parse(&[(SAMPLER_VAR, "parentbased_traceidratio")]),
            Ok(Sampler {
                root: Root::TraceIdRatio(1.0),
                parent_based: true
            })
        );
        assert_eq!(
            parse(&[(SAMPLER_VAR, "always_off")]).map(|s| s.root),
            Ok(Root::AlwaysOff)
        );
        let err = parse(&[(SAMPLER_VAR, "traceidratio"), (SAMPLER_ARG_VAR, "1.5")])
            .expect_err("out of range");
        assert!(
            err.to_string()
                .starts_with("invalid OTEL_TRACES_SAMPLER_ARG"),
            "{err}"
        );
        let err = parse(&[(SAMPLER_VAR, "jaeger_remote")]).expect_err("unsupported");
        assert!(
            err.to_string().starts_with("invalid OTEL_TRACES_SAMPLER"),
            "{err}"
        );
    }

    #[test]
    fn ratio_by_trace_id() {
        let tenth = Sampler {
            root: Root::TraceIdRatio(0.1),
            parent_based: true,
        };
        assert!(tenth.keep(&span(0, None)));
        assert!(tenth.keep(&span(u64::MAX / 11, None)));
        assert!(!tenth.keep(&span(u64::MAX / 9, None)));
        // Uniform ids: about a tenth kept.
        let kept = (0..10_000u64)
            .filter(|i| tenth.keep(&span(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), None)))
            .count();
        assert!((900..=1100).contains(&kept), "{kept}");
        // A parent's decision wins when parent-based.
        assert!(tenth.keep(&span(u64::MAX, Some(0x301))));
        assert!(!tenth.keep(&span(0, Some(0x300))));
        let plain = Sampler {
            parent_based: false,
            ..tenth
        };
        assert!(!plain.keep(&span(u64::MAX, Some(0x301))));
    }

    #[test]
    fn apply_drops_empty_groups() {
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
        let off = Sampler {
            root: Root::AlwaysOff,
            parent_based: false,
        };
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(1, None), span(2, None)],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        assert_eq!(off.apply(&mut request), 2);
        assert!(request.resource_spans.is_empty());
    }
}
