//! `agent exec` wrapping: ENV_VAR secrets that no same-namespace `secretKeyRef` can serve
//! (AWS, Vault, Flyte 2 managed secrets, another namespace), or that a backend after
//! `kubernetes` may serve instead of the Secret the `secretKeyRef` names (with
//! `[kubernetes, aws]`, `user-info/token` may be an AWS secret), reach a container's environment
//! by running its processes under `<agentBinPath>/agent exec -- …`, which reads the files the
//! init container wrote, sets the env vars and `execve`s the program. The agent init
//! container copies itself into a small in-memory volume that wrapped containers mount
//! read-only. The webhook wraps only what it can wrap correctly:
//!
//! - a container with a `command`: the command becomes `agent exec --` + the command, `args`
//!   unchanged;
//! - a container with only `args` (Flyte's task containers): the command becomes
//!   `agent exec --` and `args` stay, so the args are the program. This replaces the image's
//!   ENTRYPOINT, so it is behind `execWrapArgsOnly` (default on: Flyte's task images have
//!   none), and is done only for the Flyte task container ([`super::task`]: propeller's
//!   `primary_container_name`, else the pod's only container; never a container added by
//!   another webhook on re-invocation). Any other args-only container (istio-proxy, say)
//!   keeps its ENTRYPOINT and is named in the warning;
//! - neither (the image's entrypoint runs, and the webhook does not know it): not wrapped;
//! - exec probes and exec lifecycle hooks: their `exec.command` is wrapped the same way;
//! - init containers (the task's own) follow the same rules (never the task container, so
//!   not wrapped when they have only args); the agent itself is never wrapped.
//!
//! The prefix's path is escaped for the kubelet's `$(VAR)` expansion where the kubelet
//! expands (`command`, exec probes), not in lifecycle hooks (never expanded); the user's own
//! command and args are left as they are, expansion included.
//!
//! Every such ENV_VAR secret whose env vars may stay unset somewhere gets an AdmissionReview
//! warning naming the containers, why, and the file that holds the value. With `execWrap` off
//! nothing is wrapped, and (as without wrapping) every ENV_VAR secret no `secretKeyRef` can
//! carry gets that warning.

use flyte_secret_spec::MountRequirement;
use flyte_secret_spec::backend::{Backend, secret_key_refs};
use flyte_secret_spec::plan::{FetchPlan, PLAN_ENV, PlannedSecret};
use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, EnvVar, Volume, VolumeMount};

use super::common::{escape_expansion, plain_env, same_path};
use crate::config::Settings;
use crate::json::Part;

/// Name of the in-memory volume holding the agent binary for `agent exec`.
pub const BIN_VOLUME_NAME: &str = "flyte-secret-agent-bin";

/// An ENV_VAR secret a `secretKeyRef` does not always deliver.
#[derive(Debug, Clone, Copy)]
pub(super) struct Unserved<'p> {
    pub(super) planned: &'p PlannedSecret,
    /// A `secretKeyRef` is wired and delivers the value when it is a Kubernetes Secret, but
    /// a later backend may serve it instead.
    pub(super) by_ref: bool,
}

/// The ENV_VAR secrets of `plan` that `agent exec` must deliver: `(index in the plan's
/// secrets, by_ref)` ([`Unserved`]).
pub(super) fn unserved(
    plan: &FetchPlan,
    namespace: Option<&str>,
    settings: &Settings,
) -> Vec<(usize, bool)> {
    let backends = &settings.backends;
    let scope = plan.scope.as_ref();
    plan.secrets
        .iter()
        .enumerate()
        .filter(|(_, s)| s.request.mount_requirement == MountRequirement::EnvVar)
        .filter_map(|(i, planned)| {
            match secret_key_refs(backends, &planned.request, namespace, scope) {
                Some((_, true)) => None,
                refs => Some((i, refs.is_some())),
            }
        })
        .collect()
}

/// `<agentBinPath>/agent exec --`; `expanded`: for a field the kubelet expands `$(VAR)` in
/// (`command`, exec probes), so the path is escaped ([`escape_expansion`]).
pub(super) fn prefix(settings: &Settings, expanded: bool) -> Vec<String> {
    let agent = format!("{}/agent", settings.exec_wrap.bin_path);
    vec![
        if expanded {
            escape_expansion(agent)
        } else {
            agent
        },
        "exec".into(),
        "--".into(),
    ]
}

