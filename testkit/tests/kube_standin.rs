//! The Kubernetes API stand-in, driven by the real `kube` client: Secret CRUD with real
//! metadata and errors, selectors and pages, authentication, the policy, in-cluster files,
//! TokenReview/TokenRequest (audiences, pod-bound tokens), Pods, RBAC from stored objects and
//! files, webhook configurations, and the `kube-standin` binary.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use flyte_secret_testkit::kube::{
    ADMIN_USER, PodRef, Policy, Rule, StandIn, StandInOptions, request_token,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::core::Status;
use kube::{Client, Error};
use serde_json::json;

const HOUR: Duration = Duration::from_secs(3600);

fn secret(name: &str, labels: &[(&str, &str)], string_data: &[(&str, &str)]) -> Secret {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(map(labels)),
            ..Default::default()
        },
        string_data: Some(map(string_data)),
        ..Default::default()
    }
}

/// The `Status` of an API error; panics on any other outcome.
fn status<T: std::fmt::Debug>(result: Result<T, Error>) -> Box<Status> {
    match result {
        Err(Error::Api(status)) => status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn names(secrets: &[Secret]) -> Vec<String> {
    secrets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect()
}

async fn admin(standin: &StandIn) -> Client {
    standin.client(standin.admin_token()).await.unwrap()
}

async fn service_account(standin: &StandIn, namespace: &str, name: &str) -> Client {
    standin
        .client(&standin.mint_token(namespace, name, &[], HOUR))
        .await
        .unwrap()
}

#[tokio::test]
async fn secret_lifecycle_with_real_metadata_and_errors() {
    let standin = StandIn::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin(&standin).await, "team");

    let mut input = secret("db", &[("app", "web")], &[("password", "s3cret")]);
    input.data = Some([("user".to_string(), ByteString(b"admin".to_vec()))].into());
    let created = secrets
        .create(&PostParams::default(), &input)
        .await
        .unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("team"));
    assert_eq!(meta.uid.as_ref().map(String::len), Some(36));
    assert!(
        meta.resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert_eq!(created.string_data, None, "stringData is write-only");
    let data = created.data.clone().unwrap();
    assert_eq!(data["password"].0, b"s3cret");
    assert_eq!(data["user"].0, b"admin");

    let fetched = secrets.get("db").await.unwrap();
    assert_eq!(fetched, created);

    let again = status(secrets.create(&PostParams::default(), &input).await);
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(again.message, r#"secrets "db" already exists"#);

    let mut changed = fetched.clone();
    changed.string_data = Some([("password".to_string(), "rotated".to_string())].into());
    let updated = secrets
        .replace("db", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_eq!(updated.data.as_ref().unwrap()["password"].0, b"rotated");
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );

    let deleted = secrets
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    let confirmation = deleted
        .right()
        .expect("secrets delete answers with a Status");
    let details = confirmation.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.uid.as_str()),
        ("db", meta.uid.as_deref().unwrap())
    );

    let missing = status(secrets.get("db").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(missing.message, r#"secrets "db" not found"#);
    let details = missing.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("db", "secrets")
    );
    let gone = status(secrets.delete("db", &DeleteParams::default()).await);
    assert_eq!(gone.reason, "NotFound");
}

#[tokio::test]
async fn stale_resource_version_conflicts_and_noop_update_keeps_it() {
    let standin = StandIn::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin(&standin).await, "team");
    let first = secrets
        .create(&PostParams::default(), &secret("db", &[], &[("k", "v1")]))
        .await
        .unwrap();

    let same = secrets
        .replace("db", &PostParams::default(), &first)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        first.metadata.resource_version
    );

    let mut newer = first.clone();
    newer.string_data = Some([("k".to_string(), "v2".to_string())].into());
    secrets
        .replace("db", &PostParams::default(), &newer)
        .await
        .unwrap();

    let mut stale = first.clone();
    stale.string_data = Some([("k".to_string(), "v3".to_string())].into());
    let conflict = status(secrets.replace("db", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        conflict.message,
        r#"Operation cannot be fulfilled on secrets "db": the object has been modified; please apply your changes to the latest version and try again"#
    );
    assert_eq!(secrets.get("db").await.unwrap().data.unwrap()["k"].0, b"v2");

    let missing = status(
        secrets
            .replace("nope", &PostParams::default(), &secret("nope", &[], &[]))
            .await,
    );
    assert_eq!(missing.reason, "NotFound");
}

#[tokio::test]
async fn merge_patch_and_dry_run() {
    let standin = StandIn::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin(&standin).await, "team");
    let created = secrets
        .create(
            &PostParams::default(),
            &secret("db", &[("a", "1")], &[("k", "v1")]),
        )
        .await
        .unwrap();

    let patch = Patch::Merge(
        json!({"metadata": {"labels": {"a": null, "b": "2"}}, "stringData": {"k": "v2"}}),
    );
    let patched = secrets
        .patch("db", &PatchParams::default(), &patch)
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["k"].0, b"v2");
    assert_eq!(
        patched.metadata.labels.unwrap(),
        [("b".to_string(), "2".to_string())].into()
    );

    let stale =
        Patch::Merge(json!({"metadata": {"resourceVersion": created.metadata.resource_version}}));
    let conflict = status(secrets.patch("db", &PatchParams::default(), &stale).await);
    assert_eq!(conflict.reason, "Conflict");

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = secrets
        .create(&dry, &secret("ghost", &[], &[]))
        .await
        .unwrap();
    assert_eq!(answered.metadata.name.as_deref(), Some("ghost"));
    assert_eq!(status(secrets.get("ghost").await).reason, "NotFound");
}

#[tokio::test]
async fn invalid_objects_are_422() {
    let standin = StandIn::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin(&standin).await, "team");

    let invalid = status(
        secrets
            .create(&PostParams::default(), &secret("Bad_Name", &[], &[]))
            .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));
    assert!(
        invalid
            .message
            .starts_with(r#"Secret "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain"#),
        "{}",
        invalid.message
    );
    let cause = &invalid.details.unwrap().causes[0];
    assert_eq!(
        (cause.field.as_str(), cause.reason.as_str()),
        ("metadata.name", "FieldValueInvalid")
    );

    let mut frozen = secret("frozen", &[], &[("k", "v")]);
    frozen.immutable = Some(true);
    let frozen = secrets
        .create(&PostParams::default(), &frozen)
        .await
        .unwrap();
    let mut change = frozen.clone();
    change.string_data = Some([("k".to_string(), "other".to_string())].into());
    let refused = status(
        secrets
            .replace("frozen", &PostParams::default(), &change)
            .await,
    );
    assert_eq!(refused.code, 422);
    assert_eq!(
        refused.message,
        "Secret \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set"
    );
    let mut relabel = frozen.clone();
    relabel.metadata.labels = Some([("ok".to_string(), "yes".to_string())].into());
    secrets
        .replace("frozen", &PostParams::default(), &relabel)
        .await
        .unwrap();
}

