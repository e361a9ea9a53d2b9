//! The mutation, pure: a Flyte task pod and the settings in, an RFC 6902 patch and
//! AdmissionReview warnings out (or a denial). No I/O, no secret values: the webhook only
//! reads request metadata from the pod's annotations; the agent fetches values later.
//!
//! For a pod labelled `inject-flyte-secrets: "true"` with `flyte.secrets/s<N>` annotations:
//! - one `flyte-secrets` emptyDir (`medium: Memory`);
//! - the agent init container, first, with the fetch plan in `FLYTE_SECRET_PLAN`, the volume
//!   read-write and the pod's service-account token mount copied read-only;
//! - in every other container and init container: the volume read-only at the mount path and
//!   the env wiring (`FLYTE_SECRETS_*`, file paths, `secretKeyRef`s). Same-named env vars are
//!   replaced and ours are put first, as Flyte 2's webhook does (the webhook's value wins, and
//!   the user's own env vars can still reference ours with `$(NAME)`);
//! - the marker annotation `flyte-secret-agent/injected: "true"`;
//! - for ENV_VAR secrets no `secretKeyRef` can serve: containers run under `agent exec`
//!   (see [`wrap`]), with the agent binary's volume read-only and the plan in their env.
//!
//! Patch operations create parents before children (`/spec/volumes`, `/spec/initContainers`,
//! a container's `env`/`volumeMounts`) and address existing array elements by their index in
//! the request's object: removals run from the highest index down, and the agent is inserted
//! at `/spec/initContainers/0` last, after the existing init containers were wired.
//!
//! Re-invocation (`reinvocationPolicy: IfNeeded`): a pod that carries the marker or our init
//! container is not injected again; only containers added since (by another webhook) that lack
//! the volume are wired.

use std::collections::BTreeSet;

use flyte_secret_spec::annotation::{self, AnnotationError};
use flyte_secret_spec::backend::{
    Backend, SERVICE_ACCOUNT_TOKEN_FILE, VaultAuth, secret_key_ref_possible,
};
use flyte_secret_spec::naming::EnvValue;
use flyte_secret_spec::plan::{
    FetchPlan, FileAccess, MAX_PLAN_ENV_BYTES, Owner, PLAN_ENV, PlanError,
};
use flyte_secret_spec::request::SecretRequest;
use flyte_secret_spec::scoped::Scope;
use flyte_secret_spec::{INJECT_LABEL, INJECT_LABEL_VALUE};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, Pod, PodSpec,
    ProjectedVolumeSource, SeccompProfile, SecretKeySelector, SecurityContext,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use thiserror::Error;

use crate::config::{AGENT_LOG_FORMAT_ENV, COPY_SELF_ENV, Settings};

mod owner;
pub mod patch;
mod plan;
pub mod wrap;

use owner::{Identity, add_supplemental_group, identity};
pub use patch::{Op, Patch};
use plan::build_plan;
use wrap::{BIN_VOLUME_NAME, ContainerWrap, Wrapping};

/// Name of the agent init container.
pub const AGENT_CONTAINER: &str = "flyte-secret-agent";
/// Name of the in-memory secrets volume.
pub const VOLUME_NAME: &str = "flyte-secrets";
/// Name of the optional projected token volume for Vault jwt auth.
pub const TOKEN_VOLUME_NAME: &str = "flyte-secret-agent-token";
/// Annotation marking an injected pod.
pub const INJECTED_ANNOTATION: &str = "flyte-secret-agent/injected";
/// Where the ServiceAccount admission plugin mounts the API token.
pub const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Pod labels carrying the Flyte 2 scope.
pub const LABEL_ORG: &str = "organization";
/// See [`LABEL_ORG`].
pub const LABEL_PROJECT: &str = "project";
/// See [`LABEL_ORG`].
pub const LABEL_DOMAIN: &str = "domain";

