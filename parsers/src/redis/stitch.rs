//! Commands and replies → [`Record`]s. Redis answers commands in the order they were sent, so
//! pairing is first in, first out, pipelining included; what is not a reply (pub/sub messages,
//! RESP3 pushes, MONITOR's feed) is told apart and set aside, and after a loss of sync replies
//! are discarded until the two directions can be realigned.

use std::collections::VecDeque;

use super::infer::{CONTAINERS, KEY_FIRST, in_table};
use super::types::{Command, Message, Type};
use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::{DbRecord, DbSystem, Detail, Record, Role};

/// Most commands waiting for a reply; beyond it the oldest is dropped as unmatched.
pub const MAX_PENDING: usize = 4096;

/// One command waiting for its reply (or replies: one per channel for `SUBSCRIBE`).
#[derive(Debug)]
struct Pending {
    cmd: Command,
    start_ns: u64,
    request_bytes: u64,
    /// Pub/sub confirmations still expected, for the (un)subscribe family.
    confirmations: u64,
    /// Bytes of the confirmations already seen.
    response_bytes: u64,
    /// For `EXEC`: commands queued since `MULTI`.
    batch: Option<u64>,
}

/// Pairs commands with replies for one connection.
#[derive(Debug)]
pub(crate) struct Stitcher {
    pending: VecDeque<Pending>,
    /// Database index selected (`SELECT`), as text.
    namespace: String,
    /// RESP2 subscribed state: `message`/`pmessage` arrays are not replies.
    pubsub: bool,
    /// After `MONITOR`: the server only streams what it executes.
    monitor: bool,
    /// Commands queued since `MULTI`, while a transaction is open.
    multi: Option<u64>,
    /// Sync was lost: replies are not paired until [`Stitcher::try_realign`].
    misaligned: bool,
    /// When sync was last lost.
    loss_ns: u64,
    /// When the last byte of the reply direction was moved.
    last_reply_ns: u64,
    /// Server pushes and pub/sub messages set aside (not a loss).
    pushes: u64,
    tables: TableCache,
}

impl Stitcher {
    /// Nothing pending, database 0.
    pub fn new() -> Self {
        Self {
            pending: VecDeque::new(),
            namespace: "0".to_owned(),
            pubsub: false,
            monitor: false,
            multi: None,
            misaligned: false,
            loss_ns: 0,
            last_reply_ns: 0,
            pushes: 0,
            tables: TableCache::default(),
        }
    }

    /// Server pushes and pub/sub messages seen and set aside.
    pub fn pushes(&self) -> u64 {
        self.pushes
    }

