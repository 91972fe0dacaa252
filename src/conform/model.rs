//! Expected outcomes computed from the protocol core: a list of [`Move`]s (what a client does,
//! and where it looks) becomes a [`Script`] whose every expectation is what [`ServerSession`]
//! says a conforming server does (SPEC.md sections 4.2 to 5.5). Neither the fixed stream cases
//! nor generated ones carry hand-written expectations.
//!
//! Each step names the requirements that make it hold, so a failure there blames them and
//! nothing else (SPEC.md section 8):
//!
//! | step | requirements |
//! |---|---|
//! | a connection | SRV-ISOLATE-1 (the readiness probe came first), and SRV-CONC-1 while others are open |
//! | a write the server must read | SRV-OPEN-1, and WIRE-STREAM-1 once the stream is split or a token is pending |
//! | replies | SRV-PONG-1; WIRE-STREAM-1 once the connection's bytes came in several writes; SRV-PONG-3 and WIRE-STREAM-2 while a partial token is pending; SRV-END-1, SRV-INVALID-1 or SRV-EOF-1 for the pongs owed before the stream's end |
//! | silence | SRV-PONG-2 while a partial token is pending, SRV-PONG-1 otherwise |
//! | staying open | SRV-OPEN-1 (and WIRE-STREAM-1, as for a write) |
//! | the close | by how the stream ended: SRV-END-1 (SRV-END-2 with bytes after `end`), WIRE-INVALID-1 and SRV-INVALID-1, SRV-EOF-1 (SRV-PONG-2 mid-token) |
//! | the server outliving the script | SRV-ISOLATE-1, and SRV-INVALID-2 once invalid input was sent |
//!
//! While another connection of the script is open, replies and the close also name SRV-CONC-2
//! (nothing delays them) and SRV-ISOLATE-1 (they depend on this connection's bytes alone).

use std::collections::BTreeMap;
use std::time::Duration;

use super::bytes::Bytes;
use super::script::{Action, ConnWrite, Script, Step};
use crate::proto::grammar::{judge, ModelEnding};
use crate::proto::{Ending, ServerSession, PING, PONG};

/// What a client does, and where it looks; the model adds what it must observe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Move {
    /// An action: connect, write, pause, half-close, close, write on several connections at
    /// once. Any action on a connection that is not open opens it first.
    Do(Action),
    /// One write of `count` pings on connection `conn`.
    Pings {
        /// The connection, numbered from 1.
        conn: u32,
        /// How many pings.
        count: u32,
    },
    /// `rounds` lock-step rounds on connection `conn`: `"ping"`, then its `"pong"`.
    LockStep {
        /// The connection, numbered from 1.
        conn: u32,
        /// How many rounds.
        rounds: u32,
    },
    /// Read what the model says has arrived by now on `conn` (replies, a close).
    Observe {
        /// The connection, numbered from 1.
        conn: u32,
    },
    /// As `Observe`, and if the model says the connection stays open, check that nothing more
    /// arrives and it stays open for the quiet period.
    Quiet {
        /// The connection, numbered from 1.
        conn: u32,
    },
}

impl Move {
    /// The connections it acts on (none for a pause).
    pub(crate) fn conns(&self) -> Vec<u32> {
        match self {
            Move::Do(action) => action.conns(),
            Move::Pings { conn, .. } | Move::LockStep { conn, .. } | Move::Observe { conn } | Move::Quiet { conn } => {
                vec![*conn]
            }
        }
    }
}

/// One write of `bytes` on `conn` (the model adds why the server must read it).
pub(crate) const fn send(conn: u32, bytes: &'static [u8]) -> Move {
    Move::Do(Action::Send { conn, bytes: Bytes::from_static(bytes), because: Vec::new() })
}

/// One write of `count` pings on `conn`.
pub(crate) const fn pings(conn: u32, count: u32) -> Move {
    Move::Pings { conn, count }
}

/// `rounds` lock-step rounds on `conn`.
pub(crate) const fn lock_step(conn: u32, rounds: u32) -> Move {
    Move::LockStep { conn, rounds }
}

/// Read what `conn` is owed by now.
pub(crate) const fn observe(conn: u32) -> Move {
    Move::Observe { conn }
}

/// Read what `conn` is owed, then check that it stays quiet and open.
pub(crate) const fn quiet(conn: u32) -> Move {
    Move::Quiet { conn }
}

