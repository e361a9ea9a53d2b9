//! Input generation for the long runs: proptest strategies that mutate the seed corpora
//! byte-wise (libFuzzer's classic mutations plus a per-target dictionary), mutate JSON
//! structurally (any node of a plan or an AdmissionReview, and pod-aware edits: annotations
//! holding encoded hostile requests, labels, securityContext ids, containers, volumes), and
//! generate requests and text-format messages from scratch. Everything shrinks, so a failure
//! is reported with a small input.

use std::sync::Arc;

use flyte_secret_spec::annotation;
use flyte_secret_spec::backend::{
    AwsBackend, Backend, KubernetesBackend, VaultAuth, VaultBackend, VaultEngine,
};
use flyte_secret_spec::naming::Layout;
use flyte_secret_spec::plan::{FetchPlan, FileAccess, Owner};
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_spec::scoped::Scope;
use flyte_secret_spec::{base32, textproto};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Value, json};

use crate::Target;

/// Largest input the byte mutations build (the webhook reads bodies up to 8 MiB, plans are
/// refused over 1 MiB; bigger inputs only slow the run down).
pub const MAX_LEN: usize = 1_200_000;

/// Path and name pieces that reach the interesting rules.
pub const PATH_TOKENS: &[&str] = &[
    "/",
    "..",
    ".",
    "\0",
    "\u{1}",
    "\n",
    "\r",
    "\t",
    "\u{7f}",
    "\u{85}",
    "\u{202e}",
    "\u{feff}",
    "..data",
    "..2026_01_01",
    "...",
    "secret/data/",
    "data/",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret",
    "arn:aws:s3:::bucket",
    ":",
    "kv1",
    "kv2",
    "db",
    "AWSCURRENT",
    "_FSEC_",
    "_UNION_",
    "__",
    "u__org__",
    "__domain__",
    "__project__",
    "__key__",
    "İ",
    "\u{212a}",
    "Ⱥ",
    "ß",
    "ǅ",
    "Σ",
    "~",
    "%2e%2e",
    "\\",
    " ",
    "=",
    "\"",
    "'",
    "$(HOME)",
    "user-info",
    "user_secret",
    "OPENAI_KEY",
    "a-b",
    "A.B",
    "-",
];

const TEXT_TOKENS: &[&str] = &[
    "key",
    "group",
    "group_version",
    "mount_requirement",
    "env_var",
    "unknown_field",
    ":",
    "\"",
    "'",
    "\\",
    "\\x",
    "\\u",
    "\\U",
    "\\0",
    "\\377",
    "\\400",
    "\\n",
    "#",
    "\n",
    ",",
    ";",
    "[",
    "]",
    "{",
    "}",
    "<",
    ">",
    "ENV_VAR",
    "FILE",
    "ANY",
    "0x2",
    "-1",
    "1_0",
    "4294967297",
];

const BASE32_TOKENS: &[&str] = &[
    "\n", "\r", "=", "0", "7", "8", "9", "A", "Z", "a", "6", "1", "mzxw", "aaaaaaaa", "nnsxsor",
    "ei", "eb",
];

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e400",
    "18446744073709551616",
    "\\u0000",
    "\\n",
    "\\ud800",
    "\"version\"",
    "\"secrets\"",
    "\"files\"",
    "\"..\"",
    "\"../x\"",
    "\"/etc\"",
    "\"..data\"",
    "\"mountPath\"",
    "\"backends\"",
    "{\"type\":\"vault\"}",
    "\"kv1\"",
    "\"db\"",
    "\"owner\"",
    "\"scope\"",
    "\"access\"",
    "\"group\"",
    "\"env\"",
    "\"request\"",
    "\"containers\"",
    "\"initContainers\"",
    "\"volumes\"",
    "\"volumeMounts\"",
    "\"flyte-secrets\"",
    "\"flyte-secret-agent\"",
    "\"/etc/flyte/secrets\"",
    "\"inject-flyte-secrets\"",
    "\"CREATE\"",
    "\"Pod\"",
    "\"flyte.secrets/s0\"",
    "\"runAsUser\"",
    "\"fsGroup\"",
];

