//! Custom bpftrace scripts as a data source: each script runs under the real `bpftrace`, and
//! every line its `printf` prints becomes a row of a table named after the script, exported as
//! an OTLP log record and shown in the live view.
//!
//! ```text
//!  bpftrace -f json (one child per script) ──stdout──▶ script thread ──▶ rows ──▶ OTLP logs (export::logs)
//!        ▲  (restarted with backoff when it exits)        │ stderr lines logged     └──▶ live view
//!        └──────────────── supervisor ◀───────────────────┘
//! ```
//!
//! Scripts follow Pixie's table rules, checked before they run ([`check`]); the agent rewrites
//! their `printf` formats so that each row splits back into its columns ([`format`]). A row
//! with a `pid` column sits under that process's Resource, other rows under the host's.

pub mod check;
pub mod format;
pub mod library;
pub mod row;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

pub use run::{ScriptCounters, Scripts, spawn};

/// Default path of the `bpftrace` binary.
pub const DEFAULT_BPFTRACE: &str = "/usr/bin/bpftrace";

/// The script source's configuration (flags `--script`, `--bpftrace`; config keys `script`,
/// `bpftrace`).
#[derive(Clone, Debug)]
pub struct ScriptsConfig {
    /// The scripts, checked.
    pub scripts: Vec<Script>,
    /// The `bpftrace` binary.
    pub bpftrace: PathBuf,
    /// First wait before a script that exited is started again; doubled at each exit in a
    /// row, up to [`max_backoff`](Self::max_backoff).
    pub min_backoff: Duration,
    /// Longest wait between two starts.
    pub max_backoff: Duration,
    /// Integer columns exported as metrics too, as (script, column).
    pub metrics: Vec<(Arc<str>, Arc<str>)>,
}

/// A script that passed the checker, ready to run.
#[derive(Clone, Debug)]
pub struct Script {
    /// Its name, which is its table's: the file name without `.bt`, or the shipped name.
    pub name: Arc<str>,
    /// Where it came from (a path, or `shipped`), for messages.
    pub origin: String,
    /// Its columns and rewritten text.
    pub checked: check::Checked,
}

/// A `--script` that cannot be run.
#[derive(Debug, Error)]
pub enum ScriptError {
    /// Neither a file, a directory, nor a shipped script's name.
    #[error(
        "script {0:?} is not a file, a directory or a shipped script (shipped: {shipped})",
        shipped = shipped_names()
    )]
    NotFound(String),
    /// A file or directory that cannot be read.
    #[error("cannot read script {path}")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A script that breaks a table rule.
    #[error(transparent)]
    Check(#[from] check::CheckError),
    /// Two scripts with the same name would write the same table.
    #[error("two scripts are named {0:?}: each script's name is its table's and must be unique")]
    Duplicate(String),
    /// A `--script-metric` that names no integer column of a script.
    #[error(
        "script metric {0:?} names no integer column of a script given (expected SCRIPT.COLUMN, the column from a %d, %i or %u conversion)"
    )]
    Metric(String),
    /// A directory without any `.bt` file.
    #[error("directory {0} holds no .bt script")]
    EmptyDirectory(PathBuf),
}

fn shipped_names() -> String {
    library::SCRIPTS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ScriptsConfig {
    /// Resolve and check every `--script` value: a shipped script's name, a `.bt` file, or a
    /// directory (its `.bt` files, in name order).
    /// `metrics` are `SCRIPT.COLUMN` names of integer columns, exported as metrics too.
    pub fn resolve(
        specs: &[String],
        metrics: &[String],
        bpftrace: PathBuf,
    ) -> Result<Self, ScriptError> {
        let mut scripts: Vec<Script> = Vec::new();
        for spec in specs {
            for (name, origin, text) in sources(spec)? {
                if scripts.iter().any(|s| *s.name == *name) {
                    return Err(ScriptError::Duplicate(name));
                }
                let checked = check::check(&name, &text)?;
                scripts.push(Script {
                    name: Arc::from(name.as_str()),
                    origin,
                    checked,
                });
            }
        }
        let mut declared = Vec::new();
        for spec in metrics {
            let found = spec.rsplit_once('.').and_then(|(table, column)| {
                let script = scripts.iter().find(|s| &*s.name == table)?;
                script
                    .checked
                    .columns
                    .iter()
                    .find(|c| c.name == column && c.kind == format::ColumnKind::Int)?;
                Some((Arc::clone(&script.name), Arc::from(column)))
            });
            declared.push(found.ok_or_else(|| ScriptError::Metric(spec.clone()))?);
        }
        Ok(Self {
            scripts,
            metrics: declared,
            bpftrace,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        })
    }
}

/// (name, origin, text) of every script `spec` names.
fn sources(spec: &str) -> Result<Vec<(String, String, String)>, ScriptError> {
    let path = Path::new(spec);
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| ScriptError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let name_of = |p: &Path| {
        p.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| ScriptError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "bt") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ScriptError::EmptyDirectory(path.to_owned()));
        }
        return files
            .iter()
            .map(|p| Ok((name_of(p), p.display().to_string(), read(p)?)))
            .collect();
    }
    if path.is_file() {
        return Ok(vec![(name_of(path), spec.to_owned(), read(path)?)]);
    }
    match library::shipped(spec) {
        Some(text) => Ok(vec![(spec.to_owned(), "shipped".into(), text.to_owned())]),
        None => Err(ScriptError::NotFound(spec.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_by_name_files_and_directories() {
        let config = ScriptsConfig::resolve(&["exec".into()], &[], DEFAULT_BPFTRACE.into())
            .expect("shipped script");
        assert_eq!(&*config.scripts[0].name, "exec");
        let dir = std::env::temp_dir().join(format!("wirelens-scripts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("a.bt"), "t:a:b { printf(\"x:%d\\n\", 1); }").expect("write");
        std::fs::write(dir.join("b.bt"), "t:a:b { printf(\"y:%d\\n\", 1); }").expect("write");
        let config = ScriptsConfig::resolve(&[dir.display().to_string()], &[], "bt".into())
            .expect("directory");
        let names: Vec<_> = config.scripts.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["a", "b"]);
        let twice = ScriptsConfig::resolve(
            &[
                dir.display().to_string(),
                dir.join("a.bt").display().to_string(),
            ],
            &[],
            "bt".into(),
        );
        assert!(matches!(twice, Err(ScriptError::Duplicate(n)) if n == "a"));
        assert!(matches!(
            ScriptsConfig::resolve(&["nope".into()], &[], "bt".into()),
            Err(ScriptError::NotFound(_))
        ));
        let sums = ScriptsConfig::resolve(&["exec".into()], &["exec.pid".into()], "bt".into())
            .expect("an integer column");
        assert_eq!(sums.metrics, [(Arc::from("exec"), Arc::from("pid"))]);
        for bad in ["exec.comm", "exec.nope", "nope.pid", "pid"] {
            assert!(matches!(
                ScriptsConfig::resolve(&["exec".into()], &[bad.into()], "bt".into()),
                Err(ScriptError::Metric(_))
            ));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
