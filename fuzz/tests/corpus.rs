//! CI regression for the fuzz targets: every file of every corpus (`fuzz/corpus/<target>/`,
//! fixed crashes included) goes through its target, then a short generated run per target.
//! The long runs are on demand: `fuzz/run.sh` (see BENCHMARKS.md).

use std::sync::Arc;

use flyte_secret_fuzz::{Target, corpus, mutate};
use proptest::test_runner::{Config, TestError, TestRunner};

fn replay(target: Target) {
    let files = corpus::load(target);
    assert!(
        files.len() >= 10,
        "the {} corpus has {} files; regenerate it with `cargo run -p flyte-secret-fuzz -- seed`",
        target.name(),
        files.len()
    );
    let mut crashed = Vec::new();
    for (path, data) in &files {
        if std::panic::catch_unwind(|| target.run(data)).is_err() {
            crashed.push(path.display().to_string());
        }
    }
    assert!(crashed.is_empty(), "crashing corpus files: {crashed:#?}");
}

/// A short generated run, so the mutators themselves stay working.
fn smoke(target: Target, cases: u32) {
    let seeds: Vec<Vec<u8>> = corpus::load(target).into_iter().map(|(_, b)| b).collect();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = mutate::inputs(target, Arc::new(seeds));
    match runner.run(&strategy, |input| {
        target.run(&input);
        Ok(())
    }) {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => panic!(
            "{}: {reason}\nminimal failing input saved as {}:\n{}",
            target.name(),
            corpus::save_crash(target, &input).display(),
            String::from_utf8_lossy(&input)
        ),
        Err(e) => panic!("{}: {e}", target.name()),
    }
}

#[test]
fn annotation_corpus() {
    replay(Target::Annotation);
    smoke(Target::Annotation, 2000);
}

#[test]
fn plan_corpus() {
    replay(Target::Plan);
    smoke(Target::Plan, 1000);
}

#[test]
fn admission_corpus() {
    replay(Target::Admission);
    smoke(Target::Admission, 300);
}

#[test]
fn paths_corpus() {
    replay(Target::Paths);
    smoke(Target::Paths, 2000);
}
