//! Cases that judge a client (SPEC.md section 6): the harness listens at the socket path, starts
//! the client, and plays a scripted server.
//!
//! Each step blames what it exercises (SPEC.md section 8): bytes that are no token of the
//! client's grammar blame WIRE-GRAMMAR-1; a client that closes without `end` blames CLT-END-1
//! (or CLT-REPLY-1, right after a reply that came in pieces); the steps a case is about blame
//! the case's own requirements. A client that never connects leaves nothing to judge.

use std::os::unix::net::UnixListener;
use std::time::Duration;

use crate::conform::bytes::Bytes;
use crate::conform::case::{case, Case, Run};
use crate::conform::harness::{Conn, Ctx, End, Heard, CONNECT_EXIT_DEADLINE};
use crate::conform::verdict::{plural, CaseResult, Exercise, Observation, Problem};
use crate::net::abstract_name;
use crate::proto::{quoted, END, PING, PONG};

/// How long the scripted server holds back a reply to see whether the client waits for it.
const HOLD: Duration = Duration::from_millis(150);
const SPLIT_PAUSE: Duration = Duration::from_millis(30);
/// How soon a client must stop after a wrong byte and silence (CLT-REPLY-3): long enough for
/// any client's reaction on a loaded machine, shorter than the reply timeouts clients use
/// (seconds). A client whose own timeout is shorter than this is not told apart.
const PROMPT: Duration = Duration::from_millis(500);

/// Every client case, in SPEC.md order.
pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(client "6" / "lockstep", ["CLT-LOCKSTEP-1", "CLT-END-1", "CLT-EXIT-1", "WIRE-GRAMMAR-1"], Any,
            "correct pongs: the client runs its rounds, sends end, closes, exits 0", Run::Code(lockstep)),
        case!(client "6" / "default-rounds", ["CLT-ROUNDS-1"], Any,
            "without options the client performs 100 rounds", Run::Code(default_rounds)),
        case!(client "6" / "delayed-reply", ["CLT-LOCKSTEP-1"], Any,
            "replies held back: the client sends nothing until each is complete", Run::Code(delayed_reply)),
        case!(client "6" / "split-reply", ["CLT-REPLY-1", "CLT-LOCKSTEP-1"], Any,
            "each pong split into pieces with pauses", Run::Code(split_reply)),
        case!(client "6" / "wrong-reply", ["CLT-REPLY-2", "CLT-EXIT-1"], Any,
            "\"pXng\" in round 3: the client stops, sends no end, exits non-zero, shows the byte", Run::Code(wrong_reply)),
        case!(client "6" / "extra-reply-byte", ["CLT-REPLY-2", "CLT-EXIT-1"], Any,
            "\"pongx\" in round 1: the byte beyond the reply is an error, the client sends no end",
            Run::Code(extra_reply_byte)),
        case!(client "6" / "wrong-byte-then-silence", ["CLT-REPLY-3"], Any,
            "\"pX\" and then nothing in round 1: the client stops at once, without waiting for the rest",
            Run::Code(wrong_byte_then_silence)),
        case!(client "6" / "early-close", ["CLT-EOF-1", "CLT-EXIT-1"], Any,
            "the server closes instead of replying in round 2", Run::Code(|c| early_close(c, b""))),
        case!(client "6" / "close-mid-reply", ["CLT-EOF-1", "CLT-EXIT-1"], Any,
            "the server sends \"pon\" and closes: the message says 3 bytes had arrived",
            Run::Code(|c| early_close(c, b"pon"))),
        case!(client "6" / "no-listener", ["CLT-CONNECT-1"], Any,
            "nothing at the path: the client exits non-zero, naming the path and the reason", Run::Code(no_listener)),
        case!(client "6" / "refused", ["CLT-CONNECT-1"], SocketFile,
            "a stale socket file (connection refused): the client exits non-zero, naming the path and the reason",
            Run::Code(refused)),
    ]
}

/// A token the client sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Token {
    Ping,
    End,
}

