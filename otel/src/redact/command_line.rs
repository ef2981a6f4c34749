//! A process's command line with its secrets replaced, for `process.command_line` when the
//! operator turns it on (it is off by default: a command line is where people put passwords).
//!
//! The rules, each replacing a value by `REDACTED` (or a SQL literal by `?`):
//! - a flag whose name says it holds a credential (`--password`, `--db-pass=`, `--token`,
//!   `--api-key`, `--auth`...): its `=value` or its next argument;
//! - `-pVALUE` glued to its flag (the MySQL/MariaDB client's password), `-a VALUE` (redis-cli);
//! - `-u`/`--user user:password` (curl): what follows the colon;
//! - `-H`/`--header 'Name: value'` whose name is a credential header (`Authorization`, `Cookie`,
//!   `X-Api-Key`...): the value;
//! - URLs with user info anywhere in an argument (`postgresql://u:pw@h/db`), and their
//!   credential query parameters;
//! - `name=value` words whose name is a credential (`password=` in a libpq conninfo,
//!   `PGPASSWORD=`...), and `Bearer`/`Basic` tokens;
//! - SQL given to a client (`psql -c`, `mysql -e`, `--command`, or an argument that starts with a
//!   SQL verb): literals become `?`, as in `db.query.text`; other code given that way
//!   (`python -c`, `sh -c`, `node -e`): its quoted strings become `'REDACTED'`;
//! - redis-cli's positional arguments after the command and its key (values, and `AUTH`'s
//!   password);
//! - long token-like words (24 or more letters and digits, mixing both, with no path in them).

use super::{REDACTED, is_denied_header, is_secret_name, redact_url};

/// Shortest word treated as a bare token by the last rule.
const MIN_TOKEN_LEN: usize = 24;

/// Flags of redis-cli that take a value (so the value is not taken for the command or key).
const REDIS_CLI_VALUE_FLAGS: &[&str] = &[
    "-h",
    "-p",
    "-s",
    "-a",
    "-u",
    "-r",
    "-i",
    "-n",
    "-d",
    "-D",
    "--user",
    "--pass",
    "--sni",
    "--cacert",
    "--cacertdir",
    "--cert",
    "--key",
    "--tls-ciphers",
    "--tls-ciphersuites",
];

/// SQL verbs that mark an argument as a statement.
const SQL_VERBS: &[&str] = &[
    "select", "insert", "update", "delete", "with", "call", "create", "alter", "drop", "grant",
    "set", "copy", "merge", "replace", "upsert", "truncate",
];

/// The command line `args` (the program first) joined by spaces, secrets redacted.
pub fn redact_command_line(args: &[String]) -> String {
    let Some((program, rest)) = args.split_first() else {
        return String::new();
    };
    let name = program.rsplit('/').next().unwrap_or(program);
    let redis_cli = name.starts_with("redis-cli") || name.starts_with("valkey-cli");
    let mut out = vec![redact_word(program)];
    out.extend(redact_args(rest.iter().map(String::as_str), redis_cli, 0));
    out.join(" ")
}

/// The rules over a list of arguments; an argument that holds several words (a shell
/// command given to `sh -c`, a conninfo string) is split at spaces and read the same way, once.
fn redact_args<'a>(args: impl Iterator<Item = &'a str>, redis_cli: bool, depth: u8) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = Next::Plain;
    let mut redis_positionals = 0usize;
    for arg in args {
        let this = std::mem::replace(&mut next, Next::Plain);
        let redacted = match this {
            Next::Secret => REDACTED.to_string(),
            Next::UserPassword => redact_user_password(arg),
            Next::Header => redact_header(arg),
            Next::Sql if starts_with_sql_verb(arg) => sanitize_sql(arg),
            Next::Sql => redact_words(&redact_quoted(arg), depth),
            Next::Value => redact_words(arg, depth),
            Next::Plain => {
                if arg.len() > 1 && arg.starts_with('-') {
                    next = next_after_flag(arg, redis_cli);
                    redact_flag(arg, depth)
                } else if redis_cli {
                    redis_positionals += 1;
                    if redis_positionals > 2 {
                        REDACTED.to_string()
                    } else {
                        redact_word(arg)
                    }
                } else if starts_with_sql_verb(arg) {
                    sanitize_sql(arg)
                } else {
                    if arg.eq_ignore_ascii_case("bearer") || arg.eq_ignore_ascii_case("basic") {
                        next = Next::Secret;
                    }
                    redact_words(arg, depth)
                }
            }
        };
        out.push(redacted);
    }
    out
}

/// One argument: its words through [`redact_args`] if it has several (once), else the word
/// rules.
fn redact_words(arg: &str, depth: u8) -> String {
    if depth == 0 && arg.contains(' ') {
        return redact_args(arg.split(' '), false, depth + 1).join(" ");
    }
    redact_word(arg)
}

