//! Runtimes: where the engine's room effects reach a cluster.
//!
//! [`Runtime`] is the one interface the service drives. Two
//! implementations exist: Kubernetes ([`kubernetes::KubernetesRuntime`],
//! kube-rs) and the simulated cluster of the
//! embedded default (in the service). Each call's error says which kind it
//! is ([`RuntimeErrorKind`]), so the engine decides per kind what to do.

pub mod kubernetes;

use std::sync::Arc;

use futures::stream::BoxStream;
use maestro_engine::room::{HostPort, RemovalReason, RoomId};
use maestro_engine::scheduler::Scheduler;
use maestro_engine::version::Version;
pub use maestro_engine::{InstanceEvent, InstanceEventKind, RuntimeError, RuntimeErrorKind};

/// Everything needed to create one room's pod.
#[derive(Clone, Debug, PartialEq)]
pub struct RoomSpec {
    pub scheduler: String,
    pub room: RoomId,
    pub version: Version,
    /// The scheduler version the room runs.
    pub spec: Arc<Scheduler>,
    pub host_ports: Vec<HostPort>,
    pub is_validation_room: bool,
    /// Extra environment for the room's containers (for instance its Rooms
    /// API token), beside `MAESTRO_SCHEDULER_NAME` and `MAESTRO_ROOM_ID`.
    pub extra_env: Vec<(String, String)>,
}

#[async_trait::async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Creates the scheduler's namespace and disruption budget.
    /// `AlreadyExists` is an error kind the caller may accept.
    async fn create_scheduler(&self, scheduler: &Scheduler) -> Result<(), RuntimeError>;

    /// Deletes the scheduler's resources (and with them every pod).
    async fn delete_scheduler(&self, scheduler: &str) -> Result<(), RuntimeError>;

    async fn create_room(&self, room: &RoomSpec) -> Result<(), RuntimeError>;

    /// Deletes a room's pod, recording `reason` on it (as upstream does with
    /// a Kubernetes Event).
    async fn delete_room(
        &self,
        scheduler: &str,
        room: &str,
        reason: RemovalReason,
    ) -> Result<(), RuntimeError>;

    /// Sets the disruption budget's `minAvailable` for the scheduler's rooms.
    async fn set_disruption_budget(
        &self,
        scheduler: &str,
        min_available: u32,
    ) -> Result<(), RuntimeError>;

    /// Instance events of one scheduler's rooms. The stream survives
    /// disconnects: after one it relists, and a room deleted meanwhile still
    /// produces a `Deleted` event. It ends only when dropped.
    ///
    /// `known_rooms` are the rooms the caller believes exist (after a
    /// restart, the ones it restored): the first listing reports `Deleted`
    /// for each of them the cluster does not have, so rooms whose pods went
    /// away while maestro was down are cleaned up at once.
    fn watch(&self, scheduler: &str, known_rooms: Vec<RoomId>)
    -> BoxStream<'static, InstanceEvent>;
}
