//! The grammar of SPEC.md section 4 as data and as an oracle, written once and shared by the
//! decoder's unit tests, the integration tests, the conformance gate and the fuzz targets.
//!
//! - [`INVALID_TABLE`]: the table of SPEC.md section 4.4, row by row.
//! - [`INVALID_CLASSES`]: the kinds of invalid byte the table illustrates, with examples, for
//!   generators that put "every class at every offset".
//! - [`judge`]: an oracle for a whole client stream, written independently of
//!   [`Decoder`](super::Decoder): it matches tokens at the front of the stream the way the
//!   grammar reads, so the decoder's fast paths are checked against something simpler.
//! - [`pieces`] and [`split_at`]: the two ways tests and fuzzers divide a stream into reads.

use alloc::vec::Vec;

use super::{END, PING};

/// One row of SPEC.md section 4.4's table of invalid client streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidRow {
    /// The bytes received.
    pub stream: &'static [u8],
    /// Offset of the first invalid byte (SPEC: WIRE-INVALID-1).
    pub offset: usize,
    /// The table's "why" column.
    pub why: &'static str,
}

/// SPEC.md section 4.4's table: each stream, the offset of its first invalid byte, and why.
pub const INVALID_TABLE: &[InvalidRow] = &[
    InvalidRow { stream: b"PING", offset: 0, why: "case-sensitive" },
    InvalidRow { stream: b"pinG", offset: 3, why: "case-sensitive" },
    InvalidRow { stream: b"ping\n", offset: 4, why: "no delimiters" },
    InvalidRow { stream: b"pingpi\x00", offset: 6, why: "NUL is a byte like any other" },
    InvalidRow {
        stream: b"\xff",
        offset: 0,
        why: "not ASCII (and not UTF-8): the byte is judged, not decoded as text",
    },
    InvalidRow { stream: b"pingx", offset: 4, why: "garbage after pings" },
    InvalidRow { stream: b"pingendping", offset: 7, why: "nothing may follow `end`" },
    InvalidRow { stream: b"ping pong", offset: 4, why: "" },
];

/// The classes of invalid byte SPEC.md section 4.4 names, each with bytes of that class. Every
/// byte listed here is invalid at a token boundary and after `"pi"`.
pub const INVALID_CLASSES: &[(&str, &[u8])] = &[
    ("wrong case", b"PINGED"),
    ("delimiter", b"\n\r\t ;,"),
    ("NUL", b"\x00"),
    ("high byte", b"\x80\xc3\xfe\xff"),
    ("other letter", b"xoaz"),
    ("digit", b"019"),
];

/// What a whole client stream amounts to, by the grammar alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Complete pings before `end`, an invalid byte, or the end of the bytes.
    pub pings: usize,
    /// How the stream stands after its last byte.
    pub ending: ModelEnding,
}

/// How a client stream stands after its last byte, by the grammar alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelEnding {
    /// Valid so far; `mid_token` when the bytes stop inside a token.
    Open {
        /// The bytes stop inside a token.
        mid_token: bool,
    },
    /// `end` ends at this offset (exclusive).
    End {
        /// The offset just past `end`.
        at: usize,
    },
    /// The first invalid byte is at this offset.
    Invalid {
        /// The offset of the first invalid byte.
        at: usize,
    },
}

impl Verdict {
    /// Whether SPEC.md makes a server close before the client's EOF (`end` or an invalid byte).
    pub fn closes_before_eof(&self) -> bool {
        !matches!(self.ending, ModelEnding::Open { .. })
    }
}

/// Judges a whole client stream (SPEC: WIRE-INVALID-1): the pings that lead it, then `end`, an
/// invalid byte, or the stream still open.
pub fn judge(stream: &[u8]) -> Verdict {
    let mut pings = 0;
    while stream[4 * pings..].starts_with(PING) {
        pings += 1;
    }
    let start = 4 * pings;
    let rest = &stream[start..];
    let token: &[u8] = if rest.first() == Some(&END[0]) { END } else { PING };
    let matched = rest.iter().zip(token).take_while(|(a, b)| a == b).count();
    let ending = if matched == token.len() {
        // Only `end` can match fully here: a full ping would have been counted.
        ModelEnding::End { at: start + END.len() }
    } else if matched == rest.len() {
        ModelEnding::Open { mid_token: matched > 0 }
    } else {
        ModelEnding::Invalid { at: start + matched }
    };
    Verdict { pings, ending }
}

