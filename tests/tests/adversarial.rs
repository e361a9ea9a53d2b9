//! The adversarial suite: from inside a running task container, with whatever that container
//! can see (its own service-account token, the kubelet's CA, the network, and in one scenario a
//! leaked broker token), try to read what the pod did not declare. Every attempt must be
//! refused by something outside the pod: the Kubernetes API's RBAC (as `deploy/` renders it,
//! enforced by the stand-in), the broker's checks, or the kubelet not mounting a volume. The
//! pod's own declared secrets must still be read with flytekit and the Flyte 2 layout.
//!
//! The count of refused attempts is printed (`adversarial: N of N attempts refused`).

use std::collections::BTreeMap;
use std::path::Path;

use flyte_secret_e2e::broker::Broker;
use flyte_secret_e2e::cases::unique;
use flyte_secret_e2e::kubelet::{Cluster, PodRun, run_pod};
use flyte_secret_e2e::pods::{TASK_PYTHON, TaskPod, site_packages};
use flyte_secret_e2e::webhook::Webhook;
use flyte_secret_e2e::world::World;
use flyte_secret_spec::broker::DEFAULT_AUDIENCE;
use flyte_secret_spec::env::{BROKER_TOKEN_FILE, KUBE_SECRETS_DIR};
use flyte_secret_spec::scoped::{LABEL_MANAGED, Scope, k8s_secret_name};
use flyte_secret_spec::{ANNOTATION_PREFIX, SecretRequest, annotation};
use serde_json::{Value, json};

const NAMESPACE: &str = "flytesnacks-development";

/// A managed secret's Secret name and data key for `key` in `project`/`domain`.
fn managed(project: &str, domain: &str, key: &str) -> (String, String) {
    let scope = Scope {
        org: "flyte".into(),
        domain: domain.into(),
        project: project.into(),
    };
    let id = scope.encode_name(key);
    (k8s_secret_name(&id), id)
}

fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(LABEL_MANAGED.to_string(), "true".to_string())])
}

fn secret_path(namespace: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{namespace}/secrets/{name}")
}

/// A pod object outside any run that declares the managed secret `key` (so a replayed token
/// would be served it if the broker's checks failed), and a broker token bound to it.
fn bystander_token(world: &World, name: &str, key: &str) -> (String, String) {
    let request = annotation::encode(&SecretRequest::new("", key));
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE,
                     "labels": {(flyte_secret_spec::INJECT_LABEL): "true"},
                     "annotations": {format!("{ANNOTATION_PREFIX}s0"): request}},
        "spec": {"containers": [{"name": "c", "image": "x"}]}
    });
    let uid = world.create_pod(&pod).unwrap();
    let token = world
        .pod_token(
            NAMESPACE,
            "default",
            Some(DEFAULT_AUDIENCE),
            600,
            (name, &uid),
        )
        .unwrap();
    (uid, token)
}

