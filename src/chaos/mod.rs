//! `maestro chaos`: deterministic simulation testing of the whole system.
//!
//! One seed is one run of the real system in turmoil's simulated network
//! and time: maestro's driver, engine and store, the real HTTP routers of
//! the Management and Rooms APIs and the forwarding lanes on one host;
//! around it game servers pinging and reporting events, a matchmaker, an
//! operator issuing management commands, and a forwarder recording what it
//! gets, each on a host of its own. The simulated cluster (the same model
//! the planner uses) and the disk live outside maestro's host and survive
//! its crashes, as pods and a disk survive a worker's.
//!
//! The seed draws the faults ([`faults::Plan`]): maestro crashing (what was
//! not flushed is lost) or stopped, and restarted on the surviving disk;
//! partitions and latency between maestro and each peer; writes and
//! flushes failing; pod watches disconnecting; the wall clock jumping;
//! pods crashing, nodes lost and runtime API errors. After the fault phase
//! everything calms down and maestro must converge within `settle`.
//!
//! Checked while it runs ([`world`]): no busy room is deleted to scale
//! down or roll out; no room is allocated to a second match; the engine's
//! invariants hold (at most one operation in progress, bounded queues,
//! consistent indexes); nothing maestro acknowledged (schedulers,
//! operations) is missing after a restart; what maestro stored, it can
//! restore. Checked at the end: every scheduler converged (operations
//! final, rollouts done, the desired rooms ready, no stray pod), and every
//! acknowledged event reached the forwarder, in order per room.
//!
//! Everything runs on one thread in simulated time, every random choice
//! comes from the seed, so a seed replays bit for bit: the trace hash
//! (runtime calls, acknowledgements, faults, deliveries, with their times)
//! is the same on every run.

mod faults;
mod hosts;
mod net;
mod world;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use maestro_engine::{EngineConfig, Millis, Time};
use maestro_sim::cluster::{ClusterConfig, Failures, NodeAutoscale, NodePool, Pings};
use maestro_sim::dist::Distribution;
use maestro_store::{DbClock, SimulatedDatabase, SimulatedDisk};

pub use faults::{Fault, Plan};
use hosts::{Ctx, Storage};
pub use world::Stats;
use world::World;

/// One seed's run.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    /// The fault phase.
    pub duration: Duration,
    /// How long maestro has to converge once the faults stop.
    pub settle: Duration,
    /// Keep the trace's lines (for `--verbose`).
    pub verbose: bool,
}

/// What a seed's run found.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    pub plan: Plan,
    pub trace_hash: u64,
    pub trace_lines: u64,
    pub violations: Vec<String>,
    pub stats: Stats,
    /// The trace's lines, when verbose.
    pub log: Vec<String>,
    /// Simulated time until convergence (or the deadline).
    pub simulated: Duration,
}

/// 2026-01-01T00:00:00Z: the simulation's wall clock starts there.
const EPOCH_MS: u64 = 1_767_225_600_000;
/// turmoil's step: every host runs this much simulated time per step.
const TICK: Duration = Duration::from_millis(10);
/// A process that exited (a failed store, a graceful stop) is restarted
/// after this long, as a supervisor would.
const RESTART_AFTER_EXIT: Duration = Duration::from_secs(1);
/// Flaky links: the chance, per link and step, that a healthy link fails
/// and that a failed one is repaired.
const FLAKY_FAIL_RATE: f64 = 0.000_2;
const FLAKY_REPAIR_RATE: f64 = 0.05;
/// A process whose store refused a write or a flush must have stopped
/// within this long: it may not run on a state it could not persist.
const STOP_AFTER_STORE_FAILURE: Duration = Duration::from_secs(2);

/// The engine's settings in the harness: upstream's defaults scaled down so
/// that a few simulated minutes see rooms expire, allocations lapse and
/// health checks run.
fn engine_config() -> EngineConfig {
    EngineConfig {
        room_initialization_timeout: Millis::from_secs(60),
        room_ping_timeout: Millis::from_secs(30),
        room_deletion_timeout: Millis::from_secs(60),
        room_allocation_ttl: Millis::from_secs(30),
        room_validation_timeout: Millis::from_secs(60),
        health_controller_interval: Millis::from_secs(10),
        disruption_interval: Millis::from_secs(20),
        ..EngineConfig::default()
    }
}