/// Reads the client's next token, a byte at a time by its first byte (`end` is one byte
/// shorter than `ping`, and a client may send it and then wait for the server to close, as
/// SRV-END-1 obliges). Bytes that are no token blame SPEC: WIRE-GRAMMAR-1; a client that
/// stops there (closes, or sends nothing more) fails `stopped`.
pub(crate) fn next_token(conn: &mut Conn, round: u32, stopped: &Exercise) -> Result<Token, Problem> {
    let grammar = Exercise::new(format!("round {round}: the client's next token"), &["WIRE-GRAMMAR-1"]);
    let mut heard = conn.read_exactly_or_close(1);
    let rest = match heard.bytes.first() {
        Some(b'p') => 3,
        Some(b'e') => 2,
        _ => 0,
    };
    if rest > 0 {
        let more = conn.read_exactly_or_close(rest);
        heard.bytes.extend(more.bytes);
        heard.end = more.end;
        heard.waited += more.waited;
    }
    match (heard.bytes.as_slice(), heard.end) {
        (_, End::Capped) => Err(conn.capped(&format!("in round {round}"))),
        (b"ping", _) => Ok(Token::Ping),
        (b"end", _) => Ok(Token::End),
        (b"", _) => {
            stopped.at(format!("round {round}: {}", stopped.step)).failed(Observation::PingOrEnd, heard.observed())
        }
        // A token cut short by the client's close breaks the grammar; one still arriving is a stall.
        (partial, End::Quiet) if PING.starts_with(partial) || END.starts_with(partial) => {
            stopped.at(format!("round {round}: {}", stopped.step)).failed(Observation::PingOrEnd, heard.observed())
        }
        _ => grammar.failed(Observation::PingOrEnd, heard.observed()),
    }
}

/// What blames a client that stops before its first token: it closed or went quiet without `end`.
fn first_token() -> Exercise {
    Exercise::new("the first token", &["CLT-END-1"])
}

/// What blames a client that stops after a whole `pong`: it closed or went quiet without `end`.
pub(crate) fn stopped_after_pong() -> Exercise {
    Exercise::new("after a whole \"pong\"", &["CLT-END-1"])
}

/// What blames a client that stops right after a reply that came in pieces: it did not
/// reassemble it.
pub(crate) fn stopped_after_split() -> Exercise {
    Exercise::new("after a \"pong\" sent in pieces", &["CLT-REPLY-1"])
}

/// Answers every `ping` with `pong` until `end`; returns the rounds counted, after checking
/// that the client closes once it sent `end` (SPEC: CLT-END-1, and nothing may follow `end`:
/// WIRE-GRAMMAR-1).
fn serve_to_end(conn: &mut Conn, mut rounds: u32, stopped: &Exercise) -> Result<u32, Problem> {
    loop {
        let stopped = if rounds == 0 { stopped.clone() } else { stopped_after_pong() };
        match next_token(conn, rounds + 1, &stopped)? {
            Token::Ping => {
                rounds += 1;
                let _ = conn.send(PONG);
            }
            Token::End => break,
        }
    }
    close_after_end(conn, rounds)?;
    Ok(rounds)
}

/// After the client's `end` (its `rounds` done), the gate closes as a server must, and the
/// client closes too, sending nothing more (SPEC: CLT-END-1; nothing may follow `end`:
/// WIRE-GRAMMAR-1). Every server the gate plays ends this way, the generated ones included.
pub(crate) fn close_after_end(conn: &mut Conn, rounds: u32) -> CaseResult {
    // SPEC: SRV-END-1 — the server the gate plays closes after `end`, so a client that
    // half-closes and waits for that close is not kept waiting.
    conn.half_close();
    let heard = conn.read_until_close();
    let after_end = format!("after {} and \"end\"", plural(rounds, "round"));
    match heard.end {
        End::Capped => Err(conn.capped("after \"end\"")),
        End::Closed if heard.bytes.is_empty() => Ok(()),
        _ if !heard.bytes.is_empty() => {
            Exercise::new(after_end, &["WIRE-GRAMMAR-1"]).failed(Observation::closed(), heard.observed())
        }
        _ => Exercise::new(after_end, &["CLT-END-1"]).failed(Observation::closed(), heard.observed()),
    }
}

