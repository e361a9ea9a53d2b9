//! `deploy/` against the binary: the MutatingWebhookConfiguration in the manifests is exactly
//! what `webhook init-certs` registers when run with the Deployment's own arguments, under the
//! RBAC the manifests grant (and nothing more); every overlay's config file loads; the objects
//! agree with each other (names, ports, probes, images, hardening); the secret broker's
//! Deployment agrees with `webhook broker` and its RBAC is exactly what it needs; and no Role
//! or ClusterRole grants Secrets to any account but the webhook's and the broker's.
//!
//! The manifests are rendered with `kubectl kustomize` (offline) and turned into JSON with
//! `kubectl patch --local` (an empty merge patch, no server needed). `FSA_KUBECTL` overrides
//! the kubectl used.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use flyte_secret_spec::backend::{Backend, VaultAuth};
use flyte_secret_testkit::kube::{Policy, RecordedRequest, Rule, StandIn, StandInOptions};
use flyte_secret_webhook::certs::webhook_config;
use flyte_secret_webhook::cli::{Cli, Command as CliCommand};
use flyte_secret_webhook::config::{DEFAULT_IMAGE, InjectArgs, Settings};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use serde_json::Value;

use crate::common::{install_provider, webhook};

const OVERLAYS: [&str; 5] = [
    "overlays/kubernetes",
    "overlays/aws",
    "overlays/vault",
    "overlays/gcp",
    "overlays/azure",
];
const MWC: &str = "MutatingWebhookConfiguration";
/// The webhook's and the broker's objects (Deployment, Service, PDB, NetworkPolicy) by name.
const WEBHOOK: &str = "flyte-secret-webhook";
const BROKER: &str = "flyte-secret-broker";
/// The only accounts in deploy/ that may touch Secrets: the webhook's (init-certs, its own
/// Secrets by name) and the broker's (namespace `flyte`, get).
const CONTROL_PLANE: [&str; 2] = [WEBHOOK, BROKER];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn kubectl(args: &[&str], stdin: Option<Vec<u8>>) -> Vec<u8> {
    let program = std::env::var("FSA_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let mut child = Command::new(&program)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}): it renders deploy/ (kubectl with kustomize v5)")
        });
    let writer = stdin.map(|input| {
        let mut pipe = child.stdin.take().unwrap();
        std::thread::spawn(move || pipe.write_all(&input).unwrap())
    });
    let out = child.wait_with_output().unwrap();
    if let Some(w) = writer {
        w.join().unwrap();
    }
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `kubectl kustomize deploy/<dir>`, as JSON objects.
fn render(dir: &str) -> Vec<Value> {
    let path = deploy_dir().join(dir);
    let yaml = kubectl(&["kustomize", path.to_str().unwrap()], None);
    let json = kubectl(
        &[
            "patch", "--local", "--type", "merge", "-p", "{}", "-o", "json", "-f", "-",
        ],
        Some(yaml),
    );
    serde_json::Deserializer::from_slice(&json)
        .into_iter::<Value>()
        .map(|v| v.expect("kubectl printed JSON"))
        .flat_map(|v| match v["items"].as_array() {
            Some(items) if v["kind"] == "List" => items.clone(),
            _ => vec![v],
        })
        .collect()
}

/// The one object of `kind` (panics unless there is exactly one).
fn one<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objects.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

/// The object of `kind` named `name` (panics unless there is exactly one).
fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {name}, found {}",
        found.len()
    );
    found[0]
}

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} missing or not a string"))
}

fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no entry named {name}"))
}

/// The init-certs invocation of the Deployment: its args, and its env with `fieldRef:
/// metadata.namespace` resolved.
fn init_certs_invocation(deployment: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let namespace = s(deployment, "/metadata/namespace");
    let init = named(
        &deployment["spec"]["template"]["spec"]["initContainers"],
        "init-certs",
    );
    let args: Vec<String> = init["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(args[0], "init-certs");
    let env = init["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    let name = e["name"].as_str().unwrap().to_string();
                    let value = match (&e["value"], e.pointer("/valueFrom/fieldRef/fieldPath")) {
                        (Value::String(v), _) => v.clone(),
                        (_, Some(path)) if path == "metadata.namespace" => namespace.to_string(),
                        _ => panic!("env {name}: the test cannot resolve {e}"),
                    };
                    (name, value)
                })
                .collect()
        })
        .unwrap_or_default();
    (args, env)
}