#[tokio::test]
async fn list_honours_label_and_field_selectors() {
    let standin = StandIn::start().await.unwrap();
    let client = admin(&standin).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team");
    for (name, labels) in [
        ("s1", &[("app", "web"), ("tier", "front")][..]),
        ("s2", &[("app", "api"), ("tier", "back")]),
        ("s3", &[("app", "web")]),
        ("s4", &[]),
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, labels, &[]))
            .await
            .unwrap();
    }
    let other: Api<Secret> = Api::namespaced(client.clone(), "elsewhere");
    other
        .create(
            &PostParams::default(),
            &secret("s5", &[("app", "web")], &[]),
        )
        .await
        .unwrap();

    for (selector, expected) in [
        ("app=web", &["s1", "s3"][..]),
        ("app==api", &["s2"]),
        ("app!=web", &["s2", "s4"]),
        ("tier", &["s1", "s2"]),
        ("!tier", &["s3", "s4"]),
        ("app in (api, web),tier", &["s1", "s2"]),
        ("tier notin (front)", &["s2", "s3", "s4"]),
        ("", &["s1", "s2", "s3", "s4"]),
    ] {
        let list = secrets
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        assert_eq!(names(&list.items), expected, "selector {selector:?}");
    }
    let by_name = secrets
        .list(&ListParams::default().fields("metadata.name=s2"))
        .await
        .unwrap();
    assert_eq!(names(&by_name.items), ["s2"]);

    let list = secrets.list(&ListParams::default()).await.unwrap();
    assert!(
        list.metadata
            .resource_version
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 5
    );
    let everywhere = Api::<Secret>::all(client)
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(
        names(&everywhere.items),
        ["s5", "s1", "s3"],
        "ordered by namespace, then name"
    );

    let bad = status(
        secrets
            .list(&ListParams::default().labels("app in web"))
            .await,
    );
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
}

#[tokio::test]
async fn list_paginates_with_limit_and_continue() {
    let standin = StandIn::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin(&standin).await, "page");
    for name in ["e", "a", "d", "b", "c"] {
        secrets
            .create(&PostParams::default(), &secret(name, &[], &[]))
            .await
            .unwrap();
    }
    let first = secrets.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(names(&first.items), ["a", "b"]);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let mut token = first.metadata.continue_.clone().expect("a continue token");
    let mut all = names(&first.items);
    let mut pages = 1;
    while !token.is_empty() {
        let page = secrets
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap();
        all.extend(names(&page.items));
        token = page.metadata.continue_.unwrap_or_default();
        pages += 1;
    }
    assert_eq!(all, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);

    let bad = status(
        secrets
            .list(&ListParams::default().continue_token("garbage"))
            .await,
    );
    assert_eq!(bad.code, 400);
}

#[tokio::test]
async fn wrong_or_missing_token_is_401() {
    let standin = StandIn::start().await.unwrap();
    let wrong = standin.client("not-a-token").await.unwrap();
    let denied = status(
        Api::<Secret>::namespaced(wrong, "team")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(
        (denied.code, denied.reason.as_str(), denied.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );

    // A token from another stand-in (another key) is just as unknown.
    let other = StandIn::start().await.unwrap();
    let foreign = standin
        .client(&other.mint_token("team", "sa", &[], HOUR))
        .await
        .unwrap();
    assert_eq!(
        status(Api::<Secret>::namespaced(foreign, "team").get("x").await).code,
        401
    );

    // A service-account token for another audience is not valid for the API.
    let vault_only = standin.mint_token("team", "sa", &["vault"], HOUR);
    let client = standin.client(&vault_only).await.unwrap();
    assert_eq!(
        status(Api::<Secret>::namespaced(client, "team").get("x").await).code,
        401
    );

    let mut config = kube::Config::new(standin.url().parse().unwrap());
    config.root_cert = Some(vec![pem_der(standin.ca_pem())]);
    let anonymous = Client::try_from(config).unwrap();
    assert_eq!(anonymous.apiserver_version().await.unwrap().minor, "33");
    let denied = status(
        Api::<Secret>::namespaced(anonymous, "team")
            .list(&ListParams::default())
            .await,
    );
    assert_eq!(denied.code, 401);
}

#[tokio::test]
async fn restrictive_policy_gives_403_with_the_real_message() {
    let standin = StandIn::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin(&standin).await, "team");
    secrets
        .create(&PostParams::default(), &secret("db", &[], &[]))
        .await
        .unwrap();
    standin.set_policy(Policy {
        rules: vec![Rule::new(
            &["system:serviceaccount:team:reader"],
            &["get"],
            &["secrets"],
            &["team"],
        )],
    });

    let reader: Api<Secret> =
        Api::namespaced(service_account(&standin, "team", "reader").await, "team");
    assert!(reader.get("db").await.is_ok());
    let list = status(reader.list(&ListParams::default()).await);
    assert_eq!(
        list.message,
        r#"secrets is forbidden: User "system:serviceaccount:team:reader" cannot list resource "secrets" in API group "" in the namespace "team""#
    );

    let other: Api<Secret> =
        Api::namespaced(service_account(&standin, "team", "other").await, "team");
    let denied = status(other.get("db").await);
    assert_eq!((denied.code, denied.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        denied.message,
        r#"secrets "db" is forbidden: User "system:serviceaccount:team:other" cannot get resource "secrets" in API group "" in the namespace "team""#
    );
    let details = denied.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("db", "secrets")
    );

    standin.set_policy(Policy::deny_all());
    assert_eq!(status(reader.get("db").await).code, 403);
    assert!(
        secrets.get("db").await.is_ok(),
        "the admin is not subject to the policy"
    );
}

#[tokio::test]
async fn incluster_files_read_own_namespace_only() {
    let standin = StandIn::start().await.unwrap();
    let admin = admin(&standin).await;
    for ns in ["team", "other", "flyte"] {
        Api::<Secret>::namespaced(admin.clone(), ns)
            .create(&PostParams::default(), &secret("db", &[], &[("k", ns)]))
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let files = standin
        .write_incluster_files(&dir.path().join("sa"), "team", "runner")
        .unwrap();
    assert_eq!(std::fs::read_to_string(&files.namespace).unwrap(), "team");
    assert_eq!(
        std::fs::read_to_string(&files.ca_crt).unwrap(),
        standin.ca_pem()
    );

    let config = files.kube_config(&standin.url()).unwrap();
    assert_eq!(config.default_namespace, "team");
    let client = Client::try_from(config).unwrap();
    let own = Api::<Secret>::default_namespaced(client.clone())
        .get("db")
        .await
        .unwrap();
    assert_eq!(own.data.unwrap()["k"].0, b"team");
    assert!(
        Api::<Secret>::namespaced(client.clone(), "flyte")
            .get("db")
            .await
            .is_ok()
    );
    let denied = status(
        Api::<Secret>::namespaced(client.clone(), "other")
            .get("db")
            .await,
    );
    assert_eq!(
        denied.message,
        r#"secrets "db" is forbidden: User "system:serviceaccount:team:runner" cannot get resource "secrets" in API group "" in the namespace "other""#
    );
    let across = status(
        Api::<Secret>::all(client)
            .list(&ListParams::default())
            .await,
    );
    assert!(
        across.message.ends_with("at the cluster scope"),
        "{}",
        across.message
    );

    let last = standin.requests().pop().unwrap();
    assert_eq!(
        last.user.as_deref(),
        Some("system:serviceaccount:team:runner")
    );
}

async fn review(client: &Client, token: &str, audiences: Option<&[&str]>) -> TokenReview {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.into()),
            audiences: audiences.map(|a| a.iter().map(|s| s.to_string()).collect()),
        },
        ..Default::default()
    };
    Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
}

