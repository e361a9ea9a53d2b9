//! Every name the webhook and the agent must agree on outside the plan itself: the agent
//! container's environment variables, the paths the kubelet mounts, and the log format.
//!
//! The webhook writes these names into pod specs and the agent reads them (clap `env`
//! fallbacks), so each is spelled here once and nowhere else.

use std::fmt;
use std::str::FromStr;

/// The fetch plan (JSON), set by the webhook on the agent container.
pub const PLAN_ENV: &str = "FLYTE_SECRET_PLAN";
/// A file holding the plan, instead of [`PLAN_ENV`] (`agent fetch`, debugging).
pub const PLAN_FILE_ENV: &str = "FLYTE_SECRET_PLAN_FILE";
/// The agent's log format ([`LogFormat`]).
pub const LOG_FORMAT_ENV: &str = "FLYTE_SECRET_LOG_FORMAT";
/// The agent's log filter (`level` or `target=level`, comma-separated).
pub const LOG_FILTER_ENV: &str = "FLYTE_SECRET_LOG";
/// Where `agent init` copies itself for `agent exec` in app containers.
pub const COPY_SELF_ENV: &str = "FLYTE_SECRET_COPY_SELF_TO";
/// A directory to write into / read from instead of the plan's mount path.
pub const ROOT_ENV: &str = "FLYTE_SECRET_ROOT";
/// Where `agent init` writes its one-line failure summary.
pub const TERMINATION_LOG_ENV: &str = "FLYTE_SECRET_TERMINATION_LOG";
/// The kubelet's default termination-message path.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";
/// The agent-only in-memory directory through which `agent init` hands its Vault token and
/// database lease ids to the refresh sidecar (`agent watch`), which renews them. Mounted in
/// those two containers only, never in app containers.
pub const VAULT_HANDOVER_ENV: &str = "FLYTE_SECRET_VAULT_HANDOVER";
/// Where the webhook mounts the handover directory ([`VAULT_HANDOVER_ENV`]).
pub const VAULT_HANDOVER_DIR: &str = "/var/run/secrets/flyte-secret-agent/handover";

/// Where the kubelet mounts a pod's service-account token, CA and namespace.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The service-account token inside [`SERVICE_ACCOUNT_DIR`].
pub const SERVICE_ACCOUNT_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The API server's CA bundle inside [`SERVICE_ACCOUNT_DIR`].
pub const SERVICE_ACCOUNT_CA_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// The pod's namespace inside [`SERVICE_ACCOUNT_DIR`].
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// Where the agent's init container finds the pod's own Kubernetes Secrets: the webhook mounts
/// one `secret` volume per requested Secret at `<this>/<secret name>` (only the requested keys,
/// each at `<data key>`), in the agent container only; the kubelet reads them under node
/// authorization, so the task's service account needs no Secret RBAC.
pub const KUBE_SECRETS_DIR: &str = "/var/run/secrets/flyte-secret-agent/kubernetes";
/// Overrides [`KUBE_SECRETS_DIR`] (`agent fetch`, tests).
pub const KUBE_SECRETS_DIR_ENV: &str = "FLYTE_SECRET_KUBE_SECRETS_DIR";
/// Where the agent container (only) gets its broker token: a projected service-account token
/// bound to the pod, with the broker's audience and a short expiry.
pub const BROKER_TOKEN_DIR: &str = "/var/run/secrets/flyte-secret-agent/broker";
/// The broker token inside [`BROKER_TOKEN_DIR`].
pub const BROKER_TOKEN_FILE: &str = "/var/run/secrets/flyte-secret-agent/broker/token";
/// Overrides [`BROKER_TOKEN_FILE`] (`agent fetch`, tests).
pub const BROKER_TOKEN_FILE_ENV: &str = "FLYTE_SECRET_BROKER_TOKEN_FILE";
/// The CA bundle (PEM) the agent trusts for the broker, set by the webhook (public data: the
/// CA certificate that signed the broker's serving certificate).
pub const BROKER_CA_ENV: &str = "FLYTE_SECRET_BROKER_CA";