fn cluster_config(seed: u64, plan: &Plan) -> ClusterConfig {
    ClusterConfig {
        seed: hosts::mix(seed, 4),
        start_latency: Distribution::Uniform(Millis(500), Millis(3_000)),
        boot_delay: Millis(500),
        ping_interval: Millis::from_secs(5),
        pings: Pings::Every,
        delete_latency: Distribution::Uniform(Millis(200), Millis(2_000)),
        match_duration: Distribution::Uniform(Millis::from_secs(5), Millis::from_secs(40)),
        nodes: Some(NodePool {
            // Four rooms of 250m per node.
            cpu_millis: 1_000,
            memory_bytes: 8 << 30,
            min_nodes: 3,
            max_nodes: 8,
            autoscale: Some(NodeAutoscale {
                add_after: Millis::from_secs(15),
                remove_after_empty: Millis::from_secs(120),
            }),
        }),
        failures: Failures {
            pod_crash_per_hour: plan.pod_crash_per_hour,
            node_loss_per_hour: plan.node_loss_per_hour,
            api_error_rate: plan.api_error_rate,
        },
        ..ClusterConfig::default()
    }
}

/// The faults in force now, besides instantaneous ones.
#[derive(Default)]
struct Windows {
    /// Cut links: (maestro's host, peer) until when.
    partitions: BTreeMap<(&'static str, &'static str), Duration>,
    disk_writes: Option<Duration>,
    disk_flushes: Option<Duration>,
    /// A worker cut off the database until when.
    database: Option<(&'static str, Duration)>,
    watches: Option<Duration>,
}

/// Ends a maestro host's software at once (every task dropped, as a
/// killed process's). The host's links to its peers are cut while it
/// happens: tokio drops a runtime's tasks in an order that depends on
/// their ids, which a process numbers globally, so the connections'
/// closing messages would reach the peers in an order that differs between
/// two runs in one process. The peers see their connections go silent
/// instead (a machine lost rather than a process killed) and new ones
/// refused. On a local disk, what the process did not flush is lost with
/// it (a worker's uncommitted overlay on the database goes with its host).
fn crash(
    sim: &mut turmoil::Sim<'_>,
    host: &'static str,
    windows: &Windows,
    storage: &Storage,
    state: &mut world::State,
) {
    for peer in faults::PEERS {
        sim.partition(host, peer);
    }
    sim.crash(host);
    for peer in faults::PEERS {
        if !windows.partitions.contains_key(&(host, peer)) {
            sim.repair(host, peer);
        }
    }
    state.host_down(host);
    if let Storage::Disk(disk) = storage {
        disk.crash();
    }
}

pub fn run(options: &Options) -> Outcome {
    let seed = options.seed;
    let plan = Plan::draw(seed, options.duration);
    let engine = engine_config();
    let world = World::new(
        cluster_config(seed, &plan),
        Time(EPOCH_MS),
        Duration::from_millis(5),
        engine.room_allocation_ttl,
        options.verbose,
    );
    let (storage, workers): (Storage, &[&'static str]) = if plan.standby {
        // The database's clock is the world's.
        let clock: DbClock = Arc::new(|| {
            let elapsed = turmoil::sim_elapsed().unwrap_or_default();
            Time(EPOCH_MS + u64::try_from(elapsed.as_millis()).unwrap_or(0))
        });
        (
            Storage::Database(SimulatedDatabase::new(clock)),
            &hosts::PAIR,
        )
    } else {
        (Storage::Disk(SimulatedDisk::new()), &hosts::SINGLE)
    };
    let ctx = Arc::new(Ctx {
        world: Arc::clone(&world),
        storage,
        engine,
        seed,
    });
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(seed)
        .tick_duration(TICK)
        // The loop below ends the run.
        .simulation_duration(Duration::from_secs(10 * 365 * 86_400))
        .epoch(UNIX_EPOCH + Duration::from_millis(EPOCH_MS))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(plan.max_latency);
    if plan.flaky_links {
        // Per link and step (10 ms): a failure about every 50 s, lasting
        // 200 ms on average.
        builder
            .fail_rate(FLAKY_FAIL_RATE)
            .repair_rate(FLAKY_REPAIR_RATE);
    }
    let mut sim = builder.build();
    for host in workers {
        let c = Arc::clone(&ctx);
        let host: &'static str = host;
        sim.host(host, move || hosts::maestro(Arc::clone(&c), host));
    }
    let c = Arc::clone(&ctx);
    sim.host("forwarder", move || hosts::forwarder(Arc::clone(&c)));
    let c = Arc::clone(&ctx);
    sim.host("rooms", move || hosts::game_servers(Arc::clone(&c)));
    let c = Arc::clone(&ctx);
    sim.host("matchmaker", move || hosts::matchmaker(Arc::clone(&c)));
    let c = Arc::clone(&ctx);
    sim.host("operator", move || hosts::operator(Arc::clone(&c)));

    let calm_at = options.duration;
    let deadline = options.duration + options.settle;
    let mut due = plan.faults.iter().peekable();
    let mut windows = Windows::default();
    let mut restart_at: BTreeMap<&'static str, Duration> = BTreeMap::new();
    let mut calm = false;
    let mut next_probe = calm_at;
    // The disk's refusals seen so far, and when the running process was
    // first refused.
    let mut refusals = 0;
    let mut refused_at: Option<Duration> = None;
    loop {
        let now = sim.elapsed();
        let mut state = world.state();
        state.advance_to(now);
        // Faults aim at the worker that serves (the leader), or the first.
        let target = state.serving_host().unwrap_or(workers[0]);
        while let Some((_, fault)) = due.next_if(|(t, _)| *t <= now) {
            state.trace(format!("fault {fault:?} on {target}"));
            match fault {
                Fault::Crash { restart_after } => {
                    if !restart_at.contains_key(target) {
                        refused_at = None;
                        crash(&mut sim, target, &windows, &ctx.storage, &mut state);
                        state.stats.crashes += 1;
                        restart_at.insert(target, now + *restart_after);
                    }
                }
                Fault::Stop => state.stop_requested = true,
                Fault::Partition { peer, until } => {
                    sim.partition(target, *peer);
                    let end = windows.partitions.entry((target, peer)).or_default();
                    *end = (*end).max(*until);
                }
                Fault::DiskWrites { until } | Fault::DiskFlushes { until }
                    if matches!(ctx.storage, Storage::Database(_)) =>
                {
                    // On a database: the worker is cut off it.
                    windows.database = Some((target, *until));
                }
                Fault::DiskWrites { until } => windows.disk_writes = Some(*until),
                Fault::DiskFlushes { until } => windows.disk_flushes = Some(*until),
                Fault::Watches { until } => {
                    windows.watches = Some(*until);
                    state.set_watches_down(true);
                }
                Fault::ClockJump { by_ms } => state.wall_offset_ms += by_ms,
            }
        }
        if !calm && now >= calm_at {
            calm = true;
            state.trace("faults stop");
            for (host, peer) in std::mem::take(&mut windows.partitions).into_keys() {
                sim.repair(host, peer);
            }
            windows = Windows::default();
            // Failed links heal at the repair rate; none fails again.
            sim.set_fail_rate(0.0);
            state.set_watches_down(false);
            state.calm_cluster();
            state.quiet = true;
        }
        windows.partitions.retain(|(host, peer), until| {
            let on = *until > now;
            if !on {
                sim.repair(*host, *peer);
            }
            on
        });
        if windows.watches.is_some_and(|t| t <= now) {
            windows.watches = None;
            state.set_watches_down(false);
        }
        match &ctx.storage {
            Storage::Disk(disk) => {
                disk.fail_writes(windows.disk_writes.is_some_and(|t| t > now));
                disk.fail_flushes(windows.disk_flushes.is_some_and(|t| t > now));
                // A process whose store refused a write must stop.
                let refused = disk.refusals();
                if refused > refusals && restart_at.is_empty() {
                    refused_at.get_or_insert(now);
                }
                refusals = refused;
                if let Some(at) = refused_at
                    && now >= at + STOP_AFTER_STORE_FAILURE
                {
                    refused_at = None;
                    let incarnation = state.incarnation;
                    state.violation(format!(
                        "maestro {incarnation} runs on {STOP_AFTER_STORE_FAILURE:?} after its store refused a write"
                    ));
                }
            }
            Storage::Database(db) => {
                for host in workers {
                    let cut = windows
                        .database
                        .is_some_and(|(h, until)| h == *host && until > now);
                    db.set_reachable(host, !cut);
                }
            }
        }
        // A process that exited is ended and restarted (what it did not
        // flush is lost); a crashed one when its restart is due.
        for host in workers {
            let exited = state.exited.remove(host);
            if exited || (!restart_at.contains_key(host) && !sim.is_host_running(*host)) {
                refused_at = None;
                crash(&mut sim, host, &windows, &ctx.storage, &mut state);
                state.stats.restarts += 1;
                restart_at.insert(host, now + RESTART_AFTER_EXIT);
            }
        }
        // A deposed leader stops once it fails to renew its lease, within
        // two thirds of it (`leader::keep`), or at its first fenced flush.
        state.check_deposed(Millis::from_secs(hosts::LEASE.as_secs()));
        restart_at.retain(|host, at| {
            let due = *at <= now;
            if due {
                sim.bounce(*host);
            }
            !due
        });
        if calm && now >= next_probe {
            next_probe = now + Duration::from_secs(1);
            let converged = matches!(&state.convergence, Some((t, Ok(()))) if t.0 >= EPOCH_MS + calm_at.as_millis() as u64);
            if converged && state.missing_events() == 0 {
                break;
            }
            state.probe_requested = true;
        }
        if now >= deadline {
            let why = match &state.convergence {
                Some((_, Err(why))) => why.clone(),
                Some((_, Ok(()))) => "events are still undelivered".to_string(),
                None => "maestro never answered".to_string(),
            };
            state.violation(format!(
                "no convergence within {:?} of the faults' end: {why}",
                options.settle
            ));
            break;
        }
        drop(state);
        if let Err(e) = sim.step() {
            world
                .state()
                .violation(format!("the simulation failed: {e}"));
            break;
        }
    }
    let simulated = sim.elapsed();
    let mut state = world.state();
    state.advance_to(simulated);
    state.check_events();
    let (trace_hash, trace_lines) = state.trace_hash();
    Outcome {
        seed,
        plan,
        trace_hash,
        trace_lines,
        violations: state.violations.clone(),
        stats: state.stats.clone(),
        log: state.log.take().unwrap_or_default(),
        simulated,
    }
}

/// `maestro chaos`.
#[derive(clap::Args, Debug)]
pub struct ChaosArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,
    /// The first seed [default: drawn at random, printed].
    #[arg(long)]
    pub start_seed: Option<u64>,
    /// Each seed's fault phase, in simulated time; then the faults stop
    /// and maestro must converge.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How long maestro has to converge once the faults stop.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub settle: Duration,
    /// Print each seed's faults and its full trace, and maestro's own logs
    /// on stderr (`RUST_LOG`, default `info`) stamped with simulated time.
    #[arg(long)]
    pub verbose: bool,
    /// Run every seed twice and compare the trace hashes.
    #[arg(long)]
    pub check_determinism: bool,
}

/// Stamps log lines with the simulated time of the host that writes them.
struct SimulatedTime;

impl tracing_subscriber::fmt::time::FormatTime for SimulatedTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match turmoil::sim_elapsed() {
            Some(t) => write!(w, "{:>9.3}s", t.as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}

pub fn command(args: &ChaosArgs) -> ExitCode {
    if args.verbose {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_timer(SimulatedTime)
            .with_writer(std::io::stderr)
            .init();
    }
    let start = args.start_seed.unwrap_or_else(random_seed);
    println!(
        "maestro chaos: {} seeds from {start}, {} of faults then up to {} to converge",
        args.seeds,
        humantime::format_duration(args.duration),
        humantime::format_duration(args.settle)
    );
    let mut failed = Vec::new();
    for seed in start..start.saturating_add(args.seeds) {
        let options = Options {
            seed,
            duration: args.duration,
            settle: args.settle,
            verbose: args.verbose,
        };
        let wall = std::time::Instant::now();
        let outcome = run(&options);
        let wall = wall.elapsed();
        let mut violations = outcome.violations.clone();
        if args.check_determinism {
            let again = run(&options);
            if again.trace_hash != outcome.trace_hash {
                violations.push(format!(
                    "not deterministic: trace {:016x} ({} lines), then {:016x} ({} lines)",
                    outcome.trace_hash, outcome.trace_lines, again.trace_hash, again.trace_lines
                ));
                // With --verbose, where the two runs part.
                let parted = outcome.log.iter().zip(&again.log).position(|(a, b)| a != b);
                if let Some(i) = parted {
                    let context = |log: &[String]| {
                        log[i.saturating_sub(6)..(i + 3).min(log.len())].join("\n    ")
                    };
                    violations.push(format!(
                        "the runs part at line {i}; the first:\n    {}\n  the second:\n    {}",
                        context(&outcome.log),
                        context(&again.log)
                    ));
                }
            }
        }
        if args.verbose {
            print!("seed {seed} plan: {}", outcome.plan);
            for line in &outcome.log {
                println!("  {line}");
            }
        }
        let s = &outcome.stats;
        println!(
            "seed {seed} trace {:016x} {} | {:.0}s simulated in {:.1}s | restarts {} crashes {} store failures {} | ops {} allocations {} events {}/{} | rooms +{} -{}",
            outcome.trace_hash,
            if violations.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            outcome.simulated.as_secs_f64(),
            wall.as_secs_f64(),
            s.restarts,
            s.crashes,
            s.store_failures,
            s.operations_acked,
            s.allocations,
            s.events_acked,
            s.events_received,
            s.rooms_created,
            s.rooms_deleted,
        );
        if !violations.is_empty() {
            for v in &violations {
                println!("  violation: {v}");
            }
            println!(
                "  replay: maestro chaos --seeds 1 --start-seed {seed} --duration {} --settle {} --verbose",
                humantime::format_duration(args.duration),
                humantime::format_duration(args.settle)
            );
            failed.push(seed);
        }
    }
    if failed.is_empty() {
        println!("all {} seeds passed", args.seeds);
        ExitCode::SUCCESS
    } else {
        println!(
            "{} of {} seeds failed: {failed:?}",
            failed.len(),
            args.seeds
        );
        ExitCode::FAILURE
    }
}

/// A seed for a run that was given none: the OS's randomness through
/// std's hasher keys.
fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::process::id()) % 1_000_000_000
}
