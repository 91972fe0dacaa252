//! A conversation with a server as a value: a [`Script`] is a list of [`Step`]s over numbered
//! connections, and [`play`] is the one runner that plays any script against the target. A
//! step that fails returns a typed [`Failure`](super::verdict::Failure) that names the step
//! and blames the requirements in its `because`, the way h2spec's `TestError{Expected,
//! Actual}` does, rather than a formatted string.
//!
//! Scripts are what the fixed stream cases ([`super::cases`]), the generated ones
//! ([`super::explore`]), `--replay FILE` and `udsping conform export` share. Their expectations
//! are computed by [`super::model`] from the protocol core; a script read from a file may also
//! be written by hand.
//!
//! # JSON form (schema `udsping-script`, version 1)
//!
//! ```json
//! {"format": "udsping-script", "version": 1, "steps": [
//!   {"step": "connect", "conn": 1},
//!   {"step": "send", "conn": 1, "bytes": "pingpi", "because": ["SRV-OPEN-1"]},
//!   {"step": "pause", "ms": 150},
//!   {"step": "expect_bytes", "conn": 1, "bytes": "pong", "because": ["SRV-PONG-1"]},
//!   {"step": "half_close", "conn": 1},
//!   {"step": "expect_closed", "conn": 1, "because": ["SRV-EOF-1"]},
//!   {"step": "expect_running"}
//! ]}
//! ```
//!
//! Byte strings are written in SPEC.md's notation: ASCII as is, with Rust-style escapes
//! `\n`, `\r`, `\t`, `\\`, `\'`, `\"` and `\xNN` for every other byte. The steps:
//!
//! | step | fields | meaning |
//! |---|---|---|
//! | `connect` | `conn` | open connection `conn` (bounded by the timeout) |
//! | `send` | `conn`, `bytes` | one write of `bytes`; with `because`, a write that fails (the target closed first) fails the step |
//! | `send_at_once` | `sends`: `[{conn, bytes}]` | one write on each connection, all released at the same instant |
//! | `pause` | `ms` | sleep |
//! | `half_close` | `conn` | shut down the gate's sending side: the target reads EOF |
//! | `close` | `conn` | close the connection, unread bytes and all (a reset) |
//! | `lock_step` | `conn`, `rounds` | `rounds` times: send `"ping"`, expect `"pong"` |
//! | `expect_bytes` | `conn`, `bytes` | exactly these bytes arrive next (bounded by the timeout) |
//! | `expect_closed` | `conn` | nothing more arrives and the target closes the connection |
//! | `expect_open` | `conn`, `ms` | nothing arrives and the connection stays open for `ms` |
//! | `expect_running` | | the target's process has not exited |
//! | `signal` | `signal` | send `"TERM"`, `"INT"` or `"KILL"` to the target's process |
//! | `expect_exit` | `success` | the process exits by itself within the timeout, with status 0 (`true`) or not |
//!
//! `because` (optional on every step that expects something, and on `connect` and `send`)
//! lists the SPEC.md requirement IDs that make the expectation hold; a failure at that step
//! blames them and nothing else. On `expect_open`, `because` is what the silence rests on and
//! `open_because` what keeps the connection open (SPEC: SRV-OPEN-1 when not given). Bytes that
//! arrive where none were expected also blame SPEC: SRV-PONG-1 ("no other bytes").

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::bytes::Bytes;
use super::harness::{Conn, Ctx, End, Heard};
use super::verdict::{CaseResult, Exercise, Observation, Problem};
use crate::proto::{PING, PONG};

/// The `format` field of a script file.
pub(crate) const FORMAT: &str = "udsping-script";

/// The format of a test vector (`conform export`): a vector carries the script it was made
/// from, so a replay can play it.
pub(crate) const VECTOR_FORMAT: &str = "udsping-vector";
/// The script schema's version.
pub(crate) const VERSION: u32 = 1;

/// A send larger than this is written from another thread, so that the runner never blocks on
/// a target that reads slowly or not at all.
const BACKGROUND_SEND: usize = 16 * 1024;

/// Before a send the target must read, the runner waits (at most this long) until the target
/// has read everything sent on that connection before, whatever steps came between, so that
/// it sees them as separate reads, as a script means, however loaded the machine; a target
/// that does not read by then gets the next write anyway.
pub(crate) const SEND_GAP: Duration = Duration::from_millis(500);

