//! The four targets. Each takes arbitrary bytes and panics when an invariant breaks.

use std::sync::OnceLock;

use base64::Engine as _;
use flyte_secret_spec::annotation::{self, MAX_ANNOTATION_LEN};
use flyte_secret_spec::backend::{
    AwsBackend, Backend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine, arn_region,
    aws_secret_id, is_dns1123_subdomain, is_secret_data_key,
};
use flyte_secret_spec::naming::{EnvValue, Layout, go_lower, go_upper};
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_spec::request::{
    MAX_COMPONENT_BYTES, MAX_COMPONENTS, MountRequirement, SecretRequest, is_valid_env_var_name,
    validate_component, validate_relative_path,
};
use flyte_secret_spec::scoped::{Scope, decode_name, is_valid_secret_name, k8s_secret_name};
use flyte_secret_spec::{SecretPath, base32, textproto};
use flyte_secret_webhook::admission::{self, Verdict};
use flyte_secret_webhook::config::{FileConfig, InjectArgs, Settings};
use flyte_secret_webhook::mutate::{AGENT_CONTAINER, VOLUME_NAME};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// A fuzz target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The annotation decoder: Flyte base32 + the protobuf text format.
    Annotation,
    /// The fetch-plan parser.
    Plan,
    /// The AdmissionReview handler, body in → response out.
    Admission,
    /// Path and name validation.
    Paths,
}

impl Target {
    /// Every target.
    pub const ALL: [Target; 4] = [
        Target::Annotation,
        Target::Plan,
        Target::Admission,
        Target::Paths,
    ];

    /// The name used for directories and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Annotation => "annotation",
            Self::Plan => "plan",
            Self::Admission => "admission",
            Self::Paths => "paths",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs one input; panics when an invariant breaks.
    pub fn run(self, data: &[u8]) {
        match self {
            Self::Annotation => annotation_target(data),
            Self::Plan => plan_target(data),
            Self::Admission => admission_target(data),
            Self::Paths => paths_target(data),
        }
    }
}

/// FNV-1a, to pick a configuration from the input deterministically.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What every file the agent may write must be: relative, clean, bounded, and not one of the
/// writer's own `..`-prefixed top-level names (`..data`, staging directories).
pub fn check_secret_path(p: &str) {
    assert!(!p.is_empty(), "empty path");
    assert!(!p.starts_with('/'), "absolute path {p:?}");
    let components: Vec<&str> = p.split('/').collect();
    assert!(components.len() <= MAX_COMPONENTS, "too deep: {p:?}");
    for c in &components {
        assert!(
            !c.is_empty() && *c != "." && *c != "..",
            "unsafe component in {p:?}"
        );
        assert!(
            !c.chars().any(char::is_control),
            "control character in {p:?}"
        );
        assert!(
            c.len() <= MAX_COMPONENT_BYTES,
            "component too long in {p:?}"
        );
    }
    assert!(
        !components[0].starts_with(".."),
        "top-level name {:?} collides with the writer's `..data` and staging names",
        components[0]
    );
}

/// A message for a log line or the termination message: one line.
fn check_one_line(message: &str) {
    assert!(
        !message.chars().any(|c| c == '\n' || c == '\r' || c == '\0'),
        "message is not one line: {message:?}"
    );
}

// === annotation ===

fn request_round_trips(req: &SecretRequest) {
    let text = textproto::emit(req);
    assert_eq!(
        textproto::parse(text.as_bytes()).as_ref(),
        Ok(req),
        "text format does not round-trip: {text:?}"
    );
    let encoded = annotation::encode(req);
    if encoded.len() <= MAX_ANNOTATION_LEN {
        assert_eq!(
            annotation::decode(&encoded).as_ref(),
            Ok(req),
            "annotation does not round-trip"
        );
    }
}

fn annotation_target(data: &[u8]) {
    if let Ok(bytes) = base32::decode(data) {
        let again = base32::encode(&bytes);
        assert_eq!(
            base32::decode(again.as_bytes()).as_deref(),
            Ok(&bytes[..]),
            "base32 re-encoding changes the bytes"
        );
    }
    let parsed = textproto::parse(data);
    match &parsed {
        Ok(req) => request_round_trips(req),
        Err(e) => check_one_line(&e.to_string()),
    }
    // Propeller's encoding of the input read as text decodes exactly as the text parses.
    if data.len() <= MAX_ANNOTATION_LEN / 8 * 5 {
        let decoded = annotation::decode(&base32::encode(data));
        match (&decoded, &parsed) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => panic!("base32 + text disagrees with text: {decoded:?} vs {parsed:?}"),
        }
    }
    if let Ok(value) = std::str::from_utf8(data) {
        match annotation::decode(value) {
            Ok(req) => {
                request_round_trips(&req);
                request_rules(&req);
            }
            Err(e) => check_one_line(&e.to_string()),
        }
        if let Err(e) = annotation::decode_all([("flyte.secrets/s7", value)]) {
            assert_eq!(e.annotation, "flyte.secrets/s7");
            assert!(e.to_string().contains("[flyte.secrets/s7]"), "{e}");
        }
    }
}

