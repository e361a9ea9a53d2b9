//! The canary audit: one run of everything — admission, fetch from every backend, `agent
//! exec`, `agent fetch` (in-pod and API mode), missing secrets, refusals by the secret broker,
//! faults (5xx, throttling, a dropped connection, a backend dying between two secrets, an
//! untrusted certificate), hostile values (empty, over 1 MiB) and a small burst of concurrent
//! agents — with ONE unique secret value, on every path a value travels:
//!
//! - a Kubernetes Secret of the pod's namespace, through a kubelet-style `secret` volume
//!   (`..data` layout) under `FLYTE_SECRET_KUBE_SECRETS_DIR`, as `agent init` reads it;
//! - a Flyte 2 managed secret in `flyte`, through a REAL broker process (`webhook broker`) in
//!   front of an in-process Kubernetes API stand-in that enforces the RBAC `deploy/` renders
//!   (the broker runs as its own ServiceAccount), asked with a pod-bound projected token;
//! - the same Secret through the Kubernetes API (`agent fetch --kubeconfig`);
//! - OpenBao and moto.
//!
//! Then every log line (webhook at trace level, the broker at trace level in JSON, agents at
//! trace level in JSON and plain), every error, every termination message, every stdout, the
//! AdmissionReview responses and the admitted pod spec are searched for it, raw and
//! base64-encoded: zero hits.
//!
//! Positive controls make the search meaningful: the written files and `agent fetch --show`
//! do contain the value, the `agent exec` child sees it in its env, the broker's audit says it
//! found the managed secret, and the broker fault proxy saw its faults and the recovery.
//!
//! The webhook runs in process here (its admission handler, as `webhook serve` calls it);
//! the real `webhook` binary gets the same audit in `webhook/tests/blackbox` (serve.rs,
//! bad_input.rs).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use flyte_secret_e2e::agent::{agent, assert_ok, canary, kubelet_volume, listing, unique};
use flyte_secret_e2e::world::{aws_admin, vault_admin};
use flyte_secret_spec::backend::{
    AwsBackend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::broker::{BrokerRef, DEFAULT_AUDIENCE};
use flyte_secret_spec::env::{BROKER_CA_ENV, BROKER_TOKEN_FILE_ENV, KUBE_SECRETS_DIR_ENV};
use flyte_secret_spec::plan::{FetchPlan, PLAN_ENV};
use flyte_secret_spec::scoped::{Scope, k8s_secret_name};
use flyte_secret_spec::{Backend, MountRequirement, SecretRequest, annotation};
use flyte_secret_testkit::fault::{Fault, FaultProxy, ProxyTls};
use flyte_secret_testkit::fixtures::{self, FlytePod, review};
use flyte_secret_testkit::kube::{ADMIN_USER, PodRef, Policy, StandIn, StandInOptions};
use flyte_secret_testkit::servers::Servers;
use flyte_secret_webhook::admission;
use flyte_secret_webhook::config::{FileConfig, InjectArgs, Settings};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use serde_json::{Value, json};

/// The task pod's namespace: Flyte's `<project>-<domain>`, which the broker derives the
/// managed-secret scope from.
const NAMESPACE: &str = fixtures::NAMESPACE;
/// The managed secret's name (groupless request: served by the broker).
const MANAGED: &str = "CANARY_MANAGED";

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

/// The shared Flyte task pod requesting `requests`, in [`NAMESPACE`] (where the stand-in's
/// Secret lives), its task running as uid 1000 (the plan then names an owner).
fn pod(requests: &[SecretRequest]) -> Value {
    FlytePod::new(requests)
        .name("canary-n0-0")
        .pod_security_context(json!({"runAsUser": 1000, "fsGroup": 1000}))
        .build()
}

/// The value of `name` in the admitted pod's agent (first init) container env.
fn agent_env(pod: &Value, name: &str) -> String {
    pod["spec"]["initContainers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .unwrap_or_else(|| panic!("{name} in the agent's env"))
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

/// A real `webhook broker` process (trace logs, JSON) with a fresh CA and serving
/// certificate, its kubeconfig holding a token of the ServiceAccount `deploy/` gives it, so
/// the stand-in authorizes it by the RBAC `deploy/` renders only. Killed on drop.
struct BrokerProcess {
    child: Child,
    addr: std::net::SocketAddr,
    url: String,
    ca_pem: String,
    ca_file: PathBuf,
    logs: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl BrokerProcess {
    fn start(standin: &StandIn) -> Self {
        use flyte_secret_e2e::broker::{NAMESPACE, SERVICE_ACCOUNT, SERVICE_NAME};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec![SERVICE_NAME.to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &Issuer::new(ca, &ca_key)).unwrap();
        let path = |f: &str| dir.path().join(f);
        std::fs::write(path("tls.crt"), cert.pem()).unwrap();
        std::fs::write(path("tls.key"), key.serialize_pem()).unwrap();
        std::fs::write(path("ca.crt"), ca_cert.pem()).unwrap();
        let token = standin.mint_token(NAMESPACE, SERVICE_ACCOUNT, &[], Duration::from_secs(3600));
        std::fs::write(path("kubeconfig"), standin.kubeconfig_yaml(&token)).unwrap();
        let mut child = Command::new(flyte_secret_e2e::webhook_bin())
            .args(["--log-format", "json", "--log", "trace", "broker"])
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--api-timeout-seconds", "2"])
            .arg("--tls-cert")
            .arg(path("tls.crt"))
            .arg("--tls-key")
            .arg(path("tls.key"))
            .arg("--kubeconfig")
            .arg(path("kubeconfig"))
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("webhook broker starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (sink, (tx, rx)) = (logs.clone(), mpsc::channel());
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && v["message"] == "broker listening"
                {
                    let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr: std::net::SocketAddr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("broker did not start: {:?}", logs.lock().unwrap()))
            .parse()
            .unwrap();
        Self {
            child,
            addr,
            url: format!("https://127.0.0.1:{}", addr.port()),
            ca_pem: ca_cert.pem(),
            ca_file: path("ca.crt"),
            logs,
            reader: Some(reader),
            _dir: dir,
        }
    }

    /// Stops the broker and returns every line it logged (all of them: the reader has seen
    /// the end of its stderr).
    fn finish(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        self.logs.lock().unwrap().clone()
    }

    /// The audit lines (one per request that reached the broker's checks) with `outcome`
    /// (any when `None`), once at least `n` are there: a thread reads the log, so the last
    /// lines may trail the answers.
    fn audit(&self, outcome: Option<&str>, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = self
                .logs
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["target"] == "flyte_secret_broker::audit")
                .filter(|v| outcome.is_none_or(|o| v["outcome"] == o))
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An in-process stand-in authorizing by the RBAC `scripts/servers.sh` rendered from `deploy/`
/// (no allow-list: RBAC alone decides, the admin token aside).
async fn standin(s: &Servers) -> StandIn {
    let dir = s.kube.state_dir.join("rbac");
    let mut rbac_files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/servers.sh renders it)", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    rbac_files.sort();
    assert!(
        !rbac_files.is_empty(),
        "no rendered RBAC in {}",
        dir.display()
    );
    StandIn::start_with(StandInOptions {
        policy: Policy::deny_all(),
        rbac_files,
        ..StandInOptions::default()
    })
    .await
    .unwrap()
}

/// The kubernetes backend of a task pod's plan: the broker at `url` for what lies outside
/// the pod's namespace.
fn kube_backend(url: &str) -> Backend {
    Backend::Kubernetes(KubernetesBackend {
        broker: Some(BrokerRef {
            url: url.into(),
            audience: DEFAULT_AUDIENCE.into(),
        }),
        ..KubernetesBackend::default()
    })
}

/// `plan` with one more secret, `request` under `annotation`.
fn with_secret(plan: &FetchPlan, annotation: &str, request: SecretRequest) -> String {
    let mut v: Value = serde_json::from_str(&plan.to_json()).unwrap();
    let mut extra = plan.clone();
    extra.secrets.clear();
    extra.push(annotation, request).unwrap();
    v["secrets"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(&extra.secrets[0]).unwrap());
    v.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_value_through_everything_appears_nowhere() {
    let s = Servers::load();
    let value = canary();
    let mut audit = Audit::new(&value);
    let name = unique("canary-audit");

    // The value in OpenBao (plus an empty and an oversized one) and moto.
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
    // …in the Kubernetes API: the pod's own Secret (read through the API by `agent fetch
    // --kubeconfig`) and a Flyte 2 managed secret at the pod's project scope in `flyte`
    // (served by the broker)…
    let standin = standin(&s).await;
    let home = tempfile::tempdir().unwrap();
    let admin = standin.client(standin.admin_token()).await.unwrap();
    let secret = |name: &str, key: &str| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            key.to_string(),
            ByteString(value.clone().into_bytes()),
        )])),
        ..Default::default()
    };
    Api::<Secret>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &secret("canary-kube", "k"))
        .await
        .unwrap();
    let managed_id = Scope::new("development", "flytesnacks").encode_name(MANAGED);
    Api::<Secret>::namespaced(admin.clone(), "flyte")
        .create(
            &PostParams::default(),
            &secret(&k8s_secret_name(&managed_id), &managed_id),
        )
        .await
        .unwrap();
    // …and in the kubelet's `secret` volume of that Secret, as the agent container sees it.
    let volumes = home.path().join("kube-secrets");
    kubelet_volume(&volumes, "canary-kube", &[("k", value.as_bytes())]);
    let broker = BrokerProcess::start(&standin);

    // 1. Admission: the webhook's handler, trace logs captured.
    let backends = vec![
        kube_backend(&broker.url),
        vault_backend(&s.vault.addr, None),
        Backend::Aws(AwsBackend {
            region: Some(s.aws.region.clone()),
            endpoint: Some(s.aws.endpoint.clone()),
        }),
    ];
    let settings = Settings::resolve(
        &InjectArgs {
            backends: Some(serde_json::to_string(&backends).unwrap()),
            broker_ca_file: Some(broker.ca_file.clone()),
            ..InjectArgs::default()
        },
        FileConfig::default(),
    )
    .unwrap();
    let requests = [
        SecretRequest::new("canary-kube", "k"),
        SecretRequest::new("", MANAGED),
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
    let plan_text = agent_env(&admitted, PLAN_ENV);
    let plan = FetchPlan::from_json(&plan_text).unwrap();
    // The broker's CA as the webhook hands it to the agent.
    let broker_ca = agent_env(&admitted, BROKER_CA_ENV);
    assert_eq!(broker_ca.trim(), broker.ca_pem.trim());

    // The admitted pod exists (the broker reads it), and the kubelet's projected token for it
    // has the broker's audience.
    let mut created: Pod = serde_json::from_value(admitted.clone()).unwrap();
    created.metadata.namespace = None;
    let created = Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &created)
        .await
        .unwrap();
    let pod_ref = PodRef {
        name: created.metadata.name.clone().unwrap(),
        uid: created.metadata.uid.clone().unwrap(),
    };
    let pod_token = |audience: &str, file: &str| {
        let token = standin.mint_pod_token(
            NAMESPACE,
            "default",
            &pod_ref,
            &[audience],
            Duration::from_secs(600),
        );
        let path = home.path().join(file);
        std::fs::write(&path, token).unwrap();
        path
    };
    let token_file = pod_token(DEFAULT_AUDIENCE, "broker-token");
    // What the webhook sets up in the agent container: Secret volumes, the broker token and
    // CA (no Kubernetes API credential at all).
    let pod_env = |ca: &str, token: &Path| -> Vec<(String, String)> {
        vec![
            (KUBE_SECRETS_DIR_ENV.into(), volumes.display().to_string()),
            (BROKER_TOKEN_FILE_ENV.into(), token.display().to_string()),
            (BROKER_CA_ENV.into(), ca.into()),
            ("VAULT_TOKEN".into(), s.vault.token.clone()),
        ]
    };
    let env = pod_env(&broker_ca, &token_file);

    // 2. The agent with the webhook's plan, trace logs, JSON and plain.
    for format in ["json", "plain"] {
        let root = tempfile::tempdir().unwrap();
        let (out, termination) = init_json(home.path(), &plan_text, root.path(), &env, format);
        assert_ok(&out);
        audit.add_run(&format!("init ({format})"), &out, Some(&termination));
        // Positive control: the value is where it belongs, from every path.
        assert_eq!(plan.secrets.len(), requests.len());
        for s in &plan.secrets {
            assert_eq!(
                std::fs::read_to_string(root.path().join(s.files[0].as_str())).unwrap(),
                value,
                "{}",
                s.request.name()
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
    // Positive control: the managed secret came from the broker, which says so (by name).
    let answered = broker.audit(None, 2);
    assert_eq!(answered.len(), 2, "{answered:?}");
    for line in &answered {
        assert_eq!(line["outcome"], "answered", "{line}");
        assert_eq!(line["pod"], pod_ref.name);
        let secrets = line["secrets"].as_str().unwrap();
        assert!(
            secrets.contains(&format!("=found:flyte/{}", k8s_secret_name(&managed_id))),
            "{secrets}"
        );
    }

    // 4. `agent fetch` with the plan, as in the pod (volumes + broker): without --show
    // nothing; --show is the positive control.
    let plan_file = home.path().join("plan.json");
    std::fs::write(&plan_file, &plan_text).unwrap();
    let fetch = |show: bool, extra: &[&str]| {
        let mut cmd = agent(home.path());
        cmd.arg("fetch").arg("--plan-file").arg(&plan_file);
        cmd.args(extra);
        if show {
            cmd.arg("--show");
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.env("FLYTE_SECRET_LOG", "trace").output().unwrap()
    };
    let out = fetch(false, &[]);
    assert_ok(&out);
    audit.add_run("fetch", &out, None);
    let shown = fetch(true, &[]);
    assert_ok(&shown);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&value),
        "--show prints values"
    );
    // 4b. `agent fetch --kubeconfig` (API mode, an operator's credentials): the pod's Secret
    // and the managed secret through the Kubernetes API.
    let kubeconfig = home.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        standin
            .kubeconfig_yaml(standin.admin_token())
            .replace("namespace: default", &format!("namespace: {NAMESPACE}")),
    )
    .unwrap();
    let api_plan = home.path().join("api-plan.json");
    std::fs::write(
        &api_plan,
        flyte_secret_e2e::agent::plan(
            vec![Backend::Kubernetes(KubernetesBackend::default())],
            Some(Scope::new("development", "flytesnacks")),
            &requests[..2],
        )
        .to_json(),
    )
    .unwrap();
    let api_fetch = |show: bool| {
        let mut cmd = agent(home.path());
        cmd.arg("fetch")
            .arg("--plan-file")
            .arg(&api_plan)
            .arg("--kubeconfig")
            .arg(&kubeconfig);
        if show {
            cmd.arg("--show");
        }
        cmd.env("FLYTE_SECRET_LOG", "trace").output().unwrap()
    };
    let out = api_fetch(false);
    assert_ok(&out);
    audit.add_run("fetch --kubeconfig", &out, None);
    let shown = api_fetch(true);
    assert_ok(&shown);
    assert_eq!(
        String::from_utf8_lossy(&shown.stdout)
            .matches(&value)
            .count(),
        2,
        "--show prints both values read through the API"
    );
    let api_reads = standin
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.contains("/secrets/") && r.status == 200)
        .filter(|r| r.user.as_deref() == Some(ADMIN_USER))
        .count();
    assert!(api_reads >= 4, "the API mode read the Secrets: {api_reads}");
    // Least privilege: nobody but the admin (this test, `agent fetch --kubeconfig`) and the
    // broker (in `flyte` only) ever asked the API for a Secret; `agent init` never did.
    let broker_user = format!(
        "system:serviceaccount:{}:{}",
        flyte_secret_e2e::broker::NAMESPACE,
        flyte_secret_e2e::broker::SERVICE_ACCOUNT
    );
    for r in standin.requests() {
        if r.path.contains("/secrets") && r.user.as_deref() != Some(ADMIN_USER) {
            assert_eq!(r.user.as_deref(), Some(broker_user.as_str()), "{r:?}");
            assert!(r.path.contains("/namespaces/flyte/secrets/"), "{r:?}");
        }
    }

    // 5. A missing secret beside the value: exit 1.
    let root = tempfile::tempdir().unwrap();
    let with_missing = with_secret(
        &plan,
        "flyte.secrets/s3",
        SecretRequest::new(format!("secret/{name}/nope"), "k"),
    );
    let (out, termination) = init_json(home.path(), &with_missing, root.path(), &env, "json");
    assert_eq!(out.status.code(), Some(1));
    assert!(listing(root.path()).is_empty());
    audit.add_run("missing secret", &out, Some(&termination));

    // 5b. The broker refuses: an annotation the pod does not carry (403), a token with
    // another audience (401). Nothing is written; the refusal is in the termination message.
    let undeclared = with_secret(&plan, "flyte.secrets/s9", SecretRequest::new("", MANAGED));
    let wrong_audience = pod_env(&broker_ca, &pod_token("not-the-broker", "wrong-token"));
    for (label, plan, env, answer) in [
        (
            "broker refusal: undeclared annotation",
            &undeclared,
            &env,
            "secret broker answered 403",
        ),
        (
            "broker refusal: wrong audience",
            &plan_text,
            &wrong_audience,
            "secret broker answered 401",
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let (out, termination) = init_json(home.path(), plan, root.path(), env, "json");
        assert_eq!(out.status.code(), Some(1), "{label}");
        assert!(listing(root.path()).is_empty(), "{label}");
        let t = std::fs::read_to_string(&termination).unwrap_or_default();
        assert!(t.contains(answer), "{label}: {t}");
        audit.add_run(label, &out, Some(&termination));
    }
    let refusals = broker.audit(Some("refused"), 2);
    let codes: Vec<i64> = refusals.iter().filter_map(|l| l["code"].as_i64()).collect();
    assert!(codes.contains(&403) && codes.contains(&401), "{refusals:?}");

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

    // 7. Faults on the way to each backend; the broker behind a TLS-terminating proxy.
    let vault_proxy = FaultProxy::start(addr(&s.vault.addr)).await.unwrap();
    let aws_proxy = FaultProxy::start(addr(&s.aws.endpoint)).await.unwrap();
    let broker_proxy = FaultProxy::start_with(
        broker.addr,
        ProxyTls {
            front: true,
            upstream_ca_pem: Some(broker.ca_pem.clone()),
        },
    )
    .await
    .unwrap();
    let proxied = |vault_url: &str, aws_url: &str, broker_url: &str| {
        let mut p = plan.clone();
        p.backends = vec![
            kube_backend(broker_url),
            vault_backend(vault_url, None),
            Backend::Aws(AwsBackend {
                region: Some(s.aws.region.clone()),
                endpoint: Some(aws_url.into()),
            }),
        ];
        p.timeouts.request_seconds = 1;
        p.timeouts.deadline_seconds = 4;
        p
    };
    let via_proxy = pod_env(broker_proxy.ca_pem().unwrap(), &token_file);
    let through = proxied(&vault_proxy.url(), &aws_proxy.url(), &broker_proxy.url());
    // 5xx, throttling and a dropped connection, then recovery.
    vault_proxy.fail_next(2, Fault::server_error(503));
    aws_proxy.fail_next(1, Fault::aws_throttling());
    // The broker's own 503 (a Kubernetes Status, as when its API calls fail), a proxy's
    // plain-text 503, then a dropped connection.
    broker_proxy.fail_next(
        1,
        Fault::Status {
            code: 503,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "code": 503, "reason": "ServiceUnavailable", "message": "injected fault"})
            .to_string(),
        },
    );
    broker_proxy.fail_next(
        1,
        Fault::Status {
            code: 503,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: "upstream connect error".into(),
        },
    );
    broker_proxy.fail_next(1, Fault::Drop);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init_json(
        home.path(),
        &through.to_json(),
        root.path(),
        &via_proxy,
        "json",
    );
    assert_ok(&out);
    audit.add_run("faults, recovered", &out, Some(&termination));
    assert_eq!(broker_proxy.faulted(), 3, "every broker fault was hit");
    assert!(broker_proxy.forwarded() >= 1, "then the broker answered");
    for s in &plan.secrets {
        assert_eq!(
            std::fs::read_to_string(root.path().join(s.files[0].as_str())).unwrap(),
            value
        );
    }
    // The Vault backend dies between two secrets (kv2 reads after the first).
    let second = with_secret(
        &through,
        "flyte.secrets/s4",
        SecretRequest::new(format!("secret/{name}/bad"), "huge"),
    );
    vault_proxy.go_down_after(1);
    let root = tempfile::tempdir().unwrap();
    let (out, termination) = init_json(home.path(), &second, root.path(), &via_proxy, "json");
    assert_eq!(out.status.code(), Some(1));
    assert!(listing(root.path()).is_empty());
    audit.add_run("backend died between secrets", &out, Some(&termination));
    vault_proxy.set_down(false);
    // A broker certificate from a CA the agent does not trust (the real broker's CA, while
    // the proxy serves its own).
    let root = tempfile::tempdir().unwrap();
    let wrong_ca = pod_env(&broker.ca_pem, &token_file);
    let forwarded = broker_proxy.forwarded();
    let (out, termination) = init_json(
        home.path(),
        &through.to_json(),
        root.path(),
        &wrong_ca,
        "plain",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(listing(root.path()).is_empty());
    assert_eq!(
        broker_proxy.forwarded(),
        forwarded,
        "no request got through"
    );
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
    // The broker's whole log, its audit lines included: the answers (init ×2, fetch ×2, the
    // recovered faults, the burst ×8 at least) name the pod, never a value.
    let broker_logs = broker.finish();
    let answered = broker_logs
        .iter()
        .filter(|l| l.contains("flyte_secret_broker::audit") && l.contains("\"answered\""))
        .count();
    assert!(answered >= 13, "{answered} answers in the broker's audit");
    audit.add("broker: logs (trace, JSON)", broker_logs.join("\n"));
    assert!(audit.texts.len() > 40);
    audit.check();
}

