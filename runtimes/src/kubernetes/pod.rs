//! A room's pod, as upstream's `convertGameRoomSpec` builds it. Pure.
//!
//! - `metadata`: name = room, namespace = scheduler; labels `heritage=maestro`,
//!   `maestro-scheduler=<scheduler>`, `version=<version>` merged with the
//!   scheduler's labels; annotations
//!   `cluster-autoscaler.kubernetes.io/safe-to-evict=true` merged with the
//!   scheduler's annotations (a user annotation overrides it).
//! - One deliberate difference: upstream lets a user label override the three
//!   maestro labels. Here maestro's labels win, because the watch selects
//!   `heritage=maestro`, the disruption budget selects `maestro-scheduler`,
//!   and adoption reads `version`: an override would orphan the pods.
//! - `spec`: termination grace period (omitted when 0), restart policy
//!   (default `Never`), the `dedicated` toleration, the required node
//!   affinity `<affinity> In ["true"]`, the zone topology spread (global
//!   config), and the containers: image, pull policy, command, ports with
//!   their allocated host ports, env (+ `MAESTRO_SCHEDULER_NAME`,
//!   `MAESTRO_ROOM_ID`, then the room's extra env), requests and limits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Container, ContainerPort, EnvVar, EnvVarSource, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, ObjectFieldSelector, Pod, PodSpec,
    ResourceRequirements, SecretKeySelector, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use maestro_engine::scheduler::{self, quantity::parse_quantity};
use maestro_engine::{RuntimeError, RuntimeErrorKind};

use super::config::TopologySpreadConfig;
use crate::RoomSpec;

pub const LABEL_HERITAGE: &str = "heritage";
pub const HERITAGE_MAESTRO: &str = "maestro";
pub const LABEL_SCHEDULER: &str = "maestro-scheduler";
pub const LABEL_VERSION: &str = "version";
pub const ANNOTATION_SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
pub const TOLERATION_KEY: &str = "dedicated";
pub const ENV_SCHEDULER_NAME: &str = "MAESTRO_SCHEDULER_NAME";
pub const ENV_ROOM_ID: &str = "MAESTRO_ROOM_ID";

/// The label selector of every maestro pod (the watch's filter).
pub fn maestro_selector() -> String {
    format!("{LABEL_HERITAGE}={HERITAGE_MAESTRO}")
}

/// Builds the room's pod. `Invalid` when the spec cannot be expressed (a bad
/// quantity, protocol or port number): validation should have caught it, so
/// this is a guard, not the normal path.
pub fn room_pod(room: &RoomSpec, topology: &TopologySpreadConfig) -> Result<Pod, RuntimeError> {
    let scheduler_name = room.scheduler.as_str();
    let spec = &room.spec.spec;

    let mut labels: BTreeMap<String, String> = room.spec.labels.clone();
    labels.insert(LABEL_HERITAGE.into(), HERITAGE_MAESTRO.into());
    labels.insert(LABEL_SCHEDULER.into(), scheduler_name.into());
    labels.insert(LABEL_VERSION.into(), room.version.to_string());

    let mut annotations =
        BTreeMap::from([(ANNOTATION_SAFE_TO_EVICT.to_string(), "true".to_string())]);
    annotations.extend(room.spec.annotations.clone());

    let containers = spec
        .containers
        .iter()
        .map(|c| container(room, c))
        .collect::<Result<Vec<_>, _>>()?;

    let restart_policy = match spec.restart_policy.as_str() {
        "Always" | "OnFailure" | "Never" => spec.restart_policy.clone(),
        "" => "Never".to_string(),
        other => return Err(invalid(format!("invalid restart policy {other:?}"))),
    };

    let tolerations = (!spec.toleration.is_empty()).then(|| {
        vec![Toleration {
            key: Some(TOLERATION_KEY.into()),
            operator: Some("Equal".into()),
            value: Some(spec.toleration.clone()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }]
    });

    let affinity = (!spec.affinity.is_empty()).then(|| Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: spec.affinity.clone(),
                        operator: "In".into(),
                        values: Some(vec!["true".into()]),
                    }]),
                    ..NodeSelectorTerm::default()
                }],
            }),
            ..NodeAffinity::default()
        }),
        ..Affinity::default()
    });

    let topology_spread_constraints = topology.enabled.then(|| {
        vec![TopologySpreadConstraint {
            max_skew: topology.max_skew,
            topology_key: topology.topology_key.clone(),
            when_unsatisfiable: if topology.when_unsatisfiable_schedule_anyway {
                "ScheduleAnyway".into()
            } else {
                "DoNotSchedule".into()
            },
            label_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    LABEL_SCHEDULER.to_string(),
                    scheduler_name.to_string(),
                )])),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        }]
    });

    let grace = spec.termination_grace_period_secs;
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(room.room.clone()),
            namespace: Some(scheduler_name.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers,
            restart_policy: Some(restart_policy),
            termination_grace_period_seconds: (grace > 0).then_some(grace),
            tolerations,
            affinity,
            topology_spread_constraints,
            ..PodSpec::default()
        }),
        status: None,
    })
}

