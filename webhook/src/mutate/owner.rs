//! File ownership: who the agent runs as and who may read the secret files.
//!
//! The readers are every container and init container of the pod but the agent (they all
//! mount the secrets volume). A reader's uid is its `runAsUser`, else the pod's, else unknown
//! (the image's `USER`); its gid likewise from `runAsGroup` (a root reader without one: 0).
//!
//! - **One user**: every reader has the same known, non-root uid → the agent runs as that
//!   uid (gid: the task container's `runAsGroup`, else `fsGroup`, else the uid) and files are
//!   owner-only (0400 in 0500 directories).
//! - **Otherwise** (uids differ, some are unknown, or root) → group access (0440 in 0550
//!   directories) with a gid **every** reader has, first of:
//!   1. the pod's `fsGroup` (a supplementary group of every container);
//!   2. the pod's first `supplementalGroups` entry (every container has them too);
//!   3. a `runAsGroup` common to all readers.
//!
//!   The agent runs as the task container's uid when known and not root, else as
//!   `fallbackUid`, with that gid as its group. When no reader has any id set, or no such
//!   gid exists, the group is `fallbackGid`, added to the pod's `supplementalGroups` (which
//!   every container gets; it does not chown volumes as `fsGroup` does), with a warning
//!   naming the readers.
//!
//! Containers another webhook adds after ours (re-invocation) cannot change the plan the
//! agent already carries: [`late_reader_warnings`] names those that cannot read the files.

use std::collections::BTreeSet;

use flyte_secret_spec::env::PLAN_ENV;
use flyte_secret_spec::plan::{FileAccess, Owner};
use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec};

use super::AGENT_CONTAINER;
use super::common::unescape_expansion;
use super::patch::Patch;
use crate::config::Settings;

/// Who the agent runs as and who may read the files.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) owner: Owner,
    pub(super) access: FileAccess,
    pub(super) supplemental_group: Option<i64>,
    pub(super) warning: Option<String>,
}

fn valid(id: Option<i64>) -> Option<i64> {
    id.filter(|v| u32::try_from(*v).is_ok())
}

/// One reader's ids, from its `securityContext` over the pod's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ids {
    uid: Option<i64>,
    gid: Option<i64>,
}

fn ids(c: &Container, pod: Option<&PodSecurityContext>) -> Ids {
    let sc = c.security_context.as_ref();
    let uid = valid(
        sc.and_then(|s| s.run_as_user)
            .or(pod.and_then(|p| p.run_as_user)),
    );
    let gid = valid(
        sc.and_then(|s| s.run_as_group)
            .or(pod.and_then(|p| p.run_as_group)),
    )
    // A root process without a runAsGroup runs as group 0.
    .or((uid == Some(0)).then_some(0));
    Ids { uid, gid }
}

fn describe(name: &str, ids: Ids) -> String {
    match ids.uid {
        Some(uid) => format!("{name} (uid {uid})"),
        None => format!("{name} (uid unknown: the image's USER)"),
    }
}

