//! Standalone mode's certificate authority: a self-signed CA kept in a local
//! directory, which issues the webhook's own serving certificate.
//!
//! This is the one place that mints certificates for `outrigger serve`
//! without `--tls-cert-file`; it uses rcgen directly until the CA module
//! ([`crate::ca`]) can take its place. The directory uses the layout of
//! Istio's plugged-in CA certificates, so either side can read the other's:
//! `ca-cert.pem` and `ca-key.pem` (the signing pair), `root-cert.pem` (the
//! trust anchor: here the same self-signed certificate) and `cert-chain.pem`
//! (the chain from `ca-cert.pem` to the root: here that one certificate).
//! Key files are written mode 0600, the directory 0700.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::OffsetDateTime;

use crate::webhook::tls::{ServingCert, TlsError};

/// The signing certificate.
pub const CA_CERT: &str = "ca-cert.pem";
/// The signing key (0600).
pub const CA_KEY: &str = "ca-key.pem";
/// The trust anchor: what a `caBundle` must hold.
pub const ROOT_CERT: &str = "root-cert.pem";
/// The chain from the signing certificate to the root.
pub const CERT_CHAIN: &str = "cert-chain.pem";

/// How long the standalone CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Backdating of every certificate, against clock skew between machines.
const BACKDATE: Duration = Duration::from_secs(3600);

/// The CA directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file or the directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Only one of the signing pair exists: refusing to guess.
    #[error(
        "CA directory {dir} has {present} but not {missing}: restore it, or empty the directory to create a new CA"
    )]
    Incomplete {
        /// The directory.
        dir: String,
        /// The file that exists.
        present: &'static str,
        /// The file that is missing.
        missing: &'static str,
    },
    /// A file is not what it should be.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// rcgen could not build a certificate or key.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// The issued certificate could not be turned into a serving pair.
    #[error(transparent)]
    Serving(#[from] TlsError),
}

/// The standalone CA, loaded from or created in its directory.
pub struct StandaloneCa {
    dir: PathBuf,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for StandaloneCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandaloneCa")
            .field("dir", &self.dir)
            .field("key", &"[elided]")
            .finish()
    }
}

impl StandaloneCa {
    /// Loads the CA in `dir`, or creates one there if the directory has no
    /// signing pair. Returns whether it was created.
    pub fn load_or_create(dir: &Path) -> Result<(Self, bool), CaError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(dir).map(|ca| (ca, false)),
            (false, false) => Self::create(dir).map(|ca| (ca, true)),
            (true, false) => Err(incomplete(dir, CA_CERT, CA_KEY)),
            (false, true) => Err(incomplete(dir, CA_KEY, CA_CERT)),
        }
    }

    fn load(dir: &Path) -> Result<Self, CaError> {
        let cert_path = dir.join(CA_CERT);
        let key_path = dir.join(CA_KEY);
        let cert_pem = read_to_string(&cert_path)?;
        let key_pem = read_to_string(&key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CaError::Invalid {
            path: key_path.display().to_string(),
            reason: format!(
                "not a usable PKCS#8 PEM private key (ECDSA P-256/P-384 or Ed25519): {e}"
            ),
        })?;
        let cert_der = certificate_der(cert_pem.as_bytes(), &cert_path)?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert_der).map_err(|e| CaError::Invalid {
                path: cert_path.display().to_string(),
                reason: format!("not a valid X.509 certificate: {e}"),
            })?;
        if parsed.public_key().raw != rcgen::PublicKeyData::subject_public_key_info(&key) {
            return Err(CaError::Invalid {
                path: key_path.display().to_string(),
                reason: format!("this key does not belong to the certificate in {CA_CERT}"),
            });
        }
        if !parsed.is_ca() {
            return Err(CaError::Invalid {
                path: cert_path.display().to_string(),
                reason: "not a CA certificate (basicConstraints CA:TRUE is required)".into(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| CaError::Invalid {
            path: cert_path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(StandaloneCa {
            dir: dir.to_path_buf(),
            cert_pem,
            issuer,
        })
    }

    fn create(dir: &Path) -> Result<Self, CaError> {
        create_private_dir(dir)?;
        let key = KeyPair::generate().map_err(|source| CaError::Generate {
            what: "the CA key",
            source,
        })?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "outrigger");
        name.push(DnType::CommonName, "outrigger standalone CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_VALIDITY;
        let cert = params
            .self_signed(&key)
            .map_err(|source| CaError::Generate {
                what: "the CA certificate",
                source,
            })?;
        let cert_pem = cert.pem();
        // The key first: a directory with a certificate but no key is the
        // state load_or_create refuses, so a crash between the writes leaves
        // either nothing usable to misread or a complete pair.
        write_atomic(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), 0o600)?;
        write_atomic(&dir.join(ROOT_CERT), cert_pem.as_bytes(), 0o644)?;
        write_atomic(&dir.join(CERT_CHAIN), cert_pem.as_bytes(), 0o644)?;
        write_atomic(&dir.join(CA_CERT), cert_pem.as_bytes(), 0o644)?;
        Ok(StandaloneCa {
            dir: dir.to_path_buf(),
            cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM: the `caBundle` clients must trust.
    pub fn bundle_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Issues a serving certificate (fresh ECDSA P-256 key) for `names`: DNS
    /// names, and IP addresses which become IP SANs.
    pub fn issue_serving(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<ServingCert, CaError> {
        let mut params =
            CertificateParams::new(names.to_vec()).map_err(|source| CaError::Generate {
                what: "the serving certificate's names",
                source,
            })?;
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "outrigger");
        if let Some(first) = names.first() {
            name.push(DnType::CommonName, first.as_str());
        }
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + validity;
        let key = KeyPair::generate().map_err(|source| CaError::Generate {
            what: "the serving key",
            source,
        })?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| CaError::Generate {
                what: "the serving certificate",
                source,
            })?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok(ServingCert::from_der(
            vec![cert.der().clone()],
            key_der,
            "the standalone serving certificate",
        )?)
    }
}

fn incomplete(dir: &Path, present: &'static str, missing: &'static str) -> CaError {
    CaError::Incomplete {
        dir: dir.display().to_string(),
        present,
        missing,
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |source| CaError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_to_string(path: &Path) -> Result<String, CaError> {
    std::fs::read_to_string(path).map_err(io_error(path))
}

fn create_private_dir(dir: &Path) -> Result<(), CaError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_error(dir))?;
    }
    Ok(())
}

/// Writes `contents` to a temporary file with `mode`, then renames it over
/// `path`: readers see the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        file_name.unwrap_or_default(),
        std::process::id()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(contents).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_error(path))
}

/// Parses one PEM certificate, naming the file in errors.
fn certificate_der(pem: &[u8], path: &Path) -> Result<CertificateDer<'static>, CaError> {
    CertificateDer::from_pem_slice(pem).map_err(|e| CaError::Invalid {
        path: path.display().to_string(),
        reason: format!("expected one PEM CERTIFICATE block: {e}"),
    })
}

#[cfg(test)]
mod tests;
