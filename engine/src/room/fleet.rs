//! The fleet: every room of one scheduler, with indexes kept up to date per
//! change so that no decision walks all rooms.
//!
//! Every mutation goes through [`Fleet::update`] (or insert/remove), which
//! computes the room's contribution to every index (a small value, see
//! `Contribution`) before and after the change and moves only the entries
//! that differ: O(log n) per change, and nothing for a ping that changes
//! nothing but the room's last-ping time while its pings are reported
//! steady. `check_consistency` recomputes everything from scratch with the
//! same function; the periodic health check and the tests call it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use smol_str::SmolStr;

use super::{InstanceStatus, Room, RoomId, RoomStatus};
use crate::id_index::IdIndex;
use crate::time::{Millis, Time};
use crate::version::Version;

/// Timeouts that decide when a room expires.
#[derive(Clone, Copy, Debug)]
pub struct ExpiryTimeouts {
    pub initialization: Millis,
    pub ping: Millis,
    pub deletion: Millis,
}

/// Counts the autoscaler and the health check read, over non-validation rooms.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct FleetCounts {
    pub by_status: [u64; 9],
    /// Sum of running matches over ready, active and occupied rooms.
    pub running_matches: u64,
    pub validation_rooms: u64,
}

impl FleetCounts {
    pub fn get(&self, status: RoomStatus) -> u64 {
        self.by_status[status.index()]
    }

    /// Rooms that serve or will serve players: pending, unready, ready,
    /// occupied, active and allocated (upstream's "available").
    pub fn in_service(&self) -> u64 {
        IN_SERVICE.iter().map(|s| self.get(*s)).sum()
    }

    pub fn total(&self) -> u64 {
        self.by_status.iter().sum()
    }
}

const IN_SERVICE: [RoomStatus; 6] = [
    RoomStatus::Pending,
    RoomStatus::Unready,
    RoomStatus::Ready,
    RoomStatus::Occupied,
    RoomStatus::Active,
    RoomStatus::Allocated,
];

fn is_in_service(status: RoomStatus) -> bool {
    IN_SERVICE.contains(&status)
}

/// Order of amount-based removal inside a pool: broken rooms first, then
/// rooms not yet serving, then idle ready rooms. Busy rooms are never listed.
fn removal_rank(status: RoomStatus) -> Option<u8> {
    match status {
        RoomStatus::Error => Some(0),
        RoomStatus::Pending => Some(1),
        RoomStatus::Unready => Some(2),
        RoomStatus::Ready => Some(3),
        _ => None,
    }
}

/// A room as the fleet holds it.
#[derive(Clone, Debug)]
struct Slot {
    /// Inline, next to its key in the id index: a lookup that finds the key
    /// finds the record without following a pointer to it, one cache miss
    /// fewer per input at tens of thousands of rooms (an `Arc` shared with
    /// the `SaveRoom` effects, before, cost the planner about 7 % of a run
    /// in that miss alone; the store's write is copied out instead, see
    /// [`Fleet::record`]).
    room: Room,
    /// The room's id as every index entry of the room holds it: copied
    /// inline (up to 23 bytes) or shared (longer), never allocated again.
    key: Key,
    /// Listed in `changed` since the last drain.
    changed: bool,
}

/// A room id as the indexes hold it (ordered as the id, `str` order).
/// Inline up to 23 bytes (a room of a scheduler named in 17 characters or
/// fewer), shared beyond: a lookup or an index comparison then reads the
/// id where the key is, instead of following a pointer to it, a cache
/// miss at tens of thousands of rooms; and a copy never allocates.
pub type Key = SmolStr;

