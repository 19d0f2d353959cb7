//! Room inputs: creation, pings, runtime instance events, allocation, and
//! the room-level part of runtime effect results.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::entry::{EntryFate, SchedulerEntry};
use super::io::{InFlight, InFlightKind, Io};
use crate::config::EngineConfig;
use crate::effect::{Effect, ForwardEvent, ForwardKind, RuntimeError, RuntimeErrorKind};
use crate::input::{
    AllocateError, InstanceEvent, InstanceEventKind, Liveness, Ping, PingError, PingStream,
};
use crate::rng::EngineRng;
use crate::room::{
    HostPort, InstanceStatus, PingStatus, Room, RoomId, RoomStatus, calculate_status,
};
use crate::scheduler::Scheduler;
use crate::time::{Millis, Time};
use crate::version::Version;
use smol_str::SmolStr;

/// Allocation idempotency keys: the same key within the allocation TTL gets
/// the same room. At most `EngineConfig::max_allocation_keys` are held.
#[derive(Debug, Default)]
pub(crate) struct Allocations {
    by_key: BTreeMap<String, (RoomId, Time)>,
    expiry: BTreeSet<(Time, String)>,
}

impl Allocations {
    fn get(&self, key: &str, now: Time) -> Option<&RoomId> {
        self.by_key
            .get(key)
            .filter(|(_, expires)| now < *expires)
            .map(|(room, _)| room)
    }

    /// Remembers `key` until `expires`, forgetting the keys that expire
    /// first while `max_keys` are held.
    fn insert(&mut self, key: &str, room: RoomId, expires: Time, max_keys: usize) {
        if let Some((_, old)) = self.by_key.remove(key) {
            self.expiry.remove(&(old, key.to_string()));
        }
        // Bounded: each turn forgets one of the keys held.
        while self.by_key.len() >= max_keys.max(1) {
            let Some((_, oldest)) = self.expiry.pop_first() else {
                break;
            };
            self.by_key.remove(&oldest);
        }
        self.by_key.insert(key.to_string(), (room, expires));
        self.expiry.insert((expires, key.to_string()));
        assert!(
            self.by_key.len() <= max_keys.max(1) && self.by_key.len() == self.expiry.len(),
            "allocation keys: {} held, {} expiries, limit {max_keys}",
            self.by_key.len(),
            self.expiry.len()
        );
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn expire(&mut self, now: Time) {
        while let Some((at, _)) = self.expiry.first() {
            if *at > now {
                break;
            }
            if let Some((_, key)) = self.expiry.pop_first() {
                self.by_key.remove(&key);
            }
        }
    }

    pub fn next_expiry(&self) -> Option<Time> {
        self.expiry.first().map(|(t, _)| *t)
    }
}

/// The room's status after a change of its inputs, and whether the move is
/// allowed. A room maestro is deleting stays terminating.
fn apply_status(
    room: &mut Room,
    now: Time,
    max_matches: u64,
    allocation_ttl: Millis,
) -> Result<RoomStatus, PingError> {
    let next = if room.deletion.is_some() {
        if room.ping_status == PingStatus::Terminated {
            RoomStatus::Terminated
        } else {
            RoomStatus::Terminating
        }
    } else {
        calculate_status(room.status_inputs(max_matches), now, allocation_ttl)
    };
    if !room.status.can_transition_to(next) {
        return Err(PingError::InvalidTransition {
            from: room.status,
            to: next,
        });
    }
    if next != RoomStatus::Allocated {
        room.allocated_at = None;
    }
    room.status = next;
    Ok(next)
}

/// Host ports for a new room: distinct ports from the scheduler-wide range,
/// or one port per container port from its own range (upstream's rules).
fn draw_host_ports(
    spec: &Scheduler,
    rng: &mut EngineRng,
    draws_per_port: usize,
) -> Result<Vec<HostPort>, String> {
    let ports: Vec<_> = spec
        .spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().map(move |p| (c, p)))
        .collect();
    let drawn: Vec<u16> = match spec.port_range {
        Some(range) => rng
            .distinct_ports_in(range, ports.len(), draws_per_port)
            .ok_or("the scheduler's port range is too small for its ports")?,
        None => {
            let mut drawn = Vec::with_capacity(ports.len());
            for (container, port) in &ports {
                let range = port.host_port_range.ok_or_else(|| {
                    format!(
                        "port {} of container {} has no host port range",
                        port.name, container.name
                    )
                })?;
                drawn.push(rng.port_in(range).ok_or("invalid host port range")?);
            }
            drawn
        }
    };
    Ok(ports
        .iter()
        .zip(drawn)
        .map(|((container, port), host_port)| HostPort {
            container: container.name.clone(),
            name: port.name.clone(),
            protocol: port.protocol.clone(),
            container_port: port.port,
            host_port,
        })
        .collect())
}

