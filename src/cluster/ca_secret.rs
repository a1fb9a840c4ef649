//! Where the replicas' shared CA comes from: a plugged-in `cacerts`
//! directory (Istio's layout, `--cacerts-dir`), or the Secret
//! `istio-ca-secret` (type `istio.io/ca-root`, keys `ca-cert.pem` and
//! `ca-key.pem`) in outrigger's namespace, created with a new root when
//! absent.
//!
//! Creation is race-free without the lease: every replica that finds no
//! Secret generates a root and tries to create it; the API server accepts
//! exactly one create, the others get 409 Conflict and read the winner's, so
//! all replicas end on one root.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use thiserror::Error;
use tracing::info;

use super::authority::{AuthorityError, CaMaterial, ClusterCa};
use super::error::{is_conflict, is_not_found};
use super::writes;
use crate::ca::PrivateKeyPem;

/// Name of the Secret holding the self-signed CA (Istio's name).
pub const CA_SECRET_NAME: &str = "istio-ca-secret";
/// Type of that Secret (Istio's).
pub const CA_SECRET_TYPE: &str = "istio.io/ca-root";
/// Key of the CA certificate.
pub const CA_CERT_KEY: &str = "ca-cert.pem";
/// Key of the CA private key.
pub const CA_KEY_KEY: &str = "ca-key.pem";
/// Key of the intermediates (plugged-in CA).
pub const CERT_CHAIN_KEY: &str = "cert-chain.pem";
/// Key of the root (plugged-in CA).
pub const ROOT_CERT_KEY: &str = "root-cert.pem";

