//! Property tests: the decoder never panics on any input, and what we encode decodes back.

use flyte_secret_spec::naming::Layout;
use flyte_secret_spec::{MountRequirement, SecretRequest, annotation, base32, textproto};
use proptest::prelude::*;

fn mount() -> impl Strategy<Value = MountRequirement> {
    prop_oneof![
        Just(MountRequirement::Any),
        Just(MountRequirement::EnvVar),
        Just(MountRequirement::File)
    ]
}

fn request() -> impl Strategy<Value = SecretRequest> {
    // Any Unicode, control characters and quotes included: the codec must carry them exactly.
    (
        any::<String>(),
        any::<String>(),
        any::<String>(),
        mount(),
        any::<String>(),
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn decode_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = base32::decode(&bytes);
        let _ = textproto::parse(&bytes);
        if let Ok(s) = std::str::from_utf8(&bytes) {
            let _ = annotation::decode(s);
        }
    }

    #[test]
    fn decode_never_panics_on_alphabet_strings(s in "[a-z1-6\\n]{0,400}") {
        let _ = annotation::decode(&s);
    }

    #[test]
    fn parse_never_panics_on_texty_input(s in "([a-z_]{1,20}|[:;,\"'\\\\ \\n#<>{}\\[\\]0-9xX]|\\\\[0-7xuU]){0,60}") {
        let _ = textproto::parse(s.as_bytes());
    }

    #[test]
    fn encode_then_decode_is_identity(req in request()) {
        let encoded = annotation::encode(&req);
        prop_assert_eq!(annotation::decode(&encoded).unwrap(), req.clone());
        prop_assert_eq!(textproto::parse(textproto::emit(&req).as_bytes()).unwrap(), req);
    }

    #[test]
    fn base32_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        prop_assert_eq!(base32::decode(base32::encode(&bytes).as_bytes()).unwrap(), bytes);
    }

    #[test]
    fn files_stay_below_the_mount(req in request()) {
        // Whatever a request says, the paths it maps to are relative and clean, or rejected.
        if let Ok(files) = Layout::default().files(&req) {
            for f in files {
                let p = f.as_str();
                prop_assert!(!p.starts_with('/'));
                prop_assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0')));
            }
        }
    }
}