impl SchedulerEntry {
    fn max_matches(&self) -> u64 {
        u64::try_from(self.active().match_allocation.max_matches)
            .unwrap_or(1)
            .max(1)
    }

    fn forward(&self, io: &mut Io, room: &Room, kind: ForwardKind) {
        let active = self.active();
        if !active.has_enabled_forwarders() || room.is_validation_room {
            return;
        }
        io.emit(Effect::Forward {
            event: Box::new(ForwardEvent {
                scheduler: self.name.clone(),
                game: active.game.clone(),
                room: room.id.clone(),
                kind,
                metadata_json: room.metadata_json.clone(),
                address: room.address.clone(),
            }),
            scheduler: Arc::clone(active),
        });
    }

    /// Records a new room (pending) and asks the runtime to create its pod.
    pub fn create_room(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        spec: Arc<Scheduler>,
        is_validation_room: bool,
        operation: Option<&str>,
    ) -> Result<RoomId, String> {
        if self.fleet.len() >= config.max_rooms_per_scheduler {
            return Err(format!(
                "scheduler {} reached its limit of {} rooms",
                self.name, config.max_rooms_per_scheduler
            ));
        }
        // Bounded retries: with 27^5 suffixes a collision is rare.
        let id = (0..config.room_name_draws.max(1))
            .map(|_| io.rng.room_name(&self.name))
            .find(|name| !self.fleet.contains(name))
            .ok_or("could not draw a unique room name")?;
        let host_ports = draw_host_ports(&spec, &mut io.rng, config.host_port_draws_per_port)?;
        let version = Version::parse(&spec.spec.version).unwrap_or(self.active);
        self.fleet.insert(Room {
            id: id.clone(),
            scheduler: self.name.clone(),
            version,
            status: RoomStatus::Pending,
            ping_status: PingStatus::Unknown,
            instance_status: InstanceStatus::Pending,
            instance_description: String::new(),
            address: None,
            host_ports: host_ports.clone(),
            running_matches: 0,
            metadata_json: String::new(),
            is_validation_room,
            created_at: now,
            last_ping_at: now,
            allocated_at: None,
            deletion: None,
            restored: false,
            steady_pings: false,
        });
        let scheduler = self.name.clone();
        let room = id.clone();
        io.emit_runtime(
            InFlight {
                scheduler: scheduler.clone(),
                what: InFlightKind::CreateRoom(id.clone()),
                operation: operation.map(str::to_string),
            },
            |eid| Effect::CreateRoom {
                id: eid,
                scheduler,
                room,
                version,
                spec,
                host_ports,
                is_validation_room,
            },
        );
        Ok(id)
    }

