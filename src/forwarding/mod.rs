//! Forwarding: delivers room and player events to the schedulers'
//! forwarders (usually a matchmaker) over upstream's gRPC protocol.
//!
//! Upstream calls every forwarder synchronously inside the ping or event
//! request and forgets the event if the call fails. Here a request never
//! waits on a forwarder, and delivery is at least once:
//!
//! - **Durable events** (room events, player events, room terminations) are
//!   written to the store's outbox before the request is answered, and stay
//!   there until the forwarder answered. They survive restarts.
//! - **Ping resyncs** are snapshots of a room's state, sent on every ping.
//!   They are kept in memory, one per room per forwarder (a newer one
//!   replaces an older one not yet sent), and retried like the others; a
//!   resync lost in a crash is replaced by the room's next ping.
//!
//! Each (scheduler, forwarder) pair is a *lane* with its own task, queue and
//! backoff, so an unreachable forwarder delays only its own events. A lane
//! keeps up to `window` calls in flight, never two for the same room, so a
//! room's events arrive in order. A failed call pauses the lane with
//! exponential backoff; events are given up only when the forwarder refuses
//! them outright or they are older than `max_event_age`. Bounds: at most
//! `max_backlog` durable events per lane (further events are refused, the
//! room is told to retry), and in memory one resync per room plus one page
//! of durable events per lane.

mod client;
mod message;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use maestro_engine::scheduler::Forwarder;
use maestro_engine::{ForwardEvent, ForwardKind, Time};
use maestro_store::{Kv, Lane, OutboxRecord, Store, StoreError, Write};
use metrics::{Counter, Gauge};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use self::client::{Clients, Outcome};
pub use self::client::{Connect, tcp};
use crate::clock::Clock;

#[derive(Clone, Debug)]
pub struct ForwardingConfig {
    /// Calls in flight at once per lane.
    pub window: usize,
    /// The first pause after a failed call; it doubles per failure up to
    /// `max_backoff`. Each pause is jittered to between half and all of it.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A durable event still undelivered after this long is given up.
    pub max_event_age: Duration,
    /// Durable events waiting per lane beyond which new ones are refused.
    pub max_backlog: u64,
    /// Seeds the backoff's jitter (each lane mixes in its name), for runs
    /// that must replay exactly (the chaos harness); `None` draws it from
    /// the OS.
    pub jitter_seed: Option<u64>,
}

impl Default for ForwardingConfig {
    fn default() -> Self {
        ForwardingConfig {
            window: 32,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            max_event_age: Duration::from_secs(24 * 3600),
            max_backlog: 1_000_000,
            jitter_seed: None,
        }
    }
}

/// What a lane reads from and acknowledges to: the store's outbox.
pub trait Outbox: Send + Sync + 'static {
    fn lanes(&self) -> Result<Vec<Lane>, StoreError>;
    fn page(
        &self,
        lane: &Lane,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxRecord)>, StoreError>;
    fn len(&self, lane: &Lane) -> Result<u64, StoreError>;
    /// Removes delivered events. Not flushed: an acknowledgement lost in a
    /// crash means the event is delivered again (at least once).
    fn ack(&self, lane: &Lane, seqs: &[u64]) -> Result<(), StoreError>;
}

impl<K: Kv + 'static> Outbox for Store<K> {
    fn lanes(&self) -> Result<Vec<Lane>, StoreError> {
        self.outbox_lanes()
    }

    fn page(
        &self,
        lane: &Lane,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        self.outbox_page(lane, after, limit)
    }

    fn len(&self, lane: &Lane) -> Result<u64, StoreError> {
        self.outbox_len(lane)
    }

    fn ack(&self, lane: &Lane, seqs: &[u64]) -> Result<(), StoreError> {
        let writes: Vec<Write> = seqs
            .iter()
            .map(|&seq| Write::OutboxAck {
                lane: lane.clone(),
                seq,
            })
            .collect();
        // Acknowledgements carry no time.
        self.apply(Time::ZERO, &writes)
    }
}

