//! `maestro migrate` against real servers, as a team moving from Maestro
//! Next would run it: a PostgreSQL loaded with upstream's schema (its seven
//! migrations) and rows in upstream's exact format
//! (`tests/fixtures/maestro-next/`), a Redis with upstream's key layout for
//! the rooms, and for the adoption test the real kube-apiserver holding
//! pods as upstream creates them, with the test playing the kubelet and the
//! game servers. `scripts/test` starts the three servers; without them
//! these tests fail and say how to start them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maestro_engine::room::{InstanceStatus, PingStatus, RoomStatus};
use maestro_store::SledStore;
use serde_json::{Value, json};
use support::{Maestro, rooms, wait_for};

const POSTGRES_ENV: &str = "MAESTRO_STORE_TEST_POSTGRES_URL";
const REDIS_ENV: &str = "MAESTRO_TEST_REDIS_URL";

fn env(name: &str, start: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            panic!("{name} is not set: this test needs it. Start one with `eval \"$({start} up | tail -1)\"` (scripts/test does).")
        })
}

/// A database of its own on the test server, holding upstream's schema and
/// the fixture's rows; dropped at the end.
struct Upstream {
    admin: String,
    name: String,
    url: String,
}

impl Upstream {
    /// Maestro Next's database: upstream's schema and the fixture's rows.
    fn new(test: &str) -> Upstream {
        let upstream = Upstream::empty(test);
        let mut db = upstream.db();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/maestro-next");
        for file in ["schema.sql", "rows.sql"] {
            let sql = std::fs::read_to_string(fixtures.join(file)).unwrap();
            db.batch_execute(&sql)
                .unwrap_or_else(|e| panic!("loading {file}: {e}"));
        }
        upstream
    }

    /// An empty database of its own.
    fn empty(test: &str) -> Upstream {
        let server = env(POSTGRES_ENV, "scripts/postgres");
        let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
        let name = format!("upstream_{test}_{}", std::process::id());
        let admin = format!("{base}/postgres");
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).expect("the server");
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            client.batch_execute(&statement).expect("a database");
        }
        let url = format!("{base}/{name}");
        Upstream { admin, name, url }
    }

    fn db(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).unwrap()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Redis database `index` of the test server, emptied.
fn redis(index: u8) -> (String, redis::Connection) {
    let server = env(REDIS_ENV, "scripts/redis");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let url = format!("{base}/{index}");
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .expect("the Redis server");
    redis::cmd("FLUSHDB").exec(&mut conn).unwrap();
    (url, conn)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A room as upstream's room storage writes it (a MULTI of HSET and three
/// ZADDs) and its runtime watcher's instance in `podMap`.
struct UpstreamRoom<'a> {
    id: &'a str,
    version: &'a str,
    status: u8,
    ping_status: u8,
    occupancy: u64,
    allocated_at: Option<u64>,
    validation: bool,
}

