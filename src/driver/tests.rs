//! The driver's durability rules, on a simulated disk that loses what was
//! not flushed and fails on demand, with a cluster whose pods outlive the
//! driver (as pods outlive a worker restart).

use std::collections::BTreeSet;
use std::time::Duration;

use maestro_engine::room::{RoomId, RoomStatus};
use maestro_engine::scheduler::fixtures;
use maestro_engine::{AllocateError, Command, CommandError, EngineConfig, Millis};
use maestro_store::{INJECTED_FAULT, SimulatedDisk, Store};

use super::*;
use crate::testing::{InstantCluster as Cluster, RunningDriver as Running, ping_ready};

/// A driver on `disk`. Room records are written only along with a batch a
/// reply waits on (the soft-flush tick is an hour away), which is the
/// window a crash could lose.
fn start(disk: &SimulatedDisk, cluster: &Arc<Cluster>, seed: u64) -> Running {
    let store = Arc::new(Store::with_kv(disk.clone()).expect("the disk opens"));
    let engine = EngineConfig {
        seed,
        room_ping_timeout: Millis::from_secs(60),
        ..EngineConfig::default()
    };
    let config = DriverConfig {
        soft_flush_interval: Duration::from_secs(3600),
        ..DriverConfig::default()
    };
    crate::testing::start_driver(
        crate::clock::Clock::start(),
        store,
        Arc::clone(cluster) as _,
        engine,
        config,
    )
}

/// A driver on a fresh disk with `arena` of `n` ready rooms.
async fn with_ready_rooms(n: i64) -> (SimulatedDisk, Arc<Cluster>, Running, Vec<RoomId>) {
    let disk = SimulatedDisk::new();
    let cluster = Arc::new(Cluster::default());
    let running = start(&disk, &cluster, 1);
    let mut scheduler = fixtures::scheduler("arena");
    scheduler.rooms_replicas = n;
    let rooms = crate::testing::ready_fleet(&running.handle, &cluster, scheduler).await;
    (disk, cluster, running, rooms)
}

/// SIGKILL: the task stops where it is; nothing more reaches the disk.
async fn kill(running: Running) {
    running.task.abort();
    let _ = running.task.await;
}

async fn statuses(handle: &DriverHandle) -> Vec<(RoomId, RoomStatus)> {
    let page = handle
        .rooms("arena".to_string(), None, 0, 1000)
        .await
        .expect("the driver answers");
    page.map_or_else(Vec::new, |p| {
        p.rooms.into_iter().map(|r| (r.id, r.status)).collect()
    })
}

/// Allocates until no room is left; the rooms handed out.
async fn allocate_all(handle: &DriverHandle) -> Vec<RoomId> {
    let mut rooms = Vec::new();
    for _ in 0..100 {
        match handle.allocate("arena".to_string(), None).await {
            Ok(allocation) => rooms.push(allocation.room),
            Err(AllocateError::NoRoomAvailable) => return rooms,
            Err(e) => panic!("allocate: {e}"),
        }
    }
    panic!("more allocations than rooms");
}

fn add_one_room() -> Command {
    Command::AddRooms {
        scheduler: "arena".to_string(),
        amount: 1,
    }
}

async fn stops_on_its_own(task: JoinHandle<Result<(), StoreError>>) -> Result<(), StoreError> {
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the driver stops on its own")
        .expect("the driver task does not panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_answered_before_a_crash_is_still_allocated_after_it() {
    let (disk, cluster, first, rooms) = with_ready_rooms(3).await;

    let taken = first
        .handle
        .allocate("arena".to_string(), None)
        .await
        .expect("a ready room")
        .room;
    // The answer reached the matchmaker; then the worker dies and
    // everything it had not flushed is gone. The pods live on.
    kill(first).await;
    disk.crash();

    let second = start(&disk, &cluster, 2);
    // The game servers go on pinging `ready`: the match has not started.
    ping_ready(&second.handle, "arena", &rooms).await;
    let statuses = statuses(&second.handle).await;
    assert!(
        statuses.contains(&(taken.clone(), RoomStatus::Allocated)),
        "the allocated room came back allocated: {statuses:?}"
    );
    let handed_out = allocate_all(&second.handle).await;
    assert_eq!(handed_out.len(), 2, "{handed_out:?}");
    assert!(
        !handed_out.contains(&taken),
        "{taken} was handed to a second match"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_stops_the_driver_and_acknowledges_nothing() {
    let (disk, cluster, running, _) = with_ready_rooms(3).await;

    disk.fail_flushes(true);
    let refused = running.handle.allocate("arena".to_string(), None).await;
    assert!(
        matches!(&refused, Err(AllocateError::Unavailable(m)) if m.contains(INJECTED_FAULT)),
        "{refused:?}"
    );
    let stopped = stops_on_its_own(running.task).await;
    assert!(
        matches!(&stopped, Err(StoreError::Io(m)) if m.contains(INJECTED_FAULT)),
        "{stopped:?}"
    );
    // Nothing is acknowledged any more.
    let after = running.handle.command(add_one_room()).await;
    assert!(
        matches!(after, Err(CommandError::Unavailable(_))),
        "{after:?}"
    );

    // What a restart finds: the allocation that was refused is not there.
    disk.crash();
    let restarted = start(&disk, &cluster, 2);
    let statuses = statuses(&restarted.handle).await;
    assert!(
        statuses.iter().all(|(_, s)| *s != RoomStatus::Allocated),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_stops_the_driver_and_answers_what_waits_with_the_error() {
    let (disk, _, running, _) = with_ready_rooms(3).await;

    disk.fail_writes(true);
    let refused = running.handle.command(add_one_room()).await;
    // The command's own write fails and its answer names the fault; or a
    // write of something still settling from the set-up (a runtime result,
    // a room record) reached the failing disk first, and the driver had
    // stopped before the command came: then it is refused as stopping.
    // Either way nothing is acknowledged.
    assert!(
        matches!(&refused, Err(CommandError::Unavailable(m))
            if m.contains(INJECTED_FAULT) || m.contains("shutting down")),
        "{refused:?}"
    );
    let stopped = stops_on_its_own(running.task).await;
    assert!(
        matches!(&stopped, Err(StoreError::Io(m)) if m.contains(INJECTED_FAULT)),
        "{stopped:?}"
    );
    let after = running.handle.allocate("arena".to_string(), None).await;
    assert!(
        matches!(after, Err(AllocateError::Unavailable(_))),
        "{after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_allocations_share_flushes_and_each_gets_its_own_room() {
    let (disk, _, running, _) = with_ready_rooms(64).await;
    let flushes_before = disk.flushes();
    let allocations = futures::future::join_all((0..64).map(|_| {
        let handle = running.handle.clone();
        async move { handle.allocate("arena".to_string(), None).await }
    }))
    .await;
    let taken: BTreeSet<RoomId> = allocations
        .into_iter()
        .map(|a| a.expect("a room for each").room)
        .collect();
    assert_eq!(taken.len(), 64, "no room handed out twice");
    let flushes = disk.flushes() - flushes_before;
    assert!(
        (1..64).contains(&flushes),
        "64 allocations made durable by {flushes} flushes"
    );
}
