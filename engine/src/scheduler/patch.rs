//! A patch of a scheduler: upstream's `PatchScheduler`, field by field.
//!
//! What a patch means is domain logic (which fields it may touch, how
//! containers merge by index, how an absent autoscaling block starts), so
//! it lives next to the scheduler model; the APIs only convert their wire
//! message into a [`SchedulerPatch`].

use std::collections::BTreeMap;

use super::{
    Autoscaling, AutoscalingPolicy, Container, ContainerPort, EnvVar, Forwarder, MatchAllocation,
    PortRange, Resources, Scheduler, Spec,
};

/// The fields a patch changes; `None` leaves a field as it is.
///
/// As upstream, whose repeated and map fields cannot tell "absent" from
/// "empty", the APIs turn an empty list or map into `None`: a patch cannot
/// empty a list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SchedulerPatch {
    pub spec: Option<SpecPatch>,
    pub port_range: Option<PortRange>,
    pub max_surge: Option<String>,
    pub rooms_replicas: Option<i64>,
    pub autoscaling: Option<AutoscalingPatch>,
    pub forwarders: Option<Vec<Forwarder>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub match_allocation: Option<MatchAllocation>,
}

/// Upstream's `OptionalSpec`: there is no version and no restart policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpecPatch {
    pub termination_grace_period_secs: Option<i64>,
    /// Patched by index; containers past the end are added.
    pub containers: Vec<ContainerPatch>,
    pub toleration: Option<String>,
    pub affinity: Option<String>,
}

/// Upstream's `OptionalContainer`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerPatch {
    pub name: Option<String>,
    pub image: Option<String>,
    pub image_pull_policy: Option<String>,
    pub command: Option<Vec<String>>,
    pub environment: Option<Vec<EnvVar>>,
    pub requests: Option<Resources>,
    pub limits: Option<Resources>,
    pub ports: Option<Vec<ContainerPort>>,
}

/// Upstream's `OptionalAutoscaling`; a policy replaces the whole policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AutoscalingPatch {
    pub enabled: Option<bool>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub policy: Option<AutoscalingPolicy>,
    pub cooldown_secs: Option<i64>,
}

/// Why a patch produced no new version (upstream answers 409).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no change found")]
pub struct NoChange;

impl SchedulerPatch {
    /// Whether the patch names nothing to change (upstream's empty patch map).
    pub fn is_empty(&self) -> bool {
        *self == SchedulerPatch::default()
    }

    /// `base` with the patch merged in, as upstream's `PatchScheduler` does.
    pub fn apply(self, base: &Scheduler) -> Result<Scheduler, NoChange> {
        if self.is_empty() {
            return Err(NoChange);
        }
        let mut s = base.clone();
        if let Some(spec) = self.spec {
            spec.apply(&mut s.spec);
        }
        if let Some(range) = self.port_range {
            s.port_range = Some(range);
        }
        if let Some(surge) = self.max_surge {
            s.max_surge = surge;
        }
        if let Some(replicas) = self.rooms_replicas {
            s.rooms_replicas = replicas;
        }
        if let Some(patch) = self.autoscaling {
            // Starts from an empty block when the scheduler has none
            // (upstream `patchAutoscaling`).
            patch.apply(s.autoscaling.get_or_insert_with(Autoscaling::default));
        }
        if let Some(forwarders) = self.forwarders {
            s.forwarders = forwarders;
        }
        if let Some(annotations) = self.annotations {
            s.annotations = annotations;
        }
        if let Some(labels) = self.labels {
            s.labels = labels;
        }
        if let Some(m) = self.match_allocation {
            s.match_allocation = m;
        }
        Ok(s)
    }
}

impl SpecPatch {
    fn apply(self, spec: &mut Spec) {
        if let Some(grace) = self.termination_grace_period_secs {
            spec.termination_grace_period_secs = grace;
        }
        if let Some(toleration) = self.toleration {
            spec.toleration = toleration;
        }
        if let Some(affinity) = self.affinity {
            spec.affinity = affinity;
        }
        for (i, patch) in self.containers.into_iter().enumerate() {
            if spec.containers.len() <= i {
                spec.containers.push(Container::default());
            }
            if let Some(target) = spec.containers.get_mut(i) {
                patch.apply(target);
            }
        }
    }
}

impl ContainerPatch {
    fn apply(self, c: &mut Container) {
        if let Some(name) = self.name {
            c.name = name;
        }
        if let Some(image) = self.image {
            c.image = image;
        }
        if let Some(policy) = self.image_pull_policy {
            c.image_pull_policy = policy;
        }
        if let Some(command) = self.command {
            c.command = command;
        }
        if let Some(environment) = self.environment {
            c.environment = environment;
        }
        if let Some(requests) = self.requests {
            c.requests = requests;
        }
        if let Some(limits) = self.limits {
            c.limits = limits;
        }
        if let Some(ports) = self.ports {
            c.ports = ports;
        }
    }
}

impl AutoscalingPatch {
    fn apply(self, a: &mut Autoscaling) {
        if let Some(enabled) = self.enabled {
            a.enabled = enabled;
        }
        if let Some(min) = self.min {
            a.min = min;
        }
        if let Some(max) = self.max {
            a.max = max;
        }
        if let Some(cooldown) = self.cooldown_secs {
            a.cooldown_secs = cooldown;
        }
        if let Some(policy) = self.policy {
            a.policy = policy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::fixtures;

    #[test]
    fn a_patch_merges_by_field_and_containers_by_index() {
        let base = fixtures::scheduler("s");
        let patch = SchedulerPatch {
            max_surge: Some("50%".into()),
            spec: Some(SpecPatch {
                containers: vec![
                    ContainerPatch {
                        image: Some("game:2".into()),
                        ..ContainerPatch::default()
                    },
                    ContainerPatch {
                        name: Some("sidecar".into()),
                        ..ContainerPatch::default()
                    },
                ],
                ..SpecPatch::default()
            }),
            ..SchedulerPatch::default()
        };
        let patched = patch.apply(&base).expect("a change");
        assert_eq!(patched.max_surge, "50%");
        assert_eq!(patched.spec.containers.len(), 2);
        // The first container keeps everything but its image.
        assert_eq!(patched.spec.containers[0].image, "game:2");
        assert_eq!(
            patched.spec.containers[0].name,
            base.spec.containers[0].name
        );
        assert_eq!(
            patched.spec.containers[0].ports,
            base.spec.containers[0].ports
        );
        // One past the end starts from an empty container.
        assert_eq!(patched.spec.containers[1].name, "sidecar");
        assert_eq!(patched.spec.containers[1].image, "");
        // Everything not named is the base's.
        assert_eq!(patched.rooms_replicas, base.rooms_replicas);
        assert_eq!(patched.spec.toleration, base.spec.toleration);
    }

    #[test]
    fn autoscaling_patches_start_from_an_empty_block() {
        let mut base = fixtures::scheduler("s");
        base.autoscaling = None;
        let patch = SchedulerPatch {
            autoscaling: Some(AutoscalingPatch {
                max: Some(7),
                ..AutoscalingPatch::default()
            }),
            ..SchedulerPatch::default()
        };
        let patched = patch.apply(&base).expect("a change");
        assert_eq!(
            patched.autoscaling,
            Some(Autoscaling {
                max: 7,
                ..Autoscaling::default()
            })
        );
    }

    #[test]
    fn an_empty_patch_is_no_change() {
        let base = fixtures::scheduler("s");
        assert_eq!(SchedulerPatch::default().apply(&base), Err(NoChange));
    }
}
