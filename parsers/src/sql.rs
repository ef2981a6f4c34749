//! SQL text helpers shared by the SQL protocols: sanitising literals and naming the operation.
//!
//! Both work on one hand-written lexer rather than a SQL parser or regular
//! expressions: it only has to tell literals, quoted identifiers, comments and words apart, for
//! any dialect the agent meets (PostgreSQL, MySQL/MariaDB, CQL), on text that may be cut short.
//! It never fails: an unterminated string or comment runs to the end of the text.

/// Longest text looked at; the rest is dropped (and `sanitize` marks the cut with ` …`).
pub const MAX_SQL: usize = 64 * 1024;

/// What a lexed span of SQL text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Whitespace.
    Space,
    /// `-- …` to the end of the line, or `/* … */` (nested, as PostgreSQL allows).
    Comment,
    /// A keyword or bare identifier (letters, digits, `_`, `$`, non-ASCII).
    Word,
    /// `"identifier"` or `` `identifier` ``.
    Quoted,
    /// A string literal: `'…'` (with `''` and backslash escapes, and an `E`/`N`/`B`/`X` prefix),
    /// or a dollar-quoted `$$…$$` / `$tag$…$tag$`.
    Str,
    /// A number: integer, decimal, exponent, or `0x…` hex.
    Number,
    /// A positional parameter `$1`.
    Param,
    /// Any other single byte: punctuation, operators, `?`, `:`.
    Punct,
}

/// One lexed span: `text[start..end]`.
#[derive(Clone, Copy, Debug)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// The text cut to [`MAX_SQL`] bytes at a character boundary, and whether it was cut.
fn bounded(sql: &str) -> (&str, bool) {
    if sql.len() <= MAX_SQL {
        return (sql, false);
    }
    let mut end = MAX_SQL;
    while end > 0 && !sql.is_char_boundary(end) {
        end -= 1;
    }
    (sql.get(..end).unwrap_or(""), true)
}

/// Splits `sql` into spans covering all of it. Spans start and end on ASCII bytes or the ends
/// of the text, so every span is a valid `str` slice.
fn lex(sql: &str) -> Lexer<'_> {
    Lexer {
        b: sql.as_bytes(),
        i: 0,
    }
}

/// The iterator [`lex`] returns.
struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
}

impl Iterator for Lexer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let b = self.b;
        let mut i = self.i;
        if i >= b.len() {
            return None;
        }
        let start = i;
        let c = b[i];
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => {
                while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') {
                    i += 1;
                }
                Kind::Space
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                Kind::Comment
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0usize;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth = depth.saturating_sub(1);
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                Kind::Comment
            }
            b'\'' => {
                i = string_end(b, i + 1);
                Kind::Str
            }
            b'"' | b'`' => {
                i += 1;
                while i < b.len() {
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        i += 1;
                        break;
                    }
                    i += 1;
                }
                Kind::Quoted
            }
            b'$' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                Kind::Param
            }
            b'$' => match dollar_tag(b, i) {
                Some(tag_len) => {
                    let tag = &b[i..i + tag_len];
                    i += tag_len;
                    i = find(b, i, tag).map_or(b.len(), |at| at + tag_len);
                    Kind::Str
                }
                None => {
                    i += 1;
                    Kind::Punct
                }
            },
            b'0'..=b'9' => {
                i = number_end(b, i);
                Kind::Number
            }
            b'.' if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                i = number_end(b, i);
                Kind::Number
            }
            _ if is_word_byte(c) => {
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                // A string prefix: E'…', N'…', B'…', X'…' (and U&'…').
                if b.get(i) == Some(&b'\'')
                    && matches!(
                        &b[start..i],
                        [b'e' | b'E' | b'n' | b'N' | b'b' | b'B' | b'x' | b'X']
                    )
                {
                    i = string_end(b, i + 1);
                    Kind::Str
                } else {
                    Kind::Word
                }
            }
            _ => {
                i += 1;
                Kind::Punct
            }
        };
        self.i = i;
        Some(Token {
            kind,
            start,
            end: i,
        })
    }
}

