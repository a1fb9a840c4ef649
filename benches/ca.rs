//! CA signing throughput, to compare with `openssl speed ecdsap256` on the
//! same machine (target: signing a CSR at >= 60% of openssl's rate for one
//! ECDSA P-256 verify plus one sign).
//!
//! - `sign_csr_p256`: a P-256 CA signs a P-256 CSR (parse, key policy,
//!   signature verify, SAN check, build + sign the leaf, PEM chain).
//! - `issue_workload_p256_keygen`: issue with a freshly generated P-256 key.
//!
//! Run: `cargo bench --bench ca -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outrigger::ca::{CertificateAuthority, RootOptions, SpiffeId};

fn bench_ca(c: &mut Criterion) {
    let ca = CertificateAuthority::generate_root(&RootOptions::default()).expect("root");
    let id = SpiffeId::new("cluster.local", "default", "bench").expect("identity");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::URI(
        rcgen::string::Ia5String::try_from(id.uri()).expect("uri"),
    )];
    let csr = params
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");

    let mut group = c.benchmark_group("ca");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_csr_p256", |b| {
        b.iter(|| {
            ca.sign_csr(black_box(csr.as_bytes()), black_box(&id), None)
                .expect("signed")
        })
    });
    group.bench_function("issue_workload_p256_keygen", |b| {
        b.iter(|| ca.issue_workload(black_box(&id), None).expect("issued"))
    });
    group.finish();
}

criterion_group!(benches, bench_ca);
criterion_main!(benches);