fn dictionary(target: Target) -> &'static [&'static str] {
    match target {
        Target::Annotation => BASE32_TOKENS,
        Target::Plan | Target::Admission => JSON_TOKENS,
        Target::Paths => PATH_TOKENS,
    }
}

// === byte mutations ===

/// One libFuzzer-style mutation.
#[derive(Debug, Clone)]
pub enum ByteOp {
    /// Flip one bit.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Insert random bytes.
    Insert(Index, Vec<u8>),
    /// Insert a dictionary token (or a text-format token).
    Token(Index, Index, bool),
    /// Delete a range.
    Delete(Index, u16),
    /// Copy a range to another place.
    Duplicate(Index, Index, u16),
    /// Insert a range of another seed.
    Splice(Index, Index, Index, u16),
    /// Repeat a range many times (long values).
    Repeat(Index, u8, u16),
    /// Cut the input.
    Truncate(Index),
}

fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteOp::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteOp::Set(i, b)),
        2 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| ByteOp::Insert(i, b)),
        4 => (any::<Index>(), any::<Index>(), any::<bool>())
            .prop_map(|(i, t, text)| ByteOp::Token(i, t, text)),
        2 => (any::<Index>(), 1u16..64).prop_map(|(i, n)| ByteOp::Delete(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1u16..256)
            .prop_map(|(from, to, n)| ByteOp::Duplicate(from, to, n)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>(), 1u16..512)
            .prop_map(|(s, from, to, n)| ByteOp::Splice(s, from, to, n)),
        1 => (any::<Index>(), 1u8..16, 2u16..2048).prop_map(|(i, n, k)| ByteOp::Repeat(i, n, k)),
        1 => any::<Index>().prop_map(ByteOp::Truncate),
    ]
}

/// A position in `0..=len`.
fn at(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

/// Applies `ops` to a copy of `seed`.
pub fn apply_bytes(
    seed: &[u8],
    ops: &[ByteOp],
    corpus: &[Vec<u8>],
    dict: &[&str],
    max_len: usize,
) -> Vec<u8> {
    let mut data = seed.to_vec();
    for op in ops {
        let len = data.len();
        match op {
            ByteOp::Flip(i, bit) if len > 0 => data[i.index(len)] ^= 1 << bit,
            ByteOp::Set(i, b) if len > 0 => data[i.index(len)] = *b,
            ByteOp::Flip(..) | ByteOp::Set(..) => {}
            ByteOp::Insert(i, bytes) => {
                let p = at(i, len);
                data.splice(p..p, bytes.iter().copied());
            }
            ByteOp::Token(i, t, text) => {
                let tokens = if *text { TEXT_TOKENS } else { dict };
                let token = tokens[t.index(tokens.len())].as_bytes();
                let p = at(i, len);
                data.splice(p..p, token.iter().copied());
            }
            ByteOp::Delete(i, n) => {
                let p = at(i, len);
                let end = (p + usize::from(*n)).min(len);
                data.drain(p..end);
            }
            ByteOp::Duplicate(from, to, n) => {
                let p = at(from, len);
                let end = (p + usize::from(*n)).min(len);
                let chunk = data[p..end].to_vec();
                let q = at(to, len);
                data.splice(q..q, chunk);
            }
            ByteOp::Splice(s, from, to, n) if !corpus.is_empty() => {
                let other = &corpus[s.index(corpus.len())];
                let p = at(from, other.len());
                let end = (p + usize::from(*n)).min(other.len());
                let q = at(to, len);
                data.splice(q..q, other[p..end].iter().copied());
            }
            ByteOp::Splice(..) => {}
            ByteOp::Repeat(i, n, times) => {
                let p = at(i, len);
                let end = (p + usize::from(*n)).min(len);
                let chunk = data[p..end].to_vec();
                if !chunk.is_empty() {
                    let room = max_len.saturating_sub(len) / chunk.len();
                    let k = usize::from(*times).min(room);
                    let repeated: Vec<u8> = chunk.repeat(k);
                    data.splice(end..end, repeated);
                }
            }
            ByteOp::Truncate(i) => data.truncate(at(i, len)),
        }
        data.truncate(max_len);
    }
    data
}

/// Seeds from the corpus, mutated byte-wise.
pub fn mutated_seeds(target: Target, corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let n = corpus.len().max(1);
    (0..n, vec(byte_op(), 1..8))
        .prop_map(move |(i, ops)| {
            let seed = corpus.get(i).map(Vec::as_slice).unwrap_or_default();
            apply_bytes(seed, &ops, &corpus, dictionary(target), MAX_LEN)
        })
        .boxed()
}

// === requests and text format ===

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_-]{1,12}",
        3 => select(PATH_TOKENS).prop_map(String::from),
        1 => "\\PC{0,8}",
        1 => any::<String>(),
        1 => "[A-Z_][A-Z0-9_]{0,10}",
        1 => (200usize..300).prop_map(|n| "x".repeat(n)),
    ]
}

