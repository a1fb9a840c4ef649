//! Everything that talks to the Kubernetes API (kube crate).

pub mod token_review;
