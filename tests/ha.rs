//! The highly available layout, end to end: the real binary as two
//! workers on one real PostgreSQL (one leads, one stands by) and a
//! stateless API process given both, with the test playing the matchmaker
//! (and, against a real kube-apiserver, the kubelet and the game servers).
//!
//! The PostgreSQL server is the one `MAESTRO_STORE_TEST_POSTGRES_URL`
//! names (`eval "$(./scripts/postgres up | tail -1)"`); each test works in
//! a schema of its own.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

const URL_VAR: &str = "MAESTRO_STORE_TEST_POSTGRES_URL";
/// Short, so that the tests take seconds; production defaults to 10 s.
const LEASE: &str = "3s";
/// The takeover test's fleet.
const ROOMS: u32 = 20;

/// A schema of its own on the test server, dropped at the end.
struct Schema {
    base: String,
    name: String,
}

impl Schema {
    fn new(name: &str) -> Schema {
        let base = match std::env::var(URL_VAR) {
            Ok(url) if !url.is_empty() => url,
            _ => panic!(
                "{URL_VAR} is not set: the HA tests need a PostgreSQL server; start one with \
                 `eval \"$(./scripts/postgres up | tail -1)\"`"
            ),
        };
        let name = format!("{name}_{}", std::process::id());
        let mut admin = postgres::Client::connect(&base, postgres::NoTls)
            .unwrap_or_else(|e| panic!("connecting to {base}: {e}"));
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .unwrap();
        Schema { base, name }
    }

    /// The URL that works in this schema.
    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    /// Every record, as the store keeps it.
    fn records(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut client = postgres::Client::connect(&self.url(), postgres::NoTls).unwrap();
        client
            .query("SELECT key, value FROM maestro_kv ORDER BY key", &[])
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A worker on the schema's store, started without waiting: a standby is
/// never ready.
fn worker(dir: &Path, schema: &Schema, env: &[(&str, &str)], runtime: &str) -> Maestro {
    worker_logging_to(dir, schema, env, runtime, None)
}

/// The same, with its log (stderr) written to `log` when given.
fn worker_logging_to(
    dir: &Path,
    schema: &Schema,
    env: &[(&str, &str)],
    runtime: &str,
    log: Option<&Path>,
) -> Maestro {
    let url = schema.url();
    let mut all: Vec<(&str, &str)> = vec![
        ("MAESTRO_STORE_TYPE", "postgres"),
        ("MAESTRO_STORE_POSTGRES_URL", &url),
        ("MAESTRO_STORE_POSTGRES_LEASEDURATION", LEASE),
    ];
    all.extend_from_slice(env);
    let (mut command, [management, rooms, internal]) = Maestro::command(
        dir,
        &["worker", "runtime-watcher"],
        &["--runtime", runtime],
        &all,
    );
    if let Some(log) = log {
        command.stderr(std::fs::File::create(log).expect("a log file"));
    }
    Maestro {
        child: command.spawn().expect("the maestro binary starts"),
        management,
        rooms,
        internal,
    }
}

fn readyz(m: &Maestro) -> Option<u16> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(2)))
        .build()
        .new_agent();
    agent
        .get(&format!("http://127.0.0.1:{}/readyz", m.internal))
        .call()
        .ok()
        .map(|r| r.status().as_u16())
}

/// The stateless API process, given both workers.
fn api(dir: &Path, workers: &[&Maestro]) -> Maestro {
    let urls: Vec<String> = workers
        .iter()
        .map(|w| format!("http://127.0.0.1:{}", w.internal))
        .collect();
    Maestro::start_modules(
        dir,
        &["management-api", "rooms-api"],
        &["--worker-url", &urls.join(",")],
    )
}

