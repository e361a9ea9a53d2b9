//! [`FetchPlan::validate`]: everything the agent relies on before it fetches a value. The
//! targets are derived again from the naming rules rather than trusted, so a plan cannot point
//! anywhere the rules would not, and no two secrets may contend for a file or env var.

use std::collections::{BTreeMap, BTreeSet};

use super::{FetchPlan, PLAN_VERSION, PlanError, PlannedSecret};
use crate::backend::Backend;
use crate::naming::{Layout, SecretPath};
use crate::request::{MountRequirement, SecretRequest, validate_relative_path};

impl FetchPlan {
    /// Checks everything the agent relies on: version, mount path, backends, every request
    /// valid and servable, targets equal to the naming rules, no conflicts.
    pub fn validate(&self) -> Result<(), PlanError> {
        self.validate_with(true)
    }

    /// [`FetchPlan::validate`] for a plan built with [`FetchPlan::push`] alone (whose targets
    /// are the naming rules' by construction, from requests `push` validated): everything
    /// but deriving every target again. The webhook builds one plan per admitted pod.
    pub fn validate_pushed(&self) -> Result<(), PlanError> {
        self.validate_with(false)
    }

    fn validate_with(&self, targets: bool) -> Result<(), PlanError> {
        if self.version != PLAN_VERSION {
            return Err(PlanError::Version(self.version));
        }
        let mount = self.mount_path.trim_end_matches('/');
        let clean = mount
            .strip_prefix('/')
            .is_some_and(|rest| rest.is_empty() || validate_relative_path(rest).is_ok());
        if !clean {
            return Err(PlanError::MountPath(self.mount_path.clone()));
        }
        if self.backends.is_empty() {
            return Err(PlanError::NoBackends);
        }
        for backend in &self.backends {
            if let Backend::Vault(vault) = backend
                && let Some(problem) = vault.insecure_address()
            {
                return Err(PlanError::InsecureBackend(problem));
            }
        }
        if let Some(scope) = &self.scope {
            scope.validate()?;
        }
        let layout = self.layout();
        for s in &self.secrets {
            let req = &s.request;
            if targets {
                check_targets(&layout, s)?;
            }
            if req.is_groupless() && self.scope.is_none() {
                return Err(PlanError::NoScope(req.name().to_string()));
            }
            let reasons: Vec<String> = self
                .backends
                .iter()
                .filter_map(|b| b.check(req).err().map(|e| format!("{}: {e}", b.kind())))
                .collect();
            if reasons.len() == self.backends.len() {
                return Err(PlanError::Unservable {
                    secret: req.name().to_string(),
                    reasons: reasons.join("; "),
                });
            }
        }
        self.check_conflicts()
    }

    fn check_conflicts(&self) -> Result<(), PlanError> {
        // Requests for the same (group, group_version, key) hold the same value: sharing a
        // target is fine. Anything else sharing a file, a directory/file name, or an env var
        // is a conflict.
        let identity = |s: &PlannedSecret| {
            (
                s.request.group.clone(),
                s.request.group_version.clone(),
                s.request.key.clone(),
            )
        };
        let mut files: BTreeMap<&SecretPath, usize> = BTreeMap::new();
        let mut envs: BTreeMap<&str, usize> = BTreeMap::new();
        let conflict = |a: usize, b: usize, target: String| PlanError::Conflict {
            first: self.secrets[a].request.name().to_string(),
            second: self.secrets[b].request.name().to_string(),
            target,
        };
        for (i, s) in self.secrets.iter().enumerate() {
            for f in &s.files {
                if let Some(&j) = files.get(f) {
                    if identity(&self.secrets[j]) != identity(s) {
                        return Err(conflict(j, i, f.to_string()));
                    }
                } else {
                    files.insert(f, i);
                }
            }
            for e in &s.env {
                if let Some(&j) = envs.get(e.as_str()) {
                    if identity(&self.secrets[j]) != identity(s) {
                        return Err(conflict(j, i, format!("env var {e}")));
                    }
                } else {
                    envs.insert(e, i);
                }
            }
        }
        // Aggregate files take a name of their own beside the group's directory.
        let aggregates = self.aggregate_files()?;
        for a in &aggregates {
            let i = a.entries[0].1;
            if let Some(&j) = files.get(&a.path) {
                return Err(conflict(j, i, format!("{} (an aggregate file)", a.path)));
            }
            files.insert(&a.path, i);
        }
        let all: BTreeSet<&str> = files.keys().map(|p| p.as_str()).collect();
        for (path, &i) in &files {
            let mut prefix = String::new();
            let components: Vec<&str> = path.components().collect();
            for c in &components[..components.len() - 1] {
                if !prefix.is_empty() {
                    prefix.push('/');
                }
                prefix.push_str(c);
                if all.contains(prefix.as_str()) {
                    let j = files
                        .iter()
                        .find(|(p, _)| p.as_str() == prefix)
                        .map(|(_, &j)| j)
                        .unwrap_or(i);
                    return Err(conflict(
                        j,
                        i,
                        format!("{prefix} as both a file and a directory"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The request is valid and its targets are the naming rules'.
fn check_targets(layout: &Layout, s: &PlannedSecret) -> Result<(), PlanError> {
    let req = &s.request;
    let files = layout.files(req)?;
    if files != s.files {
        return Err(PlanError::TargetMismatch {
            secret: req.name().to_string(),
            what: "files",
            found: s.files.iter().map(ToString::to_string).collect(),
            expected: files.iter().map(ToString::to_string).collect(),
        });
    }
    let env = expected_env(layout, req);
    if env != s.env {
        return Err(PlanError::TargetMismatch {
            secret: req.name().to_string(),
            what: "env",
            found: s.env.clone(),
            expected: env,
        });
    }
    Ok(())
}

/// The env vars the naming rules give a request: its value's names for ENV_VAR, none
/// otherwise. Shared with [`FetchPlan::push`] so building and checking cannot disagree.
pub(super) fn expected_env(layout: &Layout, req: &SecretRequest) -> Vec<String> {
    if req.mount_requirement == MountRequirement::EnvVar {
        layout.value_env_names(req)
    } else {
        Vec::new()
    }
}
