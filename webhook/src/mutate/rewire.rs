//! Re-invocation (`reinvocationPolicy: IfNeeded`): the pod was injected before, so no second
//! agent; only containers added since (by another webhook) that lack the secrets volume are
//! wired, and wrapped only when the pod already has the agent binary's volume.

use flyte_secret_spec::plan::FetchPlan;
use k8s_openapi::api::core::v1::PodSpec;

use super::wiring::{AppWiring, wire_all};
use super::wrap::{BIN_VOLUME_NAME, Wrapping};
use super::{Denial, Mutation, Patch};
use crate::config::Settings;

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
    let mut wrapping = Wrapping::new(plan_json, &app.unserved, settings, has_bin);
    let mut ops = Vec::new();
    wire_all(&mut ops, spec, app, settings, true, &mut wrapping)?;
    if ops.is_empty() {
        return Ok(None);
    }
    Ok(Some(Mutation {
        patch: Patch(ops),
        warnings: wrapping.warnings(&app.unserved, settings),
        secrets: plan.secrets.len(),
        rewired: true,
        wrapped: wrapping.wrapped,
    }))
}
