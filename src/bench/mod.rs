//! `maestro bench`: a load generator for a running maestro, measuring as a
//! user would: its own scheduler, rooms pinging over keep-alive
//! connections, matchmakers allocating, latency percentiles from HDR
//! histograms. It stops on its own (bounded in time and in count) and only
//! talks to the addresses it is given.

mod client;
mod rooms;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use hdrhistogram::Histogram;
use hyper::Method;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use client::{Connection, authority};
pub use rooms::Protocol;
use rooms::{Outcome, RoomsClient};

#[derive(Args, Debug)]
pub struct RoomsApiArgs {
    /// The Rooms API, e.g. http://127.0.0.1:8070.
    #[arg(long)]
    pub target: String,
    /// The Management API [default: the target's host, port 8080].
    #[arg(long)]
    pub management: Option<String>,
    /// A management token, when the service asks for one.
    #[arg(long)]
    pub token: Option<String>,
    /// Rooms of the bench's own scheduler (and, with --allocate-rate, of a
    /// second one its matchmakers allocate from).
    #[arg(long, default_value_t = 1_000)]
    pub rooms: u32,
    /// Connections pinging at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value = "10s")]
    pub duration: String,
    /// Allocations a second, or `max` (as fast as the matchmakers can).
    #[arg(long)]
    pub allocate_rate: Option<String>,
    /// Matchmakers allocating at once.
    #[arg(long, default_value_t = 32)]
    pub matchmakers: usize,
    /// A room handed out again within this long of its previous
    /// allocation counts as allocated twice: the shortest match the rooms
    /// play (the embedded default's sim.matchDuration is 60 s).
    #[arg(long, default_value = "60s")]
    pub hold: String,
    /// How long the scheduler's rooms may take to be ready.
    #[arg(long, default_value = "5m")]
    pub ready_timeout: String,
    /// Leave the bench's scheduler in place at the end.
    #[arg(long)]
    pub keep: bool,
    /// End with one JSON line of the figures.
    #[arg(long)]
    pub json: bool,
}

/// Upper bounds that keep a mistyped flag from running away.
const MAX_DURATION: Duration = Duration::from_secs(3600);
const MAX_CONCURRENCY: usize = 4_096;
const MAX_ROOMS: u32 = 1_000_000;

fn duration(flag: &str, text: &str) -> Result<Duration> {
    humantime::parse_duration(text).with_context(|| format!("--{flag}: `{text}` is not a duration"))
}

/// Runs the bench against the Rooms API over `protocol`: `maestro bench
/// rooms-api` (HTTP) or `maestro bench grpc`.
pub fn rooms_api(args: RoomsApiArgs, protocol: Protocol) -> Result<()> {
    let run = duration("duration", &args.duration)?;
    if run > MAX_DURATION {
        bail!(
            "--duration: at most {}",
            humantime::format_duration(MAX_DURATION)
        );
    }
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        bail!("--concurrency: between 1 and {MAX_CONCURRENCY}");
    }
    if args.rooms == 0 || args.rooms > MAX_ROOMS {
        bail!("--rooms: between 1 and {MAX_ROOMS}");
    }
    let rate = match args.allocate_rate.as_deref() {
        None => None,
        Some("max") => Some(None),
        Some(r) => {
            let r: f64 = r
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r > 0.0)
                .with_context(|| {
                    format!("--allocate-rate: `{r}` is not a positive number or `max`")
                })?;
            Some(Some(r))
        }
    };
    let target = authority(&args.target)?;
    let management = match &args.management {
        Some(url) => authority(url)?,
        None => {
            let host = target.rsplit_once(':').map_or(target.as_str(), |(h, _)| h);
            format!("{host}:8080")
        }
    };
    let ttl = duration("hold", &args.hold)?;
    let ready_timeout = duration("ready-timeout", &args.ready_timeout)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut admin = Connection::open(&management, args.token.clone()).await?;
        // Pings and allocations go to schedulers of their own: a room the
        // bench pinged `ready` while a match held it would be freed (as
        // upstream frees it), and counted as allocated twice.
        let name = format!("bench-{}", std::process::id());
        let matchmaking = format!("{name}-mm");
        let mut created = vec![name.clone()];
        let result = async {
            let rooms = setup(&mut admin, &name, args.rooms, ready_timeout).await?;
            if rate.is_some() {
                created.push(matchmaking.clone());
                setup(&mut admin, &matchmaking, args.rooms, ready_timeout).await?;
            }
            eprintln!(
                "{} rooms ready; running for {}",
                rooms.len(),
                humantime::format_duration(run)
            );
            load(
                protocol,
                &target,
                &name,
                &matchmaking,
                rooms,
                &args,
                rate,
                run,
                ttl,
            )
            .await
        }
        .await;
        if !args.keep {
            for scheduler in &created {
                let (status, body) = admin
                    .json(
                        Method::DELETE,
                        &format!("/schedulers/{scheduler}"),
                        &json!({}),
                    )
                    .await?;
                if status >= 300 {
                    eprintln!("warning: deleting scheduler {scheduler}: {status} {body}");
                }
            }
        }
        let figures = result?;
        print_figures(&figures, args.json);
        Ok(())
    })
}

