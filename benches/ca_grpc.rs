//! CreateCertificate throughput over ONE TLS connection with 32 concurrent
//! streams (local JWT authentication with an RS256 ServiceAccount token,
//! pregenerated P-256 CSRs, P-256 CA), next to the CA's in-process signing
//! rate measured in the same run. The main gRPC figure verifies the token on
//! every request (token cache off); a second one shows the token cache.
//!
//! Run: `cargo bench --bench ca_grpc`. Criterion prints each rate as
//! `thrpt: ... elem/s` (one element = one signed certificate). Client and
//! server share the machine's cores over loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cpu_time::ProcessTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use outrigger::ca::grpc::auth::AuthChain;
use outrigger::ca::grpc::auth::cache::CacheSettings;
use outrigger::ca::grpc::auth::jwt::{DEFAULT_ISSUER, Jwks, JwtAuthenticator, JwtPolicy};
use outrigger::ca::grpc::client::{self, CaClient, ConnectOptions};
use outrigger::ca::grpc::metrics::CaMetrics;
use outrigger::ca::grpc::signer::AuthoritySigner;
use outrigger::ca::grpc::tls::{ServingCert, tls_config};
use outrigger::ca::grpc::{CaService, serve};
use outrigger::ca::{CertificateAuthority, RootOptions, SpiffeId};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::json;

const CSRS: usize = 256;
const STREAMS: usize = 32;

/// An RS256 issuer key, its JWKS, and a token for bench/client.
fn issuer() -> (String, String) {
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key");
    let der = key.to_pkcs1_der().expect("PKCS#1");
    let jwks = json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": "bench",
        "n": URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
    }]})
    .to_string();
    let now = jsonwebtoken::get_current_timestamp() as i64;
    let claims = json!({
        "iss": DEFAULT_ISSUER, "aud": ["istio-ca"], "sub": "system:serviceaccount:bench:client",
        "iat": now, "nbf": now, "exp": now + 24 * 3600,
        "kubernetes.io": {"namespace": "bench", "serviceaccount": {"name": "client", "uid": "u"}},
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("bench".into());
    let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_rsa_der(der.as_bytes()))
        .expect("token");
    (jwks, token)
}

async fn burst(
    client: &CaClient,
    iters: u64,
    token: &Arc<String>,
    csrs: &Arc<Vec<String>>,
) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..STREAMS {
        let mut client = client.clone();
        let (next, token, csrs) = (next.clone(), token.clone(), csrs.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= iters {
                    break;
                }
                let csr = &csrs[i as usize % csrs.len()];
                client::create_certificate(&mut client, Some(&token), csr, None)
                    .await
                    .expect("CreateCertificate");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("stream task");
    }
    start.elapsed()
}

/// Starts a server authenticating with `jwt`; returns a client over one connection.
async fn start(ca: &Arc<CertificateAuthority>, jwt: Arc<JwtAuthenticator>) -> CaClient {
    let serving = ServingCert::issue(ca, &["localhost".into()], &[]).expect("serving cert");
    let tls = tls_config(Arc::new(serving), ca.root_pem()).expect("TLS");
    let service = CaService::new(
        Arc::new(AuthoritySigner::new(ca.clone(), "cluster.local")),
        AuthChain::new(vec![jwt]),
        CaMetrics::new(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, tls, service, std::future::pending()));
    client::connect(&ConnectOptions {
        addr: addr.to_string(),
        ca_bundle_pem: ca.root_pem().to_string(),
        server_name: Some("localhost".into()),
        client_identity: None,
    })
    .await
    .expect("connect")
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ca = Arc::new(CertificateAuthority::generate_root(&RootOptions::default()).expect("CA"));
    let id = SpiffeId::new("cluster.local", "bench", "client").expect("id");
    let csrs: Arc<Vec<String>> = Arc::new(
        (0..CSRS)
            .map(|_| client::generate_key_and_csr().expect("CSR").1)
            .collect(),
    );
    let (jwks, token) = issuer();
    let token = Arc::new(token);

    let no_cache = JwtPolicy {
        cache: CacheSettings::DISABLED,
        ..JwtPolicy::default()
    };
    let jwt = Arc::new(JwtAuthenticator::new(
        no_cache,
        Jwks::from_json(jwks.as_bytes()).expect("JWKS"),
    ));
    // Every request's token verified (RSA signature and claims).
    let client = runtime.block_on(start(&ca, jwt.clone()));
    // Verified tokens remembered (one token, so all hits after the first).
    let cached = Arc::new(JwtAuthenticator::new(
        JwtPolicy::default(),
        Jwks::from_json(jwks.as_bytes()).expect("JWKS"),
    ));
    let cached_client = runtime.block_on(start(&ca, cached));

    let mut group = c.benchmark_group("ca_grpc");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(8));

    group.bench_function("in_process_sign_csr_1_thread", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            ca.sign_csr(csrs[i % CSRS].as_bytes(), &id, None)
                .expect("sign")
        })
    });
    group.bench_function("in_process_sign_csr_all_cores", |b| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|scope| {
                for t in 0..threads {
                    let (ca, id, csrs) = (&ca, &id, &csrs);
                    scope.spawn(move || {
                        let mine =
                            iters / threads as u64 + u64::from((t as u64) < iters % threads as u64);
                        for i in 0..mine {
                            ca.sign_csr(csrs[i as usize % CSRS].as_bytes(), id, None)
                                .expect("sign");
                        }
                    });
                }
            });
            start.elapsed()
        })
    });
    // The server's per-request work without the network: verify the token,
    // then verify and sign the CSR.
    group.bench_function("in_process_jwt_verify_then_sign_1_thread", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            let caller = jwt.verify(&token).expect("token");
            let id = SpiffeId::new("cluster.local", &caller.namespace, &caller.service_account)
                .expect("id");
            ca.sign_csr(csrs[i % CSRS].as_bytes(), &id, None)
                .expect("sign")
        })
    });
    group.bench_function("grpc_create_certificate_1_conn_32_streams", |b| {
        b.iter_custom(|iters| runtime.block_on(burst(&client, iters, &token, &csrs)))
    });
    group.bench_function(
        "grpc_create_certificate_1_conn_32_streams_token_cache",
        |b| b.iter_custom(|iters| runtime.block_on(burst(&cached_client, iters, &token, &csrs))),
    );
    group.finish();

    // The same work timed in CPU seconds of the whole process (client and
    // server threads included), so the ratio holds on a machine shared with
    // other jobs: `thrpt` here is certificates per CPU-second.
    let mut cpu = c.benchmark_group("ca_grpc_cpu");
    cpu.throughput(Throughput::Elements(1));
    cpu.sample_size(20);
    cpu.measurement_time(Duration::from_secs(8));
    cpu.bench_function("in_process_sign_csr", |b| {
        b.iter_custom(|iters| {
            let start = ProcessTime::now();
            for i in 0..iters {
                ca.sign_csr(csrs[i as usize % CSRS].as_bytes(), &id, None)
                    .expect("sign");
            }
            start.elapsed()
        })
    });
    cpu.bench_function("grpc_create_certificate_1_conn_32_streams", |b| {
        b.iter_custom(|iters| {
            let start = ProcessTime::now();
            runtime.block_on(burst(&client, iters, &token, &csrs));
            start.elapsed()
        })
    });
    cpu.bench_function(
        "grpc_create_certificate_1_conn_32_streams_token_cache",
        |b| {
            b.iter_custom(|iters| {
                let start = ProcessTime::now();
                runtime.block_on(burst(&cached_client, iters, &token, &csrs));
                start.elapsed()
            })
        },
    );
    cpu.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