#[derive(Clone, Debug)]
pub struct Fleet {
    /// Rooms by id, for the lookup every input makes (see `IdIndex`).
    rooms: IdIndex<Key, Slot>,
    /// The same ids in order: what walks the rooms walks these.
    ids: BTreeSet<Key>,
    counts: FleetCounts,
    /// In-service non-validation rooms per version.
    by_version: BTreeMap<Version, u64>,
    /// Pending and unready non-validation rooms per version (still starting).
    starting_by_version: BTreeMap<Version, u64>,
    /// Versions whose rooms must be replaced (a major change from the active one).
    replace: BTreeMap<Version, bool>,
    /// `(pool, rank, id)`: pool 0 = rooms to replace, 1 = current rooms.
    removable: BTreeSet<(u8, u8, Key)>,
    /// `(pool, id)` of ready rooms: pool 0 = current rooms, allocated first.
    ready: BTreeSet<(u8, Key)>,
    /// `(deadline, id)`: when each room expires if nothing changes.
    deadlines: BTreeSet<(Time, Key)>,
    timeouts: ExpiryTimeouts,
    /// Rooms inserted, updated or removed since `take_changed`: what the
    /// store must write, unordered and possibly repeated (a room removed
    /// and created again); the drain sorts it. A room still present is
    /// listed once (`Slot::changed`), so it is bounded by the rooms ever
    /// present between two drains plus the removals among them. Empty
    /// when `records` is off.
    changed: Vec<Key>,
    /// Whether changes are listed in `changed` (see
    /// `EngineConfig::room_records`).
    records: bool,
}

impl Fleet {
    pub fn new(timeouts: ExpiryTimeouts) -> Fleet {
        Fleet::with_records(timeouts, true)
    }

    /// A fleet that lists its changed rooms for the store (`records`), or
    /// not: [`Fleet::take_changed`] is then always empty.
    pub fn with_records(timeouts: ExpiryTimeouts, records: bool) -> Fleet {
        Fleet {
            rooms: IdIndex::new(),
            ids: BTreeSet::new(),
            counts: FleetCounts::default(),
            by_version: BTreeMap::new(),
            starting_by_version: BTreeMap::new(),
            replace: BTreeMap::new(),
            removable: BTreeSet::new(),
            ready: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            timeouts,
            changed: Vec::new(),
            records,
        }
    }

    /// Room ids changed since the last call, in order and each once; the
    /// engine persists them.
    pub fn take_changed(&mut self) -> Vec<Key> {
        let mut changed = std::mem::take(&mut self.changed);
        changed.sort_unstable();
        changed.dedup();
        for id in &changed {
            if let Some(slot) = self.rooms.get_mut(&**id) {
                slot.changed = false;
            }
        }
        changed
    }