/// Wait `ms` milliseconds.
pub(crate) const fn pause(ms: u64) -> Move {
    Move::Do(Action::Pause { ms })
}

/// EOF from the client on `conn`.
pub(crate) const fn half_close(conn: u32) -> Move {
    Move::Do(Action::HalfClose { conn })
}

/// The model's view of one connection.
#[derive(Default)]
struct Model {
    session: ServerSession,
    /// Everything sent on it.
    sent: Vec<u8>,
    writes: usize,
    /// Pongs owed and not yet observed.
    owed: usize,
    /// How the server ends it, once it does.
    ending: Option<Ending>,
    /// Bytes were sent after the server's ending.
    after_ending: bool,
    /// The close has been observed.
    close_seen: bool,
    half_closed: bool,
}

impl Model {
    fn mid_token(&self) -> bool {
        judge(&self.sent).ending == ModelEnding::Open { mid_token: true }
    }

    /// Takes one write: what the server now owes, and how it ends the connection.
    fn write(&mut self, bytes: &[u8]) {
        self.sent.extend_from_slice(bytes);
        self.writes += 1;
        // Bytes after `end`, in a later write or in the same one (SPEC: SRV-END-2).
        let past_end = matches!(judge(&self.sent).ending, ModelEnding::End { at } if at < self.sent.len());
        if self.ending.is_some() || past_end {
            self.after_ending = true;
        }
        let reply = self.session.on_bytes(bytes);
        self.owed += reply.pongs;
        self.ending = self.ending.or(reply.close);
    }

    /// EOF from the client (once): what the server owes for it, and the step.
    fn half_close(&mut self, steps: &mut Vec<Step>, conn: u32) {
        if self.half_closed {
            return;
        }
        self.half_closed = true;
        let reply = self.session.on_eof();
        self.owed += reply.pongs;
        self.ending = self.ending.or(reply.close);
        steps.push(Step::Do(Action::HalfClose { conn }));
    }

    /// Why a conforming server reads the next write and keeps the connection open: nothing
    /// while it has ended the connection (then the write may fail, and that is right).
    fn because_open(&self) -> Vec<String> {
        if self.ending.is_some() || self.half_closed {
            return Vec::new();
        }
        let mut ids = vec!["SRV-OPEN-1"];
        if self.writes > 0 || self.mid_token() {
            ids.push("WIRE-STREAM-1");
        }
        ids.into_iter().map(String::from).collect()
    }

    fn because_bytes(&self, others_open: bool) -> Vec<String> {
        // The pongs owed before an invalid byte are SRV-INVALID-1's own ("first sends the
        // pongs owed"), not a miscount of pings.
        let mut ids = if matches!(self.ending, Some(Ending::Invalid(_))) { vec![] } else { vec!["SRV-PONG-1"] };
        if self.writes > 1 {
            ids.push("WIRE-STREAM-1");
        }
        match self.ending {
            // The pongs owed before the stream's end are owed by how it ended.
            Some(Ending::End) => ids.push("SRV-END-1"),
            Some(Ending::Invalid(_)) => ids.push("SRV-INVALID-1"),
            Some(Ending::Eof { .. }) => ids.push("SRV-EOF-1"),
            None if self.mid_token() => ids.extend(["SRV-PONG-3", "WIRE-STREAM-2"]),
            None => {}
        }
        shared(ids, others_open)
    }

    /// Whether the connection's ending came with the last byte sent (or with the client's
    /// EOF): then a conforming server has read every byte before it closes, and a reset, a
    /// close with bytes unread, means it closed before it judged them.
    fn decided_by_last_byte(&self) -> bool {
        match self.ending {
            Some(Ending::Eof { .. }) => true,
            Some(Ending::End) => !self.after_ending,
            Some(Ending::Invalid(_)) => {
                matches!(judge(&self.sent).ending, ModelEnding::Invalid { at } if at + 1 == self.sent.len())
            }
            None => false,
        }
    }

    fn because_closed(&self, others_open: bool) -> Vec<String> {
        let ids = match self.ending {
            Some(Ending::End) if self.after_ending => vec!["SRV-END-1", "SRV-END-2"],
            Some(Ending::End) => vec!["SRV-END-1"],
            Some(Ending::Invalid(_)) => vec!["WIRE-INVALID-1", "SRV-INVALID-1"],
            Some(Ending::Eof { mid_token: true }) => vec!["SRV-EOF-1", "SRV-PONG-2"],
            Some(Ending::Eof { mid_token: false }) | None => vec!["SRV-EOF-1"],
        };
        shared(ids, others_open)
    }