/// What to change in one container.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct ContainerWrap {
    /// The new `command` of the main process, when it is wrapped.
    pub(super) command: Option<Vec<String>>,
    /// Why the main process is not wrapped.
    pub(super) not_wrapped: Option<String>,
    /// The new `exec.command` of probes and lifecycle hooks, by path in the container.
    pub(super) hooks: Vec<(Vec<&'static str>, Vec<String>)>,
}

impl ContainerWrap {
    /// Whether anything in the container runs under `agent exec` (it then needs the
    /// binary's volume and the plan).
    pub(super) fn wraps(&self) -> bool {
        self.command.is_some() || !self.hooks.is_empty()
    }
}

/// Whether a container is the Flyte task container, for args-only wrapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// The task container ([`super::task`]).
    Task,
    /// Another container or init container present at admission.
    Other,
    /// A container added by another webhook after ours (re-invocation).
    Late,
}

/// The wrap decision for one container, when it has ENV_VAR secrets to wrap for.
pub(super) fn decide(c: &Container, role: Role, settings: &Settings) -> ContainerWrap {
    if let Some(m) = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| same_path(&m.mount_path, &settings.exec_wrap.bin_path))
    {
        return ContainerWrap {
            not_wrapped: Some(format!(
                "it already mounts volume {} at {}",
                m.name, m.mount_path
            )),
            ..ContainerWrap::default()
        };
    }
    let wrapped = |cmd: &[String], expanded: bool| -> Vec<String> {
        prefix(settings, expanded)
            .into_iter()
            .chain(cmd.iter().cloned())
            .collect()
    };
    let mut w = ContainerWrap::default();
    let command = c.command.as_deref().unwrap_or_default();
    let args = c.args.as_deref().unwrap_or_default();
    if !command.is_empty() {
        w.command = Some(wrapped(command, true));
    } else if args.is_empty() {
        w.not_wrapped = Some(
            "it has neither command nor args: the image's entrypoint runs and cannot be wrapped"
                .into(),
        );
    } else if settings.exec_wrap.args_only && role == Role::Task {
        w.command = Some(prefix(settings, true));
    } else if settings.exec_wrap.args_only {
        w.not_wrapped = Some(match role {
            Role::Late => "it has only args and was added by another webhook after admission: \
                           its image's ENTRYPOINT is not replaced"
                .into(),
            _ => "it has only args and is not the Flyte task container (the pod's \
                  primary_container_name, else its only container): its image's ENTRYPOINT \
                  is not replaced"
                .into(),
        });
    } else {
        w.not_wrapped = Some(
            "it has only args, and execWrapArgsOnly is off (the image may have an ENTRYPOINT)"
                .into(),
        );
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (field, probe) in probes {
        let exec = probe.as_ref().and_then(|p| p.exec.as_ref());
        if let Some(cmd) = exec.and_then(|e| e.command.as_deref())
            && !cmd.is_empty()
        {
            w.hooks
                .push((vec![field, "exec", "command"], wrapped(cmd, true)));
        }
    }
    if let Some(lifecycle) = &c.lifecycle {
        for (field, handler) in [
            ("postStart", &lifecycle.post_start),
            ("preStop", &lifecycle.pre_stop),
        ] {
            let exec = handler.as_ref().and_then(|h| h.exec.as_ref());
            if let Some(cmd) = exec.and_then(|e| e.command.as_deref())
                && !cmd.is_empty()
            {
                // The kubelet runs lifecycle hooks' commands as written (no expansion).
                w.hooks.push((
                    vec!["lifecycle", field, "exec", "command"],
                    wrapped(cmd, false),
                ));
            }
        }
    }
    w
}

/// Whether containers are decided at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mode {
    /// No ENV_VAR secret needs wrapping, or `execWrap` is off.
    Off,
    /// Decide each container.
    On,
    /// Wrapping is needed but impossible for every container, for this reason.
    Unavailable(String),
}

/// The wrap decisions of one admission.
#[derive(Debug)]
pub(super) struct Wrapping<'p> {
    mode: Mode,
    /// The plan env var wrapped containers get (`agent exec` reads it).
    pub(super) plan_env: Part<'p, EnvVar>,
    /// The read-only mount of the binary's volume in wrapped containers.
    pub(super) bin_mount: VolumeMount,
    /// Containers with something wrapped.
    pub(super) wrapped: Vec<String>,
    /// Containers whose main process is not wrapped, and why.
    pub(super) unwrapped: Vec<(String, String)>,
    /// The Flyte task container, the only one args-only wrapping may take.
    task: Option<String>,
    /// Re-invocation: every container left to wire was added by another webhook.
    late: bool,
}

