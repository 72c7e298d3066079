//! The seeds' `Queue` and `Pipe` demos, as functions the CLI, examples and tests share.

use std::io;
use std::time::Duration;

use shmproc::{Pipe, Process, Queue, RecvError};

use crate::channels::join_all;

/// The word the sender puts last, telling the receiver to stop.
pub const END: &str = "END";

/// A child puts the square of each number; the parent drains them in order.
///
/// # Errors
/// When the queue or the child fails.
pub fn squares(numbers: &[u64]) -> io::Result<Vec<u64>> {
    let q: Queue<u64> = Queue::new()?;
    let (child_q, numbers) = (q.clone(), numbers.to_vec());
    let n = numbers.len();
    let child = Process::fork(move || {
        for x in numbers {
            child_q.put(&(x * x)).expect("put");
        }
    })?;
    let out = (0..n)
        .map(|_| q.get_timeout(Duration::from_secs(10)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io::Error::other)?;
    join_all(&[child])?;
    Ok(out)
}

/// A sender process puts `words` and then [`END`]; a receiver process gets until `END`,
/// reporting each word to the parent through a pipe. Returns the words in receive order.
///
/// # Errors
/// When a channel or a process fails.
pub fn sender_receiver(words: &[&str]) -> io::Result<Vec<String>> {
    let q: Queue<String> = Queue::new()?;
    let (report_tx, report_rx) = Pipe::<String>::simplex()?;
    let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    let sq = q.clone();
    let sender = Process::fork(move || {
        for w in words.iter().map(String::as_str).chain([END]) {
            sq.put(&w.to_string()).expect("put");
        }
    })?;
    let receiver = Process::fork(move || loop {
        let w = q.get().expect("get");
        if w == END {
            break;
        }
        report_tx.send(&w).expect("report");
    })?;
    let mut got = Vec::new();
    loop {
        match report_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(w) => got.push(w),
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    join_all(&[sender, receiver])?;
    Ok(got)
}

/// The parent sends `question` to a child over a duplex pipe; the child answers with the
/// list `[42, None, "hello"]` of the Python seed plus the question's length. Returns the reply.
///
/// # Errors
/// When the pipe or the child fails.
pub fn pipe_exchange(question: &str) -> io::Result<(Vec<Option<String>>, usize)> {
    let (parent, child) = Pipe::<(Vec<Option<String>>, usize)>::duplex()?;
    let (q_parent, q_child) = Pipe::<String>::duplex()?;
    let p = Process::fork(move || {
        let q = q_child.recv().expect("question");
        let reply = vec![Some("42".to_string()), None, Some("hello".to_string())];
        child.send(&(reply, q.len())).expect("reply");
    })?;
    q_parent
        .send(&question.to_string())
        .map_err(io::Error::other)?;
    let reply = parent
        .recv_timeout(Duration::from_secs(10))
        .map_err(io::Error::other)?;
    join_all(&[p])?;
    Ok(reply)
}
