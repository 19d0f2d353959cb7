//! Pod → instance status, exactly as upstream's `convertPodStatus` (#677).
//!
//! The rules apply in order; the first that matches wins:
//!
//! | rule | status | description |
//! |---|---|---|
//! | `metadata.deletionTimestamp` set | terminating | |
//! | phase `Succeeded` | terminating | |
//! | phase `Failed` | error | `PodFailed` (+ the pod's reason and message) |
//! | phase `Unknown` | error | `PodUnknown` (+ reason and message) |
//! | a container waiting for a fatal reason (image pull, crash loop, …) | error | `Reason: message` |
//! | a container terminated with exit 0 or reason `Completed` | terminating | |
//! | a container terminated otherwise | error | `Reason` (+ exit code and message) |
//! | any pod condition `False` | pending | `Reason: Message` |
//! | condition `Ready=True` | ready | |
//! | phase `Pending` | pending | |
//! | phase `Running` | ready | |
//! | anything else (no phase) | error | `unknown pod phase` |

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use maestro_engine::room::InstanceStatus;

/// Waiting reasons that mean the room will not start without help.
pub const FATAL_WAITING_REASONS: [&str; 8] = [
    "ErrImageNeverPull",
    "ErrImagePullBackOff",
    "ImagePullBackOff",
    "ErrInvalidImageName",
    "ErrImagePull",
    "CrashLoopBackOff",
    "RunContainerError",
    "ContainerStatusUnknown",
];

/// The instance status of a pod and, for errors and pending pods, why.
pub fn instance_status(pod: &Pod) -> (InstanceStatus, String) {
    if pod.metadata.deletion_timestamp.is_some() {
        return (InstanceStatus::Terminating, String::new());
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    let pod_reason = || {
        let reason = status.and_then(|s| s.reason.as_deref()).unwrap_or("");
        let message = status.and_then(|s| s.message.as_deref()).unwrap_or("");
        join_nonempty(&[reason, message])
    };
    match phase {
        "Succeeded" => return (InstanceStatus::Terminating, String::new()),
        "Failed" => return (InstanceStatus::Error, prefixed("PodFailed", &pod_reason())),
        "Unknown" => return (InstanceStatus::Error, prefixed("PodUnknown", &pod_reason())),
        _ => {}
    }

    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[]);
    for container in containers {
        let Some(state) = container.state.as_ref() else {
            continue;
        };
        if let Some(waiting) = state.waiting.as_ref() {
            let reason = waiting.reason.as_deref().unwrap_or("");
            if FATAL_WAITING_REASONS.contains(&reason) {
                let message = waiting.message.as_deref().unwrap_or("");
                return (InstanceStatus::Error, format!("{reason}: {message}"));
            }
        }
        if let Some(terminated) = state.terminated.as_ref() {
            return terminated_status(terminated);
        }
    }

    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or(&[]);
    for condition in conditions {
        if condition.status == "False" {
            let reason = condition.reason.as_deref().unwrap_or("");
            let message = condition.message.as_deref().unwrap_or("");
            return (InstanceStatus::Pending, format!("{reason}: {message}"));
        }
    }
    if conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
    {
        return (InstanceStatus::Ready, String::new());
    }

    match phase {
        "Pending" => (InstanceStatus::Pending, String::new()),
        "Running" => (InstanceStatus::Ready, String::new()),
        other => (
            InstanceStatus::Error,
            format!("unknown pod phase {other:?}"),
        ),
    }
}

fn terminated_status(terminated: &ContainerStateTerminated) -> (InstanceStatus, String) {
    let reason = terminated.reason.as_deref().unwrap_or("");
    if terminated.exit_code == 0 || reason == "Completed" {
        return (InstanceStatus::Terminating, String::new());
    }
    let message = terminated.message.as_deref().unwrap_or("");
    let head = if reason.is_empty() {
        "Terminated"
    } else {
        reason
    };
    let detail = join_nonempty(&[&format!("exit code {}", terminated.exit_code), message]);
    (InstanceStatus::Error, format!("{head}: {detail}"))
}

fn join_nonempty(parts: &[&str]) -> String {
    parts
        .iter()
        .copied()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(": ")
}

