//! End to end: the real binary on the embedded default (sled + the simulated
//! cluster) in a temporary directory, driven over HTTP on loopback.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

#[test]
fn a_scheduler_lives_scales_rolls_over_and_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let m = Maestro::start(dir.path());
    let autoscaling = json!({
        "enabled": true, "min": 2, "max": 20, "cooldown": 0,
        "policy": {"type": "roomOccupancy", "parameters": {"roomOccupancy": {"readyTarget": 0.5, "downThreshold": 0.99}}}
    });

    // Create: the rooms come up.
    let (status, body) = m.post(
        "/schedulers",
        &scheduler("arena", "game:1", Some(autoscaling), 0),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scheduler"]["state"], "creating");
    wait_for("2 ready rooms", Duration::from_secs(20), || {
        number(&info(&m, "arena")["roomsReady"]) == 2
    });

    // Allocations push occupancy over the target: the scale-up decision is
    // taken on the allocation itself (the periodic health check is off).
    let before: Vec<String> = operations(&m, "arena")
        .iter()
        .map(|o| o["id"].to_string())
        .collect();
    for _ in 0..2 {
        let (status, body) = m.send(
            "POST",
            m.rooms_url("/scheduler/arena/rooms/allocate"),
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["success"], true, "{body}");
    }
    let allocated_at = Instant::now();
    let mut reaction = None;
    wait_for("the scale-up operation", Duration::from_secs(10), || {
        let found = operations(&m, "arena")
            .iter()
            .any(|o| o["definitionName"] == "add_rooms" && !before.contains(&o["id"].to_string()));
        if found {
            reaction = Some(allocated_at.elapsed());
        }
        found
    });
    eprintln!(
        "scale-up decision visible over HTTP {:?} after the allocation",
        reaction.unwrap_or_default()
    );
    wait_for("4 rooms in service", Duration::from_secs(20), || {
        let i = info(&m, "arena");
        number(&i["roomsReady"]) + number(&i["roomsOccupied"]) >= 4
    });

    // A major version rolls every room over; busy rooms are never deleted.
    let (status, body) = m.post("/schedulers/arena", &scheduler("arena", "game:2", None, 0));
    assert_eq!(status, 200, "{body}");
    let version_op = op_id(&body);
    wait_for("the rollout", Duration::from_secs(60), || {
        let rooms = rooms(&m, "arena");
        !rooms.is_empty()
            && rooms
                .iter()
                .all(|(_, status, version)| version == "v2.0.0" || status == "terminating")
    });
    assert_eq!(operation(&m, "arena", &version_op)["status"], "finished");
    assert_eq!(
        m.metric("maestro_sim_matches_interrupted_total"),
        0.0,
        "a busy room was deleted"
    );

    // Cancel a version operation while its validation runs.
    let (status, body) = m.post("/schedulers/arena", &scheduler("arena", "game:3", None, 0));
    assert_eq!(status, 200, "{body}");
    let to_cancel = op_id(&body);
    let (status, body) = m.post(
        &format!("/schedulers/arena/operations/{to_cancel}/cancel"),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(operation(&m, "arena", &to_cancel)["status"], "canceled");
    let (status, _) = m.post(
        &format!("/schedulers/arena/operations/{to_cancel}/cancel"),
        &json!({}),
    );
    assert_eq!(status, 409, "a final operation cannot be canceled");
    let names: Vec<String> = operations(&m, "arena")
        .iter()
        .map(|o| o["definitionName"].as_str().unwrap_or_default().to_string())
        .collect();
    for expected in [
        "create_scheduler",
        "add_rooms",
        "create_new_scheduler_version",
        "switch_active_version",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // By now every kind of metric has a series (the fleet gauges are
    // reported every 5 s).
    wait_for("the fleet gauges", Duration::from_secs(10), || {
        m.metric("maestro_worker_max_matches") > 0.0
    });
    m.assert_every_metric_has_help();

    // Delete.
    let (status, body) = m.send("DELETE", m.url("/schedulers/arena"), &Value::Null);
    assert_eq!(status, 200, "{body}");
    wait_for("the scheduler to go", Duration::from_secs(20), || {
        m.get("/schedulers/arena").0 == 404
    });
}

#[test]
fn a_crash_mid_rollout_loses_nothing_and_the_rollout_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let m = Maestro::start(dir.path());
    let mut acknowledged = Vec::new();
    let (status, body) = m.post("/schedulers", &scheduler("arena", "game:1", None, 4));
    assert_eq!(status, 200, "{body}");
    wait_for("4 ready rooms", Duration::from_secs(20), || {
        number(&info(&m, "arena")["roomsReady"]) == 4
    });
    let (status, body) = m.post("/schedulers/arena", &scheduler("arena", "game:2", None, 4));
    assert_eq!(status, 200, "{body}");
    acknowledged.push(op_id(&body));
    wait_for("the rollout to begin", Duration::from_secs(20), || {
        rooms(&m, "arena").iter().any(|(_, _, v)| v == "v2.0.0")
    });
    acknowledged.extend(
        operations(&m, "arena")
            .iter()
            .map(|o| o["id"].as_str().unwrap_or_default().to_string()),
    );
    m.kill(); // SIGKILL, mid-rollout

    let m = Maestro::start(dir.path());
    for id in &acknowledged {
        let (status, body) = m.get(&format!("/schedulers/arena/operations/{id}"));
        assert_eq!(status, 200, "acknowledged operation {id} lost: {body}");
    }
    wait_for(
        "the rollout to finish after the restart",
        Duration::from_secs(60),
        || {
            let rooms = rooms(&m, "arena");
            let serving = rooms
                .iter()
                .filter(|(_, status, _)| status == "ready")
                .count();
            serving == 4
                && rooms
                    .iter()
                    .all(|(_, status, version)| version == "v2.0.0" || status == "terminating")
        },
    );
    for id in &acknowledged {
        let status = operation(&m, "arena", id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            ["finished", "canceled", "error"].contains(&status.as_str()),
            "{id} is {status}"
        );
    }
}

/// A forwarder (a matchmaker, say) that records what maestro sends it.
mod recording_forwarder {
    use std::sync::{Arc, Mutex};

    use maestro_api::proto::eventforwarder::grpc_forwarder_server::{
        GrpcForwarder, GrpcForwarderServer,
    };
    use maestro_api::proto::eventforwarder::{
        PlayerEvent, Response, Room, RoomEvent, RoomInfo, RoomStatus,
    };
    use tonic::{Request, Status};

    /// (method, room id, event type or player id, room type)
    pub type Call = (&'static str, String, String, String);

    #[derive(Clone, Default)]
    pub struct Recorder(pub Arc<Mutex<Vec<Call>>>);

    type Answer = Result<tonic::Response<Response>, Status>;

    impl Recorder {
        fn note(&self, method: &'static str, room: Option<Room>, detail: String) -> Answer {
            let room = room.unwrap_or_default();
            let call = (method, room.room_id, detail, room.room_type);
            self.0.lock().unwrap().push(call);
            Ok(tonic::Response::new(Response {
                code: 200,
                message: String::new(),
            }))
        }

        pub fn calls(&self) -> Vec<Call> {
            self.0.lock().unwrap().clone()
        }
    }

    #[tonic::async_trait]
    impl GrpcForwarder for Recorder {
        async fn send_room_info(&self, _: Request<RoomInfo>) -> Answer {
            self.note("SendRoomInfo", None, String::new())
        }
        async fn send_room_status(&self, r: Request<RoomStatus>) -> Answer {
            self.note("SendRoomStatus", r.into_inner().room, String::new())
        }
        async fn send_room_ping(&self, r: Request<RoomStatus>) -> Answer {
            self.note("SendRoomPing", r.into_inner().room, String::new())
        }
        async fn send_room_resync(&self, r: Request<RoomStatus>) -> Answer {
            self.note("SendRoomResync", r.into_inner().room, String::new())
        }
        async fn send_room_event(&self, r: Request<RoomEvent>) -> Answer {
            let m = r.into_inner();
            self.note("SendRoomEvent", m.room, m.event_type)
        }
        async fn send_player_event(&self, r: Request<PlayerEvent>) -> Answer {
            let m = r.into_inner();
            self.note("SendPlayerEvent", m.room, m.player_id)
        }
    }

    /// Serves the recorder on `port` on a runtime of its own.
    pub fn serve(port: u16) -> (Recorder, tokio::runtime::Runtime) {
        let recorder = Recorder::default();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let service = GrpcForwarderServer::new(recorder.clone());
        runtime.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve(([127, 0, 0, 1], port).into())
                .await
                .unwrap();
        });
        (recorder, runtime)
    }
}