/// Creates the scheduler, waits for its rooms, lists them.
async fn setup(
    admin: &mut Connection,
    name: &str,
    rooms: u32,
    timeout: Duration,
) -> Result<Vec<String>> {
    let scheduler = json!({
        "name": name, "game": "bench", "maxSurge": "25%", "roomsReplicas": rooms,
        "spec": {"terminationGracePeriod": "30s", "containers": [{
            "name": "game", "image": "bench:1", "imagePullPolicy": "IfNotPresent",
            "requests": {"memory": "64Mi", "cpu": "10m"}, "limits": {"memory": "64Mi", "cpu": "10m"},
            "ports": [{"name": "game", "protocol": "udp", "port": 7777}]}]},
        "portRange": {"start": 20000, "end": 60000}
    });
    let (status, body) = admin.json(Method::POST, "/schedulers", &scheduler).await?;
    if status != 200 {
        bail!("creating the bench's scheduler {name}: {status} {body}");
    }
    let started = Instant::now();
    loop {
        let (status, body) = admin
            .json(Method::GET, "/schedulers/info", &json!({}))
            .await?;
        let ready = body["schedulers"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == name))
            .and_then(|s| {
                s["roomsReady"]
                    .as_u64()
                    .or_else(|| s["roomsReady"].as_str()?.parse().ok())
            })
            .unwrap_or(0);
        if status == 200 && ready >= u64::from(rooms) {
            break;
        }
        if started.elapsed() > timeout {
            bail!(
                "{ready} of {rooms} rooms ready after {}",
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The room listing route, a page at a time.
    let mut ids = Vec::with_capacity(rooms as usize);
    for page in 1.. {
        let path = format!("/schedulers/{name}/rooms?page={page}&perPage=1000");
        let (status, body) = admin.json(Method::GET, &path, &json!({})).await?;
        if status != 200 {
            bail!("listing the rooms: {status} {body}");
        }
        let listed = body["rooms"].as_array().cloned().unwrap_or_default();
        if listed.is_empty() || page > 10_000 {
            break;
        }
        ids.extend(
            listed
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string)),
        );
    }
    if ids.is_empty() {
        bail!("the scheduler {name} lists no room");
    }
    Ok(ids)
}

#[derive(Debug)]
struct Figures {
    seconds: f64,
    pings: Histogram<u64>,
    ping_errors: u64,
    allocations: Option<Histogram<u64>>,
    allocate_errors: u64,
    no_room: u64,
    allocated_twice: u64,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant digits are valid"))
    })
}

