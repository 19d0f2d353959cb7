//! Durable enqueues per second: how many operations the sled store makes
//! durable each second, against the disk's raw fsync rate.
//!
//! Every figure is measured in the same run, on the same filesystem (a
//! temporary directory under the workspace's `target/`, or under
//! `MAESTRO_BENCH_DIR`), each for a fixed duration:
//!
//! - `raw fsync, overwrite`: write 4 KiB at an offset of a preallocated
//!   file, then `File::sync_data`: the disk's physical limit for one writer.
//! - `raw fsync, append`: the same, growing the file (each sync also
//!   commits the file's new size, as a log's appends do).
//! - `store.apply + flush`: N writer threads, each enqueueing one operation
//!   with `Store::apply` and then `Store::flush` (sled's flush and an
//!   fsync): no sharing beyond what sled and the kernel do by themselves.
//! - `driver turn`: what the service's driver does with the requests of one
//!   turn: one `Store::apply` of a batch holding N writers' enqueues, then
//!   one `Store::flush` that makes all of them durable (the driver's group
//!   commit; N is at most its `max_batch`, 256 by default). One thread, as
//!   the driver is one task; each enqueue's latency is the whole turn.
//!
//! - `postgres turn` (with `MAESTRO_BENCH_POSTGRES_URL` set): the driver's
//!   turn on PostgreSQL, one transaction per flush (COMMIT waits for the
//!   server's WAL flush), on a fresh schema.
//!
//! The measurements run round robin in ten slices each (0.3 s by default),
//! so that other load on a shared disk, which comes in bursts, falls on all
//! of them alike; the table sums the slices, and each pass's raw fsync rate
//! is printed to show how steady the disk was.
//!
//! Run: `cargo bench -p maestro-benches --bench store` (add `-- 6` for six
//! seconds per measurement instead of three).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use maestro_benches::{POSTGRES_URL_VAR, fresh_postgres_schema};
use maestro_engine::{Definition, Operation, Time};
use maestro_store::{Kv, PostgresStore, SledStore, Store, Write};

const THREADS: [usize; 3] = [1, 4, 16];
/// Writers whose enqueues one driver turn applies and flushes together, up
/// to the driver's default `max_batch`.
const TURN_SIZES: [usize; 5] = [1, 4, 16, 64, 256];
/// Each measurement runs in this many slices, interleaved with the others.
const PASSES: u32 = 10;

struct Figure {
    name: String,
    /// Writer threads, or writers sharing one driver turn.
    writers: usize,
    ops: u64,
    elapsed: Duration,
    /// Per-operation latencies, sorted.
    latencies: Vec<Duration>,
}

impl Figure {
    fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    fn add(&mut self, more: Figure) {
        self.ops += more.ops;
        self.elapsed += more.elapsed;
        self.latencies.extend(more.latencies);
    }

    /// Of sorted latencies.
    fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i]
    }
}

fn bench_dir() -> PathBuf {
    match std::env::var_os("MAESTRO_BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// Runs `step` on `threads` threads until `duration` has passed; each call
/// makes the number of operations it returns durable, each with the call's
/// latency. `writers` is what the figure is reported under.
fn run_threads<S>(
    name: &str,
    threads: usize,
    writers: usize,
    duration: Duration,
    make_step: impl Fn(usize) -> S,
) -> Figure
where
    S: FnMut() -> usize + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let mut step = make_step(t);
            let (stop, start) = (Arc::clone(&stop), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    let began = Instant::now();
                    let ops = step();
                    let took = began.elapsed();
                    latencies.extend(std::iter::repeat_n(took, ops));
                }
                latencies
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // The last operations finish after the stop: count the time they took.
    let elapsed = began.elapsed();
    latencies.sort();
    Figure {
        name: name.to_string(),
        writers,
        ops: latencies.len() as u64,
        elapsed,
        latencies,
    }
}

fn raw_fsync(dir: &Path, duration: Duration, append: bool) -> Figure {
    const BLOCK: u64 = 4096;
    const BLOCKS: u64 = 256;
    let path = dir.join(if append { "append" } else { "overwrite" });
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    if !append {
        // Preallocate and sync once, so that each later sync is data only.
        file.write_at(&vec![0u8; (BLOCK * BLOCKS) as usize], 0)
            .unwrap();
        file.sync_all().unwrap();
    }
    let file: Arc<File> = Arc::new(file);
    let name = if append {
        "raw fsync, append 4 KiB"
    } else {
        "raw fsync, overwrite 4 KiB"
    };
    let figure = run_threads(name, 1, 1, duration, move |_| {
        let file = Arc::clone(&file);
        let block = vec![7u8; BLOCK as usize];
        let mut n = 0u64;
        move || {
            let offset = if append {
                n * BLOCK
            } else {
                (n % BLOCKS) * BLOCK
            };
            file.write_at(&block, offset).unwrap();
            file.sync_data().unwrap();
            n += 1;
            1
        }
    });
    std::fs::remove_file(&path).unwrap();
    figure
}

/// A new pending operation, as an enqueue writes it.
fn enqueue(thread: usize, n: u64, keys: &AtomicI64) -> Write {
    let key = keys.fetch_add(1, Ordering::Relaxed);
    Write::Operation(Box::new(Operation::new(
        format!("op-{thread}-{n}"),
        "arena".to_string(),
        Definition::AddRooms { amount: 1 },
        Time(1_000 + key as u64),
        key,
    )))
}

fn store_flush_each(dir: &Path, threads: usize, duration: Duration) -> Figure {
    let db = tempfile::tempdir_in(dir).unwrap();
    let store = Arc::new(SledStore::open(db.path()).unwrap());
    let keys = Arc::new(AtomicI64::new(0));
    run_threads(
        "store.apply + store.flush",
        threads,
        threads,
        duration,
        |t| {
            let (store, keys) = (Arc::clone(&store), Arc::clone(&keys));
            let mut n = 0;
            move || {
                n += 1;
                store.apply(Time(1), &[enqueue(t, n, &keys)]).unwrap();
                store.flush().unwrap();
                1
            }
        },
    )
}

/// The driver's turn: `writers` enqueues applied as one batch, then one
/// flush for all of them.
fn driver_turn(dir: &Path, writers: usize, duration: Duration) -> Figure {
    let db = tempfile::tempdir_in(dir).unwrap();
    let store = Arc::new(SledStore::open(db.path()).unwrap());
    turn(store, "driver turn: apply + flush", writers, duration)
}

/// The driver's turn on PostgreSQL, in the schema of `url`.
fn postgres_turn(url: &str, writers: usize, duration: Duration) -> Figure {
    let store = Arc::new(PostgresStore::connect(url).unwrap());
    turn(store, "postgres turn: apply+commit", writers, duration)
}

fn turn<K: Kv + 'static>(
    store: Arc<Store<K>>,
    name: &str,
    writers: usize,
    duration: Duration,
) -> Figure {
    let keys = Arc::new(AtomicI64::new(0));
    run_threads(name, 1, writers, duration, |_| {
        let (store, keys) = (Arc::clone(&store), Arc::clone(&keys));
        let mut n = 0;
        move || {
            let batch: Vec<Write> = (0..writers)
                .map(|w| {
                    n += 1;
                    enqueue(w, n, &keys)
                })
                .collect();
            store.apply(Time(1), &batch).unwrap();
            store.flush().unwrap();
            writers
        }
    })
}

