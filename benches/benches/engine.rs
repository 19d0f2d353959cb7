//! Engine hot paths at 1k, 10k and 100k ready rooms in one scheduler, and
//! at 10k rooms spread over 1,000 schedulers.
//!
//! - `ping/steady/N`: a ready room pings ready again (no status change).
//! - `ping/flip/N`: a ping that changes the status (ready → occupied, later
//!   occupied → ready), which marks the scheduler dirty and reconciles; with
//!   fixed replicas the reconcile decides nothing.
//! - `reconcile/full/N`: the periodic health check, as the shell runs it:
//!   `Engine::handle_timeout` at the time the health check is due, which
//!   enqueues the `health_controller` operation and runs it at once: the
//!   audit that recomputes every fleet index from scratch, the decision, and
//!   the operation's bookkeeping.
//!
//! Each fleet is built once per size with the simulated cluster
//! ([`maestro_sim::Harness`]), then the engine is taken out of the harness and
//! driven directly, as the shell would: every call is followed by draining
//! `poll_effect` (an accepted ping emits one `Effect::SaveRoom`, a copy of the
//! room, which is drained and dropped here; an idle health check
//! emits the writes of its operation record). Simulated time advances 1 ms
//! per ping and one health-check interval per health check; rooms are given
//! a ping timeout longer than any run, so that the time jumps expire none. Pings visit the rooms
//! in a fixed shuffled order (as real pings arrive), not in id order, so that
//! a lookup does not find its path already in cache.
//!
//! Run: `cargo bench -p maestro-benches --bench engine`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use maestro_engine::room::{PingStatus, RoomStatus};
use maestro_engine::scheduler::{PortRange, Scheduler, fixtures};
use maestro_engine::{
    Command, CommandReply, Definition, Effect, Engine, EngineConfig, Millis, OperationStatus, Ping,
    Time,
};
use maestro_sim::{ClusterConfig, Harness};

const SCHEDULER: &str = "bench";
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
/// Longer than any run's simulated time (a health check advances it by a
/// minute): no room expires while the benchmark jumps from one health check
/// to the next. The periodic storage clean-up is pushed as far.
const NEVER: Millis = Millis::from_secs(100 * 365 * 24 * 3600);

// ----- heap accounting ------------------------------------------------------

/// The system allocator, counting live heap bytes while `TRACKING` is on.
/// Off (one relaxed load per allocation) while benchmarks run.
struct CountingAlloc;

static TRACKING: AtomicBool = AtomicBool::new(false);
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

