//! Configuration of the Kubernetes runtime.
//!
//! The keys and defaults follow upstream's `adapters.runtime.kubernetes.*`
//! and `runtimeWatcher.disruptionWorker.safetyPercentage`, so an upstream
//! `config.yaml` section deserialises as is (camelCase keys). The rest are
//! this implementation's own knobs (retries, batches, watch backoff) with
//! defaults chosen to be kind to a struggling API server.

use std::path::PathBuf;
use std::time::Duration;

use backon::ExponentialBuilder;
use serde::Deserialize;

/// Upstream's default API server address when neither in-cluster mode nor a
/// kubeconfig is used.
pub const DEFAULT_MASTER_URL: &str = "https://127.0.0.1:6443";
/// Upstream's default kubeconfig path.
pub const DEFAULT_KUBECONFIG: &str = "./kubeconfig/kubeconfig.yaml";

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct KubernetesConfig {
    /// Use the pod's service account (`KUBERNETES_SERVICE_HOST` and the
    /// mounted token). Wins over everything else.
    pub in_cluster: bool,
    /// A kubeconfig file. Wins over `master_url` (as upstream).
    pub kubeconfig: Option<PathBuf>,
    /// The API server URL, used without credentials when no kubeconfig is
    /// given (a local `kubectl proxy`, for instance).
    pub master_url: Option<String>,
    /// Sustained client-side requests per second. Applied in every mode
    /// (upstream applies it only in-cluster, #606).
    pub qps: f64,
    /// Requests allowed at once above the sustained rate.
    pub burst: u32,
    pub topology_spread_constraint: TopologySpreadConfig,
    /// How many pod creations may be in flight at once (upstream's
    /// `operations.rooms.add.batchSize`).
    pub create_batch_size: usize,
    pub retry: RetryConfig,
    /// First delay before re-establishing a failed watch; doubles up to
    /// `watch_backoff_max_ms`, resets once events flow again. No jitter, so
    /// tests are reproducible.
    pub watch_backoff_initial_ms: u64,
    pub watch_backoff_max_ms: u64,
    /// How long a node's address is trusted (upstream caches 24 h, #474).
    pub node_address_ttl_secs: u64,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        KubernetesConfig {
            in_cluster: false,
            kubeconfig: Some(PathBuf::from(DEFAULT_KUBECONFIG)),
            master_url: Some(DEFAULT_MASTER_URL.to_string()),
            qps: 100.0,
            burst: 200,
            topology_spread_constraint: TopologySpreadConfig::default(),
            create_batch_size: 40,
            retry: RetryConfig::default(),
            watch_backoff_initial_ms: 500,
            watch_backoff_max_ms: 30_000,
            node_address_ttl_secs: 24 * 60 * 60,
        }
    }
}

/// Where the client's connection settings come from, in upstream's order of
/// precedence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientSource {
    InCluster,
    Kubeconfig(PathBuf),
    MasterUrl(String),
}

impl KubernetesConfig {
    /// In-cluster, else a non-empty kubeconfig path, else a non-empty master
    /// URL; `None` when nothing is configured.
    pub fn client_source(&self) -> Option<ClientSource> {
        if self.in_cluster {
            return Some(ClientSource::InCluster);
        }
        if let Some(path) = self
            .kubeconfig
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            return Some(ClientSource::Kubeconfig(path.clone()));
        }
        self.master_url
            .as_ref()
            .filter(|u| !u.is_empty())
            .map(|u| ClientSource::MasterUrl(u.clone()))
    }

    /// The delays between attempts to re-establish a failed watch:
    /// `watch_backoff_initial_ms` (at least 1 ms, so a failing watch never
    /// spins) doubling up to `watch_backoff_max_ms`, without end and without
    /// jitter. The longest delay comes second, for when the delays run out.
    pub fn watch_backoff(&self) -> (ExponentialBuilder, Duration) {
        let initial = Duration::from_millis(self.watch_backoff_initial_ms.max(1));
        let max = Duration::from_millis(self.watch_backoff_max_ms).max(initial);
        let backoff = ExponentialBuilder::new()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_factor(2.0)
            .without_max_times();
        (backoff, max)
    }
}

/// Upstream's `topologySpreadConstraint.*`: spread a scheduler's rooms over
/// zones so one zone's loss does not take the whole fleet.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TopologySpreadConfig {
    pub enabled: bool,
    pub max_skew: i32,
    pub topology_key: String,
    /// `ScheduleAnyway` instead of `DoNotSchedule` when the skew cannot be met.
    pub when_unsatisfiable_schedule_anyway: bool,
}

impl Default for TopologySpreadConfig {
    fn default() -> Self {
        TopologySpreadConfig {
            enabled: true,
            max_skew: 5,
            topology_key: "topology.kubernetes.io/zone".to_string(),
            when_unsatisfiable_schedule_anyway: false,
        }
    }
}

