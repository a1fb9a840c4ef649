//! The CA's files: Istio's `cacerts` layout on disk, and the per-workload
//! bundle layout (`key.pem`, `cert-chain.pem`, `root-cert.pem`) of Istio's
//! old per-ServiceAccount secrets.
//!
//! Every file is written atomically (a temporary file in the same directory,
//! synced, then renamed), so a crash leaves either the old file or the new
//! one, never half of one. Private keys are created with mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tracing::info;

use super::authority::{CaPem, CertificateAuthority, RootOptions};
use super::chain::LoadError;
use super::issue::IssuedCertificate;
use super::keys::PrivateKeyPem;

/// `ca-cert.pem`: the signing certificate.
pub const CA_CERT: &str = "ca-cert.pem";
/// `ca-key.pem`: its private key.
pub const CA_KEY: &str = "ca-key.pem";
/// `cert-chain.pem`: the chain from the signing certificate up.
pub const CERT_CHAIN: &str = "cert-chain.pem";
/// `root-cert.pem`: the trust anchor.
pub const ROOT_CERT: &str = "root-cert.pem";
/// `key.pem`: an issued workload's private key.
pub const KEY: &str = "key.pem";

/// Why the CA's files could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A required file is missing.
    #[error(
        "{path}: not found; expected a CA directory with ca-cert.pem and ca-key.pem (Istio cacerts layout; cert-chain.pem and root-cert.pem optional)"
    )]
    Missing {
        /// The missing file.
        path: PathBuf,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The directory already holds a CA.
    #[error(
        "{path} already exists; refusing to overwrite an existing CA (use --force to replace it)"
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The material was read but refused.
    #[error("CA in {dir}: {source}")]
    Invalid {
        /// The directory.
        dir: PathBuf,
        /// Why it was refused.
        #[source]
        source: Box<LoadError>,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the PEM texts of a CA directory (Istio `cacerts` layout).
pub fn read_dir(dir: &Path) -> Result<CaPem, StoreError> {
    let required = |name: &str| {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Missing { path }),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    };
    let optional = |name: &str| {
        let path = dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    };
    Ok(CaPem {
        ca_cert: required(CA_CERT)?,
        ca_key: PrivateKeyPem::new(required(CA_KEY)?),
        cert_chain: optional(CERT_CHAIN)?,
        root_cert: optional(ROOT_CERT)?,
    })
}

/// Loads and checks the CA in `dir`.
pub fn load_dir(dir: &Path) -> Result<CertificateAuthority, StoreError> {
    let pem = read_dir(dir)?;
    CertificateAuthority::from_pem(&pem).map_err(|source| StoreError::Invalid {
        dir: dir.to_owned(),
        source: Box::new(source),
    })
}

/// Loads the CA in `dir`, or creates a new self-signed root there if the
/// directory holds no CA. Returns whether it was created.
pub fn load_or_create(
    dir: &Path,
    opts: &RootOptions,
) -> Result<(CertificateAuthority, bool), StoreError> {
    if dir.join(CA_CERT).exists() || dir.join(CA_KEY).exists() {
        return Ok((load_dir(dir)?, false));
    }
    let ca = CertificateAuthority::generate_root(opts).map_err(|source| StoreError::Invalid {
        dir: dir.to_owned(),
        source: Box::new(source),
    })?;
    match write_ca(dir, ca.to_pem(), false) {
        Ok(()) => {
            info!(dir = %dir.display(), "created a new self-signed root CA");
            Ok((ca, true))
        }
        // Another process created one meanwhile: everyone uses the winner's.
        Err(StoreError::Exists { .. }) => Ok((load_dir(dir)?, false)),
        Err(e) => Err(e),
    }
}

/// Writes a CA's material to `dir` (created 0700 if missing): `ca-key.pem`
/// (0600), `ca-cert.pem`, `root-cert.pem`, and `cert-chain.pem` when the CA
/// has one. Refuses to replace an existing CA unless `force`.
pub fn write_ca(dir: &Path, pem: &CaPem, force: bool) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    if !force {
        for name in [CA_CERT, CA_KEY] {
            let path = dir.join(name);
            if path.exists() {
                return Err(StoreError::Exists { path });
            }
        }
    }
    let root = pem.root_cert.clone().unwrap_or_else(|| pem.ca_cert.clone());
    let mut files: Vec<(&str, &str, u32)> = vec![
        (CA_KEY, pem.ca_key.expose(), 0o600),
        (CA_CERT, &pem.ca_cert, 0o644),
        (ROOT_CERT, &root, 0o644),
    ];
    if let Some(chain) = &pem.cert_chain {
        files.push((CERT_CHAIN, chain, 0o644));
    } else if force {
        remove_if_present(&dir.join(CERT_CHAIN))?;
    }
    write_all_atomic(dir, &files, force)
}

/// Writes an issued bundle to `dir`: `key.pem` (0600), `cert-chain.pem`
/// (leaf → root), `root-cert.pem`.
pub fn write_bundle(
    dir: &Path,
    issued: &IssuedCertificate,
    root_pem: &str,
) -> Result<(), StoreError> {
    write_credentials(dir, issued.key.expose(), &issued.chain.to_pem(), root_pem)
}

