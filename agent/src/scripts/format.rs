//! A bpftrace `printf` format string as a table's columns (Pixie's rules: `name:%d` names a
//! column; the column `time_` is the row's timestamp).
//!
//! Written by hand: no crate parses bpftrace's (C-like) format strings. It handles the
//! conversions bpftrace 0.17 accepts (`%d %i %u %x %X %o %s %c %p %r %rx %rh`, with flags,
//! width, precision and the `h hh l ll z j t` lengths) and `%%`.

use thiserror::Error;

/// How a column's printed text becomes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// A decimal integer (`%d %i %u`, any length).
    Int,
    /// Text as printed (`%s %c %x %o %p %r`...).
    Text,
}

/// One column of a script's table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Its name: the `name` of `name:%d`, else `column_<i>` (0-based).
    pub name: String,
    /// How its value is read.
    pub kind: ColumnKind,
    /// The conversion as written (`%llu`), used to rewrite the format.
    pub conversion: String,
}

/// A format string that is not one bpftrace prints.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum FormatError {
    /// `%` at the end, or followed by an unknown conversion.
    #[error("unsupported conversion {0:?} in the printf format")]
    Conversion(String),
    /// Two columns of the same name.
    #[error("column {0:?} is named twice in the printf format")]
    Duplicate(String),
    /// A format without any conversion gives rows with no column.
    #[error("the printf format has no conversion (%d, %s...): rows would have no column")]
    NoColumn,
}

/// Name of the timestamp column.
pub const TIME_COLUMN: &str = "time_";

/// Separator of the values in the rewritten format: ASCII unit separator, which bpftrace
/// prints as it is and no kernel string of interest holds.
pub const SEPARATOR: char = '\u{1f}';

/// The columns of `format` (the string literal's content, escapes already decoded).
pub fn columns(format: &str) -> Result<Vec<Column>, FormatError> {
    let chars: Vec<char> = format.chars().collect();
    let mut columns: Vec<Column> = Vec::new();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '%' {
            literal.push(chars[i]);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'%') {
            literal.push('%');
            i += 2;
            continue;
        }
        let start = i;
        i += 1;
        while i < chars.len() && "-+ #0".contains(chars[i]) {
            i += 1;
        }
        while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
            i += 1;
        }
        while i < chars.len() && "hlzjt".contains(chars[i]) {
            i += 1;
        }
        let kind = match chars.get(i) {
            Some('d' | 'i' | 'u') => ColumnKind::Int,
            Some('s' | 'c' | 'x' | 'X' | 'o' | 'p') => ColumnKind::Text,
            Some('r') => {
                if matches!(chars.get(i + 1), Some('x' | 'h')) {
                    i += 1;
                }
                ColumnKind::Text
            }
            _ => {
                let end = (i + 1).min(chars.len());
                return Err(FormatError::Conversion(chars[start..end].iter().collect()));
            }
        };
        i += 1;
        let conversion: String = chars[start..i].iter().collect();
        let name = column_name(&literal).unwrap_or_else(|| format!("column_{}", columns.len()));
        if columns.iter().any(|c| c.name == name) {
            return Err(FormatError::Duplicate(name));
        }
        columns.push(Column {
            name,
            kind,
            conversion,
        });
        literal.clear();
    }
    if columns.is_empty() {
        return Err(FormatError::NoColumn);
    }
    Ok(columns)
}

/// `name` when the text before a conversion ends with `name:` (`name` an identifier that
/// starts the text or follows a non-identifier character).
fn column_name(before: &str) -> Option<String> {
    let head = before.strip_suffix(':')?;
    let start = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || *c == '_')
        .last()
        .map(|(i, _)| i)?;
    let name = &head[start..];
    (!name.starts_with(|c: char| c.is_ascii_digit())).then(|| name.to_owned())
}

/// The format the agent gives bpftrace instead: the conversions alone, separated by
/// [`SEPARATOR`], one row per line. Written as a bpftrace string literal's content.
pub fn machine_format(columns: &[Column]) -> String {
    let mut out = String::new();
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            out.push_str("\\x1f");
        }
        out.push_str(&column.conversion);
    }
    out.push_str("\\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(format: &str) -> Vec<String> {
        columns(format)
            .expect("valid")
            .into_iter()
            .map(|c| c.name)
            .collect()
    }

    #[test]
    fn named_and_unnamed_columns() {
        assert_eq!(
            names("time_:%llu pid:%d comm:%s\n"),
            ["time_", "pid", "comm"]
        );
        assert_eq!(names("%d and %s"), ["column_0", "column_1"]);
        assert_eq!(names("latency=%d us:%-8s"), ["column_0", "us"]);
        assert_eq!(names("100%% x:%5.2d 9:%d"), ["x", "column_1"]);
        let c = columns("a:%d b:%s c:%x d:%rx").expect("valid");
        let kinds: Vec<_> = c.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [
                ColumnKind::Int,
                ColumnKind::Text,
                ColumnKind::Text,
                ColumnKind::Text
            ]
        );
        assert_eq!(c[3].conversion, "%rx");
    }

    #[test]
    fn bad_formats() {
        assert_eq!(columns("a:%q"), Err(FormatError::Conversion("%q".into())));
        assert_eq!(columns("a:%"), Err(FormatError::Conversion("%".into())));
        assert_eq!(
            columns("a:%d a:%s"),
            Err(FormatError::Duplicate("a".into()))
        );
        assert_eq!(columns("hello\n"), Err(FormatError::NoColumn));
    }

    #[test]
    fn machine_format_joins_conversions() {
        let c = columns("time_:%llu comm:%-16s\n").expect("valid");
        assert_eq!(machine_format(&c), "%llu\\x1f%-16s\\n");
    }

    /// Property: any string either gives columns whose count is the number of conversions, or
    /// an error; never a panic. Inputs from a fixed-seed generator over the characters that
    /// matter.
    #[test]
    fn never_panics_on_generated_formats() {
        const ALPHABET: &[char] = &[
            '%', 'd', 's', 'l', 'u', 'x', 'r', 'h', ':', ' ', 'a', '_', '1', '-', '.', '%', 'é',
            '\n', 'q',
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let text: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            if let Ok(cols) = columns(&text) {
                let machine = machine_format(&cols);
                assert_eq!(machine.matches("\\x1f").count() + 1, cols.len(), "{text:?}");
                let mut seen = std::collections::HashSet::new();
                assert!(cols.iter().all(|c| seen.insert(c.name.clone())), "{text:?}");
            }
        }
    }
}