/// Durable events read from the store at once per lane.
const PAGE: usize = 256;
/// Acknowledgements are written in batches of this many, or after
/// `ACK_DELAY`, whichever comes first.
const ACK_BATCH: usize = 128;
const ACK_DELAY: Duration = Duration::from_millis(100);

/// The handle the driver uses; cheap to clone.
#[derive(Clone)]
pub struct Forwarding {
    shared: Arc<Shared>,
}

struct Shared {
    outbox: Arc<dyn Outbox>,
    config: ForwardingConfig,
    clients: Clients,
    lanes: Mutex<BTreeMap<Lane, Arc<LaneState>>>,
    shutdown: watch::Receiver<bool>,
    /// The driver's clock, which stamped the events' `enqueued_at`.
    clock: Clock,
    /// Every lane's task, to wait for them once stopped.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The first store error of an acknowledgement: the worker stops on it
    /// (see [`store_failure`]).
    failed: watch::Sender<Option<StoreError>>,
}

struct LaneState {
    lane: Lane,
    notify: Notify,
    inner: Mutex<LaneInner>,
    metrics: LaneMetrics,
}

/// A lane's metrics, registered once so that delivering an event only
/// increments a handle (no label strings built per event).
struct LaneMetrics {
    /// By [`message::kind_index`].
    delivered: [Counter; 4],
    retried: [Counter; 4],
    rejected: Counter,
    expired: Counter,
    backlog_full: Counter,
    coalesced: Counter,
    backlog: Gauge,
}

impl LaneMetrics {
    fn new(lane: &Lane) -> LaneMetrics {
        let labels = |extra: Option<(&'static str, &'static str)>| {
            let mut l = vec![
                ("scheduler", lane.scheduler.clone()),
                ("forwarder", lane.forwarder.clone()),
            ];
            if let Some((k, v)) = extra {
                l.push((k, v.to_string()));
            }
            l
        };
        let by_kind = |name: &'static str| {
            message::KIND_LABELS.map(|kind| metrics::counter!(name, &labels(Some(("event", kind)))))
        };
        let failed = |reason| {
            metrics::counter!(
                "maestro_forwarding_events_failed_total",
                &labels(Some(("reason", reason)))
            )
        };
        LaneMetrics {
            delivered: by_kind("maestro_forwarding_events_delivered_total"),
            retried: by_kind("maestro_forwarding_events_retried_total"),
            rejected: failed("rejected"),
            expired: failed("expired"),
            backlog_full: failed("backlog_full"),
            coalesced: metrics::counter!(
                "maestro_forwarding_resyncs_coalesced_total",
                &labels(None)
            ),
            backlog: metrics::gauge!("maestro_forwarding_outbox_events", &labels(None)),
        }
    }
}

#[derive(Default)]
struct LaneInner {
    /// The newest unsent resync per room.
    resyncs: BTreeMap<String, Resync>,
    /// Durable events in the store for this lane.
    backlog: u64,
    /// Durable events were written since the lane last read the store.
    written: bool,
}

