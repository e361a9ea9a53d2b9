//! `agent secrets` against the Kubernetes API stand-in: the exact Secret Flyte 2's
//! SecretService writes (md5 name, single encoded data key, labels, Opaque), Flyte's scoped-name
//! vectors reproduced through the command, secrets Flyte wrote read and managed by us, the
//! lifecycle (AlreadyExists, update, idempotent delete), Flyte's list filtering, and the
//! end-to-end case: a pod in `<project>-<domain>` receives the domain-scoped secret, then the
//! project-scoped one once it exists.

use std::collections::BTreeMap;

use crate::common::*;
use crate::manage_support::*;
use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::scoped::{LABEL_DOMAIN, LABEL_MANAGED, LABEL_PROJECT, k8s_secret_name};
use flyte_secret_spec::{Backend, Scope, SecretRequest};
use flyte_secret_testkit::kube::StandIn;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

async fn secrets_api(standin: &StandIn) -> Api<Secret> {
    Api::namespaced(
        standin.client(standin.admin_token()).await.unwrap(),
        "flyte",
    )
}

async fn stored(standin: &StandIn, scope: &Scope, name: &str) -> Secret {
    let id = scope.encode_name(name);
    secrets_api(standin)
        .await
        .get(&k8s_secret_name(&id))
        .await
        .unwrap()
}

async fn stored_value(standin: &StandIn, scope: &Scope, name: &str) -> Vec<u8> {
    let id = scope.encode_name(name);
    stored(standin, scope, name).await.data.unwrap()[&id]
        .0
        .clone()
}

