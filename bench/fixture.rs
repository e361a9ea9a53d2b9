// The benchmark's secret requests, `include!`d by the annotation codec's criterion bench
// (`spec/benches/codec.rs`). The same list as `flyte_secret_testkit::fixtures::mixed_requests`,
// which builds the load test's pod and AdmissionReview (`load_test_review`, used by
// `bench/run.sh` and `webhook/benches/mutate.rs`); it is repeated here only because the spec
// crate does not depend on the testkit (which depends on spec). Needs `flyte_secret_spec`.

use flyte_secret_spec::request::{MountRequirement, SecretRequest};

/// `n` requests of mixed shapes (file, env var, group version, named env var).
pub fn requests(n: usize) -> Vec<SecretRequest> {
    (0..n)
        .map(|i| {
            let req = SecretRequest::new(format!("bench-group-{i}"), format!("key_{i}"));
            match i % 4 {
                0 => req.with_mount(MountRequirement::File),
                1 => req.with_mount(MountRequirement::EnvVar),
                2 => req.with_group_version("v1"),
                _ => req.with_env_var(format!("BENCH_SECRET_{i}")),
            }
        })
        .collect()
}
