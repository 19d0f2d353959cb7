//! A seed's faults, drawn up front: when maestro crashes or is stopped,
//! which links are cut and for how long, when the disk refuses writes or
//! flushes, when the pod watches disconnect, how the wall clock jumps, and
//! the cluster's failure rates and the network's latency. Printed whole
//! with `--verbose`, so a seed says what it does (TigerBeetle's VOPR
//! prints its options the same way).

use std::fmt;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The hosts maestro talks to; a partition cuts maestro off one of them.
pub const PEERS: [&str; 4] = ["rooms", "matchmaker", "operator", "forwarder"];

#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// SIGKILL: what was not flushed is gone. A supervisor restarts the
    /// process after `restart_after`.
    Crash { restart_after: Duration },
    /// SIGTERM: a graceful stop, then a restart.
    Stop,
    /// Maestro and `peer` cannot reach each other until `until`.
    Partition { peer: &'static str, until: Duration },
    /// Every write fails until `until` (a full disk).
    DiskWrites { until: Duration },
    /// Every flush fails until `until` (an IO error).
    DiskFlushes { until: Duration },
    /// The pod watches are cut off until `until`, then relist.
    Watches { until: Duration },
    /// The wall clock of maestro's host jumps (a step of NTP, a VM paused).
    ClockJump { by_ms: i64 },
}

/// Everything a seed decides.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Two workers on a shared database, one leading by the lease (the
    /// highly available layout), instead of one on a local disk. Drawn
    /// apart from the rest, so a seed's faults are the same either way.
    pub standby: bool,
    /// Every link fails now and then, at random, for a fraction of a
    /// second (messages in flight lost): turmoil's message loss, drawn
    /// apart too.
    pub flaky_links: bool,
    /// The most a message waits on a link.
    pub max_latency: Duration,
    pub pod_crash_per_hour: f64,
    pub node_loss_per_hour: f64,
    pub api_error_rate: f64,
    /// In time order.
    pub faults: Vec<(Duration, Fault)>,
}

impl Plan {
    /// The faults of `seed` within the first `duration` of a run.
    pub fn draw(seed: u64, duration: Duration) -> Plan {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let total = duration.as_millis().max(1) as u64;
        let at = |rng: &mut ChaCha8Rng| Duration::from_millis(rng.random_range(0..total));
        let ms = |rng: &mut ChaCha8Rng, lo: u64, hi: u64| {
            Duration::from_millis(rng.random_range(lo..=hi))
        };
        let mut faults = Vec::new();
        for _ in 0..rng.random_range(0..=3) {
            let t = at(&mut rng);
            let restart_after = ms(&mut rng, 500, 10_000);
            faults.push((t, Fault::Crash { restart_after }));
        }
        for _ in 0..rng.random_range(0..=1) {
            faults.push((at(&mut rng), Fault::Stop));
        }
        for _ in 0..rng.random_range(0..=4) {
            let t = at(&mut rng);
            let peer = PEERS[rng.random_range(0..PEERS.len())];
            let until = t + ms(&mut rng, 500, 40_000);
            faults.push((t, Fault::Partition { peer, until }));
        }
        for _ in 0..rng.random_range(0..=2) {
            let t = at(&mut rng);
            let until = t + ms(&mut rng, 100, 15_000);
            let fault = if rng.random_bool(0.5) {
                Fault::DiskWrites { until }
            } else {
                Fault::DiskFlushes { until }
            };
            faults.push((t, fault));
        }
        for _ in 0..rng.random_range(0..=2) {
            let t = at(&mut rng);
            let until = t + ms(&mut rng, 100, 30_000);
            faults.push((t, Fault::Watches { until }));
        }
        for _ in 0..rng.random_range(0..=2) {
            let t = at(&mut rng);
            let size = rng.random_range(1_000..=7_200_000i64);
            let by_ms = if rng.random_bool(0.5) { size } else { -size };
            faults.push((t, Fault::ClockJump { by_ms }));
        }
        faults.sort_by_key(|(t, _)| *t);
        let mut layout = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_1a70);
        Plan {
            standby: layout.random_bool(0.5),
            flaky_links: layout.random_bool(0.5),
            max_latency: ms(&mut rng, 1, 150),
            pod_crash_per_hour: [0.0, 2.0, 20.0][rng.random_range(0..3)],
            node_loss_per_hour: [0.0, 0.5, 4.0][rng.random_range(0..3)],
            api_error_rate: [0.0, 0.02, 0.15][rng.random_range(0..3)],
            faults,
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}; network latency up to {:?}{}; pod crashes {}/h, node losses {}/h, runtime API errors {}%",
            if self.standby {
                "two workers on a database (a leader and a standby)"
            } else {
                "one worker on a local disk"
            },
            self.max_latency,
            if self.flaky_links {
                ", links failing at random"
            } else {
                ""
            },
            self.pod_crash_per_hour,
            self.node_loss_per_hour,
            self.api_error_rate * 100.0
        )?;
        for (t, fault) in &self.faults {
            writeln!(f, "  at {:>8.3}s {fault:?}", t.as_secs_f64())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_plan_and_seeds_differ() {
        let d = Duration::from_secs(120);
        assert_eq!(Plan::draw(5, d).to_string(), Plan::draw(5, d).to_string());
        let plans: std::collections::BTreeSet<String> =
            (0..20).map(|s| Plan::draw(s, d).to_string()).collect();
        assert!(plans.len() > 15, "seeds should give different plans");
        for seed in 0..50 {
            let plan = Plan::draw(seed, d);
            assert!(plan.faults.windows(2).all(|w| w[0].0 <= w[1].0));
            assert!(plan.faults.iter().all(|(t, _)| *t < d));
        }
    }
}
