//! The tokenizer behind [`parse`](super::parse): Go's `textParser` tokenizer for the subset
//! `core.Secret` needs. It tracks line numbers for [`TextError`], skips whitespace and `#`
//! comments, and hands quoted strings to [`unquote_c`] so a token carries its unescaped bytes.

use super::TextError;
use super::literal::unquote_c;

/// A token: its raw text and, for quoted strings, the unescaped bytes.
pub(super) struct Token<'a> {
    pub(super) raw: &'a [u8],
    pub(super) unquoted: Option<Vec<u8>>,
    pub(super) line: usize,
}

/// A cursor over the input; `line` is the 1-based line `rest` starts on, which every error
/// reports as Go does.
pub(super) struct Lexer<'a> {
    pub(super) rest: &'a [u8],
    pub(super) line: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn err(&self, line: usize, message: impl Into<String>) -> TextError {
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
    pub(super) fn advance(&mut self) -> Result<Option<Token<'a>>, TextError> {
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
    pub(super) fn next(&mut self) -> Result<Option<Token<'a>>, TextError> {
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
    pub(super) fn peek_is(&mut self, symbols: &[u8]) -> bool {
        self.skip_whitespace();
        matches!(self.rest.first(), Some(b) if symbols.contains(b))
    }
}