fn container(room: &RoomSpec, c: &scheduler::Container) -> Result<Container, RuntimeError> {
    let ports = c
        .ports
        .iter()
        .map(|p| container_port(room, c, p))
        .collect::<Result<Vec<_>, _>>()?;

    let mut env: Vec<EnvVar> = c.environment.iter().map(env_var).collect();
    env.push(plain_env(ENV_SCHEDULER_NAME, &room.scheduler));
    env.push(plain_env(ENV_ROOM_ID, &room.room));
    env.extend(room.extra_env.iter().map(|(k, v)| plain_env(k, v)));

    let requests = resources(&c.requests, &c.name, "requests")?;
    let limits = resources(&c.limits, &c.name, "limits")?;

    let pull_policy = match c.image_pull_policy.as_str() {
        "" => None,
        "Always" | "Never" | "IfNotPresent" => Some(c.image_pull_policy.clone()),
        other => {
            return Err(invalid(format!(
                "container {:?}: invalid image pull policy {other:?}",
                c.name
            )));
        }
    };

    Ok(Container {
        name: c.name.clone(),
        image: Some(c.image.clone()),
        image_pull_policy: pull_policy,
        command: (!c.command.is_empty()).then(|| c.command.clone()),
        ports: Some(ports),
        env: Some(env),
        resources: Some(ResourceRequirements {
            requests: (!requests.is_empty()).then_some(requests),
            limits: (!limits.is_empty()).then_some(limits),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    })
}

fn container_port(
    room: &RoomSpec,
    c: &scheduler::Container,
    p: &scheduler::ContainerPort,
) -> Result<ContainerPort, RuntimeError> {
    let protocol = match p.protocol.to_ascii_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        other => {
            return Err(invalid(format!(
                "container {:?} port {:?}: invalid protocol {other:?}",
                c.name, p.name
            )));
        }
    };
    let container_port = i32::try_from(p.port)
        .ok()
        .filter(|n| (1..=65535).contains(n))
        .ok_or_else(|| {
            invalid(format!(
                "container {:?} port {:?}: invalid port {}",
                c.name, p.name, p.port
            ))
        })?;
    // The allocated port for this (container, port) wins; a host port fixed
    // in the spec is the fallback.
    let allocated = room
        .host_ports
        .iter()
        .find(|h| h.container == c.name && h.name == p.name)
        .map(|h| i32::from(h.host_port))
        .or_else(|| {
            i32::try_from(p.host_port)
                .ok()
                .filter(|n| (1..=65535).contains(n))
        });
    Ok(ContainerPort {
        name: Some(p.name.clone()),
        protocol: Some(protocol.into()),
        container_port,
        host_port: allocated.filter(|n| *n != 0),
        ..ContainerPort::default()
    })
}

fn env_var(e: &scheduler::EnvVar) -> EnvVar {
    let value_from = e.value_from.as_ref().and_then(|from| {
        if let Some(secret) = &from.secret_key_ref {
            Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.name.clone(),
                    key: secret.key.clone(),
                    ..SecretKeySelector::default()
                }),
                ..EnvVarSource::default()
            })
        } else {
            from.field_ref.as_ref().map(|field| EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: field.field_path.clone(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            })
        }
    });
    // A literal value wins over a reference, as upstream's switch does.
    match e.value.as_ref().filter(|v| !v.is_empty()) {
        Some(v) => plain_env(&e.name, v),
        None => EnvVar {
            name: e.name.clone(),
            value: None,
            value_from,
        },
    }
}

fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        value_from: None,
    }
}

fn resources(
    r: &scheduler::Resources,
    container: &str,
    what: &str,
) -> Result<BTreeMap<String, Quantity>, RuntimeError> {
    let mut out = BTreeMap::new();
    for (key, value) in [("cpu", &r.cpu), ("memory", &r.memory)] {
        if value.is_empty() {
            continue;
        }
        parse_quantity(value).map_err(|e| {
            invalid(format!(
                "container {container:?}: {what}.{key} {value:?} {e}"
            ))
        })?;
        out.insert(key.to_string(), Quantity(value.clone()));
    }
    Ok(out)
}

fn invalid(message: String) -> RuntimeError {
    RuntimeError::new(RuntimeErrorKind::Invalid, message)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::{RoomSpec, TopologySpreadConfig, room_pod};
    use maestro_engine::RuntimeErrorKind;
    use maestro_engine::room::HostPort;
    use maestro_engine::scheduler::*;
    use maestro_engine::time::Time;
    use maestro_engine::version::Version;
    use serde_json::json;
    use std::collections::BTreeMap;

    pub(crate) fn scheduler(name: &str) -> Scheduler {
        Scheduler {
            name: name.to_string(),
            game: "game".to_string(),
            state: SchedulerState::Creating,
            spec: Spec {
                version: "v1.2.0".to_string(),
                termination_grace_period_secs: 30,
                containers: vec![Container {
                    name: "game".to_string(),
                    image: "registry.example/game:1".to_string(),
                    image_pull_policy: "IfNotPresent".to_string(),
                    command: vec!["./run".to_string()],
                    environment: vec![
                        EnvVar {
                            name: "MODE".into(),
                            value: Some("prod".into()),
                            value_from: None,
                        },
                        EnvVar {
                            name: "TOKEN".into(),
                            value: None,
                            value_from: Some(EnvVarSource {
                                field_ref: None,
                                secret_key_ref: Some(SecretKeyRef {
                                    name: "s".into(),
                                    key: "k".into(),
                                }),
                            }),
                        },
                        EnvVar {
                            name: "POD_IP".into(),
                            value: None,
                            value_from: Some(EnvVarSource {
                                field_ref: Some(FieldRef {
                                    field_path: "status.podIP".into(),
                                }),
                                secret_key_ref: None,
                            }),
                        },
                    ],
                    requests: Resources {
                        memory: "128Mi".into(),
                        cpu: "100m".into(),
                    },
                    limits: Resources {
                        memory: "256Mi".into(),
                        cpu: "200m".into(),
                    },
                    ports: vec![ContainerPort {
                        name: "game".into(),
                        protocol: "udp".into(),
                        port: 7777,
                        host_port: 0,
                        host_port_range: Some(PortRange {
                            start: 20000,
                            end: 30000,
                        }),
                    }],
                }],
                toleration: "gameservers".into(),
                affinity: "maestro-dedicated".into(),
                restart_policy: "Never".into(),
            },
            port_range: None,
            rooms_replicas: 2,
            max_surge: "25%".into(),
            autoscaling: None,
            forwarders: Vec::new(),
            annotations: BTreeMap::from([("team".to_string(), "games".to_string())]),
            labels: BTreeMap::from([
                ("app".to_string(), "arena".to_string()),
                ("heritage".to_string(), "mine".to_string()),
            ]),
            match_allocation: MatchAllocation::default(),
            created_at: Time::ZERO,
            last_downscale_at: None,
            rollback_version: None,
        }
    }

    pub(crate) fn room(scheduler_name: &str, room: &str) -> RoomSpec {
        RoomSpec {
            scheduler: scheduler_name.to_string(),
            room: room.to_string(),
            version: Version {
                major: 1,
                minor: 2,
                patch: 0,
            },
            spec: Arc::new(scheduler(scheduler_name)),
            host_ports: vec![HostPort {
                container: "game".into(),
                name: "game".into(),
                protocol: "udp".into(),
                container_port: 7777,
                host_port: 20123,
            }],
            is_validation_room: false,
            extra_env: vec![("MAESTRO_ROOMS_API_TOKEN".into(), "t0k".into())],
        }
    }

    /// The exact pod, as JSON, that `room("arena", "arena-abcde")` becomes.
    pub(crate) fn expected_pod_json() -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "arena-abcde",
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
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["./run"],
                    "env": [
                        {"name": "MODE", "value": "prod"},
                        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                        {"name": "MAESTRO_SCHEDULER_NAME", "value": "arena"},
                        {"name": "MAESTRO_ROOM_ID", "value": "arena-abcde"},
                        {"name": "MAESTRO_ROOMS_API_TOKEN", "value": "t0k"}
                    ],
                    "ports": [{"name": "game", "protocol": "UDP", "containerPort": 7777, "hostPort": 20123}],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "200m", "memory": "256Mi"}
                    }
                }],
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 30,
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gameservers", "effect": "NoSchedule"}],
                "topologySpreadConstraints": [{
                    "maxSkew": 5,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule",
                    "labelSelector": {"matchLabels": {"maestro-scheduler": "arena"}}
                }]
            }
        })
    }

    #[test]
    fn pod_matches_upstream_shape_exactly() {
        let pod = room_pod(
            &room("arena", "arena-abcde"),
            &TopologySpreadConfig::default(),
        )
        .unwrap();
        assert_eq!(serde_json::to_value(&pod).unwrap(), expected_pod_json());
    }

    #[test]
    fn optional_parts_are_omitted() {
        let mut r = room("arena", "arena-abcde");
        let mut s = scheduler("arena");
        s.spec.toleration.clear();
        s.spec.affinity.clear();
        s.spec.termination_grace_period_secs = 0;
        s.spec.restart_policy.clear();
        s.spec.containers[0].limits = Resources::default();
        r.spec = Arc::new(s);
        r.host_ports.clear();
        let topology = TopologySpreadConfig {
            enabled: false,
            ..TopologySpreadConfig::default()
        };
        let v = serde_json::to_value(room_pod(&r, &topology).unwrap()).unwrap();
        let spec = &v["spec"];
        for key in [
            "tolerations",
            "affinity",
            "terminationGracePeriodSeconds",
            "topologySpreadConstraints",
        ] {
            assert!(spec.get(key).is_none(), "{key} should be omitted: {spec}");
        }
        assert_eq!(spec["restartPolicy"], "Never");
        assert!(spec["containers"][0]["resources"].get("limits").is_none());
        assert_eq!(
            spec["containers"][0]["ports"][0],
            json!({"name": "game", "protocol": "UDP", "containerPort": 7777})
        );
    }

    #[test]
    fn schedule_anyway_and_invalid_specs() {
        let topology = TopologySpreadConfig {
            when_unsatisfiable_schedule_anyway: true,
            ..TopologySpreadConfig::default()
        };
        let v = serde_json::to_value(room_pod(&room("arena", "r"), &topology).unwrap()).unwrap();
        assert_eq!(
            v["spec"]["topologySpreadConstraints"][0]["whenUnsatisfiable"],
            "ScheduleAnyway"
        );

        let broken = |f: &dyn Fn(&mut Scheduler)| {
            let mut r = room("arena", "r");
            let mut s = scheduler("arena");
            f(&mut s);
            r.spec = Arc::new(s);
            room_pod(&r, &TopologySpreadConfig::default())
                .unwrap_err()
                .kind
        };
        assert_eq!(
            broken(&|s| s.spec.containers[0].requests.cpu = "lots".into()),
            RuntimeErrorKind::Invalid
        );
        assert_eq!(
            broken(&|s| s.spec.containers[0].ports[0].protocol = "sctp".into()),
            RuntimeErrorKind::Invalid
        );
        assert_eq!(
            broken(&|s| s.spec.containers[0].ports[0].port = 70000),
            RuntimeErrorKind::Invalid
        );
        assert_eq!(
            broken(&|s| s.spec.restart_policy = "Sometimes".into()),
            RuntimeErrorKind::Invalid
        );
    }
}
