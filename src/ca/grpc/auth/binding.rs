//! What a verified ServiceAccount token is bound to, and the check that the
//! objects still exist.
//!
//! A signature proves who issued a token, not that the API server would
//! still accept it: a token outlives the ServiceAccount it names (deleted,
//! or deleted and recreated under the same name) and, for a pod-bound
//! projected token (what every Istio proxy sends), the pod it was minted
//! for. TokenReview refuses both. So a token the local JWT path verified is
//! accepted only when a [`BindingCheck`] says the objects its
//! `kubernetes.io` claims name are still the ones it was issued for; when
//! the check cannot tell (no UID claim, a binding it cannot look up, the
//! API server unreachable), the token goes on down the chain, to
//! TokenReview.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
use tonic::async_trait;

/// An object a token is bound to: its name and UID.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BoundObject {
    /// The object's name.
    pub name: String,
    /// The object's UID.
    pub uid: String,
}

/// The `kubernetes.io` claims of a token the local JWT path verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBinding {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount.
    pub service_account: BoundObject,
    /// The pod a projected token was minted for.
    pub pod: Option<BoundObject>,
    /// The Secret a legacy token was minted for.
    pub secret: Option<BoundObject>,
    /// The node a node-bound token was minted for.
    pub node: Option<BoundObject>,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<Claims>,
}

#[derive(Deserialize)]
struct Claims {
    namespace: Option<String>,
    serviceaccount: Option<BoundObject>,
    pod: Option<BoundObject>,
    secret: Option<BoundObject>,
    node: Option<BoundObject>,
}

impl TokenBinding {
    /// The binding of a JWT whose signature was already verified; `None`
    /// when the token has no `kubernetes.io` claims with a ServiceAccount
    /// UID (a binding that cannot be checked).
    pub fn of_verified_jwt(token: &str) -> Option<TokenBinding> {
        let payload = token.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .ok()?;
        let claims = serde_json::from_slice::<Payload>(&bytes).ok()?.kubernetes?;
        let service_account = claims.serviceaccount?;
        if service_account.uid.is_empty() {
            return None;
        }
        Some(TokenBinding {
            namespace: claims.namespace?,
            service_account,
            pod: claims.pod,
            secret: claims.secret,
            node: claims.node,
        })
    }
}

/// What a [`BindingCheck`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingVerdict {
    /// Every bound object exists with the UID the token names.
    Current,
    /// A bound object is gone or was replaced: the API server would refuse
    /// the token. The text says which.
    Revoked(String),
    /// The check cannot tell; another authenticator (TokenReview) decides.
    Unknown(String),
}

/// Checks that a verified token's bound objects still exist.
#[async_trait]
pub trait BindingCheck: Send + Sync + fmt::Debug {
    /// The verdict for `binding`.
    async fn check(&self, binding: &TokenBinding) -> BindingVerdict;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(payload: serde_json::Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            b64(br#"{"alg":"RS256"}"#),
            b64(payload.to_string().as_bytes())
        )
    }

    #[test]
    fn a_pod_bound_token_names_its_service_account_and_pod() {
        let token = jwt(serde_json::json!({
            "kubernetes.io": {
                "namespace": "shop",
                "serviceaccount": {"name": "frontend", "uid": "sa-1"},
                "pod": {"name": "frontend-7d4", "uid": "pod-1"},
            }
        }));
        let binding = TokenBinding::of_verified_jwt(&token).unwrap();
        assert_eq!(binding.namespace, "shop");
        assert_eq!(binding.service_account.uid, "sa-1");
        assert_eq!(
            binding.pod,
            Some(BoundObject {
                name: "frontend-7d4".into(),
                uid: "pod-1".into()
            })
        );
        assert_eq!(binding.secret, None);
    }

    #[test]
    fn tokens_without_a_service_account_uid_cannot_be_checked() {
        for payload in [
            serde_json::json!({"sub": "system:serviceaccount:a:b"}),
            serde_json::json!({"kubernetes.io": {"namespace": "a", "serviceaccount": {"name": "b", "uid": ""}}}),
            serde_json::json!({"kubernetes.io": {"namespace": "a"}}),
        ] {
            assert_eq!(TokenBinding::of_verified_jwt(&jwt(payload)), None);
        }
        assert_eq!(TokenBinding::of_verified_jwt("not-a-jwt"), None);
        assert_eq!(TokenBinding::of_verified_jwt("a.%%%.c"), None);
    }
}
