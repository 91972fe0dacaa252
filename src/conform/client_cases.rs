//! Cases that judge a client (SPEC.md section 6): the harness listens at the socket path, starts
//! the client, and plays a scripted server.

use std::time::Duration;

use super::harness::{fail, plural, CaseResult, Conn, Ctx, Problem, CONNECT_EXIT_DEADLINE};
use super::{Case, Needs, Role};
use crate::process::describe_status;
use crate::proto::{quoted, quoted_prefix};

/// How long the scripted server holds back a reply to see whether the client waits for it.
const HOLD: Duration = Duration::from_millis(150);
const SPLIT_PAUSE: Duration = Duration::from_millis(30);

macro_rules! case {
    ($id:literal, [$($req:literal),+], $title:literal, $run:expr) => {
        case!(Any, $id, [$($req),+], $title, $run)
    };
    ($needs:ident, $id:literal, [$($req:literal),+], $title:literal, $run:expr) => {
        Case { id: $id, role: Role::Client, requirements: &[$($req),+], title: $title, needs: Needs::$needs, run: $run }
    };
}

/// Every client case, in SPEC.md order.
pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "client/6/lockstep",
            ["CLT-LOCKSTEP-1", "CLT-END-1", "CLT-EXIT-1", "WIRE-GRAMMAR-1"],
            "correct pongs: the client runs its rounds, sends end, closes, exits 0",
            lockstep
        ),
        case!(
            "client/6/default-rounds",
            ["CLT-ROUNDS-1"],
            "without options the client performs 100 rounds",
            default_rounds
        ),
        case!(
            "client/6/delayed-reply",
            ["CLT-LOCKSTEP-1"],
            "replies held back: the client sends nothing until each is complete",
            delayed_reply
        ),
        case!(
            "client/6/split-reply",
            ["CLT-REPLY-1", "CLT-LOCKSTEP-1"],
            "each pong split into pieces with pauses",
            split_reply
        ),
        case!(
            "client/6/wrong-reply",
            ["CLT-REPLY-2", "CLT-EXIT-1"],
            "\"pXng\" in round 3: the client stops, sends no end, exits non-zero, shows the byte",
            wrong_reply
        ),
        case!(
            "client/6/extra-reply-byte",
            ["CLT-REPLY-2", "CLT-EXIT-1"],
            "\"pongx\" in round 1: the byte beyond the reply is an error, the client sends no end",
            extra_reply_byte
        ),
        case!(
            "client/6/early-close",
            ["CLT-EOF-1", "CLT-EXIT-1"],
            "the server closes instead of replying in round 2",
            |c| early_close(c, b"")
        ),
        case!(
            "client/6/close-mid-reply",
            ["CLT-EOF-1", "CLT-EXIT-1"],
            "the server sends \"pon\" and closes: the message says 3 bytes had arrived",
            |c| early_close(c, b"pon")
        ),
        case!("client/6/no-listener", ["CLT-CONNECT-1"], "nothing at the path: the client exits non-zero", no_listener),
        case!(
            SocketFile,
            "client/6/refused",
            ["CLT-CONNECT-1"],
            "a stale socket file (connection refused): the client exits non-zero",
            refused
        ),
    ]
}

/// Reads one `ping` from the client, failing with what arrived instead.
fn read_ping(conn: &mut Conn, round: u32) -> CaseResult {
    conn.expect(b"ping", &format!("round {round}: waited for the client's ping"))
}

/// Plays `rounds` correct rounds, answering with `reply` (a function of the round).
fn serve_rounds(conn: &mut Conn, rounds: u32, mut reply: impl FnMut(&mut Conn, u32) -> CaseResult) -> CaseResult {
    for round in 1..=rounds {
        read_ping(conn, round)?;
        reply(conn, round)?;
    }
    Ok(())
}

/// More rounds than any configuration the gate gives a client would ask for.
const MAX_ROUNDS: u32 = 100_000;

/// Counts the rounds a correct server sees until `end`, answering every ping.
fn count_rounds(conn: &mut Conn) -> Result<u32, Problem> {
    let mut rounds = 0;
    loop {
        if rounds > MAX_ROUNDS {
            return fail(format!("expected \"end\" at some point; the client sent more than {MAX_ROUNDS} pings"));
        }
        // A token at a time, by its first byte: `end` is one byte shorter than `ping`, and a
        // client may send it and then wait for the server to close (as SRV-END-1 obliges).
        let (mut got, _) = conn.read_exactly_or_close(1);
        let rest = match got.first() {
            Some(b'p') => 3,
            Some(b'e') => 2,
            _ => 0,
        };
        if rest > 0 {
            got.extend(conn.read_exactly_or_close(rest).0);
        }
        match got.as_slice() {
            b"ping" => {
                rounds += 1;
                conn.send(b"pong");
            }
            b"end" => {
                // SPEC: SRV-END-1 — the server the gate plays closes after `end`, so a client
                // that half-closes and waits for that close is not kept waiting.
                conn.half_close();
                return Ok(rounds);
            }
            b"" => {
                return fail(format!(
                    "after {}; expected \"ping\" or \"end\"; the client sent nothing more",
                    plural(rounds, "round")
                ))
            }
            other => {
                return fail(format!(
                    "after {}; expected \"ping\" or \"end\"; got {}",
                    plural(rounds, "round"),
                    quoted_prefix(other, 48)
                ))
            }
        }
    }
}