fn count(delta: isize) {
    if TRACKING.load(Ordering::Relaxed) {
        LIVE_BYTES.fetch_add(delta, Ordering::Relaxed);
    }
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to `System` unchanged; only counters move.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(signed(layout.size()));
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(signed(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        count(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(signed(new_size) - signed(layout.size()));
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

// ----- fleet setup ----------------------------------------------------------

/// The `scheduler()` helper of sim/tests/scenarios.rs, with a wide port range.
fn scheduler(name: &str, replicas: i64) -> Scheduler {
    // The engine's valid fixture, with a wide scheduler-wide port range.
    let mut s = fixtures::scheduler(name);
    s.rooms_replicas = replicas;
    s.spec.containers[0].ports[0].host_port_range = None;
    s.port_range = Some(PortRange {
        start: 20000,
        end: 60000,
    });
    s
}

/// An engine holding one scheduler of `n` ready rooms, and a ping per room.
struct Fleet {
    engine: Engine,
    /// One ping per room, in a shuffled order.
    pings: Vec<Ping>,
    now: Time,
    /// The engine's `health_controller_interval`.
    health_check_every: Millis,
}

impl Fleet {
    fn tick(&mut self) -> Time {
        self.now = self.now + Millis(1);
        self.now
    }

    /// Runs time forward to the next health check and hands the engine
    /// that timeout, as the shell does when `poll_timeout` comes due.
    fn health_check(&mut self) {
        self.now = self.now + self.health_check_every;
        self.engine.handle_timeout(self.now);
    }

    fn ready(&self) -> u64 {
        self.engine
            .fleet(SCHEDULER)
            .expect("the scheduler exists")
            .counts()
            .get(RoomStatus::Ready)
    }
}

/// Drains the engine's effects, as the shell must after every input.
fn drain(engine: &mut Engine) -> u64 {
    let mut drained = 0;
    while let Some(effect) = engine.poll_effect() {
        black_box(effect);
        drained += 1;
    }
    drained
}

/// Drains the effects of one ping, asserting they are at most one write of
/// that room's record: no operation, no runtime call.
fn only_saves_of(engine: &mut Engine, room: &str) {
    let mut saves = 0;
    while let Some(effect) = engine.poll_effect() {
        match effect {
            Effect::SaveRoom(r) if r.id == room => saves += 1,
            other => panic!("a ping of {room} emitted {other:?}"),
        }
    }
    assert!(saves <= 1, "{saves} writes of {room}");
}

fn take_engine(h: Harness) -> (Engine, Time) {
    let now = h.now();
    let Harness { engine, .. } = h;
    (engine, now)
}

/// A deterministic shuffle (xorshift64* + Fisher–Yates).
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let r = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let j = usize::try_from(r % (i as u64 + 1)).expect("fits");
        items.swap(i, j);
    }
}

fn build(n: usize) -> Fleet {
    build_schedulers(&[SCHEDULER.to_string()], n, 1)
}

/// `names.len()` schedulers of `each` ready rooms; the health check audits
/// the fleet's indexes on every `audit_every`-th run.
fn build_schedulers(names: &[String], each: usize, audit_every: u32) -> Fleet {
    let n = names.len() * each;
    let started = Instant::now();
    LIVE_BYTES.store(0, Ordering::Relaxed);
    TRACKING.store(true, Ordering::Relaxed);

    let config = EngineConfig {
        add_rooms_limit: 10_000,
        add_rooms_batch_size: 1_000,
        max_rooms_per_scheduler: 200_000,
        room_ping_timeout: NEVER,
        storage_clean_up_interval: NEVER,
        fleet_audit_every: audit_every,
        ..EngineConfig::default()
    };
    let health_check_every = config.health_controller_interval;
    let sim = ClusterConfig {
        ping_interval: Millis::from_secs(3600),
        ..ClusterConfig::default()
    };
    let mut h = Harness::new(config, sim);
    let replicas = i64::try_from(each).expect("fits");
    for name in names {
        match h.command(Command::CreateScheduler(scheduler(name, replicas))) {
            Ok(CommandReply::Created { .. }) => {}
            other => panic!("creating the scheduler {name}: {other:?}"),
        }
    }
    let target = n as u64;
    let ready = |h: &Harness| -> u64 {
        names
            .iter()
            .map(|name| {
                h.engine
                    .fleet(name)
                    .map_or(0, |f| f.counts().get(RoomStatus::Ready))
            })
            .sum()
    };
    // Rooms ping once at boot and then hourly, so the fleet must be complete
    // well within the 240 s ping timeout.
    for _ in 0..120 {
        if ready(&h) == target {
            break;
        }
        h.run_for(Millis::from_secs(1));
    }
    assert_eq!(ready(&h), target, "the fleet did not reach {n} ready rooms");
    // Let the last operations finish so that the reconcile is not skipped.
    let idle = |h: &Harness| {
        names.iter().all(|name| {
            h.engine.in_progress_operation(name).is_none()
                && h.engine.pending_operations(name).is_empty()
        })
    };
    for _ in 0..1_000 {
        if idle(&h) {
            break;
        }
        h.run_for(Millis(10));
    }
    assert!(idle(&h), "operations left to run");
    h.engine.check_invariants().expect("a consistent engine");
    let sim_secs = h.now().as_millis() as f64 / 1000.0 - 1000.0;

    let (mut engine, now) = take_engine(h);
    drain(&mut engine);
    TRACKING.store(false, Ordering::Relaxed);
    let engine_bytes = LIVE_BYTES.load(Ordering::Relaxed);

    let mut pings: Vec<Ping> = Vec::with_capacity(n);
    for name in names {
        let fleet = engine.fleet(name).expect("the scheduler exists");
        assert_eq!(fleet.len(), each);
        pings.extend(fleet.rooms().map(|r| Ping {
            scheduler: name.clone(),
            room: r.id.clone(),
            status: PingStatus::Ready,
            running_matches: 0,
            metadata_json: String::new(),
        }));
    }
    shuffle(&mut pings, 0x9E37_79B9_7F4A_7C15 ^ n as u64);

    eprintln!(
        "setup {n} rooms in {} schedulers: {:.2} s wall, {sim_secs:.1} s simulated; engine heap ~{:.1} MiB \
         ({} B per room, requested bytes, allocator overhead excluded)",
        names.len(),
        started.elapsed().as_secs_f64(),
        engine_bytes as f64 / (1024.0 * 1024.0),
        engine_bytes / signed(n),
    );
    Fleet {
        engine,
        pings,
        now,
        health_check_every,
    }
}

/// Drains the effects of one health check, asserting they are the writes
/// of its operation record (and the deletion of the oldest final
/// operations beyond the cap, and a disruption budget brought up to date):
/// no room created or deleted, no other operation.
/// Returns the operation as last written.
fn only_the_health_check(engine: &mut Engine) -> maestro_engine::Operation {
    let mut last = None;
    while let Some(effect) = engine.poll_effect() {
        match effect {
            Effect::PersistOperation(op)
                if matches!(op.definition, Definition::HealthController { .. }) =>
            {
                last = Some(*op);
            }
            Effect::DeleteOperations { .. } => {}
            // Run with a filter that skips `ping/flip`, the priming leaves
            // half the fleet occupied without the flips' reconciles: the
            // first health check then sets the budget for it.
            Effect::SetDisruptionBudget { .. } => {}
            other => panic!("a health check emitted {other:?}"),
        }
    }
    last.expect("the health check ran")
}

// ----- benchmarks -----------------------------------------------------------

/// Ping i of the flip sequence: pair p occupies room p and frees room
/// p - N/2 (occupied N/2 pairs earlier), so every call changes a status and
/// half of the fleet is occupied at any time. `prime` occupies rooms
/// N/2..N first so the sequence starts in that steady state.
fn flip_ping(pings: &mut [Ping], i: usize) -> &Ping {
    let n = pings.len();
    let pair = i / 2;
    let (index, status, matches) = if i.is_multiple_of(2) {
        (pair % n, PingStatus::Occupied, 1)
    } else {
        ((pair + n - n / 2) % n, PingStatus::Ready, 0)
    };
    let ping = &mut pings[index];
    ping.status = status;
    ping.running_matches = matches;
    ping
}

/// The next room in the shuffled order pings `ready` again; its effects
/// are drained.
fn steady_ping(
    fleet: &mut Fleet,
    calls: &mut u64,
    drained: &mut u64,
) -> Result<RoomStatus, maestro_engine::PingError> {
    let now = fleet.tick();
    let ping = &fleet.pings[*calls as usize % fleet.pings.len()];
    let status = fleet.engine.handle_ping(now, black_box(ping));
    *drained += drain(&mut fleet.engine);
    *calls += 1;
    status
}

fn bench_size(c: &mut Criterion, n: usize) {
    let mut fleet = build(n);
    let large = n >= 100_000;

    // ping/steady and ping/flip
    {
        let mut group = c.benchmark_group("ping");
        group.throughput(Throughput::Elements(1));
        if large {
            group.sample_size(20);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(2));
        } else {
            group.sample_size(50);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(3));
        }

        // Sanity: a ready ping on a ready room keeps its status; the only
        // effect is the room's record (its last ping time changed).
        let now = fleet.tick();
        let status = fleet.engine.handle_ping(now, &fleet.pings[0]);
        assert_eq!(status, Ok(RoomStatus::Ready));
        only_saves_of(&mut fleet.engine, &fleet.pings[0].room);

        let (mut calls, mut drained) = (0u64, 0u64);
        group.bench_with_input(BenchmarkId::new("steady", n), &n, |b, _| {
            b.iter(|| steady_ping(&mut fleet, &mut calls, &mut drained))
        });
        eprintln!("ping/steady/{n}: {drained} effects drained over {calls} calls");
        assert_eq!(fleet.ready(), n as u64);

        // Prime: occupy the second half of the shuffled order.
        for ping in &mut fleet.pings[n - n / 2..] {
            ping.status = PingStatus::Occupied;
            ping.running_matches = 1;
            let now = fleet.now + Millis(1);
            fleet.now = now;
            let status = fleet.engine.handle_ping(now, ping);
            assert_eq!(status, Ok(RoomStatus::Occupied));
            only_saves_of(&mut fleet.engine, &ping.room);
        }
        assert!(
            fleet.engine.in_progress_operation(SCHEDULER).is_none()
                && fleet.engine.pending_operations(SCHEDULER).is_empty(),
            "a flip started an operation"
        );

        let (mut calls, mut drained) = (0usize, 0u64);
        group.bench_with_input(BenchmarkId::new("flip", n), &n, |b, _| {
            b.iter(|| {
                let now = fleet.tick();
                let ping = flip_ping(&mut fleet.pings, calls);
                let status = fleet.engine.handle_ping(now, black_box(ping));
                drained += drain(&mut fleet.engine);
                calls += 1;
                status
            })
        });
        eprintln!("ping/flip/{n}: {drained} effects drained over {calls} calls");
        group.finish();

        let counts = fleet.engine.fleet(SCHEDULER).expect("exists").counts();
        let (ready, occupied) = (
            counts.get(RoomStatus::Ready),
            counts.get(RoomStatus::Occupied),
        );
        assert_eq!(ready + occupied, n as u64);
        assert!(
            occupied.abs_diff(n as u64 / 2) <= 1,
            "{occupied} occupied rooms"
        );
        assert!(
            fleet.engine.in_progress_operation(SCHEDULER).is_none()
                && fleet.engine.pending_operations(SCHEDULER).is_empty(),
            "a flip started an operation"
        );
    }

    reconcile(c, &mut fleet, n, "full");
}

