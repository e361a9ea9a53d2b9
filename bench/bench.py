#!/usr/bin/env python3
"""Glue for bench/run.sh: seeding, plans and configs, statistics, and BENCHMARKS.md.

Standard library only (runs with any python3). Subcommands:

  seed-vault ADDR TOKEN N              kv2 secrets secret/bench/s0000.. (field `value`)
  seed-aws ENDPOINT REGION N           Secrets Manager secrets flyte-bench:s00.. via the JSON API
  vault-files DIR ADDR TOKEN_FILE OUT_ROOT N...   agent plans + `bao agent` configs
  aws-files DIR ENDPOINT REGION OUT_ROOT N        agent plan + per-secret AWS CLI script
  broker-setup ROOT KUBE_STATE DIR BROKER_URL N PODS PER_POD   the broker section's world in the
                                        Kubernetes API stand-in: managed Secrets, pods, tokens,
                                        the broker's kubeconfig, plans
  burst OUT.json RUNS AGENT DIR BROKER_PID METRICS_URL OUT_ROOT PER_POD
                                        one `agent init` per pod token at once against the broker
  rss OUT.json RUNS PREPARE -- CMD...   peak RSS (KiB) of CMD over RUNS runs (GNU time)
  refresh-files DIR ADDR TOKEN_FILE OUT_ROOT N INTERVAL   the refresh section's `bao agent`
                                        template-mode config (no exit_after_auth)
  idle OUT.json NAME SECONDS READY -- CMD...   runs CMD (a long-lived refresher), waits for
                                        READY (a file), then samples /proc every 100 ms for
                                        SECONDS: RSS, CPU, context switches of every thread,
                                        and the agent's refresh ticks (its status file)
  count-calls RECORDING.jsonl           API calls in a moto recording, by X-Amz-Target
  wrk-result FILE                       the RESULT line of bench/post.lua as JSON
  criterion DIR                         criterion estimates under DIR as JSON
  report RESULTS_DIR OUT.md             renders BENCHMARKS.md (the sections meta.json lists)
"""

import base64
import hashlib
import json
import os
import statistics
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

VALUE_PAD = "x" * 32  # every value is 39 bytes: "v-0000-" + 32 x


def secret_name(i: int) -> str:
    return f"s{i:04d}"


def http(method, url, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as rsp:
        return rsp.read()


# --------------------------------------------------------------------------------------------
# seeding


def seed_vault(addr, token, n):
    for i in range(n):
        http(
            "POST",
            f"{addr}/v1/secret/data/bench/{secret_name(i)}",
            {"data": {"value": f"v-{i:04d}-{VALUE_PAD}"}},
            {"X-Vault-Token": token},
        )


def seed_aws(endpoint, region, n):
    # moto does not check signatures: the JSON protocol with a dummy Authorization is enough.
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "secretsmanager.CreateSecret",
        "Authorization": f"AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/secretsmanager/aws4_request, SignedHeaders=host, Signature=0",
    }
    for i in range(n):
        http(
            "POST",
            endpoint + "/",
            {"Name": f"flyte-bench:s{i:02d}", "SecretString": f"a-{i:02d}-{VALUE_PAD}"},
            headers,
        )


# --------------------------------------------------------------------------------------------
# plans and configs


def plan(backend, secrets):
    return {
        "version": 1,
        "mountPath": "/etc/flyte/secrets",
        "backends": [backend],
        "timeouts": {"requestSeconds": 10, "deadlineSeconds": 60},
        "secrets": secrets,
    }


def vault_files(out_dir, addr, token_file, out_root, counts):
    out_dir = Path(out_dir)
    backend = {"type": "vault", "address": addr, "auth": {"method": "token", "token_file": token_file}}
    for n in counts:
        secrets = []
        templates = []
        for i in range(n):
            group = f"secret/bench/{secret_name(i)}"
            secrets.append(
                {
                    "annotation": f"flyte.secrets/s{i}",
                    "request": {"group": group, "key": "value", "mountRequirement": "FILE"},
                    "files": [f"{group}/value"],
                }
            )
            # The Vault Agent layout vault-k8s users write: one template per secret, the
            # same kv2 read, the same file.
            templates.append(
                "template {\n"
                f'  contents    = "{{{{ with secret \\"secret/data/bench/{secret_name(i)}\\" }}}}{{{{ .Data.data.value }}}}{{{{ end }}}}"\n'
                f'  destination = "{out_root}/bao/{group}/value"\n'
                '  perms       = "0400"\n'
                "}\n"
            )
        (out_dir / f"plan-vault-{n}.json").write_text(json.dumps(plan(backend, secrets)))
        (out_dir / f"bao-agent-{n}.hcl").write_text(
            "# bao agent: auto-auth with a token file, render every template once, exit.\n"
            "exit_after_auth = true\n"
            'pid_file = ""\n'
            f'vault {{\n  address = "{addr}"\n}}\n'
            "auto_auth {\n"
            '  method "token_file" {\n'
            f'    config = {{\n      token_file_path = "{token_file}"\n    }}\n'
            "  }\n"
            "}\n"
            "template_config {\n  exit_on_retry_failure = true\n}\n" + "".join(templates)
        )


def aws_files(out_dir, endpoint, region, out_root, n):
    out_dir = Path(out_dir)
    backend = {"type": "aws", "region": region, "endpoint": endpoint}
    secrets = []
    lines = [
        "#!/bin/sh",
        "# One AWS CLI call per secret, one after another: what one init container per secret",
        "# (Flyte's AWS secret injector) amounts to. Values go to files like the agent's.",
        "set -e",
    ]
    for i in range(n):
        key = f"s{i:02d}"
        secrets.append(
            {
                "annotation": f"flyte.secrets/s{i}",
                "request": {"group": "flyte-bench", "key": key, "mountRequirement": "FILE"},
                "files": [f"flyte-bench/{key}"],
            }
        )
        lines.append(
            f'"$AWS_CLI" --endpoint-url {endpoint} --region {region} secretsmanager get-secret-value '
            f"--secret-id flyte-bench:{key} --query SecretString --output text "
            f'> "{out_root}/awscli/flyte-bench/{key}"'
        )
    (out_dir / f"plan-aws-{n}.json").write_text(json.dumps(plan(backend, secrets)))
    script = out_dir / f"awscli-{n}.sh"
    script.write_text("\n".join(lines) + "\n")
    script.chmod(0o755)


# --------------------------------------------------------------------------------------------
# the secret broker (issue 15): its world in the Kubernetes API stand-in

# The task namespace, named as the broker's default template `{{project}}-{{domain}}` wants, so
# the broker derives the scope project `bench`, domain `development` from it.
BROKER_PROJECT = "bench"
BROKER_DOMAIN = "development"
TASK_NAMESPACE = f"{BROKER_PROJECT}-{BROKER_DOMAIN}"
TASK_SERVICE_ACCOUNT = "default"
MANAGED_NAMESPACE = "flyte"
# As deploy/base installs the broker (and tests/src/broker.rs runs it).
BROKER_SA_NAMESPACE = "flyte-secret-agent"
BROKER_SA = "flyte-secret-broker"
BROKER_AUDIENCE = "flyte-secret-broker"  # flyte_secret_spec::broker::DEFAULT_AUDIENCE
TOKEN_TTL = 4 * 3600  # outlives the run; the broker reviews the token on every request anyway
FLYTE_B32 = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "abcdefghijklmnopqrstuvwxyz123456")


