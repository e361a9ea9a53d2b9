//! The JSON the webhook answers with: serde_json's compact output, byte for byte, written
//! without serde_json's per-byte costs (issue 21; bench/notes.md, round 6).
//!
//! Every admission serializes a ~5 KB patch of short strings (names, paths, env entries) and
//! the agent's ~1.4 KB plan as one escaped string. serde_json writes through `io::Write`, so
//! each `"`, `:`, `,`, `{` is a `write_all` of one byte (an out-of-line `memcpy` in the static
//! build: ~800 per admission), and its escape loop looks every byte up in a table: together a
//! quarter of an admission's instructions. Here punctuation is a `Vec::push`, and strings are
//! scanned eight bytes at a time for the only bytes JSON escapes (`"`, `\`, controls) and
//! copied in runs.
//!
//! The output is serde_json's exactly (same escapes, `\u00XX` in lower case, `null` for
//! `None` and non-finite floats, map keys quoted as serde_json quotes them), so nothing that
//! reads the patch, and no test that compares answers, can tell the two apart. Unit tests of
//! this crate check every value written here against `serde_json::to_vec` as they go.

use std::fmt::Display;

use serde::ser::{self, Impossible, Serialize};

mod written;
pub use written::{Part, Written, write_all};

/// A value serde_json would refuse too (a map key that is not a string or a number).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

type Result<T = ()> = std::result::Result<T, Error>;

/// `value` as compact JSON, appended to `out`.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result {
    write_with(out, value, None)
}

/// `value` as compact JSON.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    write_with(&mut out, value, None)?;
    Ok(out)
}

/// A string and its JSON, written once: the agent's plan (~1.4 KB with ~150 quotes, the
/// longest string of a patch) is the same for every pod of a cached plan
/// ([`crate::mutate::cache`]), so it is escaped once per plan, not once per admission. Any
/// string equal to `raw` is written as `json`: equal strings have the same JSON, so the
/// output is the same as without it.
#[derive(Debug, Clone, Copy)]
pub struct Memo<'a> {
    raw: &'a str,
    json: &'a [u8],
}

impl<'a> Memo<'a> {
    /// `json` must be `raw` as a JSON string ([`quoted`]).
    pub fn new(raw: &'a str, json: &'a [u8]) -> Self {
        debug_assert_eq!(json, quoted(raw), "a memo holds its string's own JSON");
        Self { raw, json }
    }

    /// The length of the string's JSON.
    pub fn json_len(&self) -> usize {
        self.json.len()
    }
}

/// `s` as a JSON string, quotes included.
pub fn quoted(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_str(&mut out, s);
    out
}

/// `value` as compact JSON appended to `out`, with `memo`'s string (if any) written from its
/// JSON wherever it occurs.
pub fn write_with<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
    memo: Option<Memo<'_>>,
) -> Result {
    #[cfg(test)]
    let start = out.len();
    value.serialize(&mut Writer {
        out: &mut *out,
        memo,
    })?;
    #[cfg(test)]
    assert_eq!(
        String::from_utf8_lossy(&out[start..]),
        String::from_utf8_lossy(&serde_json::to_vec(value).expect("serde_json writes it too")),
        "json::write differs from serde_json"
    );
    Ok(())
}

/// `s` as a JSON string, quotes included: eight bytes at a time up to the first that holds a
/// byte to escape, then byte by byte. Nearly every string of a patch is short and has none
/// (the one long string with many, the plan, comes from a [`Memo`]). The bytes are copied in
/// fixed-size pieces the compiler inlines: an `extend_from_slice` of a length known only at
/// run time calls libc's `memcpy`, which in the static (musl) build costs more than the copy
/// for a few bytes and was the largest single symbol of an admission in `perf`
/// (bench/notes.md).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    write_str_body(out, s);
    out.push(b'"');
}

/// `s` as the inside of a JSON string, without its quotes: for a string written in pieces
/// (a JSONPatch path, token by token).
pub fn write_str_body(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    for chunk in bytes.chunks_exact(8) {
        let word: [u8; 8] = chunk.try_into().expect("8 bytes");
        if needs_escape(u64::from_ne_bytes(word)) {
            break;
        }
        out.extend_from_slice(&word);
        plain += 8;
    }
    for &b in &bytes[plain..] {
        if escapes(b) {
            escape(out, b);
        } else {
            out.push(b);
        }
    }
}

const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);

/// Whether any byte of `word` is a control character, `"` or `\` (the exact "has a byte
/// less than n" and "has a zero byte" tests, which give no false positives).
#[inline]
fn needs_escape(word: u64) -> bool {
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGHS != 0
}

