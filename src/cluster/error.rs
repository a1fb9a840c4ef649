//! The error every reconcile step of the in-cluster controllers returns, and
//! how to tell the kinds of API failures apart (absent, conflict, other).

use thiserror::Error;

use super::authority::AuthorityError;

/// Why one reconcile step (one object) did not reach its desired state. The
/// loops retry every kind with backoff except [`ReconcileError::NotLeader`],
/// which waits for the lease instead.
#[derive(Debug, Error)]
pub enum ReconcileError {
    /// This replica does not hold the lease, so it must not write.
    #[error("not the leader: writes are left to the replica holding the lease")]
    NotLeader,
    /// The API server refused or failed a request.
    #[error("{action} {object}: the API server answered with an error")]
    Api {
        /// The verb (get, create, patch, replace).
        action: &'static str,
        /// The object, `kind namespace/name`.
        object: String,
        /// The client's error (status code and message inside).
        #[source]
        source: kube::Error,
    },
    /// The CA could not issue what was needed.
    #[error("issuing a certificate for {object} failed")]
    Issue {
        /// The object the certificate was for.
        object: String,
        /// The authority's error.
        #[source]
        source: AuthorityError,
    },
}

impl ReconcileError {
    /// Wraps an API error with what was being done to which object.
    pub fn api(action: &'static str, object: impl Into<String>, source: kube::Error) -> Self {
        Self::Api {
            action,
            object: object.into(),
            source,
        }
    }
}

/// The HTTP status of an API error answer, if the error is one.
pub fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Whether the API server said the object does not exist.
pub fn is_not_found(err: &kube::Error) -> bool {
    status_code(err) == Some(404)
}

/// Whether the API server said the object already exists or changed under us.
pub fn is_conflict(err: &kube::Error) -> bool {
    status_code(err) == Some(409)
}
