//! The script checker: reads a bpftrace script far enough to apply Pixie's table rules, and
//! rewrites its `printf` formats into one the agent can split back into columns.
//!
//! The rules: a script has at least one `printf`; every `printf` uses the same format string,
//! which defines the table's columns ([`super::format`]); a column `time_` is given `nsecs`;
//! no `printf` in `BEGIN` or `END`. A script that breaks one is refused with the rule and the
//! line and column where it is broken.
//!
//! A minimal hand-written reader, not a bpftrace parser (no crate parses bpftrace's language,
//! and bpftrace itself checks everything else when it loads the script): it knows comments,
//! string literals, preprocessor lines, probe headers with their predicates, nested braces, and
//! the arguments of `printf(...)` calls. Rewriting replaces only the format literals, on the
//! same lines, so bpftrace's own error positions still match the user's file.

use thiserror::Error;

use super::format::{self, Column, FormatError, TIME_COLUMN};

/// Which rule a script breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// No `printf` at all: the script gives no rows.
    NoPrintf,
    /// A `printf` whose format differs from the first one's.
    SameFormat {
        /// Line of the first `printf`.
        first_line: usize,
    },
    /// A `printf` in `BEGIN` or `END`.
    PrintfInBeginEnd,
    /// The `time_` column given something other than `nsecs`.
    TimeIsNsecs,
    /// The format is not a string literal.
    FormatLiteral,
    /// The format itself is wrong.
    Format(FormatError),
    /// Conversions and arguments differ in number.
    ArgumentCount {
        /// Conversions in the format.
        conversions: usize,
        /// Arguments after the format.
        arguments: usize,
    },
    /// The text cannot be read (an unterminated string or comment, unbalanced braces).
    Syntax(&'static str),
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoPrintf => write!(f, "the script has no printf, so it gives no rows"),
            Self::SameFormat { first_line } => write!(
                f,
                "every printf must use the same format string (it defines the columns); the first printf, line {first_line}, uses another"
            ),
            Self::PrintfInBeginEnd => write!(f, "printf is not allowed in BEGIN or END"),
            Self::TimeIsNsecs => write!(f, "the column time_ must be given nsecs"),
            Self::FormatLiteral => write!(f, "the printf format must be a string literal"),
            Self::Format(e) => write!(f, "{e}"),
            Self::ArgumentCount {
                conversions,
                arguments,
            } => write!(
                f,
                "the printf format has {conversions} conversions but {arguments} arguments follow it"
            ),
            Self::Syntax(what) => write!(f, "cannot read the script: {what}"),
        }
    }
}

/// A script refused before it runs.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("script {script}, line {line}, column {column}: {rule}")]
pub struct CheckError {
    /// The script's name (its table).
    pub script: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The rule broken.
    pub rule: Rule,
}

/// A script that follows the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    /// The table's columns, in format order.
    pub columns: Vec<Column>,
    /// The script with every format replaced by [`format::machine_format`].
    pub rewritten: String,
}

impl Checked {
    /// Index of the `time_` column, if any.
    pub fn time_column(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.name == TIME_COLUMN)
    }

    /// Index of the `pid` column, if any.
    pub fn pid_column(&self) -> Option<usize> {
        self.columns.iter().position(|c| c.name == "pid")
    }
}

/// One `printf(...)` call found in a probe body.
struct Printf {
    /// Offset of `printf`.
    at: usize,
    /// The format literal's byte range, quotes included, and its decoded content.
    format: Option<(std::ops::Range<usize>, String)>,
    /// Offset of the first argument.
    format_at: usize,
    /// The arguments after the format, trimmed, with their offsets.
    arguments: Vec<(usize, String)>,
    /// In a `BEGIN` or `END` probe.
    in_begin_end: bool,
}

