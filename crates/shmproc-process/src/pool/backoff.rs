//! The respawn back-off of a process pool: a worker that cannot start (dies before serving,
//! e.g. a failing initializer) must not make the manager respawn it in a tight loop.

use std::time::{Duration, Instant};

/// First and longest respawn delay after a worker died without running a task.
pub(crate) const RESPAWN_DELAY_MIN: Duration = Duration::from_millis(10);
pub(crate) const RESPAWN_DELAY_MAX: Duration = Duration::from_secs(1);

/// When the next replacement worker may start.
///
/// Idle deaths (workers that died having served nothing since the last death: at start-up,
/// or killed while idle) in a row postpone the next respawn by a delay doubling from
/// [`RESPAWN_DELAY_MIN`] to [`RESPAWN_DELAY_MAX`]. A death after serving (a task failed by
/// it fails only that task, so it cannot spin without tasks) or an idle death after a quiet
/// spell starts over.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    /// The last delay (zero: no recent idle death).
    delay: Duration,
    /// The last idle death.
    last: Option<Instant>,
    /// No replacement starts before this.
    not_before: Option<Instant>,
}

impl Backoff {
    /// Notes a worker's death at `now`; `idle` if it served nothing.
    pub(crate) fn death(&mut self, idle: bool, now: Instant) {
        let quiet = self.last.is_some_and(|last| {
            now.saturating_duration_since(last) > self.delay + RESPAWN_DELAY_MAX
        });
        if !idle || quiet {
            *self = Backoff::default();
        }
        if idle {
            self.delay = (self.delay * 2).clamp(RESPAWN_DELAY_MIN, RESPAWN_DELAY_MAX);
            self.last = Some(now);
            self.not_before = Some(now + self.delay);
        }
    }

    /// Whether a replacement must wait at `now`.
    pub(crate) fn postponed(&self, now: Instant) -> bool {
        self.not_before.is_some_and(|t| now < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_deaths_double_the_delay_up_to_the_cap_and_a_busy_death_resets_it() {
        let start = Instant::now();
        let mut b = Backoff::default();
        assert!(!b.postponed(start));
        let mut now = start;
        let mut delays = Vec::new();
        for _ in 0..10 {
            b.death(true, now);
            delays.push(b.delay);
            assert!(b.postponed(now));
            now += b.delay; // the replacement starts, then dies at once
            assert!(!b.postponed(now));
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);

        b.death(false, now);
        assert!(!b.postponed(now), "a death mid-task does not delay");
        b.death(true, now);
        assert_eq!(b.delay, RESPAWN_DELAY_MIN);

        // A quiet spell starts over.
        for _ in 0..5 {
            b.death(true, now);
        }
        b.death(true, now + Duration::from_secs(10));
        assert_eq!(b.delay, RESPAWN_DELAY_MIN);
    }
}