/// The init-certs flags of a Deployment, parsed as the binary parses them, with the namespace
/// its env resolves to.
fn parse_init_certs(
    args: &[String],
    env: &[(String, String)],
) -> flyte_secret_webhook::certs::InitCertsArgs {
    let cli = Cli::try_parse_from(std::iter::once("webhook".to_string()).chain(args.to_vec()))
        .expect("the Deployment's init-certs args parse");
    let CliCommand::InitCerts(mut parsed) = cli.command else {
        panic!("not init-certs: {args:?}")
    };
    for (k, v) in env {
        if k == "POD_NAMESPACE" {
            parsed.namespace = v.clone();
        }
    }
    *parsed
}

/// The renewal CronJob runs the very same init-certs as the Deployment (image, args, env);
/// its pod spec.
fn assert_renewal_runs_init_certs<'a>(objects: &'a [Value], deployment: &Value) -> &'a Value {
    let job = &one(objects, "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let init = named(
        &deployment["spec"]["template"]["spec"]["initContainers"],
        "init-certs",
    );
    let renew = named(&job["containers"], "init-certs");
    for field in ["image", "args", "env"] {
        assert_eq!(init[field], renew[field], "CronJob init-certs {field}");
    }
    job
}

/// One RBAC rule granted to the webhook's service account.
#[derive(Debug)]
struct Grant {
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    names: Vec<String>,
    /// `None`: cluster-wide (ClusterRoleBinding).
    namespace: Option<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The rules bound to `namespace/service_account` by the rendered Roles and ClusterRoles.
fn grants(objects: &[Value], namespace: &str, service_account: &str) -> Vec<Grant> {
    let mut out = Vec::new();
    for binding in objects
        .iter()
        .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
    {
        let bound = binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|x| {
                x["kind"] == "ServiceAccount"
                    && x["name"] == service_account
                    && x["namespace"] == namespace
            })
        });
        if !bound {
            continue;
        }
        let scope = (binding["kind"] == "RoleBinding")
            .then(|| s(binding, "/metadata/namespace").to_string());
        let builtin = builtin_cluster_role(&binding["roleRef"]);
        let role = objects
            .iter()
            .find(|o| {
                o["kind"] == binding["roleRef"]["kind"]
                    && o["metadata"]["name"] == binding["roleRef"]["name"]
                    && (o["kind"] == "ClusterRole"
                        || o["metadata"]["namespace"] == binding["metadata"]["namespace"])
            })
            .or(builtin.as_ref())
            .unwrap_or_else(|| panic!("{binding}: role not in the manifests"));
        for rule in role["rules"].as_array().unwrap() {
            out.push(Grant {
                groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                verbs: strings(&rule["verbs"]),
                names: strings(&rule["resourceNames"]),
                namespace: scope.clone(),
            });
        }
    }
    out
}

