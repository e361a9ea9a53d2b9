//! The app containers' side of the injection: the env vars every container gets, the
//! read-only mount of the secrets volume, and the patch operations that wire one container
//! (our env first, same-named vars replaced; the `agent exec` command where [`super::wrap`]
//! decided so).

use std::collections::BTreeSet;

use flyte_secret_spec::MountRequirement;
use flyte_secret_spec::backend::secret_key_refs;
use flyte_secret_spec::naming::{EnvValue, Layout};
use flyte_secret_spec::plan::{FetchPlan, PlannedSecret};
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, PodSpec, SecretKeySelector, VolumeMount,
};

use super::common::{plain_env, same_path};
use super::patch::Patch;
use super::wrap::{ContainerWrap, Unserved, Wrapping};
use super::{AGENT_CONTAINER, Denial, VOLUME_NAME};
use crate::config::Settings;
use crate::json::{self, Part, Written};

/// What every app container of one admission gets.
#[derive(Debug)]
pub(super) struct AppWiring<'p> {
    /// The env vars, in order, without duplicates.
    pub(super) env: &'p [Written<EnvVar>],
    /// The secrets volume, read-only at the mount path.
    pub(super) mount: &'p Written<VolumeMount>,
    /// The ENV_VAR secrets only `agent exec` can deliver.
    pub(super) unserved: Vec<Unserved<'p>>,
}

impl<'p> AppWiring<'p> {
    /// The wiring of a derived plan: `env` from [`app_env`], `unserved` from
    /// [`super::wrap::unserved`] (indices into `plan`'s secrets) and `mount` from
    /// [`super::common::secrets_mount`], all derived once per plan ([`super::cache::Planned`]).
    pub(super) fn new(
        plan: &'p FetchPlan,
        env: &'p [Written<EnvVar>],
        unserved: &[(usize, bool)],
        mount: &'p Written<VolumeMount>,
    ) -> Self {
        Self {
            env,
            mount,
            unserved: unserved
                .iter()
                .map(|&(index, by_ref)| Unserved {
                    planned: &plan.secrets[index],
                    by_ref,
                })
                .collect(),
        }
    }
}

/// The env vars every app container gets, in order, a name given by one request only (the
/// first). ENV_VAR values go through `secretKeyRef`s where they can carry them
/// ([`secret_key_refs`]: a Flyte 2 managed secret gets one per scope, under the same name,
/// the most specific last so that the kubelet's last definition found wins); [`super::wrap`]
/// covers the others, and those a later backend may serve instead.
pub(super) fn app_env(
    plan: &FetchPlan,
    namespace: Option<&str>,
    settings: &Settings,
) -> Vec<EnvVar> {
    let layout = &settings.layout;
    let mut env: Vec<EnvVar> = Vec::new();
    let mut seen = BTreeSet::new();
    // The first definition of a name wins, except that one request's `secretKeyRef`s may
    // share a name (a managed secret's per-scope references, meant to stack).
    let mut add = |env: &mut Vec<EnvVar>, vars: Vec<EnvVar>| {
        let mut batch: Vec<EnvVar> = Vec::new();
        for e in vars {
            let stacks = |b: &EnvVar| b.value_from.is_some() && e.value_from.is_some();
            let clash = batch
                .iter()
                .any(|b| b.name == e.name && (*b == e || !stacks(b)));
            if !seen.contains(&e.name) && !clash {
                batch.push(e);
            }
        }
        seen.extend(batch.iter().map(|e| e.name.clone()));
        env.extend(batch);
    };
    let common = layout.common_env().into_iter();
    for (name, value) in common {
        add(&mut env, vec![plain_env(name, value)]);
    }
    for planned in &plan.secrets {
        let req = &planned.request;
        let mut vars = Vec::new();
        // The plan's files are the naming rules' (validated with the plan).
        let wires = layout.env_wiring_to(req, &planned.files[0]);
        let refs = secret_key_refs(&settings.backends, req, namespace, plan.scope.as_ref())
            .map(|(refs, _)| refs)
            .unwrap_or_default();
        for wire in wires {
            match wire.value {
                EnvValue::FilePath(path) => vars.push(plain_env(&wire.name, path)),
                EnvValue::SecretValue => vars.extend(refs.iter().map(|r| EnvVar {
                    name: wire.name.clone(),
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: r.name.clone(),
                            key: r.key.clone(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                })),
            }
        }
        if settings.file_env && req.mount_requirement != MountRequirement::EnvVar {
            vars.extend(file_env(layout, planned));
        }
        add(&mut env, vars);
    }
    env
}

/// `<NAME>_FILE=<path of the primary file>` (the Postgres/MySQL image convention), NAME being
/// `env_var` when set, else the flytekit env var name; none when that name is not one every
/// Kubernetes version accepts (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
fn file_env(layout: &Layout, planned: &PlannedSecret) -> Option<EnvVar> {
    let req = &planned.request;
    let name = if req.env_var.is_empty() {
        layout.value_env_names(req).into_iter().next()?
    } else {
        req.env_var.clone()
    };
    let name = format!("{name}_FILE");
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '-' | '.' | '_'))
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    valid.then(|| plain_env(&name, layout.absolute(&planned.files[0])))
}

