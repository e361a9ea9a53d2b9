//! libFuzzer-style byte mutations of the seed corpora: bit flips, overwrites, inserts,
//! dictionary tokens, deletes, copies, splices from other seeds, repeats and truncation.

use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::dict::{TEXT_TOKENS, dictionary};
use crate::Target;

/// Largest input the byte mutations build (the webhook reads bodies up to 8 MiB, plans are
/// refused over 1 MiB; bigger inputs only slow the run down).
pub const MAX_LEN: usize = 1_200_000;

/// One libFuzzer-style mutation.
#[derive(Debug, Clone)]
pub enum ByteOp {
    /// Flip one bit.
    Flip(Index, u8),
    /// Overwrite one byte.
    Set(Index, u8),
    /// Insert random bytes.
    Insert(Index, Vec<u8>),
    /// Insert a dictionary token (or a text-format token).
    Token(Index, Index, bool),
    /// Delete a range.
    Delete(Index, u16),
    /// Copy a range to another place.
    Duplicate(Index, Index, u16),
    /// Insert a range of another seed.
    Splice(Index, Index, Index, u16),
    /// Repeat a range many times (long values).
    Repeat(Index, u8, u16),
    /// Cut the input.
    Truncate(Index),
}

pub(super) fn byte_op() -> impl Strategy<Value = ByteOp> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| ByteOp::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteOp::Set(i, b)),
        2 => (any::<Index>(), vec(any::<u8>(), 1..8)).prop_map(|(i, b)| ByteOp::Insert(i, b)),
        4 => (any::<Index>(), any::<Index>(), any::<bool>())
            .prop_map(|(i, t, text)| ByteOp::Token(i, t, text)),
        2 => (any::<Index>(), 1u16..64).prop_map(|(i, n)| ByteOp::Delete(i, n)),
        1 => (any::<Index>(), any::<Index>(), 1u16..256)
            .prop_map(|(from, to, n)| ByteOp::Duplicate(from, to, n)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>(), 1u16..512)
            .prop_map(|(s, from, to, n)| ByteOp::Splice(s, from, to, n)),
        1 => (any::<Index>(), 1u8..16, 2u16..2048).prop_map(|(i, n, k)| ByteOp::Repeat(i, n, k)),
        1 => any::<Index>().prop_map(ByteOp::Truncate),
    ]
}

/// A position in `0..=len`.
fn at(i: &Index, len: usize) -> usize {
    i.index(len + 1)
}

/// Applies `ops` to a copy of `seed`.
pub fn apply_bytes(
    seed: &[u8],
    ops: &[ByteOp],
    corpus: &[Vec<u8>],
    dict: &[&str],
    max_len: usize,
) -> Vec<u8> {
    let mut data = seed.to_vec();
    for op in ops {
        let len = data.len();
        match op {
            ByteOp::Flip(i, bit) if len > 0 => data[i.index(len)] ^= 1 << bit,
            ByteOp::Set(i, b) if len > 0 => data[i.index(len)] = *b,
            ByteOp::Flip(..) | ByteOp::Set(..) => {}
            ByteOp::Insert(i, bytes) => {
                let p = at(i, len);
                data.splice(p..p, bytes.iter().copied());
            }
            ByteOp::Token(i, t, text) => {
                let tokens = if *text { TEXT_TOKENS } else { dict };
                let token = tokens[t.index(tokens.len())].as_bytes();
                let p = at(i, len);
                data.splice(p..p, token.iter().copied());
            }
            ByteOp::Delete(i, n) => {
                let p = at(i, len);
                let end = (p + usize::from(*n)).min(len);
                data.drain(p..end);
            }
            ByteOp::Duplicate(from, to, n) => {
                let p = at(from, len);
                let end = (p + usize::from(*n)).min(len);
                let chunk = data[p..end].to_vec();
                let q = at(to, len);
                data.splice(q..q, chunk);
            }
            ByteOp::Splice(s, from, to, n) if !corpus.is_empty() => {
                let other = &corpus[s.index(corpus.len())];
                let p = at(from, other.len());
                let end = (p + usize::from(*n)).min(other.len());
                let q = at(to, len);
                data.splice(q..q, other[p..end].iter().copied());
            }
            ByteOp::Splice(..) => {}
            ByteOp::Repeat(i, n, times) => {
                let p = at(i, len);
                let end = (p + usize::from(*n)).min(len);
                let chunk = data[p..end].to_vec();
                if !chunk.is_empty() {
                    let room = max_len.saturating_sub(len) / chunk.len();
                    let k = usize::from(*times).min(room);
                    let repeated: Vec<u8> = chunk.repeat(k);
                    data.splice(end..end, repeated);
                }
            }
            ByteOp::Truncate(i) => data.truncate(at(i, len)),
        }
        data.truncate(max_len);
    }
    data
}

/// Seeds from the corpus, mutated byte-wise.
pub fn mutated_seeds(target: Target, corpus: Arc<Vec<Vec<u8>>>) -> BoxedStrategy<Vec<u8>> {
    let n = corpus.len().max(1);
    (0..n, vec(byte_op(), 1..8))
        .prop_map(move |(i, ops)| {
            let seed = corpus.get(i).map(Vec::as_slice).unwrap_or_default();
            apply_bytes(seed, &ops, &corpus, dictionary(target), MAX_LEN)
        })
        .boxed()
}
