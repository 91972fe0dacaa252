//! A server's side of one connection (SPEC.md section 5): what it owes for the bytes received.
//!
//! The session turns bytes and end-of-file into a [`Reply`]: how many `pong`s to send now and
//! whether to close afterwards. The driver sends those pongs in one write per batch
//! ([`pong_chunks`]), so a pipelining client is answered at memory speed (SPEC: SRV-PONG-4).

use crate::decoder::{Decoder, InvalidByte, Status};
use crate::PONG;

/// How a connection ended, as far as the protocol is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The client sent `end` (SPEC: SRV-END-1).
    End,
    /// The client sent an invalid byte (SPEC: SRV-INVALID-1).
    Invalid(InvalidByte),
    /// The client's stream ended before `end` (SPEC: SRV-EOF-1); `mid_token` when it stopped
    /// inside a token, which gets no reply.
    Eof {
        /// Whether the stream stopped inside a token (`"pi"`).
        mid_token: bool,
    },
}

impl Ending {
    /// Whether SPEC.md counts this as an orderly end (only `end` is; SPEC: SRV-EOF-2).
    pub fn is_orderly(&self) -> bool {
        matches!(self, Ending::End)
    }
}

/// What the driver does next: send `pongs` pongs, then close if `close` is set.
///
/// ```
/// use udsping_proto::{pong_chunks, Ending, Reply, ServerSession};
///
/// let mut session = ServerSession::new();
/// let reply: Reply = session.on_bytes(b"pingpingend");
/// assert_eq!(reply, Reply { pongs: 2, close: Some(Ending::End) });
/// // The driver writes the owed pongs (one write per 1024), then closes.
/// let written: usize = pong_chunks(reply.pongs).map(<[u8]>::len).sum();
/// assert_eq!(written, 8);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Pongs to send now, before anything else.
    pub pongs: usize,
    /// Close the connection after sending them, for this reason.
    pub close: Option<Ending>,
}

/// The server's state for one connection.
///
/// ```
/// use udsping_proto::{Ending, ServerSession};
///
/// let mut session = ServerSession::new();
/// // A ping split across reads is answered once, when its last byte arrives.
/// assert_eq!(session.on_bytes(b"pi").pongs, 0);
/// assert_eq!(session.on_bytes(b"ngpi").pongs, 1);
/// // EOF inside a token: no reply, and not an orderly end.
/// let reply = session.on_eof();
/// assert_eq!(reply.close, Some(Ending::Eof { mid_token: true }));
/// assert!(!session.ending().unwrap().is_orderly());
/// ```
#[derive(Clone, Debug, Default)]
pub struct ServerSession {
    decoder: Decoder,
    ending: Option<Ending>,
}

impl ServerSession {
    /// A session for a connection that has received nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes bytes received from the client.
    pub fn on_bytes(&mut self, bytes: &[u8]) -> Reply {
        if let Some(ending) = self.ending {
            // SPEC: SRV-END-2 — nothing after the end is ever answered.
            return Reply { pongs: 0, close: Some(ending) };
        }
        let decoded = self.decoder.decode(bytes);
        // SPEC: SRV-PONG-1, SRV-PONG-2, SRV-INVALID-1 — one pong per complete ping (a partial one
        // is not counted by the decoder), and the pongs owed before `end` or an invalid byte are
        // sent before closing.
        let close = match decoded.status {
            Status::NeedMore => None,
            Status::End => Some(Ending::End),
            Status::Invalid(invalid) => Some(Ending::Invalid(invalid)),
        };
        self.ending = close;
        Reply { pongs: decoded.pings, close }
    }

    /// Takes the end of the client's stream.
    pub fn on_eof(&mut self) -> Reply {
        // SPEC: SRV-EOF-1 — a partial token at EOF gets no reply, and the connection closes.
        let ending = *self.ending.get_or_insert(Ending::Eof { mid_token: self.decoder.is_mid_token() });
        Reply { pongs: 0, close: Some(ending) }
    }

    /// How the connection ended, once it has.
    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }
}

const PONGS_PER_BLOCK: usize = 1024;

/// 4 KiB of `pong`s, the unit of one write.
static PONG_BLOCK: [u8; PONG.len() * PONGS_PER_BLOCK] = {
    let mut block = [0u8; PONG.len() * PONGS_PER_BLOCK];
    let mut i = 0;
    while i < block.len() {
        block[i] = PONG[i % PONG.len()];
        i += 1;
    }
    block
};

/// The bytes of `count` pongs as slices of a static block: no allocation, one write per 1024
/// pongs.
pub fn pong_chunks(count: usize) -> impl Iterator<Item = &'static [u8]> {
    let full = count / PONGS_PER_BLOCK;
    let rest = count % PONGS_PER_BLOCK;
    core::iter::repeat_n(&PONG_BLOCK[..], full).chain((rest > 0).then(|| &PONG_BLOCK[..rest * PONG.len()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPEC: SRV-PONG-1, SRV-PONG-4 — exactly `count` pongs, in as few writes as the block
    // allows: one per 1024 pongs, and no empty write (a count that is a multiple of 1024, or
    // zero, has no short last chunk).
    #[test]
    fn pong_chunks_hold_exactly_count_pongs_in_full_blocks_and_one_rest() {
        for count in [0, 1, 2, 1023, 1024, 1025, 2048, 5000] {
            let chunks: Vec<&[u8]> = pong_chunks(count).collect();
            assert_eq!(chunks.concat(), PONG.repeat(count), "count {count}");
            assert_eq!(chunks.len(), count.div_ceil(1024), "count {count}");
            assert!(chunks.iter().all(|c| !c.is_empty() && c.len() <= 4096), "count {count}");
        }
    }

    // SPEC: SRV-EOF-2 — only `end` is orderly; an EOF, even at a boundary, and invalid input
    // are not.
    #[test]
    fn only_end_is_an_orderly_ending() {
        let invalid = InvalidByte { offset: 0, byte: b'x', expected: crate::Expected::TokenStart };
        assert!(Ending::End.is_orderly());
        assert!(!Ending::Invalid(invalid).is_orderly());
        assert!(!Ending::Eof { mid_token: false }.is_orderly());
        assert!(!Ending::Eof { mid_token: true }.is_orderly());
    }

    // SPEC: SRV-INVALID-1 — pings before the invalid byte are answered, then close.
    #[test]
    fn invalid_byte_answers_owed_pings_then_closes() {
        let mut session = ServerSession::new();
        let reply = session.on_bytes(b"pingpingPING");
        assert_eq!(reply.pongs, 2);
        assert!(matches!(reply.close, Some(Ending::Invalid(i)) if i.offset == 8));
    }

    // SPEC: SRV-END-2
    #[test]
    fn nothing_is_answered_after_end() {
        let mut session = ServerSession::new();
        assert_eq!(session.on_bytes(b"pingend"), Reply { pongs: 1, close: Some(Ending::End) });
        assert_eq!(session.on_bytes(b"pingping"), Reply { pongs: 0, close: Some(Ending::End) });
        assert_eq!(session.on_eof(), Reply { pongs: 0, close: Some(Ending::End) });
    }

    // SPEC: SRV-EOF-1, SRV-EOF-2
    #[test]
    fn eof_mid_token_is_an_abnormal_end_without_reply() {
        let mut session = ServerSession::new();
        assert_eq!(session.on_bytes(b"pingpi").pongs, 1);
        let reply = session.on_eof();
        assert_eq!(reply, Reply { pongs: 0, close: Some(Ending::Eof { mid_token: true }) });
        assert!(!reply.close.unwrap().is_orderly());
    }
}
