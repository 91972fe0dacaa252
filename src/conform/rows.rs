//! The stream-shaped server cases of SPEC.md sections 4.2 to 5.4, one row of data per case:
//! its ID, the requirements it holds the server to, a title and what the client does. The
//! expectations are not written here: [`super::model`] computes them from the protocol core,
//! and [`super::script::play`] plays the result. Adding a stream case is adding a row.
//!
//! A row's actions, in the order played: `Send(conn, bytes)` is one write; `Pings(conn, n)` one
//! write of `n` pings; `LockStep(conn, n)` `n` rounds of `"ping"` answered by `"pong"`;
//! `Observe(conn)` reads what is owed by now (and the close, if the server owes one);
//! `Quiet(conn)` also checks that nothing more arrives and the connection stays open for
//! [`QUIET`]; `Pause(ms)`, `HalfClose(conn)`, `Close(conn)`. A connection opens at its first
//! action; at the end every connection still open is half-closed and must answer and close.
//!
//! A row ends its conversation with `end` only where `end` is part of what it tests (split,
//! coalesced, after a partial token, 5.1 and 5.2); the others end with the client's EOF, so that
//! a server which mishandles `end` fails the cases about `end` and not the segmentation ones.

use std::time::Duration;

use super::harness::{CaseResult, Ctx};
use super::model::{self, Action};
use super::script::{self, Script};
use super::{Case, Needs, Role};
use crate::proto::PING;

/// How long `Quiet` (`expect_open`) waits for nothing to happen. A correct server never fails
/// the check, however slow the machine; a longer wait only catches a slower wrong answer.
pub const QUIET: Duration = Duration::from_millis(50);

/// What the client does in a row (the static form of [`Action`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// One write of these bytes on connection `.0`.
    Send(u32, &'static [u8]),
    /// One write of `.1` pings on connection `.0`.
    Pings(u32, usize),
    /// `.1` lock-step rounds on connection `.0`: `"ping"`, then its `"pong"`.
    LockStep(u32, u32),
    /// Read what connection `.0` is owed by now, and the close if the server owes one.
    Observe(u32),
    /// As `Observe`, then check nothing more arrives and the connection stays open for [`QUIET`].
    Quiet(u32),
    /// Wait this many milliseconds.
    Pause(u64),
    /// Half-close connection `.0` (EOF from the client).
    HalfClose(u32),
    /// Close connection `.0`, replies unread or not.
    Close(u32),
}

impl Act {
    pub(crate) fn action(self) -> Action {
        match self {
            Act::Send(conn, bytes) => Action::Send { conn, bytes: bytes.into() },
            Act::Pings(conn, n) => Action::Send { conn, bytes: PING.repeat(n).into() },
            Act::LockStep(conn, rounds) => Action::LockStep { conn, rounds },
            Act::Observe(conn) => Action::Observe { conn },
            Act::Quiet(conn) => Action::Quiet { conn },
            Act::Pause(ms) => Action::Pause { ms },
            Act::HalfClose(conn) => Action::HalfClose { conn },
            Act::Close(conn) => Action::Close { conn },
        }
    }
}

/// One stream case as data.
#[derive(Clone, Copy, Debug)]
pub struct Row {
    pub(crate) id: &'static str,
    pub(crate) requirements: &'static [&'static str],
    pub(crate) title: &'static str,
    pub(crate) acts: &'static [Act],
}

impl Row {
    /// The row's script, with the model's expectations.
    pub fn script(&self) -> Script {
        let actions: Vec<Action> = self.acts.iter().map(|a| a.action()).collect();
        model::expect(&actions, QUIET)
    }
}

fn play_row(ctx: &mut Ctx, acts: &'static [Act]) -> CaseResult {
    let actions: Vec<Action> = acts.iter().map(|a| a.action()).collect();
    ctx.start_server()?;
    script::play(ctx, &model::expect(&actions, QUIET)).map_err(script::ScriptError::into_problem)
}

