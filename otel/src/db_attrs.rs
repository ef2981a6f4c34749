//! Database record fields → semantic-convention values, shared by spans and metrics.
//!
//! Follows the stable database conventions (semconv 1.33+): the span name is `db.query.summary`
//! when there is one, else `{db.operation.name} {target}`, else `{target}`, else
//! `db.system.name`. Only `db.collection.name` is used as `{target}`: the conventions' other
//! targets (`db.namespace` for operations on a database, `server.address:server.port` for
//! operations on no database) depend on what the operation is, which the record does not say,
//! and the conventions ask to omit a target that is not known.

use std::borrow::Cow;
use std::net::SocketAddr;

use wirelens_parsers::{DbRecord, DbSystem, Role};

use crate::semconv;

/// Whether the system's statements are SQL-like text whose literals [`sanitize`] replaces
/// (CQL included).
///
/// [`sanitize`]: wirelens_parsers::sql::sanitize
fn is_sql(system: DbSystem) -> bool {
    match system {
        DbSystem::MySql | DbSystem::MariaDb | DbSystem::PostgreSql | DbSystem::Cassandra => true,
        DbSystem::Redis => false,
    }
}

/// A non-empty trimmed value.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

/// `db.operation.name`.
pub(crate) fn operation(db: &DbRecord) -> Option<&str> {
    present(db.operation.as_deref())
}

/// `db.collection.name`.
pub(crate) fn collection(db: &DbRecord) -> Option<&str> {
    present(db.collection.as_deref())
}

/// `db.namespace`.
pub(crate) fn namespace(db: &DbRecord) -> Option<&str> {
    present(db.namespace.as_deref())
}

/// `db.query.summary`: `{operation} {collection}` when the statement acts on one known table;
/// otherwise, for SQL and CQL, the summary generated from the statement's text (its operations
/// and tables in order: `SELECT 1` → `SELECT`, a join → `SELECT a b`), as the conventions
/// describe. Redis commands get none (the Redis conventions do not list the attribute), nor
/// does an operation whose statement text is not on the wire.
pub(crate) fn query_summary(db: &DbRecord) -> Option<String> {
    let operation = operation(db)?;
    if let Some(collection) = collection(db) {
        return Some(format!("{operation} {collection}"));
    }
    if !is_sql(db.system) {
        return None;
    }
    wirelens_parsers::sql::query_summary(present(db.query_text.as_deref())?)
}

/// The span name: `db.query.summary`, else `db.operation.name`, else `db.collection.name`,
/// else `db.system.name`.
pub(crate) fn span_name(db: &DbRecord) -> String {
    if let Some(summary) = query_summary(db) {
        return summary;
    }
    operation(db)
        .or_else(|| collection(db))
        .unwrap_or(db.system.as_str())
        .to_owned()
}

/// `db.query.text`: literals replaced by `?` for SQL and CQL, Redis text as the parser kept it
/// (command and key, never values); the statement as sent only when `raw` is set.
pub(crate) fn query_text(db: &DbRecord, raw: bool) -> Option<String> {
    let text = present(db.query_text.as_deref())?;
    let text = if raw || !is_sql(db.system) {
        text.to_owned()
    } else {
        wirelens_parsers::sql::sanitize(text)
    };
    Some(text).filter(|t| !t.trim().is_empty())
}

/// `db.response.status_code`, when the response ended with a warning or an error: every code
/// except the success class `00` (SQLSTATE `00000`).
pub(crate) fn status_code(db: &DbRecord) -> Option<&str> {
    present(db.status_code.as_deref()).filter(|c| !c.starts_with("00"))
}

/// `error.type` when the operation failed: its status code, else `_OTHER`.
pub(crate) fn error_type(db: &DbRecord) -> Option<Cow<'_, str>> {
    if !db.is_error() {
        return None;
    }
    Some(match status_code(db) {
        Some(code) => Cow::Borrowed(code),
        None => Cow::Borrowed(semconv::ERROR_TYPE_OTHER),
    })
}

/// The database server's end of the connection (`server.address`, `server.port`): the peer for
/// a client, the traced process's own address for the database itself.
pub(crate) fn server_endpoint(
    role: Role,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
) -> Option<SocketAddr> {
    match role {
        Role::Client => peer,
        Role::Server => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(system: DbSystem) -> DbRecord {
        DbRecord::new(system)
    }

    #[test]
    fn names() {
        let mut db = record(DbSystem::PostgreSql);
        assert_eq!(span_name(&db), "postgresql");
        db.collection = Some("users".into());
        assert_eq!(span_name(&db), "users");
        db.operation = Some("SELECT".into());
        assert_eq!(span_name(&db), "SELECT users");
        assert_eq!(query_summary(&db).as_deref(), Some("SELECT users"));
        db.collection = Some(" ".into());
        assert_eq!(span_name(&db), "SELECT");
        assert_eq!(query_summary(&db), None, "no statement: no summary");
        db.query_text = Some("SELECT a FROM x JOIN y ON x.i = y.i".into());
        assert_eq!(query_summary(&db).as_deref(), Some("SELECT x y"));
        db.query_text = Some("SELECT 1".into());
        assert_eq!(query_summary(&db).as_deref(), Some("SELECT"));
        let mut redis = record(DbSystem::Redis);
        redis.operation = Some("PING".into());
        redis.query_text = Some("PING".into());
        assert_eq!(query_summary(&redis), None, "not for Redis");
    }

    #[test]
    fn errors() {
        let mut db = record(DbSystem::PostgreSql);
        db.status_code = Some("00000".into());
        assert_eq!((status_code(&db), error_type(&db)), (None, None));
        db.status_code = Some("42P01".into());
        assert_eq!(status_code(&db), Some("42P01"));
        assert_eq!(error_type(&db).as_deref(), Some("42P01"));
        db.status_code = None;
        db.error_message = Some("boom".into());
        assert_eq!(error_type(&db).as_deref(), Some("_OTHER"));
    }

    #[test]
    fn query_texts() {
        let mut db = record(DbSystem::Redis);
        assert_eq!(query_text(&db, false), None);
        db.query_text = Some("GET session:1".into());
        assert_eq!(query_text(&db, false).as_deref(), Some("GET session:1"));
        let mut sql = record(DbSystem::MySql);
        let statement = "SELECT * FROM t WHERE name = 'bob'";
        sql.query_text = Some(statement.into());
        assert_eq!(
            query_text(&sql, false),
            Some(wirelens_parsers::sql::sanitize(statement))
        );
        assert_eq!(query_text(&sql, true).as_deref(), Some(statement));
    }

    #[test]
    fn server_side() {
        let local: SocketAddr = "10.0.0.1:5432".parse().expect("addr");
        let peer: SocketAddr = "10.0.0.9:40000".parse().expect("addr");
        assert_eq!(
            server_endpoint(Role::Server, Some(local), Some(peer)),
            Some(local)
        );
        assert_eq!(
            server_endpoint(Role::Client, Some(peer), Some(local)),
            Some(local)
        );
    }
}
