//! Expected outcomes computed from the protocol core: a list of [`Action`]s (what a client
//! does: connect, send, pause, half-close, close, look) becomes a [`Script`] whose every
//! expectation is what [`ServerSession`] says a conforming server does (SPEC.md sections 4.2
//! to 5.5). Neither the fixed stream cases nor generated ones carry hand-written expectations.
//!
//! Each expectation names the requirements that make it hold, so a failure blames them:
//! replies `SRV-PONG-1` (with `WIRE-STREAM-1` once a connection's bytes came in several
//! writes, and `SRV-PONG-3`/`WIRE-STREAM-2` while a partial token is pending), closes by how
//! the stream ended (`SRV-END-*`, `WIRE-INVALID-1`/`SRV-INVALID-1`, `SRV-EOF-1`), silence
//! while a partial token is pending `SRV-PONG-2`, and the server outliving every script
//! `SRV-INVALID-2`/`SRV-ISOLATE-1`. While another connection of the script is open, an
//! expectation also names `SRV-CONC-2`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::script::{Bytes, Script, Step};
use crate::proto::grammar::{judge, ModelEnding};
use crate::proto::{Ending, ServerSession, PING, PONG};

/// What a client does; the model adds what it must observe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Open connection `conn` (any other action on a connection that is not open opens it).
    Connect {
        /// The connection, numbered from 1.
        conn: u32,
    },
    /// One write.
    Send {
        /// The connection, numbered from 1.
        conn: u32,
        /// What is written.
        bytes: Bytes,
    },
    /// Sleep.
    Pause {
        /// How long, in milliseconds.
        ms: u64,
    },
    /// EOF from the client (later sends on this connection are dropped).
    HalfClose {
        /// The connection, numbered from 1.
        conn: u32,
    },
    /// The client closes (a reset if replies are unread); the number may be reused after.
    Close {
        /// The connection, numbered from 1.
        conn: u32,
    },
    /// Lock-step rounds.
    LockStep {
        /// The connection, numbered from 1.
        conn: u32,
        /// How many rounds of `"ping"` and `"pong"`.
        rounds: u32,
    },
    /// Read what the model says has arrived by now (replies, a close).
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

impl Action {
    /// The connection it acts on (none for a pause).
    pub fn conn(&self) -> Option<u32> {
        match self {
            Action::Pause { .. } => None,
            Action::Connect { conn }
            | Action::Send { conn, .. }
            | Action::HalfClose { conn }
            | Action::Close { conn }
            | Action::LockStep { conn, .. }
            | Action::Observe { conn }
            | Action::Quiet { conn } => Some(*conn),
        }
    }
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

    fn because_bytes(&self, others_open: bool) -> Vec<String> {
        let mut ids = vec!["SRV-PONG-1"];
        if self.writes > 1 {
            ids.push("WIRE-STREAM-1");
        }
        if self.ending.is_none() && self.mid_token() {
            ids.extend(["SRV-PONG-3", "WIRE-STREAM-2"]);
        }
        tagged(ids, others_open)
    }

    fn because_closed(&self, others_open: bool) -> Vec<String> {
        let ids = match self.ending {
            Some(Ending::End) if self.after_ending => vec!["SRV-END-1", "SRV-END-2"],
            Some(Ending::End) => vec!["SRV-END-1"],
            Some(Ending::Invalid(_)) => vec!["WIRE-INVALID-1", "SRV-INVALID-1"],
            Some(Ending::Eof { mid_token: true }) => vec!["SRV-EOF-1", "SRV-PONG-2"],
            Some(Ending::Eof { mid_token: false }) | None => vec!["SRV-EOF-1"],
        };
        tagged(ids, others_open)
    }

    fn because_open(&self, others_open: bool) -> Vec<String> {
        let ids = if self.mid_token() { vec!["SRV-PONG-2", "WIRE-STREAM-2"] } else { vec!["SRV-PONG-1"] };
        tagged(ids, others_open)
    }
}

fn tagged(mut ids: Vec<&str>, others_open: bool) -> Vec<String> {
    if others_open {
        ids.push("SRV-CONC-2");
    }
    ids.into_iter().map(String::from).collect()
}

