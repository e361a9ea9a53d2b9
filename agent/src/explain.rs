//! `agent fetch --explain`: for each request of a plan, which backends would be asked (and
//! why the others are not), what each would read — for Kubernetes, where the request comes
//! from in the mode given (a task pod's kubelet volume file or broker annotation, or in API
//! mode the Secret and data key, the managed-secret names per scope), the AWS SecretId,
//! version and field, the Vault engine, API path and field — and which files and env vars
//! would be written. Nothing is fetched, so no value can appear.

use std::fmt::Write as _;

use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::{
    Backend, KubeDelivery, KubernetesBackend, VaultEngine, aws_ambiguity, aws_ref, route,
};
use flyte_secret_spec::plan::{FetchPlan, PlannedSecret};
use flyte_secret_spec::scoped::k8s_secret_name;

use crate::backends::kube::{KubeAccess, PodSettings};
use crate::backends::vault::kv2_data_path;

/// The explanation of every request of `plan`, one block per request, Kubernetes requests
/// as `kube` (pod or API mode) reads them.
pub fn explain(plan: &FetchPlan, kube: &KubeAccess) -> String {
    let layout = plan.layout();
    let mut out = String::new();
    for secret in &plan.secrets {
        let req = &secret.request;
        let _ = writeln!(
            out,
            "secret {} ({})",
            req.name(),
            annotation(&secret.annotation)
        );
        if let Some(warning) = aws_ambiguity(req).filter(|_| has_aws(plan)) {
            let _ = writeln!(out, "  warning: {warning}");
        }
        for (i, backend) in plan.backends.iter().enumerate() {
            match route(&plan.backends, backend, req) {
                Some(reason) => {
                    let _ = writeln!(out, "  {}. {}: {reason}", i + 1, backend.kind());
                }
                None => {
                    let what = match (backend, kube) {
                        (Backend::Kubernetes(k), KubeAccess::Pod(pod)) => in_pod(k, pod, secret),
                        _ => reads(backend, req, plan),
                    };
                    let _ = writeln!(out, "  {}. {}: {what}", i + 1, backend.kind());
                }
            }
        }
        let files: Vec<String> = secret.files.iter().map(|f| layout.absolute(f)).collect();
        let _ = writeln!(out, "  files: {}", files.join(", "));
        if !secret.env.is_empty() {
            let _ = writeln!(out, "  env: {}", secret.env.join(", "));
        }
    }
    if let Ok(aggregates) = plan.aggregate_files() {
        for a in aggregates {
            let keys: Vec<&str> = a.entries.iter().map(|(k, _)| k.as_str()).collect();
            let _ = writeln!(
                out,
                "aggregate {} file {}: keys {}",
                a.format,
                layout.absolute(&a.path),
                keys.join(", ")
            );
        }
    }
    out
}

fn annotation(a: &str) -> &str {
    if a.is_empty() { "from flags" } else { a }
}

fn has_aws(plan: &FetchPlan) -> bool {
    plan.backends.iter().any(|b| matches!(b, Backend::Aws(_)))
}

/// Where a task pod's agent gets a Kubernetes request: its kubelet volume file, or the
/// broker (by annotation).
fn in_pod(k: &KubernetesBackend, pod: &PodSettings, secret: &PlannedSecret) -> String {
    let req = &secret.request;
    let key = KubernetesBackend::data_key(req);
    let inside = match req.pointer() {
        Some(Ok(p)) if p.tokens().len() > 1 => {
            format!(", field /{} of its JSON", p.tokens()[1..].join("/"))
        }
        _ => String::new(),
    };
    match k.delivery(req) {
        KubeDelivery::Volume => format!(
            "Secret {} of the pod's namespace, data key {key:?}{inside}, from the kubelet's volume file {}",
            req.group,
            pod.secrets_dir.join(&req.group).join(&key).display()
        ),
        KubeDelivery::Broker => {
            let what = if req.is_groupless() {
                "managed secret (scope from the pod's namespace)".to_string()
            } else {
                format!(
                    "Secret {}/{}, data key {key:?}",
                    k.namespace.as_deref().unwrap_or_default(),
                    req.group
                )
            };
            match (&k.broker, secret.annotation.as_str()) {
                (None, _) => format!("{what}: not found here, no broker configured"),
                (Some(_), "") => format!(
                    "{what}: refused, no pod annotation to ask the broker for (use --kubeconfig)"
                ),
                (Some(b), annotation) => {
                    format!("{what}{inside}, from the broker {} as {annotation}", b.url)
                }
            }
        }
    }
}

