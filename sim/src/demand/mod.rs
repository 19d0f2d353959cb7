//! Player demand: what the planner replays.
//!
//! Importers read real traces (see `--demand-format`): concurrent players
//! sampled over time ([`Demand::Players`], from SteamCharts exports and any
//! two-column time series), player sessions ([`Demand::Sessions`], grouped
//! into matches by the planner) or matches given one by one
//! ([`Demand::Matches`], from SWF job logs and recordings). Synthetic
//! generators make curves for tests and what-ifs. Importers are pure
//! functions of the file's text, so every problem names the file, the line
//! and the field.

mod parse;
pub mod synthetic;

use std::fmt;

use maestro_engine::{Millis, Time};

pub use parse::{Format, parse};

/// Demand over time.
#[derive(Clone, Debug, PartialEq)]
pub enum Demand {
    /// Concurrent players, sampled; linear between samples.
    Players(Series),
    /// Player sessions, in start order: `players_per_match` consecutive
    /// ones make a match, which holds its room until the last one ends.
    Sessions(Vec<MatchSpec>),
    /// Matches, each with its start and length, in start order.
    Matches(Vec<MatchSpec>),
}

/// A sampled curve: `(time, value)` in time order, at least one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub points: Vec<(Time, f64)>,
    /// Gaps longer than this hold the earlier value instead of being
    /// interpolated (see [`parse`]).
    pub max_gap: Millis,
}

impl Series {
    /// The value at `t`: linear between two samples closer than the gap
    /// limit, the earlier sample's value across a longer gap, the first or
    /// last value outside the samples.
    pub fn at(&self, t: Time) -> f64 {
        let i = self.points.partition_point(|(at, _)| *at <= t);
        match (
            i.checked_sub(1).and_then(|j| self.points.get(j)),
            self.points.get(i),
        ) {
            (Some(&(t0, v0)), Some(&(t1, v1))) => {
                let span = t1.since(t0);
                if span > self.max_gap || span == Millis::ZERO {
                    return v0;
                }
                let f = t.since(t0).0 as f64 / span.0 as f64;
                v0 + (v1 - v0) * f
            }
            (Some(&(_, v)), None) | (None, Some(&(_, v))) => v,
            (None, None) => 0.0,
        }
    }

    pub fn start(&self) -> Time {
        self.points.first().map_or(Time::ZERO, |p| p.0)
    }

    pub fn end(&self) -> Time {
        self.points.last().map_or(Time::ZERO, |p| p.0)
    }

    pub fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(0.0, f64::max)
    }
}

/// One match: when it wants a room, for how long, with how many players.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchSpec {
    pub at: Time,
    pub duration: Millis,
    pub players: u32,
}

impl Demand {
    pub fn start(&self) -> Time {
        match self {
            Demand::Players(s) => s.start(),
            Demand::Sessions(m) | Demand::Matches(m) => m.first().map_or(Time::ZERO, |m| m.at),
        }
    }

    pub fn end(&self) -> Time {
        match self {
            Demand::Players(s) => s.end(),
            Demand::Sessions(m) | Demand::Matches(m) => m
                .iter()
                .map(|m| m.at + m.duration)
                .max()
                .unwrap_or(Time::ZERO),
        }
    }
}

/// Something the importer changed or skipped, with where it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DemandError {
    #[error("{file}:{line}: {field}: {problem}")]
    Field {
        file: String,
        line: usize,
        field: String,
        problem: String,
    },
    #[error("{file}:{line}: {problem}")]
    Line {
        file: String,
        line: usize,
        problem: String,
    },
    #[error("{file}: {problem}")]
    File { file: String, problem: String },
}

/// A trace as imported, with what the importer had to say about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    pub demand: Demand,
    pub warnings: Vec<Warning>,
}
