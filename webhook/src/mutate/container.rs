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

use std::borrow::Cow;

use flyte_secret_spec::backend::{Backend, SERVICE_ACCOUNT_TOKEN_FILE, VaultAuth};
use flyte_secret_spec::env::{COPY_SELF_ENV, DEFAULT_TERMINATION_LOG, SERVICE_ACCOUNT_DIR};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, PodSpec, ResourceRequirements, SeccompProfile,
    SecurityContext, VolumeMount,
};
use serde::Serialize;

use super::access::KubeAccess;
use super::cache::Planned;
use super::common::{plain_env, same_path};
use super::owner::Identity;
use super::wrap::BIN_VOLUME_NAME;
use super::{AGENT_CONTAINER, TOKEN_VOLUME_NAME};
use crate::config::Settings;

const COMMAND: &str = "/agent";
const ARGS: &str = "init";
const TERMINATION_MESSAGE_POLICY: &str = "FallbackToLogsOnError";

/// The agent init container's parts: what varies, and borrowed what is cached.
#[derive(Debug)]
pub(super) struct Agent<'a> {
    pub(super) env: Vec<Cow<'a, EnvVar>>,
    pub(super) mounts: Vec<Cow<'a, VolumeMount>>,
    image: &'a str,
    pull_policy: &'static str,
    resources: &'a ResourceRequirements,
    security: SecurityContext,
}

/// [`Agent`] as k8s-openapi's `Container` serializes: its fields in the same order, the
/// absent ones skipped.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Written<'b> {
    args: &'b [&'b str],
    command: &'b [&'b str],
    env: &'b [Cow<'b, EnvVar>],
    image: &'b str,
    image_pull_policy: &'b str,
    name: &'b str,
    resources: &'b ResourceRequirements,
    security_context: &'b SecurityContext,
    termination_message_path: &'b str,
    termination_message_policy: &'b str,
    volume_mounts: &'b [Cow<'b, VolumeMount>],
}

impl Serialize for Agent<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Written {
            args: &[ARGS],
            command: &[COMMAND],
            env: &self.env,
            image: self.image,
            image_pull_policy: self.pull_policy,
            name: AGENT_CONTAINER,
            resources: self.resources,
            security_context: &self.security,
            termination_message_path: DEFAULT_TERMINATION_LOG,
            termination_message_policy: TERMINATION_MESSAGE_POLICY,
            volume_mounts: &self.mounts,
        }
        .serialize(serializer)
    }
}

impl Agent<'_> {
    /// The same container, built.
    pub(super) fn to_container(&self) -> Container {
        Container {
            name: AGENT_CONTAINER.into(),
            image: Some(self.image.into()),
            image_pull_policy: Some(self.pull_policy.into()),
            command: Some(vec![COMMAND.into()]),
            args: Some(vec![ARGS.into()]),
            env: Some(self.env.iter().map(|e| e.as_ref().clone()).collect()),
            resources: Some(self.resources.clone()),
            security_context: Some(self.security.clone()),
            termination_message_path: Some(DEFAULT_TERMINATION_LOG.into()),
            termination_message_policy: Some(TERMINATION_MESSAGE_POLICY.into()),
            volume_mounts: Some(self.mounts.iter().map(|m| m.as_ref().clone()).collect()),
            ..Default::default()
        }
    }

    /// Checks, in tests, that the parts write what the built container writes: every test
    /// that injects checks the writer.
    pub(super) fn checked(self) -> Self {
        #[cfg(test)]
        assert_eq!(
            String::from_utf8(crate::json::to_vec(&self).expect("written")),
            String::from_utf8(crate::json::to_vec(&self.to_container()).expect("written")),
            "the agent's parts write k8s-openapi's Container"
        );
        self
    }
}

pub(super) fn agent_container<'a>(
    spec: &PodSpec,
    planned: &'a Planned,
    identity: &Identity,
    settings: &'a Settings,
    access: &'a KubeAccess<'a>,
    wraps: bool,
    warnings: &mut Vec<String>,
) -> Agent<'a> {
    let agent = &settings.agent;
    let mut env = vec![
        Cow::Borrowed(&planned.plan_env),
        Cow::Borrowed(&planned.log_env),
    ];
    if wraps {
        env.push(Cow::Owned(plain_env(
            COPY_SELF_ENV,
            settings.exec_wrap.bin_path.clone(),
        )));
    }
    env.extend(access.env.iter().map(Cow::Borrowed));
    env.extend(agent.env.iter().map(Cow::Borrowed));

    let mut mounts = vec![Cow::Borrowed(&planned.agent_mount)];
    // The pod's API token only when a backend logs in with it (Vault kubernetes/jwt auth);
    // Kubernetes Secrets come from the kubelet and the broker, never the API.
    let token = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| same_path(&m.mount_path, SERVICE_ACCOUNT_DIR));
    match token.filter(|_| needs_pod_token(settings)) {
        Some(m) => mounts.push(Cow::Owned(VolumeMount {
            read_only: Some(true),
            ..m.clone()
        })),
        None if needs_pod_token(settings) => warnings.push(format!(
            "the pod mounts no service-account token (automountServiceAccountToken: false?): \
             the agent cannot read {SERVICE_ACCOUNT_TOKEN_FILE} to authenticate"
        )),
        None => {}
    }
    mounts.extend(access.kube.mounts.iter().map(Cow::Borrowed));
    if let Some(t) = &settings.vault_token {
        mounts.push(Cow::Owned(VolumeMount {
            name: TOKEN_VOLUME_NAME.into(),
            mount_path: t.mount_path.clone(),
            read_only: Some(true),
            ..Default::default()
        }));
    }
    if wraps {
        // `agent init` copies itself here for the wrapped containers' `agent exec`.
        mounts.push(Cow::Owned(VolumeMount {
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
        security: SecurityContext {
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
        },
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