#[allow(clippy::too_many_arguments)]
async fn load(
    protocol: Protocol,
    target: &str,
    scheduler: &str,
    matchmaking: &str,
    rooms: Vec<String>,
    args: &RoomsApiArgs,
    rate: Option<Option<f64>>,
    run: Duration,
    ttl: Duration,
) -> Result<Figures> {
    let rooms = Arc::new(rooms);
    let deadline = Instant::now() + run;
    let started = Instant::now();
    let mut pingers = Vec::new();
    for worker in 0..args.concurrency {
        let mut conn = RoomsClient::open(protocol, target).await?;
        let (rooms, scheduler) = (Arc::clone(&rooms), scheduler.to_string());
        let workers = args.concurrency;
        pingers.push(tokio::spawn(async move {
            let mut latency = histogram();
            let mut errors = 0u64;
            let mut i = worker;
            while Instant::now() < deadline {
                i = (i + workers) % rooms.len();
                let sent = Instant::now();
                match conn.ping(&scheduler, &rooms[i]).await {
                    Outcome::Answered(()) => {
                        let _ = latency.record(sent.elapsed().as_micros().max(1) as u64);
                    }
                    Outcome::Refused => errors += 1,
                    Outcome::Failed => {
                        errors += 1;
                        conn.recover().await;
                    }
                }
            }
            (latency, errors)
        }));
    }
    let mut matchmakers = Vec::new();
    let allocated: Arc<Mutex<std::collections::BTreeMap<String, Instant>>> = Arc::default();
    let twice = Arc::new(AtomicU64::new(0));
    if let Some(rate) = rate {
        let count = args.matchmakers.clamp(1, MAX_CONCURRENCY);
        for _ in 0..count {
            let mut conn = RoomsClient::open(protocol, target).await?;
            let (allocated, twice) = (Arc::clone(&allocated), Arc::clone(&twice));
            let matchmaking = matchmaking.to_string();
            // Each matchmaker's share of the rate.
            let pause = rate.map(|r| Duration::from_secs_f64(count as f64 / r));
            matchmakers.push(tokio::spawn(async move {
                let mut latency = histogram();
                let (mut errors, mut no_room) = (0u64, 0u64);
                let mut next = Instant::now();
                while Instant::now() < deadline {
                    if let Some(pause) = pause {
                        next += pause;
                        tokio::time::sleep_until(next.into()).await;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    let sent = Instant::now();
                    match conn.allocate(&matchmaking).await {
                        // Only allocations that handed out a room count (a
                        // refusal is not held for a flush).
                        Outcome::Answered(Some(room)) => {
                            let _ = latency.record(sent.elapsed().as_micros().max(1) as u64);
                            let now = Instant::now();
                            let mut held = allocated.lock().await;
                            if held
                                .get(&room)
                                .is_some_and(|at| now.duration_since(*at) < ttl)
                            {
                                twice.fetch_add(1, Ordering::Relaxed);
                            }
                            held.insert(room, now);
                        }
                        Outcome::Answered(None) => no_room += 1,
                        Outcome::Refused => errors += 1,
                        Outcome::Failed => {
                            errors += 1;
                            conn.recover().await;
                        }
                    }
                }
                (latency, errors, no_room)
            }));
        }
    }
    let mut pings = histogram();
    let mut ping_errors = 0;
    for p in pingers {
        let (h, e) = p.await?;
        pings.add(&h).ok();
        ping_errors += e;
    }
    let mut allocations = rate.map(|_| histogram());
    let (mut allocate_errors, mut no_room) = (0, 0);
    for m in matchmakers {
        let (h, e, n) = m.await?;
        if let Some(all) = &mut allocations {
            all.add(&h).ok();
        }
        allocate_errors += e;
        no_room += n;
    }
    Ok(Figures {
        seconds: started.elapsed().as_secs_f64(),
        pings,
        ping_errors,
        allocations,
        allocate_errors,
        no_room,
        allocated_twice: twice.load(Ordering::Relaxed),
    })
}

fn print_figures(f: &Figures, json_line: bool) {
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let rps = |h: &Histogram<u64>| h.len() as f64 / f.seconds.max(1e-9);
    println!(
        "pings:       {:>10.0}/s  p50 {:.3} ms  p99 {:.3} ms  p999 {:.3} ms  ({} ok, {} errors)",
        rps(&f.pings),
        ms(&f.pings, 0.5),
        ms(&f.pings, 0.99),
        ms(&f.pings, 0.999),
        f.pings.len(),
        f.ping_errors
    );
    let mut out = json!({
        "throughput_rps": rps(&f.pings),
        "p50_ms": ms(&f.pings, 0.5),
        "p99_ms": ms(&f.pings, 0.99),
        "p999_ms": ms(&f.pings, 0.999),
        "errors": f.ping_errors,
    });
    if let Some(a) = &f.allocations {
        println!(
            "allocations: {:>10.0}/s  p50 {:.3} ms  p99 {:.3} ms  p999 {:.3} ms  ({} rooms handed out, {} answers without a room, {} errors, {} allocated twice)",
            rps(a),
            ms(a, 0.5),
            ms(a, 0.99),
            ms(a, 0.999),
            a.len(),
            f.no_room,
            f.allocate_errors,
            f.allocated_twice
        );
        if let Value::Object(map) = &mut out {
            map.insert("allocate_throughput_rps".into(), json!(rps(a)));
            map.insert("allocate_p50_ms".into(), json!(ms(a, 0.5)));
            map.insert("allocate_p99_ms".into(), json!(ms(a, 0.99)));
            map.insert("allocate_p999_ms".into(), json!(ms(a, 0.999)));
            map.insert("allocate_errors".into(), json!(f.allocate_errors));
            map.insert("allocate_no_room".into(), json!(f.no_room));
            map.insert("allocated_twice".into(), json!(f.allocated_twice));
        }
    }
    if json_line {
        println!("{out}");
    }
}
