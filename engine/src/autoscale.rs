//! Autoscaling policies: how many rooms a fleet needs for its demand.
//!
//! Pure functions of the fleet's counts; the formulas are upstream's
//! (`policies/roomoccupancy`, `policies/fixedbufferamount`).

use crate::room::{FleetCounts, RoomStatus};
use crate::scheduler::{Autoscaling, POLICY_FIXED_BUFFER, POLICY_ROOM_OCCUPANCY};

/// What the autoscaler concluded for one fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Rooms wanted, clamped to [min, max].
    pub rooms: u64,
    /// Whether the policy allows removing rooms now (the cooldown is checked
    /// separately, by the caller who knows the time).
    pub can_downscale: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AutoscaleError {
    #[error("autoscaling policy {0:?} is not supported")]
    UnknownPolicy(String),
    #[error("autoscaling policy {0} has no parameters")]
    MissingParameters(&'static str),
}

/// Desired rooms for an enabled autoscaling block.
pub fn desired_rooms(
    autoscaling: &Autoscaling,
    counts: &FleetCounts,
    max_matches: u64,
) -> Result<Desired, AutoscaleError> {
    let max_matches = max_matches.max(1);
    let (unclamped, can_downscale) = match autoscaling.policy.kind.as_str() {
        POLICY_ROOM_OCCUPANCY => {
            let params = autoscaling
                .policy
                .room_occupancy
                .ok_or(AutoscaleError::MissingParameters(POLICY_ROOM_OCCUPANCY))?;
            let desired = room_occupancy_desired(counts, max_matches, params.ready_target);
            let can = room_occupancy_can_downscale(
                counts,
                max_matches,
                desired,
                params.ready_target,
                params.down_threshold,
            );
            (desired, can)
        }
        POLICY_FIXED_BUFFER => {
            let params = autoscaling
                .policy
                .fixed_buffer
                .ok_or(AutoscaleError::MissingParameters(POLICY_FIXED_BUFFER))?;
            let amount = u64::try_from(params.amount).unwrap_or(0);
            let desired =
                counts.get(RoomStatus::Occupied) + counts.get(RoomStatus::Allocated) + amount;
            let live = counts.total()
                - counts.get(RoomStatus::Terminating)
                - counts.get(RoomStatus::Error)
                - counts.get(RoomStatus::Terminated);
            // Upstream compares with the unclamped buffer target.
            (desired, live > desired)
        }
        other => return Err(AutoscaleError::UnknownPolicy(other.to_string())),
    };
    Ok(Desired {
        rooms: clamp(unclamped, autoscaling),
        can_downscale,
    })
}

/// Upstream's final clamp: below min → min; above a non-negative max → max
/// (max = -1 is unlimited, #617).
pub fn clamp(desired: u64, autoscaling: &Autoscaling) -> u64 {
    let min = u64::try_from(autoscaling.min).unwrap_or(0);
    let mut desired = desired.max(min);
    if let Ok(max) = u64::try_from(autoscaling.max) {
        desired = desired.min(max);
    }
    desired
}

/// Running matches as roomOccupancy counts them: reported matches plus one
/// per allocated room.
fn occupancy_matches(counts: &FleetCounts) -> u64 {
    counts.running_matches + counts.get(RoomStatus::Allocated)
}

/// Fractions are computed in millionths so the documented tables hold
/// exactly: in f64, `5 / (1 - 0.9)` is 50.000000000000007 and its ceiling 51,
/// where upstream's docs (and any operator) expect 50.
const PPM: u128 = 1_000_000;

fn to_ppm(fraction: f64) -> u128 {
    if fraction.is_finite() && fraction > 0.0 {
        (fraction * PPM as f64).round().min(PPM as f64) as u128
    } else {
        0
    }
}

/// `ceil(ceil(matches / (1 - readyTarget)) / maxMatches)`, before the clamp.
pub fn room_occupancy_desired(counts: &FleetCounts, max_matches: u64, ready_target: f64) -> u64 {
    let target = to_ppm(ready_target);
    if target >= PPM {
        // Validation keeps readyTarget below 1; a stored 1 would mean infinity.
        return u64::MAX;
    }
    let matches = u128::from(occupancy_matches(counts));
    let desired_matches = mul_div_ceil(matches, PPM, PPM - target);
    let desired_rooms = desired_matches.div_ceil(u128::from(max_matches.max(1)));
    u64::try_from(desired_rooms).unwrap_or(u64::MAX)
}

/// `ceil(a × b / d)`, exact: in 64 bits when `a × b` fits (any fleet does;
/// a 128-bit division is a library call, about 1 % of a planner profile
/// when every input reconciles), in 128 otherwise.
fn mul_div_ceil(a: u128, b: u128, d: u128) -> u128 {
    if let (Ok(a), Ok(b), Ok(d)) = (u64::try_from(a), u64::try_from(b), u64::try_from(d))
        && let Some(product) = a.checked_mul(b)
    {
        return u128::from(product.div_ceil(d));
    }
    (a * b).div_ceil(d)
}

/// Downscale is allowed iff `desiredFreeSlots / freeSlots <= downThreshold`,
/// with `desiredFreeSlots = ceil(desiredRooms × maxMatches × readyTarget)`.
/// No free slots means no downscale (upstream divides by zero and says no).
pub fn room_occupancy_can_downscale(
    counts: &FleetCounts,
    max_matches: u64,
    desired_rooms_unclamped: u64,
    ready_target: f64,
    down_threshold: f64,
) -> bool {
    let serving = counts.get(RoomStatus::Ready)
        + counts.get(RoomStatus::Active)
        + counts.get(RoomStatus::Occupied)
        + counts.get(RoomStatus::Allocated);
    let free_slots = u128::from((serving * max_matches).saturating_sub(counts.running_matches));
    if free_slots == 0 {
        return false;
    }
    let desired_free = mul_div_ceil(
        u128::from(desired_rooms_unclamped) * u128::from(max_matches),
        to_ppm(ready_target),
        PPM,
    );
    desired_free * PPM <= to_ppm(down_threshold) * free_slots
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures;

    fn counts(ready: u64, occupied: u64, active: u64, allocated: u64, matches: u64) -> FleetCounts {
        let mut c = FleetCounts::default();
        c.by_status[RoomStatus::Ready.index()] = ready;
        c.by_status[RoomStatus::Occupied.index()] = occupied;
        c.by_status[RoomStatus::Active.index()] = active;
        c.by_status[RoomStatus::Allocated.index()] = allocated;
        c.running_matches = matches;
        c
    }

    #[test]
    fn mul_div_ceil_is_exact_in_64_and_128_bits() {
        assert_eq!(mul_div_ceil(10, PPM, PPM - 200_000), 13);
        assert_eq!(mul_div_ceil(0, PPM, 7), 0);
        assert_eq!(mul_div_ceil(7, 1, 7), 1);
        assert_eq!(mul_div_ceil(8, 1, 7), 2);
        // Past 64 bits: the same answer in 128.
        let big = u128::from(u64::MAX);
        assert_eq!(mul_div_ceil(big, PPM, PPM), big);
        assert_eq!(mul_div_ceil(big, 3, 2), (big * 3).div_ceil(2));
    }

    #[test]
    fn room_occupancy_single_match_docs_example() {
        // Upstream docs: 80 occupied rooms with readyTarget 0.5 → 160 rooms.
        let a = fixtures::room_occupancy(1, -1, 0.5);
        let d = desired_rooms(&a, &counts(20, 80, 0, 0, 80), 1).unwrap();
        assert_eq!(d.rooms, 160);
    }

    #[test]
    fn room_occupancy_table() {
        // (readyTarget, ready, occupied, active, allocated, running matches, maxMatches, desired unclamped)
        let table = [
            (0.5, 5, 5, 0, 0, 5, 1, 10),
            (0.2, 0, 10, 0, 0, 10, 1, 13), // ceil(10/0.8) = 13
            (0.5, 0, 10, 0, 2, 10, 1, 24), // allocated rooms count as one match
            (0.3, 2, 1, 3, 0, 7, 3, 4),    // ceil(ceil(7/0.7)/3) = ceil(10/3) = 4
            (0.5, 4, 0, 0, 0, 0, 1, 0),
            (0.9, 0, 1, 0, 0, 1, 1, 10),
        ];
        for (rt, ready, occ, act, alloc, m, mm, want) in table {
            let c = counts(ready, occ, act, alloc, m);
            assert_eq!(room_occupancy_desired(&c, mm, rt), want, "{rt} {c:?} {mm}");
        }
    }

    /// Upstream docs/tutorials/Autoscaling.md, Room Occupancy table:
    /// (total rooms, occupied rooms, readyTarget, desired rooms).
    #[test]
    fn room_occupancy_docs_table() {
        let table = [
            (100, 80, 0.5, 160),
            (100, 50, 0.5, 100),
            (100, 30, 0.5, 60),
            (50, 40, 0.3, 58),
            (50, 35, 0.3, 50),
            (50, 10, 0.3, 15),
            (10, 5, 0.9, 50),
            (10, 1, 0.9, 10),
            (10, 1, 0.8, 5),
            (5, 5, 0.1, 6),
            (1, 1, 0.3, 2),
            (2, 2, 0.9, 20),
        ];
        for (total, occupied, rt, want) in table {
            let c = counts(total - occupied, occupied, 0, 0, occupied);
            assert_eq!(
                room_occupancy_desired(&c, 1, rt),
                want,
                "{occupied}/{total} at {rt}"
            );
        }
    }

    /// Upstream policy_test.go (multi-match): (readyTarget, running matches,
    /// max matches, desired rooms).
    #[test]
    fn room_occupancy_unit_table() {
        for (rt, running, mm, want) in [
            (0.5, 160, 2, 160),
            (0.1, 5, 1, 6),
            (0.3, 0, 1, 0),
            (0.3, 0, 7, 0),
        ] {
            let c = counts(0, 0, 0, 0, running);
            assert_eq!(
                room_occupancy_desired(&c, mm, rt),
                want,
                "{rt} {running} {mm}"
            );
        }
    }

    /// Upstream policy_test.go CanDownscale: (readyTarget, downThreshold,
    /// running matches, max matches, free slots, allowed).
    #[test]
    fn room_occupancy_can_downscale_unit_table() {
        let table = [
            (0.5, 0.6, 80, 1, 120, false),
            (0.5, 0.6, 160, 2, 250, false),
            (0.5, 0.7, 70, 1, 100, true),
            (0.5, 0.6, 60, 1, 100, true),
            (0.5, 0.6, 120, 2, 200, true),
        ];
        for (rt, dt, running, mm, free, want) in table {
            // Build a fleet with exactly `free` free slots: serving rooms
            // hold (running + free) slots, all reported as ready.
            let serving = (running + free) / mm;
            assert_eq!(serving * mm, running + free, "table row must divide evenly");
            let c = counts(serving, 0, 0, 0, running);
            let desired = room_occupancy_desired(&c, mm, rt);
            let got = room_occupancy_can_downscale(&c, mm, desired, rt, dt);
            assert_eq!(
                got, want,
                "rt {rt} dt {dt} running {running} mm {mm} free {free}"
            );
        }
    }

    /// Upstream autoscaler_test.go, integrated CanDownscale with roomOccupancy
    /// (max matches 1): (ready, occupied, running, readyTarget, downThreshold, allowed).
    #[test]
    fn autoscaler_can_downscale_table() {
        let table = [
            (4, 0, 1, 0.5, 0.7, true),
            (2, 3, 3, 0.5, 0.7, false),
            (70, 30, 30, 0.5, 0.7, true),
            (500, 80, 80, 0.35, 0.9, true),
        ];
        for (ready, occupied, running, rt, dt, want) in table {
            let c = counts(ready, occupied, 0, 0, running);
            let desired = room_occupancy_desired(&c, 1, rt);
            assert_eq!(
                room_occupancy_can_downscale(&c, 1, desired, rt, dt),
                want,
                "{ready} {occupied}"
            );
        }
    }

    /// Upstream docs/tutorials/Autoscaling.md, Fixed Buffer table (the doc
    /// ignores its own max of 100, so the clamp is left out here):
    /// (total, occupied, amount, desired).
    #[test]
    fn fixed_buffer_docs_table() {
        let table = [
            (100, 80, 50, 130),
            (100, 50, 50, 100),
            (100, 30, 50, 80),
            (50, 40, 20, 60),
            (50, 30, 20, 50),
            (50, 10, 20, 30),
            (10, 5, 10, 15),
            (10, 0, 10, 10),
            (10, 0, 5, 5),
            (5, 5, 5, 10),
            (1, 1, 3, 4),
            (2, 2, 8, 10),
        ];
        for (total, occupied, amount, want) in table {
            let a = fixtures::fixed_buffer(1, -1, amount);
            let c = counts(total - occupied, occupied, 0, 0, occupied);
            let d = desired_rooms(&a, &c, 1).unwrap();
            assert_eq!(d.rooms, want, "{occupied}/{total} + {amount}");
            assert_eq!(
                d.can_downscale,
                total > want,
                "{occupied}/{total} + {amount}"
            );
        }
    }

    /// Upstream autoscaler_test.go, FixedBuffer CanDownscale (amount 5, min 1,
    /// max 10): (occupied, room count, allowed).
    #[test]
    fn fixed_buffer_can_downscale_table() {
        for (occupied, total, want) in [
            (3, 10, true),
            (3, 8, false),
            (3, 5, false),
            (0, 10, true),
            (80, 90, true),
        ] {
            let a = fixtures::fixed_buffer(1, 10, 5);
            let c = counts(total - occupied, occupied, 0, 0, occupied);
            assert_eq!(
                desired_rooms(&a, &c, 1).unwrap().can_downscale,
                want,
                "{occupied}/{total}"
            );
        }
    }

    #[test]
    fn clamp_honours_min_and_unlimited_max() {
        let a = fixtures::room_occupancy(2, 10, 0.5);
        assert_eq!(clamp(0, &a), 2);
        assert_eq!(clamp(50, &a), 10);
        let unlimited = fixtures::room_occupancy(2, -1, 0.5);
        assert_eq!(clamp(5_000, &unlimited), 5_000);
    }

    #[test]
    fn down_threshold() {
        // 10 ready, 10 occupied, single match, readyTarget 0.5: desired = 20,
        // free slots 10, desired free 10 → ratio 1.0.
        let c = counts(10, 10, 0, 0, 10);
        assert!(!room_occupancy_can_downscale(&c, 1, 20, 0.5, 0.99));
        assert!(room_occupancy_can_downscale(&c, 1, 20, 0.5, 1.0));
        // 30 ready, 10 occupied: free 30, desired free 10 → 0.33.
        let c = counts(30, 10, 0, 0, 10);
        assert!(room_occupancy_can_downscale(&c, 1, 20, 0.5, 0.99));
        // No free slot: never.
        let c = counts(0, 10, 0, 0, 10);
        assert!(!room_occupancy_can_downscale(&c, 1, 20, 0.5, 0.99));
    }

    #[test]
    fn fixed_buffer() {
        let a = fixtures::fixed_buffer(1, 100, 5);
        // occupied 10 + allocated 2 + buffer 5
        let c = counts(20, 10, 0, 2, 10);
        let d = desired_rooms(&a, &c, 1).unwrap();
        assert_eq!(d.rooms, 17);
        assert!(d.can_downscale, "32 live rooms > 17");
        let c = counts(3, 10, 0, 2, 10);
        let d = desired_rooms(&a, &c, 1).unwrap();
        assert!(!d.can_downscale, "15 live rooms ≤ 17");
        // Active rooms are not counted (upstream limitation kept).
        let c = counts(0, 0, 4, 0, 4);
        assert_eq!(desired_rooms(&a, &c, 3).unwrap().rooms, 5);
    }

    #[test]
    fn missing_parameters_is_an_error() {
        let mut a = fixtures::room_occupancy(1, 10, 0.5);
        a.policy.room_occupancy = None;
        assert_eq!(
            desired_rooms(&a, &FleetCounts::default(), 1),
            Err(AutoscaleError::MissingParameters(POLICY_ROOM_OCCUPANCY))
        );
    }
}
