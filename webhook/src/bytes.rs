//! Byte-string equality without libc's `memcmp`: musl's (the static build's libc) compares
//! one byte per iteration, and an admission compares two long strings (the plan cache's key,
//! ~0.5 KB, and the agent's plan against its [`crate::json::Memo`], ~1.4 KB): 12 K of its
//! ~290 K instructions before this (bench/notes.md, round 6). Eight bytes at a time here.

/// `a == b`.
#[inline]
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut x, mut y) = (a.chunks_exact(8), b.chunks_exact(8));
    let words = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("8 bytes"));
    x.by_ref()
        .zip(y.by_ref())
        .all(|(p, q)| words(p) == words(q))
        && x.remainder().iter().zip(y.remainder()).all(|(p, q)| p == q)
}

#[cfg(test)]
mod tests {
    use super::eq;

    #[test]
    fn equal_exactly_when_the_bytes_are() {
        let base: Vec<u8> = (0..40u8).collect();
        for len in 0..=base.len() {
            let a = &base[..len];
            assert!(eq(a, a));
            let copy = base.clone();
            assert!(eq(a, &copy[..len]), "another buffer with the same bytes");
            if len > 0 {
                assert!(!eq(a, &base[..len - 1]), "a prefix differs");
            }
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x80;
                assert!(!eq(a, &b), "a difference at {at} of {len}");
            }
        }
    }
}
