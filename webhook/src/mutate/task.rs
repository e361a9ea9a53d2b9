//! Which container is the Flyte task's own: the one whose `args` are the program (propeller
//! sets no `command`), so the only one an args-only `agent exec` wrap may take over, and the
//! one whose user owns the secret files first.
//!
//! The rule, on the pod as the webhook first sees it:
//! 1. the app container (`spec.containers`) named by propeller's `primary_container_name`
//!    annotation, when the pod has that annotation and a container of that name;
//! 2. otherwise the pod's only app container, when it has exactly one;
//! 3. otherwise none.
//!
//! Init containers are never the task container. On re-invocation the containers still to
//! wire were added by another webhook after ours, so none of them is (see [`super::rewire`]).

use k8s_openapi::api::core::v1::PodSpec;

use super::meta::Meta;

/// The annotation propeller writes on task pods, naming the task's container.
pub const PRIMARY_CONTAINER_ANNOTATION: &str = "primary_container_name";

/// The name of the Flyte task container (see the module docs).
pub(super) fn task_container<'a>(meta: &Meta<'_>, spec: &'a PodSpec) -> Option<&'a str> {
    let named = meta
        .annotation(PRIMARY_CONTAINER_ANNOTATION)
        .filter(|n| !n.is_empty());
    if let Some(name) = named
        && let Some(c) = spec.containers.iter().find(|c| c.name == name)
    {
        return Some(c.name.as_str());
    }
    match spec.containers.as_slice() {
        [only] => Some(only.name.as_str()),
        _ => None,
    }
}
