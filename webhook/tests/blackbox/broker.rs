//! `webhook broker`, the real binary, against the Kubernetes API stand-in, with the RBAC that
//! `deploy/base` renders loaded into it (and nothing else: the broker runs with exactly the
//! manifests' permissions). Task pods are real stand-in Pods; their tokens are pod-bound and
//! audience-bound like the kubelet's projected ones.
//!
//! Served: a declared managed secret, falling through project+domain → domain → org; notFound
//! with the Secrets tried. Refused: an undeclared annotation, a wrong audience, an expired
//! token, a token that is not pod-bound, a pod gone or replaced, a finished pod, labels that
//! disagree with the namespace, a Secret of the pod's own namespace (the kubelet's), no token.
//! The API down: 503 with Retry-After. The audit line: names, never values.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine;
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::annotation;
use flyte_secret_spec::broker::{DEFAULT_AUDIENCE, Outcome, SECRETS_PATH, SecretsResponse};
use flyte_secret_spec::scoped::{Scope, k8s_secret_name};
use flyte_secret_testkit::kube::{PodRef, Policy, StandIn, StandInOptions};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::common::{
    Pki, Reply, SecretVolume, connect, http_get, install_provider, pki, read_reply,
};

const TASK_NS: &str = "flytesnacks-development";
const OTHER_NS: &str = "other-development";
const BROKER_NS: &str = "flyte-secret-agent";
const BROKER_SA: &str = "flyte-secret-broker";

/// `kubectl kustomize deploy/base`, written to `dir`: the RBAC the stand-in enforces.
fn rendered_base(dir: &Path) -> PathBuf {
    let program = std::env::var("FSA_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base");
    let out = Command::new(&program)
        .args(["kustomize", base.to_str().unwrap()])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}): it renders deploy/"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.join("base.yaml");
    std::fs::write(&path, out.stdout).unwrap();
    path
}

/// A running `webhook broker`, killed on drop; its stderr lines are collected.
pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
    lines: mpsc::Receiver<Value>,
}

impl Broker {
    /// Starts the broker and waits until it serves.
    pub fn start(cert: &Path, key: &Path, kubeconfig: &Path, extra: &[&str]) -> Self {
        let mut broker = Self::spawn(cert, key, kubeconfig, extra);
        broker.wait_listening(Duration::from_secs(30));
        broker
    }

    /// Starts the broker and waits for its admin server only (it serves once its TLS files
    /// are there).
    pub fn spawn(cert: &Path, key: &Path, kubeconfig: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_webhook"))
            .args(["--log-format", "json", "broker", "--listen", "127.0.0.1:0"])
            .args([
                "--admin-listen",
                "127.0.0.1:0",
                "--api-timeout-seconds",
                "2",
            ])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(extra)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("webhook broker starts");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let _ = tx.send(v);
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut broker = Self {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin: SocketAddr::from(([0, 0, 0, 0], 0)),
            logs,
            lines,
        };
        broker.admin = broker.wait_for("admin listening", Duration::from_secs(30));
        broker
    }

    /// Waits for the HTTPS listener.
    pub fn wait_listening(&mut self, limit: Duration) {
        self.addr = self.wait_for("broker listening", limit);
    }

