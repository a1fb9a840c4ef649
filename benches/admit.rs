//! The server's own work per review, without TLS or HTTP: `admit()` of the
//! exact requests `bench/webhook` posts, for (a) a full injection and (b)
//! the skip floor, with each of its reviews (`minimal`, `managed`,
//! `applied`: see `bench/review.rs`). The webhook throughput target
//! (injection ≥ 70% of the skip floor, end to end) leaves the injecting
//! review only a few tens of microseconds more than the skipped one; this
//! shows where they go.
//!
//! `admit-cpu` measures the same calls in the calling thread's CPU time
//! (`iter_custom` with `cpu_time::ThreadTime`), which a busy machine does
//! not inflate as it does wall time: the figure the single path's budget
//! (at most 300 µs of CPU per injecting admission) is about.
//!
//! Run: `cargo bench --bench admit -- --warm-up-time 1 --measurement-time 3`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use outrigger::config::Config;
use outrigger::webhook::admission::admit;

/// As in the server: allocation-heavy JSON work depends on the allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../bench/review.rs"]
mod review;

fn benches(c: &mut Criterion) {
    let config = Config::default();
    let mut group = c.benchmark_group("admit");
    let envelopes = [
        ("minimal", review::Envelope::Minimal),
        ("managed", review::Envelope::Managed),
        ("applied", review::Envelope::Applied),
    ];
    for (review_name, envelope) in envelopes {
        for (scenario, opted_out, expected) in
            [("inject", false, "injected"), ("skip", true, "skipped")]
        {
            let name = format!("{scenario}-{review_name}");
            let body = review::review_of(opted_out, envelope);
            let answered = admit(&body, &config).expect("the bench review is well formed");
            assert_eq!(answered.summary.verdict.word(), expected, "{name}");
            group.bench_function(name, |b| b.iter(|| admit(black_box(&body), &config)));
        }
    }
    group.finish();
    let mut cpu = c.benchmark_group("admit-cpu");
    for (review_name, envelope) in envelopes {
        for (scenario, opted_out) in [("inject", false), ("skip", true)] {
            let body = review::review_of(opted_out, envelope);
            cpu.bench_function(format!("{scenario}-{review_name}"), |b| {
                b.iter_custom(|iters| {
                    let start = cpu_time::ThreadTime::now();
                    for _ in 0..iters {
                        black_box(admit(black_box(&body), &config).ok());
                    }
                    start.elapsed()
                })
            });
        }
    }
    cpu.finish();
}

criterion_group!(admit_benches, benches);
criterion_main!(admit_benches);
