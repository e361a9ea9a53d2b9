//! The bad-input table, webhook side: hostile and malformed admission requests through the
//! real `webhook serve` over TLS. Every one gets a clear answer — a denial (HTTP 200,
//! `allowed: false`, code 400) naming the annotation and the secret, or HTTP 400/413 for a
//! body that is not a review — never a patch, never a panic, and the server keeps serving.
//! The agent side is `agent/tests/bad_input.rs`.

use flyte_secret_spec::annotation;
use flyte_secret_spec::base32;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use serde_json::{Value, json};

use flyte_secret_testkit::fixtures::push_secret;

use crate::common::{SecretVolume, Server, https, pki};
use crate::{pod, review};

const CANARY: &str = "CANARY-5e0c2d71-bad-input";

/// What a case sends.
enum Body {
    /// A CREATE review of this pod.
    Pod(Value),
    /// These bytes.
    Raw(Vec<u8>),
}

struct Case {
    name: &'static str,
    body: Body,
    /// HTTP status: 200 (a denial) or 400/413 (not a review).
    status: u16,
    /// In the denial message (200) or the body (400/413).
    want: String,
}

fn case(name: &'static str, body: Body, status: u16, want: impl Into<String>) -> Case {
    Case {
        name,
        body,
        status,
        want: want.into(),
    }
}

fn good() -> SecretRequest {
    SecretRequest::new("user-info", "user_secret").with_mount(MountRequirement::EnvVar)
}

/// The pod with a valid `flyte.secrets/s0` and `value` as `flyte.secrets/s1`.
fn with_value(value: impl Into<String>) -> Body {
    let mut p = pod(&[good()]);
    p["metadata"]["annotations"]["flyte.secrets/s1"] = Value::String(value.into());
    Body::Pod(p)
}

/// The pod with a valid `s0` and these text-format bytes, encoded as propeller would.
fn with_text(text: &str) -> Body {
    with_value(base32::encode(text.as_bytes()))
}

/// The pod with a valid `s0` and `req` as `s1`.
fn with(req: SecretRequest) -> Body {
    Body::Pod(pod(&[good(), req]))
}

fn denied(name: &'static str, body: Body, want: impl Into<String>) -> Case {
    case(name, body, 200, want)
}

fn edited(f: impl FnOnce(&mut Value)) -> Body {
    let mut p = pod(&[good()]);
    f(&mut p);
    Body::Pod(p)
}

