//! The driver: the imperative shell around the engine.
//!
//! One task owns the engine and the store. It takes inputs (API requests,
//! runtime results, instance events, timer expiries) one at a time, feeds
//! them to the engine, and executes the effects: runtime calls run
//! concurrently (bounded) and report back as inputs; store writes are
//! applied in one batch per turn.
//!
//! Durability: a reply that acknowledges a change (a command, an
//! allocation, a room or player event) is held until a flush that started
//! after its writes were applied has succeeded. Flushes run off the
//! driver's task, one at a time: while one is in flight the driver goes on
//! taking inputs, and every reply held meanwhile shares the next flush
//! (group commit, pipelined). A store that fails a write or a flush is
//! fatal: every held reply is answered with an error, nothing more is
//! acknowledged, and [`Driver::run`] returns the error so the process stops
//! and restarts from what is durable.
//!
//! Time: the engine is fed [`Clock`] time (the wall clock at start plus
//! monotonic time since), so a step of the wall clock cannot expire rooms.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use maestro_api::{Backend, Reply, ReportError, RoomReport, Unavailable, backend};
use maestro_engine::room::PingStatus;
use maestro_engine::scheduler::{Forwarder, Scheduler};
use maestro_engine::{
    Effect, EffectId, Engine, ForwardEvent, ForwardKind, InstanceEvent, RuntimeError, Time,
};
use maestro_runtimes::{RoomSpec, Runtime};
use maestro_store::{Kv, Lane, Store, StoreError, Write};

use crate::clock::Clock;
use crate::forwarding::{self, Forwarding};
use crate::record::Recorder;
use maestro_sim::record::Record;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

#[cfg(test)]
mod tests;

#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Runtime calls in flight at once.
    pub runtime_concurrency: usize,
    /// How often soft state (room records) is flushed when nothing else
    /// forces a flush.
    pub soft_flush_interval: Duration,
    /// Requests taken in one turn (and sharing one flush).
    pub max_batch: usize,
    /// Secret for per-room Rooms API tokens, when room auth is on.
    pub rooms_secret: Option<Vec<u8>>,
    /// Records every engine input (`--record`).
    pub record: Option<crate::record::RecordConfig>,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            runtime_concurrency: 64,
            soft_flush_interval: Duration::from_millis(200),
            max_batch: 256,
            rooms_secret: None,
            record: None,
        }
    }
}

type Reader = Box<dyn FnOnce(&Engine) + Send>;

/// What the driver's channel carries: a backend call with the place for its
/// reply, or a closure the shell's own tasks read the engine with.
enum Request {
    Call(
        backend::Request,
        oneshot::Sender<Result<Reply, Unavailable>>,
    ),
    Read(Reader),
}

/// What woke the driver up.
enum Wake {
    /// Whether to stop (the sender said so, or is gone).
    Shutdown(bool),
    Result(RuntimeResult),
    Event(InstanceEvent),
    Request(Request),
    Timer,
    SoftFlush,
    /// The flush in flight ended.
    Flushed(Result<(), StoreError>),
    /// The forwarding could not write an acknowledgement to the store.
    OutboxFailed(StoreError),
}

/// What a runtime task reports.
struct RuntimeResult {
    id: EffectId,
    result: Result<(), RuntimeError>,
}

/// The cloneable handle the APIs use; it implements [`Backend`].
#[derive(Clone)]
pub struct DriverHandle {
    requests: mpsc::Sender<Request>,
}

/// Requests waiting for the driver, beyond which callers wait.
const REQUEST_QUEUE: usize = 4096;

impl DriverHandle {
    async fn send(&self, request: Request) -> bool {
        self.requests.send(request).await.is_ok()
    }

    /// Runs `read` on the engine, between two inputs.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Engine) -> T + Send + 'static,
    ) -> Result<T, Unavailable> {
        let (tx, rx) = oneshot::channel();
        let reader: Reader = Box::new(move |engine| {
            let _ = tx.send(read(engine));
        });
        if !self.send(Request::Read(reader)).await {
            return Err(shutting_down());
        }
        rx.await.map_err(|_| shutting_down())
    }
}

