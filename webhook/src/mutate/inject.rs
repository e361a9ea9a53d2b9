//! The first injection: refuse a pod that already uses our names or mount path, then the
//! marker, the supplemental group when ownership needs one, the volumes (secrets, Vault
//! token, agent binary), every container wired, and the agent inserted first among the init
//! containers, last in the patch (with the pod's Flyte 2 run labels for its log lines),
//! followed by the refresh sidecar when the pod asks for one ([`super::refresh`]).

use flyte_secret_spec::env::{POD_LABELS_ENV, pod_labels_value};
use k8s_openapi::api::core::v1::{PodSpec, Volume};

use super::access::{self, kube_access};
use super::cache::Planned;
use super::common::plain_env;
use super::container::agent_container;
use super::identity_env;
use super::meta::Meta;
use super::owner::{Identity, add_supplemental_group};
use super::refresh;
use super::wiring::{AppWiring, append_all, check_mounts, wire_all};
use super::wrap::{self, BIN_VOLUME_NAME, Wrapping};
use super::{
    AGENT_CONTAINER, Denial, INJECTED_ANNOTATION, Mutation, Patch, TOKEN_VOLUME_NAME, VOLUME_NAME,
};
use crate::config::Settings;
use crate::json::Part;
use flyte_secret_spec::backend::{Backend, aws_ambiguity};

/// The patch injecting the agent into a pod seen for the first time.
pub(super) fn inject(
    meta: &Meta<'_>,
    spec: &PodSpec,
    planned: &Planned,
    identity: &Identity,
    app: &AppWiring<'_>,
    task: Option<&str>,
    settings: &Settings,
) -> Result<Mutation, Denial> {
    let plan = &planned.plan;
    check_conflicts(spec, settings)?;
    // The whole patch in one buffer: the agent (its plan env var holding the plan) and
    // about 2 KiB per five secrets besides.
    let mut ops = Patch::with_capacity(4096 + planned.agent.plan_env.json().len());
    ops.add(&["metadata", "annotations", INJECTED_ANNOTATION], "true");
    if let Some(gid) = identity.supplemental_group {
        add_supplemental_group(&mut ops, spec, gid);
    }
    let mut warnings: Vec<String> = identity.warning.iter().cloned().collect();
    // A request AWS would read as a name although it may mean <name>:<json-key>.
    if settings
        .backends
        .iter()
        .any(|b| matches!(b, Backend::Aws(_)))
    {
        warnings.extend(
            plan.secrets
                .iter()
                .filter_map(|s| aws_ambiguity(&s.request)),
        );
    }
    let access = kube_access(&planned.kube, settings)?;
    // The plan's volumes by reference: they are cached with it, and only serialized here.
    let mut volumes: Vec<Part<'_, Volume>> = planned.volumes.iter().map(Part::Written).collect();
    volumes.extend(access.kube.volumes.iter().map(Part::Written));
    let refresh = refresh::requested(meta, settings)?;
    let hands_over = refresh::hands_over(plan, refresh);
    if hands_over {
        volumes.push(Part::Owned(refresh::handover_volume()));
    }
    let plan_env = Part::Written(&planned.agent.plan_env);
    let mut wrapping = Wrapping::new(plan_env, &app.unserved, settings, true, task, false);
    let mut wiring = Patch::with_capacity(2048);
    wire_all(&mut wiring, spec, app, settings, false, &mut wrapping)?;
    let wraps = !wrapping.wrapped.is_empty();
    if wraps {
        volumes.push(Part::Owned(wrap::bin_volume(settings)));
    }
    append_all(
        &mut ops,
        &["spec"],
        "volumes",
        spec.volumes.is_some(),
        &volumes,
    );
    ops.append(&wiring);
    warnings.extend(wrapping.warnings(&app.unserved, settings));
    let mut agent = agent_container(
        spec,
        &planned.agent,
        identity,
        settings,
        &access,
        wraps,
        &mut warnings,
    );
    // The task's cloud workload identity, which its webhook could not give the agent.
    identity_env::hand_to(&mut agent, spec, task, settings);
    // Flyte 2's run/action/attempt/task-name labels, for the agent's log lines.
    if let Some(value) = pod_labels_value(|k| meta.label(k)) {
        agent
            .env
            .push(Part::Owned(plain_env(POD_LABELS_ENV, value)));
    }
    // The refresh sidecar, when asked for, right after the agent: it takes over the set
    // the agent published before any other container starts (and its Vault token, through
    // a volume only these two mount).
    if hands_over {
        refresh::hand_over(&mut agent);
    }
    let agent = agent.checked();
    let watch = refresh::sidecar(spec, plan, &agent, refresh, &mut warnings)?;
    // The agent is written from its parts, most of them written once per plan; the sidecar,
    // a built container, with the plan env var's value from its JSON written with the plan.
    match (spec.init_containers.is_some(), watch) {
        (true, watch) => {
            let first = ["spec", "initContainers", "0"];
            ops.add_json_in(&first, &[], |out| agent.write(out));
            if let Some(watch) = watch {
                let second = ["spec", "initContainers", "1"];
                ops.add_with(&second, &watch, planned.memo());
            }
        }
        (false, watch) => {
            // A JSON array of the agent and, when asked for, the sidecar.
            ops.add_json_in(&["spec", "initContainers"], &[], |out| {
                out.push(b'[');
                agent.write(out);
                if let Some(watch) = &watch {
                    out.push(b',');
                    crate::json::write_with(out, watch, Some(planned.memo()))
                        .expect("Kubernetes types serialize");
                }
                out.push(b']');
            });
        }
    }
    Ok(Mutation {
        patch: ops,
        warnings,
        secrets: plan.secrets.len(),
        rewired: false,
        wrapped: wrapping.wrapped,
    })
}

fn check_conflicts(spec: &PodSpec, settings: &Settings) -> Result<(), Denial> {
    for v in spec.volumes.iter().flatten() {
        if [VOLUME_NAME, TOKEN_VOLUME_NAME, BIN_VOLUME_NAME].contains(&v.name.as_str())
            || access::is_ours(&v.name)
        {
            return Err(Denial::Conflict(format!(
                "the pod already has a volume named {}",
                v.name
            )));
        }
    }
    let all = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in all {
        if c.name == AGENT_CONTAINER {
            return Err(Denial::Conflict(format!(
                "the pod already has a container named {AGENT_CONTAINER}"
            )));
        }
        check_mounts(c, settings)?;
    }
    Ok(())
}