/// The end of a single-quoted string whose body starts at `i`: `''` and `\x` are escapes.
/// Backslashes escape in every string (MySQL's default, PostgreSQL's `E''`); in a standard
/// PostgreSQL string ending in `\` this runs on to the next quote, which over-redacts, the
/// safe way to be wrong.
fn string_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'\'' if b.get(i + 1) == Some(&b'\'') => i += 2,
            b'\'' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// `$tag$` at `i` (tag empty or an identifier not starting with a digit): its length.
fn dollar_tag(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] >= 0x80) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j + 1 - i)
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len().max(1))
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The end of a number starting at `i`: `0x…`, digits, fraction, exponent.
fn number_end(b: &[u8], mut i: usize) -> usize {
    if b[i] == b'0' && matches!(b.get(i + 1), Some(b'x' | b'X')) {
        i += 2;
        while i < b.len() && b[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            i = j;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    i
}

/// The statement with every literal (strings, dollar-quoted strings, numbers, hex) replaced by
/// `?`, comments removed and whitespace runs folded to one space. Identifiers (bare, `"quoted"`
/// or `` `quoted` ``), placeholders (`$1`, `?`, `:name`) and `TRUE`/`FALSE`/`NULL` stay;
/// `IN (?, ?, ?)` becomes `IN (?)`. Text past [`MAX_SQL`] bytes is dropped and ` …` appended.
pub fn sanitize(sql: &str) -> String {
    let (text, cut) = bounded(sql);
    let mut out = String::with_capacity(text.len().min(4096));
    let mut space = false;
    for t in lex(text) {
        match t.kind {
            Kind::Space | Kind::Comment => space = true,
            kind => {
                if space && !out.is_empty() {
                    out.push(' ');
                }
                space = false;
                match kind {
                    Kind::Str | Kind::Number => out.push('?'),
                    _ => out.push_str(text.get(t.start..t.end).unwrap_or("")),
                }
            }
        }
    }
    let mut out = collapse_in_lists(out);
    if cut {
        out.push_str(" …");
    }
    out
}

/// `IN (?, ?, …)` → `IN (?)`, case-insensitively.
fn collapse_in_lists(s: String) -> String {
    if !s.contains("?,") {
        return s;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 0;
    while i + 3 < b.len() {
        let at_word = i == 0 || !is_word_byte(b[i - 1]);
        if at_word && b[i..i + 2].eq_ignore_ascii_case(b"IN") && !is_word_byte(b[i + 2]) {
            let mut j = i + 2;
            if b.get(j) == Some(&b' ') {
                j += 1;
            }
            if b.get(j) == Some(&b'(') && b.get(j + 1) == Some(&b'?') {
                let list = j + 1;
                let mut k = list + 1;
                loop {
                    let mut m = k;
                    if b.get(m) == Some(&b',') {
                        m += 1;
                        if b.get(m) == Some(&b' ') {
                            m += 1;
                        }
                        if b.get(m) == Some(&b'?') {
                            k = m + 1;
                            continue;
                        }
                    }
                    break;
                }
                if b.get(k) == Some(&b')') && k > list + 1 {
                    out.push_str(s.get(last..=list).unwrap_or(""));
                    last = k;
                    i = k;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(s.get(last..).unwrap_or(""));
    out
}

/// A token of the first statement, for [`summarize`].
#[derive(Clone, Debug, PartialEq)]
enum Tok<'a> {
    Word(&'a str),
    Quoted(&'a str),
    Punct(u8),
    Literal,
}

/// The meaningful token at `t`, or `None` for space and comments; `;` is `Punct(b';')`.
fn tok<'a>(text: &'a str, t: Token) -> Option<Tok<'a>> {
    let s = text.get(t.start..t.end).unwrap_or("");
    Some(match t.kind {
        Kind::Space | Kind::Comment => return None,
        Kind::Word => Tok::Word(s),
        Kind::Quoted => Tok::Quoted(s.get(1..s.len().saturating_sub(1).max(1)).unwrap_or("")),
        Kind::Str | Kind::Number | Kind::Param => Tok::Literal,
        Kind::Punct => Tok::Punct(s.as_bytes().first().copied().unwrap_or(0)),
    })
}

/// The meaningful tokens of the first non-empty statement (up to a top-level `;`).
fn first_statement(sql: &str) -> Vec<Tok<'_>> {
    let (text, _) = bounded(sql);
    let mut toks = Vec::new();
    for t in lex(text) {
        match tok(text, t) {
            Some(Tok::Punct(b';')) if toks.is_empty() => {}
            Some(Tok::Punct(b';')) => break,
            Some(t) => toks.push(t),
            None => {}
        }
    }
    toks
}

/// How many statements `sql` holds (split at `;` outside strings, identifiers and comments;
/// empty ones not counted).
pub fn statement_count(sql: &str) -> usize {
    let (text, _) = bounded(sql);
    let mut count = 0;
    let mut empty = true;
    for t in lex(text) {
        match tok(text, t) {
            Some(Tok::Punct(b';')) => {
                count += usize::from(!empty);
                empty = true;
            }
            Some(_) => empty = false,
            None => {}
        }
    }
    count + usize::from(!empty)
}

/// The operation verb (`SELECT`, `INSERT`...) and the one table the first statement names, if
/// exactly one: `SELECT … FROM t` (no join, no comma, no second `FROM`), `INSERT INTO t`,
/// `UPDATE t`, `DELETE FROM t`, `CREATE TABLE t`, `DROP TABLE t`, `ALTER TABLE t`,
/// `TRUNCATE t`, `COPY t`. Names are kept as written (`public.users`), quotes stripped. A
/// `WITH` statement is named by its main verb, with no collection.
pub fn summarize(sql: &str) -> (Option<String>, Option<String>) {
    let toks = first_statement(sql);
    let toks = toks.as_slice();
    let Some(Tok::Word(first)) = toks.first() else {
        return (None, None);
    };
    let verb = first.to_ascii_uppercase();
    if verb == "WITH" {
        return (Some(main_verb(toks).unwrap_or(verb)), None);
    }
    let collection = collection(&verb, toks);
    (Some(verb), collection)
}

/// Longest query summary, as the conventions advise (255 characters).
const MAX_SUMMARY: usize = 255;
/// Verbs that start a (sub)statement inside another: `INSERT … SELECT`, `(SELECT …)`.
const NESTED_VERBS: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE"];
/// Words after which a statement's operation starts again (`… UNION SELECT …`).
const SET_WORDS: &[&str] = &["UNION", "INTERSECT", "EXCEPT", "ALL", "DISTINCT"];
/// Words followed by a table (or a list of tables).
const TARGET_WORDS: &[&str] = &["FROM", "JOIN", "INTO", "TABLE", "UPDATE"];

/// `db.query.summary` of the first statement, following the conventions' summary generation:
/// its operations and the tables they act on, in the order they appear (`SELECT 1` →
/// `SELECT`, `SELECT … FROM a JOIN b` → `SELECT a b`, `INSERT INTO t SELECT … FROM u` →
/// `INSERT t SELECT u`, `BEGIN` → `BEGIN`), at most 255 characters, cut at a word. `None`
/// for no statement, and for `WITH` (whose common table expressions are not tables).
pub fn query_summary(sql: &str) -> Option<String> {
    let toks = first_statement(sql);
    let Some(Tok::Word(first)) = toks.first() else {
        return None;
    };
    let verb = first.to_ascii_uppercase();
    if verb == "WITH" {
        return None;
    }
    let mut parts = vec![verb.clone()];
    // From the verb itself: `UPDATE t` names its table right after it.
    let mut i = 0;
    while let Some(t) = toks.get(i) {
        i += 1;
        let Tok::Word(w) = t else { continue };
        let up = w.to_ascii_uppercase();
        let after = toks.get(i.wrapping_sub(2));
        if NESTED_VERBS.contains(&up.as_str())
            && (matches!(after, Some(Tok::Punct(b'(')))
                || after.is_some_and(|p| SET_WORDS.iter().any(|k| is_kw(p, k)))
                || (up == "SELECT" && matches!(verb.as_str(), "INSERT" | "REPLACE" | "CREATE")))
        {
            parts.push(up);
        } else if TARGET_WORDS.contains(&up.as_str()) {
            // One table, or a comma-separated list of them (each maybe with an alias).
            let mut at = skip_words(&toks, i, &["ONLY", "IF", "NOT", "EXISTS"]);
            while let Some((name, next)) = name_at(&toks, at) {
                parts.push(name);
                at = next;
                if toks.get(at).is_some_and(|t| is_kw(t, "AS")) {
                    at += 1;
                }
                if let Some(Tok::Word(alias) | Tok::Quoted(alias)) = toks.get(at)
                    && !CLAUSE_WORDS.iter().any(|k| k.eq_ignore_ascii_case(alias))
                    && !is_kw(&Tok::Word(alias), "JOIN")
                {
                    at += 1;
                }
                if toks.get(at) != Some(&Tok::Punct(b',')) || up != "FROM" {
                    break;
                }
                at += 1;
            }
            i = at.max(i);
        }
    }
    let mut summary = String::new();
    for part in parts {
        if summary.len() + 1 + part.len() > MAX_SUMMARY {
            break;
        }
        if !summary.is_empty() {
            summary.push(' ');
        }
        summary.push_str(&part);
    }
    Some(summary).filter(|s| !s.is_empty())
}

fn is_kw(t: &Tok<'_>, kw: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

/// The first DML verb at parenthesis depth 0 after the CTEs of a `WITH`.
fn main_verb(toks: &[Tok<'_>]) -> Option<String> {
    let mut depth = 0i32;
    for t in toks.iter().skip(1) {
        match t {
            Tok::Punct(b'(') => depth += 1,
            Tok::Punct(b')') => depth -= 1,
            Tok::Word(w) if depth == 0 => {
                let up = w.to_ascii_uppercase();
                if matches!(
                    up.as_str(),
                    "SELECT" | "INSERT" | "UPDATE" | "DELETE" | "MERGE"
                ) {
                    return Some(up);
                }
            }
            _ => {}
        }
    }
    None
}

/// Words that end a table reference (cannot be an alias).
const CLAUSE_WORDS: &[&str] = &[
    "WHERE",
    "GROUP",
    "ORDER",
    "LIMIT",
    "OFFSET",
    "HAVING",
    "FOR",
    "WINDOW",
    "FETCH",
    "SET",
    "RETURNING",
    "VALUES",
    "DEFAULT",
    "SELECT",
    "ON",
    "TO",
    "FROM",
    "WITH",
    "OVERRIDING",
    "AS",
];

/// Words that mean a second table: the statement names more than one.
const MULTI_WORDS: &[&str] = &[
    "JOIN",
    "UNION",
    "INTERSECT",
    "EXCEPT",
    "USING",
    "NATURAL",
    "CROSS",
];

fn collection(verb: &str, toks: &[Tok<'_>]) -> Option<String> {
    let mut froms = 0;
    for t in toks {
        if let Tok::Word(w) = t {
            if w.eq_ignore_ascii_case("FROM") {
                froms += 1;
            } else if (4..=9).contains(&w.len())
                && MULTI_WORDS.iter().any(|kw| kw.eq_ignore_ascii_case(w))
            {
                return None;
            }
        }
    }
    let at = match verb {
        "SELECT" => {
            if froms != 1 {
                return None;
            }
            toks.iter().position(|t| is_kw(t, "FROM"))? + 1
        }
        "DELETE" => {
            if froms != 1 || !is_kw(toks.get(1)?, "FROM") {
                return None;
            }
            skip_words(toks, 2, &["ONLY"])
        }
        "INSERT" | "REPLACE" => {
            if froms != 0 {
                return None;
            }
            let into = toks.iter().position(|t| is_kw(t, "INTO"))?;
            into + 1
        }
        "UPDATE" => {
            if froms != 0 {
                return None;
            }
            skip_words(toks, 1, &["ONLY", "LOW_PRIORITY", "IGNORE"])
        }
        "CREATE" | "DROP" | "ALTER" => {
            let mut i = 1;
            while toks.get(i).is_some_and(|t| {
                ["TEMP", "TEMPORARY", "UNLOGGED", "GLOBAL", "LOCAL"]
                    .iter()
                    .any(|k| is_kw(t, k))
            }) {
                i += 1;
            }
            if !is_kw(toks.get(i)?, "TABLE") {
                return None;
            }
            skip_words(toks, i + 1, &["IF", "NOT", "EXISTS", "ONLY"])
        }
        "TRUNCATE" => skip_words(toks, 1, &["TABLE", "ONLY"]),
        "COPY" => 1,
        _ => return None,
    };
    let (name, next) = name_at(toks, at)?;
    // An alias, then something that must not be a second table or a call.
    let mut next = next;
    if toks.get(next).is_some_and(|t| is_kw(t, "AS")) {
        next += 1;
    }
    if let Some(Tok::Word(w)) | Some(Tok::Quoted(w)) = toks.get(next)
        && !CLAUSE_WORDS.iter().any(|k| k.eq_ignore_ascii_case(w))
        && verb != "COPY"
    {
        next += 1;
    }
    match toks.get(next) {
        Some(Tok::Punct(b',')) => None,
        Some(Tok::Punct(b'(')) if verb == "SELECT" || verb == "DELETE" => None,
        Some(Tok::Punct(b'(')) if verb == "DROP" || verb == "UPDATE" => None,
        _ if verb == "DROP" && toks.get(next..).unwrap_or(&[]).contains(&Tok::Punct(b',')) => None,
        _ => Some(name),
    }
}

fn skip_words(toks: &[Tok<'_>], mut i: usize, words: &[&str]) -> usize {
    while toks
        .get(i)
        .is_some_and(|t| words.iter().any(|w| is_kw(t, w)))
    {
        i += 1;
    }
    i
}

/// A possibly qualified name at `i` (`a`, `"a"`, `s.a`), quotes stripped, and the index after it.
fn name_at(toks: &[Tok<'_>], mut i: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    loop {
        match toks.get(i)? {
            Tok::Word(w)
                if name.is_empty() && CLAUSE_WORDS.iter().any(|k| k.eq_ignore_ascii_case(w)) =>
            {
                return None;
            }
            Tok::Word(w) | Tok::Quoted(w) => name.push_str(w),
            _ => return None,
        }
        i += 1;
        if toks.get(i) == Some(&Tok::Punct(b'.'))
            && matches!(toks.get(i + 1), Some(Tok::Word(_) | Tok::Quoted(_)))
        {
            name.push('.');
            i += 1;
        } else {
            return Some((name, i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_table() {
        let cases: &[(&str, &str)] = &[
            ("SELECT 1", "SELECT ?"),
            (
                "select * from t1 where id = 42",
                "select * from t1 where id = ?",
            ),
            (
                "SELECT a FROM t WHERE n = 'bob''s' AND x = 'y'",
                "SELECT a FROM t WHERE n = ? AND x = ?",
            ),
            (r"SELECT 'it\'s', E'a\nb', e'\''", "SELECT ?, ?, ?"),
            (
                "SELECT $$a 'b' c$$, $fn$ x $$ y $fn$ , 2",
                "SELECT ?, ? , ?",
            ),
            (
                "SELECT * FROM t WHERE a = $1 AND b = ? AND c = :name",
                "SELECT * FROM t WHERE a = $1 AND b = ? AND c = :name",
            ),
            (
                "SELECT 1.5, .5, 1e10, 2.5E-3, 0xFF, 1_000",
                "SELECT ?, ?, ?, ?, ?, ?",
            ),
            (
                "SELECT \"col 1\", `c2`, \"a\"\"b\" FROM \"T\"",
                "SELECT \"col 1\", `c2`, \"a\"\"b\" FROM \"T\"",
            ),
            (
                "SELECT /* hint 5 */ a -- trailing 7\n FROM t",
                "SELECT a FROM t",
            ),
            ("SELECT /* outer /* inner */ still */ 1", "SELECT ?"),
            ("  SELECT\n\t a ,\n b  ", "SELECT a , b"),
            (
                "SELECT * FROM t WHERE id IN (1, 2, 3)",
                "SELECT * FROM t WHERE id IN (?)",
            ),
            (
                "SELECT * FROM t WHERE id in (1,2)",
                "SELECT * FROM t WHERE id in (?)",
            ),
            (
                "INSERT INTO t VALUES (1, 'a')",
                "INSERT INTO t VALUES (?, ?)",
            ),
            ("SELECT x'FF', N'abc', B'101'", "SELECT ?, ?, ?"),
            (
                "UPDATE t SET a = TRUE, b = NULL",
                "UPDATE t SET a = TRUE, b = NULL",
            ),
            ("SELECT 'unterminated", "SELECT ?"),
            (
                "SELECT a1, t2.c3, x_9 FROM s1.t2",
                "SELECT a1, t2.c3, x_9 FROM s1.t2",
            ),
            ("SELECT -5", "SELECT -?"),
            (
                "SELECT 'é' || ñame FROM tablé",
                "SELECT ? || ñame FROM tablé",
            ),
            ("", ""),
        ];
        for (sql, want) in cases {
            assert_eq!(sanitize(sql), *want, "{sql:?}");
        }
    }

    #[test]
    fn sanitize_is_bounded() {
        let long = format!("SELECT '{}' , 1", "x".repeat(100_000));
        assert_eq!(sanitize(&long), "SELECT ? …");
        let multibyte = "é".repeat(40_000);
        assert!(sanitize(&multibyte).ends_with(" …"));
    }

    #[test]
    fn query_summaries() {
        let cases: &[(&str, Option<&str>)] = &[
            ("SELECT 1", Some("SELECT")),
            ("begin", Some("BEGIN")),
            (" COMMIT;", Some("COMMIT")),
            ("SET search_path = 'a'", Some("SET")),
            ("SELECT * FROM t WHERE a = 1", Some("SELECT t")),
            (
                "select a from public.t x join u on x.i = u.i",
                Some("SELECT public.t u"),
            ),
            ("SELECT * FROM a, b AS bb, c WHERE 1", Some("SELECT a b c")),
            (
                "SELECT * FROM songs WHERE id IN (SELECT id FROM artists)",
                Some("SELECT songs SELECT artists"),
            ),
            (
                "INSERT INTO t (a) SELECT a FROM u",
                Some("INSERT t SELECT u"),
            ),
            ("UPDATE t SET a = 1", Some("UPDATE t")),
            ("DELETE FROM t", Some("DELETE t")),
            (
                "SELECT a FROM x UNION ALL SELECT a FROM y",
                Some("SELECT x SELECT y"),
            ),
            ("CREATE TABLE IF NOT EXISTS t (a int)", Some("CREATE t")),
            ("WITH c AS (SELECT 1) SELECT * FROM c", None),
            ("", None),
            ("-- only a comment", None),
            ("'text'", None),
        ];
        for (sql, want) in cases {
            assert_eq!(query_summary(sql).as_deref(), *want, "{sql}");
        }
        let long = format!("SELECT * FROM {}", vec!["t123456789"; 40].join(" JOIN "));
        let summary = query_summary(&long).expect("summary");
        assert!(
            summary.len() <= 255 && summary.ends_with("t123456789"),
            "{summary}"
        );
    }

    #[test]
    fn summarize_table() {
        let cases: &[(&str, Option<&str>, Option<&str>)] = &[
            (
                "SELECT * FROM users WHERE id = 1",
                Some("SELECT"),
                Some("users"),
            ),
            (
                "select id from public.users u where u.id = $1",
                Some("SELECT"),
                Some("public.users"),
            ),
            (
                "SELECT * FROM \"Users\" AS u ORDER BY 1",
                Some("SELECT"),
                Some("Users"),
            ),
            (
                "SELECT * FROM a JOIN b ON a.id = b.id",
                Some("SELECT"),
                None,
            ),
            ("SELECT * FROM a, b", Some("SELECT"), None),
            ("SELECT * FROM a AS x, b", Some("SELECT"), None),
            ("SELECT * FROM a x, b y", Some("SELECT"), None),
            ("UPDATE users AS u SET a = 1", Some("UPDATE"), Some("users")),
            (
                "SELECT * FROM a WHERE id IN (SELECT id FROM b)",
                Some("SELECT"),
                None,
            ),
            ("SELECT 1", Some("SELECT"), None),
            ("SELECT count(*) FROM users", Some("SELECT"), Some("users")),
            ("SELECT * FROM generate_series(1, 3)", Some("SELECT"), None),
            (
                "INSERT INTO users (id, name) VALUES ($1, $2)",
                Some("INSERT"),
                Some("users"),
            ),
            ("insert into s.t values (1)", Some("INSERT"), Some("s.t")),
            ("INSERT INTO t SELECT * FROM u", Some("INSERT"), None),
            (
                "UPDATE users SET score = 1 WHERE id = 2",
                Some("UPDATE"),
                Some("users"),
            ),
            (
                "UPDATE t SET a = u.a FROM u WHERE t.id = u.id",
                Some("UPDATE"),
                None,
            ),
            (
                "DELETE FROM users WHERE id = 3",
                Some("DELETE"),
                Some("users"),
            ),
            (
                "DELETE FROM t USING u WHERE t.id = u.id",
                Some("DELETE"),
                None,
            ),
            (
                "CREATE TABLE IF NOT EXISTS t (id int)",
                Some("CREATE"),
                Some("t"),
            ),
            ("CREATE TEMP TABLE t (id int)", Some("CREATE"), Some("t")),
            ("CREATE INDEX i ON t (a)", Some("CREATE"), None),
            ("DROP TABLE IF EXISTS t", Some("DROP"), Some("t")),
            ("DROP TABLE a, b", Some("DROP"), None),
            ("ALTER TABLE t ADD COLUMN c int", Some("ALTER"), Some("t")),
            ("TRUNCATE TABLE t", Some("TRUNCATE"), Some("t")),
            (
                "COPY users (id, name) FROM STDIN",
                Some("COPY"),
                Some("users"),
            ),
            ("COPY (SELECT 1) TO STDOUT", Some("COPY"), None),
            ("begin", Some("BEGIN"), None),
            ("COMMIT", Some("COMMIT"), None),
            ("WITH x AS (SELECT 1) SELECT * FROM x", Some("SELECT"), None),
            (
                "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
                Some("INSERT"),
                None,
            ),
            (
                "/* c */ -- d\n SELECT * FROM t; DELETE FROM u",
                Some("SELECT"),
                Some("t"),
            ),
            ("", None, None),
            ("  ;  ", None, None),
            ("(SELECT 1)", None, None),
        ];
        for (sql, op, coll) in cases {
            let (got_op, got_coll) = summarize(sql);
            assert_eq!(
                (got_op.as_deref(), got_coll.as_deref()),
                (*op, *coll),
                "{sql:?}"
            );
        }
    }

    #[test]
    fn statement_count_table() {
        let cases: &[(&str, usize)] = &[
            ("SELECT 1", 1),
            ("SELECT 1;", 1),
            ("BEGIN; INSERT INTO t VALUES (';'); COMMIT", 3),
            ("SELECT $$;$$; -- ;\n SELECT 2", 2),
            ("", 0),
        ];
        for (sql, n) in cases {
            assert_eq!(statement_count(sql), *n, "{sql:?}");
        }
    }
}