/// Check `text` (the script `name`) and rewrite its formats.
pub fn check(name: &str, text: &str) -> Result<Checked, CheckError> {
    let error = |at: usize, rule: Rule| {
        let (line, column) = position(text, at);
        CheckError {
            script: name.to_owned(),
            line,
            column,
            rule,
        }
    };
    let calls = find_printfs(text).map_err(|(at, what)| error(at, Rule::Syntax(what)))?;
    let Some(first) = calls.first() else {
        return Err(error(0, Rule::NoPrintf));
    };
    let mut columns = None;
    for call in &calls {
        if call.in_begin_end {
            return Err(error(call.at, Rule::PrintfInBeginEnd));
        }
        let Some((_, format)) = &call.format else {
            return Err(error(call.format_at, Rule::FormatLiteral));
        };
        if let (Some((_, first_format)), false) = (&first.format, std::ptr::eq(call, first))
            && first_format != format
        {
            let (first_line, _) = position(text, first.at);
            return Err(error(call.format_at, Rule::SameFormat { first_line }));
        }
        let parsed = format::columns(format).map_err(|e| error(call.format_at, Rule::Format(e)))?;
        if parsed.len() != call.arguments.len() {
            return Err(error(
                call.at,
                Rule::ArgumentCount {
                    conversions: parsed.len(),
                    arguments: call.arguments.len(),
                },
            ));
        }
        if let Some(i) = parsed.iter().position(|c| c.name == TIME_COLUMN) {
            let (at, argument) = &call.arguments[i];
            if argument != "nsecs" {
                return Err(error(*at, Rule::TimeIsNsecs));
            }
        }
        columns.get_or_insert(parsed);
    }
    let columns = columns.unwrap_or_default();
    let machine = format!("\"{}\"", format::machine_format(&columns));
    let mut rewritten = text.to_owned();
    for call in calls.iter().rev() {
        if let Some((range, _)) = &call.format {
            rewritten.replace_range(range.clone(), &machine);
        }
    }
    Ok(Checked { columns, rewritten })
}

/// 1-based line and column of byte offset `at`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// A cursor over the script's bytes (the language is ASCII; other bytes only occur inside
/// strings and comments, skipped whole).
struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

type Found<T> = Result<T, (usize, &'static str)>;

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn starts_with(&self, s: &str) -> bool {
        self.text[self.at..].starts_with(s.as_bytes())
    }

    /// Skip a comment or string at the cursor, if there is one; whether it did.
    fn skip_comment_or_string(&mut self) -> Found<bool> {
        let start = self.at;
        if self.starts_with("//") {
            while self.peek().is_some_and(|c| c != b'\n') {
                self.at += 1;
            }
            return Ok(true);
        }
        if self.starts_with("/*") {
            self.at += 2;
            while !self.starts_with("*/") {
                if self.peek().is_none() {
                    return Err((start, "a /* comment is not closed"));
                }
                self.at += 1;
            }
            self.at += 2;
            return Ok(true);
        }
        if self.peek() == Some(b'"') {
            self.string()?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Read a string literal at the cursor; its decoded content.
    fn string(&mut self) -> Found<String> {
        let start = self.at;
        self.at += 1;
        let mut bytes = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\n') => return Err((start, "a string is not closed")),
                Some(b'"') => {
                    self.at += 1;
                    return Ok(String::from_utf8_lossy(&bytes).into_owned());
                }
                Some(b'\\') => {
                    self.at += 1;
                    let Some(c) = self.peek() else {
                        return Err((start, "a string is not closed"));
                    };
                    self.at += 1;
                    match c {
                        b'n' => bytes.push(b'\n'),
                        b't' => bytes.push(b'\t'),
                        b'r' => bytes.push(b'\r'),
                        b'x' => {
                            let digits = self.take_while_max(2, |c| c.is_ascii_hexdigit());
                            bytes.push(u8::from_str_radix(&digits, 16).unwrap_or(b'?'));
                        }
                        b'0'..=b'7' => {
                            self.at -= 1;
                            let digits = self.take_while_max(3, |c| (b'0'..=b'7').contains(&c));
                            bytes.push(u8::from_str_radix(&digits, 8).unwrap_or(b'?'));
                        }
                        other => bytes.push(other),
                    }
                }
                Some(c) => {
                    bytes.push(c);
                    self.at += 1;
                }
            }
        }
    }

    fn take_while_max(&mut self, max: usize, ok: impl Fn(u8) -> bool) -> String {
        let start = self.at;
        while self.at - start < max && self.peek().is_some_and(&ok) {
            self.at += 1;
        }
        String::from_utf8_lossy(&self.text[start..self.at]).into_owned()
    }
}

