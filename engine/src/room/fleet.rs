//! The fleet: every room of one scheduler, with indexes kept up to date per
//! change so that no decision walks all rooms.
//!
//! Every mutation goes through [`Fleet::update`] (or insert/remove), which
//! takes the room's contribution out of every index, applies the change and
//! puts the new contribution back: O(log n) per change. `check_consistency`
//! recomputes everything from scratch; the periodic health check and the
//! tests call it.

use std::collections::{BTreeMap, BTreeSet};

use super::{InstanceStatus, Room, RoomId, RoomStatus};
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

#[derive(Clone, Debug)]
pub struct Fleet {
    rooms: BTreeMap<RoomId, Room>,
    counts: FleetCounts,
    /// In-service non-validation rooms per version.
    by_version: BTreeMap<Version, u64>,
    /// Pending and unready non-validation rooms per version (still starting).
    starting_by_version: BTreeMap<Version, u64>,
    /// Versions whose rooms must be replaced (a major change from the active one).
    replace: BTreeMap<Version, bool>,
    /// `(pool, rank, id)`: pool 0 = rooms to replace, 1 = current rooms.
    removable: BTreeSet<(u8, u8, RoomId)>,
    /// `(pool, id)` of ready rooms: pool 0 = current rooms, allocated first.
    ready: BTreeSet<(u8, RoomId)>,
    /// `(deadline, id)`: when each room expires if nothing changes.
    deadlines: BTreeSet<(Time, RoomId)>,
    timeouts: ExpiryTimeouts,
    /// Rooms inserted, updated or removed since `take_changed`: what the
    /// store must write. Bounded by the number of rooms ever present between
    /// two drains.
    changed: BTreeSet<RoomId>,
}

impl Fleet {
    pub fn new(timeouts: ExpiryTimeouts) -> Fleet {
        Fleet {
            rooms: BTreeMap::new(),
            counts: FleetCounts::default(),
            by_version: BTreeMap::new(),
            starting_by_version: BTreeMap::new(),
            replace: BTreeMap::new(),
            removable: BTreeSet::new(),
            ready: BTreeSet::new(),
            deadlines: BTreeSet::new(),
            timeouts,
            changed: BTreeSet::new(),
        }
    }

