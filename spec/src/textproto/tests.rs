use super::*;
use crate::request::{MountRequirement, SecretRequest};

fn ok(text: &str) -> SecretRequest {
    parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn err(text: &str) -> String {
    parse(text.as_bytes()).expect_err(text).to_string()
}

#[test]
fn emits_like_marshal_text_string() {
    let s = SecretRequest::new("g\n\"\\\t\r\u{e9}\u{1}", "k").with_mount(MountRequirement::File);
    assert_eq!(
        emit(&s),
        "group: \"g\\n\\\"\\\\\\t\\r\\303\\251\\001\"\nkey: \"k\"\nmount_requirement: FILE\n"
    );
    assert_eq!(emit(&SecretRequest::default()), "");
}

#[test]
fn accepts_go_syntax_variants() {
    let want = SecretRequest::new("g", "k").with_mount(MountRequirement::EnvVar);
    for text in [
        "group: \"g\"\nkey: \"k\"\nmount_requirement: ENV_VAR\n",
        "group:'g' key:'k' mount_requirement:1",
        "group: \"g\", key: \"k\"; mount_requirement: 0x1",
        "# comment\ngroup: \"g\" # trailing\n key : \"k\" mount_requirement: 01",
        "group: \"\" \"g\" key: 'k' mount_requirement: +1",
        "group: \"\\147\" key: \"\\x6b\" mount_requirement: 0b1",
        "group: \"\\u0067\" key: \"\\U0000006b\" mount_requirement: 0o1",
        "key: \"k\" group: \"g\" mount_requirement: 0_1",
    ] {
        assert_eq!(ok(text), want, "{text:?}");
    }
    assert_eq!(ok("").key, "");
    assert_eq!(
        ok("key: \"a\\?\\a\\b\\f\\v\\'\"").key,
        "a?\u{7}\u{8}\u{c}\u{b}'"
    );
}

#[test]
fn rejects_what_go_rejects() {
    for (text, want) in [
        ("grp: \"g\"", "unknown field name \"grp\""),
        (
            "group: \"a\" group: \"b\"",
            "non-repeated field \"group\" was repeated",
        ),
        ("group \"g\"", "expected ':'"),
        ("group: g", "invalid string for group"),
        ("group: \"g", "unmatched quote"),
        ("group: \"a\nb\"", "unmatched quote"),
        ("key: \"\\q\"", "unknown escape"),
        ("key: \"\\8\"", "unknown escape"),
        ("key: \"\\1\"", "requires 2 following digits"),
        ("key: \"\\400\"", "out of range"),
        ("key: \"\\xZZ\"", "non-hexadecimal"),
        // Input echoed in a message is escaped: one line, no NUL.
        ("key: \"\\0\0\0\"", "\\0\\0\\0 contains non-octal"),
        ("key: \"\\x\n1\"", "unmatched quote"),
        ("key: \"\\x\t1\"", "\\x\\t1 contains non-hexadecimal"),
        ("key: \"\\U00110000\"", "not a valid Unicode code point"),
        ("mount_requirement: 3", "invalid mount requirement [3]"),
        ("mount_requirement: -1", "invalid mount requirement [-1]"),
        ("mount_requirement: 4294967297", "invalid enum value"),
        ("mount_requirement: file", "invalid enum value \"file\""),
        ("mount_requirement: \"FILE\"", "invalid enum value"),
        ("mount_requirement: 1__0", "invalid enum value"),
        ("key:", "missing value"),
        ("key", "expected ':', found end of input"),
        ("[ext]: 1", "extensions"),
        ("key: \"a\" }", "unknown field name \"}\""),
        ("key: \"\\377\"", "not valid UTF-8"),
        ("key: \"\u{1}\" @", "unexpected byte 0x40"),
    ] {
        let e = err(text);
        assert!(e.contains(want), "{text:?}: {e:?} lacks {want:?}");
    }
}

#[test]
fn reports_lines() {
    assert_eq!(
        err("key: \"k\"\n\nbad: 1"),
        "line 3: unknown field name \"bad\" in flyteidl.core.Secret"
    );
}