    /// Whether rooms changed since the last [`Fleet::take_changed`].
    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }

    pub fn counts(&self) -> &FleetCounts {
        &self.counts
    }

    pub fn get(&self, id: &str) -> Option<&Room> {
        self.rooms.get(id).map(|slot| &slot.room)
    }

    /// The room's record as the store writes it: a copy, which the store
    /// serialises anyway (a shell without a store turns records off,
    /// `EngineConfig::room_records`).
    pub fn record(&self, id: &str) -> Option<Arc<Room>> {
        self.rooms.get(id).map(|slot| Arc::new(slot.room.clone()))
    }

    pub fn contains(&self, id: &str) -> bool {
        self.rooms.contains_key(id)
    }

    /// Every room, in id order.
    pub fn rooms(&self) -> impl Iterator<Item = &Room> {
        self.ids.iter().map(|id| match self.rooms.get(&**id) {
            Some(slot) => &slot.room,
            None => unreachable!("room {id} listed but not held"),
        })
    }

    pub fn insert(&mut self, room: Room) {
        assert!(
            !self.rooms.contains_key(room.id.as_str()),
            "room {} inserted twice",
            room.id
        );
        self.replace.entry(room.version).or_insert(false);
        let key = Key::new(&room.id);
        let c = self.contribution(&room);
        self.count(&c, true);
        self.index(&key, &c, true);
        if self.records {
            self.changed.push(key.clone());
        }
        self.ids.insert(key.clone());
        let slot = Slot {
            room,
            key: key.clone(),
            changed: self.records,
        };
        self.rooms.insert(key, slot);
    }

    pub fn remove(&mut self, id: &str) -> Option<Room> {
        let slot = self.rooms.remove(id)?;
        let room = slot.room;
        let c = self.contribution(&room);
        self.count(&c, false);
        self.index(&slot.key, &c, false);
        self.ids.remove(id);
        if self.records && !slot.changed {
            self.changed.push(slot.key);
        }
        Some(room)
    }

    /// Applies `change` to a room, keeping every index in step: only the
    /// indexes whose entry for the room changed are touched (a ping that
    /// changes nothing touches none but the deadline's).
    pub fn update<R>(&mut self, id: &str, change: impl FnOnce(&mut Room) -> R) -> Option<R> {
        let slot = self.rooms.get_mut(id)?;
        // A copy, inline (or a shared count for a long id): the indexes
        // need it if the change moves the room's entries.
        let key = slot.key.clone();
        if self.records && !slot.changed {
            slot.changed = true;
            self.changed.push(slot.key.clone());
        }
        let room = &mut slot.room;
        let before = contribution(&self.timeouts, &self.replace, room);
        let result = change(room);
        debug_assert_eq!(room.id, id, "a room's id never changes");
        if room.version != before.version {
            self.replace.entry(room.version).or_insert(false);
        }
        let after = contribution(&self.timeouts, &self.replace, room);
        if before != after {
            self.recount(&before, &after);
            self.reindex(&key, &before, &after);
        }
        Some(result)
    }

    /// Records which versions need replacement after the active version
    /// changed, and rebuilds the version-dependent indexes: O(n log n), once
    /// per version switch.
    pub fn set_replacement(&mut self, replace: BTreeMap<Version, bool>) {
        let before: Vec<(Key, Contribution)> = self
            .ids
            .iter()
            .filter_map(|id| {
                let slot = self.rooms.get(&**id)?;
                Some((id.clone(), self.contribution(&slot.room)))
            })
            .collect();
        self.replace = replace;
        for (key, before) in before {
            let Some(slot) = self.rooms.get(&*key) else {
                continue;
            };
            self.replace.entry(slot.room.version).or_insert(false);
            let after = contribution(&self.timeouts, &self.replace, &slot.room);
            if before != after {
                self.recount(&before, &after);
                self.reindex(&key, &before, &after);
            }
        }
    }

    pub fn needs_replacement(&self, version: Version) -> bool {
        self.replace.get(&version).copied().unwrap_or(false)
    }

    /// Whether a rolling update is under way: some in-service room runs a
    /// version that must be replaced.
    pub fn is_rolling(&self) -> bool {
        self.in_service_to_replace() > 0
    }

    /// In-service rooms whose version must be replaced.
    pub fn in_service_to_replace(&self) -> u64 {
        self.by_version
            .iter()
            .filter(|(v, _)| self.needs_replacement(**v))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Rooms of current (not to be replaced) versions that are still
    /// starting: pending or unready.
    pub fn starting_current(&self) -> u64 {
        self.starting_by_version
            .iter()
            .filter(|(v, _)| !self.needs_replacement(**v))
            .map(|(_, n)| *n)
            .sum()
    }

    /// Up to `n` rooms to delete, in deletion priority order: rooms to
    /// replace before current ones, then broken, not-yet-serving, idle ready.
    /// Busy rooms (occupied, active, allocated) are never returned.
    pub fn removal_candidates(&self, n: usize, only_to_replace: bool) -> Vec<RoomId> {
        self.removable
            .iter()
            .take_while(|(pool, _, _)| !only_to_replace || *pool == 0)
            .take(n)
            .map(|(_, _, id)| id.to_string())
            .collect()
    }

    /// The ready room an allocation takes: current-version rooms first, then
    /// the lowest id (upstream picks the lowest member of the ready set).
    pub fn first_ready(&self) -> Option<Key> {
        self.ready.iter().next().map(|(_, id)| id.clone())
    }

    pub fn next_deadline(&self) -> Option<Time> {
        self.deadlines.iter().next().map(|(t, _)| *t)
    }

    /// Rooms whose deadline is at or before `now`, at most `limit` of them.
    pub fn expired(&self, now: Time, limit: usize) -> Vec<RoomId> {
        self.deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| id.to_string())
            .collect()
    }

    /// When `room` expires if nothing changes (upstream's health-check
    /// classification, turned into a deadline so it can be a timer).
    pub fn expiry_deadline(&self, room: &Room) -> Option<Time> {
        expiry_deadline(&self.timeouts, room)
    }

    fn contribution(&self, room: &Room) -> Contribution {
        contribution(&self.timeouts, &self.replace, room)
    }

    /// Adds (`add`) or takes away a room's share of the counts.
    fn count(&mut self, c: &Contribution, add: bool) {
        if c.validation {
            bump(&mut self.counts.validation_rooms, 1, add);
            return;
        }
        bump(&mut self.counts.by_status[c.status.index()], 1, add);
        bump(&mut self.counts.running_matches, c.running_matches, add);
        if is_in_service(c.status) {
            count_version(&mut self.by_version, c.version, add);
        }
        if is_starting(c.status) {
            count_version(&mut self.starting_by_version, c.version, add);
        }
    }

    /// `count(before, false)` then `count(after, true)`, without taking a
    /// per-version count down and up again when the room stays in the same
    /// class of its version (most changes: ready, allocated, occupied).
    fn recount(&mut self, before: &Contribution, after: &Contribution) {
        if before.validation || after.validation || before.version != after.version {
            self.count(before, false);
            self.count(after, true);
            return;
        }
        bump(&mut self.counts.by_status[before.status.index()], 1, false);
        bump(&mut self.counts.by_status[after.status.index()], 1, true);
        bump(
            &mut self.counts.running_matches,
            before.running_matches,
            false,
        );
        bump(
            &mut self.counts.running_matches,
            after.running_matches,
            true,
        );
        let version = after.version;
        let (was, is) = (is_in_service(before.status), is_in_service(after.status));
        if was != is {
            count_version(&mut self.by_version, version, is);
        }
        let (was, is) = (is_starting(before.status), is_starting(after.status));
        if was != is {
            count_version(&mut self.starting_by_version, version, is);
        }
    }

    /// Adds (`add`) or takes away a room's entries in the ordered indexes.
    fn index(&mut self, id: &Key, c: &Contribution, add: bool) {
        if let Some(deadline) = c.deadline {
            set(&mut self.deadlines, (deadline, id.clone()), add);
        }
        if let Some((pool, rank)) = c.removable {
            set(&mut self.removable, (pool, rank, id.clone()), add);
        }
        if let Some(pool) = c.ready {
            set(&mut self.ready, (pool, id.clone()), add);
        }
    }

    /// Moves a room's ordered entries from `before` to `after`, touching
    /// only the indexes where they differ.
    fn reindex(&mut self, id: &Key, before: &Contribution, after: &Contribution) {
        if before.deadline != after.deadline {
            if let Some(deadline) = before.deadline {
                set(&mut self.deadlines, (deadline, id.clone()), false);
            }
            if let Some(deadline) = after.deadline {
                set(&mut self.deadlines, (deadline, id.clone()), true);
            }
        }
        if before.removable != after.removable {
            if let Some((pool, rank)) = before.removable {
                set(&mut self.removable, (pool, rank, id.clone()), false);
            }
            if let Some((pool, rank)) = after.removable {
                set(&mut self.removable, (pool, rank, id.clone()), true);
            }
        }
        if before.ready != after.ready {
            if let Some(pool) = before.ready {
                set(&mut self.ready, (pool, id.clone()), false);
            }
            if let Some(pool) = after.ready {
                set(&mut self.ready, (pool, id.clone()), true);
            }
        }
    }

    /// Recomputes every index from the rooms and compares. Returns a
    /// description of the first difference.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut fresh = Fleet::with_records(self.timeouts, self.records);
        fresh.replace = self.replace.clone();
        if self.ids.len() != self.rooms.len() {
            return Err(format!(
                "{} ids listed, {} rooms held",
                self.ids.len(),
                self.rooms.len()
            ));
        }
        for id in &self.ids {
            let Some(slot) = self.rooms.get(&**id) else {
                return Err(format!("room {id} listed but not held"));
            };
            if *slot.key != **id || slot.room.id != **id {
                return Err(format!("room {id} held as {}", slot.room.id));
            }
            // `update` probes the map only when a version changes.
            if !self.replace.contains_key(&slot.room.version) {
                return Err(format!(
                    "room {id}: its version is not in the replacement map"
                ));
            }
            // A flag set without the entry would keep the room's later
            // changes from being written.
            if slot.changed && !self.changed.contains(id) {
                return Err(format!("room {id} marked changed but not listed"));
            }
            let c = fresh.contribution(&slot.room);
            fresh.count(&c, true);
            fresh.index(id, &c, true);
        }
        if fresh.counts != self.counts {
            return Err(format!("counts {:?} != {:?}", self.counts, fresh.counts));
        }
        if fresh.by_version != self.by_version
            || fresh.starting_by_version != self.starting_by_version
        {
            return Err("per-version counts differ".to_string());
        }
        if fresh.removable != self.removable {
            return Err("removal index differs".to_string());
        }
        if fresh.ready != self.ready {
            return Err("ready index differs".to_string());
        }
        if fresh.deadlines != self.deadlines {
            return Err("deadline index differs".to_string());
        }
        Ok(())
    }
}