    pub fn ping(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        ping: &Ping,
    ) -> Result<(RoomStatus, EntryFate), PingError> {
        let max_matches = self.max_matches();
        // Upstream coerces "occupied with no matches" to one match.
        let running_matches = if ping.status == PingStatus::Occupied && ping.running_matches == 0 {
            1
        } else {
            ping.running_matches
        };
        let ttl = config.room_allocation_ttl;
        // One lookup: what decides whether anything changed is read in the
        // update itself.
        let (result, changed, is_validation_room, deleting) = self
            .fleet
            .update(&ping.room, |room| {
                let before = (room.status, room.running_matches, room.restored);
                room.last_ping_at = now;
                room.restored = false;
                room.ping_status = ping.status;
                room.running_matches = running_matches;
                room.metadata_json.clone_from(&ping.metadata_json);
                let result = apply_status(room, now, max_matches, ttl);
                // A confirmed restored room may now be allocated or
                // removed: decide again, as for a status change.
                let changed = (room.status, room.running_matches, room.restored) != before;
                (
                    result,
                    changed,
                    room.is_validation_room,
                    room.deletion.is_some(),
                )
            })
            .ok_or_else(|| PingError::RoomNotFound(ping.room.clone()))?;
        if result.is_ok() && !deleting && self.active().has_enabled_forwarders() {
            let room = self
                .fleet
                .get(&ping.room)
                .expect("the room was just updated")
                .clone();
            self.forward(io, &room, ForwardKind::Resync(ping.status));
        }
        let mut fate = EntryFate::Keep;
        if changed {
            io.mark_dirty(&self.name);
            if is_validation_room {
                fate = self.check_validation(io, config, now);
            }
        }
        result.map(|status| (status, fate))
    }

    /// What the shell knows of the room's pings: steady (no ping deadline)
    /// or stopped at `last`, which times the room from then on exactly as
    /// if every ping up to `last` had been delivered. Nothing else changes,
    /// so nothing is decided here.
    pub fn liveness(&mut self, now: Time, liveness: &Liveness) -> Result<(), PingError> {
        self.fleet
            .update(&liveness.room, |room| match liveness.pings {
                PingStream::Steady => room.steady_pings = true,
                PingStream::Stopped { last } => {
                    room.steady_pings = false;
                    room.last_ping_at = room.last_ping_at.max(last.min(now));
                }
            })
            .ok_or_else(|| PingError::RoomNotFound(liveness.room.clone()))
    }

    pub fn instance_event(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        event: &InstanceEvent,
    ) -> EntryFate {
        match event.kind {
            InstanceEventKind::Deleted => {
                let Some(room) = self.fleet.remove(&event.room) else {
                    return EntryFate::Keep;
                };
                // A watch-only scheduler's pods are Maestro Next's: its
                // runtime watcher reports their end.
                if !self.watch_only {
                    self.forward(io, &room, ForwardKind::Terminated);
                }
                io.mark_dirty(&self.name);
                self.on_room_gone(io, config, now, &event.room)
            }
            InstanceEventKind::Upsert => {
                let max_matches = self.max_matches();
                let ttl = config.room_allocation_ttl;
                if !self.fleet.contains(&event.room) {
                    self.adopt(config, now, event);
                    io.mark_dirty(&self.name);
                    return EntryFate::Keep;
                }
                let before = self.fleet.get(&event.room).map(|r| (r.status, r.restored));
                self.fleet.update(&event.room, |room| {
                    // A restored room's stored game status may be stale (an
                    // `occupied` ping lost in the crash): only the room's
                    // own ping confirms it. The runtime confirms it only
                    // when the pod cannot host a match any more.
                    if matches!(
                        event.status,
                        InstanceStatus::Error | InstanceStatus::Terminating
                    ) {
                        room.restored = false;
                    }
                    room.instance_status = event.status;
                    room.instance_description.clone_from(&event.description);
                    if event.address.is_some() {
                        room.address.clone_from(&event.address);
                    }
                    // An impossible transition keeps the old status, as a
                    // ping's would; the next report decides again.
                    let _ = apply_status(room, now, max_matches, ttl);
                });
                let room = self
                    .fleet
                    .get(&event.room)
                    .expect("the room was just updated");
                if Some((room.status, room.restored)) == before {
                    return EntryFate::Keep;
                }
                io.mark_dirty(&self.name);
                if room.is_validation_room {
                    return self.check_validation(io, config, now);
                }
                EntryFate::Keep
            }
        }
    }

