//! Recognising Redis from one direction's first bytes, and the command tables the other stages
//! look names up in. Stateless.

use crate::{Direction, Inference, Protocol, Role};

/// Command names recognised by inference and by the choice of which direction carries
/// commands; sorted, uppercase (a test checks).
#[rustfmt::skip]
pub const KNOWN_COMMANDS: &[&str] = &[
    "ACL", "APPEND", "AUTH", "BGREWRITEAOF", "BGSAVE", "BITCOUNT", "BITFIELD", "BITFIELD_RO",
    "BITOP", "BITPOS", "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "BZMPOP", "BZPOPMAX",
    "BZPOPMIN", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "COPY", "DBSIZE", "DEBUG", "DECR",
    "DECRBY", "DEL", "DISCARD", "DUMP", "ECHO", "EVAL", "EVALSHA", "EVALSHA_RO", "EVAL_RO", "EXEC",
    "EXISTS", "EXPIRE", "EXPIREAT", "EXPIRETIME", "FCALL", "FCALL_RO", "FLUSHALL", "FLUSHDB",
    "FUNCTION", "GEOADD", "GEODIST", "GEOHASH", "GEOPOS", "GEORADIUS", "GEORADIUSBYMEMBER",
    "GEOSEARCH", "GEOSEARCHSTORE", "GET", "GETBIT", "GETDEL", "GETEX", "GETRANGE", "GETSET", "HDEL",
    "HELLO", "HEXISTS", "HGET", "HGETALL", "HINCRBY", "HINCRBYFLOAT", "HKEYS", "HLEN", "HMGET",
    "HMSET", "HRANDFIELD", "HSCAN", "HSET", "HSETNX", "HSTRLEN", "HVALS", "INCR", "INCRBY",
    "INCRBYFLOAT", "INFO", "KEYS", "LASTSAVE", "LATENCY", "LCS", "LINDEX", "LINSERT", "LLEN",
    "LMOVE", "LMPOP", "LOLWUT", "LPOP", "LPOS", "LPUSH", "LPUSHX", "LRANGE", "LREM", "LSET",
    "LTRIM", "MEMORY", "MGET", "MIGRATE", "MODULE", "MONITOR", "MOVE", "MSET", "MSETNX", "MULTI",
    "OBJECT", "PERSIST", "PEXPIRE", "PEXPIREAT", "PEXPIRETIME", "PFADD", "PFCOUNT", "PFMERGE",
    "PING", "PSETEX", "PSUBSCRIBE", "PTTL", "PUBLISH", "PUBSUB", "PUNSUBSCRIBE", "QUIT",
    "RANDOMKEY", "READONLY", "READWRITE", "RENAME", "RENAMENX", "REPLICAOF", "RESET", "RESTORE",
    "ROLE", "RPOP", "RPOPLPUSH", "RPUSH", "RPUSHX", "SADD", "SAVE", "SCAN", "SCARD", "SCRIPT",
    "SDIFF", "SDIFFSTORE", "SELECT", "SET", "SETBIT", "SETEX", "SETNX", "SETRANGE", "SHUTDOWN",
    "SINTER", "SINTERCARD", "SINTERSTORE", "SISMEMBER", "SLAVEOF", "SLOWLOG", "SMEMBERS",
    "SMISMEMBER", "SMOVE", "SORT", "SORT_RO", "SPOP", "SPUBLISH", "SRANDMEMBER", "SREM", "SSCAN",
    "SSUBSCRIBE", "STRLEN", "SUBSCRIBE", "SUNION", "SUNIONSTORE", "SUNSUBSCRIBE", "SWAPDB", "TIME",
    "TOUCH", "TTL", "TYPE", "UNLINK", "UNSUBSCRIBE", "UNWATCH", "WAIT", "WATCH", "XACK", "XADD",
    "XAUTOCLAIM", "XCLAIM", "XDEL", "XGROUP", "XINFO", "XLEN", "XPENDING", "XRANGE", "XREAD",
    "XREADGROUP", "XREVRANGE", "XTRIM", "ZADD", "ZCARD", "ZCOUNT", "ZDIFF", "ZDIFFSTORE", "ZINCRBY",
    "ZINTER", "ZINTERCARD", "ZINTERSTORE", "ZLEXCOUNT", "ZMPOP", "ZMSCORE", "ZPOPMAX", "ZPOPMIN",
    "ZRANDMEMBER", "ZRANGE", "ZRANGEBYLEX", "ZRANGEBYSCORE", "ZRANGESTORE", "ZRANK", "ZREM",
    "ZREMRANGEBYLEX", "ZREMRANGEBYRANK", "ZREMRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYLEX",
    "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCAN", "ZSCORE", "ZUNION", "ZUNIONSTORE",
];

