//! Playing the kubelet against a real API server that has none (the
//! test API server of `scripts/kube-apiserver`): a Node object with an
//! address, pods bound to it and reported running and ready, and deleted
//! pods finished once their grace period starts.
//!
//! Shared by the runtime's real-cluster test and the binary's allocation
//! crash test (included with `#[path]`).

#![allow(dead_code)]

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Where the test API server's kubeconfig is named.
pub const KUBECONFIG_ENV: &str = "MAESTRO_K8S_TEST_KUBECONFIG";

/// The node every test pod is bound to, and its address.
pub const NODE: &str = "maestro-test-node";
pub const NODE_ADDRESS: &str = "127.0.0.1";

/// The kubeconfig of the test API server. Without one the test fails (it
/// never skips) and says how to start one.
pub fn kubeconfig() -> PathBuf {
    match std::env::var_os(KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "{KUBECONFIG_ENV} is not set: this test needs a Kubernetes API server. \
             Start one with `eval \"$(scripts/kube-apiserver up)\"` (scripts/test does)."
        ),
    }
}

pub async fn client() -> Client {
    let path = kubeconfig();
    let file = kube::config::Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("reading the kubeconfig {}: {e}", path.display()));
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .expect("a usable kubeconfig");
    Client::try_from(config).expect("a client")
}

/// Creates the node (if missing) with an internal address.
pub async fn ensure_node(client: &Client) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": NODE},
        "status": {"addresses": [{"type": "InternalIP", "address": NODE_ADDRESS}]}
    }))
    .expect("a node");
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating the node: {e}"),
    }
    // Status on create is kept for nodes, but make sure.
    let status =
        json!({"status": {"addresses": [{"type": "InternalIP", "address": NODE_ADDRESS}]}});
    nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("the node's address");
}

/// One pass of the kubelet over a namespace: binds unbound pods to the
/// node and reports them running and ready; finishes the deletion of pods
/// being deleted. Returns the names of the pods running and not deleting.
pub async fn sync(client: &Client, namespace: &str) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = match pods.list(&ListParams::default()).await {
        Ok(list) => list,
        Err(kube::Error::Api(e)) if e.code == 404 => return Vec::new(),
        Err(e) => panic!("listing pods in {namespace}: {e}"),
    };
    let mut running = Vec::new();
    for pod in list.items {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let now = DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            };
            let _ = pods.delete(&name, &now).await;
            continue;
        }
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .is_some();
        if !bound {
            let binding = json!({
                "apiVersion": "v1",
                "kind": "Binding",
                "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}
            });
            if let Err(e) = pods
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &name,
                    &PostParams::default(),
                    &binding,
                )
                .await
            {
                panic!("binding {namespace}/{name}: {e}");
            }
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase != Some("Running") {
            let status = json!({"status": {
                "phase": "Running",
                "hostIP": NODE_ADDRESS,
                "podIP": NODE_ADDRESS,
                "conditions": [{"type": "Ready", "status": "True"}]
            }});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap_or_else(|e| panic!("reporting {namespace}/{name} running: {e}"));
        }
        running.push(name);
    }
    running
}
