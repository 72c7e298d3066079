//! Two processes passing a turn back and forth: the wake-up round trip of a primitive, next to
//! the physical limit (a raw futex ping-pong) measured the same way.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shmproc::raw::{sys, Segment, SharedRef, Spec, TypeInfo};
use shmproc::{Condition, Event, Kind, Process};

/// One side of a ping-pong: `serve` answers `rounds` pings, `ping` sends one and waits for the
/// answer.
pub trait PingPong: Clone + Send + 'static {
    /// Child side: waits for a ping, answers it; `rounds` times.
    fn serve(&self, rounds: u64);
    /// Parent side: one ping and its answer.
    fn ping(&self);
}

/// Forks a server and times `rounds` round trips from the parent.
///
/// # Errors
/// When the server cannot be forked or fails.
pub fn measure<P: PingPong>(pp: &P, rounds: u64) -> io::Result<Duration> {
    let server = pp.clone();
    let child = Process::fork(move || server.serve(rounds))?;
    let start = Instant::now();
    for _ in 0..rounds {
        pp.ping();
    }
    let elapsed = start.elapsed();
    let status = child.join()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "ping-pong server failed: {status}"
        )));
    }
    Ok(elapsed)
}

fn word() -> io::Result<SharedRef<AtomicU32>> {
    let spec = Spec {
        kind: Kind::Raw,
        elem: TypeInfo::none(),
        payload_len: 64,
    };
    Ok(SharedRef::new(
        Arc::new(Segment::create_anonymous(&spec, |_| Ok(()))?),
        0,
    )?)
}

/// The physical limit: one shared word, each side always sleeps on the futex and always wakes.
#[derive(Clone)]
pub struct RawFutex(SharedRef<AtomicU32>);

impl RawFutex {
    /// A fresh word (0 = the server's turn to wait).
    ///
    /// # Errors
    /// When the segment cannot be created.
    pub fn new() -> io::Result<RawFutex> {
        Ok(RawFutex(word()?))
    }

    fn pass(&self, to: u32) {
        self.0.store(to, Ordering::SeqCst);
        sys::futex_wake(&self.0, 1);
        while self.0.load(Ordering::SeqCst) == to {
            let _ = sys::futex_wait(&self.0, to, None);
        }
    }
}

impl PingPong for RawFutex {
    fn serve(&self, rounds: u64) {
        for _ in 0..rounds {
            while self.0.load(Ordering::SeqCst) == 0 {
                let _ = sys::futex_wait(&self.0, 0, None);
            }
            self.0.store(0, Ordering::SeqCst);
            sys::futex_wake(&self.0, 1);
        }
    }
    fn ping(&self) {
        self.pass(1);
    }
}

/// Two events: `ping` set by the parent, `pong` by the server.
#[derive(Clone)]
pub struct EventPair {
    ping: Event,
    pong: Event,
}

impl EventPair {
    /// Two fresh events.
    ///
    /// # Errors
    /// When the segments cannot be created.
    pub fn new() -> io::Result<EventPair> {
        Ok(EventPair {
            ping: Event::new()?,
            pong: Event::new()?,
        })
    }
}

impl PingPong for EventPair {
    fn serve(&self, rounds: u64) {
        for _ in 0..rounds {
            self.ping.wait().expect("event wait");
            self.ping.clear().expect("event clear");
            self.pong.set().expect("event set");
        }
    }
    fn ping(&self) {
        self.ping.set().expect("event set");
        self.pong.wait().expect("event wait");
        self.pong.clear().expect("event clear");
    }
}

/// A condition and a turn word it protects (0: server waits, 1: parent waits).
#[derive(Clone)]
pub struct ConditionTurn {
    cond: Condition,
    turn: SharedRef<AtomicU32>,
}

impl ConditionTurn {
    /// A fresh condition and turn.
    ///
    /// # Errors
    /// When the segments cannot be created.
    pub fn new() -> io::Result<ConditionTurn> {
        Ok(ConditionTurn {
            cond: Condition::new()?,
            turn: word()?,
        })
    }

    fn pass_and_wait(&self, to: u32) {
        let g = self.cond.lock().expect("condition lock");
        self.turn.store(to, Ordering::Relaxed);
        self.cond.notify_one().expect("notify");
        let g = self
            .cond
            .wait_while(g, || self.turn.load(Ordering::Relaxed) == to)
            .expect("condition wait");
        drop(g);
    }
}

impl PingPong for ConditionTurn {
    fn serve(&self, rounds: u64) {
        let mut g = self.cond.lock().expect("condition lock");
        for _ in 0..rounds {
            g = self
                .cond
                .wait_while(g, || self.turn.load(Ordering::Relaxed) == 0)
                .expect("condition wait");
            self.turn.store(0, Ordering::Relaxed);
            self.cond.notify_one().expect("notify");
        }
        drop(g);
    }
    fn ping(&self) {
        self.pass_and_wait(1);
    }
}