def managed_key(i):
    return f"s{i:02d}"


def managed_value(i):
    return f"m-{i:02d}-{VALUE_PAD}"  # 37 bytes


def flyte_annotation(key):
    """propeller's `marshalSecret` of a group-less FILE request: Flyte base32 (RFC 4648
    packing over spec/src/base32.rs's alphabet, no padding) of the protobuf text format
    (spec/src/textproto/encode.rs), checked against spec/vectors below."""
    text = f'key: "{key}"\nmount_requirement: FILE\n'
    return base64.b32encode(text.encode()).decode().rstrip("=").translate(FLYTE_B32)


def check_annotation_encoding(root):
    # The same encoder over the shared vectors' texts: a wrong encoding would make the broker
    # refuse every pod, but fail here first with a clearer message.
    vectors = json.loads((Path(root) / "spec/vectors/flyte-vectors.json").read_text())["vectors"]
    for v in vectors:
        got = base64.b32encode(v["text"].encode()).decode().rstrip("=").translate(FLYTE_B32)
        if got != v["annotation"]:
            sys.exit(f"broker-setup: Flyte base32 disagrees with spec/vectors for {v['text']!r}")


def managed_secret_name(key):
    """Flyte 2's `EncodeSecretName` (project+domain scope) and its Kubernetes name (md5 hex)."""
    encoded = f"u__org__flyte__domain__{BROKER_DOMAIN}__project__{BROKER_PROJECT}__key__{key}"
    return encoded, hashlib.md5(encoded.encode()).hexdigest()


