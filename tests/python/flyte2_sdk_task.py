"""A task written with the real Flyte 2 SDK (PyPI ``flyte``), its secrets declared the SDK's way:
``flyte.TaskEnvironment(secrets=[flyte.Secret(key=..., as_env_var=...), flyte.Secret(key=...,
mount="/etc/flyte/secrets"), "plain-name"])``.

Two uses, one task definition:

``python flyte2_sdk_task.py serialize <secrets.json>`` (on the host, in the Flyte 2 venv):
    the SDK serializes the task (``get_proto_task``, what ``flyte deploy``/``flyte run`` send),
    and for each ``security_context.secrets`` entry, in order, prints what Flyte 2's executor
    puts on the pod: the protobuf text format (``text_format.MessageToString``, the same text
    Go's ``proto.MarshalTextString`` writes for these fields) and its Flyte base32
    (RFC 4648 base32 lower-cased, digits 2-7 as 1-6, no padding), as annotation
    ``flyte.secrets/s<index>``. JSON on stdout.

``python flyte2_sdk_task.py <expect.json>`` (in the pod, Debian's python3 with the venv on
    PYTHONPATH): defines the same environment from the expectations, then runs the task body,
    which reads every secret with the SDK's documented access: ``os.environ[as_env_var]``, and
    the file ``/etc/flyte/secrets/<key>`` for a secret mounted at ``/etc/flyte/secrets`` (the
    only mount path the SDK accepts). Values are never printed: a failure names the secret.
"""

import base64
import json
import os
import pathlib
import sys

import flyte

MOUNT = pathlib.Path("/etc/flyte/secrets")


def environment(specs):
    """The task environment: each spec is {"key", "as_env_var"?, "mount"?, "plain"?}."""
    secrets = []
    for s in specs:
        if s.get("plain"):
            secrets.append(s["key"])  # a bare string: the SDK derives the env var name
        elif s.get("mount"):
            secrets.append(flyte.Secret(key=s["key"], mount=MOUNT))
        else:
            secrets.append(flyte.Secret(key=s["key"], as_env_var=s["as_env_var"]))
    env = flyte.TaskEnvironment(name="fsa_e2e_flyte2", secrets=secrets)

    def read_secrets(expected):
        """The task body: every declared secret read the SDK's way, compared with `expected`
        (key -> bytes); returns the failures."""
        failures = []
        for secret in flyte._secret.secrets_from_request(env.secrets):
            want = expected[secret.key]
            if secret.mount:
                path = pathlib.Path(secret.mount) / secret.key
                try:
                    if path.read_bytes() != want:
                        failures.append(f"{secret.key}: {path} differs")
                except OSError as e:
                    failures.append(f"{secret.key}: {path}: {e.strerror}")
            if secret.as_env_var:
                got = os.environ.get(secret.as_env_var)
                if got is None:
                    failures.append(f"{secret.key}: os.environ[{secret.as_env_var!r}] is not set")
                elif got.encode() != want:
                    failures.append(f"{secret.key}: os.environ[{secret.as_env_var!r}] differs")
        return failures

    @env.task
    def secret_task(expected_json: str) -> int:
        expected = {k: base64.b64decode(v) for k, v in json.loads(expected_json).items()}
        failures = read_secrets(expected)
        for f in failures:
            print("FAIL", f)
        return len(failures)

    return env, secret_task


def flyte_base32(text: bytes) -> str:
    """Flyte's `encoding.Base32Encoder`: alphabet a-z then 1-6, no padding."""
    std = base64.b32encode(text).decode().rstrip("=")
    return std.lower().translate(str.maketrans("234567", "123456"))


def serialize(specs_path):
    from google.protobuf import text_format

    from flyte._internal.runtime.task_serde import get_proto_task
    from flyte.models import SerializationContext

    with open(specs_path) as f:
        specs = json.load(f)
    _, task = environment(specs)
    ctx = SerializationContext(
        version="e2e",
        project="flytesnacks",
        domain="development",
        org="flyte",
        root_dir=pathlib.Path(__file__).parent,
    )
    template = get_proto_task(task, ctx)
    out = []
    for i, secret in enumerate(template.security_context.secrets):
        text = text_format.MessageToString(secret)
        out.append(
            {
                "annotation": f"flyte.secrets/s{i}",
                "value": flyte_base32(text.encode()),
                "text": text,
                "proto": type(secret).DESCRIPTOR.full_name,
            }
        )
    json.dump(out, sys.stdout)
    return 0


def run(expect_path):
    with open(expect_path) as f:
        expectations = json.load(f)
    specs = []
    expected = {}
    for e in expectations:
        spec = {"key": e["key"]}
        if e["mount"] == "FILE":
            spec["mount"] = True
        else:
            spec["as_env_var"] = e["env_var"]
        specs.append(spec)
        expected[e["key"]] = e["value_b64"]
    _, task = environment(specs)
    # The task body as the SDK's runtime would call it (no control plane here to start a run).
    failed = task.func(json.dumps(expected))
    if failed:
        return 1
    print(f"ok: {len(specs)} secrets read with the Flyte 2 SDK's access ({flyte.__version__})")
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "serialize":
        sys.exit(serialize(sys.argv[2]))
    sys.exit(run(sys.argv[1]))
