//! The Kubernetes runtime driven through the in-process fake API server
//! (`support`): the real kube client, the real rate limit, retries and
//! watch, against an API server whose state and faults the test controls.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use maestro_engine::room::{Address, AddressPort, HostPort, InstanceStatus, RemovalReason};
use maestro_engine::scheduler::*;
use maestro_engine::time::Time;
use maestro_engine::version::Version;
use maestro_runtimes::kubernetes::{KubernetesConfig, KubernetesRuntime, RetryConfig};
use maestro_runtimes::{InstanceEvent, InstanceEventKind, RoomSpec, Runtime, RuntimeErrorKind};
use serde_json::json;
use support::{FakeKube, Fault};
use tokio::sync::mpsc;

const SCHEDULER: &str = "arena";

fn config() -> KubernetesConfig {
    KubernetesConfig {
        qps: 1000.0,
        burst: 1000,
        retry: RetryConfig {
            max_attempts: 5,
            initial_backoff_ms: 5,
            max_backoff_ms: 40,
        },
        watch_backoff_initial_ms: 20,
        watch_backoff_max_ms: 100,
        ..KubernetesConfig::default()
    }
}

fn runtime(fake: &FakeKube, config: KubernetesConfig) -> KubernetesRuntime {
    KubernetesRuntime::from_service(fake.router(), config)
}

fn scheduler() -> Scheduler {
    Scheduler {
        name: SCHEDULER.to_string(),
        game: "game".to_string(),
        state: SchedulerState::Creating,
        spec: Spec {
            version: "v1.2.0".to_string(),
            termination_grace_period_secs: 30,
            containers: vec![Container {
                name: "game".to_string(),
                image: "registry.example/game:1".to_string(),
                image_pull_policy: "Always".to_string(),
                command: vec!["./run".to_string(), "--port=7777".to_string()],
                environment: vec![EnvVar {
                    name: "MODE".into(),
                    value: Some("prod".into()),
                    value_from: None,
                }],
                requests: Resources {
                    memory: "128Mi".into(),
                    cpu: "100m".into(),
                },
                limits: Resources {
                    memory: "256Mi".into(),
                    cpu: "1".into(),
                },
                ports: vec![
                    ContainerPort {
                        name: "game".into(),
                        protocol: "udp".into(),
                        port: 7777,
                        host_port: 0,
                        host_port_range: None,
                    },
                    ContainerPort {
                        name: "admin".into(),
                        protocol: "tcp".into(),
                        port: 8080,
                        host_port: 0,
                        host_port_range: None,
                    },
                ],
            }],
            toleration: "gameservers".into(),
            affinity: "maestro-dedicated".into(),
            restart_policy: "OnFailure".into(),
        },
        port_range: Some(PortRange {
            start: 20000,
            end: 21000,
        }),
        rooms_replicas: 2,
        max_surge: "25%".into(),
        autoscaling: None,
        forwarders: Vec::new(),
        annotations: BTreeMap::from([("team".to_string(), "games".to_string())]),
        labels: BTreeMap::from([("app".to_string(), "arena".to_string())]),
        match_allocation: MatchAllocation::default(),
        created_at: Time::ZERO,
        last_downscale_at: None,
        rollback_version: None,
    }
}

fn room(name: &str) -> RoomSpec {
    let host_port = |name: &str, protocol: &str, container_port, host_port| HostPort {
        container: "game".into(),
        name: name.into(),
        protocol: protocol.into(),
        container_port,
        host_port,
    };
    RoomSpec {
        scheduler: SCHEDULER.to_string(),
        room: name.to_string(),
        version: Version {
            major: 1,
            minor: 2,
            patch: 0,
        },
        spec: Arc::new(scheduler()),
        host_ports: vec![
            host_port("game", "udp", 7777, 20001),
            host_port("admin", "tcp", 8080, 20002),
        ],
        is_validation_room: false,
        extra_env: Vec::new(),
    }
}

/// Drives the watch stream in a task, as the service does, so the watch
/// keeps going (and reconnecting) between the test's reads.
/// Every room's creation at once, through `Runtime::create_room` (the
/// call the driver makes, concurrently, for each room); results in order.
async fn create_all(
    rt: &KubernetesRuntime,
    rooms: &[RoomSpec],
) -> Vec<Result<(), maestro_runtimes::RuntimeError>> {
    futures::future::join_all(rooms.iter().map(|room| rt.create_room(room))).await
}

