//! The simulated cluster: executes the engine's effects in simulated time.
//!
//! [`Harness`] owns an [`Engine`], a simulated clock and a model of the
//! cluster: pods start after a delay, their game rooms ping on a period, a
//! deleted pod disappears after a delay. Everything is ordered by
//! `(time, sequence)`, so a run is a pure function of the seed and the
//! inputs. Benchmarks and tests use it to put an engine in a realistic state;
//! the capacity-planning simulator builds on it.

use std::collections::BTreeMap;

use maestro_engine::room::{Address, AddressPort, InstanceStatus, PingStatus};
use maestro_engine::{
    Command, CommandError, CommandReply, Effect, EffectId, Engine, EngineConfig, InstanceEvent,
    InstanceEventKind, Millis, Ping, RuntimeError, Time,
};
use maestro_store::{MemoryStore, Write};

/// How the simulated cluster and its game rooms behave.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Latency of every runtime call.
    pub api_latency: Millis,
    /// From pod creation to the pod running.
    pub start_delay: Millis,
    /// From the pod running to the game room's first ping.
    pub boot_delay: Millis,
    /// Period of each room's ping.
    pub ping_interval: Millis,
    /// From a pod delete to the pod being gone.
    pub delete_delay: Millis,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            api_latency: Millis(1),
            start_delay: Millis(500),
            boot_delay: Millis(500),
            ping_interval: Millis(10_000),
            delete_delay: Millis(1_000),
        }
    }
}

/// What a simulated game room reports in its pings. A status of
/// `PingStatus::Unknown` makes the room silent: it stops pinging (a hung
/// game server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomBehaviour {
    pub status: PingStatus,
    pub running_matches: u64,
}

#[derive(Clone, Debug)]
struct Pod {
    behaviour: RoomBehaviour,
    running: bool,
    deleting: bool,
}

#[derive(Clone, Debug)]
enum Event {
    Result(EffectId, Result<(), RuntimeError>),
    PodRunning { scheduler: String, room: String },
    Ping { scheduler: String, room: String },
    PodGone { scheduler: String, room: String },
}

/// Counters of what the harness executed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub pods_created: u64,
    pub pods_deleted: u64,
    pub pings: u64,
    pub persisted: u64,
    pub forwarded: u64,
}

pub struct Harness {
    pub engine: Engine,
    engine_config: EngineConfig,
    /// What the engine persisted, as the service's store would hold it.
    pub store: MemoryStore,
    restarts: u64,
    now: Time,
    config: SimConfig,
    events: BTreeMap<(Time, u64), Event>,
    seq: u64,
    pods: BTreeMap<(String, String), Pod>,
    /// Each scheduler's disruption budget (`minAvailable`) as last set.
    pub disruption_budgets: BTreeMap<String, u32>,
    pub stats: Stats,
}

impl Harness {
    pub fn new(engine: EngineConfig, config: SimConfig) -> Harness {
        Harness {
            engine: Engine::new(engine.clone()),
            engine_config: engine,
            store: MemoryStore::in_memory(),
            restarts: 0,
            now: Time(1_000_000),
            config,
            events: BTreeMap::new(),
            seq: 0,
            pods: BTreeMap::new(),
            disruption_budgets: BTreeMap::new(),
            stats: Stats::default(),
        }
    }

    pub fn now(&self) -> Time {
        self.now
    }

    pub fn command(&mut self, command: Command) -> Result<CommandReply, CommandError> {
        let reply = self.engine.handle_command(self.now, command);
        self.drain();
        reply
    }

    pub fn allocate(&mut self, scheduler: &str) -> Option<String> {
        let allocation = self.engine.allocate(self.now, scheduler, None).ok();
        self.drain();
        allocation.map(|a| a.room)
    }

    /// Changes what a room pings from now on, and pings at once (a game
    /// server reports a state change immediately).
    pub fn set_behaviour(&mut self, scheduler: &str, room: &str, behaviour: RoomBehaviour) {
        let key = (scheduler.to_string(), room.to_string());
        let Some(pod) = self.pods.get_mut(&key) else {
            return;
        };
        pod.behaviour = behaviour;
        if pod.running && !pod.deleting {
            self.ping(scheduler, room);
        }
    }

