//! Recordings of a running service's engine inputs, and their replay.
//!
//! `maestro start --record FILE` writes every input the driver hands the
//! engine, with its time, as length-prefixed postcard frames: the engine's
//! configuration (its seed included) first, then the schedulers restored
//! at start-up, then commands, pings, allocations, pod events, runtime
//! results and timeouts in the order the engine saw them, and now and then
//! a checkpoint with the number of decisions so far and their trace hash.
//! [`replay`] feeds the same inputs to a fresh engine and compares its
//! decisions with every checkpoint: the engine is deterministic, so they
//! agree unless the engine changed. A recording is also demand: the
//! allocations it holds, with how long each room stayed busy, are matches
//! the planner can replay under another policy ([`Replayed::matches`]).
//!
//! The trace hash of a recording leaves out times ([`DecisionTrace::untimed`]):
//! the driver takes effects out in batches, after several inputs, so an
//! effect's time there is not the time of the input that caused it.

use std::collections::BTreeMap;
use std::io::Read;

use maestro_engine::room::PingStatus;
use maestro_engine::{
    AllocateError, Command, EffectId, Engine, EngineConfig, InstanceEvent, InstanceEventKind,
    Liveness, Millis, Ping, RuntimeError, StoredScheduler, Time,
};
use serde::{Deserialize, Serialize};

use crate::demand::MatchSpec;
use crate::trace::DecisionTrace;

/// The recording format's version, in every segment's header.
pub const FORMAT: u32 = 1;

/// One frame of a recording.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Record {
    /// The first frame of every segment. Segment 0 starts with the process;
    /// later ones continue it after a rotation.
    Header {
        format: u32,
        segment: u64,
        engine: EngineConfig,
        started_at: Time,
    },
    Restore(Time, Box<StoredScheduler>),
    Command(Time, Box<Command>),
    Ping(Time, Ping),
    Allocate(Time, String, Option<String>),
    Instance(Time, InstanceEvent),
    Result(Time, EffectId, Result<(), RuntimeError>),
    Timeout(Time),
    /// The recorder's decisions so far and their (untimed) trace hash.
    Checkpoint {
        decisions: u64,
        hash: String,
    },
    /// Frames the recorder had to drop (its writer fell behind): the
    /// inputs after this point cannot be replayed exactly.
    Gap {
        dropped: u64,
    },
    /// What the simulated cluster reported of a room's pings (its harness
    /// only; last, so that older recordings still decode).
    Liveness(Time, Liveness),
}

impl Record {
    /// A length-prefixed frame.
    pub fn frame(&self) -> Result<Vec<u8>, RecordError> {
        let body = postcard::to_stdvec(self).map_err(|e| RecordError::Encode(e.to_string()))?;
        let len = u32::try_from(body.len())
            .map_err(|_| RecordError::Encode("a frame over 4 GiB".into()))?;
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("cannot encode a record: {0}")]
    Encode(String),
    #[error("frame {frame} (at byte {offset}): {problem}")]
    Corrupt {
        frame: u64,
        offset: u64,
        problem: String,
    },
    #[error("cannot read the recording: {0}")]
    Io(String),
}

/// Frames limit: no valid record is near this size.
const MAX_FRAME: u32 = 256 << 20;

/// Reads frames until the end. A frame cut short at the very end (the
/// process died mid-write) ends the recording; `truncated` says so.
pub struct Frames<R> {
    reader: R,
    frame: u64,
    offset: u64,
    pub truncated: bool,
}

impl<R: Read> Frames<R> {
    pub fn new(reader: R) -> Frames<R> {
        Frames {
            reader,
            frame: 0,
            offset: 0,
            truncated: false,
        }
    }

    fn read_exact_or_end(&mut self, buf: &mut [u8]) -> Result<bool, RecordError> {
        let mut read = 0;
        while read < buf.len() {
            match self.reader.read(&mut buf[read..]) {
                Ok(0) => {
                    if read > 0 {
                        self.truncated = true;
                    }
                    return Ok(false);
                }
                Ok(n) => read += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RecordError::Io(e.to_string())),
            }
        }
        Ok(true)
    }
}

impl<R: Read> Iterator for Frames<R> {
    type Item = Result<Record, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut len = [0u8; 4];
        match self.read_exact_or_end(&mut len) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        let len = u32::from_le_bytes(len);
        let corrupt = |frames: &Self, problem: String| RecordError::Corrupt {
            frame: frames.frame,
            offset: frames.offset,
            problem,
        };
        if len > MAX_FRAME {
            return Some(Err(corrupt(self, format!("a frame of {len} bytes"))));
        }
        let mut body = vec![0u8; len as usize];
        match self.read_exact_or_end(&mut body) {
            Ok(true) => {}
            Ok(false) => {
                self.truncated = true;
                return None;
            }
            Err(e) => return Some(Err(e)),
        }
        let record = postcard::from_bytes(&body).map_err(|e| corrupt(self, e.to_string()));
        self.frame += 1;
        self.offset += 4 + u64::from(len);
        Some(record)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("the recording does not start with a header")]
    NoHeader,
    #[error("format {0} is not one this maestro reads (it reads {FORMAT})")]
    Format(u32),
    #[error("scheduler {0} does not restore: {1}")]
    Restore(String, String),
}

/// What a replay found.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    pub segment: u64,
    pub inputs: u64,
    pub decisions: u64,
    pub hash: String,
    /// Checkpoints the replay agreed with.
    pub checkpoints: u64,
    /// The first checkpoint that disagreed: `(frame, recorded, replayed)`.
    pub mismatch: Option<(u64, String, String)>,
    /// Why the replay could not be exact (a later segment, a gap).
    pub inexact: Option<String>,
    /// The recording's allocations as matches, by scheduler: when each was
    /// asked for and how long the room stayed busy (asks that found no
    /// room last the median of the others).
    pub matches: BTreeMap<String, Vec<MatchSpec>>,
    pub start: Time,
    pub end: Time,
}

