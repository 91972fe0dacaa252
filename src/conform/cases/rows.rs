//! The stream-shaped server cases of SPEC.md sections 4.2 to 5.4, one row of data per case: its
//! ID, the requirements it holds the server to, a title and what the client does. The
//! expectations are not written here: [`crate::conform::model`] computes them from the
//! protocol core, and [`crate::conform::script::play`] plays the result. Adding a stream case
//! is adding a row.
//!
//! A row's moves, in the order played: `send(conn, bytes)` is one write; `pings(conn, n)` one
//! write of `n` pings; `lock_step(conn, n)` `n` rounds of `"ping"` answered by `"pong"`;
//! `observe(conn)` reads what is owed by now (and the close, if the server owes one);
//! `quiet(conn)` also checks that nothing more arrives and the connection stays open for
//! [`QUIET`](crate::conform::model::QUIET); `pause(ms)`, `half_close(conn)`. A connection opens at its first
//! move; at the end every connection still open is half-closed and must answer and close.
//!
//! A row ends its conversation with `end` only where `end` is part of what it tests (split,
//! coalesced, after a partial token, 5.1 and 5.2); the others end with the client's EOF, so that
//! a server which mishandles `end` fails the cases about `end` and not the segmentation ones.
//! Before the bytes a row is about, a `quiet` check sees that the connection is still open
//! (SPEC: SRV-OPEN-1): a server that closes early fails there, and a row never passes on a
//! close that came before its bytes did.

use crate::conform::case::{case, Case, Run};
/// A row's script, with the model's expectations.
pub(crate) use crate::conform::model::script;
use crate::conform::model::{half_close, lock_step, observe, pause, pings, quiet, send, Move};

/// The 30 ms pause of the split cases: long enough that the pieces arrive as separate reads.
const SPLIT: u64 = 30;

/// A row: the case and its moves (a long list in groups, one a line). The second form is the
/// shape of most rows about how a stream ends: `n` lock-step rounds, a check that the
/// connection is still open (SPEC: SRV-OPEN-1), then one write of `bytes`, and what follows.
macro_rules! row {
    ($section:literal / $name:literal, [$($req:literal),+], $title:literal, $([$($move:expr),* $(,)?])+) => {{
        const MOVES: &[Move] = &[$($($move,)*)+];
        case!(server $section / $name, [$($req),+], Any, $title, Run::Conversation(MOVES))
    }};
    ($section:literal / $name:literal, [$($req:literal),+], $title:literal, $n:literal rounds then $bytes:literal) => {
        row!($section / $name, [$($req),+], $title, [lock_step(1, $n), quiet(1), send(1, $bytes), observe(1)])
    };
}

