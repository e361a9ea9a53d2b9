//! The fault matrix: the real agent against each backend — the Kubernetes API stand-in
//! (over TLS, in API mode: `agent fetch --kubeconfig`, the only mode that calls the API),
//! OpenBao and moto (`agent init`), and the Google Secret Manager and Azure Key Vault HTTPS
//! stand-ins (`testkit::{gcp,azure}`, their token endpoints reached directly) — behind the
//! fault-injecting proxy (`testkit::fault`), for every kind of trouble a backend can be in:
//!
//! | scenario | expected |
//! |---|---|
//! | connection refused (nothing listens) | retried with backoff until the deadline, then exit 1 |
//! | down, back within the deadline | retried, recovers: exit 0, every file |
//! | 5xx twice, then fine | retried, recovers |
//! | 5xx for good | retried until the deadline, exit 1 naming the status |
//! | throttled twice (429 / ThrottlingException), then fine | retried, recovers |
//! | one answer slower than the request timeout | that attempt times out, retried, recovers |
//! | every answer slower than the timeout | exit 1 at the deadline |
//! | connection dropped once | retried, recovers |
//! | TLS certificate from a CA the agent does not trust | permanent: one attempt, exit 1 at once |
//! | expired or invalid credentials | permanent: no retry, exit 1 at once |
//! | the backend dies between two secrets | exit 1, and the secret already fetched is **not** written |
//! | … and comes back within the deadline | exit 0, both secrets |
//!
//! Every failure has exit code 1 and a termination message naming the secret and the
//! backend's reason; no failure leaves a file behind; retries are jittered (their delays
//! differ); no secret value reaches any output.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use flyte_secret_spec::backend::{
    AwsBackend, AzureBackend, GcpBackend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::{Backend, SecretRequest};
use flyte_secret_testkit::azure::{AzureStandIn, CLIENT_ID, CLIENT_SECRET, TENANT};
use flyte_secret_testkit::fault::{Fault, FaultProxy, ProxyTls, closed_port};
use flyte_secret_testkit::gcp::{GcpStandIn, PROJECT};
use flyte_secret_testkit::kube::StandIn;
use flyte_secret_testkit::servers::Servers;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Refused,
    DownThenBack,
    ServerErrors,
    ServerErrorsForever,
    Throttled,
    SlowOnce,
    SlowForever,
    DroppedOnce,
    WrongCa,
    BadAuth,
    DiesBetween,
    DiesBetweenAndRecovers,
}

use Scenario::*;

const ALL: [Scenario; 12] = [
    Refused,
    DownThenBack,
    ServerErrors,
    ServerErrorsForever,
    Throttled,
    SlowOnce,
    SlowForever,
    DroppedOnce,
    WrongCa,
    BadAuth,
    DiesBetween,
    DiesBetweenAndRecovers,
];

/// How a scenario should end.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Retried, then every file written.
    Recovers,
    /// Retried until the deadline, then exit 1.
    GivesUp,
    /// No retry, exit 1 well before the deadline.
    FailsFast,
}

impl Scenario {
    fn expect(self) -> Expect {
        match self {
            DownThenBack
            | ServerErrors
            | Throttled
            | SlowOnce
            | DroppedOnce
            | DiesBetweenAndRecovers => Expect::Recovers,
            Refused | ServerErrorsForever | SlowForever | DiesBetween => Expect::GivesUp,
            WrongCa | BadAuth => Expect::FailsFast,
        }
    }