fn write_room(conn: &mut redis::Connection, scheduler: &str, room: &UpstreamRoom<'_>) {
    let now = unix_now();
    let key = format!("scheduler:{scheduler}:rooms:{}", room.id);
    let mut hset = redis::cmd("HSET");
    hset.arg(&key)
        .arg("version")
        .arg(room.version)
        .arg("metadata")
        .arg(r#"{"map":"court-3"}"#)
        .arg("ping_status")
        .arg(room.ping_status.to_string())
        .arg("is_validation_room")
        .arg(if room.validation { "1" } else { "0" })
        .arg("created_at")
        .arg(now - 600);
    if let Some(at) = room.allocated_at {
        hset.arg("allocated_at").arg(at);
    }
    hset.exec(conn).unwrap();
    let zadd = |set: &str, score: f64, conn: &mut redis::Connection| {
        redis::cmd("ZADD")
            .arg(format!("scheduler:{scheduler}:{set}"))
            .arg(score)
            .arg(room.id)
            .exec(conn)
            .unwrap();
    };
    zadd("status", f64::from(room.status), conn);
    zadd("ping", (now - 5) as f64, conn);
    zadd("occupancy", room.occupancy as f64, conn);
    let instance = json!({
        "id": room.id,
        "schedulerId": scheduler,
        "status": {"type": 2, "description": ""},
        "address": {"host": "10.0.0.7", "ports": [{"name": "game", "port": 20123, "protocol": "UDP"}]},
        "resourceVersion": "4242"
    });
    redis::cmd("HSET")
        .arg(format!("scheduler:{scheduler}:podMap"))
        .arg(room.id)
        .arg(instance.to_string())
        .exec(conn)
        .unwrap();
}

/// `maestro migrate ARGS` on `data_dir`: exit code and output.
fn migrate(data_dir: &Path, args: &[&str]) -> (i32, String) {
    migrate_with_env(data_dir, args, &[])
}

fn migrate_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .envs(env.iter().copied())
        .arg("migrate")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("maestro runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("maestro migrate {args:?}:\n{stdout}{stderr}");
    (output.status.code().unwrap_or(-1), stdout + &stderr)
}

/// What upstream's API shows for the `arena` rows of the fixture (reference
/// §2.1: the active version is the `schedulers` row; times as RFC 3339;
/// the forwarder timeout as the stored number; the restart policy, which
/// upstream does not store, as `Never`).
fn arena_as_upstream_shows_it() -> Value {
    json!({
        "name": "arena",
        "game": "tennis",
        "state": "in-sync",
        "portRange": {"start": 20000, "end": 30000},
        "maxSurge": "25%",
        "roomsReplicas": 3,
        "spec": {
            "version": "v2.0.0",
            "terminationGracePeriod": "45s",
            "containers": [{
                "name": "game",
                "image": "registry.example/arena:2",
                "imagePullPolicy": "IfNotPresent",
                "command": ["./run", "--ranked"],
                "environment": [
                    {"name": "MODE", "value": "ranked"},
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "arena-secrets", "key": "api-key"}}}
                ],
                "requests": {"memory": "128Mi", "cpu": "250m"},
                "limits": {"memory": "256Mi", "cpu": "500m"},
                "ports": [
                    {"name": "game", "protocol": "udp", "port": 7777, "hostPort": 0},
                    {"name": "admin", "protocol": "tcp", "port": 8080, "hostPort": 0}
                ]
            }],
            "toleration": "tennis",
            "affinity": "",
            "restartPolicy": "Never"
        },
        "autoscaling": {
            "enabled": true, "min": 2, "max": 20, "cooldown": 60,
            "policy": {"type": "roomOccupancy", "parameters": {"roomOccupancy": {"readyTarget": 0.5, "downThreshold": 0.99}}}
        },
        "forwarders": [{
            "name": "matchmaker", "enable": true, "type": "gRPC",
            "address": "matchmaker-events.tennis:9090",
            "options": {"timeout": "1500", "metadata": {"region": "eu-west", "tier": 2}}
        }],
        "annotations": {"owner": "pvp-team"},
        "labels": {"team": "pvp"},
        "matchAllocation": {"maxMatches": 1},
        // maestro shows a scheduler's creation (`schedulers.created_at`) in
        // every view; upstream's GET shows its newest version's
        // (docs/COMPATIBILITY.md).
        "createdAt": "2025-03-01T10:00:00Z"
    })
}

