//! [`emit`](super::emit): `core.Secret` written byte-exactly as Go's
//! `proto.MarshalTextString` does, so an annotation the webhook writes matches propeller's.

use crate::request::{MountRequirement, SecretRequest};

/// Writes `secret` as `proto.MarshalTextString` does.
pub fn emit(secret: &SecretRequest) -> String {
    let mut out = String::new();
    let mut string_field = |name: &str, value: &str| {
        if !value.is_empty() {
            out.push_str(name);
            out.push_str(": ");
            quote_into(&mut out, value.as_bytes());
            out.push('\n');
        }
    };
    string_field("group", &secret.group);
    string_field("group_version", &secret.group_version);
    string_field("key", &secret.key);
    if secret.mount_requirement != MountRequirement::Any {
        out.push_str("mount_requirement: ");
        out.push_str(secret.mount_requirement.name());
        out.push('\n');
    }
    if !secret.env_var.is_empty() {
        out.push_str("env_var: ");
        quote_into(&mut out, secret.env_var.as_bytes());
        out.push('\n');
    }
    out
}

fn quote_into(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                out.push('\\');
                for shift in [6, 3, 0] {
                    out.push(char::from(b'0' + ((b >> shift) & 7)));
                }
            }
        }
    }
    out.push('"');
}