/// A room's share of the fleet's counts and its entries in the ordered
/// indexes: computed from the room alone (and which versions are to be
/// replaced), so an update compares two of them and touches only what
/// differs, and the audit recomputes them all from scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Contribution {
    deadline: Option<Time>,
    /// Validation rooms count apart and are in no other index.
    validation: bool,
    status: RoomStatus,
    version: Version,
    /// Its matches, if it is ready, active or occupied (else 0).
    running_matches: u64,
    /// `(pool, rank)` in `removable`.
    removable: Option<(u8, u8)>,
    /// Its pool in `ready`.
    ready: Option<u8>,
}

fn contribution(
    timeouts: &ExpiryTimeouts,
    replace: &BTreeMap<Version, bool>,
    room: &Room,
) -> Contribution {
    let deadline = expiry_deadline(timeouts, room);
    let mut c = Contribution {
        deadline,
        validation: room.is_validation_room,
        status: room.status,
        version: room.version,
        running_matches: 0,
        removable: None,
        ready: None,
    };
    if room.is_validation_room {
        return c;
    }
    if matches!(
        room.status,
        RoomStatus::Ready | RoomStatus::Active | RoomStatus::Occupied
    ) {
        c.running_matches = room.running_matches;
    }
    let to_replace = replace.get(&room.version).copied().unwrap_or(false);
    if room.deletion.is_none()
        && !room.restored
        && let Some(rank) = removal_rank(room.status)
    {
        c.removable = Some((if to_replace { 0 } else { 1 }, rank));
    }
    if room.status == RoomStatus::Ready
        && room.instance_status == InstanceStatus::Ready
        && !room.restored
    {
        c.ready = Some(if to_replace { 1 } else { 0 });
    }
    c
}