fn cases() -> Vec<Case> {
    let long = "x".repeat(256);
    let deep = vec!["d"; 33].join("/");
    let filler = "a".repeat(120);
    let many: Vec<SecretRequest> = (0..300)
        .map(|i| SecretRequest::new(format!("g{i}-{filler}"), format!("k-{filler}")))
        .collect();
    let s1 = "flyte.secrets/s1";
    vec![
        // Not Flyte base32.
        denied(
            "upper case",
            with_value("NNSXSORA"),
            format!("error unmarshaling secret [{s1}]: not Flyte base32: byte 0x4e at offset 0"),
        ),
        denied(
            "digit outside the alphabet",
            with_value("nnsxsor0"),
            "byte 0x30 at offset 7 is not in Flyte's base32 alphabet",
        ),
        denied("padding", with_value("mzxw===="), "byte 0x3d at offset 4"),
        denied(
            "NUL byte",
            with_value("nns\u{0}xsora"),
            "byte 0x00 at offset 3",
        ),
        denied(
            "impossible length",
            with_value("m"),
            "1 base32 symbols cannot be a complete encoding",
        ),
        denied(
            "300 KB value",
            with_value("a".repeat(300 * 1024)),
            format!(
                "error unmarshaling secret [{s1}]: value is 307200 characters, over Flyte's limit of 262144"
            ),
        ),
        denied(
            "one over the limit",
            with_value("a".repeat(262_145)),
            "value is 262145 characters",
        ),
        // Not the text format of core.Secret.
        denied(
            "unknown field",
            with_text("key: \"k\"\nbad: 1\n"),
            format!(
                "error unmarshaling secret [{s1}]: not a flyteidl.core.Secret in protobuf text format: line 2: unknown field name \"bad\""
            ),
        ),
        denied(
            "repeated field",
            with_text("key: \"a\"\nkey: \"b\"\n"),
            "line 2: non-repeated field \"key\" was repeated",
        ),
        denied(
            "enum out of range",
            with_text("key: \"k\"\nmount_requirement: 7\n"),
            "invalid mount requirement [7]",
        ),
        denied(
            "negative enum",
            with_text("key: \"k\"\nmount_requirement: -1\n"),
            "invalid mount requirement [-1]",
        ),
        denied(
            "enum over 32 bits",
            with_text("key: \"k\"\nmount_requirement: 4294967297\n"),
            "invalid enum value \"4294967297\"",
        ),
        denied(
            "enum name in lower case",
            with_text("key: \"k\"\nmount_requirement: file\n"),
            "invalid enum value \"file\"",
        ),
        denied(
            "not UTF-8",
            with_text("key: \"\\377\"\n"),
            "field \"key\" is not valid UTF-8",
        ),
        denied(
            "unterminated string",
            with_text("key: \"abc\n"),
            "unmatched quote",
        ),
        denied(
            "extension syntax",
            with_text("[ext]: 1\n"),
            "extensions and Any are not fields",
        ),
        denied(
            "control characters in an escape",
            with_text("key: \"\\0\u{0}\u{1}\"\n"),
            "\\0\\0\\u{1} contains non-octal digits",
        ),
        // Unsafe requests.
        denied(
            "traversal in group",
            with(SecretRequest::new("../../etc", "passwd")),
            format!("{s1}: secret ../../etc/passwd: group has a `.` or `..` path component"),
        ),
        denied(
            "traversal in key",
            with(SecretRequest::new("g", "a/../../b")),
            "secret g/a/../../b: key has a `.` or `..` path component",
        ),
        denied(
            "absolute group",
            with(SecretRequest::new("/etc", "shadow")),
            "secret /etc/shadow: group must be a relative path",
        ),
        // A key that starts with `/` is a JSON Pointer into the secret (`/etc/shadow` names
        // the field etc/shadow, written under the group's directory); one that cannot be a
        // pointer, or walks out, is denied.
        denied(
            "pointer key walking out",
            with(SecretRequest::new("g", "/../etc/shadow")),
            "secret g//../etc/shadow: key \"/../etc/shadow\" is a JSON Pointer that has a member name that has a `.` or `..` path component",
        ),
        denied(
            "pointer key with a bad escape",
            with(SecretRequest::new("g", "/a/~2")),
            "is a JSON Pointer that has `~` not followed by 0 or 1",
        ),
        denied(
            "pointer key without a group",
            with(SecretRequest::new("", "/etc/shadow")),
            "is a JSON Pointer that needs a group",
        ),
        denied(
            "NUL in key",
            with(SecretRequest::new("g", "k\0")),
            "secret g/k\\0: key contains a control character",
        ),
        denied(
            "newline in group",
            with(SecretRequest::new("g\n", "k")),
            "secret g\\n/k: group contains a control character",
        ),
        denied(
            "escape sequence in key",
            with(SecretRequest::new("g", "\u{1b}[2J")),
            "key contains a control character",
        ),
        denied(
            "traversal in group_version",
            with(SecretRequest::new("g", "k").with_group_version("..")),
            "secret g/k@..: group_version has a `.` or `..` path component",
        ),
        denied(
            "slash in group_version",
            with(SecretRequest::new("g", "k").with_group_version("a/b")),
            "group_version must be a single path component",
        ),
        denied(
            "no key",
            with(SecretRequest::new("g", "")),
            format!(
                "{s1}: secret g: no configured backend can serve it: kubernetes: key is required"
            ),
        ),
        denied(
            "..data group",
            with(SecretRequest::new("..data", "k")),
            "secret ..data/k: group must not start with `..`",
        ),
        denied(
            "..data key without group",
            with(SecretRequest::new("", "..data")),
            "secret ..data: key must not start with `..`",
        ),
        denied(
            "component over 255 bytes",
            with(SecretRequest::new("g", long)),
            "key has a path component longer than 255 bytes",
        ),
        denied(
            "33 components",
            with(SecretRequest::new(deep, "k")),
            "group has more than 32 path components",
        ),
        denied(
            "lower-case env var",
            with(SecretRequest::new("g", "k").with_env_var("lower")),
            "secret g/k: invalid environment variable name \"lower\"",
        ),
        denied(
            "dash in env var",
            with(SecretRequest::new("g", "k").with_env_var("A-B")),
            "invalid environment variable name \"A-B\"",
        ),
        denied(
            "env var starting with a digit",
            with(SecretRequest::new("g", "k").with_env_var("1A")),
            "invalid environment variable name \"1A\"",
        ),
        denied(
            "= in env var",
            with(SecretRequest::new("g", "k").with_env_var("A=B")),
            "invalid environment variable name \"A=B\"",
        ),
        // Requests no configured backend can serve.
        denied(
            "not a Secret name",
            with(SecretRequest::new("Bad_Name", "k")),
            "secret Bad_Name/k: no configured backend can serve it: kubernetes: Kubernetes Secret name \"Bad_Name\" is not a DNS-1123 subdomain",
        ),
        denied(
            "not a Secret key",
            with(SecretRequest::new("g", "a b")),
            "Kubernetes Secret key \"a b\" must match [-._a-zA-Z0-9]+",
        ),
        denied(
            "managed name with a dot",
            with(SecretRequest::new("", "my.key")),
            "whose key must match ^[-a-zA-Z0-9_]+$",
        ),
        denied(
            "managed secret in a Flyte 1 pod",
            edited(|p| {
                p["metadata"]["labels"] = json!({"inject-flyte-secrets": "true"});
                p["metadata"]["annotations"]["flyte.secrets/s1"] =
                    json!(annotation::encode(&SecretRequest::new("", "openai_key")));
            }),
            "secret openai_key: has no group, so it is a Flyte 2 managed secret, but the plan has no scope (the pod has no `project` and `domain` labels",
        ),
        // Conflicting requests.
        denied(
            "two secrets, one file",
            with(SecretRequest::new("secret/app", "k")).and(SecretRequest::new("secret/App", "k")),
            "flyte.secrets/s1, flyte.secrets/s2: secrets secret/app/k and secret/App/k conflict: both need secret/app/k",
        ),
        denied(
            "a file where a directory goes",
            with(SecretRequest::new("secret/a", "b")).and(SecretRequest::new("secret/a/b", "c")),
            "secrets secret/a/b and secret/a/b/c conflict: both need secret/a/b as both a file and a directory",
        ),
        denied(
            "two secrets, one env var",
            Body::Pod(pod(&[
                SecretRequest::new("a", "x")
                    .with_mount(MountRequirement::EnvVar)
                    .with_env_var("X"),
                SecretRequest::new("b", "y")
                    .with_mount(MountRequirement::EnvVar)
                    .with_env_var("X"),
            ])),
            "flyte.secrets/s0, flyte.secrets/s1: secrets a/x and b/y conflict: both need env var X",
        ),
        denied(
            "plan too large for an env var",
            Body::Pod(pod(&many)),
            "flyte.secrets/s0 … flyte.secrets/s299: the fetch plan for these 300 secrets is",
        ),
        // The pod already uses what the injection needs.
        denied(
            "volume name taken",
            edited(|p| {
                p["spec"]["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "flyte-secrets", "emptyDir": {}}));
            }),
            "cannot inject secrets: the pod already has a volume named flyte-secrets",
        ),
        denied(
            "container name taken",
            edited(|p| {
                p["spec"]["containers"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "flyte-secret-agent", "image": "evil"}));
            }),
            "cannot inject secrets: the pod already has a container named flyte-secret-agent",
        ),
        denied(
            "mount path taken",
            edited(|p| {
                p["spec"]["containers"][0]["volumeMounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": "aws-secrets", "mountPath": "/etc/flyte/secrets/"}));
            }),
            "already mounts volume aws-secrets at /etc/flyte/secrets/",
        ),
        denied(
            "not a pod",
            edited(|p| p["spec"]["containers"] = json!("nope")),
            "the object is not a valid Pod",
        ),
        case(
            "annotation not a string",
            edited(|p| p["metadata"]["annotations"]["flyte.secrets/s1"] = json!(7)),
            400,
            "malformed AdmissionReview: invalid type: integer `7`, expected a string",
        ),
        // Not an AdmissionReview.
        case(
            "not JSON",
            Body::Raw(b"\x00\xffnot json".to_vec()),
            400,
            "malformed AdmissionReview",
        ),
        case(
            "JSON but not a review",
            Body::Raw(br#"{"hello": "world"}"#.to_vec()),
            400,
            "malformed AdmissionReview",
        ),
        case(
            "unsupported apiVersion",
            Body::Raw(
                br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{}}"#
                    .to_vec(),
            ),
            400,
            "malformed AdmissionReview",
        ),
        case(
            "no request",
            Body::Raw(br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec()),
            400,
            "malformed AdmissionReview",
        ),
        case(
            "repeated request field",
            Body::Raw({
                let r = String::from_utf8(review("r", "CREATE", &pod(&[good()]))).unwrap();
                let inner = &r[r.find("\"request\"").unwrap()..r.len() - 1];
                format!("{},{inner}}}", &r[..r.len() - 1]).into_bytes()
            }),
            400,
            "duplicate field `request`",
        ),
        case(
            "deeply nested",
            Body::Raw(format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes()),
            400,
            "malformed AdmissionReview",
        ),
        case(
            "body over 8 MiB",
            Body::Raw(vec![b' '; 8 * 1024 * 1024 + 1]),
            413,
            "body too large",
        ),
    ]
}