/// A request field: empty, a short concatenation of tokens, or a deep path.
pub fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => Just(String::new()),
        6 => vec(token(), 1..5).prop_map(|v| v.concat()),
        2 => vec(token(), 1..40).prop_map(|v| v.join("/")),
    ]
}

fn mount() -> impl Strategy<Value = MountRequirement> {
    select(
        &[
            MountRequirement::Any,
            MountRequirement::EnvVar,
            MountRequirement::File,
        ][..],
    )
}

/// A request, often hostile.
pub fn request() -> impl Strategy<Value = SecretRequest> {
    (
        field(),
        prop_oneof![3 => Just(String::new()), 1 => select(&["kv1", "kv2", "db", "AWSCURRENT", "KV2"][..]).prop_map(String::from), 1 => field()],
        field(),
        mount(),
        prop_oneof![3 => Just(String::new()), 2 => "[A-Z_][A-Z0-9_]{0,12}", 1 => field()],
    )
        .prop_map(
            |(group, group_version, key, mount_requirement, env_var)| SecretRequest {
                group,
                group_version,
                key,
                mount_requirement,
                env_var,
            },
        )
}

fn quoted() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => "[ -~&&[^\"'\\\\]]{0,12}",
        2 => select(&[
            "\\n", "\\t", "\\\"", "\\'", "\\\\", "\\a", "\\?", "\\0", "\\00", "\\012", "\\377",
            "\\400", "\\x4", "\\x41", "\\xZZ", "\\u00e9", "\\ud800", "\\U0001F600", "\\U00110000",
            "\\q", "\\", "\n", "\u{e9}", "\u{1}",
        ][..])
        .prop_map(String::from),
        1 => select(PATH_TOKENS).prop_map(String::from),
    ];
    (select(&['"', '\''][..]), vec(piece, 0..8), any::<bool>()).prop_map(|(q, pieces, close)| {
        let mut s = String::new();
        s.push(q);
        s.push_str(&pieces.concat());
        if close {
            s.push(q);
        }
        s
    })
}

/// A text-format message, close to what Go's parser accepts.
pub fn text_format() -> impl Strategy<Value = Vec<u8>> {
    let name = select(
        &[
            "group",
            "group_version",
            "key",
            "mount_requirement",
            "env_var",
            "Group",
            "unknown",
            "[ext]",
            "#c\nkey",
            "",
        ][..],
    );
    let sep = select(&[": ", ":", " : ", "", ":\n", ": # c\n"][..]);
    let value = prop_oneof![
        4 => quoted(),
        1 => vec(quoted(), 2..4).prop_map(|v| v.join(" ")),
        2 => select(&[
            "ANY", "ENV_VAR", "FILE", "0", "1", "2", "3", "-1", "0x2", "02", "0b1", "0o1", "1_0",
            "0_1", "4294967297", "file", "+1", "-0", "0x", "08",
        ][..])
        .prop_map(String::from),
        1 => "[a-z0-9._+-]{0,6}",
    ];
    let end = select(&["\n", " ", ",", ";", "", "\r\n", " # trailing\n"][..]);
    vec((name, sep, value, end), 0..7).prop_map(|fields| {
        fields
            .into_iter()
            .map(|(n, s, v, e)| format!("{n}{s}{v}{e}"))
            .collect::<String>()
            .into_bytes()
    })
}

