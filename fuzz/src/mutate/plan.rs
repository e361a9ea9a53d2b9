//! Fetch plans for the `plan` target: built with the spec's own API from random backends and
//! requests (often invalid in one specific way), or seeds edited structurally.

use std::sync::Arc;

use flyte_secret_spec::backend::{
    AwsBackend, Backend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::naming::Layout;
use flyte_secret_spec::plan::{FetchPlan, FileAccess, Owner};
use flyte_secret_spec::scoped::Scope;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};

use super::bytes::mutated_seeds;
use super::json::{apply_json, json_op};
use super::request::request;
use crate::Target;

fn backend() -> impl Strategy<Value = Backend> {
    prop_oneof![
        (prop::option::of("[a-z0-9-]{1,10}"), "[a-z]{0,6}").prop_map(|(namespace, managed)| {
            Backend::Kubernetes(KubernetesBackend {
                namespace,
                managed_namespace: if managed.is_empty() {
                    "flyte".into()
                } else {
                    managed
                },
                broker: None,
            })
        }),
        (
            prop::option::of("[a-z]{2}-[a-z]{4}-[1-3]"),
            prop::option::of(Just("http://127.0.0.1:1".to_string()))
        )
            .prop_map(|(region, endpoint)| Backend::Aws(AwsBackend { region, endpoint })),
        (
            select(&[VaultEngine::Kv1, VaultEngine::Kv2, VaultEngine::Db][..]),
            0u8..3
        )
            .prop_map(|(default_engine, auth)| {
                Backend::Vault(VaultBackend {
                    address: "https://vault:8200".into(),
                    auth: match auth {
                        0 => VaultAuth::Token { token_file: None },
                        1 => VaultAuth::Jwt {
                            role: "flyte".into(),
                            mount: "jwt".into(),
                            token_file: "/t".into(),
                        },
                        _ => VaultAuth::Kubernetes {
                            role: "flyte".into(),
                            mount: "kubernetes".into(),
                            token_file: "/t".into(),
                        },
                    },
                    namespace: None,
                    ca_cert_file: Some("/ca.pem".into()),
                    default_engine,
                    managed_mount: "secret".into(),
                    allow_insecure_http: false,
                })
            }),
    ]
}

/// A plan built with the spec's own API from random requests (requests that do not fit are
/// kept as they are, so the plan is often invalid in one specific way).
pub fn plan_json() -> impl Strategy<Value = Value> {
    (
        vec(backend(), 0..4),
        vec(request(), 0..6),
        any::<bool>(),
        prop::option::of((any::<u32>(), any::<u32>())),
        prop::option::of(("[a-z-]{0,8}", "[a-z-]{0,8}")),
        select(&["/etc/flyte/secrets", "/", "/a/", "/var/run/s"][..]),
        select(&["_FSEC_", "_UNION_"][..]),
    )
        .prop_map(|(backends, requests, group, owner, scope, mount, prefix)| {
            let layout = Layout {
                mount_path: mount.into(),
                env_prefix: prefix.into(),
            };
            let mut plan = FetchPlan::new(&layout, backends);
            plan.access = if group {
                FileAccess::Group
            } else {
                FileAccess::Owner
            };
            plan.owner = owner.map(|(uid, gid)| Owner { uid, gid });
            plan.scope = scope.map(|(d, p)| Scope::new(d, p));
            let mut raw = Vec::new();
            for (i, r) in requests.into_iter().enumerate() {
                if plan.push(format!("flyte.secrets/s{i}"), r.clone()).is_err() {
                    raw.push(json!({"request": r, "files": [r.key.clone()]}));
                }
            }
            let mut v = serde_json::to_value(&plan).expect("plans serialize");
            if let Some(Value::Array(secrets)) = v.get_mut("secrets") {
                secrets.extend(raw);
            }
            v
        })
}

/// Inputs for the plan target.
pub fn plan_inputs(corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let parsed: Arc<Vec<Value>> = Arc::new(
        corpus
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect(),
    );
    let n = parsed.len().max(1);
    let seeds_edited = (0..n, vec(json_op(), 1..6)).prop_map(move |(i, ops)| {
        let mut doc = parsed.get(i).cloned().unwrap_or(Value::Null);
        for op in &ops {
            apply_json(&mut doc, op);
        }
        serde_json::to_vec(&doc).expect("serializes")
    });
    let built = (plan_json(), vec(json_op(), 0..3)).prop_map(|(mut doc, ops)| {
        for op in &ops {
            apply_json(&mut doc, op);
        }
        serde_json::to_vec(&doc).expect("serializes")
    });
    prop_oneof![
        3 => seeds_edited,
        3 => built,
        2 => mutated_seeds(Target::Plan, corpus),
    ]
    .boxed()
}
