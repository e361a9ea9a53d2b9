//! The `admission` target: an AdmissionReview body, answered with one of three webhook
//! configurations. Never panics; the response is JSON with the request's uid; a patch applies
//! to the object and gives a valid Pod whose agent plan the agent accepts; admitting the
//! patched pod again changes nothing.

use std::sync::OnceLock;

use flyte_secret_spec::backend::{
    AwsBackend, Backend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::plan::FetchPlan;
use flyte_secret_testkit::fixtures;
use flyte_secret_webhook::admission::{self, Verdict};
use flyte_secret_webhook::config::{FileConfig, InjectArgs, Settings};
use flyte_secret_webhook::mutate::{AGENT_CONTAINER, VOLUME_NAME};
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::fnv;
use super::plan::check_plan;

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
            allow_insecure_http: false,
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

pub(super) fn admission_target(data: &[u8]) {
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
            let raw = fixtures::patch_of(&out);
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
