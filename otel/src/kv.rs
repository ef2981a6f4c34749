//! Small builders for OTLP attribute key/values.

use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};

fn key_value(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// A string attribute.
pub(crate) fn string(key: &str, value: impl Into<String>) -> KeyValue {
    key_value(key, Value::StringValue(value.into()))
}

/// An integer attribute.
pub(crate) fn int(key: &str, value: i64) -> KeyValue {
    key_value(key, Value::IntValue(value))
}

/// A boolean attribute.
pub(crate) fn bool(key: &str, value: bool) -> KeyValue {
    key_value(key, Value::BoolValue(value))
}

/// A string array attribute (`string[]` in the semantic conventions).
pub(crate) fn string_array<S: Into<String>>(
    key: &str,
    values: impl IntoIterator<Item = S>,
) -> KeyValue {
    let values = values
        .into_iter()
        .map(|v| AnyValue {
            value: Some(Value::StringValue(v.into())),
        })
        .collect();
    key_value(key, Value::ArrayValue(ArrayValue { values }))
}
