//! Untimed sleeps that cannot be lost: one background thread per process (the *watcher*)
//! looks after every thread of the process asleep on a shared futex.
//!
//! A waker publishes (stores a new index, sets a flag, releases a permit), then wakes. A waker
//! SIGKILLed between the two would leave a sleeper asleep forever although what it waits for is
//! there. Arming a timer for every sleep costs about a tenth of a sleeping round trip, so
//! instead a sleeping thread writes on its *board entry* which word it sleeps on and what it
//! expects to find there (and optionally a second word and its value when it went to sleep),
//! and the watcher, every [`LIVENESS_POLL`] while anyone sleeps, wakes each sleeper whose words
//! no longer hold what it expected. It also runs the *round hooks* other crates register (pipe
//! ends check their peers there). The watcher parks after about a second without sleepers and
//! the next sleeper wakes it; it is started on first use, and again in a forked child (threads
//! do not survive `fork`). Where it cannot run, [`sleep_watched`] returns `None` and the caller
//! naps instead.
//!
//! The watcher only reads an entry's words while the entry is `CHECKING`, a state the sleeper
//! waits out before it returns, so the memory they live in stays mapped meanwhile.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::hooks::Hooks;
use crate::liveness::current_identity;
use crate::sys::{self, WaitOutcome};

/// How often sleepers are checked on: the bound on how late a lost wake-up or a dead peer is
/// noticed.
pub const LIVENESS_POLL: Duration = Duration::from_millis(10);
/// Idle polls (no sleeper anywhere) before the watcher parks: about a second.
const PARK_AFTER: u32 = 100;
/// Threads of one process that can sleep watched at once (others nap).
const BOARD_SIZE: usize = 256;

const FREE: u32 = 0;
const IDLE: u32 = 1;
const SLEEPING: u32 = 2;
const CHECKING: u32 = 3;

/// The word a watched sleep is on.
#[derive(Debug, Clone, Copy)]
pub enum Word<'a> {
    /// A 32-bit futex word.
    Narrow(&'a AtomicU32),
    /// The low half of a 64-bit word (the futex is its low 32 bits).
    Low(&'a AtomicU64),
}

struct Entry {
    state: AtomicU32,
    word: AtomicUsize,
    wide: AtomicU32,
    expected: AtomicU32,
    extra: AtomicUsize,
    extra_seen: AtomicU64,
    /// A `fn(u64) -> bool` saying, from the word's value, that what the sleeper waits on can
    /// never come (a lock whose owner died), or 0.
    gone: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below
const EMPTY: Entry = Entry {
    state: AtomicU32::new(FREE),
    word: AtomicUsize::new(0),
    wide: AtomicU32::new(0),
    expected: AtomicU32::new(0),
    extra: AtomicUsize::new(0),
    extra_seen: AtomicU64::new(0),
    gone: AtomicUsize::new(0),
};
static BOARD: [Entry; BOARD_SIZE] = [EMPTY; BOARD_SIZE];

/// A thread's board entry, given back when the thread exits.
struct Claim(Cell<usize>);

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(e) = BOARD.get(self.0.get()) {
            e.state.store(FREE, Ordering::Release);
        }
    }
}

thread_local! {
    static CLAIM: Claim = const { Claim(Cell::new(usize::MAX)) };
}

fn my_entry() -> Option<&'static Entry> {
    CLAIM
        .try_with(|c| {
            if let Some(e) = BOARD.get(c.0.get()) {
                return Some(e);
            }
            let i = BOARD.iter().position(|e| {
                e.state
                    .compare_exchange(FREE, IDLE, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })?;
            c.0.set(i);
            Some(&BOARD[i])
        })
        .ok()
        .flatten()
}

/// Sleeps on `word` while it holds `expected` (its low half, for [`Word::Low`]), untimed, but
/// watched: woken within about [`LIVENESS_POLL`] once `word` or `extra` (a word and the value
/// it had when the caller decided to sleep) changed, even if whoever changed it never woke us.
/// `None` if no watcher can look after this sleep: nap instead.
///
/// # Errors
/// The futex call's error (`Some(Err)`).
pub fn sleep_watched(
    word: Word<'_>,
    expected: u32,
    extra: Option<(&AtomicU64, u64)>,
) -> Option<io::Result<WaitOutcome>> {
    sleep_on(word, expected, extra, 0)
}

