//! The disruption budget: how many of a scheduler's rooms must stay
//! available while Kubernetes drains nodes (a PodDisruptionBudget's
//! `minAvailable`).
//!
//! Upstream's runtime watcher recomputes it every interval from the room
//! count; here the engine decides it on its own timer
//! (`EngineConfig::disruption_interval`) and emits
//! [`Effect::SetDisruptionBudget`](crate::Effect::SetDisruptionBudget) only
//! when the value changes, so the decision is replayed and tested with
//! every other one.

/// Below this many rooms there is no constraint, so a node drain is never
/// blocked by a fleet too small to spare a room.
const MIN_ROOMS_FOR_DISRUPTION: u64 = 2;

/// Upstream's clamp of the safety percentage: at least 5 %, below 100 %.
const SAFETY_MIN: u64 = 50_000;
const SAFETY_MAX: u64 = 990_000;

/// Rooms to keep available: `total × (1 − safety)`, rounded down, with the
/// safety fraction in millionths clamped to [0.05, 0.99]; 0 under two rooms.
/// In integers, so upstream's documented values hold exactly (upstream
/// multiplies floats: the two agree wherever the product is not within a
/// rounding error of an integer).
pub fn budget(total_rooms: u64, safety_millionths: u32) -> u32 {
    if total_rooms < MIN_ROOMS_FOR_DISRUPTION {
        return 0;
    }
    let safety = u64::from(safety_millionths).clamp(SAFETY_MIN, SAFETY_MAX);
    let available = u128::from(total_rooms) * u128::from(1_000_000 - safety) / 1_000_000;
    u32::try_from(available).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_follows_upstream() {
        // (total rooms, safety in millionths, minAvailable)
        let table = [
            (0, 50_000, 0),
            (1, 50_000, 0),
            (2, 50_000, 1),
            (100, 50_000, 95),
            (100, 0, 95),
            (100, 500_000, 50),
            (10, 2_000_000, 0),
            (1_000_000, 50_000, 950_000),
            (u64::MAX, 50_000, u32::MAX),
        ];
        for (total, safety, want) in table {
            assert_eq!(budget(total, safety), want, "{total} rooms at {safety}");
        }
    }
}