/// SIGKILL the leader while the game servers ping and a matchmaker
/// allocates: the standby serves (the first allocation after the kill is
/// printed; the bound asserted is loose, as timing is the benchmark's
/// business), every allocation answered before the kill is still
/// allocated after it, and no room is ever handed out twice.
#[test]
fn a_standby_takes_over_a_killed_leader_and_loses_nothing_acknowledged() {
    let kubeconfig = KubeletAndGameServers::kubeconfig();
    let name = format!("maestro-ha-{}", std::process::id());
    let schema = Schema::new("ha_takeover");
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "MAESTRO_ADAPTERS_RUNTIME_KUBERNETES_KUBECONFIG",
            kubeconfig.as_str(),
        ),
        (
            "MAESTRO_RUNTIMEWATCHER_DISRUPTIONWORKER_INTERVALSECONDS",
            "3600",
        ),
    ];
    let leader = worker(dir.path(), &schema, &env, "kubernetes");
    wait_for("the first worker to lead", Duration::from_secs(30), || {
        readyz(&leader) == Some(200)
    });
    let standby = worker(dir.path(), &schema, &env, "kubernetes");
    wait_for(
        "the second worker to stand by",
        Duration::from_secs(30),
        || readyz(&standby) == Some(503),
    );
    let m = api(dir.path(), &[&leader, &standby]);

    // The kubelet and the game servers, pinging through the API process.
    let cluster = KubeletAndGameServers::start(&name);
    cluster.ping_through(m.rooms);

    let (status, body) = m.post("/schedulers", &scheduler(&name, "game:1", None, ROOMS));
    assert_eq!(status, 200, "{body}");
    wait_for("every room ready", Duration::from_secs(60), || {
        rooms(&m, &name)
            .iter()
            .filter(|(_, s, _)| s == "ready")
            .count()
            == ROOMS as usize
    });
    // A matchmaker allocating all along, the leader's kill included: an
    // answered allocation is acknowledged (with when it was answered); an
    // error (the worker died during the call) is not.
    let allocate = || {
        let (status, body) = m.send(
            "POST",
            m.rooms_url(&format!("/scheduler/{name}/rooms/allocate")),
            &json!({}),
        );
        (status == 200 && body["success"] == true)
            .then(|| body["roomId"].as_str().unwrap_or_default().to_string())
    };
    let stop = AtomicBool::new(false);
    let mut killed_at = None;
    let handed_out: Vec<(String, Instant)> = std::thread::scope(|scope| {
        let matchmaker = scope.spawn(|| {
            let mut handed_out = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Some(room) = allocate() {
                    handed_out.push((room, Instant::now()));
                }
                std::thread::sleep(Duration::from_millis(150));
            }
            handed_out
        });
        // Some allocations before the kill, then the leader dies mid-stream.
        std::thread::sleep(Duration::from_millis(1_000));
        leader.kill();
        killed_at = Some(Instant::now());
        // Until every room is taken, then a little more: nothing else
        // may be handed out.
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline
            && rooms(&m, &name)
                .iter()
                .filter(|(_, s, _)| s == "ready")
                .count()
                > 0
        {
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_secs(2));
        stop.store(true, Ordering::Relaxed);
        matchmaker.join().expect("the matchmaker")
    });
    let killed_at = killed_at.unwrap_or_else(|| unreachable!());
    assert_eq!(readyz(&standby), Some(200), "the standby leads");
    let before: Vec<&String> = handed_out
        .iter()
        .filter(|(_, at)| *at < killed_at)
        .map(|(room, _)| room)
        .collect();
    let first_after = handed_out.iter().find(|(_, at)| *at > killed_at);
    let takeover = first_after.map(|(_, at)| at.duration_since(killed_at));
    eprintln!(
        "takeover: {} allocations before the SIGKILL, the first after it in {takeover:?}",
        before.len()
    );
    assert!(
        !before.is_empty(),
        "the matchmaker allocated before the kill"
    );

    // What was acknowledged before the kill is still allocated after it.
    let listed = rooms(&m, &name);
    for room in &before {
        assert!(
            listed
                .iter()
                .any(|(id, s, _)| id == *room && s == "allocated"),
            "{room}, allocated before the kill, is not allocated after it: {listed:?}"
        );
    }
    drop(cluster);
    // Every room handed out once, and every room handed out.
    let ids: Vec<&String> = handed_out.iter().map(|(room, _)| room).collect();
    let unique: BTreeSet<&&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "a room was handed out twice: {ids:?}"
    );
    // Every room was handed out, but one: an allocation the leader made
    // durable just before the kill may never have been answered.
    assert!(
        (ROOMS as usize - 1..=ROOMS as usize).contains(&ids.len()),
        "{} of {ROOMS} rooms handed out: {ids:?}",
        ids.len()
    );
    let takeover = takeover.unwrap_or_else(|| panic!("no allocation after the kill"));
    assert!(
        takeover < Duration::from_secs(30),
        "the takeover took {takeover:?}"
    );
}

/// SIGSTOP the leader past its lease, let the standby take over, SIGCONT
/// the old leader: it writes nothing and exits.
#[test]
fn a_paused_leader_deposed_by_a_standby_writes_nothing_and_exits() {
    let schema = Schema::new("ha_paused");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("old-leader.log");
    let mut old = worker_logging_to(dir.path(), &schema, &[], "sim", Some(&log));
    wait_for("the first worker to lead", Duration::from_secs(30), || {
        readyz(&old) == Some(200)
    });
    let successor = worker(dir.path(), &schema, &[], "sim");
    wait_for(
        "the second worker to stand by",
        Duration::from_secs(30),
        || readyz(&successor) == Some(503),
    );
    let m = api(dir.path(), &[&old, &successor]);
    // Rooms of the simulated cluster ping the old leader in its process,
    // so it has writes to make when it resumes.
    let (status, body) = m.post("/schedulers", &scheduler("arena", "game:1", None, 3));
    assert_eq!(status, 200, "{body}");
    wait_for("three ready rooms", Duration::from_secs(30), || {
        rooms(&m, "arena")
            .iter()
            .filter(|(_, s, _)| s == "ready")
            .count()
            == 3
    });

    // Allocations just before the pause: the simulated game servers learn
    // of them and report `occupied`, so the old leader has room changes to
    // write when it resumes.
    for _ in 0..2 {
        let (status, body) = m.send(
            "POST",
            m.rooms_url("/scheduler/arena/rooms/allocate"),
            &json!({}),
        );
        assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    }
    let pid = old.child.id() as i32;
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    wait_for("the standby to take over", Duration::from_secs(30), || {
        readyz(&successor) == Some(200)
    });
    // The successor stops (and releases the lease): from now on, a change
    // to the store could only come from the old leader.
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::kill(successor.child.id() as i32, libc::SIGTERM) },
        0
    );
    let mut successor = successor;
    wait_for("the successor to stop", Duration::from_secs(30), || {
        successor.child.try_wait().ok().flatten().is_some()
    });
    let before = schema.records();

    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    let mut exit = None;
    wait_for("the old leader to exit", Duration::from_secs(30), || {
        exit = old.child.try_wait().ok().flatten();
        exit.is_some()
    });
    let exit = exit.unwrap_or_else(|| unreachable!());
    assert!(
        !exit.success(),
        "a deposed leader exits with an error: {exit:?}"
    );
    assert!(
        schema.records() == before,
        "the deposed leader changed the store after it resumed"
    );
    // It stopped for the right reason: a fenced write, or a renewal that
    // found the successor's epoch.
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        said.contains("fenced") || said.contains("another worker took the leader lease"),
        "the old leader's log gives no reason: {said}"
    );
}