/// Splits `data` into pieces whose lengths come from `lengths` (cycled; zero counts as one; the
/// last piece takes what remains). With no lengths, the whole is one piece.
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

/// Splits `data` at the given offsets (in any order, repeated or out of range ones ignored)
/// into non-empty pieces.
pub fn split_at<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().copied().filter(|&c| c <= data.len()).collect();
    points.extend([0, data.len()]);
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPEC: WIRE-INVALID-1 — the oracle agrees with every row of the SPEC.md table.
    #[test]
    fn oracle_agrees_with_the_spec_table() {
        for row in INVALID_TABLE {
            let verdict = judge(row.stream);
            let expected = if row.stream[..row.offset].ends_with(END) {
                // After `end` the stream is over; the next byte is the first invalid one.
                ModelEnding::End { at: row.offset }
            } else {
                ModelEnding::Invalid { at: row.offset }
            };
            assert_eq!(verdict.ending, expected, "{:?}", row.stream.escape_ascii().to_string());
        }
    }

    #[test]
    fn every_invalid_class_breaks_a_stream_at_a_boundary_and_inside_a_token() {
        for (class, bytes) in INVALID_CLASSES {
            for &byte in bytes.iter() {
                assert_eq!(judge(&[b'p', b'i', byte]).ending, ModelEnding::Invalid { at: 2 }, "{class} {byte:#x}");
                assert_eq!(judge(&[byte]).ending, ModelEnding::Invalid { at: 0 }, "{class} {byte:#x}");
            }
        }
    }

    // SPEC: WIRE-INVALID-1, SRV-EOF-1 — a stream that stops inside a token holds no invalid
    // byte; it is open, and mid-token only when at least one byte of the token has arrived.
    #[test]
    fn open_streams_are_mid_token_only_inside_a_token() {
        let open = |pings, mid_token| Verdict { pings, ending: ModelEnding::Open { mid_token } };
        assert_eq!(judge(b""), open(0, false));
        assert_eq!(judge(b"ping"), open(1, false));
        assert_eq!(judge(b"p"), open(0, true));
        assert_eq!(judge(b"pingpin"), open(1, true));
        assert_eq!(judge(b"pingen"), open(1, true));
        assert_eq!(judge(b"pingend"), Verdict { pings: 1, ending: ModelEnding::End { at: 7 } });
        assert_eq!(judge(b"pingpinx"), Verdict { pings: 1, ending: ModelEnding::Invalid { at: 7 } });
        assert_eq!(judge(b"ex"), Verdict { pings: 0, ending: ModelEnding::Invalid { at: 1 } });
    }

    // SPEC: SRV-END-1, SRV-INVALID-1, SRV-EOF-1 — `end` and an invalid byte close the
    // connection at once; an open stream waits for the client's EOF.
    #[test]
    fn only_end_and_invalid_bytes_close_before_eof() {
        assert!(judge(b"pingend").closes_before_eof());
        assert!(judge(b"pingx").closes_before_eof());
        assert!(!judge(b"ping").closes_before_eof());
        assert!(!judge(b"pingpi").closes_before_eof());
    }

    #[test]
    fn segmenters_keep_every_byte_in_order() {
        let data = b"pingpingend";
        assert_eq!(pieces(data, &[3, 0]).concat(), data);
        assert_eq!(pieces(data, &[3, 0])[..3], [&b"pin"[..], b"g", b"pin"]);
        assert_eq!(split_at(data, &[4, 2, 4, 99]), [&b"pi"[..], b"ng", b"pingend"]);
        assert!(split_at(b"", &[0]).is_empty());
    }
}
