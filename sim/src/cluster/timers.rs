//! The simulated cluster's timers: fired in the order of their time, and
//! those of equal time in the order they were set.
//!
//! A planner run keeps one timer per match in flight (its end), tens of
//! thousands at once, and pops one per match. A single heap of them all
//! sifts every pop through its whole depth, most levels cache misses
//! (about 6 % of a one-day Dota 2 run). Here only the timers due in the
//! current slot of time (`SLOT_SHIFT`, about 16 s) are in a heap, a few
//! hundred that stay in cache; later ones wait, in the order set, in a
//! list per slot, and a slot's list becomes the heap when its time comes.
//! The order fired is exactly the single heap's: every key of a later
//! slot is greater than every key in the heap.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use dary_heap::QuaternaryHeap;
use maestro_engine::Time;

/// Milliseconds per slot, as a shift: 2^14 ms, about 16 s.
const SLOT_SHIFT: u32 = 14;

/// A timer in the heap, ordered by its key alone: the time in the high
/// half, the sequence it was set in the low half, so equal times fire in
/// the order they were set. One integer comparison per step of the heap
/// (a tuple's took a branch per field).
#[derive(Clone, Copy, Debug)]
struct Due<T> {
    key: u128,
    timer: T,
}

impl<T> Due<T> {
    fn at(&self) -> Time {
        Time((self.key >> 64) as u64)
    }
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Due<T>) -> bool {
        self.key == other.key
    }
}

impl<T> Eq for Due<T> {}

impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Due<T>) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Due<T> {
    fn cmp(&self, other: &Due<T>) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

fn slot(at: Time) -> u64 {
    at.0 >> SLOT_SHIFT
}

#[derive(Clone, Debug)]
pub(super) struct Timers<T> {
    /// Timers of slots up to `slot`, earliest first. Empty only when
    /// `later` is too. After a refill `slot` is the next timer's, which may
    /// lie far ahead (a crash an hour out); timers set before it join the
    /// heap, in order, until it drains: slower for that stretch, never out
    /// of order.
    current: QuaternaryHeap<Reverse<Due<T>>>,
    slot: u64,
    /// Timers of slots after `slot`, each list in the order set.
    later: BTreeMap<u64, Vec<Reverse<Due<T>>>>,
    /// Timers set so far: the low half of every key.
    seq: u64,
}

impl<T: Copy> Timers<T> {
    pub fn new() -> Timers<T> {
        Timers {
            current: QuaternaryHeap::new(),
            slot: 0,
            later: BTreeMap::new(),
            seq: 0,
        }
    }

    /// When the earliest timer is due.
    pub fn next_at(&self) -> Option<Time> {
        self.current.peek().map(|Reverse(due)| due.at())
    }

    pub fn set(&mut self, at: Time, timer: T) {
        self.seq += 1;
        let due = Reverse(Due {
            key: (u128::from(at.0) << 64) | u128::from(self.seq),
            timer,
        });
        let at_slot = slot(at);
        if self.current.is_empty() {
            debug_assert!(self.later.is_empty());
            self.slot = at_slot;
            self.current.push(due);
        } else if at_slot <= self.slot {
            self.current.push(due);
        } else {
            self.later.entry(at_slot).or_default().push(due);
        }
    }

    /// The earliest timer, if it is due at or before `now`, with its time.
    pub fn pop_due(&mut self, now: Time) -> Option<(Time, T)> {
        let Reverse(due) = self.current.peek()?;
        if due.at() > now {
            return None;
        }
        let Reverse(due) = self.current.pop()?;
        if self.current.is_empty()
            && let Some((slot, list)) = self.later.pop_first()
        {
            self.slot = slot;
            self.current = QuaternaryHeap::from(list);
        }
        Some((due.at(), due.timer))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.len() + self.later.values().map(Vec::len).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn fires_in_time_then_set_order_as_one_ordered_map_would() {
        // Against a B-tree of (time, sequence): times near and far (many
        // slots ahead), equal times, and timers set between pops at or
        // after the time popped, as the cluster sets them.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut timers = Timers::new();
        let mut reference = BTreeMap::new();
        let mut seq = 0u64;
        let mut now = Time(0);
        for step in 0..50_000u32 {
            if rng.random_bool(0.55) {
                let ahead = match rng.random_range(0..4) {
                    0 => 0,
                    1 => rng.random_range(0..50),
                    2 => rng.random_range(0..40_000),
                    _ => rng.random_range(0..5_000_000),
                };
                let at = Time(now.0 + ahead);
                seq += 1;
                timers.set(at, step);
                reference.insert((at, seq), step);
            } else {
                now = Time(now.0 + rng.random_range(0..20_000));
                loop {
                    let expected = reference
                        .first_key_value()
                        .filter(|((at, _), _)| *at <= now)
                        .map(|((at, _), step)| (*at, *step));
                    assert_eq!(timers.pop_due(now), expected);
                    if expected.is_none() {
                        break;
                    }
                    reference.pop_first();
                }
            }
            assert_eq!(
                timers.next_at(),
                reference.first_key_value().map(|((at, _), _)| *at)
            );
            assert_eq!(timers.len(), reference.len());
        }
        assert!(seq > 20_000);
    }
}