// === plan ===

fn plan_target(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let plan = match FetchPlan::from_json(text) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    check_plan(&plan);
}

/// What the agent relies on in a plan it accepted.
pub fn check_plan(plan: &FetchPlan) {
    let again = FetchPlan::from_json(&plan.to_json()).expect("an accepted plan re-parses");
    assert_eq!(&again, plan, "plan does not round-trip through JSON");
    let layout = plan.layout();
    let mount = plan.mount_path.trim_end_matches('/');
    assert!(plan.mount_path.starts_with('/'), "{:?}", plan.mount_path);
    for s in &plan.secrets {
        assert!(!s.files.is_empty(), "secret without files");
        assert_eq!(layout.files(&s.request).as_ref(), Ok(&s.files));
        for f in &s.files {
            check_secret_path(f.as_str());
            assert!(layout.absolute(f).starts_with(&format!("{mount}/")));
        }
        for companion in [".creds", ".lease"] {
            let c = layout
                .companion(&s.files[0], companion)
                .expect("companions are valid");
            check_secret_path(c.as_str());
        }
        for e in &s.env {
            assert!(!e.is_empty() && !e.contains('\0'), "env name {e:?}");
        }
    }
}

// === admission ===

fn settings() -> &'static [Settings] {
    static SETTINGS: OnceLock<Vec<Settings>> = OnceLock::new();
    SETTINGS.get_or_init(|| {
        let vault = Backend::Vault(VaultBackend {
            address: "https://vault.vault.svc:8200".into(),
            auth: VaultAuth::Kubernetes {
                role: "flyte".into(),
                mount: "kubernetes".into(),
                token_file: flyte_secret_spec::backend::SERVICE_ACCOUNT_TOKEN_FILE.into(),
            },
            namespace: None,
            ca_cert_file: None,
            default_engine: VaultEngine::Kv2,
            managed_mount: "secret".into(),
        });
        let aws = Backend::Aws(AwsBackend {
            region: Some("us-east-2".into()),
            endpoint: None,
        });
        let other_ns = Backend::Kubernetes(KubernetesBackend {
            namespace: Some("secrets".into()),
            ..KubernetesBackend::default()
        });
        let json = |b: &[Backend]| serde_json::to_string(b).expect("backends serialize");
        vec![
            Settings::default(),
            Settings::resolve(
                &InjectArgs {
                    backends: Some(json(&[
                        vault,
                        aws.clone(),
                        Backend::Kubernetes(KubernetesBackend::default()),
                    ])),
                    env_prefix: Some("_UNION_".into()),
                    mount_path: Some("/var/run/flyte/secrets/".into()),
                    scope_from_namespace: Some(true),
                    ..InjectArgs::default()
                },
                FileConfig::parse(r#"{"vaultToken": {}}"#).expect("config"),
            )
            .expect("settings"),
            Settings::resolve(
                &InjectArgs {
                    backends: Some(json(&[other_ns, aws])),
                    fallback_uid: Some(1000),
                    fallback_gid: Some(0),
                    ..InjectArgs::default()
                },
                FileConfig::default(),
            )
            .expect("settings"),
        ]
    })
}