/// What the argument after a flag is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    /// Any argument: the word rules apply.
    Plain,
    /// A flag's value that is not a secret by itself (the word rules apply, it is not a flag).
    Value,
    /// A credential: replaced whole.
    Secret,
    /// `user:password`.
    UserPassword,
    /// `Name: value`.
    Header,
    /// A SQL statement.
    Sql,
}

/// What the argument after `arg` (a flag without its `=value`) must be read as.
fn next_after_flag(arg: &str, redis_cli: bool) -> Next {
    // `--no-auth-warning`, `--no-password`: switches, never followed by their value.
    if arg.contains('=') || is_glued_password(arg) || arg.starts_with("--no-") {
        return Next::Plain;
    }
    match arg {
        "-u" | "--user" | "--proxy-user" => Next::UserPassword,
        "-H" | "--header" | "--proxy-header" => Next::Header,
        "-c" | "-e" | "--command" | "--execute" | "--eval" => Next::Sql,
        "-a" | "--pass" => Next::Secret,
        _ if is_secret_name(arg) => Next::Secret,
        _ if redis_cli && REDIS_CLI_VALUE_FLAGS.contains(&arg) => Next::Value,
        _ => Next::Plain,
    }
}

/// A flag argument (`-x`, `--name`, `--name=value`).
fn redact_flag(arg: &str, depth: u8) -> String {
    if let Some((name, value)) = arg.split_once('=') {
        if is_secret_name(name) {
            return format!("{name}={REDACTED}");
        }
        let value = match next_after_flag(name, false) {
            Next::UserPassword => redact_user_password(value),
            Next::Header => redact_header(value),
            Next::Sql if starts_with_sql_verb(value) => sanitize_sql(value),
            _ => redact_words(value, depth),
        };
        return format!("{name}={value}");
    }
    if is_glued_password(arg) {
        return format!("-p{REDACTED}");
    }
    redact_word(arg)
}

/// `-pSECRET`: the MySQL/MariaDB client's password glued to its flag.
fn is_glued_password(arg: &str) -> bool {
    arg.len() > 2 && arg.starts_with("-p")
}

/// `user:password` keeps the user.
fn redact_user_password(arg: &str) -> String {
    match arg.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => redact_word(arg),
    }
}

/// `Name: value` loses the value when the name is a credential header.
fn redact_header(arg: &str) -> String {
    match arg.split_once(':') {
        Some((name, _)) if is_denied_header(name.trim()) => format!("{name}: {REDACTED}"),
        _ => redact_words(arg, 1),
    }
}

