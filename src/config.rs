//! Configuration: defaults, then a YAML file, then `MAESTRO_` environment
//! variables, then command-line flags, each layer overriding the one before.
//!
//! Keys are upstream's where they exist (`api.port`,
//! `services.roomManager.roomPingTimeoutMillis`, ...) and, as with viper,
//! case-insensitive; an environment variable is the key upper-cased with
//! dots as underscores (`MAESTRO_API_PORT`). Every value is parsed with an
//! error naming the key and where it came from. Unknown keys in the file or
//! the environment are reported as warnings, not errors: upstream config
//! files carry keys for Redis and Postgres, and Kubernetes injects
//! `MAESTRO_SERVICE_HOST`-style variables for a Service named maestro.
//!
//! The layers are one map from lower-cased key to value and source, kept by
//! hand: `figment` would break these promises. Its `Env` reads only the
//! process environment ([`Config::load`] takes it as an argument, so tests
//! need not call the `unsafe` `std::env::set_var`), parses values (`[a]`,
//! `"x"`, `42` become a list, an unquoted string, a number: a token or secret
//! could change type), and names a bad value's source "`MAESTRO_`
//! environment variable(s)" and its key `FORWARDING.MAXBACKOFF`, not the
//! variable; its merge is case-sensitive (a file's `roomManager` and the
//! environment's `roommanager` would be two keys, neither overriding the
//! other); serde extraction drops unknown keys without a word; and its
//! `yaml` feature parses with the deprecated `serde_yaml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use maestro_engine::{EngineConfig, Millis};

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => write!(f, "the default"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {cause}", path.display())]
    Read { path: PathBuf, cause: String },
    #[error("config file {}: {cause}", path.display())]
    Parse { path: PathBuf, cause: String },
    #[error("{key} (from {origin}): {value:?} {problem}")]
    Invalid {
        key: &'static str,
        origin: Source,
        value: String,
        problem: String,
    },
}

/// Every key maestro reads, with its default. Lower-case dotted forms are
/// matched case-insensitively.
const KEYS: &[(&str, &str)] = &[
    ("api.port", "8080"),
    ("roomsApi.port", "8070"),
    ("internalApi.port", "8081"),
    ("api.gracefulShutdownTimeout", "30s"),
    ("dataDir", "./maestro-data"),
    ("store.type", "sled"),
    ("store.postgres.url", ""),
    ("store.postgres.leaseDuration", "10s"),
    ("runtime", "sim"),
    ("log.format", "text"),
    ("workerUrl", ""),
    ("record.path", ""),
    ("record.maxBytes", "1073741824"),
    ("forwarding.concurrency", "32"),
    ("forwarding.maxBackoff", "30s"),
    ("forwarding.maxEventAge", "24h"),
    ("forwarding.maxBacklog", "1000000"),
    ("workers.healthControllerInterval", "1m"),
    ("workers.storageClenupInterval", "3h"),
    ("workers.redis.operationsTtl", "24h"),
    ("operations.rooms.add.limit", "1000"),
    ("operations.rooms.add.batchSize", "40"),
    ("operations.rooms.remove.limit", "50"),
    ("services.roomManager.roomPingTimeoutMillis", "240000"),
    (
        "services.roomManager.roomInitializationTimeoutMillis",
        "120000",
    ),
    ("services.roomManager.roomValidationTimeoutMillis", "120000"),
    ("services.roomManager.roomDeletionTimeoutMillis", "120000"),
    ("services.roomManager.roomAllocationTTLMillis", "300000"),
    ("services.roomManager.roomValidationAttempts", "3"),
    (
        "services.roomManager.roomValidationAcceptOccupiedStatus",
        "false",
    ),
    ("security.managementTokens", ""),
    ("security.roomsSecret", ""),
    ("sim.startDelay", "1500ms"),
    ("sim.pingInterval", "5s"),
    ("sim.matchDuration", "60s"),
    ("sim.pingRefresh", "auto"),
    ("sim.terminateAfterMatches", "0"),
    ("adapters.runtime.kubernetes.inCluster", "false"),
    ("adapters.runtime.kubernetes.masterUrl", ""),
    ("adapters.runtime.kubernetes.kubeconfig", ""),
    ("adapters.runtime.kubernetes.qps", "100"),
    ("adapters.runtime.kubernetes.burst", "200"),
    ("runtimeWatcher.disruptionWorker.intervalSeconds", "60"),
    ("runtimeWatcher.disruptionWorker.safetyPercentage", "0.05"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    Sim,
    Kubernetes,
}

/// Where the worker keeps its state.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// sled in `dataDir`: one node, the embedded default.
    Sled,
    /// PostgreSQL at `url`, shared by a leading worker and its standbys
    /// through a leader lease of `lease_duration` (see `crate::leader`).
    Postgres {
        url: String,
        lease_duration: Duration,
    },
}

