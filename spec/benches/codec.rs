//! Micro-benchmarks of the annotation codec (Flyte base32 of the protobuf text format), the
//! work the webhook does per secret annotation. Run with `cargo bench -p flyte-secret-spec`
//! (bench/run.sh does); never part of `cargo test`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flyte_secret_spec::annotation;
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::{Backend, Layout};

/// The webhook benchmark's requests (bench/fixture.rs; its pod is not used here).
#[allow(dead_code)]
mod fixture {
    include!("../../bench/fixture.rs");
}
use fixture::requests;

fn codec(c: &mut Criterion) {
    let one = requests(4).pop().expect("a request");
    let encoded = annotation::encode(&one);
    let five = requests(5);
    let five_encoded = annotation::encode_all(&five);

    let mut g = c.benchmark_group("annotation");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode/1", |b| {
        b.iter(|| annotation::encode(black_box(&one)))
    });
    g.bench_function("decode/1", |b| {
        b.iter(|| annotation::decode(black_box(&encoded)).expect("decodes"))
    });
    g.throughput(Throughput::Elements(5));
    g.bench_function("encode_all/5", |b| {
        b.iter(|| annotation::encode_all(black_box(&five)))
    });
    g.bench_function("decode_all/5", |b| {
        b.iter(|| {
            annotation::decode_all(
                black_box(&five_encoded)
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .expect("decodes")
        })
    });
    g.finish();

    // The plan the webhook builds from the decoded requests and the agent parses back.
    let mut plan = FetchPlan::new(
        &Layout::default(),
        vec![Backend::Kubernetes(Default::default())],
    );
    for (k, r) in annotation::decode_all(five_encoded.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .expect("decodes")
    {
        plan.push(k, r).expect("valid request");
    }
    let json = plan.to_json();
    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(5));
    g.bench_function("to_json/5", |b| b.iter(|| black_box(&plan).to_json()));
    g.bench_function("from_json/5", |b| {
        b.iter(|| FetchPlan::from_json(black_box(&json)).expect("valid plan"))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
