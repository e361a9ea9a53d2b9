//! The `paths` target: path-like bytes, `0xff` separating group, key, group_version, env_var
//! and the scope's org, domain and project. Never panics; whatever is accepted is a safe
//! relative path below the mount; names and scopes round-trip.

use flyte_secret_spec::SecretPath;
use flyte_secret_spec::backend::{
    AwsBackend, Backend, KubernetesBackend, arn_region, aws_secret_id, is_dns1123_subdomain,
    is_secret_data_key,
};
use flyte_secret_spec::naming::{EnvValue, Layout, go_lower, go_upper};
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::request::{
    MAX_COMPONENT_BYTES, MAX_COMPONENTS, MountRequirement, SecretRequest, is_valid_env_var_name,
    validate_component, validate_relative_path,
};
use flyte_secret_spec::scoped::{Scope, decode_name, is_valid_secret_name, k8s_secret_name};

use super::plan::check_plan;
use super::{check_one_line, check_secret_path, fnv};

pub(super) fn paths_target(data: &[u8]) {
    let parts: Vec<String> = data
        .split(|&b| b == 0xff)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    path_rules(&String::from_utf8_lossy(data));
    for p in &parts {
        path_rules(p);
    }
    let field = |i: usize| parts.get(i).cloned().unwrap_or_default();
    let mount_requirement = match fnv(data) % 3 {
        0 => MountRequirement::Any,
        1 => MountRequirement::EnvVar,
        _ => MountRequirement::File,
    };
    let req = SecretRequest {
        group: field(0),
        key: field(1),
        group_version: field(2),
        env_var: field(3),
        mount_requirement,
    };
    request_rules(&req);
    scope_rules(
        Scope {
            org: field(4),
            domain: field(5),
            project: field(6),
        },
        &req.key,
    );
}

fn path_rules(s: &str) {
    let relative = validate_relative_path(s);
    if validate_component(s).is_ok() {
        assert!(relative.is_ok() && !s.contains('/'), "{s:?}");
    }
    if relative.is_ok() {
        let components: Vec<&str> = s.split('/').collect();
        assert!(components.len() <= MAX_COMPONENTS);
        for c in components {
            assert!(!c.is_empty() && c != "." && c != "..", "{s:?}");
            assert!(!c.chars().any(char::is_control) && c.len() <= MAX_COMPONENT_BYTES);
        }
    }
    if let Ok(p) = SecretPath::new(s) {
        assert!(relative.is_ok());
        assert_eq!(p.as_str(), s);
        check_secret_path(p.as_str());
    }
    let env_ok = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    assert_eq!(is_valid_env_var_name(s), env_ok, "{s:?}");
    let _ = (is_dns1123_subdomain(s), is_secret_data_key(s));
    let _ = (is_valid_secret_name(s), arn_region(s));
    assert_eq!(go_lower(s).chars().count(), s.chars().count());
    assert_eq!(go_upper(s).chars().count(), s.chars().count());
    if let Ok((scope, name)) = decode_name(s) {
        assert_eq!(scope.encode_name(&name), s, "decode_name/encode_name");
    }
}

/// Rules for one request, valid or not.
pub fn request_rules(req: &SecretRequest) {
    let name = req.name().to_string();
    assert!(!name.chars().any(char::is_control), "name {name:?}");
    if let Err(e) = req.validate() {
        let message = e.to_string();
        assert!(message.starts_with("secret "), "{message}");
        check_one_line(&message);
        return;
    }
    for layout in [
        Layout::default(),
        Layout {
            mount_path: "/var/run/flyte/secrets/".into(),
            env_prefix: "_UNION_".into(),
        },
    ] {
        let names = layout.value_env_names(req);
        assert!(!names.is_empty());
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "duplicate env name {n}");
        }
        let Ok(files) = layout.files(req) else {
            continue;
        };
        assert!(!files.is_empty());
        let mount = layout.mount_path.trim_end_matches('/');
        for (i, f) in files.iter().enumerate() {
            assert!(!files[..i].contains(f), "duplicate file {f}");
            check_secret_path(f.as_str());
            assert!(layout.absolute(f).starts_with(&format!("{mount}/")));
        }
        for wire in layout.env_wiring(req).expect("wiring follows files") {
            if let EnvValue::FilePath(p) = wire.value {
                assert_eq!(p, layout.absolute(&files[0]));
            }
        }
    }
    let backends = [
        Backend::Kubernetes(KubernetesBackend::default()),
        Backend::Aws(AwsBackend::default()),
        Backend::Vault(flyte_secret_testkit::fixtures::vault_token_backend(
            "http://127.0.0.1:8200",
        )),
    ];
    for b in &backends {
        if b.check(req).is_ok() && matches!(b, Backend::Kubernetes(_)) && !req.is_groupless() {
            // The data key the kubelet's volume names a file after: a JSON Pointer's first
            // member, else the key (issue 15: it is a path component in the agent).
            let data_key = KubernetesBackend::data_key(req);
            assert!(is_dns1123_subdomain(&req.group) && is_secret_data_key(&data_key));
            assert!(!data_key.starts_with("..") && data_key != ".");
        }
    }
    let _ = arn_region(&aws_secret_id(req));
    let mut plan = FetchPlan::new(&Layout::default(), backends.to_vec());
    plan.scope = Some(Scope::new("development", "flytesnacks"));
    if plan.push("flyte.secrets/s0", req.clone()).is_ok() && plan.validate().is_ok() {
        check_plan(&plan);
    }
}

fn scope_rules(scope: Scope, key: &str) {
    if scope.validate().is_err() || !is_valid_secret_name(key) {
        return;
    }
    let order = scope.lookup_order();
    assert!((1..=3).contains(&order.len()));
    assert!(
        order
            .last()
            .is_some_and(|s| s.domain.is_empty() && s.project.is_empty())
    );
    let id = scope.encode_name(key);
    let name = k8s_secret_name(&id);
    assert!(name.len() == 32 && is_dns1123_subdomain(&name), "{name}");
    // Flyte's `__`-joined encoding is ambiguous when a part ends with `_`; scope parts come
    // from label values, which end with an alphanumeric.
    if [&scope.org, &scope.domain, &scope.project]
        .iter()
        .all(|p| !p.ends_with('_'))
    {
        assert_eq!(decode_name(&id), Ok((scope, key.to_string())), "{id}");
    }
}
