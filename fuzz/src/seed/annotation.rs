//! Seeds of the `annotation` target: every vector's annotation and text, hostile requests
//! encoded, hostile text-format messages (raw and encoded), and hostile base32.

use flyte_secret_spec::{annotation, base32};
use serde_json::Value;

use super::{hostile_requests, save};
use crate::Target;

const HOSTILE_TEXT: &[(&str, &str)] = &[
    ("unknown-field", "key: \"k\"\nbad: 1\n"),
    ("repeated-field", "key: \"a\"\nkey: \"b\"\n"),
    ("enum-7", "key: \"k\"\nmount_requirement: 7\n"),
    ("enum-negative", "key: \"k\"\nmount_requirement: -1\n"),
    ("enum-huge", "key: \"k\"\nmount_requirement: 4294967297\n"),
    ("enum-lowercase", "key: \"k\"\nmount_requirement: file\n"),
    ("enum-hex", "key: \"k\"\nmount_requirement: 0x2\n"),
    ("escapes", "key: \"\\x41\\101\\u00e9\\U0001F600\\n\"\n"),
    ("bad-octal", "key: \"\\400\"\n"),
    ("not-utf8", "key: \"\\377\"\n"),
    ("comments", "# c\nkey: 'k' # trailing\n, group: \"g\";\n"),
    ("adjacent", "key: \"a\" 'b' \"c\"\n"),
    ("unterminated", "key: \"abc\n"),
    ("extension", "[ext]: 1\n"),
    ("no-colon", "key \"k\"\n"),
];

/// Writes the `annotation` seeds.
pub(super) fn write(v: &Value) {
    // annotation: every vector's annotation and text, hostile requests and texts.
    for (i, vector) in v["vectors"].as_array().expect("vectors").iter().enumerate() {
        let a = vector["annotation"].as_str().expect("annotation");
        save(Target::Annotation, &format!("vector-{i}.b32"), a.as_bytes());
        let t = vector["text"].as_str().expect("text");
        save(Target::Annotation, &format!("vector-{i}.txt"), t.as_bytes());
    }
    for (name, r) in hostile_requests() {
        save(
            Target::Annotation,
            &format!("{name}.b32"),
            annotation::encode(&r).as_bytes(),
        );
    }
    for (name, text) in HOSTILE_TEXT {
        save(Target::Annotation, &format!("{name}.txt"), text.as_bytes());
        save(
            Target::Annotation,
            &format!("{name}.b32"),
            base32::encode(text.as_bytes()).as_bytes(),
        );
    }
    for (name, raw) in [
        ("uppercase", "NNSXSORAEJWXSX2LMV3SECQ"),
        ("outside-alphabet", "nnsxsor0ejwxsx2lmv3secq"),
        ("padding", "mzxw===="),
        ("length-1", "m"),
        ("wrapped", "nnsxsorae\r\njwxsx2lmv3secq\n"),
        ("flyte-quirk", "nnsxsorcnv4v623fperca"),
        ("empty", ""),
    ] {
        save(Target::Annotation, &format!("{name}.b32"), raw.as_bytes());
    }
}
