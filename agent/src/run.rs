//! The two entry points, `init` and `fetch`, over one code path: plan → resolve → write.

use std::path::{Path, PathBuf};
use std::time::Instant;

use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::{Backend, Layout, Scope, SecretPath, SecretRequest};

use crate::backends::Context;
use crate::backends::kube::KubeSettings;
use crate::cli::{BackendName, FetchArgs, InitArgs, KubeArgs, TimeArgs};
use crate::resolve::{Resolution, resolve};
use crate::retry::Policy;
use crate::termination;
use crate::value::SecretValue;
use crate::writer::Writer;

/// How a run ended, mapped to the documented exit codes.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Usage or configuration (exit 2).
    #[error("{0}")]
    Usage(String),
    /// A secret could not be fetched or written (exit 1).
    #[error("{0}")]
    Failed(String),
    /// `agent exec` could not start the program (exit 127).
    #[error("{0}")]
    Exec(String),
}

impl RunError {
    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Failed(_) => 1,
            Self::Exec(_) => crate::exec::EXEC_FAILED,
        }
    }
}

fn kube_settings(args: &KubeArgs, kubeconfig: Option<PathBuf>) -> KubeSettings {
    KubeSettings {
        api_server: args.kube_api_server.clone(),
        token_file: args.kube_token_file.clone().into(),
        ca_file: args.kube_ca_file.clone().into(),
        namespace_file: args.kube_namespace_file.clone().into(),
        kubeconfig,
    }
}

pub(crate) fn read_plan(inline: Option<&str>, file: Option<&Path>) -> Result<FetchPlan, RunError> {
    let text = match (inline, file) {
        (Some(text), _) => text.to_string(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map_err(|e| RunError::Usage(format!("reading plan {}: {e}", path.display())))?,
        (None, None) => {
            return Err(RunError::Usage(
                "no plan: set FLYTE_SECRET_PLAN (the webhook does) or --plan-file".into(),
            ));
        }
    };
    FetchPlan::from_json(&text).map_err(|e| RunError::Usage(e.to_string()))
}

fn context(plan: &FetchPlan, time: &TimeArgs) -> Context {
    let (attempt, deadline) = time.resolve(&plan.timeouts);
    Context {
        policy: Policy::new(attempt, tokio::time::Instant::now() + deadline),
        scope: plan.scope.clone(),
    }
}

/// The files of a resolved plan: each secret's files, plus companions beside its primary.
fn files_of(
    plan: &FetchPlan,
    resolution: &Resolution,
) -> Result<Vec<(SecretPath, SecretValue)>, RunError> {
    let layout = plan.layout();
    let mut files = Vec::new();
    for (secret, found) in plan.secrets.iter().zip(&resolution.found) {
        let Some(found) = found else { continue };
        for path in &secret.files {
            files.push((path.clone(), found.value.clone()));
        }
        for (name, value) in &found.companions {
            let path = layout.companion(&secret.files[0], name).map_err(|e| {
                RunError::Failed(format!(
                    "secret {}: companion file {name}: {e}",
                    secret.request.name()
                ))
            })?;
            files.push((path, value.clone()));
        }
    }
    Ok(files)
}

fn log_resolution(plan: &FetchPlan, resolution: &Resolution) {
    for (secret, found) in plan.secrets.iter().zip(&resolution.found) {
        if let Some(f) = found {
            tracing::info!(
                secret = %secret.request.name(),
                backend = f.backend,
                bytes = f.value.len(),
                retries = f.retries,
                version = f.version.as_deref().unwrap_or(""),
                "fetched"
            );
        }
    }
    for failure in &resolution.failures {
        tracing::error!(secret = %failure.secret, annotation = %failure.annotation, "{}", failure.summary());
    }
}

fn failure_message(plan: &FetchPlan, resolution: &Resolution) -> String {
    let lines: Vec<String> = resolution.failures.iter().map(|f| f.summary()).collect();
    format!(
        "flyte-secret-agent: {} of {} secrets failed: {}",
        resolution.failures.len(),
        plan.secrets.len(),
        lines.join(" | ")
    )
}

/// `agent init`.
pub async fn init(args: InitArgs) -> Result<(), RunError> {
    let started = Instant::now();
    let fail = |e: RunError| {
        termination::write(&args.termination_log, &format!("flyte-secret-agent: {e}"));
        e
    };
    let plan = read_plan(args.plan.as_deref(), args.plan_file.as_deref()).map_err(fail)?;
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(&plan.mount_path));
    let ctx = context(&plan, &args.time);
    tracing::info!(secrets = plan.secrets.len(), backends = plan.backends.len(), root = %root.display(), "fetching");
    let resolution = resolve(&plan, &kube_settings(&args.kube, None), &ctx).await;
    log_resolution(&plan, &resolution);
    if !resolution.failures.is_empty() {
        let message = failure_message(&plan, &resolution);
        termination::write(&args.termination_log, &message);
        return Err(RunError::Failed(message));
    }
    let files = files_of(&plan, &resolution).map_err(fail)?;
    let written = Writer::new(&root, plan.access, plan.owner)
        .write(&files)
        .map_err(|e| fail(RunError::Failed(format!("writing secrets: {e}"))))?;
    if let Some(dir) = &args.copy_self_to {
        copy_self(dir).map_err(|e| {
            fail(RunError::Failed(format!(
                "copying the agent to {}: {e}",
                dir.display()
            )))
        })?;
    }
    let retries: u32 = resolution.found.iter().flatten().map(|f| f.retries).sum();
    tracing::info!(
        secrets = plan.secrets.len(),
        files = written.files,
        bytes = written.bytes,
        retries,
        duration_ms = started.elapsed().as_millis() as u64,
        "all secrets written"
    );
    Ok(())
}