/// Never prints the URL, which may hold a password.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreConfig::Sled => f.write_str("Sled"),
            StoreConfig::Postgres { lease_duration, .. } => f
                .debug_struct("Postgres")
                .field("url", &"redacted")
                .field("lease_duration", lease_duration)
                .finish(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The typed configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub management_port: u16,
    pub rooms_port: u16,
    pub internal_port: u16,
    pub graceful_shutdown_timeout: Duration,
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub runtime: RuntimeKind,
    pub log_format: LogFormat,
    pub engine: EngineConfig,
    pub management_tokens: Vec<String>,
    pub rooms_secret: Option<Vec<u8>>,
    /// The simulated cluster of `runtime: sim`.
    pub sim: maestro_sim::ClusterConfig,
    pub kubernetes: maestro_runtimes::kubernetes::KubernetesConfig,
    /// The worker's internal address, for modules started without it.
    pub worker_url: Option<String>,
    /// Records every engine input of the worker (`--record`).
    pub record: Option<crate::record::RecordConfig>,
    pub forwarding: crate::forwarding::ForwardingConfig,
}

/// Values from the command line; `None` leaves the lower layers in charge.
#[derive(Clone, Debug, Default)]
pub struct FlagValues {
    pub config: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub runtime: Option<String>,
    pub management_port: Option<u16>,
    pub rooms_port: Option<u16>,
    pub internal_port: Option<u16>,
    pub log_format: Option<String>,
    pub worker_url: Option<String>,
    pub record: Option<PathBuf>,
}

/// Warnings met while loading (unknown keys), for the caller to log.
pub type Warnings = Vec<String>;

type Layered = BTreeMap<String, (String, Source)>;