/// Retries of a request answered 429 or 5xx: exponential backoff without
/// jitter, bounded attempts. Upstream retries pod creation with client-go's
/// `retry.DefaultBackoff` (4 steps from 10 ms, ×5).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RetryConfig {
    /// Attempts in total, the first included (at least 1).
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 5,
            initial_backoff_ms: 50,
            max_backoff_ms: 2_000,
        }
    }
}

impl RetryConfig {
    /// The delays between attempts: `initial_backoff_ms` doubling up to
    /// `max_backoff_ms` (never below the initial delay), one delay fewer
    /// than `max_attempts` (the first attempt waits for nothing), no jitter.
    pub fn backoff(&self) -> ExponentialBuilder {
        let initial = Duration::from_millis(self.initial_backoff_ms);
        let max = Duration::from_millis(self.max_backoff_ms).max(initial);
        let retries = usize::try_from(self.max_attempts.max(1) - 1).unwrap_or(usize::MAX);
        ExponentialBuilder::new()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_max_times(retries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn defaults_follow_upstream() {
        let c = KubernetesConfig::default();
        assert!(!c.in_cluster);
        assert_eq!((c.qps, c.burst), (100.0, 200));
        assert_eq!(c.topology_spread_constraint.max_skew, 5);
        assert!(c.topology_spread_constraint.enabled);
        assert_eq!(
            c.topology_spread_constraint.topology_key,
            "topology.kubernetes.io/zone"
        );
        assert_eq!(
            c.client_source(),
            Some(ClientSource::Kubeconfig(PathBuf::from(DEFAULT_KUBECONFIG)))
        );
    }

    #[test]
    fn client_source_precedence() {
        let mut c = KubernetesConfig {
            kubeconfig: None,
            ..KubernetesConfig::default()
        };
        assert_eq!(
            c.client_source(),
            Some(ClientSource::MasterUrl(DEFAULT_MASTER_URL.to_string()))
        );
        c.kubeconfig = Some(PathBuf::from("/k"));
        assert_eq!(
            c.client_source(),
            Some(ClientSource::Kubeconfig(PathBuf::from("/k")))
        );
        c.in_cluster = true;
        assert_eq!(c.client_source(), Some(ClientSource::InCluster));
        let none = KubernetesConfig {
            kubeconfig: Some(PathBuf::new()),
            master_url: Some(String::new()),
            ..KubernetesConfig::default()
        };
        assert_eq!(none.client_source(), None);
    }

    #[test]
    fn upstream_keys_deserialise() {
        let json = r#"{"inCluster": true, "qps": 5, "burst": 7,
            "topologySpreadConstraint": {"enabled": false, "maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiableScheduleAnyway": true}}"#;
        let c: KubernetesConfig = serde_json::from_str(json).unwrap();
        assert!(c.in_cluster);
        assert_eq!((c.qps, c.burst), (5.0, 7));
        assert_eq!(
            c.topology_spread_constraint,
            TopologySpreadConfig {
                enabled: false,
                max_skew: 2,
                topology_key: "zone".into(),
                when_unsatisfiable_schedule_anyway: true
            }
        );
        assert_eq!(c.create_batch_size, 40);
    }

    /// To the nearest millisecond: backon doubles in `f32` seconds, so 40 ms
    /// comes out a few nanoseconds short.
    fn millis(delays: impl Iterator<Item = Duration>) -> Vec<u64> {
        delays
            .map(|d| (d.as_secs_f64() * 1000.0).round() as u64)
            .collect()
    }

    #[test]
    fn retry_backoff_doubles_caps_and_ends() {
        let r = RetryConfig {
            max_attempts: 6,
            initial_backoff_ms: 10,
            max_backoff_ms: 50,
        };
        // One delay before each attempt after the first.
        assert_eq!(millis(r.backoff().build()), [10, 20, 40, 50, 50]);
        let once = RetryConfig {
            max_attempts: 0,
            ..r.clone()
        };
        assert_eq!(millis(once.backoff().build()), [] as [u64; 0]);
        // A maximum below the initial delay does not shorten it.
        let inverted = RetryConfig {
            max_attempts: 3,
            initial_backoff_ms: 100,
            max_backoff_ms: 10,
        };
        assert_eq!(millis(inverted.backoff().build()), [100, 100]);
    }

    #[test]
    fn watch_backoff_doubles_caps_and_never_ends() {
        let c = KubernetesConfig {
            watch_backoff_initial_ms: 0,
            watch_backoff_max_ms: 5,
            ..KubernetesConfig::default()
        };
        let (backoff, max) = c.watch_backoff();
        assert_eq!(max, Duration::from_millis(5));
        assert_eq!(millis(backoff.build().take(6)), [1, 2, 4, 5, 5, 5]);
        assert_eq!(backoff.build().nth(10_000), Some(max));
    }
}
