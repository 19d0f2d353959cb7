//! What the end-to-end suites share: the real binary started on fresh
//! loopback ports, its HTTP APIs, and waiting for a condition.
#![allow(dead_code)] // Each suite uses a part.

#[path = "../../runtimes/tests/support/kubelet.rs"]
pub mod kubelet;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A running `maestro start all`.
pub struct Maestro {
    pub child: Child,
    pub management: u16,
    pub rooms: u16,
    pub internal: u16,
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("bound address").port()
}

impl Maestro {
    pub fn start(data_dir: &Path) -> Maestro {
        Maestro::start_modules(data_dir, &["all"], &[])
    }

    /// `maestro start <modules> <extra>` on fresh ports, once ready.
    pub fn start_modules(data_dir: &Path, modules: &[&str], extra: &[&str]) -> Maestro {
        Maestro::start_with_env(data_dir, modules, extra, &[])
    }

    /// The same, with extra environment variables.
    ///
    /// The ports are found free by binding port 0 and letting go, so another
    /// process may take one before maestro binds it: maestro then exits at
    /// once, and it is started again on other ports.
    pub fn start_with_env(
        data_dir: &Path,
        modules: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Maestro {
        for _ in 0..5 {
            let mut maestro = Maestro::spawn(data_dir, modules, extra, env);
            let internal = maestro.internal;
            let mut exited = false;
            wait_for("readiness", Duration::from_secs(30), || {
                exited = maestro.child.try_wait().ok().flatten().is_some();
                exited
                    || ureq::get(&format!("http://127.0.0.1:{internal}/readyz"))
                        .call()
                        .is_ok_and(|r| r.status() == 200)
            });
            // Another process on our internal port could have answered for
            // a moment: make sure this one is still up.
            std::thread::sleep(Duration::from_millis(100));
            if !exited && maestro.child.try_wait().ok().flatten().is_none() {
                return maestro;
            }
            eprintln!("maestro exited at start-up (a port was taken?); starting it again");
        }
        panic!("maestro did not start in five attempts");
    }

    pub fn spawn(
        data_dir: &Path,
        modules: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Maestro {
        let (mut command, [management, rooms, internal]) =
            Maestro::command(data_dir, modules, extra, env);
        let child = command.spawn().expect("the maestro binary starts");
        Maestro {
            child,
            management,
            rooms,
            internal,
        }
    }

    /// The command that starts maestro on fresh ports (management, rooms,
    /// internal), for a test that needs to adjust it.
    pub fn command(
        data_dir: &Path,
        modules: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> (Command, [u16; 3]) {
        let (management, rooms, internal) = (free_port(), free_port(), free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_maestro"));
        command
            .envs(env.iter().copied())
            .arg("start")
            .args(modules)
            .args(extra)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--management-port", &management.to_string()])
            .args(["--rooms-port", &rooms.to_string()])
            .args(["--internal-port", &internal.to_string()])
            // Quick simulated game servers, short timeouts, and no periodic
            // health check during the test: every decision must be
            // event-driven. The ping and start-up timeouts leave room for a
            // machine busy with other tests.
            .env("MAESTRO_SIM_STARTDELAY", "300ms")
            .env("MAESTRO_SIM_PINGINTERVAL", "1s")
            .env("MAESTRO_SIM_MATCHDURATION", "4s")
            .env(
                "MAESTRO_SERVICES_ROOMMANAGER_ROOMPINGTIMEOUTMILLIS",
                "30000",
            )
            .env(
                "MAESTRO_SERVICES_ROOMMANAGER_ROOMINITIALIZATIONTIMEOUTMILLIS",
                "30000",
            )
            .env(
                "MAESTRO_SERVICES_ROOMMANAGER_ROOMDELETIONTIMEOUTMILLIS",
                "5000",
            )
            .env(
                "MAESTRO_SERVICES_ROOMMANAGER_ROOMVALIDATIONTIMEOUTMILLIS",
                "10000",
            )
            .env("MAESTRO_WORKERS_HEALTHCONTROLLERINTERVAL", "1h")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        (command, [management, rooms, internal])
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.management)
    }

    pub fn rooms_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.rooms)
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = ureq::get(&self.url(path))
            .config()
            .http_status_as_error(false)
            .build()
            .call();
        decode(response)
    }

    pub fn send(&self, method: &str, url: String, body: &Value) -> (u16, Value) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let response = match method {
            "POST" => agent.post(&url).send_json(body),
            "PUT" => agent.put(&url).send_json(body),
            "PATCH" => agent.patch(&url).send_json(body),
            "DELETE" => agent.delete(&url).call(),
            other => panic!("unsupported method {other}"),
        };
        decode(response)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.send("POST", self.url(path), body)
    }

    /// Every series maestro exports has HELP text (as `promtool check
    /// metrics` wants): each `# TYPE` line has its `# HELP` line.
    pub fn assert_every_metric_has_help(&self) {
        let text = self.metrics_text();
        let helped: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let typed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        assert!(
            typed.iter().any(|n| n.starts_with("maestro_worker_gru_")),
            "the fleet gauges are exported: {typed:?}"
        );
        let missing: Vec<&&str> = typed.iter().filter(|n| !helped.contains(n)).collect();
        assert!(missing.is_empty(), "metrics without HELP: {missing:?}");
    }