impl Config {
    pub fn load(
        flags: &FlagValues,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Warnings), ConfigError> {
        let mut values: Layered = KEYS
            .iter()
            .map(|(key, default)| {
                (
                    key.to_ascii_lowercase(),
                    (default.to_string(), Source::Default),
                )
            })
            .collect();
        let file = match &flags.config {
            Some(path) => read_file(path)?
                .into_iter()
                .map(|(key, value)| (key, value, Source::File(path.clone())))
                .collect(),
            None => Vec::new(),
        };
        let env = env.into_iter().filter_map(|(var, value)| {
            let key = var.strip_prefix("MAESTRO_")?.replace('_', ".");
            Some((key, value, Source::Env(var)))
        });
        let port = |port: Option<u16>| port.map(|p| p.to_string());
        let flags = [
            (
                "dataDir",
                "--data-dir",
                flags.data_dir.as_ref().map(|p| p.display().to_string()),
            ),
            ("runtime", "--runtime", flags.runtime.clone()),
            ("api.port", "--management-port", port(flags.management_port)),
            ("roomsApi.port", "--rooms-port", port(flags.rooms_port)),
            (
                "internalApi.port",
                "--internal-port",
                port(flags.internal_port),
            ),
            ("log.format", "--log-format", flags.log_format.clone()),
            ("workerUrl", "--worker-url", flags.worker_url.clone()),
            (
                "record.path",
                "--record",
                flags.record.as_ref().map(|p| p.display().to_string()),
            ),
        ]
        .into_iter()
        .filter_map(|(key, flag, value)| Some((key.to_string(), value?, Source::Flag(flag))));
        let mut warnings = Vec::new();
        for (key, value, source) in file.into_iter().chain(env).chain(flags) {
            let key = key.to_ascii_lowercase();
            match values.get_mut(&key) {
                Some(slot) => *slot = (value, source),
                None => warnings.push(format!("{source}: unknown key {key} is ignored")),
            }
        }
        let r = Reader { values: &values };
        let engine = EngineConfig {
            seed: fresh_seed(),
            room_initialization_timeout: r
                .millis("services.roomManager.roomInitializationTimeoutMillis")?,
            room_ping_timeout: r.millis("services.roomManager.roomPingTimeoutMillis")?,
            room_deletion_timeout: r.millis("services.roomManager.roomDeletionTimeoutMillis")?,
            room_allocation_ttl: r.millis("services.roomManager.roomAllocationTTLMillis")?,
            room_validation_timeout: r
                .millis("services.roomManager.roomValidationTimeoutMillis")?,
            room_validation_attempts: r.number::<u32>(
                "services.roomManager.roomValidationAttempts",
                1,
                100,
            )?,
            room_validation_accept_occupied: r
                .boolean("services.roomManager.roomValidationAcceptOccupiedStatus")?,
            health_controller_interval: to_millis(r.duration("workers.healthControllerInterval")?),
            storage_clean_up_interval: to_millis(r.duration("workers.storageClenupInterval")?),
            operations_ttl: to_millis(r.duration("workers.redis.operationsTtl")?),
            add_rooms_limit: r.number::<u32>("operations.rooms.add.limit", 1, 100_000)?,
            add_rooms_batch_size: r.number::<u32>("operations.rooms.add.batchSize", 1, 10_000)?,
            remove_rooms_limit: r.number::<u32>("operations.rooms.remove.limit", 1, 100_000)?,
            // Upstream reads a bare integer of seconds here.
            disruption_interval: Millis::from_secs(
                r.number::<u32>("runtimeWatcher.disruptionWorker.intervalSeconds", 1, 86_400)?
                    .into(),
            ),
            disruption_safety_millionths: millionths(
                r.fraction("runtimeWatcher.disruptionWorker.safetyPercentage")?,
            ),
            ..EngineConfig::default()
        };
        let tokens: Vec<String> = r
            .text("security.managementTokens")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let secret = r.text("security.roomsSecret");
        let sim = sim_cluster(&r, &engine)?;
        let config = Config {
            management_port: r.number::<u16>("api.port", 0, u16::MAX)?,
            rooms_port: r.number::<u16>("roomsApi.port", 0, u16::MAX)?,
            internal_port: r.number::<u16>("internalApi.port", 0, u16::MAX)?,
            graceful_shutdown_timeout: r.duration("api.gracefulShutdownTimeout")?,
            data_dir: PathBuf::from(r.text("dataDir")),
            store: match r.choice("store.type", &[("sled", false), ("postgres", true)])? {
                false => StoreConfig::Sled,
                true => StoreConfig::Postgres {
                    url: r.parse("store.postgres.url", |url| {
                        if url.is_empty() {
                            Err("is required when store.type is postgres \
                                 (also MAESTRO_STORE_POSTGRES_URL), e.g. \
                                 postgres://maestro@db:5432/maestro"
                                .to_string())
                        } else {
                            Ok(url.to_string())
                        }
                    })?,
                    lease_duration: r.parse("store.postgres.leaseDuration", |text| {
                        let d = parse_duration(text).ok_or_else(|| {
                            "is not a duration such as 500ms, 5s, 1m30s or 24h".to_string()
                        })?;
                        if d < Duration::from_secs(1) {
                            return Err("must be at least 1s".to_string());
                        }
                        Ok(d)
                    })?,
                },
            },
            runtime: r.choice(
                "runtime",
                &[
                    ("sim", RuntimeKind::Sim),
                    ("kubernetes", RuntimeKind::Kubernetes),
                ],
            )?,
            log_format: r.choice(
                "log.format",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )?,
            engine,
            management_tokens: tokens,
            rooms_secret: (!secret.is_empty()).then(|| secret.into_bytes()),
            sim,
            kubernetes: maestro_runtimes::kubernetes::KubernetesConfig {
                in_cluster: r.boolean("adapters.runtime.kubernetes.inCluster")?,
                kubeconfig: Some(r.text("adapters.runtime.kubernetes.kubeconfig"))
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from),
                master_url: Some(r.text("adapters.runtime.kubernetes.masterUrl"))
                    .filter(|s| !s.is_empty()),
                qps: f64::from(r.number::<u32>("adapters.runtime.kubernetes.qps", 1, 100_000)?),
                burst: r.number::<u32>("adapters.runtime.kubernetes.burst", 1, 100_000)?,
                create_batch_size: r.number::<u32>("operations.rooms.add.batchSize", 1, 10_000)?
                    as usize,
                ..maestro_runtimes::kubernetes::KubernetesConfig::default()
            },
            worker_url: Some(r.text("workerUrl").to_string()).filter(|s| !s.is_empty()),
            record: match r.text("record.path") {
                path if path.is_empty() => None,
                path => Some(crate::record::RecordConfig {
                    path: PathBuf::from(path),
                    max_bytes: r.number::<u64>("record.maxBytes", 4096, u64::MAX)?,
                }),
            },
            forwarding: crate::forwarding::ForwardingConfig {
                window: r.number::<u32>("forwarding.concurrency", 1, 10_000)? as usize,
                max_backoff: r.duration("forwarding.maxBackoff")?,
                max_event_age: r.duration("forwarding.maxEventAge")?,
                max_backlog: r.number::<u64>("forwarding.maxBacklog", 1, 1_000_000_000)?,
                ..crate::forwarding::ForwardingConfig::default()
            },
        };
        Ok((config, warnings))
    }
}