fn watch(rt: &KubernetesRuntime, scheduler: &str) -> mpsc::Receiver<InstanceEvent> {
    watch_knowing(rt, scheduler, Vec::new())
}

/// A watch started by a caller that believes `known` rooms exist.
fn watch_knowing(
    rt: &KubernetesRuntime,
    scheduler: &str,
    known: Vec<String>,
) -> mpsc::Receiver<InstanceEvent> {
    let mut stream: BoxStream<'static, InstanceEvent> = rt.watch(scheduler, known);
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Some(event) = stream.next().await {
            if tx.send(event).await.is_err() {
                break;
            }
        }
    });
    rx
}

async fn next(events: &mut mpsc::Receiver<InstanceEvent>) -> InstanceEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an instance event within 10 s")
        .expect("the watch stream never ends")
}

/// Asserts nothing more arrives for a while (no duplicate, no stray event).
async fn quiet(events: &mut mpsc::Receiver<InstanceEvent>) {
    if let Ok(event) = tokio::time::timeout(Duration::from_millis(300), events.recv()).await {
        panic!("unexpected event {event:?}");
    }
}

async fn wait_for_watch(fake: &FakeKube) {
    for _ in 0..500 {
        if fake.watch_count() > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the runtime never opened a watch");
}

fn set_status(fake: &FakeKube, pod: &str, status: PodStatus) {
    assert!(
        fake.update_pod(SCHEDULER, pod, |p| p.status = Some(status)),
        "pod {pod} exists"
    );
}

fn condition(type_: &str, status: &str) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        ..PodCondition::default()
    }
}

fn running_ready() -> PodStatus {
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![
            condition("PodScheduled", "True"),
            condition("Ready", "True"),
        ]),
        ..PodStatus::default()
    }
}

#[tokio::test]
async fn scheduler_lifecycle_creates_and_deletes_namespace_and_budget() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());

    rt.create_scheduler(&scheduler()).await.unwrap();
    assert!(fake.namespace_exists(SCHEDULER));
    let pdb = fake.pdb(SCHEDULER, SCHEDULER).expect("a disruption budget");
    let spec = pdb.spec.unwrap();
    assert_eq!(spec.min_available, Some(IntOrString::Int(0)));
    assert_eq!(
        spec.selector.unwrap().match_labels.unwrap(),
        BTreeMap::from([("maestro-scheduler".to_string(), SCHEDULER.to_string())])
    );

    let again = rt.create_scheduler(&scheduler()).await.unwrap_err();
    assert_eq!(again.kind, RuntimeErrorKind::AlreadyExists, "{again}");

    rt.set_disruption_budget(SCHEDULER, 7).await.unwrap();
    let min = |fake: &FakeKube| {
        fake.pdb(SCHEDULER, SCHEDULER)
            .unwrap()
            .spec
            .unwrap()
            .min_available
    };
    assert_eq!(min(&fake), Some(IntOrString::Int(7)));
    rt.set_disruption_budget(SCHEDULER, 95).await.unwrap();
    assert_eq!(min(&fake), Some(IntOrString::Int(95)));
    rt.set_disruption_budget(SCHEDULER, 0).await.unwrap();
    assert_eq!(min(&fake), Some(IntOrString::Int(0)));

    // An unchanged budget is not written again.
    fake.clear_requests();
    rt.set_disruption_budget(SCHEDULER, 0).await.unwrap();
    assert!(
        fake.requests().iter().all(|r| r.method == Method::GET),
        "{:?}",
        fake.requests()
    );

    // A concurrent writer's conflict is retried on a fresh read.
    fake.fail(Fault::new(Method::PUT, "/poddisruptionbudgets/", 409, 2));
    rt.set_disruption_budget(SCHEDULER, 3).await.unwrap();
    assert_eq!(min(&fake), Some(IntOrString::Int(3)));

    rt.delete_scheduler(SCHEDULER).await.unwrap();
    assert!(!fake.namespace_exists(SCHEDULER));
    assert!(fake.pdb(SCHEDULER, SCHEDULER).is_none());
    let gone = rt.delete_scheduler(SCHEDULER).await.unwrap_err();
    assert_eq!(gone.kind, RuntimeErrorKind::NotFound, "{gone}");
}

