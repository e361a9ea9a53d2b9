//! Flyte's pod annotations: `flyte.secrets/s<N>` = Flyte-base32 of the text format of
//! `core.Secret`, plus the label that selects pods for injection.
//!
//! Decoding is bounded (Flyte refuses descriptors over [`MAX_ANNOTATION_LEN`] characters) and
//! never panics on any input.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::base32::{self, Base32Error};
use crate::request::SecretRequest;
use crate::textproto::{self, TextError};

/// Prefix of every secret annotation key.
pub const ANNOTATION_PREFIX: &str = "flyte.secrets/s";
/// Label propeller puts on pods that request secrets.
pub const INJECT_LABEL: &str = "inject-flyte-secrets";
/// Value of [`INJECT_LABEL`].
pub const INJECT_LABEL_VALUE: &str = "true";
/// Propeller's limit on an encoded descriptor (`secret descriptor cannot exceed [262144]`).
pub const MAX_ANNOTATION_LEN: usize = 262_144;

/// Why one annotation value could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Longer than Flyte allows.
    #[error("value is {0} characters, over Flyte's limit of {MAX_ANNOTATION_LEN}")]
    TooLong(usize),
    /// Not Flyte base32.
    #[error("not Flyte base32: {0}")]
    Base32(#[from] Base32Error),
    /// Not the text format of `core.Secret`.
    #[error("not a flyteidl.core.Secret in protobuf text format: {0}")]
    Text(#[from] TextError),
}

/// A decode failure with the annotation it came from.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("error unmarshaling secret [{annotation}]: {source}")]
pub struct AnnotationError {
    /// The annotation key, e.g. `flyte.secrets/s0`.
    pub annotation: String,
    /// What was wrong with its value.
    pub source: DecodeError,
}

/// Encodes a request exactly as propeller's `marshalSecret` does.
pub fn encode(secret: &SecretRequest) -> String {
    base32::encode(textproto::emit(secret).as_bytes())
}

/// Decodes one annotation value.
pub fn decode(value: &str) -> Result<SecretRequest, DecodeError> {
    if value.len() > MAX_ANNOTATION_LEN {
        return Err(DecodeError::TooLong(value.len()));
    }
    let text = base32::decode(value.as_bytes())?;
    Ok(textproto::parse(&text)?)
}

/// The annotations propeller would write for `secrets`, keyed `flyte.secrets/s<index>`.
pub fn encode_all<'a>(
    secrets: impl IntoIterator<Item = &'a SecretRequest>,
) -> BTreeMap<String, String> {
    secrets
        .into_iter()
        .enumerate()
        .map(|(i, s)| (format!("{ANNOTATION_PREFIX}{i}"), encode(s)))
        .collect()
}

/// Whether an annotation key is one Flyte treats as a secret request (any key with the
/// prefix; like Flyte, the suffix is not parsed).
pub fn is_secret_annotation(key: &str) -> bool {
    key.starts_with(ANNOTATION_PREFIX)
}

/// Decodes every secret annotation of a pod. Returns `(annotation key, request)` ordered by
/// the numeric suffix (then by key), so the plan does not depend on map order. The first
/// failure is returned with the annotation it came from.
pub fn decode_all<'a, I>(annotations: I) -> Result<Vec<(String, SecretRequest)>, AnnotationError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let mut out = Vec::new();
    for (key, value) in annotations {
        if !is_secret_annotation(key) {
            continue;
        }
        let secret = decode(value).map_err(|source| AnnotationError {
            annotation: key.to_string(),
            source,
        })?;
        out.push((key.to_string(), secret));
    }
    out.sort_by(|(a, _), (b, _)| sort_key(a).cmp(&sort_key(b)));
    Ok(out)
}

fn sort_key(key: &str) -> (u64, &str) {
    let index = key[ANNOTATION_PREFIX.len()..].parse().unwrap_or(u64::MAX);
    (index, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::MountRequirement;

    #[test]
    fn decode_all_orders_by_index_and_names_the_failure() {
        let a = SecretRequest::new("a", "k");
        let b = SecretRequest::new("b", "k").with_mount(MountRequirement::File);
        let annotations = [
            ("flyte.secrets/s10", encode(&b)),
            ("other", "zzz".to_string()),
            ("flyte.secrets/s2", encode(&a)),
        ];
        let decoded = decode_all(annotations.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(
            decoded,
            vec![
                ("flyte.secrets/s2".to_string(), a),
                ("flyte.secrets/s10".to_string(), b)
            ]
        );

        let bad = [("flyte.secrets/s0", "NOPE")];
        let err = decode_all(bad.iter().map(|(k, v)| (*k, *v))).unwrap_err();
        assert_eq!(err.annotation, "flyte.secrets/s0");
        assert!(
            err.to_string()
                .starts_with("error unmarshaling secret [flyte.secrets/s0]: not Flyte base32")
        );
    }

    #[test]
    fn bounds_input() {
        let long = "a".repeat(MAX_ANNOTATION_LEN + 1);
        assert_eq!(
            decode(&long),
            Err(DecodeError::TooLong(MAX_ANNOTATION_LEN + 1))
        );
    }
}
