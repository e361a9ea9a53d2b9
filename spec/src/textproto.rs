//! The protobuf text format of `flyteidl.core.Secret`, as propeller writes it and as Go's
//! `proto.UnmarshalText` (golang/protobuf v1.5.4) reads it.
//!
//! [`emit`] is byte-exact with `proto.MarshalTextString`: one `name: value\n` line per set
//! field in declaration order, zero values omitted, enums by name, strings double-quoted with
//! `\n \r \t \" \\` escapes and every other byte outside `0x20..0x7e` as a 3-digit octal escape.
//!
//! [`parse`] accepts what Go accepts for this message: whitespace and `#` comments, field names
//! followed by a mandatory `:`, `,`/`;` separators, enums by name or number (Go's base-0
//! integer syntax), `"` or `'` quoted strings with C escapes (`\a \b \f \n \r \t \v \? \' \" \\`,
//! 3-digit octal, `\x`, `\u`, `\U`) and adjacent strings concatenated. It rejects unknown and
//! repeated fields like Go. Two deliberate differences, both stricter: string fields must be
//! valid UTF-8 (proto3 requires it; Go fails later when marshalling) and the mount requirement
//! must be one Flyte defines (Go keeps unknown numbers of open enums; propeller rejects them
//! with `invalid mount requirement`).

use thiserror::Error;

use crate::request::{MountRequirement, SecretRequest};

/// A text-format parse error with Go's 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct TextError {
    /// 1-based line of the token that failed.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Group,
    GroupVersion,
    Key,
    MountRequirement,
    EnvVar,
}

impl Field {
    fn from_name(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"group" => Self::Group,
            b"group_version" => Self::GroupVersion,
            b"key" => Self::Key,
            b"mount_requirement" => Self::MountRequirement,
            b"env_var" => Self::EnvVar,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Group => "group",
            Self::GroupVersion => "group_version",
            Self::Key => "key",
            Self::MountRequirement => "mount_requirement",
            Self::EnvVar => "env_var",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A token: its raw text and, for quoted strings, the unescaped bytes.
struct Token<'a> {
    raw: &'a [u8],
    unquoted: Option<Vec<u8>>,
    line: usize,
}

struct Lexer<'a> {
    rest: &'a [u8],
    line: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, line: usize, message: impl Into<String>) -> TextError {
        TextError {
            line,
            message: message.into(),
        }
    }

    fn skip_whitespace(&mut self) {
        let mut i = 0;
        while i < self.rest.len() {
            match self.rest[i] {
                b'#' => {
                    while i < self.rest.len() && self.rest[i] != b'\n' {
                        i += 1;
                    }
                }
                b'\n' => {
                    self.line += 1;
                    i += 1;
                }
                b' ' | b'\t' | b'\r' => i += 1,
                _ => break,
            }
        }
        self.rest = &self.rest[i..];
    }

    /// One token, or `None` at the end of input.
    fn advance(&mut self) -> Result<Option<Token<'a>>, TextError> {
        self.skip_whitespace();
        let Some(&first) = self.rest.first() else {
            return Ok(None);
        };
        let line = self.line;
        let len = match first {
            b'<' | b'>' | b'{' | b'}' | b':' | b'[' | b']' | b';' | b',' | b'/' => 1,
            b'"' | b'\'' => {
                let mut i = 1;
                while i < self.rest.len() && self.rest[i] != first && self.rest[i] != b'\n' {
                    if self.rest[i] == b'\\' && i + 1 < self.rest.len() {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= self.rest.len() || self.rest[i] != first {
                    return Err(self.err(line, "unmatched quote"));
                }
                let unquoted = unquote_c(&self.rest[1..i], first)
                    .map_err(|m| self.err(line, format!("invalid quoted string: {m}")))?;
                let raw = &self.rest[..=i];
                self.rest = &self.rest[i + 1..];
                return Ok(Some(Token {
                    raw,
                    unquoted: Some(unquoted),
                    line,
                }));
            }
            _ => {
                let n = self
                    .rest
                    .iter()
                    .take_while(|&&b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.' | b'_')
                    })
                    .count();
                if n == 0 {
                    return Err(self.err(line, format!("unexpected byte {first:#x}")));
                }
                n
            }
        };
        let raw = &self.rest[..len];
        self.rest = &self.rest[len..];
        Ok(Some(Token {
            raw,
            unquoted: None,
            line,
        }))
    }

    /// Like `advance`, but concatenates adjacent quoted strings as Go does.
    fn next(&mut self) -> Result<Option<Token<'a>>, TextError> {
        let Some(mut token) = self.advance()? else {
            return Ok(None);
        };
        if let Some(acc) = token.unquoted.as_mut() {
            loop {
                self.skip_whitespace();
                match self.rest.first() {
                    Some(b'"' | b'\'') => {}
                    _ => break,
                }
                if let Some(Token {
                    unquoted: Some(more),
                    ..
                }) = self.advance()?
                {
                    acc.extend_from_slice(&more);
                }
            }
        }
        Ok(Some(token))
    }

    /// Peeks at the next raw token without consuming it.
    fn peek_is(&mut self, symbols: &[u8]) -> bool {
        self.skip_whitespace();
        matches!(self.rest.first(), Some(b) if symbols.contains(b))
    }
}

