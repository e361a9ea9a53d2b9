"""Checks charts/flyte-secret-agent with real Helm (Helm v4's Go SDK through PyPI
helm-python-sdk): strict lint, the values schema (typos refused), a render per values file,
strict validation of every rendered object against the Kubernetes schemas (kubernetes-validate,
as deploy/validate.sh does), the ServiceMonitor's capability gate, and parity with kustomize:
the chart with ci/<x>-values.yaml renders the objects `kubectl kustomize deploy/overlays/<x>`
renders, and with its defaults those of deploy/base.

Run by scripts/chart.sh, which provides the Helm venv, kubectl and the validator:
    python scripts/chart.py --kubectl K --validator V --k8s-versions "1.33.0 1.37.0" --out DIR
Exits 1 with a readable report (a unified diff per differing object) on any failure.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "flyte-secret-agent"
RELEASE = "flyte-secret-agent"
NAMESPACE = "flyte-secret-agent"
# Labels Helm's conventions add and kustomize has no counterpart for; managed-by differs by
# design (Helm / flyte-secret-webhook on the MutatingWebhookConfiguration).
HELM_ONLY_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}
# The chart rolls the Deployment on a config change with this annotation; kustomize does it by
# hashing the ConfigMap's name.
HELM_ONLY_ANNOTATIONS = {"checksum/config"}
# Helm stores a release in its namespace, so that namespace exists before the chart's objects
# (`--create-namespace`, or created beforehand): the chart cannot own it. The kustomize base
# creates it, with the restricted Pod Security labels NOTES.txt tells Helm users to set.
KUSTOMIZE_ONLY_KINDS = {"Namespace"}

failures: list[str] = []


def fail(message: str) -> None:
    failures.append(message)
    print(f"FAIL: {message}", file=sys.stderr)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr)


def load_values(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


def render(chart_dir: Path, values: dict[str, Any]) -> dict[str, str]:
    with helm.Chart.load(chart_dir) as chart:
        chart.validate_schema(values)
        return chart.render(values, name=RELEASE, namespace=NAMESPACE)


def objects_of(manifests: dict[str, str]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path, text in sorted(manifests.items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata", {})
    return (obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))


def strip_metadata(node: Any) -> None:
    """Drops Helm-only labels and annotations from every metadata (objects, pod templates,
    job templates), and labels/annotations maps left empty."""
    if isinstance(node, dict):
        meta = node.get("metadata")
        if isinstance(meta, dict):
            for field, drop in (("labels", HELM_ONLY_LABELS), ("annotations", HELM_ONLY_ANNOTATIONS)):
                values = meta.get(field)
                if isinstance(values, dict):
                    for name in drop:
                        values.pop(name, None)
                    if not values:
                        del meta[field]
        for value in node.values():
            strip_metadata(value)
    elif isinstance(node, list):
        for value in node:
            strip_metadata(value)


def replace_strings(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: replace_strings(v, mapping) for k, v in node.items()}
    if isinstance(node, list):
        return [replace_strings(v, mapping) for v in node]
    if isinstance(node, str):
        return mapping.get(node, node)
    return node


def normalise(objects: list[dict[str, Any]], kustomize: bool) -> dict[tuple[str, str, str], Any]:
    objects = copy.deepcopy(objects)
    if kustomize:
        objects = [o for o in objects if o.get("kind") not in KUSTOMIZE_ONLY_KINDS]
        # configMapGenerator names: <name>-<10 character hash>, referenced by that name.
        hashed = {}
        for o in objects:
            name = o["metadata"]["name"]
            if o.get("kind") == "ConfigMap" and re.fullmatch(r".+-[a-z0-9]{10}", name):
                hashed[name] = name.rsplit("-", 1)[0]
        objects = [replace_strings(o, hashed) for o in objects]
    out = {}
    for o in objects:
        strip_metadata(o)
        if o.get("kind") == "ConfigMap":
            # config.json compared as JSON: key order and layout are not the contract.
            for name, text in list(o.get("data", {}).items()):
                if name.endswith(".json"):
                    o["data"][name] = json.loads(text)
        k = key(o)
        if k in out:
            fail(f"{'kustomize' if kustomize else 'chart'} renders {k} twice")
        out[k] = o
    return out


def compare(label: str, chart: dict, kustom: dict) -> list[str]:
    """Every difference, one message per object (a unified diff for an object on both sides)."""
    differing: list[str] = []
    for k in sorted(set(chart) | set(kustom)):
        name = "/".join(p for p in k if p)
        if k not in chart:
            differing.append(f"{label}: kustomize renders {name}, the chart does not")
        elif k not in kustom:
            differing.append(f"{label}: the chart renders {name}, kustomize does not")
        elif chart[k] != kustom[k]:
            a = yaml.safe_dump(kustom[k], sort_keys=True).splitlines()
            b = yaml.safe_dump(chart[k], sort_keys=True).splitlines()
            diff = "\n".join(difflib.unified_diff(a, b, "kustomize", "chart", lineterm="", n=3))
            differing.append(f"{label}: {name} differs:\n{diff}")
    return differing


def kustomize(kubectl: str, target: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / target)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize deploy/{target}: {result.stderr.strip()}")
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def write_objects(path: Path, objects: list[dict[str, Any]]) -> None:
    path.write_text(yaml.safe_dump_all(objects, sort_keys=False))


def validate(validator: str, versions: list[str], files: list[Path]) -> None:
    for version in versions:
        result = subprocess.run(
            [validator, "--strict", "--quiet", "-k", version, *map(str, files)],
            capture_output=True, text=True, timeout=300, check=False,
        )
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0 or re.search(r"\b(error|failed|invalid)\b", output, re.I):
            fail(f"validation against Kubernetes {version}:\n" + "\n".join(f"  | {l}" for l in output.splitlines()))


def check_lint(values_files: list[Path], versions: list[str]) -> None:
    for values_file in [None, *values_files]:
        values = load_values(values_file) if values_file else None
        for version in versions:
            report = helm.lint(CHART, values, strict=True, kube_version=f"v{version}")
            label = values_file.name if values_file else "defaults"
            problems = [m for m in report["messages"] if m["severity"] >= 2]
            if report["errors"] or problems:
                fail(f"helm lint --strict ({label}, Kubernetes {version}): {report['errors']} {problems}")


# Values a typo or a wrong type must be refused for (values.schema.json).
SCHEMA_REJECTS = [
    {"replicas": 3},
    {"image": {"tags": "1.0"}},
    {"webhook": {"replica": 3}},
    {"webhook": {"replicas": "two"}},
    {"webhook": {"pdb": {"minAvailble": 1}}},
    {"broker": {"managedNamespce": "flyte"}},
    {"broker": {"domains": "development"}},
    {"config": {"envPrefx": "_X_"}},
    {"config": {"backends": [{"type": "gke"}]}},
    {"config": {"backends": [{"type": "gcp", "projct": "p"}]}},
    {"config": {"backends": [{"type": "azure", "vaultURI": "https://v.vault.azure.net"}]}},
    {"config": {"backends": [{"type": "aws", "regoin": "us-east-2"}]}},
    {"config": {"backends": [{"type": "vault", "address": "https://v", "auth": {"method": "jwt", "rol": "x"}}]}},
    {"config": {"vaultToken": {"audiance": "vault"}}},
    {"config": {"aggregateFormat": "toml"}},
    {"networkPolicy": {"podCidrs": ["10.0.0.0/8"]}},
    {"serviceMonitor": {"enable": True}},
    {"agent": {"image": {"pullPolicy": "Sometimes"}}},
]


def check_schema(values_files: list[Path]) -> None:
    with helm.Chart.load(CHART) as chart:
        for values_file in values_files:
            try:
                chart.validate_schema(load_values(values_file))
            except helm.HelmError as err:
                fail(f"values.schema.json refuses {values_file.name}: {err}")
        for bad in SCHEMA_REJECTS:
            try:
                chart.validate_schema(bad)
            except helm.HelmError:
                continue
            fail(f"values.schema.json accepts {json.dumps(bad)}")


# Every knob at once: must render valid objects carrying what was asked.
KNOBS = {
    "image": {"registry": "registry.example.com", "repository": "mirror/webhook", "tag": "1.2.3",
              "digest": "sha256:" + "a" * 64},
    "imagePullSecrets": [{"name": "pull"}],
    "commonLabels": {"team": "ml"},
    "commonAnnotations": {"owner": "platform"},
    "agent": {"image": {"registry": "", "repository": "agent", "tag": "9", "digest": "", "pullPolicy": "Always"}},
    "config": {"execWrap": True, "aggregateFormat": "dotenv", "fileEnv": True, "agentEnv": [{"name": "X", "value": "1"}],
               "brokerCaFile": "/etc/webhook/certs/ca.crt", "volumeSizeLimit": None},
    "webhook": {"replicas": 3, "nodeSelector": {"pool": "system"},
                "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
                "podAntiAffinityPreset": "hard", "priorityClassName": "system-cluster-critical",
                "pdb": {"enabled": True, "maxUnavailable": 1},
                "namespaceSelector": {"matchLabels": {"flyte-secret-agent/inject": "true"}},
                "certRenewal": {"enabled": False}},
    "broker": {"audience": "broker", "org": "acme", "directNamespace": "shared-secrets",
               "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                   "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["system"]}]}]}}},
               "pdb": {"enabled": False}},
    "networkPolicy": {"enabled": False},
}


def check_knobs(out: Path) -> Path:
    objects = objects_of(render(CHART, KNOBS))
    by = {key(o)[0] + "/" + key(o)[2]: o for o in objects}
    image = "registry.example.com/mirror/webhook:1.2.3@sha256:" + "a" * 64

    def expect(what: str, ok: bool) -> None:
        if not ok:
            fail(f"knobs render: {what}")

    webhook = by.get("Deployment/flyte-secret-webhook", {})
    spec = webhook.get("spec", {}).get("template", {}).get("spec", {})
    expect("webhook image with registry and digest", spec.get("containers", [{}])[0].get("image") == image)
    expect("replicas 3", webhook.get("spec", {}).get("replicas") == 3)
    expect("nodeSelector", spec.get("nodeSelector") == {"pool": "system"})
    expect("hard anti-affinity", "requiredDuringSchedulingIgnoredDuringExecution" in spec.get("affinity", {}).get("podAntiAffinity", {}))
    expect("imagePullSecrets", spec.get("imagePullSecrets") == [{"name": "pull"}])
    expect("commonLabels", webhook.get("metadata", {}).get("labels", {}).get("team") == "ml")
    expect("commonAnnotations", webhook.get("metadata", {}).get("annotations", {}).get("owner") == "platform")
    expect("no CronJob", "CronJob/flyte-secret-webhook-renew-certs" not in by)
    expect("no NetworkPolicy", not any(k.startswith("NetworkPolicy/") for k in by))
    expect("no broker PDB", "PodDisruptionBudget/flyte-secret-broker" not in by)
    expect("webhook PDB maxUnavailable", by.get("PodDisruptionBudget/flyte-secret-webhook", {}).get("spec", {}).get("maxUnavailable") == 1)
    mwc = by.get("MutatingWebhookConfiguration/flyte-secret-webhook", {})
    # The given selector AND the exclusion of the release's namespace and kube-system, as
    # init-certs registers it from the same --namespace-selector.
    expect("namespaceSelector", mwc.get("webhooks", [{}])[0].get("namespaceSelector") == {
        "matchLabels": {"flyte-secret-agent/inject": "true"},
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn",
                              "values": [NAMESPACE, "kube-system"]}]})
    init_args = webhook.get("spec", {}).get("template", {}).get("spec", {}).get("initContainers", [{}])[0].get("args", [])
    expect("init-certs --namespace-selector", '--namespace-selector={"matchLabels":{"flyte-secret-agent/inject":"true"}}' in init_args)
    config = json.loads(by.get("ConfigMap/flyte-secret-webhook-config", {}).get("data", {}).get("config.json", "{}"))
    expect("agentImage", config.get("agentImage") == "agent:9" and config.get("agentPullPolicy") == "Always")
    expect("config keys", config.get("execWrap") is True and config.get("aggregateFormat") == "dotenv" and "volumeSizeLimit" not in config)
    expect("broker ref with audience", config.get("backends") == [{"type": "kubernetes", "broker": {
        "url": f"https://flyte-secret-broker.{NAMESPACE}.svc", "audience": "broker"}}])
    args = by.get("Deployment/flyte-secret-broker", {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [{}])[0].get("args", [])
    expect("broker args", {"--audience=broker", "--org=acme", "--direct-namespace=shared-secrets"} <= set(args))
    roles = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "flyte-secret-broker"]
    expect("broker Role in the direct namespace", {r["metadata"]["namespace"] for r in roles} == {"flyte", "shared-secrets"})
    path = out / "knobs.yaml"
    write_objects(path, objects)
    return path


def check_without_broker(out: Path) -> Path:
    """broker.enabled false: no broker object, certificate or URL anywhere."""
    objects = objects_of(render(CHART, {"broker": {"enabled": False}}))
    text = yaml.safe_dump_all(objects)
    for needle in ("flyte-secret-broker", "--extra-service"):
        if needle in text:
            fail(f"broker.enabled false still renders {needle!r}")
    path = out / "without-broker.yaml"
    write_objects(path, objects)
    return path


def check_refused_renders() -> None:
    """Values the schema cannot refuse alone, refused by the templates with a reason."""
    refused = [
        # Grouped requests are not scoped: the managed namespace would serve every project's
        # managed secrets (and Flyte's control-plane Secrets) to any task that declares them.
        ({"broker": {"directNamespace": "flyte"}}, "directNamespace"),
    ]
    for values, word in refused:
        try:
            render(CHART, values)
        except helm.HelmError as err:
            if word not in str(err):
                fail(f"render {json.dumps(values)} refused without naming {word}: {err}")
            continue
        fail(f"render {json.dumps(values)} was not refused")


def check_service_monitor(out: Path) -> Path:
    """Helm's offline render has the default capabilities (no monitoring.coreos.com/v1): the
    gate must hold there; the body is then rendered from a copy whose gate is forced open."""
    values = {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}
    manifests = render(CHART, values)
    if any(o["kind"] == "ServiceMonitor" for o in objects_of(manifests)):
        fail("ServiceMonitor rendered although the cluster lacks monitoring.coreos.com/v1")
    notes = next((t for p, t in manifests.items() if p.endswith("NOTES.txt")), "")
    if "no ServiceMonitor was rendered" not in notes:
        fail("NOTES.txt does not warn that no ServiceMonitor was rendered")
    gate = '(.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")'
    with tempfile.TemporaryDirectory() as tmp:
        copy_dir = Path(tmp) / CHART.name
        shutil.copytree(CHART, copy_dir)
        template = copy_dir / "templates" / "servicemonitor.yaml"
        text = template.read_text()
        if text.count(gate) != 1:
            fail(f"servicemonitor.yaml: expected one capability gate {gate}")
            return out / "servicemonitor.yaml"
        template.write_text(text.replace(gate, "true"))
        objects = objects_of(render(copy_dir, values))
    monitors = [o for o in objects if o["kind"] == "ServiceMonitor"]
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    if len(monitors) != 2:
        fail(f"expected 2 ServiceMonitors with the CRD present, got {len(monitors)}")
    for sm in monitors:
        name = sm["metadata"]["name"]
        svc = services.get(f"{name}-metrics")
        if svc is None:
            fail(f"ServiceMonitor {name}: no Service {name}-metrics")
            continue
        selector = sm["spec"]["selector"]["matchLabels"]
        if not selector.items() <= svc["metadata"]["labels"].items():
            fail(f"ServiceMonitor {name} does not select Service {name}-metrics")
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        if not svc["spec"]["selector"].items() <= pod_labels.items():
            fail(f"Service {name}-metrics does not select the {name} pods")
        if [e["port"] for e in sm["spec"]["endpoints"]] != ["admin"] or svc["spec"]["ports"][0]["name"] != "admin":
            fail(f"ServiceMonitor {name} does not scrape the admin port")
        if sm["metadata"]["labels"].get("release") != "prom":
            fail(f"ServiceMonitor {name} lacks serviceMonitor.labels")
    # The Services go to the schema validator; the ServiceMonitors are a CRD it cannot know.
    path = out / "servicemonitor-services.yaml"
    write_objects(path, [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"].endswith("-metrics")])
    return path


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubectl", required=True)
    parser.add_argument("--validator", required=True)
    parser.add_argument("--k8s-versions", required=True)
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    versions = args.k8s_versions.split()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"chart: Helm SDK {helm.helm_sdk_version()} (helm-c {helm.helm_c_version()}), {CHART.relative_to(ROOT)}")

    values_files = sorted((CHART / "ci").glob("*-values.yaml"))
    if not values_files:
        fail(f"no {CHART.name}/ci/*-values.yaml")

    check_lint(values_files, versions)
    check_schema(values_files)

    rendered: list[Path] = []
    counts: dict[str, str] = {}
    parity_pairs = [("defaults", {}, "base")]
    parity_pairs += [(f.name, load_values(f), f"overlays/{f.name.removesuffix('-values.yaml')}") for f in values_files]
    for label, values, target in parity_pairs:
        try:
            objects = objects_of(render(CHART, values))
        except helm.HelmError as err:
            fail(f"render {label}: {err}")
            continue
        path = out / f"{label.removesuffix('.yaml')}.yaml"
        write_objects(path, objects)
        rendered.append(path)
        if not (ROOT / "deploy" / target).is_dir():
            fail(f"{label}: no deploy/{target} to compare with")
            continue
        differing = compare(f"{label} vs deploy/{target}", normalise(objects, False), normalise(kustomize(args.kubectl, target), True))
        for message in differing:
            fail(message)
        counts[label] = f"{len(objects)} objects, " + ("identical to" if not differing else f"{len(differing)} differ from") + f" deploy/{target}"

    # The comparison must be able to fail: one changed field is one difference.
    perturbed = objects_of(render(CHART, {"webhook": {"replicas": 3}}))
    caught = compare("self-check", normalise(perturbed, False), normalise(kustomize(args.kubectl, "base"), True))
    if len(caught) != 1 or "+  replicas: 3" not in caught[0]:
        fail(f"self-check: webhook.replicas 3 should be exactly one difference from deploy/base, got {len(caught)}")

    rendered.append(check_knobs(out))
    rendered.append(check_without_broker(out))
    check_refused_renders()
    rendered.append(check_service_monitor(out))
    validate(args.validator, versions, rendered)

    for label, summary in counts.items():
        log(f"  {label:<24} {summary}")
    elapsed = int((time.monotonic() - started) * 1000)
    if failures:
        log(f"chart: {len(failures)} failure(s) ({elapsed} ms)")
        return 1
    log(f"chart: lint (strict) + schema ({len(SCHEMA_REJECTS)} typos refused) + {len(rendered)} renders valid against Kubernetes "
        f"{' '.join(versions)} + parity with kustomize for {len(counts)} targets ({elapsed} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