#[derive(Clone, Debug)]
struct Resync {
    event: ForwardEvent,
    forwarder: Forwarder,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Forwarding {
    /// Starts a task for every lane that holds undelivered events.
    pub fn start(
        outbox: Arc<dyn Outbox>,
        config: ForwardingConfig,
        clock: Clock,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Forwarding, StoreError> {
        Forwarding::start_with(outbox, config, clock, shutdown, client::tcp())
    }

    /// [`Forwarding::start`], reaching forwarders through `connect`.
    pub fn start_with(
        outbox: Arc<dyn Outbox>,
        config: ForwardingConfig,
        clock: Clock,
        shutdown: watch::Receiver<bool>,
        connect: Connect,
    ) -> Result<Forwarding, StoreError> {
        let forwarding = Forwarding {
            shared: Arc::new(Shared {
                outbox,
                config,
                clients: Clients::new(connect),
                lanes: Mutex::new(BTreeMap::new()),
                shutdown,
                clock,
                tasks: Mutex::new(Vec::new()),
                failed: watch::Sender::new(None),
            }),
        };
        for lane in forwarding.shared.outbox.lanes()? {
            let backlog = forwarding.shared.outbox.len(&lane)?;
            let state = forwarding.lane(&lane);
            let mut inner = lock(&state.inner);
            inner.backlog = backlog;
            inner.written = true;
            state.metrics.backlog.set(backlog as f64);
        }
        Ok(forwarding)
    }

    /// The first store error of an acknowledgement, as it happens: see
    /// [`store_failure`]. The driver subscribes once and stops on it.
    pub fn store_failures(&self) -> watch::Receiver<Option<StoreError>> {
        self.shared.failed.subscribe()
    }

    /// The lane's state, starting its task on first use.
    fn lane(&self, lane: &Lane) -> Arc<LaneState> {
        let mut lanes = lock(&self.shared.lanes);
        if let Some(state) = lanes.get(lane) {
            return Arc::clone(state);
        }
        let state = Arc::new(LaneState {
            lane: lane.clone(),
            notify: Notify::new(),
            inner: Mutex::new(LaneInner::default()),
            metrics: LaneMetrics::new(lane),
        });
        lanes.insert(lane.clone(), Arc::clone(&state));
        let task = tokio::spawn(run_lane(Arc::clone(&self.shared), Arc::clone(&state)));
        lock(&self.shared.tasks).push(task);
        state
    }

    /// Waits until every lane's task has ended (after the shutdown signal:
    /// each writes its last acknowledgements and stops).
    pub async fn stopped(&self) {
        let tasks = std::mem::take(&mut *lock(&self.shared.tasks));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// Queues a ping resync in memory, replacing an unsent older one of the
    /// same room.
    pub fn resync(&self, event: &ForwardEvent, forwarder: &Forwarder) {
        let state = self.lane(&lane_of(event, forwarder));
        let replaced = lock(&state.inner)
            .resyncs
            .insert(
                event.room.clone(),
                Resync {
                    event: event.clone(),
                    forwarder: forwarder.clone(),
                },
            )
            .is_some();
        if replaced {
            state.metrics.coalesced.increment(1);
        }
        state.notify.notify_one();
    }

    /// Reserves room for one durable event in the record's lane. `false`
    /// when the lane's backlog is full: the caller refuses the event. A
    /// termination drops the room's unsent resync, which it supersedes.
    pub fn admit(&self, record: &OutboxRecord) -> bool {
        let state = self.lane(&record.lane());
        let mut inner = lock(&state.inner);
        if matches!(record.event.kind, ForwardKind::Terminated) {
            inner.resyncs.remove(&record.event.room);
        }
        if inner.backlog >= self.shared.config.max_backlog {
            state.metrics.backlog_full.increment(1);
            return false;
        }
        inner.backlog += 1;
        state.metrics.backlog.set(inner.backlog as f64);
        true
    }

    /// Tells the lanes that their admitted events are in the store.
    pub fn written<'a>(&self, lanes: impl IntoIterator<Item = &'a Lane>) {
        for lane in lanes {
            let state = self.lane(lane);
            lock(&state.inner).written = true;
            state.notify.notify_one();
        }
    }
}

fn lane_of(event: &ForwardEvent, forwarder: &Forwarder) -> Lane {
    Lane {
        scheduler: event.scheduler.clone(),
        forwarder: forwarder.name.clone(),
    }
}

/// One event in flight.
enum Item {
    Durable(u64, OutboxRecord),
    Resync(Resync),
}

impl Item {
    fn parts(&self) -> (&ForwardEvent, &Forwarder) {
        match self {
            Item::Durable(_, record) => (&record.event, &record.forwarder),
            Item::Resync(resync) => (&resync.event, &resync.forwarder),
        }
    }
}

async fn deliver(shared: Arc<Shared>, item: Item) -> (Item, Outcome) {
    let (event, forwarder) = item.parts();
    let call = message::build(event, forwarder);
    let method = call.method();
    let started = std::time::Instant::now();
    let outcome = shared.clients.send(forwarder, call).await;
    let code = match &outcome {
        Outcome::Delivered { code } => code.to_string(),
        Outcome::Retry(_) | Outcome::Reject(_) => "error".to_string(),
    };
    // Upstream's name for the forwarder call latency.
    metrics::histogram!("maestro_worker_grpc_request_latency",
        "service" => "GRPCForwarder", "method" => method, "code" => code)
    .record(started.elapsed().as_secs_f64());
    (item, outcome)
}

/// A lane's task: reads durable events in pages, takes resyncs, keeps up to
/// `window` calls in flight (one per room), pauses with backoff on failure,
/// and acknowledges what was delivered.
async fn run_lane(shared: Arc<Shared>, state: Arc<LaneState>) {
    let config = shared.config.clone();
    let lane = state.lane.clone();
    let metrics = &state.metrics;
    let mut shutdown = shared.shutdown.clone();
    let mut buffer: VecDeque<(u64, OutboxRecord)> = VecDeque::new();
    let mut cursor = 0u64;
    let mut read_all = false;
    let mut in_flight = FuturesUnordered::new();
    let mut busy_rooms: BTreeSet<String> = BTreeSet::new();
    let backoff = pauses(&config, &lane);
    // The pauses since the last delivery; `None` until a call fails, and
    // again once one succeeds (the backoff starts over).
    let mut delays = None;
    let mut paused_until: Option<Instant> = None;
    let mut acks: Vec<u64> = Vec::new();
    let mut ack_deadline: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        if std::mem::take(&mut lock(&state.inner).written) {
            read_all = false;
        }
        if !read_all && buffer.len() < config.window {
            match shared.outbox.page(&lane, cursor, PAGE) {
                Ok(page) => {
                    read_all = page.len() < PAGE;
                    for (seq, record) in page {
                        cursor = seq;
                        buffer.push_back((seq, record));
                    }
                }
                Err(e) => {
                    tracing::error!(lane = %lane, error = %e, "cannot read the forwarding outbox");
                    paused_until = Some(Instant::now() + config.max_backoff);
                }
            }
        }
        if paused_until.is_some_and(|t| Instant::now() >= t) {
            paused_until = None;
        }
        while paused_until.is_none() && in_flight.len() < config.window.max(1) {
            // Durable events first, oldest first, skipping rooms with a
            // call in flight.
            let durable = buffer
                .iter()
                .take(config.window.max(1) * 2)
                .position(|(_, r)| !busy_rooms.contains(&r.event.room));
            let item = match durable.and_then(|i| buffer.remove(i)) {
                Some((seq, record)) => Item::Durable(seq, record),
                None => {
                    let mut inner = lock(&state.inner);
                    let room = inner
                        .resyncs
                        .keys()
                        .find(|room| !busy_rooms.contains(*room))
                        .cloned();
                    match room.and_then(|r| inner.resyncs.remove(&r)) {
                        Some(resync) => Item::Resync(resync),
                        None => break,
                    }
                }
            };
            busy_rooms.insert(item.parts().0.room.clone());
            in_flight.push(deliver(Arc::clone(&shared), item));
        }
        let pause = async {
            match paused_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let ack_due = async {
            match ack_deadline {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            changed = shutdown.changed() => {
                // A dropped sender means nobody can stop us any more: stop.
                if changed.is_err() {
                    break;
                }
            }
            Some((item, outcome)) = in_flight.next(), if !in_flight.is_empty() => {
                busy_rooms.remove(&item.parts().0.room);
                let kind = message::kind_index(&item.parts().0.kind);
                match outcome {
                    Outcome::Delivered { .. } => {
                        delays = None;
                        metrics.delivered[kind].increment(1);
                        if let Item::Durable(seq, _) = item {
                            acks.push(seq);
                        }
                    }
                    Outcome::Retry(reason) => {
                        metrics.retried[kind].increment(1);
                        if paused_until.is_none() {
                            // No attempt limit: the pauses do not run out.
                            let pause = delays
                                .get_or_insert_with(|| backoff.build())
                                .next()
                                .unwrap_or(config.max_backoff);
                            tracing::warn!(lane = %lane, %reason, pause_ms = pause.as_millis() as u64, "forwarder call failed; pausing the lane");
                            paused_until = Some(Instant::now() + pause);
                        }
                        match item {
                            Item::Durable(seq, record) => {
                                if too_old(&record, config.max_event_age, shared.clock.now()) {
                                    tracing::error!(lane = %lane, room = %record.event.room, "giving up an event older than the maximum age");
                                    metrics.expired.increment(1);
                                    acks.push(seq);
                                } else {
                                    let at = buffer.partition_point(|(s, _)| *s < seq);
                                    buffer.insert(at, (seq, record));
                                }
                            }
                            Item::Resync(resync) => {
                                // Unless a newer resync of the room came meanwhile.
                                lock(&state.inner).resyncs.entry(resync.event.room.clone()).or_insert(resync);
                            }
                        }
                    }
                    Outcome::Reject(reason) => {
                        tracing::error!(lane = %lane, %reason, "the forwarder refused an event; giving it up");
                        metrics.rejected.increment(1);
                        if let Item::Durable(seq, _) = item {
                            acks.push(seq);
                        }
                    }
                }
                if !acks.is_empty() && ack_deadline.is_none() {
                    ack_deadline = Some(Instant::now() + ACK_DELAY);
                }
                if acks.len() >= ACK_BATCH {
                    write_acks(&shared, &state, &mut acks);
                    ack_deadline = None;
                }
            }
            () = state.notify.notified() => {}
            () = pause => {}
            () = ack_due => {
                write_acks(&shared, &state, &mut acks);
                ack_deadline = None;
            }
        }
    }
    write_acks(&shared, &state, &mut acks);
}

/// Waits until an acknowledgement could not be written, and returns the
/// store's error (never, if none fails). The driver stops on it, as on any
/// write the store refused: a store that failed a write is not run on (the
/// delivered events stay in the outbox and are sent again after the
/// restart, at least once).
pub async fn store_failure(failed: &mut watch::Receiver<Option<StoreError>>) -> StoreError {
    loop {
        if let Some(e) = failed.borrow_and_update().clone() {
            return e;
        }
        if failed.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

fn write_acks(shared: &Shared, state: &LaneState, acks: &mut Vec<u64>) {
    if acks.is_empty() {
        return;
    }
    match shared.outbox.ack(&state.lane, acks) {
        Ok(()) => {
            let mut inner = lock(&state.inner);
            inner.backlog = inner.backlog.saturating_sub(acks.len() as u64);
            state.metrics.backlog.set(inner.backlog as f64);
            acks.clear();
        }
        // The events stay in the store and are sent again after the
        // restart; the worker stops (`store_failure`).
        Err(e) => {
            tracing::error!(lane = %state.lane, error = %e, "cannot acknowledge delivered events");
            shared.failed.send_if_modified(|failed| {
                let first = failed.is_none();
                if first {
                    *failed = Some(e);
                }
                first
            });
        }
    }
}

fn too_old(record: &OutboxRecord, max_age: Duration, now: Time) -> bool {
    let age_ms = now.0.saturating_sub(record.enqueued_at.0);
    Duration::from_millis(age_ms) > max_age
}

/// A lane's pauses after failed calls: `initial_backoff` doubling up to
/// `max_backoff`, without end, each jittered to between half and all of it
/// so lanes paused by one outage do not retry in lockstep. backon's jitter
/// adds up to the delay itself (`d` to `2d`), so the delays it starts from
/// are halved.
fn pauses(config: &ForwardingConfig, lane: &Lane) -> ExponentialBuilder {
    let builder = ExponentialBuilder::new()
        .with_min_delay(config.initial_backoff / 2)
        .with_max_delay(config.max_backoff / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times();
    match config.jitter_seed {
        // Lanes paused together still draw different pauses.
        Some(seed) => {
            builder.with_jitter_seed(seed ^ crate::hash::names(&lane.scheduler, &lane.forwarder))
        }
        None => builder,
    }
}

/// An outbox record for one forwarder, stamped now.
pub fn record(event: &ForwardEvent, forwarder: &Forwarder, now: Time) -> OutboxRecord {
    OutboxRecord {
        event: event.clone(),
        forwarder: forwarder.clone(),
        enqueued_at: now,
    }
}

#[cfg(test)]
mod tests;