/// The import round-trips: every scheduler the fixture holds in good shape
/// comes over with its whole history and the same active version, and the
/// Management API shows what upstream's shows for the same rows. The broken
/// rows are each named (scheduler, version, field) and the others still
/// imported. A dry run writes nothing; an imported scheduler refuses
/// commands until it is switched.
#[test]
fn schedulers_and_versions_come_over_as_upstream_shows_them() {
    let upstream = Upstream::new("versions");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    let (code, out) = migrate(
        &data,
        &[
            "from-maestro-next",
            "--postgres",
            &upstream.url,
            "--dry-run",
        ],
    );
    assert_eq!(code, 1, "problems make the exit non-zero");
    assert!(out.contains("dry run: 1 scheduler(s) would be imported, 3 problem(s)"));
    assert!(!data.exists(), "a dry run created the store");

    let (code, out) = migrate(&data, &["from-maestro-next", "--postgres", &upstream.url]);
    assert_eq!(code, 1);
    for problem in [
        "NOT IMPORTED: scheduler broken-yaml, version v1.0.0: yaml: is not YAML",
        "NOT IMPORTED: scheduler odd-policy, version v1.0.0: Autoscaling.Policy.Type: unknown autoscaling type \"targetTracking\"",
        "NOT IMPORTED: scheduler prerelease, version v1.1.0-rc.1: version: \"v1.1.0-rc.1\" is not a version maestro reads",
    ] {
        assert!(out.contains(problem), "missing {problem:?} in:\n{out}");
    }
    assert!(out.contains("arena: 3 version(s), active v2.0.0"), "{out}");
    assert!(out.contains("imported 1 scheduler(s)"), "{out}");
    // Run again: the imported one is left as it is.
    let (_, again) = migrate(
        &data,
        &[
            "from-maestro-next",
            "--postgres",
            &upstream.url,
            "--scheduler",
            "arena",
        ],
    );
    assert!(again.contains("arena: already imported"), "{again}");

    // What a hand-back would write for each version is upstream's own
    // document (Go's nil and empty collections aside), not merely
    // something maestro's reader accepts.
    {
        let store = SledStore::open(&data).unwrap();
        let stored = store.load().unwrap();
        let mut db = upstream.db();
        for v in &stored[0].versions {
            let yaml: String = db
                .query_one(
                    "SELECT yaml FROM scheduler_versions WHERE name = 'arena' AND version = $1",
                    &[&v.scheduler.spec.version],
                )
                .unwrap()
                .get(0);
            let upstreams: Value = serde_saphyr::from_str(&yaml).unwrap();
            let written: Value =
                serde_json::from_str(&maestro::migrate::handback::info_yaml(&v.scheduler)).unwrap();
            assert_eq!(
                without_empties(written),
                without_empties(upstreams),
                "version {}",
                v.scheduler.spec.version
            );
        }
    }

    let m = Maestro::start(&data);
    let (status, body) = m.get("/schedulers/arena");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scheduler"], arena_as_upstream_shows_it());
    let (_, listed) = m.get("/schedulers");
    let names: Vec<&str> = listed["schedulers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["arena"], "nothing half-imported");
    let (_, versions) = m.get("/schedulers/arena/versions");
    assert_eq!(
        versions["versions"],
        json!([
            {"version": "v2.0.0", "isActive": true, "createdAt": "2025-05-01T09:15:30.500Z"},
            {"version": "v1.1.0", "isActive": false, "createdAt": "2025-04-01T12:00:00Z"},
            {"version": "v1.0.0", "isActive": false, "createdAt": "2025-03-01T10:00:00Z"}
        ])
    );
    let (_, v1) = m.get("/schedulers/arena?version=v1.1.0");
    let v1 = &v1["scheduler"];
    assert_eq!(v1["spec"]["version"], "v1.1.0");
    assert_eq!(v1["roomsReplicas"], 5);
    assert_eq!(
        v1["spec"]["containers"][0]["image"],
        "registry.example/arena:1"
    );
    assert_eq!(v1["spec"]["terminationGracePeriod"], "30s");
    assert_eq!(v1["forwarders"], json!([]));
    assert!(v1.get("autoscaling").is_none_or(Value::is_null), "{v1}");

    // Watch-only until switched: a command is refused, saying what to do.
    let (status, body) = set_replicas(&m, 4);
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("maestro migrate switch arena")),
        "{body}"
    );
    m.kill();

    let (code, out) = migrate(&data, &["switch", "arena"]);
    assert_eq!(code, 0, "{out}");
    let (_, status) = migrate(&data, &["status"]);
    assert!(status.contains("arena\tswitched"), "{status}");
    let m = Maestro::start(&data);
    let (status, body) = set_replicas(&m, 4);
    assert_eq!(status, 200, "switched: maestro manages it: {body}");
    let op = support::op_id(&body);
    wait_for(
        "the new version's operation",
        Duration::from_secs(30),
        || support::operation(&m, "arena", &op)["status"] == "finished",
    );
    m.kill();

    // And back: watch-only again, commands refused again.
    let (code, out) = migrate(&data, &["unswitch", "arena"]);
    assert_eq!(code, 0, "{out}");
    let m = Maestro::start(&data);
    let (status, body) = set_replicas(&m, 5);
    assert_eq!(status, 400, "unswitched: {body}");
    m.kill();
    let (code, out) = migrate(&data, &["switch", "nonexistent"]);
    assert_eq!(code, 2);
    assert!(out.contains("was not imported from Maestro Next"), "{out}");
}