/// The ownership policy: see the module docs. `task`: the Flyte task container
/// ([`super::task::task_container`]); without one, the first container stands for it.
pub(super) fn identity(spec: &PodSpec, task: Option<&str>, settings: &Settings) -> Identity {
    let pod = spec.security_context.as_ref();
    let readers: Vec<(&str, Ids)> = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name != AGENT_CONTAINER)
        .map(|c| (c.name.as_str(), ids(c, pod)))
        .collect();
    let main = task
        .and_then(|t| spec.containers.iter().find(|c| c.name == t))
        .or(spec.containers.first())
        .map(|c| ids(c, pod))
        .unwrap_or(Ids {
            uid: valid(pod.and_then(|p| p.run_as_user)),
            gid: valid(pod.and_then(|p| p.run_as_group)),
        });
    let fs_group = valid(pod.and_then(|p| p.fs_group));
    let owner = |uid: i64, gid: i64| Owner {
        uid: uid as u32,
        gid: gid as u32,
    };

    let uids: BTreeSet<Option<i64>> = readers.iter().map(|(_, i)| i.uid).collect();
    let single = match (uids.len(), uids.first()) {
        (0, _) => main.uid,
        (1, Some(uid)) => *uid,
        _ => None,
    };
    if let Some(uid) = single.filter(|u| *u != 0) {
        return Identity {
            owner: owner(uid, main.gid.or(fs_group).unwrap_or(uid)),
            access: FileAccess::Owner,
            supplemental_group: None,
            warning: None,
        };
    }

    let supplemental = pod
        .and_then(|p| p.supplemental_groups.as_ref())
        .and_then(|g| g.iter().copied().find(|g| valid(Some(*g)).is_some()));
    let gids: BTreeSet<Option<i64>> = readers.iter().map(|(_, i)| i.gid).collect();
    let common_gid = match (gids.len(), gids.first()) {
        (0, _) => main.gid,
        (1, Some(gid)) => *gid,
        _ => None,
    };
    let agent_uid = main
        .uid
        .filter(|u| *u != 0)
        .unwrap_or(settings.ownership.fallback_uid);
    let shared = fs_group.or(supplemental).or(common_gid);
    let (group, supplemental_group, warning) = match shared {
        Some(g) => (g, None, None),
        None => {
            let g = settings.ownership.fallback_gid;
            let nothing_set = readers
                .iter()
                .all(|(_, i)| i.uid.is_none() && i.gid.is_none());
            let warning = if nothing_set {
                format!(
                    "the pod sets no runAsUser, runAsGroup or fsGroup: secret files are \
                     readable by group {g}, added to the pod's supplementalGroups; set \
                     runAsUser or fsGroup to narrow this"
                )
            } else {
                let names: Vec<String> = readers.iter().map(|(n, i)| describe(n, *i)).collect();
                format!(
                    "containers {} do not all run as one user and share no group (no \
                     fsGroup, supplementalGroups or common runAsGroup): secret files are \
                     readable by group {g}, added to the pod's supplementalGroups; set \
                     fsGroup to choose the group",
                    names.join(", ")
                )
            };
            (g, Some(g), Some(warning))
        }
    };
    Identity {
        owner: owner(agent_uid, group),
        access: FileAccess::Group,
        supplemental_group,
        warning,
    }
}

pub(super) fn add_supplemental_group(ops: &mut Patch, spec: &PodSpec, gid: i64) {
    match spec.security_context.as_ref() {
        None => ops.add(
            &["spec", "securityContext"],
            &serde_json::json!({ "supplementalGroups": [gid] }),
        ),
        Some(sc) => match &sc.supplemental_groups {
            None => ops.add(&["spec", "securityContext", "supplementalGroups"], &[gid]),
            Some(groups) if groups.contains(&gid) => {}
            Some(_) => ops.add(
                &["spec", "securityContext", "supplementalGroups", "-"],
                &gid,
            ),
        },
    }
}

/// Only the plan's `access`, read back from the agent's env.
#[derive(serde::Deserialize)]
struct PlanAccess {
    #[serde(default)]
    access: FileAccess,
}

/// On re-invocation: one warning per container in `late` (added by another webhook after
/// the agent was injected) that cannot read the files the agent will write: a uid other than
/// the agent's with owner-only files, or, with group access, neither the agent's uid nor its
/// group (`fsGroup`, `supplementalGroups`, its `runAsGroup`). An unknown uid is named too:
/// the image's `USER` decides.
pub(super) fn late_reader_warnings(spec: &PodSpec, late: &[&Container]) -> Vec<String> {
    let Some(agent) = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == AGENT_CONTAINER)
    else {
        return Vec::new();
    };
    let sc = agent.security_context.as_ref();
    let (Some(uid), Some(gid)) = (
        sc.and_then(|s| s.run_as_user),
        sc.and_then(|s| s.run_as_group),
    ) else {
        return Vec::new();
    };
    let access = agent
        .env
        .iter()
        .flatten()
        .find(|e| e.name == PLAN_ENV)
        .and_then(|e| e.value.as_deref())
        .and_then(|v| serde_json::from_str::<PlanAccess>(&unescape_expansion(v)).ok())
        .map_or(FileAccess::Owner, |p| p.access);
    let pod = spec.security_context.as_ref();
    let in_pod_groups = pod.is_some_and(|p| {
        p.fs_group == Some(gid) || p.supplemental_groups.iter().flatten().any(|g| *g == gid)
    });
    let mut warnings = Vec::new();
    for c in late {
        let theirs = ids(c, pod);
        let readable = theirs.uid == Some(uid)
            || (access == FileAccess::Group && (in_pod_groups || theirs.gid == Some(gid)));
        if readable {
            continue;
        }
        let files = match access {
            FileAccess::Owner => format!("mode 0400, owned by uid {uid}"),
            FileAccess::Group => format!("mode 0440, uid {uid}, group {gid}"),
        };
        warnings.push(format!(
            "container {} was added after the secrets were planned and may not read them: \
             the files are {files}; run it as uid {uid} or give it group {gid} (fsGroup or \
             supplementalGroups)",
            describe(&c.name, theirs)
        ));
    }
    warnings
}