#[tokio::test]
async fn missing_budget_is_created_on_set() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    // The budget was lost (deleted by hand): setting it creates it again.
    fake.fail(Fault::new(Method::POST, "/poddisruptionbudgets", 500, 100));
    rt.delete_scheduler(SCHEDULER).await.unwrap();
    fake.clear_faults();
    // Creating the scheduler while budget creation fails still succeeds.
    fake.fail(Fault::new(Method::POST, "/poddisruptionbudgets", 403, 1));
    rt.create_scheduler(&scheduler()).await.unwrap();
    assert!(fake.pdb(SCHEDULER, SCHEDULER).is_none());
    rt.set_disruption_budget(SCHEDULER, 4).await.unwrap();
    assert_eq!(
        fake.pdb(SCHEDULER, SCHEDULER)
            .unwrap()
            .spec
            .unwrap()
            .min_available,
        Some(IntOrString::Int(4))
    );
}

#[tokio::test]
async fn room_pod_is_exactly_upstreams() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    rt.create_room(&room("arena-bcdfg")).await.unwrap();

    let mut pod = serde_json::to_value(fake.pod(SCHEDULER, "arena-bcdfg").unwrap()).unwrap();
    // What the server adds (not maestro's doing).
    for key in ["uid", "resourceVersion", "creationTimestamp"] {
        pod["metadata"].as_object_mut().unwrap().remove(key);
    }
    pod.as_object_mut().unwrap().remove("status");
    let expected = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "arena-bcdfg",
            "namespace": "arena",
            "labels": {"app": "arena", "heritage": "maestro", "maestro-scheduler": "arena", "version": "v1.2.0"},
            "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "true", "team": "games"}
        },
        "spec": {
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "maestro-dedicated", "operator": "In", "values": ["true"]}]}
            ]}}},
            "containers": [{
                "name": "game",
                "image": "registry.example/game:1",
                "imagePullPolicy": "Always",
                "command": ["./run", "--port=7777"],
                "env": [
                    {"name": "MODE", "value": "prod"},
                    {"name": "MAESTRO_SCHEDULER_NAME", "value": "arena"},
                    {"name": "MAESTRO_ROOM_ID", "value": "arena-bcdfg"}
                ],
                "ports": [
                    {"name": "game", "protocol": "UDP", "containerPort": 7777, "hostPort": 20001},
                    {"name": "admin", "protocol": "TCP", "containerPort": 8080, "hostPort": 20002}
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "256Mi"}
                }
            }],
            "restartPolicy": "OnFailure",
            "terminationGracePeriodSeconds": 30,
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gameservers", "effect": "NoSchedule"}],
            "topologySpreadConstraints": [{
                "maxSkew": 5,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"maestro-scheduler": "arena"}}
            }]
        }
    });
    assert_eq!(pod, expected);

    let dup = rt.create_room(&room("arena-bcdfg")).await.unwrap_err();
    assert_eq!(dup.kind, RuntimeErrorKind::AlreadyExists, "{dup}");

    let mut elsewhere = room("other-bcdfg");
    elsewhere.scheduler = "other".into();
    let missing = rt.create_room(&elsewhere).await.unwrap_err();
    assert_eq!(missing.kind, RuntimeErrorKind::NotFound, "{missing}");

    // A spec the pod cannot express fails before any request.
    let mut bad = room("arena-xxxxx");
    let mut s = scheduler();
    s.spec.containers[0].requests.cpu = "a lot".into();
    bad.spec = Arc::new(s);
    fake.clear_requests();
    assert_eq!(
        rt.create_room(&bad).await.unwrap_err().kind,
        RuntimeErrorKind::Invalid
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn server_answers_map_to_error_kinds() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    for (status, kind) in [
        (422, RuntimeErrorKind::Invalid),
        (400, RuntimeErrorKind::Invalid),
        (403, RuntimeErrorKind::Internal),
        (409, RuntimeErrorKind::AlreadyExists),
    ] {
        fake.fail(Fault::new(Method::POST, "/pods", status, 1));
        let err = rt.create_room(&room("arena-zzzzz")).await.unwrap_err();
        assert_eq!(err.kind, kind, "{status}: {err}");
        assert!(
            err.message.contains("create pod arena/arena-zzzzz"),
            "{err}"
        );
    }
    fake.fail(Fault::new(Method::DELETE, "/pods/", 409, 1));
    let err = rt
        .delete_room(SCHEDULER, "arena-zzzzz", RemovalReason::ScaleDown)
        .await
        .unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::Conflict, "{err}");
    let err = rt
        .delete_room(SCHEDULER, "arena-nope", RemovalReason::ScaleDown)
        .await
        .unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::NotFound, "{err}");
}

