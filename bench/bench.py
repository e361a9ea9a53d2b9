#!/usr/bin/env python3
"""Glue for bench/run.sh: seeding, plans and configs, statistics, and BENCHMARKS.md.

Standard library only (runs with any python3). Subcommands:

  seed-vault ADDR TOKEN N              kv2 secrets secret/bench/s0000.. (field `value`)
  seed-aws ENDPOINT REGION N           Secrets Manager secrets flyte-bench:s00.. via the JSON API
  vault-files DIR ADDR TOKEN_FILE OUT_ROOT N...   agent plans + `bao agent` configs
  aws-files DIR ENDPOINT REGION OUT_ROOT N        agent plan + per-secret AWS CLI script
  rss OUT.json RUNS PREPARE -- CMD...   peak RSS (KiB) of CMD over RUNS runs (GNU time)
  count-calls RECORDING.jsonl           API calls in a moto recording, by X-Amz-Target
  wrk-result FILE                       the RESULT line of bench/post.lua as JSON
  criterion DIR                         criterion estimates under DIR as JSON
  report RESULTS_DIR OUT.md             renders BENCHMARKS.md
"""

import json
import os
import statistics
import subprocess
import sys
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
# the report


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
    w(
        "Servers are private to the run, on loopback: OpenBao `bao server -dev` (in memory) and "
        "moto (`moto_server`, request recorder on). Output directories are on tmpfs "
        f"(`{meta['out_root']}`), as the agent's volume is in a pod (`emptyDir: {{medium: Memory}}`). "
        "Wall times: hyperfine, each figure the median with the interquartile range "
        "(p25–p75), min–max and the number of runs. Peak RSS: GNU time's maximum resident "
        "set size over repeated runs, median with min–max."
    )
    w("")

    goals = []

    # ---- 1. Vault
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

    # ---- 2. AWS
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

    # ---- 3. Scale
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

    # ---- 4. Webhook
    wh = json.loads((R / "webhook.json").read_text())
    w("## 4. Webhook: admission of a Flyte pod with 5 secrets over TLS")
    w("")
    w(
        f"`webhook serve` (the static musl release build the image ships, default settings, log level info to a file) and "
        "`tls-echo` (bench/tls-echo: the same tokio + tokio-rustls (ring) + hyper 1 stack, "
        "same certificate, answering every POST with the webhook's own response bytes, "
        f"{wh['response_bytes']} bytes, after reading the {wh['request_bytes']}-byte body) on "
        f"the same machine as the load generator ({wh['generator']}). HTTP/1.1 keep-alive, TLS 1.3, "
        "ECDSA P-256. The servers and the generator share the machine's cores."
    )
    w("")
    w(f"**Fixed rate {wh['rate']} req/s** ({wh['rate_method']}):")
    w("")
    w("| server | achieved req/s | p50 latency | p99 latency | max |")
    w("|---|---|---|---|---|")
    for name in ("webhook", "tls-echo"):
        runs = wh["fixed"][name]
        p50 = summary([r["p50_us"] for r in runs])
        p99 = summary([r["p99_us"] for r in runs])
        mx = summary([r["max_us"] for r in runs])
        rps = summary([r["rps"] for r in runs])
        us = lambda s: f"**{s['median']:.0f} µs** ({s['min']:.0f}–{s['max']:.0f})"
        w(
            f"| {name} | {rps['median']:.0f} ({rps['min']:.0f}–{rps['max']:.0f}) | {us(p50)} | "
            f"{us(p99)} | {mx['median']:.0f} µs |"
        )
    w("")
    w(f"Medians over {len(wh['fixed']['webhook'])} runs of {wh['fixed_seconds']} s each, min–max in brackets.")
    w("")
    w(f"**Maximum throughput** ({wh['max_method']}):")
    w("")
    w("| server | req/s | p50 latency | p99 latency |")
    w("|---|---|---|---|")
    thr = {}
    for name in ("webhook", "tls-echo"):
        runs = wh["max"][name]
        rps = summary([r["rps"] for r in runs])
        p50 = summary([r["p50_us"] for r in runs])
        p99 = summary([r["p99_us"] for r in runs])
        thr[name] = rps["median"]
        w(
            f"| {name} | **{rps['median']:.0f}** ({rps['min']:.0f}–{rps['max']:.0f}, n={rps['n']}) | "
            f"{p50['median']:.0f} µs | {p99['median']:.0f} µs |"
        )
    share = thr["webhook"] / thr["tls-echo"]
    w(f"| **webhook / ceiling** | **{share:.2f}×** | | |")
    w("")
    if "server_mean_us" in wh:
        w(
            f"Inside the webhook (its own `/metrics`, all runs): **{wh['server_mean_us']:.0f} µs** "
            "mean per admission from the request's arrival to the answer (body read, parse, "
            "mutate, serialize), under this load on the shared cores."
        )
        w("")
    p99w = statistics.median([r["p99_us"] for r in wh["fixed"]["webhook"]])
    goals.append((f"Webhook p99 < 1 ms at {wh['rate']} req/s", f"{p99w:.0f} µs", goal(p99w < 1000)))
    goals.append(("Webhook throughput ≥ 0.5× the bare-TLS ceiling", f"{share:.2f}×", goal(share >= 0.5)))
    w("```")
    for c in meta["commands"]["webhook"]:
        w(c)
    w("```")
    w("")

    # ---- 5. Sizes
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

    # ---- criterion
    crit = json.loads((R / "criterion.json").read_text())
    w("## Micro-benchmarks (criterion)")
    w("")
    w(
        "`cargo bench -p flyte-secret-spec --bench codec` (annotation codec, plan JSON) and "
        "`cargo bench -p flyte-secret-webhook --bench mutate` (the pod mutation alone, and one "
        "whole AdmissionReview: parse, mutate, serialize), release profile. Median with "
        "criterion's 95% confidence interval."
    )
    w("")
    w("| benchmark | median | 95% CI |")
    w("|---|---:|---|")
    for name, e in crit.items():
        f = lambda ns: f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"
        w(f"| `{name}` | **{f(e['median_ns'])}** | {f(e['ci_low_ns'])} – {f(e['ci_high_ns'])} |")
    w("")

    # ---- goals
    w("## Read against the goals (issue 7)")
    w("")
    w("| goal | measured | |")
    w("|---|---|---|")
    for g in goals:
        w(f"| {g[0]} | {g[1]} | {g[2]} |")
    w("")
    notes = R / "notes.md"
    if notes.exists():
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
    elif cmd == "rss":
        sep = rest.index("--")
        out, runs, prepare = rest[0], int(rest[1]), rest[2]
        rss(out, runs, prepare, rest[sep + 1 :])
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
