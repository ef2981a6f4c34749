//! One line of a script's output (bpftrace's `-f json` records) into a row of its table.

use serde::Deserialize;

use super::format::{Column, ColumnKind, SEPARATOR};

/// A column's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// From an integer conversion.
    Int(i64),
    /// Text as printed.
    Text(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Text(v) => write!(f, "{v}"),
        }
    }
}

/// What one output line was.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A row: one value per column.
    Row(Vec<Value>),
    /// bpftrace attached this many probes: the script runs.
    Attached(u64),
    /// Output that is not a row (maps printed at exit...): ignored.
    Other,
    /// A `printf` record that does not split into the table's columns, or a line that is not
    /// bpftrace JSON: counted as a dropped row.
    Bad,
}

#[derive(Deserialize)]
struct Record {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: serde_json::Value,
}

/// Read one line of `bpftrace -f json` output for a table of `columns`.
pub fn parse(line: &str, columns: &[Column]) -> Line {
    let Ok(record) = serde_json::from_str::<Record>(line) else {
        return Line::Bad;
    };
    if record.kind == "attached_probes" {
        return Line::Attached(record.data["probes"].as_u64().unwrap_or(0));
    }
    if record.kind != "printf" {
        return Line::Other;
    }
    let Some(text) = record.data.as_str() else {
        return Line::Bad;
    };
    let text = text.strip_suffix('\n').unwrap_or(text);
    let fields: Vec<&str> = text.split(SEPARATOR).collect();
    if fields.len() != columns.len() {
        return Line::Bad;
    }
    let mut values = Vec::with_capacity(columns.len());
    for (field, column) in fields.iter().zip(columns) {
        values.push(match column.kind {
            ColumnKind::Text => Value::Text((*field).to_owned()),
            ColumnKind::Int => {
                let trimmed = field.trim();
                match trimmed.parse::<i64>() {
                    Ok(v) => Value::Int(v),
                    // A %llu past i64: kept as its text rather than lost.
                    Err(_) if trimmed.parse::<u64>().is_ok() => Value::Text(trimmed.to_owned()),
                    Err(_) => return Line::Bad,
                }
            }
        });
    }
    Line::Row(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripts::format::columns;

    #[test]
    fn rows_and_the_rest() {
        let cols = columns("time_:%llu pid:%d comm:%s\n").expect("valid");
        assert_eq!(
            parse(
                r#"{"type": "printf", "data": "12\u001f-3\u001fa b\n"}"#,
                &cols
            ),
            Line::Row(vec![
                Value::Int(12),
                Value::Int(-3),
                Value::Text("a b".into())
            ])
        );
        assert_eq!(
            parse(
                r#"{"type": "attached_probes", "data": {"probes": 1}}"#,
                &cols
            ),
            Line::Attached(1)
        );
        assert_eq!(
            parse(r#"{"type": "map", "data": {"@x": 1}}"#, &cols),
            Line::Other
        );
        assert_eq!(
            parse(r#"{"type": "printf", "data": "12\u001f3\n"}"#, &cols),
            Line::Bad
        );
        assert_eq!(
            parse(r#"{"type": "printf", "data": "x\u001f3\u001fz\n"}"#, &cols),
            Line::Bad
        );
        assert_eq!(parse("not json", &cols), Line::Bad);
        assert_eq!(
            parse(
                r#"{"type": "printf", "data": "18446744073709551615\u001f3\u001fz\n"}"#,
                &cols
            ),
            Line::Row(vec![
                Value::Text("18446744073709551615".into()),
                Value::Int(3),
                Value::Text("z".into())
            ])
        );
    }
}