/// Inputs for the annotation target.
pub fn annotation_inputs(corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let encoded_and_mutated = (request(), vec(byte_op(), 0..4)).prop_map(|(req, ops)| {
        apply_bytes(
            annotation::encode(&req).as_bytes(),
            &ops,
            &[],
            BASE32_TOKENS,
            MAX_LEN,
        )
    });
    prop_oneof![
        3 => mutated_seeds(Target::Annotation, corpus),
        3 => encoded_and_mutated,
        3 => text_format().prop_map(|t| base32::encode(&t).into_bytes()),
        2 => text_format(),
        1 => request().prop_map(|r| textproto::emit(&r).into_bytes()),
        1 => vec(any::<u8>(), 0..256),
    ]
    .boxed()
}

/// Inputs for the paths target: fields joined with `0xff`.
pub fn paths_inputs(corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let fields = vec(field(), 1..8).prop_map(|fields| {
        let mut out = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(0xff);
            }
            out.extend_from_slice(f.as_bytes());
        }
        out
    });
    prop_oneof![
        4 => fields,
        3 => mutated_seeds(Target::Paths, corpus),
        1 => vec(any::<u8>(), 0..128),
    ]
    .boxed()
}

// === JSON mutations ===

/// A JSON leaf (or small container) to put somewhere.
pub fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => select(&[
            0i64, -1, 1, 2, 7, 65532, 2_147_483_647, 4_294_967_295, 4_294_967_296, i64::MAX,
            i64::MIN,
        ][..])
        .prop_map(|n| json!(n)),
        1 => Just(json!(1.5)),
        1 => Just(json!(1e300)),
        4 => field().prop_map(Value::String),
        1 => Just(json!({})),
        1 => Just(json!([])),
        1 => Just(json!([{}])),
    ]
}

/// An edit at some node of a JSON document, found by walking down with the indexes.
#[derive(Debug, Clone)]
pub enum JsonOp {
    /// Replace the node.
    Replace(Vec<Index>, Value),
    /// Remove the node from its parent.
    Remove(Vec<Index>),
    /// Add a member (objects) or element (arrays) to the node.
    Add(Vec<Index>, String, Value),
    /// Duplicate an array element in place.
    Duplicate(Vec<Index>),
}

fn json_op() -> impl Strategy<Value = JsonOp> {
    let path = vec(any::<Index>(), 0..8);
    let key = prop_oneof![
        2 => select(&[
            "version", "secrets", "files", "env", "request", "backends", "mountPath", "owner",
            "scope", "access", "timeouts", "annotation", "group", "key", "groupVersion",
            "mountRequirement", "envVar", "type", "auth", "spec", "metadata", "containers",
            "initContainers", "volumes", "volumeMounts", "securityContext", "annotations",
            "labels", "object", "operation", "subResource", "kind", "uid", "extra",
        ][..])
        .prop_map(String::from),
        1 => field(),
    ];
    prop_oneof![
        3 => (path.clone(), leaf()).prop_map(|(p, v)| JsonOp::Replace(p, v)),
        2 => path.clone().prop_map(JsonOp::Remove),
        2 => (path.clone(), key, leaf()).prop_map(|(p, k, v)| JsonOp::Add(p, k, v)),
        1 => path.prop_map(JsonOp::Duplicate),
    ]
}

/// Walks from `root` following `path` while the nodes are containers; returns the route
/// taken as JSON-pointer-free steps.
fn walk(root: &Value, path: &[Index]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut node = root;
    for i in path {
        match node {
            Value::Object(m) if !m.is_empty() => {
                let k = m.keys().nth(i.index(m.len())).cloned().unwrap_or_default();
                node = &m[&k];
                steps.push(Step::Key(k));
            }
            Value::Array(a) if !a.is_empty() => {
                let j = i.index(a.len());
                node = &a[j];
                steps.push(Step::At(j));
            }
            _ => break,
        }
    }
    steps
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    At(usize),
}

