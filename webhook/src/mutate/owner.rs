//! File ownership: who the agent runs as and who may read the secret files.

use flyte_secret_spec::plan::{FileAccess, Owner};
use k8s_openapi::api::core::v1::PodSpec;

use super::patch::Op;
use crate::config::Settings;

/// Who the agent runs as and who may read the files.
#[derive(Debug, Clone)]
pub(super) struct Identity {
    pub(super) owner: Owner,
    pub(super) access: FileAccess,
    pub(super) supplemental_group: Option<i64>,
    pub(super) warning: Option<String>,
}

/// The ownership policy:
/// - the app's uid known (first container's `runAsUser`, else the pod's) and not root: the
///   agent runs as that uid (gid: `runAsGroup`, else `fsGroup`, else the uid) and files are
///   owner-only (0400);
/// - otherwise the agent runs as the fallback uid and files are group-readable (0440) by the
///   pod's `fsGroup`, else the app's `runAsGroup`, else (app is root) gid 0;
/// - nothing known: group = the fallback gid, which is added to the pod's
///   `supplementalGroups` so every container can read (this does not chown volumes, unlike
///   `fsGroup`), with a warning.
pub(super) fn identity(spec: &PodSpec, settings: &Settings) -> Identity {
    let container = spec
        .containers
        .first()
        .and_then(|c| c.security_context.as_ref());
    let pod = spec.security_context.as_ref();
    let valid = |id: Option<i64>| id.filter(|v| u32::try_from(*v).is_ok());
    let uid = valid(
        container
            .and_then(|c| c.run_as_user)
            .or(pod.and_then(|p| p.run_as_user)),
    );
    let gid = valid(
        container
            .and_then(|c| c.run_as_group)
            .or(pod.and_then(|p| p.run_as_group)),
    );
    let fs_group = valid(pod.and_then(|p| p.fs_group));
    let owner = |uid: i64, gid: i64| Owner {
        uid: uid as u32,
        gid: gid as u32,
    };
    match uid {
        Some(uid) if uid != 0 => Identity {
            owner: owner(uid, gid.or(fs_group).unwrap_or(uid)),
            access: FileAccess::Owner,
            supplemental_group: None,
            warning: None,
        },
        _ => {
            let group = fs_group.or(gid).or(uid.map(|_| 0)).map(|g| (g, None, None));
            let (group, supplemental, warning) = group.unwrap_or_else(|| {
                let g = settings.ownership.fallback_gid;
                (
                    g,
                    Some(g),
                    Some(format!(
                        "the pod sets no runAsUser, runAsGroup or fsGroup: secret files are \
                         readable by group {g}, added to the pod's supplementalGroups; set \
                         runAsUser or fsGroup to narrow this"
                    )),
                )
            });
            Identity {
                owner: owner(settings.ownership.fallback_uid, group),
                access: FileAccess::Group,
                supplemental_group: supplemental,
                warning,
            }
        }
    }
}

pub(super) fn add_supplemental_group(ops: &mut Vec<Op>, spec: &PodSpec, gid: i64) {
    match spec.security_context.as_ref() {
        None => ops.push(Op::add(
            &["spec", "securityContext"],
            &serde_json::json!({ "supplementalGroups": [gid] }),
        )),
        Some(sc) => match &sc.supplemental_groups {
            None => ops.push(Op::add(
                &["spec", "securityContext", "supplementalGroups"],
                &[gid],
            )),
            Some(groups) if groups.contains(&gid) => {}
            Some(_) => ops.push(Op::add(
                &["spec", "securityContext", "supplementalGroups", "-"],
                &gid,
            )),
        },
    }
}
