//! The mutation, pure: a Flyte task pod and the settings in, an RFC 6902 patch and
//! AdmissionReview warnings out (or a denial). No I/O, no secret values: the webhook only
//! reads request metadata from the pod's annotations; the agent fetches values later.
//!
//! For a pod labelled `inject-flyte-secrets: "true"` with `flyte.secrets/s<N>` annotations
//! (`inject`):
//! - one `flyte-secrets` emptyDir (`medium: Memory`);
//! - the agent init container (`container`), first, with the fetch plan in
//!   `FLYTE_SECRET_PLAN`, the volume read-write and the pod's service-account token mount
//!   copied read-only;
//! - in every other container and init container (`wiring`): the volume read-only at the
//!   mount path and the env wiring (`FLYTE_SECRETS_*`, file paths, `secretKeyRef`s).
//!   Same-named env vars are replaced and ours are put first, as Flyte 2's webhook does (the
//!   webhook's value wins, and the user's own env vars can still reference ours with
//!   `$(NAME)`);
//! - the marker annotation `flyte-secret-agent/injected: "true"`;
//! - with `flyte-secret-agent/refresh` (or the install's `refreshInterval`), the `agent
//!   watch` native sidecar after the agent (`refresh`);
//! - for ENV_VAR secrets no `secretKeyRef` can serve: containers run under `agent exec`
//!   (see [`wrap`]), with the agent binary's volume read-only and the plan in their env
//!   (args-only containers only when they are the Flyte task container, [`task`]).
//!
//! Every value the webhook writes where the kubelet expands `$(NAME)` (env values, `command`,
//! exec probes) has `$` escaped as `$$` (`common::plain_env`), so request-derived text such
//! as a group `kv/$(HOME)` reaches the container literally. Who owns the files: `owner`.
//!
//! Patch operations create parents before children (`/spec/volumes`, `/spec/initContainers`,
//! a container's `env`/`volumeMounts`) and address existing array elements by their index in
//! the request's object: removals run from the highest index down, and the agent is inserted
//! at `/spec/initContainers/0` last, after the existing init containers were wired.
//!
//! Re-invocation (`reinvocationPolicy: IfNeeded`, `rewire`): a pod that carries the marker
//! or our init container is not injected again; only containers added since (by another
//! webhook) that lack the volume are wired (never wrapped when they have only `args`), and
//! those that cannot read the files the agent will write are named in a warning.
//!
//! The server keeps the plans of recent pods ([`mutate_cached`], [`cache`]): a pod whose
//! secret set, namespace, scope labels and file owner were seen before gets the same plan
//! without decoding its annotations or building it again; the patch is still made per pod.

use flyte_secret_spec::annotation::{self, AnnotationError};
use flyte_secret_spec::plan::PlanError;
use flyte_secret_spec::{INJECT_LABEL, INJECT_LABEL_VALUE};
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use thiserror::Error;

use crate::config::Settings;

mod access;
pub mod cache;
mod common;
mod container;
mod identity_env;
mod inject;
pub mod meta;
mod owner;
pub mod patch;
mod plan;
mod refresh;
mod rewire;
mod task;
mod wiring;
pub mod wrap;

pub use access::{BROKER_VOLUME_NAME, SECRET_VOLUME_PREFIX};
pub use cache::PlanCache;
pub use meta::Meta;
pub use patch::Patch;
pub use refresh::WATCH_CONTAINER;
pub use task::PRIMARY_CONTAINER_ANNOTATION;

/// Name of the agent init container.
pub const AGENT_CONTAINER: &str = "flyte-secret-agent";
/// Name of the in-memory secrets volume.
pub const VOLUME_NAME: &str = "flyte-secrets";
/// Name of the optional projected token volume for Vault jwt auth.
pub const TOKEN_VOLUME_NAME: &str = "flyte-secret-agent-token";
/// Annotation marking an injected pod.
pub const INJECTED_ANNOTATION: &str = "flyte-secret-agent/injected";
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
        /// [`flyte_secret_spec::plan::MAX_PLAN_ENV_BYTES`].
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
    let meta = Meta::of(&pod.metadata);
    mutate_cached(
        &meta,
        pod.spec.as_ref(),
        namespace,
        settings,
        &PlanCache::default(),
    )
}

