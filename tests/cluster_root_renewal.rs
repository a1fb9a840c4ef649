//! Root renewal of the CA Secret as its watch reported it, against a
//! scripted API server: the leader renews a root that is due with one
//! conditional replace (same key, same subject, a later end); a follower,
//! or a root that is not due, makes no request at all; a Secret
//! holding another root is taken; a lost write race and a root that cannot
//! be renewed here (an intermediate) write nothing more.

#[path = "support/requires.rs"]
mod requires;

#[path = "cluster_support/scenario.rs"]
mod scenario;

use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use outrigger::ca::{CaPem, CertificateAuthority, PrivateKeyPem, RootOptions};
use outrigger::cluster::authority::CaMaterial;
use outrigger::cluster::ca_secret::desired_ca_secret;
use outrigger::cluster::leader::LeaderGate;
use outrigger::cluster::root_renewal::{DEFAULT_RENEW_RATIO, RootCheck, check, renewal_due};
use scenario::{Reply, Scenario, conflict};
use serde_json::{Value, json};

const NS: &str = "outrigger-system";
const PATH: &str = "/api/v1/namespaces/outrigger-system/secrets/istio-ca-secret";
const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// A 10-year self-signed root, and its Secret as the API server returns it.
fn stored_root() -> (CaMaterial, Value) {
    let ca = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
    let material = ca.to_pem().clone();
    let mut value = serde_json::to_value(desired_ca_secret(NS, &material)).unwrap();
    value["metadata"]["resourceVersion"] = json!("42");
    (material, value)
}

/// Nine years on, a 10-year root has 10% of its life left: due at 20%.
fn nine_years_on() -> SystemTime {
    SystemTime::now() + 9 * YEAR
}

fn subject_and_key(cert_pem: &str) -> (Vec<u8>, Vec<u8>) {
    let block = pem::parse(cert_pem).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).unwrap();
    (
        cert.subject().as_raw().to_vec(),
        cert.public_key().raw.to_vec(),
    )
}

fn text(data: &Value, key: &str) -> String {
    let bytes: ByteString = serde_json::from_value(data[key].clone()).unwrap();
    String::from_utf8(bytes.0).unwrap()
}

/// Runs one check of the Secret against `script` (which the check must
/// follow exactly), for a replica using `current`; returns the outcome and
/// the requests made.
async fn run_check(
    script: Scenario,
    stored: &Value,
    current: &CaMaterial,
    gate: &LeaderGate,
    now: SystemTime,
) -> (RootCheck, Vec<(String, String, Value)>) {
    let (client, verifier) = script.start();
    let api: Api<Secret> = Api::namespaced(client, NS);
    let secret: Secret = serde_json::from_value(stored.clone()).unwrap();
    let outcome = check(
        &api,
        &secret,
        NS,
        &current.ca_cert,
        gate,
        DEFAULT_RENEW_RATIO,
        now,
    )
    .await
    .unwrap();
    drop(api);
    let seen = verifier.seen();
    verifier.finish().await;
    (outcome, seen)
}

#[test]
fn a_root_is_due_when_less_than_the_ratio_of_its_life_is_left() {
    let (material, _) = stored_root();
    let now = SystemTime::now();
    assert!(!renewal_due(&material.ca_cert, now, DEFAULT_RENEW_RATIO));
    assert!(!renewal_due(
        &material.ca_cert,
        now + 7 * YEAR,
        DEFAULT_RENEW_RATIO
    ));
    assert!(renewal_due(
        &material.ca_cert,
        now + 9 * YEAR,
        DEFAULT_RENEW_RATIO
    ));
    assert!(
        renewal_due(&material.ca_cert, now + 11 * YEAR, DEFAULT_RENEW_RATIO),
        "expired"
    );
    assert!(
        !renewal_due(&material.ca_cert, now + 9 * YEAR, 0.0),
        "0 turns renewal off"
    );
    assert!(!renewal_due("not a certificate", now, DEFAULT_RENEW_RATIO));
}

