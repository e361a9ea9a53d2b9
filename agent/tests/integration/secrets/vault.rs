//! `agent secrets --store vault` against OpenBao (started by `scripts/servers.sh`): KV v2 at
//! `secret/data/<encoded id>` field `value`, binary values as base64 with `encoding: base64`
//! (delivered byte for byte by `agent init`), custom metadata mirroring the labels,
//! AlreadyExists through `cas=0`, update, idempotent delete, list filtering; and the
//! end-to-end case through `agent init`.

use std::collections::HashMap;

use crate::common::*;
use crate::manage_support::*;
use flyte_secret_spec::{Backend, Scope, SecretRequest};
use flyte_secret_testkit::servers::Servers;
use vaultrs::client::VaultClient;

fn root_client(s: &Servers) -> VaultClient {
    vault_admin(s)
}

fn target(s: &Servers) -> Target {
    Target::vault(&s.vault.addr, &s.vault.token)
}

fn backends(s: &Servers) -> Vec<Backend> {
    vec![Backend::Vault(vault_token_backend(&s.vault.addr))]
}

/// `agent init` for a pod of `project` in `domain` asking for `name`: what it wrote (and no
/// value of `canaries` in its output).
fn pod_receives(
    s: &Servers,
    home: &std::path::Path,
    (domain, project): (&str, &str),
    name: &str,
    canaries: &[&str],
) -> Vec<u8> {
    let root = tempfile::tempdir().unwrap();
    let p = plan(
        backends(s),
        Some(Scope::new(domain, project)),
        &[SecretRequest::new("", name)],
    );
    let (out, termination) = init(
        home,
        &p,
        root.path(),
        &[("VAULT_TOKEN", s.vault.token.as_str())],
    );
    assert_ok(&out);
    for c in canaries {
        assert_no_leak(&out, &termination, c);
    }
    std::fs::read(root.path().join(name)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_binary_values_lifecycle_and_list_filtering() {
    let s = Servers::load();
    let c = root_client(&s);
    let t = target(&s);
    let home = tempfile::tempdir().unwrap();
    let domain = unique("dev");
    let flags = ["--domain", domain.as_str()];
    let value = canary();
    let id = Scope::new(&domain, "").encode_name("TOKEN");

    let out = t.create(home.path(), "TOKEN", value.as_bytes(), &flags);
    assert_ok(&out);
    assert_silent(&out, &[&value]);
    let data: HashMap<String, String> = vaultrs::kv2::read(&c, "secret", &id).await.unwrap();
    assert_eq!(data, HashMap::from([("value".to_string(), value.clone())]));
    let meta = vaultrs::kv2::read_metadata(&c, "secret", &id)
        .await
        .unwrap();
    let custom = meta.custom_metadata.unwrap();
    assert_eq!(custom["app.flyte.org/managed"], "true");
    assert_eq!(custom["app.flyte.org/domain"], domain);
    assert_eq!(custom["app.flyte.org/secret-type"], "generic");
    assert!(!custom.contains_key("app.flyte.org/project"));

    // AlreadyExists (cas=0), exit 1, value untouched.
    let out = t.create(home.path(), "TOKEN", b"other", &flags);
    assert_code(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "secret TOKEN (domain {domain}) already exists in vault (secret/data/{id})"
        )),
        "{}",
        printed(&out)
    );
    let data: HashMap<String, String> = vaultrs::kv2::read(&c, "secret", &id).await.unwrap();
    assert_eq!(data["value"], value);

    // A binary value: base64 with an encoding marker, delivered byte for byte by the agent.
    let binary = vec![0u8, 0xff, 0xfe, b'\n', 0x80, 0];
    let out = t.run(
        home.path(),
        &["update", "TOKEN", "--from-stdin", "-d", &domain],
        Some(&binary),
    );
    assert_ok(&out);
    let data: HashMap<String, String> = vaultrs::kv2::read(&c, "secret", &id).await.unwrap();
    assert_eq!(data["encoding"], "base64");
    assert_eq!(data["value"], "AP/+CoAA");
    assert_eq!(
        pod_receives(&s, home.path(), (&domain, "any"), "TOKEN", &[]),
        binary
    );
    let got = t.get_json(home.path(), "TOKEN", &flags);
    assert_eq!(got["location"], format!("secret/data/{id}"));
    assert_eq!(got["store"], "vault");
    assert!(
        got["updated"].as_str().unwrap() > got["created"].as_str().unwrap(),
        "updated is the current version's time: {got}"
    );

    let out = t.run(
        home.path(),
        &["update", "NOPE", "-", "-d", &domain],
        Some(b"x"),
    );
    assert_code(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist in vault"));

    // List: domain filter = the domain's and its projects' secrets.
    let org_name = unique("ORG").replace('-', "_");
    assert_ok(&t.create(home.path(), "TOKEN", b"p", &["-d", &domain, "-p", "p"]));
    assert_ok(&t.create(home.path(), &org_name, b"o", &[]));
    assert_eq!(
        t.list(home.path(), &["--domain", &domain]),
        [
            ("TOKEN".to_string(), domain.clone(), String::new()),
            ("TOKEN".to_string(), domain.clone(), "p".to_string()),
        ]
    );
    assert_eq!(
        t.list(home.path(), &["-d", &domain, "-p", "p"]),
        [("TOKEN".to_string(), domain.clone(), "p".to_string())]
    );
    let everything = t.list(home.path(), &[]);
    assert!(everything.contains(&(org_name.clone(), String::new(), String::new())));
    assert!(
        !everything.iter().any(|(n, _, _)| n.starts_with("app-")),
        "unmanaged kv2 keys are not listed: {everything:?}"
    );

    // Delete removes every version; again is a no-op; the name is free for cas=0 again.
    let out = t.run(home.path(), &["delete", "TOKEN", "-d", &domain], None);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deleted secret TOKEN"));
    assert!(
        vaultrs::kv2::read_metadata(&c, "secret", &id)
            .await
            .is_err()
    );
    let out = t.run(home.path(), &["delete", "TOKEN", "-d", &domain], None);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to delete"));
    assert_code(
        &t.run(home.path(), &["get", "TOKEN", "-d", &domain], None),
        1,
    );
    assert_ok(&t.create(home.path(), "TOKEN", b"again", &flags));
    for args in [
        vec!["delete", "TOKEN", "-d", domain.as_str()],
        vec!["delete", "TOKEN", "-d", domain.as_str(), "-p", "p"],
        vec!["delete", org_name.as_str()],
    ] {
        assert_ok(&t.run(home.path(), &args, None));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_receives_the_domain_secret_then_the_more_specific_project_one() {
    let s = Servers::load();
    let t = target(&s);
    let home = tempfile::tempdir().unwrap();
    let domain = unique("dev");
    let name = "API_KEY";
    let domain_value = format!("{}-domain", canary());
    let project_value = format!("{}-project", canary());

    let out = t.create(home.path(), name, domain_value.as_bytes(), &["-d", &domain]);
    assert_ok(&out);
    assert_eq!(
        pod_receives(
            &s,
            home.path(),
            (&domain, "proj"),
            name,
            &[&domain_value, &project_value]
        ),
        domain_value.as_bytes()
    );
    let out = t.create(
        home.path(),
        name,
        project_value.as_bytes(),
        &["-d", &domain, "-p", "proj"],
    );
    assert_ok(&out);
    assert_silent(&out, &[&domain_value, &project_value]);
    assert_eq!(
        pod_receives(
            &s,
            home.path(),
            (&domain, "proj"),
            name,
            &[&domain_value, &project_value]
        ),
        project_value.as_bytes()
    );
    for args in [
        vec!["delete", name, "-d", domain.as_str()],
        vec!["delete", name, "-d", domain.as_str(), "-p", "proj"],
    ] {
        assert_ok(&t.run(home.path(), &args, None));
    }
}
