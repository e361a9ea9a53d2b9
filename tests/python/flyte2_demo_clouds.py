"""The demo's cloud task (step 6: Google Secret Manager and Azure Key Vault): reads each secret
the way Flyte task code does — flytekit's ``current_context().secrets.get(...)`` for Flyte's
GCP/Azure addressing, and the Flyte 2 SDK's documented access (``/etc/flyte/secrets/<key>``,
``os.environ[...]``) for Flyte 2 managed secrets — and prints them MASKED (length and a short
digest, never the value).

``python flyte2_demo_clouds.py <reads.json>``: a list of
``{"label", "how": "flytekit"|"file"|"env", "group"?, "key"?, "group_version"?, "path"?, "name"?}``.
"""

import hashlib
import json
import os
import sys


def masked(value) -> str:
    value = value.encode() if isinstance(value, str) else value
    return f"<masked: {len(value)} bytes, sha256 {hashlib.sha256(value).hexdigest()[:12]}>"


def read(r):
    if r["how"] == "flytekit":
        import flytekit

        secrets = flytekit.current_context().secrets
        return secrets.get(
            r["group"], r.get("key") or None, group_version=r.get("group_version") or None, encode_mode="rb"
        )
    if r["how"] == "file":
        with open(r["path"], "rb") as f:
            return f.read()
    if r["how"] == "env":
        return os.environb[r["name"].encode()]
    raise ValueError(f"unknown read {r['how']}")


def main() -> int:
    with open(sys.argv[1]) as f:
        reads = json.load(f)
    failed = 0
    for r in reads:
        try:
            print(f"  task read {r['label']}: {masked(read(r))}")
        except Exception as exc:  # noqa: BLE001
            failed += 1
            print(f"  task read {r['label']}: FAILED ({type(exc).__name__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
