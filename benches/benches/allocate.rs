//! Durable allocations per second through the real driver: the engine, the
//! sled store (flush and fsync) and the group commit the service runs, with
//! concurrent matchmakers calling the driver in process (no HTTP).
//!
//! A scheduler of `ROOMS` rooms on a cluster whose pods are ready at once;
//! every room pings ready; then `M` matchmaker tasks allocate as fast as
//! they can until every room is taken. Each allocation is answered only
//! once its room's record is flushed. Reported per M: allocations per
//! second, latency p50/p99/p999 (HDR histogram) and how many allocations
//! one flush carried on average. A room handed out twice aborts the run.
//!
//! The store lives in a temporary directory under the workspace's
//! `target/` (or under `MAESTRO_BENCH_DIR`). With `MAESTRO_BENCH_POSTGRES_URL`
//! set, the same runs follow on PostgreSQL (a fresh schema each; COMMIT
//! with `synchronous_commit` on).
//!
//! Run: `cargo bench -p maestro-benches --bench allocate` (add `-- 50000`
//! for another number of rooms).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use maestro::clock::Clock;
use maestro::driver::DriverConfig;
use maestro::testing::{InstantCluster, ready_fleet, start_driver};
use maestro_api::Backend;
use maestro_benches::{POSTGRES_URL_VAR, fresh_postgres_schema};
use maestro_engine::scheduler::fixtures;
use maestro_engine::{AllocateError, EngineConfig};
use maestro_store::{Kv, PostgresStore, SledStore, Store};

const MATCHMAKERS: [usize; 3] = [8, 32, 64];

fn bench_dir() -> PathBuf {
    std::env::var_os("MAESTRO_BENCH_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tmp"),
        PathBuf::from,
    )
}

async fn run<K: Kv + 'static>(store: Arc<Store<K>>, rooms: usize, matchmakers: usize) {
    let cluster = Arc::new(InstantCluster::default());
    let config = EngineConfig {
        seed: 7,
        add_rooms_limit: 100_000,
        ..EngineConfig::default()
    };
    let driver = start_driver(
        Clock::start(),
        store,
        Arc::clone(&cluster) as _,
        config,
        DriverConfig::default(),
    );
    let handle = driver.handle.clone();
    let mut scheduler = fixtures::scheduler("arena");
    scheduler.rooms_replicas = i64::try_from(rooms).expect("rooms fit i64");
    ready_fleet(&handle, &cluster, scheduler).await;

    let started = Instant::now();
    let workers: Vec<_> = (0..matchmakers)
        .map(|_| {
            let handle = handle.clone();
            tokio::spawn(async move {
                let mut latency = Histogram::<u64>::new(3).expect("histogram");
                let mut taken = Vec::new();
                loop {
                    let sent = Instant::now();
                    match handle.allocate("arena".into(), None).await {
                        Ok(a) => {
                            latency.saturating_record(sent.elapsed().as_micros() as u64);
                            taken.push(a.room);
                        }
                        Err(AllocateError::NoRoomAvailable) => return (latency, taken),
                        Err(e) => panic!("allocate: {e}"),
                    }
                }
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new(3).expect("histogram");
    let mut all = BTreeSet::new();
    let mut count = 0usize;
    for worker in workers {
        let (h, taken) = worker.await.expect("matchmaker");
        latency.add(&h).expect("same bounds");
        count += taken.len();
        all.extend(taken);
    }
    let elapsed = started.elapsed();
    assert_eq!(all.len(), count, "a room was handed out twice");
    assert_eq!(count, rooms, "every room was allocated once");
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{matchmakers:>3} matchmakers | {rooms:>6} allocations in {:>6.2} s | {:>8.0}/s | p50 {:>6.2} ms | p99 {:>6.2} ms | p999 {:>6.2} ms",
        elapsed.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        ms(0.999),
    );
    driver.stop().await.expect("the store settles");
}

fn main() {
    let rooms: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    println!("durable allocations through the driver (sled, flush + fsync per group)");
    for matchmakers in MATCHMAKERS {
        let dir = bench_dir();
        std::fs::create_dir_all(&dir).expect("bench dir");
        let dir = tempfile::tempdir_in(&dir).expect("temp dir");
        let store = Arc::new(SledStore::open(dir.path()).expect("store"));
        runtime.block_on(run(store, rooms, matchmakers));
    }
    let Some(base) = std::env::var(POSTGRES_URL_VAR)
        .ok()
        .filter(|u| !u.is_empty())
    else {
        println!("({POSTGRES_URL_VAR} is not set: PostgreSQL not measured)");
        return;
    };
    println!("durable allocations through the driver (PostgreSQL, one transaction per group)");
    for matchmakers in MATCHMAKERS {
        let url = fresh_postgres_schema(&base, &format!("bench_allocate_{matchmakers}"));
        let store = Arc::new(PostgresStore::connect(&url).expect("store"));
        runtime.block_on(run(store, rooms, matchmakers));
    }
}
