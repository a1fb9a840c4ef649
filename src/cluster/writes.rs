//! The parameters of every write outrigger sends to the API server.
//!
//! Each names outrigger as its field manager, so that managed fields (and
//! `kubectl get --show-managed-fields`, audit logs and server-side apply
//! conflicts) say `outrigger` rather than `unknown`.

use kube::api::{PatchParams, PostParams};

/// The field manager every create, replace and patch names.
pub const FIELD_MANAGER: &str = "outrigger";

/// Parameters for a create or a replace.
pub fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    }
}

/// Parameters for a patch.
pub fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    }
}
