//! How the agent reaches Kubernetes Secrets without any Secret RBAC for the task:
//!
//! - **Secrets in the pod's own namespace** ([`KubeDelivery::Volume`]): one `secret` volume per
//!   requested Secret, holding only the requested data keys (`items`, each at its key's name),
//!   `optional: true` (a missing Secret or key leaves the file absent and the agent falls
//!   through to the next backend), mounted read-only at
//!   [`KUBE_SECRETS_DIR`]`/<secret name>` in the agent container only. The kubelet reads the
//!   Secret under node authorization: the task's service account needs no RBAC and app
//!   containers never see the volume. File mode 0444 because the agent runs as the app's
//!   uid, which the kubelet does not make the owner; only the agent container mounts it.
//! - **Everything else** ([`KubeDelivery::Broker`]: Flyte 2 managed secrets, another
//!   namespace): a projected service-account token with the broker's audience, bound to the
//!   pod by the kubelet, mounted at [`BROKER_TOKEN_DIR`] in the agent container only, and the
//!   broker's CA bundle in the agent's env ([`BROKER_CA_ENV`]).
//!
//! Requests another backend claims ([`route`]) get neither.

use std::collections::{BTreeMap, BTreeSet};

use flyte_secret_spec::backend::{Backend, KubeDelivery, KubernetesBackend, route};
use flyte_secret_spec::broker::{BrokerRef, DEFAULT_TOKEN_EXPIRATION_SECONDS};
use flyte_secret_spec::env::{BROKER_CA_ENV, BROKER_TOKEN_DIR, KUBE_SECRETS_DIR};
use flyte_secret_spec::plan::FetchPlan;
use k8s_openapi::api::core::v1::{
    EnvVar, KeyToPath, ProjectedVolumeSource, SecretVolumeSource, ServiceAccountTokenProjection,
    Volume, VolumeMount, VolumeProjection,
};

use super::Denial;
use super::common::plain_env;
use crate::config::Settings;
use crate::json::Written;

/// Prefix of the per-Secret volumes (`<prefix><n>`).
pub const SECRET_VOLUME_PREFIX: &str = "flyte-secret-agent-k8s-";
/// Name of the projected broker token volume.
pub const BROKER_VOLUME_NAME: &str = "flyte-secret-agent-broker";
/// Mode of the files of a Secret volume: see the module docs.
const SECRET_FILE_MODE: i32 = 0o444;

/// What the agent container needs for its Kubernetes requests, as far as the plan alone
/// decides it, so derived once per plan ([`super::cache::Planned`]): the Secret volumes and
/// their mounts, and the broker's token volume and mount with the first annotation it serves.
#[derive(Debug, Default)]
pub(super) struct KubeVolumes {
    /// Pod volumes to add, written once with the plan.
    pub volumes: Vec<Written<Volume>>,
    /// Their mounts in the agent container.
    pub mounts: Vec<Written<VolumeMount>>,
    /// The annotation that names the broker in a denial when its CA cannot be read.
    broker: Option<String>,
}

/// One admission's access: the plan's [`KubeVolumes`] and the env they need, the broker's
/// CA, read for every admission (the file is rotated under a running webhook).
#[derive(Debug)]
pub(super) struct KubeAccess<'p> {
    /// The plan's volumes and mounts.
    pub kube: &'p KubeVolumes,
    /// The broker's CA for the agent's env.
    pub env: Vec<EnvVar>,
}

/// Whether a pod volume name is one this module adds.
pub(super) fn is_ours(volume: &str) -> bool {
    volume == BROKER_VOLUME_NAME || volume.starts_with(SECRET_VOLUME_PREFIX)
}

/// The volumes and mounts for `plan`'s Kubernetes requests.
pub(super) fn kube_volumes(plan: &FetchPlan) -> KubeVolumes {
    // Secret name → data keys; BTreeMap/Set: the same pod always gets the same patch.
    let mut secrets: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut broker: Option<(&BrokerRef, &str)> = None;
    for backend in &plan.backends {
        let Backend::Kubernetes(k) = backend else {
            continue;
        };
        for planned in &plan.secrets {
            let req = &planned.request;
            if route(&plan.backends, backend, req).is_some() {
                continue;
            }
            match (k.delivery(req), &k.broker) {
                (KubeDelivery::Volume, _) => {
                    secrets
                        .entry(req.group.as_str())
                        .or_default()
                        .insert(KubernetesBackend::data_key(req));
                }
                (KubeDelivery::Broker, Some(b)) => {
                    broker.get_or_insert((b, planned.annotation.as_str()));
                }
                // Not found there without a broker: the agent says so and falls through.
                (KubeDelivery::Broker, None) => {}
            }
        }
    }
    let mut access = KubeVolumes::default();
    for (i, (name, keys)) in secrets.into_iter().enumerate() {
        let volume = format!("{SECRET_VOLUME_PREFIX}{i}");
        access.volumes.push(Written::new(Volume {
            name: volume.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name.to_string()),
                items: Some(
                    keys.into_iter()
                        .map(|key| KeyToPath {
                            path: key.clone(),
                            key,
                            mode: None,
                        })
                        .collect(),
                ),
                optional: Some(true),
                default_mode: Some(SECRET_FILE_MODE),
            }),
            ..Default::default()
        }));
        access.mounts.push(Written::new(VolumeMount {
            name: volume,
            mount_path: format!("{KUBE_SECRETS_DIR}/{name}"),
            read_only: Some(true),
            ..Default::default()
        }));
    }
    if let Some((b, annotation)) = broker {
        access.broker = Some(annotation.to_string());
        access.volumes.push(Written::new(Volume {
            name: BROKER_VOLUME_NAME.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(b.audience.clone()),
                        expiration_seconds: Some(DEFAULT_TOKEN_EXPIRATION_SECONDS),
                        path: "token".into(),
                    }),
                    ..Default::default()
                }]),
                default_mode: Some(SECRET_FILE_MODE),
            }),
            ..Default::default()
        }));
        access.mounts.push(Written::new(VolumeMount {
            name: BROKER_VOLUME_NAME.into(),
            mount_path: BROKER_TOKEN_DIR.into(),
            read_only: Some(true),
            ..Default::default()
        }));
    }
    access
}

/// The access of one admission to `kube`: the broker's CA, read now, when it serves some secret.
pub(super) fn kube_access<'p>(
    kube: &'p KubeVolumes,
    settings: &Settings,
) -> Result<KubeAccess<'p>, Denial> {
    let mut env = Vec::new();
    if let Some(annotation) = &kube.broker {
        let pem = settings.broker_ca.pem().map_err(|e| Denial::Request {
            annotation: annotation.clone(),
            reason: format!("served by the secret broker, but {e}"),
        })?;
        env.push(plain_env(BROKER_CA_ENV, pem.to_string()));
    }
    Ok(KubeAccess { kube, env })
}
