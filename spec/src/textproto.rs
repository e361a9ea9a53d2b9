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
//!
//! Layout: [`TextError`] and the two entry points live here; the work is split along the
//! pipeline so each piece can be read against its Go counterpart on its own:
//!
//! - `encode`: [`emit`] (Go's `proto.MarshalTextString`);
//! - `decode`: [`parse`], the field grammar of `core.Secret`;
//! - `lexer`: tokens, comments and line numbers (Go's `textParser` tokenizer);
//! - `literal`: Go's literal syntax, C-quoted strings and base-0 integers (`unquoteC`,
//!   `strconv.ParseInt`).

mod decode;
mod encode;
mod lexer;
mod literal;

use thiserror::Error;

// The entry points are defined in child modules; they are part of this module's API.
pub use decode::parse;
pub use encode::emit;

/// A text-format parse error with Go's 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct TextError {
    /// 1-based line of the token that failed.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

#[cfg(test)]
mod tests;
