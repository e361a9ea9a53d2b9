//! The agent init container: `agent init` with the plan in its env, the secrets volume
//! read-write, the Kubernetes Secret volumes and broker token of [`super::access`], the pod's
//! service-account token read-only only when a Vault login uses it, the Vault token and the
//! `agent exec` binary's volume when configured, as the app's uid and locked down.
//!
//! It is held as its parts ([`Agent`]), borrowed where they are cached (the plan's env var and
//! Secret mounts with the plan, the operator's env and resources in the settings), and written
//! into the patch from them as k8s-openapi writes the same `Container`, field for field: a
//! built `Container` owned a copy of each, about fifty allocations per admission
//! (bench/notes.md, round 7). [`Agent::to_container`] builds it where one is needed (the
//! refresh sidecar is derived from it) and, in tests, checks every written agent against it.

use flyte_secret_spec::backend::{Backend, SERVICE_ACCOUNT_TOKEN_FILE, VaultAuth};
use flyte_secret_spec::env::{
    COPY_SELF_ENV, DEFAULT_TERMINATION_LOG, LOG_FORMAT_ENV, SERVICE_ACCOUNT_DIR,
};
use flyte_secret_spec::plan::Owner;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, PodSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, VolumeMount,
};
use serde::Serialize;

use super::access::KubeAccess;
use super::common::{plain_env, same_path, secrets_mount};
use super::owner::Identity;
use super::wrap::{BIN_VOLUME_NAME, Wrapping};
use super::{AGENT_CONTAINER, TOKEN_VOLUME_NAME};
use crate::config::Settings;
use crate::json::{Part, Written};

const COMMAND: &str = "/agent";
const ARGS: &str = "init";
const TERMINATION_MESSAGE_POLICY: &str = "FallbackToLogsOnError";

/// The agent init container's parts: what varies, and borrowed what is cached.
#[derive(Debug)]
pub(super) struct Agent<'a> {
    pub(super) env: Vec<Part<'a, EnvVar>>,
    pub(super) mounts: Vec<Part<'a, VolumeMount>>,
    image: &'a str,
    pull_policy: &'static str,
    resources: &'a ResourceRequirements,
    owner: Owner,
    /// [`fixed`]'s JSON, cached with the plan.
    fixed: &'a [u8],
}

/// What every agent container of one cached plan shares, written once with the plan
/// ([`super::cache::Planned`], whose cache key holds the files' owner): the plan env var
/// (which wrapped containers get too), the log-format env var, the read-write mount of the
/// secrets volume, and the fields from the settings and the owner ([`Fixed`]).
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) plan_env: Written<EnvVar>,
    log_env: Written<EnvVar>,
    mount: Written<VolumeMount>,
    /// [`Fixed`]'s members as JSON, without the braces: the middle of the agent's object.
    fixed: Box<[u8]>,
}

impl Shared {
    pub(super) fn new(plan_json: &str, owner: Owner, settings: &Settings) -> Self {
        Self {
            plan_env: Written::new(Wrapping::plan_env(plan_json)),
            log_env: Written::new(plain_env(
                LOG_FORMAT_ENV,
                settings.agent.log_format.to_string(),
            )),
            mount: Written::new(secrets_mount(settings, false)),
            fixed: fixed(owner, settings),
        }
    }
}

/// The agent's fields that only the settings and the files' owner decide, from `image` to
/// `terminationMessagePolicy`, in k8s-openapi's order, between the env and the mounts.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Fixed<'b> {
    image: &'b str,
    image_pull_policy: &'b str,
    name: &'b str,
    resources: &'b ResourceRequirements,
    security_context: &'b SecurityContext,
    termination_message_path: &'b str,
    termination_message_policy: &'b str,
}

/// [`Fixed`]'s members as JSON, without the braces.
fn fixed(owner: Owner, settings: &Settings) -> Box<[u8]> {
    let agent = &settings.agent;
    let object = crate::json::to_vec(&Fixed {
        image: &agent.image,
        image_pull_policy: agent.pull_policy.as_str(),
        name: AGENT_CONTAINER,
        resources: &agent.resources,
        security_context: &security(owner),
        termination_message_path: DEFAULT_TERMINATION_LOG,
        termination_message_policy: TERMINATION_MESSAGE_POLICY,
    })
    .expect("Kubernetes types serialize");
    object[1..object.len() - 1].into()
}

/// The agent's security context: as the files' owner, locked down.
fn security(owner: Owner) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(i64::from(owner.uid)),
        run_as_group: Some(i64::from(owner.gid)),
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
    }
}