fn is_empty(ids: &[String]) -> bool {
    ids.is_empty()
}

/// One write on one connection, of several released at the same instant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConnWrite {
    /// The connection, numbered by the script from 1.
    pub conn: u32,
    /// What is written.
    pub bytes: Bytes,
    /// The requirements that oblige the target to read it; a failed write blames them.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub because: Vec<String>,
}

/// What a client does. Connections are numbered by the script (from 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Action {
    /// Open connection `conn` (bounded by the timeout).
    Connect {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// The requirements that oblige the target to accept it; a failure blames them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
    },
    /// One write of `bytes`.
    Send {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// What is written.
        bytes: Bytes,
        /// The requirements that oblige the target to read it; a failed write blames them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
    },
    /// One write on each of several connections, released at the same instant.
    SendAtOnce {
        /// The writes.
        sends: Vec<ConnWrite>,
    },
    /// Sleep.
    Pause {
        /// How long, in milliseconds.
        ms: u64,
    },
    /// Shut down the gate's sending side: the target reads EOF.
    HalfClose {
        /// The connection, numbered by the script from 1.
        conn: u32,
    },
    /// Close the connection, unread bytes and all (a reset).
    Close {
        /// The connection, numbered by the script from 1.
        conn: u32,
    },
}

impl Action {
    /// The connections it acts on.
    pub fn conns(&self) -> Vec<u32> {
        match self {
            Action::Pause { .. } => Vec::new(),
            Action::SendAtOnce { sends } => sends.iter().map(|s| s.conn).collect(),
            Action::Connect { conn, .. }
            | Action::Send { conn, .. }
            | Action::HalfClose { conn }
            | Action::Close { conn } => vec![*conn],
        }
    }
}

/// One step of a script: an action, or what must be seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// `rounds` times: send `"ping"`, expect `"pong"`.
    LockStep {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// How many rounds.
        rounds: u32,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
    },
    /// Exactly these bytes arrive next (bounded by the timeout).
    ExpectBytes {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// The bytes expected.
        bytes: Bytes,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
        /// The target must read every byte sent on the connection so far (nothing sent yet
        /// ends the conversation, or the client's EOF does): a reset before any byte of the
        /// reply, which on Linux means it closed with bytes unread, fails the step and blames
        /// SPEC: SRV-OPEN-1.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        all_read: bool,
    },
    /// Nothing more arrives and the target closes the connection.
    ExpectClosed {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
        /// The target must have read every byte sent on the connection before it closes (the
        /// byte that ends the conversation was the last one sent): a reset, which on Linux
        /// means it closed with bytes unread, fails the step and blames SPEC: SRV-OPEN-1.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        all_read: bool,
    },
    /// Nothing arrives and the connection stays open for `ms`.
    ExpectOpen {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// How long to watch, in milliseconds.
        ms: u64,
        /// The requirement IDs the silence rests on: bytes arriving blame them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
        /// The requirement IDs that keep the connection open: a close blames them
        /// (SPEC: SRV-OPEN-1 when none are given).
        #[serde(default, skip_serializing_if = "is_empty")]
        open_because: Vec<String>,
    },
    /// The target's process has not exited.
    ExpectRunning {
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
    },
    /// Send a signal to the target's process.
    Signal {
        /// Which signal.
        signal: SignalName,
    },
    /// The target's process exits by itself within the timeout, successfully (status 0) or not.
    ExpectExit {
        /// `true`: it exits with status 0; `false`: with any other status.
        success: bool,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "is_empty")]
        because: Vec<String>,
    },
    /// An action (JSON: the action's own `step` name, such as `send`).
    #[serde(untagged)]
    Do(Action),
}

/// The signals a script may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum SignalName {
    /// `SIGTERM`.
    Term,
    /// `SIGINT`.
    Int,
    /// `SIGKILL`.
    Kill,
}

impl SignalName {
    fn signal(self) -> (rustix::process::Signal, &'static str) {
        match self {
            SignalName::Term => (rustix::process::Signal::TERM, "SIGTERM"),
            SignalName::Int => (rustix::process::Signal::INT, "SIGINT"),
            SignalName::Kill => (rustix::process::Signal::KILL, "SIGKILL"),
        }
    }
}

