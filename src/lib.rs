//! The `maestro` service as a library: what the binary (`src/main.rs`) runs,
//! open to the benchmarks and the tests that drive the worker in process.

pub mod bench;
pub mod chaos;
pub mod clock;
pub mod config;
pub mod driver;
pub mod forwarding;
pub mod hash;
pub mod leader;
pub mod metrics_help;
pub mod metrics_reporter;
pub mod migrate;
pub mod plan;
pub mod record;
pub mod service;
pub mod sim_cluster;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
