//! The simulation's hosts: maestro itself (the real driver, engine, store,
//! forwarding and API routers), the game servers, a matchmaker, an
//! operator issuing management commands, and a forwarder that records
//! what it receives.

use std::sync::Arc;
use std::time::Duration;

use maestro_api::proto::eventforwarder::grpc_forwarder_server::{
    GrpcForwarder, GrpcForwarderServer,
};
use maestro_api::proto::eventforwarder::{
    PlayerEvent, Response, Room, RoomEvent, RoomInfo, RoomStatus,
};
use maestro_api::{ApiConfig, Backend};
use maestro_engine::room::PingStatus;
use maestro_engine::{Engine, EngineConfig, Ping, health};
use maestro_store::{Kv, Lease, SimulatedDatabase, SimulatedDisk, Store, StoreError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::net::{self, Client};
use super::world::{AckedOperation, World, WorldRuntime};
use crate::clock::Clock;
use crate::driver::{Driver, DriverConfig, DriverHandle, StartupError};
use crate::forwarding::{Forwarding, ForwardingConfig, Outbox};
use crate::leader::{self, LeadershipEnded};

pub const MANAGEMENT_PORT: u16 = 8080;
pub const ROOMS_PORT: u16 = 8070;
pub const FORWARDER_PORT: u16 = 9000;

/// The schedulers the operator manages: `arena` with a fixed count of
/// rooms, `duel` autoscaled by occupancy (and now and then deleted and
/// created again).
pub const SCHEDULERS: [&str; 2] = ["arena", "duel"];

/// Where maestro's state outlives it.
pub enum Storage {
    /// One worker on a local disk (the embedded layout, sled's semantics).
    Disk(SimulatedDisk),
    /// Workers sharing a database, one leading by the lease (the highly
    /// available layout, PostgreSQL's semantics).
    Database(SimulatedDatabase),
}

/// The hosts maestro runs on in each layout.
pub const SINGLE: [&str; 1] = ["maestro"];
pub const PAIR: [&str; 2] = ["maestro-a", "maestro-b"];

/// How long the leader lease lasts without a renewal.
pub const LEASE: Duration = Duration::from_secs(6);

/// What the hosts share: the world, the storage that outlives maestro, and
/// the run's settings.
pub struct Ctx {
    pub world: Arc<World>,
    pub storage: Storage,
    pub engine: EngineConfig,
    pub seed: u64,
}

/// Mixes a run's seed with a number (a process incarnation, a host).
pub fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One maestro process on `host`, from its start to its exit (a store
/// failure, a lost lease, a graceful stop) or its crash (the host is
/// dropped from outside). On a database it first waits as a standby for
/// the leader lease, with the service's own leader logic.
pub async fn maestro(ctx: Arc<Ctx>, host: &'static str) -> turmoil::Result {
    let incarnation = {
        let mut state = ctx.world.state();
        state.incarnation += 1;
        let incarnation = state.incarnation;
        state.trace(format!("maestro {incarnation} starts on {host}"));
        incarnation
    };
    match &ctx.storage {
        Storage::Disk(disk) => match Store::with_kv(disk.clone()) {
            Ok(store) => run(&ctx, host, incarnation, Arc::new(store), None).await,
            Err(e) => store_failed(&ctx.world, host, incarnation, "open the store", e).await,
        },
        Storage::Database(db) => {
            let holder = format!("{host}/{incarnation}");
            let lease: Arc<dyn Lease> = Arc::new(db.lease(&holder, host, LEASE));
            let epoch = leader::acquire(&lease).await;
            ctx.world
                .state()
                .trace(format!("maestro {incarnation} leads at epoch {epoch}"));
            match Store::with_kv(db.connect_fenced(epoch, host)) {
                Ok(store) => {
                    let leading = Some((lease, epoch));
                    run(&ctx, host, incarnation, Arc::new(store), leading).await
                }
                Err(e) => store_failed(&ctx.world, host, incarnation, "open the store", e).await,
            }
        }
    }
}

/// The store failed: the process exits, as the service does.
async fn store_failed(
    world: &World,
    host: &'static str,
    incarnation: u64,
    doing: &str,
    error: StoreError,
) -> turmoil::Result {
    world.state().stats.store_failures += 1;
    exited(world, host, incarnation, format!("cannot {doing}: {error}")).await
}

/// The worker itself, once it may write: the service's parts on `store`,
/// serving until it exits.
async fn run<K: Kv + 'static>(
    ctx: &Arc<Ctx>,
    host: &'static str,
    incarnation: u64,
    store: Arc<Store<K>>,
    leading: Option<(Arc<dyn Lease>, i64)>,
) -> turmoil::Result {
    let world = &ctx.world;
    let origin = world.state().wall_clock();
    // The wall clock once, then monotonic time, as `maestro start` does.
    let clock = Clock::resuming(origin, store.clock_mark());
    let (stop, stopped) = watch::channel(false);
    let outbox: Arc<dyn Outbox> = Arc::clone(&store) as _;
    let forwarding = Forwarding::start_with(
        outbox,
        ForwardingConfig {
            max_backoff: Duration::from_secs(5),
            jitter_seed: Some(mix(ctx.seed, 1_000 + incarnation)),
            ..ForwardingConfig::default()
        },
        clock,
        stopped.clone(),
        net::connect(),
    );
    let forwarding = match forwarding {
        Ok(forwarding) => forwarding,
        Err(e) => return store_failed(world, host, incarnation, "read the outbox", e).await,
    };
    let engine = Engine::new(EngineConfig {
        seed: mix(ctx.seed, incarnation),
        ..ctx.engine.clone()
    });
    let runtime = Arc::new(WorldRuntime(Arc::clone(world)));
    let started = Driver::new(
        engine,
        clock,
        store,
        runtime,
        forwarding,
        DriverConfig::default(),
    );
    let (driver, handle) = match started {
        Ok(started) => started,
        Err(StartupError::Load(e)) => {
            return store_failed(world, host, incarnation, "load the store", e).await;
        }
        Err(e) => {
            // What maestro stored, it must be able to restore.
            world
                .state()
                .violation(format!("maestro {incarnation} cannot start: {e}"));
            return exited(world, host, incarnation, "cannot start".to_string()).await;
        }
    };
    let mut driver = tokio::spawn(driver.run(stopped));
    let (keep_stop, keep_stopped) = watch::channel(false);
    let mut kept = leading
        .as_ref()
        .map(|(lease, epoch)| tokio::spawn(leader::keep(Arc::clone(lease), *epoch, keep_stopped)));
    let backend: Arc<dyn Backend> = Arc::new(handle.clone());
    let api = ApiConfig::default();
    let management = maestro_api::management_router(Arc::clone(&backend), &api);
    let rooms = maestro_api::rooms_router(backend, &api);
    tokio::spawn(net::serve(MANAGEMENT_PORT, management));
    tokio::spawn(net::serve(ROOMS_PORT, rooms));
    world.state().serve(host, incarnation);

    // Nothing acknowledged before the restart is missing after it.
    check_acknowledged(world, &handle, incarnation).await;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let ended = tokio::select! {
            biased;
            ended = &mut driver => Some(ended),
            lost = lease_lost(&mut kept) => {
                // As the service does: a leader that lost its lease stops
                // at once; its successor owns the state.
                return exited(world, host, incarnation, format!("leadership ended: {lost}")).await;
            }
            _ = tick.tick() => None,
        };
        match ended {
            Some(Ok(Ok(()))) => {
                let _ = keep_stop.send(true);
                if let Some((lease, epoch)) = &leading {
                    leader::release(lease, *epoch).await;
                }
                return exited(world, host, incarnation, "stopped".to_string()).await;
            }
            Some(Ok(Err(e))) => {
                // The store failed: the worker stops rather than run on a
                // state it could not persist.
                return store_failed(world, host, incarnation, "go on: the store failed", e).await;
            }
            Some(Err(e)) => {
                let what = match e.try_into_panic() {
                    Ok(panic) => panic_message(panic),
                    Err(e) => e.to_string(),
                };
                world
                    .state()
                    .violation(format!("maestro {incarnation}'s driver failed: {what}"));
                return exited(world, host, incarnation, "the driver failed".to_string()).await;
            }
            None => {}
        }
        let (stop_requested, probe) = {
            let mut state = world.state();
            let serving = state.serving_host() == Some(host);
            let stop = serving && state.stop_requested;
            if stop {
                state.stop_requested = false;
            }
            (stop, serving && std::mem::take(&mut state.probe_requested))
        };
        if stop_requested {
            world
                .state()
                .trace(format!("SIGTERM to maestro {incarnation}"));
            let _ = stop.send(true);
            continue;
        }
        check_invariants(world, &handle).await;
        if probe {
            check_acknowledged(world, &handle, incarnation).await;
            probe_convergence(world, &handle).await;
        }
    }
}