/// A SQL statement with its literals replaced, by the same sanitiser as `db.query.text`.
fn sanitize_sql(arg: &str) -> String {
    wirelens_parsers::sql::sanitize(arg)
        .split(' ')
        .map(redact_word)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Code with the contents of its quoted strings (`'...'`, `"..."`) replaced.
fn redact_quoted(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut quote: Option<char> = None;
    for c in code.chars() {
        match quote {
            Some(q) if c == q => {
                out.push_str(REDACTED);
                out.push(c);
                quote = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
            }
        }
    }
    if quote.is_some() {
        out.push_str(REDACTED);
    }
    out
}

fn starts_with_sql_verb(arg: &str) -> bool {
    let first = arg
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    first.len() < arg.trim_start().len() && SQL_VERBS.iter().any(|v| v.eq_ignore_ascii_case(first))
}

/// One word: a URL with user info, a `name=value` credential, a long bare token.
fn redact_word(word: &str) -> String {
    if word.contains("://") {
        return redact_url(word);
    }
    if let Some((name, value)) = word.split_once('=') {
        let name_only = name.trim_start_matches('-');
        if !value.is_empty() && is_secret_name(name_only) {
            return format!("{name}={REDACTED}");
        }
        if looks_like_token(value) {
            return format!("{name}={REDACTED}");
        }
        return word.to_string();
    }
    if looks_like_token(word) {
        return REDACTED.to_string();
    }
    word.to_string()
}

/// A long run of letters and digits mixing both (API keys, JWTs, hex secrets), not a path.
fn looks_like_token(word: &str) -> bool {
    let word = word.trim_matches(|c: char| c == '"' || c == '\'' || c == ',' || c == ';');
    if word.len() < MIN_TOKEN_LEN || word.contains('/') && !word.contains('+') {
        return false;
    }
    let allowed = word
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/_-.=~".contains(&b));
    let digits = word.bytes().filter(u8::is_ascii_digit).count();
    let letters = word.bytes().filter(u8::is_ascii_alphabetic).count();
    allowed && digits >= 2 && letters >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(cmd: &[&str]) -> String {
        let args: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        redact_command_line(&args)
    }

    #[test]
    fn clients_from_the_issue() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["psql", "-c", "INSERT INTO t VALUES ('secret', 42)"],
                "psql -c INSERT INTO t VALUES (?, ?)",
            ),
            (
                &[
                    "mysql",
                    "-u",
                    "root",
                    "-pPASSWORD",
                    "-h",
                    "127.0.0.1",
                    "shop",
                ],
                "mysql -u root -pREDACTED -h 127.0.0.1 shop",
            ),
            (
                &["curl", "-u", "user:pass", "http://127.0.0.1:8080/x"],
                "curl -u user:REDACTED http://127.0.0.1:8080/x",
            ),
            (
                &[
                    "curl",
                    "--user",
                    "alice:s3cr3t",
                    "-H",
                    "Authorization: Bearer abc",
                    "u",
                ],
                "curl --user alice:REDACTED -H Authorization: REDACTED u",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(redact(cmd), *want, "{cmd:?}");
        }
    }

    #[test]
    fn credential_flags_urls_and_words() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["app", "--db-password=hunter2", "--port=80"],
                "app --db-password=REDACTED --port=80",
            ),
            (
                &["app", "--token", "t0k", "--verbose"],
                "app --token REDACTED --verbose",
            ),
            (
                &["psql", "postgresql://bob:pw@db:5432/shop?sslmode=require"],
                "psql postgresql://REDACTED:REDACTED@db:5432/shop?sslmode=require",
            ),
            (
                &["psql", "host=db user=bob password=pw dbname=shop"],
                "psql host=db user=bob password=REDACTED dbname=shop",
            ),
            (
                &["env", "PGPASSWORD=pw", "API_KEY=k", "PATH=/bin"],
                "env PGPASSWORD=REDACTED API_KEY=REDACTED PATH=/bin",
            ),
            (
                &["app", "--header=X-Trace: 1", "Bearer eyJabc"],
                "app --header=X-Trace: 1 Bearer REDACTED",
            ),
            (
                &["worker", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"],
                "worker REDACTED",
            ),
            (&["nginx: worker process"], "nginx: worker process"),
            (
                &[
                    "/usr/bin/python3",
                    "/srv/app/manage.py",
                    "runserver",
                    "--settings=app.prod",
                ],
                "/usr/bin/python3 /srv/app/manage.py runserver --settings=app.prod",
            ),
        ];
        for (cmd, want) in cases {
            assert_eq!(redact(cmd), *want, "{cmd:?}");
        }
    }

    #[test]
    fn shell_commands_and_flag_values() {
        assert_eq!(
            redact(&["sh", "-c", "mysql -pSECRET -u root shop"]),
            "sh -c mysql -pREDACTED -u root shop"
        );
        assert_eq!(
            redact(&["curl", "--header=Cookie: sid=abc", "--user=bob:pw"]),
            "curl --header=Cookie: REDACTED --user=bob:REDACTED"
        );
    }

    #[test]
    fn code_arguments_lose_their_strings() {
        assert_eq!(
            redact(&[
                "python3",
                "-c",
                "connect('nats://app:pw@h'); send(b\"body\")"
            ]),
            "python3 -c connect('REDACTED'); send(b\"REDACTED\")"
        );
        assert_eq!(
            redact(&["node", "-e", "x('unclosed"]),
            "node -e x('REDACTED"
        );
    }

    #[test]
    fn redis_cli_keeps_command_and_key() {
        assert_eq!(
            redact(&[
                "redis-cli",
                "-h",
                "127.0.0.1",
                "-p",
                "6379",
                "-a",
                "pw",
                "--no-auth-warning",
                "SET",
                "k",
                "v"
            ]),
            "redis-cli -h 127.0.0.1 -p 6379 -a REDACTED --no-auth-warning SET k REDACTED"
        );
        assert_eq!(
            redact(&["redis-cli", "AUTH", "default", "hunter2"]),
            "redis-cli AUTH default REDACTED"
        );
    }

    #[test]
    fn sql_arguments() {
        assert_eq!(
            redact(&["sqlite3", "db", "SELECT * FROM u WHERE pw = 'x'"]),
            "sqlite3 db SELECT * FROM u WHERE pw = ?"
        );
        assert_eq!(
            redact(&["mariadb", "-e", "UPDATE u SET pw='x' WHERE id=3"]),
            "mariadb -e UPDATE u SET pw=? WHERE id=?"
        );
        // A word that happens to be a verb is not a statement.
        assert_eq!(redact(&["git", "merge"]), "git merge");
    }

    #[test]
    fn paths_and_short_words_stay() {
        assert_eq!(
            redact(&[
                "/usr/lib/postgresql/15/bin/postgres",
                "-D",
                "/var/lib/postgresql/15/main"
            ]),
            "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main"
        );
        assert_eq!(redact(&[]), "");
    }
}
