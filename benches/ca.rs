//! CA signing throughput, to compare with `openssl speed ecdsap256` on the
//! same machine (target: signing a CSR at >= 60% of openssl's rate for one
//! ECDSA P-256 verify plus one sign, i.e. 1/(1/sign_rate + 1/verify_rate)).
//!
//! - `sign_csr_p256`: a P-256 CA signs a P-256 CSR (parse, key policy,
//!   signature verify, SAN check, build + sign the leaf, PEM chain).
//! - `verify_csr_p256`: the CSR checks alone (the verify half of the above).
//! - `issue_workload_p256_keygen`: issue with a freshly generated P-256 key.
//!
//! Each is measured twice: group `ca` in wall-clock time (compare with
//! `openssl speed -elapsed`), group `ca-cpu` in this thread's CPU time
//! (compare with plain `openssl speed`, which divides by CPU time). On a
//! loaded machine only like-for-like pairs are meaningful.
//!
//! Run: `cargo bench --bench ca -- --warm-up-time 1 --measurement-time 5`.

use std::hint::black_box;
use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use outrigger::ca::csr::verify_csr;
use outrigger::ca::{CertificateAuthority, RootOptions, SpiffeId};

/// CPU time of the benchmarking thread, as `openssl speed` measures by default.
struct CpuTime;

impl Measurement for CpuTime {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> Self::Intermediate {
        ThreadTime::now()
    }
    fn end(&self, i: Self::Intermediate) -> Self::Value {
        i.elapsed()
    }
    fn add(&self, v1: &Self::Value, v2: &Self::Value) -> Self::Value {
        *v1 + *v2
    }
    fn zero(&self) -> Self::Value {
        Duration::ZERO
    }
    fn to_f64(&self, val: &Self::Value) -> f64 {
        val.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, like wall time's.
        WallTime.formatter()
    }
}

/// A P-256 root, an identity and a P-256 CSR for it.
fn setup() -> (CertificateAuthority, SpiffeId, String) {
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
    (ca, id, csr)
}

fn run<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let (ca, id, csr) = setup();
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign_csr_p256", |b| {
        b.iter(|| {
            ca.sign_csr(black_box(csr.as_bytes()), black_box(&id), None)
                .expect("signed")
        })
    });
    group.bench_function("verify_csr_p256", |b| {
        b.iter(|| verify_csr(black_box(csr.as_bytes()), black_box(&id)).expect("verified"))
    });
    group.bench_function("issue_workload_p256_keygen", |b| {
        b.iter(|| ca.issue_workload(black_box(&id), None).expect("issued"))
    });
    group.finish();
}

fn bench_wall(c: &mut Criterion) {
    run(c, "ca");
}

fn bench_cpu(c: &mut Criterion<CpuTime>) {
    run(c, "ca-cpu");
}

criterion_group!(wall, bench_wall);
criterion_group! {
    name = cpu;
    config = Criterion::default().with_measurement(CpuTime);
    targets = bench_cpu
}
criterion_main!(wall, cpu);
