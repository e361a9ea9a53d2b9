//! Helpers for the `agent secrets` black-box tests: run the command against one store,
//! feed values through stdin or files, and check that no value reaches any output.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::Value;

use crate::common;

/// How `agent secrets` reaches a store: `--store` plus env/flags.
#[derive(Clone, Debug)]
pub struct Target {
    /// Flags appended to every command (`--store …`, `--kubeconfig …`).
    pub flags: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
}

impl Target {
    /// The Kubernetes store through a kubeconfig file written into `home`.
    pub fn kube(home: &Path, kubeconfig_yaml: &str) -> Self {
        let path = home.join("kubeconfig");
        std::fs::write(&path, kubeconfig_yaml).unwrap();
        Self {
            flags: vec![
                "--store".into(),
                "kubernetes".into(),
                "--kubeconfig".into(),
                path.display().to_string(),
            ],
            env: Vec::new(),
        }
    }

    /// AWS Secrets Manager at an endpoint (moto).
    pub fn aws(endpoint: &str, region: &str) -> Self {
        Self {
            flags: vec!["--store".into(), "aws".into()],
            env: vec![
                ("FLYTE_SECRET_AWS_ENDPOINT".into(), endpoint.into()),
                ("AWS_REGION".into(), region.into()),
            ],
        }
    }

    /// Vault / OpenBao with a token.
    pub fn vault(addr: &str, token: &str) -> Self {
        Self {
            flags: vec!["--store".into(), "vault".into()],
            env: vec![
                ("VAULT_ADDR".into(), addr.into()),
                ("VAULT_TOKEN".into(), token.into()),
            ],
        }
    }

    /// Runs `agent secrets <args> <store flags>`, `stdin` piped in when given.
    pub fn run(&self, home: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = common::agent(home);
        // `common::agent` logs at debug, so leaks through dependencies' logs show too.
        cmd.arg("secrets").args(args).args(&self.flags);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("run agent secrets");
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            // A command refused before it reads stdin (a usage error) may have exited already.
            if let Err(e) = pipe.write_all(bytes) {
                assert_eq!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe,
                    "writing stdin: {e}"
                );
            }
        }
        child.wait_with_output().unwrap()
    }

    /// Creates `name` with `value` from stdin (the recommended way), scope flags in `scope`.
    pub fn create(&self, home: &Path, name: &str, value: &[u8], scope: &[&str]) -> Output {
        let mut args = vec!["create", name, "--from-stdin"];
        args.extend_from_slice(scope);
        self.run(home, &args, Some(value))
    }

    /// `get -o json`, parsed; panics unless it succeeds.
    pub fn get_json(&self, home: &Path, name: &str, scope: &[&str]) -> Value {
        let mut args = vec!["get", name, "-o", "json"];
        args.extend_from_slice(scope);
        let out = self.run(home, &args, None);
        common::assert_ok(&out);
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `list -o json` with `filter` flags: the (name, domain, project) of each entry.
    pub fn list(&self, home: &Path, filter: &[&str]) -> Vec<(String, String, String)> {
        let mut args = vec!["list", "-o", "json"];
        args.extend_from_slice(filter);
        let out = self.run(home, &args, None);
        common::assert_ok(&out);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap().to_string();
                (s("name"), s("domain"), s("project"))
            })
            .collect()
    }
}

/// Asserts the exit code, showing the output otherwise.
pub fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{}",
        common::printed(out)
    );
}

/// Panics if any of `needles` appears in the output.
pub fn assert_silent(out: &Output, needles: &[&str]) {
    let text = common::printed(out);
    for n in needles {
        assert!(!text.contains(n), "a secret value leaked:\n{text}");
    }
}

/// Flyte's scoped-name vectors (`spec/vectors/flyte-vectors.json` beside the repository,
/// or `FSA_FLYTE_VECTORS`).
pub fn scoped_name_vectors() -> Vec<Value> {
    let text = include_str!("../../../../spec/vectors/flyte-vectors.json");
    let v: Value = serde_json::from_str(text).unwrap();
    v["scoped_names"].as_array().unwrap().clone()
}

/// `--domain D --project P` flags for a scope (empty parts omitted).
pub fn scope_flags<'a>(domain: &'a str, project: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    if !domain.is_empty() {
        out.extend(["--domain", domain]);
    }
    if !project.is_empty() {
        out.extend(["--project", project]);
    }
    out
}