#[inline]
fn escapes(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// serde_json's escape of one byte that [`escapes`].
fn escape(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let short = match b {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        _ => {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
            return;
        }
    };
    out.extend_from_slice(&[b'\\', short]);
}

fn write_int(out: &mut Vec<u8>, v: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Floats are rare on this path (no Kubernetes type the patch carries has one): serde_json
/// writes them, so its shortest-representation output is kept exactly.
fn write_float<F: Serialize>(out: &mut Vec<u8>, v: F) -> Result {
    serde_json::to_writer(out, &v).map_err(|e| Error(e.to_string()))
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    memo: Option<Memo<'a>>,
}

/// A sequence or map being written: whether an element has been written yet.
struct Compound<'w, 'a> {
    writer: &'w mut Writer<'a>,
    first: bool,
    /// Its closing bracket.
    close: u8,
    /// Whether a `{"variant":…}` wrapper is closed too.
    variant: bool,
}

impl Compound<'_, '_> {
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.writer.out.push(b',');
        }
    }

    fn end(self) -> Result {
        self.writer.out.push(self.close);
        if self.variant {
            self.writer.out.push(b'}');
        }
        Ok(())
    }
}

impl<'w, 'a> Writer<'a> {
    fn open(&'w mut self, bracket: u8, variant: bool) -> Compound<'w, 'a> {
        self.out.push(bracket);
        Compound {
            writer: self,
            first: true,
            close: if bracket == b'[' { b']' } else { b'}' },
            variant,
        }
    }

    /// `{"variant":` … closed by the compound's `close`.
    fn variant(&mut self, variant: &str) {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
    }
}

macro_rules! ints {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result {
            write_int(self.out, v);
            Ok(())
        }
    )*};
}

impl<'w, 'a> ser::Serializer for &'w mut Writer<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'w, 'a>;
    type SerializeTuple = Compound<'w, 'a>;
    type SerializeTupleStruct = Compound<'w, 'a>;
    type SerializeTupleVariant = Compound<'w, 'a>;
    type SerializeMap = Compound<'w, 'a>;
    type SerializeStruct = Compound<'w, 'a>;
    type SerializeStructVariant = Compound<'w, 'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    ints!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
          serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
          serialize_u64: u64, serialize_u128: u128);

    fn serialize_f32(self, v: f32) -> Result {
        write_float(self.out, v)
    }

    fn serialize_f64(self, v: f64) -> Result {
        write_float(self.out, v)
    }

    fn serialize_char(self, v: char) -> Result {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result {
        match self.memo {
            Some(memo) if crate::bytes::eq(v.as_bytes(), memo.raw.as_bytes()) => {
                self.out.extend_from_slice(memo.json);
            }
            _ => write_str(self.out, v),
        }
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result {
        let mut seq = self.open(b'[', false);
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        seq.end()
    }

    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        self.serialize_unit()
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result {
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        self.variant(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq> {
        Ok(self.open(b'[', false))
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        self.variant(variant);
        Ok(self.open(b'[', true))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap> {
        Ok(self.open(b'{', false))
    }

    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Self::SerializeStruct> {
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant> {
        self.variant(variant);
        Ok(self.open(b'{', true))
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.comma();
        value.serialize(&mut *self.writer)
    }

    fn end(self) -> Result {
        Compound::end(self)
    }
}

macro_rules! as_seq {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                ser::SerializeSeq::serialize_element(self, value)
            }

            fn end(self) -> Result {
                Compound::end(self)
            }
        }
    )*};
}

as_seq!(
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.comma();
        key.serialize(Key {
            out: &mut *self.writer.out,
        })?;
        self.writer.out.push(b':');
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut *self.writer)
    }

    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.comma();
        write_str(self.writer.out, key);
        self.writer.out.push(b':');
        value.serialize(&mut *self.writer)
    }

    fn end(self) -> Result {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        ser::SerializeStruct::serialize_field(self, key, value)
    }

    fn end(self) -> Result {
        Compound::end(self)
    }
}

/// A map key, as serde_json writes one: a string, or a number, `bool` or `char` in quotes.
struct Key<'a> {
    out: &'a mut Vec<u8>,
}

impl Key<'_> {
    fn quoted(self, f: impl FnOnce(&mut Vec<u8>) -> Result) -> Result {
        self.out.push(b'"');
        f(self.out)?;
        self.out.push(b'"');
        Ok(())
    }
}

fn key_must_be_a_string() -> Error {
    Error("key must be a string".into())
}

macro_rules! int_keys {
    ($($method:ident: $ty:ty),*) => {$(
        fn $method(self, v: $ty) -> Result {
            self.quoted(|out| {
                write_int(out, v);
                Ok(())
            })
        }
    )*};
}