#[tokio::test]
async fn watch_follows_pods_through_their_phases() {
    let fake = FakeKube::new();
    fake.add_node(
        "node-a",
        &[
            ("InternalIP", "10.0.0.7"),
            ("ExternalIP", "203.0.113.7"),
            ("ExternalDNS", "a.nodes.example"),
        ],
    );
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    let mut events = watch(&rt, SCHEDULER);
    rt.create_room(&room("arena-aaaaa")).await.unwrap();

    let created = next(&mut events).await;
    assert_eq!(
        created,
        InstanceEvent {
            scheduler: SCHEDULER.into(),
            room: "arena-aaaaa".into(),
            kind: InstanceEventKind::Upsert,
            status: InstanceStatus::Pending,
            description: String::new(),
            address: None,
            version: Some(Version {
                major: 1,
                minor: 2,
                patch: 0
            }),
        }
    );

    // Unschedulable: pending, with the scheduler's reason.
    set_status(
        &fake,
        "arena-aaaaa",
        PodStatus {
            phase: Some("Pending".into()),
            conditions: Some(vec![PodCondition {
                type_: "PodScheduled".into(),
                status: "False".into(),
                reason: Some("Unschedulable".into()),
                message: Some("0/3 nodes are available".into()),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        },
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.status, e.description.as_str()),
        (
            InstanceStatus::Pending,
            "Unschedulable: 0/3 nodes are available"
        )
    );

    // Scheduled and running: ready, with the node's preferred address.
    fake.update_pod(SCHEDULER, "arena-aaaaa", |p| {
        p.spec.as_mut().unwrap().node_name = Some("node-a".into());
        p.status = Some(running_ready());
    });
    let ready = next(&mut events).await;
    assert_eq!(ready.status, InstanceStatus::Ready);
    assert_eq!(
        ready.address,
        Some(Address {
            host: "a.nodes.example".into(),
            ports: vec![
                AddressPort {
                    name: "game".into(),
                    port: 20001,
                    protocol: "UDP".into()
                },
                AddressPort {
                    name: "admin".into(),
                    port: 20002,
                    protocol: "TCP".into()
                },
            ],
        })
    );

    // A change that does not change the instance emits nothing.
    fake.update_pod(SCHEDULER, "arena-aaaaa", |p| {
        p.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert("touched".into(), "yes".into());
    });
    quiet(&mut events).await;

    // Crash loop: error with the reason and message.
    let mut crashing = running_ready();
    crashing.container_statuses = Some(vec![ContainerStatus {
        name: "game".into(),
        state: Some(ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("CrashLoopBackOff".into()),
                message: Some("back-off 10s restarting failed container".into()),
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }]);
    set_status(&fake, "arena-aaaaa", crashing);
    let e = next(&mut events).await;
    assert_eq!(
        (e.status, e.description.as_str()),
        (
            InstanceStatus::Error,
            "CrashLoopBackOff: back-off 10s restarting failed container"
        )
    );
    assert!(e.address.is_some(), "the address stays known");

    // The node was read once: later events use the cache.
    let node_reads = fake
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/nodes/"))
        .count();
    assert_eq!(node_reads, 1);

    // Deleting records why, then the pod's deletion is reported once.
    rt.delete_room(SCHEDULER, "arena-aaaaa", RemovalReason::ScaleDown)
        .await
        .unwrap();
    let deleted = next(&mut events).await;
    assert_eq!(
        (deleted.kind, deleted.room.as_str()),
        (InstanceEventKind::Deleted, "arena-aaaaa")
    );
    let recorded = fake.events(SCHEDULER);
    assert_eq!(recorded.len(), 1);
    let event = &recorded[0];
    assert_eq!(event.reason.as_deref(), Some("GameRoomDeleted"));
    assert_eq!(
        event.message.as_deref(),
        Some("game room deleted: scale_down")
    );
    assert_eq!(event.involved_object.name.as_deref(), Some("arena-aaaaa"));
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(
        event.source.as_ref().and_then(|s| s.component.as_deref()),
        Some("maestro-next")
    );
    quiet(&mut events).await;
}

#[tokio::test]
async fn watch_resumes_after_a_cut_without_losing_or_repeating_events() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    rt.create_room(&room("arena-aaaaa")).await.unwrap();
    rt.create_room(&room("arena-bbbbb")).await.unwrap();

    let mut events = watch(&rt, SCHEDULER);
    let mut listed = vec![next(&mut events).await.room, next(&mut events).await.room];
    listed.sort();
    assert_eq!(listed, ["arena-aaaaa", "arena-bbbbb"]);
    wait_for_watch(&fake).await;

    // The connection drops and the server refuses new watches for a while;
    // meanwhile a pod is deleted and another created and made ready.
    fake.fail(Fault::watches(500, usize::MAX));
    fake.cut_watches();
    fake.remove_pod(SCHEDULER, "arena-aaaaa");
    rt.create_room(&room("arena-ccccc")).await.unwrap();
    set_status(&fake, "arena-ccccc", running_ready());
    // Let it fail twice (the watch retries 20, 40, 80 ms apart), then
    // come back.
    let failed_watches = || {
        fake.requests()
            .iter()
            .filter(|r| r.watch && r.status == 500)
            .count()
    };
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        while failed_watches() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "the watch is retried while refused");
    fake.clear_faults();

    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str()),
        (InstanceEventKind::Deleted, "arena-aaaaa")
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str(), e.status),
        (
            InstanceEventKind::Upsert,
            "arena-ccccc",
            InstanceStatus::Pending
        )
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str(), e.status),
        (
            InstanceEventKind::Upsert,
            "arena-ccccc",
            InstanceStatus::Ready
        )
    );
    quiet(&mut events).await;

    // It resumed from its resource version: one list in all.
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pods") && r.method == Method::GET && !r.watch)
        .count();
    assert_eq!(lists, 1);
}

