#![allow(dead_code)] // each target uses part of the model
//! A reference model of SPEC.md section 4 written independently of the decoder: it judges a
//! whole client stream by matching tokens at the front, the way the grammar reads.

/// What a whole client stream amounts to.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Complete pings before `end`, an invalid byte, or the end of the bytes.
    pub pings: usize,
    pub ending: ModelEnding,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ModelEnding {
    /// Valid so far; `mid_token` when the bytes stop inside a token.
    Open { mid_token: bool },
    /// `end` ends at this offset (exclusive).
    End { at: usize },
    /// The first invalid byte is at this offset.
    Invalid { at: usize },
}

pub fn judge(stream: &[u8]) -> Verdict {
    let mut pings = 0;
    while stream[4 * pings..].starts_with(b"ping") {
        pings += 1;
    }
    let start = 4 * pings;
    let rest = &stream[start..];
    let token: &[u8] = if rest.first() == Some(&b'e') { b"end" } else { b"ping" };
    let matched = rest.iter().zip(token).take_while(|(a, b)| a == b).count();
    let ending = if matched == token.len() {
        // Only `end` can match fully here: a full ping would have been counted.
        ModelEnding::End { at: start + 3 }
    } else if matched == rest.len() {
        ModelEnding::Open { mid_token: matched > 0 }
    } else {
        ModelEnding::Invalid { at: start + matched }
    };
    Verdict { pings, ending }
}

/// Splits `data` into pieces whose lengths come from `lengths` (cycled; the last piece takes
/// what remains).
pub fn pieces<'a>(data: &'a [u8], lengths: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let len = match lengths.get(i % lengths.len().max(1)) {
            Some(&n) => usize::from(n).max(1).min(rest.len()),
            None => rest.len(),
        };
        let (piece, tail) = rest.split_at(len);
        out.push(piece);
        rest = tail;
        i += 1;
    }
    out
}