#[tokio::test]
async fn token_review_accepts_minted_and_rejects_tampered_or_expired() {
    let standin = StandIn::start().await.unwrap();
    // Any service account may create tokenreviews under the default policy.
    let reviewer = service_account(&standin, "openbao", "bao").await;

    let token = standin.mint_token("team", "runner", &["vault"], HOUR);
    let ok = review(&reviewer, &token, Some(&["vault"]))
        .await
        .status
        .unwrap();
    assert_eq!(ok.authenticated, Some(true));
    assert_eq!(ok.audiences.unwrap(), ["vault"]);
    let user = ok.user.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:team:runner")
    );
    assert_eq!(
        user.groups.unwrap(),
        [
            "system:serviceaccounts",
            "system:serviceaccounts:team",
            "system:authenticated"
        ]
    );
    assert_eq!(user.uid.unwrap().len(), 36);

    let wrong_audience = review(&reviewer, &token, None).await.status.unwrap();
    assert_ne!(wrong_audience.authenticated, Some(true));
    assert!(
        wrong_audience
            .error
            .unwrap()
            .contains("is invalid for the target audiences")
    );

    // Change one character in the middle of the signature (the last one may only carry padding).
    let mut tampered: Vec<char> = token.chars().collect();
    let at = tampered.len() - 20;
    tampered[at] = if tampered[at] == 'A' { 'B' } else { 'A' };
    let tampered: String = tampered.into_iter().collect();
    let bad = review(&reviewer, &tampered, Some(&["vault"]))
        .await
        .status
        .unwrap();
    assert_ne!(bad.authenticated, Some(true));
    assert_eq!(
        bad.error.as_deref(),
        Some("[invalid bearer token, go-jose/go-jose: error in cryptographic primitive]")
    );

    let expired = standin.mint_token("team", "runner", &["vault"], Duration::ZERO);
    let old = review(&reviewer, &expired, Some(&["vault"]))
        .await
        .status
        .unwrap();
    assert_ne!(old.authenticated, Some(true));
    assert_eq!(
        old.error.as_deref(),
        Some("[invalid bearer token, service account token has expired]")
    );

    let empty = Api::<TokenReview>::all(reviewer)
        .create(&PostParams::default(), &TokenReview::default())
        .await;
    assert_eq!(status(empty).code, 400);
}

#[tokio::test]
async fn token_request_issues_usable_tokens() {
    let standin = StandIn::start().await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(admin(&standin).await, "team");
    let request = |audiences: Vec<String>, seconds| TokenRequest {
        spec: TokenRequestSpec {
            audiences,
            expiration_seconds: Some(seconds),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = accounts
        .create_token_request("runner", &PostParams::default(), &request(vec![], 3600))
        .await
        .unwrap();
    let issued = answer.status.unwrap();
    let ttl = issued.expiration_timestamp.0.as_second() - jiff::Timestamp::now().as_second();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    assert_eq!(answer.spec.audiences, [standin.issuer()]);

    let secrets: Api<Secret> =
        Api::namespaced(standin.client(&issued.token).await.unwrap(), "team");
    assert_eq!(
        status(secrets.get("missing").await).reason,
        "NotFound",
        "authenticated and authorized"
    );

    let short = status(
        accounts
            .create_token_request("runner", &PostParams::default(), &request(vec![], 60))
            .await,
    );
    assert_eq!(short.code, 422);

    // A service account may not request tokens under the default policy.
    let sa: Api<ServiceAccount> =
        Api::namespaced(service_account(&standin, "team", "runner").await, "team");
    let denied = status(
        sa.create_token_request("runner", &PostParams::default(), &request(vec![], 3600))
            .await,
    );
    assert_eq!(
        denied.message,
        r#"serviceaccounts "runner" is forbidden: User "system:serviceaccount:team:runner" cannot create resource "serviceaccounts/token" in API group "" in the namespace "team""#
    );
}

fn webhook_configuration(name: &str, ca: &[u8]) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: "secrets.flyte.example.com".into(),
            admission_review_versions: vec!["v1".into()],
            side_effects: "None".into(),
            client_config: WebhookClientConfig {
                url: Some("https://127.0.0.1:9443/mutate".into()),
                ca_bundle: Some(ByteString(ca.to_vec())),
                ..Default::default()
            },
            ..Default::default()
        }]),
    }
}