#[tokio::test]
async fn watch_relists_after_410_and_reports_pods_deleted_meanwhile() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    for name in ["arena-aaaaa", "arena-bbbbb", "arena-ccccc"] {
        rt.create_room(&room(name)).await.unwrap();
    }
    let mut events = watch(&rt, SCHEDULER);
    for _ in 0..3 {
        assert_eq!(next(&mut events).await.kind, InstanceEventKind::Upsert);
    }
    wait_for_watch(&fake).await;

    // Down long enough for the history to be compacted: resuming gets 410.
    fake.fail(Fault::watches(503, usize::MAX));
    fake.cut_watches();
    fake.remove_pod(SCHEDULER, "arena-bbbbb");
    set_status(&fake, "arena-ccccc", running_ready());
    rt.create_room(&room("arena-ddddd")).await.unwrap();
    fake.compact();
    fake.clear_faults();

    // The relist reports what changed, and only that: ccccc ready, ddddd
    // new (in list order), then bbbbb deleted once the list is complete.
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str(), e.status),
        (
            InstanceEventKind::Upsert,
            "arena-ccccc",
            InstanceStatus::Ready
        )
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str(), e.status),
        (
            InstanceEventKind::Upsert,
            "arena-ddddd",
            InstanceStatus::Pending
        )
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str()),
        (InstanceEventKind::Deleted, "arena-bbbbb")
    );
    quiet(&mut events).await;
    let lists = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pods") && r.method == Method::GET && !r.watch)
        .count();
    assert_eq!(lists, 2, "one list, one relist after 410");

    // And it keeps following live changes afterwards.
    wait_for_watch(&fake).await;
    fake.remove_pod(SCHEDULER, "arena-aaaaa");
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str()),
        (InstanceEventKind::Deleted, "arena-aaaaa")
    );
}

#[tokio::test]
async fn deleting_the_scheduler_deletes_its_rooms() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    let rooms: Vec<RoomSpec> = (0..3)
        .map(|i| room(&format!("arena-{i}{i}{i}{i}{i}")))
        .collect();
    for room in &rooms {
        rt.create_room(room).await.unwrap();
    }
    let mut events = watch(&rt, SCHEDULER);
    for _ in 0..3 {
        next(&mut events).await;
    }
    wait_for_watch(&fake).await;
    rt.delete_scheduler(SCHEDULER).await.unwrap();
    let mut deleted: Vec<String> = Vec::new();
    for _ in 0..3 {
        let e = next(&mut events).await;
        assert_eq!(e.kind, InstanceEventKind::Deleted);
        deleted.push(e.room);
    }
    deleted.sort();
    assert_eq!(deleted, ["arena-00000", "arena-11111", "arena-22222"]);
    assert!(fake.pod_names(SCHEDULER).is_empty());
}

