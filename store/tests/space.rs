//! The space bound: after writing and cleaning up one million operations,
//! the database stays within a bound set by what is live, not by what was
//! ever written.
//!
//! The shape is production's: operations are written continuously and the
//! clean-up (upstream's TTLs, our cap on finished operations) deletes the
//! oldest, so at most [`WINDOW`] are live at once. One million are written
//! in all.
//!
//! Why the window matters, measured with sled 0.34.7 on ext4: sled never
//! gives space back to the filesystem. A million operations written first
//! and deleted afterwards leave a 610-625 MiB file (about 650 bytes per
//! operation ever live at once), unchanged by the deletes or a reopen; the
//! freed segments are reused, though. So the file tracks the high-water mark
//! of live records, and the clean-up is what bounds it. The bound below is
//! about twice what this test measured for a 20,000-operation window.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use maestro_engine::operation::{Definition, HistoryEntry};
use maestro_engine::{Operation, OperationStatus, Time};
use maestro_store::{SledStore, Write};

const OPERATIONS: u64 = 1_000_000;
const PER_BATCH: u64 = 1_000;
const FLUSH_EVERY: u64 = 100;
/// Operations live at once: the clean-up deletes the oldest batch whenever
/// more are live.
const WINDOW: u64 = 20_000;
/// The bound on the database's size, files included: about twice the
/// measured size for the window (see the module comment). A store whose
/// clean-up did not free space for reuse would grow to ~620 MiB.
const SIZE_BOUND: u64 = 64 * 1024 * 1024;

fn id(n: u64) -> String {
    format!("hc-{n:07}")
}

/// A finished health check that did nothing: the store's most common record.
fn health_check(n: u64) -> Operation {
    let at = Time(1_000 + n);
    Operation {
        id: id(n),
        scheduler: "arena".to_string(),
        definition: Definition::HealthController {
            took_action: Some(false),
        },
        status: OperationStatus::Finished,
        created_at: at,
        started_at: Some(at),
        finished_at: Some(at),
        execution_history: vec![HistoryEntry {
            at,
            event: "Created".to_string(),
        }],
        lease: None,
        queue_key: n as i64,
    }
}

/// (sum of file lengths, bytes allocated) under `dir`.
fn dir_size(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (len, alloc) = dir_size(&entry.path());
            total.0 += len;
            total.1 += alloc;
        } else {
            total.0 += meta.len();
            total.1 += meta.blocks() * 512;
        }
    }
    total
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn write(store: &SledStore, batch: std::ops::Range<u64>) {
    let writes: Vec<Write> = batch
        .clone()
        .map(|n| Write::Operation(Box::new(health_check(n))))
        .collect();
    store.apply(Time(1_000 + batch.start), &writes).unwrap();
}

fn delete(store: &SledStore, batch: std::ops::Range<u64>) {
    let ids: Vec<String> = batch.clone().map(id).collect();
    let delete = Write::DeleteOperations {
        scheduler: "arena".to_string(),
        ids,
    };
    store
        .apply(Time(5_000_000 + batch.start), &[delete])
        .unwrap();
}

#[test]
fn a_million_operations_under_rolling_clean_up_stay_bounded() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let mut peak = 0;
    for (i, start) in (0..OPERATIONS).step_by(PER_BATCH as usize).enumerate() {
        write(&store, start..start + PER_BATCH);
        if start + PER_BATCH > WINDOW {
            let oldest = start + PER_BATCH - WINDOW - PER_BATCH;
            delete(&store, oldest..oldest + PER_BATCH);
        }
        if (i as u64 + 1).is_multiple_of(FLUSH_EVERY) {
            store.flush().unwrap();
            peak = peak.max(store.size_on_disk().unwrap());
        }
    }
    store.flush().unwrap();
    // The window's first and last operations are stored, the one before it is not.
    for live in [OPERATIONS - WINDOW, OPERATIONS - 1] {
        assert_eq!(
            store.operation("arena", &id(live)).unwrap(),
            Some(health_check(live))
        );
    }
    assert!(
        store
            .operation("arena", &id(OPERATIONS - WINDOW - 1))
            .unwrap()
            .is_none()
    );
    let size = store.size_on_disk().unwrap();
    let files = dir_size(dir.path());
    eprintln!(
        "space: {OPERATIONS} operations written with at most {WINDOW} live, in {:.1?}: \
         {:.1} MiB (peak {:.1} MiB; files {:.1} MiB, allocated {:.1} MiB)",
        started.elapsed(),
        mib(size),
        mib(peak),
        mib(files.0),
        mib(files.1)
    );
    check_bound("after a million operations", peak.max(size), files);
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(
        store.load().unwrap().len(),
        0,
        "no scheduler record was written"
    );
    check_bound(
        "after reopening",
        store.size_on_disk().unwrap(),
        dir_size(dir.path()),
    );
}

fn check_bound(when: &str, size_on_disk: u64, (files, allocated): (u64, u64)) {
    for (what, bytes) in [
        ("size_on_disk", size_on_disk),
        ("files", files),
        ("allocated", allocated),
    ] {
        assert!(
            bytes <= SIZE_BOUND,
            "{when}: {what} is {:.1} MiB, above the bound of {:.1} MiB",
            mib(bytes),
            mib(SIZE_BOUND)
        );
    }
}
