//! Runtimes: where the engine's room effects reach a cluster. The
//! Kubernetes runtime (kube-rs) and its fake API server are tracked by the
//! runtime issue; the simulated cluster lives in `maestro-sim`.
