//! The CA over the network: Istio's `istio.v1.auth.IstioCertificateService`
//! (`CreateCertificate`) over gRPC and TLS, the API Istio's pilot-agent calls
//! at `CA_ADDR` (default port 15012).
//!
//! - [`proto`]: messages, client and server generated from
//!   `proto/istio/v1/auth/ca.proto` (compiled by `protox`, no `protoc`).
//! - [`auth`]: the one [`auth::Authenticator`] trait and its implementations
//!   (local JWT, static tokens, client certificates; TokenReview lives in
//!   `crate::cluster::token_review`).
//! - [`signer`]: the narrow seam between the service and the CA core.
//! - [`service`]: the request handler (authenticate, check, sign, map errors
//!   to gRPC status codes).
//! - [`tls`]: the serving certificate (issued by the CA, renewed in place)
//!   and the rustls configuration (optional client certificates).
//! - [`config`]: the service's settings and the authenticator chain they give.
//! - [`server`]: the listener ([`server::serve`], and [`server::run`] which
//!   also sets up and renews the serving certificate).
//! - [`metrics`]: the service's Prometheus metrics.
//! - [`client`]: the client side, used by `outrigger ca request` and tests.

pub mod auth;
pub mod client;
pub mod config;
pub mod metrics;
pub mod proto;
pub mod server;
pub mod service;
pub mod signer;
pub mod tls;

pub use config::CaServiceConfig;
pub use server::{ServeError, run, serve};
pub use service::CaService;
pub use tls::{ServingCert, tls_config};
