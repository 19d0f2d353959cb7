//! A simulated PostgreSQL, for the chaos harness's highly available layout:
//! one database shared by several workers, with the leader lease and the
//! fence of [`crate::PostgresKv`] and [`crate::PostgresLease`], in memory.
//!
//! Each worker gets its own connection ([`SimulatedDatabase::connect_fenced`]):
//! like `PostgresKv`, a connection keeps the batches it applied in an
//! overlay that its own reads see, and a flush commits them all at once,
//! only while the lease is still at the connection's epoch
//! ([`StoreError::Fenced`] otherwise). A worker that dies loses its
//! overlay, as a process loses what it did not commit. A client can be cut
//! off the database ([`SimulatedDatabase::set_reachable`]): its calls fail
//! as a broken connection's do. The lease is timed by the database's clock,
//! which the caller provides.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use maestro_engine::Time;

use crate::error::StoreError;
use crate::kv::{BatchEntry, Entries, Kv, last_key_in, scan_map, size_of};
use crate::lease::{Lease, LeaseState};

/// The database's clock.
pub type DbClock = Arc<dyn Fn() -> Time + Send + Sync>;

#[derive(Clone, Debug)]
struct Row {
    epoch: i64,
    holder: String,
    expires_at: Time,
}

#[derive(Default)]
struct Db {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    lease: Option<Row>,
    unreachable: BTreeSet<String>,
    /// Flushes refused because their epoch was no longer the lease's.
    fenced: u64,
}

/// The shared database. Cloning gives another handle on the same one.
#[derive(Clone)]
pub struct SimulatedDatabase {
    db: Arc<Mutex<Db>>,
    clock: DbClock,
}

fn lock(db: &Mutex<Db>) -> MutexGuard<'_, Db> {
    // Every mutation completes before it could panic.
    db.lock().unwrap_or_else(|p| p.into_inner())
}

fn unreachable(client: &str) -> StoreError {
    StoreError::Io(format!("the database is unreachable from {client}"))
}

impl SimulatedDatabase {
    pub fn new(clock: DbClock) -> SimulatedDatabase {
        SimulatedDatabase {
            db: Arc::new(Mutex::new(Db::default())),
            clock,
        }
    }

    /// The store of the worker that leads at `epoch`, for `client` (a
    /// name [`SimulatedDatabase::set_reachable`] cuts off).
    pub fn connect_fenced(&self, epoch: i64, client: &str) -> SimulatedConnection {
        SimulatedConnection {
            db: Arc::clone(&self.db),
            client: client.to_string(),
            epoch,
            overlay: Mutex::new(BTreeMap::new()),
        }
    }

    /// The leader lease as `holder` (unique per process) sees it, reached
    /// from `client`.
    pub fn lease(&self, holder: &str, client: &str, duration: Duration) -> SimulatedLease {
        SimulatedLease {
            db: self.clone(),
            holder: holder.to_string(),
            client: client.to_string(),
            duration,
        }
    }

    /// Cuts `client` off the database (`false`) or connects it again.
    pub fn set_reachable(&self, client: &str, reachable: bool) {
        let mut db = lock(&self.db);
        if reachable {
            db.unreachable.remove(client);
        } else {
            db.unreachable.insert(client.to_string());
        }
    }

    /// The lease's epoch now, if it was ever taken.
    pub fn epoch(&self) -> Option<i64> {
        lock(&self.db).lease.as_ref().map(|row| row.epoch)
    }

    /// Flushes refused by the fence so far.
    pub fn fenced_flushes(&self) -> u64 {
        lock(&self.db).fenced
    }
}

/// One worker's connection: a [`Kv`] over the shared database.
pub struct SimulatedConnection {
    db: Arc<Mutex<Db>>,
    client: String,
    epoch: i64,
    /// Applied, not committed: `None` deletes.
    overlay: Mutex<BTreeMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl SimulatedConnection {
    fn overlay(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Option<Vec<u8>>>> {
        self.overlay.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed entries under `prefix` with this connection's overlay
    /// applied (reads see their own uncommitted writes, as sled's do).
    fn view(&self, prefix: &[u8]) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        let db = lock(&self.db);
        if db.unreachable.contains(&self.client) {
            return Err(unreachable(&self.client));
        }
        let mut view: BTreeMap<Vec<u8>, Vec<u8>> = db
            .map
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        drop(db);
        let overlay = self.overlay();
        let pending = overlay
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        for (key, value) in pending {
            match value {
                Some(v) => view.insert(key.clone(), v.clone()),
                None => view.remove(key),
            };
        }
        Ok(view)
    }
}

impl Kv for SimulatedConnection {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.overlay().get(key) {
            return Ok(pending.clone());
        }
        let db = lock(&self.db);
        if db.unreachable.contains(&self.client) {
            return Err(unreachable(&self.client));
        }
        Ok(db.map.get(key).cloned())
    }

    fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(scan_map(&self.view(prefix)?, prefix, prefix, limit))
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StoreError> {
        Ok(scan_map(&self.view(prefix)?, prefix, start, limit))
    }

    fn last_key(&self, prefix: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(last_key_in(&self.view(prefix)?, prefix))
    }

    fn apply(&self, batch: Vec<BatchEntry>) -> Result<(), StoreError> {
        let mut overlay = self.overlay();
        for (key, value) in batch {
            overlay.insert(key, value);
        }
        Ok(())
    }

    /// Commits the overlay in one transaction, only while the lease is at
    /// this connection's epoch.
    fn flush(&self) -> Result<(), StoreError> {
        let mut db = lock(&self.db);
        if db.unreachable.contains(&self.client) {
            return Err(unreachable(&self.client));
        }
        let current = db.lease.as_ref().map(|row| row.epoch);
        if current != Some(self.epoch) {
            db.fenced += 1;
            return Err(StoreError::Fenced {
                epoch: self.epoch,
                current,
            });
        }
        let pending = std::mem::take(&mut *self.overlay());
        for (key, value) in pending {
            match value {
                Some(v) => db.map.insert(key, v),
                None => db.map.remove(&key),
            };
        }
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(size_of(&lock(&self.db).map))
    }

    fn flush_blocks(&self) -> bool {
        false
    }
}

/// The lease as one process sees it, timed by the database's clock.
pub struct SimulatedLease {
    db: SimulatedDatabase,
    holder: String,
    client: String,
    duration: Duration,
}

impl SimulatedLease {
    fn call<T>(&self, f: impl FnOnce(&mut Db, Time) -> T) -> Result<T, StoreError> {
        let now = (self.db.clock)();
        let mut db = lock(&self.db.db);
        if db.unreachable.contains(&self.client) {
            return Err(unreachable(&self.client));
        }
        Ok(f(&mut db, now))
    }

