//! The `annotation` target: an annotation value (Flyte base32 of the protobuf text format),
//! also read as raw text. Never panics; what decodes re-encodes to the same request; base32 of
//! any text decodes exactly as the text parses; errors name the annotation.

use flyte_secret_spec::annotation::{self, MAX_ANNOTATION_LEN};
use flyte_secret_spec::request::SecretRequest;
use flyte_secret_spec::{base32, textproto};

use super::check_one_line;
use super::paths::request_rules;

fn request_round_trips(req: &SecretRequest) {
    let text = textproto::emit(req);
    assert_eq!(
        textproto::parse(text.as_bytes()).as_ref(),
        Ok(req),
        "text format does not round-trip: {text:?}"
    );
    let encoded = annotation::encode(req);
    if encoded.len() <= MAX_ANNOTATION_LEN {
        assert_eq!(
            annotation::decode(&encoded).as_ref(),
            Ok(req),
            "annotation does not round-trip"
        );
    }
}

pub(super) fn annotation_target(data: &[u8]) {
    if let Ok(bytes) = base32::decode(data) {
        let again = base32::encode(&bytes);
        assert_eq!(
            base32::decode(again.as_bytes()).as_deref(),
            Ok(&bytes[..]),
            "base32 re-encoding changes the bytes"
        );
    }
    let parsed = textproto::parse(data);
    match &parsed {
        Ok(req) => request_round_trips(req),
        Err(e) => check_one_line(&e.to_string()),
    }
    // Propeller's encoding of the input read as text decodes exactly as the text parses.
    if data.len() <= MAX_ANNOTATION_LEN / 8 * 5 {
        let decoded = annotation::decode(&base32::encode(data));
        match (&decoded, &parsed) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            _ => panic!("base32 + text disagrees with text: {decoded:?} vs {parsed:?}"),
        }
    }
    if let Ok(value) = std::str::from_utf8(data) {
        match annotation::decode(value) {
            Ok(req) => {
                request_round_trips(&req);
                request_rules(&req);
            }
            Err(e) => check_one_line(&e.to_string()),
        }
        if let Err(e) = annotation::decode_all([("flyte.secrets/s7", value)]) {
            assert_eq!(e.annotation, "flyte.secrets/s7");
            assert!(e.to_string().contains("[flyte.secrets/s7]"), "{e}");
        }
    }
}