#[tokio::test]
async fn mutating_webhook_configuration_create_then_update() {
    let standin = StandIn::start().await.unwrap();
    let configs: Api<MutatingWebhookConfiguration> = Api::all(admin(&standin).await);

    let created = configs
        .create(
            &PostParams::default(),
            &webhook_configuration("flyte-secrets", b"ca-1"),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(created.metadata.namespace, None);
    let hook = &created.webhooks.as_ref().unwrap()[0];
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.timeout_seconds, Some(10));

    let mut change = created.clone();
    change.webhooks.as_mut().unwrap()[0].client_config.ca_bundle =
        Some(ByteString(b"ca-2".to_vec()));
    let updated = configs
        .replace("flyte-secrets", &PostParams::default(), &change)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    let stored = configs.get("flyte-secrets").await.unwrap();
    assert_eq!(
        stored.webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .as_ref()
            .unwrap()
            .0,
        b"ca-2"
    );

    let stale = status(
        configs
            .replace("flyte-secrets", &PostParams::default(), &created)
            .await,
    );
    assert_eq!(stale.reason, "Conflict");
    let twice = status(
        configs
            .create(
                &PostParams::default(),
                &webhook_configuration("flyte-secrets", b"x"),
            )
            .await,
    );
    assert_eq!(twice.reason, "AlreadyExists");

    let mut invalid = webhook_configuration("bad", b"x");
    invalid.webhooks.as_mut().unwrap()[0].side_effects = "Some".into();
    let refused = status(configs.create(&PostParams::default(), &invalid).await);
    assert_eq!(
        refused.message,
        r#"MutatingWebhookConfiguration.admissionregistration.k8s.io "bad" is invalid: webhooks[0].sideEffects: Unsupported value: "Some": supported values: "None", "NoneOnDryRun""#
    );

    configs
        .delete("flyte-secrets", &DeleteParams::default())
        .await
        .unwrap();
    let missing = status(configs.get("flyte-secrets").await);
    assert_eq!(
        missing.message,
        r#"mutatingwebhookconfigurations.admissionregistration.k8s.io "flyte-secrets" not found"#
    );
    assert_eq!(
        missing.details.unwrap().group,
        "admissionregistration.k8s.io"
    );

    let sa: Api<MutatingWebhookConfiguration> =
        Api::all(service_account(&standin, "team", "runner").await);
    let denied = status(sa.list(&ListParams::default()).await);
    assert!(
        denied
            .message
            .starts_with("mutatingwebhookconfigurations.admissionregistration.k8s.io is forbidden")
    );
}

#[tokio::test]
async fn requests_are_recorded_with_user_and_status() {
    let standin = StandIn::start().await.unwrap();
    let admin: Api<Secret> = Api::namespaced(admin(&standin).await, "team");
    let _ = admin.get("missing").await;
    let reader: Api<Secret> =
        Api::namespaced(service_account(&standin, "team", "runner").await, "team");
    reader
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let wrong: Api<Secret> = Api::namespaced(standin.client("bad").await.unwrap(), "team");
    let _ = wrong.get("db").await;

    let seen: Vec<(String, String, Option<String>, u16)> = standin
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path, r.user, r.status))
        .collect();
    assert_eq!(
        seen,
        [
            (
                "GET".into(),
                "/api/v1/namespaces/team/secrets/missing".into(),
                Some(ADMIN_USER.into()),
                404
            ),
            (
                "GET".into(),
                "/api/v1/namespaces/team/secrets?&labelSelector=app%3Dweb".into(),
                Some("system:serviceaccount:team:runner".into()),
                200
            ),
            (
                "GET".into(),
                "/api/v1/namespaces/team/secrets/db".into(),
                None,
                401
            ),
        ]
    );
}

