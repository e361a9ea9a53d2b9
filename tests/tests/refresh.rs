//! End to end, the refresh sidecar (issue 17): a Flyte task pod annotated
//! `flyte-secret-agent/refresh: "30s"` goes through the real webhook, and the pod runner runs
//! the agent init container, then `agent watch` as a native sidecar (gated by its
//! `agent ready` startupProbe), then the task. While the task runs, the test updates the
//! Kubernetes Secret (the runner republishes its `secret` volume as the kubelet does) and
//! rotates the AWS secret in moto; the task polls its files and must see both new values
//! within one interval (30s + 10% jitter, plus the runner's volume sync). A Job-style pod
//! whose task exits at once must complete promptly: the sidecar exits 0 on SIGTERM. A task
//! logging in to PostgreSQL every second for 30 s with Vault database credentials of a 5 s
//! TTL and 15 s max TTL never fails a login, and OpenBao issues one credential per max-TTL
//! period: the sidecar renews the lease `agent init` got, with its handed-over token.

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

/// The database task: logs in to PostgreSQL once a second for `seconds` with whatever
/// username and password are in the files at that moment (a real SCRAM-SHA-256 login, Python's
/// standard library only), and reports each attempt as one JSON line at the end.
const DB_TASK: &str = r#"
import base64, hashlib, hmac, json, os, socket, struct, sys, time
exp = json.load(open(sys.argv[1]))
root = "/etc/flyte/secrets"
def read(p):
    with open(os.path.join(root, p)) as f:
        return f.read()
def login(user, password):
    s = socket.create_connection((exp["host"], exp["port"]), timeout=5)
    def recvn(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c: raise EOFError("closed")
            b += c
        return b
    def send(t, payload):
        s.sendall(t + struct.pack("!I", len(payload) + 4) + payload)
    params = b"user\0" + user.encode() + b"\0database\0" + exp["database"].encode() + b"\0\0"
    s.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
    first_bare = None
    try:
        while True:
            h = recvn(5)
            t, body = h[:1], recvn(struct.unpack("!I", h[1:])[0] - 4)
            if t == b"E":
                fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
                return fields.get(b"M", b"?").decode()
            if t == b"Z":
                send(b"X", b"")
                return None
            if t != b"R":
                continue
            code = struct.unpack("!I", body[:4])[0]
            if code == 10:
                nonce = base64.b64encode(os.urandom(18)).decode()
                first_bare = "n=,r=" + nonce
                msg = ("n,," + first_bare).encode()
                send(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(msg)) + msg)
            elif code == 11:
                server_first = body[4:].decode()
                a = dict(kv.split("=", 1) for kv in server_first.split(","))
                salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(a["s"]), int(a["i"]))
                ck = hmac.new(salted, b"Client Key", "sha256").digest()
                final = "c=biws,r=" + a["r"]
                auth = ",".join([first_bare, server_first, final]).encode()
                sig = hmac.new(hashlib.sha256(ck).digest(), auth, "sha256").digest()
                proof = base64.b64encode(bytes(x ^ y for x, y in zip(ck, sig))).decode()
                send(b"p", (final + ",p=" + proof).encode())
            elif code not in (0, 12):
                return "unsupported authentication request %d" % code
    finally:
        s.close()
open("/out/started", "w").write(str(time.time()))
attempts = []
end = time.time() + exp["seconds"]
while time.time() < end:
    t = time.time()
    # Two files: read again when the set was swapped between them (as a careful app does).
    while True:
        user, password = read(exp["username"]), read(exp["password"])
        if read(exp["username"]) == user:
            break
    try:
        error = login(user, password)
    except Exception as e:
        error = "%s: %s" % (type(e).__name__, e)
    attempts.append({"t": t, "user": user, "error": error})
    time.sleep(max(0.0, t + 1.0 - time.time()))
print(json.dumps({"attempts": attempts}))
"#;

/// The Vault role with 5 s leases and a 15 s max TTL (scripts/servers.sh).
const SHORT_DB_ROLE: &str = "flyte-db-short";

/// The lease ids OpenBao holds now under the short role.
async fn live_leases(admin: &vaultrs::client::VaultClient) -> Vec<String> {
    let prefix = format!("leases/lookup/database/creds/{SHORT_DB_ROLE}/");
    match vaultrs::kv1::list(admin, "sys", &prefix).await {
        Ok(list) => list.data.keys,
        Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => Vec::new(),
        Err(e) => panic!("listing leases: {e}"),
    }
}