/// Why a pod is refused. Every message names the annotation(s) and the reason; none
/// carries a value (requests have none).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Denial {
    /// An annotation does not decode.
    #[error(transparent)]
    Annotation(#[from] AnnotationError),
    /// One request is invalid or cannot be served.
    #[error("{annotation}: {reason}")]
    Request {
        /// The annotation key.
        annotation: String,
        /// The spec's message, plus a hint.
        reason: String,
    },
    /// The requests together are invalid (conflicting targets).
    #[error("{annotations}: {source}")]
    Plan {
        /// The annotations involved.
        annotations: String,
        /// The spec's error.
        source: PlanError,
    },
    /// The pod already uses a name or path the injection needs.
    #[error("cannot inject secrets: {0}")]
    Conflict(String),
    /// The object has no pod spec.
    #[error("the pod has no spec")]
    NoSpec,
    /// The plan would not fit in the agent's environment variable.
    #[error(
        "{annotations}: the fetch plan for these {secrets} secrets is {bytes} bytes, over the \
         {limit} bytes one environment variable can hold (Linux MAX_ARG_STRLEN): the agent \
         could not start; split the secrets over several tasks or shorten their names"
    )]
    PlanTooLarge {
        /// The first and last annotations.
        annotations: String,
        /// Number of requests.
        secrets: usize,
        /// Plan size.
        bytes: usize,
        /// [`MAX_PLAN_ENV_BYTES`].
        limit: usize,
    },
}

/// Why nothing was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// No `inject-flyte-secrets: "true"` label.
    NotLabelled,
    /// Labelled, but no `flyte.secrets/s<N>` annotation.
    NoSecrets,
    /// Injected before, and every container is wired.
    AlreadyInjected,
}

impl Skip {
    /// For logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotLabelled => "not labelled",
            Self::NoSecrets => "no secret annotations",
            Self::AlreadyInjected => "already injected",
        }
    }
}

/// A change to the pod.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// The JSONPatch.
    pub patch: Patch,
    /// AdmissionReview warnings (names and paths only).
    pub warnings: Vec<String>,
    /// Number of secret requests.
    pub secrets: usize,
    /// True when only containers added after the first injection were wired.
    pub rewired: bool,
    /// Containers that run something under `agent exec`.
    pub wrapped: Vec<String>,
}

/// What [`mutate`] decided.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Leave the pod as it is.
    Skipped(Skip),
    /// Apply this patch.
    Patched(Mutation),
}