/// Resolves when the leader lease is lost (never without one).
async fn lease_lost(
    kept: &mut Option<tokio::task::JoinHandle<Result<(), LeadershipEnded>>>,
) -> String {
    let Some(task) = kept.as_mut() else {
        return std::future::pending().await;
    };
    match task.await {
        Ok(Err(ended)) => {
            *kept = None;
            ended.to_string()
        }
        Ok(Ok(())) | Err(_) => {
            *kept = None;
            std::future::pending().await
        }
    }
}

/// The process is over: it tells the world, whose supervisor ends it as
/// an exited process ends (every task of it gone at once, what it did not
/// flush lost) and restarts it. Returning instead would leave its spawned
/// tasks (servers, lanes) behind in the host until the restart.
async fn exited(
    world: &World,
    host: &'static str,
    incarnation: u64,
    why: String,
) -> turmoil::Result {
    {
        let mut state = world.state();
        state.trace(format!("maestro {incarnation} exits: {why}"));
        state.exit(host);
    }
    std::future::pending().await
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// The engine's own invariants (at most one operation in progress per
/// scheduler, bounded queues, indexes consistent), checked from outside
/// every second.
async fn check_invariants(world: &World, handle: &DriverHandle) {
    let result = handle.read(|engine| engine.check_invariants()).await;
    let mut state = world.state();
    state.stats.invariant_checks += 1;
    if let Ok(Err(e)) = result {
        state.violation(format!("engine invariant: {e}"));
    }
}

/// Every operation and scheduler maestro acknowledged is still known.
async fn check_acknowledged(world: &World, handle: &DriverHandle, incarnation: u64) {
    let (operations, schedulers) = {
        let state = world.state();
        let schedulers: Vec<String> = state
            .created
            .keys()
            .filter(|name| state.exists(name))
            .cloned()
            .collect();
        (state.operations_to_keep(), schedulers)
    };
    let missing = handle
        .read(move |engine| {
            let mut missing = Vec::new();
            for name in schedulers {
                if engine.scheduler(&name).is_none() {
                    missing.push(format!("scheduler {name}"));
                }
            }
            for op in operations {
                if engine.operation(&op.scheduler, &op.id).is_none() {
                    missing.push(format!(
                        "operation {} {} of {}",
                        op.what, op.id, op.scheduler
                    ));
                }
            }
            missing
        })
        .await;
    if let Ok(missing) = missing {
        let mut state = world.state();
        for what in missing {
            state.violation(format!("maestro {incarnation} lost an acknowledged {what}"));
        }
    }
}

/// Whether every scheduler converged: every operation final, no rollout
/// under way, no validation room left, the rooms in service at the desired
/// count, every pod of the cluster a room of maestro's. The answer (and
/// why not) goes to the world.
async fn probe_convergence(world: &World, handle: &DriverHandle) {
    let pods: Vec<(String, Vec<String>)> = {
        let mut state = world.state();
        let cluster = state.cluster();
        SCHEDULERS
            .iter()
            .map(|s| {
                let rooms = cluster
                    .list(s)
                    .into_iter()
                    .map(|event| event.room)
                    .collect();
                (s.to_string(), rooms)
            })
            .collect()
    };
    let verdict = handle
        .read(move |engine| converged(engine, &pods))
        .await
        .unwrap_or_else(|_| Err("maestro does not answer".to_string()));
    let mut state = world.state();
    let now = state.now();
    state.convergence = Some((now, verdict));
}

fn converged(engine: &Engine, pods: &[(String, Vec<String>)]) -> Result<(), String> {
    let names: Vec<String> = engine.scheduler_names().map(str::to_string).collect();
    for name in &names {
        for op in engine.operations(name) {
            if !op.status.is_final() {
                let rooms: Vec<String> = engine
                    .fleet(name)
                    .into_iter()
                    .flat_map(|f| f.rooms())
                    .take(5)
                    .map(|r| format!("{} {}", r.id, r.status.as_str()))
                    .collect();
                return Err(format!(
                    "{name}: operation {} {} still {} (rooms: {rooms:?})",
                    op.definition.name(),
                    op.id,
                    op.status.as_str()
                ));
            }
        }
        let (Some(scheduler), Some(fleet)) = (engine.scheduler(name), engine.fleet(name)) else {
            continue;
        };
        if fleet.is_rolling() {
            return Err(format!("{name}: the rollout has not finished"));
        }
        let target = health::target(scheduler, fleet, engine.now())
            .map_err(|e| format!("{name}: no target: {e}"))?;
        let counts = fleet.counts();
        if counts.in_service() != target.desired {
            let recent: Vec<String> = engine
                .operations(name)
                .filter_map(|o| o.finished_at.map(|at| (at, o)))
                .max_by_key(|(at, _)| *at)
                .map(|(_, o)| {
                    format!(
                        "{} {} at {:?}: {:?}",
                        o.definition.name(),
                        o.status.as_str(),
                        o.finished_at,
                        o.execution_history.last().map(|h| &h.event)
                    )
                })
                .into_iter()
                .collect();
            return Err(format!(
                "{name}: {} rooms in service, {} desired (rooms by status {:?}, {target:?}, now {:?}; last operation: {recent:?})",
                counts.in_service(),
                target.desired,
                counts.by_status,
                engine.now(),
            ));
        }
        if counts.validation_rooms != 0 {
            return Err(format!("{name}: a validation room is left"));
        }
        let ready = counts.get(maestro_engine::room::RoomStatus::Ready);
        if ready != target.desired {
            return Err(format!(
                "{name}: {ready} rooms ready, {} desired",
                target.desired
            ));
        }
    }
    for (name, rooms) in pods {
        let fleet = engine.fleet(name);
        for room in rooms {
            if !fleet.is_some_and(|f| f.contains(room)) {
                return Err(format!("{name}: pod {room} is no room of maestro's"));
            }
        }
    }
    Ok(())
}

/// The game servers: the cluster's timers, and each lane's pings (with a
/// player or room event on every change of status) to the Rooms API.
pub async fn game_servers(ctx: Arc<Ctx>) -> turmoil::Result {
    let receivers = ctx.world.state().take_lane_receivers();
    for (lane, receiver) in receivers.into_iter().enumerate() {
        tokio::spawn(ping_lane(Arc::clone(&ctx.world), receiver, lane as u64));
    }
    loop {
        ctx.world.state().advance_cluster();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ping_lane(world: Arc<World>, mut pings: mpsc::UnboundedReceiver<Ping>, lane: u64) {
    let mut client = Client::new(Arc::clone(&world), ROOMS_PORT);
    let mut last: std::collections::BTreeMap<(String, String), PingStatus> = Default::default();
    // Event numbers: unique across lanes, increasing within one.
    let mut next_event = lane << 40;
    while let Some(ping) = pings.recv().await {
        let path = format!("/scheduler/{}/rooms/{}/ping", ping.scheduler, ping.room);
        let timestamp = world.state().now().0 / 1000;
        let body = json!({
            "status": ping.status.as_str(),
            "runningMatches": ping.running_matches,
            "timestamp": timestamp,
        });
        world
            .state()
            .ping_sent(&ping.scheduler, &ping.room, ping.status);
        let answer = client.send("PUT", &path, Some(&body)).await;
        if !matches!(&answer, Ok((200, _))) {
            continue;
        }
        world
            .state()
            .ping_acked(&ping.scheduler, &ping.room, ping.status);
        let key = (ping.scheduler.clone(), ping.room.clone());
        let before = last.insert(key, ping.status);
        if before == Some(ping.status) {
            continue;
        }
        // A change: a room event, and a player joining or leaving.
        next_event += 1;
        let room_event = json!({
            "event": format!("status-{}", ping.status.as_str()),
            "metadata": {"seq": next_event.to_string()},
        });
        report(
            &world,
            &mut client,
            &ping,
            "roomevent",
            &room_event,
            next_event,
        )
        .await;
        let player = match (before, ping.status) {
            (_, PingStatus::Occupied) => Some("playerJoin"),
            (Some(PingStatus::Occupied), PingStatus::Ready) => Some("playerLeft"),
            _ => None,
        };
        if let Some(player) = player {
            next_event += 1;
            let player_event = json!({
                "event": player,
                "metadata": {"playerId": format!("p{next_event}"), "seq": next_event.to_string()},
            });
            report(
                &world,
                &mut client,
                &ping,
                "playerevent",
                &player_event,
                next_event,
            )
            .await;
        }
    }
}

async fn report(
    world: &World,
    client: &mut Client,
    ping: &Ping,
    kind: &str,
    body: &Value,
    seq: u64,
) {
    let path = format!("/scheduler/{}/rooms/{}/{kind}", ping.scheduler, ping.room);
    if let Ok((200, answer)) = client.send("POST", &path, Some(body)).await
        && answer["success"] == json!(true)
    {
        world.state().event_acked(&ping.scheduler, &ping.room, seq);
    }
}

/// The matchmaker: every so often an allocation per scheduler, one at a
/// time; each room it gets is told (its game server starts a match).
pub async fn matchmaker(ctx: Arc<Ctx>) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(ctx.seed, 2));
    let mut client = Client::new(Arc::clone(&ctx.world), ROOMS_PORT);
    loop {
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..2_000))).await;
        if ctx.world.state().quiet {
            continue;
        }
        let scheduler = SCHEDULERS[rng.random_range(0..SCHEDULERS.len())];
        let path = format!("/scheduler/{scheduler}/rooms/allocate");
        if let Ok((200, answer)) = client.send("POST", &path, Some(&json!({}))).await
            && answer["success"] == json!(true)
            && let Some(room) = answer["roomId"].as_str()
        {
            ctx.world.state().allocation_answered(scheduler, room);
        }
    }
}