/// One set of database credentials per pod: the sidecar renews the lease `agent init` got
/// (5 s TTL) with its handed-over token until the 15 s max TTL, then swaps in new
/// credentials before the old end. The task logs in every second for 30 s with whatever is
/// in the files: no login fails, and OpenBao issued one credential per max-TTL period (not
/// one per 5 s lease), each used by the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_credentials_are_renewed_then_replaced_without_a_failed_login() {
    const SECONDS: f64 = 30.0;
    let world = World::connect().await.unwrap();
    let admin = flyte_secret_e2e::world::vault_admin(&world.servers);
    let before = live_leases(&admin).await;
    let creds = format!("database/creds/{SHORT_DB_ROLE}");
    let e2e = TempDir::new("fsa-e2e-refresh-db");
    let out = TempDir::new("fsa-e2e-refresh-db-out");
    std::fs::write(e2e.path().join("task.py"), DB_TASK).unwrap();
    let pg = &world.servers.postgres;
    let expect = json!({
        "seconds": SECONDS,
        "host": pg.host, "port": pg.port, "database": pg.database,
        "username": format!("{creds}/username"), "password": format!("{creds}/password"),
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
        name: "refresh-db-task".into(),
        secrets: vec![
            SecretRequest::new(&creds, "username").with_group_version("db"),
            SecretRequest::new(&creds, "password").with_group_version("db"),
        ],
        ..TaskPod::default()
    };
    let command = [TASK_PYTHON, "/e2e/task.py", "/e2e/expect.json"].map(String::from);
    let mut pod = task.build(&command, e2e.path());
    pod["metadata"]["annotations"][REFRESH_ANNOTATION] = json!("30s");
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
    // Only the two agent containers see the token handover.
    let handover = "flyte-secret-agent-handover";
    for c in admitted["spec"]["containers"].as_array().unwrap() {
        assert!(!c["volumeMounts"].to_string().contains(handover), "{c}");
    }

    // Every lease OpenBao issues under the role while the pod runs (polled: each lives 5 s
    // or more).
    let started = Instant::now();
    let handle = tokio::runtime::Handle::current();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (run, issued) = std::thread::scope(|s| {
        // Off the runtime's thread: this one is the test's.
        let poller = s.spawn(|| {
            let mut issued: Vec<String> = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                for lease in handle.block_on(live_leases(&admin)) {
                    if !before.contains(&lease) && !issued.contains(&lease) {
                        issued.push(lease);
                    }
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            issued
        });
        let runner = s.spawn(|| {
            let run = run_pod(&admitted, &world);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            run
        });
        (runner.join().unwrap().unwrap(), poller.join().unwrap())
    });
    let took = started.elapsed().as_secs_f64();
    let text = output(&run);
    assert!(run.succeeded(), "{text}");
    let task = run.containers.iter().find(|c| !c.init).unwrap();
    let report: Value = serde_json::from_str(task.stdout.lines().last().unwrap()).unwrap();
    let attempts = report["attempts"].as_array().unwrap();
    let failed: Vec<&Value> = attempts.iter().filter(|a| !a["error"].is_null()).collect();
    let mut users: Vec<(String, f64, f64)> = Vec::new();
    for a in attempts {
        let (user, t) = (a["user"].as_str().unwrap(), a["t"].as_f64().unwrap());
        match users.iter_mut().find(|(u, ..)| u == user) {
            Some(entry) => entry.2 = t,
            None => users.push((user.to_string(), t, t)),
        }
    }
    eprintln!(
        "db refresh: {} logins, {} failed, {} credentials used, {} issued in {took:.1}s; spans {:?}",
        attempts.len(),
        failed.len(),
        users.len(),
        issued.len(),
        users
            .iter()
            .map(|(_, a, b)| format!("{:.1}s", b - a))
            .collect::<Vec<_>>()
    );
    assert!(attempts.len() >= 28, "{report}");
    assert!(failed.is_empty(), "failed logins: {failed:?}\n{text}");
    // Renewed past the 5 s TTL up to the 15 s max TTL: the first credentials serve ~13 s.
    assert!(users.len() >= 2, "never replaced: {users:?}");
    let first_span = users[0].2 - users[0].1;
    assert!(
        first_span >= 8.0,
        "the first credentials served only {first_span:.1}s (not renewed?)"
    );
    // One credential per max-TTL period (the last replaced at ~13 s of 15), never one per
    // 5 s lease; every one issued was used except, at most, one issued as the task ended.
    let periods = (took / 12.0).floor() as usize + 1;
    assert!(
        issued.len() <= periods,
        "{} credentials issued in {took:.1}s (at most {periods})",
        issued.len()
    );
    assert!(
        issued.len() >= users.len() && issued.len() <= users.len() + 1,
        "issued {} credentials, the task used {}",
        issued.len(),
        users.len()
    );
    let sidecar = run.container(WATCH).unwrap();
    assert!(
        sidecar.stdout.contains("renewed a database lease")
            || sidecar.stderr.contains("renewed a database lease"),
        "no renewal logged:\n{text}"
    );
    assert_sidecar_stopped_promptly(&run);
}
