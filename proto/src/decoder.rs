//! The decoder for the client-to-server stream (SPEC.md sections 4.1–4.4).
//!
//! Like httparse, it is a function over whatever bytes have arrived: it reports how many complete
//! pings they held and whether the stream is still incomplete ([`Status::NeedMore`]), finished
//! with `end`, or broken by an invalid byte. Because `{ping, end}` is prefix-free, its only state
//! is how far it is into which token (SPEC: WIRE-DECODE-1): it stores no bytes at all, so a
//! connection's memory is constant whatever the client sends.

use core::fmt;

use crate::{END, PING};

/// What the byte at an invalid offset should have been (for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// At a token boundary: `p` (of `ping`) or `e` (of `end`).
    TokenStart,
    /// Inside a token: exactly this byte.
    Byte(u8),
    /// After `end`: no byte at all.
    Nothing,
}

/// The first invalid byte of a stream (SPEC: WIRE-INVALID-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidByte {
    /// Offset of the byte in everything the peer sent on this connection.
    pub offset: u64,
    /// The byte itself.
    pub byte: u8,
    /// What would have been valid there.
    pub expected: Expected,
}

impl fmt::Display for InvalidByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid byte 0x{:02x} (b'{}') at offset {}: expected ",
            self.byte,
            [self.byte].escape_ascii(),
            self.offset
        )?;
        match self.expected {
            Expected::TokenStart => f.write_str("b'p' (start of \"ping\") or b'e' (start of \"end\")"),
            Expected::Byte(b) => write!(f, "b'{}'", [b].escape_ascii()),
            Expected::Nothing => f.write_str("nothing after \"end\""),
        }
    }
}

/// Where the stream stands after the bytes given to [`Decoder::decode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Every byte was valid; the stream is at a token boundary or inside one token.
    NeedMore,
    /// The stream finished with `end`.
    End,
    /// The stream broke at this byte.
    Invalid(InvalidByte),
}

/// The result of one [`Decoder::decode`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Complete pings decoded by this call, all of them before `status`'s event.
    pub pings: usize,
    /// Bytes of the input that were valid and taken; with [`Status::End`] the bytes after `end`
    /// are not taken, with [`Status::Invalid`] the invalid byte is not taken.
    pub consumed: usize,
    /// Where the stream stands.
    pub status: Status,
}

/// One protocol event, for callers that want a per-token view (tests, fuzzers, the gate).
///
/// ```
/// use udsping_proto::{Decoder, Event};
///
/// let events: Vec<Event> = Decoder::new().decode(b"pingend").events().collect();
/// assert_eq!(events, [Event::Ping, Event::End]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete `ping`.
    Ping,
    /// The final `end`.
    End,
    /// The stream broke at this byte.
    Invalid(InvalidByte),
}

impl Decoded {
    /// The events of this call in stream order: `pings` times [`Event::Ping`], then `End` or
    /// `Invalid` if the stream stopped.
    pub fn events(&self) -> impl Iterator<Item = Event> {
        let last = match self.status {
            Status::NeedMore => None,
            Status::End => Some(Event::End),
            Status::Invalid(invalid) => Some(Event::Invalid(invalid)),
        };
        core::iter::repeat_n(Event::Ping, self.pings).chain(last)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between tokens.
    Boundary,
    /// This many bytes of `ping` matched (1..=3).
    InPing(u8),
    /// This many bytes of `end` matched (1..=2).
    InEnd(u8),
    Ended,
    Failed(InvalidByte),
}

/// Incremental decoder of the client-to-server grammar `*ping [end]`.
///
/// ```
/// use udsping_proto::{Decoder, Expected, Status};
///
/// let mut decoder = Decoder::new();
/// let first = decoder.decode(b"pingpi");
/// assert_eq!((first.pings, first.status), (1, Status::NeedMore));
/// assert!(decoder.is_mid_token());
/// let second = decoder.decode(b"nGping");
/// let Status::Invalid(invalid) = second.status else { panic!("{second:?}") };
/// assert_eq!((invalid.offset, invalid.byte, invalid.expected), (7, b'G', Expected::Byte(b'g')));
/// assert_eq!(invalid.to_string(), "invalid byte 0x47 (b'G') at offset 7: expected b'g'");
/// ```
#[derive(Clone, Debug)]
pub struct Decoder {
    state: State,
    /// Offset of the next byte to be decoded.
    offset: u64,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

const PING_WORD: u32 = u32::from_ne_bytes(*PING);

/// Eight pings: the fast path compares a stream of pings a block at a time, which the compiler
/// turns into a few vector compares instead of eight word compares and eight branches.
const PING_BLOCK: [u8; 32] = {
    let mut block = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        block[i] = PING[i % 4];
        i += 1;
    }
    block
};

impl Decoder {
    /// A decoder at the start of a stream.
    pub const fn new() -> Self {
        Decoder { state: State::Boundary, offset: 0 }
    }