fn main() {
    // `cargo bench` passes `--bench`; a number is the seconds per measurement.
    let secs = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<u64>().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(secs);
    let parent = bench_dir();
    std::fs::create_dir_all(&parent).unwrap();
    let dir = tempfile::tempdir_in(&parent).unwrap();
    println!(
        "store bench: {}s per measurement, in {}",
        secs,
        dir.path().display()
    );

    // One schema per turn size, reused by every pass (its keys never repeat).
    let postgres: Vec<(usize, String)> = match std::env::var(POSTGRES_URL_VAR) {
        Ok(base) if !base.is_empty() => TURN_SIZES
            .iter()
            .map(|&w| (w, fresh_postgres_schema(&base, &format!("bench_turn_{w}"))))
            .collect(),
        _ => {
            println!("({POSTGRES_URL_VAR} is not set: PostgreSQL not measured)");
            Vec::new()
        }
    };

    // Round robin in short slices, so that other load on the machine (the
    // disk is shared) falls on every measurement alike.
    let slice = duration / PASSES;
    let mut figures: Vec<Figure> = Vec::new();
    for pass in 0..PASSES {
        let mut results = vec![
            raw_fsync(dir.path(), slice, false),
            raw_fsync(dir.path(), slice, true),
        ];
        for threads in THREADS {
            results.push(store_flush_each(dir.path(), threads, slice));
        }
        for writers in TURN_SIZES {
            results.push(driver_turn(dir.path(), writers, slice));
        }
        for (writers, url) in &postgres {
            results.push(postgres_turn(url, *writers, slice));
        }
        let sixteen = |f: &&Figure| f.writers == 16;
        let mut of_sixteen = results.iter().filter(sixteen).map(Figure::rate);
        println!(
            "pass {:>2}: raw fsync {:>5.0}/s, flush each x16 {:>5.0}/s, driver turn x16 {:>5.0}/s",
            pass + 1,
            results[0].rate(),
            of_sixteen.next().unwrap_or(0.0),
            of_sixteen.next().unwrap_or(0.0)
        );
        if figures.is_empty() {
            figures = results;
        } else {
            for (total, more) in figures.iter_mut().zip(results) {
                total.add(more);
            }
        }
    }
    for f in &mut figures {
        f.latencies.sort();
    }

    let raw = figures[0].rate();
    println!();
    println!(
        "| {:<28} | {:>7} | {:>7} | {:>10} | {:>9} | {:>9} | {:>9} |",
        "measurement", "writers", "ops", "ops/s", "vs fsync", "p50", "p99"
    );
    println!(
        "|{:-<30}|{:->9}|{:->9}|{:->12}|{:->11}|{:->11}|{:->11}|",
        ":", ":", ":", ":", ":", ":", ":"
    );
    for f in &figures {
        println!(
            "| {:<28} | {:>7} | {:>7} | {:>10.0} | {:>8.2}x | {:>9.2?} | {:>9.2?} |",
            f.name,
            f.writers,
            f.ops,
            f.rate(),
            f.rate() / raw,
            f.percentile(0.5),
            f.percentile(0.99)
        );
    }
}