impl Agent<'_> {
    /// Appends the container's JSON, as k8s-openapi writes [`Agent::to_container`]'s: the
    /// cached parts copied, the rest serialized.
    pub(super) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"args\":[");
        crate::json::write_str(out, ARGS);
        out.extend_from_slice(b"],\"command\":[");
        crate::json::write_str(out, COMMAND);
        out.extend_from_slice(b"],\"env\":");
        crate::json::write_all(out, &self.env);
        out.push(b',');
        out.extend_from_slice(self.fixed);
        out.extend_from_slice(b",\"volumeMounts\":");
        crate::json::write_all(out, &self.mounts);
        out.push(b'}');
    }

    /// The same container, built.
    pub(super) fn to_container(&self) -> Container {
        Container {
            name: AGENT_CONTAINER.into(),
            image: Some(self.image.into()),
            image_pull_policy: Some(self.pull_policy.into()),
            command: Some(vec![COMMAND.into()]),
            args: Some(vec![ARGS.into()]),
            env: Some(self.env.iter().map(|e| (**e).clone()).collect()),
            resources: Some(self.resources.clone()),
            security_context: Some(security(self.owner)),
            termination_message_path: Some(DEFAULT_TERMINATION_LOG.into()),
            termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.into()),
            volume_mounts: Some(self.mounts.iter().map(|m| (**m).clone()).collect()),
            ..Default::default()
        }
    }

    /// Checks, in tests, that the parts write what the built container writes: every test
    /// that injects checks the writer.
    pub(super) fn checked(self) -> Self {
        #[cfg(test)]
        {
            let mut written = Vec::new();
            self.write(&mut written);
            assert_eq!(
                String::from_utf8(written),
                String::from_utf8(crate::json::to_vec(&self.to_container()).expect("written")),
                "the agent's parts write k8s-openapi's Container"
            );
        }
        self
    }
}

pub(super) fn agent_container<'a>(
    spec: &PodSpec,
    shared: &'a Shared,
    identity: &Identity,
    settings: &'a Settings,
    access: &'a KubeAccess<'a>,
    wraps: bool,
    warnings: &mut Vec<String>,
) -> Agent<'a> {
    let agent = &settings.agent;
    let mut env = vec![
        Part::Written(&shared.plan_env),
        Part::Written(&shared.log_env),
    ];
    if wraps {
        env.push(Part::Owned(plain_env(
            COPY_SELF_ENV,
            settings.exec_wrap.bin_path.clone(),
        )));
    }
    env.extend(access.env.iter().map(Part::Borrowed));
    env.extend(agent.env.iter().map(Part::Borrowed));

    let mut mounts = vec![Part::Written(&shared.mount)];
    // The pod's API token only when a backend logs in with it (Vault kubernetes/jwt auth);
    // Kubernetes Secrets come from the kubelet and the broker, never the API.
    let token = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| same_path(&m.mount_path, SERVICE_ACCOUNT_DIR));
    match token.filter(|_| needs_pod_token(settings)) {
        Some(m) => mounts.push(Part::Owned(VolumeMount {
            read_only: Some(true),
            ..m.clone()
        })),
        None if needs_pod_token(settings) => warnings.push(format!(
            "the pod mounts no service-account token (automountServiceAccountToken: false?): \
             the agent cannot read {SERVICE_ACCOUNT_TOKEN_FILE} to authenticate"
        )),
        None => {}
    }
    mounts.extend(access.kube.mounts.iter().map(Part::Written));
    if let Some(t) = &settings.vault_token {
        mounts.push(Part::Owned(VolumeMount {
            name: TOKEN_VOLUME_NAME.into(),
            mount_path: t.mount_path.clone(),
            read_only: Some(true),
            ..Default::default()
        }));
    }
    if wraps {
        // `agent init` copies itself here for the wrapped containers' `agent exec`.
        mounts.push(Part::Owned(VolumeMount {
            name: BIN_VOLUME_NAME.into(),
            mount_path: settings.exec_wrap.bin_path.clone(),
            ..Default::default()
        }));
    }

    Agent {
        env,
        mounts,
        image: &agent.image,
        pull_policy: agent.pull_policy.as_str(),
        resources: &agent.resources,
        owner: identity.owner,
        fixed: &shared.fixed,
    }
}

fn needs_pod_token(settings: &Settings) -> bool {
    settings.backends.iter().any(|b| match b {
        Backend::Kubernetes(_) | Backend::Aws(_) | Backend::Gcp(_) | Backend::Azure(_) => false,
        Backend::Vault(v) => match &v.auth {
            VaultAuth::Kubernetes { token_file, .. } | VaultAuth::Jwt { token_file, .. } => {
                token_file == SERVICE_ACCOUNT_TOKEN_FILE
            }
            VaultAuth::Token { .. } => false,
        },
    })
}
