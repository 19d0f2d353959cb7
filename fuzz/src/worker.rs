//! The worker the API targets send their requests to: the service's real
//! driver over an in-memory store, with a cluster whose pods are ready at
//! once, on a runtime with tokio's paused clock.

use std::sync::{Arc, OnceLock};

use maestro::clock::Clock;
use maestro::driver::DriverConfig;
use maestro::testing::{InstantCluster, RunningDriver, ready_fleet, start_driver};
use maestro_api::Backend;
use maestro_engine::room::{PingStatus, RoomId};
use maestro_engine::scheduler::fixtures;
use maestro_engine::{EngineConfig, Ping};
use maestro_store::Store;

/// The scheduler every worker starts with.
pub const NAME: &str = "arena";

/// A worker with `arena` of two rooms, the first ready and the second
/// occupied. Returns their ids.
pub async fn worker() -> (RunningDriver, Vec<RoomId>) {
    let cluster = Arc::new(InstantCluster::default());
    let driver = start_driver(
        Clock::start(),
        Arc::new(Store::in_memory()),
        Arc::clone(&cluster) as _,
        EngineConfig::default(),
        DriverConfig::default(),
    );
    let mut scheduler = fixtures::scheduler(NAME);
    scheduler.rooms_replicas = 2;
    let rooms = ready_fleet(&driver.handle, &cluster, scheduler).await;
    let occupied = Ping {
        scheduler: NAME.to_string(),
        room: rooms[1].clone(),
        status: PingStatus::Occupied,
        running_matches: 1,
        metadata_json: "{}".to_string(),
    };
    driver
        .handle
        .ping(occupied)
        .await
        .expect("the room exists and the driver runs");
    (driver, rooms)
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // Paused: the worker's timers and the set-up's polling wait no
        // real time, so an input costs its requests only.
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

/// Panics if the engine broke one of its invariants, naming the request
/// it came `after`.
pub async fn check_invariants(driver: &RunningDriver, after: &str) {
    driver
        .handle
        .read(|engine| engine.check_invariants())
        .await
        .expect("the driver runs")
        .unwrap_or_else(|e| panic!("engine invariant broken after {after}: {e}"));
}
