//! Replays the committed seed corpora (`fuzz/seeds/<target>/`) through the
//! fuzz targets' functions: every seed, past findings included, must pass
//! (a panic fails the test). A target without seeds fails too: a seed
//! directory lost by mistake must not pass silently.

use std::path::PathBuf;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut seeds: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    seeds.sort();
    assert!(
        seeds.len() >= 10,
        "{}: only {} seeds",
        dir.display(),
        seeds.len()
    );
    for seed in &seeds {
        let data = std::fs::read(seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
        eprintln!("{}", seed.display());
        run(&data);
    }
}

#[test]
fn api_bodies_seeds_pass() {
    replay("api_bodies", maestro_fuzz::api_bodies::run);
}

#[test]
fn engine_inputs_seeds_pass() {
    replay("engine_inputs", maestro_fuzz::engine_inputs::run);
}

#[test]
fn store_records_seeds_pass() {
    replay("store_records", maestro_fuzz::store_records::run);
}

#[test]
fn scheduler_documents_seeds_pass() {
    replay("scheduler_documents", maestro_fuzz::scheduler_documents::run);
}

#[test]
fn demand_traces_seeds_pass() {
    replay("demand_traces", maestro_fuzz::demand_traces::run);
}

#[test]
fn grpc_messages_seeds_pass() {
    replay("grpc_messages", maestro_fuzz::grpc_messages::run);
}
