//! Rendering aggregate files (`flyte_secret_spec::aggregate`): one file per group holding its
//! requested keys, in `.env`, JSON, Java properties or YAML. Each format's escaping is
//! written out here rule by rule and tested against that format's real parser (python-dotenv,
//! Python's `json`, `javaproperties`, PyYAML) in the end-to-end suite.
//!
//! Formats hold text: a value that is not UTF-8 cannot go in one, and fails the plan with a
//! message naming the secret (its own file is still the way to read binary values).

use std::fmt::Write as _;

use flyte_secret_spec::aggregate::Format;

use crate::value::SecretValue;

/// Why an aggregate file cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateError {
    /// A value that is not text.
    #[error("secret {secret} is not UTF-8 text, so it cannot go in the {format} file {path}")]
    Binary {
        /// The secret.
        secret: String,
        /// The format.
        format: Format,
        /// The aggregate file.
        path: String,
    },
    /// A value the format cannot carry exactly.
    #[error("secret {secret} cannot go in the {format} file {path}: its value {why}")]
    Value {
        /// The secret.
        secret: String,
        /// The format.
        format: Format,
        /// The aggregate file.
        path: String,
        /// Why not (never the value).
        why: &'static str,
    },
    /// A key the format cannot carry.
    #[error("key {key:?} cannot be a {format} key (in {path}): {why}")]
    Key {
        /// The key.
        key: String,
        /// The format.
        format: Format,
        /// The aggregate file.
        path: String,
        /// Why not.
        why: &'static str,
    },
}

/// One entry: the key, the secret's name (for messages) and its value.
pub struct Entry<'a> {
    /// The key in the file.
    pub key: &'a str,
    /// `group/key@version`, for messages.
    pub secret: String,
    /// The value.
    pub value: &'a SecretValue,
}

/// The file's bytes. The buffer is a [`SecretValue`] from the start, so it is zeroed on drop.
pub fn render(
    format: Format,
    path: &str,
    entries: &[Entry<'_>],
) -> Result<SecretValue, AggregateError> {
    let mut texts = Vec::with_capacity(entries.len());
    for e in entries {
        let text = std::str::from_utf8(e.value.expose()).map_err(|_| AggregateError::Binary {
            secret: e.secret.clone(),
            format,
            path: path.to_string(),
        })?;
        // python-dotenv expands `${NAME}` in every value, quoted or not, with no escape.
        if format == Format::Dotenv && text.contains("${") {
            return Err(AggregateError::Value {
                secret: e.secret.clone(),
                format,
                path: path.to_string(),
                why: "holds `${`, which dotenv readers expand as a variable (use json or yaml)",
            });
        }
        texts.push((e.key, text));
    }
    let capacity = texts
        .iter()
        .map(|(k, v)| k.len() + v.len() * 2 + 8)
        .sum::<usize>()
        + 8;
    let mut out = String::with_capacity(capacity);
    match format {
        Format::Dotenv => dotenv(&mut out, &texts, path)?,
        Format::Json => json(&mut out, &texts),
        Format::Properties => properties(&mut out, &texts),
        Format::Yaml => yaml(&mut out, &texts),
    }
    Ok(SecretValue::from(out))
}

/// `KEY='value'`: single quotes keep `$NAME`, `#` and newlines literal; inside, `\` and
/// `'` are escaped. (`${NAME}` is refused above: python-dotenv expands it even there.) A key that is not a shell-style
/// identifier is single-quoted too, as python-dotenv allows.
fn dotenv(out: &mut String, entries: &[(&str, &str)], path: &str) -> Result<(), AggregateError> {
    for (key, value) in entries {
        if key.is_empty() || key.contains(['\'', '\n', '\r', '=']) {
            return Err(AggregateError::Key {
                key: key.to_string(),
                format: Format::Dotenv,
                path: path.to_string(),
                why: "a dotenv key may not be empty or hold ', =, or a line break",
            });
        }
        let ident = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ident {
            out.push_str(key);
        } else {
            out.push('\'');
            out.push_str(key);
            out.push('\'');
        }
        out.push_str("='");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("\\'"),
                c => out.push(c),
            }
        }
        out.push_str("'\n");
    }
    Ok(())
}

/// One JSON object, keys in plan order, values as JSON strings.
fn json(out: &mut String, entries: &[(&str, &str)]) {
    out.push('{');
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        quoted(out, key, Quoted::Json);
        out.push(':');
        quoted(out, value, Quoted::Json);
    }
    out.push_str("}\n");
}

/// `key=value` as `java.util.Properties.load` reads it: `\`, the separators `=` `:`, `#` `!`
/// and white space escaped in keys; `\`, line breaks and a leading space escaped in values;
/// everything outside printable ASCII as `\uXXXX` (UTF-16 units), since `load` of a stream
/// reads ISO-8859-1.
fn properties(out: &mut String, entries: &[(&str, &str)]) {
    for (key, value) in entries {
        properties_text(out, key, true);
        out.push('=');
        properties_text(out, value, false);
        out.push('\n');
    }
}

