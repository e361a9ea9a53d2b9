//! Flyte's base32 variant: RFC 4648 bit packing over the alphabet
//! `abcdefghijklmnopqrstuvwxyz123456`, without padding.
//!
//! Propeller encodes every `flyte.secrets/s<N>` annotation with this alphabet
//! (`flyteplugins/go/tasks/pluginmachinery/encoding/encoder.go`). Upper-case letters and the
//! digits `0`, `7`, `8`, `9` are not part of it. Like Go's decoder we skip `\r` and `\n`;
//! unlike it we reject lengths that no encoder can produce (1, 3 or 6 symbols in the last
//! quantum), which Go silently truncates.

use thiserror::Error;

/// Flyte's base32 alphabet.
pub const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz123456";

/// Why a string is not valid Flyte base32.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Base32Error {
    /// A byte outside the alphabet (offset into the input, byte value).
    #[error("byte {byte:#04x} at offset {offset} is not in Flyte's base32 alphabet")]
    InvalidByte {
        /// Offset of the byte in the input.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The number of symbols cannot come from an encoder.
    #[error("{0} base32 symbols cannot be a complete encoding")]
    InvalidLength(usize),
}

const INVALID: u8 = 0xff;

const fn decode_table() -> [u8; 256] {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 32 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
}

static DECODE: [u8; 256] = decode_table();

/// Encodes bytes exactly as propeller's `Base32Encoder.EncodeToString` does.
pub fn encode(input: &[u8]) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(5) * 8);
    for chunk in input.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let bits = u64::from(buf[0]) << 32
            | u64::from(buf[1]) << 24
            | u64::from(buf[2]) << 16
            | u64::from(buf[3]) << 8
            | u64::from(buf[4]);
        // 5 bytes → 8 symbols; a partial chunk of n bytes needs ceil(8n/5) symbols.
        let symbols = (chunk.len() * 8).div_ceil(5);
        for i in 0..symbols {
            let index = (bits >> (35 - 5 * i)) & 0x1f;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// Decodes Flyte base32. `\r` and `\n` are skipped, as Go's decoder does.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, Base32Error> {
    let mut out = Vec::with_capacity(input.len() * 5 / 8 + 1);
    let mut acc: u64 = 0;
    let mut symbols = 0usize;
    for (offset, &byte) in input.iter().enumerate() {
        if byte == b'\r' || byte == b'\n' {
            continue;
        }
        let value = DECODE[usize::from(byte)];
        if value == INVALID {
            return Err(Base32Error::InvalidByte { offset, byte });
        }
        acc = (acc << 5) | u64::from(value);
        symbols += 1;
        if symbols.is_multiple_of(8) {
            out.extend_from_slice(&acc.to_be_bytes()[3..]);
            acc = 0;
        }
    }
    let tail = symbols % 8;
    let tail_bytes = match tail {
        0 => 0,
        2 => 1,
        4 => 2,
        5 => 3,
        7 => 4,
        _ => return Err(Base32Error::InvalidLength(symbols)),
    };
    if tail_bytes > 0 {
        // Left-align the partial quantum in 40 bits, then keep its whole bytes. Leftover
        // bits are ignored, as Go does.
        let aligned = acc << (5 * (8 - tail));
        out.extend_from_slice(&aligned.to_be_bytes()[3..3 + tail_bytes]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..40 {
            let encoded = encode(&data[..len]);
            assert_eq!(
                decode(encoded.as_bytes()).unwrap(),
                &data[..len],
                "len {len}"
            );
        }
    }

    #[test]
    fn maps_index_for_index_to_rfc4648() {
        // RFC 4648 "foobar" = MZXW6YTBOI; Flyte maps A→a … Z→z, 2→1 … 7→6.
        assert_eq!(encode(b"foobar"), "mzxw5ytboi");
        assert_eq!(encode(b"f"), "my");
        assert_eq!(encode(b"fo"), "mzxq");
        assert_eq!(encode(b"foo"), "mzxw5");
        assert_eq!(encode(b"foob"), "mzxw5yq");
    }

    #[test]
    fn rejects_outside_alphabet_and_impossible_lengths() {
        assert_eq!(
            decode(b"MZXW"),
            Err(Base32Error::InvalidByte {
                offset: 0,
                byte: b'M'
            })
        );
        assert!(matches!(
            decode(b"mz7w"),
            Err(Base32Error::InvalidByte { offset: 2, .. })
        ));
        assert!(matches!(
            decode(b"mzx=="),
            Err(Base32Error::InvalidByte { .. })
        ));
        for bad in ["m", "mzx", "mzxw5y"] {
            assert_eq!(
                decode(bad.as_bytes()),
                Err(Base32Error::InvalidLength(bad.len()))
            );
        }
    }

    #[test]
    fn skips_newlines_like_go() {
        assert_eq!(decode(b"mzxw\r\n5ytboi\n").unwrap(), b"foobar");
    }
}
