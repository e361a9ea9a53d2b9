//! End to end, the refresh sidecar (issue 17): a Flyte task pod annotated
//! `flyte-secret-agent/refresh: "30s"` goes through the real webhook, and the pod runner runs
//! the agent init container, then `agent watch` as a native sidecar (gated by its
//! `agent ready` startupProbe), then the task. While the task runs, the test updates the
//! Kubernetes Secret (the runner republishes its `secret` volume as the kubelet does) and
//! rotates the AWS secret in moto; the task polls its files and must see both new values
//! within one interval (30s + 10% jitter, plus the runner's volume sync). A Job-style pod
//! whose task exits at once must complete promptly: the sidecar exits 0 on SIGTERM.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flyte_secret_e2e::TempDir;
use flyte_secret_e2e::broker::Broker;
use flyte_secret_e2e::cases::unique;
use flyte_secret_e2e::kubelet::{PodRun, SIDECAR_GRACE, run_pod};
use flyte_secret_e2e::pods::{TASK_PYTHON, TaskPod, site_packages};
use flyte_secret_e2e::webhook::Webhook;
use flyte_secret_e2e::world::{World, aws_admin};
use flyte_secret_spec::SecretRequest;
use flyte_secret_spec::backend::aws_secret_id;
use flyte_secret_spec::refresh::REFRESH_ANNOTATION;
use serde_json::{Value, json};

const NAMESPACE: &str = "flytesnacks-development";
const WATCH: &str = "flyte-secret-agent-watch";
/// The shortest interval the webhook accepts.
const INTERVAL: Duration = Duration::from_secs(30);

/// The task: checks the first values, says it started (a file in `/out`), then polls the
/// files until each shows its new value, printing when (Unix seconds, one JSON line).
const TASK: &str = r#"
import json, os, sys, time
exp = json.load(open(sys.argv[1]))
root = "/etc/flyte/secrets"
def read(p):
    try:
        with open(os.path.join(root, p), "rb") as f:
            return f.read().decode()
    except FileNotFoundError:
        return None
def version():
    with open(os.path.join(root, "..flyte-secret-agent", "version")) as f:
        return int(f.read())
for f in exp["files"]:
    if read(f["path"]) != f["old"]:
        print("unexpected first value in", f["path"]); sys.exit(2)
first = version()
open("/out/started", "w").write(str(time.time()))
deadline = time.time() + exp["timeout"]
pending = {f["path"]: (f["old"], f["new"]) for f in exp["files"]}
changed = {}
while pending and time.time() < deadline:
    for p, (old, new) in list(pending.items()):
        v = read(p)
        if v == new:
            changed[p] = time.time(); del pending[p]
        elif v != old:
            print("neither old nor new value in", p); sys.exit(3)
    time.sleep(0.2)
print(json.dumps({"changed": changed, "pending": sorted(pending), "versions": [first, version()]}))
sys.exit(1 if pending else 0)
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Admits `pod` through a fresh webhook (and broker) and returns the admitted pod.
async fn admit(world: &World, pod: &Value) -> Value {
    let broker = Broker::start(world, &[]).unwrap();
    let webhook = Webhook::start(&world.webhook_args(&broker)).unwrap();
    let admission = webhook.admit(pod).await.unwrap();
    assert!(admission.allowed, "denied: {}", admission.message);
    admission.pod
}

