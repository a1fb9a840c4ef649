//! The workload certificate authority (Citadel-like): key material, SPIFFE
//! identities, issuing and CSR signing. Pure apart from reading and writing
//! its own files.

pub mod grpc;