/// Every `printf(...)` in the script's probe bodies, in order.
fn find_printfs(text: &str) -> Found<Vec<Printf>> {
    let mut cur = Cursor {
        text: text.as_bytes(),
        at: 0,
    };
    let mut calls = Vec::new();
    let mut header = String::new();
    while let Some(c) = cur.peek() {
        if cur.skip_comment_or_string()? {
            continue;
        }
        match c {
            b'#' if header.trim().is_empty() => {
                while cur.peek().is_some_and(|c| c != b'\n') {
                    cur.at += 1;
                }
            }
            b'{' => {
                let in_begin_end = header
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .any(|p| matches!(p.trim(), "BEGIN" | "END"));
                body(&mut cur, in_begin_end, &mut calls)?;
                header.clear();
            }
            b'}' => return Err((cur.at, "a } closes nothing")),
            b';' => {
                header.clear();
                cur.at += 1;
            }
            _ => {
                header.push(char::from(c));
                cur.at += 1;
            }
        }
    }
    Ok(calls)
}

/// Read a `{...}` body at the cursor, collecting its `printf` calls.
fn body(cur: &mut Cursor<'_>, in_begin_end: bool, calls: &mut Vec<Printf>) -> Found<()> {
    let open = cur.at;
    cur.at += 1;
    let mut depth = 1usize;
    while depth > 0 {
        let Some(c) = cur.peek() else {
            return Err((open, "a { is not closed"));
        };
        if cur.skip_comment_or_string()? {
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = cur.at;
            while cur
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
            {
                cur.at += 1;
            }
            if &cur.text[start..cur.at] == b"printf" {
                while cur.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    cur.at += 1;
                }
                if cur.peek() == Some(b'(') {
                    calls.push(printf_call(cur, start, in_begin_end)?);
                }
            }
            continue;
        }
        match c {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            _ => {}
        }
        cur.at += 1;
    }
    Ok(())
}

