"""The app container of the end-to-end pods: reads every secret the pod asked for the way
task code does, and exits non-zero on any mismatch.

- flytekit: ``current_context().secrets.get(group, key, group_version)`` (text) and with
  ``encode_mode="rb"`` (bytes); flytekit strips what it reads, so it is compared stripped;
- Flyte 2 SDK style: ``open("/etc/flyte/secrets/<key>")`` for group-less secrets, and
  ``os.environ[env_var]`` (the value for ENV_VAR, a file path for FILE/ANY);
- the file Flyte's layout promises, byte for byte;
- aggregate files (``expect_aggregates.json`` beside the expectations, when present), each
  parsed by its format's real parser: python-dotenv, ``json``, javaproperties (Java's
  ``Properties.load``), PyYAML.

A key that is a JSON Pointer is read with flytekit under the key the naming rules give it
(``naming_key``: ``/db/host`` → ``db/host``).

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
        key = e.get("naming_key") or e["key"]
        try:
            got = secrets.get(group, key, group_version=version, encode_mode="rb")
            # flytekit returns str when the value came from an env var, whatever encode_mode.
            got = got.encode() if isinstance(got, str) else got
            check("flytekit get(..., encode_mode='rb')", got == want.strip())
        except Exception as exc:  # noqa: BLE001 - report, never the value
            check(f"flytekit get(..., encode_mode='rb') raised {type(exc).__name__}", False)
        if not e.get("binary"):
            try:
                got = secrets.get(group, key, group_version=version)
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
    checks += check_aggregates(os.path.dirname(sys.argv[1]), failures)
    if failures:
        for f in failures:
            print("FAIL", f)
        return 1
    print(f"ok: {len(expectations)} secrets, {checks} checks")
    return 0


def parse_aggregate(path, fmt):
    """The file as its format's real parser reads it."""
    if fmt == "json":
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    if fmt == "dotenv":
        import dotenv

        return dict(dotenv.dotenv_values(path, interpolate=True))
    if fmt == "properties":
        import javaproperties

        with open(path, "rb") as f:
            return javaproperties.load(f)
    if fmt == "yaml":
        import yaml

        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    raise ValueError(fmt)


def check_aggregates(directory, failures):
    """Each expected aggregate file parses to exactly the expected key/value pairs."""
    path = os.path.join(directory, "expect_aggregates.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        expected = json.load(f)
    for a in expected:
        want = {k: base64.b64decode(v).decode() for k, v in a["entries"].items()}
        try:
            got = parse_aggregate(a["path"], a["format"])
        except Exception as exc:  # noqa: BLE001 - report, never the value
            failures.append(f"aggregate {a['path']}: {a['format']} parser raised {type(exc).__name__}")
            continue
        if got != want:
            differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
            failures.append(f"aggregate {a['path']}: keys {differ} differ")
    return len(expected)


if __name__ == "__main__":
    sys.exit(main())
