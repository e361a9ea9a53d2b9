//! Micro-benchmarks of the pod mutation and of one whole admission (parse the
//! AdmissionReview, mutate, serialize the patch and the response): the webhook's work per
//! request without TLS and HTTP; `review/N` derives every plan (the plan cache off),
//! `review-cached/N` takes it from the plan cache as the server does for a repeated secret set. Run with `cargo bench -p flyte-secret-webhook` (bench/run.sh
//! does); never part of `cargo test`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flyte_secret_testkit::fixtures::{NAMESPACE, load_test_review};
use flyte_secret_webhook::config::Settings;
use flyte_secret_webhook::{admission, mutate};
use k8s_openapi::api::core::v1::Pod;
use tracing_subscriber::layer::SubscriberExt;

fn benches(c: &mut Criterion) {
    let settings = Settings::default();
    // The server's settings: the plan cache on (`webhook serve` defaults), so every admission
    // after the first takes its plan from it, as the pods of one map task do.
    let plans = mutate::PlanCache::new(mutate::cache::DEFAULT_ENTRIES);
    let mut g = c.benchmark_group("webhook");
    for n in [1usize, 5, 20] {
        // The load test's AdmissionReview (`tls-echo review`, bench/run.sh), so that these
        // benches time exactly the admission the load test sends.
        let review = load_test_review(n);
        let pod: Pod = serde_json::from_value(review["request"]["object"].clone()).expect("a pod");
        let body = serde_json::to_vec(&review).expect("serializes");
        g.bench_function(format!("mutate/{n}"), |b| {
            b.iter(|| {
                mutate::mutate(black_box(&pod), Some(NAMESPACE), &settings).expect("admitted")
            })
        });
        g.bench_function(format!("review/{n}"), |b| {
            b.iter(|| admission::review(black_box(&body), &settings).expect("answered"))
        });
        g.bench_function(format!("review-cached/{n}"), |b| {
            b.iter(|| {
                admission::review_cached(black_box(&body), &settings, &plans).expect("answered")
            })
        });
        // The same review parsed into k8s-openapi's whole `Pod`, as before the fast path
        // read only what the mutation needs: the difference is what skipping the rest buys.
        g.bench_function(format!("review-whole-pod/{n}"), |b| {
            b.iter(|| admission::review_whole_pod(black_box(&body), &settings).expect("answered"))
        });
    }
    // One admission with the info log line formatted as the server does (plain format, info
    // level), written to a sink: what the line costs besides its write(2) to stderr.
    let body = serde_json::to_vec(&load_test_review(5)).expect("serializes");
    let subscriber = tracing_subscriber::registry()
        .with(
            "info"
                .parse::<tracing_subscriber::filter::Targets>()
                .expect("a filter"),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::sink)
                .with_ansi(false),
        );
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("review-logged/5", |b| {
            b.iter(|| admission::review(black_box(&body), &settings).expect("answered"))
        });
    });
    g.finish();
}

criterion_group!(webhook, benches);
criterion_main!(webhook);