#[test]
fn events_accepted_while_the_forwarder_is_down_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let forwarder_port = free_port();
    let m = Maestro::start(dir.path());
    let mut s = scheduler("arena", "game:1", None, 2);
    s["forwarders"] = json!([{
        "name": "matchmaker",
        "enable": true,
        "type": "gRPC",
        "address": format!("127.0.0.1:{forwarder_port}"),
        "options": {"timeout": 1000, "metadata": {"roomType": "ranked"}}
    }]);
    let (status, body) = m.post("/schedulers", &s);
    assert_eq!(status, 200, "{body}");
    wait_for("2 ready rooms", Duration::from_secs(20), || {
        number(&info(&m, "arena")["roomsReady"]) == 2
    });
    let room = rooms(&m, "arena")[0].0.clone();
    // The forwarder is down: the events are accepted (durably queued).
    for event in ["e1", "e2", "e3"] {
        let url = m.rooms_url(&format!("/scheduler/arena/rooms/{room}/roomevent"));
        let (status, body) = m.send("POST", url, &json!({"event": event, "metadata": {}}));
        assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    }
    let url = m.rooms_url(&format!("/scheduler/arena/rooms/{room}/playerevent"));
    let body = json!({"event": "playerJoin", "metadata": {"playerId": "p7"}});
    let (status, body) = m.send("POST", url, &body);
    assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    m.kill(); // SIGKILL with the events undelivered

    let m = Maestro::start(dir.path());
    let (recorder, _runtime) = recording_forwarder::serve(forwarder_port);
    wait_for(
        "the queued events to arrive after the restart",
        Duration::from_secs(30),
        || {
            let calls = recorder.calls();
            calls.iter().any(|c| c.0 == "SendPlayerEvent")
                && calls.iter().filter(|c| c.0 == "SendRoomEvent").count() >= 3
        },
    );
    let calls = recorder.calls();
    let events: Vec<&str> = calls
        .iter()
        .filter(|c| c.0 == "SendRoomEvent" && c.1 == room)
        .map(|c| c.2.as_str())
        .collect();
    assert_eq!(events, ["e1", "e2", "e3"], "in order, each once");
    assert!(
        calls
            .iter()
            .any(|c| c.0 == "SendPlayerEvent" && c.1 == room && c.2 == "p7")
    );
    // Pings are forwarded as resyncs, with the forwarder's room type.
    wait_for("ping resyncs", Duration::from_secs(10), || {
        recorder
            .calls()
            .iter()
            .any(|c| c.0 == "SendRoomResync" && c.3 == "ranked")
    });
    assert!(m.metric("maestro_forwarding_events_delivered_total") >= 5.0);
}