/// Commands whose first argument is a key (or a pub/sub channel), so the query text may show
/// it; any other command's query text is its name alone. Sorted, uppercase.
#[rustfmt::skip]
pub const KEY_FIRST: &[&str] = &[
    "APPEND", "BITCOUNT", "BITFIELD", "BITFIELD_RO", "BITPOS", "BLMOVE", "BLPOP", "BRPOP",
    "BRPOPLPUSH", "BZPOPMAX", "BZPOPMIN", "COPY", "DECR", "DECRBY", "DEL", "DUMP", "EXISTS",
    "EXPIRE", "EXPIREAT", "EXPIRETIME", "GEOADD", "GEODIST", "GEOHASH", "GEOPOS", "GEORADIUS",
    "GEORADIUSBYMEMBER", "GEOSEARCH", "GEOSEARCHSTORE", "GET", "GETBIT", "GETDEL", "GETEX",
    "GETRANGE", "GETSET", "HDEL", "HEXISTS", "HGET", "HGETALL", "HINCRBY", "HINCRBYFLOAT", "HKEYS",
    "HLEN", "HMGET", "HMSET", "HRANDFIELD", "HSCAN", "HSET", "HSETNX", "HSTRLEN", "HVALS", "INCR",
    "INCRBY", "INCRBYFLOAT", "LCS", "LINDEX", "LINSERT", "LLEN", "LMOVE", "LPOP", "LPOS", "LPUSH",
    "LPUSHX", "LRANGE", "LREM", "LSET", "LTRIM", "MGET", "MOVE", "MSET", "MSETNX", "PERSIST",
    "PEXPIRE", "PEXPIREAT", "PEXPIRETIME", "PFADD", "PFCOUNT", "PFMERGE", "PSETEX", "PSUBSCRIBE",
    "PTTL", "PUBLISH", "PUNSUBSCRIBE", "RENAME", "RENAMENX", "RESTORE", "RPOP", "RPOPLPUSH",
    "RPUSH", "RPUSHX", "SADD", "SCARD", "SDIFF", "SDIFFSTORE", "SET", "SETBIT", "SETEX", "SETNX",
    "SETRANGE", "SINTER", "SINTERSTORE", "SISMEMBER", "SMEMBERS", "SMISMEMBER", "SMOVE", "SORT",
    "SORT_RO", "SPOP", "SPUBLISH", "SRANDMEMBER", "SREM", "SSCAN", "SSUBSCRIBE", "STRLEN",
    "SUBSCRIBE", "SUNION", "SUNIONSTORE", "SUNSUBSCRIBE", "TOUCH", "TTL", "TYPE", "UNLINK",
    "UNSUBSCRIBE", "WATCH", "XACK", "XADD", "XAUTOCLAIM", "XCLAIM", "XDEL", "XLEN", "XPENDING",
    "XRANGE", "XREVRANGE", "XTRIM", "ZADD", "ZCARD", "ZCOUNT", "ZINCRBY", "ZINTERSTORE",
    "ZLEXCOUNT", "ZMSCORE", "ZPOPMAX", "ZPOPMIN", "ZRANDMEMBER", "ZRANGE", "ZRANGEBYLEX",
    "ZRANGEBYSCORE", "ZRANGESTORE", "ZRANK", "ZREM", "ZREMRANGEBYLEX", "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYLEX", "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCAN",
    "ZSCORE", "ZUNIONSTORE",
];

/// Container commands: the operation names the subcommand too (`CLIENT SETNAME`). Sorted.
#[rustfmt::skip]
pub const CONTAINERS: &[&str] = &[
    "ACL", "CLIENT", "CLUSTER", "COMMAND", "CONFIG", "DEBUG", "FUNCTION", "LATENCY", "MEMORY",
    "MODULE", "OBJECT", "PUBSUB", "SCRIPT", "SLOWLOG", "XGROUP", "XINFO",
];

/// Longest command word looked up.
const MAX_WORD: usize = 24;

