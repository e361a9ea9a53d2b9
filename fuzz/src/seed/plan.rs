//! Seeds of the `plan` target: the documented example, plans for every vector with every
//! backend (alone and together), a Vault database plan, and plans invalid in one way each.

use flyte_secret_spec::backend::{
    AwsBackend, Backend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::naming::Layout;
use flyte_secret_spec::plan::{FetchPlan, FileAccess, Owner};
use flyte_secret_spec::request::SecretRequest;
use flyte_secret_spec::scoped::Scope;
use serde_json::{Value, json};

use super::save;
use crate::Target;

/// Writes the `plan` seeds.
pub(super) fn write(requests: &[SecretRequest]) {
    let vault = |engine| {
        Backend::Vault(VaultBackend {
            address: "https://vault.vault.svc:8200".into(),
            auth: VaultAuth::Kubernetes {
                role: "flyte".into(),
                mount: "kubernetes".into(),
                token_file: flyte_secret_spec::backend::SERVICE_ACCOUNT_TOKEN_FILE.into(),
            },
            namespace: Some("team".into()),
            ca_cert_file: Some("/etc/ssl/vault-ca.pem".into()),
            default_engine: engine,
            managed_mount: "secret".into(),
            allow_insecure_http: false,
        })
    };
    let all = vec![
        Backend::Kubernetes(KubernetesBackend::default()),
        Backend::Aws(AwsBackend {
            region: Some("us-east-2".into()),
            endpoint: None,
        }),
        vault(VaultEngine::Kv2),
    ];
    let mut plan = FetchPlan::new(&Layout::default(), all.clone());
    plan.scope = Some(Scope::new("development", "flytesnacks"));
    plan.owner = Some(Owner {
        uid: 1000,
        gid: 1000,
    });
    for (i, r) in requests.iter().enumerate() {
        let mut single = plan.clone();
        if single
            .push(format!("flyte.secrets/s{i}"), r.clone())
            .is_ok()
            && single.validate().is_ok()
        {
            save(
                Target::Plan,
                &format!("vector-{i}.json"),
                single.to_json().as_bytes(),
            );
        }
    }
    let mut together = plan.clone();
    for (i, r) in requests.iter().enumerate() {
        let _ = together.push(format!("flyte.secrets/s{i}"), r.clone());
    }
    if together.validate().is_ok() {
        save(
            Target::Plan,
            "all-vectors.json",
            together.to_json().as_bytes(),
        );
    }
    let mut db = FetchPlan::new(
        &Layout {
            mount_path: "/var/run/flyte/secrets".into(),
            env_prefix: "_UNION_".into(),
        },
        vec![vault(VaultEngine::Db)],
    );
    db.access = FileAccess::Group;
    for key in ["username", "password"] {
        db.push("", SecretRequest::new("database/creds/flyte-db", key))
            .expect("db request");
    }
    save(Target::Plan, "vault-db.json", db.to_json().as_bytes());
    let text = plan.to_json();
    let doc: Value = serde_json::from_str(&text).expect("plan JSON");
    for (name, edit) in [
        ("version-2", json!({"version": 2})),
        ("unknown-field", json!({"surprise": 1})),
        ("relative-mount", json!({"mountPath": "etc/flyte"})),
        ("no-backends", json!({"backends": []})),
        (
            "traversal-file",
            json!({"secrets": [{"request": {"group": "g", "key": "k"}, "files": ["../k"]}]}),
        ),
        (
            "target-mismatch",
            json!({"secrets": [{"request": {"group": "g", "key": "k"}, "files": ["other/k"]}]}),
        ),
        (
            "duplicate-targets",
            json!({"secrets": [{"request": {"group": "g", "key": "k"}, "files": ["g/k", "g/k"]}]}),
        ),
        (
            "conflict",
            json!({"secrets": [
                {"request": {"group": "g", "key": "k"}, "files": ["g/k"]},
                {"request": {"group": "G", "key": "k"}, "files": ["g/k", "G/k"]}]}),
        ),
        ("owner-negative", json!({"owner": {"uid": -1, "gid": 0}})),
        ("access-other", json!({"access": "world"})),
    ] {
        let mut d = doc.clone();
        for (k, val) in edit.as_object().expect("object") {
            d[k] = val.clone();
        }
        save(
            Target::Plan,
            &format!("{name}.json"),
            d.to_string().as_bytes(),
        );
    }
    save(
        Target::Plan,
        "doc-example.json",
        br#"{"version":1,"mountPath":"/etc/flyte/secrets","envPrefix":"_FSEC_","access":"owner","owner":{"uid":1000,"gid":1000},"scope":{"org":"flyte","domain":"development","project":"flytesnacks"},"backends":[{"type":"kubernetes","managedNamespace":"flyte"},{"type":"aws","region":"us-east-2"},{"type":"vault","address":"https://vault:8200","auth":{"method":"kubernetes","role":"flyte"},"defaultEngine":"kv2"}],"timeouts":{"requestSeconds":10,"deadlineSeconds":60},"secrets":[{"annotation":"flyte.secrets/s0","request":{"group":"user-info","key":"user_secret","mountRequirement":"ENV_VAR"},"files":["user-info/user_secret"],"env":["_FSEC_USER-INFO_USER_SECRET"]},{"annotation":"flyte.secrets/s1","request":{"group":"db","groupVersion":"kv2","key":"password","mountRequirement":"FILE"},"files":["db/password","db/kv2/password"]}]}"#,
    );
}