#[test]
fn stateless_api_processes_serve_against_a_remote_worker() {
    let dir = tempfile::tempdir().unwrap();
    let worker = Maestro::start_modules(dir.path(), &["worker", "runtime-watcher"], &[]);
    let worker_url = format!("http://127.0.0.1:{}", worker.internal);
    // Two API processes with no store of their own, as a horizontally
    // scaled deployment runs them.
    let api_dir = tempfile::tempdir().unwrap();
    let apis: Vec<Maestro> = (0..2)
        .map(|_| {
            Maestro::start_modules(
                api_dir.path(),
                &["management-api", "rooms-api", "metrics-reporter"],
                &["--worker-url", &worker_url],
            )
        })
        .collect();
    assert!(
        !api_dir.path().join("db").exists(),
        "an API process opens no store"
    );
    let (status, body) = apis[0].post("/schedulers", &scheduler("arena", "game:1", None, 2));
    assert_eq!(status, 200, "{body}");
    // Rooms (simulated by the worker's cluster) come up; the other API
    // process sees them.
    wait_for("2 ready rooms", Duration::from_secs(20), || {
        number(&info(&apis[1], "arena")["roomsReady"]) == 2
    });
    let room = rooms(&apis[1], "arena")[0].0.clone();
    let url = apis[1].rooms_url(&format!("/scheduler/arena/rooms/{room}/ping"));
    let (status, body) = apis[1].send(
        "PUT",
        url,
        &json!({"status": "occupied", "runningMatches": 1}),
    );
    assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    wait_for(
        "the ping to reach the worker",
        Duration::from_secs(5),
        || {
            rooms(&apis[0], "arena")
                .iter()
                .any(|(id, status, _)| id == &room && status == "occupied")
        },
    );
    let url = apis[0].rooms_url("/scheduler/arena/rooms/allocate");
    let (status, body) = apis[0].send("POST", url, &json!({}));
    assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    // The metrics reporter of an API process reports the worker's fleets.
    wait_for(
        "fleet gauges on an API process",
        Duration::from_secs(15),
        || apis[1].metric("maestro_worker_desired_rooms") >= 2.0,
    );

    // Without the worker the APIs say so instead of answering wrongly.
    worker.kill();
    let (status, body) = apis[0].get("/schedulers/arena");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], 14, "{body}");
    let (status, body) = apis[0].post("/schedulers", &scheduler("other", "game:1", None, 1));
    assert_eq!((status, &body["code"]), (503, &json!(14)), "{body}");
    let readyz = ureq::get(&format!("http://127.0.0.1:{}/readyz", apis[0].internal))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(readyz.status(), 503);
}