/// The listener, the client started, its connection accepted.
fn connected(ctx: &mut Ctx) -> Result<(UnixListener, Conn), Problem> {
    let listener = ctx.listen()?;
    let conn = ctx.start_client(&listener)?;
    Ok((listener, conn))
}

/// [`serve_to_end`] from round `rounds + 1`, then the client's exit 0.
pub(crate) fn finish_cleanly(ctx: &mut Ctx, conn: &mut Conn, rounds: u32, stopped: &Exercise) -> CaseResult {
    let rounds = serve_to_end(conn, rounds, stopped)?;
    expect_clean_exit(ctx, rounds)
}

/// After its `rounds` and `end`, both sides closed, the client exits 0 (SPEC: CLT-EXIT-1).
pub(crate) fn expect_clean_exit(ctx: &mut Ctx, rounds: u32) -> CaseResult {
    let step = Exercise::new(format!("after {} and \"end\"", plural(rounds, "round")), &["CLT-EXIT-1"]);
    ctx.expect_exit(&step, true)
}

fn lockstep(ctx: &mut Ctx) -> CaseResult {
    let (_listener, mut conn) = connected(ctx)?;
    finish_cleanly(ctx, &mut conn, 0, &first_token())
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
    let (_listener, mut conn) = connected(ctx)?;
    let rounds = serve_to_end(&mut conn, 0, &first_token())?;
    if rounds != 100 {
        let step = Exercise::new("the rounds before \"end\", with no option given", &["CLT-ROUNDS-1"]);
        let ran = |n: u32| Observation::Bytes { bytes: Bytes::from([PING.repeat(n as usize), END.to_vec()].concat()) };
        return step.failed(ran(100), ran(rounds));
    }
    Ok(())
}

/// The first `rounds` rounds, each answered by `reply`; a client that stops in round 1 fails
/// `first`, in a later round `later`. A client that ends before them, as configured, leaves the
/// case nothing to check.
fn rounds_then(
    conn: &mut Conn,
    rounds: u32,
    first: &Exercise,
    later: &Exercise,
    mut reply: impl FnMut(&mut Conn, u32) -> CaseResult,
) -> CaseResult {
    for round in 1..=rounds {
        let stopped = if round == 1 { first } else { later };
        if next_token(conn, round, stopped)? == Token::End {
            return Err(Problem::Inconclusive(format!(
                "the client sent \"end\" after {}; this case needs {rounds} (give it more rounds)",
                plural(round - 1, "round")
            )));
        }
        reply(conn, round)?;
    }
    Ok(())
}

/// `pongs` rounds answered with `pong`, then one more `ping` read and left for the case to answer.
fn pongs_then_ping(conn: &mut Conn, pongs: u32) -> CaseResult {
    let (first, after_pong) = (first_token(), stopped_after_pong());
    rounds_then(conn, pongs, &first, &after_pong, |conn, _| {
        let _ = conn.send(PONG);
        Ok(())
    })?;
    rounds_then(conn, 1, if pongs == 0 { &first } else { &after_pong }, &after_pong, |_, _| Ok(()))
}

fn delayed_reply(ctx: &mut Ctx) -> CaseResult {
    let (_listener, mut conn) = connected(ctx)?;
    let first = first_token();
    rounds_then(&mut conn, 3, &first, &stopped_after_pong(), |conn, round| {
        let step =
            Exercise::new(format!("round {round}: the reply held back {} ms", HOLD.as_millis()), &["CLT-LOCKSTEP-1"]);
        conn.expect_silence(HOLD, &step)?;
        let _ = conn.send(PONG);
        Ok(())
    })?;
    serve_to_end(&mut conn, 3, &first).map(drop)
}

fn split_reply(ctx: &mut Ctx) -> CaseResult {
    let (_listener, mut conn) = connected(ctx)?;
    let splits: [&[&[u8]]; 3] = [&[b"po", b"ng"], &[b"p", b"ong"], &[b"p", b"o", b"n", b"g"]];
    let after_split = stopped_after_split();
    rounds_then(&mut conn, 3, &first_token(), &after_split, |conn, round| {
        let pieces = splits[(round - 1) as usize];
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                let step = Exercise::new(
                    format!("round {round}: sent {} of the reply", quoted(&pieces[..i].concat())),
                    &["CLT-LOCKSTEP-1", "CLT-REPLY-1"],
                );
                conn.expect_silence(SPLIT_PAUSE, &step)?;
            }
            let _ = conn.send(piece);
        }
        Ok(())
    })?;
    let rounds = serve_to_end(&mut conn, 3, &after_split)?;
    let step = Exercise::new(
        format!("after {} with split replies and \"end\"", plural(rounds, "round")),
        &["CLT-EXIT-1", "CLT-REPLY-1"],
    );
    ctx.expect_exit(&step, true)
}