fn shutting_down() -> Unavailable {
    Unavailable("maestro is shutting down".to_string())
}

#[async_trait::async_trait]
impl Backend for DriverHandle {
    async fn call(&self, request: backend::Request) -> Result<Reply, Unavailable> {
        let (tx, rx) = oneshot::channel();
        if !self.send(Request::Call(request, tx)).await {
            return Err(shutting_down());
        }
        rx.await.map_err(|_| shutting_down())?
    }
}

/// A reply held back until the writes it depends on are durable.
type HeldReply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The flush in flight and the replies it makes durable.
struct Flush {
    done: oneshot::Receiver<Result<(), StoreError>>,
    replies: Vec<HeldReply>,
}

pub struct Driver<K: Kv + 'static> {
    engine: Engine,
    clock: Clock,
    store: Arc<Store<K>>,
    runtime: Arc<dyn Runtime>,
    forwarding: Forwarding,
    config: DriverConfig,
    requests: mpsc::Receiver<Request>,
    results_tx: mpsc::UnboundedSender<RuntimeResult>,
    results: mpsc::UnboundedReceiver<RuntimeResult>,
    events_tx: mpsc::Sender<InstanceEvent>,
    events: mpsc::Receiver<InstanceEvent>,
    permits: Arc<Semaphore>,
    watches: BTreeMap<String, JoinHandle<()>>,
    writes: Vec<Write>,
    /// Room records (soft state), coalesced per room (the last write wins)
    /// and written on the soft-flush tick instead of once per ping.
    room_writes: BTreeMap<(String, String), Write>,
    /// Lanes with outbox events among this turn's writes: told once the
    /// writes are applied.
    outbox_lanes: BTreeSet<Lane>,
    /// Writes applied but not covered by a flush (finished or in flight).
    unflushed: bool,
    /// Replies of this turn, whose writes are not applied yet.
    held: Vec<HeldReply>,
    /// Replies whose writes are applied, waiting for the next flush
    /// (one is in flight, and it may have started before their writes).
    waiting: Vec<HeldReply>,
    flush: Option<Flush>,
    /// The store failed: the driver stops with this error.
    failed: Option<StoreError>,
    /// Every engine input, when recording.
    recorder: Option<Recorder>,
}

