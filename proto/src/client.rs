//! A lock-step client's side of one connection (SPEC.md section 6).
//!
//! The driver asks [`ClientSession::poll_transmit`] what to send, sends it, and hands every byte
//! it reads to [`ClientSession::on_bytes`]; the session says when a reply is wrong, and only
//! offers the next `ping` once the previous `pong` is complete (SPEC: CLT-LOCKSTEP-1).

use core::fmt;

use crate::{END, PING, PONG};

/// Up to four received bytes, kept inline for error messages without allocating.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyBytes {
    bytes: [u8; 4],
    len: u8,
}

impl ReplyBytes {
    fn push(&mut self, byte: u8) {
        if usize::from(self.len) < self.bytes.len() {
            self.bytes[usize::from(self.len)] = byte;
            self.len += 1;
        }
    }

    /// The bytes held (at most four).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl fmt::Debug for ReplyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The bytes double-quoted with Rust-style escapes, as [`crate::quoted`] writes them.
impl fmt::Display for ReplyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.as_bytes().escape_ascii())
    }
}

/// Ways a server's replies break the protocol, as the client sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// SPEC: CLT-REPLY-2 — `received` ends with the first byte that does not continue `pong`.
    UnexpectedReply {
        /// The round (from 1) whose reply was wrong.
        round: u64,
        /// The reply's bytes up to and including the first wrong one.
        received: ReplyBytes,
    },
    /// SPEC: CLT-EOF-1
    ClosedEarly {
        /// The round (from 1) whose reply was cut short.
        round: u64,
        /// The reply's bytes that arrived before the close.
        received: ReplyBytes,
    },
    /// The server sent bytes nobody asked for (a second reply to one ping, or bytes after
    /// `end` was due); `received` holds the first of them.
    Unsolicited {
        /// Rounds completed when the bytes arrived.
        round: u64,
        /// Up to four of the unsolicited bytes.
        received: ReplyBytes,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnexpectedReply { round, received } => {
                write!(f, "round {round}: expected \"pong\", received {received}")
            }
            ProtocolError::ClosedEarly { round, received } => write!(
                f,
                "round {round}: server closed the connection after {} of 4 reply bytes ({received})",
                received.as_bytes().len()
            ),
            ProtocolError::Unsolicited { round, received } => {
                write!(f, "after round {round}: received {received} although no reply was owed")
            }
        }
    }
}

impl core::error::Error for ProtocolError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    SendPing,
    /// This many bytes of the reply `pong` have arrived (0..=3).
    AwaitPong(u8),
    SendEnd,
    Finished,
    Failed(ProtocolError),
}

/// The state of one lock-step client connection.
///
/// ```
/// use udsping_proto::{ClientSession, ProtocolError};
///
/// let mut session = ClientSession::new(2);
/// assert_eq!(session.poll_transmit(), Some(&b"ping"[..]));
/// assert_eq!(session.poll_transmit(), None); // lock-step: wait for the pong
/// session.on_bytes(b"po")?;
/// session.on_bytes(b"ng")?;
/// assert_eq!(session.poll_transmit(), Some(&b"ping"[..]));
/// let error = session.on_bytes(b"pox").unwrap_err();
/// assert!(matches!(error, ProtocolError::UnexpectedReply { round: 2, .. }));
/// assert_eq!(error.to_string(), r#"round 2: expected "pong", received "pox""#);
/// assert_eq!(session.poll_transmit(), None); // no `end` after a wrong reply
/// # Ok::<(), ProtocolError>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientSession {
    rounds: u64,
    completed: u64,
    state: State,
}

impl ClientSession {
    /// A session that performs `rounds` rounds and then sends `end` (SPEC: CLT-END-1).
    pub fn new(rounds: u64) -> Self {
        let state = if rounds == 0 { State::SendEnd } else { State::SendPing };
        ClientSession { rounds, completed: 0, state }
    }

