//! What a test needs beyond the Rust toolchain (`../shared` beside the
//! repository, root, `iptables`, `ip`, `openssl`, `kubectl`, `curl`,
//! Python's PyYAML): on a fresh clone a test that lacks one says
//! `SKIPPED: <what> (needs <X>)` and passes, so that `cargo test` passes
//! with the toolchain alone; where `CI` is set (`.ci/run` installs them all)
//! a missing one fails the test instead.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Whether missing prerequisites fail the test (`CI` set) rather than
/// skip it.
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Skips (returns `false`, after saying so on stderr) or, in CI, fails when
/// `present` is false. `what` names the test's subject, `needs` the missing
/// thing.
pub fn available(present: bool, what: &str, needs: &str) -> bool {
    if present {
        return true;
    }
    assert!(
        !required(),
        "{what} needs {needs}, which is missing; CI (`.ci/run`) must provide it"
    );
    eprintln!("SKIPPED: {what} (needs {needs})");
    false
}

/// `../shared/<sub>` beside the repository, when it is there; else skips
/// (or fails in CI) naming the path it looked at.
pub fn shared(sub: &str, what: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join(sub);
    let needs = format!("{} beside the repository", dir.display());
    available(shared_exists(&dir), what, &needs).then_some(dir)
}

/// Whether `path` under `../shared` is there. `OUTRIGGER_TESTS_WITHOUT_SHARED`
/// set makes it absent, to see what a fresh clone without `../shared` runs.
pub fn shared_exists(path: &Path) -> bool {
    std::env::var_os("OUTRIGGER_TESTS_WITHOUT_SHARED").is_none() && path.exists()
}

/// Whether `program` runs (found on PATH and answers `args`).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `program` is on PATH; else skips (or fails in CI).
pub fn tool(program: &str, what: &str) -> bool {
    available(
        runs(program, &["--version"]) || runs(program, &["version"]),
        what,
        program,
    )
}

/// The process runs as root (uid 0); else skips (or fails in CI).
pub fn root(what: &str) -> bool {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(str::to_string))
        });
    available(uid.as_deref() == Some("0"), what, "root")
}