/// Every row, in SPEC.md order.
pub(crate) fn rows() -> Vec<Case> {
    vec![
        row!("4.2" / "split-ping", ["WIRE-STREAM-1", "SRV-PONG-2", "SRV-PONG-3"],
            "a ping split at every position is answered once complete",
            [send(1, b"p"), quiet(1), send(1, b"ing"), observe(1)]
            [send(1, b"pi"), quiet(1), send(1, b"ng"), observe(1)]
            [send(1, b"pin"), quiet(1), send(1, b"g"), observe(1)]
            [half_close(1), observe(1)]),
        row!("4.2" / "byte-by-byte", ["WIRE-STREAM-1", "WIRE-STREAM-2"], "ping and end sent one byte per write",
            [send(1, b"p"), pause(SPLIT), send(1, b"i"), pause(SPLIT), send(1, b"n"), pause(SPLIT), send(1, b"g")]
            [quiet(1)]
            [send(1, b"e"), pause(SPLIT), send(1, b"n"), pause(SPLIT), send(1, b"d"), observe(1)]),
        row!(
            "4.2" / "coalesced",
            ["WIRE-STREAM-1", "SRV-PONG-1"],
            "several tokens in one write",
            [send(1, b"pingpingping"), observe(1), send(1, b"pingend"), observe(1)]
        ),
        row!(
            "4.2" / "pending-byte",
            ["WIRE-STREAM-2", "SRV-PONG-3"],
            "a complete ping is answered while the next token is still partial",
            [send(1, b"pingp"), observe(1), send(1, b"ingend"), observe(1)]
        ),
        row!(
            "4.2" / "pipelined",
            ["WIRE-STREAM-1", "SRV-PONG-1"],
            "10,000 pings in one stream, read only at the end",
            [pings(1, 10_000), half_close(1), observe(1)]
        ),
        row!("4.4" / "wrong-case", ["WIRE-INVALID-1", "SRV-INVALID-1"],
            "\"PING\" after a round: close without a reply", 1 rounds then b"PING"),
        row!("4.4" / "wrong-case-inside", ["WIRE-INVALID-1", "SRV-INVALID-1"],
            "\"pinG\" after a round: close without a reply", 1 rounds then b"pinG"),
        row!("4.4" / "newline", ["WIRE-INVALID-1", "SRV-INVALID-1"],
            "a newline after a round: close without a reply (no delimiters)", 1 rounds then b"\n"),
        row!(
            "4.4" / "non-utf8",
            ["WIRE-INVALID-1", "SRV-INVALID-1", "SRV-INVALID-2"],
            "a non-UTF-8 byte: close, and the server still serves",
            [lock_step(1, 1), quiet(1), send(1, b"\xff\xfe"), observe(1), lock_step(2, 2), half_close(2), observe(2)]
        ),
        row!("4.4" / "nul", ["WIRE-INVALID-1", "SRV-INVALID-1"], "a NUL byte inside a token", 1 rounds then b"pi\0"),
        row!("4.4" / "garbage-after-pings", ["WIRE-INVALID-1", "SRV-INVALID-1"],
            "garbage after two rounds: close without a reply", 2 rounds then b"xyz"),
        row!(
            "4.4" / "owed-pongs-first",
            ["SRV-INVALID-1", "WIRE-STREAM-1"],
            "three pings and an invalid byte in one write: three pongs, then close",
            [send(1, b"pingpingpingPING"), observe(1)]
        ),
        row!(
            "4.4" / "owed-pongs-then-non-utf8",
            ["SRV-INVALID-1", "WIRE-INVALID-1"],
            "two pings and a non-UTF-8 byte in one write: two pongs, then close",
            [send(1, b"pingping\xff"), observe(1)]
        ),
        row!(
            "4.4" / "garbage-first",
            ["WIRE-INVALID-1", "SRV-INVALID-1"],
            "garbage as the first byte: close without a reply",
            [send(1, b"x"), observe(1)]
        ),
        row!(
            "5.1" / "lockstep",
            ["SRV-PONG-1", "SRV-END-1", "WIRE-GRAMMAR-1"],
            "100 lock-step rounds, then end",
            [lock_step(1, 100), send(1, b"end"), observe(1)]
        ),
        row!("5.1" / "stays-open", ["SRV-OPEN-1"],
            "rounds, pauses and more rounds: the connection stays open until the client's EOF",
            [lock_step(1, 1), pause(300), lock_step(1, 3)]
            [send(1, b"pi"), quiet(1), pause(300), send(1, b"ng"), observe(1)]
            [send(1, b"pingping"), observe(1), lock_step(1, 1), quiet(1)]),
        row!(
            "5.1" / "partial-then-eof",
            ["SRV-PONG-2", "SRV-EOF-1"],
            "EOF in the middle of a ping: close without a reply",
            [lock_step(1, 1), quiet(1), send(1, b"pi"), half_close(1), observe(1)]
        ),
        row!("5.2" / "end-closes", ["SRV-END-1"],
            "end closes the connection without waiting for the client's EOF", 1 rounds then b"end"),
        row!("5.2" / "bytes-after-end", ["SRV-END-2"],
            "pings in the same write after end are not answered", 1 rounds then b"endpingping"),
        row!(
            "5.2" / "bytes-after-end-later",
            ["SRV-END-2"],
            "pings sent after end in a later write are not answered",
            [lock_step(1, 1), quiet(1), send(1, b"end"), pause(SPLIT), send(1, b"pingping"), observe(1)]
        ),
        row!(
            "5.4" / "eof-at-boundary",
            ["SRV-EOF-1"],
            "EOF after two rounds: close",
            [lock_step(1, 2), quiet(1), half_close(1), observe(1)]
        ),
        row!("5.4" / "eof-at-once", ["SRV-EOF-1"], "EOF before any byte: close", [half_close(1), observe(1)]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moves(case: &Case) -> &'static [Move] {
        match case.run {
            Run::Conversation(moves) => moves,
            Run::Code(_) => panic!("{} is not a row", case.id),
        }
    }

    #[test]
    fn every_row_has_expectations_and_a_unique_id() {
        let mut ids = std::collections::BTreeSet::new();
        for row in rows() {
            assert!(ids.insert(row.id), "{} twice", row.id);
            let script = script(moves(&row));
            assert!(script.steps.iter().filter(|s| s.is_expectation()).count() >= 2, "{}", row.id);
        }
    }

    // SPEC: SRV-END-2 — the model owes nothing for bytes after `end`, in either write.
    #[test]
    fn bytes_after_end_are_owed_nothing() {
        let rows = rows();
        let row = rows.iter().find(|r| r.id == "server/5.2/bytes-after-end-later").unwrap();
        let text = script(moves(row)).text();
        assert!(text.contains("#1 send \"pingping\"\n") && text.contains("#1 expect close"), "{text}");
        assert!(!text.contains("expect \"pong\" x 2"), "{text}");
    }

    // SPEC: SRV-OPEN-1 — the case about staying open checks it after a pause, mid-token and
    // after pipelined pings.
    #[test]
    fn staying_open_is_checked_where_a_server_might_close() {
        let rows = rows();
        let row = rows.iter().find(|r| r.id == "server/5.1/stays-open").unwrap();
        let script = script(moves(row));
        let open_checks = script.steps.iter().filter(|s| matches!(s, crate::conform::script::Step::ExpectOpen { .. }));
        assert_eq!(open_checks.count(), 2);
        assert!(script.requirements().contains(&"SRV-OPEN-1"));
    }
}