fn to_millis(d: Duration) -> Millis {
    Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fraction in [0, 1] as millionths, the engine's unit for fractions.
fn millionths(fraction: f64) -> u32 {
    (fraction * 1_000_000.0).round() as u32
}

/// A fresh seed for this process run, logged so a run can be replayed.
fn fresh_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS; mix in the time for good measure.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// The file's leaves as dotted keys.
fn read_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })?;
    let root: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            cause: e.to_string(),
        })?;
    let mut out = Vec::new();
    flatten(String::new(), root, &mut out);
    Ok(out)
}

/// A list becomes one comma-separated value, as an environment variable
/// would give it (`security.managementTokens: [a, b]`); a null is no value.
fn flatten(key: String, value: serde_json::Value, out: &mut Vec<(String, String)>) {
    use serde_json::Value;
    let scalar = |value: Value| match value {
        Value::String(s) => s,
        other => other.to_string(),
    };
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if key.is_empty() {
                    k
                } else {
                    format!("{key}.{k}")
                };
                flatten(key, v, out);
            }
        }
        Value::Array(items) => {
            let items: Vec<String> = items.into_iter().map(scalar).collect();
            out.push((key, items.join(",")));
        }
        Value::Null => {}
        other => out.push((key, scalar(other))),
    }
}

/// The simulated cluster's keys. Its game servers' unchanged pings are
/// elided to one every `sim.pingRefresh` (0: every ping; `auto`: half the
/// room ping timeout), which keeps the engine's liveness decisions exact
/// (see `maestro_sim::cluster`) as long as the refresh plus the ping
/// interval stays below the ping timeout.
fn sim_cluster(
    r: &Reader<'_>,
    engine: &EngineConfig,
) -> Result<maestro_sim::ClusterConfig, ConfigError> {
    use maestro_sim::cluster::Pings;
    use maestro_sim::dist::Distribution;
    let ms = |d: Duration| Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let start = ms(r.duration("sim.startDelay")?);
    let interval = ms(r.duration("sim.pingInterval")?);
    let timeout = engine.room_ping_timeout;
    let refresh = r.parse("sim.pingRefresh", |value| {
        if value.eq_ignore_ascii_case("auto") {
            let half = Millis(timeout.0 / 2);
            return Ok(if interval < half { half } else { Millis::ZERO });
        }
        let refresh = parse_duration(value)
            .map(ms)
            .ok_or("is `auto` or a duration such as 500ms, 5s, 1m30s or 24h")?;
        if refresh != Millis::ZERO && refresh.0.saturating_add(interval.0) >= timeout.0 {
            return Err(format!(
                "plus sim.pingInterval ({interval}) must stay below the room ping timeout ({timeout})"
            ));
        }
        Ok(refresh)
    })?;
    let match_duration = r.parse("sim.matchDuration", |value| match parse_duration(value) {
        Some(d) => Ok(Distribution::Fixed(ms(d))),
        None => Distribution::parse(value).map_err(|e| e.to_string()),
    })?;
    // A game server that exits after its match (the common pattern on
    // Agones); 0: it plays on.
    let terminate_after = r.parse("sim.terminateAfterMatches", |value| {
        value
            .parse::<u32>()
            .map_err(|_| "is a number of matches (0: never)".to_string())
    })?;
    Ok(maestro_sim::ClusterConfig {
        // A fresh draw per run, as the engine's.
        seed: engine.seed.rotate_left(17) ^ 0x5eed,
        start_latency: Distribution::Fixed(start),
        ping_interval: interval.max(Millis(1)),
        pings: if refresh == Millis::ZERO {
            Pings::Every
        } else {
            Pings::Elided { refresh }
        },
        match_duration,
        terminate_after_matches: (terminate_after > 0).then_some(terminate_after),
        ..maestro_sim::ClusterConfig::default()
    })
}