    fn wait_for(&mut self, message: &str, limit: Duration) -> SocketAddr {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("broker: no {message:?}: {:?}", self.logs());
            };
            if line["message"] == message {
                return line["addr"].as_str().unwrap().parse().unwrap();
            }
        }
    }

    fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// The audit lines, parsed, once at least `n` are there (the log is read by a thread, so
    /// the last lines may trail the answers by a moment).
    fn audit(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = self
                .logs()
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["target"] == "flyte_secret_broker::audit")
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The stand-in (deploy/base RBAC only), the broker (its own ServiceAccount's token), the
/// serving PKI.
struct World {
    standin: StandIn,
    admin: kube::Client,
    pki: Pki,
    broker: Broker,
    _dir: tempfile::TempDir,
}

async fn world(extra: &[&str]) -> World {
    install_provider();
    let dir = tempfile::tempdir().unwrap();
    let standin = StandIn::start_with(StandInOptions {
        policy: Policy::deny_all(),
        rbac_files: vec![rendered_base(dir.path())],
        ..StandInOptions::default()
    })
    .await
    .unwrap();
    let admin = standin.client(standin.admin_token()).await.unwrap();
    let token = standin.mint_token(BROKER_NS, BROKER_SA, &[], Duration::from_secs(3600));
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, standin.kubeconfig_yaml(&token)).unwrap();
    let pki = pki();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let volume = SecretVolume::new(&certs, &pki);
    let broker = Broker::start(&volume.cert(), &volume.key(), &kubeconfig, extra);
    World {
        standin,
        admin,
        pki,
        broker,
        _dir: dir,
    }
}

/// A managed secret at `scope`, as Flyte's SecretService stores it.
async fn managed_secret(admin: &kube::Client, scope: &Scope, name: &str, value: &str) -> String {
    let id = scope.encode_name(name);
    let secret_name = k8s_secret_name(&id);
    let mut secret = Secret::default();
    secret.metadata.name = Some(secret_name.clone());
    secret.data = Some(
        [
            (id, ByteString(value.as_bytes().to_vec())),
            // Another value in the same Secret is never served with it.
            ("other".to_string(), ByteString(b"NOT-THIS".to_vec())),
        ]
        .into_iter()
        .collect(),
    );
    Api::<Secret>::namespaced(admin.clone(), "flyte")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    secret_name
}

/// A task pod declaring `secrets` (`flyte.secrets/s0`...) with `labels`, bound to a node.
async fn task_pod(
    admin: &kube::Client,
    namespace: &str,
    name: &str,
    secrets: &[SecretRequest],
    labels: &[(&str, &str)],
) -> PodRef {
    let mut labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    labels.insert("inject-flyte-secrets".into(), json!("true"));
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": annotation::encode_all(secrets),
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "task", "image": "task:1"}],
        },
    }))
    .unwrap();
    let created = Api::<Pod>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    PodRef {
        name: name.to_string(),
        uid: created.metadata.uid.unwrap(),
    }
}

/// The kubelet's projected broker token for `pod`.
fn pod_token(standin: &StandIn, namespace: &str, pod: &PodRef) -> String {
    standin.mint_pod_token(
        namespace,
        "default",
        pod,
        &[DEFAULT_AUDIENCE],
        Duration::from_secs(600),
    )
}

/// `POST /v1/secrets` with `token` (none: no Authorization header).
async fn ask(world: &World, token: Option<&str>, annotations: &[&str]) -> Reply {
    let body = serde_json::to_vec(&json!({ "annotations": annotations })).unwrap();
    let mut tls = connect(world.broker.addr, &world.pki.ca_pem)
        .await
        .expect("TLS connection");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {SECRETS_PATH} HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\n\
         {auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body).await.unwrap();
    tls.flush().await.unwrap();
    read_reply(&mut tls).await
}

/// A refusal: a Kubernetes Status with `code`, whose message holds every one of `words`.
fn assert_refused(reply: &Reply, codes: &[u16], words: &[&str]) -> String {
    assert!(
        codes.contains(&reply.status),
        "status {} not in {codes:?}: {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    let status = reply.json();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["apiVersion"], "v1");
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["code"], reply.status);
    let reason = match reply.status {
        401 => "Unauthorized",
        403 => "Forbidden",
        400 => "BadRequest",
        _ => "ServiceUnavailable",
    };
    assert_eq!(status["reason"], reason);
    let message = status["message"].as_str().unwrap().to_string();
    for word in words {
        assert!(message.contains(word), "{word:?} not in {message:?}");
    }
    message
}

