//! The burst (a measurement, on demand, never in CI): 200 `agent init` processes started at
//! once, as when 200 task pods land together, each fetching one secret from OpenBao and one
//! from moto (backends `[vault, aws]`: the AWS-shaped request falls through Vault without a
//! call). Reports failures, retries and the time to ready (spawn → exit 0) p50/p90/p99/max.
//!
//! ```text
//! cargo build -p flyte-secret-agent
//! cargo test -p flyte-secret-e2e --test burst -- --ignored --nocapture
//! FSA_AGENT_BIN=$PWD/target/x86_64-unknown-linux-musl/release/agent BURST_AGENTS=200 \
//!     cargo test -p flyte-secret-e2e --test burst -- --ignored --nocapture
//! ```
//!
//! `FSA_AGENT_BIN` runs the shipped static binary instead of the debug build. Figures go to
//! BENCHMARKS.md ("Reliability").

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flyte_secret_e2e::agent::{agent_bin, plan, unique};
use flyte_secret_e2e::world::{aws_admin, vault_admin};
use flyte_secret_spec::backend::AwsBackend;
use flyte_secret_spec::{Backend, SecretRequest};
use flyte_secret_testkit::fixtures::vault_token_backend;
use flyte_secret_testkit::servers::Servers;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run on demand (BENCHMARKS.md)"]
async fn two_hundred_agents_at_once() {
    let n: usize = std::env::var("BURST_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let bin = agent_bin();
    let s = Servers::load();
    let run = unique("burst");
    let _ = rustls::crypto::ring::default_provider().install_default();

    // One Vault secret and one AWS secret per agent, all different.
    let vault = vault_admin(&s);
    let aws = aws_admin(&s);
    let seeded = Instant::now();
    for i in 0..n {
        let v = format!("vault-value-{i}");
        vaultrs::kv2::set(
            &vault,
            "secret",
            &format!("{run}/{i}"),
            &HashMap::from([("k", v.as_str())]),
        )
        .await
        .unwrap();
        aws.create_secret()
            .name(format!("{run}-{i}:k"))
            .secret_string(format!("aws-value-{i}"))
            .send()
            .await
            .unwrap();
    }
    eprintln!("seeded {} secrets in {:.1?}", 2 * n, seeded.elapsed());

    let backends = vec![
        Backend::Vault(vault_token_backend(&s.vault.addr)),
        Backend::Aws(AwsBackend {
            region: Some(s.aws.region.clone()),
            endpoint: Some(s.aws.endpoint.clone()),
        }),
    ];
    let work = tempfile::tempdir().unwrap();
    let mut jobs = Vec::with_capacity(n);
    for i in 0..n {
        let mut p = plan(
            backends.clone(),
            None,
            &[
                SecretRequest::new(format!("secret/{run}/{i}"), "k"),
                SecretRequest::new(format!("{run}-{i}"), "k"),
            ],
        );
        // The production defaults: 10 s per call, 60 s for the plan.
        p.timeouts = Default::default();
        let home = work.path().join(format!("home-{i}"));
        let root = work.path().join(format!("root-{i}"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", &s.aws.region)
            .env("AWS_CONFIG_FILE", home.join("none"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("none"))
            .env("VAULT_TOKEN", &s.vault.token)
            .env("FLYTE_SECRET_PLAN", p.to_json())
            .env("FLYTE_SECRET_ROOT", &root)
            .env("FLYTE_SECRET_TERMINATION_LOG", home.join("termination-log"))
            .arg("init")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        jobs.push((cmd, root));
    }

    // Go: spawn all, then wait for each on its own thread.
    let started = Instant::now();
    let mut children = Vec::with_capacity(n);
    for (mut cmd, root) in jobs {
        let t0 = Instant::now();
        let child = cmd.spawn().expect("spawn agent");
        children.push((t0, child, root));
    }
    let spawned = started.elapsed();
    let waiters: Vec<_> = children
        .into_iter()
        .enumerate()
        .map(|(i, (t0, child, root))| {
            std::thread::spawn(move || {
                let out = child.wait_with_output().unwrap();
                (i, t0.elapsed(), out, root)
            })
        })
        .collect();
    let mut times = Vec::with_capacity(n);
    let mut failures = Vec::new();
    let mut retries = 0u64;
    let mut retried_agents = 0;
    for w in waiters {
        let (i, took, out, root) = w.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        let ok = out.status.success()
            && std::fs::read_to_string(root.join(format!("secret/{run}/{i}/k"))).ok()
                == Some(format!("vault-value-{i}"))
            && std::fs::read_to_string(root.join(format!("{run}-{i}/k"))).ok()
                == Some(format!("aws-value-{i}"));
        if !ok {
            failures.push(format!("agent {i}: {} {stderr}", out.status));
            continue;
        }
        let r: u64 = stderr
            .lines()
            .find(|l| l.contains("all secrets written"))
            .and_then(|l| l.split("retries=").nth(1))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        retries += r;
        retried_agents += usize::from(r > 0);
        times.push(took);
    }
    let makespan = started.elapsed();
    times.sort();
    if !times.is_empty() {
        eprintln!(
            "burst: {n} agents ({} spawned in {spawned:.1?}), {} failed, {retries} retries in {retried_agents} agents\n\
             time to ready (ms): p50 {}  p90 {}  p99 {}  max {}  min {}; all ready after {makespan:.1?}\n\
             agent: {}",
            n,
            failures.len(),
            percentile(&times, 0.50).as_millis(),
            percentile(&times, 0.90).as_millis(),
            percentile(&times, 0.99).as_millis(),
            times[times.len() - 1].as_millis(),
            times[0].as_millis(),
            bin.display()
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