struct Reader<'a> {
    values: &'a Layered,
}

impl Reader<'_> {
    fn raw(&self, key: &'static str) -> (&str, Source) {
        match self.values.get(&key.to_ascii_lowercase()) {
            Some((value, source)) => (value.as_str(), source.clone()),
            None => ("", Source::Default),
        }
    }

    fn text(&self, key: &'static str) -> String {
        self.raw(key).0.to_string()
    }

    /// The trimmed value of `key` through `parse`, whose refusal (what is
    /// wrong with the value) becomes an error naming the key, its source and
    /// the value: every typed read goes through here.
    fn parse<T>(
        &self,
        key: &'static str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let (value, origin) = self.raw(key);
        parse(value.trim()).map_err(|problem| ConfigError::Invalid {
            key,
            origin,
            value: value.to_string(),
            problem,
        })
    }

    fn number<T: TryFrom<u64> + Copy + Into<u64>>(
        &self,
        key: &'static str,
        min: T,
        max: T,
    ) -> Result<T, ConfigError> {
        let (min, max) = (min.into(), max.into());
        self.parse(key, |value| {
            let n: u64 = value.parse().map_err(|_| "is not a whole number")?;
            if !(min..=max).contains(&n) {
                return Err(format!("must be between {min} and {max}"));
            }
            T::try_from(n).map_err(|_| "is out of range".to_string())
        })
    }

    fn millis(&self, key: &'static str) -> Result<Millis, ConfigError> {
        Ok(Millis(self.number::<u64>(key, 1, u64::MAX)?))
    }

    fn fraction(&self, key: &'static str) -> Result<f64, ConfigError> {
        self.parse(key, |value| match value.parse::<f64>() {
            Ok(f) if (0.0..=1.0).contains(&f) => Ok(f),
            Ok(_) => Err("must be between 0 and 1".into()),
            Err(_) => Err("is not a number".into()),
        })
    }

    fn boolean(&self, key: &'static str) -> Result<bool, ConfigError> {
        self.parse(key, |value| match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            _ => Err("must be true or false".into()),
        })
    }

    fn choice<T: Copy>(&self, key: &'static str, options: &[(&str, T)]) -> Result<T, ConfigError> {
        self.parse(key, |value| {
            let found = options
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(value));
            found.map(|(_, v)| *v).ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
                format!("must be one of {}", names.join(", "))
            })
        })
    }

    fn duration(&self, key: &'static str) -> Result<Duration, ConfigError> {
        self.parse(key, |value| {
            parse_duration(value)
                .ok_or_else(|| "is not a duration such as 500ms, 5s, 1m30s or 24h".into())
        })
    }
}