/// Replays a recording through a fresh engine.
pub fn replay(
    mut frames: impl Iterator<Item = Result<Record, RecordError>>,
) -> Result<Replayed, ReplayError> {
    let (segment, config, started_at) = match frames.next() {
        Some(Ok(Record::Header {
            format,
            segment,
            engine,
            started_at,
        })) => {
            if format != FORMAT {
                return Err(ReplayError::Format(format));
            }
            (segment, engine, started_at)
        }
        Some(Err(e)) => return Err(e.into()),
        _ => return Err(ReplayError::NoHeader),
    };
    let mut engine = Engine::new(config);
    let mut trace = DecisionTrace::untimed();
    let mut out = Replayed {
        segment,
        inputs: 0,
        decisions: 0,
        hash: String::new(),
        checkpoints: 0,
        mismatch: None,
        inexact: (segment > 0).then(|| {
            format!("segment {segment} continues an earlier one: its engine state is not in it")
        }),
        matches: BTreeMap::new(),
        start: started_at,
        end: started_at,
    };
    let mut busy: BTreeMap<(String, String), Time> = BTreeMap::new();
    let mut unserved: Vec<(String, Time)> = Vec::new();
    let mut frame = 1u64;
    let drain = |engine: &mut Engine, trace: &mut DecisionTrace| {
        while let Some(effect) = engine.poll_effect() {
            trace.record(Time::ZERO, &effect);
        }
    };
    for record in frames {
        let record = record?;
        frame += 1;
        let exact = out.inexact.is_none();
        match record {
            Record::Header { .. } => {}
            Record::Restore(now, stored) => {
                out.end = now;
                let name = stored
                    .versions
                    .first()
                    .map(|v| v.scheduler.name.clone())
                    .unwrap_or_default();
                engine
                    .restore(now, *stored)
                    .map_err(|e| ReplayError::Restore(name, e.to_string()))?;
            }
            Record::Command(now, command) => {
                out.end = now;
                let _ = engine.handle_command(now, *command);
            }
            Record::Ping(now, ping) => {
                out.end = now;
                let key = (ping.scheduler.clone(), ping.room.clone());
                let free = matches!(ping.status, PingStatus::Terminated)
                    || (ping.status == PingStatus::Ready && ping.running_matches == 0);
                if free && let Some(at) = busy.remove(&key) {
                    out.matches.entry(key.0).or_default().push(MatchSpec {
                        at,
                        duration: now.since(at),
                        players: 0,
                    });
                }
                let _ = engine.handle_ping(now, &ping);
            }
            Record::Allocate(now, scheduler, key) => {
                out.end = now;
                match engine.allocate(now, &scheduler, key.as_deref()) {
                    Ok(a) => {
                        busy.insert((scheduler, a.room), now);
                    }
                    Err(AllocateError::NoRoomAvailable) => unserved.push((scheduler, now)),
                    Err(_) => {}
                }
            }
            Record::Instance(now, event) => {
                out.end = now;
                if event.kind == InstanceEventKind::Deleted
                    && let Some(at) = busy.remove(&(event.scheduler.clone(), event.room.clone()))
                {
                    out.matches
                        .entry(event.scheduler.clone())
                        .or_default()
                        .push(MatchSpec {
                            at,
                            duration: now.since(at),
                            players: 0,
                        });
                }
                engine.handle_instance_event(now, &event);
            }
            Record::Result(now, id, result) => {
                out.end = now;
                engine.handle_effect_result(now, id, result);
            }
            Record::Timeout(now) => {
                out.end = now;
                engine.handle_timeout(now);
            }
            Record::Liveness(now, liveness) => {
                out.end = now;
                let _ = engine.handle_liveness(now, &liveness);
            }
            Record::Checkpoint { decisions, hash } => {
                drain(&mut engine, &mut trace);
                if exact && out.mismatch.is_none() {
                    if trace.decisions() == decisions && trace.hash() == hash {
                        out.checkpoints += 1;
                    } else {
                        out.mismatch = Some((
                            frame,
                            format!("{decisions} decisions, {hash}"),
                            format!("{} decisions, {}", trace.decisions(), trace.hash()),
                        ));
                    }
                }
                continue;
            }
            Record::Gap { dropped } => {
                if out.inexact.is_none() {
                    out.inexact = Some(format!(
                        "the recorder dropped {dropped} inputs at frame {frame}"
                    ));
                }
                continue;
            }
        }
        out.inputs += 1;
        drain(&mut engine, &mut trace);
    }
    // Matches still running at the end last until then.
    for ((scheduler, _), at) in busy {
        out.matches.entry(scheduler).or_default().push(MatchSpec {
            at,
            duration: out.end.since(at).max(Millis(1_000)),
            players: 0,
        });
    }
    for (scheduler, at) in unserved {
        let list = out.matches.entry(scheduler).or_default();
        let mut lengths: Vec<Millis> = list.iter().map(|m| m.duration).collect();
        lengths.sort_unstable();
        let median = lengths
            .get(lengths.len() / 2)
            .copied()
            .unwrap_or(Millis::from_secs(1_800));
        list.push(MatchSpec {
            at,
            duration: median,
            players: 0,
        });
    }
    for list in out.matches.values_mut() {
        list.sort_by_key(|m| m.at);
    }
    out.decisions = trace.decisions();
    out.hash = trace.hash();
    Ok(out)
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
