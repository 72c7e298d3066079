//! What pools and workers share about the broker: key names, the message fields, connecting
//! with timeouts, and reading stream replies.
//!
//! Keys of one queue share a Redis Cluster hash tag (`{queue}`), so a queue lives on one node
//! and many queues spread over a cluster (docs/CLUSTER.md).

use std::time::Duration;

use redis::{Client, Connection, RedisError, Value};
use shmproc_process::ProcessError;

/// The consumer group every worker of a queue reads through.
pub(crate) const GROUP: &str = "workers";

/// Fields of a task message.
pub(crate) mod field {
    /// The entry's key.
    pub const KEY: &str = "k";
    /// `1` if the argument is a batch (`map`'s chunks).
    pub const MANY: &str = "m";
    /// The encoded argument.
    pub const ARG: &str = "a";
    /// The stream the reply goes to (the submitting pool's).
    pub const REPLY_TO: &str = "r";
    /// The task's number within its pool (in the reply too).
    pub const TASK: &str = "t";
    /// How many times the task may be started (`max_attempts`).
    pub const ATTEMPTS: &str = "n";
    /// Reply: the entry's reply (status byte, payload).
    pub const REPLY: &str = "s";
    /// Reply instead of `s`: every attempt's worker died; the last one's consumer name.
    pub const DIED: &str = "w";
    /// A marker a stopping pool sends itself so its reader wakes up.
    pub const STOP: &str = "x";
}

/// The keys of queue `queue`.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// The stream tasks are added to.
    pub tasks: String,
    /// The prefix of every pool's reply stream.
    results: String,
}

impl Keys {
    pub(crate) fn new(queue: &str) -> Keys {
        Keys {
            tasks: format!("shmproc:{{{queue}}}:tasks"),
            results: format!("shmproc:{{{queue}}}:results:"),
        }
    }

    /// The reply stream of the pool named `pool`.
    pub(crate) fn results(&self, pool: &str) -> String {
        format!("{}{pool}", self.results)
    }
}

/// A connection that gives up on connecting after `timeout` and on any reply after
/// `timeout + block` (`block`: the longest `BLOCK` it will send).
pub(crate) fn connect(
    client: &Client,
    timeout: Duration,
    block: Duration,
) -> redis::RedisResult<Connection> {
    let conn = client.get_connection_with_timeout(timeout)?;
    conn.set_read_timeout(Some(timeout + block))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

/// Creates the queue's stream and consumer group unless they exist (from the start of the
/// stream: tasks added before any worker came are served).
pub(crate) fn ensure_group(conn: &mut Connection, keys: &Keys) -> redis::RedisResult<()> {
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(&keys.tasks)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(conn);
    match created {
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        other => other.map(drop),
    }
}

/// A broker failure as the pool's error, saying where and what to do.
pub(crate) fn broker_error(url: &str, e: &RedisError) -> ProcessError {
    ProcessError::Broker(format!(
        "{url}: {e}; check that redis-server runs there (calls work again once it is back)"
    ))
}

/// The URL without a password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// This host's name (for consumer and pool names), or `localhost`.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// One stream entry: its id and field-value pairs.
#[derive(Debug, Default)]
pub(crate) struct StreamEntry {
    pub id: String,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamEntry {
    /// The value of `name`, if present.
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| v.as_slice())
    }

    /// The value of `name` as text.
    pub(crate) fn text(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.get(name)?).ok()
    }

    /// `[id, [field, value, …]]`; `None` for an entry deleted meanwhile (fields `nil`).
    fn parse(value: Value) -> Option<StreamEntry> {
        let Value::Array(mut parts) = value else {
            return None;
        };
        if parts.len() != 2 {
            return None;
        }
        let fields = parts.pop()?;
        let id = bytes(parts.pop()?)?;
        let Value::Array(flat) = fields else {
            return None;
        };
        let mut flat = flat.into_iter();
        let mut pairs = Vec::with_capacity(flat.len() / 2);
        while let (Some(k), Some(v)) = (flat.next(), flat.next()) {
            pairs.push((bytes(k)?, bytes(v)?));
        }
        Some(StreamEntry {
            id: String::from_utf8(id).ok()?,
            fields: pairs,
        })
    }
}

/// The entries of an `XCLAIM` reply (`[entry, …]`).
pub(crate) fn entries(value: Value) -> Vec<StreamEntry> {
    match value {
        Value::Array(items) => items.into_iter().filter_map(StreamEntry::parse).collect(),
        _ => Vec::new(),
    }
}

/// The entries of an `XREAD`/`XREADGROUP` reply on one stream (`[[stream, [entry, …]]]`, or
/// `nil` when `BLOCK` timed out).
pub(crate) fn read_entries(value: Value) -> Vec<StreamEntry> {
    let Value::Array(streams) = value else {
        return Vec::new();
    };
    streams
        .into_iter()
        .filter_map(|stream| match stream {
            Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
            _ => None,
        })
        .flat_map(entries)
        .collect()
}

/// A bulk or simple string's bytes.
pub(crate) fn bytes(value: Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        Value::Int(i) => Some(i.to_string().into_bytes()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn a_read_reply_parses_and_nil_is_empty() {
        let entry = Value::Array(vec![
            bulk("1-0"),
            Value::Array(vec![bulk("t"), bulk("7"), bulk("s"), bulk("x")]),
        ]);
        let deleted = Value::Array(vec![bulk("2-0"), Value::Nil]);
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("stream"),
            Value::Array(vec![entry, deleted]),
        ])]);
        let got = read_entries(reply);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "1-0");
        assert_eq!(got[0].text("t"), Some("7"));
        assert_eq!(got[0].get("s"), Some(&b"x"[..]));
        assert!(got[0].get("nope").is_none());
        assert!(read_entries(Value::Nil).is_empty());
    }

    #[test]
    fn keys_share_a_hash_tag_and_passwords_are_hidden() {
        let keys = Keys::new("jobs");
        assert_eq!(keys.tasks, "shmproc:{jobs}:tasks");
        assert_eq!(keys.results("p1"), "shmproc:{jobs}:results:p1");
        assert_eq!(redact("redis://u:secret@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
    }
}