fn target(standin: &StandIn, home: &std::path::Path) -> Target {
    Target::kube(home, &standin.kubeconfig_yaml(standin.admin_token()))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_writes_exactly_the_secret_flyte_writes() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let value = canary();
    let scope = Scope::new("development", "flytesnacks");
    let out = t.create(
        home.path(),
        "API_KEY",
        value.as_bytes(),
        &["--domain", "development", "--project", "flytesnacks"],
    );
    assert_ok(&out);
    assert_silent(&out, &[&value]);
    let id = scope.encode_name("API_KEY");
    let name = k8s_secret_name(&id);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "created secret API_KEY (project flytesnacks in domain development) in kubernetes (Secret flyte/{name})"
        )),
        "{}",
        printed(&out)
    );
    let s = stored(&standin, &scope, "API_KEY").await;
    assert_eq!(s.metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(s.metadata.namespace.as_deref(), Some("flyte"));
    assert_eq!(
        s.metadata.labels.clone().unwrap(),
        labels(&[
            (LABEL_MANAGED, "true"),
            (LABEL_DOMAIN, "development"),
            (LABEL_PROJECT, "flytesnacks"),
        ])
    );
    assert!(
        s.metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .is_empty(),
        "a generic secret carries no annotation: {:?}",
        s.metadata.annotations
    );
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let data = s.data.clone().unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        [&id],
        "one data key, the id"
    );
    assert_eq!(data[&id].0, value.as_bytes());
    // One POST into the managed namespace, nothing else written.
    let writes: Vec<_> = standin
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "POST");
    assert_eq!(
        writes[0].path.trim_end_matches('?'),
        "/api/v1/namespaces/flyte/secrets"
    );

    // Org-wide, binary, from a file: only the managed label; the exact bytes.
    let binary: Vec<u8> = vec![0, 0xff, 0xfe, b'\n', 0x80, 0];
    let file = home.path().join("cert.der");
    std::fs::write(&file, &binary).unwrap();
    let out = t.run(
        home.path(),
        &["create", "CERT", "--from-file", file.to_str().unwrap()],
        None,
    );
    assert_ok(&out);
    let org = Scope::new("", "");
    let s = stored(&standin, &org, "CERT").await;
    assert_eq!(
        s.metadata.labels.clone().unwrap(),
        labels(&[(LABEL_MANAGED, "true")])
    );
    assert_eq!(stored_value(&standin, &org, "CERT").await, binary);

    // Domain-wide: managed + domain labels.
    let out = t.create(home.path(), "DB", b"x", &["--domain", "production"]);
    assert_ok(&out);
    let s = stored(&standin, &Scope::new("production", ""), "DB").await;
    assert_eq!(
        s.metadata.labels.unwrap(),
        labels(&[(LABEL_MANAGED, "true"), (LABEL_DOMAIN, "production")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flytes_scoped_name_vectors_are_reproduced_through_the_command() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let api = secrets_api(&standin).await;
    let vectors = scoped_name_vectors();
    assert!(vectors.len() >= 4, "{vectors:?}");
    for v in vectors {
        let field = |k: &str| v[k].as_str().unwrap().to_string();
        let (org, domain, project, name) = (
            field("org"),
            field("domain"),
            field("project"),
            field("name"),
        );
        let (encoded, k8s_name) = (field("encoded"), field("k8s_secret_name"));
        let mut scope = scope_flags(&domain, &project);
        scope.extend(["--org", &org]);
        let out = t.create(home.path(), &name, b"vector-value", &scope);
        assert_ok(&out);
        let s = api
            .get(&k8s_name)
            .await
            .unwrap_or_else(|e| panic!("no Secret flyte/{k8s_name} for {encoded}: {e}"));
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), [&encoded]);
        let got = t.get_json(home.path(), &name, &scope);
        assert_eq!(got["id"], encoded.as_str());
        assert_eq!(got["location"], format!("Secret flyte/{k8s_name}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_already_exists_update_get_and_idempotent_delete() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let scope = Scope::new("development", "");
    let flags = ["--domain", "development"];
    let values: Vec<String> = (0..5).map(|i| format!("{}-{i}", canary())).collect();
    let all: Vec<&str> = values.iter().map(String::as_str).collect();
    let mut outs = Vec::new();

    let out = t.create(home.path(), "TOKEN", values[0].as_bytes(), &flags);
    assert_ok(&out);
    outs.push(out);

    // Create again: AlreadyExists, exit 1, a clear message; the value is untouched.
    let out = t.run(
        home.path(),
        &["create", "TOKEN", &values[1], "--domain", "development"],
        None,
    );
    assert_code(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret TOKEN (domain development) already exists in kubernetes"),
        "{err}"
    );
    assert!(err.contains("agent secrets update"), "{err}");
    assert!(
        err.contains("prefer --from-file or --from-stdin"),
        "a value on argv is warned about: {err}"
    );
    assert_eq!(
        stored_value(&standin, &scope, "TOKEN").await,
        values[0].as_bytes()
    );
    outs.push(out);

    // create --update replaces; so does update (from stdin, and `-`).
    let file = home.path().join("v");
    std::fs::write(&file, &values[2]).unwrap();
    let out = t.run(
        home.path(),
        &[
            "create",
            "TOKEN",
            "--update",
            "--from-file",
            file.to_str().unwrap(),
            "--domain",
            "development",
        ],
        None,
    );
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("updated secret TOKEN"));
    assert_eq!(
        stored_value(&standin, &scope, "TOKEN").await,
        values[2].as_bytes()
    );
    outs.push(out);
    let out = t.run(
        home.path(),
        &["update", "TOKEN", "--from-stdin", "--domain", "development"],
        Some(values[3].as_bytes()),
    );
    assert_ok(&out);
    assert_eq!(
        stored_value(&standin, &scope, "TOKEN").await,
        values[3].as_bytes()
    );
    outs.push(out);
    let out = t.run(
        home.path(),
        &["update", "TOKEN", "-", "--domain", "development"],
        Some(values[4].as_bytes()),
    );
    assert_ok(&out);
    let s = stored(&standin, &scope, "TOKEN").await;
    assert_eq!(s.data.as_ref().unwrap().len(), 1, "still one key");
    assert_eq!(
        s.metadata.labels.unwrap(),
        labels(&[(LABEL_MANAGED, "true"), (LABEL_DOMAIN, "development")])
    );
    assert_eq!(
        stored_value(&standin, &scope, "TOKEN").await,
        values[4].as_bytes()
    );
    outs.push(out);

    // Update of an absent secret: NotFound, exit 1.
    let out = t.run(
        home.path(),
        &["update", "NOPE", "-", "--domain", "development"],
        Some(b"x"),
    );
    assert_code(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("secret NOPE (domain development) does not exist in kubernetes"),
        "{}",
        printed(&out)
    );

    // get: metadata only, as a table and as JSON.
    let out = t.run(
        home.path(),
        &["get", "TOKEN", "--domain", "development"],
        None,
    );
    assert_ok(&out);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("NAME   ORG    DOMAIN       PROJECT  TYPE     CREATED"),
        "{table}"
    );
    assert!(
        table.contains("TOKEN  flyte  development  -        generic  "),
        "{table}"
    );
    outs.push(out);
    let got = t.get_json(home.path(), "TOKEN", &flags);
    assert_eq!(got["name"], "TOKEN");
    assert_eq!(got["scope"], "domain");
    assert_eq!(got["type"], "generic");
    assert_eq!(got["store"], "kubernetes");
    assert!(got["created"].as_str().unwrap().starts_with("20"), "{got}");
    assert!(got.get("value").is_none());
    // A different scope is a different secret.
    let out = t.run(home.path(), &["get", "TOKEN"], None);
    assert_code(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("secret TOKEN (org flyte) not found in kubernetes"),
        "{}",
        printed(&out)
    );

    // delete, then delete again: exit 0 both times, the second says nothing was there.
    let out = t.run(home.path(), &["delete", "TOKEN", "-d", "development"], None);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("deleted secret TOKEN (domain development) from kubernetes"),
        "{}",
        printed(&out)
    );
    let out = t.run(home.path(), &["delete", "TOKEN", "-d", "development"], None);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("does not exist in kubernetes")
            && String::from_utf8_lossy(&out.stdout).contains("nothing to delete"),
        "{}",
        printed(&out)
    );
    let out = t.run(home.path(), &["get", "TOKEN", "-d", "development"], None);
    assert_code(&out, 1);
    for out in &outs {
        assert_silent(out, &all);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_like_flytes_label_selectors() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let value = canary();
    for (name, d, p) in [
        ("ORG_WIDE", "", ""),
        ("DEV", "development", ""),
        ("DEV_P", "development", "p"),
        ("PROD", "production", ""),
        ("PROD_P", "production", "p"),
    ] {
        assert_ok(&t.create(home.path(), name, value.as_bytes(), &scope_flags(d, p)));
    }
    // Skipped like Flyte skips them: two data keys; an undecodable key; no managed label.
    let api = secrets_api(&standin).await;
    let odd = |name: &str, keys: &[&str], managed: bool| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: managed.then(|| labels(&[(LABEL_MANAGED, "true")])),
            ..Default::default()
        },
        data: Some(
            keys.iter()
                .map(|k| (k.to_string(), ByteString(b"v".to_vec())))
                .collect(),
        ),
        ..Default::default()
    };
    let two = Scope::new("", "").encode_name("TWO");
    for s in [
        odd("two-keys", &[&two, "extra"], true),
        odd("plain", &["password"], true),
        odd(
            "unlabelled",
            &[&Scope::new("", "").encode_name("HIDDEN")],
            false,
        ),
    ] {
        api.create(&PostParams::default(), &s).await.unwrap();
    }
    let names = |filter: &[&str]| {
        let mut v: Vec<String> = t
            .list(home.path(), filter)
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&[]),
        ["DEV", "DEV_P", "ORG_WIDE", "PROD", "PROD_P"],
        "no filter: every managed secret"
    );
    assert_eq!(
        names(&["--domain", "development"]),
        ["DEV", "DEV_P"],
        "a domain filter also returns that domain's project secrets, never org-wide ones"
    );
    assert_eq!(names(&["-d", "development", "-p", "p"]), ["DEV_P"]);
    assert_eq!(names(&["--project", "p"]), ["DEV_P", "PROD_P"]);
    assert!(names(&["--org", "acme"]).is_empty());
    // Table output: one row per secret; an empty result says so on stderr.
    let out = t.run(home.path(), &["list", "-d", "production"], None);
    assert_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.contains("PROD_P  flyte  production  p "), "{text}");
    assert_silent(&out, &[&value]);
    let out = t.run(home.path(), &["list", "-d", "staging"], None);
    assert_ok(&out);
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no managed secrets in kubernetes match (org flyte, domain staging)")
    );
    // The domain filter went to the API server as a label selector.
    assert!(
        standin.requests().iter().any(|r| r.method == "GET"
            && r.path.starts_with("/api/v1/namespaces/flyte/secrets?")
            && r.path.contains("app.flyte.org%2Fdomain%3Dproduction")),
        "{:?}",
        standin.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_flyte_wrote_are_read_updated_and_deleted() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    // What Flyte's SecretService `buildK8sSecret` sends for a string value.
    let scope = Scope::new("staging", "");
    let id = scope.encode_name("FLYTE_MADE");
    let flyte_secret = Secret {
        metadata: ObjectMeta {
            name: Some(k8s_secret_name(&id)),
            namespace: Some("flyte".into()),
            labels: Some(labels(&[
                (LABEL_MANAGED, "true"),
                (LABEL_DOMAIN, "staging"),
            ])),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([(id.clone(), "from-flyte".to_string())])),
        ..Default::default()
    };
    secrets_api(&standin)
        .await
        .create(&PostParams::default(), &flyte_secret)
        .await
        .unwrap();
    let got = t.get_json(home.path(), "FLYTE_MADE", &["-d", "staging"]);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(
        t.list(home.path(), &["-d", "staging"]),
        [(
            "FLYTE_MADE".to_string(),
            "staging".to_string(),
            String::new()
        )]
    );
    assert_ok(&t.run(
        home.path(),
        &["update", "FLYTE_MADE", "-", "-d", "staging"],
        Some(b"from-us"),
    ));
    assert_eq!(
        stored_value(&standin, &scope, "FLYTE_MADE").await,
        b"from-us"
    );
    assert_ok(&t.run(
        home.path(),
        &["delete", "FLYTE_MADE", "-d", "staging"],
        None,
    ));
    assert!(
        secrets_api(&standin)
            .await
            .get_opt(&k8s_secret_name(&id))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_pull_secrets_are_org_wide_and_typed() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let config = br#"{"auths":{"registry.example.com":{"auth":"dXNlcjpwYXNz"}}}"#;
    let out = t.run(
        home.path(),
        &["create", "REGISTRY", "--type", "image-pull", "--from-stdin"],
        Some(config),
    );
    assert_ok(&out);
    let org = Scope::new("", "");
    let s = stored(&standin, &org, "REGISTRY").await;
    assert_eq!(
        s.metadata.annotations.unwrap()["app.flyte.org/secret-type"],
        "image-pull"
    );
    assert_eq!(s.type_.as_deref(), Some("Opaque"), "Flyte ignores the type");
    assert_eq!(
        t.get_json(home.path(), "REGISTRY", &[])["type"],
        "image-pull"
    );
    // Update keeps the type unless told otherwise.
    assert_ok(&t.run(home.path(), &["update", "REGISTRY", "-"], Some(config)));
    assert_eq!(
        t.get_json(home.path(), "REGISTRY", &[])["type"],
        "image-pull"
    );
    assert_ok(&t.run(
        home.path(),
        &["update", "REGISTRY", "-", "--type", "generic"],
        Some(config),
    ));
    assert_eq!(t.get_json(home.path(), "REGISTRY", &[])["type"], "generic");
    // Not at domain scope.
    let out = t.run(
        home.path(),
        &[
            "create",
            "REG2",
            "-",
            "--type",
            "image-pull",
            "-d",
            "development",
        ],
        Some(config),
    );
    assert_code(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("image-pull secrets are org-wide only"));
}
/// Reads the group-less `name` as a task of `project` in `domain` would be served it, with
/// `agent fetch --kubeconfig` (API mode, the same scope search; in a pod the broker serves
/// these, covered by the e2e suite); returns what it wrote.
fn pod_receives(
    home: &std::path::Path,
    kubeconfig: &std::path::Path,
    project: &str,
    domain: &str,
    name: &str,
    canaries: &[&str],
) -> Vec<u8> {
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        vec![Backend::Kubernetes(KubernetesBackend::default())],
        Some(Scope::new(domain, project)),
        &[SecretRequest::new("", name)],
    );
    let (out, termination) = fetch_api(home, &p, root.path(), kubeconfig);
    assert_ok(&out);
    for c in canaries {
        assert_no_leak(&out, &termination, c);
    }
    std::fs::read(root.path().join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_receives_the_domain_secret_then_the_more_specific_project_one() {
    let standin = StandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let kc = kubeconfig(
        &standin,
        home.path(),
        standin.admin_token(),
        "proj-development",
    );
    let domain_value = format!("{}-domain", canary());
    let project_value = format!("{}-project", canary());
    let canaries = [domain_value.as_str(), project_value.as_str()];

    let out = t.create(
        home.path(),
        "API_KEY",
        domain_value.as_bytes(),
        &["--domain", "development"],
    );
    assert_ok(&out);
    assert_silent(&out, &canaries);
    assert_eq!(
        pod_receives(
            home.path(),
            &kc,
            "proj",
            "development",
            "API_KEY",
            &canaries
        ),
        domain_value.as_bytes()
    );

    let out = t.create(
        home.path(),
        "API_KEY",
        project_value.as_bytes(),
        &["--domain", "development", "--project", "proj"],
    );
    assert_ok(&out);
    assert_silent(&out, &canaries);
    assert_eq!(
        pod_receives(
            home.path(),
            &kc,
            "proj",
            "development",
            "API_KEY",
            &canaries
        ),
        project_value.as_bytes(),
        "the project+domain secret shadows the domain one"
    );
    // Another project in the domain still gets the domain value.
    assert_eq!(
        pod_receives(
            home.path(),
            &kc,
            "other",
            "development",
            "API_KEY",
            &canaries
        ),
        domain_value.as_bytes()
    );
    // Deleting the project secret uncovers the domain one again.
    assert_ok(&t.run(
        home.path(),
        &["delete", "API_KEY", "-d", "development", "-p", "proj"],
        None,
    ));
    assert_eq!(
        pod_receives(
            home.path(),
            &kc,
            "proj",
            "development",
            "API_KEY",
            &canaries
        ),
        domain_value.as_bytes()
    );
}