trait And {
    fn and(self, req: SecretRequest) -> Body;
}

impl And for Body {
    /// Adds `req` as the next annotation.
    fn and(self, req: SecretRequest) -> Body {
        let Body::Pod(mut p) = self else {
            return self;
        };
        push_secret(&mut p, &req);
        Body::Pod(p)
    }
}

#[tokio::test]
async fn hostile_requests_are_denied_clearly_and_nothing_is_patched() {
    let table = cases();
    assert!(table.len() >= 40, "{} cases", table.len());
    let dir = tempfile::tempdir().unwrap();
    let p = pki();
    let volume = SecretVolume::new(dir.path(), &p);
    // Kubernetes first, then Vault (so Vault paths, which may nest, can conflict); the
    // canary sits in the env under the names a careless webhook could read.
    let mut server = Server::start(
        &volume.cert(),
        &volume.key(),
        &[
            "--log",
            "debug",
            "--backends",
            r#"[{"type":"kubernetes"},{"type":"vault","address":"https://vault:8200","auth":{"method":"token"}}]"#,
        ],
        &[
            ("_FSEC_USER-INFO_USER_SECRET", CANARY),
            ("FLYTE_SECRET_USER-INFO_USER_SECRET", CANARY),
        ],
    );
    let mut failures = Vec::new();
    for (i, case) in table.iter().enumerate() {
        let uid = format!("bad-{i}");
        let body = match &case.body {
            Body::Pod(p) => review(&uid, "CREATE", p),
            Body::Raw(b) => b.clone(),
        };
        let reply = https(server.addr, &p.ca_pem, "POST", "/mutate", &body).await;
        let text = String::from_utf8_lossy(&reply.body).to_string();
        let mut problems = Vec::new();
        if reply.status != case.status {
            problems.push(format!("HTTP {}, want {}", reply.status, case.status));
        }
        if text.contains(CANARY) {
            problems.push("the canary leaked".into());
        }
        if case.status == 200 && reply.status == 200 {
            let rsp = reply.json();
            let r = &rsp["response"];
            if r["uid"] != uid.as_str() || r["allowed"] != false || r["status"]["code"] != 400 {
                problems.push(format!("not a denial of {uid}"));
            }
            if r.get("patch").is_some() {
                problems.push("a denial carries a patch".into());
            }
            let message = r["status"]["message"].as_str().unwrap_or_default();
            if !message.contains(&case.want) {
                problems.push(format!("message lacks {:?}", case.want));
            }
            if message.contains('\n') || message.contains('\0') {
                problems.push("message is not one line".into());
            }
        } else if !text.contains(&case.want) {
            problems.push(format!("body lacks {:?}", case.want));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n  got: {}",
                case.name,
                problems.join("; "),
                text.chars().take(700).collect::<String>()
            ));
        }
    }
    // Still serving: a good pod is admitted.
    let ok = https(
        server.addr,
        &p.ca_pem,
        "POST",
        "/mutate",
        &review("after", "CREATE", &pod(&[good()])),
    )
    .await
    .json();
    assert_eq!(ok["response"]["allowed"], true);
    let logs = server.stop();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(!logs.contains("panicked"), "{logs}");
    assert!(!logs.contains(CANARY), "the canary leaked into the logs");
    let denials = logs.matches("\"denied\"").count();
    assert!(denials >= 40, "{denials} denials logged");
}
