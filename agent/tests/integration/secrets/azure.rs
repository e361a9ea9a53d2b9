//! `agent secrets --store azure` against the Azure stand-in (`testkit::azure`, HTTPS Key Vault
//! with soft delete and purge, Entra ID with Workload Identity's federated token): the secret
//! is Flyte's `EncodeAzureSecretName(id)` holding `{"type":0|1,"value":…}`, tags; AlreadyExists,
//! update as a new version, delete (soft delete then purge, retried while Key Vault is still
//! deleting) and create again right after, list filtering; and the round trip through `agent
//! init` (Flyte 2's scoped lookup).

use std::path::Path;

use crate::common::*;
use crate::manage_support::*;
use flyte_secret_spec::backend::{AzureBackend, azure_managed_name};
use flyte_secret_spec::{Backend, Scope, SecretRequest};
use flyte_secret_testkit::azure::{AzureStandIn, CLIENT_ID, TENANT};
use serde_json::{Value, json};

/// Workload Identity's env, as the Azure Workload Identity webhook injects it.
fn identity(standin: &AzureStandIn, home: &Path) -> Vec<(String, String)> {
    vec![
        ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        (
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            standin.federated_token_file(home).display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST".into(), format!("{}/", standin.url())),
    ]
}

fn target(standin: &AzureStandIn, home: &Path) -> Target {
    let mut env = identity(standin, home);
    env.push((
        "FLYTE_SECRET_AZURE_VAULT_URL".into(),
        standin.url().to_string(),
    ));
    env.push((
        "FLYTE_SECRET_AZURE_CA_FILE".into(),
        standin.ca_file(home).display().to_string(),
    ));
    Target {
        flags: vec!["--store".into(), "azure".into()],
        env,
    }
}

fn stored(standin: &AzureStandIn, name: &str) -> Value {
    serde_json::from_str(&standin.current(name).expect("stored")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_lifecycle_and_list_filtering() {
    let standin = AzureStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let value = canary();
    let name = azure_managed_name("flyte", "development", "flytesnacks", "TOKEN");
    let flags = ["-d", "development", "-p", "flytesnacks"];

    let out = t.create(home.path(), "TOKEN", value.as_bytes(), &flags);
    assert_ok(&out);
    assert_silent(&out, &[&value]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("in azure ({}/secrets/{name})", standin.url())),
        "{}",
        printed(&out)
    );
    assert_eq!(stored(&standin, &name), json!({"type": 0, "value": value}));
    let (tags, content_type) = standin.tags(&name).unwrap();
    assert_eq!(content_type, "application/json");
    assert_eq!(
        tags,
        json!({"flyte-managed": "true", "flyte-domain": "development",
               "flyte-project": "flytesnacks", "flyte-secret-type": "generic"})
    );

    // AlreadyExists, exit 1, value untouched.
    let out = t.create(home.path(), "TOKEN", b"other", &flags);
    assert_code(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists in azure"),
        "{}",
        printed(&out)
    );
    assert_eq!(stored(&standin, &name)["value"], value.as_str());

    // Update with a binary value from a file: type 1, base64 of the exact bytes.
    let binary = vec![0u8, 0xff, 0xfe, b'\n', 0x80];
    let file = home.path().join("bin");
    std::fs::write(&file, &binary).unwrap();
    let mut args = vec!["update", "TOKEN", "--from-file", file.to_str().unwrap()];
    args.extend(flags);
    assert_ok(&t.run(home.path(), &args, None));
    assert_eq!(
        stored(&standin, &name),
        json!({"type": 1, "value": "AP/+CoA="})
    );
    let out = t.run(
        home.path(),
        &["update", "NOPE", "--from-stdin", "-d", "development"],
        Some(b"x"),
    );
    assert_code(&out, 1);

    // get: metadata only.
    let got = t.get_json(home.path(), "TOKEN", &flags);
    assert_eq!(got["store"], "azure");
    assert_eq!(got["scope"], "project");
    assert_eq!(got["type"], "generic");
    assert!(
        got["created"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{got}"
    );
    assert!(!got.to_string().contains("AP/+CoA="), "{got}");

    // list: more than a page (25), a domain filter, untagged secrets skipped.
    assert_ok(&t.create(home.path(), "ORG_WIDE", b"o", &[]));
    assert_ok(&t.create(home.path(), "DOMAIN_ONE", b"d", &["-d", "development"]));
    for i in 0..25 {
        standin.set(&format!("unrelated-{i}"), "x");
    }
    let listed = t.list(home.path(), &["-d", "development"]);
    assert_eq!(
        listed,
        vec![
            ("DOMAIN_ONE".into(), "development".into(), String::new()),
            ("TOKEN".into(), "development".into(), "flytesnacks".into()),
        ]
    );
    assert_eq!(t.list(home.path(), &[]).len(), 3);

    // delete: soft delete, then purge (Key Vault still deleting answers 409 first); delete
    // again (nothing to delete); create again right after — the name is free.
    let mut args = vec!["delete", "TOKEN"];
    args.extend(flags);
    let out = t.run(home.path(), &args, None);
    assert_ok(&out);
    assert!(!printed(&out).contains("warning"), "{}", printed(&out));
    assert!(standin.current(&name).is_none());
    assert!(!standin.is_soft_deleted(&name));
    let out = t.run(home.path(), &args, None);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to delete"),
        "{}",
        printed(&out)
    );
    assert_ok(&t.create(home.path(), "TOKEN", value.as_bytes(), &flags));
    assert_eq!(stored(&standin, &name)["value"], value.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_receives_the_domain_secret_then_the_more_specific_project_one() {
    let standin = AzureStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let name = "API_KEY";
    let domain_value = format!("{}-domain", canary());
    let project_value = format!("{}-project", canary());
    let backends = vec![Backend::Azure(AzureBackend {
        vault_url: Some(standin.url().to_string()),
        ca_cert_file: Some(standin.ca_file(home.path()).display().to_string()),
    })];
    let env = identity(&standin, home.path());
    let receive = || {
        let root = tempfile::tempdir().unwrap();
        let p = plan(
            backends.clone(),
            Some(Scope::new("development", "proj")),
            &[SecretRequest::new("", name)],
        );
        let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (out, termination) = init(home.path(), &p, root.path(), &extra);
        assert_ok(&out);
        assert_no_leak(&out, &termination, &domain_value);
        assert_no_leak(&out, &termination, &project_value);
        std::fs::read(root.path().join(name)).unwrap()
    };

    let out = t.create(
        home.path(),
        name,
        domain_value.as_bytes(),
        &["-d", "development"],
    );
    assert_ok(&out);
    assert_eq!(receive(), domain_value.as_bytes());
    let out = t.create(
        home.path(),
        name,
        project_value.as_bytes(),
        &["-d", "development", "-p", "proj"],
    );
    assert_ok(&out);
    assert_silent(&out, &[&domain_value, &project_value]);
    assert_eq!(receive(), project_value.as_bytes());
}
