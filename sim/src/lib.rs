//! The simulated cluster and the capacity planner.
//!
//! [`cluster::Cluster`] is the one model of a simulated cluster: nodes,
//! pods and the game servers in them, sans-IO and driven by the time it is
//! given. [`Harness`] runs it with the real engine in virtual time (property
//! tests, benchmarks, the planner); the binary runs it in real time as the
//! embedded default's runtime.

pub mod cluster;
pub mod demand;
pub mod dist;
mod harness;
pub mod plan;
pub mod record;
pub mod trace;

pub use cluster::{ClusterConfig, RoomBehaviour};
pub use harness::{Harness, SILENT, START, Stats};