    /// A pod maestro has no record of (its record was lost in a crash, or
    /// it was created before): take it into the fleet so it is counted and,
    /// if surplus, removed like any other room. Its game status is unknown
    /// until it pings (it may be hosting a match whose `occupied` ping was
    /// lost), so it is unconfirmed as a restored room is: neither allocated
    /// nor removed to scale down or roll out before its first ping, and
    /// expired if that ping never comes.
    fn adopt(&mut self, config: &EngineConfig, now: Time, event: &InstanceEvent) {
        if self.deleting
            || !self.resources_ready
            || self.fleet.len() >= config.max_rooms_per_scheduler
        {
            return;
        }
        let mut room = Room {
            id: event.room.clone(),
            scheduler: self.name.clone(),
            version: event.version.unwrap_or(self.active),
            status: RoomStatus::Pending,
            ping_status: PingStatus::Unknown,
            instance_status: event.status,
            instance_description: event.description.clone(),
            address: event.address.clone(),
            host_ports: Vec::new(),
            running_matches: 0,
            metadata_json: String::new(),
            is_validation_room: false,
            created_at: now,
            last_ping_at: now,
            allocated_at: None,
            deletion: None,
            restored: true,
            steady_pings: false,
        };
        room.status = calculate_status(room.status_inputs(1), now, Millis::ZERO);
        self.fleet.insert(room);
    }

    /// Allocates a room and answers with `answer` of it, taken before
    /// anything else changes (see [`crate::Engine::allocate_with`]).
    pub fn allocate<R>(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        key: Option<&str>,
        answer: impl FnOnce(&SmolStr, &Room) -> R,
    ) -> Result<R, AllocateError> {
        if self.deleting {
            return Err(AllocateError::SchedulerNotFound(self.name.clone()));
        }
        if let Some(key) = key
            && let Some(room) = self.allocations.get(key, now)
            && let Some(found) = self.fleet.get(room)
            && found.deletion.is_none()
        {
            return Ok(answer(&SmolStr::new(room), found));
        }
        let id = self
            .fleet
            .first_ready()
            .ok_or(AllocateError::NoRoomAvailable)?;
        let allocation = self
            .fleet
            .update(&id, |room| {
                assert_eq!(
                    room.status,
                    RoomStatus::Ready,
                    "only ready rooms are allocated"
                );
                room.status = RoomStatus::Allocated;
                room.allocated_at = Some(now);
                answer(&id, room)
            })
            .expect("the ready index lists existing rooms");
        if let Some(key) = key {
            self.allocations.insert(
                key,
                id.to_string(),
                now + config.room_allocation_ttl,
                config.max_allocation_keys,
            );
        }
        io.mark_dirty(&self.name);
        Ok(allocation)
    }

    /// The room-level consequence of a runtime effect's result.
    pub fn on_room_effect(
        &mut self,
        io: &mut Io,
        config: &EngineConfig,
        now: Time,
        in_flight: &InFlight,
        result: &Result<(), RuntimeError>,
    ) -> EntryFate {
        match (&in_flight.what, result) {
            (InFlightKind::CreateRoom(room), Err(_)) => {
                // The pod was never created: forget the room.
                if self.fleet.remove(room).is_some() {
                    io.mark_dirty(&self.name);
                }
                EntryFate::Keep
            }
            (InFlightKind::DeleteRoom(room), Err(e)) if e.kind == RuntimeErrorKind::NotFound => {
                // Already gone: clean up as a delete event would.
                let Some(removed) = self.fleet.remove(room) else {
                    return EntryFate::Keep;
                };
                self.forward(io, &removed, ForwardKind::Terminated);
                io.mark_dirty(&self.name);
                self.on_room_gone(io, config, now, room)
            }
            (InFlightKind::DisruptionBudget, Err(_)) => {
                // Set it again at the next check.
                self.disruption_budget = None;
                EntryFate::Keep
            }
            _ => EntryFate::Keep,
        }
    }
}