/// One row per case; each expands to the row's data and a case that plays it.
macro_rules! rows {
    ($($id:literal, [$($req:literal),+], $title:literal, [$($act:expr),* $(,)?];)*) => {
        fn table() -> Vec<(Row, fn(&mut Ctx) -> CaseResult)> {
            vec![$({
                const ACTS: &[Act] = &[$($act),*];
                let run: fn(&mut Ctx) -> CaseResult = |ctx| play_row(ctx, ACTS);
                (Row { id: $id, requirements: &[$($req),+], title: $title, acts: ACTS }, run)
            }),*]
        }
    };
}

use Act as A;

/// The 30 ms pause of the split cases: long enough that the pieces arrive as separate reads.
const SPLIT: u64 = 30;

rows! {
    "server/4.2/split-ping", ["WIRE-STREAM-1", "SRV-PONG-2", "SRV-PONG-3"],
        "a ping split at every position is answered once complete",
        [A::Send(1, b"p"), A::Quiet(1), A::Send(1, b"ing"), A::Observe(1),
         A::Send(1, b"pi"), A::Quiet(1), A::Send(1, b"ng"), A::Observe(1),
         A::Send(1, b"pin"), A::Quiet(1), A::Send(1, b"g"), A::Observe(1),
         A::HalfClose(1), A::Observe(1)];
    "server/4.2/byte-by-byte", ["WIRE-STREAM-1", "WIRE-STREAM-2"],
        "ping and end sent one byte per write",
        [A::Send(1, b"p"), A::Pause(SPLIT), A::Send(1, b"i"), A::Pause(SPLIT), A::Send(1, b"n"), A::Pause(SPLIT),
         A::Send(1, b"g"), A::Observe(1),
         A::Send(1, b"e"), A::Pause(SPLIT), A::Send(1, b"n"), A::Pause(SPLIT), A::Send(1, b"d"), A::Observe(1)];
    "server/4.2/coalesced", ["WIRE-STREAM-1", "SRV-PONG-1"],
        "several tokens in one write",
        [A::Send(1, b"pingpingping"), A::Observe(1), A::Send(1, b"pingend"), A::Observe(1)];
    "server/4.2/pending-byte", ["WIRE-STREAM-2", "SRV-PONG-3"],
        "a complete ping is answered while the next token is still partial",
        [A::Send(1, b"pingp"), A::Observe(1), A::Send(1, b"ingend"), A::Observe(1)];
    "server/4.2/pipelined", ["WIRE-STREAM-1", "SRV-PONG-1"],
        "10,000 pings in one stream, read only at the end",
        [A::Pings(1, 10_000), A::HalfClose(1), A::Observe(1)];
    "server/4.4/wrong-case", ["WIRE-INVALID-1", "SRV-INVALID-1"],
        "\"PING\" after a round: close without a reply",
        [A::LockStep(1, 1), A::Send(1, b"PING"), A::Observe(1)];
    "server/4.4/wrong-case-inside", ["WIRE-INVALID-1", "SRV-INVALID-1"],
        "\"pinG\" after a round: close without a reply",
        [A::LockStep(1, 1), A::Send(1, b"pinG"), A::Observe(1)];
    "server/4.4/newline", ["WIRE-INVALID-1", "SRV-INVALID-1"],
        "a newline after a round: close without a reply (no delimiters)",
        [A::LockStep(1, 1), A::Send(1, b"\n"), A::Observe(1)];
    "server/4.4/non-utf8", ["WIRE-INVALID-1", "SRV-INVALID-1", "SRV-INVALID-2"],
        "a non-UTF-8 byte: close, and the server still serves",
        [A::LockStep(1, 1), A::Send(1, b"\xff\xfe"), A::Observe(1), A::LockStep(2, 2), A::HalfClose(2), A::Observe(2)];
    "server/4.4/nul", ["WIRE-INVALID-1", "SRV-INVALID-1"],
        "a NUL byte inside a token",
        [A::LockStep(1, 1), A::Send(1, b"pi\0"), A::Observe(1)];
    "server/4.4/garbage-after-pings", ["WIRE-INVALID-1", "SRV-INVALID-1"],
        "garbage after two rounds: close without a reply",
        [A::LockStep(1, 2), A::Send(1, b"xyz"), A::Observe(1)];
    "server/4.4/owed-pongs-first", ["SRV-INVALID-1", "WIRE-STREAM-1"],
        "three pings and an invalid byte in one write: three pongs, then close",
        [A::Send(1, b"pingpingpingPING"), A::Observe(1)];
    "server/4.4/owed-pongs-then-non-utf8", ["SRV-INVALID-1", "WIRE-INVALID-1"],
        "two pings and a non-UTF-8 byte in one write: two pongs, then close",
        [A::Send(1, b"pingping\xff"), A::Observe(1)];
    "server/4.4/garbage-first", ["WIRE-INVALID-1", "SRV-INVALID-1"],
        "garbage as the first byte: close without a reply",
        [A::Send(1, b"x"), A::Observe(1)];
    "server/5.1/lockstep", ["SRV-PONG-1", "SRV-END-1", "WIRE-GRAMMAR-1"],
        "100 lock-step rounds, then end",
        [A::LockStep(1, 100), A::Send(1, b"end"), A::Observe(1)];
    "server/5.1/partial-then-eof", ["SRV-PONG-2", "SRV-EOF-1"],
        "EOF in the middle of a ping: close without a reply",
        [A::LockStep(1, 1), A::Send(1, b"pi"), A::HalfClose(1), A::Observe(1)];
    "server/5.2/end-closes", ["SRV-END-1"],
        "end closes the connection without waiting for the client's EOF",
        [A::LockStep(1, 1), A::Send(1, b"end"), A::Observe(1)];
    "server/5.2/bytes-after-end", ["SRV-END-2"],
        "pings in the same write after end are not answered",
        [A::LockStep(1, 1), A::Send(1, b"endpingping"), A::Observe(1)];
    "server/5.2/bytes-after-end-later", ["SRV-END-2"],
        "pings sent after end in a later write are not answered",
        [A::LockStep(1, 1), A::Send(1, b"end"), A::Pause(SPLIT), A::Send(1, b"pingping"), A::Observe(1)];
    "server/5.4/eof-at-boundary", ["SRV-EOF-1"],
        "EOF after two rounds: close",
        [A::LockStep(1, 2), A::HalfClose(1), A::Observe(1)];
    "server/5.4/eof-at-once", ["SRV-EOF-1"],
        "EOF before any byte: close",
        [A::HalfClose(1), A::Observe(1)];
}

/// Every row, in SPEC.md order.
pub fn rows() -> Vec<Row> {
    table().into_iter().map(|(row, _)| row).collect()
}

/// Every row as a server case.
pub fn cases() -> Vec<Case> {
    table()
        .into_iter()
        .map(|(row, run)| Case {
            id: row.id,
            role: Role::Server,
            requirements: row.requirements,
            title: row.title,
            needs: Needs::Any,
            run,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_has_expectations_and_a_unique_id() {
        let mut ids = std::collections::BTreeSet::new();
        for row in rows() {
            assert!(ids.insert(row.id), "{} twice", row.id);
            let script = row.script();
            assert!(script.steps.iter().filter(|s| s.is_expectation()).count() >= 2, "{}", row.id);
        }
    }

    // SPEC: SRV-END-2 — the model owes nothing for bytes after `end`, in either write.
    #[test]
    fn bytes_after_end_are_owed_nothing() {
        let rows = rows();
        let row = rows.iter().find(|r| r.id == "server/5.2/bytes-after-end-later").unwrap();
        let text = row.script().text();
        assert!(text.contains("#1 send \"pingping\"\n") && text.contains("#1 expect close"), "{text}");
        assert!(!text.contains("expect \"pong\" x 2"), "{text}");
    }
}
