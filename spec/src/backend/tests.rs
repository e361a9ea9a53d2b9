use super::secret_key_ref_tests::local_vault;
use super::*;

#[test]
fn aws_ids_like_flyte() {
    let r = SecretRequest::new(
        "arn:aws:secretsmanager:us-east-2:123456789012:secret:",
        ":my_secret",
    );
    assert_eq!(
        aws_secret_id(&r),
        "arn:aws:secretsmanager:us-east-2:123456789012:secret:my_secret"
    );
    assert_eq!(arn_region(&aws_secret_id(&r)), Some("us-east-2"));
    assert_eq!(arn_region("prod:db"), None);
    assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
}

#[test]
fn backend_rules() {
    let k8s = Backend::Kubernetes(KubernetesBackend::default());
    assert!(
        k8s.check(&SecretRequest::new("user-info", "user_secret"))
            .is_ok()
    );
    assert!(k8s.check(&SecretRequest::new("User", "k")).is_err());
    assert!(
        k8s.check(&SecretRequest::new("secret/data/x", "k"))
            .is_err()
    );
    assert!(k8s.check(&SecretRequest::new("g", "a b")).is_err());
    assert!(k8s.check(&SecretRequest::new("", "openai_key")).is_ok());
    assert!(k8s.check(&SecretRequest::new("", "my.key")).is_err());

    let vault = local_vault();
    assert!(
        vault
            .check(&SecretRequest::new("secret/data/x", "k").with_group_version("db"))
            .is_ok()
    );
    assert!(
        vault
            .check(&SecretRequest::new("secret/x", "k").with_group_version("kv3"))
            .is_err()
    );

    let aws = Backend::Aws(AwsBackend::default());
    assert!(
        aws.check(&SecretRequest::new("arn:aws:s3:us-east-1:1:secret", "k"))
            .is_err()
    );
    assert!(aws.check(&SecretRequest::new("prod", "db")).is_ok());
}

#[test]
fn dns_names() {
    assert!(is_dns1123_subdomain("a.b-c.d1"));
    for bad in ["", "A", "-a", "a-", "a..b", "a_b", &"a".repeat(254)] {
        assert!(!is_dns1123_subdomain(bad), "{bad}");
    }
}

#[test]
fn requests_route_to_the_backend_their_shape_names() {
    let plan = [
        Backend::Kubernetes(KubernetesBackend::default()),
        Backend::Aws(AwsBackend::default()),
        local_vault(),
    ];
    let asked = |req: &SecretRequest| -> Vec<&str> {
        plan.iter()
            .filter(|b| route(&plan, b, req).is_none())
            .map(Backend::kind)
            .collect()
    };
    // A Vault engine as group_version: Vault alone, so AWS is never asked for it.
    let kv2 = SecretRequest::new("secret/app", "token").with_group_version("kv2");
    assert_eq!(asked(&kv2), ["vault"]);
    assert!(
        route(&plan, &plan[1], &kv2)
            .unwrap()
            .contains("Vault engine")
    );
    // A Secrets Manager ARN: AWS alone.
    let arn = SecretRequest::new("arn:aws:secretsmanager:us-east-1:123456789012:secret", "db");
    assert_eq!(asked(&arn), ["aws"]);
    // Undecidable shapes: every backend that can address it, in plan order.
    assert_eq!(
        asked(&SecretRequest::new("user-info", "k")),
        ["kubernetes", "aws"]
    );
    assert_eq!(
        asked(&SecretRequest::new("secret/app", "k")),
        ["aws", "vault"]
    );
    assert_eq!(
        asked(&SecretRequest::new("", "API_KEY")),
        ["kubernetes", "aws", "vault"]
    );
    // Without a Vault backend, nothing claims kv2: AWS reads it as a staging label.
    let no_vault = &plan[..2];
    assert!(route(no_vault, &plan[1], &kv2).is_none());
}