fn admission_target(data: &[u8]) {
    let all = settings();
    let settings = &all[(fnv(data) % all.len() as u64) as usize];
    let Ok(answer) = admission::review(data, settings) else {
        return;
    };
    let out: Value = serde_json::from_slice(&answer.body).expect("the response is JSON");
    // The typed parse skips ignored fields without checking their UTF-8; the API server only
    // sends valid JSON, so such bodies say nothing more.
    let Ok(request) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    assert_eq!(out["kind"], "AdmissionReview");
    assert_eq!(out["apiVersion"], request["apiVersion"]);
    assert_eq!(out["response"]["uid"], request["request"]["uid"]);
    let response = &out["response"];
    match answer.verdict {
        Verdict::Denied => {
            assert_eq!(response["allowed"], false);
            assert_eq!(response["status"]["code"], 400);
            let message = response["status"]["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "a denial says why");
            assert!(response.get("patch").is_none());
        }
        Verdict::Skipped => {
            assert_eq!(response["allowed"], true);
            assert!(response.get("patch").is_none());
        }
        Verdict::Injected | Verdict::Rewired => {
            assert_eq!(response["allowed"], true);
            assert_eq!(response["patchType"], "JSONPatch");
            let raw = base64::engine::general_purpose::STANDARD
                .decode(response["patch"].as_str().expect("patch is a string"))
                .expect("patch is base64");
            let patch: json_patch::Patch = serde_json::from_slice(&raw).expect("a JSON patch");
            let mut doc = request["request"]["object"].clone();
            json_patch::patch(&mut doc, &patch)
                .unwrap_or_else(|e| panic!("the patch does not apply: {e}"));
            // The API server only sends valid objects: a valid pod must stay valid.
            let Ok(before) = serde_json::from_value::<Pod>(request["request"]["object"].clone())
            else {
                return;
            };
            let pod: Pod = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("the patched object is not a Pod: {e}"));
            check_injected(&before, &pod, settings, answer.verdict, answer.secrets);
            // Admitting the patched pod again (reinvocation) changes nothing.
            let mut again = request.clone();
            again["request"]["object"] = doc;
            let body = serde_json::to_vec(&again).expect("serializes");
            let second = admission::review(&body, settings).expect("answered again");
            assert_eq!(
                second.verdict,
                Verdict::Skipped,
                "reinvocation patched again: {}",
                String::from_utf8_lossy(&second.body)
            );
        }
    }
}

fn agents_and_volumes(pod: &Pod) -> (usize, usize) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let agents = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name == AGENT_CONTAINER)
        .count();
    let volumes = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.name == VOLUME_NAME)
        .count();
    (agents, volumes)
}

fn check_injected(before: &Pod, pod: &Pod, settings: &Settings, verdict: Verdict, secrets: usize) {
    let spec = pod.spec.as_ref().expect("a patched pod has a spec");
    let (agents, volumes) = agents_and_volumes(pod);
    if verdict == Verdict::Injected {
        assert_eq!(
            (agents, volumes),
            (1, 1),
            "one agent and one secrets volume"
        );
    } else {
        // Rewiring adds neither an agent nor a volume, and needs the volume to be there.
        assert_eq!(
            (agents, volumes),
            agents_and_volumes(before),
            "rewiring added objects"
        );
        assert!(volumes >= 1, "rewired without the secrets volume");
    }
    let mount = settings.layout.mount_path.as_str();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .filter(|c| c.name != AGENT_CONTAINER)
    {
        // Rewiring leaves containers that already mount the volume (anywhere) alone.
        let wired = c.volume_mounts.iter().flatten().any(|m| {
            m.name == VOLUME_NAME
                && (verdict == Verdict::Rewired
                    || (m.mount_path == mount && m.read_only == Some(true)))
        });
        assert!(wired, "container {} is not wired", c.name);
    }
    if verdict == Verdict::Injected {
        let first = &spec.init_containers.as_ref().expect("init containers")[0];
        assert_eq!(first.name, AGENT_CONTAINER, "the agent runs first");
        let plan = first
            .env
            .iter()
            .flatten()
            .find(|e| e.name == flyte_secret_spec::plan::PLAN_ENV)
            .and_then(|e| e.value.as_deref())
            .expect("the agent has its plan");
        assert!(
            plan.len() <= flyte_secret_spec::plan::MAX_PLAN_ENV_BYTES,
            "a {} byte plan cannot be an environment variable",
            plan.len()
        );
        let plan = FetchPlan::from_json(plan)
            .unwrap_or_else(|e| panic!("the agent would refuse the webhook's plan: {e}"));
        assert_eq!(plan.secrets.len(), secrets);
        check_plan(&plan);
    }
}

// === paths ===

fn paths_target(data: &[u8]) {
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
        Backend::Vault(VaultBackend {
            address: "http://127.0.0.1:8200".into(),
            auth: VaultAuth::Token { token_file: None },
            namespace: None,
            ca_cert_file: None,
            default_engine: VaultEngine::Kv2,
            managed_mount: "secret".into(),
        }),
    ];
    for b in &backends {
        if b.check(req).is_ok() && matches!(b, Backend::Kubernetes(_)) && !req.is_groupless() {
            assert!(is_dns1123_subdomain(&req.group) && is_secret_data_key(&req.key));
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