/// Why the CA material could not be obtained.
#[derive(Debug, Error)]
pub enum CaSecretError {
    /// The API server failed a request (retry later).
    #[error("{action} Secret {namespace}/{CA_SECRET_NAME} failed")]
    Api {
        /// get or create.
        action: &'static str,
        /// outrigger's namespace.
        namespace: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The Secret exists but is not a usable CA: left alone (it may be a
    /// real CA someone put there), reported.
    #[error(
        "Secret {namespace}/{CA_SECRET_NAME} is malformed: {reason} (expected keys {CA_CERT_KEY} and {CA_KEY_KEY} holding PEM)"
    )]
    Malformed {
        /// outrigger's namespace.
        namespace: String,
        /// What is wrong.
        reason: String,
    },
    /// The cacerts directory could not be read.
    #[error("reading the cacerts directory failed")]
    Read(#[source] crate::ca::StoreError),
    /// The material was read but the CA refused it.
    #[error("the CA material is not usable")]
    Authority(#[source] AuthorityError),
}

/// How the CA was obtained, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaOrigin {
    /// Read from the mounted cacerts directory.
    Directory,
    /// Read from an existing Secret.
    SecretRead,
    /// This replica generated the root and created the Secret.
    SecretCreated,
    /// Another replica created it first (409); its root was read.
    SecretReadAfterConflict,
}

/// Extracts the CA material from the Secret's data; refuses missing, empty
/// or non-UTF-8 keys with the key's name.
pub fn material_from_secret(secret: &Secret, namespace: &str) -> Result<CaMaterial, CaSecretError> {
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let text = |key: &str, required: bool| -> Result<String, CaSecretError> {
        match data.get(key) {
            Some(ByteString(bytes)) => {
                String::from_utf8(bytes.clone()).map_err(|_| CaSecretError::Malformed {
                    namespace: namespace.to_string(),
                    reason: format!("key {key} is not UTF-8 PEM text"),
                })
            }
            None if required => Err(CaSecretError::Malformed {
                namespace: namespace.to_string(),
                reason: format!("key {key} is missing"),
            }),
            None => Ok(String::new()),
        }
    };
    Ok(CaMaterial {
        ca_cert: text(CA_CERT_KEY, true)?,
        ca_key: PrivateKeyPem::new(text(CA_KEY_KEY, true)?),
        cert_chain: Some(text(CERT_CHAIN_KEY, false)?).filter(|t| !t.trim().is_empty()),
        root_cert: Some(text(ROOT_CERT_KEY, false)?).filter(|t| !t.trim().is_empty()),
    })
}

/// The Secret that stores CA material: a newly generated self-signed CA, or
/// a renewed root (with the chain and root keys it had).
pub fn desired_ca_secret(namespace: &str, material: &CaMaterial) -> Secret {
    let mut data = BTreeMap::new();
    data.insert(
        CA_CERT_KEY.to_string(),
        ByteString(material.ca_cert.as_bytes().to_vec()),
    );
    data.insert(
        CA_KEY_KEY.to_string(),
        ByteString(material.ca_key.expose().as_bytes().to_vec()),
    );
    // A chain or root stored beside the CA (a `cacerts`-style Secret) is
    // written back with it.
    for (key, text) in [
        (CERT_CHAIN_KEY, &material.cert_chain),
        (ROOT_CERT_KEY, &material.root_cert),
    ] {
        if let Some(text) = text {
            data.insert(key.to_string(), ByteString(text.as_bytes().to_vec()));
        }
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(CA_SECRET_NAME.to_string()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        type_: Some(CA_SECRET_TYPE.to_string()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Loads the CA from a mounted Istio `cacerts` directory (the CA core reads
/// the files; `cert-chain.pem` and `root-cert.pem` are optional for a
/// self-signed `ca-cert.pem`).
pub fn load_from_dir(dir: &Path) -> Result<ClusterCa, CaSecretError> {
    let material = crate::ca::store::read_dir(dir).map_err(CaSecretError::Read)?;
    ClusterCa::from_material(&material, &dir.display().to_string())
        .map_err(CaSecretError::Authority)
}

/// Reads `istio-ca-secret` from `api`'s namespace, or creates it with a new
/// root; on 409 (another replica won the race) reads the winner's.
pub async fn load_or_create(
    api: &Api<Secret>,
    namespace: &str,
    trust_domain: &str,
) -> Result<(ClusterCa, CaOrigin), CaSecretError> {
    let from_secret = |secret: &Secret| -> Result<ClusterCa, CaSecretError> {
        let material = material_from_secret(secret, namespace)?;
        ClusterCa::from_material(&material, &format!("Secret {namespace}/{CA_SECRET_NAME}"))
            .map_err(CaSecretError::Authority)
    };
    let api_err = |action, source| CaSecretError::Api {
        action,
        namespace: namespace.to_string(),
        source,
    };
    match api.get(CA_SECRET_NAME).await {
        Ok(secret) => {
            info!(
                namespace,
                secret = CA_SECRET_NAME,
                "using the CA from the existing Secret"
            );
            return Ok((from_secret(&secret)?, CaOrigin::SecretRead));
        }
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(api_err("get", e)),
    }
    let (ca, material) = ClusterCa::generate(trust_domain).map_err(CaSecretError::Authority)?;
    let desired = desired_ca_secret(namespace, &material);
    match api.create(&writes::post_params(), &desired).await {
        Ok(_) => {
            info!(
                namespace,
                secret = CA_SECRET_NAME,
                reason = "absent",
                "created the CA Secret with a new root"
            );
            Ok((ca, CaOrigin::SecretCreated))
        }
        Err(e) if is_conflict(&e) => {
            info!(
                namespace,
                secret = CA_SECRET_NAME,
                "another replica created the CA Secret first; using its root"
            );
            let secret = api
                .get(CA_SECRET_NAME)
                .await
                .map_err(|e| api_err("get", e))?;
            Ok((from_secret(&secret)?, CaOrigin::SecretReadAfterConflict))
        }
        Err(e) => Err(api_err("create", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desired_secret_round_trips() {
        let (_, material) = ClusterCa::generate("cluster.local").unwrap();
        let secret = desired_ca_secret("ns", &material);
        assert_eq!(secret.type_.as_deref(), Some(CA_SECRET_TYPE));
        assert_eq!(material_from_secret(&secret, "ns").unwrap(), material);
    }

    #[test]
    fn missing_key_is_named() {
        let secret = Secret::default();
        let err = material_from_secret(&secret, "ns").unwrap_err();
        assert!(
            err.to_string().contains("key ca-cert.pem is missing"),
            "{err}"
        );
        assert!(err.to_string().contains("ns/istio-ca-secret"), "{err}");
    }

    #[test]
    fn cacerts_dir_needs_the_two_files() {
        let dir = std::env::temp_dir().join(format!("outrigger-cacerts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (_, material) = ClusterCa::generate("cluster.local").unwrap();
        assert!(matches!(load_from_dir(&dir), Err(CaSecretError::Read(_))));
        std::fs::write(dir.join(CA_CERT_KEY), &material.ca_cert).unwrap();
        std::fs::write(dir.join(CA_KEY_KEY), material.ca_key.expose()).unwrap();
        let ca = load_from_dir(&dir).unwrap();
        assert_eq!(ca.root_pem().trim(), material.ca_cert.trim());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