impl<K: Kv + 'static> Driver<K> {
    /// Builds the driver and restores every stored scheduler into the
    /// engine. Returns the driver (to `run`) and the handle the APIs use.
    pub fn new(
        mut engine: Engine,
        clock: Clock,
        store: Arc<Store<K>>,
        runtime: Arc<dyn Runtime>,
        forwarding: Forwarding,
        config: DriverConfig,
    ) -> Result<(Driver<K>, DriverHandle), StartupError> {
        let now = clock.now();
        let mut recorder = match &config.record {
            Some(record) => {
                Some(Recorder::start(record, engine.config(), now).map_err(StartupError::Record)?)
            }
            None => None,
        };
        for stored in store.load().map_err(StartupError::Load)? {
            let name = stored
                .versions
                .first()
                .map(|v| v.scheduler.name.clone())
                .unwrap_or_default();
            if let Some(recorder) = &mut recorder {
                recorder.record(Record::Restore(now, Box::new(stored.clone())));
            }
            engine
                .restore(now, stored)
                .map_err(|e| StartupError::Restore(name, e))?;
        }
        let (requests_tx, requests) = mpsc::channel(REQUEST_QUEUE);
        let (results_tx, results) = mpsc::unbounded_channel();
        let (events_tx, events) = mpsc::channel(REQUEST_QUEUE);
        let permits = Arc::new(Semaphore::new(config.runtime_concurrency.max(1)));
        let mut driver = Driver {
            engine,
            clock,
            store,
            runtime,
            forwarding,
            config,
            requests,
            results_tx,
            results,
            events_tx,
            events,
            permits,
            watches: BTreeMap::new(),
            writes: Vec::new(),
            room_writes: BTreeMap::new(),
            outbox_lanes: BTreeSet::new(),
            unflushed: false,
            held: Vec::new(),
            waiting: Vec::new(),
            flush: None,
            failed: None,
            recorder,
        };
        let names: Vec<String> = driver
            .engine
            .scheduler_names()
            .map(str::to_string)
            .collect();
        for name in names {
            driver.start_watch(&name);
        }
        Ok((
            driver,
            DriverHandle {
                requests: requests_tx,
            },
        ))
    }

    /// Runs until `shutdown` turns true, then flushes the store. Returns
    /// the store's error if a write or a flush failed: the driver then
    /// stopped at once, having acknowledged nothing it could not persist.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), StoreError> {
        let _ = self.execute_effects();
        self.commit();
        let mut soft_flush = tokio::time::interval(self.config.soft_flush_interval);
        soft_flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut outbox_failures = self.forwarding.store_failures();
        while self.failed.is_none() {
            let sleep = tokio::time::sleep(self.timer_wait());
            let wake = tokio::select! {
                biased;
                changed = shutdown.changed() => Wake::Shutdown(changed.is_err() || *shutdown.borrow()),
                flushed = flush_done(&mut self.flush) => Wake::Flushed(flushed),
                Some(result) = self.results.recv() => Wake::Result(result),
                Some(event) = self.events.recv() => Wake::Event(event),
                Some(request) = self.requests.recv() => Wake::Request(request),
                () = sleep => Wake::Timer,
                _ = soft_flush.tick() => Wake::SoftFlush,
                e = crate::forwarding::store_failure(&mut outbox_failures) => Wake::OutboxFailed(e),
            };
            let woke = std::time::Instant::now();
            match wake {
                Wake::Shutdown(true) => break,
                Wake::Shutdown(false) => continue,
                Wake::Flushed(result) => {
                    self.flushed(result);
                    continue;
                }
                Wake::OutboxFailed(e) => {
                    self.fail(e);
                    continue;
                }
                Wake::Result(result) => {
                    self.effect_result(result);
                    for _ in 1..self.config.max_batch {
                        let Ok(result) = self.results.try_recv() else {
                            break;
                        };
                        self.effect_result(result);
                    }
                }
                Wake::Event(event) => {
                    let now = self.clock.now();
                    self.rec(|| Record::Instance(now, event.clone()));
                    self.engine.handle_instance_event(now, &event);
                }
                Wake::Request(request) => {
                    self.handle(request);
                    for _ in 1..self.config.max_batch {
                        let Ok(request) = self.requests.try_recv() else {
                            break;
                        };
                        self.handle(request);
                    }
                }
                Wake::Timer => {
                    let now = self.clock.now();
                    self.rec(|| Record::Timeout(now));
                    self.engine.handle_timeout(now);
                }
                Wake::SoftFlush => {
                    self.writes
                        .extend(std::mem::take(&mut self.room_writes).into_values());
                    self.commit();
                    self.start_flush();
                }
            }
            metrics::histogram!("maestro_engine_step_seconds").record(woke.elapsed().as_secs_f64());
            if self.execute_effects() > 0 {
                // From the input waking the driver to its room actions being
                // dispatched: what "reacts in milliseconds" means.
                metrics::histogram!("maestro_reaction_latency_seconds")
                    .record(woke.elapsed().as_secs_f64());
            }
            self.commit();
            if let Some(recorder) = &mut self.recorder {
                recorder.checkpoint(false);
            }
        }
        if let Some(recorder) = self.recorder.take() {
            recorder.finish();
        }
        for (_, watch) in std::mem::take(&mut self.watches) {
            watch.abort();
        }
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        // Graceful stop: what the engine decided is stored and durable, and
        // every held reply is answered.
        let _ = self.execute_effects();
        self.writes
            .extend(std::mem::take(&mut self.room_writes).into_values());
        self.commit();
        // Flush until everything applied is durable, replies waiting or not
        // (`start_flush` waits for the flush in flight, or starts one if
        // anything is unflushed).
        while self.failed.is_none() {
            self.start_flush();
            if self.flush.is_none() {
                break;
            }
            let result = flush_done(&mut self.flush).await;
            self.flushed(result);
        }
        self.failed.take().map_or(Ok(()), Err)
    }

    fn rec(&mut self, record: impl FnOnce() -> Record) {
        if let Some(recorder) = &mut self.recorder {
            recorder.record(record());
        }
    }

    fn effect_result(&mut self, result: RuntimeResult) {
        let now = self.clock.now();
        self.rec(|| Record::Result(now, result.id, result.result.clone()));
        self.engine
            .handle_effect_result(now, result.id, result.result);
    }

    fn handle(&mut self, request: Request) {
        let now = self.clock.now();
        let (request, reply) = match request {
            Request::Call(request, reply) => (request, reply),
            Request::Read(read) => return read(&self.engine),
        };
        match request {
            backend::Request::Command(command) => {
                self.rec(|| Record::Command(now, command.clone()));
                let result = self.engine.handle_command(now, *command);
                self.hold(reply, Reply::Command(result));
            }
            backend::Request::Ping(ping) => {
                self.rec(|| Record::Ping(now, ping.clone()));
                let _ = reply.send(Ok(Reply::Ping(self.engine.handle_ping(now, &ping))));
            }
            backend::Request::Allocate { scheduler, key } => {
                self.rec(|| Record::Allocate(now, scheduler.clone(), key.clone()));
                match self.engine.allocate(now, &scheduler, key.as_deref()) {
                    // Answered only once the allocated room's record is
                    // durable: a room handed to a match must still be
                    // allocated after a crash, or it could be handed to a
                    // second one.
                    Ok(allocation) => self.hold(reply, Reply::Allocate(Ok(allocation))),
                    // Nothing was handed out: nothing to make durable.
                    Err(e) => {
                        let _ = reply.send(Ok(Reply::Allocate(Err(e))));
                    }
                }
            }
            backend::Request::Report(report) => match self.report(now, report) {
                // Acknowledged once the events are durable.
                Ok(()) => self.hold(reply, Reply::Report(Ok(()))),
                Err(e) => {
                    let _ = reply.send(Ok(Reply::Report(Err(e))));
                }
            },
            backend::Request::Query(query) => {
                let _ = reply.send(Ok(Reply::Query(self.engine.query(now, query))));
            }
        }
    }

    /// Holds `reply` until this turn's writes are durable: it then gets
    /// `result`, or [`Unavailable`] with the store's error if they could
    /// not be made durable. Every acknowledgement goes through here.
    fn hold(&mut self, reply: oneshot::Sender<Result<Reply, Unavailable>>, result: Reply) {
        self.held.push(Box::new(move |flushed| {
            let result = match flushed {
                Ok(()) => Ok(result),
                Err(e) => Err(Unavailable(format!("the store failed: {e}"))),
            };
            let _ = reply.send(result);
        }));
    }

    /// Queues a room or player event in the outbox of every enabled
    /// forwarder of the room's scheduler.
    fn report(&mut self, now: Time, report: RoomReport) -> Result<(), ReportError> {
        let not_found = || ReportError::RoomNotFound {
            scheduler: report.scheduler.clone(),
            room: report.room.clone(),
        };
        let scheduler = self
            .engine
            .scheduler(&report.scheduler)
            .ok_or_else(not_found)?;
        let room = self
            .engine
            .fleet(&report.scheduler)
            .and_then(|f| f.get(&report.room))
            .ok_or_else(not_found)?;
        if room.is_validation_room {
            // Upstream forwards nothing about validation rooms.
            return Ok(());
        }
        let event = ForwardEvent {
            scheduler: report.scheduler.clone(),
            game: scheduler.game.clone(),
            room: report.room.clone(),
            kind: report.kind,
            metadata_json: report.metadata_json,
            address: room.address.clone(),
        };
        let forwarders: Vec<Forwarder> = scheduler
            .forwarders
            .iter()
            .filter(|f| f.enabled)
            .cloned()
            .collect();
        let mut refused = None;
        for forwarder in &forwarders {
            if !self.queue_durable(&event, forwarder, now) {
                refused.get_or_insert(ReportError::Backlog {
                    scheduler: report.scheduler.clone(),
                    forwarder: forwarder.name.clone(),
                });
            }
        }
        refused.map_or(Ok(()), Err)
    }

    /// Hands a room's resync or termination to the forwarders: resyncs in
    /// memory (coalesced per room), terminations through the outbox.
    fn forward(&mut self, event: &ForwardEvent, scheduler: &Scheduler) {
        for forwarder in scheduler.forwarders.iter().filter(|f| f.enabled) {
            match event.kind {
                ForwardKind::Resync(status) if status != PingStatus::Terminated => {
                    self.forwarding.resync(event, forwarder);
                }
                _ => {
                    if !self.queue_durable(event, forwarder, self.clock.now()) {
                        tracing::error!(
                            scheduler = %event.scheduler,
                            forwarder = %forwarder.name,
                            room = %event.room,
                            "forwarder backlog full: dropping the room's termination event"
                        );
                    }
                }
            }
        }
    }

    /// Stages the event in the forwarder's outbox lane, to be written with
    /// this turn's batch. `false` when the lane's backlog is full.
    fn queue_durable(&mut self, event: &ForwardEvent, forwarder: &Forwarder, now: Time) -> bool {
        let record = forwarding::record(event, forwarder, now);
        if !self.forwarding.admit(&record) {
            return false;
        }
        self.outbox_lanes.insert(record.lane());
        self.writes.push(Write::OutboxPush(Box::new(record)));
        true
    }

    /// Starts runtime calls and stages store writes for every effect the
    /// engine emitted. Returns how many room actions (creations and
    /// deletions) it dispatched.
    fn execute_effects(&mut self) -> usize {
        let mut room_actions = 0;
        while let Some(effect) = self.engine.poll_effect() {
            if let Some(recorder) = &mut self.recorder {
                recorder.effect(&effect);
            }
            if let Effect::PersistOperation(op) = &effect
                && op.status.is_final()
            {
                metrics::counter!(
                    "maestro_operations_total",
                    "scheduler" => op.scheduler.clone(),
                    "operation" => op.definition.name(),
                    "status" => op.status.as_str()
                )
                .increment(1);
            }
            if matches!(
                effect,
                Effect::CreateRoom { .. } | Effect::DeleteRoom { .. }
            ) {
                room_actions += 1;
            }
            match Write::from_effect(&effect) {
                None => {}
                Some(Write::Room(room)) => {
                    let key = (room.scheduler.clone(), room.id.clone());
                    self.room_writes.insert(key, Write::Room(room));
                }
                Some(Write::ForgetRoom { scheduler, room }) => {
                    let key = (scheduler.clone(), room.clone());
                    self.room_writes
                        .insert(key, Write::ForgetRoom { scheduler, room });
                }
                Some(write) => {
                    if let Write::DeleteScheduler { name } = &write {
                        // Its rooms go with it: a late room write must not
                        // bring records of a deleted scheduler back.
                        self.room_writes
                            .retain(|(scheduler, _), _| scheduler != name);
                    }
                    self.writes.push(write);
                }
            }
            match effect {
                Effect::CreateSchedulerResources { id, spec } => {
                    self.start_watch(&spec.name);
                    self.call(id, "create_scheduler", move |rt| {
                        Box::pin(async move { rt.create_scheduler(&spec).await })
                    });
                }
                Effect::DeleteSchedulerResources { id, scheduler } => {
                    self.call(id, "delete_scheduler", move |rt| {
                        Box::pin(async move { rt.delete_scheduler(&scheduler).await })
                    });
                }
                Effect::CreateRoom {
                    id,
                    scheduler,
                    room,
                    version,
                    spec,
                    host_ports,
                    is_validation_room,
                } => {
                    let extra_env = match &self.config.rooms_secret {
                        Some(secret) => vec![(
                            "MAESTRO_ROOM_TOKEN".to_string(),
                            maestro_api::room_token(secret, &scheduler, &room),
                        )],
                        None => Vec::new(),
                    };
                    let room_spec = RoomSpec {
                        scheduler,
                        room,
                        version,
                        spec,
                        host_ports,
                        is_validation_room,
                        extra_env,
                    };
                    self.call(id, "create_room", move |rt| {
                        Box::pin(async move { rt.create_room(&room_spec).await })
                    });
                }
                Effect::DeleteRoom {
                    id,
                    scheduler,
                    room,
                    reason,
                } => {
                    self.call(id, "delete_room", move |rt| {
                        Box::pin(async move { rt.delete_room(&scheduler, &room, reason).await })
                    });
                }
                Effect::SetDisruptionBudget {
                    id,
                    scheduler,
                    min_available,
                } => {
                    self.call(id, "set_disruption_budget", move |rt| {
                        Box::pin(async move {
                            let result = rt.set_disruption_budget(&scheduler, min_available).await;
                            if let Err(e) = &result {
                                // The engine sets it again at its next check.
                                tracing::warn!(scheduler, error = %e, "cannot update the disruption budget");
                            }
                            result
                        })
                    });
                }
                Effect::DeleteSchedulerData { scheduler } => {
                    if let Some(watch) = self.watches.remove(&scheduler) {
                        watch.abort();
                    }
                }
                Effect::Forward { event, scheduler } => self.forward(&event, &scheduler),
                // Store effects: staged as writes above.
                Effect::PersistScheduler { .. }
                | Effect::PersistOperation(_)
                | Effect::DeleteOperations { .. }
                | Effect::SaveRoom(_)
                | Effect::ForgetRoom { .. } => {}
            }
        }
        room_actions
    }

    /// Runs one runtime call on its own task (bounded by the permits) and
    /// feeds its result back.
    fn call(
        &self,
        id: EffectId,
        name: &'static str,
        call: impl FnOnce(
            Arc<dyn Runtime>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<(), RuntimeError>> + Send>,
        > + Send
        + 'static,
    ) {
        let runtime = Arc::clone(&self.runtime);
        let permits = Arc::clone(&self.permits);
        let results = self.results_tx.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = match permits.acquire_owned().await {
                Ok(_permit) => call(runtime).await,
                Err(_) => Err(RuntimeError::new(
                    maestro_engine::RuntimeErrorKind::Unavailable,
                    "maestro is shutting down",
                )),
            };
            let outcome = match &result {
                Ok(()) => "ok",
                Err(e) => runtime_error_label(e.kind),
            };
            metrics::counter!("maestro_runtime_calls_total", "call" => name, "result" => outcome)
                .increment(1);
            metrics::histogram!("maestro_runtime_call_seconds", "call" => name)
                .record(started.elapsed().as_secs_f64());
            let _ = results.send(RuntimeResult { id, result });
        });
    }

    fn start_watch(&mut self, scheduler: &str) {
        if self.watches.contains_key(scheduler) {
            return;
        }
        let known: Vec<String> = self
            .engine
            .fleet(scheduler)
            .map(|f| f.rooms().map(|r| r.id.clone()).collect())
            .unwrap_or_default();
        let mut stream = self.runtime.watch(scheduler, known);
        let events = self.events_tx.clone();
        let task = tokio::spawn(async move {
            use futures::StreamExt;
            while let Some(event) = stream.next().await {
                if events.send(event).await.is_err() {
                    break;
                }
            }
        });
        self.watches.insert(scheduler.to_string(), task);
    }

    /// Applies this turn's writes and starts the flush its held replies
    /// wait for. Room records (otherwise written on the soft-flush tick) go
    /// with any batch a reply waits on: an allocation is one of them, and
    /// the flush is paid anyway.
    fn commit(&mut self) {
        if self.failed.is_some() {
            return;
        }
        if !self.held.is_empty() {
            self.writes
                .extend(std::mem::take(&mut self.room_writes).into_values());
        }
        if !self.writes.is_empty() {
            let writes = std::mem::take(&mut self.writes);
            if let Err(e) = self.store.apply(self.clock.now(), &writes) {
                self.fail(e);
                return;
            }
            self.unflushed = true;
            self.forwarding
                .written(std::mem::take(&mut self.outbox_lanes).iter());
        }
        if !self.held.is_empty() {
            self.waiting.append(&mut self.held);
            self.start_flush();
        }
    }

    /// Starts a flush of everything applied so far, unless one is in
    /// flight (the next starts when it ends). Replies waiting while nothing
    /// is unflushed depend only on what is already durable: released now.
    fn start_flush(&mut self) {
        if self.flush.is_some() || self.failed.is_some() {
            return;
        }
        if !self.unflushed {
            let replies = std::mem::take(&mut self.waiting);
            release(replies, Ok(()));
            return;
        }
        self.unflushed = false;
        let (tx, done) = oneshot::channel();
        let store = Arc::clone(&self.store);
        let flush = move || {
            let started = std::time::Instant::now();
            let result = store.flush();
            metrics::histogram!("maestro_store_flush_seconds")
                .record(started.elapsed().as_secs_f64());
            let _ = tx.send(result);
        };
        // Off the driver's task either way, so that replies arriving
        // meanwhile share the next flush.
        if self.store.flush_blocks() {
            tokio::task::spawn_blocking(flush);
        } else {
            tokio::spawn(async move { flush() });
        }
        self.flush = Some(Flush {
            done,
            replies: std::mem::take(&mut self.waiting),
        });
    }

    /// The flush in flight ended.
    fn flushed(&mut self, result: Result<(), StoreError>) {
        let Some(flush) = self.flush.take() else {
            return;
        };
        match result {
            Ok(()) => {
                release(flush.replies, Ok(()));
                if !self.waiting.is_empty() {
                    self.start_flush();
                }
            }
            Err(e) => {
                release(flush.replies, Err(e.clone()));
                self.fail(e);
            }
        }
    }

    /// The store failed a write or a flush. The engine now holds state the
    /// store may not: answer every held reply with the error and stop, so
    /// the process restarts from what is durable.
    fn fail(&mut self, error: StoreError) {
        tracing::error!(
            error = %error,
            "the store failed a write: stopping the worker so that it restarts from what is durable"
        );
        let mut replies = std::mem::take(&mut self.held);
        replies.append(&mut self.waiting);
        if let Some(flush) = self.flush.take() {
            replies.extend(flush.replies);
        }
        release(replies, Err(error.clone()));
        self.failed.get_or_insert(error);
    }

    /// How long until the engine's next deadline.
    fn timer_wait(&self) -> Duration {
        match self.engine.poll_timeout() {
            Some(deadline) => self.clock.until(deadline),
            // Nothing scheduled: wake up rarely; any input wakes the loop anyway.
            None => Duration::from_secs(3600),
        }
    }
}

