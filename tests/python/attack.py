"""The adversarial task: run as a Flyte task container's program, it tries to read what its
pod did not declare, with whatever the container can see, and reports every attempt.

Usage: attack.py <plan.json>

The plan lists attempts; each is one of
  {"name": ..., "kind": "api", "method": "GET"|"POST", "path": ..., "body": {...}}
      the Kubernetes API (KUBERNETES_SERVICE_HOST/PORT, the CA and token the kubelet mounted
      in this container, or "token_file");
  {"name": ..., "kind": "broker", "token_file": ..., "annotations": [...]}
      the secret broker (its URL and CA come from the plan: public data);
  {"name": ..., "kind": "file", "path": ...}
      a file the agent saw (a kubelet Secret volume, the broker token).

One JSON line per attempt on stdout: {"name", "refused": bool, "detail"}. Refused means the
server said 401/403 (or the file is not there) and the refusal carries the attempt's `expect`
words (its own reason: a 403 for another reason could hide a hole); anything else — 2xx, 404
on a Secret that exists, an error — is not a refusal. Then the declared secrets are read with flytekit, the
way the task would, to prove the pod itself works: "declared-ok" lines. Never prints a value.
"""

import json
import os
import ssl
import sys
import urllib.error
import urllib.request

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def call(url, ca_file, token, method="GET", body=None):
    """(status, reason) of one HTTPS call; never the response body (it may hold a value)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            return resp.status, "answered"
    except urllib.error.HTTPError as e:
        try:
            status = json.loads(e.read().decode("utf-8", "replace"))
            reason = status.get("reason", "") + ": " + status.get("message", "")[:300]
        except ValueError:
            reason = e.reason
        return e.code, reason


def attempt(plan, a):
    refused, detail = outcome(plan, a)
    return refused and a.get("expect", "") in detail, detail


def outcome(plan, a):
    kind = a["kind"]
    if kind == "file":
        exists = os.path.exists(a["path"])
        return (not exists), ("present" if exists else "absent")
    if kind == "api":
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ["KUBERNETES_SERVICE_PORT"]
        token = read(a.get("token_file", SA_DIR + "/token"))
        code, reason = call(
            "https://%s:%s%s" % (host, port, a["path"]),
            SA_DIR + "/ca.crt",
            token,
            a.get("method", "GET"),
            a.get("body"),
        )
        return code in (401, 403), "%d %s" % (code, reason)
    if kind == "broker":
        token = read(a["token_file"]) if "token_file" in a else a["token"]
        code, reason = call(
            plan["broker"] + "/v1/secrets",
            plan["broker_ca_file"],
            token,
            "POST",
            {"annotations": a["annotations"]},
        )
        return code in (401, 403), "%d %s" % (code, reason)
    raise ValueError("unknown attempt kind " + kind)


def main():
    plan = json.loads(read(sys.argv[1]))
    for a in plan["attempts"]:
        try:
            refused, detail = attempt(plan, a)
        except Exception as e:  # an error is not a refusal: report it
            refused, detail = False, "error: %s" % type(e).__name__ + ": " + str(e)[:300]
        print(json.dumps({"name": a["name"], "refused": refused, "detail": detail}), flush=True)
    # The pod's own declared secrets, as the task reads them.
    from flytekit import current_context

    secrets = current_context().secrets
    for group, key in plan.get("declared", []):
        if group:
            value = secrets.get(group, key, encode_mode="rb")
        else:
            # A Flyte 2 managed secret: where the Flyte 2 SDK reads it.
            with open("/etc/flyte/secrets/" + key, "rb") as f:
                value = f.read()
        print(json.dumps({"declared-ok": "%s/%s" % (group, key), "length": len(value)}), flush=True)


if __name__ == "__main__":
    main()
