//! Small helpers shared by the container-building modules ([`super::container`],
//! [`super::wiring`], [`super::wrap`], [`super::identity_env`]): literal env vars and reading
//! one back, the kubelet's `$(VAR)` escaping, path comparison, and the volumes every
//! injection adds. It imports none of them, so their imports flow one way.

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, ProjectedVolumeSource, ServiceAccountTokenProjection,
    Volume, VolumeMount, VolumeProjection,
};

use super::{TOKEN_VOLUME_NAME, VOLUME_NAME};
use crate::config::Settings;

/// An env var whose value the container sees exactly as given: `$` is escaped as `$$`
/// ([`escape_expansion`]), so no `$(NAME)` in a path or in the plan (request-derived text)
/// is expanded by the kubelet against earlier env vars.
pub(super) fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(escape_expansion(value)),
        value_from: None,
    }
}

/// Escapes a string for the fields the kubelet expands (`env[].value`, `command`, `args`,
/// exec probes' `command`): every `$` becomes `$$`, which the kubelet turns back into one
/// `$`, so `$(NAME)` stays literal whatever is defined. The kubelet's rules (`Expand` in
/// `third_party/forked/golang/expansion`): `$$` → `$`; `$(NAME)` → the value of `NAME` when
/// defined (earlier env vars, service env), else left as it is; any other `$` is literal.
pub(super) fn escape_expansion(value: String) -> String {
    if value.contains('$') {
        value.replace('$', "$$")
    } else {
        value
    }
}

/// Undoes [`escape_expansion`] on a value the webhook wrote (every `$` doubled): what the
/// container sees.
pub(super) fn unescape_expansion(value: &str) -> String {
    value.replace("$$", "$")
}

/// The value `c`'s env gives `name` (`None` for a reference or an absent var).
pub(super) fn env_value<'c>(c: &'c Container, name: &str) -> Option<&'c str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// Whether two paths name the same directory (trailing slashes aside).
pub(super) fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The secrets volume's mount at the mount path: read-write in the agent, read-only
/// (`readOnly: true`) in the app containers.
pub(super) fn secrets_mount(settings: &Settings, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: VOLUME_NAME.into(),
        mount_path: settings.layout.mount_path.clone(),
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// The volumes every injection adds: the secrets emptyDir and, when configured, the
/// projected Vault token (derived with each plan, [`super::cache::Planned`]).
pub(super) fn injected_volumes(settings: &Settings) -> Vec<Volume> {
    let mut volumes = vec![Volume {
        name: VOLUME_NAME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(settings.volume_size_limit.clone()),
        }),
        ..Default::default()
    }];
    if let Some(token) = &settings.vault_token {
        volumes.push(Volume {
            name: TOKEN_VOLUME_NAME.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(token.audience.clone()),
                        expiration_seconds: Some(token.expiration_seconds),
                        path: "token".into(),
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    volumes
}

#[cfg(test)]
mod tests {
    use flyte_secret_testkit::kubelet::expand as kubelet_expand;

    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "A" => Some("$(HOME)".into()),
            _ => None,
        }
    }

    #[test]
    fn the_kubelet_rules() {
        for (input, want) in [
            ("$(HOME)", "/root"),
            ("$(NOPE)", "$(NOPE)"),
            ("$$(HOME)", "$(HOME)"),
            ("$$$(HOME)", "$/root"),
            ("a$b$", "a$b$"),
            ("$(HOME", "$(HOME"),
            ("$(A)", "$(HOME)"),
            ("é$(HOME)é", "é/rooté"),
        ] {
            assert_eq!(kubelet_expand(input, &vars), want, "{input}");
        }
    }

    #[test]
    fn escaped_values_survive_expansion_unchanged() {
        for s in [
            "",
            "plain",
            "$(HOME)",
            "$$(HOME)",
            "$",
            "$$",
            "a$(",
            "x$(A)y$(HOME",
            "{\"group\":\"kv1/$(HOME)\",\"key\":\"$$k$\"}",
            "é$(HOME)ü$",
        ] {
            let escaped = escape_expansion(s.to_string());
            assert_eq!(kubelet_expand(&escaped, &vars), s, "{s}");
            assert_eq!(unescape_expansion(&escaped), s, "{s}");
            assert_eq!(plain_env("N", s.to_string()).value.unwrap(), escaped);
        }
    }
}