fn answers(reply: &Reply) -> SecretsResponse {
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    serde_json::from_slice(&reply.body).unwrap()
}

fn value(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Found { value, .. } => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(&value.0)
                .unwrap(),
        )
        .unwrap(),
        Outcome::NotFound { reason } => panic!("not found: {reason}"),
    }
}

#[tokio::test]
async fn serves_declared_managed_secrets_through_the_scopes_and_audits_names_only() {
    let w = world(&[]).await;
    let project = Scope::new("development", "flytesnacks");
    let domain = Scope::new("development", "");
    let org = Scope::new("", "");
    // API_KEY exists at project and org scope: the project's wins. DB only org-wide.
    let api_key = managed_secret(&w.admin, &project, "API_KEY", "VALUE-project-api").await;
    managed_secret(&w.admin, &org, "API_KEY", "VALUE-org-api").await;
    let db = managed_secret(&w.admin, &org, "DB", "VALUE-org-db").await;
    let secrets = [
        SecretRequest::new("", "API_KEY"),
        SecretRequest::new("", "DB"),
        SecretRequest::new("", "MISSING"),
    ];
    let labels = [("project", "flytesnacks"), ("domain", "development")];
    let pod = task_pod(&w.admin, TASK_NS, "task-a", &secrets, &labels).await;
    let token = pod_token(&w.standin, TASK_NS, &pod);

    let asked = ["flyte.secrets/s0", "flyte.secrets/s1", "flyte.secrets/s2"];
    let got = answers(&ask(&w, Some(&token), &asked).await);
    assert_eq!(got.secrets.len(), 3);
    assert_eq!(got.secrets[0].annotation, "flyte.secrets/s0");
    assert_eq!(value(&got.secrets[0].outcome), "VALUE-project-api");
    assert!(
        matches!(&got.secrets[0].outcome, Outcome::Found { source, .. } if *source == format!("flyte/{api_key}"))
    );
    assert_eq!(value(&got.secrets[1].outcome), "VALUE-org-db");
    assert!(
        matches!(&got.secrets[1].outcome, Outcome::Found { source, .. } if *source == format!("flyte/{db}"))
    );
    // Not found anywhere: the three Secrets tried, named.
    let Outcome::NotFound { reason } = &got.secrets[2].outcome else {
        panic!("{:?}", got.secrets[2])
    };
    for scope in [&project, &domain, &org] {
        let name = k8s_secret_name(&scope.encode_name("MISSING"));
        assert!(reason.contains(&format!("flyte/{name}")), "{reason}");
    }
    // Only the asked annotation, in the order asked.
    let one = answers(&ask(&w, Some(&token), &["flyte.secrets/s1"]).await);
    assert_eq!(one.secrets.len(), 1);
    assert_eq!(value(&one.secrets[0].outcome), "VALUE-org-db");

    // A pod without Flyte labels (Flyte 1) is scoped by its namespace alone.
    let bare = task_pod(&w.admin, TASK_NS, "task-bare", &secrets[..1], &[]).await;
    let bare_token = pod_token(&w.standin, TASK_NS, &bare);
    let got = answers(&ask(&w, Some(&bare_token), &["flyte.secrets/s0"]).await);
    assert_eq!(value(&got.secrets[0].outcome), "VALUE-project-api");

    // The audit: one line per answer, names and outcomes, never a value.
    let audit = w.broker.audit(3);
    assert_eq!(audit.len(), 3, "{audit:?}");
    let first = &audit[0];
    assert_eq!(first["outcome"], "answered");
    assert_eq!(first["pod"], "task-a");
    assert_eq!(first["namespace"], TASK_NS);
    assert_eq!(first["service_account"], "default");
    assert_eq!(first["annotations"], asked.join(","));
    let secrets_field = first["secrets"].as_str().unwrap();
    assert!(secrets_field.contains(&format!("flyte.secrets/s0=found:flyte/{api_key}")));
    assert!(secrets_field.contains("flyte.secrets/s2=notFound"));
    for line in w.broker.logs() {
        assert!(!line.contains("VALUE-"), "a value in the log: {line}");
        assert!(!line.contains(&token), "the token in the log: {line}");
    }
    let metrics = http_get(w.broker.admin, "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("flyte_secret_broker_requests_total{outcome=\"answered\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("flyte_secret_broker_secrets_total{outcome=\"found\"} 4"),
        "{text}"
    );
    assert_eq!(http_get(w.broker.admin, "/ready").await.status, 200);
}

#[tokio::test]
async fn refuses_what_the_pod_did_not_declare_or_cannot_be_trusted_with() {
    let w = world(&[]).await;
    managed_secret(
        &w.admin,
        &Scope::new("development", "flytesnacks"),
        "K",
        "VALUE-k",
    )
    .await;
    let secrets = [SecretRequest::new("", "K")];
    let pod = task_pod(&w.admin, TASK_NS, "task-b", &secrets, &[]).await;
    let token = pod_token(&w.standin, TASK_NS, &pod);

    // An annotation the pod does not carry.
    assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s7"]).await,
        &[403],
        &[
            "flyte.secrets/s7",
            "flytesnacks-development/task-b",
            "does not declare",
        ],
    );
    // No token; a token for another audience (the API's); an expired one; one not bound to a
    // pod.
    assert_refused(
        &ask(&w, None, &["flyte.secrets/s0"]).await,
        &[401],
        &["bearer"],
    );
    let api_token =
        w.standin
            .mint_pod_token(TASK_NS, "default", &pod, &[], Duration::from_secs(600));
    assert_refused(
        &ask(&w, Some(&api_token), &["flyte.secrets/s0"]).await,
        &[401],
        &[],
    );
    let vault = w.standin.mint_pod_token(
        TASK_NS,
        "default",
        &pod,
        &["vault"],
        Duration::from_secs(600),
    );
    assert_refused(
        &ask(&w, Some(&vault), &["flyte.secrets/s0"]).await,
        &[401],
        &[],
    );
    let expired = w.standin.mint_pod_token(
        TASK_NS,
        "default",
        &pod,
        &[DEFAULT_AUDIENCE],
        Duration::ZERO,
    );
    assert_refused(
        &ask(&w, Some(&expired), &["flyte.secrets/s0"]).await,
        &[401],
        &[],
    );
    let unbound = w.standin.mint_token(
        TASK_NS,
        "default",
        &[DEFAULT_AUDIENCE],
        Duration::from_secs(600),
    );
    assert_refused(
        &ask(&w, Some(&unbound), &["flyte.secrets/s0"]).await,
        &[401],
        &["not a pod-bound token"],
    );
    assert_refused(
        &ask(&w, Some("garbage"), &["flyte.secrets/s0"]).await,
        &[401],
        &[],
    );
    // Not JSON of the protocol.
    let bad = ask(&w, Some(&token), &[]).await;
    assert_refused(&bad, &[400], &["no annotations"]);

    // The same pod's token still works: the refusals above were not about the pod.
    let got = answers(&ask(&w, Some(&token), &["flyte.secrets/s0"]).await);
    assert_eq!(value(&got.secrets[0].outcome), "VALUE-k");

    // A finished pod: 403 naming it.
    let pods: Api<Pod> = Api::namespaced(w.admin.clone(), TASK_NS);
    let mut done = pods.get_status("task-b").await.unwrap();
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    pods.replace_status("task-b", &PostParams::default(), &done)
        .await
        .unwrap();
    assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s0"]).await,
        &[403],
        &["task-b", "finished"],
    );

    // Gone, then replaced by a pod of the same name (another uid): the old token is refused.
    pods.delete("task-b", &DeleteParams::default())
        .await
        .unwrap();
    assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s0"]).await,
        &[401, 403],
        &[],
    );
    task_pod(&w.admin, TASK_NS, "task-b", &secrets, &[]).await;
    assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s0"]).await,
        &[401, 403],
        &[],
    );

    // A pod being deleted (graceful, on a node).
    let c = task_pod(&w.admin, TASK_NS, "task-c", &secrets, &[]).await;
    let c_token = pod_token(&w.standin, TASK_NS, &c);
    pods.delete("task-c", &DeleteParams::default())
        .await
        .unwrap();
    assert_refused(
        &ask(&w, Some(&c_token), &["flyte.secrets/s0"]).await,
        &[401, 403],
        &[],
    );

    // Every refusal was audited, without the token.
    let audit = w.broker.audit(10);
    assert!(
        audit.iter().filter(|a| a["outcome"] == "refused").count() >= 10,
        "{audit:?}"
    );
    for line in w.broker.logs() {
        assert!(!line.contains(&token) && !line.contains("VALUE-"), "{line}");
    }
}