/// What `backend` would read for `req` (Kubernetes: through the API).
fn reads(backend: &Backend, req: &SecretRequest, plan: &FetchPlan) -> String {
    if req.is_groupless() {
        return managed(backend, req, plan);
    }
    let field = |f: Option<String>| f.map(|p| format!(", field {p}")).unwrap_or_default();
    match backend {
        Backend::Kubernetes(k) => {
            let ns = k.namespace.as_deref().unwrap_or("<the pod's namespace>");
            match req.pointer() {
                Some(Ok(p)) => {
                    let rest: Vec<&str> = p.tokens()[1..].iter().map(String::as_str).collect();
                    let inside = if rest.is_empty() {
                        String::new()
                    } else {
                        format!(", field /{} of its JSON", rest.join("/"))
                    };
                    format!(
                        "Secret {ns}/{}, data key {:?}{inside}",
                        req.group,
                        p.tokens()[0]
                    )
                }
                _ => format!("Secret {ns}/{}, data key {:?}", req.group, req.key),
            }
        }
        Backend::Aws(_) => match aws_ref(req) {
            Ok(r) => {
                let version = match (&r.version_id, &r.version_stage) {
                    (Some(id), _) => format!("version id {id}"),
                    (None, Some(stage)) => format!("stage {stage}"),
                    (None, None) => "stage AWSCURRENT".into(),
                };
                format!(
                    "SecretId {:?}, {version}{}",
                    r.secret_id,
                    field(r.field.map(|p| p.to_string()))
                )
            }
            Err(e) => format!("refused: {e}"),
        },
        Backend::Vault(v) => {
            let engine = VaultEngine::from_group_version(&req.group_version, v.default_engine);
            let group = req.group.trim_matches('/');
            let path = match engine {
                Some(VaultEngine::Kv2) => kv2_data_path(group),
                _ => group.to_string(),
            };
            let engine = match engine {
                Some(VaultEngine::Kv1) => "kv1",
                Some(VaultEngine::Kv2) => "kv2",
                Some(VaultEngine::Db) => "db (database credentials)",
                None => "?",
            };
            let what = match req.pointer() {
                Some(Ok(p)) => format!("field {p} of the data"),
                _ => format!("key {:?}", req.key),
            };
            format!("{engine} read of {path:?}, {what}")
        }
        Backend::Gcp(g) => match flyte_secret_spec::backend::gcp_ref(req) {
            Ok(r) => format!(
                "Secret Manager version {}{} (key ignored unless a JSON Pointer)",
                r.resource(g.project.as_deref().unwrap_or("<the credentials' project>")),
                field(r.field.map(|p| p.to_string()))
            ),
            Err(e) => format!("refused: {e}"),
        },
        Backend::Azure(a) => match flyte_secret_spec::backend::azure_ref(req) {
            Ok(r) => format!(
                "Key Vault secret {}/secrets/{}{}{} (key ignored unless a JSON Pointer)",
                r.vault
                    .as_deref()
                    .or(a.vault_url.as_deref())
                    .unwrap_or("<no vault URL configured>"),
                r.name,
                if r.version.is_empty() {
                    ", current version".to_string()
                } else {
                    format!(", version {}", r.version)
                },
                field(r.field.map(|p| p.to_string()))
            ),
            Err(e) => format!("refused: {e}"),
        },
    }
}

/// The names a Flyte 2 managed secret is looked up under, most specific scope first.
fn managed(backend: &Backend, req: &SecretRequest, plan: &FetchPlan) -> String {
    let Some(scope) = &plan.scope else {
        return "refused: a managed secret needs the plan's scope (org/project/domain)".into();
    };
    let names: Vec<String> = scope
        .lookup_order()
        .iter()
        .map(|s| {
            let id = s.encode_name(&req.key);
            match backend {
                Backend::Kubernetes(k) => format!(
                    "Secret {}/{} key {id}",
                    k.managed_namespace,
                    k8s_secret_name(&id)
                ),
                Backend::Aws(_) => format!("SecretId {id}"),
                Backend::Vault(v) => format!("{}/data/{id}", v.managed_mount.trim_matches('/')),
                Backend::Gcp(g) => format!(
                    "projects/{}/secrets/{id}/versions/latest",
                    g.project.as_deref().unwrap_or("<project>")
                ),
                Backend::Azure(a) => format!(
                    "{}/secrets/{}",
                    a.vault_url.as_deref().unwrap_or("<vault>"),
                    flyte_secret_spec::backend::azure_managed_name(
                        &s.org, &s.domain, &s.project, &req.key
                    )
                ),
            }
        })
        .collect();
    format!("managed secret, scopes in order: {}", names.join(" → "))
}