/// Whether `word` (any case) is in the sorted uppercase `table`.
pub(crate) fn in_table(table: &[&str], word: &[u8]) -> bool {
    if word.is_empty() || word.len() > MAX_WORD {
        return false;
    }
    let mut upper = [0u8; MAX_WORD];
    let upper = &mut upper[..word.len()];
    upper.copy_from_slice(word);
    upper.make_ascii_uppercase();
    table.binary_search_by(|c| c.as_bytes().cmp(upper)).is_ok()
}

/// Whether `word` (any case) names a known command.
pub(crate) fn is_known_command(word: &[u8]) -> bool {
    in_table(KNOWN_COMMANDS, word)
}

/// Redis's opinion of the first bytes of `_dir`:
/// - 90, sent by a client: a command array `*<n>\r\n$<len>\r\n<COMMAND>\r\n` naming a known
///   command;
/// - 80, sent by a server: the RESP3 map `HELLO 3` answers with (`%<n>\r\n$6\r\nserver\r\n`);
/// - 60, sent by a client: an inline `PING`; 40 for another inline known command;
/// - 30–40, sent by a server: `+OK`, `+PONG`, an error (`-ERR`, `-WRONGTYPE`, `-NOAUTH`...),
///   an integer or bulk string header: replies are short and ambiguous, so other protocols win;
/// - `None` for anything else, including a prefix too short to tell.
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let (confidence, role) = match bytes.first()? {
        b'*' => (command_array(bytes)?, Role::Client),
        b'%' if hello_map(bytes) => (80, Role::Server),
        b'+' if bytes.starts_with(b"+OK\r\n") || bytes.starts_with(b"+PONG\r\n") => {
            (40, Role::Server)
        }
        b'-' => (error_line(bytes)?, Role::Server),
        b':' | b'$' if number_line(&bytes[1..]) => (30, Role::Server),
        b if b.is_ascii_alphabetic() => (inline(bytes)?, Role::Client),
        _ => return None,
    };
    Some(Inference {
        protocol: Protocol::Redis,
        confidence,
        sender_role: Some(role),
    })
}

/// `*<n>\r\n$<len>\r\n<known command>\r\n` → 90.
fn command_array(bytes: &[u8]) -> Option<u8> {
    let (count, rest) = header(&bytes[1..])?;
    if count < 1 {
        return None;
    }
    let (len, rest) = header(rest.strip_prefix(b"$")?)?;
    let len = usize::try_from(len).ok()?;
    let word = rest.get(..len)?;
    (rest.get(len..len + 2)? == b"\r\n" && is_known_command(word)).then_some(90)
}

/// `<digits>\r\n` at the start of `bytes`: the number and what follows.
fn header(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let digits = bytes.iter().take(20).position(|b| !b.is_ascii_digit())?;
    if digits == 0 || bytes.get(digits..digits + 2)? != b"\r\n" {
        return None;
    }
    let n = std::str::from_utf8(&bytes[..digits]).ok()?.parse().ok()?;
    Some((n, &bytes[digits + 2..]))
}

/// `-?<digits>\r\n`.
fn number_line(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"-").unwrap_or(bytes);
    header(bytes).is_some()
}

/// `-<UPPERCASE PREFIX> ...\r\n`.
fn error_line(bytes: &[u8]) -> Option<u8> {
    let eol = bytes.iter().position(|&b| b == b'\n')?;
    let word_len = bytes[1..]
        .iter()
        .position(|b| !b.is_ascii_uppercase())
        .unwrap_or(0);
    (word_len >= 2 && bytes[1 + word_len] == b' ' && bytes[eol - 1] == b'\r').then_some(35)
}

/// The start of the map `HELLO 3` answers with.
fn hello_map(bytes: &[u8]) -> bool {
    header(&bytes[1..]).is_some_and(|(_, rest)| rest.starts_with(b"$6\r\nserver\r\n"))
}

/// An inline command line: `PING` → 60, another known command → 40.
fn inline(bytes: &[u8]) -> Option<u8> {
    let eol = bytes.iter().take(4096).position(|&b| b == b'\n')?;
    let line = bytes[..eol].strip_suffix(b"\r").unwrap_or(&bytes[..eol]);
    let word = line.split(|&b| b == b' ').next()?;
    if word.eq_ignore_ascii_case(b"PING") {
        Some(60)
    } else if is_known_command(word) && line.iter().all(|b| !b.is_ascii_control()) {
        Some(40)
    } else {
        None
    }
}
