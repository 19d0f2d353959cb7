//! `maestro start --record FILE`: every engine input of the running
//! worker, for `maestro sim replay` (the format is `maestro_sim::record`).
//!
//! The driver hands each record to a writer thread through a bounded
//! queue and never waits on the disk: when the queue is full the record is
//! dropped, counted, and a `Gap` frame says so (a replay is exact up to
//! it). The file is bounded: past `max_bytes` it is rotated to `FILE.1`
//! (the previous one dropped) and a new segment starts with a header. A
//! replay is exact from segment 0, the process's start; a later segment
//! still holds demand for a what-if replay.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Instant;

use maestro_engine::{Effect, EngineConfig, Time};
use maestro_sim::record::{FORMAT, Record};
use maestro_sim::trace::DecisionTrace;

/// Where and how much to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordConfig {
    pub path: PathBuf,
    /// Bytes a segment holds before it is rotated.
    pub max_bytes: u64,
}

/// Records the writer may lag behind by before some are dropped.
const QUEUE: usize = 65_536;
/// A checkpoint at least this often, so a replay says where it diverged.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Recorder {
    queue: SyncSender<Record>,
    writer: Option<std::thread::JoinHandle<()>>,
    trace: DecisionTrace,
    dropped: u64,
    last_checkpoint: Instant,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot record to {path}: {cause}")]
pub struct RecordStartError {
    path: String,
    cause: String,
}

impl Recorder {
    /// Opens the file (truncating it) and starts the writer thread.
    pub fn start(
        config: &RecordConfig,
        engine: &EngineConfig,
        now: Time,
    ) -> Result<Recorder, RecordStartError> {
        let error = |cause: String| RecordStartError {
            path: config.path.display().to_string(),
            cause,
        };
        let file = File::create(&config.path).map_err(|e| error(e.to_string()))?;
        let (queue, rx) = sync_channel(QUEUE);
        let writer = Writer {
            path: config.path.clone(),
            max_bytes: config.max_bytes.max(4096),
            out: BufWriter::new(file),
            written: 0,
            segment: 0,
            engine: engine.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| error(e.to_string()))?;
        let mut recorder = Recorder {
            queue,
            writer: Some(writer),
            trace: DecisionTrace::untimed(),
            dropped: 0,
            last_checkpoint: Instant::now(),
        };
        recorder.record(Record::Header {
            format: FORMAT,
            segment: 0,
            engine: engine.clone(),
            started_at: now,
        });
        Ok(recorder)
    }

    pub fn record(&mut self, record: Record) {
        if self.dropped > 0 {
            match self.queue.try_send(Record::Gap {
                dropped: self.dropped,
            }) {
                Ok(()) => self.dropped = 0,
                Err(_) => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        match self.queue.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped == 0 {
                    tracing::warn!("the recorder fell behind: inputs dropped from the recording");
                }
                self.dropped += 1;
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Every effect the engine emits, for the checkpoints' trace hash.
    pub fn effect(&mut self, effect: &Effect) {
        self.trace.record(Time::ZERO, effect);
    }

    /// A last checkpoint, then waits for the writer to write everything.
    pub fn finish(mut self) {
        self.checkpoint(true);
        let writer = self.writer.take();
        drop(self);
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }

    /// A checkpoint, if one is due (`force`: now).
    pub fn checkpoint(&mut self, force: bool) {
        if force || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.last_checkpoint = Instant::now();
            self.record(Record::Checkpoint {
                decisions: self.trace.decisions(),
                hash: self.trace.hash(),
            });
        }
    }
}

struct Writer {
    path: PathBuf,
    max_bytes: u64,
    out: BufWriter<File>,
    written: u64,
    segment: u64,
    engine: EngineConfig,
}

impl Writer {
    fn run(mut self, rx: Receiver<Record>) {
        while let Ok(first) = rx.recv() {
            // Everything queued, then a flush when the queue runs dry: a
            // crash loses at most what was queued.
            let mut next = Some(first);
            while let Some(record) = next {
                if let Err(e) = self.write(&record) {
                    tracing::error!(path = %self.path.display(), error = %e, "recording stopped");
                    return;
                }
                next = rx.try_recv().ok();
            }
            if let Err(e) = self.out.flush() {
                tracing::error!(path = %self.path.display(), error = %e, "recording stopped");
                return;
            }
        }
        let _ = self.out.flush();
    }

    fn write(&mut self, record: &Record) -> std::io::Result<()> {
        let frame = record
            .frame()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        if self.written + frame.len() as u64 > self.max_bytes && self.written > 0 {
            self.rotate(record_time(record))?;
        }
        self.out.write_all(&frame)?;
        self.written += frame.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, now: Time) -> std::io::Result<()> {
        self.out.flush()?;
        std::fs::rename(&self.path, rotated(&self.path))?;
        self.out = BufWriter::new(File::create(&self.path)?);
        self.written = 0;
        self.segment += 1;
        tracing::info!(path = %self.path.display(), segment = self.segment, "recording rotated");
        let header = Record::Header {
            format: FORMAT,
            segment: self.segment,
            engine: self.engine.clone(),
            started_at: now,
        };
        let frame = header
            .frame()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.out.write_all(&frame)?;
        self.written += frame.len() as u64;
        Ok(())
    }
}

/// Where a full segment goes.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

fn record_time(record: &Record) -> Time {
    match record {
        Record::Header { started_at, .. } => *started_at,
        Record::Restore(t, _)
        | Record::Command(t, _)
        | Record::Ping(t, _)
        | Record::Allocate(t, _, _)
        | Record::Instance(t, _)
        | Record::Result(t, _, _)
        | Record::Timeout(t)
        | Record::Liveness(t, _) => *t,
        Record::Checkpoint { .. } | Record::Gap { .. } => Time::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maestro_sim::record::{Frames, replay};

    fn frames_of(path: &Path) -> Vec<Record> {
        let bytes = std::fs::read(path).unwrap();
        Frames::new(&bytes[..]).collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn a_full_segment_is_rotated_and_the_next_starts_with_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inputs.rec");
        let config = RecordConfig {
            path: path.clone(),
            max_bytes: 4096,
        };
        let mut recorder = Recorder::start(&config, &EngineConfig::default(), Time(1)).unwrap();
        // About 7 bytes a frame: several segments' worth.
        for i in 0..2_000 {
            recorder.record(Record::Timeout(Time(10 + i)));
        }
        recorder.finish();
        assert!(matches!(
            frames_of(&path).last(),
            Some(Record::Checkpoint { .. })
        ));
        let segment_of = |records: &[Record]| match records.first() {
            Some(Record::Header { segment, .. }) => *segment,
            other => panic!("{other:?}"),
        };
        let (old, new) = (frames_of(&rotated(&path)), frames_of(&path));
        assert!(segment_of(&new) >= 2, "several rotations");
        assert_eq!(
            segment_of(&old),
            segment_of(&new) - 1,
            "one generation kept"
        );
        // No frame lost across rotations: the timeouts run on.
        let times = |records: &[Record]| -> Vec<u64> {
            records
                .iter()
                .filter_map(|r| match r {
                    Record::Timeout(t) => Some(t.0),
                    _ => None,
                })
                .collect()
        };
        let (a, b) = (times(&old), times(&new));
        assert_eq!(a.last().map(|t| t + 1), b.first().copied());
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        // A later segment replays, but not exactly: its state is elsewhere.
        let bytes = std::fs::read(&path).unwrap();
        let replayed = replay(Frames::new(&bytes[..])).unwrap();
        assert!(replayed.inexact.is_some());
    }
}