/// The mutation: see the module docs. `namespace` is the request's namespace.
pub fn mutate(pod: &Pod, namespace: Option<&str>, settings: &Settings) -> Result<Outcome, Denial> {
    let meta = &pod.metadata;
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(INJECT_LABEL))
        .is_some_and(|v| v == INJECT_LABEL_VALUE);
    if !labelled {
        return Ok(Outcome::Skipped(Skip::NotLabelled));
    }
    let decoded = annotation::decode_all(
        meta.annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )?;
    if decoded.is_empty() {
        return Ok(Outcome::Skipped(Skip::NoSecrets));
    }
    let spec = pod.spec.as_ref().ok_or(Denial::NoSpec)?;
    let namespace = namespace.or(meta.namespace.as_deref());
    let identity = identity(spec, settings);
    let plan = build_plan(pod, namespace, &decoded, &identity, settings)?;
    // Serialized once: the agent gets it, and so does every container `agent exec` wraps.
    let plan_json = plan.to_json();
    check_plan_size(&plan, &plan_json)?;
    let mut warnings = Vec::new();
    let env = app_env(&plan, namespace, settings);
    let unserved = wrap::unserved(&plan, namespace, settings);
    let mount = VolumeMount {
        name: VOLUME_NAME.into(),
        mount_path: settings.layout.mount_path.clone(),
        read_only: Some(true),
        ..Default::default()
    };

    // Injected before: our volume is there, with our marker or our agent. A marker without
    // the volume (copied or set by hand) is not ours: wiring containers to a volume the pod
    // lacks would make the API server reject the pod, so such a pod is injected normally.
    let has_volume = spec.volumes.iter().flatten().any(|v| v.name == VOLUME_NAME);
    let injected = has_volume
        && (meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(INJECTED_ANNOTATION))
            .is_some_and(|v| v == "true")
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == AGENT_CONTAINER));

    let mut ops = Vec::new();
    if injected {
        let has_bin = spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == BIN_VOLUME_NAME);
        let mut wrapping = Wrapping::new(&plan_json, &unserved, settings, has_bin);
        wire_all(&mut ops, spec, &env, &mount, settings, true, &mut wrapping)?;
        if ops.is_empty() {
            return Ok(Outcome::Skipped(Skip::AlreadyInjected));
        }
        warnings.extend(wrapping.warnings(&unserved, settings));
        return Ok(Outcome::Patched(Mutation {
            patch: Patch(ops),
            warnings,
            secrets: plan.secrets.len(),
            rewired: true,
            wrapped: wrapping.wrapped,
        }));
    }

    check_conflicts(spec, settings)?;
    ops.push(Op::add(
        &["metadata", "annotations", INJECTED_ANNOTATION],
        "true",
    ));
    if let Some(gid) = identity.supplemental_group {
        add_supplemental_group(&mut ops, spec, gid);
    }
    if let Some(w) = &identity.warning {
        warnings.push(w.clone());
    }
    let mut volumes = vec![Volume {
        name: VOLUME_NAME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(settings.volume_size_limit.clone()),
        }),
        ..Default::default()
    }];
    if let Some(token) = &settings.vault_token {
        volumes.push(Volume {
            name: TOKEN_VOLUME_NAME.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(token.audience.clone()),
                        expiration_seconds: Some(token.expiration_seconds),
                        path: "token".into(),
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut wrapping = Wrapping::new(&plan_json, &unserved, settings, true);
    let mut wiring = Vec::new();
    wire_all(
        &mut wiring,
        spec,
        &env,
        &mount,
        settings,
        false,
        &mut wrapping,
    )?;
    let wraps = !wrapping.wrapped.is_empty();
    if wraps {
        volumes.push(wrap::bin_volume(settings));
    }
    append_all(
        &mut ops,
        &["spec", "volumes"],
        spec.volumes.is_some(),
        &volumes,
    );
    ops.extend(wiring);
    warnings.extend(wrapping.warnings(&unserved, settings));
    let agent = agent_container(spec, plan_json, &identity, settings, wraps, &mut warnings);
    if spec.init_containers.is_some() {
        ops.push(Op::add(&["spec", "initContainers", "0"], &agent));
    } else {
        ops.push(Op::add(&["spec", "initContainers"], &[agent]));
    }
    Ok(Outcome::Patched(Mutation {
        patch: Patch(ops),
        warnings,
        secrets: plan.secrets.len(),
        rewired: false,
        wrapped: wrapping.wrapped,
    }))
}

/// The plan travels in an env var ([`PLAN_ENV`]): refuse what no container could start with.
fn check_plan_size(plan: &FetchPlan, json: &str) -> Result<(), Denial> {
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

// === env wiring ===

/// The env vars every app container gets, in order, without duplicates. ENV_VAR values go
/// through a `secretKeyRef` where one can carry them
/// ([`secret_key_ref_possible`]); [`wrap`] covers the others, and those a later backend may
/// serve instead.
fn app_env(plan: &FetchPlan, namespace: Option<&str>, settings: &Settings) -> Vec<EnvVar> {
    let layout = &settings.layout;
    let mut env: Vec<EnvVar> = layout
        .common_env()
        .into_iter()
        .map(|(name, value)| plain_env(name, value))
        .collect();
    for planned in &plan.secrets {
        let req = &planned.request;
        // The plan's files are the naming rules' (validated with the plan).
        let wires = layout.env_wiring_to(req, &planned.files[0]);
        let by_ref = secret_key_ref_possible(&settings.backends, req, namespace);
        for wire in wires {
            match wire.value {
                EnvValue::FilePath(path) => env.push(plain_env(&wire.name, path)),
                EnvValue::SecretValue if by_ref => env.push(EnvVar {
                    name: wire.name,
                    value: None,
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: req.group.clone(),
                            key: req.key.clone(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    }),
                }),
                EnvValue::SecretValue => {}
            }
        }
    }
    let mut seen = BTreeSet::new();
    env.retain(|e| seen.insert(e.name.clone()));
    env
}

fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}

// === containers ===

fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn check_conflicts(spec: &PodSpec, settings: &Settings) -> Result<(), Denial> {
    for v in spec.volumes.iter().flatten() {
        if [VOLUME_NAME, TOKEN_VOLUME_NAME, BIN_VOLUME_NAME].contains(&v.name.as_str()) {
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

fn check_mounts(c: &Container, settings: &Settings) -> Result<(), Denial> {
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
fn wire_all(
    ops: &mut Vec<Op>,
    spec: &PodSpec,
    env: &[EnvVar],
    mount: &VolumeMount,
    settings: &Settings,
    only_missing: bool,
    wrapping: &mut Wrapping,
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
            let base = ["spec", field, &i.to_string()];
            if w.wraps() {
                let env = [env, std::slice::from_ref(&wrapping.plan_env)].concat();
                let mounts = [mount.clone(), wrapping.bin_mount.clone()];
                wire_container(ops, &base, c, &env, &mounts, &w);
            } else {
                wire_container(ops, &base, c, env, std::slice::from_ref(mount), &w);
            }
        }
    }
    Ok(())
}

fn wire_container(
    ops: &mut Vec<Op>,
    base: &[&str],
    c: &Container,
    env: &[EnvVar],
    mounts: &[VolumeMount],
    wrap: &ContainerWrap,
) {
    fn at<'a>(base: &[&'a str], tail: &[&'a str]) -> Vec<&'a str> {
        [base, tail].concat()
    }
    append_all(
        ops,
        &at(base, &["volumeMounts"]),
        c.volume_mounts.is_some(),
        mounts,
    );
    // `add` replaces an existing member: command and exec commands are set whole.
    if let Some(command) = &wrap.command {
        ops.push(Op::add(&at(base, &["command"]), command));
    }
    for (path, command) in &wrap.hooks {
        ops.push(Op::add(&at(base, path), command));
    }
    match &c.env {
        None => ops.push(Op::add(&at(base, &["env"]), env)),
        Some(existing) => {
            let ours: BTreeSet<&str> = env.iter().map(|e| e.name.as_str()).collect();
            for (i, e) in existing.iter().enumerate().rev() {
                if ours.contains(e.name.as_str()) {
                    ops.push(Op::remove(&at(base, &["env", &i.to_string()])));
                }
            }
            for (i, e) in env.iter().enumerate() {
                ops.push(Op::add(&at(base, &["env", &i.to_string()]), e));
            }
        }
    }
}

fn agent_container(
    spec: &PodSpec,
    plan_json: String,
    identity: &Identity,
    settings: &Settings,
    wraps: bool,
    warnings: &mut Vec<String>,
) -> Container {
    let mut env = vec![
        plain_env(PLAN_ENV, plan_json),
        plain_env(AGENT_LOG_FORMAT_ENV, settings.agent_log_format.clone()),
    ];
    if wraps {
        env.push(plain_env(COPY_SELF_ENV, settings.agent_bin_path.clone()));
    }
    env.extend(settings.agent_env.iter().cloned());

    let mut mounts = vec![VolumeMount {
        name: VOLUME_NAME.into(),
        mount_path: settings.layout.mount_path.clone(),
        ..Default::default()
    }];
    let token = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| same_path(&m.mount_path, SERVICE_ACCOUNT_MOUNT));
    match token {
        Some(m) => mounts.push(VolumeMount {
            read_only: Some(true),
            ..m.clone()
        }),
        None if needs_pod_token(settings) => warnings.push(format!(
            "the pod mounts no service-account token (automountServiceAccountToken: false?): \
             the agent cannot read {SERVICE_ACCOUNT_TOKEN_FILE} to authenticate"
        )),
        None => {}
    }
    if let Some(t) = &settings.vault_token {
        mounts.push(VolumeMount {
            name: TOKEN_VOLUME_NAME.into(),
            mount_path: t.mount_path.clone(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    if wraps {
        // `agent init` copies itself here for the wrapped containers' `agent exec`.
        mounts.push(VolumeMount {
            name: BIN_VOLUME_NAME.into(),
            mount_path: settings.agent_bin_path.clone(),
            ..Default::default()
        });
    }

    Container {
        name: AGENT_CONTAINER.into(),
        image: Some(settings.agent_image.clone()),
        image_pull_policy: Some(settings.agent_pull_policy.as_str().into()),
        command: Some(vec!["/agent".into()]),
        args: Some(vec!["init".into()]),
        env: Some(env),
        resources: Some(settings.agent_resources.clone()),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(i64::from(identity.owner.uid)),
            run_as_group: Some(i64::from(identity.owner.gid)),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        }),
        termination_message_path: Some("/dev/termination-log".into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// Whether some backend authenticates with the pod's own service-account token.
fn needs_pod_token(settings: &Settings) -> bool {
    settings.backends.iter().any(|b| match b {
        Backend::Kubernetes(_) => true,
        Backend::Vault(v) => match &v.auth {
            VaultAuth::Kubernetes { token_file, .. } | VaultAuth::Jwt { token_file, .. } => {
                token_file == SERVICE_ACCOUNT_TOKEN_FILE
            }
            VaultAuth::Token { .. } => false,
        },
        Backend::Aws(_) => false,
    })
}

// === patch helpers ===

/// Appends items to an array, creating it when absent.
fn append_all<T: serde::Serialize>(ops: &mut Vec<Op>, array: &[&str], exists: bool, items: &[T]) {
    if exists {
        let end = [array, &["-"]].concat();
        for item in items {
            ops.push(Op::add(&end, item));
        }
    } else {
        ops.push(Op::add(array, items));
    }
}

#[cfg(test)]
mod tests;