fn node_mut<'a>(root: &'a mut Value, steps: &[Step]) -> Option<&'a mut Value> {
    let mut node = root;
    for s in steps {
        node = match (s, node) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Step::At(j), Value::Array(a)) => a.get_mut(*j)?,
            _ => return None,
        };
    }
    Some(node)
}

/// Applies one JSON edit.
pub fn apply_json(doc: &mut Value, op: &JsonOp) {
    match op {
        JsonOp::Replace(path, v) => {
            let steps = walk(doc, path);
            if let Some(n) = node_mut(doc, &steps) {
                *n = v.clone();
            }
        }
        JsonOp::Remove(path) => {
            let steps = walk(doc, path);
            if let Some((last, parent)) = steps.split_last()
                && let Some(p) = node_mut(doc, parent)
            {
                match (last, p) {
                    (Step::Key(k), Value::Object(m)) => {
                        m.remove(k);
                    }
                    (Step::At(j), Value::Array(a)) => {
                        a.remove(*j);
                    }
                    _ => {}
                }
            }
        }
        JsonOp::Add(path, key, v) => {
            let steps = walk(doc, path);
            match node_mut(doc, &steps) {
                Some(Value::Object(m)) => {
                    m.insert(key.clone(), v.clone());
                }
                Some(Value::Array(a)) => a.push(v.clone()),
                _ => {}
            }
        }
        JsonOp::Duplicate(path) => {
            let steps = walk(doc, path);
            if let Some((Step::At(j), parent)) = steps.split_last()
                && let Some(Value::Array(a)) = node_mut(doc, parent)
            {
                let copy = a[*j].clone();
                a.insert(*j, copy);
            }
        }
    }
}

// === plans ===

fn backend() -> impl Strategy<Value = Backend> {
    prop_oneof![
        (prop::option::of("[a-z0-9-]{1,10}"), "[a-z]{0,6}").prop_map(|(namespace, managed)| {
            Backend::Kubernetes(KubernetesBackend {
                namespace,
                managed_namespace: if managed.is_empty() {
                    "flyte".into()
                } else {
                    managed
                },
            })
        }),
        (
            prop::option::of("[a-z]{2}-[a-z]{4}-[1-3]"),
            prop::option::of(Just("http://127.0.0.1:1".to_string()))
        )
            .prop_map(|(region, endpoint)| Backend::Aws(AwsBackend { region, endpoint })),
        (
            select(&[VaultEngine::Kv1, VaultEngine::Kv2, VaultEngine::Db][..]),
            0u8..3
        )
            .prop_map(|(default_engine, auth)| {
                Backend::Vault(VaultBackend {
                    address: "https://vault:8200".into(),
                    auth: match auth {
                        0 => VaultAuth::Token { token_file: None },
                        1 => VaultAuth::Jwt {
                            role: "flyte".into(),
                            mount: "jwt".into(),
                            token_file: "/t".into(),
                        },
                        _ => VaultAuth::Kubernetes {
                            role: "flyte".into(),
                            mount: "kubernetes".into(),
                            token_file: "/t".into(),
                        },
                    },
                    namespace: None,
                    ca_cert_file: Some("/ca.pem".into()),
                    default_engine,
                    managed_mount: "secret".into(),
                })
            }),
    ]
}