fn bump(n: &mut u64, by: u64, add: bool) {
    if add {
        *n += by;
    } else {
        *n = n.checked_sub(by).expect("fleet count underflow");
    }
}

fn count_version(map: &mut BTreeMap<Version, u64>, version: Version, add: bool) {
    let n = map.entry(version).or_insert(0);
    bump(n, 1, add);
    if *n == 0 {
        map.remove(&version);
    }
}

fn is_starting(status: RoomStatus) -> bool {
    matches!(status, RoomStatus::Pending | RoomStatus::Unready)
}

fn set<K: Ord>(set: &mut BTreeSet<K>, key: K, add: bool) {
    let changed = if add {
        set.insert(key)
    } else {
        set.remove(&key)
    };
    assert!(changed, "fleet index out of step");
}

/// When `room` expires if nothing changes (upstream's health-check
/// classification, turned into a deadline so it can be a timer).
fn expiry_deadline(t: &ExpiryTimeouts, room: &Room) -> Option<Time> {
    if let Some(deletion) = room.deletion {
        // Retry the delete if the room is still here after the timeout.
        return Some(deletion.requested_at + t.deletion);
    }
    if room.is_validation_room {
        return None; // the validating operation owns it until it deletes it
    }
    if room.restored {
        // Unconfirmed since a restart: only the room's next ping
        // confirms its game status; a room that never pings again (its
        // pod gone, or its game server hung) must not linger, whatever
        // status it was stored with.
        return Some(room.last_ping_at + t.ping);
    }
    // Silent for `timeout` after its last ping; never while the shell
    // vouches for its pings (they would keep moving the deadline on).
    let silent_for = |timeout: Millis| (!room.steady_pings).then(|| room.last_ping_at + timeout);
    match room.status {
        RoomStatus::Terminated => Some(room.last_ping_at),
        RoomStatus::Terminating => silent_for(t.deletion),
        // A pod the cluster has not started yet counts as available (#483).
        RoomStatus::Pending => None,
        RoomStatus::Unready => {
            let initialization = room.created_at + t.initialization;
            Some(silent_for(t.ping).map_or(initialization, |p| p.min(initialization)))
        }
        _ => silent_for(t.ping),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::{PingStatus, RemovalReason};

    fn timeouts() -> ExpiryTimeouts {
        ExpiryTimeouts {
            initialization: Millis(120_000),
            ping: Millis(240_000),
            deletion: Millis(120_000),
        }
    }

    pub(crate) fn room(id: &str, version: Version, status: RoomStatus) -> Room {
        let mut room = crate::scheduler::fixtures::room("s", id, status);
        room.version = version;
        // These tests reason about pings, not matches.
        room.ping_status = PingStatus::Ready;
        room.running_matches = 0;
        room
    }

    #[test]
    fn counts_follow_updates() {
        let v1 = Version::FIRST;
        let mut fleet = Fleet::new(timeouts());
        fleet.insert(room("a", v1, RoomStatus::Ready));
        fleet.insert(room("b", v1, RoomStatus::Ready));
        fleet.update("b", |r| {
            r.status = RoomStatus::Occupied;
            r.running_matches = 1;
        });
        assert_eq!(fleet.counts().get(RoomStatus::Ready), 1);
        assert_eq!(fleet.counts().get(RoomStatus::Occupied), 1);
        assert_eq!(fleet.counts().running_matches, 1);
        assert_eq!(fleet.first_ready().as_deref(), Some("a"));
        fleet.remove("b");
        assert_eq!(fleet.counts().running_matches, 0);
        assert_eq!(fleet.counts().total(), 1);
        fleet.check_consistency().unwrap();
    }

    #[test]
    fn changed_rooms_are_drained_once_each_in_id_order() {
        let v1 = Version::FIRST;
        let ids = |changed: Vec<Key>| -> Vec<String> {
            changed.iter().map(|id| id.to_string()).collect()
        };
        let mut fleet = Fleet::new(timeouts());
        for id in ["c", "a", "b"] {
            fleet.insert(room(id, v1, RoomStatus::Ready));
        }
        fleet.update("a", |r| r.status = RoomStatus::Occupied);
        assert!(fleet.has_changes());
        assert_eq!(ids(fleet.take_changed()), ["a", "b", "c"]);
        assert!(!fleet.has_changes());
        fleet.check_consistency().unwrap();

        // Updated twice, removed and created again, removed for good:
        // each listed once, and a later change is listed again.
        fleet.update("b", |r| r.status = RoomStatus::Occupied);
        fleet.update("b", |r| r.status = RoomStatus::Ready);
        fleet.remove("c");
        fleet.insert(room("c", v1, RoomStatus::Ready));
        fleet.remove("a");
        fleet.check_consistency().unwrap();
        assert_eq!(ids(fleet.take_changed()), ["a", "b", "c"]);
        fleet.check_consistency().unwrap();
        fleet.update("c", |r| r.status = RoomStatus::Occupied);
        assert_eq!(ids(fleet.take_changed()), ["c"]);
        assert_eq!(
            fleet.rooms().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
    }

    #[test]
    fn a_fleet_without_records_lists_no_change_and_indexes_the_same() {
        let v1 = Version::FIRST;
        let mut with = Fleet::new(timeouts());
        let mut without = Fleet::with_records(timeouts(), false);
        for fleet in [&mut with, &mut without] {
            for id in ["c", "a", "b"] {
                fleet.insert(room(id, v1, RoomStatus::Ready));
            }
            fleet.update("a", |r| r.status = RoomStatus::Occupied);
            fleet.remove("c");
            fleet.check_consistency().unwrap();
        }
        assert!(with.has_changes());
        assert!(!without.has_changes());
        assert!(without.take_changed().is_empty());
        assert_eq!(with.counts(), without.counts());
        let ready = |f: &Fleet| {
            f.rooms()
                .map(|r| (r.id.clone(), r.status))
                .collect::<Vec<_>>()
        };
        assert_eq!(ready(&with), ready(&without));
    }

    #[test]
    fn removal_prefers_rooms_to_replace_and_never_busy_rooms() {
        let v1 = Version::FIRST;
        let v2 = Version {
            major: 2,
            minor: 0,
            patch: 0,
        };
        let mut fleet = Fleet::new(timeouts());
        fleet.insert(room("new-ready", v2, RoomStatus::Ready));
        fleet.insert(room("old-ready", v1, RoomStatus::Ready));
        fleet.insert(room("old-busy", v1, RoomStatus::Occupied));
        fleet.insert(room("old-active", v1, RoomStatus::Active));
        fleet.insert(room("old-alloc", v1, RoomStatus::Allocated));
        fleet.insert(room("new-error", v2, RoomStatus::Error));
        fleet.set_replacement(BTreeMap::from([(v1, true), (v2, false)]));
        assert!(fleet.is_rolling());
        assert_eq!(fleet.in_service_to_replace(), 4);
        assert_eq!(fleet.removal_candidates(10, true), vec!["old-ready"]);
        assert_eq!(
            fleet.removal_candidates(10, false),
            vec!["old-ready", "new-error", "new-ready"]
        );
        // A room marked for deletion leaves the candidates.
        fleet.update("old-ready", |r| {
            r.deletion = Some(crate::room::Deletion {
                requested_at: Time(5),
                reason: RemovalReason::RollingUpdateReplace,
            });
            r.status = RoomStatus::Terminating;
        });
        assert!(fleet.removal_candidates(10, true).is_empty());
        fleet.check_consistency().unwrap();
    }

    #[test]
    fn deadlines_follow_classification() {
        let v1 = Version::FIRST;
        let fleet = Fleet::new(timeouts());
        let mut r = room("a", v1, RoomStatus::Ready);
        r.last_ping_at = Time(10_000);
        assert_eq!(fleet.expiry_deadline(&r), Some(Time(250_000)));
        r.status = RoomStatus::Unready;
        assert_eq!(fleet.expiry_deadline(&r), Some(Time(121_000)));
        r.status = RoomStatus::Pending;
        assert_eq!(fleet.expiry_deadline(&r), None);
        r.status = RoomStatus::Terminating;
        assert_eq!(fleet.expiry_deadline(&r), Some(Time(130_000)));
        r.status = RoomStatus::Terminated;
        assert_eq!(fleet.expiry_deadline(&r), Some(Time(10_000)));
        r.status = RoomStatus::Pending;
        r.restored = true;
        assert_eq!(
            fleet.expiry_deadline(&r),
            Some(Time(250_000)),
            "unconfirmed after a restart"
        );
        r.restored = false;
        r.is_validation_room = true;
        assert_eq!(fleet.expiry_deadline(&r), None);
        // A validation room whose delete failed is retried like any other.
        r.deletion = Some(crate::room::Deletion {
            requested_at: Time(50_000),
            reason: RemovalReason::NewVersionValidationFinished,
        });
        assert_eq!(fleet.expiry_deadline(&r), Some(Time(170_000)));
    }

    #[test]
    fn steady_pings_lift_only_the_ping_deadlines() {
        let fleet = Fleet::new(timeouts());
        let mut r = room("a", Version::FIRST, RoomStatus::Ready);
        r.last_ping_at = Time(10_000);
        r.steady_pings = true;
        assert_eq!(fleet.expiry_deadline(&r), None);
        r.status = RoomStatus::Terminating;
        assert_eq!(fleet.expiry_deadline(&r), None);
        r.status = RoomStatus::Unready;
        assert_eq!(
            fleet.expiry_deadline(&r),
            Some(Time(121_000)),
            "an unready room still has its initialization timeout"
        );
        r.status = RoomStatus::Terminated;
        assert_eq!(fleet.expiry_deadline(&r), Some(Time(10_000)));
        r.status = RoomStatus::Ready;
        r.restored = true;
        assert_eq!(
            fleet.expiry_deadline(&r),
            Some(Time(250_000)),
            "a restored room waits for a ping, steady or not"
        );
        r.restored = false;
        r.deletion = Some(crate::room::Deletion {
            requested_at: Time(50_000),
            reason: RemovalReason::ScaleDown,
        });
        assert_eq!(fleet.expiry_deadline(&r), Some(Time(170_000)));
    }
}