/// [`mutate`] of a pod's metadata and spec, taking plans from and keeping them in `plans`
/// ([`cache`]; the server's, made beside `settings`, which do not change while it holds
/// plans).
pub fn mutate_cached(
    meta: &Meta<'_>,
    spec: Option<&PodSpec>,
    namespace: Option<&str>,
    settings: &Settings,
    plans: &PlanCache,
) -> Result<Outcome, Denial> {
    let labelled = meta.label(INJECT_LABEL) == Some(INJECT_LABEL_VALUE);
    if !labelled {
        return Ok(Outcome::Skipped(Skip::NotLabelled));
    }
    let namespace = namespace.or(meta.namespace.as_deref());
    // A plan derived before from the same inputs (`cache`): the same annotations decoded,
    // non-empty, and a spec, so the checks below would pass exactly as they did then.
    let cached = match spec {
        Some(spec) if plans.enabled() => {
            let task = task::task_container(meta, spec);
            let identity = owner::identity(spec, task, settings);
            let key = cache::key(meta, namespace, &identity);
            let hit = plans.get(&key);
            Some((spec, task, identity, key, hit))
        }
        _ => None,
    };
    let (spec, task, identity, planned) = match cached {
        Some((spec, task, identity, _, Some(hit))) => (spec, task, identity, hit),
        cached => {
            let decoded = annotation::decode_all(meta.annotations())?;
            if decoded.is_empty() {
                return Ok(Outcome::Skipped(Skip::NoSecrets));
            }
            let spec = spec.ok_or(Denial::NoSpec)?;
            let (task, identity, key) = match cached {
                Some((_, task, identity, key, None)) => (task, identity, Some(key)),
                _ => {
                    let task = task::task_container(meta, spec);
                    (task, owner::identity(spec, task, settings), None)
                }
            };
            let plan = plan::build_plan(meta, namespace, &decoded, &identity, settings)?;
            // Serialized once: the agent gets it, and so does every container `agent exec`
            // wraps.
            let json = plan.to_json();
            plan::check_plan_size(&plan, &json)?;
            let planned = std::sync::Arc::new(cache::Planned::new(
                plan,
                json,
                namespace,
                identity.owner,
                settings,
            ));
            if let Some(key) = key {
                plans.put(key, planned.clone());
            }
            (spec, task, identity, planned)
        }
    };
    let (plan, plan_json) = (&planned.plan, &planned.json);
    let app = wiring::AppWiring::new(
        &planned.plan,
        &planned.app_env,
        &planned.unserved,
        &planned.app_mount,
    );
    if injected_before(meta, spec) {
        let rewired = rewire::rewire(spec, plan, plan_json, &app, settings)?;
        return Ok(rewired.map_or(Outcome::Skipped(Skip::AlreadyInjected), Outcome::Patched));
    }
    inject::inject(meta, spec, &planned, &identity, &app, task, settings).map(Outcome::Patched)
}

/// Injected before: our volume is there, with our marker or our agent. A marker without the
/// volume (copied or set by hand) is not ours: wiring containers to a volume the pod lacks
/// would make the API server reject the pod, so such a pod is injected normally.
fn injected_before(meta: &Meta<'_>, spec: &PodSpec) -> bool {
    let has_volume = spec.volumes.iter().flatten().any(|v| v.name == VOLUME_NAME);
    has_volume
        && (meta.annotation(INJECTED_ANNOTATION) == Some("true")
            || spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| c.name == AGENT_CONTAINER))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod flyte2_tests;

#[cfg(test)]
mod cloud_tests;
