//! The two entry points, `init` and `fetch`, over one code path: plan → resolve → write.

use std::path::{Path, PathBuf};
use std::time::Instant;

use flyte_secret_spec::backend::KubernetesBackend;
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::{Backend, Layout, Scope, SecretPath, SecretRequest};

use crate::aggregate;
use crate::backends::kube::KubeAccess;
use crate::backends::{Access, Context};
use crate::cli::flags::{BackendName, PlanArgs, TimeArgs};
use crate::cli::{FetchArgs, InitArgs};
use crate::error::Error;
use crate::resolve::{Resolution, resolve};
use crate::termination;
use crate::value::SecretValue;
use crate::writer::{RootPolicy, Writer};

/// The plan given inline (as the webhook sets it) or in a file.
pub fn read_plan(args: &PlanArgs) -> Result<FetchPlan, Error> {
    let text = match (&args.plan, &args.plan_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|source| Error::ReadPlan {
            path: path.clone(),
            source,
        })?,
        (None, None) => return Err(Error::NoPlan),
    };
    Ok(FetchPlan::from_json(&text)?)
}

pub(crate) fn context(plan: &FetchPlan, time: &TimeArgs) -> Context {
    Context {
        policy: time.policy(&plan.timeouts),
        scope: plan.scope.clone(),
    }
}

/// The files of a resolved plan: each secret's files, plus companions beside its primary.
pub(crate) fn files_of(
    plan: &FetchPlan,
    resolution: &Resolution,
) -> Result<Vec<(SecretPath, SecretValue)>, Error> {
    let layout = plan.layout();
    let mut files = Vec::new();
    for (secret, found) in plan.secrets.iter().zip(&resolution.found) {
        let Some(found) = found else { continue };
        for path in &secret.files {
            files.push((path.clone(), found.value.clone()));
        }
        for (name, value) in &found.companions {
            let path =
                layout
                    .companion(&secret.files[0], name)
                    .map_err(|source| Error::Companion {
                        secret: secret.request.name().to_string(),
                        name,
                        source,
                    })?;
            files.push((path, value.clone()));
        }
    }
    // One file per group in the plan's aggregate format, published with the others.
    for aggregate in plan.aggregate_files()? {
        let entries: Vec<aggregate::Entry<'_>> = aggregate
            .entries
            .iter()
            .filter_map(|(key, i)| {
                let found = resolution.found[*i].as_ref()?;
                Some(aggregate::Entry {
                    key,
                    secret: plan.secrets[*i].request.name().to_string(),
                    value: &found.value,
                })
            })
            .collect();
        let value = aggregate::render(aggregate.format, aggregate.path.as_str(), &entries)?;
        files.push((aggregate.path, value));
    }
    Ok(files)
}

pub(crate) fn log_resolution(plan: &FetchPlan, resolution: &Resolution) {
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

/// `agent init`.
pub async fn init(args: InitArgs) -> Result<(), Error> {
    let result = init_inner(&args).await;
    if let Err(e) = &result {
        // A fetch failure's summary already starts with the product's name.
        let message = match e {
            Error::Fetch(failures) => failures.to_string(),
            other => format!("flyte-secret-agent: {other}"),
        };
        termination::write(&args.termination_log, &message);
    }
    result
}

async fn init_inner(args: &InitArgs) -> Result<(), Error> {
    let started = Instant::now();
    let plan = read_plan(&args.plan)?;
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from(&plan.mount_path));
    let ctx = context(&plan, &args.time);
    tracing::info!(secrets = plan.secrets.len(), backends = plan.backends.len(), root = %root.display(), "fetching");
    // A task pod's agent has no Kubernetes API right: volumes and the broker only.
    let access = Access {
        kube: KubeAccess::Pod(args.pod.settings()),
    };
    let resolution = resolve(&plan, &access, &ctx, args.delivery.empty_values()).await;
    log_resolution(&plan, &resolution);
    if let Some(failures) = resolution.failures(plan.secrets.len()) {
        return Err(Error::Fetch(failures));
    }
    let files = files_of(&plan, &resolution)?;
    // The plan's mount path is the pod's own emptyDir (root-owned, 0777 by the kubelet);
    // a directory named with --root must be private to the agent.
    let policy = match args.root {
        Some(_) => RootPolicy::Private,
        None => RootPolicy::PodVolume,
    };
    let written = Writer::new(&root, plan.access, plan.owner)
        .root_policy(policy)
        .write(&files)?;
    if let Some(dir) = &args.copy_self_to {
        copy_self(dir).map_err(|source| Error::CopySelf {
            dir: dir.clone(),
            source,
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
pub fn plan_from_flags(args: &FetchArgs) -> Result<FetchPlan, Error> {
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
                broker: None,
            }),
            BackendName::Aws => Backend::Aws(args.aws.backend()),
            BackendName::Vault => Backend::Vault(
                args.vault
                    .backend(args.vault_engine.into(), &args.kube.kube_token_file),
            ),
            BackendName::Gcp => Backend::Gcp(args.gcp.backend()),
            BackendName::Azure => Backend::Azure(args.azure.backend()),
        })
        .collect();
    let mut plan = FetchPlan::new(&layout, backends);
    plan.aggregate = args.aggregate;
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
    plan.push("", request)?;
    plan.validate()?;
    Ok(plan)
}

/// How `agent fetch` reads Kubernetes Secrets: through the API when given API credentials
/// (`--kubeconfig`, `--kube-api-server`), else as a task pod's agent does.
fn kube_access(args: &FetchArgs) -> KubeAccess {
    if args.kubeconfig.is_some() || args.kube.kube_api_server.is_some() {
        KubeAccess::Api(args.kube.settings(args.kubeconfig.clone()))
    } else {
        KubeAccess::Pod(args.pod.settings())
    }
}

/// `agent fetch`.
pub async fn fetch(args: FetchArgs) -> Result<(), Error> {
    let plan = match &args.plan_file {
        Some(path) => read_plan(&PlanArgs {
            plan: None,
            plan_file: Some(path.clone()),
        })?,
        None => plan_from_flags(&args)?,
    };
    if args.explain {
        print!("{}", crate::explain::explain(&plan, &kube_access(&args)));
        return Ok(());
    }
    let ctx = context(&plan, &args.time);
    let access = Access {
        kube: kube_access(&args),
    };
    let resolution = resolve(&plan, &access, &ctx, args.delivery.empty_values()).await;
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
    if let Some(failures) = resolution.failures(plan.secrets.len()) {
        if let Some(path) = &args.termination_log {
            termination::write(path, &failures.to_string());
        }
        return Err(Error::Fetch(failures));
    }
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).map_err(|source| Error::CreateOut {
            path: out.clone(),
            source,
        })?;
        let files = files_of(&plan, &resolution)?;
        let written = Writer::new(out, plan.access, plan.owner).write(&files)?;
        eprintln!(
            "wrote {} files ({} bytes) under {}",
            written.files,
            written.bytes,
            out.display()
        );
    }
    Ok(())
}