    fn because_silent(&self, others_open: bool) -> Vec<String> {
        let ids = if self.mid_token() { vec!["SRV-PONG-2"] } else { vec!["SRV-PONG-1"] };
        shared(ids, others_open)
    }
}

/// `ids`, and while other connections are open the requirements that keep them apart.
fn shared(mut ids: Vec<&str>, others_open: bool) -> Vec<String> {
    if others_open {
        ids.extend(["SRV-CONC-2", "SRV-ISOLATE-1"]);
    }
    ids.into_iter().map(String::from).collect()
}

/// How long `quiet` (`expect_open`) waits for nothing to happen. A correct server never fails
/// the check, however slow the machine; a longer wait only catches a slower wrong answer.
pub(crate) const QUIET: Duration = Duration::from_millis(50);

/// A client's moves as a script with the model's expectations, each `Quiet` waiting [`QUIET`]:
/// what the stream cases and the generated conversations play.
pub(crate) fn script(moves: &[Move]) -> Script {
    expect(moves, QUIET)
}

/// Turns a client's moves into a script with the model's expectations: at every `Observe`
/// and `Quiet`, and at the end, where every connection still open is half-closed and must be
/// answered and closed (SPEC: SRV-EOF-1), and the server must still run.
fn expect(moves: &[Move], quiet: Duration) -> Script {
    let mut expecting = Expecting {
        steps: Vec::new(),
        conns: BTreeMap::new(),
        quiet_ms: quiet.as_millis() as u64,
        invalid_sent: false,
    };
    for one in moves {
        expecting.take(one);
    }
    // The end: every connection still open gets EOF, and owes its replies and its close.
    let others_open = expecting.conns.len() > 1;
    let steps = &mut expecting.steps;
    for (&conn, model) in expecting.conns.iter_mut() {
        if model.ending.is_none() {
            model.half_close(steps, conn);
        }
        observe_into(steps, conn, model, others_open, None);
    }
    let mut because = vec!["SRV-ISOLATE-1".to_string()];
    if expecting.invalid_sent {
        because.insert(0, "SRV-INVALID-2".into());
    }
    expecting.steps.push(Step::ExpectRunning { because });
    Script::new(expecting.steps)
}

/// The script being written, and the model of each connection open in it.
struct Expecting {
    steps: Vec<Step>,
    conns: BTreeMap<u32, Model>,
    quiet_ms: u64,
    /// Some connection was ended by an invalid byte (the server outliving it is SRV-INVALID-2).
    invalid_sent: bool,
}

impl Expecting {
    /// Opens `conn` if it is not open; whether it is open now.
    fn open(&mut self, conn: u32) {
        if !self.conns.contains_key(&conn) {
            let mut because = vec!["SRV-ISOLATE-1".to_string()];
            // Served at the same time as another connection that is still open.
            if self.conns.values().any(|m| m.ending.is_none()) {
                because.push("SRV-CONC-1".into());
            }
            self.conns.insert(conn, Model::default());
            self.steps.push(Step::Do(Action::Connect { conn, because }));
        }
    }