/// Like [`sleep_watched`] on the low half of `word`, also woken once `gone(value of word)`
/// says the wait is hopeless (a lock word whose owner died): a lock waiter sleeps without a
/// timer and still learns of its owner's death within about [`LIVENESS_POLL`].
///
/// # Errors
/// The futex call's error (`Some(Err)`).
pub fn sleep_watched_unless(
    word: &AtomicU64,
    expected: u32,
    gone: fn(u64) -> bool,
) -> Option<io::Result<WaitOutcome>> {
    sleep_on(Word::Low(word), expected, None, gone as usize)
}

fn sleep_on(
    word: Word<'_>,
    expected: u32,
    extra: Option<(&AtomicU64, u64)>,
    gone: usize,
) -> Option<io::Result<WaitOutcome>> {
    if !ensure_watcher() {
        return None;
    }
    let entry = my_entry()?;
    let (addr, wide) = match word {
        Word::Narrow(w) => (w as *const AtomicU32 as usize, 0),
        Word::Low(w) => (w as *const AtomicU64 as usize, 1),
    };
    entry.word.store(addr, Ordering::Relaxed);
    entry.wide.store(wide, Ordering::Relaxed);
    entry.expected.store(expected, Ordering::Relaxed);
    let (extra_addr, seen) = extra.map_or((0, 0), |(w, v)| (w as *const AtomicU64 as usize, v));
    entry.extra.store(extra_addr, Ordering::Relaxed);
    entry.extra_seen.store(seen, Ordering::Relaxed);
    entry.gone.store(gone, Ordering::Relaxed);
    // SeqCst: pairs with the watcher's park (see `park`).
    entry.state.store(SLEEPING, Ordering::SeqCst);
    unpark_watcher();
    let slept = match word {
        Word::Narrow(w) => sys::futex_wait(w, expected, None),
        Word::Low(w) => sys::futex_wait_low(w, expected, None),
    };
    // The watcher may be reading our words right now: wait until it is done.
    while entry
        .state
        .compare_exchange(SLEEPING, IDLE, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
    Some(slept)
}

/// Functions run on every watcher round; each says whether it has something to watch (which
/// keeps the watcher from parking).
static HOOKS: Hooks<8> = Hooks::new();

/// Registers `hook` to run on every watcher round (once, however often registered).
pub fn on_round(hook: fn() -> bool) {
    HOOKS.add(hook as usize);
}

/// Wakes the sleepers that someone forgot to wake; whether anyone sleeps.
fn check_board() -> bool {
    let mut any = false;
    for e in &BOARD {
        if e.state.load(Ordering::Acquire) != SLEEPING
            || e.state
                .compare_exchange(SLEEPING, CHECKING, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            continue;
        }
        any = true;
        let (addr, expected) = (
            e.word.load(Ordering::Relaxed),
            e.expected.load(Ordering::Relaxed),
        );
        let extra = e.extra.load(Ordering::Relaxed);
        // SAFETY: while the entry is CHECKING its sleeper has not returned from
        // `sleep_watched`, so the words it named (borrowed for that call) are alive; they are
        // atomics of the recorded width; a non-zero `gone` was stored from a `fn(u64) -> bool`.
        unsafe {
            let extra_moved = extra != 0
                && (*(extra as *const AtomicU64)).load(Ordering::SeqCst)
                    != e.extra_seen.load(Ordering::Relaxed);
            if e.wide.load(Ordering::Relaxed) != 0 {
                let w = &*(addr as *const AtomicU64);
                let value = w.load(Ordering::SeqCst);
                let gone = e.gone.load(Ordering::Relaxed);
                // Only `sleep_watched_unless` stores a non-zero `gone`, a `fn(u64) -> bool`.
                let hopeless =
                    gone != 0 && std::mem::transmute::<usize, fn(u64) -> bool>(gone)(value);
                if value as u32 != expected || extra_moved || hopeless {
                    sys::futex_wake_low(w, u32::MAX);
                }
            } else {
                let w = &*(addr as *const AtomicU32);
                if w.load(Ordering::SeqCst) != expected || extra_moved {
                    sys::futex_wake(w, u32::MAX);
                }
            }
        }
        e.state.store(SLEEPING, Ordering::Release);
    }
    any
}

fn round() -> bool {
    let mut any = check_board();
    for addr in HOOKS.each() {
        // SAFETY: only `on_round` adds to HOOKS, and it adds `fn() -> bool` pointers.
        let hook: fn() -> bool = unsafe { std::mem::transmute::<usize, fn() -> bool>(addr) };
        any |= hook();
    }
    any
}

/// Identity of the process whose watcher runs; in a forked child it names the parent, so the
/// child starts its own.
static OWNER: AtomicU64 = AtomicU64::new(0);
/// Identity of the process one of whose threads is starting the watcher right now.
static STARTING: AtomicU64 = AtomicU64::new(0);
/// The watcher's park word: 1 while it is parked (or about to park).
static PARKED: AtomicU32 = AtomicU32::new(0);
static FORK_HOOK: AtomicU32 = AtomicU32::new(0);

extern "C" fn after_fork_child() {
    // Only the forking thread exists here: entries of the others are free again.
    let mine = CLAIM.try_with(|c| c.0.get()).unwrap_or(usize::MAX);
    for (i, e) in BOARD.iter().enumerate() {
        if i != mine {
            e.state.store(FREE, Ordering::Relaxed);
        }
    }
}

/// Whether this process's watcher runs, starting it if nobody here is doing so. A thread that
/// finds another one of its process starting it gets `false` (it naps this once).
pub fn ensure_watcher() -> bool {
    let me = current_identity();
    if OWNER.load(Ordering::Acquire) == me {
        return true;
    }
    if !crate::register_once(&FORK_HOOK, || sys::at_fork_child(after_fork_child).is_ok()) {
        return false;
    }
    // A value left by another process (a parent forked mid-start) is taken over.
    let starting = STARTING.load(Ordering::Acquire);
    if starting == me
        || STARTING
            .compare_exchange(starting, me, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    {
        return false;
    }
    PARKED.store(0, Ordering::SeqCst);
    let started = std::thread::Builder::new()
        .name("shmproc-watch".into())
        .stack_size(128 << 10)
        .spawn(run)
        .is_ok();
    if started {
        OWNER.store(me, Ordering::Release);
    }
    STARTING.store(0, Ordering::Release); // on failure the next sleep tries again
    started
}

/// Wakes the watcher if it is parked (call after announcing a sleep, `SeqCst`).
pub fn unpark_watcher() {
    if PARKED.load(Ordering::SeqCst) != 0 && PARKED.swap(0, Ordering::SeqCst) != 0 {
        sys::futex_wake(&PARKED, 1);
    }
}

/// The watcher: polls while anyone sleeps, parks when nobody has for a while.
fn run() {
    let mut idle = 0;
    loop {
        std::thread::sleep(LIVENESS_POLL);
        if round() {
            idle = 0;
            continue;
        }
        idle += 1;
        if idle >= PARK_AFTER {
            park();
            idle = 0;
        }
    }
}

/// Sleeps until a sleeper shows up. Store-then-check against the sleeper's announce-then-check
/// (both `SeqCst`): either the watcher sees the new sleeper or the sleeper sees it parked.
fn park() {
    PARKED.store(1, Ordering::SeqCst);
    if round() {
        PARKED.store(0, Ordering::SeqCst);
        return;
    }
    while PARKED.load(Ordering::SeqCst) != 0 {
        // An error (EINTR) just re-checks.
        let _ = sys::futex_wait(&PARKED, 1, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_sleeper_nobody_wakes_is_woken_once_its_word_changed() {
        let word = Arc::new(AtomicU32::new(0));
        let w = Arc::clone(&word);
        let sleeper = std::thread::spawn(move || {
            while w.load(Ordering::SeqCst) == 0 {
                match sleep_watched(Word::Narrow(&w), 0, None) {
                    Some(r) => {
                        r.unwrap();
                    }
                    None => std::thread::sleep(LIVENESS_POLL),
                }
            }
        });
        std::thread::sleep(Duration::from_millis(30));
        word.store(1, Ordering::SeqCst); // and no futex wake: the watcher must do it
        sleeper.join().unwrap();
    }

    #[test]
    fn a_sleeper_is_woken_when_its_extra_word_moved() {
        let word = Arc::new(AtomicU64::new(5));
        let index = Arc::new(AtomicU64::new(0));
        let (w, i) = (Arc::clone(&word), Arc::clone(&index));
        let sleeper = std::thread::spawn(move || loop {
            let seen = i.load(Ordering::SeqCst);
            if seen != 0 {
                return seen;
            }
            if sleep_watched(Word::Low(&w), 5, Some((&i, seen))).is_none() {
                std::thread::sleep(LIVENESS_POLL);
            }
        });
        std::thread::sleep(Duration::from_millis(30));
        index.store(7, Ordering::SeqCst);
        assert_eq!(sleeper.join().unwrap(), 7);
    }
}