impl Step {
    /// The requirement IDs the step holds the target to.
    pub fn because(&self) -> &[String] {
        match self {
            Step::LockStep { because, .. }
            | Step::ExpectBytes { because, .. }
            | Step::ExpectClosed { because, .. }
            | Step::ExpectOpen { because, .. }
            | Step::ExpectRunning { because }
            | Step::ExpectExit { because, .. }
            | Step::Do(Action::Connect { because, .. } | Action::Send { because, .. }) => because,
            Step::Do(_) | Step::Signal { .. } => &[],
        }
    }

    /// Every requirement ID the step names: why it holds, why a connection stays open
    /// (`open_because`), why each write of a `send_at_once` must be read.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.because().iter().map(String::as_str).collect();
        match self {
            Step::ExpectOpen { open_because, .. } => ids.extend(open_because.iter().map(String::as_str)),
            Step::Do(Action::SendAtOnce { sends }) => {
                ids.extend(sends.iter().flat_map(|w| w.because.iter().map(String::as_str)));
            }
            _ => {}
        }
        ids
    }

    /// Whether this step checks something (rather than doing something).
    pub fn is_expectation(&self) -> bool {
        !matches!(self, Step::Do(_) | Step::Signal { .. })
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Do(Action::Connect { conn, .. }) => write!(f, "#{conn} connect"),
            Step::Do(Action::Send { conn, bytes, .. }) => write!(f, "#{conn} send {bytes}"),
            Step::Do(Action::SendAtOnce { sends }) => {
                let each: Vec<String> = sends.iter().map(|s| format!("#{} {}", s.conn, s.bytes)).collect();
                write!(f, "   send at once: {}", each.join(", "))
            }
            Step::Do(Action::Pause { ms }) => write!(f, "   pause {ms} ms"),
            Step::Do(Action::HalfClose { conn }) => write!(f, "#{conn} half-close (EOF)"),
            Step::Do(Action::Close { conn }) => write!(f, "#{conn} close"),
            Step::LockStep { conn, rounds, .. } => {
                write!(f, "#{conn} {rounds} lock-step rounds (\"ping\" -> \"pong\")")
            }
            Step::ExpectBytes { conn, bytes, .. } => write!(f, "#{conn} expect {bytes}"),
            Step::ExpectClosed { conn, all_read: false, .. } => write!(f, "#{conn} expect close"),
            Step::ExpectClosed { conn, all_read: true, .. } => write!(f, "#{conn} expect close, everything sent read"),
            Step::ExpectOpen { conn, ms, .. } => write!(f, "#{conn} expect nothing, still open, for {ms} ms"),
            Step::ExpectRunning { .. } => write!(f, "   expect the server still running"),
            Step::Signal { signal } => write!(f, "   send {}", signal.signal().1),
            Step::ExpectExit { success: true, .. } => write!(f, "   expect the server to exit with status 0"),
            Step::ExpectExit { success: false, .. } => write!(f, "   expect the server to exit with a non-zero status"),
        }
    }
}

/// A conversation with a server, with its expectations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Script {
    /// Always `udsping-script`.
    pub format: String,
    /// Always 1.
    pub version: u32,
    /// The steps, played in order.
    pub steps: Vec<Step>,
}

impl Script {
    /// A script of `steps`.
    pub fn new(steps: Vec<Step>) -> Self {
        Script { format: FORMAT.to_string(), version: VERSION, steps }
    }

    /// The requirement IDs the script judges, each once, in SPEC.md's spelling: every ID its
    /// steps name, and SPEC: SRV-OPEN-1 when it writes to the target, since the runner holds
    /// every write a conforming server reads to it (SPEC.md section 8), named or not.
    pub fn requirements(&self) -> Vec<&'static str> {
        let writes = self
            .steps
            .iter()
            .any(|s| matches!(s, Step::LockStep { .. } | Step::Do(Action::Send { .. } | Action::SendAtOnce { .. })));
        let mut ids: Vec<&'static str> = self
            .steps
            .iter()
            .flat_map(Step::ids)
            .filter_map(crate::spec::id)
            .chain(writes.then_some("SRV-OPEN-1"))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The script as numbered lines, `  3. #1 send "pi"`.
    pub fn text(&self) -> String {
        self.steps.iter().enumerate().map(|(i, step)| format!("{:>4}. {step}\n", i + 1)).collect()
    }
}

