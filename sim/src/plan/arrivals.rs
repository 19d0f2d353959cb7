//! Matches arriving: drawn from concurrent-player demand, or taken from a
//! trace of matches.

use std::collections::VecDeque;

use maestro_engine::{Millis, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution as _, Poisson};

use super::PlanConfig;
use crate::demand::{Demand, MatchSpec, Series};
use crate::dist::Distribution;

/// One-second slots: within one, the arrival rate is constant.
const SLOT: Millis = Millis(1_000);

/// The matches of a plan in arrival order, generated as the run needs
/// them (a month of a large game is a hundred million matches).
pub struct Arrivals<'a> {
    source: Source<'a>,
    rng: ChaCha8Rng,
    scale: f64,
    players_per_match: u32,
    match_duration: Distribution,
    begin: Time,
    demand_start: Time,
    end: Time,
    buffer: VecDeque<MatchSpec>,
}

enum Source<'a> {
    Players {
        series: &'a Series,
        slot: Time,
        /// Mean match length in seconds.
        mean_secs: f64,
    },
    Matches {
        list: &'a [MatchSpec],
        next: usize,
        /// Consecutive entries making one match (sessions).
        group: usize,
    },
}

impl<'a> Arrivals<'a> {
    pub fn new(config: &PlanConfig, demand: &'a Demand, begin: Time, end: Time) -> Arrivals<'a> {
        let source = match demand {
            Demand::Players(series) => Source::Players {
                series,
                slot: begin,
                mean_secs: (config.match_duration.mean() / 1000.0).max(0.001),
            },
            Demand::Sessions(list) => Source::Matches {
                list,
                next: 0,
                group: config.players_per_match.max(1) as usize,
            },
            Demand::Matches(list) => Source::Matches {
                list,
                next: 0,
                group: 1,
            },
        };
        Arrivals {
            source,
            rng: ChaCha8Rng::seed_from_u64(config.seed ^ 0xa11_0ca7e),
            scale: config.scale.max(0.0),
            players_per_match: config.players_per_match.max(1),
            match_duration: config.match_duration.clone(),
            begin,
            demand_start: demand.start(),
            end,
            buffer: VecDeque::new(),
        }
    }

    fn refill(&mut self) {
        match &mut self.source {
            Source::Players {
                series,
                slot,
                mean_secs,
            } => {
                while self.buffer.is_empty() && *slot < self.end {
                    let t = *slot;
                    *slot = t + SLOT;
                    let mut concurrent = series.at(t.max(self.demand_start)) * self.scale
                        / f64::from(self.players_per_match);
                    if t < self.demand_start {
                        // The warm-up ramps up to the first sample.
                        let warmup = self.demand_start.since(self.begin).0.max(1) as f64;
                        concurrent *= t.since(self.begin).0 as f64 / warmup;
                    }
                    let rate = concurrent / *mean_secs * (SLOT.0 as f64 / 1000.0);
                    if rate <= 0.0 {
                        continue;
                    }
                    let n = match Poisson::new(rate) {
                        Ok(p) => p.sample(&mut self.rng) as u64,
                        Err(_) => rate.round() as u64,
                    };
                    let mut offsets: Vec<u64> =
                        (0..n).map(|_| self.rng.random_range(0..SLOT.0)).collect();
                    offsets.sort_unstable();
                    for offset in offsets {
                        let duration = self.match_duration.sample(&mut self.rng).max(Millis(1));
                        self.buffer.push_back(MatchSpec {
                            at: t + Millis(offset),
                            duration,
                            players: self.players_per_match,
                        });
                    }
                }
            }
            Source::Matches { list, next, group } => {
                while self.buffer.is_empty() && *next < list.len() {
                    // Sessions are grouped into matches of
                    // `players_per_match`, held until the last one leaves.
                    let members = &list[*next..(*next + *group).min(list.len())];
                    *next += members.len();
                    let Some(last) = members.last() else {
                        break;
                    };
                    let at = last.at;
                    if at > self.end {
                        *next = list.len();
                        break;
                    }
                    let until = members
                        .iter()
                        .map(|m| m.at + m.duration)
                        .max()
                        .unwrap_or(at);
                    let spec = MatchSpec {
                        at,
                        duration: until.since(at).max(Millis(1_000)),
                        players: members.iter().map(|m| m.players).sum(),
                    };
                    // Scaled: each match whole times, and once more with the
                    // remaining fraction's chance.
                    let mut copies = self.scale.floor() as u64;
                    if self.rng.random_bool(self.scale.fract().clamp(0.0, 1.0)) {
                        copies += 1;
                    }
                    for _ in 0..copies {
                        self.buffer.push_back(spec);
                    }
                }
            }
        }
    }
}

impl Iterator for Arrivals<'_> {
    type Item = MatchSpec;

    fn next(&mut self) -> Option<MatchSpec> {
        if self.buffer.is_empty() {
            self.refill();
        }
        self.buffer.pop_front()
    }
}