#[test]
fn api_modules_without_a_worker_or_its_address_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["start", "management-api", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--worker-url"), "{stderr}");
}

#[test]
fn the_binary_serves_grpc_on_the_http_ports() {
    use maestro_api::proto::api::v1::ListSchedulersRequest;
    use maestro_api::proto::api::v1::schedulers_service_client::SchedulersServiceClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;

    let dir = tempfile::tempdir().unwrap();
    let m = Maestro::start(dir.path());
    let (status, body) = m.post("/schedulers", &scheduler("arena", "game:1", None, 1));
    assert_eq!(status, 200, "{body}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("http://127.0.0.1:{}", m.management);
        let channel = tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let health = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: "api.v1.SchedulersService".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(health.status, ServingStatus::Serving as i32);
        let listed = SchedulersServiceClient::connect(url)
            .await
            .unwrap()
            .list_schedulers(ListSchedulersRequest::default())
            .await
            .unwrap()
            .into_inner();
        let names: Vec<&str> = listed.schedulers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["arena"]);
    });
    // The same port still answers HTTP/1.1 JSON.
    let (status, body) = m.get("/schedulers");
    assert_eq!(
        (status, &body["schedulers"][0]["name"]),
        (200, &json!("arena"))
    );
}

/// libfaketime, which shifts the wall clock of the process it is preloaded
/// into (Debian's `faketime` package; `scripts/test` installs it).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// The `Date` header of an answer: the server's wall clock.
fn server_date(m: &Maestro) -> std::time::SystemTime {
    let response = ureq::get(&m.url("/schedulers")).call().expect("answers");
    let date = response
        .headers()
        .get("date")
        .and_then(|d| d.to_str().ok())
        .expect("a Date header")
        .to_string();
    httpdate::parse_http_date(&date).expect("an HTTP date")
}

