//! `agent secrets --store gcp` against the Google Cloud stand-in (`testkit::gcp`, HTTPS Secret
//! Manager admin and access calls, OAuth with a service-account key): the secret is
//! `projects/<project>/secrets/<encoded id>` with the payload bytes exactly, Google-valid
//! labels; AlreadyExists, update as a new version, idempotent delete (and create again right
//! after), list filtering; and the round trip through `agent init` (Flyte 2's scoped lookup at
//! `versions/latest`).

use std::path::Path;

use crate::common::*;
use crate::manage_support::*;
use flyte_secret_spec::backend::GcpBackend;
use flyte_secret_spec::{Backend, Scope, SecretRequest};
use flyte_secret_testkit::gcp::{GcpStandIn, PROJECT};

fn target(standin: &GcpStandIn, home: &Path) -> Target {
    let key = standin.service_account_key(home);
    Target {
        flags: vec!["--store".into(), "gcp".into()],
        env: vec![
            ("FLYTE_SECRET_GCP_PROJECT".into(), PROJECT.into()),
            ("FLYTE_SECRET_GCP_ENDPOINT".into(), standin.api.url.clone()),
            (
                "FLYTE_SECRET_GCP_CA_FILE".into(),
                standin.ca_file(home).display().to_string(),
            ),
            (
                "FLYTE_SECRET_GCP_CREDENTIALS_FILE".into(),
                key.display().to_string(),
            ),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_lifecycle_and_list_filtering() {
    let standin = GcpStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let value = canary();
    let id = Scope::new("development", "flytesnacks").encode_name("TOKEN");
    let flags = ["-d", "development", "-p", "flytesnacks"];

    let out = t.create(home.path(), "TOKEN", value.as_bytes(), &flags);
    assert_ok(&out);
    assert_silent(&out, &[&value]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("in gcp (projects/{PROJECT}/secrets/{id})")),
        "{}",
        printed(&out)
    );
    assert_eq!(standin.versions(&id), vec![value.as_bytes().to_vec()]);
    let labels = standin.labels(&id).unwrap();
    assert_eq!(labels["flyte-managed"], "true");
    assert_eq!(labels["flyte-domain"], "development");
    assert_eq!(labels["flyte-project"], "flytesnacks");
    assert_eq!(labels["flyte-secret-type"], "generic");

    // AlreadyExists, exit 1, no new version.
    let out = t.create(home.path(), "TOKEN", b"other", &flags);
    assert_code(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists in gcp"),
        "{}",
        printed(&out)
    );
    assert_eq!(standin.versions(&id).len(), 1);

    // Update with a binary value from a file: a new version, exact bytes.
    let binary = vec![0u8, 0xff, 0xfe, b'\n', 0x80];
    let file = home.path().join("bin");
    std::fs::write(&file, &binary).unwrap();
    let mut args = vec!["update", "TOKEN", "--from-file", file.to_str().unwrap()];
    args.extend(flags);
    assert_ok(&t.run(home.path(), &args, None));
    assert_eq!(standin.versions(&id).last().unwrap(), &binary);
    // `update` of an absent secret: exit 1.
    let out = t.run(
        home.path(),
        &["update", "NOPE", "--from-stdin", "-d", "development"],
        Some(b"x"),
    );
    assert_code(&out, 1);

    // get: metadata only.
    let got = t.get_json(home.path(), "TOKEN", &flags);
    assert_eq!(got["store"], "gcp");
    assert_eq!(got["scope"], "project");
    assert_eq!(got["type"], "generic");
    assert_eq!(got["id"], id.as_str());
    assert!(
        got["created"].as_str().is_some_and(|c| c.ends_with('Z')),
        "{got}"
    );

    // list: a domain filter returns the domain's and its projects' secrets, not the org's.
    assert_ok(&t.create(home.path(), "ORG_WIDE", b"o", &[]));
    assert_ok(&t.create(home.path(), "DOMAIN_ONE", b"d", &["-d", "development"]));
    assert_ok(&t.create(home.path(), "OTHER", b"p", &["-d", "production"]));
    standin.add_version("not-a-flyte-secret", b"x");
    let listed = t.list(home.path(), &["-d", "development"]);
    assert_eq!(
        listed,
        vec![
            ("DOMAIN_ONE".into(), "development".into(), String::new()),
            ("TOKEN".into(), "development".into(), "flytesnacks".into()),
        ]
    );
    assert_eq!(t.list(home.path(), &[]).len(), 4);

    // delete, delete again (nothing to delete), create again right after.
    let mut args = vec!["delete", "TOKEN"];
    args.extend(flags);
    assert_ok(&t.run(home.path(), &args, None));
    assert!(standin.versions(&id).is_empty());
    let out = t.run(home.path(), &args, None);
    assert_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to delete"),
        "{}",
        printed(&out)
    );
    assert_ok(&t.create(home.path(), "TOKEN", value.as_bytes(), &flags));
    assert_eq!(standin.versions(&id), vec![value.as_bytes().to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_receives_the_domain_secret_then_the_more_specific_project_one() {
    let standin = GcpStandIn::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let t = target(&standin, home.path());
    let name = "API_KEY";
    let domain_value = format!("{}-domain", canary());
    let project_value = format!("{}-project", canary());
    let key = standin.service_account_key(home.path());
    let backends = vec![Backend::Gcp(GcpBackend {
        project: Some(PROJECT.into()),
        endpoint: Some(standin.api.url.clone()),
        credentials_file: Some(key.display().to_string()),
        ca_cert_file: Some(standin.ca_file(home.path()).display().to_string()),
    })];
    let receive = || {
        let root = tempfile::tempdir().unwrap();
        let p = plan(
            backends.clone(),
            Some(Scope::new("development", "proj")),
            &[SecretRequest::new("", name)],
        );
        let (out, termination) = init(home.path(), &p, root.path(), &[]);
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
