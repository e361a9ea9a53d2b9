//! The fetch plan for a pod: each request validated alone (so a denial names its
//! annotation), then all together; the Flyte 2 scope from labels or namespace; and the size
//! check of the plan's env var.

use super::meta::Meta;
use super::owner::Identity;
use super::{Denial, LABEL_DOMAIN, LABEL_ORG, LABEL_PROJECT};
use crate::config::Settings;
use flyte_secret_spec::aggregate::{self, Format};
use flyte_secret_spec::backend::{Backend, VaultBackend};
use flyte_secret_spec::plan::{FetchPlan, MAX_PLAN_ENV_BYTES, PlanError};
use flyte_secret_spec::request::SecretRequest;
use flyte_secret_spec::scoped::Scope;

/// The pod's `flyte-secret-agent/aggregate` annotation, else the install's setting.
fn aggregate_choice(meta: &Meta<'_>, settings: &Settings) -> Result<Option<Format>, Denial> {
    let annotation = meta.annotation(aggregate::ANNOTATION);
    match annotation {
        None => Ok(settings.aggregate),
        Some(choice) => aggregate::parse_choice(choice).map_err(|e| Denial::Request {
            annotation: aggregate::ANNOTATION.into(),
            reason: e.to_string(),
        }),
    }
}

pub(super) fn build_plan(
    meta: &Meta<'_>,
    namespace: Option<&str>,
    decoded: &[(String, SecretRequest)],
    identity: &Identity,
    settings: &Settings,
) -> Result<FetchPlan, Denial> {
    let mut plan = FetchPlan::new(&settings.layout, backends_for(namespace, settings)?);
    plan.timeouts = settings.timeouts;
    plan.aggregate = aggregate_choice(meta, settings)?;
    plan.owner = Some(identity.owner);
    plan.access = identity.access;
    if decoded.iter().any(|(_, r)| r.is_groupless()) {
        plan.scope = scope(meta, namespace, settings);
    }
    // Fast path: every request added and the whole plan validated once. Only when that fails
    // is the plan built again one request at a time, so that the denial names the annotation
    // it came from. (A plan that validates has no invalid request alone either: the checks per
    // request are the same and a subset of conflict-free secrets is conflict-free; so both
    // paths admit the same pods with the same plan.)
    let empty = plan.clone();
    let all = decoded
        .iter()
        .try_for_each(|(key, request)| plan.push(key.clone(), request.clone()))
        .and_then(|()| plan.validate_pushed());
    if all.is_ok() {
        return Ok(plan);
    }
    let mut plan = empty.clone();
    // Each request alone first, so a denial names the annotation it came from.
    for (key, request) in decoded {
        let mut single = empty.clone();
        let checked = single
            .push(key.clone(), request.clone())
            .and_then(|()| single.validate_pushed());
        if let Err(e) = checked {
            let hint = if matches!(e, PlanError::NoScope(_)) {
                " (the pod has no `project` and `domain` labels to take the scope from)"
            } else {
                ""
            };
            return Err(Denial::Request {
                annotation: key.clone(),
                reason: format!("{e}{hint}"),
            });
        }
        plan.push(key.clone(), request.clone())
            .map_err(|e| Denial::Request {
                annotation: key.clone(),
                reason: e.to_string(),
            })?;
    }
    plan.validate_pushed().map_err(|source| {
        let names: Vec<String> = match &source {
            PlanError::Conflict { first, second, .. } => vec![first.clone(), second.clone()],
            _ => Vec::new(),
        };
        let annotations: Vec<&str> = decoded
            .iter()
            .filter(|(_, r)| names.is_empty() || names.contains(&r.name().to_string()))
            .map(|(k, _)| k.as_str())
            .collect();
        Denial::Plan {
            annotations: annotations.join(", "),
            source,
        }
    })?;
    Ok(plan)
}

/// The install's backends for a pod of `namespace`: a Vault role template
/// (`flyte-{{namespace}}`) rendered, so that each namespace logs in with a role of its own
/// whose policy Vault enforces.
fn backends_for(namespace: Option<&str>, settings: &Settings) -> Result<Vec<Backend>, Denial> {
    settings
        .backends
        .iter()
        .map(|backend| match backend {
            Backend::Vault(vault) => {
                let auth = vault
                    .auth
                    .for_namespace(namespace.unwrap_or_default())
                    .map_err(|reason| Denial::Request {
                        annotation: "(Vault role)".into(),
                        reason,
                    })?;
                Ok(Backend::Vault(VaultBackend {
                    auth,
                    ..vault.clone()
                }))
            }
            other => Ok(other.clone()),
        })
        .collect()
}

/// The Flyte 2 scope: the pod's `organization`/`project`/`domain` labels; for Flyte 1 pods
/// (no such labels) optionally the `<project>-<domain>` namespace, split at the last `-`.
pub(super) fn scope(
    meta: &Meta<'_>,
    namespace: Option<&str>,
    settings: &Settings,
) -> Option<Scope> {
    let label = |k: &str| meta.label(k).filter(|v| !v.is_empty()).map(String::from);
    let org = label(LABEL_ORG).unwrap_or_else(|| settings.scope.default_org.clone());
    match (label(LABEL_PROJECT), label(LABEL_DOMAIN)) {
        (project, Some(domain)) => Some(Scope {
            org,
            domain,
            project: project.unwrap_or_default(),
        }),
        (None, None) if settings.scope.from_namespace => {
            let (project, domain) = namespace?.rsplit_once('-')?;
            (!project.is_empty() && !domain.is_empty()).then(|| Scope {
                org,
                domain: domain.into(),
                project: project.into(),
            })
        }
        // A project without a domain: let the plan's scope validation say so.
        (Some(project), None) => Some(Scope {
            org,
            domain: String::new(),
            project,
        }),
        (None, None) => None,
    }
}

/// The plan travels in an env var ([`flyte_secret_spec::env::PLAN_ENV`]): refuse what no container could start with.
pub(super) fn check_plan_size(plan: &FetchPlan, json: &str) -> Result<(), Denial> {
    let bytes = json.len();
    if bytes <= MAX_PLAN_ENV_BYTES {
        return Ok(());
    }
    let first = plan.secrets.first().map(|s| s.annotation.as_str());
    let last = plan.secrets.last().map(|s| s.annotation.as_str());
    Err(Denial::PlanTooLarge {
        annotations: match (first, last) {
            (Some(a), Some(b)) if a != b => format!("{a} … {b}"),
            (Some(a), _) => a.to_string(),
            _ => String::new(),
        },
        secrets: plan.secrets.len(),
        bytes,
        limit: MAX_PLAN_ENV_BYTES,
    })
}
