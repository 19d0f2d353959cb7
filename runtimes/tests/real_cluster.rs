//! The Kubernetes runtime against a real API server.
//!
//! Needs `MAESTRO_K8S_TEST_KUBECONFIG` naming a kubeconfig whose user may
//! manage namespaces, pods, disruption budgets and events and manage nodes
//! (see docs/DEPLOY.md); without it the test fails and says how to start
//! one (`scripts/test` does, with `scripts/kube-apiserver`). The API server
//! needs no kubelet: the test plays it (`support/kubelet.rs`), binding the
//! pod to a node and reporting it running. It creates a scheduler named
//! `maestro-it-<pid>`, one room, waits for the room's instance events, then
//! deletes both.

#[path = "support/kubelet.rs"]
mod kubelet;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use maestro_engine::room::{InstanceStatus, RemovalReason};
use maestro_engine::scheduler::*;
use maestro_engine::time::Time;
use maestro_engine::version::Version;
use maestro_runtimes::kubernetes::{KubernetesConfig, KubernetesRuntime};
use maestro_runtimes::{InstanceEventKind, RoomSpec, Runtime, RuntimeErrorKind};

fn scheduler(name: &str) -> Scheduler {
    Scheduler {
        name: name.to_string(),
        game: "maestro-it".to_string(),
        state: SchedulerState::Creating,
        spec: Spec {
            version: "v1.0.0".to_string(),
            termination_grace_period_secs: 5,
            containers: vec![Container {
                name: "room".to_string(),
                image: std::env::var("MAESTRO_K8S_TEST_IMAGE")
                    .unwrap_or_else(|_| "busybox:1.36".to_string()),
                image_pull_policy: "IfNotPresent".to_string(),
                command: vec!["sh".into(), "-c".into(), "sleep 3600".into()],
                environment: Vec::new(),
                requests: Resources {
                    memory: "16Mi".into(),
                    cpu: "10m".into(),
                },
                limits: Resources {
                    memory: "32Mi".into(),
                    cpu: "50m".into(),
                },
                ports: vec![ContainerPort {
                    name: "game".into(),
                    protocol: "tcp".into(),
                    port: 7777,
                    host_port: 0,
                    host_port_range: None,
                }],
            }],
            toleration: String::new(),
            affinity: String::new(),
            restart_policy: "Never".into(),
        },
        port_range: None,
        rooms_replicas: 1,
        max_surge: "1".into(),
        autoscaling: None,
        forwarders: Vec::new(),
        annotations: BTreeMap::new(),
        labels: BTreeMap::new(),
        match_allocation: MatchAllocation::default(),
        created_at: Time::ZERO,
        last_downscale_at: None,
        rollback_version: None,
    }
}

#[tokio::test]
async fn real_cluster_round_trip() {
    let kubeconfig = kubelet::kubeconfig();
    let client = kubelet::client().await;
    kubelet::ensure_node(&client).await;
    let config = KubernetesConfig {
        kubeconfig: Some(kubeconfig),
        // Single-node test clusters rarely have zone labels.
        topology_spread_constraint: maestro_runtimes::kubernetes::TopologySpreadConfig {
            enabled: false,
            ..Default::default()
        },
        ..KubernetesConfig::default()
    };
    let rt = KubernetesRuntime::connect(config)
        .await
        .expect("connect with the kubeconfig");
    let name = format!("maestro-it-{}", std::process::id());
    let spec = scheduler(&name);

    match rt.create_scheduler(&spec).await {
        Ok(()) => {}
        Err(e) if e.kind == RuntimeErrorKind::AlreadyExists => {}
        Err(e) => panic!("create scheduler: {e}"),
    }
    let mut events = rt.watch(&name, Vec::new());
    let room = format!("{name}-room1");
    rt.create_room(&RoomSpec {
        scheduler: name.clone(),
        room: room.clone(),
        version: Version::FIRST,
        spec: Arc::new(spec),
        host_ports: Vec::new(),
        is_validation_room: false,
        extra_env: Vec::new(),
    })
    .await
    .expect("create room");
    // The kubelet: binds the pod and reports it running.
    let kubelet = tokio::spawn({
        let (client, name) = (client.clone(), name.clone());
        async move {
            loop {
                kubelet::sync(&client, &name).await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    // The first event, then (within two minutes) ready or an error.
    let outcome = tokio::time::timeout(Duration::from_secs(120), async {
        let mut last = None;
        while let Some(event) = events.next().await {
            println!("{event:?}");
            assert_eq!(event.room, room);
            assert_eq!(event.version, Some(Version::FIRST));
            let done = matches!(event.status, InstanceStatus::Ready | InstanceStatus::Error);
            last = Some(event);
            if done {
                break;
            }
        }
        last
    })
    .await;
    let cleanup = async {
        rt.delete_room(&name, &room, RemovalReason::UserRequest)
            .await
            .ok();
        rt.delete_scheduler(&name).await
    };
    let deleted = cleanup.await;
    kubelet.abort();
    let last = outcome
        .expect("an instance event within 120 s")
        .expect("events");
    assert_eq!(last.kind, InstanceEventKind::Upsert);
    assert_eq!(last.status, InstanceStatus::Ready, "{}", last.description);
    let address = last.address.expect("a ready room has its node's address");
    assert_eq!(address.host, kubelet::NODE_ADDRESS);
    deleted.expect("delete scheduler");
}