    /// (request timeout, deadline) in seconds.
    fn timeouts(self) -> (u64, u64) {
        match self.expect() {
            Expect::GivesUp => (1, 3),
            Expect::Recovers | Expect::FailsFast => (1, 20),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Kubernetes,
    Vault,
    Aws,
    Gcp,
    Azure,
}

impl Kind {
    /// Whether the agent reaches the backend over TLS only (the proxy then fronts TLS).
    fn https(self) -> bool {
        matches!(self, Kind::Kubernetes | Kind::Gcp | Kind::Azure)
    }
}

/// One backend, reachable through a proxy: what the agent needs to find it.
struct Reach {
    backends: Vec<Backend>,
    env: Vec<(String, String)>,
    /// API mode: run `agent fetch --kubeconfig` with this file instead of `agent init`.
    kubeconfig: Option<PathBuf>,
}

/// How to reach a backend at (url, CA file to trust, home, bad credentials?).
type MakeReach = Box<dyn Fn(&str, Option<&Path>, &Path, bool) -> Reach + Send + Sync>;

/// A backend under test: its two secrets and how to reach it at an address.
struct Setup {
    kind: Kind,
    upstream: SocketAddr,
    upstream_ca: Option<String>,
    requests: [SecretRequest; 2],
    files: [String; 2],
    values: [String; 2],
    make: MakeReach,
    /// Keeps an in-process server alive.
    _standin: Option<Box<dyn std::any::Any + Send + Sync>>,
}

async fn kube_setup() -> Setup {
    let standin = StandIn::start().await.unwrap();
    let client = standin.client(standin.admin_token()).await.unwrap();
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> = kube::Api::namespaced(client, "ns1");
    let values = [canary(), canary() + "-b"];
    for (name, value) in [("fm-a", &values[0]), ("fm-b", &values[1])] {
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                [(
                    "k".to_string(),
                    k8s_openapi::ByteString(value.clone().into_bytes()),
                )]
                .into(),
            ),
            ..Default::default()
        };
        api.create(&Default::default(), &secret).await.unwrap();
    }
    let upstream = standin.addr();
    let upstream_ca = Some(standin.ca_pem().to_string());
    let good = standin.mint_token("ns1", "default", &[], Duration::from_secs(3600));
    let expired = standin.mint_token("ns1", "default", &[], Duration::ZERO);
    Setup {
        kind: Kind::Kubernetes,
        upstream,
        upstream_ca,
        requests: [
            SecretRequest::new("fm-a", "k"),
            SecretRequest::new("fm-b", "k"),
        ],
        files: ["fm-a/k".into(), "fm-b/k".into()],
        values,
        make: Box::new(move |url, ca, home, bad_auth| {
            let kubeconfig = home.join("kubeconfig");
            let yaml = format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters:\n- name: c\n  cluster:\n    server: {url}\n    certificate-authority: {ca}\n\
                 users:\n- name: u\n  user:\n    token: {token}\n\
                 contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: ns1\n\
                 current-context: x\n",
                ca = ca.expect("Kubernetes is HTTPS").display(),
                token = if bad_auth { &expired } else { &good },
            );
            std::fs::write(&kubeconfig, yaml).unwrap();
            Reach {
                backends: vec![Backend::Kubernetes(KubernetesBackend::default())],
                env: Vec::new(),
                kubeconfig: Some(kubeconfig),
            }
        }),
        _standin: Some(Box::new(standin)),
    }
}

async fn vault_setup(s: &Servers) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = vault_admin(s);
    let name = unique("fault-matrix");
    let values = [canary(), canary() + "-b"];
    for (path, value) in [("a", &values[0]), ("b", &values[1])] {
        vaultrs::kv2::set(
            &c,
            "secret",
            &format!("{name}/{path}"),
            &HashMap::from([("k", value.as_str())]),
        )
        .await
        .unwrap();
    }
    let token = s.vault.token.clone();
    Setup {
        kind: Kind::Vault,
        upstream: http_addr(&s.vault.addr),
        upstream_ca: None,
        requests: [
            SecretRequest::new(format!("secret/{name}/a"), "k"),
            SecretRequest::new(format!("secret/{name}/b"), "k"),
        ],
        files: [format!("secret/{name}/a/k"), format!("secret/{name}/b/k")],
        values,
        make: Box::new(move |url, ca, _home, bad_auth| Reach {
            backends: vec![Backend::Vault(VaultBackend {
                address: url.into(),
                auth: VaultAuth::Token { token_file: None },
                namespace: None,
                ca_cert_file: ca.map(|p| p.display().to_string()),
                default_engine: VaultEngine::Kv2,
                managed_mount: "secret".into(),
                allow_insecure_http: false,
            })],
            env: vec![(
                "VAULT_TOKEN".into(),
                if bad_auth {
                    "hvs.not-a-token".into()
                } else {
                    token.clone()
                },
            )],
            kubeconfig: None,
        }),
        _standin: None,
    }
}