fn lockstep(ctx: &mut Ctx) -> CaseResult {
    let listener = ctx.listen()?;
    ctx.spawn()?;
    let mut conn = ctx.accept(&listener)?;
    let rounds = count_rounds(&mut conn)?;
    if rounds == 0 {
        return fail("expected at least one round before \"end\"; the client sent \"end\" at once");
    }
    let (rest, closed) = conn.read_until_close();
    if !rest.is_empty() || !closed {
        return fail(format!(
            "after \"end\"; expected the client to close; got {}{}",
            quoted_prefix(&rest, 48),
            if closed { "" } else { " and no close" }
        ));
    }
    let status = ctx.wait_exit("the client sent \"end\"")?;
    if !status.success() {
        return fail(format!(
            "{} succeeded; expected exit status 0; the client {}; stderr: {}",
            plural(rounds, "round"),
            describe_status(status),
            ctx.stderr_tail()
        ));
    }
    Ok(())
}

/// An option CMD is given, other than the one carrying the socket: it may set the rounds.
fn rounds_option(args: &[String]) -> Option<&str> {
    args.iter()
        .enumerate()
        .filter(|(_, a)| a.starts_with('-') && !a.contains("{socket}"))
        .find(|(i, _)| !args.get(i + 1).is_some_and(|next| next.contains("{socket}")))
        .map(|(_, a)| a.as_str())
}

fn default_rounds(ctx: &mut Ctx) -> CaseResult {
    // SPEC: CLT-ROUNDS-1 — the default is observable only when nothing on the command line
    // may have set the rounds.
    if let Some(option) = rounds_option(&ctx.target().args) {
        return Err(Problem::Skip(format!(
            "CMD is given the option {option:?}, which may set the number of rounds: the default is not observable \
             (run it with only the socket argument to check CLT-ROUNDS-1)"
        )));
    }
    let listener = ctx.listen()?;
    ctx.spawn()?;
    let mut conn = ctx.accept(&listener)?;
    let rounds = count_rounds(&mut conn)?;
    if rounds != 100 {
        return fail(format!(
            "expected 100 rounds by default; the client sent \"end\" after {}",
            plural(rounds, "round")
        ));
    }
    Ok(())
}

fn delayed_reply(ctx: &mut Ctx) -> CaseResult {
    let listener = ctx.listen()?;
    ctx.spawn()?;
    let mut conn = ctx.accept(&listener)?;
    serve_rounds(&mut conn, 3, |conn, round| {
        conn.expect_silence(HOLD, &format!("round {round}: held the reply back {} ms", HOLD.as_millis()))?;
        conn.send(b"pong");
        Ok(())
    })?;
    let _ = count_rounds(&mut conn)?;
    Ok(())
}

fn split_reply(ctx: &mut Ctx) -> CaseResult {
    let listener = ctx.listen()?;
    ctx.spawn()?;
    let mut conn = ctx.accept(&listener)?;
    let splits: [&[&[u8]]; 3] = [&[b"po", b"ng"], &[b"p", b"ong"], &[b"p", b"o", b"n", b"g"]];
    for (round, pieces) in (1..).zip(splits) {
        read_ping(&mut conn, round)?;
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                conn.expect_silence(
                    SPLIT_PAUSE,
                    &format!("round {round}: sent {} of the reply", quoted(&pieces[..i].concat())),
                )?;
            }
            conn.send(piece);
        }
    }
    let rounds = count_rounds(&mut conn)?;
    let status = ctx.wait_exit("the client sent \"end\"")?;
    if !status.success() {
        return fail(format!(
            "{} with split replies succeeded; expected exit status 0; the client {}; stderr: {}",
            plural(rounds + 3, "round"),
            describe_status(status),
            ctx.stderr_tail()
        ));
    }
    Ok(())
}

fn wrong_reply(ctx: &mut Ctx) -> CaseResult {
    let listener = ctx.listen()?;
    ctx.spawn()?;
    let mut conn = ctx.accept(&listener)?;
    serve_rounds(&mut conn, 2, |conn, _| {
        conn.send(b"pong");
        Ok(())
    })?;
    read_ping(&mut conn, 3)?;
    conn.send(b"pXng");
    let situation = "round 3: replied \"pXng\"";
    expect_protocol_error(ctx, &mut conn, situation)?;
    // SPEC: CLT-REPLY-2 — "a message that says what it received": the wrong byte, as text,
    // hex or decimal.
    expect_message(ctx, situation, &["X", "58", "88"], "showing what arrived (the byte \"X\")")
}

