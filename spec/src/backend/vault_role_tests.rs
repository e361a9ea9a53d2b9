use super::*;

fn kubernetes(role: &str) -> VaultAuth {
    VaultAuth::Kubernetes {
        role: role.into(),
        mount: "kubernetes".into(),
        token_file: SERVICE_ACCOUNT_TOKEN_FILE.into(),
    }
}

fn jwt(role: &str) -> VaultAuth {
    VaultAuth::Jwt {
        role: role.into(),
        mount: "jwt".into(),
        token_file: "/var/run/secrets/vault/token".into(),
    }
}

#[test]
fn the_namespace_is_rendered_into_the_role_of_both_login_methods() {
    for auth in [
        kubernetes("flyte-{{namespace}}"),
        jwt("flyte-{{ namespace }}"),
    ] {
        let rendered = auth.for_namespace("flytesnacks-development").unwrap();
        assert_eq!(rendered.role(), Some("flyte-flytesnacks-development"));
        // Only the role changes.
        assert_eq!(rendered.kind_mount(), auth.kind_mount());
    }
    assert_eq!(
        kubernetes("{{namespace}}.{{namespace}}")
            .for_namespace("ns")
            .unwrap()
            .role(),
        Some("ns.ns")
    );
}

impl VaultAuth {
    /// The method and mount, to check `for_namespace` keeps them.
    fn kind_mount(&self) -> (String, Option<String>) {
        match self {
            Self::Kubernetes {
                mount, token_file, ..
            } => (format!("kubernetes {token_file}"), Some(mount.clone())),
            Self::Jwt {
                mount, token_file, ..
            } => (format!("jwt {token_file}"), Some(mount.clone())),
            Self::Token { token_file } => (format!("token {token_file:?}"), None),
        }
    }
}

#[test]
fn the_default_role_and_token_auth_are_unchanged() {
    let plain = kubernetes("flyte");
    assert_eq!(plain.for_namespace("anything").unwrap(), plain);
    let default: VaultAuth = serde_json::from_str(r#"{"method":"jwt"}"#).unwrap();
    assert_eq!(default.role(), Some("flyte"));
    assert_eq!(default.for_namespace("ns").unwrap(), default);
    let token = VaultAuth::Token { token_file: None };
    assert_eq!(token.for_namespace("ns").unwrap(), token);
    assert_eq!(token.role(), None);
    assert!(token.check_role().is_ok());
}

#[test]
fn a_template_survives_the_config_round_trip() {
    let auth: VaultAuth =
        serde_json::from_str(r#"{"method":"kubernetes","role":"flyte-{{namespace}}"}"#).unwrap();
    assert_eq!(auth.role(), Some("flyte-{{namespace}}"));
    assert!(auth.check_role().is_ok());
    let back: VaultAuth = serde_json::from_str(&serde_json::to_string(&auth).unwrap()).unwrap();
    assert_eq!(back, auth);
}

#[test]
fn unknown_or_broken_placeholders_are_refused_by_name() {
    let err = kubernetes("flyte-{{project}}").check_role().unwrap_err();
    assert!(
        err.contains("unknown placeholder {{project}}") && err.contains("{{namespace}}"),
        "{err}"
    );
    let err = jwt("flyte-{{namespace").check_role().unwrap_err();
    assert!(err.contains("without its"), "{err}");
    let err = kubernetes("flyte-{{}}").check_role().unwrap_err();
    assert!(err.contains("unknown placeholder {{}}"), "{err}");
    let err = kubernetes("flyte-{{namespace}}")
        .for_namespace("")
        .unwrap_err();
    assert!(err.contains("namespace, which is unknown"), "{err}");
}

#[test]
fn a_result_that_is_not_a_role_name_is_refused() {
    for bad in [
        "",
        "-{{namespace}}",
        "{{namespace}}.",
        "flyte/{{namespace}}",
        "flyte {{namespace}}",
        "flyte-}}{{namespace}}",
        "flyte-{{namespace}}-é",
    ] {
        let err = kubernetes(bad).check_role().unwrap_err();
        assert!(err.contains("not a valid role name"), "{bad:?}: {err}");
    }
    // A namespace that is not a DNS label cannot smuggle a path into the role.
    let err = kubernetes("flyte-{{namespace}}")
        .for_namespace("../x")
        .unwrap_err();
    assert!(err.contains("renders to \"flyte-../x\""), "{err}");
    let long = format!("flyte-{}", "n".repeat(250));
    assert!(kubernetes(&long).check_role().is_err());
    // Valid for a short namespace, too long for a 63-character one: refused up front.
    let template = format!("{}-{{{{namespace}}}}", "r".repeat(MAX_VAULT_ROLE_LEN - 40));
    assert!(kubernetes(&template).for_namespace("ns").is_ok());
    let err = kubernetes(&template).check_role().unwrap_err();
    assert!(err.contains("more than 255 characters"), "{err}");
    let fits = format!("{}-{{{{namespace}}}}", "r".repeat(MAX_VAULT_ROLE_LEN - 64));
    assert!(kubernetes(&fits).check_role().is_ok());
}

#[test]
fn role_names_follow_vaults_pattern() {
    for good in ["flyte", "f", "_", "flyte-ns.x_1", "Flyte"] {
        assert!(is_vault_role_name(good), "{good}");
    }
    for bad in ["", "-a", "a-", ".a", "a.", "a/b", "a b", "a@b", "a:b"] {
        assert!(!is_vault_role_name(bad), "{bad}");
    }
}