/// The requirements a list of IDs from a script names, as SPEC.md spells them.
fn blames(ids: &[String]) -> Vec<&'static str> {
    ids.iter().filter_map(|id| crate::spec::id(id)).collect()
}

/// A large send being written from another thread: the thread, the bytes, and why the target
/// must read them.
type Background = (JoinHandle<io::Result<()>>, Bytes, Vec<String>);

/// One of the script's connections while it plays.
struct Open {
    conn: Conn,
    /// A large send still being written from another thread.
    writer: Option<Background>,
}

/// Plays `script` against the server `ctx` runs (the caller started it), connection by
/// connection. Returns at the first step whose observation differs from its expectation;
/// connections the script opened are closed when it returns.
pub(crate) fn play(ctx: &mut Ctx, script: &Script) -> CaseResult {
    let mut open: BTreeMap<u32, Open> = BTreeMap::new();
    for (index, step) in script.steps.iter().enumerate() {
        let at = Exercise {
            step: format!("step {} ({})", index + 1, step.to_string().trim_start()),
            blames: blames(step.because()),
        };
        play_step(ctx, &mut open, step, &at)?;
    }
    Ok(())
}

/// A hand-written script that cannot be played as written.
fn invalid(at: &Exercise, reason: &str) -> Problem {
    Problem::Harness(format!("{}: {reason}", at.step))
}

fn play_step(ctx: &mut Ctx, open: &mut BTreeMap<u32, Open>, step: &Step, at: &Exercise) -> CaseResult {
    let timeout = ctx.waits.timeout;
    match step {
        Step::Do(Action::Connect { conn, .. }) => {
            if open.contains_key(conn) {
                return Err(invalid(at, "the connection is already open"));
            }
            let connection = ctx.connect_within(timeout, at)?;
            open.insert(*conn, Open { conn: connection, writer: None });
        }
        Step::Do(Action::Pause { ms }) => std::thread::sleep(Duration::from_millis(*ms)),
        Step::ExpectRunning { .. } => {
            if let Some(status) = ctx.exited() {
                return at.failed(Observation::Running, ctx.exit_observed(status));
            }
        }
        Step::Signal { signal } => {
            let (signal, name) = signal.signal();
            ctx.signal(signal, name)?;
        }
        Step::ExpectExit { success, .. } => ctx.expect_exit(at, *success)?,
        Step::Do(Action::Close { conn }) => {
            // Dropped with whatever is unread: the target sees a reset or EOF.
            open.remove(conn).ok_or_else(|| invalid(at, "the connection is not open"))?;
        }
        Step::Do(Action::SendAtOnce { sends }) => send_at_once(open, sends, at)?,
        Step::Do(Action::Send { conn, .. } | Action::HalfClose { conn })
        | Step::LockStep { conn, .. }
        | Step::ExpectBytes { conn, .. }
        | Step::ExpectClosed { conn, .. }
        | Step::ExpectOpen { conn, .. } => {
            let state = open.get_mut(conn).ok_or_else(|| invalid(at, "the connection is not open"))?;
            finish_background_write(state, timeout, at)?;
            on_connection(&mut state.conn, &mut state.writer, step, at)?;
        }
    }
    Ok(())
}

/// Whatever is being written in the background goes first, within the timeout.
fn finish_background_write(state: &mut Open, timeout: Duration, at: &Exercise) -> CaseResult {
    let Some((writer, bytes, because)) = state.writer.take() else { return Ok(()) };
    let deadline = Instant::now() + timeout;
    while !writer.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if !writer.is_finished() {
        let waited_ms = timeout.as_millis() as u64;
        return at.failed(Observation::AllRead, Observation::NotRead { waited_ms });
    }
    match writer.join() {
        Ok(Err(error)) if !because.is_empty() => at.blaming(blames(&because)).not_delivered(bytes, &error),
        _ => Ok(()),
    }
}

