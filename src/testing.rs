//! Test support shared by the service's tests and benchmarks (the
//! `testing` feature): a cluster whose pods are ready the moment they are
//! created and outlive the driver, as pods outlive a worker restart, and
//! the real driver started on it with a fleet of ready rooms.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use maestro_api::Backend;
use maestro_engine::room::{
    Address, AddressPort, InstanceStatus, PingStatus, RemovalReason, RoomId, RoomStatus,
};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::version::Version;
use maestro_engine::{
    Command, Engine, EngineConfig, InstanceEvent, InstanceEventKind, Ping, RuntimeError,
};
use maestro_runtimes::{RoomSpec, Runtime};
use maestro_store::{Kv, Store, StoreError};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::driver::{Driver, DriverConfig, DriverHandle};
use crate::forwarding::{Forwarding, Outbox};

/// Every created pod is ready at once. A watch starts with every pod of
/// its scheduler (a relist), then follows new ones. Deletions succeed and
/// the pods stay listed: nothing here depends on them going away.
#[derive(Default)]
pub struct InstantCluster {
    pods: Mutex<BTreeSet<(String, RoomId, Version)>>,
    watchers: Mutex<Vec<(String, mpsc::UnboundedSender<InstanceEvent>)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ready(scheduler: &str, room: &str, version: Version) -> InstanceEvent {
    InstanceEvent {
        scheduler: scheduler.to_string(),
        room: room.to_string(),
        kind: InstanceEventKind::Upsert,
        status: InstanceStatus::Ready,
        description: String::new(),
        address: Some(Address {
            host: "10.0.0.1".to_string(),
            ports: vec![AddressPort {
                name: "game".to_string(),
                port: 20000,
                protocol: "udp".to_string(),
            }],
        }),
        version: Some(version),
    }
}

impl InstantCluster {
    /// Every pod's room, in name order.
    pub fn rooms(&self) -> Vec<RoomId> {
        lock(&self.pods)
            .iter()
            .map(|(_, room, _)| room.clone())
            .collect()
    }

    fn emit(&self, event: InstanceEvent) {
        lock(&self.watchers)
            .retain(|(s, tx)| *s != event.scheduler || tx.send(event.clone()).is_ok());
    }
}

#[async_trait::async_trait]
impl Runtime for InstantCluster {
    async fn create_scheduler(&self, _: &Scheduler) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn delete_scheduler(&self, _: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn create_room(&self, room: &RoomSpec) -> Result<(), RuntimeError> {
        lock(&self.pods).insert((room.scheduler.clone(), room.room.clone(), room.version));
        self.emit(ready(&room.scheduler, &room.room, room.version));
        Ok(())
    }

    async fn delete_room(&self, _: &str, _: &str, _: RemovalReason) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn set_disruption_budget(&self, _: &str, _: u32) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn watch(&self, scheduler: &str, _known: Vec<RoomId>) -> BoxStream<'static, InstanceEvent> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for (s, room, version) in lock(&self.pods).iter() {
            if s == scheduler {
                let _ = tx.send(ready(s, room, *version));
            }
        }
        lock(&self.watchers).push((scheduler.to_string(), tx));
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
    }
}

/// The real driver on its own task, as the service runs it (forwarding on
/// the same store), stopped when this is dropped.
pub struct RunningDriver {
    pub handle: DriverHandle,
    pub task: JoinHandle<Result<(), StoreError>>,
    stop: watch::Sender<bool>,
}

impl RunningDriver {
    /// A graceful stop: the driver settles the store and ends.
    pub async fn stop(self) -> Result<(), StoreError> {
        let RunningDriver { task, stop, .. } = self;
        drop(stop);
        task.await.expect("the driver task does not panic")
    }
}

/// Starts the driver on `clock`: the same clock a simulated cluster
/// beside it must read, so both see one time.
pub fn start_driver<K: Kv + 'static>(
    clock: Clock,
    store: Arc<Store<K>>,
    runtime: Arc<dyn Runtime>,
    engine: EngineConfig,
    config: DriverConfig,
) -> RunningDriver {
    let (stop, stop_rx) = watch::channel(false);
    let outbox: Arc<dyn Outbox> = Arc::clone(&store) as _;
    let forwarding =
        Forwarding::start(outbox, Default::default(), clock, stop_rx.clone()).expect("outbox");
    let (driver, handle) = Driver::new(
        Engine::new(engine),
        clock,
        store,
        runtime,
        forwarding,
        config,
    )
    .expect("the driver starts");
    RunningDriver {
        handle,
        task: tokio::spawn(driver.run(stop_rx)),
        stop,
    }
}

/// Polls `check` every 10 ms until it gives a value, for at most two
/// minutes.
pub async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..12_000 {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Pings every room `ready`, up to 1024 at a time.
pub async fn ping_ready(handle: &DriverHandle, scheduler: &str, rooms: &[RoomId]) {
    for chunk in rooms.chunks(1024) {
        futures::future::join_all(chunk.iter().map(|room| {
            let ping = Ping {
                scheduler: scheduler.to_string(),
                room: room.clone(),
                status: PingStatus::Ready,
                running_matches: 0,
                metadata_json: "{}".to_string(),
            };
            async move { handle.ping(ping).await.expect("the ping is accepted") }
        }))
        .await;
    }
}

/// Creates `scheduler` on `cluster` and waits until all of its
/// `rooms_replicas` rooms are ready (created, pinged `ready`). Returns
/// their ids.
pub async fn ready_fleet(
    handle: &DriverHandle,
    cluster: &InstantCluster,
    scheduler: Scheduler,
) -> Vec<RoomId> {
    let name = scheduler.name.clone();
    let n = usize::try_from(scheduler.rooms_replicas).expect("a fleet size");
    handle
        .command(Command::CreateScheduler(scheduler))
        .await
        .expect("the scheduler is created");
    let rooms = eventually("the pods", async || {
        let rooms = cluster.rooms();
        (rooms.len() == n).then_some(rooms)
    })
    .await;
    ping_ready(handle, &name, &rooms).await;
    eventually("every room ready", async || {
        let ready = handle
            .rooms(name.clone(), Some(RoomStatus::Ready), 0, 0)
            .await
            .expect("the driver answers")
            .map_or(0, |page| page.total);
        (ready == n).then_some(())
    })
    .await;
    rooms
}