impl<'p> Wrapping<'p> {
    /// `bin_volume`: whether the binary's volume is or will be there (`false` when a pod
    /// admitted without it is re-invoked); `plan_env`: the plan env var wrapped containers
    /// get; `task`: the Flyte task container; `late`: re-invocation, where no container to
    /// wire is the task's.
    pub(super) fn new(
        plan_env: Part<'p, EnvVar>,
        unserved: &[Unserved<'_>],
        settings: &Settings,
        bin_volume: bool,
        task: Option<&str>,
        late: bool,
    ) -> Self {
        let mode = if !settings.exec_wrap.enabled || unserved.is_empty() {
            Mode::Off
        } else if bin_volume {
            Mode::On
        } else {
            Mode::Unavailable(format!(
                "it was added after admission, and the pod has no {BIN_VOLUME_NAME} volume"
            ))
        };
        Self {
            mode,
            plan_env,
            bin_mount: VolumeMount {
                name: BIN_VOLUME_NAME.into(),
                mount_path: settings.exec_wrap.bin_path.clone(),
                read_only: Some(true),
                ..Default::default()
            },
            wrapped: Vec::new(),
            unwrapped: Vec::new(),
            task: task.map(String::from),
            late,
        }
    }

    /// The plan env var for a plan serialized as `plan_json`.
    pub(super) fn plan_env(plan_json: &str) -> EnvVar {
        plain_env(PLAN_ENV, plan_json.to_string())
    }

    /// Decides one container and records the outcome.
    pub(super) fn decide(&mut self, c: &Container, settings: &Settings) -> ContainerWrap {
        match &self.mode {
            Mode::Off => ContainerWrap::default(),
            Mode::Unavailable(reason) => {
                self.unwrapped.push((c.name.clone(), reason.clone()));
                ContainerWrap::default()
            }
            Mode::On => {
                let role = match &self.task {
                    _ if self.late => Role::Late,
                    Some(t) if *t == c.name => Role::Task,
                    _ => Role::Other,
                };
                let w = decide(c, role, settings);
                if let Some(reason) = &w.not_wrapped {
                    self.unwrapped.push((c.name.clone(), reason.clone()));
                }
                if w.wraps() {
                    self.wrapped.push(c.name.clone());
                }
                w
            }
        }
    }

    /// One warning per ENV_VAR secret whose env vars stay unset somewhere: where, why, and
    /// the file to read instead.
    pub(super) fn warnings(&self, unserved: &[Unserved<'_>], settings: &Settings) -> Vec<String> {
        let layout = &settings.layout;
        let mut warnings = Vec::new();
        for &Unserved { planned, by_ref } in unserved {
            let file = planned
                .files
                .first()
                .map(|f| layout.absolute(f))
                .unwrap_or_default();
            let head = if by_ref {
                let later: Vec<&str> = settings.backends[1..]
                    .iter()
                    .filter(|b| b.check(&planned.request).is_ok())
                    .map(Backend::kind)
                    .collect();
                format!(
                    "{}: secret {} is ENV_VAR, and when it comes from {} rather than a \
                     Kubernetes Secret of this namespace no secretKeyRef holds it",
                    planned.annotation,
                    planned.request.name(),
                    later.join(" or "),
                )
            } else {
                format!(
                    "{}: secret {} is ENV_VAR but not a Kubernetes Secret of this namespace",
                    planned.annotation,
                    planned.request.name(),
                )
            };
            let names = planned.env.join(", ");
            let tail = format!("it is in the file {file} (flytekit falls back to it)");
            if !settings.exec_wrap.enabled {
                if by_ref {
                    // As without wrapping: the secretKeyRef is the best the spec can do.
                    continue;
                }
                warnings.push(format!(
                    "{head}, and agent exec wrapping is off, so {names} cannot hold its \
                     value; {tail}"
                ));
            } else if !self.unwrapped.is_empty() {
                let where_: Vec<String> = self
                    .unwrapped
                    .iter()
                    .map(|(name, why)| format!("container {name} ({why})"))
                    .collect();
                warnings.push(format!(
                    "{head}, and agent exec cannot wrap {}, so {names} cannot hold its value \
                     there; {tail}",
                    where_.join("; ")
                ));
            }
        }
        warnings
    }
}

/// The in-memory volume the agent copies itself into.
pub(super) fn bin_volume(settings: &Settings) -> Volume {
    Volume {
        name: BIN_VOLUME_NAME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(settings.exec_wrap.bin_size_limit.clone()),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