/// Google Secret Manager and Azure Key Vault (issue 18): one secret in each stand-in holds the
/// canary, addressed as Flyte does (GCP key-less, `group_version` the version; Azure the
/// secret URI), both ENV_VAR. Admission with trace logs, `agent init` (JSON and plain trace
/// logs) through a 429 and a 503 from each service (retried), `agent exec`, `agent fetch`
/// (`--show` is the positive control), and both secrets refused (PERMISSION_DENIED, 403):
/// zero hits anywhere.
#[test]
fn gcp_and_azure_values_appear_nowhere() {
    use flyte_secret_spec::backend::{AzureBackend, GcpBackend};
    use flyte_secret_testkit::azure::{AzureStandIn, CLIENT_ID, TENANT};
    use flyte_secret_testkit::gcp::{GcpStandIn, PROJECT};

    let value = canary();
    let mut audit = Audit::new(&value);
    // The stand-ins on a runtime of their own: the agent runs as a blocking child process.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (gcp, azure) = runtime.block_on(async {
        (
            GcpStandIn::start().await.unwrap(),
            AzureStandIn::start().await.unwrap(),
        )
    });
    let home = tempfile::tempdir().unwrap();
    let secret = unique("canary-gcp");
    gcp.add_version(&secret, b"not this version");
    let version = gcp.add_version(&secret, value.as_bytes());
    let name = unique("canary-azure");
    azure.set(&name, &value);
    let backends = vec![
        Backend::Gcp(GcpBackend {
            project: Some(PROJECT.into()),
            endpoint: Some(gcp.api.url.clone()),
            credentials_file: Some(gcp.service_account_key(home.path()).display().to_string()),
            ca_cert_file: Some(gcp.ca_file(home.path()).display().to_string()),
        }),
        Backend::Azure(AzureBackend {
            vault_url: Some(azure.url().to_string()),
            ca_cert_file: Some(azure.ca_file(home.path()).display().to_string()),
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
        SecretRequest::new(&secret, "")
            .with_group_version(version.to_string())
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("CANARY_GCP"),
        SecretRequest::new(format!("{}/secrets/{name}", azure.url()), "")
            .with_mount(MountRequirement::EnvVar)
            .with_env_var("CANARY_AZURE"),
    ];
    let logs = Captured::default();
    let body = review("canary-clouds", "CREATE", &pod(&requests));
    let response = admit(&body, &settings, &logs);
    assert_eq!(response["response"]["allowed"], true, "{response}");
    let (admitted, _) = fixtures::apply_response(&body["request"]["object"], &response);
    audit.add("webhook: AdmissionReview response", response.to_string());
    audit.add("webhook: admitted pod", admitted.to_string());
    let plan_text = agent_env(&admitted, PLAN_ENV);
    let plan = FetchPlan::from_json(&plan_text).unwrap();
    // Azure Workload Identity, as its webhook sets the pod up.
    let env: Vec<(String, String)> = vec![
        ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        (
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            azure
                .federated_token_file(home.path())
                .display()
                .to_string(),
        ),
        ("AZURE_AUTHORITY_HOST".into(), format!("{}/", azure.url())),
    ];

    // `agent init`, trace logs; the first run goes through a 429 and a 503 from each.
    gcp.fail_next(1, 429, "RESOURCE_EXHAUSTED");
    gcp.fail_next(1, 503, "UNAVAILABLE");
    azure.throttle_next(1, 1);
    azure.fail_next(1, 503);
    let mut last = None;
    for format in ["json", "plain"] {
        // A directory per run: each is a pod's fresh volume (the task's uid owns the last).
        let root = tempfile::tempdir().unwrap();
        let (out, termination) = init_json(home.path(), &plan_text, root.path(), &env, format);
        assert_ok(&out);
        audit.add_run(
            &format!("clouds: init ({format})"),
            &out,
            Some(&termination),
        );
        // Positive control: the value is where it belongs.
        for s in &plan.secrets {
            assert_eq!(
                std::fs::read_to_string(root.path().join(s.files[0].as_str())).unwrap(),
                value,
                "{}",
                s.request.name()
            );
        }
        last = Some(root);
    }
    let root = last.expect("two runs");
    // Positive control: the faults were met, then the reads succeeded (3 calls each in the
    // first run, 1 in the second).
    assert_eq!(gcp.access_calls().len(), 4, "{:?}", gcp.access_calls());
    assert_eq!(azure.reads().len(), 4, "{:?}", azure.reads());

    // `agent exec`: the child sees both values; nothing else does.
    let out = agent(home.path())
        .args(["exec", "--", "sh", "-c"])
        .arg(format!(
            "[ \"$CANARY_GCP\" = '{value}' ] && [ \"$CANARY_AZURE\" = '{value}' ] && echo delivered"
        ))
        .env(PLAN_ENV, &plan_text)
        .env("FLYTE_SECRET_ROOT", root.path())
        .env("FLYTE_SECRET_LOG", "trace")
        .output()
        .unwrap();
    assert_ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "delivered");
    audit.add("clouds: exec: stderr", String::from_utf8_lossy(&out.stderr));

    // `agent fetch` with the plan: without --show nothing; --show is the positive control.
    let plan_file = home.path().join("clouds-plan.json");
    std::fs::write(&plan_file, &plan_text).unwrap();
    let fetch = |show: bool| {
        let mut cmd = agent(home.path());
        cmd.arg("fetch").arg("--plan-file").arg(&plan_file);
        if show {
            cmd.arg("--show");
        }
        cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("FLYTE_SECRET_LOG", "trace")
            .output()
            .unwrap()
    };
    let out = fetch(false);
    assert_ok(&out);
    audit.add_run("clouds: fetch", &out, None);
    let shown = fetch(true);
    assert_ok(&shown);
    assert!(
        String::from_utf8_lossy(&shown.stdout).contains(&value),
        "--show prints values"
    );

    // Both refused: exit 1, the reasons name the secrets only.
    gcp.deny(&secret);
    azure.deny(&name);
    let refused = tempfile::tempdir().unwrap();
    let (out, termination) = init_json(home.path(), &plan_text, refused.path(), &env, "json");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listing(refused.path()).is_empty());
    audit.add_run("clouds: refused", &out, Some(&termination));

    audit.add(
        "clouds: webhook logs (trace)",
        String::from_utf8_lossy(&logs.0.lock().unwrap()).to_string(),
    );
    assert!(audit.texts.len() >= 12, "{}", audit.texts.len());
    audit.check();
    runtime.shutdown_background();
}