    /// A complete command.
    pub fn request(&mut self, msg: &Message, out: &mut Output) {
        if !msg.is_command_shaped() {
            out.lose(Loss::Malformed, 1);
            return;
        }
        let cmd = command(msg, &mut self.tables);
        let mut batch = None;
        match cmd.operation.as_str() {
            "MULTI" => self.multi = Some(0),
            "EXEC" => batch = Some(self.multi.take().unwrap_or(0)),
            "DISCARD" => self.multi = None,
            _ => {
                if let Some(n) = &mut self.multi {
                    *n += 1;
                }
            }
        }
        let confirmations = match cmd.operation.as_str() {
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" => cmd.arg_count.max(1) as u64,
            // Without channels, one confirmation per channel subscribed: the first ends it,
            // later ones are set aside like pushes.
            "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => cmd.arg_count.max(1) as u64,
            _ => 0,
        };
        if self.pending.len() >= MAX_PENDING && self.pending.pop_front().is_some() {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        self.pending.push_back(Pending {
            cmd,
            start_ns: msg.start_ns,
            request_bytes: msg.wire_len,
            confirmations,
            response_bytes: 0,
            batch,
        });
    }

    /// A complete reply or push.
    pub fn response(&mut self, msg: &Message, role: Role, out: &mut Output) {
        self.last_reply_ns = self.last_reply_ns.max(msg.end_ns);
        if self.monitor {
            self.pushes += 1;
            return;
        }
        let word = pubsub_word(msg);
        if let Some(word) = word.filter(|w| w.is_confirmation()) {
            // The third element is the number of subscriptions left.
            let subscribed = msg.args.get(2).is_none_or(|n| n != b"0");
            let was_subscribed = self.pubsub;
            if self.pubsub || msg.ty == Some(Type::Array) {
                self.pubsub = subscribed;
            }
            if let Some(front) = self.pending.front_mut()
                && !self.misaligned
                && front.confirmations > 0
                && word.confirms(&front.cmd.operation)
            {
                front.response_bytes = front.response_bytes.saturating_add(msg.wire_len);
                front.confirmations -= 1;
                if front.confirmations == 0 {
                    let end = msg.end_ns;
                    if let Some(p) = self.pending.pop_front() {
                        let bytes = p.response_bytes;
                        out.push(self.record(p, msg, bytes, end, role));
                    }
                }
                return;
            }
            if msg.ty == Some(Type::Push) || was_subscribed || subscribed {
                self.pushes += 1;
                return;
            }
        }
        if msg.ty == Some(Type::Push) || (self.pubsub && word.is_some()) {
            self.pushes += 1;
            return;
        }
        if self.misaligned {
            out.lose(Loss::UnmatchedResponse, 1);
            return;
        }
        let Some(p) = self.pending.pop_front() else {
            out.lose(Loss::UnmatchedResponse, 1);
            return;
        };
        let ok = msg.ty == Some(Type::Simple) && msg.text == b"OK";
        match p.cmd.operation.as_str() {
            "SELECT" if ok => {
                if let Some(db) = &p.cmd.first_arg {
                    self.namespace.clone_from(db);
                }
            }
            "MONITOR" if ok => self.monitor = true,
            "RESET" => {
                self.namespace = "0".to_owned();
                self.pubsub = false;
                self.multi = None;
            }
            _ => {}
        }
        let bytes = p.response_bytes.saturating_add(msg.wire_len);
        let end = msg.end_ns;
        out.push(self.record(p, msg, bytes, end, role));
    }

    /// Sync was lost in either direction at `ts`: how many commands went unseen, or which
    /// replies were missed, cannot be known, so every waiting command is dropped, and replies
    /// are set aside until [`Stitcher::try_realign`].
    pub fn lost(&mut self, ts: u64, out: &mut Output) {
        out.lose(Loss::UnmatchedRequest, self.pending.len() as u64);
        self.pending.clear();
        self.multi = None;
        self.misaligned = true;
        self.loss_ns = ts;
    }

    /// Called when a reply feed starts at a message boundary: whether replies pair with
    /// commands again from here. Commands sent no later than the loss, or before a reply byte
    /// that came since, may have had their reply missed: they are dropped. Then yes if the
    /// server has sent something since the loss (it answered what was lost) and a command sent
    /// after all that waits, so every reply still to come answers a command seen.
    pub fn try_realign(&mut self, out: &mut Output) -> bool {
        if !self.misaligned {
            return false;
        }
        while self
            .pending
            .front()
            .is_some_and(|p| p.start_ns <= self.loss_ns || p.start_ns < self.last_reply_ns)
        {
            self.pending.pop_front();
            out.lose(Loss::UnmatchedRequest, 1);
        }
        let ready = self.last_reply_ns > self.loss_ns && !self.pending.is_empty();
        if ready {
            self.misaligned = false;
        }
        ready
    }

    /// Bytes of the reply direction were moved at `ts` (seen, skipped or discarded).
    pub fn reply_bytes_at(&mut self, ts: u64) {
        self.last_reply_ns = self.last_reply_ns.max(ts);
    }

    /// The connection is gone: what waits is unmatched.
    pub fn close(&mut self, out: &mut Output) {
        out.lose(Loss::UnmatchedRequest, self.pending.len() as u64);
        self.pending.clear();
    }

    fn record(
        &self,
        p: Pending,
        reply: &Message,
        response_bytes: u64,
        end_ns: u64,
        role: Role,
    ) -> Record {
        let mut db = DbRecord::new(DbSystem::Redis);
        db.namespace = Some(self.namespace.clone());
        db.batch_size = p.batch;
        if matches!(reply.ty, Some(Type::Error | Type::BlobError)) {
            let text = String::from_utf8_lossy(&reply.text).into_owned();
            let prefix = text.split(' ').next().unwrap_or_default();
            if !prefix.is_empty() {
                db.status_code = Some(prefix.to_owned());
            }
            db.error_message = Some(text);
        }
        db.operation = Some(p.cmd.operation);
        db.query_text = Some(p.cmd.query_text);
        Record {
            protocol: Protocol::Redis,
            role,
            start_ns: p.start_ns,
            end_ns,
            request_bytes: p.request_bytes,
            response_bytes,
            detail: Detail::Db(db),
        }
    }
}

/// The first element of a pub/sub shaped reply (array or push), if it is a pub/sub kind.
fn pubsub_word(msg: &Message) -> Option<PubSub> {
    if !matches!(msg.ty, Some(Type::Array | Type::Push)) {
        return None;
    }
    Some(match msg.args.first()? {
        b"message" => PubSub::Message,
        b"pmessage" => PubSub::Message,
        b"smessage" => PubSub::Message,
        b"subscribe" => PubSub::Confirm("SUBSCRIBE"),
        b"psubscribe" => PubSub::Confirm("PSUBSCRIBE"),
        b"ssubscribe" => PubSub::Confirm("SSUBSCRIBE"),
        b"unsubscribe" => PubSub::Confirm("UNSUBSCRIBE"),
        b"punsubscribe" => PubSub::Confirm("PUNSUBSCRIBE"),
        b"sunsubscribe" => PubSub::Confirm("SUNSUBSCRIBE"),
        _ => return None,
    })
}

/// What a pub/sub shaped reply is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PubSub {
    /// A published message: never a reply.
    Message,
    /// A (un)subscription confirmation: the reply to that command.
    Confirm(&'static str),
}

impl PubSub {
    fn is_confirmation(self) -> bool {
        matches!(self, PubSub::Confirm(_))
    }