async fn aws_setup(s: &Servers) -> Setup {
    let client = aws_admin(s);
    let name = unique("fault-matrix");
    let values = [canary(), canary() + "-b"];
    for (suffix, value) in [("a", &values[0]), ("b", &values[1])] {
        client
            .create_secret()
            .name(format!("{name}-{suffix}:k"))
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let region = s.aws.region.clone();
    Setup {
        kind: Kind::Aws,
        upstream: http_addr(&s.aws.endpoint),
        upstream_ca: None,
        // A version stage each: one GetSecretValue per secret (unversioned ids would share
        // one BatchGetSecretValue, with nothing "between" them).
        requests: [
            SecretRequest::new(format!("{name}-a"), "k").with_group_version("AWSCURRENT"),
            SecretRequest::new(format!("{name}-b"), "k").with_group_version("AWSCURRENT"),
        ],
        files: [format!("{name}-a/k"), format!("{name}-b/k")],
        values,
        make: Box::new(move |url, _ca, _home, _bad_auth| Reach {
            backends: vec![Backend::Aws(AwsBackend {
                region: Some(region.clone()),
                endpoint: Some(url.into()),
            })],
            env: Vec::new(),
            kubeconfig: None,
        }),
        _standin: None,
    }
}

/// A CA bundle in `home`: the CA the agent is to trust for the proxy (or the one that did not
/// sign its certificate), plus the stand-in's own for its token endpoint, reached directly.
fn ca_bundle(home: &Path, proxy_ca: Option<&Path>, standin_ca: &str) -> String {
    let mut pem = proxy_ca
        .map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap_or_default();
    pem.push('\n');
    pem.push_str(standin_ca);
    let path = home.join("ca-bundle.pem");
    std::fs::write(&path, pem).unwrap();
    path.display().to_string()
}

async fn gcp_setup() -> Setup {
    let standin = GcpStandIn::start().await.unwrap();
    let name = unique("fault-matrix");
    let values = [canary(), canary() + "-b"];
    for (suffix, value) in [("a", &values[0]), ("b", &values[1])] {
        standin.add_version(&format!("{name}-{suffix}"), value.as_bytes());
    }
    let standin = Arc::new(standin);
    let keep = standin.clone();
    Setup {
        kind: Kind::Gcp,
        upstream: standin.api.addr,
        upstream_ca: Some(standin.ca_pem.clone()),
        // Flyte's addressing: the secret and its version, no key.
        requests: [
            SecretRequest::new(format!("{name}-a"), "").with_group_version("1"),
            SecretRequest::new(format!("{name}-b"), "").with_group_version("1"),
        ],
        files: [format!("{name}-a/1"), format!("{name}-b/1")],
        values,
        make: Box::new(move |url, ca, home, bad_auth| {
            // A service-account key; with bad credentials, one for an account the token
            // endpoint does not know.
            let key = standin.service_account_key(home);
            if bad_auth {
                let text = std::fs::read_to_string(&key).unwrap();
                let text = text.replace("agent@", "nobody@");
                std::fs::write(&key, text).unwrap();
            }
            Reach {
                backends: vec![Backend::Gcp(GcpBackend {
                    project: Some(PROJECT.into()),
                    endpoint: Some(url.into()),
                    credentials_file: Some(key.display().to_string()),
                    ca_cert_file: Some(ca_bundle(home, ca, &standin.ca_pem)),
                })],
                env: Vec::new(),
                kubeconfig: None,
            }
        }),
        _standin: Some(Box::new(keep)),
    }
}

async fn azure_setup() -> Setup {
    let standin = AzureStandIn::start().await.unwrap();
    let name = unique("fault-matrix");
    let values = [canary(), canary() + "-b"];
    for (suffix, value) in [("a", &values[0]), ("b", &values[1])] {
        standin.set(&format!("{name}-{suffix}"), value);
    }
    let standin = Arc::new(standin);
    let keep = standin.clone();
    Setup {
        kind: Kind::Azure,
        upstream: standin.server.addr,
        upstream_ca: Some(standin.ca_pem.clone()),
        // Bare names in the configured vault (the proxy), no key.
        requests: [
            SecretRequest::new(format!("{name}-a"), ""),
            SecretRequest::new(format!("{name}-b"), ""),
        ],
        files: [format!("{name}-a"), format!("{name}-b")],
        values,
        make: Box::new(move |url, ca, home, bad_auth| Reach {
            backends: vec![Backend::Azure(AzureBackend {
                vault_url: Some(url.into()),
                ca_cert_file: Some(ca_bundle(home, ca, &standin.ca_pem)),
            })],
            // A client secret (service principal); with bad credentials, a wrong one.
            env: vec![
                ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
                ("AZURE_TENANT_ID".into(), TENANT.into()),
                (
                    "AZURE_CLIENT_SECRET".into(),
                    if bad_auth {
                        "not-the-secret".into()
                    } else {
                        CLIENT_SECRET.into()
                    },
                ),
                ("AZURE_AUTHORITY_HOST".into(), format!("{}/", standin.url())),
            ],
            kubeconfig: None,
        }),
        _standin: Some(Box::new(keep)),
    }
}

/// What one scenario did.
struct Outcome {
    out: Output,
    took: Duration,
    termination: Option<String>,
    root: tempfile::TempDir,
    proxy: Option<Arc<FaultProxy>>,
}

/// Two throttling answers as each backend gives them (AWS: the JSON error code, then a bare
/// 429).
fn throttles(kind: Kind) -> [Fault; 2] {
    let status = |body: &str| Fault::Status {
        code: 429,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into(),
    };
    match kind {
        Kind::Aws => [
            Fault::aws_throttling(),
            Fault::aws_error(429, "TooManyRequestsException", "slow down"),
        ],
        Kind::Kubernetes => {
            let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too many requests","reason":"TooManyRequests","code":429}"#;
            [status(body), status(body)]
        }
        Kind::Vault => {
            let body = r#"{"errors":["request path \"secret/data\": rate limit quota exceeded"]}"#;
            [status(body), status(body)]
        }
        Kind::Gcp => {
            let body = r#"{"error":{"code":429,"message":"Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute'.","status":"RESOURCE_EXHAUSTED"}}"#;
            [status(body), status(body)]
        }
        Kind::Azure => {
            let throttled = Fault::Status {
                code: 429,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("retry-after".into(), "1".into()),
                ],
                body: r#"{"error":{"code":"Throttled","message":"Request was not processed because too many requests were received."}}"#.into(),
            };
            [throttled.clone(), throttled]
        }
    }
}