    /// Whether the bytes taken so far end inside a token (`"pi"`, `"en"`, ...).
    pub fn is_mid_token(&self) -> bool {
        matches!(self.state, State::InPing(_) | State::InEnd(_))
    }

    /// Offset of the next byte the decoder would take.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Decodes the next bytes of the stream. Calling it with any division of a stream into
    /// pieces gives the same pings and the same final status as one call with the whole stream
    /// (SPEC: WIRE-STREAM-1); it returns as soon as the stream ends or breaks, so a ping is
    /// reported in the call that delivers its last byte (SPEC: WIRE-STREAM-2).
    ///
    /// Once the stream has ended or broken, further calls take no bytes: after `end` any byte is
    /// invalid (`"pingendping"` breaks at offset 7), and after an invalid byte the same
    /// [`InvalidByte`] is reported again.
    pub fn decode(&mut self, input: &[u8]) -> Decoded {
        let mut pings = 0;
        let mut i = 0;
        let status = loop {
            match self.state {
                State::Failed(invalid) => break Status::Invalid(invalid),
                State::Ended => match input.get(i) {
                    None => break Status::End,
                    Some(&byte) => break self.fail(i, byte, Expected::Nothing),
                },
                State::Boundary => {
                    // Fast path: whole pings compared eight at a time, then as 32-bit words.
                    let blocks = input[i..].chunks_exact(PING_BLOCK.len()).take_while(|b| *b == PING_BLOCK).count();
                    pings += blocks * 8;
                    i += blocks * PING_BLOCK.len();
                    while let Some(word) = input.get(i..i + 4) {
                        if u32::from_ne_bytes([word[0], word[1], word[2], word[3]]) != PING_WORD {
                            break;
                        }
                        pings += 1;
                        i += 4;
                    }
                    let Some(&byte) = input.get(i) else { break Status::NeedMore };
                    self.state = match byte {
                        b'p' => State::InPing(1),
                        b'e' => State::InEnd(1),
                        _ => break self.fail(i, byte, Expected::TokenStart),
                    };
                    i += 1;
                }
                State::InPing(matched) => {
                    let Some(&byte) = input.get(i) else { break Status::NeedMore };
                    let want = PING[usize::from(matched)];
                    if byte != want {
                        break self.fail(i, byte, Expected::Byte(want));
                    }
                    i += 1;
                    if usize::from(matched) + 1 == PING.len() {
                        pings += 1;
                        self.state = State::Boundary;
                    } else {
                        self.state = State::InPing(matched + 1);
                    }
                }
                State::InEnd(matched) => {
                    let Some(&byte) = input.get(i) else { break Status::NeedMore };
                    let want = END[usize::from(matched)];
                    if byte != want {
                        break self.fail(i, byte, Expected::Byte(want));
                    }
                    i += 1;
                    if usize::from(matched) + 1 == END.len() {
                        self.state = State::Ended;
                        break Status::End;
                    }
                    self.state = State::InEnd(matched + 1);
                }
            }
        };
        self.offset += i as u64;
        Decoded { pings, consumed: i, status }
    }

