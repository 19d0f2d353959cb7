//! Test support shared by the service's tests and benchmarks (the
//! `testing` feature): a cluster whose pods are ready the moment they are
//! created and outlive the driver, as pods outlive a worker restart.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use futures::StreamExt;
use futures::stream::BoxStream;
use maestro_engine::room::{Address, AddressPort, InstanceStatus, RemovalReason, RoomId};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::version::Version;
use maestro_engine::{InstanceEvent, InstanceEventKind, RuntimeError};
use maestro_runtimes::{RoomSpec, Runtime};
use tokio::sync::mpsc;

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
