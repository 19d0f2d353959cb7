//! The ordered key-value layer under the store: sled on disk, a B-tree in
//! memory. The store's logic (records, batches) is written once on
//! top of this trait, so both implementations behave the same by
//! construction and one contract suite covers them.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::StoreError;

/// A batch entry: a put (`Some`) or a delete (`None`).
pub type BatchEntry = (Vec<u8>, Option<Vec<u8>>);

/// Key-value pairs in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

pub trait Kv: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Entries under `prefix` in key order, at most `limit`.
    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError>;
    /// Entries under `prefix` whose key is at least `start`, in key order,
    /// at most `limit`: paging through a prefix without loading all of it.
    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StoreError>;
    /// The greatest key under `prefix`.
    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Applies every entry or none (a crash never leaves half a batch).
    fn apply(&self, batch: Vec<BatchEntry>) -> Result<(), StoreError>;
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<(), StoreError>;
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// Whether `flush` blocks its thread on IO (sled's fsync, a
    /// PostgreSQL COMMIT), so that an async caller runs it on a blocking
    /// thread. An in-memory store's flush is run on a task instead: in a
    /// simulation with paused time (the chaos harness), a blocking thread
    /// would stall the clock.
    fn flush_blocks(&self) -> bool {
        true
    }
}

/// In memory: for the simulator and tests. `flush` is a no-op.
#[derive(Default)]
pub struct MemoryKv {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryKv {
    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic while holding the lock cannot leave a half-applied batch
        // (batches are applied to a copy-free loop that cannot panic), so a
        // poisoned lock still guards consistent data.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Kv for MemoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(scan_map(&self.map(), prefix, prefix, limit))
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(scan_map(&self.map(), prefix, start, limit))
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(last_key_in(&self.map(), prefix))
    }

    fn apply(&self, batch: Vec<BatchEntry>) -> Result<(), StoreError> {
        let mut map = self.map();
        for (key, value) in batch {
            match value {
                Some(v) => map.insert(key, v),
                None => map.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(size_of(&self.map()))
    }

    fn flush_blocks(&self) -> bool {
        false
    }
}

/// The in-memory maps' reads (here and in [`crate::SimulatedDisk`]):
/// entries under `prefix` from `start`, in key order, at most `limit`.
pub(crate) fn scan_map(
    map: &BTreeMap<Vec<u8>, Vec<u8>>,
    prefix: &[u8],
    start: &[u8],
    limit: usize,
) -> Entries {
    map.range(start.max(prefix).to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .take(limit)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn last_key_in(map: &BTreeMap<Vec<u8>, Vec<u8>>, prefix: &[u8]) -> Option<Vec<u8>> {
    map.range(prefix.to_vec()..)
        .take_while(|(k, _)| k.starts_with(prefix))
        .last()
        .map(|(k, _)| k.clone())
}

pub(crate) fn size_of(map: &BTreeMap<Vec<u8>, Vec<u8>>) -> u64 {
    map.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

/// On disk, in sled 0.34.
pub struct SledKv {
    db: sled::Db,
    tree: sled::Tree,
    /// The database file, fsynced on flush: sled's own flush ends in
    /// `sync_file_range`, which leaves the drive's cache and the file's
    /// metadata unsynced.
    data_file: File,
    path: PathBuf,
}

/// The one tree every record lives in, so a batch is atomic.
pub const TREE: &str = "maestro";

impl SledKv {
    pub fn open(path: &Path) -> Result<SledKv, StoreError> {
        let open_error = |cause: String| StoreError::Open {
            path: path.to_path_buf(),
            cause,
        };
        std::fs::create_dir_all(path).map_err(|e| open_error(e.to_string()))?;
        let config = sled::Config::new().path(path).flush_every_ms(Some(500));
        // sled 0.34 panics on some corrupt files (sled#1533); turn that into
        // an error naming the path.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|panic| open_error(panic_message(panic)))?;
        let db = opened.map_err(|e| open_error(e.to_string()))?;
        let tree = db.open_tree(TREE).map_err(|e| open_error(e.to_string()))?;
        let data_file =
            File::open(path.join("db")).map_err(|e| open_error(format!("db file: {e}")))?;
        Ok(SledKv {
            db,
            tree,
            data_file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("sled panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("sled panicked: {s}")
    } else {
        "sled panicked".to_string()
    }
}

fn db_error(e: sled::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key).map_err(db_error)?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let mut out = Vec::new();
        for entry in self.tree.scan_prefix(prefix).take(limit) {
            let (k, v) = entry.map_err(db_error)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        let from = start.max(prefix).to_vec();
        let mut out = Vec::new();
        for entry in self.tree.range(from..).take(limit) {
            let (k, v) = entry.map_err(db_error)?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.tree.scan_prefix(prefix).next_back() {
            Some(entry) => Ok(Some(entry.map_err(db_error)?.0.to_vec())),
            None => Ok(None),
        }
    }

    fn apply(&self, batch: Vec<BatchEntry>) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch {
            match value {
                Some(v) => sled_batch.insert(key, v),
                None => sled_batch.remove(key),
            }
        }
        self.tree.apply_batch(sled_batch).map_err(db_error)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(db_error)?;
        self.data_file
            .sync_data()
            .map_err(|e| StoreError::Io(format!("fsync {}: {e}", self.path.join("db").display())))
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(db_error)
    }
}