#[tokio::test]
async fn oidc_discovery_and_public_key_verify_tokens() {
    let standin = StandIn::start().await.unwrap();
    let client = admin(&standin).await;
    let get = |path: &str| hyper::Request::get(path).body(Vec::new()).unwrap();
    let discovery: serde_json::Value = serde_json::from_str(
        &client
            .request_text(get("/.well-known/openid-configuration"))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(discovery["issuer"], standin.issuer());
    assert_eq!(
        discovery["jwks_uri"],
        format!("{}/openid/v1/jwks", standin.url())
    );
    let jwks: serde_json::Value =
        serde_json::from_str(&client.request_text(get("/openid/v1/jwks")).await.unwrap()).unwrap();

    // The PEM key (SubjectPublicKeyInfo) ends with the uncompressed point 04 || X || Y.
    let spki = pem_der(standin.sa_public_key_pem());
    let point = &spki[spki.len() - 65..];
    assert_eq!(jwks["keys"][0]["x"], URL_SAFE_NO_PAD.encode(&point[1..33]));
    assert_eq!(jwks["keys"][0]["y"], URL_SAFE_NO_PAD.encode(&point[33..]));

    let token = standin.mint_token("team", "runner", &["vault"], HOUR);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    key.verify(
        signed.as_bytes(),
        &URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
    .expect("the published key verifies minted tokens");
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(signed.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["iss"], standin.issuer());
    assert_eq!(claims["sub"], "system:serviceaccount:team:runner");
    assert_eq!(claims["aud"], json!(["vault"]));
    assert_eq!(claims["kubernetes.io"]["namespace"], "team");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "runner");
    for claim in ["exp", "iat", "nbf", "jti"] {
        assert!(!claims[claim].is_null(), "{claim}");
    }

    let unknown = status(
        client
            .request_text(get("/api/v1/namespaces/team/configmaps"))
            .await,
    );
    assert_eq!((unknown.code, unknown.reason.as_str()), (404, "NotFound"));

    // An empty issuer is the server's own URL, as OIDC discovery clients require.
    let options = StandInOptions {
        issuer: String::new(),
        ..Default::default()
    };
    let discoverable = StandIn::start_with(options).await.unwrap();
    assert_eq!(discoverable.issuer(), discoverable.url());
}

#[tokio::test]
async fn oversized_body_is_413() {
    let standin = StandIn::start().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(admin(&standin).await, "team");
    let mut big = secret("big", &[], &[]);
    big.data = Some([("blob".to_string(), ByteString(vec![b'x'; 4 * 1024 * 1024]))].into());
    let refused = status(secrets.create(&PostParams::default(), &big).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (413, "RequestEntityTooLarge")
    );
    assert_eq!(status(secrets.get("big").await).reason, "NotFound");
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

#[tokio::test]
async fn binary_serves_writes_state_and_issues_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let policy = dir.path().join("policy.json");
    let rule = Rule::new(
        &["system:serviceaccount:team:*"],
        &["list"],
        &["secrets"],
        &["$own"],
    );
    std::fs::write(
        &policy,
        serde_json::to_string(&Policy { rules: vec![rule] }).unwrap(),
    )
    .unwrap();
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("ready"), "stale").unwrap();

    let binary = env!("CARGO_BIN_EXE_kube-standin");
    let mut server = std::process::Command::new(binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .arg("--policy")
        .arg(&policy)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    // `ready` is removed at start and rewritten last, holding the URL.
    let mut url = String::new();
    for _ in 0..300 {
        url = std::fs::read_to_string(state.join("ready")).unwrap_or_default();
        if url.starts_with("https://") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(url.starts_with("https://127.0.0.1:"), "{url:?}");
    for file in [
        "ca.crt",
        "admin.token",
        "kubeconfig",
        "sa.pub.pem",
        "issuer",
    ] {
        assert!(state.join(file).exists(), "{file}");
    }
    assert_eq!(
        std::fs::read_to_string(state.join("issuer")).unwrap(),
        flyte_secret_testkit::kube::DEFAULT_ISSUER
    );

    let output = std::process::Command::new(binary)
        .args([
            "token",
            "--namespace",
            "team",
            "--service-account",
            "runner",
            "--state-dir",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3);

    let pod = dir.path().join("pod");
    std::fs::create_dir_all(&pod).unwrap();
    std::fs::write(pod.join("token"), &token).unwrap();
    std::fs::copy(state.join("ca.crt"), pod.join("ca.crt")).unwrap();
    std::fs::write(pod.join("namespace"), "team").unwrap();
    let files = flyte_secret_testkit::kube::InClusterFiles {
        dir: pod.clone(),
        token: pod.join("token"),
        ca_crt: pod.join("ca.crt"),
        namespace: pod.join("namespace"),
    };
    flyte_secret_testkit::kube::install_crypto_provider();
    let client = Client::try_from(files.kube_config(&url).unwrap()).unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(client);
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        status(secrets.get("db").await).code,
        403,
        "the --policy file allows list only"
    );

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = server.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!state.join("ready").exists(), "ready is removed on SIGTERM");
}

/// PATCH with `application/json-patch+json` (what `init-certs` sends for the caBundle): a
/// failed `test` is a 422 and changes nothing; an immutable Secret refuses updates (422) and
/// may still be deleted.
#[tokio::test]
async fn json_patch_of_a_webhook_configuration_and_immutable_secrets() {
    let standin = StandIn::start().await.unwrap();
    let client = admin(&standin).await;
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    configs
        .create(
            &PostParams::default(),
            &webhook_configuration("flyte-secrets", b"ca-1"),
        )
        .await
        .unwrap();
    let name = configs
        .get("flyte-secrets")
        .await
        .unwrap()
        .webhooks
        .unwrap()[0]
        .name
        .clone();
    let send = |patch: serde_json::Value| {
        let client = client.clone();
        async move {
            let request = hyper::Request::patch(
                "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/flyte-secrets",
            )
            .header("content-type", "application/json-patch+json")
            .body(serde_json::to_vec(&patch).unwrap())
            .unwrap();
            client
                .request::<MutatingWebhookConfiguration>(request)
                .await
        }
    };
    let patched = send(serde_json::json!([
        {"op": "test", "path": "/webhooks/0/name", "value": name},
        {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "Y2EtMg=="},
    ]))
    .await
    .unwrap();
    assert_eq!(
        patched.webhooks.as_ref().unwrap()[0]
            .client_config
            .ca_bundle
            .as_ref()
            .unwrap()
            .0,
        b"ca-2"
    );
    assert_eq!(patched.metadata.generation, Some(2));
    let failed = status(
        send(serde_json::json!([
            {"op": "test", "path": "/webhooks/0/name", "value": "other.example.com"},
            {"op": "add", "path": "/webhooks/0/clientConfig/caBundle", "value": "eA=="},
        ]))
        .await,
    );
    assert_eq!(failed.code, 422, "{failed:?}");
    let stored = configs.get("flyte-secrets").await.unwrap();
    assert_eq!(
        stored.webhooks.unwrap()[0]
            .client_config
            .ca_bundle
            .as_ref()
            .unwrap()
            .0,
        b"ca-2"
    );

    // An immutable Secret: updates refused, deletes allowed.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "flyte");
    let mut immutable = Secret::default();
    immutable.metadata.name = Some("frozen".into());
    immutable.immutable = Some(true);
    immutable.data = Some([("k".to_string(), ByteString(b"v".to_vec()))].into());
    let created = secrets
        .create(&PostParams::default(), &immutable)
        .await
        .unwrap();
    let mut changed = created.clone();
    changed.data = Some([("k".to_string(), ByteString(b"w".to_vec()))].into());
    let refused = status(
        secrets
            .replace("frozen", &PostParams::default(), &changed)
            .await,
    );
    assert_eq!(refused.code, 422, "{refused:?}");
    secrets
        .delete("frozen", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status(secrets.get("frozen").await).code, 404);
}

// ---- Pods, pod-bound tokens, RBAC (issue 15) ----

fn pod(name: &str, service_account: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            service_account_name: Some(service_account.into()),
            containers: vec![Container {
                name: "main".into(),
                image: Some("task:1".into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn create_pod(standin: &StandIn, namespace: &str, name: &str, sa: &str) -> PodRef {
    let pods: Api<Pod> = Api::namespaced(admin(standin).await, namespace);
    let created = pods
        .create(&PostParams::default(), &pod(name, sa))
        .await
        .unwrap();
    PodRef {
        name: name.into(),
        uid: created.metadata.uid.unwrap(),
    }
}

#[tokio::test]
async fn pods_have_real_metadata_status_subresource_and_graceful_delete() {
    let standin = StandIn::start().await.unwrap();
    let pods: Api<Pod> = Api::namespaced(admin(&standin).await, "team");
    let mut input = pod("task-a", "");
    input.spec.as_mut().unwrap().service_account_name = None;
    let created = pods.create(&PostParams::default(), &input).await.unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.uid.as_ref().unwrap().len(), 36);
    assert!(meta.resource_version.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.namespace.as_deref(), Some("team"));
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("default"));
    let phase = |p: &Pod| p.status.as_ref().unwrap().phase.clone().unwrap();
    assert_eq!(phase(&created), "Pending");

    // A phase given at create is kept.
    let mut running = pod("task-b", "runner");
    running.status = Some(PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    let running = pods.create(&PostParams::default(), &running).await.unwrap();
    assert_eq!(phase(&running), "Running");
    let listed = pods.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    let all: Api<Pod> = Api::all(admin(&standin).await);
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        2
    );

    let invalid = status(
        pods.create(
            &PostParams::default(),
            &Pod {
                metadata: ObjectMeta {
                    name: Some("empty".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await,
    );
    assert_eq!((invalid.code, invalid.reason.as_str()), (422, "Invalid"));

    // A write to the pod itself keeps the status; the status subresource changes only it.
    let patch = json!({"metadata": {"labels": {"a": "b"}}, "status": {"phase": "Failed"}});
    let patched = pods
        .patch("task-b", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(phase(&patched), "Running");
    assert_eq!(patched.metadata.labels.unwrap()["a"], "b");
    let patch = json!({"metadata": {"labels": {"a": "c"}}, "status": {"phase": "Succeeded"}});
    let done = pods
        .patch_status("task-b", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(phase(&done), "Succeeded");
    assert_eq!(done.metadata.labels.unwrap()["a"], "b");
    assert_ne!(
        done.metadata.resource_version,
        patched.metadata.resource_version
    );
    assert_eq!(
        phase(&pods.get_status("task-b").await.unwrap()),
        "Succeeded"
    );

    // A pod on a node is only marked when deleted (its kubelet finishes); then a zero grace
    // period removes it. An unscheduled pod goes at once.
    let mut scheduled = pod("task-c", "runner");
    scheduled.spec.as_mut().unwrap().node_name = Some("node-1".into());
    pods.create(&PostParams::default(), &scheduled)
        .await
        .unwrap();
    let marked = pods
        .delete("task-c", &DeleteParams::default())
        .await
        .unwrap();
    let marked = marked
        .left()
        .expect("a graceful delete answers with the pod");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(30));
    assert!(
        pods.get("task-c")
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some()
    );
    pods.delete(
        "task-c",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(status(pods.get("task-c").await).reason, "NotFound");
    assert!(
        pods.delete("task-a", &DeleteParams::default())
            .await
            .unwrap()
            .is_right()
    );
    assert_eq!(status(pods.get("task-a").await).code, 404);
}

#[tokio::test]
async fn pod_bound_token_is_reviewed_with_audience_and_pod_claims() {
    let standin = StandIn::start().await.unwrap();
    let admin = admin(&standin).await;
    let bound = create_pod(&standin, "team", "task-1", "runner").await;
    let audience = vec!["flyte-secret-broker".to_owned()];
    let token = request_token(&admin, "team", "runner", &audience, 600, Some(&bound))
        .await
        .unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["kubernetes.io"]["pod"],
        json!({"name": "task-1", "uid": bound.uid})
    );
    assert_eq!(claims["aud"], json!(audience));
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 600, "expirationSeconds is honoured");

    let ok = review(&admin, &token, Some(&["other", "flyte-secret-broker"])).await;
    let status_ = ok.status.unwrap();
    assert_eq!(status_.authenticated, Some(true), "{status_:?}");
    assert_eq!(status_.audiences, Some(audience.clone()));
    let user = status_.user.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:team:runner")
    );
    assert!(user.uid.is_some());
    assert_eq!(
        user.groups.unwrap(),
        [
            "system:serviceaccounts",
            "system:serviceaccounts:team",
            "system:authenticated"
        ]
    );
    let extra = user.extra.unwrap();
    assert_eq!(extra["authentication.kubernetes.io/pod-name"], ["task-1"]);
    assert_eq!(
        extra["authentication.kubernetes.io/pod-uid"],
        std::slice::from_ref(&bound.uid)
    );

    // Wrong audience, or none (= the API audience): not authenticated, and the API itself
    // refuses the token.
    for audiences in [Some(&["vault"][..]), None] {
        let refused = review(&admin, &token, audiences).await.status.unwrap();
        assert_ne!(refused.authenticated, Some(true));
        assert!(
            refused
                .error
                .unwrap()
                .contains("invalid for the target audiences")
        );
    }
    let as_broker = standin.client(&token).await.unwrap();
    let err = status(Api::<Secret>::namespaced(as_broker, "team").get("x").await);
    assert_eq!(err.code, 401);

    // Expired.
    let expired = standin.mint_pod_token(
        "team",
        "runner",
        &bound,
        &["flyte-secret-broker"],
        Duration::ZERO,
    );
    let refused = review(&admin, &expired, Some(&["flyte-secret-broker"]))
        .await
        .status
        .unwrap();
    assert_ne!(refused.authenticated, Some(true));
    assert!(refused.error.unwrap().contains("expired"));

    // A pod-bound token works against the API too (API audience) while its pod exists.
    let api_token = standin.mint_pod_token("team", "runner", &bound, &[], HOUR);
    let review_api = review(&admin, &api_token, None).await.status.unwrap();
    assert_eq!(review_api.authenticated, Some(true));
}

#[tokio::test]
async fn pod_bound_token_dies_with_its_pod() {
    let standin = StandIn::start().await.unwrap();
    let admin = admin(&standin).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "team");
    let first = create_pod(&standin, "team", "task-1", "runner").await;
    let aud = ["broker"];
    let token = standin.mint_pod_token("team", "runner", &first, &aud, HOUR);
    assert_eq!(
        review(&admin, &token, Some(&aud))
            .await
            .status
            .unwrap()
            .authenticated,
        Some(true)
    );

    pods.delete("task-1", &DeleteParams::default())
        .await
        .unwrap();
    let gone = review(&admin, &token, Some(&aud)).await.status.unwrap();
    assert_ne!(gone.authenticated, Some(true));
    assert_eq!(
        gone.error.as_deref(),
        Some("[invalid bearer token, service account token has been invalidated]")
    );

    // Same name, new uid: the old token stays dead; a new one for the new pod works.
    let second = create_pod(&standin, "team", "task-1", "runner").await;
    assert_ne!(first.uid, second.uid);
    let replayed = review(&admin, &token, Some(&aud)).await.status.unwrap();
    assert_ne!(replayed.authenticated, Some(true));
    let fresh = standin.mint_pod_token("team", "runner", &second, &aud, HOUR);
    assert_eq!(
        review(&admin, &fresh, Some(&aud))
            .await
            .status
            .unwrap()
            .authenticated,
        Some(true)
    );

    // TokenRequest checks the binding up front, as the API server does.
    let aud = vec!["broker".to_owned()];
    let stale = status(
        request_token(&admin, "team", "runner", &aud, 600, Some(&first))
            .await
            .map_err(|e| e.downcast::<Error>().unwrap()),
    );
    assert_eq!(stale.code, 409, "{}", stale.message);
    let other_sa = status(
        request_token(&admin, "team", "intruder", &aud, 600, Some(&second))
            .await
            .map_err(|e| e.downcast::<Error>().unwrap()),
    );
    assert_eq!(other_sa.code, 400);
    assert!(
        other_sa.message.contains("different serviceaccount name"),
        "{}",
        other_sa.message
    );
    let missing = PodRef {
        name: "nope".into(),
        uid: first.uid.clone(),
    };
    let missing = status(
        request_token(&admin, "team", "runner", &aud, 600, Some(&missing))
            .await
            .map_err(|e| e.downcast::<Error>().unwrap()),
    );
    assert_eq!(missing.code, 404);
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str], names: &[&str]) -> PolicyRule {
    let own = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(own(groups)),
        resources: Some(own(resources)),
        verbs: own(verbs),
        resource_names: (!names.is_empty()).then(|| own(names)),
        ..Default::default()
    }
}

fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
    Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: namespace.map(str::to_owned),
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
    }
}

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: kind.into(),
        name: name.into(),
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A stand-in where only RBAC decides, with Secret `db` and `other` in `team` and `flyte`.
async fn rbac_only() -> StandIn {
    let standin = StandIn::start_with(StandInOptions {
        policy: Policy::deny_all(),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = admin(&standin).await;
    for ns in ["team", "flyte"] {
        for name in ["db", "other"] {
            Api::<Secret>::namespaced(admin.clone(), ns)
                .create(&PostParams::default(), &secret(name, &[], &[("k", "v")]))
                .await
                .unwrap();
        }
    }
    standin
}

async fn secrets_as(standin: &StandIn, sa_ns: &str, sa: &str, ns: &str) -> Api<Secret> {
    Api::namespaced(service_account(standin, sa_ns, sa).await, ns)
}

#[tokio::test]
async fn deny_all_without_rbac_is_403() {
    let standin = rbac_only().await;
    let secrets = secrets_as(&standin, "team", "runner", "team").await;
    let denied = status(secrets.get("db").await);
    assert_eq!(
        denied.message,
        r#"secrets "db" is forbidden: User "system:serviceaccount:team:runner" cannot get resource "secrets" in API group "" in the namespace "team""#
    );
    let client = service_account(&standin, "team", "runner").await;
    let token = standin.mint_token("team", "runner", &[], HOUR);
    let reviews: Api<TokenReview> = Api::all(client);
    let refused = status(
        reviews
            .create(
                &PostParams::default(),
                &TokenReview {
                    spec: TokenReviewSpec {
                        token: Some(token),
                        audiences: None,
                    },
                    ..Default::default()
                },
            )
            .await,
    );
    assert_eq!(
        refused.message,
        r#"tokenreviews.authentication.k8s.io is forbidden: User "system:serviceaccount:team:runner" cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope"#
    );
    let pods: Api<Pod> = Api::namespaced(service_account(&standin, "team", "runner").await, "team");
    assert_eq!(status(pods.get("x").await).code, 403);
}

#[tokio::test]
async fn role_with_resource_names_allows_only_that_secret() {
    let standin = rbac_only().await;
    let admin = admin(&standin).await;
    let role = Role {
        metadata: meta("read-db"),
        rules: Some(vec![rule(&[""], &["secrets"], &["get", "list"], &["db"])]),
    };
    let roles: Api<Role> = Api::namespaced(admin.clone(), "team");
    let created = roles.create(&PostParams::default(), &role).await.unwrap();
    assert!(created.metadata.uid.is_some());
    let binding = RoleBinding {
        metadata: meta("read-db"),
        role_ref: role_ref("Role", "read-db"),
        subjects: Some(vec![subject("ServiceAccount", "runner", Some("team"))]),
    };
    let bindings: Api<RoleBinding> = Api::namespaced(admin.clone(), "team");
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    assert_eq!(
        roles
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(roles.get("read-db").await.is_ok());

    let secrets = secrets_as(&standin, "team", "runner", "team").await;
    assert!(secrets.get("db").await.is_ok());
    let denied = status(secrets.get("other").await);
    assert_eq!(denied.code, 403);
    assert!(
        denied
            .message
            .starts_with(r#"secrets "other" is forbidden"#),
        "{}",
        denied.message
    );
    // A list is allowed only when pinned to the name.
    assert_eq!(status(secrets.list(&ListParams::default()).await).code, 403);
    let pinned = ListParams::default().fields("metadata.name=db");
    assert_eq!(secrets.list(&pinned).await.unwrap().items.len(), 1);
    // Same Role name elsewhere is not bound: `flyte` stays closed.
    assert_eq!(
        status(
            secrets_as(&standin, "team", "runner", "flyte")
                .await
                .get("db")
                .await
        )
        .code,
        403
    );

    // Deleting the binding takes the access away at once.
    bindings
        .delete("read-db", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status(secrets.get("db").await).code, 403);

    // roleRef is immutable, as on a real cluster.
    let created = bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let mut changed = created.clone();
    changed.role_ref = role_ref("ClusterRole", "view");
    let refused = status(
        bindings
            .replace("read-db", &PostParams::default(), &changed)
            .await,
    );
    assert_eq!(refused.code, 422);
}

#[tokio::test]
async fn rolebinding_to_a_clusterrole_is_namespace_scoped_and_sa_namespace_matters() {
    let standin = rbac_only().await;
    let admin = admin(&standin).await;
    let reader = ClusterRole {
        metadata: meta("secret-reader"),
        rules: Some(vec![rule(&[""], &["secrets"], &["get"], &[])]),
        ..Default::default()
    };
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &reader)
        .await
        .unwrap();
    // Bound in `flyte` for `broker/flyte-secret-broker`, and a subject `runner` in `elsewhere`.
    let binding = RoleBinding {
        metadata: meta("broker-reads"),
        role_ref: role_ref("ClusterRole", "secret-reader"),
        subjects: Some(vec![
            subject("ServiceAccount", "flyte-secret-broker", Some("broker")),
            subject("ServiceAccount", "runner", Some("elsewhere")),
        ]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), "flyte")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let broker = |ns: &'static str| secrets_as(&standin, "broker", "flyte-secret-broker", ns);
    assert!(broker("flyte").await.get("other").await.is_ok());
    let denied = status(broker("team").await.get("db").await);
    assert!(
        denied.message.ends_with(r#"in the namespace "team""#),
        "{}",
        denied.message
    );
    // The same SA name in another namespace is another user.
    assert_eq!(
        status(
            secrets_as(&standin, "team", "runner", "flyte")
                .await
                .get("db")
                .await
        )
        .code,
        403
    );
    assert!(
        secrets_as(&standin, "elsewhere", "runner", "flyte")
            .await
            .get("db")
            .await
            .is_ok()
    );
    // Not a cluster-wide grant: listing across namespaces is refused.
    let client = service_account(&standin, "broker", "flyte-secret-broker").await;
    assert_eq!(
        status(
            Api::<Secret>::all(client)
                .list(&ListParams::default())
                .await
        )
        .code,
        403
    );
}

#[tokio::test]
async fn group_subjects_and_auth_delegator() {
    let standin = rbac_only().await;
    let admin = admin(&standin).await;
    // Groups: every SA of `team`; everyone authenticated may read `flyte/db` only.
    let yaml = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: team-secrets, namespace: team}
rules: [{apiGroups: [""], resources: [secrets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-secrets, namespace: team}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: team-secrets}
subjects: [{kind: Group, apiGroup: rbac.authorization.k8s.io, name: "system:serviceaccounts:team"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: public-db, namespace: flyte}
rules: [{apiGroups: [""], resources: [secrets], resourceNames: [db], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: public-db, namespace: flyte}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: public-db}
subjects: [{kind: Group, apiGroup: rbac.authorization.k8s.io, name: "system:authenticated"}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: openbao, namespace: openbao}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "openbao-server-binding"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:auth-delegator"}
subjects: [{kind: ServiceAccount, name: openbao, namespace: openbao}]
"#;
    let loaded = standin.load_rbac(yaml).unwrap();
    assert_eq!(
        loaded.to_string(),
        "2 Roles, 2 RoleBindings, 0 ClusterRoles, 1 ClusterRoleBindings (1 other objects ignored)"
    );
    assert!(
        secrets_as(&standin, "team", "a", "team")
            .await
            .get("other")
            .await
            .is_ok()
    );
    assert!(
        secrets_as(&standin, "team", "b", "team")
            .await
            .get("db")
            .await
            .is_ok()
    );
    assert_eq!(
        status(secrets_as(&standin, "x", "a", "team").await.get("db").await).code,
        403
    );
    assert!(
        secrets_as(&standin, "x", "a", "flyte")
            .await
            .get("db")
            .await
            .is_ok()
    );
    assert_eq!(
        status(
            secrets_as(&standin, "x", "a", "flyte")
                .await
                .get("other")
                .await
        )
        .code,
        403
    );
    let bootstrap = Api::<ClusterRole>::all(admin.clone())
        .get("system:auth-delegator")
        .await
        .unwrap();
    assert_eq!(bootstrap.rules.unwrap().len(), 2);

    // auth-delegator: openbao may create tokenreviews, a task SA may not.
    let task_token = standin.mint_token("team", "runner", &["vault"], HOUR);
    let openbao = service_account(&standin, "openbao", "openbao").await;
    let reviewed = review(&openbao, &task_token, Some(&["vault"])).await;
    assert_eq!(reviewed.status.unwrap().authenticated, Some(true));
    let runner: Api<TokenReview> = Api::all(service_account(&standin, "team", "runner").await);
    let refused = runner
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: Some(task_token),
                    audiences: None,
                },
                ..Default::default()
            },
        )
        .await;
    assert_eq!(status(refused).code, 403);

    // ClusterRoleBindings are admin-managed objects with the usual verbs.
    let crbs: Api<ClusterRoleBinding> = Api::all(admin);
    assert_eq!(
        crbs.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );
    crbs.delete("openbao-server-binding", &DeleteParams::default())
        .await
        .unwrap();
    let after = review_status(&openbao).await;
    assert_eq!(after, 403);
}

async fn review_status(client: &Client) -> u16 {
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let result = reviews
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: Some("x".into()),
                    audiences: None,
                },
                ..Default::default()
            },
        )
        .await;
    match result {
        Ok(_) => 201,
        Err(Error::Api(s)) => s.code,
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn rbac_files_with_a_deny_all_policy_from_options_and_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("rbac.json");
    std::fs::write(&list, json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "pod-reader"},
         "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "broker-pods"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pod-reader"},
         "subjects": [{"kind": "ServiceAccount", "name": "broker", "namespace": "sys"}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ignored"}},
    ]}).to_string()).unwrap();
    let standin = StandIn::start_with(StandInOptions {
        policy: Policy::deny_all(),
        rbac_files: vec![list.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        (standin.rbac_loaded().total(), standin.rbac_loaded().ignored),
        (2, 1)
    );
    create_pod(&standin, "team", "task-1", "runner").await;
    let broker: Api<Pod> =
        Api::namespaced(service_account(&standin, "sys", "broker").await, "team");
    assert!(broker.get("task-1").await.is_ok());
    assert_eq!(status(broker.list(&ListParams::default()).await).code, 403);
    assert_eq!(
        status(broker.get_status("task-1").await).code,
        403,
        "pods does not cover pods/status"
    );

    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "kind: ClusterRoleBinding\napiVersion: rbac.authorization.k8s.io/v1\nmetadata: {name: x}\nroleRef: {apiGroup: wrong, kind: ClusterRole, name: missing}\n").unwrap();
    let failed = StandIn::start_with(StandInOptions {
        rbac_files: vec![broken],
        ..Default::default()
    })
    .await;
    let message = format!(
        "{:#}",
        failed.err().expect("a bad RBAC file fails the start")
    );
    assert!(message.contains("roleRef.apiGroup"), "{message}");

    // The binary: --policy deny-all, --rbac FILE, counts in `rbac-loaded`.
    let state = dir.path().join("state");
    let binary = env!("CARGO_BIN_EXE_kube-standin");
    let mut server = std::process::Command::new(binary)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--policy",
            "deny-all",
            "--rbac",
        ])
        .arg(&list)
        .arg("--state-dir")
        .arg(&state)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut url = String::new();
    for _ in 0..300 {
        url = std::fs::read_to_string(state.join("ready")).unwrap_or_default();
        if url.starts_with("https://") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(url.starts_with("https://"), "{url:?}");
    assert_eq!(
        std::fs::read_to_string(state.join("rbac-loaded"))
            .unwrap()
            .trim(),
        "0 Roles, 0 RoleBindings, 1 ClusterRoles, 1 ClusterRoleBindings (1 other objects ignored)"
    );
    let token = |sa: &str| {
        let out = std::process::Command::new(binary)
            .args([
                "token",
                "--namespace",
                "sys",
                "--service-account",
                sa,
                "--state-dir",
            ])
            .arg(&state)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let ca = std::fs::read_to_string(state.join("ca.crt")).unwrap();
    let get = |token: String| {
        let (url, ca) = (url.clone(), ca.clone());
        async move {
            let mut config = kube::Config::new(url.parse().unwrap());
            config.root_cert = Some(vec![pem_der(&ca)]);
            config.auth_info.token = Some(token.into());
            let client = Client::try_from(config).unwrap();
            match Api::<Pod>::namespaced(client, "team").get("nope").await {
                Err(Error::Api(s)) => s.code,
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(get(token("broker")).await, 404, "RBAC allows the broker");
    assert_eq!(get(token("runner")).await, 403, "deny-all: nothing else");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.wait().unwrap().success());
}
