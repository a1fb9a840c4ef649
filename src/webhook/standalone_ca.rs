//! Standalone mode's certificate authority: the CA core ([`crate::ca`]) kept
//! in a local directory, which issues the webhook's own serving certificate.
//!
//! This is a thin adapter: loading, creating and checking the CA is
//! [`crate::ca::store::load_or_create`], issuing is
//! [`CertificateAuthority::issue_serving`]; what this file adds is the
//! webhook's view (a [`ServingCert`] rustls can serve, names given as one
//! list of DNS names and IP addresses) and a refusal to guess when only half
//! of the signing pair is on disk. The same [`CertificateAuthority`] also
//! signs the CA service's workload certificates ([`StandaloneCa::authority`]),
//! so one root is both the webhook's `caBundle` and the mesh's trust anchor.
//!
//! The directory uses the layout of Istio's plugged-in CA certificates, so
//! either side can read the other's: `ca-cert.pem` and `ca-key.pem` (the
//! signing pair), `root-cert.pem` (the trust anchor) and, for a plugged-in
//! intermediate, `cert-chain.pem`. Key files are written mode 0600, the
//! directory 0700.

use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::ca::store;
use crate::ca::{CertificateAuthority, IssueError, RootOptions, StoreError};
use crate::webhook::tls::{ServingCert, TlsError};

pub use crate::ca::store::{CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT};

/// The CA directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// A file (other than the CA's own) could not be written.
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
    /// The CA core could not read, check or create the CA.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA refused to issue the serving certificate.
    #[error("cannot issue the serving certificate: {0}")]
    Issue(#[source] IssueError),
    /// The issued certificate could not be turned into a serving pair.
    #[error(transparent)]
    Serving(#[from] TlsError),
}

/// The standalone CA, loaded from or created in its directory.
#[derive(Debug, Clone)]
pub struct StandaloneCa {
    dir: PathBuf,
    /// Debug prints the key as `[elided]` (the CA core's own Debug).
    ca: Arc<CertificateAuthority>,
}

impl StandaloneCa {
    /// Loads the CA in `dir`, or creates one there (a self-signed root made
    /// with `root`) if the directory has no signing pair. Returns whether it
    /// was created.
    pub fn load_or_create(dir: &Path, root: &RootOptions) -> Result<(Self, bool), CaError> {
        match (dir.join(CA_CERT).exists(), dir.join(CA_KEY).exists()) {
            (true, false) => return Err(incomplete(dir, CA_CERT, CA_KEY)),
            (false, true) => return Err(incomplete(dir, CA_KEY, CA_CERT)),
            _ => {}
        }
        let (ca, created) = crate::ca::store::load_or_create(dir, root)?;
        // Istio's plugged-in layout has all four files; for a self-signed
        // root the chain is the root itself.
        let chain = dir.join(CERT_CHAIN);
        if created && !chain.exists() {
            write_atomic(&chain, ca.root_pem().as_bytes(), 0o644)?;
        }
        Ok((
            StandaloneCa {
                dir: dir.to_path_buf(),
                ca: Arc::new(ca),
            },
            created,
        ))
    }

    /// The root certificate, PEM: the `caBundle` clients must trust.
    pub fn bundle_pem(&self) -> &str {
        self.ca.root_pem()
    }

    /// The directory the CA lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA itself, shared with the CA service.
    pub fn authority(&self) -> Arc<CertificateAuthority> {
        Arc::clone(&self.ca)
    }

    /// Issues a serving certificate (fresh ECDSA P-256 key) for `names`: DNS
    /// names, and IP addresses which become IP SANs. The served chain is the
    /// leaf and the CA's chain up to the root.
    pub fn issue_serving(
        &self,
        names: &[String],
        validity: Duration,
    ) -> Result<ServingCert, CaError> {
        let (dns_names, ips) = split_names(names);
        let issued = self
            .ca
            .issue_serving(&dns_names, &ips, Some(validity))
            .map_err(CaError::Issue)?;
        Ok(ServingCert::from_pem(
            issued.chain.to_pem().as_bytes(),
            issued.key.expose().as_bytes(),
            "the standalone serving certificate",
        )?)
    }
}

/// Splits serving names into DNS names and IP addresses (which become IP
/// SANs: an API server can reach a webhook at `https://127.0.0.1:PORT`).
pub fn split_names(names: &[String]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns_names = Vec::new();
    let mut ips = Vec::new();
    for name in names {
        match name.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns_names.push(name.clone()),
        }
    }
    (dns_names, ips)
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

/// Writes `contents` to a temporary file with `mode`, then renames it over
/// `path`: readers see the old file or the new one, never half of one.
///
/// The temporary file has an unpredictable name and is created with
/// `O_EXCL` ([`store::temp_path`]): a planted file or symlink makes the
/// write fail rather than be followed. Temporaries an interrupted earlier
/// write left are removed first.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    store::remove_stale_temps(dir, &file_name);
    let tmp = store::temp_path(dir, &file_name);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_error(&tmp)(source));
    }
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        io_error(path)(source)
    })
}

#[cfg(test)]
mod tests;
