//! Re-invocation (`reinvocationPolicy: IfNeeded`): the pod was injected before, so no second
//! agent; only containers added since (by another webhook) that lack the secrets volume are
//! wired, and wrapped only when the pod already has the agent binary's volume (never
//! args-only: none of them is the Flyte task container). A wrapped late container gets the
//! agent's own plan env, as written at injection, and late containers that cannot read the
//! files the agent will write are named in a warning.

use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::FetchPlan;
use k8s_openapi::api::core::v1::PodSpec;

use super::owner::late_reader_warnings;
use super::wiring::{AppWiring, wire_all};
use super::wrap::{BIN_VOLUME_NAME, Wrapping};
use super::{AGENT_CONTAINER, Denial, Mutation, Patch, VOLUME_NAME};
use crate::config::Settings;
use crate::json::Part;

/// The patch wiring the late containers, or `None` when every container is wired.
pub(super) fn rewire(
    spec: &PodSpec,
    plan: &FetchPlan,
    plan_json: &str,
    app: &AppWiring<'_>,
    settings: &Settings,
) -> Result<Option<Mutation>, Denial> {
    let has_bin = spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == BIN_VOLUME_NAME);
    // The agent's plan env as injected (already escaped), so `agent exec` in a late
    // container reads the very plan the agent wrote the files from.
    let plan_env = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == AGENT_CONTAINER)
        .and_then(|a| a.env.iter().flatten().find(|e| e.name == PLAN_ENV))
        .filter(|e| e.value.is_some())
        .map(Part::Borrowed)
        .unwrap_or_else(|| Part::Owned(Wrapping::plan_env(plan_json)));
    let mut wrapping = Wrapping::new(plan_env, &app.unserved, settings, has_bin, None, true);
    let mut ops = Patch::with_capacity(1024);
    wire_all(&mut ops, spec, app, settings, true, &mut wrapping)?;
    if ops.is_empty() {
        return Ok(None);
    }
    let late: Vec<_> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name != AGENT_CONTAINER)
        .filter(|c| {
            c.volume_mounts
                .iter()
                .flatten()
                .all(|m| m.name != VOLUME_NAME)
        })
        .collect();
    let mut warnings = late_reader_warnings(spec, &late);
    warnings.extend(wrapping.warnings(&app.unserved, settings));
    Ok(Some(Mutation {
        patch: ops,
        warnings,
        secrets: plan.secrets.len(),
        rewired: true,
        wrapped: wrapping.wrapped,
    }))
}
