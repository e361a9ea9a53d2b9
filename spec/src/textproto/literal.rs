//! Go's literal syntax as the text parser reads it: C-quoted strings (`unquoteC`) and base-0
//! 32-bit integers (`strconv.ParseInt(s, 0, 32)`, for enums given by number). Kept apart from
//! the lexer because these are ports of Go library functions, checked against Go's behaviour
//! rather than against the grammar.

/// Go's `unquoteC`: C-style escapes; the text must be valid UTF-8 once it has an escape or
/// the quote character.
pub(super) fn unquote_c(s: &[u8], quote: u8) -> Result<Vec<u8>, String> {
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
pub(super) fn parse_go_int32(s: &[u8]) -> Option<i64> {
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