class Kube:
    """The stand-in's API as its admin (the state directory `kube-standin serve` wrote)."""

    def __init__(self, state_dir):
        d = Path(state_dir)
        self.url = (d / "ready").read_text().strip()
        self.ca_file = str(d / "ca.crt")
        self.token = (d / "admin.token").read_text().strip()
        self.tls = ssl.create_default_context(cafile=self.ca_file)

    def call(self, method, path, body=None):
        req = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.tls) as rsp:
                return json.loads(rsp.read())
        except urllib.error.HTTPError as e:
            sys.exit(f"{method} {path}: {e.code} {e.read()[:400]!r}")

    def token_for(self, namespace, service_account, audiences, pod=None):
        spec = {"audiences": audiences, "expirationSeconds": TOKEN_TTL}
        if pod:
            spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod[0], "uid": pod[1]}
        answer = self.call(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )
        return answer["status"]["token"]

    def create_pod(self, name, keys):
        """A pending task pod declaring `keys` as propeller writes them; returns its uid."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": TASK_NAMESPACE,
                # Flyte's labels, agreeing with the namespace (the broker checks they do).
                "labels": {"project": BROKER_PROJECT, "domain": BROKER_DOMAIN, "inject-flyte-secrets": "true"},
                "annotations": {f"flyte.secrets/s{i}": flyte_annotation(k) for i, k in enumerate(keys)},
            },
            "spec": {
                "serviceAccountName": TASK_SERVICE_ACCOUNT,
                "containers": [{"name": "task", "image": "bench"}],
            },
        }
        return self.call("POST", f"/api/v1/namespaces/{TASK_NAMESPACE}/pods", pod)["metadata"]["uid"]


def broker_plan(backend, keys):
    p = plan(backend, [
        {"annotation": f"flyte.secrets/s{i}", "request": {"key": k, "mountRequirement": "FILE"}, "files": [k]}
        for i, k in enumerate(keys)
    ])
    p["scope"] = {"org": "flyte", "domain": BROKER_DOMAIN, "project": BROKER_PROJECT}
    return p


def broker_setup(root, state_dir, out_dir, broker_url, n, pods, per_pod):
    """Seeds the stand-in and writes what the broker section runs:

    - `n` managed Secrets in `flyte`, exactly as Flyte 2 writes them;
    - `broker-kubeconfig`: a token of ServiceAccount flyte-secret-agent/flyte-secret-broker
      (RBAC from deploy/ only: get Secrets in `flyte`, get pods, create tokenreviews);
    - pod `bench-<n>` declaring the `n` secrets, and its pod-bound broker token `token-<n>`;
    - `pods` pods `burst-NNN` declaring the first `per_pod`, tokens `burst/token-NNN`;
    - plans: `plan-direct-<n>.json` (kubernetes backend, read through the API: the path the
      broker replaces), `plan-broker-<n>.json` and `plan-burst.json` (kubernetes backend with
      `broker.url`);
    - `expected-<n>.json`: key → value, to check what the agents wrote.
    """
    check_annotation_encoding(root)
    out = Path(out_dir)
    kube = Kube(state_dir)
    keys = [managed_key(i) for i in range(n)]
    for i, key in enumerate(keys):
        encoded, name = managed_secret_name(key)
        kube.call("POST", f"/api/v1/namespaces/{MANAGED_NAMESPACE}/secrets", {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": {
                "app.flyte.org/managed": "true",
                "app.flyte.org/domain": BROKER_DOMAIN,
                "app.flyte.org/project": BROKER_PROJECT,
            }},
            "data": {encoded: base64.b64encode(managed_value(i).encode()).decode()},
        })
    # The broker's (and the direct path's) credentials: a token with the API's audience.
    sa_token = kube.token_for(BROKER_SA_NAMESPACE, BROKER_SA, [])
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "standin", "cluster": {"server": kube.url, "certificate-authority": kube.ca_file}}],
        "users": [{"name": BROKER_SA, "user": {"token": sa_token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "standin", "user": BROKER_SA, "namespace": BROKER_SA_NAMESPACE}}],
        "current-context": "sa",
    }
    (out / "broker-kubeconfig").write_text(json.dumps(kubeconfig))
    (out / "broker-kubeconfig").chmod(0o600)

    def pod_token(name, pod_keys, path):
        uid = kube.create_pod(name, pod_keys)
        path.write_text(kube.token_for(TASK_NAMESPACE, TASK_SERVICE_ACCOUNT, [BROKER_AUDIENCE], (name, uid)))
        path.chmod(0o600)

    pod_token(f"bench-{n}", keys, out / f"token-{n}")
    (out / "burst").mkdir(exist_ok=True)
    for j in range(pods):
        pod_token(f"burst-{j:03d}", keys[:per_pod], out / "burst" / f"token-{j:03d}")
    direct = {"type": "kubernetes", "managedNamespace": MANAGED_NAMESPACE}
    brokered = {"type": "kubernetes", "broker": {"url": broker_url, "audience": BROKER_AUDIENCE}}
    (out / f"plan-direct-{n}.json").write_text(json.dumps(broker_plan(direct, keys)))
    (out / f"plan-broker-{n}.json").write_text(json.dumps(broker_plan(brokered, keys)))
    (out / "plan-burst.json").write_text(json.dumps(broker_plan(brokered, keys[:per_pod])))
    (out / f"expected-{n}.json").write_text(json.dumps({k: managed_value(i) for i, k in enumerate(keys)}))


def refresh_files(out_dir, addr, token_file, out_root, n, interval):
    """`bao agent` kept running in template mode on the same N kv2 secrets the agent watches,
    re-rendering static secrets every INTERVAL (as `agent watch --interval INTERVAL`)."""
    templates = []
    for i in range(n):
        group = f"secret/bench/{secret_name(i)}"
        templates.append(
            "template {\n"
            f'  contents    = "{{{{ with secret \\"secret/data/bench/{secret_name(i)}\\" }}}}{{{{ .Data.data.value }}}}{{{{ end }}}}"\n'
            f'  destination = "{out_root}/refresh-bao/{group}/value"\n'
            '  perms       = "0400"\n'
            "}\n"
        )
    (Path(out_dir) / f"bao-agent-refresh-{n}.hcl").write_text(
        "# bao agent as a refresh sidecar: auto-auth with a token file, templates re-rendered\n"
        "# every interval, running until stopped (no exit_after_auth).\n"
        'pid_file = ""\n'
        f'vault {{\n  address = "{addr}"\n}}\n'
        "auto_auth {\n"
        '  method "token_file" {\n'
        f'    config = {{\n      token_file_path = "{token_file}"\n    }}\n'
        "  }\n"
        "}\n"
        f'template_config {{\n  static_secret_render_interval = "{interval}"\n}}\n'
        + "".join(templates)
    )


def proc_threads_switches(pid):
    """(voluntary, nonvoluntary) context switches summed over every thread of PID."""
    vol = non = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tasks:
        try:
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    non += int(line.split()[1])
        except OSError:
            continue  # a thread that just ended
    return vol, non


def proc_cpu_s(pid):
    """user + system CPU seconds of PID (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle(out, name, seconds, ready, cmd):
    """Starts CMD, waits until READY exists, lets it settle 2 s, then samples every 100 ms for
    SECONDS. A tick of the agent is a change of its status file (written every round); a sample
    interval whose switch count rose and that is not within 1.5 s of a tick is a wake-up
    between ticks (a round of 20 reads, and the whole-second stamp, take that margin). Reading
    /proc does not wake the process."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(out + ".log", "w"))
    status = None
    try:
        deadline = time.time() + 60
        while not Path(ready).exists():
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"idle {name}: not ready (exit {proc.poll()}); see {out}.log")
            time.sleep(0.1)
        time.sleep(2)
        status_file = Path(ready) if name == "agent" else None
        cpu0, sw0 = proc_cpu_s(proc.pid), proc_threads_switches(proc.pid)
        samples = []
        start = time.monotonic()
        def last_success():
            # A round stamps `last_success` (whole seconds); a read racing the rewrite is
            # skipped, not taken for a tick.
            try:
                return json.loads(status_file.read_bytes()).get("last_success")
            except (OSError, ValueError):
                return None

        last_status = last_success() if status_file else None
        while time.monotonic() - start < seconds:
            time.sleep(0.1)
            sw = proc_threads_switches(proc.pid)
            tick = False
            if status_file:
                now = last_success()
                if now is not None:
                    tick, last_status = now != last_status, now
            samples.append({"t": time.monotonic() - start, "switches": sum(sw), "tick": tick})
        cpu1, sw1 = proc_cpu_s(proc.pid), proc_threads_switches(proc.pid)
        rss = proc_kib(proc.pid, "VmRSS")
        threads = len(os.listdir(f"/proc/{proc.pid}/task"))
        status = proc.poll()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if status is not None:
        sys.exit(f"idle {name}: exited {status} while measured; see {out}.log")
    ticks = [s["t"] for s in samples if s["tick"]]
    active, prev = [], sw0[0] + sw0[1]
    for s in samples:
        if s["switches"] > prev:
            active.append(s["t"])
        prev = s["switches"]
    between = [t for t in active if not any(abs(t - k) <= 1.5 for k in ticks)]
    json.dump(
        {
            "name": name,
            "seconds": seconds,
            "rss_kib": rss,
            "cpu_s": cpu1 - cpu0,
            "threads": threads,
            "voluntary": sw1[0] - sw0[0],
            "nonvoluntary": sw1[1] - sw0[1],
            "ticks": len(ticks) if status_file else None,
            "active_intervals": len(active),
            "wakeups_between_ticks": len(between) if status_file else None,
            # Seconds into the window, to see what woke it.
            "ticks_at": [round(t, 1) for t in ticks],
            "between_at": [round(t, 1) for t in between],
            "command": cmd,
        },
        open(out, "w"),
    )


def proc_kib(pid, field):
    """A `VmRSS`/`VmHWM`-style line of /proc/PID/status, in KiB (None once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def broker_metrics(url):
    """(sum of seconds, count) of the broker's request-duration histogram."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    values = {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
              if l.startswith("flyte_secret_broker_request_duration_seconds_s")
              or l.startswith("flyte_secret_broker_request_duration_seconds_c")}
    return (values.get("flyte_secret_broker_request_duration_seconds_sum", 0.0),
            values.get("flyte_secret_broker_request_duration_seconds_count", 0.0))


def burst_once(agent, work, broker_pid, metrics_url, out_root, per_pod):
    """Starts one agent per token in `work/burst` at once (each `agent init`, as a pod's init
    container, with its own token); returns the run's figures. The broker's RSS is sampled
    every 2 ms from /proc while the agents run."""
    work = Path(work)
    tokens = sorted((work / "burst").glob("token-*"))
    subprocess.run(["rm", "-rf", out_root], check=True)
    for j in range(len(tokens)):  # each pod's emptyDir exists before its init container starts
        Path(f"{out_root}/{j:03d}").mkdir(parents=True)
    logs = work / "burst-logs"
    logs.mkdir(exist_ok=True)
    before = broker_metrics(metrics_url)
    peak = [proc_kib(broker_pid, "VmRSS") or 0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            v = proc_kib(broker_pid, "VmRSS")
            if v:
                peak[0] = max(peak[0], v)
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started, procs = {}, {}
    t0 = time.perf_counter()
    for j, token in enumerate(tokens):
        env = dict(os.environ, FLYTE_SECRET_BROKER_TOKEN_FILE=str(token))
        log = open(logs / f"{j:03d}.log", "wb")
        p = subprocess.Popen(
            [agent, "init", "--plan-file", str(work / "plan-burst.json"), "--root", f"{out_root}/{j:03d}",
             "--termination-log", str(logs / f"{j:03d}.termination")],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        started[p.pid] = time.perf_counter()
        procs[p.pid] = (j, p)
    ended, failed = {}, []
    while len(ended) < len(procs):
        pid, status = os.wait()
        if pid not in procs:
            continue
        ended[pid] = time.perf_counter()
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(procs[pid][0])
    done.set()
    sampler.join()
    after = broker_metrics(metrics_url)
    if failed:
        sys.exit(f"burst: agents {failed} failed (logs in {logs})")
    for j in range(len(tokens)):
        got = sum(1 for f in Path(f"{out_root}/{j:03d}").rglob("*") if f.is_file() and not f.is_symlink())
        if got < per_pod:
            sys.exit(f"burst: agent {j} wrote {got} files, expected {per_pod}")
    requests = after[1] - before[1]
    return {
        "pods": len(tokens),
        "wall_s": max(ended.values()) - t0,
        "latencies_s": [ended[pid] - started[pid] for pid in procs],
        "broker_peak_rss_kib": peak[0],
        "broker_requests": requests,
        "broker_mean_s": (after[0] - before[0]) / requests if requests else None,
    }


def burst(out, runs, agent, work, broker_pid, metrics_url, out_root, per_pod):
    idle = proc_kib(broker_pid, "VmRSS")
    burst_once(agent, work, broker_pid, metrics_url, out_root, per_pod)  # warm-up, not recorded
    results = [burst_once(agent, work, broker_pid, metrics_url, out_root, per_pod) for _ in range(runs)]
    Path(out).write_text(json.dumps({
        "per_pod": per_pod,
        "broker_idle_rss_kib": idle,
        "broker_hwm_kib": proc_kib(broker_pid, "VmHWM"),
        "runs": results,
    }))


# --------------------------------------------------------------------------------------------
# measurements


def rss(out, runs, prepare, cmd):
    """Peak RSS (KiB, GNU time's %M) of `cmd` over `runs` runs, `prepare` before each."""
    values = []
    for _ in range(runs):
        if prepare:
            subprocess.run(prepare, shell=True, check=True)
        p = subprocess.run(
            ["/usr/bin/time", "-f", "RSS_KB=%M", *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if p.returncode != 0:
            sys.exit(f"rss: {cmd} exited {p.returncode}:\n{p.stderr[-2000:]}")
        line = [l for l in p.stderr.splitlines() if l.startswith("RSS_KB=")][-1]
        values.append(int(line.split("=")[1]))
    Path(out).write_text(json.dumps({"command": cmd, "rss_kib": values}))


def count_calls(path):
    calls = {}
    text = Path(path).read_text() if Path(path).exists() else ""
    for line in text.splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        target = entry["headers"].get("X-Amz-Target") or f"{entry['method']} {entry['url']}"
        calls[target] = calls.get(target, 0) + 1
    return {"total": sum(calls.values()), "by_target": calls}


def wrk_result(path):
    for line in Path(path).read_text().splitlines():
        if line.startswith("RESULT "):
            return {k: float(v) for k, v in (f.split("=") for f in line.split()[1:])}
    sys.exit(f"no RESULT line in {path}")


def criterion(root):
    out = {}
    for est in sorted(Path(root).glob("**/new/estimates.json")):
        name = str(est.parent.parent.relative_to(root))
        info = est.parent / "benchmark.json"
        if info.exists():
            name = json.loads(info.read_text()).get("full_id", name)
        e = json.loads(est.read_text())
        m = e["median"]
        out[name] = {
            "median_ns": m["point_estimate"],
            "ci_low_ns": m["confidence_interval"]["lower_bound"],
            "ci_high_ns": m["confidence_interval"]["upper_bound"],
        }
    return out


# --------------------------------------------------------------------------------------------
# statistics and formatting


def quantile(xs, q):
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(xs):
    return {
        "n": len(xs),
        "median": statistics.median(xs),
        "p25": quantile(xs, 0.25),
        "p75": quantile(xs, 0.75),
        "min": min(xs),
        "max": max(xs),
    }


def ms(s):
    """A duration in seconds as milliseconds with sensible precision."""
    v = s * 1000
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def fmt_time(st):
    return (
        f"**{ms(st['median'])} ms** ({ms(st['p25'])}–{ms(st['p75'])}; "
        f"min–max {ms(st['min'])}–{ms(st['max'])}; n={st['n']})"
    )


def mib(kib):
    return f"{kib / 1024:.1f}"


def fmt_rss(st):
    return f"**{mib(st['median'])} MiB** ({mib(st['min'])}–{mib(st['max'])}; n={st['n']})"


def hyperfine_times(path):
    """name → list of wall times (s) from a hyperfine --export-json file."""
    doc = json.loads(Path(path).read_text())
    return {r["command"]: r["times"] for r in doc["results"]}


def hyperfine_cpu(path):
    """name → mean CPU time (user + system, s) per run from a hyperfine --export-json file."""
    doc = json.loads(Path(path).read_text())
    return {r["command"]: r["user"] + r["system"] for r in doc["results"]}


def load_rss(path):
    return summary(json.loads(Path(path).read_text())["rss_kib"])


def ratio(a, b, digits=1):
    return f"{a / b:.{digits}f}×"


def goal(ok):
    return "met" if ok else "**missed**"


# --------------------------------------------------------------------------------------------
# the report (one function per section; `meta.json` lists the sections a run measured)

def report_vault(R, meta, w, goals):
    """1. Vault."""
    w("## 1. Vault: `agent` vs `bao agent`")
    w("")
    w(
        "Both read the same kv2 secrets (`secret/data/bench/sNNNN`, field `value`, 39 bytes) from "
        "the same OpenBao with a token from a file, write one file per secret (mode 0400) under "
        "the same tree, and exit. `bao agent`: `auto_auth` method `token_file`, one `template` "
        "stanza per secret, `exit_after_auth = true`. `agent`: `agent init --plan-file` with a "
        "Vault backend (`auth.method = token`)."
    )
    w("")
    w(
        "| secrets | agent wall | bao agent wall | agent faster by | CPU (user+sys, mean): agent / bao agent | "
        "agent peak RSS | bao agent peak RSS | agent RSS / bao |"
    )
    w("|---:|---|---|---:|---|---|---|---:|")
    vault = json.loads((R / "vault.json").read_text())
    for row in vault:
        n = row["n"]
        times = hyperfine_times(R / f"vault-{n}.hyperfine.json")
        at = summary(times["agent"])
        bt = summary(times["bao-agent"])
        ar = load_rss(R / f"vault-{n}-agent.rss.json")
        br = load_rss(R / f"vault-{n}-bao.rss.json")
        cpu = hyperfine_cpu(R / f"vault-{n}.hyperfine.json")
        w(
            f"| {n} | {fmt_time(at)} | {fmt_time(bt)} | **{ratio(bt['median'], at['median'])}** | "
            f"{ms(cpu['agent'])} / {ms(cpu['bao-agent'])} ms ({ratio(cpu['bao-agent'], cpu['agent'])} less) | "
            f"{fmt_rss(ar)} | {fmt_rss(br)} | **{ratio(ar['median'], br['median'], 2)}** |"
        )
        if n == 20:
            speed = bt["median"] / at["median"]
            mem = ar["median"] / br["median"]
            goals.append(
                (
                    "Agent ≥ 10× faster than `bao agent` on 20 secrets",
                    f"{speed:.1f}×",
                    goal(speed >= 10),
                )
            )
            goals.append(
                (
                    "Agent peak RSS ≤ 1/4 of `bao agent`'s on 20 secrets",
                    f"{mem:.2f} (1/{1 / mem:.0f})",
                    goal(mem <= 0.25),
                )
            )
    w("")
    w(
        "The CPU column is the processes' own CPU time (hyperfine's user + system means; OpenBao's "
        "work is not in it): it depends far less on the machine's load than the wall time does."
    )
    w("")
    w("Commands (N = 1, 20, 100):")
    w("")
    w("```")
    for c in meta["commands"]["vault"]:
        w(c)
    w("```")
    w("")


def report_aws(R, meta, w, goals):
    """2. AWS."""
    aws = json.loads((R / "aws.json").read_text())
    n = aws["n"]
    ta = summary(hyperfine_times(R / "aws-agent.hyperfine.json")["agent"])
    tc = summary(hyperfine_times(R / "aws-cli.hyperfine.json")["aws-cli"])
    w(f"## 2. AWS Secrets Manager: `agent` vs the AWS CLI, {n} secrets")
    w("")
    w(
        f"The same {n} secrets (`flyte-bench:s00`… in moto). The agent resolves them in one "
        "`BatchGetSecretValue`; the per-secret fetcher is the AWS CLI (PyPI `awscli`) run once "
        "per secret, one after another, as one init container per secret does. API calls are "
        "counted from moto's request recorder (`/moto-api/recorder/`), one recording per tool."
    )
    w("")
    w("| tool | wall time | API calls (from moto's log) |")
    w("|---|---|---|")
    ac, cc = aws["calls"]["agent"], aws["calls"]["aws-cli"]
    by = lambda c: ", ".join(f"{v}× `{k}`" for k, v in sorted(c["by_target"].items()))
    w(f"| agent | {fmt_time(ta)} | **{ac['total']}** ({by(ac)}) |")
    w(f"| AWS CLI, one call per secret | {fmt_time(tc)} | **{cc['total']}** ({by(cc)}) |")
    w(
        f"| **ratio** | agent faster by **{ratio(tc['median'], ta['median'])}** | "
        f"**{cc['total'] / max(ac['total'], 1):.0f}×** fewer calls |"
    )
    w("")
    expected = -(-n // 20)
    goals.append(
        (
            f"AWS values in ⌈N/20⌉ calls (N = {n}: {expected})",
            f"{ac['total']} call(s)",
            goal(ac["total"] <= expected),
        )
    )
    w("```")
    for c in meta["commands"]["aws"]:
        w(c)
    w("```")
    w("")


def report_scale(R, meta, w, goals):
    """3. Scale."""
    w("## 3. Scale: the agent from 1 to 1000 kv2 secrets")
    w("")
    w("| secrets | wall time | per secret | peak RSS |")
    w("|---:|---|---:|---|")
    scale = json.loads((R / "scale.json").read_text())
    times = hyperfine_times(R / "scale.hyperfine.json")
    meds = {}
    for n in scale["counts"]:
        st = summary(times[f"agent-{n}"])
        meds[n] = st["median"]
        r = load_rss(R / f"scale-{n}.rss.json")
        w(f"| {n} | {fmt_time(st)} | {st['median'] / n * 1000:.2f} ms | {fmt_rss(r)} |")
    w("")
    counts = scale["counts"]
    steps = []
    linear = True
    for a, b in zip(counts, counts[1:]):
        g = meds[b] / meds[a]
        marginal = (meds[b] - meds[a]) / (b - a) * 1000
        steps.append(f"{a}→{b}: {g:.1f}× the time for {b // a}× the secrets ({marginal:.2f} ms per added secret)")
        linear = linear and g <= (b / a) * 1.1
    w("Growth: " + "; ".join(steps) + ".")
    w("")
    if "disk" in scale:
        d = summary(hyperfine_times(R / "scale-disk.hyperfine.json")[f"agent-{counts[-1]}-disk"])
        w(
            f"For reference, {counts[-1]} secrets with the output root on the disk ({scale['disk']}) "
            f"instead of tmpfs: {fmt_time(d)}. The difference is the writer's fsyncs (every file "
            "and directory is fsynced before the `..data` swap); on a pod's in-memory `emptyDir` "
            "an fsync is free."
        )
        w("")
    top = counts[-1]
    goals.append(
        (
            "Scale: growth no worse than linear (each step ≤ 1.1× the step in secrets)",
            f"{counts[0]}→{top}: {meds[top] / meds[counts[0]]:.0f}× the time for {top // counts[0]}× the secrets",
            goal(linear),
        )
    )
    goals.append((f"{top} kv2 secrets in under 1 s", f"{ms(meds[top])} ms", goal(meds[top] < 1.0)))
    w("```")
    for c in meta["commands"]["scale"]:
        w(c)
    w("```")
    w("")


def report_webhook(R, meta, w, goals):
    """4. Webhook."""
    wh = json.loads((R / "webhook.json").read_text())
    w("## 4. Webhook: admission of a Flyte pod with 5 secrets over TLS")
    w("")
    servers = wh.get("servers", ["webhook", "tls-echo"])
    w(
        f"`webhook serve` (the static musl release build the image ships, default settings, log level info to a file) and "
        "`tls-echo` (bench/tls-echo: the same tokio + tokio-rustls (ring) + hyper 1 stack, "
        "same certificate, answering every POST with the webhook's own response bytes, "
        f"{wh['response_bytes']} bytes, after reading the {wh['request_bytes']}-byte body) on "
        f"the same machine as the load generator ({wh['generator']}). HTTP/1.1 keep-alive, TLS 1.3, "
        "ECDSA P-256. The servers and the generator share the machine's cores."
    )
    w("")
    labels = {
        "webhook": "webhook",
        "webhook-nocache": "webhook, plan cache off",
        "baseline": "baseline",
        "tls-echo": "tls-echo",
        "tls-echo-pgo": "tls-echo, PGO",
    }
    w(
        "Every request is the same pod, as the pods of one map task or the runs of one workflow "
        "are: **webhook** (defaults) derives the plan on the first and takes it from its plan "
        "cache after; **webhook, plan cache off** is the same binary with `--plan-cache-entries 0`, "
        "deriving every plan as for a secret set it has not seen (the cold path)."
        + (
            f" **baseline** is the build given in `BENCH_WEBHOOK_BASELINE` ({wh['baseline']}), "
            "same defaults, measured in the same run, alternating with the others."
            if wh.get("baseline")
            else ""
        )
        + (
            " **tls-echo, PGO** is the same ceiling built profile-guided as the webhook is "
            "(images/pgo.sh, its own training on images/pgo/): the webhook's PGO also speeds up "
            "the stack the two share, and this row shows how much."
            if "tls-echo-pgo" in servers
            else ""
        )
        + " Every server's answer was checked to be byte for byte the webhook's before timing."
    )
    w("")
    w(f"**Fixed rate {wh['rate']} req/s** ({wh['rate_method']}):")
    w("")
    # CPU per request (the server's own user + system time / requests), when the run has it.
    cpu = wh.get("cpu_us")
    cpu_cell = lambda mode, name: (
        f" {statistics.median(cpu[mode][name]):.1f} µs |" if cpu and cpu[mode].get(name) else " – |"
    )
    w("| server | achieved req/s | p50 latency | p99 latency | max | CPU per request |")
    w("|---|---|---|---|---|---|")
    for name in servers:
        runs = wh["fixed"][name]
        p50 = summary([r["p50_us"] for r in runs])
        p99 = summary([r["p99_us"] for r in runs])
        mx = summary([r["max_us"] for r in runs])
        rps = summary([r["rps"] for r in runs])
        us = lambda s: f"**{s['median']:.0f} µs** ({s['min']:.0f}–{s['max']:.0f})"
        w(
            f"| {labels.get(name, name)} | {rps['median']:.0f} ({rps['min']:.0f}–{rps['max']:.0f}) | {us(p50)} | "
            f"{us(p99)} | {mx['median']:.0f} µs |" + cpu_cell("fixed", name)
        )
    w("")
    w(f"Medians over {len(wh['fixed']['webhook'])} runs of {wh['fixed_seconds']} s each, min–max in brackets.")
    w("")
    w(f"**Maximum throughput** ({wh['max_method']}):")
    w("")
    w("| server | req/s | p50 latency | p99 latency | CPU per request |")
    w("|---|---|---|---|---|")
    thr = {}
    for name in servers:
        runs = wh["max"][name]
        rps = summary([r["rps"] for r in runs])
        p50 = summary([r["p50_us"] for r in runs])
        p99 = summary([r["p99_us"] for r in runs])
        thr[name] = rps["median"]
        w(
            f"| {labels.get(name, name)} | **{rps['median']:.0f}** ({rps['min']:.0f}–{rps['max']:.0f}, n={rps['n']}) | "
            f"{p50['median']:.0f} µs | {p99['median']:.0f} µs |" + cpu_cell("max", name)
        )
    share = thr["webhook"] / thr["tls-echo"]
    w(f"| **webhook / ceiling** | **{share:.2f}×** | | | |")
    for name in servers:
        if name not in ("webhook", "tls-echo"):
            w(f"| {labels.get(name, name)} / ceiling | {thr[name] / thr['tls-echo']:.2f}× | | | |")
    if "baseline" in thr:
        cpu_ratio = ""
        if cpu and cpu["max"].get("baseline") and cpu["max"].get("webhook"):
            ratio = statistics.median(cpu["max"]["webhook"]) / statistics.median(cpu["max"]["baseline"])
            cpu_ratio = f" **{ratio:.2f}×** CPU per request"
        w(f"| **webhook / baseline** | **{thr['webhook'] / thr['baseline']:.2f}×** | | |{cpu_ratio} |")
    w("")
    if cpu:
        w(
            "CPU per request: the server's own user + system time over each run "
            "(`/proc/PID/stat`), divided by the requests it answered; median over the runs."
        )
        w("")
    if "server_mean_us" in wh:
        w(
            f"Inside the webhook (its own `/metrics`, all runs): **{wh['server_mean_us']:.0f} µs** "
            "mean per admission from the request's arrival to the answer (body read, parse, "
            "mutate, serialize), under this load on the shared cores."
        )
        w("")
    p99 = lambda name: statistics.median([r["p99_us"] for r in wh["fixed"][name]])
    p99w, p99e = p99("webhook"), p99("tls-echo")
    goals.append((f"Webhook p99 < 1 ms at {wh['rate']} req/s", f"{p99w:.0f} µs", goal(p99w < 1000)))
    goals.append((
        "Webhook p99 < 1.5× the bare-TLS server's p99 (issue 21)",
        f"{p99w / p99e:.2f}× ({p99w:.0f} / {p99e:.0f} µs)",
        goal(p99w < 1.5 * p99e),
    ))
    if "tls-echo-pgo" in wh["fixed"]:
        p99p = p99("tls-echo-pgo")
        goals.append((
            "… against the ceiling built profile-guided too",
            f"{p99w / p99p:.2f}× ({p99w:.0f} / {p99p:.0f} µs)",
            goal(p99w < 1.5 * p99p),
        ))
    goals.append(("Webhook throughput ≥ 0.35× the bare-TLS ceiling (issue 21)", f"{share:.2f}×", goal(share >= 0.35)))
    if cpu and cpu["max"].get("baseline") and cpu["max"].get("webhook"):
        mine, base = statistics.median(cpu["max"]["webhook"]), statistics.median(cpu["max"]["baseline"])
        goals.append((
            "Webhook CPU per admission ≤ half the baseline build's (issue 21: half its start's)",
            f"{mine / base:.2f}× ({mine:.1f} / {base:.1f} µs)",
            goal(mine <= 0.5 * base),
        ))
    if "webhook-nocache" in thr:
        cold = thr["webhook-nocache"] / thr["tls-echo"]
        goals.append((
            "… with the plan cache off (every secret set new)",
            f"p99 {p99('webhook-nocache'):.0f} µs; {cold:.2f}× the ceiling",
            goal(p99("webhook-nocache") < 1000 and cold >= 0.35),
        ))
    w("```")
    for c in meta["commands"]["webhook"]:
        w(c)
    w("```")
    w("")


def report_sizes(R, meta, w, goals):
    """5. Sizes."""
    w("## 5. Binary sizes (release builds)")
    w("")
    w("| binary | bytes | MiB | build |")
    w("|---|---:|---:|---|")
    for b in json.loads((R / "sizes.json").read_text()):
        w(f"| `{b['path']}` | {b['bytes']} | {b['bytes'] / 1048576:.2f} | {b['note']} |")
    w("")
    w(
        "For comparison, the `bao` binary that runs `bao agent` ("
        f"{meta['versions'].get('bao', '?')}): {meta['bao_bytes'] / 1048576:.1f} MiB."
    )
    w("")


def report_criterion(R, meta, w, goals):
    """Micro-benchmarks (criterion)."""
    crit = json.loads((R / "criterion.json").read_text())
    w("## Micro-benchmarks (criterion)")
    w("")
    w(
        "`cargo bench -p flyte-secret-spec --bench codec` (annotation codec, plan JSON) and "
        "`cargo bench -p flyte-secret-webhook --bench mutate` (the pod mutation alone, and one "
        "whole AdmissionReview: parse, mutate, serialize; `review/N` derives every plan, "
        "`review-cached/N` takes it from the plan cache as `webhook serve` does for a secret set "
        "it has seen), release profile. Median with "
        "criterion's 95% confidence interval."
    )
    w("")
    w("| benchmark | median | 95% CI |")
    w("|---|---:|---|")
    for name, e in crit.items():
        f = lambda ns: f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
        w(f"| `{name}` | **{f(e['median_ns'])}** | {f(e['ci_low_ns'])} – {f(e['ci_high_ns'])} |")
    w("")


def report_broker(R, meta, w, goals):
    """6. The secret broker (issue 15)."""
    info = json.loads((R / "broker.json").read_text())
    n = info["n"]
    hf_path = R / f"broker-{n}.hyperfine.json"
    times = hyperfine_times(hf_path)
    cpu = hyperfine_cpu(hf_path)
    rows = [
        ("direct", "`agent fetch --kubeconfig …` (API mode)", "reads the Secrets itself with a service-account token "
         f"(the path the broker replaces): {n} Secret GETs in `flyte`"),
        ("broker", "`agent fetch` (pod mode)", "one `POST /v1/secrets` to the broker with the pod-bound "
         f"token; the broker: a TokenReview, a pod GET, {n} Secret GETs"),
        ("broker-init", "`agent init` (pod mode)", "the same through the broker, as a pod's init "
         "container runs it (atomic publish into its layout)"),
    ]
    st = {name: summary(times[name]) for name, _, _ in rows}
    rss_st = {name: load_rss(R / f"broker-{n}-{name}.rss.json") for name, _, _ in rows}
    w(f"## 6. Secret broker (issue 15): {n} Flyte 2 managed secrets, direct vs through the broker")
    w("")
    w(
        f"The same {n} managed secrets (project `{info['project']}`, domain `{info['domain']}`; "
        f"Secrets `md5(u__org__…)` in `{info['managed_namespace']}`, as Flyte 2 writes them, 37-byte "
        "values) read by the release agent two ways (the broker way also as `agent init`). **Direct** is what a task pod's agent did "
        "before issue 15: read them through the Kubernetes API itself, authorized by a Role with "
        "`get` on Secrets in `flyte` (here the broker's own ServiceAccount, whose Role from "
        "`deploy/` is exactly that). **Broker**: the agent holds no API right and asks the "
        f"broker once for all {n}, with a projected token bound to a pending pod in namespace "
        f"`{info['namespace']}` that declares them in its `flyte.secrets/*` annotations; the "
        "broker reviews the token, reads that pod and its annotations, derives the scope from "
        "the namespace and reads the Secrets. Both talk to the same API stand-in (a debug build, "
        "RBAC evaluated on every call); the broker (`webhook broker`, default settings) runs on "
        "the same machine, so its CPU is not in the agent's CPU column."
    )
    w("")
    w("| path | command | what it does | wall time | agent CPU (user+sys, mean) | agent peak RSS |")
    w("|---|---|---|---|---|---|")
    for name, cmd, what in rows:
        w(f"| {name} | {cmd} | {what} | {fmt_time(st[name])} | {ms(cpu[name])} ms | {fmt_rss(rss_st[name])} |")
    d, b = st["direct"]["median"], st["broker"]["median"]
    faster = f"the broker path is {ratio(d, b)} faster" if b < d else f"the broker path takes {ratio(b, d)} the time"
    w("")
    w(
        f"Broker vs direct (medians): {faster} ({ms(b)} vs {ms(d)} ms); agent peak RSS "
        f"{mib(rss_st['broker']['median'])} vs {mib(rss_st['direct']['median'])} MiB "
        f"({ratio(rss_st['broker']['median'], rss_st['direct']['median'], 2)})."
    )
    w("")

    bu = json.loads((R / "broker-burst.json").read_text())
    runs = bu["runs"]
    pods = runs[0]["pods"]
    w(f"### Burst: {pods} pods at once, {bu['per_pod']} managed secrets each, one broker")
    w("")
    w(
        f"{pods} task pods, each with its own pod-bound token, start `agent init` at the same "
        f"moment (a warm-up burst first, then {len(runs)} measured). Per-pod latency: from "
        "starting the agent process to its exit (process start, TLS, the broker's checks and "
        "reads, writing the files). Throughput: pods / (first start → last exit). Broker RSS: "
        "sampled every 2 ms from `/proc` during the burst. Broker time: its own request-duration "
        "histogram (`/metrics`), mean per request. The agents, the broker and the API stand-in "
        f"share the machine's {meta['machine'].get('nproc', '?')} cores."
    )
    w("")
    w("| run | pods/s | burst wall | per-pod p50 | per-pod p99 | max | broker peak RSS | broker time per request |")
    w("|---:|---:|---|---|---|---|---|---|")
    all_lat = []
    for i, r in enumerate(runs, 1):
        lat = r["latencies_s"]
        all_lat += lat
        mean = r.get("broker_mean_s")
        w(
            f"| {i} | **{r['pods'] / r['wall_s']:.0f}** | {ms(r['wall_s'])} ms | {ms(quantile(lat, 0.5))} ms | "
            f"{ms(quantile(lat, 0.99))} ms | {ms(max(lat))} ms | {mib(r['broker_peak_rss_kib'])} MiB | "
            f"{'n/a' if mean is None else ms(mean) + ' ms'} |"
        )
    rates = [r["pods"] / r["wall_s"] for r in runs]
    peaks = [r["broker_peak_rss_kib"] for r in runs]
    w("")
    w(
        f"Over the {len(runs)} bursts: **{statistics.median(rates):.0f} pods/s** (median; "
        f"{min(rates):.0f}–{max(rates):.0f}), per-pod latency p50 **{ms(quantile(all_lat, 0.5))} ms**, "
        f"p99 **{ms(quantile(all_lat, 0.99))} ms** (all {len(all_lat)} pods); broker peak RSS "
        f"**{mib(max(peaks))} MiB** (idle before the bursts: {mib(bu['broker_idle_rss_kib'] or 0)} MiB; "
        f"its lifetime high-water mark, VmHWM: {mib(bu['broker_hwm_kib'] or 0)} MiB)."
    )
    w("")
    w("```")
    for c in meta["commands"]["broker"]:
        w(c)
    w("```")
    w("")


def report_refresh(R, meta, w, goals):
    """7. The refresh sidecar (issue 17), idle."""
    info = json.loads((R / "refresh.json").read_text())
    a = json.loads((R / "refresh-agent.idle.json").read_text())
    b = json.loads((R / "refresh-bao.idle.json").read_text())
    n, secs = info["n"], a["seconds"]
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")

    def cpu(seconds):
        # /proc counts CPU in clock ticks: below one tick reads as 0.
        return f"< {tick_ms:.0f} ms" if seconds == 0 else f"{ms(seconds)} ms"

    w(f"## 7. Refresh sidecar (issue 17): idle, {n} Vault secrets, {info['interval']} interval")
    w("")
    w(
        f"`agent watch` (release, static musl) after `agent init`, against `bao agent` in template "
        f"mode (no `exit_after_auth`, `static_secret_render_interval = \"{info['interval']}\"`) "
        f"on the same {n} kv2 secrets, each kept running and measured for {secs:.0f} s once it "
        "had published (2 s settling first). RSS: `VmRSS` at the end. CPU: user+sys during the "
        "window (`/proc/<pid>/stat`). Context switches: `voluntary_ctxt_switches` and "
        "`nonvoluntary_ctxt_switches` summed over every thread (`/proc/<pid>/task/*/status`), "
        "sampled every 100 ms. A tick is a refresh round (the agent rewrites its status file "
        "each round); a 100 ms interval with a switch more than 1.5 s from any tick is a wake-up "
        "between ticks (`bao agent` has no such marker: all its active intervals are shown)."
    )
    w("")
    w("| refresher | RSS | CPU in window | threads | switches (vol + nonvol) | ticks | active 100 ms intervals | wake-ups between ticks |")
    w("|---|---|---|---|---|---|---|---|")
    for label, r in (("`agent watch`", a), ("`bao agent` (template mode)", b)):
        ticks = "n/a" if r["ticks"] is None else str(r["ticks"])
        between = "n/a" if r["wakeups_between_ticks"] is None else f"**{r['wakeups_between_ticks']}**"
        w(
            f"| {label} | **{mib(r['rss_kib'])} MiB** | {cpu(r['cpu_s'])} | {r['threads']} | "
            f"{r['voluntary']} + {r['nonvoluntary']} | {ticks} | {r['active_intervals']} | {between} |"
        )
    w("")
    w("```")
    for c in meta["commands"].get("refresh", []):
        w(c)
    w("```")
    w("")
    goals.append((
        "refresh sidecar idle RSS ≤ 8 MiB (20 secrets)",
        f"{mib(a['rss_kib'])} MiB (bao agent {mib(b['rss_kib'])} MiB)",
        "met" if a["rss_kib"] <= 8 * 1024 else "**missed**",
    ))
    goals.append((
        "no wake-ups between refresh ticks",
        f"{a['wakeups_between_ticks']} in {secs:.0f} s ({a['ticks']} ticks)",
        "met" if a["wakeups_between_ticks"] == 0 else "**missed**",
    ))


# The report's sections in order; run.sh names the ones a run measured in meta.json.
SECTIONS = {
    "vault": report_vault,
    "aws": report_aws,
    "scale": report_scale,
    "webhook": report_webhook,
    "sizes": report_sizes,
    "broker": report_broker,
    "refresh": report_refresh,
    "criterion": report_criterion,
}


def report(results_dir, out):
    R = Path(results_dir)
    meta = json.loads((R / "meta.json").read_text())
    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w(
        "Generated by `bench/run.sh` (see bench/README.md) in one run; every ratio compares "
        "figures measured in that same run. Do not edit by hand: re-run the script."
    )
    w("")
    w(f"Run: {meta['started']} → {meta['finished']} (UTC).")
    w("")
    w("## Machine and versions")
    w("")
    w("| what | value |")
    w("|---|---|")
    for k, v in meta["machine"].items():
        w(f"| {k} | {v} |")
    for k, v in meta["versions"].items():
        w(f"| {k} | `{v}` |")
    w("")
    loads = meta.get("loads", [])
    quiet = meta.get("quiet", {})
    w(
        f"Quiet check before measuring: {quiet.get('note', 'n/a')}. "
        "1-minute load average at the start of each section: "
        + "; ".join(f"{k}: {v}" for k, v in loads)
        + "."
    )
    w("")
    sections = meta.get("sections", list(SECTIONS))
    if sections != list(SECTIONS):
        w(
            f"**Partial run** (`BENCH_ONLY={meta.get('only', '')}`): only the sections below; the "
            "full report comes from a full run of `bench/run.sh`."
        )
        w("")
    servers = []
    if {"vault", "aws", "scale"} & set(sections):
        servers.append(
            "OpenBao `bao server -dev` (in memory) and moto (`moto_server`, request recorder on)"
        )
    if "refresh" in sections and "vault" not in sections:
        servers.append("OpenBao `bao server -dev` (in memory)")
    if "broker" in sections:
        servers.append(
            "the Kubernetes API stand-in (`kube-standin serve`, debug build, RBAC rendered from "
            "`deploy/` only) and the secret broker (`webhook broker`)"
        )
    w(
        f"Servers are private to the run, on loopback: {'; '.join(servers)}. "
        "Output directories are on tmpfs "
        f"(`{meta['out_root']}`), as the agent's volume is in a pod (`emptyDir: {{medium: Memory}}`). "
        "Wall times: hyperfine, each figure the median with the interquartile range "
        "(p25–p75), min–max and the number of runs. Peak RSS: GNU time's maximum resident "
        "set size over repeated runs, median with min–max."
    )
    w("")

    goals = []
    for name in sections:
        SECTIONS[name](R, meta, w, goals)

    if goals:
        w("## Read against the goals (issue 7)")
        w("")
        w("| goal | measured | |")
        w("|---|---|---|")
        for g in goals:
            w(f"| {g[0]} | {g[1]} | {g[2]} |")
        w("")
    notes = R / "notes.md"
    if notes.exists() and "vault" in sections:
        w(notes.read_text().rstrip())
        w("")
    # Keep the "## Reliability" section (issue 10: fuzzing and burst figures, measured by
    # fuzz/run.sh and the burst tests, not by this script) when regenerating the report.
    if Path(out).exists():
        previous = Path(out).read_text()
        at = previous.find("\n## Reliability\n")
        if at >= 0:
            w(previous[at + 1 :].rstrip())
            w("")
    Path(out).write_text("\n".join(lines) + "\n")


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    cmd, rest = args[0], args[1:]
    if cmd == "seed-vault":
        seed_vault(rest[0], rest[1], int(rest[2]))
    elif cmd == "seed-aws":
        seed_aws(rest[0], rest[1], int(rest[2]))
    elif cmd == "vault-files":
        vault_files(rest[0], rest[1], rest[2], rest[3], [int(x) for x in rest[4:]])
    elif cmd == "aws-files":
        aws_files(rest[0], rest[1], rest[2], rest[3], int(rest[4]))
    elif cmd == "broker-setup":
        # ROOT is the repository (for spec/vectors); the rest as in the docstring.
        broker_setup(rest[0], rest[1], rest[2], rest[3], int(rest[4]), int(rest[5]), int(rest[6]))
    elif cmd == "burst":
        burst(rest[0], int(rest[1]), rest[2], rest[3], int(rest[4]), rest[5], rest[6], int(rest[7]))
    elif cmd == "rss":
        sep = rest.index("--")
        out, runs, prepare = rest[0], int(rest[1]), rest[2]
        rss(out, runs, prepare, rest[sep + 1 :])
    elif cmd == "refresh-files":
        refresh_files(rest[0], rest[1], rest[2], rest[3], int(rest[4]), rest[5])
    elif cmd == "idle":
        sep = rest.index("--")
        idle(rest[0], rest[1], float(rest[2]), rest[3], rest[sep + 1 :])
    elif cmd == "count-calls":
        print(json.dumps(count_calls(rest[0])))
    elif cmd == "wrk-result":
        print(json.dumps(wrk_result(rest[0])))
    elif cmd == "criterion":
        print(json.dumps(criterion(rest[0]), indent=1))
    elif cmd == "report":
        report(rest[0], rest[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