fn wrong_reply(ctx: &mut Ctx) -> CaseResult {
    let (_listener, mut conn) = connected(ctx)?;
    pongs_then_ping(&mut conn, 2)?;
    let _ = conn.send(b"pXng");
    let step = Exercise::new("round 3: replied \"pXng\"", &["CLT-REPLY-2"]);
    expect_protocol_error(ctx, &mut conn, &step)?;
    // SPEC: CLT-REPLY-2 — "a message that says what it received": the wrong byte, as text,
    // hex or decimal.
    expect_message(ctx, &step, &["X", "58", "88"], "what arrived (the byte \"X\")")
}

fn extra_reply_byte(ctx: &mut Ctx) -> CaseResult {
    let (_listener, mut conn) = connected(ctx)?;
    pongs_then_ping(&mut conn, 0)?;
    let _ = conn.send(b"pongx");
    let step = Exercise::new("round 1: replied \"pongx\", one byte more than the reply", &["CLT-REPLY-2"]);
    // SPEC: CLT-REPLY-2 — a client may see the stray byte at once, or, reading each reply as
    // four bytes, send round 2's ping first and then read it as the first byte of round 2's
    // reply ("xpon"); either way it stops before `end`.
    let heard = conn.read_until(conn.timeout(), PING.len(), |got| got == END || got.len() >= PING.len());
    match (heard.bytes.as_slice(), heard.end) {
        (_, End::Capped) => Err(conn.capped("after the extra byte")),
        (b"ping", _) => {
            let _ = conn.send(PONG);
            expect_protocol_error(ctx, &mut conn, &step.at(format!("{}, then \"pong\" to round 2", step.step)))
        }
        // A one-round client that reads each reply as four bytes ends here without reading the
        // stray byte, as SPEC.md allows; one that read it and ignored it looks the same. The
        // case cannot tell them apart: it needs a client that runs a second round.
        (b"end", _) => {
            close_after_end(&mut conn, 1)?;
            Err(Problem::Inconclusive(
                "the client sent \"end\" after 1 round, perhaps before reading the extra byte; this case needs 2 \
                 (give it more rounds)"
                    .into(),
            ))
        }
        (b"", End::Closed) => expect_protocol_error(ctx, &mut conn, &step),
        _ => step.failed(Observation::closed(), heard.observed()),
    }
}

fn wrong_byte_then_silence(ctx: &mut Ctx) -> CaseResult {
    let (_listener, mut conn) = connected(ctx)?;
    pongs_then_ping(&mut conn, 0)?;
    let _ = conn.send(b"pX");
    // SPEC: CLT-REPLY-3 — the client should stop within PROMPT, well before any timeout of
    // its own; one that waits for the rest of a four-byte reply (or for its timeout) is
    // warned, and once the gate closes it must still stop without `end` and exit non-zero
    // (CLT-REPLY-2, a MUST).
    let heard = conn.read_for(PROMPT);
    let should = Exercise::new("round 1: replied \"pX\" and then nothing", &["CLT-REPLY-3"]);
    let must = Exercise::new("round 1: replied \"pX\", then the gate closed its side", &["CLT-REPLY-2"]);
    match heard.end {
        End::Capped => return Err(conn.capped("after a bad reply")),
        _ if !heard.bytes.is_empty() => return must.failed(Observation::closed(), heard.observed()),
        End::Closed => return expect_protocol_error(ctx, &mut conn, &must),
        _ => {}
    }
    conn.half_close();
    expect_protocol_error(ctx, &mut conn, &must)?;
    should.failed(Observation::closed(), Observation::silence(heard.waited))
}