/// Every line the attacker printed, as JSON.
fn report(run: &PodRun) -> Vec<Value> {
    let app = run.containers.last().expect("containers ran");
    app.stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn dump(run: &PodRun) -> String {
    run.containers
        .iter()
        .map(|c| {
            format!(
                "--- {} exit {:?}\n{}\n{}\n{}",
                c.name, c.code, c.stdout, c.stderr, c.termination_message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_reads_only_what_it_declared() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let canary = |what: &str| format!("ADVERSARIAL-CANARY-{what}-{u}");

    // What the task declares: a Secret of its namespace and a managed secret of its project.
    let declared = format!("adv-declared-{u}");
    let mine_key = format!("adv_mine_{u}");
    // What it must not read.
    let undeclared = format!("adv-undeclared-{u}");
    let theirs_key = format!("adv_theirs_{u}");
    let control_plane = format!("flyteadmin-db-{u}");
    world
        .put_k8s(
            NAMESPACE,
            &declared,
            &[("token", canary("declared").as_bytes())],
            BTreeMap::new(),
        )
        .await
        .unwrap();
    world
        .put_k8s(
            NAMESPACE,
            &undeclared,
            &[("token", canary("undeclared").as_bytes())],
            BTreeMap::new(),
        )
        .await
        .unwrap();
    let (mine_name, mine_id) = managed("flytesnacks", "development", &mine_key);
    world
        .put_k8s(
            "flyte",
            &mine_name,
            &[(&mine_id, canary("mine").as_bytes())],
            managed_labels(),
        )
        .await
        .unwrap();
    let (theirs_name, theirs_id) = managed("otherproject", "development", &theirs_key);
    world
        .put_k8s(
            "flyte",
            &theirs_name,
            &[(&theirs_id, canary("theirs").as_bytes())],
            managed_labels(),
        )
        .await
        .unwrap();
    world
        .put_k8s(
            "flyte",
            &control_plane,
            &[("password", canary("control-plane").as_bytes())],
            BTreeMap::new(),
        )
        .await
        .unwrap();

    let broker = Broker::start(&world, &[]).unwrap();
    let webhook = Webhook::start(&world.webhook_args(&broker)).unwrap();

    // Tokens of other pods: one deleted, one finished, one recreated under its name.
    let (_, gone_token) = bystander_token(&world, &format!("adv-gone-{u}"), &mine_key);
    world.delete_pod(NAMESPACE, &format!("adv-gone-{u}"));
    let recreated = format!("adv-recreated-{u}");
    let (_, recreated_token) = bystander_token(&world, &recreated, &mine_key);
    world.delete_pod(NAMESPACE, &recreated);
    let _ = bystander_token(&world, &recreated, &mine_key);
    let finished = format!("adv-finished-{u}");
    let (_, finished_token) = bystander_token(&world, &finished, &mine_key);
    world
        .set_pod_phase(NAMESPACE, &finished, "Succeeded")
        .unwrap();

    let dir = flyte_secret_e2e::TempDir::new("fsa-adversarial");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("python/attack.py"),
        dir.path().join("attack.py"),
    )
    .unwrap();
    std::fs::copy(&broker.ca_file, dir.path().join("broker-ca.crt")).unwrap();
    // Each attempt carries the words its refusal must hold (`expect`): refused for its own
    // reason, since a 401/403 for another one could hide a hole.
    let get_secret = |name: &str, namespace: &str, secret: &str| {
        json!({"name": name, "kind": "api", "path": secret_path(namespace, secret),
        "expect": format!(
            "cannot get resource \"secrets\" in API group \"\" in the namespace \"{namespace}\""
        )})
    };
    let to_broker = |name: &str, token: Value, annotations: &[&str], expect: &str| {
        let mut a = json!({"name": name, "kind": "broker", "annotations": annotations,
                           "expect": expect});
        a.as_object_mut().unwrap().extend(
            token
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        a
    };
    let own_sa_token = json!({"token_file": "/var/run/secrets/kubernetes.io/serviceaccount/token"});
    let leaked = json!({"token_file": "/leaked/broker/token"});
    let invalidated = "service account token has been invalidated";
    let attempts = vec![
        get_secret(
            "read an undeclared Secret of its namespace through the API",
            NAMESPACE,
            &undeclared,
        ),
        get_secret(
            "read even its declared Secret through the API (no Secret RBAC at all)",
            NAMESPACE,
            &declared,
        ),
        json!({"name": "list the Secrets of its namespace", "kind": "api",
               "path": format!("/api/v1/namespaces/{NAMESPACE}/secrets"),
               "expect": "cannot list resource \"secrets\""}),
        get_secret(
            "read another project's managed secret in flyte",
            "flyte",
            &theirs_name,
        ),
        get_secret(
            "read its own project's managed secret in flyte directly",
            "flyte",
            &mine_name,
        ),
        get_secret(
            "read a control-plane Secret in flyte",
            "flyte",
            &control_plane,
        ),
        get_secret(
            "read the webhook's CA key",
            "flyte-secret-agent",
            "flyte-secret-webhook-ca",
        ),
        json!({"name": "mint a broker-audience token for its service account (TokenRequest)",
               "kind": "api", "method": "POST",
               "path": format!("/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default/token"),
               "body": {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                        "spec": {"audiences": [DEFAULT_AUDIENCE]}},
               "expect": "cannot create resource \"serviceaccounts/token\""}),
        json!({"name": "read the agent's broker token", "kind": "file", "path": BROKER_TOKEN_FILE,
               "expect": "absent"}),
        json!({"name": "read the kubelet's Secret volume of the agent", "kind": "file",
               "path": format!("{KUBE_SECRETS_DIR}/{declared}/token"), "expect": "absent"}),
        to_broker(
            "ask the broker with its API token (wrong audience)",
            own_sa_token,
            &["flyte.secrets/s1"],
            "is invalid for the target audiences",
        ),
        to_broker(
            "ask the broker for an annotation the pod does not carry (leaked broker token)",
            leaked.clone(),
            &["flyte.secrets/s7"],
            "does not declare annotation flyte.secrets/s7",
        ),
        to_broker(
            "ask the broker for the pod's Kubernetes Secret, which is the kubelet's (leaked broker token)",
            leaked,
            &["flyte.secrets/s0"],
            "is delivered by the kubelet, not the broker",
        ),
        to_broker(
            "replay the token of a pod that is gone",
            json!({"token": gone_token}),
            &["flyte.secrets/s0"],
            invalidated,
        ),
        to_broker(
            "replay the token of a pod deleted and recreated under the same name",
            json!({"token": recreated_token}),
            &["flyte.secrets/s0"],
            invalidated,
        ),
        to_broker(
            "replay the token of a finished pod",
            json!({"token": finished_token}),
            &["flyte.secrets/s0"],
            "has finished",
        ),
    ];
    let plan = json!({
        "broker": broker.url,
        "broker_ca_file": "/e2e/broker-ca.crt",
        "attempts": attempts,
        "declared": [[declared, "token"], ["", mine_key]],
    });
    std::fs::write(dir.path().join("plan.json"), plan.to_string()).unwrap();
    for f in ["attack.py", "plan.json", "broker-ca.crt"] {
        std::fs::set_permissions(
            dir.path().join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }

    let task = TaskPod {
        namespace: NAMESPACE.into(),
        name: format!("adv-{u}"),
        secrets: vec![
            SecretRequest::new(&declared, "token"),
            SecretRequest::new("", &mine_key),
        ],
        scope: Some(("flytesnacks".into(), "development".into())),
        python_path: site_packages(&world.servers.tools.python),
        ..TaskPod::default()
    };
    let command = vec![
        TASK_PYTHON.to_string(),
        "/e2e/attack.py".into(),
        "/e2e/plan.json".into(),
    ];
    let pod = task.build(&command, dir.path());
    let admission = webhook.admit(&pod).await.unwrap();
    assert!(admission.allowed, "denied: {}", admission.message);
    // The strongest attacker: the agent's broker token leaked into the task container.
    let mut admitted = admission.pod.clone();
    admitted["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "flyte-secret-agent-broker", "mountPath": "/leaked/broker", "readOnly": true}));
    let run =
        std::thread::scope(|s| s.spawn(|| run_pod(&admitted, &world)).join().unwrap()).unwrap();
    assert!(
        run.succeeded(),
        "the attacking task failed:\n{}",
        dump(&run)
    );
    let lines = report(&run);
    let results: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("refused").is_some())
        .collect();
    assert_eq!(
        results.len(),
        plan["attempts"].as_array().unwrap().len(),
        "{}",
        dump(&run)
    );
    let mut refused = 0;
    let mut failures = Vec::new();
    for r in &results {
        println!(
            "  {} {}: {}",
            if r["refused"] == true {
                "refused "
            } else {
                // Allowed, or refused for another reason than its own.
                "FAILED  "
            },
            r["name"].as_str().unwrap_or("?"),
            r["detail"].as_str().unwrap_or("")
        );
        if r["refused"] == true {
            refused += 1;
        } else {
            failures.push(r.to_string());
        }
    }
    // The pod itself works: both declared secrets were read.
    let declared_ok = lines
        .iter()
        .filter(|l| l.get("declared-ok").is_some())
        .count();
    assert_eq!(declared_ok, 2, "{}", dump(&run));

    // A pod whose labels claim another project: the broker refuses it, naming both, and the
    // task never starts.
    let spoof = TaskPod {
        namespace: NAMESPACE.into(),
        name: format!("adv-spoof-{u}"),
        secrets: vec![SecretRequest::new("", &theirs_key)],
        scope: Some(("otherproject".into(), "development".into())),
        python_path: site_packages(&world.servers.tools.python),
        ..TaskPod::default()
    };
    let pod = spoof.build(&command, dir.path());
    let admission = webhook.admit(&pod).await.unwrap();
    assert!(admission.allowed, "denied: {}", admission.message);
    let admitted = admission.pod.clone();
    let spoofed =
        std::thread::scope(|s| s.spawn(|| run_pod(&admitted, &world)).join().unwrap()).unwrap();
    let agent = &spoofed.containers[0];
    let spoof_refused = !spoofed.succeeded()
        && spoofed.containers.len() == 1
        && agent.termination_message.contains("otherproject");
    println!(
        "  {} spoof another project's labels: {}",
        if spoof_refused {
            "refused "
        } else {
            "ALLOWED "
        },
        agent.termination_message.trim()
    );
    if spoof_refused {
        refused += 1;
    } else {
        failures.push(format!("spoofed labels: {}", dump(&spoofed)));
    }

    let total = results.len() + 1;
    println!("adversarial: {refused} of {total} attempts refused");
    // No value that was not declared reached any output, log or termination message.
    let everything = format!(
        "{}\n{}\n{}\n{}",
        run.all_output(),
        spoofed.all_output(),
        broker.logs().join("\n"),
        webhook.logs().join("\n")
    );
    for what in ["undeclared", "theirs", "control-plane", "declared", "mine"] {
        assert!(
            !everything.contains(&canary(what)),
            "the value of {what} appeared in an output"
        );
    }
    assert!(
        failures.is_empty(),
        "attempts not refused:\n{}",
        failures.join("\n")
    );
    // Every answer the broker gave is audited, without values.
    assert!(!broker.audit().is_empty(), "{:?}", broker.logs());
}
