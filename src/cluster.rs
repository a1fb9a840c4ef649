//! In-cluster operation: everything that talks to the Kubernetes API (kube
//! crate). The replicas share one CA through a Secret ([`ca_secret`]), issue
//! their own serving certificate ([`serving_cert`]), keep the webhook's
//! caBundle ([`ca_bundle`]), distribute the root to every namespace
//! ([`root_configmaps`]) and write per-ServiceAccount certificate Secrets
//! ([`sa_secrets`]); only the lease holder ([`leader`]) writes.
//!
//! Reconcile decisions are pure functions next to each controller; the IO
//! loops are thin ([`driver`]) and never return an error that would stop the
//! webhook: API errors are logged and retried with backoff.

pub mod authority;
pub mod ca_bundle;
pub mod ca_secret;
pub mod driver;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod retry;
pub mod root_configmaps;
pub mod sa_secrets;
pub mod serving_cert;
