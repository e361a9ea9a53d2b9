"""The app container of the end-to-end pods: reads every secret the pod asked for the way
task code does, and exits non-zero on any mismatch.

- flytekit: ``current_context().secrets.get(group, key, group_version)`` (text) and with
  ``encode_mode="rb"`` (bytes); flytekit strips what it reads, so it is compared stripped;
- Flyte 2 SDK style: ``open("/etc/flyte/secrets/<key>")`` for group-less secrets, and
  ``os.environ[env_var]`` (the value for ENV_VAR, a file path for FILE/ANY);
- the file Flyte's layout promises, byte for byte.

Expectations come from a JSON file (argv[1]): the value (base64) or, for generated values,
the file that holds it. Values are never printed: a failure names the
secret and the check only.
"""

import base64
import json
import os
import sys

import flytekit


def main() -> int:
    with open(sys.argv[1]) as f:
        expectations = json.load(f)
    secrets = flytekit.current_context().secrets
    failures = []
    checks = 0
    for e in expectations:
        name = f"{e.get('group') or ''}/{e['key']}@{e.get('group_version') or ''}"
        if "value_b64" in e:
            want = base64.b64decode(e["value_b64"])
        else:
            # A generated value (database credentials): the primary file is the truth, and
            # every other way of reading must agree with it.
            with open(e["value_file"], "rb") as f:
                want = f.read()

        def check(label, ok):
            nonlocal checks
            checks += 1
            if not ok:
                failures.append(f"{name}: {label}")

        group = e.get("group") or None
        version = e.get("group_version") or None
        try:
            got = secrets.get(group, e["key"], group_version=version, encode_mode="rb")
            # flytekit returns str when the value came from an env var, whatever encode_mode.
            got = got.encode() if isinstance(got, str) else got
            check("flytekit get(..., encode_mode='rb')", got == want.strip())
        except Exception as exc:  # noqa: BLE001 - report, never the value
            check(f"flytekit get(..., encode_mode='rb') raised {type(exc).__name__}", False)
        if not e.get("binary"):
            try:
                got = secrets.get(group, e["key"], group_version=version)
                check("flytekit get()", got == want.decode().strip())
            except Exception as exc:  # noqa: BLE001
                check(f"flytekit get() raised {type(exc).__name__}", False)
        for path in e.get("files", []):
            try:
                with open(path, "rb") as f:
                    check(f"file {path}", f.read() == want)
            except OSError as exc:
                check(f"file {path}: {exc.strerror}", False)
        for var in e.get("env_values", []):
            check(f"env {var}", os.environb.get(var.encode()) == want)
        for var in e.get("env_paths", []):
            path = os.environ.get(var)
            if path is None:
                check(f"env {var} (path) unset", False)
                continue
            with open(path, "rb") as f:
                check(f"env {var} -> {path}", f.read() == want)
    if failures:
        for f in failures:
            print("FAIL", f)
        return 1
    print(f"ok: {len(expectations)} secrets, {checks} checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