/// The bootstrap ClusterRoles deploy/ binds (a real cluster has them), with their rules.
fn builtin_cluster_role(role_ref: &Value) -> Option<Value> {
    (role_ref["kind"] == "ClusterRole" && role_ref["name"] == "system:auth-delegator").then(|| {
        serde_json::json!({
            "kind": "ClusterRole",
            "metadata": {"name": "system:auth-delegator"},
            "rules": [
                {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
            ],
        })
    })
}

/// The stand-in's policy for these grants (it does not know resourceNames: those are checked
/// on the recorded requests, [`check_requests`]).
fn policy(grants: &[Grant], user: &str) -> Policy {
    Policy {
        rules: grants
            .iter()
            .map(|g| Rule {
                users: vec![user.to_string()],
                verbs: g.verbs.clone(),
                resources: g.resources.clone(),
                namespaces: vec![g.namespace.clone().unwrap_or_else(|| "*".into())],
            })
            .collect(),
    }
}

/// Every request `user` made is allowed by some grant, resourceNames included, as the API
/// server's RBAC authorizer decides (a `create` has no name, so only a rule without
/// resourceNames allows it).
fn check_requests(requests: &[RecordedRequest], user: &str, grants: &[Grant]) -> Vec<String> {
    let mut seen = Vec::new();
    for r in requests.iter().filter(|r| r.user.as_deref() == Some(user)) {
        assert_ne!(r.status, 403, "{} {} was forbidden", r.method, r.path);
        let path = r.path.split('?').next().unwrap();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (group, rest) = match parts.as_slice() {
            ["api", "v1", rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => panic!("unexpected path {path}"),
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, rest @ ..] => (Some(*ns), rest),
            rest => (None, rest),
        };
        let (resource, name) = match rest {
            [resource] => (*resource, None),
            [resource, name] => (*resource, Some(*name)),
            _ => panic!("unexpected path {path}"),
        };
        let verb = match (r.method.as_str(), name) {
            ("GET", Some(_)) => "get",
            ("GET", None) => "list",
            ("POST", _) => "create",
            ("PUT", _) => "update",
            ("PATCH", _) => "patch",
            ("DELETE", _) => "delete",
            (m, _) => panic!("unexpected method {m}"),
        };
        let allowed = grants.iter().any(|g| {
            g.groups.iter().any(|x| x == group || x == "*")
                && g.resources.iter().any(|x| x == resource || x == "*")
                && g.verbs.iter().any(|x| x == verb || x == "*")
                && (g.names.is_empty() || name.is_some_and(|n| g.names.iter().any(|x| x == n)))
                && (g.namespace.is_none() || g.namespace.as_deref() == namespace)
        });
        assert!(
            allowed,
            "{verb} {resource} {name:?} in {namespace:?} is not granted by the manifests' RBAC: {grants:?}"
        );
        seen.push(format!("{verb} {resource}"));
    }
    seen
}

/// Runs the webhook binary with the Deployment's init-certs args and env, as `token`.
async fn run_init_certs(
    standin: &StandIn,
    token: &str,
    dir: &Path,
    args: &[String],
    env: &[(String, String)],
) {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, standin.kubeconfig_yaml(token)).unwrap();
    let mut cmd = webhook();
    cmd.args(args)
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("POD_NAMESPACE")
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "init-certs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The registered configuration equals the rendered one, field by field, but for the
/// caBundle (filled by init-certs, absent from the manifest) and the labels (the manifest may
/// carry more; init-certs' own must be there).
fn assert_same_registration(rendered: &Value, live: &MutatingWebhookConfiguration) {
    let live = serde_json::to_value(live).unwrap();
    assert_eq!(live["metadata"]["name"], rendered["metadata"]["name"]);
    for (k, v) in live["metadata"]["labels"].as_object().unwrap() {
        assert_eq!(
            &rendered["metadata"]["labels"][k], v,
            "label {k} that init-certs sets is missing from the manifest"
        );
    }
    let mut webhooks = live["webhooks"].clone();
    for w in webhooks.as_array_mut().unwrap() {
        let ca = w["clientConfig"]
            .as_object_mut()
            .unwrap()
            .remove("caBundle")
            .expect("init-certs sets the caBundle");
        assert!(!ca.as_str().unwrap().is_empty());
    }
    for w in rendered["webhooks"].as_array().unwrap() {
        assert!(
            w["clientConfig"].get("caBundle").is_none(),
            "the manifest must leave caBundle to init-certs"
        );
    }
    assert_eq!(
        rendered["webhooks"],
        webhooks,
        "\nmanifest:   {}\ninit-certs: {}",
        serde_json::to_string_pretty(&rendered["webhooks"]).unwrap(),
        serde_json::to_string_pretty(&webhooks).unwrap()
    );
}

#[tokio::test]
async fn the_manifest_registration_is_what_init_certs_registers_under_the_manifest_rbac() {
    install_provider();
    let objects = render("base");
    let rendered = one(&objects, MWC);
    for overlay in OVERLAYS {
        assert_eq!(one(&render(overlay), MWC), rendered, "{overlay}");
    }
    let deployment = object(&objects, "Deployment", WEBHOOK);
    let namespace = s(deployment, "/metadata/namespace");
    let service_account = s(deployment, "/spec/template/spec/serviceAccountName");
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let (args, env) = init_certs_invocation(deployment);

    let job = assert_renewal_runs_init_certs(&objects, deployment);
    assert_eq!(s(job, "/serviceAccountName"), service_account);

    // What the Deployment's init-certs flags describe is what the manifest ships.
    let parsed = parse_init_certs(&args, &env);
    assert_same_registration(rendered, &webhook_config(&parsed, "CA"));

    let grants = grants(&objects, namespace, service_account);
    let secret_name = s(
        named(&deployment["spec"]["template"]["spec"]["volumes"], "certs"),
        "/secret/secretName",
    );
    let mwc_name = s(rendered, "/metadata/name");
    let dir = tempfile::tempdir().unwrap();

    // A fresh cluster after `kubectl apply -k` (the manifest's configuration, no caBundle):
    // init-certs creates the Secrets and sets the caBundle, nothing else.
    let standin = StandIn::start_with(StandInOptions {
        policy: policy(&grants, &user),
        ..StandInOptions::default()
    })
    .await
    .unwrap();
    let token = standin.mint_token(namespace, service_account, &[], Duration::from_secs(3600));
    let admin = standin.client(standin.admin_token()).await.unwrap();
    let mwcs: Api<MutatingWebhookConfiguration> = Api::all(admin.clone());
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), namespace);
    let applied: MutatingWebhookConfiguration = serde_json::from_value(rendered.clone()).unwrap();
    mwcs.create(&PostParams::default(), &applied).await.unwrap();
    run_init_certs(&standin, &token, dir.path(), &args, &env).await;
    let live = mwcs.get(mwc_name).await.unwrap();
    assert_same_registration(rendered, &live);
    assert_eq!(
        serde_json::to_value(&live.metadata.labels).unwrap(),
        rendered["metadata"]["labels"]
    );
    let secret = secrets.get(secret_name).await.unwrap();
    for key in ["tls.crt", "tls.key"] {
        assert!(secret.data.as_ref().unwrap().contains_key(key), "{key}");
    }
    assert!(
        !secret.data.as_ref().unwrap().contains_key("ca.key"),
        "the CA key is not in the Secret the serving pods mount"
    );
    let ca_secret_name = args
        .iter()
        .find_map(|a| a.strip_prefix("--ca-secret-name="))
        .expect("the Deployment names the CA Secret");
    assert_ne!(ca_secret_name, secret_name);
    assert!(
        secrets
            .get(ca_secret_name)
            .await
            .unwrap()
            .data
            .is_some_and(|d| d.contains_key("ca.key"))
    );

    // The broker's serving Secret (--extra-service), from the same CA: ca.crt, tls.crt,
    // tls.key for the broker Service's names, and no CA key.
    let broker = object(&objects, "Deployment", BROKER);
    let broker_secret_name = s(
        named(&broker["spec"]["template"]["spec"]["volumes"], "certs"),
        "/secret/secretName",
    );
    assert!(
        parsed
            .extra_services
            .iter()
            .any(|e| e.secret == broker_secret_name && e.name == BROKER),
        "init-certs issues the Secret the broker mounts: {:?}",
        parsed.extra_services
    );
    let broker_secret = secrets.get(broker_secret_name).await.unwrap();
    let data = broker_secret.data.as_ref().unwrap();
    let keys: Vec<&String> = data.keys().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(data["ca.crt"], secret.data.as_ref().unwrap()["ca.crt"]);
    assert_ne!(data["tls.crt"], secret.data.as_ref().unwrap()["tls.crt"]);
    let broker_cert = data["tls.crt"].0.clone();

    // Again: the Secrets reused, the caBundle unchanged.
    run_init_certs(&standin, &token, dir.path(), &args, &env).await;
    assert_same_registration(rendered, &mwcs.get(mwc_name).await.unwrap());
    assert_eq!(
        secrets.get(broker_secret_name).await.unwrap().data.unwrap()["tls.crt"].0,
        broker_cert,
        "the broker's certificate is reused while valid"
    );

    // A Secret that lost its certificates is updated in place.
    let mut emptied = secrets.get(secret_name).await.unwrap();
    emptied.data = None;
    secrets
        .replace(secret_name, &PostParams::default(), &emptied)
        .await
        .unwrap();
    run_init_certs(&standin, &token, dir.path(), &args, &env).await;
    assert!(
        secrets
            .get(secret_name)
            .await
            .unwrap()
            .data
            .is_some_and(|d| d.contains_key("tls.crt"))
    );

    // The migration: an immutable Secret in its place, as Flyte's init-certs leaves one,
    // signed by a CA whose key is nowhere here. Only delete + create replaces it.
    secrets
        .delete(secret_name, &Default::default())
        .await
        .unwrap();
    let mut flyte = Secret::default();
    flyte.metadata.name = Some(secret_name.to_string());
    flyte.immutable = Some(true);
    flyte.string_data = Some(
        [("ca.crt", "x"), ("tls.crt", "y"), ("tls.key", "z")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let frozen = secrets
        .create(&PostParams::default(), &flyte)
        .await
        .unwrap();
    run_init_certs(&standin, &token, dir.path(), &args, &env).await;
    let replaced = secrets.get(secret_name).await.unwrap();
    assert_ne!(replaced.metadata.uid, frozen.metadata.uid, "recreated");
    assert_ne!(replaced.immutable, Some(true));
    assert!(
        replaced
            .data
            .is_some_and(|d| d["tls.crt"].0.starts_with(b"-----BEGIN CERTIFICATE-----"))
    );
    assert_same_registration(rendered, &mwcs.get(mwc_name).await.unwrap());

    let used = check_requests(&standin.requests(), &user, &grants);
    for needed in [
        "create secrets",
        "get secrets",
        "update secrets",
        "delete secrets",
        "get mutatingwebhookconfigurations",
        "patch mutatingwebhookconfigurations",
    ] {
        assert!(
            used.iter().any(|u| u == needed),
            "{needed} not exercised: {used:?}"
        );
    }
    // Least privilege: no verb granted that was not needed, and no way to register a webhook.
    for g in &grants {
        for verb in &g.verbs {
            for resource in &g.resources {
                let pair = format!("{verb} {resource}");
                assert!(used.contains(&pair), "{pair} is granted but never used");
            }
        }
        if g.resources
            .iter()
            .any(|r| r == "mutatingwebhookconfigurations")
        {
            assert!(!g.names.is_empty(), "configurations only by name: {g:?}");
            assert!(
                !g.verbs
                    .iter()
                    .any(|v| v == "create" || v == "update" || v == "*")
            );
        }
        if g.verbs.iter().any(|v| v == "delete") {
            assert_eq!(g.names, [secret_name], "delete on the serving Secret only");
        }
        if g.verbs.iter().any(|v| v == "get" || v == "update")
            && g.resources.iter().any(|r| r == "secrets")
        {
            assert!(
                !g.names.is_empty(),
                "the webhook's Secrets by name only: {g:?}"
            );
        }
    }
}

/// `deploy/components/namespace-selector` (Flyte 1 and 2 side by side, flyteorg/flyte#7616),
/// rendered by `deploy/examples/side-by-side`: the selector it gives init-certs, in the
/// Deployment and the renewal CronJob alike, is exactly what the shipped configuration
/// carries, as init-certs registers it (the NotIn exclusion kept); nothing else changes.
#[test]
fn the_namespace_selector_component_ships_what_init_certs_registers() {
    let objects = render("examples/side-by-side");
    let rendered = one(&objects, MWC);
    assert_eq!(
        rendered["webhooks"][0]["namespaceSelector"]["matchLabels"],
        serde_json::json!({"flyte.org/secrets": "agent"})
    );
    let deployment = object(&objects, "Deployment", WEBHOOK);
    let (args, env) = init_certs_invocation(deployment);
    let parsed = parse_init_certs(&args, &env);
    assert_same_registration(rendered, &webhook_config(&parsed, "CA"));
    assert_renewal_runs_init_certs(&objects, deployment);
    // Everything but the selector is the Kubernetes overlay's.
    let mut base = one(&render("overlays/kubernetes"), MWC).clone();
    base["webhooks"][0]["namespaceSelector"]["matchLabels"] =
        rendered["webhooks"][0]["namespaceSelector"]["matchLabels"].clone();
    assert_eq!(&base, rendered);
}

#[test]
fn every_overlay_config_loads_and_is_what_the_configmap_holds() {
    for (dir, backend) in [
        ("base", "kubernetes"),
        ("overlays/kubernetes", "kubernetes"),
        ("overlays/aws", "aws"),
        ("overlays/vault", "vault"),
        ("overlays/gcp", "gcp"),
        ("overlays/azure", "azure"),
    ] {
        let file = deploy_dir().join(dir).join("config.json");
        let settings = Settings::load(&InjectArgs {
            config: Some(file.clone()),
            ..InjectArgs::default()
        })
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(settings.agent.image, DEFAULT_IMAGE, "{dir}: agentImage");
        match (&settings.backends[..], backend) {
            // Managed secrets through the broker, at its Service.
            ([Backend::Kubernetes(k)], "kubernetes") => {
                let broker = k.broker.as_ref().expect("kubernetes backend: broker");
                assert_eq!(
                    broker.url,
                    format!("https://{BROKER}.flyte-secret-agent.svc"),
                    "{dir}"
                );
            }
            ([Backend::Aws(aws)], "aws") => assert!(aws.region.is_some(), "{dir}: region"),
            // JWT auth with the audience-bound token the webhook projects into the agent
            // only: Vault never receives a token the API server accepts; the role is the
            // pod's namespace's (deploy/overlays/vault/policies).
            ([Backend::Vault(vault)], "vault") => {
                let token = settings.vault_token.as_ref().expect("vaultToken");
                assert!(
                    matches!(&vault.auth, VaultAuth::Jwt { role, token_file, .. }
                        if role == "flyte-{{namespace}}"
                            && *token_file == format!("{}/token", token.mount_path)),
                    "{dir}: jwt auth, one role per namespace, the projected token"
                );
                assert_eq!(token.audience, "vault", "{dir}: audience");
            }
            // Workload identity: no credential in the config, only where the secrets live.
            ([Backend::Gcp(gcp)], "gcp") => {
                assert!(gcp.project.is_some(), "{dir}: project");
                assert!(gcp.credentials_file.is_none(), "{dir}: ADC, no key file");
            }
            ([Backend::Azure(azure)], "azure") => {
                let url = azure.vault_url.as_deref().unwrap_or_default();
                assert!(
                    url.starts_with("https://") && url.ends_with(".vault.azure.net"),
                    "{dir}: vaultUrl {url:?}"
                );
            }
            (b, _) => panic!("{dir}: backends {b:?}"),
        }

        let objects = render(dir);
        let config_map = one(&objects, "ConfigMap");
        let in_map: Value = serde_json::from_str(s(config_map, "/data/config.json")).unwrap();
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(in_map, on_disk, "{dir}: the ConfigMap holds config.json");
        let pod = &object(&objects, "Deployment", WEBHOOK)["spec"]["template"]["spec"];
        assert_eq!(
            named(&pod["volumes"], "config")["configMap"]["name"],
            config_map["metadata"]["name"]
        );
        let serve = named(&pod["containers"], "webhook");
        let mount = s(named(&serve["volumeMounts"], "config"), "/mountPath");
        assert!(
            serve["args"]
                .as_array()
                .unwrap()
                .contains(&Value::String(format!("--config={mount}/config.json"))),
            "{dir}: serve reads the mounted config"
        );
    }
}

#[test]
fn the_manifests_agree_with_each_other_and_the_binary() {
    let objects = render("base");
    let deployment = object(&objects, "Deployment", WEBHOOK);
    let namespace = s(deployment, "/metadata/namespace");
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let selects_pods = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    let serve = named(&pod["containers"], "webhook");
    let init = named(&pod["initContainers"], "init-certs");

    // Image: this release's webhook, the same for serve, init-certs and the CronJob.
    let image = format!(
        "ghcr.io/flyte-secret-agent/webhook:{}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(serve["image"], image.as_str());
    assert_eq!(init["image"], image.as_str());

    // Service 443 -> the serve container's https port 9443 (the --listen default), and the
    // registration points at that Service.
    let service = object(&objects, "Service", WEBHOOK);
    let port = named(&service["spec"]["ports"], "https");
    assert_eq!(port["port"], 443);
    assert_eq!(
        named(&serve["ports"], s(port, "/targetPort"))["containerPort"],
        9443
    );
    assert!(selects_pods(&service["spec"]["selector"]));
    let client = &one(&objects, MWC)["webhooks"][0]["clientConfig"]["service"];
    assert_eq!(client["name"], service["metadata"]["name"]);
    assert_eq!(client["namespace"], namespace);
    assert_eq!(client["port"], 443);
    let (args, _) = init_certs_invocation(deployment);
    let service_name = s(service, "/metadata/name");
    assert!(args.contains(&format!("--service-name={service_name}")));

    // Probes on the admin port (8080, the --admin-listen default): /live and /ready.
    assert_eq!(named(&serve["ports"], "admin")["containerPort"], 8080);
    for (probe, path) in [
        ("livenessProbe", "/live"),
        ("readinessProbe", "/ready"),
        ("startupProbe", "/live"),
    ] {
        assert_eq!(serve[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(serve[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // The TLS Secret init-certs writes is what serve reads, at the default TLS path, and the
    // CA key is not mounted.
    let certs = named(&pod["volumes"], "certs");
    assert!(args.contains(&format!("--secret-name={}", s(certs, "/secret/secretName"))));
    assert_eq!(
        s(named(&serve["volumeMounts"], "certs"), "/mountPath"),
        "/etc/webhook/certs"
    );
    let items = strings(
        &certs["secret"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].clone())
            .collect(),
    );
    // ca.crt: the bundle the webhook hands agents to trust the broker (brokerCaFile).
    assert_eq!(items, ["tls.crt", "tls.key", "ca.crt"]);

    // Availability: 2 replicas, a PDB over them, spread over nodes.
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pdb = object(&objects, "PodDisruptionBudget", WEBHOOK);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(selects_pods(&pdb["spec"]["selector"]["matchLabels"]));
    let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert!(selects_pods(&anti["labelSelector"]["matchLabels"]));

    // Ingress: a NetworkPolicy over the webhook pods; the https port only from ipBlocks (the
    // API server, outside the pod network), never from pods; admin also from Prometheus.
    let netpol = object(&objects, "NetworkPolicy", WEBHOOK);
    assert!(selects_pods(&netpol["spec"]["podSelector"]["matchLabels"]));
    assert_eq!(
        netpol["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    let rules = netpol["spec"]["ingress"].as_array().unwrap();
    let admits = |port: &str| {
        rules
            .iter()
            .filter(|r| {
                r["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["port"] == port)
            })
            .collect::<Vec<_>>()
    };
    for rule in admits("https") {
        for peer in rule["from"].as_array().unwrap() {
            assert!(
                peer.get("ipBlock").is_some() && peer.get("podSelector").is_none(),
                "https admits pods: {peer}"
            );
            assert!(!peer["ipBlock"]["except"].as_array().unwrap().is_empty());
        }
    }
    assert!(
        admits("admin").iter().any(|r| r["from"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.get("namespaceSelector").is_some())),
        "Prometheus reaches admin"
    );

    // Hardening: non-root, no privilege, read-only root, no API token where serve runs.
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    for c in [serve, init] {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
        assert!(c["resources"]["limits"]["memory"].is_string());
    }
    let mounts_token = |c: &Value| {
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "kube-api-access")
    };
    assert!(mounts_token(init) && !mounts_token(serve));
}

#[test]
fn the_broker_deployment_agrees_with_the_binary_and_the_webhook() {
    use flyte_secret_webhook::broker::BrokerArgs;
    let objects = render("base");
    let deployment = object(&objects, "Deployment", BROKER);
    let namespace = s(deployment, "/metadata/namespace");
    let pod = &deployment["spec"]["template"]["spec"];
    let labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .unwrap();
    let selects_pods = |selector: &Value| {
        selector
            .as_object()
            .unwrap()
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    };
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1, "the broker alone");
    assert!(pod.get("initContainers").is_none());
    let broker = named(&pod["containers"], "broker");
    assert_eq!(
        broker["image"],
        format!(
            "ghcr.io/flyte-secret-agent/webhook:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(s(pod, "/serviceAccountName"), BROKER);

    // Its args parse as `webhook broker`; listen 8443 and admin 8080 are the defaults.
    let args: Vec<String> = strings(&broker["args"]);
    assert_eq!(args[0], "broker");
    let cli = Cli::try_parse_from(std::iter::once("webhook".to_string()).chain(args.clone()))
        .expect("the broker's args parse");
    let CliCommand::Broker(parsed) = cli.command else {
        panic!("not broker: {args:?}")
    };
    let parsed: BrokerArgs = *parsed;
    assert_eq!(parsed.listen.port(), 8443);
    assert_eq!(parsed.admin_listen.port(), 8080);
    assert_eq!(parsed.managed_namespace, "flyte");
    assert_eq!(named(&broker["ports"], "https")["containerPort"], 8443);
    assert_eq!(named(&broker["ports"], "admin")["containerPort"], 8080);
    for (probe, path) in [
        ("livenessProbe", "/live"),
        ("readinessProbe", "/ready"),
        ("startupProbe", "/live"),
    ] {
        assert_eq!(broker[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(broker[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    assert_eq!(
        deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"],
        "8080"
    );

    // The Service the agents call: 443 -> https, at the URL the config names.
    let service = object(&objects, "Service", BROKER);
    let port = named(&service["spec"]["ports"], "https");
    assert_eq!(port["port"], 443);
    assert_eq!(port["targetPort"], "https");
    assert!(selects_pods(&service["spec"]["selector"]));
    assert_eq!(namespace, "flyte-secret-agent");

    // Its certificate: the Secret init-certs issues (--extra-service), at the default TLS path,
    // optional (ready once it exists), no CA key.
    let certs = named(&pod["volumes"], "certs");
    assert_eq!(certs["secret"]["optional"], true);
    let secret_name = s(certs, "/secret/secretName");
    let webhook = object(&objects, "Deployment", WEBHOOK);
    let (init_args, _) = init_certs_invocation(webhook);
    assert!(
        init_args.contains(&format!(
            "--extra-service=name={},secret={secret_name}",
            s(service, "/metadata/name")
        )),
        "{init_args:?}"
    );
    let mount = s(named(&broker["volumeMounts"], "certs"), "/mountPath");
    assert_eq!(
        parsed.tls_cert,
        std::path::Path::new(mount).join("tls.crt"),
        "the default --tls-cert is in the mounted Secret"
    );
    let items: Vec<&Value> = certs["secret"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["key"])
        .collect();
    assert_eq!(items, ["tls.crt", "tls.key"]);

    // Availability and hardening, as the webhook's.
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pdb = object(&objects, "PodDisruptionBudget", BROKER);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert!(selects_pods(&pdb["spec"]["selector"]["matchLabels"]));
    let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        [0]["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert!(selects_pods(&anti["labelSelector"]["matchLabels"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let sc = &broker["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert!(broker["resources"]["limits"]["memory"].is_string());
    // The API token: projected into the broker explicitly, never automounted.
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert!(
        broker["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "kube-api-access")
    );

    // Ingress: https from Flyte task pods (labelled for injection), admin from Prometheus.
    let netpol = object(&objects, "NetworkPolicy", BROKER);
    assert!(selects_pods(&netpol["spec"]["podSelector"]["matchLabels"]));
    let rules = netpol["spec"]["ingress"].as_array().unwrap();
    let https_rules: Vec<&Value> = rules
        .iter()
        .filter(|r| {
            r["ports"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["port"] == "https")
        })
        .collect();
    assert_eq!(https_rules.len(), 1);
    for peer in https_rules[0]["from"].as_array().unwrap() {
        assert_eq!(
            peer["podSelector"]["matchLabels"]["inject-flyte-secrets"], "true",
            "https only from task pods: {peer}"
        );
    }
}

#[test]
fn only_the_webhook_and_the_broker_may_read_secrets_and_the_broker_no_more_than_it_needs() {
    let mut rendered = Vec::new();
    for dir in [
        "base",
        "overlays/kubernetes",
        "overlays/aws",
        "overlays/vault",
        "overlays/gcp",
        "overlays/azure",
        "task-namespace",
    ] {
        rendered.push((dir, render(dir)));
    }
    for (dir, objects) in &rendered {
        // Every ServiceAccount (and group) any binding names: none but the control plane's
        // gets a rule on Secrets.
        for binding in objects
            .iter()
            .filter(|o| o["kind"] == "RoleBinding" || o["kind"] == "ClusterRoleBinding")
        {
            for subject in binding["subjects"].as_array().into_iter().flatten() {
                let control_plane = subject["kind"] == "ServiceAccount"
                    && subject["namespace"] == "flyte-secret-agent"
                    && CONTROL_PLANE.iter().any(|n| subject["name"] == *n);
                if control_plane {
                    continue;
                }
                let (ns, name) = (
                    subject["namespace"].as_str().unwrap_or_default(),
                    subject["name"].as_str().unwrap_or_default(),
                );
                assert_eq!(
                    subject["kind"], "ServiceAccount",
                    "{dir}: {binding}: only service accounts are bound"
                );
                for g in grants(objects, ns, name) {
                    assert!(
                        !g.resources.iter().any(|r| r == "secrets" || r == "*"),
                        "{dir}: {ns}/{name} (not the control plane) is granted Secrets: {g:?}"
                    );
                }
            }
        }
        // And no Role or ClusterRole at all outside the control plane's.
        for role in objects
            .iter()
            .filter(|o| o["kind"] == "Role" || o["kind"] == "ClusterRole")
        {
            let name = s(role, "/metadata/name");
            assert!(
                CONTROL_PLANE.contains(&name),
                "{dir}: unexpected role {role}"
            );
        }
    }

    // The broker: get Secrets in `flyte` (no list, no names: managed names are md5s), get
    // pods anywhere, create TokenReviews (system:auth-delegator, which also allows
    // SubjectAccessReviews). Nothing else.
    let base = &rendered[0].1;
    let mut granted: Vec<String> = grants(base, "flyte-secret-agent", BROKER)
        .iter()
        .flat_map(|g| {
            let ns = g.namespace.clone().unwrap_or_else(|| "*".into());
            g.verbs.iter().flat_map(move |v| {
                let ns = ns.clone();
                g.resources.iter().map(move |r| {
                    format!(
                        "{v} {}/{r} in {ns}{}",
                        g.groups.join(","),
                        if g.names.is_empty() {
                            String::new()
                        } else {
                            format!(" {:?}", g.names)
                        }
                    )
                })
            })
        })
        .collect();
    granted.sort();
    assert_eq!(
        granted,
        [
            "create authentication.k8s.io/tokenreviews in *",
            "create authorization.k8s.io/subjectaccessreviews in *",
            "get /pods in *",
            "get /secrets in flyte",
        ]
    );
}
