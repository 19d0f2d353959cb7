//! Injected time. The engine never reads a clock: every input carries `now`.

use std::fmt;
use std::ops::{Add, Sub};

/// A point in time: milliseconds since the Unix epoch, as the shell saw it.
///
/// The engine only compares and offsets these values, so the shell may pass a
/// simulated clock. Times handed to the engine are clamped to be monotonic
/// (see `Engine::advance`), because wall clocks can step backwards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Time(pub u64);

/// A span of time in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Millis(pub u64);

impl Millis {
    pub const ZERO: Millis = Millis(0);

    pub const fn from_secs(secs: u64) -> Millis {
        Millis(secs.saturating_mul(1000))
    }
}

impl Time {
    pub const ZERO: Time = Time(0);

    /// Milliseconds elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn since(self, earlier: Time) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }
}

impl Add<Millis> for Time {
    type Output = Time;
    fn add(self, rhs: Millis) -> Time {
        Time(self.0.saturating_add(rhs.0))
    }
}

impl Sub<Millis> for Time {
    type Output = Time;
    fn sub(self, rhs: Millis) -> Time {
        Time(self.0.saturating_sub(rhs.0))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}
