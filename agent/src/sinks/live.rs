//! The live view: one line (text or JSON) per request, and per row of a bpftrace script, on
//! stdout, printed by its own thread so a slow terminal or pipe never stalls the reader; when it
//! falls behind, lines are dropped and counted.

use std::{
    io::{BufWriter, Write},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, UNIX_EPOCH},
};

use serde_json::json;
use wirelens_otel::{
    Observation,
    logs::{RowValue, ScriptRow},
    redact::redact_target,
};
use wirelens_parsers::{Detail, Role};

use crate::{cli::OutputFormat, conntrack::role_name, stats::Stats};

/// Lines queued for printing before the live view starts dropping.
const QUEUE: usize = 8192;

/// What the printer prints.
enum Item {
    /// The requests of one drain of the ring, in order: one hand-over (and at most one wake-up
    /// of the printer) per drain, not per request.
    Requests(Vec<Observation>),
    /// A row of a script's table.
    Row(ScriptRow),
}

/// The reader's (and the script source's) end of the live view.
#[derive(Clone)]
pub struct LiveSender {
    tx: mpsc::Sender<Item>,
    /// Lines handed over and not printed yet: bounds the queue (the channel itself is not, so
    /// that a batch is one message).
    queued: Arc<AtomicUsize>,
    stats: Arc<Stats>,
}

impl LiveSender {
    /// Queue a batch of observations for printing; drops (and counts) the whole batch when the
    /// printer is behind.
    pub fn send_batch(&self, batch: Vec<Observation>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        if !self.admit(n) || self.tx.send(Item::Requests(batch)).is_err() {
            Stats::add(&self.stats.live_dropped, n as u64);
        }
    }

    /// Queue a script's row for printing; drops (and counts) it when the printer is behind.
    pub fn send_row(&self, row: &ScriptRow) {
        if !self.admit(1) || self.tx.send(Item::Row(row.clone())).is_err() {
            Stats::add(&self.stats.live_dropped, 1);
        }
    }

    /// Room for `n` more lines: counted as queued when there is.
    fn admit(&self, n: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q + n <= QUEUE).then_some(q + n)
            })
            .is_ok()
    }
}

/// Start the printer thread.
pub fn spawn(
    format: OutputFormat,
    stats: Arc<Stats>,
) -> std::io::Result<(LiveSender, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<Item>();
    let queued = Arc::new(AtomicUsize::new(0));
    let printed = queued.clone();
    let handle = std::thread::Builder::new()
        .name("wirelens-live".into())
        .spawn(move || {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(64 * 1024, stdout.lock());
            while let Ok(first) = rx.recv() {
                let mut next = Some(first);
                while let Some(item) = next {
                    let (lines, written) = match item {
                        Item::Requests(batch) => (
                            batch.len(),
                            batch
                                .iter()
                                .try_for_each(|obs| write_line(&mut w, format, obs)),
                        ),
                        Item::Row(row) => {
                            let line = match format {
                                OutputFormat::Json => row_json_line(&row),
                                _ => row_text_line(&row),
                            };
                            (1, writeln!(w, "{line}"))
                        }
                    };
                    printed.fetch_sub(lines, Ordering::AcqRel);
                    if written.is_err() {
                        return;
                    }
                    next = rx.try_recv().ok();
                }
                if w.flush().is_err() {
                    return;
                }
            }
        })?;
    Ok((LiveSender { tx, queued, stats }, handle))
}

/// One request's line, in `format`, straight into the output buffer.
fn write_line(w: &mut impl Write, format: OutputFormat, obs: &Observation) -> std::io::Result<()> {
    match format {
        OutputFormat::Json => writeln!(w, "{}", json_line(obs)),
        _ => {
            write_text_line(w, obs)?;
            w.write_all(b"\n")
        }
    }
}

/// `HH:MM:SS.mmm  script exec  pid=812 comm=bash filename=/usr/bin/ls`
pub fn row_text_line(row: &ScriptRow) -> String {
    let secs = row.time_unix_nano / 1_000_000_000;
    let ms = (row.time_unix_nano / 1_000_000) % 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let mut line = format!("{h:02}:{m:02}:{s:02}.{ms:03}  script {} ", row.table);
    for (name, value) in &row.columns {
        match value {
            RowValue::Int(v) => line.push_str(&format!(" {name}={v}")),
            RowValue::Text(v) => line.push_str(&format!(" {name}={v}")),
        }
    }
    line
}

/// `{"script":"exec","time_unix_nano":...,"columns":{"pid":812,...}}`
pub fn row_json_line(row: &ScriptRow) -> String {
    let columns: serde_json::Map<String, serde_json::Value> = row
        .columns
        .iter()
        .map(|(name, value)| {
            let v = match value {
                RowValue::Int(v) => json!(v),
                RowValue::Text(v) => json!(v),
            };
            (name.to_string(), v)
        })
        .collect();
    json!({
        "script": &*row.table,
        "time_unix_nano": row.time_unix_nano,
        "columns": columns,
    })
    .to_string()
}

fn addr(a: Option<std::net::SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_else(|| "-".into())
}