fn extra_reply_byte(ctx: &mut Ctx) -> CaseResult {
    let listener = ctx.listen()?;
    ctx.spawn()?;
    let mut conn = ctx.accept(&listener)?;
    read_ping(&mut conn, 1)?;
    conn.send(b"pongx");
    let situation = "round 1: replied \"pongx\", one byte more than the reply";
    // SPEC: CLT-REPLY-2 — a client may see the stray byte at once, or, reading exactly four
    // bytes, as the first byte of round 2's reply ("xpon"); either way it stops before `end`.
    let (next, closed) = conn.read_exactly_or_close(4);
    match next.as_slice() {
        b"ping" => {
            conn.send(b"pong");
            expect_protocol_error(ctx, &mut conn, &format!("{situation}, then \"pong\" to round 2"))
        }
        b"" if closed => expect_protocol_error(ctx, &mut conn, situation),
        other => fail(format!(
            "{situation}; expected the client to stop (a protocol error); got {}{}",
            quoted_prefix(other, 48),
            if other.starts_with(b"end") { ": it took the stray byte for nothing and finished" } else { "" }
        )),
    }
}

fn early_close(ctx: &mut Ctx, partial: &[u8]) -> CaseResult {
    let listener = ctx.listen()?;
    ctx.spawn()?;
    let mut conn = ctx.accept(&listener)?;
    serve_rounds(&mut conn, 1, |conn, _| {
        conn.send(b"pong");
        Ok(())
    })?;
    read_ping(&mut conn, 2)?;
    conn.send(partial);
    conn.half_close();
    let situation = format!("round 2: replied {} and closed", quoted(partial));
    expect_protocol_error(ctx, &mut conn, &situation)?;
    if partial.is_empty() {
        return Ok(());
    }
    // SPEC: CLT-EOF-1 — "the message says how many bytes of the reply had arrived": the count,
    // or the bytes themselves.
    let count = partial.len().to_string();
    let bytes = String::from_utf8_lossy(partial).into_owned();
    expect_message(ctx, &situation, &[&count, &bytes], &format!("saying how much of the reply arrived ({count} bytes)"))
}

/// The client's stderr and stdout must contain one of `any_of` (a message saying `what`).
fn expect_message(ctx: &Ctx, situation: &str, any_of: &[&str], what: &str) -> CaseResult {
    let said = ctx.stderr_text() + &ctx.stdout_text();
    if any_of.iter().any(|needle| said.contains(needle)) {
        return Ok(());
    }
    fail(format!(
        "{situation}; expected a message {what}; the client said: {}",
        if said.trim().is_empty() { "nothing".to_string() } else { ctx.stderr_tail() }
    ))
}

/// After a bad reply: nothing more from the client (no `end`), a close, a non-zero exit.
fn expect_protocol_error(ctx: &mut Ctx, conn: &mut Conn, situation: &str) -> CaseResult {
    let (rest, closed) = conn.read_until_close();
    if !rest.is_empty() {
        return fail(format!("{situation}; expected the client to stop sending; got {}", quoted_prefix(&rest, 48)));
    }
    if !closed {
        return fail(format!("{situation}; expected the client to close the connection; it is still open"));
    }
    let status = ctx.wait_exit(situation)?;
    if status.success() {
        return fail(format!("{situation}; expected a non-zero exit status; the client {}", describe_status(status)));
    }
    Ok(())
}

fn no_listener(ctx: &mut Ctx) -> CaseResult {
    ctx.spawn()?;
    expect_connect_error(ctx, "nothing at the socket path")
}

fn refused(ctx: &mut Ctx) -> CaseResult {
    drop(ctx.listen()?);
    ctx.note("left a stale socket file at the path");
    ctx.spawn()?;
    expect_connect_error(ctx, "a stale socket at the path (connection refused)")
}

/// SPEC: CLT-CONNECT-1 — a non-zero exit, within a generous deadline (the requirement sets
/// none), with a message naming the path.
fn expect_connect_error(ctx: &mut Ctx, situation: &str) -> CaseResult {
    // Giving up is how this start ends: on a machine slow to start the client, a longer
    // --startup-timeout lengthens this wait too.
    let limit = CONNECT_EXIT_DEADLINE.max(ctx.startup_timeout);
    let status = ctx.wait_exit_within(situation, limit)?;
    if status.success() {
        return fail(format!("{situation}; expected a non-zero exit status; the client {}", describe_status(status)));
    }
    let name = crate::net::abstract_name(&ctx.socket)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_else(|| ctx.socket.file_name().unwrap_or_default().to_string_lossy().into_owned());
    let said = ctx.stderr_text() + &ctx.stdout_text();
    if !said.contains(&name) {
        let stderr = ctx.stderr_tail();
        return fail(format!(
            "{situation}; expected a message naming the path {} and the reason; the client {} and said: {}",
            ctx.socket.display(),
            describe_status(status),
            if stderr.is_empty() { "nothing on stderr".to_string() } else { stderr }
        ));
    }
    Ok(())
}