/// `ping/steady-schedulers/N`: the steady ping with the N rooms spread
/// over `SCHEDULERS` schedulers of N / `SCHEDULERS` rooms each. Compared
/// with `ping/steady/N`, it shows whether a ping's cost grows with the
/// number of schedulers (it must not: per-input work is per scheduler).
fn bench_schedulers(c: &mut Criterion) {
    const SCHEDULERS: usize = 1_000;
    const ROOMS: usize = 10_000;
    let names: Vec<String> = (0..SCHEDULERS).map(|i| format!("bench-{i:04}")).collect();
    let mut fleet = build_schedulers(&names, ROOMS / SCHEDULERS, 1);
    let mut group = c.benchmark_group("ping");
    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let (mut calls, mut drained) = (0u64, 0u64);
    group.bench_with_input(
        BenchmarkId::new(format!("steady-{SCHEDULERS}-schedulers"), ROOMS),
        &ROOMS,
        |b, _| b.iter(|| steady_ping(&mut fleet, &mut calls, &mut drained)),
    );
    group.finish();
    assert_eq!(drained, calls, "one record write per ping");
    eprintln!(
        "ping/steady-{SCHEDULERS}-schedulers/{ROOMS}: {drained} effects drained over {calls} calls"
    );
}

/// `reconcile/{id}/N`: the periodic health check, as the shell runs it.
fn reconcile(c: &mut Criterion, fleet: &mut Fleet, n: usize, id: &str) {
    let large = n >= 100_000;
    let mut group = c.benchmark_group("reconcile");
    group.throughput(Throughput::Elements(1));
    if large {
        group.sample_size(10);
        group.sampling_mode(SamplingMode::Flat);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(5));
    } else {
        group.sample_size(30);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(3));
    }
    // Sanity: the timeout runs the health check to its end, and with
    // the fleet at its size it decides nothing.
    fleet.health_check();
    let op = only_the_health_check(&mut fleet.engine);
    assert_eq!(op.status, OperationStatus::Finished);
    assert_eq!(
        op.definition,
        Definition::HealthController {
            took_action: Some(false)
        }
    );

    let (mut calls, mut drained) = (0u64, 0u64);
    group.bench_with_input(BenchmarkId::new(id, n), &n, |b, _| {
        b.iter(|| {
            fleet.health_check();
            drained += drain(&mut fleet.engine);
            calls += 1;
        })
    });
    // Every health check finished, and none took an action.
    assert!(
        fleet.engine.in_progress_operation(SCHEDULER).is_none()
            && fleet.engine.pending_operations(SCHEDULER).is_empty(),
        "a health check left an operation to run"
    );
    let actions = fleet
        .engine
        .operations(SCHEDULER)
        .filter(|o| {
            matches!(
                o.definition,
                Definition::HealthController {
                    took_action: Some(true)
                }
            )
        })
        .count();
    assert_eq!(actions, 0, "a health check took an action");
    // Half the fleet may be occupied (the flip benchmark's priming).
    let counts = fleet.engine.fleet(SCHEDULER).expect("exists").counts();
    assert_eq!(
        counts.get(RoomStatus::Ready) + counts.get(RoomStatus::Occupied),
        n as u64,
        "a room expired"
    );
    eprintln!("reconcile/{id}/{n}: {drained} effects drained over {calls} calls");
    group.finish();
}

/// `reconcile/decide/N`: the health check with the fleet audit off (the
/// engine's `fleet_audit_every`): what deciding costs, apart from the
/// from-scratch check of the indexes.
fn bench_decide(c: &mut Criterion) {
    for n in SIZES {
        let mut fleet = build_schedulers(&[SCHEDULER.to_string()], n, u32::MAX);
        reconcile(c, &mut fleet, n, "decide");
    }
}

fn engine(c: &mut Criterion) {
    for n in SIZES {
        bench_size(c, n);
    }
    bench_schedulers(c);
    bench_decide(c);
}

criterion_group!(benches, engine);
criterion_main!(benches);