fn on_connection(conn: &mut Conn, writer: &mut Option<Background>, step: &Step, at: &Exercise) -> CaseResult {
    match step {
        Step::Do(Action::Send { bytes, because, .. }) => {
            if !because.is_empty() {
                conn.wait_read_by_peer(SEND_GAP);
            }
            if bytes.len() > BACKGROUND_SEND {
                *writer = Some((conn.send_in_background(bytes.to_vec())?, bytes.clone(), because.clone()));
            } else if let Err(error) = conn.send(bytes) {
                // SPEC: SRV-OPEN-1 — bytes the server had to read never arrived: the case
                // checked nothing with them, so it does not pass.
                if !because.is_empty() {
                    return at.not_delivered(bytes.clone(), &error);
                }
            }
        }
        Step::Do(Action::HalfClose { .. }) => conn.half_close(),
        Step::LockStep { rounds, .. } => {
            for round in 1..=*rounds {
                let round_at = at.at(format!("{}, round {round}", at.step));
                if let Err(error) = conn.send(PING) {
                    // SPEC: SRV-OPEN-1 — the server closed before the round's ping arrived.
                    return round_at.blaming(["SRV-OPEN-1"]).not_delivered(Bytes::from_static(PING), &error);
                }
                let heard = conn.read_exactly_or_close(PONG.len());
                check_heard(conn, &heard, &round_at)?;
                if let Some(problem) = conn.unread_round(&heard, &round_at) {
                    return Err(problem);
                }
                if heard.bytes != PONG {
                    return round_at.failed(Observation::Bytes { bytes: Bytes::from_static(PONG) }, heard.observed());
                }
            }
        }
        Step::ExpectBytes { bytes, all_read, .. } => {
            let heard = conn.read_exactly_or_close(bytes.len());
            check_heard(conn, &heard, at)?;
            if *all_read {
                // SPEC: SRV-OPEN-1 — closed, alive, with bytes it had to read still unread: they
                // were never judged, so the missing reply is not their answer.
                if let Some(problem) = conn.unread_reply(&heard, at, Observation::Bytes { bytes: bytes.clone() }) {
                    return Err(problem);
                }
            }
            if heard.bytes != bytes.as_slice() {
                return at.failed(Observation::Bytes { bytes: bytes.clone() }, heard.observed());
            }
        }
        Step::ExpectClosed { all_read, .. } => {
            let heard = conn.read_until_close();
            check_heard(conn, &heard, at)?;
            if !(heard.closed() && heard.bytes.is_empty()) {
                let at = with_extra_bytes(at, &heard);
                return at.failed(Observation::closed(), heard.observed());
            }
            if *all_read && conn.closed_unread(&heard) {
                // SPEC: SRV-OPEN-1 — the server closed before it read the byte that ends the
                // conversation: that byte was never judged, so the close is not its answer.
                return at.blaming(["SRV-OPEN-1"]).failed(Observation::ClosedAllRead, Observation::ResetUnread);
            }
        }
        Step::ExpectOpen { ms, open_because, .. } => {
            let window = Duration::from_millis(*ms);
            let heard = conn.read_for(window);
            check_heard(conn, &heard, at)?;
            if !heard.bytes.is_empty() {
                return with_extra_bytes(at, &heard).failed(Observation::silence(window), heard.observed());
            }
            if heard.closed() {
                let keeps_open = if open_because.is_empty() { vec!["SRV-OPEN-1"] } else { blames(open_because) };
                return at.blaming(keeps_open).failed(Observation::silence(window), heard.observed());
            }
        }
        _ => unreachable!("only connection steps reach here"),
    }
    Ok(())
}

/// A read cut short by the case's own limit decides nothing.
fn check_heard(conn: &Conn, heard: &Heard, at: &Exercise) -> CaseResult {
    match heard.end {
        End::Capped => Err(conn.capped(&format!("at {}", at.step))),
        _ => Ok(()),
    }
}

/// Bytes that arrived where none were expected also break SPEC: SRV-PONG-1 ("no other bytes").
fn with_extra_bytes(at: &Exercise, heard: &Heard) -> Exercise {
    let mut blames = at.blames.clone();
    if !heard.bytes.is_empty() && !blames.contains(&"SRV-PONG-1") {
        blames.push("SRV-PONG-1");
    }
    at.blaming(blames)
}