macro_rules! refused_keys {
    ($($method:ident($($arg:ty),*) -> $ret:ty),*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ret> {
            Err(key_must_be_a_string())
        }
    )*};
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_bool(self, v: bool) -> Result {
        self.quoted(|out| {
            out.extend_from_slice(if v { b"true" } else { b"false" });
            Ok(())
        })
    }

    int_keys!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64,
              serialize_i128: i128, serialize_u8: u8, serialize_u16: u16, serialize_u32: u32,
              serialize_u64: u64, serialize_u128: u128);

    fn serialize_f32(self, v: f32) -> Result {
        if !v.is_finite() {
            return Err(Error("float key must be finite (got NaN or +/-inf)".into()));
        }
        self.quoted(|out| write_float(out, v))
    }

    fn serialize_f64(self, v: f64) -> Result {
        if !v.is_finite() {
            return Err(Error("float key must be finite (got NaN or +/-inf)".into()));
        }
        self.quoted(|out| write_float(out, v))
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result {
        v.serialize(self)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result {
        v.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result {
        Err(key_must_be_a_string())
    }

    refused_keys!(
        serialize_bytes(&[u8]) -> (),
        serialize_none() -> (),
        serialize_unit() -> (),
        serialize_unit_struct(&'static str) -> (),
        serialize_seq(Option<usize>) -> Impossible<(), Error>,
        serialize_tuple(usize) -> Impossible<(), Error>,
        serialize_tuple_struct(&'static str, usize) -> Impossible<(), Error>,
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>,
        serialize_map(Option<usize>) -> Impossible<(), Error>,
        serialize_struct(&'static str, usize) -> Impossible<(), Error>,
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Impossible<(), Error>
    );
}

#[cfg(test)]
mod tests {
    //! [`write`] itself asserts equality with serde_json in test builds, so each case here
    //! only has to reach a shape; the explicit comparisons name what they cover.

    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Volume};
    use serde::Serialize;
    use serde_json::json;

    use super::*;

    fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String> {
        to_vec(value).map(|v| String::from_utf8(v).expect("UTF-8"))
    }

    fn same<T: Serialize + ?Sized>(value: &T) {
        let ours = to_string(value).expect("ours writes it");
        let theirs = serde_json::to_string(value).expect("serde_json writes it");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn every_ascii_byte_and_some_unicode_escape_as_serde_json_escapes_them() {
        for b in 0u8..=0x7f {
            same(&char::from(b));
            same(&char::from(b).to_string());
        }
        for c in ['é', '€', '😀', '\u{2028}', '\u{fffd}', '\u{10ffff}'] {
            same(&c);
            same(&format!("a{c}\"{c}\\"));
        }
    }

    #[test]
    fn escapes_at_every_offset_of_the_eight_byte_scan() {
        // A deterministic mix: escapes at each position of each chunk, runs of plain bytes
        // that span chunks, multi-byte characters cut across chunk boundaries.
        let alphabet: Vec<char> = "ab\"\\\n\u{1}\u{1f}\u{7f} é€😀/~".chars().collect();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for len in 0..64 {
            for _ in 0..40 {
                let s: String = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect();
                same(&s);
            }
        }
        for at in 0..24 {
            let mut s = "x".repeat(24);
            s.insert(at, '"');
            same(&s);
        }
    }

    #[derive(Serialize)]
    enum Shapes {
        Unit,
        Newtype(u8),
        Tuple(i64, String),
        Struct { a: Option<u32>, b: Vec<bool> },
    }

    #[derive(Serialize)]
    struct Wrapper(String);

    #[derive(Serialize)]
    struct UnitStruct;

    #[test]
    fn every_serde_shape_writes_as_serde_json_writes_it() {
        same(&json!({"a": [1, -2, 3.5, null, true, {"b": "c"}], "": {}, "e": []}));
        same(&[i64::MIN, i64::MAX]);
        same(&[u64::MAX]);
        same(&(i128::MIN, u128::MAX, 7u8, -7i8, 300u16, -300i16));
        same(&[0.1f64, -0.0, 1e300, f64::NAN, f64::INFINITY]);
        same(&[1.5f32, f32::NEG_INFINITY]);
        same(&Shapes::Unit);
        same(&Shapes::Newtype(3));
        same(&Shapes::Tuple(-1, "x\"".into()));
        same(&Shapes::Struct {
            a: None,
            b: vec![true, false],
        });
        same(&vec![Shapes::Struct {
            a: Some(1),
            b: vec![],
        }]);
        same(&Wrapper("w".into()));
        same(&UnitStruct);
        same(&());
        same(&Option::<String>::None);
        same(&serde_bytes_like());
        let mut keyed: BTreeMap<i32, &str> = BTreeMap::new();
        keyed.insert(-4, "minus");
        keyed.insert(9, "nine");
        same(&keyed);
        let bools: BTreeMap<bool, u8> = [(false, 0), (true, 1)].into();
        same(&bools);
        let chars: BTreeMap<char, u8> = [('"', 0), ('k', 1)].into();
        same(&chars);
    }

    /// `serialize_bytes` through a type that calls it.
    fn serde_bytes_like() -> impl Serialize {
        struct Bytes(&'static [u8]);
        impl Serialize for Bytes {
            fn serialize<S: ser::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        (Bytes(b"\x00\x7f\xff"), Bytes(b""))
    }

    #[test]
    fn keys_serde_json_refuses_are_refused() {
        let seq_keys: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
        assert!(serde_json::to_string(&seq_keys).is_err());
        assert!(
            to_string(&seq_keys)
                .unwrap_err()
                .to_string()
                .contains("key must be a string")
        );
        let nan_key: Vec<(f64, u8)> = vec![(f64::NAN, 1)];
        let as_map = |v: &Vec<(f64, u8)>| {
            struct M<'a>(&'a [(f64, u8)]);
            impl Serialize for M<'_> {
                fn serialize<S: ser::Serializer>(
                    &self,
                    s: S,
                ) -> std::result::Result<S::Ok, S::Error> {
                    use ser::SerializeMap;
                    let mut m = s.serialize_map(Some(self.0.len()))?;
                    for (k, v) in self.0 {
                        m.serialize_entry(k, v)?;
                    }
                    m.end()
                }
            }
            (
                to_string(&M(v)).is_err(),
                serde_json::to_string(&M(v)).is_err(),
            )
        };
        assert_eq!(as_map(&nan_key), (true, true));
        same(&{
            struct M;
            impl Serialize for M {
                fn serialize<S: ser::Serializer>(
                    &self,
                    s: S,
                ) -> std::result::Result<S::Ok, S::Error> {
                    use ser::SerializeMap;
                    let mut m = s.serialize_map(None)?;
                    m.serialize_entry(&2.5f64, &1)?;
                    m.serialize_entry(&Some("k"), &2)?;
                    m.end()
                }
            }
            M
        });
    }

    #[test]
    fn a_memo_writes_its_string_and_only_its_string() {
        let plan = r#"{"secrets":["a\\b"],"q":"\"x\""}"#;
        let same_len = "y".repeat(plan.len());
        let json = quoted(plan);
        let memo = Memo::new(plan, &json);
        let value = json!([plan, same_len, {"k": plan}, "other"]);
        let mut with = Vec::new();
        write_with(&mut with, &value, Some(memo)).unwrap();
        assert_eq!(with, to_vec(&value).unwrap());
        assert_eq!(with, serde_json::to_vec(&value).unwrap());
        // The memo is used: a memo whose JSON differs from its string shows where it went.
        let marked = Memo {
            raw: plan,
            json: b"\"MEMO\"",
        };
        let with = String::from_utf8({
            let mut out = Vec::new();
            value
                .serialize(&mut Writer {
                    out: &mut out,
                    memo: Some(marked),
                })
                .unwrap();
            out
        })
        .unwrap();
        assert_eq!(
            with,
            format!(r#"["MEMO","{same_len}",{{"k":"MEMO"}},"other"]"#)
        );
    }

    #[test]
    fn the_kubernetes_types_of_a_patch_write_as_serde_json_writes_them() {
        let container: Container = serde_json::from_value(json!({
            "name": "c\u{1}",
            "image": "img:1",
            "command": ["/bin/sh", "-c", "echo \"$(X)\"\n"],
            "env": [
                {"name": "PLAN", "value": "{\"version\":1,\"secrets\":[\"a\\\\b\"]}"},
                {"name": "R", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}}
            ],
            "resources": {"limits": {"memory": "64Mi", "cpu": "0.5"}},
            "securityContext": {"runAsUser": 1000, "capabilities": {"drop": ["ALL"]}},
            "livenessProbe": {"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 3},
            "readinessProbe": {"tcpSocket": {"port": 8080}}
        }))
        .unwrap();
        same(&container);
        same(&[container.clone(), container]);
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "a"}],
            "volumes": [
                {"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 600}}]}}
            ],
            "securityContext": {"supplementalGroups": [1, 2], "fsGroup": 3}
        }))
        .unwrap();
        same(&spec);
        same(
            &spec
                .volumes
                .unwrap_or_default()
                .first()
                .cloned()
                .unwrap_or(Volume::default()),
        );
        same(&EnvVar::default());
    }
}