    fn confirms(self, operation: &str) -> bool {
        matches!(self, PubSub::Confirm(op) if op == operation)
    }
}

/// The record's view of a command: operation, query text without values, first argument.
pub(crate) fn command(msg: &Message, tables: &mut TableCache) -> Command {
    let word = msg.args.first().unwrap_or_default();
    let mut operation = String::from_utf8_lossy(word).to_ascii_uppercase();
    let first = msg.args.get(1);
    let mut query_text = None;
    let (container, key_first) = tables.lookup(word);
    if container {
        if let Some(sub) = first {
            operation.push(' ');
            operation.push_str(&String::from_utf8_lossy(sub).to_ascii_uppercase());
        }
    } else if key_first && let Some(key) = first {
        let key = String::from_utf8_lossy(key);
        let mut text = String::with_capacity(operation.len() + 1 + key.len());
        text.push_str(&operation);
        text.push(' ');
        text.push_str(&key);
        query_text = Some(text);
    }
    Command {
        query_text: query_text.unwrap_or_else(|| operation.clone()),
        // Kept for SELECT only: any other first argument may be a secret (AUTH) or a value.
        first_arg: (operation == "SELECT")
            .then(|| first.map(|a| String::from_utf8_lossy(a).into_owned()))
            .flatten(),
        arg_count: usize::try_from(msg.count.saturating_sub(1)).unwrap_or(usize::MAX),
        operation,
    }
}

/// The table lookups of the last few command words: a connection uses few commands, and a
/// cached word costs one comparison instead of two binary searches.
#[derive(Debug, Default)]
pub(crate) struct TableCache {
    /// Word (cut at 24 bytes), its length, whether a container, whether key-first.
    entries: [([u8; 24], usize, bool, bool); 4],
    next: usize,
}

impl TableCache {
    /// Whether `word` (any case) is a container command, and whether its first argument is a
    /// key.
    pub fn lookup(&mut self, word: &[u8]) -> (bool, bool) {
        if word.is_empty() || word.len() > 24 {
            return (false, false);
        }
        for (w, len, container, key_first) in &self.entries {
            if *len == word.len() && &w[..*len] == word {
                return (*container, *key_first);
            }
        }
        let flags = (in_table(CONTAINERS, word), in_table(KEY_FIRST, word));
        let mut w = [0u8; 24];
        w[..word.len()].copy_from_slice(word);
        self.entries[self.next] = (w, word.len(), flags.0, flags.1);
        self.next = (self.next + 1) % self.entries.len();
        flags
    }
}