/// The Flyte 2 pod labels (`run`, `action`, `attempt`, `task-name`, flyteorg/flyte#7865) the
/// webhook copies onto the agent container, as `label=value` pairs joined by `,` (label values
/// cannot hold either), so that every agent log line carries them as fields: the join key
/// between a pod's logs and its run, action and attempt.
pub const POD_LABELS_ENV: &str = "FLYTE_SECRET_POD_LABELS";
/// The pod labels copied into [`POD_LABELS_ENV`], in the order log lines show them.
pub const LOG_LABELS: [&str; 4] = ["run", "action", "attempt", "task-name"];

/// Whether `value` is a valid Kubernetes label value (at most 63 characters of
/// `[A-Za-z0-9._-]`, alphanumeric at both ends), so that it needs no escaping anywhere.
pub fn is_label_value(value: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !value.is_empty()
        && value.len() <= 63
        && alnum(value.chars().next())
        && alnum(value.chars().last())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The [`POD_LABELS_ENV`] value for a pod's labels: the [`LOG_LABELS`] it carries with a
/// valid, non-empty value (Flyte skips empty ones), or `None` when it carries none.
pub fn pod_labels_value<'a>(mut label: impl FnMut(&str) -> Option<&'a str>) -> Option<String> {
    let pairs: Vec<String> = LOG_LABELS
        .iter()
        .filter_map(|k| {
            label(k)
                .filter(|v| is_label_value(v))
                .map(|v| format!("{k}={v}"))
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join(","))
}

/// Parses a [`POD_LABELS_ENV`] value: the known labels with valid values, in
/// [`LOG_LABELS`] order; anything else is ignored (a log field is never worth failing for).
pub fn parse_pod_labels(value: &str) -> Vec<(&'static str, String)> {
    let pairs: Vec<(&str, &str)> = value
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .collect();
    LOG_LABELS
        .iter()
        .filter_map(|k| {
            let v = pairs.iter().find(|(name, _)| name == k)?.1;
            is_label_value(v).then(|| (*k, v.to_string()))
        })
        .collect()
}

/// How the webhook and the agent write log lines. Both binaries emit the same JSON shape:
/// one object per line, the event's fields at the top level beside `timestamp`, `level`
/// and `message`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Plain,
    /// One JSON object per line, for log collectors.
    Json,
}

impl LogFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [LogFormat; 2] = [LogFormat::Plain, LogFormat::Json];

    /// The spelling in flags, env vars and config files.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A log format other than `plain` or `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log format {0:?} is not one of plain, json")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownLogFormat(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_round_trip_and_reject_others() {
        for f in LogFormat::ALL {
            assert_eq!(f.as_str().parse::<LogFormat>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!(
            "JSON".parse::<LogFormat>(),
            Err(UnknownLogFormat("JSON".into()))
        );
    }

    #[test]
    fn pod_labels_round_trip_in_order_and_skip_what_is_not_a_label_value() {
        let labels = [
            ("task-name", "my-task"),
            ("run", "r8x2k"),
            ("attempt", "1"),
            ("action", ""),
            ("other", "x"),
        ];
        let get = |k: &str| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        let value = pod_labels_value(get).unwrap();
        assert_eq!(value, "run=r8x2k,attempt=1,task-name=my-task");
        assert_eq!(
            parse_pod_labels(&value),
            [
                ("run", "r8x2k".to_string()),
                ("attempt", "1".to_string()),
                ("task-name", "my-task".to_string())
            ]
        );
        assert_eq!(pod_labels_value(|_| None), None);
        assert_eq!(pod_labels_value(|_| Some("a\"b")), None);
        // Unknown names, bad values and junk are dropped, not fatal.
        assert_eq!(
            parse_pod_labels("x=1,run=-bad,action=a0,junk,attempt=\"2\""),
            [("action", "a0".to_string())]
        );
        assert!(is_label_value(&"a".repeat(63)) && !is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn service_account_files_live_in_its_dir() {
        for file in [
            SERVICE_ACCOUNT_TOKEN_FILE,
            SERVICE_ACCOUNT_CA_FILE,
            SERVICE_ACCOUNT_NAMESPACE_FILE,
        ] {
            assert_eq!(
                std::path::Path::new(file).parent(),
                Some(std::path::Path::new(SERVICE_ACCOUNT_DIR))
            );
        }
    }
}