/// Read the arguments of a `printf` whose `(` is at the cursor.
fn printf_call(cur: &mut Cursor<'_>, at: usize, in_begin_end: bool) -> Found<Printf> {
    let open = cur.at;
    cur.at += 1;
    let mut arguments: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    let mut start = cur.at;
    let mut depth = 0usize;
    loop {
        let Some(c) = cur.peek() else {
            return Err((open, "a ( is not closed"));
        };
        if cur.skip_comment_or_string()? {
            continue;
        }
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' if depth > 0 => depth -= 1,
            b')' => {
                arguments.push((start, start..cur.at));
                cur.at += 1;
                break;
            }
            b',' if depth == 0 => {
                arguments.push((start, start..cur.at));
                start = cur.at + 1;
            }
            _ => {}
        }
        cur.at += 1;
    }
    let text = cur.text;
    let trimmed = |range: &std::ops::Range<usize>| {
        let raw = &text[range.clone()];
        let lead = raw.iter().take_while(|c| c.is_ascii_whitespace()).count();
        let s = String::from_utf8_lossy(raw).trim().to_owned();
        (range.start + lead, s)
    };
    let mut iter = arguments.iter();
    let (format_at, format) = match iter.next() {
        Some((_, range)) => {
            let (begin, s) = trimmed(range);
            let mut lit = Cursor { text, at: begin };
            let literal = if s.starts_with('"') {
                let content = lit.string()?;
                (lit.at - begin == s.len()).then_some((begin..lit.at, content))
            } else {
                None
            };
            (begin, literal)
        }
        None => (open, None),
    };
    let arguments = iter
        .map(|(_, r)| trimmed(r))
        .filter(|(_, s)| !s.is_empty())
        .collect();
    Ok(Printf {
        at,
        format,
        format_at,
        arguments,
        in_begin_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> (usize, usize, Rule) {
        let e = check("t", text).expect_err("refused");
        (e.line, e.column, e.rule)
    }

    #[test]
    fn columns_and_rewrite() {
        let text = "#!/usr/bin/env bpftrace\n#include <linux/sched.h>\n// a \"comment\" with printf(\"x\")\ntracepoint:a:b /pid != 0/ {\n  if (1) { printf(\"time_:%llu pid:%d comm:%s\\n\", nsecs, pid, comm); }\n}\n";
        let checked = check("t", text).expect("accepted");
        let names: Vec<_> = checked.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["time_", "pid", "comm"]);
        assert_eq!(checked.time_column(), Some(0));
        assert_eq!(checked.pid_column(), Some(1));
        assert!(
            checked
                .rewritten
                .contains("printf(\"%llu\\x1f%d\\x1f%s\\n\", nsecs, pid, comm)")
        );
        assert_eq!(checked.rewritten.lines().count(), text.lines().count());
    }

    #[test]
    fn each_rule_has_its_message_and_place() {
        assert_eq!(rule("tracepoint:a:b { @x = count(); }").2, Rule::NoPrintf);
        assert_eq!(
            rule("BEGIN { printf(\"a:%d\\n\", 1); }"),
            (1, 9, Rule::PrintfInBeginEnd)
        );
        assert_eq!(
            rule("t:a:b { printf(\"a:%d\\n\", 1); }\nEND,t:c:d { printf(\"a:%d\\n\", 2); }").2,
            Rule::PrintfInBeginEnd
        );
        assert_eq!(
            rule("t:a:b { printf(\"a:%d\\n\", 1); }\nt:c:d {\n printf(\"b:%d\\n\", 2); }"),
            (3, 9, Rule::SameFormat { first_line: 1 })
        );
        assert_eq!(
            rule("t:a:b { printf(\"time_:%llu\\n\", elapsed); }"),
            (1, 32, Rule::TimeIsNsecs)
        );
        assert_eq!(
            rule("t:a:b { printf(\"a:%d b:%d\\n\", 1); }").2,
            Rule::ArgumentCount {
                conversions: 2,
                arguments: 1
            }
        );
        assert_eq!(
            rule("t:a:b { printf(\"a:%q\\n\", 1); }").2,
            Rule::Format(FormatError::Conversion("%q".into()))
        );
        assert_eq!(
            rule("t:a:b { printf(\"a:%d"),
            (1, 16, Rule::Syntax("a string is not closed"))
        );
        assert_eq!(
            rule("t:a:b { printf(\"a\") ").2,
            Rule::Syntax("a { is not closed")
        );
        let message = check("demo", "BEGIN { printf(\"a:%d\\n\", 1); }")
            .expect_err("refused")
            .to_string();
        assert_eq!(
            message,
            "script demo, line 1, column 9: printf is not allowed in BEGIN or END"
        );
    }

    #[test]
    fn shipped_scripts_pass() {
        for (name, text) in super::super::library::SCRIPTS {
            let checked = check(name, text).unwrap_or_else(|e| panic!("{e}"));
            assert!(checked.time_column().is_some(), "{name}");
        }
    }

    #[test]
    fn never_panics_on_generated_scripts() {
        const PIECES: &[&str] = &[
            "printf(",
            "\"a:%d\\n\"",
            ",",
            " nsecs",
            ")",
            "{",
            "}",
            "BEGIN",
            "t:a:b",
            "/*",
            "*/",
            "//",
            "\n",
            "\"",
            ";",
            "(",
            "time_:%llu",
            "#",
            "é",
            "\\",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 16) as usize;
            let text: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            if let Err(e) = check("g", &text) {
                assert!(e.line >= 1 && e.column >= 1);
            }
        }
    }
}
