//! The serving certificate loop on a paused clock: issued for the Service's
//! names, handed to the sink, renewed at half its lifetime, and a failing
//! sink retried while nothing else changes.

#[path = "support/requires.rs"]
mod requires;

use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use outrigger::cluster::authority::{ClusterCa, IssuedCert};
use outrigger::cluster::serving_cert::{ServingCertSink, dns_names, run};
use tokio::time::Instant;

type Installs = Arc<Mutex<Vec<(Instant, IssuedCert)>>>;

fn recording_sink(fail_first: usize) -> (Arc<dyn ServingCertSink>, Installs, Arc<Mutex<usize>>) {
    let installs: Installs = Arc::default();
    let attempts = Arc::new(Mutex::new(0usize));
    let (log, tries) = (Arc::clone(&installs), Arc::clone(&attempts));
    let sink = move |cert: &IssuedCert| -> Result<(), Box<dyn Error + Send + Sync>> {
        let mut n = tries.lock().unwrap();
        *n += 1;
        if *n <= fail_first {
            return Err("listener refused the certificate".into());
        }
        log.lock().unwrap().push((Instant::now(), cert.clone()));
        Ok(())
    };
    (Arc::new(sink), installs, attempts)
}

#[tokio::test(start_paused = true)]
async fn issued_for_the_service_and_renewed_at_half_life() {
    if !requires::tool("openssl", "issued_for_the_service_and_renewed_at_half_life") {
        return;
    }
    let (ca, _) = ClusterCa::generate("cluster.local").unwrap();
    let ca = Arc::new(ca);
    let names = dns_names("outrigger", "outrigger-system", &[]);
    let (sink, installs, _) = recording_sink(0);
    let start = Instant::now();
    let ttl = Duration::from_secs(3600);
    // Lifetime = TTL + the CA's 2-minute backdating; half-life falls 29
    // minutes after issuance: installs at 0, 29, 58 and 87 minutes.
    let _ = tokio::time::timeout(
        Duration::from_secs(100 * 60),
        run(ca.clone(), names, ttl, sink),
    )
    .await;
    let installs = installs.lock().unwrap();
    // Rounded to minutes: validity carries whole seconds.
    let offsets: Vec<u64> = installs
        .iter()
        .map(|(t, _)| ((*t - start).as_secs() + 30) / 60)
        .collect();
    assert_eq!(offsets, vec![0, 29, 58, 87]);
    for (_, cert) in installs.iter() {
        ca.check_chain(&cert.chain_pem, SystemTime::now()).unwrap();
    }
    assert_ne!(
        installs[0].1.chain_pem, installs[1].1.chain_pem,
        "each renewal is a new certificate"
    );
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(installs[0].1.chain_pem.as_bytes())?;
            child.wait_with_output()
        });
    if let Ok(out) = text {
        let sans = String::from_utf8_lossy(&out.stdout);
        assert!(
            sans.contains("DNS:outrigger.outrigger-system.svc,"),
            "{sans}"
        );
        assert!(
            sans.contains("DNS:outrigger.outrigger-system.svc.cluster.local"),
            "{sans}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn failing_sink_is_retried_with_backoff() {
    let (ca, _) = ClusterCa::generate("cluster.local").unwrap();
    let (sink, installs, attempts) = recording_sink(2);
    let start = Instant::now();
    let names = dns_names("outrigger", "ns", &["webhook.example".into()]);
    let _ = tokio::time::timeout(
        Duration::from_secs(60),
        run(Arc::new(ca), names, Duration::from_secs(3600), sink),
    )
    .await;
    assert_eq!(*attempts.lock().unwrap(), 3);
    let installs = installs.lock().unwrap();
    assert_eq!(installs.len(), 1);
    // Backoff 200 ms then 400 ms.
    assert_eq!(installs[0].0 - start, Duration::from_millis(600));
}