fn early_close(ctx: &mut Ctx, partial: &[u8]) -> CaseResult {
    let (_listener, mut conn) = connected(ctx)?;
    pongs_then_ping(&mut conn, 1)?;
    let _ = conn.send(partial);
    conn.half_close();
    let step = Exercise::new(format!("round 2: replied {} and closed", quoted(partial)), &["CLT-EOF-1"]);
    expect_protocol_error(ctx, &mut conn, &step)?;
    if partial.is_empty() {
        return Ok(());
    }
    // SPEC: CLT-EOF-1 — "the message says how many bytes of the reply had arrived": the count,
    // or the bytes themselves.
    let count = partial.len().to_string();
    let bytes = String::from_utf8_lossy(partial).into_owned();
    expect_message(ctx, &step, &[&count, &bytes], &format!("how much of the reply arrived ({count} bytes)"))
}

/// The client's stderr and stdout must contain one of `any_of` (a message saying `what`).
fn expect_message(ctx: &Ctx, step: &Exercise, any_of: &[&str], what: &str) -> CaseResult {
    let said = ctx.said();
    if any_of.iter().any(|needle| said.contains(needle)) {
        return Ok(());
    }
    step.failed(Observation::Message { saying: vec![what.to_string()] }, Observation::Said { text: ctx.stderr_tail() })
}

/// After a bad reply: nothing more from the client (in particular no `end`), a close, and a
/// non-zero exit (SPEC: CLT-REPLY-2, CLT-EOF-1, CLT-EXIT-1).
fn expect_protocol_error(ctx: &mut Ctx, conn: &mut Conn, step: &Exercise) -> CaseResult {
    let heard = conn.read_until_close();
    expect_stopped(ctx, conn, &heard, step, step.clone())
}

/// [`expect_protocol_error`] on what was already read after the bad reply (`heard`, which
/// fails `step` unless it is nothing and a close); the exit step `exit` also blames SPEC: CLT-EXIT-1.
pub(crate) fn expect_stopped(
    ctx: &mut Ctx,
    conn: &Conn,
    heard: &Heard,
    step: &Exercise,
    mut exit: Exercise,
) -> CaseResult {
    match heard.end {
        End::Capped => return Err(conn.capped("after a bad reply")),
        End::Closed if heard.bytes.is_empty() => {}
        _ => return step.failed(Observation::closed(), heard.observed()),
    }
    exit.blames.push("CLT-EXIT-1");
    ctx.expect_exit(&exit, false)
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

/// Words that give a reason a connection could not be made, in the forms strerror, Python,
/// Node.js and Go use (an abstract name nobody holds is refused, a path with nothing is missing).
const CONNECT_REASONS: &[&str] = &[
    "no such file",
    "not found",
    "enoent",
    "does not exist",
    "doesn't exist",
    "no socket",
    "missing",
    "refused",
    "econnrefused",
    "not listening",
    "nobody listen",
    "no one listen",
    "nothing listen",
];

/// SPEC: CLT-CONNECT-1 — a non-zero exit, within a generous deadline (the requirement sets
/// none), with a message naming the path and the reason; no more is asked of the message.
fn expect_connect_error(ctx: &mut Ctx, situation: &str) -> CaseResult {
    let reason = CONNECT_REASONS;
    let step = Exercise::new(situation, &["CLT-CONNECT-1"]);
    // Giving up is how this start ends: on a machine slow to start the client, a longer
    // --startup-timeout lengthens this wait too.
    let limit = CONNECT_EXIT_DEADLINE.max(ctx.waits.startup_timeout);
    ctx.expect_exit_within(&step, false, limit)?;
    let name = abstract_name(&ctx.socket)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .unwrap_or_else(|| ctx.socket.file_name().unwrap_or_default().to_string_lossy().into_owned());
    let said = ctx.said();
    let lower = said.to_lowercase();
    if !said.contains(&name) || !reason.iter().any(|r| lower.contains(r)) {
        let saying = vec![format!("the path ({name})"), "the reason (such as \"no such file\" or \"refused\")".into()];
        return step.failed(Observation::Message { saying }, Observation::Said { text: ctx.stderr_tail() });
    }
    Ok(())
}
