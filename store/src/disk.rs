//! A simulated disk: an in-memory [`Kv`] that loses what was not flushed
//! when it "crashes", and fails writes or flushes on demand.
//!
//! For tests, the simulator and the chaos harness: a process can be
//! restarted on the disk that survives its crash (clone the handle before,
//! call [`SimulatedDisk::crash`], open a new store on it), and a store fault
//! (a full disk, an IO error) can be injected at any moment, so the shell's
//! rule "acknowledge only what is flushed, stop on a failed write" is
//! checked without a real disk.
//!
//! Every batch is applied to the visible map at once and its keys' earlier
//! values are kept in an undo log until the next flush; a crash rolls the
//! unflushed batches back, newest first, which leaves exactly what the last
//! successful flush covered. A failed flush makes nothing durable.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::StoreError;
use crate::kv::{BatchEntry, Entries, Kv, last_key_in, scan_map, size_of};

/// A cloneable handle: every clone is the same disk.
#[derive(Clone, Default)]
pub struct SimulatedDisk {
    inner: Arc<Mutex<Disk>>,
}

#[derive(Default)]
struct Disk {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For every key changed since the last flush, its value at that flush.
    undo: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    fail_writes: bool,
    fail_flushes: bool,
    flushes: u64,
    refusals: u64,
}

/// What a simulated fault answers.
pub const INJECTED_FAULT: &str = "injected fault: the simulated disk refuses";

impl SimulatedDisk {
    pub fn new() -> SimulatedDisk {
        SimulatedDisk::default()
    }

    fn disk(&self) -> MutexGuard<'_, Disk> {
        // Every mutation below completes before it could panic, so a
        // poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// From now on, `apply` fails (`true`) or works again (`false`).
    pub fn fail_writes(&self, fail: bool) {
        self.disk().fail_writes = fail;
    }

    /// From now on, `flush` fails (`true`) or works again (`false`).
    pub fn fail_flushes(&self, fail: bool) {
        self.disk().fail_flushes = fail;
    }

    /// Successful flushes so far.
    pub fn flushes(&self) -> u64 {
        self.disk().flushes
    }

    /// Writes and flushes refused so far (injected faults).
    pub fn refusals(&self) -> u64 {
        self.disk().refusals
    }

    /// Whether some applied batch is not flushed yet.
    pub fn has_unflushed(&self) -> bool {
        !self.disk().undo.is_empty()
    }

    /// The power goes out: every batch applied since the last successful
    /// flush is gone. Faults are cleared, as after replacing a broken disk.
    pub fn crash(&self) {
        let mut disk = self.disk();
        let undo = std::mem::take(&mut disk.undo);
        for (key, before) in undo {
            match before {
                Some(value) => disk.map.insert(key, value),
                None => disk.map.remove(&key),
            };
        }
        disk.fail_writes = false;
        disk.fail_flushes = false;
    }
}

fn fault() -> StoreError {
    StoreError::Io(INJECTED_FAULT.to_string())
}

impl Kv for SimulatedDisk {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.disk().map.get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(scan_map(&self.disk().map, prefix, prefix, limit))
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(scan_map(&self.disk().map, prefix, start, limit))
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(last_key_in(&self.disk().map, prefix))
    }

    fn apply(&self, batch: Vec<BatchEntry>) -> Result<(), StoreError> {
        let mut disk = self.disk();
        if disk.fail_writes {
            disk.refusals += 1;
            return Err(fault());
        }
        let Disk { map, undo, .. } = &mut *disk;
        for (key, value) in batch {
            let before = match value {
                Some(v) => map.insert(key.clone(), v),
                None => map.remove(&key),
            };
            undo.entry(key).or_insert(before);
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut disk = self.disk();
        if disk.fail_flushes {
            disk.refusals += 1;
            return Err(fault());
        }
        disk.undo.clear();
        disk.flushes += 1;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(size_of(&self.disk().map))
    }

    fn flush_blocks(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> BatchEntry {
        (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
    }

    fn del(k: &str) -> BatchEntry {
        (k.as_bytes().to_vec(), None)
    }

    fn get(disk: &SimulatedDisk, k: &str) -> Option<String> {
        disk.get(k.as_bytes())
            .expect("reads never fail")
            .map(|v| String::from_utf8(v).expect("utf-8"))
    }

    #[test]
    fn a_crash_keeps_exactly_what_was_flushed() {
        let disk = SimulatedDisk::new();
        disk.apply(vec![put("a", "1"), put("b", "1")]).unwrap();
        disk.flush().unwrap();
        disk.apply(vec![put("a", "2"), del("b"), put("c", "2")])
            .unwrap();
        disk.apply(vec![put("a", "3"), put("b", "3")]).unwrap();
        assert_eq!(get(&disk, "a").as_deref(), Some("3"));
        assert!(disk.has_unflushed());

        disk.clone().crash();
        assert_eq!(get(&disk, "a").as_deref(), Some("1"));
        assert_eq!(get(&disk, "b").as_deref(), Some("1"));
        assert_eq!(get(&disk, "c"), None);
        assert!(!disk.has_unflushed());
    }

    #[test]
    fn injected_faults_fail_and_change_nothing() {
        let disk = SimulatedDisk::new();
        disk.apply(vec![put("a", "1")]).unwrap();
        disk.fail_writes(true);
        assert!(matches!(
            disk.apply(vec![put("a", "2")]),
            Err(StoreError::Io(_))
        ));
        assert_eq!(get(&disk, "a").as_deref(), Some("1"));
        disk.fail_flushes(true);
        assert!(disk.flush().is_err());
        assert_eq!(disk.flushes(), 0);
        // A failed flush made nothing durable.
        disk.crash();
        assert_eq!(get(&disk, "a"), None);
        // The crash cleared the faults.
        disk.apply(vec![put("a", "4")]).unwrap();
        disk.flush().unwrap();
        assert_eq!(disk.flushes(), 1);
    }
}
