//! Shared by the `webhook_*` integration tests: start the real `outrigger
//! serve` binary on ephemeral ports, find its addresses, and talk to it over
//! HTTPS with a client that trusts only the CA bundle the test was given.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Value, json};

/// How long a test waits for the server to come up or a file to be seen.
/// Generous: the machine is shared with compilers.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A fresh directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "outrigger-it-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `outrigger serve`; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// The test's directory (CA, bundle, logs).
    pub dir: PathBuf,
    /// The webhook's HTTPS address.
    pub listen: SocketAddr,
    /// The monitoring address.
    pub monitoring: SocketAddr,
    /// The CA service's (gRPC) address.
    pub ca: SocketAddr,
}

impl Server {
    /// Starts standalone (its own CA in `dir/ca`, bundle in `dir/bundle.pem`)
    /// with `extra` flags.
    pub fn standalone(name: &str, extra: &[&str]) -> Server {
        let dir = test_dir(name);
        let mut args: Vec<String> = vec![
            "--ca-dir".into(),
            dir.join("ca").display().to_string(),
            "--ca-bundle-out".into(),
            dir.join("bundle.pem").display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::start(dir, &args)
    }

    /// Starts with `args` (besides the listen and address flags) in `dir`.
    pub fn start(dir: PathBuf, args: &[String]) -> Server {
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        Server::start_logging_to(dir, args, log)
    }

    /// [`Server::start`], its stderr (the log) going to `log` rather than
    /// to `dir/server.log`.
    pub fn start_logging_to(dir: PathBuf, args: &[String], log: std::fs::File) -> Server {
        let addresses = dir.join("addresses.json");
        // The CA service always has a CA: keep it in the test's directory,
        // not in the working directory, when the test names none.
        let default_log_format: &[&str] = if args.iter().any(|a| a == "--log-format") {
            &[]
        } else {
            &["--log-format", "json"]
        };
        // Standalone even when the tests run inside a pod.
        let default_cluster_mode: &[&str] = if args.iter().any(|a| a == "--cluster-mode") {
            &[]
        } else {
            &["--cluster-mode", "disabled"]
        };
        let default_ca_dir = if args.iter().any(|a| a == "--ca-dir") {
            Vec::new()
        } else {
            vec!["--ca-dir".to_string(), dir.join("ca").display().to_string()]
        };
        let child = Command::new(env!("CARGO_BIN_EXE_outrigger"))
            .arg("serve")
            .args([
                "--listen",
                "127.0.0.1:0",
                "--monitoring-listen",
                "127.0.0.1:0",
                "--ca-listen",
                "127.0.0.1:0",
            ])
            .args(default_cluster_mode)
            .arg("--addresses-out")
            .arg(&addresses)
            .args(default_log_format)
            .args(["--log-level", "info"])
            .args(default_ca_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start outrigger serve");
        let mut server = Server {
            child: Some(child),
            dir,
            listen: "0.0.0.0:0".parse().unwrap(),
            monitoring: "0.0.0.0:0".parse().unwrap(),
            ca: "0.0.0.0:0".parse().unwrap(),
        };
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&addresses) {
                let doc: Value = serde_json::from_str(&text).unwrap();
                server.listen = doc["listen"].as_str().unwrap().parse().unwrap();
                server.monitoring = doc["monitoring"].as_str().unwrap().parse().unwrap();
                server.ca = doc["ca"].as_str().unwrap().parse().unwrap();
                return server;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("outrigger serve exited with {status}:\n{}", server.log());
            }
            assert!(
                started.elapsed() < PATIENCE,
                "outrigger serve did not start:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Waits until the log has a line containing `needle` (JSON lines).
    pub fn wait_for_log(&self, needle: &str) {
        let started = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                started.elapsed() < PATIENCE,
                "no log line with {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits for the process to exit and returns its status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > PATIENCE {
                let _ = child.kill();
                panic!("outrigger serve did not exit:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`TERM`, `INT`) with bash's built-in `kill`, so no
    /// package beyond bash is needed.
    pub fn signal(&self, name: &str) {
        let status = Command::new("bash")
            .arg("-c")
            .arg(format!("kill -{name} {}", self.pid()))
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The CA bundle the server wrote (standalone mode).
    pub fn bundle(&self) -> String {
        std::fs::read_to_string(self.dir.join("bundle.pem")).unwrap()
    }

    /// `https://localhost:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.listen.port())
    }

    /// `http://MONITORING{path}`.
    pub fn monitoring_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.monitoring)
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        plain_client()
            .get(self.monitoring_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A rustls client config that trusts only the certificates in `bundle_pem`.
pub fn tls_config(bundle_pem: &str, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

/// An HTTPS client (h2 or HTTP/1.1, as negotiated) trusting only
/// `bundle_pem`.
pub fn client(bundle_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(bundle_pem, &[b"h2", b"http/1.1"]))
        .build()
        .unwrap()
}

/// A client for the plain-HTTP monitoring port.
pub fn plain_client() -> reqwest::Client {
    client("")
}

/// An HTTP/1.1-only HTTPS client trusting only `bundle_pem`.
pub fn client_http1(bundle_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config(bundle_pem, &[b"http/1.1"]))
        .http1_only()
        .build()
        .unwrap()
}

/// A Pod fixture.
pub fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                                 "ports": [{"containerPort": 8080}]}]}
    })
}

/// A Deployment fixture.
pub fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "api"}},
            "template": {
                "metadata": {"labels": {"app": "api", "version": "v1"}},
                "spec": {"containers": [{"name": "api", "image": "example/api:1.4.2",
                                         "ports": [{"containerPort": 9090}]}]}
            }
        }
    })
}

/// An `AdmissionReview` request for `object` in namespace `shop`.
pub fn review(version: &str, group: &str, operation: &str, object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap_or("Pod");
    json!({
        "apiVersion": version,
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("uid-{kind}-{operation}"),
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": "things"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "dryRun": false
        }
    })
}

/// The value of the sample `name{labels}` in Prometheus text, 0 if absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Writes `contents` to `path` by rename, as a Secret volume update does.
pub fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Reads one whole HTTP/1.1 response (headers and `Content-Length` body)
/// from a raw TLS stream; returns its status line. For tests that must hold
/// a connection open across a reload or a shutdown.
pub async fn read_response_status(
    tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> String {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = tokio::io::AsyncReadExt::read(tls, &mut chunk)
            .await
            .unwrap();
        assert!(n > 0, "connection closed before the response headers");
        data.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .expect("a Content-Length header");
    while data.len() < header_end + length {
        let n = tokio::io::AsyncReadExt::read(tls, &mut chunk)
            .await
            .unwrap();
        assert!(n > 0, "connection closed inside the response body");
        data.extend_from_slice(&chunk[..n]);
    }
    head.lines().next().unwrap_or_default().to_string()
}