    fn until(&self, now: Time) -> Time {
        let ms = u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX);
        Time(now.0.saturating_add(ms))
    }
}

impl Lease for SimulatedLease {
    fn try_acquire(&self) -> Result<LeaseState, StoreError> {
        self.call(|db, now| match &mut db.lease {
            Some(row) if row.holder == self.holder => LeaseState::Leader { epoch: row.epoch },
            Some(row) if row.expires_at > now => LeaseState::Held {
                holder: row.holder.clone(),
                epoch: row.epoch,
                expires_in: Duration::from_millis(row.expires_at.0 - now.0),
            },
            lease => {
                let epoch = lease.as_ref().map_or(1, |row| row.epoch + 1);
                *lease = Some(Row {
                    epoch,
                    holder: self.holder.clone(),
                    expires_at: self.until(now),
                });
                LeaseState::Leader { epoch }
            }
        })
    }

    fn renew(&self, epoch: i64) -> Result<bool, StoreError> {
        self.call(|db, now| match &mut db.lease {
            Some(row) if row.epoch == epoch => {
                row.expires_at = self.until(now);
                true
            }
            _ => false,
        })
    }

    fn release(&self, epoch: i64) -> Result<(), StoreError> {
        self.call(|db, now| {
            if let Some(row) = &mut db.lease
                && row.epoch == epoch
            {
                row.expires_at = now;
            }
        })
    }

    fn duration(&self) -> Duration {
        self.duration
    }

    fn blocks(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn database() -> (SimulatedDatabase, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_000));
        let clock = Arc::clone(&now);
        let db = SimulatedDatabase::new(Arc::new(move || Time(clock.load(Ordering::Relaxed))));
        (db, now)
    }

    #[test]
    fn a_lapsed_lease_goes_to_the_next_epoch_and_fences_the_old_leader() {
        let (db, now) = database();
        let a = db.lease("a", "host-a", Duration::from_secs(10));
        let b = db.lease("b", "host-b", Duration::from_secs(10));
        assert_eq!(a.try_acquire().unwrap(), LeaseState::Leader { epoch: 1 });
        let old = db.connect_fenced(1, "host-a");
        old.apply(vec![(b"k".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        assert_eq!(
            old.get(b"k").unwrap(),
            Some(b"1".to_vec()),
            "reads see their writes"
        );
        old.flush().unwrap();
        assert!(matches!(
            b.try_acquire().unwrap(),
            LeaseState::Held { epoch: 1, .. }
        ));
        now.store(11_001, Ordering::Relaxed);
        assert_eq!(b.try_acquire().unwrap(), LeaseState::Leader { epoch: 2 });
        assert!(!a.renew(1).unwrap(), "deposed");
        old.apply(vec![(b"k".to_vec(), Some(b"2".to_vec()))])
            .unwrap();
        assert!(matches!(
            old.flush(),
            Err(StoreError::Fenced {
                epoch: 1,
                current: Some(2)
            })
        ));
        let new = db.connect_fenced(2, "host-b");
        assert_eq!(
            new.get(b"k").unwrap(),
            Some(b"1".to_vec()),
            "the fenced write is not there"
        );
        assert_eq!(db.fenced_flushes(), 1);
    }

    #[test]
    fn an_unreachable_client_can_neither_renew_nor_commit() {
        let (db, _now) = database();
        let a = db.lease("a", "host-a", Duration::from_secs(10));
        assert_eq!(a.try_acquire().unwrap(), LeaseState::Leader { epoch: 1 });
        let store = db.connect_fenced(1, "host-a");
        store
            .apply(vec![(b"k".to_vec(), Some(b"1".to_vec()))])
            .unwrap();
        db.set_reachable("host-a", false);
        assert!(a.renew(1).is_err());
        assert!(store.flush().is_err());
        db.set_reachable("host-a", true);
        assert!(a.renew(1).unwrap());
        store.flush().unwrap();
        let other = db.connect_fenced(1, "host-b");
        assert_eq!(other.get(b"k").unwrap(), Some(b"1".to_vec()));
    }
}