fn properties_text(out: &mut String, s: &str, key: bool) {
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            ' ' if key || i == 0 => out.push_str("\\ "),
            '=' | ':' | '#' | '!' if key || i == 0 => {
                out.push('\\');
                out.push(c);
            }
            c if (' '..='~').contains(&c) => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
}

/// A YAML mapping of double-quoted scalars: `\` and `"` escaped, and every character YAML
/// does not allow raw (controls, DEL, C1, the BOM, line separators) as an escape, so PyYAML
/// and every YAML 1.1/1.2 reader see the exact string.
fn yaml(out: &mut String, entries: &[(&str, &str)]) {
    for (key, value) in entries {
        quoted(out, key, Quoted::Yaml);
        out.push_str(": ");
        quoted(out, value, Quoted::Yaml);
        out.push('\n');
    }
}

/// The two double-quoted string syntaxes: JSON's and YAML's share the escapes of `"`, `\`
/// and the common controls, and differ in how other characters are written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quoted {
    /// Other controls as `\u00XX`.
    Json,
    /// Other controls, DEL and C1 as `\xXX`; line separators, the BOM and noncharacters as
    /// `\uXXXX` (YAML does not allow them raw).
    Yaml,
}

fn quoted(out: &mut String, s: &str, style: Quoted) {
    out.push('"');
    for c in s.chars() {
        match (c, style) {
            ('"', _) => out.push_str("\\\""),
            ('\\', _) => out.push_str("\\\\"),
            ('\n', _) => out.push_str("\\n"),
            ('\r', _) => out.push_str("\\r"),
            ('\t', _) => out.push_str("\\t"),
            (c, Quoted::Json) if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            (c, Quoted::Yaml) if (c as u32) < 0x20 || ('\u{7f}'..='\u{9f}').contains(&c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            ('\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}', Quoted::Yaml) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            (c, _) => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render_str(format: Format, pairs: &[(&str, &str)]) -> String {
        let values: Vec<SecretValue> = pairs
            .iter()
            .map(|(_, v)| SecretValue::from(v.to_string()))
            .collect();
        let entries: Vec<Entry<'_>> = pairs
            .iter()
            .zip(&values)
            .map(|((k, _), value)| Entry {
                key: k,
                secret: format!("g/{k}"),
                value,
            })
            .collect();
        let out = render(format, "g.x", &entries).unwrap();
        String::from_utf8(out.expose().to_vec()).unwrap()
    }

    #[test]
    fn each_format_escapes_what_its_parser_would_read_otherwise() {
        let pairs = [("user", "a'b\\c $HOME #x"), ("db-pass.v2", "line1\nline2")];
        assert_eq!(
            render_str(Format::Dotenv, &pairs),
            "user='a\\'b\\\\c $HOME #x'\n'db-pass.v2'='line1\nline2'\n"
        );
        assert_eq!(
            render_str(Format::Json, &pairs),
            "{\"user\":\"a'b\\\\c $HOME #x\",\"db-pass.v2\":\"line1\\nline2\"}\n"
        );
        assert_eq!(
            render_str(Format::Properties, &[("a key=:", " v=ü😀")]),
            "a\\ key\\=\\:=\\ v=\\u00fc\\ud83d\\ude00\n"
        );
        assert_eq!(
            render_str(Format::Yaml, &[("k", "say \"hi\"\u{1}\u{2028}")]),
            "\"k\": \"say \\\"hi\\\"\\x01\\u2028\"\n"
        );
    }

    #[test]
    fn binary_values_and_impossible_keys_are_refused_without_the_value() {
        let bin = SecretValue::new(vec![0xff, 0xfe]);
        let e = render(
            Format::Json,
            "g.json",
            &[Entry {
                key: "k",
                secret: "g/k".into(),
                value: &bin,
            }],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "secret g/k is not UTF-8 text, so it cannot go in the json file g.json"
        );
        let v = SecretValue::from("x".to_string());
        let e = render(
            Format::Dotenv,
            "g.env",
            &[Entry {
                key: "a=b",
                secret: "g/a=b".into(),
                value: &v,
            }],
        )
        .unwrap_err();
        assert!(e.to_string().contains("cannot be a dotenv key"));
        let interpolated = SecretValue::from("a${HOME}b".to_string());
        let e = render(
            Format::Dotenv,
            "g.env",
            &[Entry {
                key: "k",
                secret: "g/k".into(),
                value: &interpolated,
            }],
        )
        .unwrap_err();
        assert!(e.to_string().contains("holds `${`"), "{e}");
        assert!(!e.to_string().contains("a${HOME}b"));
    }
}
