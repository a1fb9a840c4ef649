//! outrigger: an Istio-compatible sidecar injector and workload certificate
//! authority for Kubernetes.
//!
//! The library holds everything; `src/main.rs` is a thin binary over it.
//! See `../shared/DESIGN.md` for the shape: the engine ([`inject`]) and the CA
//! core ([`ca`]) are pure; the webhook, gRPC and Kubernetes layers are thin
//! around them.
#![forbid(unsafe_code)]

pub mod ca;
pub mod cluster;
pub mod config;
pub mod inject;
pub mod iptables;
pub mod limits;
pub mod metrics;
pub mod preview;
pub mod template;
pub mod webhook;
