//! The engine's only source of randomness: a seeded ChaCha8 stream, whose
//! output is fixed by the algorithm, so a seed replays bit for bit on any
//! platform and crate version.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::scheduler::PortRange;

/// Characters Kubernetes' `utilrand.String` draws from (no vowels, no
/// look-alikes), which upstream uses for room name suffixes.
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Upstream truncates the scheduler name to keep room names short.
const NAME_PREFIX_MAX: usize = 58;
const NAME_SUFFIX_LEN: usize = 5;

#[derive(Clone, Debug)]
pub struct EngineRng {
    rng: ChaCha8Rng,
}

impl EngineRng {
    pub fn new(seed: u64) -> EngineRng {
        EngineRng {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// `<scheduler name truncated to 58>-<5 random characters>`.
    pub fn room_name(&mut self, scheduler: &str) -> String {
        let prefix: String = scheduler.chars().take(NAME_PREFIX_MAX).collect();
        let mut name = String::with_capacity(prefix.len() + 1 + NAME_SUFFIX_LEN);
        name.push_str(&prefix);
        name.push('-');
        for _ in 0..NAME_SUFFIX_LEN {
            let i = self.rng.random_range(0..NAME_ALPHABET.len());
            name.push(char::from(NAME_ALPHABET[i]));
        }
        name
    }

    /// A random (version 4) UUID in its canonical text form.
    pub fn uuid(&mut self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .hyphenated()
            .to_string()
    }

    /// A port in the inclusive range, or `None` for an empty or invalid range.
    pub fn port_in(&mut self, range: PortRange) -> Option<u16> {
        let start = u16::try_from(range.start).ok()?;
        let end = u16::try_from(range.end).ok()?;
        if start > end {
            return None;
        }
        Some(self.rng.random_range(start..=end))
    }

    /// `n` distinct ports from the inclusive range (upstream's legacy
    /// scheduler-wide range), or `None` if the range is too small. At most
    /// `draws_per_port × (n + 1)` random draws
    /// (`EngineConfig::host_port_draws_per_port`), then an in-order sweep.
    pub fn distinct_ports_in(
        &mut self,
        range: PortRange,
        n: usize,
        draws_per_port: usize,
    ) -> Option<Vec<u16>> {
        let start = u16::try_from(range.start).ok()?;
        let end = u16::try_from(range.end).ok()?;
        if start > end || usize::from(end - start) + 1 < n {
            return None;
        }
        let mut ports: Vec<u16> = Vec::with_capacity(n);
        // Rejection sampling, bounded; the sweep below finishes a nearly full
        // range, which holds at least n ports.
        let max_draws = draws_per_port.saturating_mul(n.saturating_add(1));
        for _ in 0..max_draws {
            if ports.len() == n {
                break;
            }
            let p = self.rng.random_range(start..=end);
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
        if ports.len() < n {
            // Fall back to a deterministic sweep for nearly full ranges.
            for p in start..=end {
                if ports.len() == n {
                    break;
                }
                if !ports.contains(&p) {
                    ports.push(p);
                }
            }
        }
        Some(ports)
    }

    /// A uniform draw in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.rng.random::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = EngineRng::new(7);
        let mut b = EngineRng::new(7);
        for _ in 0..10 {
            assert_eq!(a.room_name("sched"), b.room_name("sched"));
            assert_eq!(a.uuid(), b.uuid());
        }
        assert_ne!(EngineRng::new(8).uuid(), EngineRng::new(7).uuid());
    }

    #[test]
    fn room_names_follow_upstream_shape() {
        let mut rng = EngineRng::new(1);
        let long = "a".repeat(70);
        let name = rng.room_name(&long);
        assert_eq!(name.len(), 58 + 1 + 5);
        assert!(name[59..].bytes().all(|b| NAME_ALPHABET.contains(&b)));
    }

    #[test]
    fn uuid_is_version_4() {
        let mut rng = EngineRng::new(3);
        let id = rng.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
    }

    #[test]
    fn ports_stay_in_range_and_distinct() {
        let mut rng = EngineRng::new(5);
        let range = PortRange {
            start: 100,
            end: 103,
        };
        let ports = rng.distinct_ports_in(range, 4, 64).unwrap();
        let mut sorted = ports.clone();
        sorted.sort();
        assert_eq!(sorted, vec![100, 101, 102, 103]);
        assert_eq!(rng.distinct_ports_in(range, 5, 64), None);
        for _ in 0..100 {
            let p = rng.port_in(range).unwrap();
            assert!((100..=103).contains(&p));
        }
        assert_eq!(rng.port_in(PortRange { start: 5, end: 4 }), None);
    }
}
