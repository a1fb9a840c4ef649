//! A credentials file (`--jwks-file`, `--static-token-file`) looked at
//! again while the service runs, as `--config` and the TLS files are: a key
//! removed from the file stops working without a restart.
//!
//! The authenticator asks [`WatchedFile::changed`] on its way (at most one
//! read of the small file per second, whatever the request rate); a file
//! that is now unreadable or invalid is reported once and the previous
//! credentials stay in force.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::digest::{SHA256, digest};

/// How often the file is read at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A file and what was last seen in it.
#[derive(Debug)]
pub struct WatchedFile {
    path: PathBuf,
    seen: Mutex<Seen>,
}

#[derive(Debug)]
struct Seen {
    checked: Instant,
    /// SHA-256 of the contents, or of the read error's text.
    digest: Vec<u8>,
}

impl WatchedFile {
    /// Watches `path`, whose current `contents` are in force.
    pub fn new(path: &Path, contents: &[u8]) -> Self {
        WatchedFile {
            path: path.to_path_buf(),
            seen: Mutex::new(Seen {
                checked: Instant::now(),
                digest: digest(&SHA256, contents).as_ref().to_vec(),
            }),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's new contents (or why it cannot be read) when they differ
    /// from what was seen last; `None` when unchanged or looked at less
    /// than [`CHECK_INTERVAL`] ago.
    pub fn changed(&self) -> Option<Result<Vec<u8>, std::io::Error>> {
        let mut seen = match self.seen.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = Instant::now();
        if now.duration_since(seen.checked) < CHECK_INTERVAL {
            return None;
        }
        seen.checked = now;
        let read = std::fs::read(&self.path);
        let fingerprint = match &read {
            Ok(contents) => digest(&SHA256, contents),
            Err(error) => digest(&SHA256, error.to_string().as_bytes()),
        };
        if fingerprint.as_ref() == seen.digest.as_slice() {
            return None;
        }
        seen.digest = fingerprint.as_ref().to_vec();
        Some(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "one").unwrap();
        let file = WatchedFile::new(&path, b"one");
        assert!(file.changed().is_none(), "looked at less than a second ago");
        file.seen.lock().unwrap().checked -= CHECK_INTERVAL;
        assert!(file.changed().is_none(), "unchanged");
        std::fs::write(&path, "two").unwrap();
        file.seen.lock().unwrap().checked -= CHECK_INTERVAL;
        assert_eq!(file.changed().unwrap().unwrap(), b"two");
        file.seen.lock().unwrap().checked -= CHECK_INTERVAL;
        assert!(file.changed().is_none(), "reported already");
        std::fs::remove_file(&path).unwrap();
        file.seen.lock().unwrap().checked -= CHECK_INTERVAL;
        assert!(file.changed().unwrap().is_err());
        file.seen.lock().unwrap().checked -= CHECK_INTERVAL;
        assert!(file.changed().is_none(), "the same error once");
    }
}
