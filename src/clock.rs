//! The time the engine sees: the wall clock read once at start, then
//! advanced by the monotonic clock.
//!
//! The engine measures ping timeouts, allocation TTLs and operation
//! deadlines on the times it is given. Fed the wall clock directly, a
//! forward jump (an NTP step, a VM resumed after a pause, an operator's
//! `date -s`) longer than the ping timeout would expire every room at once,
//! occupied ones included, and a backward jump would freeze every timer
//! until the clock caught up. A process therefore reads the wall clock once,
//! when it starts, for an origin that keeps its times comparable with those
//! stored by earlier runs, and measures everything after that on a clock
//! that only moves forward at the rate of real time.
//!
//! The cost: the times shown by the API (`createdAt`, `lastPingAt`) drift
//! from the wall clock by however much the wall clock was stepped since the
//! process started, until it restarts.

use std::time::{SystemTime, UNIX_EPOCH};

use maestro_engine::Time;
use tokio::sync::watch;

/// A reading of the wall clock, in Unix milliseconds.
pub fn wall_clock() -> Time {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Time(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// Engine time: `origin` plus the monotonic time elapsed since the clock
/// was started. Cheap to copy; every copy reads the same time.
///
/// The monotonic part is tokio's clock, which is `std::time::Instant` in
/// production and can be paused and advanced in tests.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Time,
    started: tokio::time::Instant,
}

impl Clock {
    /// A clock whose origin is the wall clock now.
    pub fn start() -> Clock {
        Clock::starting_at(wall_clock())
    }

    /// A clock that starts at the wall clock, or at `mark` (the latest
    /// time the store was written at) if the wall clock is behind it: a
    /// restarted process never reads a stored time in its future, so a
    /// wall clock stepped back (or a standby's clock behind its leader's)
    /// cannot stretch a cooldown, an allocation or an operation's lease.
    pub fn resume_after(mark: Time) -> Clock {
        Clock::resuming(wall_clock(), mark)
    }

    /// [`Clock::resume_after`] with the wall clock reading `wall`.
    pub fn resuming(wall: Time, mark: Time) -> Clock {
        if wall < mark {
            tracing::warn!(
                behind_ms = mark.0 - wall.0,
                "the wall clock is behind the store's latest time: engine time resumes from the store's"
            );
        }
        Clock::starting_at(wall.max(mark))
    }

    /// A clock that reads `origin` now and advances monotonically.
    pub fn starting_at(origin: Time) -> Clock {
        Clock {
            origin,
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Time {
        let elapsed = self.started.elapsed().as_millis();
        let elapsed = u64::try_from(elapsed).unwrap_or(u64::MAX);
        Time(self.origin.0.saturating_add(elapsed))
    }

    /// How long from now until `deadline` (zero if it has passed).
    pub fn until(&self, deadline: Time) -> std::time::Duration {
        std::time::Duration::from_millis(deadline.0.saturating_sub(self.now().0))
    }
}

/// Waits for the next tick; false once a stop is requested (or nobody can
/// request one any more, so a periodic task never outlives the service).
pub async fn tick_or_stop(
    tick: &mut tokio::time::Interval,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = tick.tick() => !*shutdown.borrow(),
        changed = shutdown.changed() => changed.is_ok() && !*shutdown.borrow(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn advances_with_the_monotonic_clock_from_its_origin() {
        let clock = Clock::starting_at(Time(1_000));
        assert_eq!(clock.now(), Time(1_000));
        tokio::time::advance(Duration::from_millis(2_500)).await;
        assert_eq!(clock.now(), Time(3_500));
        assert_eq!(clock.until(Time(4_000)), Duration::from_millis(500));
        assert_eq!(clock.until(Time(10)), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn resumes_from_the_stores_mark_when_the_wall_clock_is_behind_it() {
        assert_eq!(Clock::resuming(Time(5_000), Time(9_000)).now(), Time(9_000));
        assert_eq!(
            Clock::resuming(Time(12_000), Time(9_000)).now(),
            Time(12_000)
        );
    }
}