/// `HH:MM:SS.mmm  nginx[812] server http1  GET /index.html -> 200  0.42 ms  127.0.0.1:50312`
pub fn text_line(obs: &Observation) -> String {
    let mut line = Vec::with_capacity(128);
    // Writing into a Vec cannot fail.
    let _ = write_text_line(&mut line, obs);
    String::from_utf8_lossy(&line).into_owned()
}

/// [`text_line`], written piece by piece into `w` (no intermediate strings: the live view
/// prints one per request).
pub fn write_text_line(w: &mut impl Write, obs: &Observation) -> std::io::Result<()> {
    let r = &obs.record;
    let secs = r.start_ns / 1_000_000_000;
    let ms = (r.start_ns / 1_000_000) % 1000;
    let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let duration_ms = r.end_ns.saturating_sub(r.start_ns) as f64 / 1e6;
    write!(
        w,
        "{h:02}:{m:02}:{s:02}.{ms:03}  {}[{}] {} {}  ",
        obs.process.executable_name,
        obs.process.pid,
        role_name(r.role),
        r.protocol.name(),
    )?;
    match &r.detail {
        Detail::Http(http) => {
            write!(w, "{} {} -> ", http.method, redact_target(&http.target))?;
            match http.status {
                Some(status) => write!(w, "{status}")?,
                None => w.write_all(b"-")?,
            }
        }
        Detail::Db(db) => {
            let what = db.operation.as_deref().unwrap_or("?");
            let status = if db.is_error() {
                db.status_code.as_deref().unwrap_or("error")
            } else {
                "ok"
            };
            write!(
                w,
                "{} {what} {} -> {status}",
                db.system.as_str(),
                db.collection.as_deref().unwrap_or("")
            )?;
        }
        Detail::Messaging(m) => {
            let status = m.error_type.as_deref().unwrap_or("ok");
            write!(
                w,
                "{} {} {} -> {status}",
                m.system.as_str(),
                m.operation_name,
                m.destination.as_deref().unwrap_or("")
            )?;
        }
        Detail::Dns(dns) => {
            write!(
                w,
                "{} {} -> {} ",
                dns.question_type,
                dns.question_name,
                dns.response_code.as_deref().unwrap_or("-"),
            )?;
            for (i, answer) in dns.answers.iter().enumerate() {
                if i > 0 {
                    w.write_all(b",")?;
                }
                w.write_all(answer.as_bytes())?;
            }
        }
        Detail::Rpc(rpc) => write!(
            w,
            "{} {}/{} -> {}",
            rpc.system.as_str(),
            rpc.service.as_deref().unwrap_or("?"),
            rpc.method.as_deref().unwrap_or("?"),
            rpc.status_name().unwrap_or("-")
        )?,
    }
    let arrow = if r.role == Role::Server { "<-" } else { "->" };
    write!(w, "  {duration_ms:.2} ms  {arrow} ")?;
    match obs.peer {
        Some(peer) => write!(w, "{peer}"),
        None => w.write_all(b"-"),
    }
}

/// One JSON object describing the exchange.
pub fn json_line(obs: &Observation) -> String {
    let r = &obs.record;
    let time = humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_nanos(r.start_ns));
    let mut v = json!({
        "time": time.to_string(),
        "pid": obs.process.pid,
        "comm": obs.process.executable_name,
        "service": obs.process.service_name,
        "role": role_name(r.role),
        "protocol": r.protocol.name(),
        "duration_ms": r.end_ns.saturating_sub(r.start_ns) as f64 / 1e6,
        "local": addr(obs.local),
        "peer": addr(obs.peer),
        "request_bytes": r.request_bytes,
        "response_bytes": r.response_bytes,
    });
    match &r.detail {
        Detail::Http(http) => {
            v["method"] = json!(http.method);
            v["target"] = json!(redact_target(&http.target));
            v["status"] = json!(http.status);
            v["version"] = json!(http.version.map(|v| v.as_str()));
            v["host"] = json!(http.host);
        }
        Detail::Db(db) => {
            v["db_system"] = json!(db.system.as_str());
            v["operation"] = json!(db.operation);
            v["collection"] = json!(db.collection);
            v["namespace"] = json!(db.namespace);
            v["status_code"] = json!(db.status_code);
            v["error"] = json!(db.is_error());
        }
        Detail::Messaging(m) => {
            v["messaging_system"] = json!(m.system.as_str());
            v["operation"] = json!(m.operation_name);
            v["operation_type"] = json!(m.operation.as_str());
            v["destination"] = json!(m.destination);
            v["partition"] = json!(m.partition);
            v["routing_key"] = json!(m.routing_key);
            v["message_count"] = json!(m.message_count);
            v["error"] = json!(m.error_type);
        }
        Detail::Dns(dns) => {
            v["dns_id"] = json!(dns.id);
            v["question_name"] = json!(dns.question_name);
            v["question_type"] = json!(dns.question_type);
            v["response_code"] = json!(dns.response_code);
            v["answers"] = json!(dns.answers);
            v["error"] = json!(dns.is_error());
        }
        Detail::Rpc(rpc) => {
            v["rpc_system"] = json!(rpc.system.as_str());
            v["service"] = json!(rpc.service);
            v["method"] = json!(rpc.method);
            v["status_code"] = json!(rpc.status_code);
            v["status"] = json!(rpc.status_name());
            v["error"] = json!(rpc.is_error());
        }
    }
    v.to_string()
}