fn prefixed(head: &str, rest: &str) -> String {
    if rest.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceStatus::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateWaiting, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(phase: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.to_string()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    fn with_container(mut p: Pod, state: ContainerState) -> Pod {
        let status = p.status.get_or_insert_with(PodStatus::default);
        status
            .container_statuses
            .get_or_insert_with(Vec::new)
            .push(ContainerStatus {
                name: "game".into(),
                state: Some(state),
                ..ContainerStatus::default()
            });
        p
    }

    fn waiting(reason: &str, message: &str) -> ContainerState {
        ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.into()),
                message: Some(message.into()),
            }),
            ..ContainerState::default()
        }
    }

    fn terminated(code: i32, reason: &str) -> ContainerState {
        ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }
    }

    fn with_condition(mut p: Pod, type_: &str, status: &str, reason: &str, message: &str) -> Pod {
        let s = p.status.get_or_insert_with(PodStatus::default);
        s.conditions
            .get_or_insert_with(Vec::new)
            .push(PodCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()).filter(|r: &String| !r.is_empty()),
                message: Some(message.into()).filter(|m: &String| !m.is_empty()),
                ..PodCondition::default()
            });
        p
    }

    #[test]
    fn upstream_table() {
        let deleting = {
            let mut p = with_condition(pod("Running"), "Ready", "True", "", "");
            p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
            p
        };
        let failed = {
            let mut p = pod("Failed");
            if let Some(s) = p.status.as_mut() {
                s.reason = Some("Evicted".into());
                s.message = Some("low on memory".into());
            }
            p
        };
        let cases: Vec<(&str, Pod, InstanceStatus, &str)> = vec![
            ("deletion timestamp wins", deleting, Terminating, ""),
            ("succeeded", pod("Succeeded"), Terminating, ""),
            ("failed", pod("Failed"), Error, "PodFailed"),
            (
                "failed with reason",
                failed,
                Error,
                "PodFailed: Evicted: low on memory",
            ),
            ("unknown phase", pod("Unknown"), Error, "PodUnknown"),
            (
                "image pull back-off",
                with_container(
                    pod("Pending"),
                    waiting("ImagePullBackOff", "Back-off pulling image"),
                ),
                Error,
                "ImagePullBackOff: Back-off pulling image",
            ),
            (
                "crash loop",
                with_container(pod("Running"), waiting("CrashLoopBackOff", "back-off 5m0s")),
                Error,
                "CrashLoopBackOff: back-off 5m0s",
            ),
            (
                "container status unknown",
                with_container(pod("Running"), waiting("ContainerStatusUnknown", "lost")),
                Error,
                "ContainerStatusUnknown: lost",
            ),
            (
                "benign waiting reason falls through",
                with_container(pod("Pending"), waiting("ContainerCreating", "")),
                Pending,
                "",
            ),
            (
                "terminated exit 0",
                with_container(pod("Running"), terminated(0, "")),
                Terminating,
                "",
            ),
            (
                "terminated completed",
                with_container(pod("Running"), terminated(3, "Completed")),
                Terminating,
                "",
            ),
            (
                "terminated with error",
                with_container(pod("Running"), terminated(137, "OOMKilled")),
                Error,
                "OOMKilled: exit code 137",
            ),
            (
                "false condition",
                with_condition(
                    pod("Pending"),
                    "PodScheduled",
                    "False",
                    "Unschedulable",
                    "0/3 nodes are available",
                ),
                Pending,
                "Unschedulable: 0/3 nodes are available",
            ),
            (
                "false condition beats ready",
                with_condition(
                    with_condition(pod("Running"), "Ready", "True", "", ""),
                    "ContainersReady",
                    "False",
                    "ContainersNotReady",
                    "containers with unready status: [game]",
                ),
                Pending,
                "ContainersNotReady: containers with unready status: [game]",
            ),
            (
                "ready condition",
                with_condition(pod("Running"), "Ready", "True", "", ""),
                Ready,
                "",
            ),
            ("pending phase", pod("Pending"), Pending, ""),
            (
                "running phase without conditions",
                pod("Running"),
                Ready,
                "",
            ),
            (
                "no status at all",
                Pod::default(),
                Error,
                "unknown pod phase \"\"",
            ),
        ];
        for (name, pod, want, description) in cases {
            assert_eq!(
                instance_status(&pod),
                (want, description.to_string()),
                "{name}"
            );
        }
    }
}