/// Go's `unquoteC`: C-style escapes; the text must be valid UTF-8 once it has an escape or
/// the quote character.
fn unquote_c(s: &[u8], quote: u8) -> Result<Vec<u8>, String> {
    if !s.iter().any(|&b| b == b'\\' || b == quote) {
        return Ok(s.to_vec());
    }
    let text = std::str::from_utf8(s).map_err(|_| "invalid UTF-8".to_string())?;
    let mut out = Vec::with_capacity(s.len());
    let mut chars = text.char_indices();
    while let Some((_, c)) = chars.next() {
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((at, e)) = chars.next() else {
            return Err("string ends with a backslash".into());
        };
        let rest = &text[at + e.len_utf8()..];
        let simple = match e {
            'a' => Some(0x07),
            'b' => Some(0x08),
            'f' => Some(0x0c),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(0x0b),
            '?' => Some(b'?'),
            '\'' | '"' | '\\' => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let digits = match e {
            '0'..='7' => 2,
            'x' | 'X' => 2,
            'u' => 4,
            'U' => 8,
            _ => return Err(format!("unknown escape \\{}", e.escape_debug())),
        };
        let Some(arg) = rest.get(..digits) else {
            return Err(format!("\\{e} requires {digits} following digits"));
        };
        match e {
            '0'..='7' => {
                let mut octal = String::with_capacity(3);
                octal.push(e);
                octal.push_str(arg);
                let v = u8::from_str_radix(&octal, 8).map_err(|_| {
                    // Escaped: the digits come from the input and may be control characters.
                    format!(
                        "\\{} contains non-octal digits or is out of range",
                        octal.escape_debug()
                    )
                })?;
                out.push(v);
            }
            _ => {
                if !arg.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(format!(
                        "\\{e}{} contains non-hexadecimal digits",
                        arg.escape_debug()
                    ));
                }
                let v =
                    u32::from_str_radix(arg, 16).map_err(|_| format!("\\{e}{arg} is invalid"))?;
                if matches!(e, 'x' | 'X') {
                    out.push(v as u8);
                } else {
                    if v > 0x10ffff {
                        return Err(format!("\\{e}{arg} is not a valid Unicode code point"));
                    }
                    // Go turns surrogates into U+FFFD.
                    let c = char::from_u32(v).unwrap_or(char::REPLACEMENT_CHARACTER);
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        // Skip the digits we consumed.
        for _ in 0..arg.chars().count() {
            chars.next();
        }
    }
    Ok(out)
}

/// Go's `strconv.ParseInt(s, 0, 32)`: optional sign, `0x`/`0o`/`0b`/leading-`0` prefixes,
/// `_` separators where Go allows them.
fn parse_go_int32(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if unsigned.is_empty() {
        return None;
    }
    let lower = unsigned.to_ascii_lowercase();
    let (radix, digits) = if lower.len() >= 3 && lower.starts_with("0x") {
        (16, &lower[2..])
    } else if lower.len() >= 3 && lower.starts_with("0o") {
        (8, &lower[2..])
    } else if lower.len() >= 3 && lower.starts_with("0b") {
        (2, &lower[2..])
    } else if let Some(rest) = lower.strip_prefix('0') {
        (8, rest)
    } else {
        (10, &lower[..])
    };
    if digits.contains('_') && !underscores_ok(unsigned) {
        return None;
    }
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    let magnitude = if cleaned.is_empty() {
        if radix == 8 { 0 } else { return None }
    } else {
        if !cleaned.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        i64::from_str_radix(&cleaned, radix).ok()?
    };
    let value = if negative { -magnitude } else { magnitude };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&value)
        .then_some(value)
}

/// Go's `underscoreOK`: `_` only between digits or after a base prefix.
fn underscores_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Parses the text format of `core.Secret`. Never panics.
pub fn parse(input: &[u8]) -> Result<SecretRequest, TextError> {
    let mut lexer = Lexer {
        rest: input,
        line: 1,
    };
    let mut secret = SecretRequest::default();
    let mut seen = 0u8;
    while let Some(name) = lexer.next()? {
        if name.raw == b"[" {
            return Err(lexer.err(
                name.line,
                "extensions and Any are not fields of flyteidl.core.Secret",
            ));
        }
        let Some(field) = Field::from_name(name.raw) else {
            return Err(lexer.err(
                name.line,
                format!(
                    "unknown field name {:?} in flyteidl.core.Secret",
                    String::from_utf8_lossy(name.raw)
                ),
            ));
        };
        if seen & field.bit() != 0 {
            return Err(lexer.err(
                name.line,
                format!("non-repeated field {:?} was repeated", field.name()),
            ));
        }
        seen |= field.bit();

        match lexer.next()? {
            Some(t) if t.raw == b":" => {}
            Some(t) => {
                return Err(lexer.err(
                    t.line,
                    format!("expected ':', found {:?}", String::from_utf8_lossy(t.raw)),
                ));
            }
            None => return Err(lexer.err(lexer.line, "expected ':', found end of input")),
        }

        let Some(value) = lexer.next()? else {
            return Err(lexer.err(
                lexer.line,
                format!("missing value for field {:?}", field.name()),
            ));
        };
        if field == Field::MountRequirement {
            let mount = match parse_go_int32(value.raw) {
                Some(n) => MountRequirement::from_number(n).ok_or_else(|| {
                    lexer.err(value.line, format!("invalid mount requirement [{n}]: Flyte defines 0 (ANY), 1 (ENV_VAR), 2 (FILE)"))
                })?,
                None => std::str::from_utf8(value.raw)
                    .ok()
                    .and_then(MountRequirement::from_name)
                    .ok_or_else(|| {
                        lexer.err(
                            value.line,
                            format!("invalid enum value {:?} for mount_requirement", String::from_utf8_lossy(value.raw)),
                        )
                    })?,
            };
            secret.mount_requirement = mount;
        } else {
            let Some(bytes) = value.unquoted else {
                return Err(lexer.err(
                    value.line,
                    format!(
                        "invalid string for {}: {:?}",
                        field.name(),
                        String::from_utf8_lossy(value.raw)
                    ),
                ));
            };
            let text = String::from_utf8(bytes).map_err(|_| {
                lexer.err(
                    value.line,
                    format!("field {:?} is not valid UTF-8", field.name()),
                )
            })?;
            match field {
                Field::Group => secret.group = text,
                Field::GroupVersion => secret.group_version = text,
                Field::Key => secret.key = text,
                Field::EnvVar => secret.env_var = text,
                Field::MountRequirement => unreachable!("handled above"),
            }
        }
        if lexer.peek_is(b";,") {
            lexer.advance()?;
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> SecretRequest {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn err(text: &str) -> String {
        parse(text.as_bytes()).expect_err(text).to_string()
    }

    #[test]
    fn emits_like_marshal_text_string() {
        let s =
            SecretRequest::new("g\n\"\\\t\r\u{e9}\u{1}", "k").with_mount(MountRequirement::File);
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
}