/// A Go document with its nulls and empty collections dropped: Go writes a
/// nil slice or map as null and an empty one as [] or {}, and reads all
/// three the same.
fn without_empties(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, without_empties(v)))
                .filter(|(_, v)| !is_empty(v))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_empties).collect()),
        other => other,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `PATCH /schedulers/arena` with a new replica count.
fn set_replicas(m: &Maestro, replicas: u32) -> (u16, Value) {
    m.send(
        "PATCH",
        m.url("/schedulers/arena"),
        &json!({ "roomsReplicas": replicas }),
    )
}

/// Everything upstream holds, as text: PostgreSQL's scheduler rows and
/// every Redis key's serialized value. The import reads, never writes.
fn upstream_state(
    upstream: &Upstream,
    conn: &mut redis::Connection,
) -> (String, Vec<(String, Vec<u8>)>) {
    let rows = upstream
        .db()
        .query_one(
            "SELECT string_agg(t, '|' ORDER BY t) FROM ( \
               SELECT concat_ws(',', name, game, yaml, state, version, created_at, updated_at) AS t FROM schedulers \
               UNION ALL SELECT concat_ws(',', name, version, yaml, created_at, rollback_version) FROM scheduler_versions) all_rows",
            &[],
        )
        .unwrap()
        .get::<_, String>(0);
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(conn).unwrap();
    keys.sort();
    let values = keys
        .into_iter()
        .map(|k| {
            let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query(conn).unwrap();
            (k, dump)
        })
        .collect();
    (rows, values)
}