/// A plan built with the spec's own API from random requests (requests that do not fit are
/// kept as they are, so the plan is often invalid in one specific way).
pub fn plan_json() -> impl Strategy<Value = Value> {
    (
        vec(backend(), 0..4),
        vec(request(), 0..6),
        any::<bool>(),
        prop::option::of((any::<u32>(), any::<u32>())),
        prop::option::of(("[a-z-]{0,8}", "[a-z-]{0,8}")),
        select(&["/etc/flyte/secrets", "/", "/a/", "/var/run/s"][..]),
        select(&["_FSEC_", "_UNION_"][..]),
    )
        .prop_map(|(backends, requests, group, owner, scope, mount, prefix)| {
            let layout = Layout {
                mount_path: mount.into(),
                env_prefix: prefix.into(),
            };
            let mut plan = FetchPlan::new(&layout, backends);
            plan.access = if group {
                FileAccess::Group
            } else {
                FileAccess::Owner
            };
            plan.owner = owner.map(|(uid, gid)| Owner { uid, gid });
            plan.scope = scope.map(|(d, p)| Scope::new(d, p));
            let mut raw = Vec::new();
            for (i, r) in requests.into_iter().enumerate() {
                if plan.push(format!("flyte.secrets/s{i}"), r.clone()).is_err() {
                    raw.push(json!({"request": r, "files": [r.key.clone()]}));
                }
            }
            let mut v = serde_json::to_value(&plan).expect("plans serialize");
            if let Some(Value::Array(secrets)) = v.get_mut("secrets") {
                secrets.extend(raw);
            }
            v
        })
}

/// Inputs for the plan target.
pub fn plan_inputs(corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let parsed: Arc<Vec<Value>> = Arc::new(
        corpus
            .iter()
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect(),
    );
    let n = parsed.len().max(1);
    let seeds_edited = (0..n, vec(json_op(), 1..6)).prop_map(move |(i, ops)| {
        let mut doc = parsed.get(i).cloned().unwrap_or(Value::Null);
        for op in &ops {
            apply_json(&mut doc, op);
        }
        serde_json::to_vec(&doc).expect("serializes")
    });
    let built = (plan_json(), vec(json_op(), 0..3)).prop_map(|(mut doc, ops)| {
        for op in &ops {
            apply_json(&mut doc, op);
        }
        serde_json::to_vec(&doc).expect("serializes")
    });
    prop_oneof![
        3 => seeds_edited,
        3 => built,
        2 => mutated_seeds(Target::Plan, corpus),
    ]
    .boxed()
}

// === admission reviews ===

/// What an annotation edit puts in a `flyte.secrets/s<N>` value.
#[derive(Debug, Clone)]
pub enum AnnotationValue {
    /// A request, encoded as propeller does.
    Request(SecretRequest),
    /// A text-format message (maybe invalid), encoded.
    Text(Vec<u8>),
    /// Any string.
    Raw(String),
    /// A long run of base32 (the length limit).
    Long(usize),
}