    fn take(&mut self, one: &Move) {
        match one {
            Move::Do(Action::Pause { ms }) => self.steps.push(Step::Do(Action::Pause { ms: *ms })),
            Move::Do(Action::Connect { conn, .. }) => self.open(*conn),
            Move::Do(Action::Send { conn, bytes, .. }) => self.write(*conn, bytes.clone()),
            Move::Pings { conn, count } => self.write(*conn, Bytes::from(PING.repeat(*count as usize))),
            Move::Do(Action::SendAtOnce { sends }) => {
                let at_once: Vec<ConnWrite> = sends
                    .iter()
                    .filter_map(|send| {
                        let because = self.write_one(send.conn, &send.bytes)?;
                        Some(ConnWrite { conn: send.conn, bytes: send.bytes.clone(), because })
                    })
                    .collect();
                if !at_once.is_empty() {
                    self.steps.push(Step::Do(Action::SendAtOnce { sends: at_once }));
                }
            }
            Move::Do(Action::HalfClose { conn }) => {
                self.open(*conn);
                self.conns.get_mut(conn).expect("opened above").half_close(&mut self.steps, *conn);
            }
            Move::Do(Action::Close { conn }) => {
                if self.conns.remove(conn).is_some() {
                    self.steps.push(Step::Do(Action::Close { conn: *conn }));
                }
            }
            Move::LockStep { conn, rounds } => {
                self.open(*conn);
                let others_open = self.conns.len() > 1;
                let model = self.conns.get_mut(conn).expect("opened above");
                if model.half_closed || model.ending.is_some() || model.owed > 0 || model.mid_token() {
                    // Rounds need a clean boundary with nothing unread; otherwise they are just pings.
                    if *rounds > 0 {
                        self.write(*conn, Bytes::from(PING.repeat(*rounds as usize)));
                    }
                    return;
                }
                if *rounds == 0 {
                    return;
                }
                for _ in 0..*rounds {
                    let reply = model.session.on_bytes(PING);
                    debug_assert_eq!(reply.pongs, 1);
                }
                model.sent.extend(PING.repeat(*rounds as usize));
                model.writes += *rounds as usize;
                let because = shared(vec!["SRV-PONG-1"], others_open);
                self.steps.push(Step::LockStep { conn: *conn, rounds: *rounds, because });
            }
            Move::Observe { conn } | Move::Quiet { conn } => {
                let others_open = self.conns.len() > 1;
                let quiet = matches!(one, Move::Quiet { .. }).then_some(self.quiet_ms);
                if let Some(model) = self.conns.get_mut(conn) {
                    observe_into(&mut self.steps, *conn, model, others_open, quiet);
                }
            }
        }
    }

    /// One write on `conn` (nothing, after the client's own EOF).
    fn write(&mut self, conn: u32, bytes: Bytes) {
        if let Some(because) = self.write_one(conn, &bytes) {
            self.steps.push(Step::Do(Action::Send { conn, bytes, because }));
        }
    }

    /// The model's side of one write on `conn`, opened first: why the server must read it, or
    /// `None` for no write (nothing to send, or after the client's own EOF).
    fn write_one(&mut self, conn: u32, bytes: &[u8]) -> Option<Vec<String>> {
        self.open(conn);
        let model = self.conns.get_mut(&conn).expect("opened above");
        if model.half_closed || bytes.is_empty() {
            return None;
        }
        let because = model.because_open();
        model.write(bytes);
        self.invalid_sent |= matches!(model.ending, Some(Ending::Invalid(_)));
        Some(because)
    }
}

