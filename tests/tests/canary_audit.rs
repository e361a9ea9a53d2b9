//! The canary audit: one run of everything — admission, fetch from every backend, `agent
//! exec`, `agent fetch`, missing secrets, faults (5xx, throttling, a backend dying between two
//! secrets, an untrusted certificate), hostile values (empty, over 1 MiB) and a small burst of
//! concurrent agents — with ONE unique secret value, stored in the Kubernetes API stand-in,
//! OpenBao and moto. Then every log line (webhook at trace level, agents at trace level in
//! JSON and plain), every error, every termination message, every stdout, the AdmissionReview
//! responses and the admitted pod spec are searched for it, raw and base64-encoded: zero hits.
//!
//! Positive controls make the search meaningful: the written files and `agent fetch --show`
//! do contain the value, and the `agent exec` child sees it in its env.
//!
//! The webhook runs in process here (its admission handler, as `webhook serve` calls it);
//! the real `webhook` binary gets the same audit in `webhook/tests/blackbox` (serve.rs,
//! bad_input.rs).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use flyte_secret_e2e::agent::{agent, assert_ok, canary, listing, unique};
use flyte_secret_e2e::world::{aws_admin, vault_admin};
use flyte_secret_spec::backend::{
    AwsBackend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::plan::{FetchPlan, PLAN_ENV};
use flyte_secret_spec::{Backend, MountRequirement, SecretRequest, annotation};
use flyte_secret_testkit::fault::{Fault, FaultProxy, ProxyTls};
use flyte_secret_testkit::fixtures::{self, FlytePod, review};
use flyte_secret_testkit::kube::StandIn;
use flyte_secret_testkit::servers::Servers;
use flyte_secret_webhook::admission;
use flyte_secret_webhook::config::{FileConfig, InjectArgs, Settings};
use serde_json::{Value, json};

/// Everything the run produced that must not contain the value.
struct Audit {
    canary: String,
    needles: Vec<String>,
    texts: Vec<(String, String)>,
}

impl Audit {
    fn new(canary: &str) -> Self {
        // The value raw, and base64-encoded at each of the three alignments (a patch, a
        // Secret's data or a log of raw bytes would carry it that way).
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut needles = vec![canary.to_string()];
        for pad in 0..3 {
            let mut bytes = vec![b'x'; pad];
            bytes.extend_from_slice(canary.as_bytes());
            let enc = b64.encode(&bytes);
            let skip = if pad == 0 { 0 } else { 4 };
            needles.push(enc[skip..enc.len() - 4].to_string());
        }
        Self {
            canary: canary.into(),
            needles,
            texts: Vec::new(),
        }
    }

    fn add(&mut self, label: impl Into<String>, text: impl Into<String>) {
        self.texts.push((label.into(), text.into()));
    }

    fn add_run(&mut self, label: &str, out: &Output, termination: Option<&Path>) {
        self.add(
            format!("{label}: stdout"),
            String::from_utf8_lossy(&out.stdout),
        );
        self.add(
            format!("{label}: stderr"),
            String::from_utf8_lossy(&out.stderr),
        );
        if let Some(t) = termination.and_then(|p| std::fs::read_to_string(p).ok()) {
            self.add(format!("{label}: termination message"), t);
        }
    }

    fn check(&self) {
        let hits: Vec<String> = self
            .texts
            .iter()
            .filter_map(|(label, text)| {
                let needle = self.needles.iter().find(|n| text.contains(n.as_str()))?;
                let at = text.find(needle.as_str()).unwrap_or(0);
                let from = text.floor_char_boundary(at.saturating_sub(200));
                let to = text.ceil_char_boundary((at + 200).min(text.len()));
                Some(format!("{label}: …{}…", &text[from..to]))
            })
            .collect();
        let bytes: usize = self.texts.iter().map(|(_, t)| t.len()).sum();
        eprintln!(
            "canary audit: {} texts, {bytes} bytes searched for {} forms of {}",
            self.texts.len(),
            self.needles.len(),
            self.canary
        );
        assert!(
            hits.is_empty(),
            "the secret value leaked:\n{}",
            hits.join("\n")
        );
    }
}

/// A tracing writer into memory, for the in-process webhook's logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// Answers a review with the webhook's handler, logging at trace level into `logs`.
fn admit(body: &Value, settings: &Settings, logs: &Captured) -> Value {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::TRACE)
        .json()
        .finish();
    let answer = tracing::subscriber::with_default(subscriber, || {
        admission::review(body.to_string().as_bytes(), settings).expect("a review")
    });
    serde_json::from_slice(&answer.body).unwrap()
}