fn server_error(kind: Kind) -> Fault {
    match kind {
        Kind::Kubernetes => Fault::Status {
            code: 503,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"etcdserver: leader changed","reason":"ServiceUnavailable","code":503}"#.into(),
        },
        Kind::Aws => Fault::aws_error(500, "InternalServiceError", "injected"),
        Kind::Vault => Fault::server_error(503),
        Kind::Gcp => Fault::Status {
            code: 503,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}"#.into(),
        },
        Kind::Azure => Fault::Status {
            code: 503,
            headers: vec![("content-type".into(), "application/json".into())],
            body: r#"{"error":{"code":"ServiceUnavailable","message":"The server is currently unable to handle the request."}}"#.into(),
        },
    }
}

async fn run_scenario(setup: &Setup, scenario: Scenario) -> Outcome {
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let tls_front = setup.kind.https() || scenario == WrongCa;
    let proxy = if scenario == Refused {
        None
    } else {
        let tls = ProxyTls {
            front: tls_front,
            upstream_ca_pem: setup.upstream_ca.clone(),
        };
        Some(Arc::new(
            FaultProxy::start_with(setup.upstream, tls).await.unwrap(),
        ))
    };
    // Held until the scenario ends, so no other test's server takes the refused port.
    let closed = closed_port();
    let url = match &proxy {
        Some(p) => p.url(),
        None => {
            let scheme = if tls_front { "https" } else { "http" };
            format!("{scheme}://{}", closed.addr())
        }
    };
    // The CA the agent trusts: the proxy's, or (WrongCa) one that did not sign its certificate.
    let ca = match (&proxy, scenario) {
        (_, WrongCa) => {
            let other = FaultProxy::start_with(
                setup.upstream,
                ProxyTls {
                    front: true,
                    upstream_ca_pem: None,
                },
            )
            .await
            .unwrap();
            Some(other.ca_pem().unwrap().to_string())
        }
        (Some(p), _) => p.ca_pem().map(str::to_string),
        (None, _) if tls_front => {
            // Nothing listens, so any CA does.
            Some(setup.upstream_ca.clone().unwrap_or_default())
        }
        (None, _) => None,
    };
    let ca_file = ca.map(|pem| {
        let f = home.path().join("ca.pem");
        std::fs::write(&f, pem).unwrap();
        f
    });
    let kind = setup.kind;
    if let Some(p) = &proxy {
        match scenario {
            DownThenBack => {
                p.set_down(true);
                let p = p.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    p.set_down(false);
                });
            }
            ServerErrors => p.fail_next(2, server_error(kind)),
            ServerErrorsForever => p.fail_next(10_000, server_error(kind)),
            Throttled => {
                for fault in throttles(kind) {
                    p.fail_next(1, fault);
                }
            }
            SlowOnce => p.fail_next(1, Fault::Delay(Duration::from_secs(3))),
            SlowForever => p.fail_next(10_000, Fault::Delay(Duration::from_secs(3))),
            DroppedOnce => p.fail_next(1, Fault::Drop),
            BadAuth if kind == Kind::Aws => p.fail_next(
                10_000,
                Fault::aws_error(
                    400,
                    "ExpiredTokenException",
                    "The security token included in the request is expired",
                ),
            ),
            DiesBetween => p.go_down_after(1),
            DiesBetweenAndRecovers => {
                p.go_down_after(1);
                let p = p.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    p.set_down(false);
                });
            }
            _ => {}
        }
    }
    let reach = (setup.make)(&url, ca_file.as_deref(), home.path(), scenario == BadAuth);
    let mut p = plan(reach.backends, None, &setup.requests);
    (p.timeouts.request_seconds, p.timeouts.deadline_seconds) = scenario.timeouts();
    let env = reach.env;
    let (home_path, root_path) = (home.path().to_path_buf(), root.path().to_path_buf());
    let started = Instant::now();
    let kubeconfig = reach.kubeconfig;
    let (out, termination) = tokio::task::spawn_blocking(move || match kubeconfig {
        Some(kc) => fetch_api(&home_path, &p, &root_path, &kc),
        None => {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            init(&home_path, &p, &root_path, &env)
        }
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let termination = std::fs::read_to_string(termination).ok();
    drop(home);
    Outcome {
        out,
        took,
        termination,
        root,
        proxy,
    }
}

/// Words the termination message must contain (any one of them).
fn reasons(kind: Kind, scenario: Scenario) -> &'static [&'static str] {
    match (kind, scenario) {
        (Kind::Kubernetes, Refused | DiesBetween) => &["Kubernetes API unreachable"],
        (Kind::Kubernetes, ServerErrorsForever) => &["Kubernetes API answered 503"],
        (Kind::Kubernetes, SlowForever) => &["did not answer within", "timed out", "timeout"],
        (Kind::Kubernetes, BadAuth) => &["Kubernetes API answered 401"],
        (Kind::Vault, Refused | DiesBetween) => &["Vault unreachable"],
        (Kind::Vault, ServerErrorsForever) => &["Vault answered 503"],
        (Kind::Vault, SlowForever) => &["did not answer within", "timed out", "timeout"],
        (Kind::Vault, BadAuth) => &["Vault answered 403"],
        (Kind::Aws, Refused | DiesBetween) => &["AWS Secrets Manager unreachable"],
        (Kind::Aws, ServerErrorsForever) => &["InternalServiceError"],
        (Kind::Aws, SlowForever) => &["did not answer within", "timed out", "timeout"],
        (Kind::Aws, BadAuth) => &["ExpiredTokenException"],
        (Kind::Gcp, Refused | DiesBetween) => &["Google Secret Manager unreachable"],
        (Kind::Gcp, ServerErrorsForever) => &["Google Secret Manager UNAVAILABLE (503)"],
        (Kind::Gcp, SlowForever) => &["did not answer within", "timed out", "timeout"],
        (Kind::Gcp, BadAuth) => &["Google credentials refused"],
        (Kind::Azure, Refused | DiesBetween) => &["Azure Key Vault unreachable"],
        (Kind::Azure, ServerErrorsForever) => &["Azure Key Vault 503 ServiceUnavailable"],
        (Kind::Azure, SlowForever) => &["did not answer within", "timed out", "timeout"],
        (Kind::Azure, BadAuth) => &["Azure credentials refused"],
        (_, WrongCa) => &["certificate", "UnknownIssuer"],
        _ => &[],
    }
}

