//! A cloud's workload identity, handed to the agent container: the env vars and the token
//! mount that the cloud's own webhook gave the pod's containers before ours ran.
//!
//! Why: the API server calls mutating webhooks in the order of their configurations' names,
//! each once unless it asks to be called again. Azure Workload Identity's configuration
//! (`azure-wi-webhook-mutating-webhook-configuration`) sorts before ours and does not ask,
//! so it has already wired the task's containers when we add the agent init container, and
//! never sees it: without a copy the agent would fall back to the node's managed identity.
//! The same holds for any webhook named before ours (EKS's `pod-identity-webhook` sorts
//! after, and wires our container itself; a copy is then absent and harmless). Only names
//! and paths are copied, never a credential: the token stays a file the kubelet projects.

use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, VolumeMount};

use flyte_secret_spec::backend::Backend;

use super::common::{env_value, same_path};
use super::container::Agent;
use crate::config::Settings;
use crate::json::Part;

/// One kind of workload identity: the env var naming its token file, and every env var its
/// webhook sets.
struct Kind {
    token_file_env: &'static str,
    names: &'static [&'static str],
    /// Whether a configured backend reads it.
    used_by: fn(&Backend) -> bool,
}

const KINDS: [Kind; 3] = [
    // Azure Workload Identity (azure-workload-identity's webhook).
    Kind {
        token_file_env: "AZURE_FEDERATED_TOKEN_FILE",
        names: &[
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST",
        ],
        used_by: |b| matches!(b, Backend::Azure(_)),
    },
    // EKS IAM roles for service accounts (amazon-eks-pod-identity-webhook).
    Kind {
        token_file_env: "AWS_WEB_IDENTITY_TOKEN_FILE",
        names: &[
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_ROLE_SESSION_NAME",
            "AWS_STS_REGIONAL_ENDPOINTS",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ],
        used_by: |b| matches!(b, Backend::Aws(_)),
    },
    // EKS Pod Identity.
    Kind {
        token_file_env: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        names: &[
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        ],
        used_by: |b| matches!(b, Backend::Aws(_)),
    },
];

/// Gives `agent` the identities a configured backend reads, taken from the task container
/// (`task`), else from the first app container that has the identity: the identity's env
/// vars that container sets with plain values, and the read-only mount holding its token
/// file. A name the agent already sets (its own env, the operator's `agentEnv`) is left, and
/// so is a mount whose volume or path the agent already uses.
pub(super) fn hand_to(
    agent: &mut Agent<'_>,
    spec: &PodSpec,
    task: Option<&str>,
    settings: &Settings,
) {
    for kind in KINDS
        .iter()
        .filter(|k| settings.backends.iter().any(k.used_by))
    {
        let with_token = |c| token_file(c, kind.token_file_env);
        let Some((source, file)) = spec
            .containers
            .iter()
            .filter(|c| Some(c.name.as_str()) == task)
            .find_map(with_token)
            .or_else(|| spec.containers.iter().find_map(with_token))
        else {
            continue;
        };
        // A token file no mount holds cannot be read in the agent either.
        let Some(mount) = source
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| holds(&m.mount_path, file))
        else {
            continue;
        };
        let env = &mut agent.env;
        for name in kind.names {
            if let Some(value) = env_value(source, name).filter(|v| !v.is_empty())
                && !env.iter().any(|e| e.name == *name)
            {
                env.push(Part::Owned(EnvVar {
                    name: (*name).to_string(),
                    value: Some(value.to_string()),
                    value_from: None,
                }));
            }
        }
        let mounts = &mut agent.mounts;
        if !mounts
            .iter()
            .any(|have| have.name == mount.name || same_path(&have.mount_path, &mount.mount_path))
        {
            mounts.push(Part::Owned(VolumeMount {
                read_only: Some(true),
                ..mount.clone()
            }));
        }
    }
}

/// `c` and the token file its env names in `env`, when it names one.
fn token_file<'c>(c: &'c Container, env: &str) -> Option<(&'c Container, &'c str)> {
    env_value(c, env).filter(|f| !f.is_empty()).map(|f| (c, f))
}

/// Whether a mount at `dir` holds `file` (a path strictly below it).
fn holds(dir: &str, file: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    !dir.is_empty()
        && file
            .strip_prefix(dir)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_holds_the_files_below_it_only() {
        assert!(holds(
            "/var/run/secrets/azure/tokens",
            "/var/run/secrets/azure/tokens/azure-identity-token"
        ));
        assert!(holds(
            "/var/run/secrets/azure/tokens/",
            "/var/run/secrets/azure/tokens/t"
        ));
        assert!(!holds(
            "/var/run/secrets/azure/tokens",
            "/var/run/secrets/azure/tokens"
        ));
        assert!(!holds(
            "/var/run/secrets/azure/tok",
            "/var/run/secrets/azure/tokens/t"
        ));
        assert!(!holds("/", "/t"));
        assert!(!holds("", "/t"));
    }
}