#[test]
fn a_wall_clock_jump_expires_no_room() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "this test needs libfaketime: apt-get install faketime (scripts/test installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+0\n").unwrap();
    let offset_path = offset.display().to_string();
    let m = Maestro::start_with_env(
        &dir.path().join("data"),
        &["all"],
        &[],
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME_TIMESTAMP_FILE", &offset_path),
            ("FAKETIME_CACHE_DURATION", "1"),
            // Only the wall clock moves; the monotonic clock is real.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let (status, body) = m.post("/schedulers", &scheduler("clock", "game:1", None, 3));
    assert_eq!(status, 200, "{body}");
    wait_for("three ready rooms", Duration::from_secs(30), || {
        rooms(&m, "clock")
            .iter()
            .filter(|(_, s, _)| s == "ready")
            .count()
            == 3
    });
    let (status, body) = m.send(
        "POST",
        m.rooms_url("/scheduler/clock/rooms/allocate"),
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let mut before: Vec<String> = rooms(&m, "clock").into_iter().map(|r| r.0).collect();
    before.sort();
    let date_before = server_date(&m);

    // Two hours forward: far past the 30 s ping timeout.
    std::fs::write(&offset, "+7200\n").unwrap();
    wait_for("the wall clock to jump", Duration::from_secs(10), || {
        server_date(&m)
            .duration_since(date_before)
            .is_ok_and(|d| d >= Duration::from_secs(3600))
    });
    // Every room pings several times and the engine's timers run; none
    // expires, none is replaced.
    let watch_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < watch_until {
        let now = rooms(&m, "clock");
        let mut ids: Vec<String> = now.iter().map(|r| r.0.clone()).collect();
        ids.sort();
        assert_eq!(ids, before, "rooms were replaced after the jump: {now:?}");
        assert!(
            now.iter().all(|(_, s, _)| s != "terminating"),
            "a room was expired by the jump: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(m.metric("maestro_sim_matches_interrupted_total"), 0.0);
}

/// Against a real kube-apiserver, with the test playing the kubelet and
/// the game servers (which ping `ready` until their match starts): a room
/// allocated just before maestro is SIGKILLed is still allocated after the
/// restart, and never handed to a second match. Its pod survives the
/// restart, as pods survive a worker restart.
#[test]
fn a_room_allocated_before_a_sigkill_is_not_allocated_again() {
    let name = format!("maestro-alloc-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = KubeletAndGameServers::kubeconfig();
    let env = [
        (
            "MAESTRO_ADAPTERS_RUNTIME_KUBERNETES_KUBECONFIG",
            kubeconfig.as_str(),
        ),
        // The pods have a 30 s grace period; nothing is deleted here anyway.
        (
            "MAESTRO_RUNTIMEWATCHER_DISRUPTIONWORKER_INTERVALSECONDS",
            "3600",
        ),
    ];
    let start =
        || Maestro::start_with_env(dir.path(), &["all"], &["--runtime", "kubernetes"], &env);
    let cluster = KubeletAndGameServers::start(&name);
    let m = start();
    cluster.ping_through(m.rooms);

    let (status, body) = m.post("/schedulers", &scheduler(&name, "game:1", None, 3));
    assert_eq!(status, 200, "{body}");
    wait_for("three ready rooms", Duration::from_secs(60), || {
        rooms(&m, &name)
            .iter()
            .filter(|(_, s, _)| s == "ready")
            .count()
            == 3
    });
    let allocate = |m: &Maestro| {
        let (status, body) = m.send(
            "POST",
            m.rooms_url(&format!("/scheduler/{name}/rooms/allocate")),
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
        (body["success"] == true).then(|| body["roomId"].as_str().unwrap_or_default().to_string())
    };
    let taken = allocate(&m).expect("a ready room");
    m.kill(); // SIGKILL right after the answer

    let m = start();
    cluster.ping_through(m.rooms);
    // The game servers report again; restored rooms become allocatable
    // once confirmed. The taken one pings `ready` too (its match has not
    // started) but must stay taken.
    let mut handed_out = Vec::new();
    wait_for(
        "the two free rooms allocated",
        Duration::from_secs(60),
        || {
            handed_out.extend(allocate(&m));
            handed_out.len() >= 2
        },
    );
    let listed = rooms(&m, &name);
    assert!(
        listed
            .iter()
            .any(|(id, s, _)| *id == taken && s == "allocated"),
        "{taken} came back allocated: {listed:?}"
    );
    // A few more ping rounds: nothing else is ever handed out.
    for _ in 0..10 {
        handed_out.extend(allocate(&m));
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cluster);
    assert_eq!(handed_out.len(), 2, "{handed_out:?}");
    assert!(
        !handed_out.contains(&taken),
        "{taken} was handed to a second match"
    );
}

/// The largest file under `dir`, in bytes.
fn largest_file(dir: &Path) -> u64 {
    let mut largest = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        largest = largest.max(if meta.is_dir() {
            largest_file(&entry.path())
        } else {
            meta.len()
        });
    }
    largest
}

/// A full disk, for real: the worker runs with a file-size limit
/// (`RLIMIT_FSIZE`, `SIGXFSZ` ignored, so a write past it fails with
/// EFBIG), and schedulers are created until the store cannot write. The
/// worker must stop on its own with a non-zero status and a clear log
/// line, and every creation it acknowledged must be there after a restart.
#[test]
fn a_store_that_cannot_write_stops_the_worker() {
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    Maestro::start(dir.path()).kill(); // an empty store, as it starts
    // sled writes in segments of up to 512 KiB: a few megabytes of room.
    let limit = largest_file(dir.path()) + 4 * 1024 * 1024;
    let (mut command, [management, _, internal]) = Maestro::command(dir.path(), &["all"], &[], &[]);
    command.stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("the maestro binary starts");
    let stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    wait_for("readiness", Duration::from_secs(30), || {
        ureq::get(&format!("http://127.0.0.1:{internal}/readyz"))
            .call()
            .is_ok_and(|r| r.status() == 200)
    });

    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut acknowledged = Vec::new();
    let mut refused = None;
    for i in 0..20_000 {
        let name = format!("s{i:05}");
        let body = scheduler(&name, "game:1", None, 0);
        let answer = agent
            .post(&format!("http://127.0.0.1:{management}/schedulers"))
            .send_json(&body);
        match answer {
            Ok(r) if r.status() == 200 => acknowledged.push(name),
            Ok(r) => {
                refused = Some(r.status().as_u16());
                break;
            }
            Err(_) => break, // the worker is gone
        }
    }
    assert!(!acknowledged.is_empty(), "the store took some writes first");
    if let Some(status) = refused {
        assert_eq!(status, 503, "a refused write answers 503");
    }
    let mut exit = None;
    wait_for(
        "the worker to stop on its own",
        Duration::from_secs(30),
        || {
            exit = child.try_wait().unwrap();
            exit.is_some()
        },
    );
    let exit = exit.unwrap();
    assert!(!exit.success(), "{exit:?}");
    let log = log.join().unwrap();
    assert!(
        log.contains("the store failed"),
        "a clear log line says why: {log}"
    );

    let m = Maestro::start(dir.path());
    for name in &acknowledged {
        let (status, body) = m.get(&format!("/schedulers/{name}"));
        assert_eq!(status, 200, "acknowledged {name} lost: {body}");
    }
}

#[test]
fn a_recording_replays_to_the_same_decisions_even_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("inputs.rec");
    let recording_arg = recording.to_str().unwrap().to_string();
    let m = Maestro::start_modules(
        &dir.path().join("data"),
        &["all"],
        &["--record", &recording_arg],
    );
    let autoscaling = json!({
        "enabled": true, "min": 2, "max": 20, "cooldown": 0,
        "policy": {"type": "roomOccupancy", "parameters": {"roomOccupancy": {"readyTarget": 0.5, "downThreshold": 0.99}}}
    });
    let (status, body) = m.post(
        "/schedulers",
        &scheduler("arena", "game:1", Some(autoscaling), 0),
    );
    assert_eq!(status, 200, "{body}");
    wait_for("2 ready rooms", Duration::from_secs(20), || {
        number(&info(&m, "arena")["roomsReady"]) >= 2
    });
    for _ in 0..6 {
        let (status, body) = m.send(
            "POST",
            m.rooms_url("/scheduler/arena/rooms/allocate"),
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(700));
    }
    // Matches last 4 s here: some end, the fleet scales back.
    std::thread::sleep(Duration::from_secs(5));
    m.kill();

    let replay = |extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_maestro"))
            .args(["sim", "replay", &recording_arg])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stdout, stderr)
    };
    let (ok, stdout, stderr) = replay(&[]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the same decisions as recorded"),
        "{stdout}"
    );
    let agreed: u64 = stdout
        .rsplit('(')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(agreed >= 3, "checkpoints agree along the way: {stdout}");

    // The recorded demand under another policy.
    let other = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim/generous.yaml");
    let (ok, stdout, stderr) = replay(&["--scheduler", other]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("6 recorded matches"), "{stdout}");
    assert!(stdout.contains("occupied rooms deleted"), "{stdout}");
}

#[test]
fn the_load_generator_pings_allocates_and_reports_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let m = Maestro::start(dir.path());
    // Over HTTP, then the same over gRPC on the same rooms port.
    for protocol in ["rooms-api", "grpc"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_maestro"))
            .args(["bench", protocol, "--target"])
            .arg(format!("http://127.0.0.1:{}", m.rooms))
            .arg("--management")
            .arg(format!("http://127.0.0.1:{}", m.management))
            .args(["--rooms", "20", "--concurrency", "4", "--duration", "2s"])
            .args([
                "--allocate-rate",
                "max",
                "--matchmakers",
                "4",
                "--hold",
                "3s",
                "--json",
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{protocol}: {stdout}\n{stderr}");
        let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        for key in [
            "throughput_rps",
            "p50_ms",
            "p99_ms",
            "p999_ms",
            "errors",
            "allocate_throughput_rps",
            "allocate_p50_ms",
            "allocate_p99_ms",
            "allocate_p999_ms",
            "allocated_twice",
        ] {
            assert!(last.get(key).is_some(), "{protocol}: {key} missing: {last}");
        }
        assert!(
            last["throughput_rps"].as_f64().unwrap() > 0.0,
            "{protocol}: {last}"
        );
        assert!(
            last["allocate_throughput_rps"].as_f64().unwrap() > 0.0,
            "{protocol}: {last}"
        );
        assert_eq!(last["errors"], 0, "{protocol}: {last}");
        assert_eq!(last["allocate_errors"], 0, "{protocol}: {last}");
        // Matches last 4 s here, longer than --hold: no room may come back
        // within it.
        assert_eq!(last["allocated_twice"], 0, "{protocol}: {last}");
    }
    // It cleans up after itself.
    wait_for(
        "the bench's schedulers gone",
        Duration::from_secs(20),
        || {
            let (_, body) = m.get("/schedulers");
            !body.to_string().contains("bench-")
        },
    );
}