    pub fn metrics_text(&self) -> String {
        ureq::get(&format!("http://127.0.0.1:{}/metrics", self.internal))
            .call()
            .expect("metrics answer")
            .body_mut()
            .read_to_string()
            .expect("metrics text")
    }

    pub fn metric(&self, name: &str) -> f64 {
        self.metrics_text()
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub fn kill(mut self) {
        let _ = self.child.kill(); // SIGKILL on Unix
        let _ = self.child.wait();
    }
}

impl Drop for Maestro {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn decode(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Value) {
    let mut response = response.expect("maestro answers");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

pub fn scheduler(name: &str, image: &str, autoscaling: Option<Value>, replicas: u32) -> Value {
    let mut s = json!({
        "name": name,
        "game": "tennis",
        "spec": {
            "terminationGracePeriod": "30s",
            "containers": [{
                "name": "game",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["./run"],
                "environment": [{"name": "MODE", "value": "ranked"}],
                "requests": {"memory": "64Mi", "cpu": "100m"},
                "limits": {"memory": "128Mi", "cpu": "200m"},
                "ports": [{"name": "game", "protocol": "udp", "port": 7777}]
            }]
        },
        "portRange": {"start": 20000, "end": 30000},
        "maxSurge": "50%",
        "roomsReplicas": replicas,
        "matchAllocation": {"maxMatches": 1}
    });
    if let Some(a) = autoscaling {
        s["autoscaling"] = a;
    }
    s
}

pub fn info(m: &Maestro, name: &str) -> Value {
    let (status, body) = m.get("/schedulers/info");
    assert_eq!(status, 200, "{body}");
    body["schedulers"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name).cloned())
        .unwrap_or(Value::Null)
}

pub fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0)
}

/// Rooms by id: (status, version).
pub fn rooms(m: &Maestro, name: &str) -> Vec<(String, String, String)> {
    let (status, body) = m.get(&format!("/schedulers/{name}/rooms?per_page=100"));
    assert_eq!(status, 200, "{body}");
    body["rooms"]
        .as_array()
        .map(|rooms| {
            rooms
                .iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap_or_default().to_string(),
                        r["status"].as_str().unwrap_or_default().to_string(),
                        r["version"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn operations(m: &Maestro, name: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for stage in ["pending", "active", "final"] {
        let path = match stage {
            "final" => format!("/schedulers/{name}/operations?stage=final&per_page=100"),
            _ => format!("/schedulers/{name}/operations?stage={stage}"),
        };
        let (status, body) = m.get(&path);
        assert_eq!(status, 200, "{path}: {body}");
        all.extend(body["operations"].as_array().cloned().unwrap_or_default());
    }
    all
}

pub fn operation(m: &Maestro, name: &str, id: &str) -> Value {
    let (status, body) = m.get(&format!("/schedulers/{name}/operations/{id}"));
    assert_eq!(status, 200, "{body}");
    body["operation"].clone()
}

pub fn op_id(body: &Value) -> String {
    body["operationId"]
        .as_str()
        .expect("an operation id")
        .to_string()
}

/// The test playing the kubelet and the game servers of scheduler `name`
/// against the real kube-apiserver: pods are bound and run, and every room
/// pings `ready` through the rooms API on [`rooms_port`](Self::rooms_port)
/// (which a test changes when maestro restarts on other ports), until the
/// value is dropped; the namespace is deleted at the end.
pub struct KubeletAndGameServers {
    pub rooms_port: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl KubeletAndGameServers {
    /// The kubeconfig of the test server, for `MAESTRO_ADAPTERS_RUNTIME_KUBERNETES_KUBECONFIG`.
    pub fn kubeconfig() -> String {
        kubelet::kubeconfig().display().to_string()
    }

    /// Registers the node, then plays until dropped.
    pub fn start(name: &str) -> KubeletAndGameServers {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let client = runtime.block_on(kubelet::client());
        runtime.block_on(kubelet::ensure_node(&client));
        let stop = Arc::new(AtomicBool::new(false));
        let rooms_port = Arc::new(AtomicU16::new(0));
        let thread = {
            let (stop, rooms_port, name) = (stop.clone(), rooms_port.clone(), name.to_string());
            std::thread::spawn(move || {
                let agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .new_agent();
                while !stop.load(Ordering::Relaxed) {
                    let pods = runtime.block_on(kubelet::sync(&client, &name));
                    let port = rooms_port.load(Ordering::Relaxed);
                    for pod in pods.iter().filter(|_| port != 0) {
                        let url =
                            format!("http://127.0.0.1:{port}/scheduler/{name}/rooms/{pod}/ping");
                        let _ = agent.put(&url).send_json(
                            json!({"status": "ready", "runningMatches": 0, "timestamp": 0}),
                        );
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
                runtime.block_on(async {
                    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
                        kube::Api::all(client.clone());
                    let _ = namespaces.delete(&name, &Default::default()).await;
                });
            })
        };
        KubeletAndGameServers {
            rooms_port,
            stop,
            thread: Some(thread),
        }
    }

    /// Game servers ping through the rooms API on `port` from now on.
    pub fn ping_through(&self, port: u16) {
        self.rooms_port.store(port, Ordering::Relaxed);
    }
}

impl Drop for KubeletAndGameServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