fn retry_delays(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.contains("transient failure, retrying"))
        .filter_map(|l| l.split("delay_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Checks one scenario; returns what is wrong with it.
fn check(setup: &Setup, scenario: Scenario, o: &Outcome) -> Vec<String> {
    let mut problems = Vec::new();
    let text = printed(&o.out);
    let code = o.out.status.code();
    let delays = retry_delays(&text);
    let (_, deadline) = scenario.timeouts();
    if text.contains("panicked") {
        problems.push("panicked".into());
    }
    for v in &setup.values {
        if text.contains(v.as_str()) || o.termination.as_deref().unwrap_or("").contains(v.as_str())
        {
            problems.push("a value leaked into the output".into());
        }
    }
    match scenario.expect() {
        Expect::Recovers => {
            if code != Some(0) {
                problems.push(format!("exit {code:?}, want 0"));
            }
            for (file, value) in setup.files.iter().zip(&setup.values) {
                if std::fs::read_to_string(o.root.path().join(file))
                    .ok()
                    .as_deref()
                    != Some(value)
                {
                    problems.push(format!("{file} not written"));
                }
            }
            if delays.is_empty() {
                problems.push("recovered without a retry".into());
            }
        }
        Expect::GivesUp | Expect::FailsFast => {
            if code != Some(1) {
                problems.push(format!("exit {code:?}, want 1"));
            }
            let left = listing(o.root.path());
            if !left.is_empty() {
                problems.push(format!("files left behind: {left:?}"));
            }
            let summary = o.termination.clone().unwrap_or_default();
            if !summary.starts_with("flyte-secret-agent: ") || !summary.contains("secret ") {
                problems.push(format!("termination message {summary:?}"));
            }
            let want = reasons(setup.kind, scenario);
            if !want.iter().any(|w| summary.contains(w)) {
                problems.push(format!(
                    "termination message lacks one of {want:?}: {summary}"
                ));
            }
        }
    }
    match scenario.expect() {
        Expect::GivesUp => {
            if delays.len() < 2 {
                problems.push(format!("{} retries before giving up", delays.len()));
            }
            let limit = Duration::from_secs(deadline + 4);
            if o.took < Duration::from_secs(deadline - 1) || o.took > limit {
                problems.push(format!("took {:?} for a {deadline}s deadline", o.took));
            }
        }
        Expect::FailsFast => {
            if !delays.is_empty() {
                problems.push(format!("retried a permanent error {} times", delays.len()));
            }
            if o.took > Duration::from_secs(6) {
                problems.push(format!("took {:?} to fail on a permanent error", o.took));
            }
        }
        Expect::Recovers => {}
    }
    // Full jitter: with several retries, the delays are not all the same.
    if delays.len() >= 3 && delays.iter().all(|d| *d == delays[0]) {
        problems.push(format!("backoff without jitter: {delays:?}"));
    }
    if let Some(p) = &o.proxy {
        let trouble = p.faulted() + p.refused();
        let needs_trouble = !matches!(scenario, WrongCa | BadAuth | Refused)
            || (scenario == BadAuth && setup.kind == Kind::Aws);
        if needs_trouble && trouble == 0 {
            problems.push("the proxy injected nothing".into());
        }
        if scenario == BadAuth {
            // Permanent: each secret asked once (AWS: the injected error, once per secret).
            let asked = p.forwarded() + p.faulted();
            if asked > 2 {
                problems.push(format!(
                    "{asked} requests for 2 secrets with bad credentials"
                ));
            }
        }
        if matches!(scenario, DiesBetween | DiesBetweenAndRecovers) && p.forwarded() < 1 {
            problems.push("the backend died before the first secret".into());
        }
    }
    problems
        .into_iter()
        .map(|p| format!("{:?} {scenario:?}: {p}", setup.kind))
        .collect()
}

async fn matrix(setup: Setup) {
    let setup = Arc::new(setup);
    let runs = ALL.map(|scenario| {
        let setup = setup.clone();
        tokio::spawn(async move {
            let outcome = run_scenario(&setup, scenario).await;
            (scenario, outcome)
        })
    });
    let mut problems = Vec::new();
    let mut rows = Vec::new();
    for run in runs {
        let (scenario, outcome) = run.await.unwrap();
        let found = check(&setup, scenario, &outcome);
        let reason = outcome
            .termination
            .as_deref()
            .map(|t| format!("\n    {}", t.chars().take(300).collect::<String>()))
            .unwrap_or_default();
        rows.push(format!(
            "{:?} {scenario:?}: exit {:?} in {:.1?}, {} retries{}{reason}",
            setup.kind,
            outcome.out.status.code(),
            outcome.took,
            retry_delays(&printed(&outcome.out)).len(),
            if found.is_empty() { "" } else { "  <-- FAILED" }
        ));
        if !found.is_empty() {
            problems.extend(found);
            problems.push(format!(
                "  output: {}",
                printed(&outcome.out).chars().take(3000).collect::<String>()
            ));
        }
    }
    eprintln!("{}", rows.join("\n"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_fault_matrix() {
    matrix(kube_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_fault_matrix() {
    let s = Servers::load();
    matrix(vault_setup(&s).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_fault_matrix() {
    let s = Servers::load();
    matrix(aws_setup(&s).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_fault_matrix() {
    matrix(gcp_setup().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_fault_matrix() {
    matrix(azure_setup().await).await;
}

/// Vault over TLS through the proxy with the right CA: the TLS path itself works, so the
/// WrongCa failure above is about the CA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_over_tls_with_the_right_ca_works() {
    let s = Servers::load();
    let setup = vault_setup(&s).await;
    let proxy = FaultProxy::start_with(
        setup.upstream,
        ProxyTls {
            front: true,
            upstream_ca_pem: None,
        },
    )
    .await
    .unwrap();
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let ca: PathBuf = home.path().join("ca.pem");
    std::fs::write(&ca, proxy.ca_pem().unwrap()).unwrap();
    let reach = (setup.make)(&proxy.url(), Some(&ca), home.path(), false);
    let p = plan(reach.backends, None, &setup.requests);
    let env: Vec<(&str, &str)> = reach
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (out, termination) = init(home.path(), &p, root.path(), &env);
    assert_ok(&out);
    assert_eq!(proxy.forwarded(), 2);
    for (file, value) in setup.files.iter().zip(&setup.values) {
        assert_eq!(
            &std::fs::read_to_string(root.path().join(file)).unwrap(),
            value
        );
        assert_no_leak(&out, &termination, value);
    }
}