/// The replies `model` owes by now, its close if the server owes one, and with `quiet` the
/// check that nothing more arrives for that many milliseconds while it stays open.
fn observe_into(steps: &mut Vec<Step>, conn: u32, model: &mut Model, others_open: bool, quiet: Option<u64>) {
    if model.owed > 0 {
        let bytes = Bytes::from(PONG.repeat(model.owed));
        let all_read = matches!(model.ending, None | Some(Ending::Eof { .. }));
        steps.push(Step::ExpectBytes { conn, bytes, because: model.because_bytes(others_open), all_read });
        model.owed = 0;
    }
    if model.ending.is_some() {
        if !model.close_seen {
            let all_read = model.decided_by_last_byte();
            steps.push(Step::ExpectClosed { conn, because: model.because_closed(others_open), all_read });
            model.close_seen = true;
        }
    } else if let Some(ms) = quiet {
        let because = model.because_silent(others_open);
        steps.push(Step::ExpectOpen { conn, ms, because, open_because: model.because_open() });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(conn: u32) -> Move {
        Move::Do(Action::Close { conn })
    }

    // SPEC: SRV-INVALID-1, SRV-EOF-1, SRV-PONG-2 — the model's expectations, as SPEC.md says.
    #[test]
    fn owed_pongs_then_the_close_the_ending_calls_for() {
        let script = expect(&[send(1, b"pingpi"), quiet(1), send(1, b"ngPING"), observe(1)], Duration::from_millis(30));
        let kinds: Vec<String> = script.steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            kinds,
            [
                "#1 connect",
                "#1 send \"pingpi\"",
                "#1 expect \"pong\"",
                "#1 expect nothing, still open, for 30 ms",
                "#1 send \"ngPING\"",
                "#1 expect \"pong\"",
                "#1 expect close",
                "   expect the server still running",
            ]
        );
        assert_eq!(script.steps[3].because(), ["SRV-PONG-2"]);
        let Step::ExpectOpen { open_because, .. } = &script.steps[3] else { panic!("{:?}", script.steps[3]) };
        assert_eq!(open_because, &["SRV-OPEN-1", "WIRE-STREAM-1"]);
        assert_eq!(script.steps[6].because(), ["WIRE-INVALID-1", "SRV-INVALID-1"]);
        // The first write must arrive because the connection is open; the second because a
        // token is pending.
        assert_eq!(script.steps[1].because(), ["SRV-OPEN-1"]);
        assert_eq!(script.steps[4].because(), ["SRV-OPEN-1", "WIRE-STREAM-1"]);
    }

    #[test]
    fn open_connections_are_half_closed_and_answered_at_the_end() {
        let script = expect(&[send(1, b"pingping"), send(2, b"pi")], Duration::from_millis(30));
        let tail: Vec<String> = script.steps[4..].iter().map(|s| s.to_string()).collect();
        assert_eq!(
            tail,
            [
                "#1 half-close (EOF)",
                "#1 expect \"pongpong\"",
                "#1 expect close, everything sent read",
                "#2 half-close (EOF)",
                "#2 expect close, everything sent read",
                "   expect the server still running"
            ]
            .map(String::from)
        );
        assert!(script.steps[8].because().contains(&"SRV-PONG-2".to_string()));
        // SPEC: SRV-CONC-1, SRV-ISOLATE-1 — a second connection while the first is open.
        assert_eq!(script.steps[2].because(), ["SRV-ISOLATE-1", "SRV-CONC-1"]);
    }

    // SPEC: SRV-OPEN-1 — a close must come after every byte was read only where the byte that
    // ends the conversation was the last one sent; after it, bytes may stay unread (a reset).
    #[test]
    fn a_reset_is_refused_only_where_every_byte_had_to_be_read() {
        let all_read = |moves: &[Move]| {
            expect(moves, Duration::ZERO)
                .steps
                .iter()
                .find_map(|s| match s {
                    Step::ExpectClosed { all_read, .. } => Some(*all_read),
                    _ => None,
                })
                .expect("a close")
        };
        assert!(all_read(&[lock_step(1, 1), send(1, b"\n"), observe(1)]));
        assert!(all_read(&[send(1, b"pinG"), observe(1)]));
        assert!(all_read(&[send(1, b"pingend"), observe(1)]));
        assert!(!all_read(&[send(1, b"PING"), observe(1)]), "ING may stay unread after P");
        assert!(!all_read(&[send(1, b"endping"), observe(1)]));
        assert!(!all_read(&[send(1, b"end"), send(1, b"ping"), observe(1)]));
    }

    // SPEC: SRV-OPEN-1 — a reply awaited before anything sent ended the conversation (or after
    // the client's EOF alone) is owed for bytes the server had to read: a reset instead is a
    // close before they were read. After `end` or an invalid byte, bytes may stay unread.
    #[test]
    fn a_reply_refuses_a_reset_only_where_every_byte_had_to_be_read() {
        let all_read = |moves: &[Move]| {
            expect(moves, Duration::ZERO)
                .steps
                .iter()
                .find_map(|s| match s {
                    Step::ExpectBytes { all_read, .. } => Some(*all_read),
                    _ => None,
                })
                .expect("a reply")
        };
        assert!(all_read(&[send(1, b"pingping"), observe(1)]));
        assert!(all_read(&[send(1, b"pingpi"), observe(1)]));
        assert!(all_read(&[send(1, b"ping"), half_close(1), observe(1)]));
        assert!(!all_read(&[send(1, b"pingend"), observe(1)]));
        assert!(!all_read(&[send(1, b"pingPING"), observe(1)]));
    }

    // SPEC: SRV-END-2 — nothing is owed after `end`, a write after it need not arrive, and a
    // closed connection is forgotten.
    #[test]
    fn nothing_is_owed_after_end_and_closed_connections_are_forgotten() {
        let script = expect(&[send(1, b"pingend"), send(1, b"ping"), close(2), close(1)], Duration::ZERO);
        let texts: Vec<String> = script.steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            texts,
            ["#1 connect", "#1 send \"pingend\"", "#1 send \"ping\"", "#1 close", "   expect the server still running"]
        );
        assert!(script.steps[2].because().is_empty(), "after end the server may have closed");
    }
}
