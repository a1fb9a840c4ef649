//! Code generated from `proto/istio/v1/auth/ca.proto` by `build.rs`: the
//! `IstioCertificateRequest`/`IstioCertificateResponse` messages and the
//! `IstioCertificateService` client and server.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

tonic::include_proto!("istio.v1.auth");
