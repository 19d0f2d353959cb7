//! A stable hash of two names (FNV-1a, a zero byte between them): the same
//! on every run and in every process, unlike std's `RandomState`. Rooms
//! are spread over ping lanes by it, and each forwarding lane's seeded
//! jitter mixes it in; any spread will do, it only has to be stable.

pub fn names(first: &str, second: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in first.bytes().chain([0]).chain(second.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The lane of `lanes` a room's traffic goes in, always the same one.
pub fn lane(scheduler: &str, room: &str, lanes: usize) -> usize {
    (names(scheduler, room) % lanes.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_separator_keeps_names_apart_and_lanes_stay_in_range() {
        assert_ne!(names("ab", "c"), names("a", "bc"));
        assert_eq!(names("arena", "r1"), names("arena", "r1"));
        let lanes: std::collections::BTreeSet<usize> = (0..200)
            .map(|i| lane("arena", &format!("r{i}"), 8))
            .collect();
        assert_eq!(lanes, (0..8).collect(), "every lane used, none beyond");
        assert_eq!(lane("arena", "r1", 0), 0);
    }
}
