//! The README is part of the product: a new user follows it word for word.
//! This test keeps it true.
//!
//! - Every `sh` block is run, in order, in a scratch directory holding a copy
//!   of `examples/`, with `cargo run [--release] --` standing for the built
//!   binary (`cargo test` itself is what runs this). A `sh server` block is
//!   started in the background, waited for on its monitoring port, and
//!   stopped at the end. `sh cluster` blocks need a cluster and are not run;
//!   blocks that call `curl` are skipped, saying so, where it is absent
//!   (outside CI). The quick start's `cargo test` is the command running
//!   this test, so it is the one line not run again.
//! - Every `yaml` block that is an injector configuration (it starts with
//!   `values:` or `meshConfig:`) loads as one.
//! - The reference sections cover what the code has: every flag of every
//!   subcommand, every configuration key, every metric, every skip reason.

#[path = "support/requires.rs"]
mod requires;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable")
}

/// A fenced block: its info string and its text.
struct Block {
    info: String,
    text: String,
}

fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for line in markdown.lines() {
        let trimmed = line.trim_start();
        match (&mut current, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                current = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some(block), None) => {
                block.text.push_str(trimmed);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// The block as a script for the built binary.
fn script(text: &str) -> String {
    text.lines()
        .filter(|l| l.trim() != "cargo test")
        .map(|l| {
            l.replace("cargo run --release --", "outrigger")
                .replace("cargo run --", "outrigger")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("outrigger-readme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let status = Command::new("cp")
        .arg("-r")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples"))
        .arg(&dir)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copying examples/ failed");
    dir
}

fn bash(dir: &Path, script: &str) -> Command {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_outrigger"))
        .parent()
        .expect("the binary has a directory")
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("RUST_LOG");
    cmd
}

/// A background server, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `--monitoring-listen` address a server command names.
fn monitoring_addr(script: &str) -> String {
    script
        .split_whitespace()
        .skip_while(|w| *w != "--monitoring-listen")
        .nth(1)
        .expect("a `sh server` block names --monitoring-listen")
        .to_string()
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

fn wait_ready(server: &mut Server, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(status) = server.0.try_wait().expect("server status") {
            panic!("the README's server exited early: {status}");
        }
        if http_get(addr, "/readyz").is_some_and(|a| a.starts_with("HTTP/1.1 200")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the README's server was not ready on {addr} within 60 s");
}

#[test]
fn every_command_that_needs_no_cluster_works() {
    let dir = scratch_dir();
    let mut servers = Vec::new();
    let mut ran = 0;
    for block in blocks(&readme()) {
        let mut words = block.info.split_whitespace();
        if words.next() != Some("sh") {
            continue;
        }
        let script = script(&block.text);
        match words.next() {
            Some("cluster") => continue,
            Some("server") => {
                // The lines before the last set up; the last one is the server.
                let trimmed = script.trim();
                let (setup, server_line) = trimmed.rsplit_once('\n').unwrap_or(("", trimmed));
                if !setup.is_empty() {
                    let out = bash(&dir, setup).output().expect("bash runs");
                    assert!(
                        out.status.success(),
                        "README setup failed:\n{setup}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let mut server = Server(
                    bash(&dir, &format!("exec {server_line}"))
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("bash runs"),
                );
                wait_ready(&mut server, &monitoring_addr(server_line));
                servers.push(server);
            }
            Some(other) => panic!("README: unknown sh block kind {other:?}"),
            None => {
                // `curl` is not in every fresh machine; CI has it.
                let uses_curl = script.split_whitespace().any(|w| w == "curl");
                if uses_curl && !requires::tool("curl", "a README block that calls curl") {
                    continue;
                }
                let out = bash(&dir, &script).output().expect("bash runs");
                assert!(
                    out.status.success(),
                    "README command failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                ran += 1;
            }
        }
    }
    drop(servers);
    check_written_files_are_ignored(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        ran >= 5,
        "only {ran} README blocks ran: the parser lost some"
    );
}

/// Everything the README's commands wrote (the CA's key, the workload's
/// key, tokens) is ignored by git, so that a user following the README in
/// the repository cannot commit a private key.
fn check_written_files_are_ignored(dir: &Path) {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("scratch dir") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(base).expect("under base");
            if rel.starts_with("examples") {
                continue;
            }
            if path.is_dir() {
                walk(&path, base, out);
            } else {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut written = Vec::new();
    walk(dir, dir, &mut written);
    assert!(
        written.iter().any(|f| f.ends_with("key.pem")),
        "the README's demo wrote no key: {written:?}"
    );
    if !requires::tool("git", "checking .gitignore against what the README writes") {
        return;
    }
    let out = Command::new("git")
        .args(["check-ignore", "--no-index", "--verbose", "--non-matching"])
        .args(&written)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git runs");
    let not_ignored: Vec<&str> = std::str::from_utf8(&out.stdout)
        .expect("utf-8")
        .lines()
        .filter(|l| l.starts_with("::"))
        .collect();
    assert!(
        not_ignored.is_empty(),
        "files the README's commands write that git would commit: {not_ignored:?}"
    );
}

/// The long flags `outrigger ARGS --help` lists.
fn flags_of(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_outrigger"))
        .args(args)
        .arg("--help")
        .output()
        .expect("outrigger runs");
    assert!(out.status.success(), "outrigger {args:?} --help failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("-")?
                .split_once(", ")
                .map_or(l, |(_, rest)| rest);
            let flag = l.strip_prefix("--").or_else(|| l.strip_prefix("-"))?;
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            (!name.is_empty()).then(|| format!("--{name}"))
        })
        .filter(|f| !["--help", "--version"].contains(&f.as_str()))
        .collect()
}

#[test]
fn every_flag_of_every_subcommand_is_documented() {
    let text = readme();
    let mut missing = Vec::new();
    for args in [
        &["serve"][..],
        &["inject"],
        &["uninject"],
        &["iptables"],
        &["ca", "init"],
        &["ca", "issue"],
        &["ca", "sign"],
        &["ca", "inspect"],
        &["ca", "request"],
    ] {
        for flag in flags_of(args) {
            if !text.contains(&format!("`{flag}")) && !text.contains(&format!("/{flag}`")) {
                missing.push(format!("outrigger {} {flag}", args.join(" ")));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "flags the README does not document: {missing:#?}"
    );
}

/// Every key path in the defaults, down to the leaves.
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                leaf_paths(v, &format!("{prefix}.{k}"), out);
            }
        }
        _ => out.push(prefix.trim_start_matches('.').to_string()),
    }
}

#[test]
fn every_configuration_key_is_documented() {
    let text = readme();
    let defaults: Value = serde_yaml::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/defaults.yaml"),
        )
        .expect("defaults.yaml"),
    )
    .expect("defaults.yaml parses");
    let mut paths = Vec::new();
    leaf_paths(&defaults, "", &mut paths);
    let missing: Vec<&String> = paths
        .iter()
        .filter(|path| {
            let documented = |p: &str| text.contains(&format!("`{p}`"));
            if let Some(field) = path.strip_prefix("meshConfig.defaultConfig.") {
                return !documented(field);
            }
            // The key, or the table row of a whole map (e.g. proxy.resources).
            let segments: Vec<&str> = path.split('.').collect();
            !(2..=segments.len())
                .any(|n| n >= segments.len().min(3) && documented(&segments[..n].join(".")))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "config keys the README does not document: {missing:#?}"
    );
}

#[test]
fn every_metric_and_skip_reason_is_documented() {
    let text = readme();
    let registry = outrigger::metrics::MetricsRegistry::new();
    let _webhook = outrigger::webhook::metrics::WebhookMetrics::register(&registry);
    let ca = outrigger::ca::grpc::metrics::CaMetrics::new();
    registry.register_with(|r| ca.register(r));
    let cluster = outrigger::cluster::ClusterMetrics::default();
    registry.register_with(|r| cluster.register(r));
    let names: Vec<String> = registry
        .encode()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    // Labelled families appear once they have a sample; the unlabelled ones
    // (and the skip reasons, pre-set at 0) are always there.
    assert!(names.len() >= 10, "expected the metrics, found {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !text.contains(n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics the README does not document: {missing:?}"
    );
    // The engine's and the webhook's: all that the metric exports.
    let reasons: Vec<&&str> = outrigger::inject::SKIP_REASONS
        .iter()
        .chain(&outrigger::webhook::admission::WEBHOOK_SKIP_REASONS)
        .filter(|r| !text.contains(&format!("`{r}`")))
        .collect();
    assert!(
        reasons.is_empty(),
        "skip reasons the README does not document: {reasons:?}"
    );
}

#[test]
fn every_configuration_example_loads() {
    let readme = readme();
    let mut examples = 0;
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```yaml\n") {
        let body = &rest[start + "```yaml\n".len()..];
        let end = body.find("```").expect("a closed yaml block");
        let text = &body[..end];
        rest = &body[end + 3..];
        if !(text.starts_with("values:") || text.starts_with("meshConfig:")) {
            continue;
        }
        examples += 1;
        if let Err(e) = outrigger::config::Config::from_yaml(text) {
            panic!("README's configuration example does not load: {e}\n{text}");
        }
    }
    assert!(examples > 0, "no configuration example found");
}