/// Answers held replies with the outcome of the flush they waited for.
fn release(replies: Vec<HeldReply>, result: Result<(), StoreError>) {
    for reply in replies {
        reply(result.clone());
    }
}

/// The end of the flush in flight; never, when none is.
async fn flush_done(flush: &mut Option<Flush>) -> Result<(), StoreError> {
    match flush {
        Some(flush) => (&mut flush.done)
            .await
            .unwrap_or_else(|_| Err(flush_task_lost())),
        None => std::future::pending().await,
    }
}

fn flush_task_lost() -> StoreError {
    StoreError::Io("the flush task ended without an answer".to_string())
}

fn runtime_error_label(kind: maestro_engine::RuntimeErrorKind) -> &'static str {
    use maestro_engine::RuntimeErrorKind as K;
    match kind {
        K::NotFound => "not_found",
        K::AlreadyExists => "already_exists",
        K::Conflict => "conflict",
        K::RateLimited => "rate_limited",
        K::Unavailable => "unavailable",
        K::Invalid => "invalid",
        K::Internal => "internal",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot load the store: {0}")]
    Load(StoreError),
    #[error("cannot restore scheduler {0}: {1}")]
    Restore(String, maestro_engine::RestoreError),
    #[error(transparent)]
    Record(crate::record::RecordStartError),
}
