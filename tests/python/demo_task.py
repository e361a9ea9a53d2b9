"""The demo's task: reads its secrets the ways Flyte task code does and prints them MASKED
(length and a short digest, never the value)."""

import hashlib
import os
import sys

import flytekit


def masked(value) -> str:
    # flytekit returns str when the value came from an env var, whatever encode_mode.
    value = value.encode() if isinstance(value, str) else value
    return f"<masked: {len(value)} bytes, sha256 {hashlib.sha256(value).hexdigest()[:12]}>"


def main() -> int:
    secrets = flytekit.current_context().secrets
    reads = [
        ("flytekit secrets.get('user-info', 'user_secret')", lambda: secrets.get("user-info", "user_secret", encode_mode="rb")),
        ("env _FSEC_USER-INFO_USER_SECRET (secretKeyRef)", lambda: os.environb[b"_FSEC_USER-INFO_USER_SECRET"]),
        ("flytekit secrets.get('flyte-demo', 'api_token')  [AWS]", lambda: secrets.get("flyte-demo", "api_token", encode_mode="rb")),
        ("flytekit secrets.get('secret/flyte-demo', 'password')  [Vault kv2]", lambda: secrets.get("secret/flyte-demo", "password", encode_mode="rb")),
        ("open(os.environ['DB_PASSWORD_FILE'])  [Vault db]", lambda: open(os.environ["DB_PASSWORD_FILE"], "rb").read()),
        ("flytekit secrets.get('database/creds/flyte-db', 'username')", lambda: secrets.get("database/creds/flyte-db", "username", encode_mode="rb")),
        ("open('/etc/flyte/secrets/OPENAI_API_KEY')  [Flyte 2 managed]", lambda: open("/etc/flyte/secrets/OPENAI_API_KEY", "rb").read()),
    ]
    failed = 0
    for label, read in reads:
        try:
            print(f"  task read {label}: {masked(read())}")
        except Exception as exc:  # noqa: BLE001
            failed += 1
            print(f"  task read {label}: FAILED ({type(exc).__name__})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