/// Turns a client's actions into a script with the model's expectations: at every `Observe`
/// and `Quiet`, and at the end, where every connection still open is half-closed and must be
/// answered and closed (SPEC: SRV-EOF-1), and the server must still run.
pub fn expect(actions: &[Action], quiet: Duration) -> Script {
    let quiet_ms = quiet.as_millis() as u64;
    let mut steps = Vec::new();
    let mut conns: BTreeMap<u32, Model> = BTreeMap::new();
    for action in actions {
        let Some(conn) = action.conn() else {
            if let Action::Pause { ms } = action {
                steps.push(Step::Pause { ms: *ms });
            }
            continue;
        };
        if let std::collections::btree_map::Entry::Vacant(vacant) = conns.entry(conn) {
            if matches!(action, Action::Close { .. } | Action::Observe { .. } | Action::Quiet { .. }) {
                continue; // nothing to close or look at
            }
            vacant.insert(Model::default());
            steps.push(Step::Connect { conn });
        }
        let others_open = conns.len() > 1;
        let model = conns.get_mut(&conn).expect("inserted above");
        match action {
            Action::Connect { .. } | Action::Pause { .. } => {}
            Action::Send { bytes, .. } => {
                if model.half_closed || bytes.0.is_empty() {
                    continue;
                }
                model.sent.extend_from_slice(&bytes.0);
                model.writes += 1;
                if model.ending.is_some() {
                    model.after_ending = true;
                }
                let reply = model.session.on_bytes(&bytes.0);
                model.owed += reply.pongs;
                model.ending = model.ending.or(reply.close);
                steps.push(Step::Send { conn, bytes: bytes.clone() });
            }
            Action::LockStep { rounds, .. } => {
                if model.half_closed || model.ending.is_some() || model.owed > 0 || model.mid_token() {
                    // Rounds need a clean boundary with nothing unread; otherwise they are just pings.
                    let bytes = Bytes(PING.repeat(*rounds as usize));
                    if !model.half_closed && *rounds > 0 {
                        model.sent.extend_from_slice(&bytes.0);
                        model.writes += 1;
                        model.after_ending |= model.ending.is_some();
                        let reply = model.session.on_bytes(&bytes.0);
                        model.owed += reply.pongs;
                        model.ending = model.ending.or(reply.close);
                        steps.push(Step::Send { conn, bytes });
                    }
                    continue;
                }
                if *rounds == 0 {
                    continue;
                }
                for _ in 0..*rounds {
                    let reply = model.session.on_bytes(PING);
                    debug_assert_eq!(reply.pongs, 1);
                }
                model.sent.extend(PING.repeat(*rounds as usize));
                model.writes += *rounds as usize;
                let because = tagged(vec!["SRV-PONG-1"], others_open);
                steps.push(Step::LockStep { conn, rounds: *rounds, because });
            }
            Action::HalfClose { .. } => {
                if model.half_closed {
                    continue;
                }
                model.half_closed = true;
                let reply = model.session.on_eof();
                model.owed += reply.pongs;
                model.ending = model.ending.or(reply.close);
                steps.push(Step::HalfClose { conn });
            }
            Action::Close { .. } => {
                conns.remove(&conn);
                steps.push(Step::Close { conn });
            }
            Action::Observe { .. } | Action::Quiet { .. } => {
                observe(&mut steps, conn, model, others_open, matches!(action, Action::Quiet { .. }), quiet_ms);
            }
        }
    }
    // The end: every connection still open gets EOF, and owes its replies and its close.
    let others_open = conns.len() > 1;
    for (&conn, model) in conns.iter_mut() {
        if model.ending.is_none() && !model.half_closed {
            model.half_closed = true;
            let reply = model.session.on_eof();
            model.owed += reply.pongs;
            model.ending = reply.close;
            steps.push(Step::HalfClose { conn });
        }
        observe(&mut steps, conn, model, others_open, false, quiet_ms);
    }
    steps.push(Step::ExpectRunning { because: vec!["SRV-INVALID-2".into(), "SRV-ISOLATE-1".into()] });
    Script::new(steps)
}

fn observe(steps: &mut Vec<Step>, conn: u32, model: &mut Model, others_open: bool, quiet: bool, quiet_ms: u64) {
    if model.owed > 0 {
        let bytes = Bytes(PONG.repeat(model.owed));
        steps.push(Step::ExpectBytes { conn, bytes, because: model.because_bytes(others_open) });
        model.owed = 0;
    }
    if model.ending.is_some() {
        if !model.close_seen {
            steps.push(Step::ExpectClosed { conn, because: model.because_closed(others_open) });
            model.close_seen = true;
        }
    } else if quiet {
        steps.push(Step::ExpectOpen { conn, ms: quiet_ms, because: model.because_open(others_open) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(conn: u32, bytes: &[u8]) -> Action {
        Action::Send { conn, bytes: bytes.into() }
    }

    // SPEC: SRV-INVALID-1, SRV-EOF-1, SRV-PONG-2 — the model's expectations, as SPEC.md says.
    #[test]
    fn owed_pongs_then_the_close_the_ending_calls_for() {
        let script = expect(
            &[send(1, b"pingpi"), Action::Quiet { conn: 1 }, send(1, b"ngPING"), Action::Observe { conn: 1 }],
            Duration::from_millis(30),
        );
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
        assert_eq!(script.steps[3].because(), ["SRV-PONG-2", "WIRE-STREAM-2"]);
        assert_eq!(script.steps[6].because(), ["WIRE-INVALID-1", "SRV-INVALID-1"]);
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
                "#1 expect close",
                "#2 half-close (EOF)",
                "#2 expect close",
                "   expect the server still running"
            ]
            .map(String::from)
        );
        assert!(script.steps[8].because().contains(&"SRV-PONG-2".to_string()));
    }

    #[test]
    fn nothing_is_owed_after_end_and_closed_connections_are_forgotten() {
        let script = expect(
            &[send(1, b"pingend"), send(1, b"ping"), Action::Close { conn: 2 }, Action::Close { conn: 1 }],
            Duration::ZERO,
        );
        let texts: Vec<String> = script.steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            texts,
            ["#1 connect", "#1 send \"pingend\"", "#1 send \"ping\"", "#1 close", "   expect the server still running"]
        );
    }
}