    /// Processes every event and timer up to `until`.
    pub fn run_until(&mut self, until: Time) {
        loop {
            let next_event = self.events.keys().next().map(|(t, _)| *t);
            let next_timer = self.engine.poll_timeout();
            let next = match (next_event, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            if next_timer.is_some_and(|t| t <= self.now) {
                self.engine.handle_timeout(self.now);
                self.drain();
            }
            while let Some(entry) = self.events.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let event = entry.remove();
                self.apply(event);
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, duration: Millis) {
        self.run_until(self.now + duration);
    }

    fn schedule(&mut self, at: Time, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    fn apply(&mut self, event: Event) {
        match event {
            Event::Result(id, result) => {
                self.engine.handle_effect_result(self.now, id, result);
            }
            Event::PodRunning { scheduler, room } => {
                let key = (scheduler.clone(), room.clone());
                let Some(pod) = self.pods.get_mut(&key) else {
                    return;
                };
                pod.running = true;
                let event = instance(
                    &scheduler,
                    &room,
                    InstanceEventKind::Upsert,
                    InstanceStatus::Ready,
                );
                self.engine.handle_instance_event(self.now, &event);
                self.schedule(
                    self.now + self.config.boot_delay,
                    Event::Ping { scheduler, room },
                );
            }
            Event::Ping { scheduler, room } => {
                let key = (scheduler.clone(), room.clone());
                if self.pods.get(&key).is_none_or(|p| p.deleting) {
                    return;
                }
                self.ping(&scheduler, &room);
                let next = self.now + self.config.ping_interval;
                self.schedule(next, Event::Ping { scheduler, room });
            }
            Event::PodGone { scheduler, room } => {
                if self
                    .pods
                    .remove(&(scheduler.clone(), room.clone()))
                    .is_some()
                {
                    let event = instance(
                        &scheduler,
                        &room,
                        InstanceEventKind::Deleted,
                        InstanceStatus::Terminating,
                    );
                    self.engine.handle_instance_event(self.now, &event);
                }
            }
        }
        self.drain();
    }

    fn ping(&mut self, scheduler: &str, room: &str) {
        let key = (scheduler.to_string(), room.to_string());
        let Some(pod) = self.pods.get(&key) else {
            return;
        };
        if pod.behaviour.status == PingStatus::Unknown {
            return;
        }
        self.stats.pings += 1;
        let ping = Ping {
            scheduler: scheduler.to_string(),
            room: room.to_string(),
            status: pod.behaviour.status,
            running_matches: pod.behaviour.running_matches,
            metadata_json: String::new(),
        };
        // A refused ping (for instance an impossible transition) changes
        // nothing; the room pings again on its period.
        let _ = self.engine.handle_ping(self.now, &ping);
        self.drain();
    }

    /// The process dies and starts again: a new engine restored from the
    /// store, and the cluster's pods relisted as a watch would after a
    /// reconnect. Runtime results still in flight are lost with the process.
    pub fn restart(&mut self) {
        // Every process run draws a fresh seed, as the service does.
        self.restarts += 1;
        let seed = self
            .engine_config
            .seed
            .wrapping_add(self.restarts.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.engine = Engine::new(EngineConfig {
            seed,
            ..self.engine_config.clone()
        });
        self.events.retain(|_, e| !matches!(e, Event::Result(..)));
        let stored = self.store.load().expect("the in-memory store loads");
        for scheduler in stored {
            self.engine
                .restore(self.now, scheduler)
                .expect("stored schedulers restore");
        }
        self.drain();
        let running: Vec<(String, String)> = self
            .pods
            .iter()
            .filter(|(_, p)| p.running && !p.deleting)
            .map(|(k, _)| k.clone())
            .collect();
        for (scheduler, room) in running {
            let event = instance(
                &scheduler,
                &room,
                InstanceEventKind::Upsert,
                InstanceStatus::Ready,
            );
            self.engine.handle_instance_event(self.now, &event);
            self.drain();
        }
    }

    /// Executes every effect the engine emitted; store writes are applied
    /// as one batch per drain.
    fn drain(&mut self) {
        let mut writes = Vec::new();
        while let Some(effect) = self.engine.poll_effect() {
            if let Some(write) = Write::from_effect(&effect) {
                writes.push(write);
            }
            let reply_at = self.now + self.config.api_latency;
            match effect {
                Effect::CreateSchedulerResources { id, .. } => {
                    self.schedule(reply_at, Event::Result(id, Ok(())));
                }
                Effect::SetDisruptionBudget {
                    id,
                    scheduler,
                    min_available,
                } => {
                    self.disruption_budgets.insert(scheduler, min_available);
                    self.schedule(reply_at, Event::Result(id, Ok(())));
                }
                Effect::DeleteSchedulerResources { id, scheduler } => {
                    self.schedule(reply_at, Event::Result(id, Ok(())));
                    let rooms: Vec<String> = self
                        .pods
                        .keys()
                        .filter(|(s, _)| *s == scheduler)
                        .map(|(_, r)| r.clone())
                        .collect();
                    for room in rooms {
                        self.delete_pod(&scheduler, &room);
                    }
                }
                Effect::CreateRoom {
                    id,
                    scheduler,
                    room,
                    ..
                } => {
                    self.stats.pods_created += 1;
                    self.pods.insert(
                        (scheduler.clone(), room.clone()),
                        Pod {
                            behaviour: RoomBehaviour {
                                status: PingStatus::Ready,
                                running_matches: 0,
                            },
                            running: false,
                            deleting: false,
                        },
                    );
                    self.schedule(reply_at, Event::Result(id, Ok(())));
                    let running_at = self.now + self.config.start_delay;
                    self.schedule(running_at, Event::PodRunning { scheduler, room });
                }
                Effect::DeleteRoom {
                    id,
                    scheduler,
                    room,
                    ..
                } => {
                    let exists = self.pods.contains_key(&(scheduler.clone(), room.clone()));
                    let result = if exists {
                        self.delete_pod(&scheduler, &room);
                        Ok(())
                    } else {
                        Err(RuntimeError::new(
                            maestro_engine::RuntimeErrorKind::NotFound,
                            format!("pod {room} not found"),
                        ))
                    };
                    self.schedule(reply_at, Event::Result(id, result));
                }
                Effect::PersistScheduler { .. }
                | Effect::PersistOperation(_)
                | Effect::DeleteOperations { .. }
                | Effect::DeleteSchedulerData { .. }
                | Effect::SaveRoom(_)
                | Effect::ForgetRoom { .. } => self.stats.persisted += 1,
                Effect::Forward { .. } => self.stats.forwarded += 1,
            }
        }
        self.store
            .apply(self.now, &writes)
            .expect("the in-memory store accepts the engine's writes");
    }

    fn delete_pod(&mut self, scheduler: &str, room: &str) {
        let key = (scheduler.to_string(), room.to_string());
        if let Some(pod) = self.pods.get_mut(&key)
            && !pod.deleting
        {
            pod.deleting = true;
            self.stats.pods_deleted += 1;
            let at = self.now + self.config.delete_delay;
            let (scheduler, room) = key;
            self.schedule(at, Event::PodGone { scheduler, room });
        }
    }

    /// Pods the simulated cluster holds for a scheduler (deleting ones included).
    pub fn pod_count(&self, scheduler: &str) -> usize {
        self.pods.keys().filter(|(s, _)| s == scheduler).count()
    }
}

fn instance(
    scheduler: &str,
    room: &str,
    kind: InstanceEventKind,
    status: InstanceStatus,
) -> InstanceEvent {
    InstanceEvent {
        scheduler: scheduler.to_string(),
        room: room.to_string(),
        kind,
        status,
        description: String::new(),
        address: Some(Address {
            host: "node-1.sim".to_string(),
            ports: vec![AddressPort {
                name: "game".to_string(),
                port: 7777,
                protocol: "udp".to_string(),
            }],
        }),
        version: None,
    }
}