#[tokio::test]
async fn the_scope_is_the_namespaces_and_labels_cannot_change_it() {
    let w = world(&[]).await;
    // Project `other`'s secret; a pod of flytesnacks labels itself project=other.
    managed_secret(
        &w.admin,
        &Scope::new("development", "other"),
        "K",
        "VALUE-other",
    )
    .await;
    let secrets = [SecretRequest::new("", "K")];
    let spoof = [("project", "other"), ("domain", "development")];
    let pod = task_pod(&w.admin, TASK_NS, "spoofer", &secrets, &spoof).await;
    let token = pod_token(&w.standin, TASK_NS, &pod);
    let message = assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s0"]).await,
        &[403],
        &["spoofer", "project=\"other\"", "\"flytesnacks\""],
    );
    assert!(!message.contains("VALUE"), "{message}");
    // The same pod without the spoofed labels gets its own project's scope: not found.
    let honest = task_pod(&w.admin, TASK_NS, "honest", &secrets, &[]).await;
    let token = pod_token(&w.standin, TASK_NS, &honest);
    let got = answers(&ask(&w, Some(&token), &["flyte.secrets/s0"]).await);
    assert!(matches!(got.secrets[0].outcome, Outcome::NotFound { .. }));
    // Project `other` itself is served.
    let theirs = task_pod(&w.admin, OTHER_NS, "theirs", &secrets, &spoof).await;
    let token = pod_token(&w.standin, OTHER_NS, &theirs);
    let got = answers(&ask(&w, Some(&token), &["flyte.secrets/s0"]).await);
    assert_eq!(value(&got.secrets[0].outcome), "VALUE-other");
    // A namespace that maps to no project and domain gets no managed secret.
    let stray = task_pod(&w.admin, "default", "stray", &secrets, &[]).await;
    let token = pod_token(&w.standin, "default", &stray);
    assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s0"]).await,
        &[403],
        &["namespace default does not match"],
    );
    // A Secret of the pod's own namespace is the kubelet's to deliver, not the broker's.
    let own = [SecretRequest::new("db", "password")];
    let grouped = task_pod(&w.admin, TASK_NS, "grouped", &own, &[]).await;
    let token = pod_token(&w.standin, TASK_NS, &grouped);
    assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s0"]).await,
        &[403],
        &["delivered by the kubelet"],
    );
}

