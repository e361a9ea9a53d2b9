//! `agent secrets --store aws` against moto (AWS Secrets Manager API, started by
//! `scripts/servers.sh`): the secret's name is the encoded id, `SecretString` for text and
//! `SecretBinary` otherwise, scope tags; AlreadyExists, update, idempotent delete (and create
//! again right after), list filtering; and the end-to-end case through `agent init`.

use crate::common::*;
use crate::manage_support::*;
use aws_sdk_secretsmanager::Client;
use flyte_secret_spec::backend::AwsBackend;
use flyte_secret_spec::{Backend, Scope, SecretRequest};
use flyte_secret_testkit::servers::Servers;

fn client(s: &Servers) -> Client {
    aws_admin(s)
}

fn target(s: &Servers) -> Target {
    Target::aws(&s.aws.endpoint, &s.aws.region)
}

fn tag(tags: &[aws_sdk_secretsmanager::types::Tag], key: &str) -> Option<String> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layout_lifecycle_and_list_filtering() {
    let s = Servers::load();
    let c = client(&s);
    let t = target(&s);
    let home = tempfile::tempdir().unwrap();
    // moto is shared between tests and runs: a domain of our own keeps the list exact.
    let domain = unique("dev");
    let flags = ["--domain", domain.as_str()];
    let value = canary();
    let id = Scope::new(&domain, "").encode_name("TOKEN");

    let out = t.create(home.path(), "TOKEN", value.as_bytes(), &flags);
    assert_ok(&out);
    assert_silent(&out, &[&value]);
    let described = c.describe_secret().secret_id(&id).send().await.unwrap();
    assert_eq!(described.name(), Some(id.as_str()));
    let tags = described.tags();
    assert_eq!(tag(tags, "app.flyte.org/managed").as_deref(), Some("true"));
    assert_eq!(
        tag(tags, "app.flyte.org/domain").as_deref(),
        Some(domain.as_str())
    );
    assert_eq!(tag(tags, "app.flyte.org/project"), None);
    assert_eq!(
        tag(tags, "app.flyte.org/secret-type").as_deref(),
        Some("generic")
    );
    let stored = c.get_secret_value().secret_id(&id).send().await.unwrap();
    assert_eq!(stored.secret_string(), Some(value.as_str()));

    // AlreadyExists, exit 1, value untouched.
    let out = t.create(home.path(), "TOKEN", b"other", &flags);
    assert_code(&out, 1);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "secret TOKEN (domain {domain}) already exists in aws"
        )),
        "{}",
        printed(&out)
    );

    // Update with a binary value from a file: SecretBinary, exact bytes.
    let binary = vec![0u8, 0xff, 0xfe, b'\n', 0x80];
    let file = home.path().join("bin");
    std::fs::write(&file, &binary).unwrap();
    let out = t.run(
        home.path(),
        &[
            "update",
            "TOKEN",
            "--from-file",
            file.to_str().unwrap(),
            "--domain",
            &domain,
        ],
        None,
    );
    assert_ok(&out);
    let stored = c.get_secret_value().secret_id(&id).send().await.unwrap();
    assert_eq!(stored.secret_string(), None);
    assert_eq!(stored.secret_binary().unwrap().as_ref(), binary);

    let got = t.get_json(home.path(), "TOKEN", &flags);
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["store"], "aws");
    assert_eq!(got["type"], "generic");
    assert!(
        got["location"]
            .as_str()
            .unwrap()
            .starts_with(&format!("arn:aws:secretsmanager:{}:", s.aws.region)),
        "{got}"
    );
    assert!(got["created"].as_str().unwrap().starts_with("20"), "{got}");
    assert!(got["updated"].as_str().unwrap().starts_with("20"), "{got}");

    let out = t.run(
        home.path(),
        &["update", "NOPE", "-", "-d", &domain],
        Some(b"x"),
    );
    assert_code(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist in aws"));

    // List: the domain filter returns the domain's and its projects' secrets only.
    let org_name = unique("ORG").replace('-', "_");
    assert_ok(&t.create(home.path(), "TOKEN", b"p", &["-d", &domain, "-p", "p"]));
    assert_ok(&t.create(home.path(), &org_name, b"o", &[]));
    let listed = t.list(home.path(), &["--domain", &domain]);
    assert_eq!(
        listed,
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
    for want in [
        ("TOKEN".to_string(), domain.clone(), String::new()),
        (org_name.clone(), String::new(), String::new()),
    ] {
        assert!(everything.contains(&want), "{want:?} not in {everything:?}");
    }

    // Delete is immediate and idempotent; the name is free again at once.
    let out = t.run(home.path(), &["delete", "TOKEN", "-d", &domain], None);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deleted secret TOKEN"));
    let out = t.run(home.path(), &["delete", "TOKEN", "-d", &domain], None);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to delete"));
    assert_code(
        &t.run(home.path(), &["get", "TOKEN", "-d", &domain], None),
        1,
    );
    assert_ok(&t.create(home.path(), "TOKEN", b"again", &flags));

    for (name, f) in [
        ("TOKEN", vec!["-d", domain.as_str()]),
        ("TOKEN", vec!["-d", domain.as_str(), "-p", "p"]),
        (org_name.as_str(), vec![]),
    ] {
        let mut args = vec!["delete", name];
        args.extend(f);
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
    let backends = vec![Backend::Aws(AwsBackend {
        region: Some(s.aws.region.clone()),
        endpoint: Some(s.aws.endpoint.clone()),
    })];
    let receive = || {
        let root = tempfile::tempdir().unwrap();
        let p = plan(
            backends.clone(),
            Some(Scope::new(&domain, "proj")),
            &[SecretRequest::new("", name)],
        );
        let (out, termination) = init(home.path(), &p, root.path(), &[]);
        assert_ok(&out);
        assert_no_leak(&out, &termination, &domain_value);
        assert_no_leak(&out, &termination, &project_value);
        std::fs::read(root.path().join(name)).unwrap()
    };

    let out = t.create(home.path(), name, domain_value.as_bytes(), &["-d", &domain]);
    assert_ok(&out);
    assert_eq!(receive(), domain_value.as_bytes());
    let out = t.create(
        home.path(),
        name,
        project_value.as_bytes(),
        &["-d", &domain, "-p", "proj"],
    );
    assert_ok(&out);
    assert_silent(&out, &[&domain_value, &project_value]);
    assert_eq!(receive(), project_value.as_bytes());
    for f in [
        vec!["-d", domain.as_str()],
        vec!["-d", domain.as_str(), "-p", "proj"],
    ] {
        let mut args = vec!["delete", name];
        args.extend(f);
        assert_ok(&t.run(home.path(), &args, None));
    }
}
