//! Flags over the file over the defaults, one function per settings group, each validating
//! what it resolves. [`super::Settings::resolve`] calls them in this order, so the first
//! invalid setting reported is the same whatever else is wrong.

use flyte_secret_spec::aggregate::{self, Format};
use flyte_secret_spec::backend::{Backend, KubernetesBackend};
use flyte_secret_spec::env::{COPY_SELF_ENV, LOG_FORMAT_ENV, LogFormat, PLAN_ENV};
use flyte_secret_spec::naming::{self, Layout};
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::refresh::Refresh;
use flyte_secret_spec::request::is_valid_env_var_name;
use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::file::{FileConfig, ProjectedToken};
use super::flags::InjectArgs;
use super::settings::{
    AgentSettings, DEFAULT_AGENT_BIN_PATH, DEFAULT_AGENT_BIN_SIZE_LIMIT, DEFAULT_FALLBACK_ID,
    DEFAULT_IMAGE, ExecWrap, Ownership, PullPolicy, ScopeSettings,
};
use super::validate::{is_k8s_env_name, is_quantity, overlaps};
use super::{Error, invalid};

/// Env vars of the agent container that config may not set.
const RESERVED_AGENT_ENV: [&str; 3] = [PLAN_ENV, LOG_FORMAT_ENV, COPY_SELF_ENV];

/// The flag if given, else the file's value.
pub(super) fn pick<T: Clone>(flag: &Option<T>, file: Option<T>) -> Option<T> {
    flag.clone().or(file)
}

/// `mountPath`, `envPrefix` and `backends`, checked the way the agent will check a plan.
pub(super) fn plan(args: &InjectArgs, file: &FileConfig) -> Result<(Layout, Vec<Backend>), Error> {
    let layout = Layout {
        mount_path: pick(&args.mount_path, file.mount_path.clone())
            .unwrap_or_else(|| naming::DEFAULT_MOUNT_PATH.into()),
        env_prefix: pick(&args.env_prefix, file.env_prefix.clone())
            .unwrap_or_else(|| naming::FLYTE1_ENV_PREFIX.into()),
    };
    let backends = match &args.backends {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| invalid("backends", format!("not a JSON array of backends: {e}")))?,
        None => file
            .backends
            .clone()
            .unwrap_or_else(|| vec![Backend::Kubernetes(KubernetesBackend::default())]),
    };
    // A Vault role template (`flyte-{{namespace}}`) must render to a role for any namespace.
    for backend in &backends {
        if let Backend::Vault(vault) = backend {
            vault
                .auth
                .check_role()
                .map_err(|e| invalid("backends", e))?;
        }
    }
    // An empty plan checks the mount path and the backend list the way the agent will.
    FetchPlan::new(&layout, backends.clone())
        .validate()
        .map_err(|e| invalid("mountPath/backends", e.to_string()))?;
    if layout.env_prefix.is_empty()
        || !layout
            .env_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(invalid("envPrefix", "must be non-empty [A-Za-z0-9_]"));
    }
    Ok((layout, backends))
}

/// The agent init container.
pub(super) fn agent(args: &InjectArgs, file: &FileConfig) -> Result<AgentSettings, Error> {
    let image =
        pick(&args.agent_image, file.agent_image.clone()).unwrap_or_else(|| DEFAULT_IMAGE.into());
    if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
        return Err(invalid("agentImage", format!("{image:?}")));
    }
    let log_format = match pick(&args.agent_log_format, file.agent_log_format.clone()) {
        None => LogFormat::Json,
        Some(name) => name
            .parse()
            .map_err(|_| invalid("agentLogFormat", "must be json or plain"))?,
    };
    Ok(AgentSettings {
        image,
        pull_policy: pick(&args.agent_pull_policy, file.agent_pull_policy)
            .unwrap_or(PullPolicy::IfNotPresent),
        log_format,
        env: agent_env(args, file)?,
        resources: agent_resources(args, file)?,
    })
}

/// The file's `agentEnv`, then the `--agent-env` pairs; none may be ours.
fn agent_env(args: &InjectArgs, file: &FileConfig) -> Result<Vec<EnvVar>, Error> {
    let mut env = file.agent_env.clone().unwrap_or_default();
    for pair in &args.agent_env {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| invalid("agentEnv", format!("{pair:?} is not NAME=VALUE")))?;
        env.push(EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        });
    }
    for var in &env {
        if !is_valid_env_var_name(&var.name) && !is_k8s_env_name(&var.name) {
            return Err(invalid("agentEnv", format!("bad name {:?}", var.name)));
        }
        if RESERVED_AGENT_ENV.contains(&var.name.as_str()) {
            return Err(invalid(
                "agentEnv",
                format!("{} is set by the webhook", var.name),
            ));
        }
    }
    Ok(env)
}

/// The file's `agentResources` (or the defaults), then the four resource flags.
fn agent_resources(args: &InjectArgs, file: &FileConfig) -> Result<ResourceRequirements, Error> {
    let mut resources = file
        .agent_resources
        .clone()
        .unwrap_or_else(default_resources);
    for (flag, limit, key) in [
        (&args.agent_cpu_request, false, "cpu"),
        (&args.agent_memory_request, false, "memory"),
        (&args.agent_cpu_limit, true, "cpu"),
        (&args.agent_memory_limit, true, "memory"),
    ] {
        if let Some(value) = flag {
            let map = if limit {
                resources.limits.get_or_insert_default()
            } else {
                resources.requests.get_or_insert_default()
            };
            map.insert(key.into(), Quantity(value.clone()));
        }
    }
    for map in [&resources.requests, &resources.limits]
        .into_iter()
        .flatten()
    {
        for (name, q) in map {
            if !is_quantity(&q.0) {
                return Err(invalid(
                    "agentResources",
                    format!("{name}: {:?} is not a quantity", q.0),
                ));
            }
        }
    }
    Ok(resources)
}

