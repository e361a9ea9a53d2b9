use super::*;

#[test]
fn accepts_flyte_shapes() {
    for req in [
        SecretRequest::new("user-info", "user_secret"),
        SecretRequest::new("db", "password").with_group_version("kv2"),
        SecretRequest::new("", "openai_key").with_env_var("OPENAI_KEY"),
        SecretRequest::new("secret/data/app", "token"),
        SecretRequest::new(
            "arn:aws:secretsmanager:us-east-2:123456789012:secret",
            "my_secret",
        ),
        SecretRequest::new("arn:aws:secretsmanager:us-east-2:123:secret", "prod/db"),
    ] {
        req.validate().unwrap_or_else(|e| panic!("{req:?}: {e}"));
    }
}

#[test]
fn rejects_traversal_and_bad_names() {
    let cases = [
        (
            SecretRequest::new("..", "k"),
            "group has a `.` or `..` path component",
        ),
        (
            SecretRequest::new("a/../b", "k"),
            "group has a `.` or `..` path component",
        ),
        (
            SecretRequest::new("g", "../../etc/passwd"),
            "key has a `.` or `..` path component",
        ),
        (
            SecretRequest::new("g", "."),
            "key has a `.` or `..` path component",
        ),
        (
            SecretRequest::new("/etc", "k"),
            "group must be a relative path",
        ),
        // A key that starts with `/` is a JSON Pointer (crate::field): only valid ones pass.
        (
            SecretRequest::new("g", "/"),
            "is a JSON Pointer that has an empty member name",
        ),
        (
            SecretRequest::new("g", "/a/~2"),
            "is a JSON Pointer that has `~` not followed",
        ),
        (
            SecretRequest::new("g", "/a/.."),
            "is a JSON Pointer that has a member name that has a `.`",
        ),
        (
            SecretRequest::new("", "/k"),
            "is a JSON Pointer that needs a group",
        ),
        (
            SecretRequest::new("a//b", "k"),
            "group has an empty path component",
        ),
        (
            SecretRequest::new("a/", "k"),
            "group has an empty path component",
        ),
        (
            SecretRequest::new("g", "k\0"),
            "key contains a control character",
        ),
        (
            SecretRequest::new("g\n", "k"),
            "group contains a control character",
        ),
        (
            SecretRequest::new("g", "k").with_group_version("../x"),
            "group_version must be a single path component",
        ),
        (
            SecretRequest::new("g", "k").with_group_version(".."),
            "group_version has a `.` or `..`",
        ),
        (
            SecretRequest::new("g", "k").with_group_version("a/b"),
            "group_version must be a single path component",
        ),
        (SecretRequest::new("", ""), "key is required"),
        (
            SecretRequest::new("https://v.vault.azure.net//secrets/a", "k"),
            "group has an empty path component",
        ),
        (
            SecretRequest::new("https://v.vault.azure.net/secrets/a/", ""),
            "group has an empty path component",
        ),
        (
            SecretRequest::new("http://v.vault.azure.net/secrets/a", ""),
            "group has an empty path component",
        ),
        (
            SecretRequest::new("..data", "k"),
            "group must not start with `..` at the top level",
        ),
        (
            SecretRequest::new("", "..2026_01_01"),
            "key must not start with `..` at the top level",
        ),
        (
            SecretRequest::new("g", &*"x".repeat(256)),
            "longer than 255 bytes",
        ),
        (
            SecretRequest::new("g", "k").with_env_var("lower"),
            "invalid environment variable name",
        ),
        (
            SecretRequest::new("g", "k").with_env_var("1ABC"),
            "invalid environment variable name",
        ),
        (
            SecretRequest::new("g", "k").with_env_var("A-B"),
            "invalid environment variable name",
        ),
    ];
    for (req, want) in cases {
        let err = req
            .validate()
            .expect_err(&format!("{req:?} must be rejected"));
        assert!(
            err.to_string().contains(want),
            "{req:?}: {err} lacks {want:?}"
        );
    }
}

#[test]
fn names_escape_control_characters() {
    let req = SecretRequest::new("g\n", "k\0").with_group_version("v");
    assert_eq!(req.name().to_string(), "g\\n/k\\0@v");
    assert_eq!(SecretRequest::new("", "k").name().to_string(), "k");
    let long = SecretRequest::new("g", "k".repeat(300_000))
        .name()
        .to_string();
    assert!(long.starts_with("g/kkk") && long.ends_with("kkk"), "{long}");
    assert!(long.contains("…(300002 characters)…"), "{long}");
    assert!(long.chars().count() < MAX_NAME_CHARS + 40);
}

#[test]
fn env_var_rule_matches_flyte() {
    for ok in ["A", "_", "OPENAI_KEY", "_FSEC_X1"] {
        assert!(is_valid_env_var_name(ok), "{ok}");
    }
    for bad in ["", "a", "1A", "A-B", "A.B", "ÄB"] {
        assert!(!is_valid_env_var_name(bad), "{bad}");
    }
}

#[test]
fn a_group_without_a_key_is_a_request() {
    // Flyte's GCP and Azure addressing: the group (and version) name the secret.
    let gcp = SecretRequest::new("my-gcp-secret", "").with_group_version("3");
    gcp.validate().unwrap();
    assert!(gcp.is_keyless() && !gcp.is_groupless());
    assert_eq!(gcp.name().to_string(), "my-gcp-secret@3");
    // A Key Vault secret URI is a group despite its `//`.
    let azure = SecretRequest::new("https://v1.vault.azure.net/secrets/db-pass", "");
    azure.validate().unwrap();
    assert_eq!(
        azure.name().to_string(),
        "https://v1.vault.azure.net/secrets/db-pass"
    );
    SecretRequest::new("https://127.0.0.1:8443/secrets/a", "k")
        .validate()
        .unwrap();
    assert!(!SecretRequest::new("g", "k").is_keyless());
}