#[tokio::test]
async fn the_api_down_is_a_503_with_retry_after() {
    let w = world(&[]).await;
    let secrets = [SecretRequest::new("", "K")];
    let pod = task_pod(&w.admin, TASK_NS, "task-d", &secrets, &[]).await;
    let token = pod_token(&w.standin, TASK_NS, &pod);
    // Stop the API server: the broker answers 503 within its API timeout, and says to retry.
    let addr = w.broker.addr;
    let ca = w.pki.ca_pem.clone();
    drop(w.standin);
    let started = Instant::now();
    let mut tls = connect(addr, &ca).await.unwrap();
    let body = br#"{"annotations":["flyte.secrets/s0"]}"#;
    let head = format!(
        "POST {SECRETS_PATH} HTTP/1.1\r\nHost: broker\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut raw).await;
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert!(text.contains("\"reason\":\"ServiceUnavailable\""), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the API timeout"
    );
}

/// `--direct-namespace`: grouped requests are served from Secrets there that their owner
/// labelled shared, and nothing else kept there; the managed namespace cannot be the direct one.
#[tokio::test]
async fn the_direct_namespace_serves_only_secrets_labelled_shared() {
    use flyte_secret_spec::broker::{SHARED_LABEL, SHARED_LABEL_VALUE};
    use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
    const SHARED_NS: &str = "shared-secrets";
    let w = world(&["--direct-namespace", SHARED_NS]).await;
    // The broker's Role there, as the chart renders it for broker.directNamespace.
    let mut role = Role::default();
    role.metadata.name = Some(BROKER_SA.into());
    role.rules = Some(vec![PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["secrets".into()]),
        verbs: vec!["get".into()],
        ..PolicyRule::default()
    }]);
    Api::<Role>::namespaced(w.admin.clone(), SHARED_NS)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let mut binding = RoleBinding::default();
    binding.metadata.name = Some(BROKER_SA.into());
    binding.role_ref = RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "Role".into(),
        name: BROKER_SA.into(),
    };
    binding.subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: BROKER_SA.into(),
        namespace: Some(BROKER_NS.into()),
        ..Subject::default()
    }]);
    Api::<RoleBinding>::namespaced(w.admin.clone(), SHARED_NS)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    for (name, shared) in [("db", true), ("internal", false)] {
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.into());
        if shared {
            secret.metadata.labels = Some(
                [(SHARED_LABEL.to_string(), SHARED_LABEL_VALUE.to_string())]
                    .into_iter()
                    .collect(),
            );
        }
        secret.data = Some(
            [(
                "password".to_string(),
                ByteString(format!("VALUE-{name}").into_bytes()),
            )]
            .into_iter()
            .collect(),
        );
        Api::<Secret>::namespaced(w.admin.clone(), SHARED_NS)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    let secrets = [
        SecretRequest::new("db", "password"),
        SecretRequest::new("internal", "password"),
        SecretRequest::new("absent", "password"),
    ];
    let pod = task_pod(&w.admin, TASK_NS, "direct", &secrets, &[]).await;
    let token = pod_token(&w.standin, TASK_NS, &pod);
    let got = answers(&ask(&w, Some(&token), &["flyte.secrets/s0", "flyte.secrets/s2"]).await);
    assert_eq!(value(&got.secrets[0].outcome), "VALUE-db");
    assert!(
        matches!(&got.secrets[0].outcome, Outcome::Found { source, .. } if source == "shared-secrets/db")
    );
    assert!(matches!(got.secrets[1].outcome, Outcome::NotFound { .. }));
    // Kept there but not shared: refused, named, no value.
    let message = assert_refused(
        &ask(&w, Some(&token), &["flyte.secrets/s1"]).await,
        &[403],
        &["shared-secrets/internal", SHARED_LABEL, "direct"],
    );
    assert!(!message.contains("VALUE"), "{message}");
    for line in w.broker.logs() {
        assert!(!line.contains("VALUE-"), "a value in the log: {line}");
    }

    // The managed namespace as the direct one: the broker refuses to start, saying why.
    let out = Command::new(env!("CARGO_BIN_EXE_webhook"))
        .args([
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(["--tls-cert", "/nonexistent", "--tls-key", "/nonexistent"])
        .args(["--direct-namespace", "flyte"])
        .env_remove("KUBECONFIG")
        .env_remove("FLYTE_SECRET_BROKER_MANAGED_NAMESPACE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--direct-namespace flyte is the managed namespace"),
        "{stderr}"
    );
}