fn default_resources() -> ResourceRequirements {
    let q = |s: &str| Quantity(s.into());
    ResourceRequirements {
        requests: Some(
            [("cpu".into(), q("10m")), ("memory".into(), q("16Mi"))]
                .into_iter()
                .collect(),
        ),
        limits: Some([("memory".into(), q("64Mi"))].into_iter().collect()),
        ..Default::default()
    }
}

/// `volumeSizeLimit` of the secrets volume.
pub(super) fn volume_size_limit(args: &InjectArgs, file: &FileConfig) -> Result<Quantity, Error> {
    let limit = pick(&args.volume_size_limit, file.volume_size_limit.clone())
        .unwrap_or_else(|| "16Mi".into());
    if !is_quantity(&limit) {
        return Err(invalid("volumeSizeLimit", format!("{limit:?}")));
    }
    Ok(Quantity(limit))
}

/// `fallbackUid` (never root) and `fallbackGid`.
pub(super) fn ownership(args: &InjectArgs, file: &FileConfig) -> Result<Ownership, Error> {
    let fallback_uid = pick(&args.fallback_uid, file.fallback_uid).unwrap_or(DEFAULT_FALLBACK_ID);
    let fallback_gid = pick(&args.fallback_gid, file.fallback_gid).unwrap_or(DEFAULT_FALLBACK_ID);
    if !(1..=i64::from(u32::MAX)).contains(&fallback_uid) {
        return Err(invalid("fallbackUid", "must be a non-root uid"));
    }
    if !(0..=i64::from(u32::MAX)).contains(&fallback_gid) {
        return Err(invalid("fallbackGid", "out of range"));
    }
    Ok(Ownership {
        fallback_uid,
        fallback_gid,
    })
}

/// `defaultOrg` and `scopeFromNamespace`.
pub(super) fn scope(args: &InjectArgs, file: &FileConfig) -> ScopeSettings {
    ScopeSettings {
        default_org: pick(&args.default_org, file.default_org.clone())
            .unwrap_or_else(|| flyte_secret_spec::scoped::DEFAULT_ORG.into()),
        from_namespace: pick(&args.scope_from_namespace, file.scope_from_namespace)
            .unwrap_or(false),
    }
}

/// `vaultToken` (file only): a lifetime the kubelet accepts, a mount of its own.
pub(super) fn vault_token(file: &FileConfig, layout: &Layout) -> Result<(), Error> {
    let Some(t) = &file.vault_token else {
        return Ok(());
    };
    if !(600..=i64::from(u32::MAX)).contains(&t.expiration_seconds) {
        return Err(invalid(
            "vaultToken.expirationSeconds",
            "must be at least 600",
        ));
    }
    if !t.mount_path.starts_with('/') || t.mount_path == layout.mount_path {
        return Err(invalid(
            "vaultToken.mountPath",
            "must be absolute and differ from mountPath",
        ));
    }
    Ok(())
}

/// `agent exec` wrapping: the binary's mount path clear of the other mounts.
pub(super) fn exec_wrap(
    args: &InjectArgs,
    file: &FileConfig,
    layout: &Layout,
    vault_token: Option<&ProjectedToken>,
) -> Result<ExecWrap, Error> {
    let bin_path = pick(&args.agent_bin_path, file.agent_bin_path.clone())
        .unwrap_or_else(|| DEFAULT_AGENT_BIN_PATH.into());
    let bin_path = bin_path.trim_end_matches('/').to_string();
    let others = [Some(&layout.mount_path), vault_token.map(|t| &t.mount_path)];
    if !bin_path.starts_with('/')
        || bin_path.split('/').any(|c| c == "." || c == "..")
        || others.into_iter().flatten().any(|p| overlaps(p, &bin_path))
    {
        return Err(invalid(
            "agentBinPath",
            format!(
                "{bin_path:?} must be an absolute path other than /, outside and \
                 not above mountPath and vaultToken.mountPath"
            ),
        ));
    }
    let bin_size_limit = pick(
        &args.agent_bin_size_limit,
        file.agent_bin_size_limit.clone(),
    )
    .unwrap_or_else(|| DEFAULT_AGENT_BIN_SIZE_LIMIT.into());
    if !is_quantity(&bin_size_limit) {
        return Err(invalid("agentBinSizeLimit", format!("{bin_size_limit:?}")));
    }
    Ok(ExecWrap {
        enabled: pick(&args.exec_wrap, file.exec_wrap).unwrap_or(true),
        args_only: pick(&args.exec_wrap_args_only, file.exec_wrap_args_only).unwrap_or(true),
        bin_path,
        bin_size_limit: Quantity(bin_size_limit),
    })
}

/// `aggregateFormat`: a format of `flyte_secret_spec::aggregate`, or `none`.
pub(super) fn aggregate(args: &InjectArgs, file: &FileConfig) -> Result<Option<Format>, Error> {
    match pick(&args.aggregate_format, file.aggregate_format.clone()) {
        None => Ok(None),
        Some(choice) => {
            aggregate::parse_choice(&choice).map_err(|e| invalid("aggregateFormat", e.to_string()))
        }
    }
}

/// `refreshInterval`: off, or an interval within the spec's bounds.
pub(super) fn refresh(args: &InjectArgs, file: &FileConfig) -> Result<Refresh, Error> {
    match pick(&args.refresh_interval, file.refresh_interval.clone()) {
        None => Ok(Refresh::Off),
        Some(text) => flyte_secret_spec::refresh::parse(&text)
            .map_err(|e| invalid("refreshInterval", e.to_string())),
    }
}
