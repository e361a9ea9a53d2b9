//! The long run behind `fuzz run`: each target driven by proptest's `TestRunner` for a number
//! of executions split over threads, with progress every minute and every failing input
//! reported and saved, shrunk, to `fuzz/crashes/<target>-<hash>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::test_runner::{Config, RngSeed, TestError, TestRunner};

use crate::{Target, corpus, mutate};

/// What one target's run did.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Executions.
    pub executions: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Failing inputs found (each reported and saved).
    pub failures: usize,
}

/// Runs `execs` executions of `target` on `jobs` threads (at least one); `seed` fixes the
/// random generator (each chunk of each thread derives its own).
pub fn run_target(target: Target, execs: u64, jobs: u64, seed: Option<u64>) -> Outcome {
    let jobs = jobs.max(1);
    let seeds: Arc<Vec<Vec<u8>>> = Arc::new(
        corpus::load(target)
            .into_iter()
            .map(|(_, bytes)| bytes)
            .collect(),
    );
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let progress = {
        let (count, done) = (count.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if last.elapsed() >= Duration::from_secs(60) {
                    last = Instant::now();
                    let n = count.load(Ordering::Relaxed);
                    eprintln!(
                        "  {}: {n} executions, {:.0}/s",
                        target.name(),
                        n as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
        })
    };
    let workers: Vec<_> = (0..jobs)
        .map(|job| {
            let (seeds, count) = (seeds.clone(), count.clone());
            let share = execs / jobs + u64::from(job < execs % jobs);
            // FUZZ_GENERATE_ONLY=1 measures input generation alone.
            let generate_only = std::env::var_os("FUZZ_GENERATE_ONLY").is_some();
            std::thread::spawn(move || {
                let mut failures = 0;
                let mut left = share;
                let mine = AtomicU64::new(0);
                // proptest counts cases in u32: run in chunks; after a failure (reported and
                // saved), go on with a fresh runner for what is left.
                while left > 0 {
                    let cases = left.min(u64::from(u32::MAX / 2));
                    mine.store(0, Ordering::Relaxed);
                    let config = Config {
                        cases: cases as u32,
                        failure_persistence: None,
                        max_shrink_iters: 20_000,
                        rng_seed: match seed {
                            Some(s) => RngSeed::Fixed(s.wrapping_add(job).wrapping_add(left)),
                            None => RngSeed::Random,
                        },
                        ..Config::default()
                    };
                    let mut runner = TestRunner::new(config);
                    let strategy = mutate::inputs(target, seeds.clone());
                    let result = runner.run(&strategy, |input| {
                        count.fetch_add(1, Ordering::Relaxed);
                        mine.fetch_add(1, Ordering::Relaxed);
                        if !generate_only {
                            target.run(&input);
                        }
                        Ok(())
                    });
                    left -= mine.load(Ordering::Relaxed).clamp(1, cases);
                    if let Err(e) = result {
                        failures += 1;
                        report(target, e);
                        if failures >= 20 {
                            break;
                        }
                    }
                }
                failures
            })
        })
        .collect();
    let failures = workers.into_iter().map(|w| w.join().unwrap_or(1)).sum();
    done.store(true, Ordering::Relaxed);
    let _ = progress.join();
    Outcome {
        executions: count.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
        failures,
    }
}

fn report(target: Target, e: TestError<Vec<u8>>) {
    match e {
        TestError::Fail(reason, input) => {
            let path = corpus::save_crash(target, &input);
            eprintln!(
                "CRASH in {}: {reason}\n  minimized input ({} bytes) written to {}\n  {:?}",
                target.name(),
                input.len(),
                path.display(),
                String::from_utf8_lossy(&input[..input.len().min(600)])
            );
        }
        TestError::Abort(reason) => eprintln!("{}: aborted: {reason}", target.name()),
    }
}