#[test]
fn plain_http_is_refused_unless_loopback_or_allowed() {
    let at = |address: &str, allow: bool| {
        let Backend::Vault(mut v) = local_vault() else {
            unreachable!()
        };
        v.address = address.into();
        v.allow_insecure_http = allow;
        v.insecure_address()
    };
    for ok in [
        "https://vault.vault.svc:8200",
        "http://127.0.0.1:8200",
        "http://127.9.9.9",
        "http://localhost:8200/",
        "http://[::1]:8200",
    ] {
        assert_eq!(at(ok, false), None, "{ok}");
    }
    for bad in [
        "http://vault.vault.svc:8200",
        "http://10.0.0.1:8200",
        "http://[fd00::1]:8200",
    ] {
        assert!(at(bad, false).unwrap().contains("clear text"), "{bad}");
        assert_eq!(at(bad, true), None, "{bad} with allowInsecureHttp");
    }
}

#[test]
fn aws_addressing_fields_versions_and_ambiguity() {
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret";
    let r = |group: &str, key: &str, gv: &str| {
        aws_ref(&SecretRequest::new(group, key).with_group_version(gv))
    };
    // Flyte's form: the ARN prefix and the name.
    let plain = r(arn, "prod-db", "").unwrap();
    assert_eq!(plain.secret_id, format!("{arn}:prod-db"));
    assert_eq!((plain.field, plain.version_stage), (None, None));
    // ECS's form: the name ends at the seventh part, then json-key, stage, version id.
    let ecs = r(arn, "prod-db:pass-word.v2", "").unwrap();
    assert_eq!(ecs.secret_id, format!("{arn}:prod-db"));
    assert_eq!(ecs.field.unwrap().tokens(), ["pass-word.v2"]);
    let staged = r(arn, "prod-db:user:AWSPREVIOUS", "").unwrap();
    assert_eq!(staged.version_stage.as_deref(), Some("AWSPREVIOUS"));
    let id = "b9f2a5a4-3a45-4b0c-8ab8-0f8d4c1e2f3a";
    let versioned = r(arn, &format!("prod-db::{}:{id}", ""), "").unwrap();
    assert_eq!(
        versioned.field, None,
        "an empty json-key is the whole value"
    );
    assert_eq!(versioned.version_id.as_deref(), Some(id));
    assert!(
        r(arn, "prod-db:user:AWSPREVIOUS", "AWSCURRENT")
            .unwrap_err()
            .contains("give one")
    );
    assert!(r(arn, "a:b:c:d:e", "").unwrap_err().contains("more parts"));
    // A JSON Pointer key: the group is the SecretId.
    let pointer = r("prod/db", "/creds/user", id).unwrap();
    assert_eq!(pointer.secret_id, "prod/db");
    assert_eq!(pointer.field.unwrap().tokens(), ["creds", "user"]);
    assert_eq!(pointer.version_id.as_deref(), Some(id));
    // Not an ARN: a `:` is part of the name, and the webhook warns about it.
    let odd = SecretRequest::new("prod", "db:password");
    assert_eq!(aws_ref(&odd).unwrap().secret_id, "prod:db:password");
    assert!(aws_ambiguity(&odd).unwrap().contains("JSON Pointer"));
    assert_eq!(aws_ambiguity(&SecretRequest::new("prod", "db")), None);
    assert_eq!(aws_ambiguity(&SecretRequest::new(arn, "db:password")), None);
}

#[test]
fn pointer_keys_point_into_a_kubernetes_data_key_but_never_through_secret_key_ref() {
    let k8s = [Backend::Kubernetes(KubernetesBackend::default())];
    let req =
        SecretRequest::new("db-creds", "/config/host").with_mount(crate::MountRequirement::EnvVar);
    assert!(k8s[0].check(&req).is_ok());
    assert!(
        k8s[0]
            .check(&SecretRequest::new("db-creds", "/bad key/x"))
            .is_err()
    );
    assert!(!secret_key_ref_possible(&k8s, &req, None));
}