    fn fail(&mut self, index: usize, byte: u8, expected: Expected) -> Status {
        let invalid = InvalidByte { offset: self.offset + index as u64, byte, expected };
        self.state = State::Failed(invalid);
        Status::Invalid(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_whole(stream: &[u8]) -> (usize, Status) {
        let d = Decoder::new().decode(stream);
        (d.pings, d.status)
    }

    fn invalid_at(offset: u64, byte: u8, expected: Expected) -> Status {
        Status::Invalid(InvalidByte { offset, byte, expected })
    }

    // SPEC: WIRE-INVALID-1 — the table in SPEC.md section 4.4, row by row (the shared copy in
    // `grammar`): the pings before the invalid byte, and the byte at its offset. After `end`
    // the decoder stops, and the byte after it is reported on the next call.
    #[test]
    fn spec_table_of_invalid_streams() {
        for row in crate::grammar::INVALID_TABLE {
            let name = row.stream.escape_ascii().to_string();
            let mut decoder = Decoder::new();
            let mut decoded = decoder.decode(row.stream);
            let mut pings = decoded.pings;
            if decoded.status == Status::End {
                decoded = decoder.decode(&row.stream[decoded.consumed..]);
                pings += decoded.pings;
            }
            let Status::Invalid(invalid) = decoded.status else { panic!("{name}: not invalid: {decoded:?}") };
            assert_eq!((invalid.offset, invalid.byte), (row.offset as u64, row.stream[row.offset]), "{name}");
            assert_eq!(pings, row.stream[..row.offset].len() / 4, "{name}");
        }
        assert_eq!(decode_whole(b"pinG"), (0, invalid_at(3, b'G', Expected::Byte(b'g'))));
        assert_eq!(decode_whole(b"\xff"), (0, invalid_at(0, 0xff, Expected::TokenStart)));
    }

    // SPEC: WIRE-INVALID-1 — nothing may follow `end`; the byte after it is reported on the
    // next call, so a server that stops at `End` never sees it.
    #[test]
    fn byte_after_end_is_invalid_on_the_next_call() {
        let mut decoder = Decoder::new();
        let first = decoder.decode(b"pingendping");
        assert_eq!((first.pings, first.consumed, first.status), (1, 7, Status::End));
        let second = decoder.decode(b"ping");
        assert_eq!(second.status, invalid_at(7, b'p', Expected::Nothing));
        assert_eq!((second.pings, second.consumed), (0, 0));
    }

    #[test]
    fn a_broken_stream_stays_broken() {
        let mut decoder = Decoder::new();
        let first = decoder.decode(b"pingX");
        let again = decoder.decode(b"ping");
        assert_eq!(first.status, again.status);
        assert_eq!((again.pings, again.consumed), (0, 0));
    }

    // SPEC: WIRE-INVALID-1 — the block fast path reports the same first invalid byte as the
    // byte-at-a-time path: a corrupted byte at every position of a long run of pings, and the
    // run cut at every length around the block size.
    #[test]
    fn fast_path_finds_the_first_invalid_byte_anywhere() {
        let stream = PING.repeat(20);
        for at in 0..stream.len() {
            let mut corrupted = stream.clone();
            corrupted[at] = b'X';
            let expected = if at % 4 == 0 { Expected::TokenStart } else { Expected::Byte(PING[at % 4]) };
            assert_eq!(decode_whole(&corrupted), (at / 4, invalid_at(at as u64, b'X', expected)), "byte {at}");
        }
        for len in 0..stream.len() {
            let d = Decoder::new().decode(&stream[..len]);
            assert_eq!((d.pings, d.consumed, d.status), (len / 4, len, Status::NeedMore), "length {len}");
        }
    }

    // SPEC: WIRE-INVALID-1 — the fast path compares against a block of eight pings and nothing
    // else: a run of any other byte at least a block long (32 NULs, say, which a zeroed block
    // would take for eight pings) breaks at its first byte, at the start or after pings.
    #[test]
    fn a_run_of_one_byte_is_never_a_block_of_pings() {
        for byte in 0..=u8::MAX {
            for pings in [0, 1, 8] {
                let mut stream = PING.repeat(pings);
                stream.extend([byte; 2 * PING_BLOCK.len()]);
                // `p` and `e` start a token, and the run breaks at its second byte.
                let (at, expected) = match byte {
                    b'p' => (4 * pings + 1, Expected::Byte(b'i')),
                    b'e' => (4 * pings + 1, Expected::Byte(b'n')),
                    _ => (4 * pings, Expected::TokenStart),
                };
                let d = Decoder::new().decode(&stream);
                assert_eq!((d.pings, d.consumed), (pings, at), "{byte:#x} after {pings} pings");
                assert_eq!(d.status, invalid_at(at as u64, stream[at], expected), "{byte:#x} after {pings} pings");
            }
        }
    }

    // SPEC: WIRE-INVALID-1 — offsets count everything the peer sent on the connection, across
    // calls: the next byte to take, which stays at `end`'s end or at the invalid byte.
    #[test]
    fn offset_counts_every_byte_taken_across_calls() {
        let mut decoder = Decoder::new();
        assert_eq!(decoder.offset(), 0);
        decoder.decode(b"pin");
        assert_eq!(decoder.offset(), 3);
        decoder.decode(b"");
        assert_eq!(decoder.offset(), 3);
        decoder.decode(&PING.repeat(10)[3..]);
        assert_eq!(decoder.offset(), 40);
        let d = decoder.decode(b"enx");
        assert_eq!(d.status, invalid_at(42, b'x', Expected::Byte(b'd')));
        assert_eq!(decoder.offset(), 42);
        decoder.decode(b"ping");
        assert_eq!(decoder.offset(), 42);

        let mut decoder = Decoder::new();
        decoder.decode(b"pingendping");
        assert_eq!(decoder.offset(), 7);
        decoder.decode(b"ping");
        assert_eq!(decoder.offset(), 7);
    }

    // SPEC: WIRE-STREAM-1 — every single split point of a stream with each kind of ending.
    #[test]
    fn every_two_way_split_decodes_like_the_whole() {
        for stream in [&b"pingpingend"[..], b"pingpinG", b"pingpi", b"pingendx", b"pipingx"] {
            let whole = decode_whole(stream);
            for cut in 0..=stream.len() {
                let mut decoder = Decoder::new();
                let a = decoder.decode(&stream[..cut]);
                let (pings, status) = if a.status == Status::NeedMore {
                    // NeedMore means the whole first piece was taken.
                    assert_eq!(a.consumed, cut);
                    let b = decoder.decode(&stream[cut..]);
                    (a.pings + b.pings, b.status)
                } else {
                    (a.pings, a.status)
                };
                assert_eq!((pings, status), whole, "stream {stream:?} cut at {cut}");
            }
        }
    }

    #[test]
    fn partial_tokens_are_mid_token_and_not_counted() {
        let mut decoder = Decoder::new();
        let d = decoder.decode(b"pingpin");
        assert_eq!((d.pings, d.consumed, d.status), (1, 7, Status::NeedMore));
        assert!(decoder.is_mid_token());
        assert_eq!(decoder.decode(b"g").pings, 1);
        assert!(!decoder.is_mid_token());
    }

    #[test]
    fn invalid_byte_message_says_what_was_expected_and_seen() {
        let Status::Invalid(invalid) = decode_whole(b"pinG").1 else { panic!("must be invalid") };
        assert_eq!(invalid.to_string(), "invalid byte 0x47 (b'G') at offset 3: expected b'g'");
        let Status::Invalid(invalid) = decode_whole(b"ping\n").1 else { panic!("must be invalid") };
        assert_eq!(
            invalid.to_string(),
            "invalid byte 0x0a (b'\\n') at offset 4: expected b'p' (start of \"ping\") or b'e' (start of \"end\")"
        );
        let mut decoder = Decoder::new();
        decoder.decode(b"end");
        let Status::Invalid(invalid) = decoder.decode(b"\xff").status else { panic!("must be invalid") };
        assert_eq!(invalid.to_string(), "invalid byte 0xff (b'\\xff') at offset 3: expected nothing after \"end\"");
    }
}