/// Refuses a container that already mounts something at our mount path.
pub(super) fn check_mounts(c: &Container, settings: &Settings) -> Result<(), Denial> {
    for m in c.volume_mounts.iter().flatten() {
        if same_path(&m.mount_path, &settings.layout.mount_path) {
            return Err(Denial::Conflict(format!(
                "container {} already mounts volume {} at {} (is another secret webhook \
                 installed?)",
                c.name, m.name, m.mount_path
            )));
        }
    }
    Ok(())
}

/// Wires every container and init container (our agent excepted), wrapping what
/// `wrapping` decides. With `only_missing`, containers that already mount the volume are
/// left alone.
pub(super) fn wire_all(
    ops: &mut Patch,
    spec: &PodSpec,
    app: &AppWiring<'_>,
    settings: &Settings,
    only_missing: bool,
    wrapping: &mut Wrapping<'_>,
) -> Result<(), Denial> {
    let lists = [
        ("containers", Some(&spec.containers)),
        ("initContainers", spec.init_containers.as_ref()),
    ];
    for (field, list) in lists {
        for (i, c) in list.into_iter().flatten().enumerate() {
            if c.name == AGENT_CONTAINER {
                continue;
            }
            let wired = c
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.name == VOLUME_NAME);
            if only_missing && wired {
                continue;
            }
            if only_missing {
                check_mounts(c, settings)?;
            }
            let w = wrapping.decide(c, settings);
            let mut index = itoa::Buffer::new();
            let base = ["spec", field, index.format(i)];
            // References to what is written once per plan, not copies: the plan env var
            // holds the whole plan.
            let mut env: Vec<Part<'_, EnvVar>> = app.env.iter().map(Part::Written).collect();
            let mount = Part::Written(app.mount);
            if w.wraps() {
                env.push(wrapping.plan_env.by_ref());
                let mounts = [mount, Part::Borrowed(&wrapping.bin_mount)];
                wire_container(ops, &base, c, &env, &mounts, &w);
            } else {
                wire_container(ops, &base, c, &env, &[mount], &w);
            }
        }
    }
    Ok(())
}

fn wire_container(
    ops: &mut Patch,
    base: &[&str],
    c: &Container,
    env: &[Part<'_, EnvVar>],
    mounts: &[Part<'_, VolumeMount>],
    wrap: &ContainerWrap,
) {
    append_all(ops, base, "volumeMounts", c.volume_mounts.is_some(), mounts);
    // `add` replaces an existing member: command and exec commands are set whole.
    if let Some(command) = &wrap.command {
        ops.add_in(base, &["command"], command);
    }
    for (path, command) in &wrap.hooks {
        ops.add_in(base, path, command);
    }
    match &c.env {
        None => ops.add_json_in(base, &["env"], |out| json::write_all(out, env)),
        Some(existing) => {
            let ours: BTreeSet<&str> = env.iter().map(|e| e.name.as_str()).collect();
            let mut index = itoa::Buffer::new();
            for (i, e) in existing.iter().enumerate().rev() {
                if ours.contains(e.name.as_str()) {
                    ops.remove_in(base, &["env", index.format(i)]);
                }
            }
            for (i, e) in env.iter().enumerate() {
                let tail = ["env", index.format(i)];
                ops.add_json_in(base, &tail, |out| e.write(out));
            }
        }
    }
}

/// Appends items to the array `field` of the object at `base`, creating it when absent.
pub(super) fn append_all<T: serde::Serialize>(
    ops: &mut Patch,
    base: &[&str],
    field: &str,
    exists: bool,
    items: &[Part<'_, T>],
) {
    if exists {
        for item in items {
            ops.add_json_in(base, &[field, "-"], |out| item.write(out));
        }
    } else {
        ops.add_json_in(base, &[field], |out| json::write_all(out, items));
    }
}