/// The scheduler `name` at `version` (its image), as the operator posts it.
fn scheduler_body(name: &str, image: u64, replicas: u64) -> Value {
    let mut body = json!({
        "name": name,
        "game": "chaos",
        "spec": {
            "terminationGracePeriod": "30s",
            "containers": [{
                "name": "game",
                "image": format!("game:{image}"),
                "imagePullPolicy": "IfNotPresent",
                "command": ["./run"],
                "requests": {"memory": "64Mi", "cpu": "250m"},
                "limits": {"memory": "128Mi", "cpu": "500m"},
                "ports": [{"name": "game", "protocol": "udp", "port": 7777}]
            }]
        },
        "portRange": {"start": 20000, "end": 30000},
        "maxSurge": "50%",
        "roomsReplicas": replicas,
        "matchAllocation": {"maxMatches": 1},
        "forwarders": [{
            "name": "recorder",
            "enable": true,
            "type": "gRPC",
            "address": format!("forwarder:{FORWARDER_PORT}"),
            "options": {"timeout": 1000}
        }]
    });
    if name == "duel" {
        body["autoscaling"] = json!({
            "enabled": true,
            "min": 1,
            "max": 8,
            "policy": {"type": "roomOccupancy", "parameters": {"roomOccupancy": {"readyTarget": 0.5}}}
        });
    }
    body
}

