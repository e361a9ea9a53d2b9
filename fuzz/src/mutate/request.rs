//! Secret requests and text-format messages generated from scratch (often hostile), and the
//! input strategies of the two targets built on them: `annotation` and `paths`.

use std::sync::Arc;

use flyte_secret_spec::annotation;
use flyte_secret_spec::request::{MountRequirement, SecretRequest};
use flyte_secret_spec::{base32, textproto};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::bytes::{MAX_LEN, apply_bytes, byte_op, mutated_seeds};
use super::dict::{BASE32_TOKENS, PATH_TOKENS};
use crate::Target;

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
