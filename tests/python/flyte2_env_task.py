"""A Flyte 2 style task: each ``flyte.Secret(key=..., as_env_var="MY_SECRET")`` is read the
way Flyte 2 task code reads it, ``os.environ["MY_SECRET"]``, without flytekit. Also checks
every other name the webhook's naming gives the value (``_UNION_<KEY>``, ...).

Expectations come from a JSON file (argv[1]), as for ``check_secrets.py``. Values are never
printed: a failure names the secret and the variable only.
"""

import base64
import json
import os
import sys


def main() -> int:
    with open(sys.argv[1]) as f:
        expectations = json.load(f)
    failures = []
    checks = 0
    for e in expectations:
        if e.get("mount") != "ENV_VAR":
            continue
        name = f"{e.get('group') or ''}/{e['key']}"
        want = base64.b64decode(e["value_b64"])
        if e.get("env_var"):
            checks += 1
            try:
                got = os.environ[e["env_var"]]
                if got.encode() != want:
                    failures.append(f"{name}: os.environ[{e['env_var']!r}] differs")
            except KeyError:
                failures.append(f"{name}: os.environ[{e['env_var']!r}] is not set")
        for var in e.get("env_values", []):
            checks += 1
            if os.getenv(var) is None or os.getenv(var).encode() != want:
                failures.append(f"{name}: os.getenv({var!r}) is unset or differs")
    if failures:
        for f in failures:
            print("FAIL", f)
        return 1
    if not checks:
        print("FAIL nothing to check")
        return 1
    print(f"ok: {checks} env checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
