//! Small helpers shared by the container-building modules ([`super::container`],
//! [`super::wiring`], [`super::wrap`]): literal env vars and path comparison. It imports none
//! of them, so their imports flow one way.

use k8s_openapi::api::core::v1::EnvVar;

/// An env var with a literal value.
pub(super) fn plain_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    }
}

/// Whether two paths name the same directory (trailing slashes aside).
pub(super) fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}