/// The shared Flyte task pod requesting `requests`, in the namespace the stand-in's Secret
/// lives in, its task running as uid 1000 (the plan then names an owner).
fn pod(requests: &[SecretRequest]) -> Value {
    FlytePod::new(requests)
        .name("canary-n0-0")
        .namespace("ns1")
        .pod_security_context(json!({"runAsUser": 1000, "fsGroup": 1000}))
        .build()
}

fn agent_plan(pod: &Value) -> String {
    pod["spec"]["initContainers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == PLAN_ENV)
        .and_then(|e| e["value"].as_str())
        .expect("the agent's plan")
        .to_string()
}

/// Runs `agent init` for a plan given as JSON text, with trace logs in `format`.
fn init_json(
    home: &Path,
    plan: &str,
    root: &Path,
    env: &[(String, String)],
    format: &str,
) -> (Output, std::path::PathBuf) {
    let termination = home.join("termination-log");
    let _ = std::fs::remove_file(&termination);
    let out = agent(home)
        .arg("init")
        .env(PLAN_ENV, plan)
        .env("FLYTE_SECRET_ROOT", root)
        .env("FLYTE_SECRET_TERMINATION_LOG", &termination)
        .env("FLYTE_SECRET_LOG", "trace")
        .env("FLYTE_SECRET_LOG_FORMAT", format)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    (out, termination)
}

fn vault_backend(address: &str, ca: Option<String>) -> Backend {
    Backend::Vault(VaultBackend {
        address: address.into(),
        auth: VaultAuth::Token { token_file: None },
        namespace: None,
        ca_cert_file: ca,
        default_engine: VaultEngine::Kv2,
        managed_mount: "secret".into(),
        allow_insecure_http: false,
    })
}

fn addr(url: &str) -> std::net::SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_value_through_everything_appears_nowhere() {
    let s = Servers::load();
    let value = canary();
    let mut audit = Audit::new(&value);
    let name = unique("canary-audit");

    // The value in all three backends (plus an empty and an oversized one in OpenBao).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let vault = vault_admin(&s);
    let huge = value.repeat((1 << 20) / value.len() + 1);
    vaultrs::kv2::set(
        &vault,
        "secret",
        &format!("{name}/app"),
        &HashMap::from([("k", value.as_str())]),
    )
    .await
    .unwrap();
    vaultrs::kv2::set(
        &vault,
        "secret",
        &format!("{name}/bad"),
        &HashMap::from([("empty", ""), ("huge", huge.as_str())]),
    )
    .await
    .unwrap();
    let aws = aws_admin(&s);
    aws.create_secret()
        .name(format!("{name}-aws:k"))
        .secret_string(&value)
        .send()
        .await
        .unwrap();
    // …and as a field of a JSON secret, for field extraction and aggregate files.
    aws.create_secret()
        .name(format!("{name}-json"))
        .secret_string(serde_json::json!({"password": value, "user": "u"}).to_string())
        .send()
        .await
        .unwrap();
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let files = standin
        .write_incluster_files(&home.path().join("sa"), "ns1", "default")
        .unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(standin.client(standin.admin_token()).await.unwrap(), "ns1");
    api.create(
        &Default::default(),
        &k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("canary-kube".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "k".to_string(),
                k8s_openapi::ByteString(value.clone().into_bytes()),
            )])),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let kube_env = |api_server: &str, ca: &Path| -> Vec<(String, String)> {
        vec![
            ("FLYTE_SECRET_KUBE_API_SERVER".into(), api_server.into()),
            (
                "FLYTE_SECRET_KUBE_TOKEN_FILE".into(),
                files.token.display().to_string(),
            ),
            ("FLYTE_SECRET_KUBE_CA_FILE".into(), ca.display().to_string()),
            (
                "FLYTE_SECRET_KUBE_NAMESPACE_FILE".into(),
                files.namespace.display().to_string(),
            ),
            ("VAULT_TOKEN".into(), s.vault.token.clone()),
        ]
    };
    let env = kube_env(&standin.url(), &files.ca_crt);

    // 1. Admission: the webhook's handler, trace logs captured.
    let backends = vec![
        Backend::Kubernetes(KubernetesBackend::default()),
        vault_backend(&s.vault.addr, None),
        Backend::Aws(AwsBackend {
            region: Some(s.aws.region.clone()),
            endpoint: Some(s.aws.endpoint.clone()),
        }),
    ];
    let settings = Settings::resolve(
        &InjectArgs {
            backends: Some(serde_json::to_string(&backends).unwrap()),
            ..InjectArgs::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let requests = [
        SecretRequest::new("canary-kube", "k"),
        SecretRequest::new(format!("secret/{name}/app"), "k")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("CANARY_ENV"),
        SecretRequest::new(format!("{name}-aws"), "k").with_mount(MountRequirement::File),
    ];
    let logs = Captured::default();
    let body = review("canary-1", "CREATE", &pod(&requests));
    let response = admit(&body, &settings, &logs);
    assert_eq!(response["response"]["allowed"], true, "{response}");
    let (admitted, _) = fixtures::apply_response(&body["request"]["object"], &response);
    audit.add("webhook: AdmissionReview response", response.to_string());
    audit.add("webhook: admitted pod", admitted.to_string());
    let mut hostile_pod = pod(&requests);
    hostile_pod["metadata"]["annotations"]["flyte.secrets/s9"] = json!(annotation::encode(
        &SecretRequest::new("../../etc", "passwd")
    ));
    let denial = admit(
        &review("canary-2", "CREATE", &hostile_pod),
        &settings,
        &logs,
    );
    assert_eq!(denial["response"]["allowed"], false);
    audit.add("webhook: denial", denial.to_string());
    let plan_text = agent_plan(&admitted);
    let plan = FetchPlan::from_json(&plan_text).unwrap();

    // 2. The agent with the webhook's plan, trace logs, JSON and plain.
    for format in ["json", "plain"] {
        let root = tempfile::tempdir().unwrap();
        let (out, termination) = init_json(home.path(), &plan_text, root.path(), &env, format);
        assert_ok(&out);
        audit.add_run(&format!("init ({format})"), &out, Some(&termination));
        // Positive control: the value is where it belongs.
        for s in &plan.secrets {
            assert_eq!(
                std::fs::read_to_string(root.path().join(s.files[0].as_str())).unwrap(),
                value
            );
        }
        // 3. `agent exec`: the child sees the value; nothing else does.
        if format == "json" {
            let out = agent(home.path())
                .args(["exec", "--", "sh", "-c"])
                .arg(format!("[ \"$CANARY_ENV\" = '{value}' ] && echo delivered"))
                .env(PLAN_ENV, &plan_text)
                .env("FLYTE_SECRET_ROOT", root.path())
                .env("FLYTE_SECRET_LOG", "trace")
                .output()
                .unwrap();
            assert_ok(&out);
            // The child's own command line holds the value (it is the test's comparison),
            // its output does not.
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "delivered");
            audit.add("exec: stderr", String::from_utf8_lossy(&out.stderr));
        }
    }

    // 4. `agent fetch` with the plan: without --show nothing; --show is the positive control.
    let plan_file = home.path().join("plan.json");
    std::fs::write(&plan_file, &plan_text).unwrap();
    let fetch = |show: bool| {
        let mut cmd = agent(home.path());
        cmd.arg("fetch").arg("--plan-file").arg(&plan_file);
        if show {
            cmd.arg("--show");
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.env("FLYTE_SECRET_LOG", "trace").output().unwrap()
    };
    let out = fetch(false);
    assert_ok(&out);
    audit.add_run("fetch", &out, None);
    let shown = fetch(true);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&value),
        "--show prints values"
    );

    // 5. A missing secret beside the value: exit 1.
    let root = tempfile::tempdir().unwrap();
    let mut with_missing: Value = serde_json::from_str(&plan_text).unwrap();
    let mut missing = plan.clone();
    missing.secrets.clear();
    missing
        .push(
            "flyte.secrets/s3",
            SecretRequest::new(format!("secret/{name}/nope"), "k"),
        )
        .unwrap();
    with_missing["secrets"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(&missing.secrets[0]).unwrap());
    let (out, termination) = init_json(
        home.path(),
        &with_missing.to_string(),
        root.path(),
        &env,
        "json",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(listing(root.path()).is_empty());
    audit.add_run("missing secret", &out, Some(&termination));

    // 6. Hostile values: empty (refused when asked: by default it is delivered, as Flyte
    // does) and over 1 MiB (the value repeated) fail the plan.
    let refuse_empty = [(
        "FLYTE_SECRET_REFUSE_EMPTY_VALUES".to_string(),
        "true".to_string(),
    )];
    let env_refusing: Vec<(String, String)> = env.iter().cloned().chain(refuse_empty).collect();
    for key in ["empty", "huge"] {
        let root = tempfile::tempdir().unwrap();
        let p = flyte_secret_e2e::agent::plan(
            vec![vault_backend(&s.vault.addr, None)],
            None,
            &[
                SecretRequest::new(format!("secret/{name}/app"), "k"),
                SecretRequest::new(format!("secret/{name}/bad"), key),
            ],
        );
        let (out, termination) = init_json(
            home.path(),
            &p.to_json(),
            root.path(),
            &env_refusing,
            "json",
        );
        assert_eq!(out.status.code(), Some(1), "{key}");
        assert!(listing(root.path()).is_empty());
        audit.add_run(&format!("{key} value"), &out, Some(&termination));
    }

    // 6b. A field of a JSON secret, delivered alone and in every aggregate format; then a
    // field that is not there (its error names the field, never the value); then --explain.
    let aws_only = vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(s.aws.endpoint.clone()),
    })];
    for format in flyte_secret_spec::aggregate::Format::ALL {
        let root = tempfile::tempdir().unwrap();
        let mut p = flyte_secret_e2e::agent::plan(
            aws_only.clone(),
            None,
            &[
                SecretRequest::new(format!("{name}-json"), "/password"),
                SecretRequest::new(format!("{name}-json"), "/user"),
            ],
        );
        p.aggregate = Some(format);
        let (out, termination) = init_json(home.path(), &p.to_json(), root.path(), &env, "json");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        audit.add_run(
            &format!("field and {format} aggregate"),
            &out,
            Some(&termination),
        );
    }
    let root = tempfile::tempdir().unwrap();
    let missing = [SecretRequest::new(
        format!("{name}-json"),
        "/password/inner",
    )];
    let p = flyte_secret_e2e::agent::plan(aws_only.clone(), None, &missing);
    let (out, termination) = init_json(home.path(), &p.to_json(), root.path(), &env, "plain");
    assert_eq!(out.status.code(), Some(1));
    assert!(listing(root.path()).is_empty());
    audit.add_run("missing field", &out, Some(&termination));

    // 7. Faults on the way to each backend.
    let vault_proxy = FaultProxy::start(addr(&s.vault.addr)).await.unwrap();
    let aws_proxy = FaultProxy::start(addr(&s.aws.endpoint)).await.unwrap();
    let kube_proxy = FaultProxy::start_with(
        standin.addr(),
        ProxyTls {
            front: true,
            upstream_ca_pem: Some(standin.ca_pem().into()),
        },
    )
    .await
    .unwrap();
    let proxied = |vault_url: &str, aws_url: &str| {
        let mut p = plan.clone();
        p.backends = vec![
            Backend::Kubernetes(KubernetesBackend::default()),
            vault_backend(vault_url, None),
            Backend::Aws(AwsBackend {
                region: Some(s.aws.region.clone()),
                endpoint: Some(aws_url.into()),
            }),
        ];
        p.timeouts.request_seconds = 1;
        p.timeouts.deadline_seconds = 4;
        p.to_json()
    };
    let proxy_ca = home.path().join("proxy-ca.pem");
    std::fs::write(&proxy_ca, kube_proxy.ca_pem().unwrap()).unwrap();
    let via_proxy = kube_env(&kube_proxy.url(), &proxy_ca);
    let through = proxied(&vault_proxy.url(), &aws_proxy.url());
    // 5xx, throttling and a dropped connection, then recovery.
    vault_proxy.fail_next(2, Fault::server_error(503));
    aws_proxy.fail_next(1, Fault::aws_throttling());
    kube_proxy.fail_next(1, Fault::Drop);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init_json(home.path(), &through, root.path(), &via_proxy, "json");
    assert_ok(&out);
    audit.add_run("faults, recovered", &out, Some(&termination));
    // The Vault backend dies between two secrets (kv2 reads after the first).
    let second = {
        let mut v: Value = serde_json::from_str(&through).unwrap();
        let mut extra = plan.clone();
        extra.secrets.clear();
        extra
            .push(
                "flyte.secrets/s4",
                SecretRequest::new(format!("secret/{name}/bad"), "huge"),
            )
            .unwrap();
        v["secrets"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::to_value(&extra.secrets[0]).unwrap());
        v.to_string()
    };
    vault_proxy.go_down_after(1);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init_json(home.path(), &second, root.path(), &via_proxy, "json");
    assert_eq!(out.status.code(), Some(1));
    assert!(listing(root.path()).is_empty());
    audit.add_run("backend died between secrets", &out, Some(&termination));
    vault_proxy.set_down(false);
    // An API server certificate from a CA the agent does not trust.
    let root = tempfile::tempdir().unwrap();
    let wrong_ca = kube_env(&kube_proxy.url(), &files.ca_crt);
    let (out, termination) = init_json(home.path(), &through, root.path(), &wrong_ca, "plain");
    assert_eq!(out.status.code(), Some(1));
    audit.add_run("untrusted certificate", &out, Some(&termination));

    // 8. A small burst: 8 agents at once.
    let runs: Vec<_> = (0..8)
        .map(|i| {
            let (plan_text, env) = (plan_text.clone(), env.clone());
            let home = home.path().join(format!("burst-{i}"));
            std::fs::create_dir_all(&home).unwrap();
            tokio::task::spawn_blocking(move || {
                let root = tempfile::tempdir().unwrap();
                let (out, termination) = init_json(&home, &plan_text, root.path(), &env, "json");
                let t = std::fs::read_to_string(termination).unwrap_or_default();
                (out, t)
            })
        })
        .collect();
    for (i, run) in runs.into_iter().enumerate() {
        let (out, termination) = run.await.unwrap();
        assert_ok(&out);
        audit.add_run(&format!("burst agent {i}"), &out, None);
        audit.add(format!("burst agent {i}: termination message"), termination);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    audit.add(
        "webhook: logs (trace)",
        String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string(),
    );
    assert!(audit.texts.len() > 40);
    audit.check();
}