fn inits(pod: &Value) -> Vec<String> {
    pod["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn output(run: &PodRun) -> String {
    run.containers
        .iter()
        .map(|c| {
            format!(
                "--- {} (init {}, sidecar {}, code {:?}, stopped {:?})\n{}\n{}\n",
                c.name, c.init, c.sidecar, c.code, c.stopped_after, c.stdout, c.stderr
            )
        })
        .collect()
}

/// The sidecar ran, was stopped by SIGTERM and exited 0 well within the grace period.
fn assert_sidecar_stopped_promptly(run: &PodRun) {
    let watch = run
        .container(WATCH)
        .unwrap_or_else(|| panic!("no sidecar ran:\n{}", output(run)));
    assert!(watch.sidecar && watch.init);
    assert_eq!(watch.code, Some(0), "{}", output(run));
    let stopped = watch.stopped_after.expect("stopped by SIGTERM");
    assert!(
        stopped < Duration::from_secs(1) && stopped < SIDECAR_GRACE,
        "the sidecar took {stopped:?} to exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_k8s_secret_and_a_rotated_aws_secret_reach_the_running_task() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let (k8s_group, aws_group) = (format!("e2e-refresh-{u}"), format!("e2e-refresh-aws-{u}"));
    let k8s_req = SecretRequest::new(&k8s_group, "token");
    let aws_req = SecretRequest::new(&aws_group, "token");
    let (k8s_old, k8s_new) = (format!("k8s-old-{u}"), format!("k8s-new-{u}"));
    let (aws_old, aws_new) = (format!("aws-old-{u}"), format!("aws-new-{u}"));
    world
        .put_k8s(
            NAMESPACE,
            &k8s_group,
            &[("token", k8s_old.as_bytes())],
            Default::default(),
        )
        .await
        .unwrap();
    let aws_id = aws_secret_id(&aws_req);
    world.put_aws(&aws_id, aws_old.as_bytes()).await.unwrap();

    let e2e = TempDir::new("fsa-e2e-refresh");
    let out = TempDir::new("fsa-e2e-refresh-out");
    std::fs::write(e2e.path().join("task.py"), TASK).unwrap();
    let timeout = INTERVAL.as_secs_f64() * 1.1 + 15.0;
    let expect = json!({
        "timeout": timeout,
        "files": [
            {"path": format!("{k8s_group}/token"), "old": k8s_old, "new": k8s_new},
            {"path": format!("{aws_group}/token"), "old": aws_old, "new": aws_new},
        ],
    });
    std::fs::write(e2e.path().join("expect.json"), expect.to_string()).unwrap();
    for f in ["task.py", "expect.json"] {
        std::fs::set_permissions(
            e2e.path().join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        )
        .unwrap();
    }
    let task = TaskPod {
        namespace: NAMESPACE.into(),
        name: "refresh-task".into(),
        secrets: vec![k8s_req, aws_req],
        python_path: site_packages(&world.servers.tools.python),
        ..TaskPod::default()
    };
    let command = [TASK_PYTHON, "/e2e/task.py", "/e2e/expect.json"].map(String::from);
    let mut pod = task.build(&command, e2e.path());
    pod["metadata"]["annotations"][REFRESH_ANNOTATION] = json!("30s");
    // Where the task says it started (the runner binds hostPath volumes read-write).
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "out", "hostPath": {"path": out.path().display().to_string()}}));
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "out", "mountPath": "/out"}));
    let admitted = admit(&world, &pod).await;
    assert_eq!(inits(&admitted), ["flyte-secret-agent", WATCH]);

    let started = Instant::now();
    let (run, updated_at) = std::thread::scope(|s| {
        let runner = s.spawn(|| run_pod(&admitted, &world));
        // Change both stores only once the task has read the first values.
        while !out.path().join("started").exists() {
            assert!(
                !runner.is_finished(),
                "the pod ended before the task started"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the task never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let updated_at = now();
        let handle = tokio::runtime::Handle::current();
        std::thread::scope(|t| {
            t.spawn(|| {
                handle.block_on(async {
                    world
                        .put_k8s(
                            NAMESPACE,
                            &k8s_group,
                            &[("token", k8s_new.as_bytes())],
                            Default::default(),
                        )
                        .await
                        .unwrap();
                    aws_admin(&world.servers)
                        .put_secret_value()
                        .secret_id(&aws_id)
                        .secret_string(&aws_new)
                        .send()
                        .await
                        .unwrap();
                })
            });
        });
        (runner.join().unwrap().unwrap(), updated_at)
    });
    let text = output(&run);
    assert!(run.succeeded(), "{text}");
    let task = run.containers.iter().find(|c| !c.init).unwrap();
    let report: Value = serde_json::from_str(task.stdout.lines().last().unwrap()).unwrap();
    // Within one interval (+10% jitter) of the change, plus the kubelet sync and a margin.
    let bound = INTERVAL.as_secs_f64() * 1.1 + 3.0;
    for (path, at) in report["changed"].as_object().unwrap() {
        let after = at.as_f64().unwrap() - updated_at;
        assert!(
            after <= bound,
            "{path} changed {after:.1}s after the update (bound {bound}s)"
        );
        eprintln!("{path}: new value in the file {after:.1}s after the update");
    }
    assert_eq!(report["changed"].as_object().unwrap().len(), 2, "{report}");
    let versions = report["versions"].as_array().unwrap();
    assert!(
        versions[1].as_u64() > versions[0].as_u64(),
        "the version marker did not move: {report}"
    );
    assert_sidecar_stopped_promptly(&run);
    for secret in [&k8s_old, &k8s_new, &aws_old, &aws_new] {
        let sidecar = run.container(WATCH).unwrap();
        assert!(
            !sidecar.stdout.contains(secret.as_str()) && !sidecar.stderr.contains(secret.as_str()),
            "a value leaked into the sidecar's log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_pod_completes_promptly_when_its_task_exits() {
    let world = World::connect().await.unwrap();
    let u = unique();
    let group = format!("e2e-refresh-job-{u}");
    world
        .put_k8s(
            NAMESPACE,
            &group,
            &[("token", b"job-value")],
            Default::default(),
        )
        .await
        .unwrap();
    let e2e = TempDir::new("fsa-e2e-refresh-job");
    let task = TaskPod {
        namespace: NAMESPACE.into(),
        name: "refresh-job".into(),
        secrets: vec![SecretRequest::new(&group, "token")],
        python_path: site_packages(&world.servers.tools.python),
        ..TaskPod::default()
    };
    let command = [
        TASK_PYTHON,
        "-c",
        &format!(
            "import sys; v = open('/etc/flyte/secrets/{group}/token').read(); sys.exit(0 if v == 'job-value' else 1)"
        ),
    ]
    .map(String::from);
    let mut pod = task.build(&command, e2e.path());
    pod["metadata"]["annotations"][REFRESH_ANNOTATION] = json!("1h");
    let admitted = admit(&world, &pod).await;
    assert_eq!(inits(&admitted), ["flyte-secret-agent", WATCH]);
    let started = Instant::now();
    let run =
        std::thread::scope(|s| s.spawn(|| run_pod(&admitted, &world)).join().unwrap()).unwrap();
    let took = started.elapsed();
    assert!(run.succeeded(), "{}", output(&run));
    assert_sidecar_stopped_promptly(&run);
    // Nowhere near the interval (1h) or a grace period: the pod is done when its task is.
    assert!(took < Duration::from_secs(20), "the pod took {took:?}");
    eprintln!("job pod with a refresh sidecar completed in {took:?}");
}
