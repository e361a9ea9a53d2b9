//! The agent init container: `agent init` with the plan in its env, the secrets volume
//! read-write, the Kubernetes Secret volumes and broker token of [`super::access`], the pod's
//! service-account token read-only only when a Vault login uses it, the Vault token and the
//! `agent exec` binary's volume when configured, as the app's uid and locked down.

use flyte_secret_spec::backend::{Backend, SERVICE_ACCOUNT_TOKEN_FILE, VaultAuth};
use flyte_secret_spec::env::{
    COPY_SELF_ENV, DEFAULT_TERMINATION_LOG, LOG_FORMAT_ENV, PLAN_ENV, SERVICE_ACCOUNT_DIR,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSpec, SeccompProfile, SecurityContext, VolumeMount,
};

use super::access::KubeAccess;
use super::common::{plain_env, same_path};
use super::owner::Identity;
use super::wrap::BIN_VOLUME_NAME;
use super::{AGENT_CONTAINER, TOKEN_VOLUME_NAME, VOLUME_NAME};
use crate::config::Settings;

/// The agent container; `wraps`: some container runs under `agent exec`, so the agent copies
/// itself into the binary's volume. A warning is added when the agent will need the pod's
/// token and the pod mounts none.
pub(super) fn agent_container(
    spec: &PodSpec,
    plan_json: String,
    identity: &Identity,
    settings: &Settings,
    access: &KubeAccess<'_>,
    wraps: bool,
    warnings: &mut Vec<String>,
) -> Container {
    let agent = &settings.agent;
    let mut env = vec![
        plain_env(PLAN_ENV, plan_json),
        plain_env(LOG_FORMAT_ENV, agent.log_format.to_string()),
    ];
    if wraps {
        env.push(plain_env(
            COPY_SELF_ENV,
            settings.exec_wrap.bin_path.clone(),
        ));
    }
    env.extend(access.env.iter().cloned());
    env.extend(agent.env.iter().cloned());

    let mut mounts = vec![VolumeMount {
        name: VOLUME_NAME.into(),
        mount_path: settings.layout.mount_path.clone(),
        ..Default::default()
    }];
    // The pod's API token only when a backend logs in with it (Vault kubernetes/jwt auth);
    // Kubernetes Secrets come from the kubelet and the broker, never the API.
    let token = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| same_path(&m.mount_path, SERVICE_ACCOUNT_DIR));
    match token.filter(|_| needs_pod_token(settings)) {
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
    mounts.extend(access.kube.mounts.iter().cloned());
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
            mount_path: settings.exec_wrap.bin_path.clone(),
            ..Default::default()
        });
    }

    Container {
        name: AGENT_CONTAINER.into(),
        image: Some(agent.image.clone()),
        image_pull_policy: Some(agent.pull_policy.as_str().into()),
        command: Some(vec!["/agent".into()]),
        args: Some(vec!["init".into()]),
        env: Some(env),
        resources: Some(agent.resources.clone()),
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
        termination_message_path: Some(DEFAULT_TERMINATION_LOG.into()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(mounts),
        ..Default::default()
    }
}

/// Whether some backend authenticates with the pod's own service-account token.
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