    /// The bytes to send now, if any. `None` means: wait for the reply (or the session is over).
    pub fn poll_transmit(&mut self) -> Option<&'static [u8]> {
        match self.state {
            State::SendPing => {
                self.state = State::AwaitPong(0);
                Some(PING)
            }
            State::SendEnd => {
                self.state = State::Finished;
                Some(END)
            }
            State::AwaitPong(_) | State::Finished | State::Failed(_) => None,
        }
    }

    /// Whether the session waits for reply bytes.
    pub fn wants_read(&self) -> bool {
        matches!(self.state, State::AwaitPong(_))
    }

    /// Takes bytes read from the server. After an error the session sends nothing more, and
    /// this and [`on_eof`](Self::on_eof) report that first error again.
    pub fn on_bytes(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        if let State::Failed(error) = self.state {
            return Err(error);
        }
        for (index, &byte) in bytes.iter().enumerate() {
            // SPEC: CLT-REPLY-1 — the reply is matched byte by byte, however it was split.
            let State::AwaitPong(got) = self.state else {
                let mut received = ReplyBytes::default();
                bytes[index..].iter().take(4).for_each(|&b| received.push(b));
                return self.fail(ProtocolError::Unsolicited { round: self.completed, received });
            };
            if byte != PONG[usize::from(got)] {
                let mut received = ReplyBytes::default();
                PONG[..usize::from(got)].iter().chain([&byte]).for_each(|&b| received.push(b));
                return self.fail(ProtocolError::UnexpectedReply { round: self.completed + 1, received });
            }
            self.state = if usize::from(got) + 1 < PONG.len() {
                State::AwaitPong(got + 1)
            } else {
                self.completed += 1;
                if self.completed == self.rounds {
                    State::SendEnd
                } else {
                    State::SendPing
                }
            };
        }
        Ok(())
    }

    /// Takes the server closing the connection.
    pub fn on_eof(&mut self) -> Result<(), ProtocolError> {
        match self.state {
            State::AwaitPong(got) => {
                let mut received = ReplyBytes::default();
                PONG[..usize::from(got)].iter().for_each(|&b| received.push(b));
                self.fail(ProtocolError::ClosedEarly { round: self.completed + 1, received })
            }
            State::Failed(error) => Err(error),
            _ => Ok(()),
        }
    }

    fn fail(&mut self, error: ProtocolError) -> Result<(), ProtocolError> {
        self.state = State::Failed(error);
        Err(error)
    }

    /// Rounds completed so far.
    pub fn completed_rounds(&self) -> u64 {
        self.completed
    }

    /// Whether every round completed and `end` has been handed out (SPEC: CLT-EXIT-1).
    pub fn is_finished(&self) -> bool {
        self.state == State::Finished
    }

    /// The error that stopped the session, if one did.
    pub fn error(&self) -> Option<ProtocolError> {
        match self.state {
            State::Failed(error) => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a session as the blocking client does. Bounded: a session that keeps asking for
    /// bytes after the server's are all delivered and its EOF is taken fails the test instead of
    /// hanging it.
    fn drive(rounds: u64, server_bytes: &[&[u8]]) -> (Vec<u8>, Result<(), ProtocolError>) {
        let mut session = ClientSession::new(rounds);
        let mut sent = Vec::new();
        let mut pieces = server_bytes.iter();
        for _ in 0..=server_bytes.len() + 1 {
            // Lock-step: one token at a time, then wait.
            if let Some(bytes) = session.poll_transmit() {
                sent.extend_from_slice(bytes);
                assert_eq!(session.poll_transmit(), None, "a second token without a reply");
            }
            if !session.wants_read() {
                return (sent, Ok(()));
            }
            let result = match pieces.next() {
                Some(piece) => session.on_bytes(piece),
                None => session.on_eof(),
            };
            if result.is_err() {
                return (sent, result);
            }
        }
        panic!("the session still wants to read after the server's EOF (sent {sent:?})");
    }

    // SPEC: CLT-LOCKSTEP-1, CLT-REPLY-1, CLT-END-1
    #[test]
    fn split_replies_complete_rounds_in_lock_step() {
        let (sent, result) = drive(2, &[b"po", b"n", b"g", b"pong"]);
        assert_eq!(result, Ok(()));
        assert_eq!(sent, b"pingpingend");
    }

    // SPEC: CLT-REPLY-2 — stops at the first wrong byte, sends nothing more (no `end`).
    #[test]
    fn wrong_reply_stops_without_end() {
        let (sent, result) = drive(3, &[b"pong", b"pox"]);
        assert_eq!(sent, b"pingping");
        let error = result.unwrap_err();
        assert_eq!(error.to_string(), "round 2: expected \"pong\", received \"pox\"");
    }

    // SPEC: CLT-EOF-1
    #[test]
    fn early_close_says_how_much_arrived() {
        let (_, result) = drive(1, &[b"po"]);
        assert_eq!(
            result.unwrap_err().to_string(),
            "round 1: server closed the connection after 2 of 4 reply bytes (\"po\")"
        );
    }

    #[test]
    fn a_second_reply_is_unsolicited() {
        let (sent, result) = drive(2, &[b"pongpong"]);
        assert_eq!(sent, b"ping");
        assert!(matches!(result, Err(ProtocolError::Unsolicited { round: 1, .. })));
    }

    // SPEC: CLT-REPLY-2 — the message says what was received: the first error, which a later
    // read (a driver draining the socket before closing) neither hides nor replaces.
    #[test]
    fn a_failed_session_reports_its_first_error_again() {
        let mut session = ClientSession::new(2);
        assert_eq!(session.poll_transmit(), Some(&PING[..]));
        let first = session.on_bytes(b"pox").unwrap_err();
        assert!(matches!(first, ProtocolError::UnexpectedReply { round: 1, .. }), "{first:?}");
        assert_eq!(session.on_bytes(b"pong"), Err(first));
        assert_eq!(session.on_bytes(b""), Err(first));
        assert_eq!(session.on_eof(), Err(first));
        assert_eq!(session.error(), Some(first));
        assert_eq!(session.poll_transmit(), None);
        assert!(!session.wants_read() && !session.is_finished());
    }

    #[test]
    fn zero_rounds_sends_only_end() {
        assert_eq!(drive(0, &[]), (b"end".to_vec(), Ok(())));
    }

    // SPEC: CLT-LOCKSTEP-1, CLT-END-1, CLT-EXIT-1 — what a driver reads between the calls: the
    // rounds counted when a pong is complete, reading only while a reply is owed, finished
    // only once `end` is handed out, and no error on the way.
    #[test]
    fn the_session_reports_rounds_reading_and_finishing_as_they_happen() {
        let mut session = ClientSession::new(2);
        let state = |s: &ClientSession| (s.completed_rounds(), s.wants_read(), s.is_finished(), s.error());
        assert_eq!(state(&session), (0, false, false, None));
        assert_eq!(session.poll_transmit(), Some(&PING[..]));
        assert_eq!(state(&session), (0, true, false, None));
        session.on_bytes(b"pon").unwrap();
        assert_eq!(state(&session), (0, true, false, None));
        session.on_bytes(b"g").unwrap();
        assert_eq!(state(&session), (1, false, false, None));
        assert_eq!(session.poll_transmit(), Some(&PING[..]));
        session.on_bytes(b"pong").unwrap();
        assert_eq!(state(&session), (2, false, false, None));
        assert_eq!(session.poll_transmit(), Some(&END[..]));
        assert_eq!(state(&session), (2, false, true, None));
        assert_eq!(session.poll_transmit(), None);
        assert_eq!(session.on_eof(), Ok(()));
        assert_eq!(state(&session), (2, false, true, None));
    }

    // SPEC: CLT-EOF-1 — a close before the reply's first byte is an error too.
    #[test]
    fn a_close_while_a_reply_is_owed_is_an_error_even_with_no_byte_of_it() {
        let (sent, result) = drive(2, &[b"pong"]);
        assert_eq!(sent, b"pingping");
        let error = result.unwrap_err();
        assert_eq!(error, ProtocolError::ClosedEarly { round: 2, received: ReplyBytes::default() });
        assert_eq!(error.to_string(), "round 2: server closed the connection after 0 of 4 reply bytes (\"\")");
    }

    #[test]
    fn unsolicited_bytes_are_shown_up_to_four() {
        let (_, result) = drive(1, &[b"pong\xffpongpong"]);
        let error = result.unwrap_err();
        assert_eq!(error.to_string(), "after round 1: received \"\\xffpon\" although no reply was owed");
        // After `end`: any byte at all is unsolicited.
        let mut session = ClientSession::new(0);
        assert_eq!(session.poll_transmit(), Some(&END[..]));
        let error = session.on_bytes(b"p").unwrap_err();
        assert_eq!(error.to_string(), "after round 0: received \"p\" although no reply was owed");
    }

    // The buffer behind every message holds four bytes and drops the rest, and its `Debug` is
    // the quoted form, so that a `{:?}` of an error reads like SPEC.md's byte strings.
    #[test]
    fn reply_bytes_hold_at_most_four_bytes_and_debug_as_quoted() {
        let mut bytes = ReplyBytes::default();
        assert_eq!(bytes.as_bytes(), b"");
        for &byte in b"po\nxyz" {
            bytes.push(byte);
        }
        assert_eq!(bytes.as_bytes(), b"po\nx");
        assert_eq!(format!("{bytes:?}"), r#""po\nx""#);
        assert_eq!(format!("{bytes}"), r#""po\nx""#);
    }
}
