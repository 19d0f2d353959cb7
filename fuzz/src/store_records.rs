//! Corrupts the records of a real store and reads it back. The store is
//! filled by the engine (a scheduler created, its rooms created and
//! pinging, its operations run), then the input picks records and breaks
//! them: bytes flipped, cut, extended or replaced, keys moved, records
//! dropped or copied under another key. Opening the store and reading it
//! (`load`, the forwarding outbox) may fail, naming the record, but must
//! never panic: a corrupt disk is an error to report, not a crash.
//!
//! Run: `cargo fuzz run -s none store_records -- -max_total_time=60`
//! (`-s none` works on a stable toolchain); `cargo test` in `fuzz/`
//! replays the committed seeds (`fuzz/seeds/store_records/`).

use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use maestro_engine::room::PingStatus;
use maestro_engine::scheduler::fixtures;
use maestro_engine::{Command, Effect, Engine, EngineConfig, Millis, Ping, Time};
use maestro_store::{Kv, MemoryKv, SimulatedDisk, Store, Write};

type Entries = Vec<(Vec<u8>, Vec<u8>)>;
type BatchEntry = (Vec<u8>, Option<Vec<u8>>);

const NAME: &str = "arena";

/// Every record of a store the engine filled, built once.
fn records() -> &'static Entries {
    static RECORDS: OnceLock<Entries> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let mut engine = Engine::new(EngineConfig::default());
        // A simulated disk shares its records between clones: the store
        // writes through one, the records are listed through the other.
        let disk = SimulatedDisk::new();
        let store = Store::with_kv(disk.clone()).expect("an empty store opens");
        let mut now = Time(1_000_000);
        let mut scheduler = fixtures::scheduler(NAME);
        scheduler.rooms_replicas = 3;
        let _ = engine.handle_command(now, Command::CreateScheduler(scheduler));
        // Every runtime call succeeds; rooms ping ready; time passes so
        // operations finish and their history is written.
        for _ in 0..20 {
            let mut writes = Vec::new();
            let mut done = Vec::new();
            while let Some(effect) = engine.poll_effect() {
                writes.extend(Write::from_effect(&effect));
                match effect {
                    Effect::CreateSchedulerResources { id, .. }
                    | Effect::DeleteSchedulerResources { id, .. }
                    | Effect::CreateRoom { id, .. }
                    | Effect::DeleteRoom { id, .. } => done.push(id),
                    _ => {}
                }
            }
            store
                .apply(now, &writes)
                .expect("the simulated disk writes");
            for id in done {
                engine.handle_effect_result(now, id, Ok(()));
            }
            if let Some(fleet) = engine.fleet(NAME) {
                let rooms: Vec<String> = fleet.rooms().map(|r| r.id.clone()).collect();
                for room in rooms {
                    let ping = Ping {
                        scheduler: NAME.to_string(),
                        room,
                        status: PingStatus::Ready,
                        running_matches: 0,
                        metadata_json: r#"{"region":"eu"}"#.to_string(),
                    };
                    let _ = engine.handle_ping(now, &ping);
                }
            }
            now = now + Millis::from_secs(5);
            while engine.poll_timeout().is_some_and(|t| t <= now) {
                engine.handle_timeout(now);
            }
        }
        store.flush().expect("the simulated disk flushes");
        let records = disk
            .scan_prefix(b"", usize::MAX)
            .expect("the simulated disk lists its records");
        // The scheduler's version, its operations and its three rooms at
        // least: an empty store would make every input pass untested.
        assert!(records.len() >= 5, "only {} records", records.len());
        records
    })
}

/// One way of breaking a record.
fn corrupt(u: &mut Unstructured, key: &mut Vec<u8>, value: &mut Vec<u8>) -> Result<()> {
    match u.int_in_range(0u8..=6)? {
        0 if !value.is_empty() => {
            let at = u.choose_index(value.len())?;
            value[at] ^= u.int_in_range(1u8..=255)?;
        }
        1 => value.truncate(u.choose_index(value.len() + 1)?),
        2 => {
            let len = u.int_in_range(1usize..=16)?;
            value.extend_from_slice(u.bytes(len)?);
        }
        3 => {
            let len = u.int_in_range(0usize..=64)?;
            *value = u.bytes(len)?.to_vec();
        }
        4 if !key.is_empty() => {
            let at = u.choose_index(key.len())?;
            key[at] ^= u.int_in_range(1u8..=255)?;
        }
        5 => key.truncate(u.choose_index(key.len() + 1)?),
        _ => {
            // A version byte or a length out of range, at the front.
            if let Some(first) = value.first_mut() {
                *first = u.arbitrary()?;
            }
        }
    }
    Ok(())
}

fn drive(u: &mut Unstructured) -> Result<()> {
    let records = records();
    let kv = MemoryKv::default();
    let mut batch: Vec<BatchEntry> = records
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    for _ in 0..u.int_in_range(1u8..=8)? {
        let at = u.choose_index(records.len())?;
        let (mut key, mut value) = records[at].clone();
        match u.int_in_range(0u8..=3)? {
            // Dropped.
            0 => batch.push((key, None)),
            // Copied under another record's key.
            1 => {
                let other = &records[u.choose_index(records.len())?].0;
                batch.push((other.clone(), Some(value)));
            }
            // Broken in place, or under a broken key (the original stays).
            _ => {
                corrupt(u, &mut key, &mut value)?;
                batch.push((key, Some(value)));
            }
        }
    }
    kv.apply(batch).expect("the memory store writes");
    // Errors are fine; a panic is the bug.
    let Ok(store) = Store::with_kv(kv) else {
        return Ok(());
    };
    let _ = store.load();
    if let Ok(lanes) = store.outbox_lanes() {
        for lane in lanes {
            let _ = store.outbox_page(&lane, 0, 100);
            let _ = store.outbox_len(&lane);
        }
    }
    Ok(())
}

/// One input: a handful of records broken, then the store read back.
pub fn run(data: &[u8]) {
    let _ = drive(&mut Unstructured::new(data));
}
