//! Fields inside a secret's JSON value, the same on every backend: a key that starts with `/`
//! is a JSON Pointer (AWS `SecretString`, Vault data map, a Kubernetes data key holding JSON);
//! for AWS also ECS's `arn:…:secret:<name>:<json-key>`. Strings are written raw, other values
//! as compact JSON; a missing field is its own error and never shows the value.

use std::collections::HashMap;
use std::path::Path;

use crate::common::*;
use flyte_secret_spec::backend::{AwsBackend, KubernetesBackend};
use flyte_secret_spec::{Backend, Layout, SecretRequest};
use flyte_secret_testkit::servers::Servers;

fn aws(s: &Servers) -> Vec<Backend> {
    vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(s.aws.endpoint.clone()),
    })]
}

fn vault(s: &Servers) -> Vec<Backend> {
    vec![Backend::Vault(vault_token_backend(&s.vault.addr))]
}

/// The primary file of `req`, read back.
fn read(root: &Path, req: &SecretRequest) -> String {
    let files = Layout::default().files(req).unwrap();
    String::from_utf8(std::fs::read(root.join(files[0].as_str())).unwrap()).unwrap()
}

const DOC: &str = r#"{"username": "admin", "pass-word.v2": "CANARY", "port": 5432,
  "tls": {"mode": "verify-full", "ca": null}, "hosts": ["h1", "h2"], "ünï": "ok"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_fields_by_json_pointer_and_by_ecs_json_key() {
    let s = Servers::load();
    let name = unique("rds-creds");
    let canary = canary();
    let created = aws_admin(&s)
        .create_secret()
        .name(&name)
        .secret_string(DOC.replace("CANARY", &canary))
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_string();
    // ECS addresses the secret by its ARN, here without the random suffix (a partial ARN).
    let prefix = arn.rsplit_once(':').unwrap().0.to_string();
    let requests = [
        SecretRequest::new(&name, "/username"),
        SecretRequest::new(&name, "/pass-word.v2"),
        SecretRequest::new(&name, "/port"),
        SecretRequest::new(&name, "/tls"),
        SecretRequest::new(&name, "/hosts/1"),
        SecretRequest::new(&name, "/ünï"),
        SecretRequest::new(&prefix, format!("{name}:username")),
        SecretRequest::new(&prefix, format!("{name}:pass-word.v2:AWSCURRENT")),
    ];
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (out, _) = init(
        home.path(),
        &plan(aws(&s), None, &requests),
        root.path(),
        &[],
    );
    assert_ok(&out);
    let got: Vec<String> = requests.iter().map(|r| read(root.path(), r)).collect();
    assert_eq!(
        got,
        [
            "admin",
            canary.as_str(),
            "5432",
            r#"{"ca":null,"mode":"verify-full"}"#,
            "h2",
            "ok",
            "admin",
            canary.as_str()
        ]
    );
    // One BatchGetSecretValue served the six unversioned requests of one secret: one id.
    assert!(printed(&out).contains("fetched"), "{}", printed(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_kv2_field_holding_json_and_kubernetes_data_key_holding_json() {
    let s = Servers::load();
    let name = unique("svc");
    vaultrs::kv2::set(
        &vault_admin(&s),
        "secret",
        &name,
        &HashMap::from([
            ("config", r#"{"db": {"host": "db.internal", "port": 5432}}"#),
            ("plain", "p"),
        ]),
    )
    .await
    .unwrap();
    let group = format!("secret/{name}");
    let requests = [
        SecretRequest::new(&group, "/config/db/host"),
        SecretRequest::new(&group, "/config/db/port"),
        SecretRequest::new(&group, "/plain"),
    ];
    let home = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let env = [("VAULT_TOKEN", s.vault.token.as_str())];
    let (out, _) = init(
        home.path(),
        &plan(vault(&s), None, &requests),
        root.path(),
        &env,
    );
    assert_ok(&out);
    assert_eq!(read(root.path(), &requests[0]), "db.internal");
    assert_eq!(read(root.path(), &requests[1]), "5432");
    assert_eq!(read(root.path(), &requests[2]), "p");

    // Kubernetes in a pod: the data key from the kubelet's volume, the field selected inside.
    let volumes = home.path().join("volumes");
    kubelet_volume(
        &volumes,
        "app-creds",
        &[("creds.json", br#"{"user": "u1", "roles": ["r"]}"#)],
    );
    let owned = volume_env(&volumes);
    let env = pairs(&owned);
    let k8s = vec![Backend::Kubernetes(KubernetesBackend::default())];
    // A field inside the data key; then, separately (one path cannot be both a file and a
    // directory), the whole data key through a one-member pointer.
    let fields = [
        SecretRequest::new("app-creds", "/creds.json/user"),
        SecretRequest::new("app-creds", "/creds.json/roles"),
    ];
    let whole = [SecretRequest::new("app-creds", "/creds.json")];
    for (requests, want) in [
        (&fields[..], &["u1", r#"["r"]"#][..]),
        (&whole[..], &[r#"{"user": "u1", "roles": ["r"]}"#][..]),
    ] {
        let root = tempfile::tempdir().unwrap();
        let p = plan(k8s.clone(), None, requests);
        let (out, _) = init(home.path(), &p, root.path(), &env);
        assert_ok(&out);
        let got: Vec<String> = requests.iter().map(|r| read(root.path(), r)).collect();
        assert_eq!(got, want);
    }
}

/// A field that is not there fails that secret with its own message (never "not found" or a
/// permission problem, never the value), and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_field_is_its_own_error_and_shows_no_value() {
    let s = Servers::load();
    let name = unique("json");
    let canary = canary();
    aws_admin(&s)
        .create_secret()
        .name(&name)
        .secret_string(DOC.replace("CANARY", &canary))
        .send()
        .await
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    for (key, want) in [
        ("/password", format!("field /password not in secret {name}")),
        (
            "/port/x",
            format!("field /port/x not in secret {name}: /port is a number"),
        ),
        (
            "/pass-word.v2/x",
            "is a string that is not a JSON object".to_string(),
        ),
        (
            "/hosts/9",
            format!("field /hosts/9 not in secret {name} (/hosts has no member \"9\")"),
        ),
    ] {
        let root = tempfile::tempdir().unwrap();
        let p = plan(aws(&s), None, &[SecretRequest::new(&name, key)]);
        let (out, termination) = init(home.path(), &p, root.path(), &[]);
        assert_eq!(out.status.code(), Some(1), "{key}: {}", printed(&out));
        let summary = std::fs::read_to_string(&termination).unwrap();
        assert!(summary.contains(&want), "{key}: {summary}");
        assert!(
            !summary.contains("not found") && !summary.contains("403"),
            "{summary}"
        );
        assert!(
            listing(root.path()).is_empty(),
            "{key}: something was written"
        );
        assert_no_leak(&out, &termination, &canary);
    }
}