    /// Room ids changed since the last call; the engine persists them.
    pub fn take_changed(&mut self) -> BTreeSet<RoomId> {
        std::mem::take(&mut self.changed)
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
        self.rooms.get(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.rooms.contains_key(id)
    }

    pub fn rooms(&self) -> impl Iterator<Item = &Room> {
        self.rooms.values()
    }

    pub fn insert(&mut self, room: Room) {
        assert!(
            !self.rooms.contains_key(&room.id),
            "room {} inserted twice",
            room.id
        );
        self.replace.entry(room.version).or_insert(false);
        self.add_contribution(&room);
        self.changed.insert(room.id.clone());
        self.rooms.insert(room.id.clone(), room);
    }

    pub fn remove(&mut self, id: &str) -> Option<Room> {
        let room = self.rooms.remove(id)?;
        self.remove_contribution(&room);
        self.changed.insert(room.id.clone());
        Some(room)
    }

    /// Applies `change` to a room, keeping every index in step.
    pub fn update<R>(&mut self, id: &str, change: impl FnOnce(&mut Room) -> R) -> Option<R> {
        // The map's own key goes back with the room: no id is copied for it.
        let (key, mut room) = self.rooms.remove_entry(id)?;
        self.remove_contribution(&room);
        let result = change(&mut room);
        assert_eq!(room.id, key, "a room's id never changes");
        self.replace.entry(room.version).or_insert(false);
        self.add_contribution(&room);
        if !self.changed.contains(&key) {
            self.changed.insert(key.clone());
        }
        self.rooms.insert(key, room);
        Some(result)
    }

    /// Records which versions need replacement after the active version
    /// changed, and rebuilds the version-dependent indexes: O(n log n), once
    /// per version switch.
    pub fn set_replacement(&mut self, replace: BTreeMap<Version, bool>) {
        let rooms = std::mem::take(&mut self.rooms);
        for room in rooms.values() {
            self.remove_contribution(room);
        }
        self.replace = replace;
        for room in rooms.values() {
            self.replace.entry(room.version).or_insert(false);
            self.add_contribution(room);
        }
        self.rooms = rooms;
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
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    /// The ready room an allocation takes: current-version rooms first, then
    /// the lowest id (upstream picks the lowest member of the ready set).
    pub fn first_ready(&self) -> Option<&RoomId> {
        self.ready.iter().next().map(|(_, id)| id)
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
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// When `room` expires if nothing changes (upstream's health-check
    /// classification, turned into a deadline so it can be a timer).
    pub fn expiry_deadline(&self, room: &Room) -> Option<Time> {
        let t = &self.timeouts;
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
        match room.status {
            RoomStatus::Terminated => Some(room.last_ping_at),
            RoomStatus::Terminating => Some(room.last_ping_at + t.deletion),
            // A pod the cluster has not started yet counts as available (#483).
            RoomStatus::Pending => None,
            RoomStatus::Unready => Some(std::cmp::min(
                room.created_at + t.initialization,
                room.last_ping_at + t.ping,
            )),
            _ => Some(room.last_ping_at + t.ping),
        }
    }

    fn add_contribution(&mut self, room: &Room) {
        self.apply(room, true);
    }

    fn remove_contribution(&mut self, room: &Room) {
        self.apply(room, false);
    }

    /// Adds (`add`) or removes a room's contribution to every index.
    fn apply(&mut self, room: &Room, add: bool) {
        fn bump(n: &mut u64, add: bool) {
            if add {
                *n += 1;
            } else {
                *n = n.checked_sub(1).expect("fleet count underflow");
            }
        }
        fn count_version(map: &mut BTreeMap<Version, u64>, version: Version, add: bool) {
            let n = map.entry(version).or_insert(0);
            bump(n, add);
            if *n == 0 {
                map.remove(&version);
            }
        }
        fn set<K: Ord>(set: &mut BTreeSet<K>, key: K, add: bool) {
            let changed = if add {
                set.insert(key)
            } else {
                set.remove(&key)
            };
            assert!(changed, "fleet index out of step");
        }

        if let Some(deadline) = self.expiry_deadline(room) {
            set(&mut self.deadlines, (deadline, room.id.clone()), add);
        }
        if room.is_validation_room {
            bump(&mut self.counts.validation_rooms, add);
            return;
        }
        bump(&mut self.counts.by_status[room.status.index()], add);
        if matches!(
            room.status,
            RoomStatus::Ready | RoomStatus::Active | RoomStatus::Occupied
        ) {
            if add {
                self.counts.running_matches += room.running_matches;
            } else {
                self.counts.running_matches = self
                    .counts
                    .running_matches
                    .checked_sub(room.running_matches)
                    .expect("running matches underflow");
            }
        }
        if is_in_service(room.status) {
            count_version(&mut self.by_version, room.version, add);
        }
        if matches!(room.status, RoomStatus::Pending | RoomStatus::Unready) {
            count_version(&mut self.starting_by_version, room.version, add);
        }
        let to_replace = self.needs_replacement(room.version);
        if room.deletion.is_none()
            && !room.restored
            && let Some(rank) = removal_rank(room.status)
        {
            let pool = if to_replace { 0 } else { 1 };
            set(&mut self.removable, (pool, rank, room.id.clone()), add);
        }
        if room.status == RoomStatus::Ready
            && room.instance_status == InstanceStatus::Ready
            && !room.restored
        {
            let pool = if to_replace { 1 } else { 0 };
            set(&mut self.ready, (pool, room.id.clone()), add);
        }
    }

    /// Recomputes every index from the rooms and compares. Returns a
    /// description of the first difference.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut fresh = Fleet::new(self.timeouts);
        fresh.replace = self.replace.clone();
        for room in self.rooms.values() {
            fresh.add_contribution(room);
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
        assert_eq!(fleet.first_ready(), Some(&"a".to_string()));
        fleet.remove("b");
        assert_eq!(fleet.counts().running_matches, 0);
        assert_eq!(fleet.counts().total(), 1);
        fleet.check_consistency().unwrap();
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
}