/// Writes a workload's credentials in the layout of Istio's per-account
/// Secrets (`key.pem` 0600, `cert-chain.pem`, `root-cert.pem`), creating
/// `dir` (0700) if needed. The three files are staged first and then renamed
/// into place, so a failure leaves no half-written set behind.
pub fn write_credentials(
    dir: &Path,
    key_pem: &str,
    chain_pem: &str,
    root_pem: &str,
) -> Result<(), StoreError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(dir))?;
    write_all_atomic(
        dir,
        &[
            (KEY, key_pem, 0o600),
            (CERT_CHAIN, chain_pem, 0o644),
            (ROOT_CERT, root_pem, 0o644),
        ],
        true,
    )
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            path: path.to_owned(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Stages every file as a temporary file first, then puts them all in
/// place: an error while staging leaves the directory untouched.
///
/// With `clobber` false, files are put in place with `link(2)`, which fails
/// if the target exists: two `ca init` racing cannot overwrite each other's
/// CA, and the loser's files are removed again.
fn write_all_atomic(
    dir: &Path,
    files: &[(&str, &str, u32)],
    clobber: bool,
) -> Result<(), StoreError> {
    for (name, _, _) in files {
        remove_stale_temps(dir, name);
    }
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::with_capacity(files.len());
    let remove_temps = |staged: &[(PathBuf, PathBuf)]| {
        for (temp, _) in staged {
            let _ = fs::remove_file(temp);
        }
    };
    for (name, text, mode) in files {
        let target = dir.join(name);
        let temp = temp_path(dir, name);
        if let Err(e) = write_temp(&temp, text.as_bytes(), *mode) {
            remove_temps(&staged);
            return Err(e);
        }
        staged.push((temp, target));
    }
    if clobber {
        for (temp, target) in &staged {
            fs::rename(temp, target).map_err(io_err(target))?;
        }
    } else {
        let mut linked: Vec<&PathBuf> = Vec::with_capacity(staged.len());
        for (temp, target) in &staged {
            if let Err(e) = fs::hard_link(temp, target) {
                for done in &linked {
                    let _ = fs::remove_file(done);
                }
                remove_temps(&staged);
                return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                    StoreError::Exists {
                        path: target.clone(),
                    }
                } else {
                    StoreError::Io {
                        path: target.clone(),
                        source: e,
                    }
                });
            }
            linked.push(target);
        }
        remove_temps(&staged);
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A fresh temporary name beside `name` in `dir`:
/// `.NAME.tmp-PID-RANDOM`. The random part makes it unpredictable (in a
/// container the pid is 1), and it is created with `O_EXCL`
/// ([`write_new`]), so a file or symlink planted under that name makes the
/// write fail instead of being followed or truncated.
pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    let mut random = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    dir.join(format!(".{name}.tmp-{}-{suffix}", std::process::id()))
}

/// Removes the temporary files a killed writer left beside `name` in `dir`
/// (`.NAME.tmp-PID...`): those of processes that no longer run, and this
/// process's own (a restarted container has the same pid, 1, and nothing
/// of its own in flight before it writes). A running process's temporary
/// file is left alone, so two writers never break each other's write.
pub fn remove_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let stale = match pid {
            Some(pid) if pid == std::process::id() => true,
            Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
            None => false,
        };
        if stale && fs::remove_file(entry.path()).is_ok() {
            info!(file = %entry.path().display(), "removed a temporary file left by an interrupted write");
        }
    }
}

fn write_temp(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let result = write_new(path, bytes, mode);
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err(path))?;
    // The umask may have narrowed the mode; set it exactly.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(path))?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_writes_0600_key_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, created) = load_or_create(dir.path(), &RootOptions::default()).unwrap();
        assert!(created);
        let mode = fs::metadata(dir.path().join(CA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = write_ca(dir.path(), ca.to_pem(), false).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        let (again, created) = load_or_create(dir.path(), &RootOptions::default()).unwrap();
        assert!(!created);
        assert_eq!(again.root_pem(), ca.root_pem());
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn temporary_files_of_dead_writers_are_removed_and_planted_names_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        // A writer killed with -9 (no such pid now) and this process's own
        // leftover (a restarted container is pid 1 again).
        let dead = dir.path().join(format!(".{CA_KEY}.tmp-{}", u32::MAX - 7));
        let own = dir
            .path()
            .join(format!(".{CA_KEY}.tmp-{}-ab", std::process::id()));
        let other = dir.path().join(".unrelated.tmp-1");
        for path in [&dead, &own, &other] {
            fs::write(path, "leftover").unwrap();
        }
        remove_stale_temps(dir.path(), CA_KEY);
        assert!(!dead.exists() && !own.exists());
        assert!(
            other.exists(),
            "only the named file's temporaries are touched"
        );
        // Temporary names are not predictable: two are never the same.
        assert_ne!(temp_path(dir.path(), CA_KEY), temp_path(dir.path(), CA_KEY));
        // A symlink planted under the temporary name is not followed.
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        let planted = temp_path(dir.path(), "x");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        assert!(write_temp(&planted, b"overwritten", 0o600).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    }

    #[test]
    fn a_refused_write_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ROOT_CERT), "someone else's root").unwrap();
        let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
        let err = write_ca(dir.path(), ca.to_pem(), false).unwrap_err();
        assert!(
            matches!(&err, StoreError::Exists { path } if path.ends_with(ROOT_CERT)),
            "{err}"
        );
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![ROOT_CERT.to_owned()]);
        assert_eq!(
            fs::read_to_string(dir.path().join(ROOT_CERT)).unwrap(),
            "someone else's root"
        );
    }

    #[test]
    fn missing_key_names_the_file_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CA_CERT), "x").unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ca-key.pem: not found"), "{msg}");
        assert!(msg.contains("Istio cacerts layout"), "{msg}");
    }
}