/// The rooms come over from Redis as they are upstream: an occupied,
/// active or allocated room is exactly that from the first second, the
/// allocation's time is kept (its TTL runs on), and each room keeps its
/// version, occupancy, metadata and address. A room that cannot be read is
/// named, and its scheduler is not imported at all until it can be.
#[test]
fn rooms_come_over_with_their_status_occupancy_and_allocation() {
    let upstream = Upstream::new("rooms");
    let (redis_url, mut conn) = redis(1);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let allocated_at = unix_now() - 30;
    let rooms = [
        UpstreamRoom {
            id: "arena-ready",
            version: "v2.0.0",
            status: 2,
            ping_status: 1,
            occupancy: 0,
            allocated_at: None,
            validation: false,
        },
        UpstreamRoom {
            id: "arena-busy",
            version: "v1.1.0",
            status: 3,
            ping_status: 2,
            occupancy: 1,
            allocated_at: None,
            validation: false,
        },
        UpstreamRoom {
            id: "arena-taken",
            version: "v2.0.0",
            status: 8,
            ping_status: 1,
            occupancy: 0,
            allocated_at: Some(allocated_at),
            validation: false,
        },
        UpstreamRoom {
            id: "arena-gone",
            version: "v2.0.0",
            status: 6,
            ping_status: 4,
            occupancy: 0,
            allocated_at: None,
            validation: false,
        },
        UpstreamRoom {
            id: "arena-bad",
            version: "2.0",
            status: 2,
            ping_status: 1,
            occupancy: 0,
            allocated_at: None,
            validation: false,
        },
    ];
    for room in &rooms {
        write_room(&mut conn, "arena", room);
    }
    // An operation upstream still has to run.
    redis::cmd("RPUSH")
        .arg("pending_operations:arena")
        .arg("6b1c3f5e-0d1e-4b55-9c1f-2f7f2a3c9d10")
        .exec(&mut conn)
        .unwrap();
    let args = [
        "from-maestro-next",
        "--postgres",
        &upstream.url,
        "--redis",
        &redis_url,
        "--scheduler",
        "arena",
    ];
    let (code, out) = migrate(&data, &args);
    assert_eq!(code, 1);
    assert!(
        out.contains("NOT IMPORTED: scheduler arena, room arena-bad: version: \"2.0\" is not a version maestro reads"),
        "{out}"
    );
    assert!(
        out.contains("NOT IMPORTED: scheduler arena: operations: Maestro Next has 1 operation(s) pending or in progress"),
        "{out}"
    );
    assert!(out.contains("imported 0 scheduler(s)"), "{out}");
    {
        let store = SledStore::open(&data).unwrap();
        assert!(store.load().unwrap().is_empty(), "nothing half-imported");
    }

    // Upstream's worker ran the operation, and its own rooms API would
    // have dropped the unreadable room: so does the test.
    redis::cmd("DEL")
        .arg("pending_operations:arena")
        .exec(&mut conn)
        .unwrap();
    redis::cmd("ZREM")
        .arg("scheduler:arena:status")
        .arg("arena-bad")
        .exec(&mut conn)
        .unwrap();
    let before = upstream_state(&upstream, &mut conn);
    let (code, out) = migrate(&data, &args);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        upstream_state(&upstream, &mut conn),
        before,
        "the import changed Maestro Next's state"
    );
    assert!(
        out.contains("3 room(s) (1 allocated, 1 occupied, 1 ready); 1 terminated room(s) left out"),
        "{out}"
    );
    let store = SledStore::open(&data).unwrap();
    let loaded = store.load().unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].watch_only);
    let by_id: BTreeMap<&str, _> = loaded[0].rooms.iter().map(|r| (r.id.as_str(), r)).collect();
    assert_eq!(
        by_id.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["arena-busy", "arena-ready", "arena-taken"])
    );
    let busy = by_id["arena-busy"];
    assert_eq!(busy.status, RoomStatus::Occupied);
    assert_eq!(busy.running_matches, 1);
    assert_eq!(busy.version.to_string(), "v1.1.0");
    let taken = by_id["arena-taken"];
    assert_eq!(taken.status, RoomStatus::Allocated);
    assert_eq!(
        taken.allocated_at.map(|t| t.0),
        Some(allocated_at * 1000),
        "the allocation's TTL runs on from upstream's time"
    );
    let ready = by_id["arena-ready"];
    assert_eq!(ready.status, RoomStatus::Ready);
    assert_eq!(ready.instance_status, InstanceStatus::Ready);
    assert_eq!(ready.metadata_json, r#"{"map":"court-3"}"#);
    let address = ready.address.as_ref().expect("the instance's address");
    assert_eq!(
        (address.host.as_str(), address.ports[0].port),
        ("10.0.0.7", 20123)
    );
    drop(store);

    // The engine serves them as they are, from the first second: the
    // allocated room stays allocated when it pings `ready` (its match has
    // not started), and only the ready room is handed out.
    let now = maestro_engine::Time(unix_now() * 1000);
    let mut engine = maestro_engine::Engine::new(maestro_engine::EngineConfig::default());
    for stored in loaded {
        engine.restore(now, stored).unwrap();
    }
    for (room, status, running_matches) in [
        ("arena-ready", PingStatus::Ready, 0),
        ("arena-taken", PingStatus::Ready, 0),
        ("arena-busy", PingStatus::Occupied, 1),
    ] {
        let ping = maestro_engine::Ping {
            scheduler: "arena".into(),
            room: room.into(),
            status,
            running_matches,
            metadata_json: "{}".into(),
        };
        engine.handle_ping(now, &ping).unwrap();
    }
    let fleet = engine.fleet("arena").unwrap();
    assert_eq!(
        fleet.get("arena-taken").unwrap().status,
        RoomStatus::Allocated
    );
    assert_eq!(
        fleet.get("arena-busy").unwrap().status,
        RoomStatus::Occupied
    );
    let first = engine.allocate(now, "arena", None).unwrap();
    assert_eq!(first.room, "arena-ready");
    assert!(
        engine.allocate(now, "arena", None).is_err(),
        "nothing else is free"
    );
    engine.check_invariants().unwrap();
}