/// One write on each connection of `sends`, from a thread each, all released at one barrier.
fn send_at_once(open: &mut BTreeMap<u32, Open>, sends: &[ConnWrite], at: &Exercise) -> CaseResult {
    let mut writers = Vec::new();
    for send in sends {
        let state = open.get_mut(&send.conn).ok_or_else(|| invalid(at, "a connection is not open"))?;
        writers.push((state.conn.writer()?, send));
    }
    let barrier = std::sync::Barrier::new(writers.len());
    let results: Vec<(u32, io::Result<()>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = writers
            .into_iter()
            .map(|(mut writer, send)| {
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    (send.conn, writer.send(&send.bytes))
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    for (conn, result) in results {
        let send = sends.iter().find(|s| s.conn == conn).expect("a send per result");
        if let Err(error) = result {
            if !send.because.is_empty() {
                let at = Exercise { step: format!("{} (#{conn})", at.step), blames: blames(&send.because) };
                return at.not_delivered(send.bytes.clone(), &error);
            }
        }
    }
    Ok(())
}

/// Why a script file cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Read(#[from] io::Error),
    /// The file is not JSON of a script's or a report's shape.
    #[error("not a script: {0}")]
    Json(#[from] serde_json::Error),
    /// The text is neither a script, nor a gate report (JSON or human) with one.
    #[error(
        "neither a script (no \"steps\"), nor a test vector of `conform export`, nor a gate report with a script in \
         it (run the gate with --explore; the JSON report and the human one both carry the scripts of failed cases)"
    )]
    NotAScript,
    /// An expectation names no requirement: its failure would blame nothing.
    #[error(
        "{case}: step {step} ({}) checks something but names no requirement (give it \"because\": the SPEC.md IDs \
         it holds the target to)",
        text.trim()
    )]
    Unattributed {
        /// The script's name (its case ID in a report).
        case: String,
        /// The step, from 1.
        step: usize,
        /// The step as the script's text shows it.
        text: String,
    },
    /// A step names a requirement SPEC.md does not define.
    #[error("{case}: step {step} names {id:?}, which is not a requirement of SPEC.md")]
    UnknownRequirement {
        /// The script's name (its case ID in a report).
        case: String,
        /// The step, from 1.
        step: usize,
        /// The ID as written.
        id: String,
    },
}

/// The line of a human report under a script-shaped case that carries its script as JSON.
pub(crate) const HUMAN_MARKER: &str = "script (for --replay): ";

/// The case ID of a human report's case line (`FAIL  server/explore-burst/seed-5-case-0  ...`).
fn human_case_id(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    let outcome = words.next()?;
    let id = words.next()?;
    let is_outcome = ["PASS", "FAIL", "WARN", "ERROR", "SKIP", "INCONCLUSIVE"].contains(&outcome);
    (is_outcome && (id.starts_with("server/") || id.starts_with("client/"))).then_some(id)
}

/// Reads scripts: a script file, a gate JSON report whose cases carry scripts (every one of
/// them is returned, with its case ID), or a human report with `script (for --replay):` lines.
pub(crate) fn load(text: &str) -> Result<Vec<(String, Script)>, LoadError> {
    let scripts = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) if value.get("steps").is_some() => {
            vec![("script".to_string(), serde_json::from_value::<Script>(value)?)]
        }
        // An exported test vector (`conform export`) carries the script it was made from.
        Ok(value) if value.get("format").and_then(|f| f.as_str()) == Some(VECTOR_FORMAT) => {
            let script = value.get("script").cloned().ok_or(LoadError::NotAScript)?;
            let id = value.get("id").and_then(|i| i.as_str()).unwrap_or("vector").to_string();
            vec![(id, serde_json::from_value::<Script>(script)?)]
        }
        Ok(value) => {
            let cases = value.get("cases").and_then(|c| c.as_array()).ok_or(LoadError::NotAScript)?;
            let mut scripts = Vec::new();
            for case in cases {
                if let Some(script) = case.get("script").and_then(|s| s.get("script")) {
                    let id = case.get("id").and_then(|i| i.as_str()).unwrap_or("case").to_string();
                    scripts.push((id, serde_json::from_value(script.clone())?));
                }
            }
            scripts
        }
        Err(error) => {
            // A human report: each script-shaped case carries its script on one line.
            let mut scripts = Vec::new();
            let mut case = "script".to_string();
            for line in text.lines() {
                let line = line.trim_start();
                if let Some(json) = line.strip_prefix(HUMAN_MARKER) {
                    scripts.push((case.clone(), serde_json::from_str(json)?));
                } else if let Some(id) = human_case_id(line) {
                    case = id.to_string();
                }
            }
            if scripts.is_empty() && text.trim_start().starts_with('{') {
                return Err(LoadError::Json(error));
            }
            scripts
        }
    };
    if scripts.is_empty() {
        return Err(LoadError::NotAScript);
    }
    for (case, script) in &scripts {
        for (index, step) in script.steps.iter().enumerate() {
            if let Some(id) = step.ids().into_iter().find(|id| crate::spec::id(id).is_none()) {
                return Err(LoadError::UnknownRequirement { case: case.clone(), step: index + 1, id: id.to_string() });
            }
            // SPEC.md section 8: a replay judges what its steps name, so an expectation that
            // names nothing could only fail without blaming anything.
            if step.is_expectation() && step.because().is_empty() {
                return Err(LoadError::Unattributed { case: case.clone(), step: index + 1, text: step.to_string() });
            }
        }
    }
    Ok(scripts)
}