#[tokio::test]
async fn creation_retries_429_and_5xx_with_backoff_then_gives_up() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    let posts = |fake: &FakeKube| {
        fake.requests()
            .into_iter()
            .filter(|r| r.method == Method::POST && r.path.ends_with("/pods"))
            .collect::<Vec<_>>()
    };

    // Three 429s, then success on the fourth attempt, after 5 + 10 + 20 ms.
    fake.clear_requests();
    fake.fail(Fault::new(Method::POST, "/pods", 429, 3));
    rt.create_room(&room("arena-aaaaa")).await.unwrap();
    let attempts = posts(&fake);
    assert_eq!(
        attempts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 429, 429, 200]
    );
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, min_ms) in gaps.iter().zip([5, 10, 20]) {
        assert!(*gap >= Duration::from_millis(min_ms), "backoff {gaps:?}");
    }

    // A flood of 429s: bounded attempts, then RateLimited.
    fake.clear_requests();
    fake.fail(Fault::new(Method::POST, "/pods", 429, 1000));
    let err = rt.create_room(&room("arena-bbbbb")).await.unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::RateLimited, "{err}");
    assert_eq!(posts(&fake).len(), 5);
    fake.clear_faults();

    // 500s likewise end as Unavailable.
    fake.clear_requests();
    fake.fail(Fault::new(Method::POST, "/pods", 500, 1000));
    let err = rt.create_room(&room("arena-bbbbb")).await.unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::Unavailable, "{err}");
    assert_eq!(posts(&fake).len(), 5);
    fake.clear_faults();

    // Errors that a retry cannot fix are not retried.
    fake.clear_requests();
    fake.fail(Fault::new(Method::POST, "/pods", 422, 1000));
    assert_eq!(
        rt.create_room(&room("arena-bbbbb")).await.unwrap_err().kind,
        RuntimeErrorKind::Invalid
    );
    assert_eq!(posts(&fake).len(), 1);
    fake.clear_faults();

    // The server created the pod but the answer was lost: the retry's 409
    // is our own pod, so the creation succeeded.
    fake.fail(Fault {
        after_apply: true,
        ..Fault::new(Method::POST, "/pods", 503, 1)
    });
    rt.create_room(&room("arena-ccccc")).await.unwrap();
    assert!(fake.pod(SCHEDULER, "arena-ccccc").is_some());
}

/// On tokio's paused clock, so the bucket's timing is exact however busy
/// the machine is.
#[tokio::test(start_paused = true)]
async fn client_side_rate_limit_holds_under_load() {
    let fake = FakeKube::new();
    let (qps, burst) = (40.0, 5);
    let rt = runtime(
        &fake,
        KubernetesConfig {
            qps,
            burst,
            create_batch_size: 8,
            ..config()
        },
    );
    rt.create_scheduler(&scheduler()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // let the bucket refill
    fake.clear_requests();

    // 25 rooms, a third of the attempts answered 429 (then retried).
    fake.fail(Fault::new(Method::POST, "/pods", 429, 10));
    let rooms: Vec<RoomSpec> = (0..25).map(|i| room(&format!("arena-{i:05}"))).collect();
    // Concurrently, as the driver issues them (each creation waits for one
    // of the `create_batch_size` slots).
    let start = tokio::time::Instant::now();
    let results = create_all(&rt, &rooms).await;
    let elapsed = start.elapsed();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.pod_names(SCHEDULER).len(), 25);

    let requests = fake.requests();
    assert_eq!(requests.len(), 35, "25 creations + 10 retries");
    // 35 requests with 5 at once and 40/s after: at least 30 / 40 s.
    assert!(elapsed >= Duration::from_millis(740), "took {elapsed:?}");
    // No window ever saw more than the bucket allows.
    for (i, first) in requests.iter().enumerate() {
        for (j, last) in requests.iter().enumerate().skip(i) {
            let window = (last.at - first.at).as_secs_f64();
            let allowed = f64::from(burst) + window * qps + 1.0;
            assert!(
                ((j - i + 1) as f64) <= allowed,
                "{} requests in {window:.3}s",
                j - i + 1
            );
        }
    }
}