/// The operator: creates the schedulers, then issues a management command
/// every few seconds (new major and minor versions, patches, switches of
/// the active version, cancellations, now and then a deletion), and
/// records every one maestro acknowledged.
pub async fn operator(ctx: Arc<Ctx>) -> turmoil::Result {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(ctx.seed, 3));
    let mut client = Client::new(Arc::clone(&ctx.world), MANAGEMENT_PORT);
    let mut image = 1u64;
    tokio::time::sleep(Duration::from_secs(1)).await;
    loop {
        if ctx.world.state().quiet {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        // Schedulers that do not exist (yet, or any more) are created.
        for name in SCHEDULERS {
            let exists = ctx.world.state().exists(name);
            if !exists {
                create(&ctx.world, &mut client, name, image).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(3_000..15_000))).await;
        if ctx.world.state().quiet {
            continue;
        }
        let name = SCHEDULERS[rng.random_range(0..SCHEDULERS.len())];
        match rng.random_range(0..20) {
            0..6 => {
                image += 1;
                let body = scheduler_body(name, image, rng.random_range(1..6));
                let answer = client
                    .send("POST", &format!("/schedulers/{name}"), Some(&body))
                    .await;
                acked_operation(&ctx.world, name, "new major version", answer);
            }
            6..12 => {
                let body = json!({"roomsReplicas": rng.random_range(1..6)});
                let answer = client
                    .send("PATCH", &format!("/schedulers/{name}"), Some(&body))
                    .await;
                acked_operation(&ctx.world, name, "patch", answer);
            }
            12..15 => {
                let versions = client
                    .send("GET", &format!("/schedulers/{name}/versions"), None)
                    .await;
                let Ok((200, versions)) = versions else {
                    continue;
                };
                let listed: Vec<String> = versions["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v["version"].as_str().map(str::to_string))
                    .collect();
                if listed.is_empty() {
                    continue;
                }
                let version = &listed[rng.random_range(0..listed.len())];
                let body = json!({"version": version});
                let answer = client
                    .send("PUT", &format!("/schedulers/{name}"), Some(&body))
                    .await;
                acked_operation(&ctx.world, name, "switch active version", answer);
            }
            15..19 => {
                let listed = client
                    .send("GET", &format!("/schedulers/{name}/operations"), None)
                    .await;
                let Ok((200, listed)) = listed else {
                    continue;
                };
                let open: Vec<String> = ["pendingOperations", "activeOperations"]
                    .iter()
                    .flat_map(|k| listed[*k].as_array().cloned().unwrap_or_default())
                    .filter_map(|o| o["id"].as_str().map(str::to_string))
                    .collect();
                if open.is_empty() {
                    continue;
                }
                let id = &open[rng.random_range(0..open.len())];
                let path = format!("/schedulers/{name}/operations/{id}/cancel");
                let answer = client.send("POST", &path, None).await;
                let mut state = ctx.world.state();
                let line = format!("cancel {name} {id} -> {}", status_of(&answer));
                state.trace(line);
            }
            _ => {
                if name != "duel" {
                    continue;
                }
                let answer = client
                    .send("DELETE", &format!("/schedulers/{name}"), None)
                    .await;
                let mut state = ctx.world.state();
                let line = format!("delete scheduler {name} -> {}", status_of(&answer));
                state.trace(line);
                if matches!(answer, Ok((200, _))) {
                    let now = state.now();
                    state.deleted_at.insert(name.to_string(), now);
                }
            }
        }
    }
}

fn status_of(answer: &Result<net::Answer, String>) -> String {
    match answer {
        Ok((status, _)) => status.to_string(),
        Err(e) => e.clone(),
    }
}

async fn create(world: &World, client: &mut Client, name: &str, image: u64) {
    let body = scheduler_body(name, image, 3);
    let answer = client.send("POST", "/schedulers", Some(&body)).await;
    let mut state = world.state();
    let line = format!("create scheduler {name} -> {}", status_of(&answer));
    state.trace(line);
    // A 409 (an earlier attempt whose answer was lost, or a deletion still
    // under way) is not counted: the next round tries again.
    if matches!(answer, Ok((200, _))) {
        let now = state.now();
        state.created.insert(name.to_string(), now);
        state.max_matches.insert(name.to_string(), 1);
    }
}

fn acked_operation(world: &World, name: &str, what: &str, answer: Result<net::Answer, String>) {
    let mut state = world.state();
    match answer {
        Ok((200, body)) => {
            let Some(id) = body["operationId"].as_str() else {
                return state.violation(format!(
                    "{what} of {name} acknowledged without an operation id: {body}"
                ));
            };
            let now = state.now();
            state.operation_acked(AckedOperation {
                scheduler: name.to_string(),
                id: id.to_string(),
                what: what.to_string(),
                at: now,
            });
        }
        other => {
            let line = format!("{what} of {name} -> {}", status_of(&other));
            state.trace(line);
        }
    }
}

/// The forwarder: answers every call and records the room and player
/// events it gets (their `seq` metadata).
#[derive(Clone)]
struct Recorder(Arc<World>);

type Answer = Result<tonic::Response<Response>, tonic::Status>;

fn ok() -> Answer {
    Ok(tonic::Response::new(Response {
        code: 200,
        message: String::new(),
    }))
}

impl Recorder {
    fn record(
        &self,
        room: Option<&Room>,
        metadata: Option<&std::collections::HashMap<String, String>>,
    ) -> Answer {
        let Some(room) = room else {
            return ok();
        };
        let seq = metadata
            .and_then(|m| m.get("seq"))
            .or_else(|| room.metadata.get("seq"))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(seq) = seq {
            self.0.state().event_received(&room.room_id, seq);
        }
        ok()
    }
}

#[tonic::async_trait]
impl GrpcForwarder for Recorder {
    async fn send_room_info(&self, _: tonic::Request<RoomInfo>) -> Answer {
        ok()
    }
    async fn send_room_status(&self, _: tonic::Request<RoomStatus>) -> Answer {
        ok()
    }
    async fn send_room_ping(&self, _: tonic::Request<RoomStatus>) -> Answer {
        ok()
    }
    async fn send_room_resync(&self, _: tonic::Request<RoomStatus>) -> Answer {
        ok()
    }
    async fn send_room_event(&self, r: tonic::Request<RoomEvent>) -> Answer {
        let m = r.into_inner();
        self.record(m.room.as_ref(), None)
    }
    async fn send_player_event(&self, r: tonic::Request<PlayerEvent>) -> Answer {
        let m = r.into_inner();
        self.record(m.room.as_ref(), Some(&m.metadata))
    }
}

pub async fn forwarder(ctx: Arc<Ctx>) -> turmoil::Result {
    let service = GrpcForwarderServer::new(Recorder(Arc::clone(&ctx.world)));
    let router = tonic::service::Routes::new(service).into_axum_router();
    net::serve(FORWARDER_PORT, router).await?;
    Ok(())
}
