//! maestro's fuzz targets, as functions: each `fuzz_targets/<name>.rs`
//! hands libFuzzer's input to `<name>::run`, and `tests/seeds.rs` replays
//! the committed seeds (`seeds/<name>/`) through the same function, so
//! `cargo test` keeps every seed and past finding passing.

pub mod api_bodies;
pub mod demand_traces;
pub mod engine_inputs;
pub mod grpc_messages;
pub mod scheduler_documents;
pub mod store_records;
mod worker;