#[tokio::test]
async fn the_leader_renews_a_due_root_with_one_conditional_replace() {
    if !requires::tool(
        "openssl",
        "the_leader_renews_a_due_root_with_one_conditional_replace",
    ) {
        return;
    }
    let (material, stored) = stored_root();
    let now = nine_years_on();
    let script = Scenario::new().put(
        PATH,
        json!({
            "metadata": {"name": "istio-ca-secret", "namespace": NS, "resourceVersion": "42"},
            "type": "istio.io/ca-root",
        }),
        Reply::Echo(200),
    );
    let (outcome, seen) = run_check(script, &stored, &material, &LeaderGate::always(), now).await;
    let RootCheck::Renewed(renewed) = outcome else {
        panic!("expected a renewal, got {outcome:?}");
    };
    assert_eq!(seen.len(), 1, "one request: the replace");
    let data = &seen[0].2["data"];
    assert_eq!(text(data, "ca-cert.pem").trim(), renewed.ca_cert.trim());
    assert_eq!(
        text(data, "ca-key.pem"),
        material.ca_key.expose(),
        "the key is kept"
    );
    assert_ne!(renewed.ca_cert, material.ca_cert);
    // The renewed root is the same issuer (ca_renew.rs checks chains with
    // openssl): same subject bytes, same key; loadable from then on.
    let (old_subject, old_key) = subject_and_key(&material.ca_cert);
    assert_eq!(subject_and_key(&renewed.ca_cert), (old_subject, old_key));
    CertificateAuthority::from_pem_at(&renewed, time::OffsetDateTime::from(now)).unwrap();
    assert!(!renewal_due(&renewed.ca_cert, now, DEFAULT_RENEW_RATIO));
}

#[tokio::test]
async fn a_follower_or_a_root_not_due_makes_no_request() {
    for (leader, now) in [(false, nine_years_on()), (true, SystemTime::now())] {
        let (material, stored) = stored_root();
        let (_switch, gate) = LeaderGate::manual(leader);
        let (outcome, _) = run_check(Scenario::new(), &stored, &material, &gate, now).await;
        assert!(
            matches!(outcome, RootCheck::Unchanged),
            "{leader}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn a_secret_holding_another_root_is_taken() {
    let (_, stored) = stored_root();
    let (mine, _) = stored_root();
    let (outcome, _) = run_check(
        Scenario::new(),
        &stored,
        &mine,
        &LeaderGate::always(),
        SystemTime::now(),
    )
    .await;
    let RootCheck::Changed(theirs) = outcome else {
        panic!("expected the Secret's root, got {outcome:?}");
    };
    assert_eq!(
        theirs.ca_cert.trim(),
        text(&stored["data"], "ca-cert.pem").trim()
    );
}

#[tokio::test]
async fn a_lost_race_writes_nothing_more() {
    let (material, stored) = stored_root();
    let script = Scenario::new().put(
        PATH,
        json!({"metadata": {"resourceVersion": "42"}}),
        conflict(),
    );
    let (outcome, _) = run_check(
        script,
        &stored,
        &material,
        &LeaderGate::always(),
        nine_years_on(),
    )
    .await;
    assert!(matches!(outcome, RootCheck::Unchanged), "{outcome:?}");
}

#[tokio::test]
async fn an_intermediate_in_the_secret_is_not_renewed_here() {
    // An intermediate signed by a root whose key is elsewhere.
    let root = CertificateAuthority::generate_root(&RootOptions::default()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "intermediate");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let issuer = rcgen::Issuer::from_ca_cert_pem(
        &root.to_pem().ca_cert,
        rcgen::KeyPair::from_pem(root.to_pem().ca_key.expose()).unwrap(),
    )
    .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let material = CaPem {
        ca_cert: cert.pem(),
        ca_key: PrivateKeyPem::new(key.serialize_pem()),
        cert_chain: None,
        root_cert: None,
    };
    let mut stored = serde_json::to_value(desired_ca_secret(NS, &material)).unwrap();
    stored["metadata"]["resourceVersion"] = json!("7");
    let (outcome, _) = run_check(
        Scenario::new(),
        &stored,
        &material,
        &LeaderGate::always(),
        nine_years_on(),
    )
    .await;
    assert!(matches!(outcome, RootCheck::Unchanged), "{outcome:?}");
}