/// Upstream's pods in a real kube-apiserver (its labels and names), its
/// rooms in Redis: after `migrate` and `switch`, maestro adopts the pods,
/// deletes or recreates none of them and adds none (no surge), and a later
/// major rollout replaces the free rooms only: the occupied and the
/// allocated room keep their pods.
#[test]
fn upstream_pods_are_adopted_and_a_rollout_spares_busy_rooms() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::api::{Api, PostParams};

    let name = format!("migrating-{}", std::process::id());
    let upstream = Upstream::new("pods");
    let (redis_url, mut conn) = redis(2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kubeconfig = support::KubeletAndGameServers::kubeconfig();

    // The scheduler as upstream created it: a copy of the fixture's v1.0.0
    // with 4 rooms.
    let mut db = upstream.db();
    db.batch_execute(&format!(
        "INSERT INTO schedulers (name, game, yaml, state, version, state_last_changed_at) \
         SELECT '{name}', 'tennis', replace(yaml, 'RoomsReplicas: 2', 'RoomsReplicas: 5'), \
                'in-sync', 'v1.0.0', 0 FROM scheduler_versions WHERE name = 'arena' AND version = 'v1.0.0';
         INSERT INTO scheduler_versions (name, version, yaml, rollback_version) \
         SELECT name, version, yaml, '' FROM schedulers WHERE name = '{name}';"
    ))
    .unwrap();

    // Its namespace and pods as upstream's runtime creates them.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(support::kubelet::client());
    runtime.block_on(support::kubelet::ensure_node(&client));
    let pod_names: Vec<String> = ["aaaaa", "bbbbb", "ccccc", "ddddd"]
        .iter()
        .map(|s| format!("{name}-{s}"))
        .collect();
    runtime.block_on(async {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        namespaces.create(&PostParams::default(), &ns).await.unwrap();
        let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
        for pod_name in &pod_names {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {
                    "name": pod_name,
                    "namespace": name,
                    "labels": {"heritage": "maestro", "maestro-scheduler": name, "version": "v1.0.0"},
                    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"}
                },
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "game",
                        "image": "registry.example/arena:1",
                        "ports": [{"containerPort": 7777, "hostPort": 20001, "protocol": "UDP", "name": "game"}],
                        "env": [
                            {"name": "MAESTRO_SCHEDULER_NAME", "value": name},
                            {"name": "MAESTRO_ROOM_ID", "value": pod_name}
                        ]
                    }]
                }
            }))
            .unwrap();
            pods.create(&PostParams::default(), &pod).await.unwrap();
        }
        support::kubelet::sync(&client, &name).await;
    });
    let [free_a, free_b, busy, taken] = [0, 1, 2, 3].map(|i| pod_names[i].clone());
    for (id, status, ping, occupancy, allocated_at) in [
        (&free_a, 2, 1, 0, None),
        (&free_b, 2, 1, 0, None),
        (&busy, 3, 2, 1, None),
        (&taken, 8, 1, 0, Some(unix_now() - 10)),
    ] {
        write_room(
            &mut conn,
            &name,
            &UpstreamRoom {
                id,
                version: "v1.0.0",
                status,
                ping_status: ping,
                occupancy,
                allocated_at,
                validation: false,
            },
        );
    }

    let (code, out) = migrate(
        &data,
        &[
            "from-maestro-next",
            "--postgres",
            &upstream.url,
            "--redis",
            &redis_url,
            "--scheduler",
            &name,
        ],
    );
    assert_eq!(code, 0, "{out}");

    // The game servers: the busy room reports its match, the others ready.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rooms_port = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
    let players = {
        let (stop, rooms_port, name, busy) =
            (stop.clone(), rooms_port.clone(), name.clone(), busy.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let client = runtime.block_on(support::kubelet::client());
            let agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .new_agent();
            let mut seen = BTreeSet::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let pods = runtime.block_on(support::kubelet::sync(&client, &name));
                seen.extend(pods.iter().cloned());
                let port = rooms_port.load(std::sync::atomic::Ordering::Relaxed);
                for pod in pods.iter().filter(|_| port != 0) {
                    let (status, running) = if *pod == busy {
                        ("occupied", 1)
                    } else {
                        ("ready", 0)
                    };
                    let _ = agent
                        .put(&format!(
                            "http://127.0.0.1:{port}/scheduler/{name}/rooms/{pod}/ping"
                        ))
                        .send_json(
                            json!({"status": status, "runningMatches": running, "timestamp": 0}),
                        );
                }
                std::thread::sleep(Duration::from_millis(300));
            }
            seen
        })
    };
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
    let pods_now = || -> BTreeSet<String> {
        runtime.block_on(async {
            let pods: Api<Pod> = Api::namespaced(client.clone(), &name);
            pods.list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.name)
                .collect()
        })
    };
    let original: BTreeSet<String> = pod_names.iter().cloned().collect();
    let confirmed = |m: &Maestro, ready: usize| {
        let listed = rooms(m, &name);
        listed.iter().filter(|(_, s, _)| s == "ready").count() == ready
            && listed
                .iter()
                .any(|(id, s, _)| *id == busy && s == "occupied")
    };

    // Watch-only: the rooms ping maestro and are tracked, but the fleet,
    // one short of its five rooms, is not touched, and commands are refused.
    let start = || Maestro::start_with_env(&data, &["all"], &["--runtime", "kubernetes"], &env);
    let m = start();
    rooms_port.store(m.rooms, std::sync::atomic::Ordering::Relaxed);
    wait_for(
        "the rooms tracked while watch-only",
        Duration::from_secs(30),
        || confirmed(&m, 2),
    );
    for _ in 0..20 {
        assert_eq!(
            pods_now(),
            original,
            "a watch-only scheduler touched the cluster"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let (status, body) = m.send(
        "PATCH",
        m.url(&format!("/schedulers/{name}")),
        &json!({"roomsReplicas": 6}),
    );
    assert_eq!(status, 400, "{body}");
    m.kill();

    // The switch reads the rooms again from upstream's Redis.
    let (code, out) = migrate(&data, &["switch", &name, "--redis", &redis_url]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 room(s) read again"), "{out}");
    let m = start();
    rooms_port.store(m.rooms, std::sync::atomic::Ordering::Relaxed);
    // Managed: the one missing room is added; none of upstream's pods is
    // deleted or recreated, and nothing beyond the five (no surge).
    let mut added = BTreeSet::new();
    wait_for(
        "the fleet at its five rooms",
        Duration::from_secs(30),
        || {
            let now = pods_now();
            assert!(
                now.is_superset(&original),
                "one of upstream's pods was deleted: {now:?}"
            );
            added = now.difference(&original).cloned().collect();
            added.len() == 1
        },
    );
    wait_for("the rooms confirmed", Duration::from_secs(30), || {
        confirmed(&m, 3)
    });
    let fleet = pods_now();
    for _ in 0..20 {
        assert_eq!(
            pods_now(),
            fleet,
            "a pod was created or deleted once the fleet converged"
        );
        std::thread::sleep(Duration::from_millis(150));
    }
    let listed = rooms(&m, &name);
    assert!(
        listed
            .iter()
            .any(|(id, s, _)| *id == taken && s == "allocated"),
        "{listed:?}"
    );

    // A major change: the free rooms are replaced, the busy ones are not.
    let (status, body) = m.send(
        "PATCH",
        m.url(&format!("/schedulers/{name}")),
        &json!({"spec": {"containers":
            support::scheduler(&name, "registry.example/arena:2", None, 5)["spec"]["containers"]
        }}),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("the free rooms replaced", Duration::from_secs(60), || {
        let now = pods_now();
        !now.contains(&free_a) && !now.contains(&free_b) && now.is_disjoint(&added)
    });
    std::thread::sleep(Duration::from_secs(1));
    let now = pods_now();
    assert!(
        now.contains(&busy),
        "the occupied room's pod was deleted: {now:?}"
    );
    assert!(
        now.contains(&taken),
        "the allocated room's pod was deleted: {now:?}"
    );
    let listed = rooms(&m, &name);
    let new_rooms = listed.iter().filter(|(_, _, v)| v == "v2.0.0").count();
    assert!(new_rooms >= 2, "{listed:?}");

    // The way back: once its operations are done, the scheduler is handed
    // back with maestro's view written into upstream's stores: the version
    // maestro created, and the rooms as they are now.
    wait_for("every operation final", Duration::from_secs(60), || {
        support::operations(&m, &name).iter().all(|o| {
            ["finished", "error", "canceled"].contains(&o["status"].as_str().unwrap_or(""))
        })
    });
    m.kill();
    let (code, out) = migrate(
        &data,
        &[
            "unswitch",
            &name,
            "--postgres",
            &upstream.url,
            "--redis",
            &redis_url,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("active version v2.0.0; versions added: v2.0.0"),
        "{out}"
    );
    let maestro_rooms: BTreeMap<String, RoomStatus> = {
        let store = SledStore::open(&data).unwrap();
        let loaded = store.load().unwrap();
        assert!(loaded[0].watch_only, "handed back");
        loaded[0]
            .rooms
            .iter()
            .map(|r| (r.id.clone(), r.status))
            .collect()
    };
    let upstream_rooms: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(format!("scheduler:{name}:status"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut conn)
        .unwrap();
    let upstream_rooms: BTreeMap<String, RoomStatus> = upstream_rooms
        .into_iter()
        .map(|(id, score)| {
            let status = match score as u8 {
                2 => RoomStatus::Ready,
                3 => RoomStatus::Occupied,
                8 => RoomStatus::Allocated,
                other => panic!("{id}: unexpected status {other}"),
            };
            (id, status)
        })
        .collect();
    assert_eq!(
        upstream_rooms, maestro_rooms,
        "upstream's Redis holds the fleet as it is"
    );
    assert_eq!(upstream_rooms[&busy], RoomStatus::Occupied);
    assert_eq!(upstream_rooms[&taken], RoomStatus::Allocated);
    let active: String = upstream
        .db()
        .query_one("SELECT version FROM schedulers WHERE name = $1", &[&name])
        .unwrap()
        .get(0);
    assert_eq!(active, "v2.0.0");
    // What was written back reads as upstream's own rows and rooms.
    let (code, out) = migrate(
        &dir.path().join("again"),
        &[
            "from-maestro-next",
            "--postgres",
            &upstream.url,
            "--redis",
            &redis_url,
            "--scheduler",
            &name,
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("{name}: 2 version(s), active v2.0.0")),
        "{out}"
    );

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = players.join();
    runtime.block_on(async {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let _ = namespaces.delete(&name, &Default::default()).await;
    });
}

/// With maestro's store on PostgreSQL (the highly available layout), the
/// command takes the workers' leader lease: it refuses while a worker
/// leads, and the worker started afterwards loads what it imported.
#[test]
fn on_postgresql_the_command_takes_the_workers_lease() {
    let upstream = Upstream::new("lease");
    let store = Upstream::empty("lease_store");
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MAESTRO_STORE_TYPE", "postgres"),
        ("MAESTRO_STORE_POSTGRES_URL", store.url.as_str()),
        ("MAESTRO_STORE_POSTGRES_LEASEDURATION", "3s"),
    ];
    let args = [
        "from-maestro-next",
        "--postgres",
        &upstream.url,
        "--scheduler",
        "arena",
    ];
    let (code, out) = migrate_with_env(dir.path(), &args, &env);
    assert_eq!(code, 0, "{out}");

    let m = Maestro::start_with_env(dir.path(), &["all"], &[], &env);
    let (status, body) = m.get("/schedulers/arena");
    assert_eq!(status, 200, "the worker loads the import: {body}");
    let (code, out) = migrate_with_env(dir.path(), &["switch", "arena"], &env);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("leads") && out.contains("stop maestro's workers first"),
        "{out}"
    );
    // A graceful stop releases the lease at once.
    // SAFETY: the child's pid, signalled once.
    unsafe { libc::kill(m.child.id() as i32, libc::SIGTERM) };
    let mut m = m;
    let stopped = m.child.wait().unwrap();
    assert!(stopped.success(), "{stopped:?}");
    let (code, out) = migrate_with_env(dir.path(), &["switch", "arena"], &env);
    assert_eq!(code, 0, "{out}");
    let (_, out) = migrate_with_env(dir.path(), &["status"], &env);
    assert!(out.contains("arena\tswitched"), "{out}");
}