/// Go's duration syntax (`time.ParseDuration`, which upstream's viper
/// config reads): `500ms`, `1m30s`, `1.5h`, in units ns, us, µs, ms, s, m
/// and h; or a bare number of seconds, as maestro has always read it (viper
/// would read `7` as 7ns). `humantime` does the arithmetic; this adapter
/// keeps its input to Go's syntax, since humantime also reads units Go
/// refuses (`5d`, `2w`, `3M` for months, `1min`, `1sec`) and blanks inside a
/// duration (`1m 30s`, `1 0s`).
fn parse_duration(text: &str) -> Option<Duration> {
    const GO_UNITS: &[&str] = &["ns", "us", "µs", "ms", "s", "m", "h"];
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let units_are_gos = text
        .split(|c: char| c.is_ascii_digit() || c == '.')
        .all(|unit| unit.is_empty() || GO_UNITS.contains(&unit));
    if !units_are_gos {
        return None;
    }
    humantime::parse_duration(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(flags: FlagValues, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(&flags, env).map(|(c, _)| c)
    }

    #[test]
    fn defaults_are_upstreams() {
        let c = load(FlagValues::default(), &[]).unwrap();
        assert_eq!(
            (c.management_port, c.rooms_port, c.internal_port),
            (8080, 8070, 8081)
        );
        assert_eq!(c.runtime, RuntimeKind::Sim);
        assert_eq!(c.data_dir, PathBuf::from("./maestro-data"));
        assert_eq!(c.engine.room_ping_timeout, Millis(240_000));
        assert_eq!(c.engine.add_rooms_limit, 1000);
        assert_eq!(c.engine.health_controller_interval, Millis(60_000));
        assert!(c.management_tokens.is_empty() && c.rooms_secret.is_none());
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(
            &file,
            "api:\n  port: 9000\nservices:\n  roomManager:\n    roomPingTimeoutMillis: 5000\n    roomInitializationTimeoutMillis: 7000\nadapters:\n  redis:\n    poolSize: 500\nsecurity:\n  managementTokens: [a, b]\n",
        )
        .unwrap();
        let flags = FlagValues {
            config: Some(file),
            management_port: Some(9200),
            rooms_port: Some(7000),
            ..FlagValues::default()
        };
        let c = load(
            flags,
            &[
                ("MAESTRO_API_PORT", "9100"),
                ("MAESTRO_SERVICES_ROOMMANAGER_ROOMPINGTIMEOUTMILLIS", "6000"),
                ("MAESTRO_WORKERS_HEALTHCONTROLLERINTERVAL", "5s"),
            ],
        )
        .unwrap();
        assert_eq!(c.management_port, 9200, "the flag beats env and file");
        assert_eq!(c.engine.room_ping_timeout, Millis(6000), "env beats file");
        assert_eq!(c.rooms_port, 7000, "flag alone");
        assert_eq!(
            c.engine.room_initialization_timeout,
            Millis(7000),
            "file alone, key case-insensitive"
        );
        assert_eq!(
            c.engine.health_controller_interval,
            Millis(5000),
            "env alone"
        );
        assert_eq!(c.management_tokens, vec!["a", "b"]);
    }

    #[test]
    fn bad_values_name_the_key_and_source() {
        let err = load(FlagValues::default(), &[("MAESTRO_API_PORT", "eighty")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("api.port") && err.contains("MAESTRO_API_PORT"),
            "{err}"
        );
        let flags = FlagValues {
            runtime: Some("docker".into()),
            ..FlagValues::default()
        };
        let err = load(flags, &[]).unwrap_err().to_string();
        assert!(
            err.contains("runtime") && err.contains("--runtime") && err.contains("sim, kubernetes"),
            "{err}"
        );
        let err = load(
            FlagValues::default(),
            &[("MAESTRO_WORKERS_HEALTHCONTROLLERINTERVAL", "soon")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("workers.healthControllerInterval"), "{err}");
    }

    #[test]
    fn unknown_keys_warn() {
        let env = [("MAESTRO_SERVICE_HOST".to_string(), "10.0.0.1".to_string())];
        let (_, warnings) = Config::load(&FlagValues::default(), env).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("service.host"));
    }

    #[test]
    fn a_broken_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, "api: [unclosed").unwrap();
        let flags = FlagValues {
            config: Some(file),
            ..FlagValues::default()
        };
        let err = load(flags, &[]).unwrap_err().to_string();
        assert!(err.contains("bad.yaml"), "{err}");
    }

    #[test]
    fn the_simulated_cluster_elides_pings_within_the_ping_timeout() {
        use maestro_sim::cluster::Pings;
        use maestro_sim::dist::Distribution;
        let c = load(FlagValues::default(), &[]).unwrap();
        assert_eq!(
            c.sim.pings,
            Pings::Elided {
                refresh: Millis(120_000)
            },
            "auto: half the 240 s ping timeout"
        );
        let timeout = (
            "MAESTRO_SERVICES_ROOMMANAGER_ROOMPINGTIMEOUTMILLIS",
            "30000",
        );
        let c = load(FlagValues::default(), &[timeout]).unwrap();
        assert_eq!(
            c.sim.pings,
            Pings::Elided {
                refresh: Millis(15_000)
            }
        );
        let c = load(
            FlagValues::default(),
            &[timeout, ("MAESTRO_SIM_PINGREFRESH", "0")],
        )
        .unwrap();
        assert_eq!(c.sim.pings, Pings::Every);
        let err = load(
            FlagValues::default(),
            &[timeout, ("MAESTRO_SIM_PINGREFRESH", "28s")],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sim.pingRefresh") && err.contains("ping timeout"),
            "{err}"
        );
        let c = load(
            FlagValues::default(),
            &[("MAESTRO_SIM_MATCHDURATION", "lognormal:40m,0.3")],
        )
        .unwrap();
        assert_eq!(
            c.sim.match_duration,
            Distribution::LogNormal {
                median: Millis(2_400_000),
                sigma: 0.3
            }
        );
        let err = load(
            FlagValues::default(),
            &[("MAESTRO_SIM_MATCHDURATION", "soon")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sim.matchDuration"), "{err}");
        assert_eq!(c.sim.terminate_after_matches, None, "servers play on");
        let c = load(
            FlagValues::default(),
            &[("MAESTRO_SIM_TERMINATEAFTERMATCHES", "1")],
        )
        .unwrap();
        assert_eq!(c.sim.terminate_after_matches, Some(1));
        let err = load(
            FlagValues::default(),
            &[("MAESTRO_SIM_TERMINATEAFTERMATCHES", "-1")],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sim.terminateAfterMatches"), "{err}");
    }

    #[test]
    fn durations() {
        for (text, ms) in [
            ("500ms", 500),
            ("5s", 5000),
            ("1m", 60_000),
            ("1h30m", 5_400_000),
            ("7", 7000),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "x", "5d", "m5", "5s3"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_store_is_sled_unless_postgres_is_chosen_with_a_url() {
        let c = load(FlagValues::default(), &[]).unwrap();
        assert_eq!(c.store, StoreConfig::Sled);
        let c = load(
            FlagValues::default(),
            &[
                ("MAESTRO_STORE_TYPE", "postgres"),
                (
                    "MAESTRO_STORE_POSTGRES_URL",
                    "postgres://m:secret@db/maestro",
                ),
                ("MAESTRO_STORE_POSTGRES_LEASEDURATION", "4s"),
            ],
        )
        .unwrap();
        assert_eq!(
            c.store,
            StoreConfig::Postgres {
                url: "postgres://m:secret@db/maestro".into(),
                lease_duration: Duration::from_secs(4)
            }
        );
        assert!(!format!("{:?}", c.store).contains("secret"));
        let err = load(FlagValues::default(), &[("MAESTRO_STORE_TYPE", "postgres")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("store.postgres.url (from the default): "),
            "{err}"
        );
        let err = load(FlagValues::default(), &[("MAESTRO_STORE_TYPE", "redis")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be one of sled, postgres"), "{err}");
    }

    #[test]
    fn durations_in_gos_syntax() {
        for (text, ns) in [
            ("1m30s", 90_000_000_000),
            ("1.5h", 5_400_000_000_000),
            ("2h45m", 9_900_000_000_000),
            ("250us", 250_000),
            ("250µs", 250_000),
            ("10ns", 10),
            ("0", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_nanos(ns)),
                "{text}"
            );
        }
        // humantime reads these; Go (and so upstream) does not.
        for bad in ["1m 30s", "1 0s", "2w", "3M", "1min", "5sec", "1y"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_camel_case_duration_from_file_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.yaml");
        std::fs::write(
            &file,
            "forwarding:\n  maxBackoff: 10s\n  maxEventAge: 1h30m\n",
        )
        .unwrap();
        let flags = FlagValues {
            config: Some(file.clone()),
            ..FlagValues::default()
        };
        let env = [("MAESTRO_FORWARDING_MAXBACKOFF", "1m30s")];
        let c = load(flags.clone(), &env).unwrap();
        assert_eq!(c.forwarding.max_backoff, Duration::from_secs(90));
        assert_eq!(c.forwarding.max_event_age, Duration::from_secs(5400));

        let err = load(flags, &[("MAESTRO_FORWARDING_MAXBACKOFF", "3x")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "forwarding.maxBackoff (from environment variable \
                 MAESTRO_FORWARDING_MAXBACKOFF): \"3x\" is not a duration"
            ),
            "{err}"
        );
        std::fs::write(&file, "forwarding:\n  maxBackoff: 5d\n").unwrap();
        let flags = FlagValues {
            config: Some(file),
            ..FlagValues::default()
        };
        let err = load(flags, &[]).unwrap_err().to_string();
        assert!(
            err.contains("forwarding.maxBackoff") && err.contains("config.yaml"),
            "{err}"
        );
    }
}
