//! Flyte's own encoding and naming vectors (vendored in `spec/vectors/`), both ways: every
//! annotation decodes to its secret and every secret encodes to its annotation byte for byte.

use flyte_secret_spec::scoped::{Scope, decode_name, k8s_secret_name};
use flyte_secret_spec::{MountRequirement, SecretRequest, annotation, base32, textproto};
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("../vectors/flyte-vectors.json");
    serde_json::from_str(text).expect("vectors file is JSON")
}

fn secret_of(v: &Value) -> SecretRequest {
    let field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    SecretRequest {
        group: field("group"),
        group_version: field("group_version"),
        key: field("key"),
        mount_requirement: match v.get("mount_requirement").and_then(Value::as_str) {
            None => MountRequirement::Any,
            Some(name) => MountRequirement::from_name(name).expect("known enum name"),
        },
        env_var: field("env_var"),
    }
}

#[test]
fn alphabet_and_prefix_match() {
    let v = vectors();
    assert_eq!(
        v["base32_alphabet"].as_str().unwrap().as_bytes(),
        base32::ALPHABET
    );
    assert_eq!(v["annotation_prefix"], annotation::ANNOTATION_PREFIX);
    assert_eq!(v["padding"], false);
}

#[test]
fn every_vector_both_ways() {
    let v = vectors();
    let list = v["vectors"].as_array().expect("vectors array");
    assert!(
        list.len() >= 9,
        "expected Flyte's vectors, found {}",
        list.len()
    );
    for vector in list {
        let secret = secret_of(&vector["secret"]);
        let text = vector["text"].as_str().unwrap();
        let encoded = vector["annotation"].as_str().unwrap();
        assert_eq!(textproto::emit(&secret), text, "text of {secret:?}");
        assert_eq!(
            annotation::encode(&secret),
            encoded,
            "annotation of {secret:?}"
        );
        assert_eq!(
            annotation::decode(encoded).unwrap(),
            secret,
            "decoding {encoded}"
        );
        assert_eq!(
            textproto::parse(text.as_bytes()).unwrap(),
            secret,
            "parsing {text:?}"
        );
    }
}

#[test]
fn scoped_names_match_flyte() {
    let v = vectors();
    let list = v["scoped_names"].as_array().expect("scoped_names array");
    assert!(!list.is_empty());
    for n in list {
        let scope = Scope {
            org: n["org"].as_str().unwrap().into(),
            domain: n["domain"].as_str().unwrap().into(),
            project: n["project"].as_str().unwrap().into(),
        };
        let name = n["name"].as_str().unwrap();
        let encoded = scope.encode_name(name);
        assert_eq!(encoded, n["encoded"].as_str().unwrap());
        assert_eq!(
            k8s_secret_name(&encoded),
            n["k8s_secret_name"].as_str().unwrap()
        );
        assert_eq!(decode_name(&encoded).unwrap(), (scope, name.to_string()));
    }
}

#[test]
fn flyte_test_quirk_vector_is_not_clean() {
    // flytepropeller's webhook test uses `nnsxsorcnv4v623fperca`, which decodes to a key with
    // bytes that are not UTF-8 (flyte-compat.md §2.3). We reject it instead of inventing text.
    let err = annotation::decode("nnsxsorcnv4v623fperca").unwrap_err();
    assert!(
        err.to_string().contains("not valid UTF-8") || err.to_string().contains("quote"),
        "{err}"
    );
}
