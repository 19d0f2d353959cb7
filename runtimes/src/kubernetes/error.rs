//! Kubernetes errors → the runtime interface's error kinds, and the errors of
//! building a runtime from configuration.

use maestro_engine::{RuntimeError, RuntimeErrorKind};

/// Why a [`super::KubernetesRuntime`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum KubernetesError {
    #[error("no Kubernetes connection configured: set inCluster, kubeconfig or masterUrl")]
    NotConfigured,
    #[error("in-cluster configuration: {0}")]
    InCluster(#[from] kube::config::InClusterError),
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("invalid master URL {url:?}: {source}")]
    MasterUrl {
        url: String,
        source: http::uri::InvalidUri,
    },
    #[error("building the Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// What a request was doing, for the error kind and message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verb {
    /// A 409 means the object exists.
    Create,
    /// A 409 means a conflicting write (resource version, terminating
    /// namespace).
    Other,
}

/// The HTTP status of an API error, if the error is one.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Answers worth retrying: the server is overloaded or failing, not refusing.
pub fn is_retryable(err: &kube::Error) -> bool {
    matches!(status_code(err), Some(429) | Some(500..=599))
}

/// 404 NotFound; 409 AlreadyExists on create, Conflict otherwise; 429
/// RateLimited; 5xx Unavailable; 400/422 Invalid; transport failures
/// (connection refused, reset, timed out) Unavailable, since a retry may
/// succeed; anything else Internal.
pub fn runtime_error(err: &kube::Error, verb: Verb, what: &str) -> RuntimeError {
    let kind = match err {
        kube::Error::Api(status) => match status.code {
            404 => RuntimeErrorKind::NotFound,
            409 if verb == Verb::Create => RuntimeErrorKind::AlreadyExists,
            409 => RuntimeErrorKind::Conflict,
            429 => RuntimeErrorKind::RateLimited,
            400 | 422 => RuntimeErrorKind::Invalid,
            500..=599 => RuntimeErrorKind::Unavailable,
            _ => RuntimeErrorKind::Internal,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            RuntimeErrorKind::Unavailable
        }
        _ => RuntimeErrorKind::Internal,
    };
    let detail = match err {
        kube::Error::Api(status) => {
            format!("{} ({} {})", status.message, status.code, status.reason)
        }
        other => other.to_string(),
    };
    RuntimeError::new(kind, format!("{what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Status::failure("boom", "Reason").with_code(code).boxed())
    }

    #[test]
    fn kinds_by_status() {
        use RuntimeErrorKind::*;
        let table = [
            (404, Verb::Other, NotFound),
            (409, Verb::Create, AlreadyExists),
            (409, Verb::Other, Conflict),
            (429, Verb::Create, RateLimited),
            (500, Verb::Other, Unavailable),
            (503, Verb::Create, Unavailable),
            (400, Verb::Create, Invalid),
            (422, Verb::Create, Invalid),
            (403, Verb::Other, Internal),
            (410, Verb::Other, Internal),
        ];
        for (code, verb, kind) in table {
            let e = runtime_error(&api(code), verb, "create pod a/b");
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.message, format!("create pod a/b: boom ({code} Reason)"));
        }
        assert!(is_retryable(&api(429)) && is_retryable(&api(503)));
        assert!(!is_retryable(&api(409)) && !is_retryable(&api(404)));
    }
}