/// Copies this (static) binary to `<dir>/agent`, mode 0555, atomically, so app containers
/// can run `agent exec` from a shared volume.
fn copy_self(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let me = std::env::current_exe()?;
    let tmp = dir.join(format!(".agent.tmp.{}", std::process::id()));
    std::fs::copy(&me, &tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, dir.join("agent"))
}

/// The plan `agent fetch` builds from its flags.
pub fn plan_from_flags(args: &FetchArgs) -> Result<FetchPlan, RunError> {
    let layout = Layout {
        mount_path: args.mount_path.clone(),
        env_prefix: args.env_prefix.clone(),
    };
    let backends = args
        .backends
        .iter()
        .map(|b| match b {
            BackendName::Kubernetes => Backend::Kubernetes(KubernetesBackend {
                namespace: args.kube_namespace.clone(),
                managed_namespace: args.managed_namespace.clone(),
            }),
            BackendName::Aws => Backend::Aws(args.aws.backend()),
            BackendName::Vault => Backend::Vault(
                args.vault
                    .backend(args.vault_engine.into(), &args.kube.kube_token_file),
            ),
        })
        .collect();
    let mut plan = FetchPlan::new(&layout, backends);
    plan.scope = Some(Scope {
        org: args.org.clone(),
        domain: args.domain.clone(),
        project: args.project.clone(),
    });
    let request = SecretRequest {
        group: args.group.clone(),
        group_version: args.group_version.clone(),
        key: args.key.clone().unwrap_or_default(),
        mount_requirement: args.mount.into(),
        env_var: args.env_var.clone(),
    };
    plan.push("", request)
        .map_err(|e| RunError::Usage(e.to_string()))?;
    plan.validate()
        .map_err(|e| RunError::Usage(e.to_string()))?;
    Ok(plan)
}

/// `agent fetch`.
pub async fn fetch(args: FetchArgs) -> Result<(), RunError> {
    let plan = match &args.plan_file {
        Some(path) => read_plan(None, Some(path))?,
        None => plan_from_flags(&args)?,
    };
    let ctx = context(&plan, &args.time);
    let resolution = resolve(
        &plan,
        &kube_settings(&args.kube, args.kubeconfig.clone()),
        &ctx,
    )
    .await;
    log_resolution(&plan, &resolution);
    let layout = plan.layout();
    for (secret, found) in plan.secrets.iter().zip(&resolution.found) {
        let Some(found) = found else { continue };
        let files: Vec<String> = secret.files.iter().map(|f| layout.absolute(f)).collect();
        println!(
            "{}\tbackend={}\tbytes={}\tversion={}\tfiles={}",
            secret.request.name(),
            found.backend,
            found.value.len(),
            found.version.as_deref().unwrap_or("-"),
            files.join(",")
        );
        if args.show {
            println!("{}", String::from_utf8_lossy(found.value.expose()));
        }
    }
    if !resolution.failures.is_empty() {
        let message = failure_message(&plan, &resolution);
        if let Some(path) = &args.termination_log {
            termination::write(path, &message);
        }
        return Err(RunError::Failed(message));
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out)
            .map_err(|e| RunError::Usage(format!("creating {}: {e}", out.display())))?;
        let files = files_of(&plan, &resolution)?;
        let written = Writer::new(out, plan.access, plan.owner)
            .write(&files)
            .map_err(|e| RunError::Failed(format!("writing secrets: {e}")))?;
        eprintln!(
            "wrote {} files ({} bytes) under {}",
            written.files,
            written.bytes,
            out.display()
        );
    }
    Ok(())
}