/// Reads a script file from disk: a script, a JSON report with scripts, or a human report with `script (for --replay):` lines.
pub fn load_file(path: &std::path::Path) -> Result<Vec<(String, Script)>, LoadError> {
    load(&std::fs::read_to_string(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_round_trip_through_json_in_the_version_1_form() {
        let script = Script::new(vec![
            Step::Do(Action::Connect { conn: 1, because: vec![] }),
            Step::Do(Action::Send { conn: 1, bytes: Bytes::from_static(b"pi\xff"), because: vec![] }),
            Step::ExpectClosed { conn: 1, because: vec!["SRV-INVALID-1".into()], all_read: true },
            Step::ExpectRunning { because: vec!["SRV-ISOLATE-1".into()] },
        ]);
        let text = serde_json::to_string(&script).unwrap();
        assert!(text.contains(r#"{"step":"send","conn":1,"bytes":"pi\\xff"}"#), "{text}");
        assert!(text.contains(r#"{"step":"connect","conn":1}"#), "{text}");
        assert!(text.contains(r#""all_read":true"#), "{text}");
        assert_eq!(load(&text).unwrap(), vec![("script".to_string(), script)]);
        assert!(matches!(load("{}"), Err(LoadError::NotAScript)));
    }

    // SPEC.md section 8 — a replay judges what its steps name: an expectation naming nothing
    // is refused, and so is an unknown ID anywhere in a step.
    #[test]
    fn scripts_whose_steps_blame_nothing_or_the_unknown_are_refused() {
        let unattributed = r#"{"format":"udsping-script","version":1,"steps":[{"step":"expect_running"}]}"#;
        assert!(matches!(load(unattributed), Err(LoadError::Unattributed { step: 1, .. })));
        let open = r#"{"format":"udsping-script","version":1,"steps":[{"step":"connect","conn":1},
            {"step":"expect_open","conn":1,"ms":5,"because":["SRV-PONG-1"],"open_because":["SRV-NOPE-9"]}]}"#;
        assert!(matches!(load(open), Err(LoadError::UnknownRequirement { step: 2, .. })));
        let at_once = r#"{"format":"udsping-script","version":1,"steps":[{"step":"connect","conn":1},
            {"step":"send_at_once","sends":[{"conn":1,"bytes":"ping","because":["SRV-NOPE-9"]}]}]}"#;
        assert!(matches!(load(at_once), Err(LoadError::UnknownRequirement { step: 2, .. })));
    }

    #[test]
    fn a_human_report_carries_its_scripts() {
        let script = Script::new(vec![Step::Do(Action::Connect { conn: 1, because: vec![] })]);
        let line = serde_json::to_string(&script).unwrap();
        let report = format!(
            "  FAIL  server/explore/seed-1-case-6  a generated conversation [MUST]\n        {HUMAN_MARKER}{line}\n"
        );
        assert_eq!(load(&report).unwrap(), vec![("server/explore/seed-1-case-6".to_string(), script)]);
        assert!(matches!(load("just text\n"), Err(LoadError::NotAScript)));
    }

    #[test]
    fn a_script_naming_an_unknown_requirement_is_refused() {
        let text =
            r#"{"format":"udsping-script","version":1,"steps":[{"step":"expect_running","because":["SRV-NOPE-9"]}]}"#;
        let error = load(text).unwrap_err();
        assert_eq!(error.to_string(), "script: step 1 names \"SRV-NOPE-9\", which is not a requirement of SPEC.md");
    }
}