/// A pod-aware edit of an AdmissionReview.
#[derive(Debug, Clone)]
pub enum PodOp {
    /// Set annotation `flyte.secrets/s<N>`.
    Annotation(u8, AnnotationValue),
    /// Remove an annotation by position.
    DropAnnotation(Index),
    /// Set or remove a label.
    Label(&'static str, Option<String>),
    /// Set a securityContext id (pod or first container) to a number or a non-number.
    Id(&'static str, Value),
    /// Add a container or init container.
    Container {
        /// Init container?
        init: bool,
        /// Its name.
        name: String,
        /// A volume mount at this path, if any.
        mount: Option<(&'static str, &'static str)>,
        /// Env var names it already has.
        env: Vec<&'static str>,
        /// Give it a securityContext.
        run_as: Option<i64>,
    },
    /// Add a volume.
    Volume(&'static str),
    /// Set the operation.
    Operation(&'static str),
    /// Set or remove the request namespace.
    Namespace(Option<String>),
    /// Set the marker annotation.
    Marker(&'static str),
    /// A generic edit anywhere.
    Json(JsonOp),
}

fn annotation_value() -> impl Strategy<Value = AnnotationValue> {
    prop_oneof![
        6 => request().prop_map(AnnotationValue::Request),
        2 => text_format().prop_map(AnnotationValue::Text),
        1 => field().prop_map(AnnotationValue::Raw),
        1 => (1usize..300_000).prop_map(AnnotationValue::Long),
    ]
}

fn pod_op() -> impl Strategy<Value = PodOp> {
    prop_oneof![
        8 => (0u8..6, annotation_value()).prop_map(|(i, v)| PodOp::Annotation(i, v)),
        1 => any::<Index>().prop_map(PodOp::DropAnnotation),
        2 => (
            select(&["inject-flyte-secrets", "project", "domain", "organization"][..]),
            prop::option::of(prop_oneof![
                Just("true".to_string()),
                "[a-z0-9-]{0,12}",
                field()
            ])
        )
            .prop_map(|(k, v)| PodOp::Label(k, v)),
        2 => (
            select(&[
                "/spec/securityContext/runAsUser",
                "/spec/securityContext/runAsGroup",
                "/spec/securityContext/fsGroup",
                "/spec/containers/0/securityContext/runAsUser",
                "/spec/containers/0/securityContext/runAsGroup",
                "/spec/securityContext/supplementalGroups",
                "/spec/securityContext",
            ][..]),
            leaf()
        )
            .prop_map(|(p, v)| PodOp::Id(p, v)),
        2 => (
            any::<bool>(),
            prop_oneof![
                select(&["flyte-secret-agent", "sidecar", "x"][..]).prop_map(String::from),
                "[a-z0-9-]{1,12}"
            ],
            prop::option::of((
                select(&["flyte-secrets", "data", "kube-api-access-x"][..]),
                select(&[
                    "/etc/flyte/secrets",
                    "/etc/flyte/secrets/",
                    "/var/run/flyte/secrets",
                    "/var/run/secrets/kubernetes.io/serviceaccount",
                    "/data",
                ][..])
            )),
            vec(
                select(&[
                    "FLYTE_SECRETS_DEFAULT_DIR",
                    "FLYTE_SECRETS_ENV_PREFIX",
                    "_FSEC_USER-INFO_USER_SECRET",
                    "OPENAI_KEY",
                    "PATH_VAR",
                    "X",
                ][..]),
                0..4
            ),
            prop::option::of(select(&[0i64, 1000, -5, 4_294_967_296][..])),
        )
            .prop_map(|(init, name, mount, env, run_as)| PodOp::Container {
                init,
                name,
                mount,
                env,
                run_as,
            }),
        1 => select(&["flyte-secrets", "flyte-secret-agent-token", "data"][..]).prop_map(PodOp::Volume),
        1 => select(&["CREATE", "UPDATE", "DELETE", "CONNECT", "create"][..]).prop_map(PodOp::Operation),
        1 => prop::option::of(prop_oneof![
            Just("flytesnacks-development".to_string()),
            "[a-z0-9-]{0,12}"
        ])
        .prop_map(PodOp::Namespace),
        1 => select(&["true", "false", ""][..]).prop_map(PodOp::Marker),
        2 => json_op().prop_map(PodOp::Json),
    ]
}

fn object_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("an object")
}

/// Sets `value` at a JSON pointer under `root`, creating objects (and extending arrays by
/// one) on the way.
fn set_at(root: &mut Value, pointer: &str, value: Value) {
    let mut node = root;
    let tokens: Vec<&str> = pointer.split('/').skip(1).collect();
    for (i, t) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        if let Ok(j) = t.parse::<usize>()
            && let Value::Array(a) = node
        {
            if a.len() <= j {
                a.push(json!({}));
            }
            let j = j.min(a.len() - 1);
            if last {
                a[j] = value;
                return;
            }
            node = &mut a[j];
            continue;
        }
        let m = object_mut(node);
        if last {
            m.insert((*t).to_string(), value);
            return;
        }
        node = m.entry((*t).to_string()).or_insert_with(|| json!({}));
    }
}

/// The `request` object of a review, when there is one.
fn request_mut(review: &mut Value) -> Option<&mut Map<String, Value>> {
    review.as_object_mut()?.get_mut("request")?.as_object_mut()
}

/// Applies one pod edit to an AdmissionReview (edits that do not fit are skipped).
pub fn apply_pod(review: &mut Value, op: &PodOp) {
    if let PodOp::Json(op) = op {
        apply_json(review, op);
        return;
    }
    let Some(request) = request_mut(review) else {
        return;
    };
    match op {
        PodOp::Operation(o) => {
            request.insert("operation".into(), json!(o));
            return;
        }
        PodOp::Namespace(ns) => {
            match ns {
                Some(ns) => request.insert("namespace".into(), json!(ns)),
                None => request.remove("namespace"),
            };
            return;
        }
        _ => {}
    }
    let object = request.entry("object").or_insert_with(|| json!({}));
    match op {
        PodOp::Annotation(i, v) => {
            let value = match v {
                AnnotationValue::Request(r) => annotation::encode(r),
                AnnotationValue::Text(t) => base32::encode(t),
                AnnotationValue::Raw(s) => s.clone(),
                AnnotationValue::Long(n) => "a".repeat(*n),
            };
            set_at(
                object,
                &format!("/metadata/annotations/flyte.secrets~1s{i}"),
                Value::String(value),
            );
        }
        PodOp::DropAnnotation(i) => {
            if let Some(Value::Object(m)) = object.pointer_mut("/metadata/annotations")
                && !m.is_empty()
            {
                let k = m.keys().nth(i.index(m.len())).cloned().unwrap_or_default();
                m.remove(&k);
            }
        }
        PodOp::Label(k, v) => match v {
            Some(v) => set_at(
                object,
                &format!("/metadata/labels/{k}"),
                Value::String(v.clone()),
            ),
            None => {
                if let Some(Value::Object(m)) = object.pointer_mut("/metadata/labels") {
                    m.remove(*k);
                }
            }
        },
        PodOp::Id(p, v) => set_at(object, p, v.clone()),
        PodOp::Container {
            init,
            name,
            mount,
            env,
            run_as,
        } => {
            let mut c = json!({"name": name, "image": "busybox"});
            if let Some((volume, path)) = mount {
                c["volumeMounts"] = json!([{"name": volume, "mountPath": path}]);
            }
            if !env.is_empty() {
                c["env"] = Value::Array(
                    env.iter()
                        .map(|n| json!({"name": n, "value": "user"}))
                        .collect(),
                );
            }
            if let Some(uid) = run_as {
                c["securityContext"] = json!({"runAsUser": uid});
            }
            let list = if *init {
                "initContainers"
            } else {
                "containers"
            };
            let spec = object_mut(
                object_mut(object)
                    .entry("spec")
                    .or_insert_with(|| json!({})),
            );
            match spec.get_mut(list) {
                Some(Value::Array(a)) => a.push(c),
                _ => {
                    spec.insert(list.into(), json!([c]));
                }
            }
        }
        PodOp::Volume(name) => {
            let spec = object_mut(
                object_mut(object)
                    .entry("spec")
                    .or_insert_with(|| json!({})),
            );
            let v = json!({"name": name, "emptyDir": {}});
            match spec.get_mut("volumes") {
                Some(Value::Array(a)) => a.push(v),
                _ => {
                    spec.insert("volumes".into(), json!([v]));
                }
            }
        }
        PodOp::Marker(v) => set_at(
            object,
            "/metadata/annotations/flyte-secret-agent~1injected",
            json!(v),
        ),
        PodOp::Operation(_) | PodOp::Namespace(_) | PodOp::Json(_) => {}
    }
}

/// Inputs for the admission target.
pub fn admission_inputs(corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let parsed: Arc<Vec<Value>> = Arc::new(
        corpus
            .iter()
            .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
            .filter(|v| v.pointer("/request/object").is_some())
            .collect(),
    );
    let n = parsed.len().max(1);
    let edited = (0..n, vec(pod_op(), 1..7)).prop_map(move |(i, ops)| {
        let mut review = parsed.get(i).cloned().unwrap_or(Value::Null);
        for op in &ops {
            apply_pod(&mut review, op);
        }
        serde_json::to_vec(&review).expect("serializes")
    });
    prop_oneof![
        8 => edited,
        1 => mutated_seeds(Target::Admission, corpus),
    ]
    .boxed()
}

/// The input strategy of a target over its corpus.
pub fn inputs(target: Target, corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    match target {
        Target::Annotation => annotation_inputs(corpus),
        Target::Plan => plan_inputs(corpus),
        Target::Admission => admission_inputs(corpus),
        Target::Paths => paths_inputs(corpus),
    }
}