#[tokio::test]
async fn creations_are_bounded_in_flight() {
    let fake = FakeKube::new();
    let rt = Arc::new(runtime(
        &fake,
        KubernetesConfig {
            create_batch_size: 3,
            ..config()
        },
    ));
    rt.create_scheduler(&scheduler()).await.unwrap();
    fake.set_latency(Duration::from_millis(30));
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let rt = rt.clone();
            tokio::spawn(async move { rt.create_room(&room(&format!("arena-{i:05}"))).await })
        })
        .collect();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    assert_eq!(fake.pod_names(SCHEDULER).len(), 10);
    let most = fake.max_in_flight();
    assert!(
        (2..=3).contains(&most),
        "{most} creations at once; at most create_batch_size (3)"
    );

    // Creations awaited together on one task are bounded the same way (a
    // fresh server, so its high-water mark is theirs alone).
    let fake = FakeKube::new();
    let rt = runtime(
        &fake,
        KubernetesConfig {
            create_batch_size: 3,
            ..config()
        },
    );
    rt.create_scheduler(&scheduler()).await.unwrap();
    fake.set_latency(Duration::from_millis(30));
    let rooms: Vec<RoomSpec> = (0..7).map(|i| room(&format!("arena-{i:05}"))).collect();
    let results = create_all(&rt, &rooms).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.pod_names(SCHEDULER).len(), 7);
    let most = fake.max_in_flight();
    assert!(
        (2..=3).contains(&most),
        "{most} creations at once; at most create_batch_size (3)"
    );
}

#[tokio::test]
async fn connect_builds_a_client_from_kubeconfig_or_master_url() {
    use maestro_runtimes::kubernetes::KubernetesError;
    // Nothing listens on port 9 here: requests fail to connect, which is a
    // transient failure (Unavailable), and prove the client was built.
    let dir = std::env::temp_dir().join(format!("maestro-runtimes-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\n\
         users:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
         current-context: x\n",
    )
    .unwrap();
    let quick = RetryConfig {
        max_attempts: 1,
        ..RetryConfig::default()
    };

    let rt = KubernetesRuntime::connect(KubernetesConfig {
        kubeconfig: Some(path.clone()),
        retry: quick.clone(),
        ..config()
    })
    .await
    .unwrap();
    let err = rt.create_scheduler(&scheduler()).await.unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::Unavailable, "{err}");

    let rt = KubernetesRuntime::connect(KubernetesConfig {
        kubeconfig: None,
        master_url: Some("http://127.0.0.1:9".into()),
        retry: quick,
        ..config()
    })
    .await
    .unwrap();
    let err = rt
        .delete_room(SCHEDULER, "arena-aaaaa", RemovalReason::UserRequest)
        .await
        .unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::Unavailable, "{err}");

    let none = KubernetesRuntime::connect(KubernetesConfig {
        kubeconfig: None,
        master_url: None,
        ..config()
    })
    .await;
    assert!(matches!(none, Err(KubernetesError::NotConfigured)));
    let missing = KubernetesRuntime::connect(KubernetesConfig {
        kubeconfig: Some(dir.join("nope.yaml")),
        ..config()
    })
    .await;
    assert!(matches!(missing, Err(KubernetesError::Kubeconfig { .. })));
    let bad_url = KubernetesRuntime::connect(KubernetesConfig {
        kubeconfig: None,
        master_url: Some("not a url".into()),
        ..config()
    })
    .await;
    assert!(matches!(bad_url, Err(KubernetesError::MasterUrl { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

/// After a restart the service starts each watch with the rooms it
/// restored: those whose pods went away while it was down come back as
/// `Deleted` from the first listing; the others as the cluster has them.
#[tokio::test]
async fn a_watch_reports_known_rooms_without_a_pod_as_deleted() {
    let fake = FakeKube::new();
    let rt = runtime(&fake, config());
    rt.create_scheduler(&scheduler()).await.unwrap();
    rt.create_room(&room("arena-alive")).await.unwrap();
    let known = vec!["arena-alive".to_string(), "arena-ghost".to_string()];
    let mut events = watch_knowing(&rt, SCHEDULER, known);
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str()),
        (InstanceEventKind::Upsert, "arena-alive")
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.kind, e.room.as_str()),
        (InstanceEventKind::Deleted, "arena-ghost")
    );
    quiet(&mut events).await;
}
