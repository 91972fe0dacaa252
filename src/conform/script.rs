//! A conversation with a server as a value: a [`Script`] is a list of [`Step`]s over numbered
//! connections, and [`play`] is the one runner that plays any script against the target and
//! returns a structured [`ScriptFailure`] (step, expected, observed, transcript), the way
//! h2spec's `TestError{Expected, Actual}` does, rather than a formatted string.
//!
//! Scripts are what the fixed stream cases ([`super::rows`]), the generated ones
//! ([`super::explore`]), `--replay FILE` and `udsping conform export` share. Their expectations
//! are computed by [`super::model`] from the protocol core; a script read from a file may also
//! be written by hand.
//!
//! # JSON form (schema `udsping-script`, version 1)
//!
//! ```json
//! {"format": "udsping-script", "version": 1, "steps": [
//!   {"step": "connect", "conn": 1},
//!   {"step": "send", "conn": 1, "bytes": "pingpi"},
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
//! | `send` | `conn`, `bytes` | one write of `bytes` |
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
//! `because` (optional on every `expect_*` and `lock_step` step) lists the SPEC.md requirement
//! IDs that make the expectation hold; a failure at that step blames them.

use std::collections::BTreeMap;
use std::fmt;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::harness::{Conn, Ctx, Problem, Transcript};
use crate::proto::{quoted, quoted_prefix, PING, PONG};

/// The `format` field of a script file.
pub const FORMAT: &str = "udsping-script";
/// The script schema's version.
pub const VERSION: u32 = 1;

/// A send larger than this is written from another thread, so that the runner never blocks on
/// a target that reads slowly or not at all.
const BACKGROUND_SEND: usize = 16 * 1024;

/// Between two sends on one connection, the runner waits (at most this long) until the target
/// has read the first, so that it sees them as two reads, as a script means, however loaded
/// the machine; a target that does not read by then gets the second write anyway.
pub const SEND_GAP: Duration = Duration::from_millis(500);

/// Bytes on the wire, written in SPEC.md's notation in JSON and in messages.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Bytes {
    fn from(bytes: &[u8]) -> Self {
        Bytes(bytes.to_vec())
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Bytes(bytes)
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `"ping" x 1000` for long runs of one token, then the rest quoted; a readable transcript
/// matters more than a copy-pasteable one here (the JSON form has every byte).
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = &self.0[..];
        for token in [PING, PONG] {
            let run = bytes.chunks(4).take_while(|c| *c == token).count();
            if run >= 4 {
                write!(f, "{} x {run}", quoted(token))?;
                let rest = &bytes[4 * run..];
                return if rest.is_empty() { Ok(()) } else { write!(f, " + {}", Bytes(rest.to_vec())) };
            }
        }
        // A target that floods costs a message of bounded length (the JSON keeps the bytes).
        f.write_str(&quoted_prefix(bytes, MESSAGE_BYTES))
    }
}

/// The most bytes of one observation a message spells out.
const MESSAGE_BYTES: usize = 256;

/// A byte string in a script file that is not in SPEC.md's notation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad escape at character {at} of {text:?}: expected \\n, \\r, \\t, \\0, \\\\, \\', \\\" or \\xNN")]
pub struct EscapeError {
    pub(crate) text: String,
    pub(crate) at: usize,
}

/// Reads SPEC.md's byte-string notation (the inverse of `escape_ascii`).
pub fn unescape(text: &str) -> Result<Vec<u8>, EscapeError> {
    let error = |at: usize| EscapeError { text: text.to_string(), at };
    let mut out = Vec::with_capacity(text.len());
    let raw = text.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            out.push(raw[i]);
            i += 1;
            continue;
        }
        let byte = match raw.get(i + 1) {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(&c @ (b'\\' | b'\'' | b'"')) => c,
            Some(b'x') => {
                let hex = text.get(i + 2..i + 4).ok_or_else(|| error(i))?;
                let byte = u8::from_str_radix(hex, 16).map_err(|_| error(i))?;
                i += 2;
                byte
            }
            _ => return Err(error(i)),
        };
        out.push(byte);
        i += 2;
    }
    Ok(out)
}

// By hand, as `Serialize` is: a byte string is one JSON string in SPEC.md's notation.
impl schemars::JsonSchema for Bytes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Bytes".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "Bytes in SPEC.md's notation: ASCII as is, with \\n, \\r, \\t, \\\\, \\', \\\" and \\xNN for every other byte."
        })
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.escape_ascii().to_string())
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        unescape(&text).map(Bytes).map_err(serde::de::Error::custom)
    }
}

/// One step of a script. Connections are numbered by the script (from 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Open connection `conn` (bounded by the timeout).
    Connect {
        /// The connection, numbered by the script from 1.
        conn: u32,
    },
    /// One write of `bytes`.
    Send {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// What is written.
        bytes: Bytes,
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
    /// `rounds` times: send `"ping"`, expect `"pong"`.
    LockStep {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// How many rounds.
        rounds: u32,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        because: Vec<String>,
    },
    /// Exactly these bytes arrive next (bounded by the timeout).
    ExpectBytes {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// The bytes expected.
        bytes: Bytes,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        because: Vec<String>,
    },
    /// Nothing more arrives and the target closes the connection.
    ExpectClosed {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        because: Vec<String>,
    },
    /// Nothing arrives and the connection stays open for `ms`.
    ExpectOpen {
        /// The connection, numbered by the script from 1.
        conn: u32,
        /// How long to watch, in milliseconds.
        ms: u64,
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        because: Vec<String>,
    },
    /// The target's process has not exited.
    ExpectRunning {
        /// The SPEC.md requirement IDs that make the expectation hold; a failure here blames them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        because: Vec<String>,
    },
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
    /// The requirement IDs an expectation step holds the target to.
    pub fn because(&self) -> &[String] {
        match self {
            Step::LockStep { because, .. }
            | Step::ExpectBytes { because, .. }
            | Step::ExpectClosed { because, .. }
            | Step::ExpectOpen { because, .. }
            | Step::ExpectRunning { because }
            | Step::ExpectExit { because, .. } => because,
            _ => &[],
        }
    }

    /// Whether this step checks something (rather than doing something).
    pub fn is_expectation(&self) -> bool {
        matches!(
            self,
            Step::LockStep { .. }
                | Step::ExpectBytes { .. }
                | Step::ExpectClosed { .. }
                | Step::ExpectOpen { .. }
                | Step::ExpectRunning { .. }
                | Step::ExpectExit { .. }
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Connect { conn } => write!(f, "#{conn} connect"),
            Step::Send { conn, bytes } => write!(f, "#{conn} send {bytes}"),
            Step::Pause { ms } => write!(f, "   pause {ms} ms"),
            Step::HalfClose { conn } => write!(f, "#{conn} half-close (EOF)"),
            Step::Close { conn } => write!(f, "#{conn} close"),
            Step::LockStep { conn, rounds, .. } => {
                write!(f, "#{conn} {rounds} lock-step rounds (\"ping\" -> \"pong\")")
            }
            Step::ExpectBytes { conn, bytes, .. } => write!(f, "#{conn} expect {bytes}"),
            Step::ExpectClosed { conn, .. } => write!(f, "#{conn} expect close"),
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
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// The steps, played in order.
    pub steps: Vec<Step>,
}

impl Script {
    pub(crate) fn new(steps: Vec<Step>) -> Self {
        Script { format: FORMAT.to_string(), version: VERSION, steps }
    }

    /// The requirement IDs of every expectation, each once, in SPEC.md's spelling.
    pub fn requirements(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.steps.iter().flat_map(|s| s.because()).map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The script as numbered lines, `  3. #1 send "pi"`.
    pub fn text(&self) -> String {
        self.steps.iter().enumerate().map(|(i, step)| format!("{:>4}. {step}\n", i + 1)).collect()
    }
}

/// What one expectation saw, or should have seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// Exactly these bytes (whatever follows).
    Bytes {
        /// The bytes.
        bytes: Bytes,
    },
    /// These bytes and then the end of the connection (EOF or a reset, SPEC: WIRE-CLOSE-1).
    Closed {
        /// What arrived before the end.
        before: Bytes,
    },
    /// These bytes and then nothing more within the wait; the connection stayed open.
    Open {
        /// What arrived.
        received: Bytes,
        /// How long the gate watched, in milliseconds.
        waited_ms: u64,
    },
    /// A connection was established.
    Connected,
    /// The target did not accept the connection.
    NotConnected {
        /// The connect error.
        error: String,
    },
    /// The target read everything the gate sent.
    AllRead,
    /// The target did not read what the gate sent within the wait.
    NotRead {
        /// How long the gate waited, in milliseconds.
        waited_ms: u64,
    },
    /// The target's process is running.
    Running,
    /// The target's process exited.
    Exited {
        /// The exit status as std shows it (`exit status: 1`).
        status: String,
    },
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Bytes { bytes } => write!(f, "{bytes}"),
            Observation::Closed { before } if before.0.is_empty() => f.write_str("the connection closed"),
            Observation::Closed { before } => write!(f, "{before} and then the connection closed"),
            Observation::Open { received, waited_ms } if received.0.is_empty() => {
                write!(f, "nothing for {waited_ms} ms, connection open")
            }
            Observation::Open { received, waited_ms } => {
                write!(f, "{received} and then nothing more for {waited_ms} ms, connection open")
            }
            Observation::Connected => f.write_str("a connection"),
            Observation::NotConnected { error } => write!(f, "no connection ({error})"),
            Observation::AllRead => f.write_str("the server reading what was sent"),
            Observation::NotRead { waited_ms } => write!(f, "the server not reading what was sent for {waited_ms} ms"),
            Observation::Running => f.write_str("the server running"),
            Observation::Exited { status } => write!(f, "the server exited ({status})"),
        }
    }
}

/// Where and how a script failed.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScriptFailure {
    /// The failing step, numbered from 1.
    pub step: usize,
    /// The failing step itself.
    pub at: Step,
    /// For a `lock_step` step, the round that failed (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    /// What a conforming target does at that step.
    pub(crate) expected: Observation,
    /// What the target did instead.
    pub observed: Observation,
    /// Every byte and event of the run, up to the failure (in reports, the case's transcript).
    #[serde(skip)]
    pub transcript: Option<Transcript>,
}

impl fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "step {} ({})", self.step, self.at.to_string().trim_start())?;
        if let Some(round) = self.round {
            write!(f, ", round {round}")?;
        }
        write!(f, ": expected {}; observed {}", self.expected, self.observed)
    }
}

/// Why a script did not pass.
#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// The target did not do what the script expects.
    #[error("{0}")]
    Failed(Box<ScriptFailure>),
    /// The script cannot be played as written (from a hand-written file).
    #[error("step {step} ({at}): {reason}")]
    Invalid {
        /// The step, numbered from 1.
        step: usize,
        /// The step as text.
        at: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The harness itself failed (never the target's fault).
    #[error("harness error at step {step}: {message}")]
    Harness {
        /// The step it failed at, numbered from 1.
        step: usize,
        /// What went wrong.
        message: String,
    },
}

impl ScriptError {
    /// The failure, if the target is to blame.
    pub fn failure(&self) -> Option<&ScriptFailure> {
        match self {
            ScriptError::Failed(failure) => Some(failure),
            _ => None,
        }
    }

    /// As a case's result, for the fixed cases.
    pub fn into_problem(self) -> Problem {
        match self {
            ScriptError::Failed(failure) => Problem::Fail(failure.to_string()),
            other => Problem::Harness(other.to_string()),
        }
    }
}

/// One of the script's connections while it plays.
struct Open {
    conn: Conn,
    /// A large send still being written from another thread.
    writer: Option<JoinHandle<()>>,
    /// The previous step on this connection was a send.
    just_sent: bool,
}

/// Plays `script` against the server `ctx` runs (the caller started it), connection by
/// connection through the harness. Returns at the first step whose observation differs from
/// its expectation; connections the script opened are closed when it returns.
pub fn play(ctx: &mut Ctx, script: &Script) -> Result<(), ScriptError> {
    let mut open: BTreeMap<u32, Open> = BTreeMap::new();
    let timeout = ctx.timeout;
    for (index, step) in script.steps.iter().enumerate() {
        let number = index + 1;
        let failed = |expected: Observation, observed: Observation, round: Option<u32>| {
            ScriptError::Failed(Box::new(ScriptFailure {
                step: number,
                at: step.clone(),
                round,
                expected,
                observed,
                transcript: None,
            }))
        };
        let invalid = |reason: &'static str| ScriptError::Invalid { step: number, at: step.to_string(), reason };
        match step {
            Step::Connect { conn } => {
                if open.contains_key(conn) {
                    return Err(invalid("the connection is already open"));
                }
                match ctx.connect() {
                    Ok(c) => {
                        open.insert(*conn, Open { conn: c, writer: None, just_sent: false });
                    }
                    Err(Problem::Fail(error)) => {
                        return Err(failed(Observation::Connected, Observation::NotConnected { error }, None))
                    }
                    Err(Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message)) => {
                        return Err(ScriptError::Harness { step: number, message })
                    }
                }
            }
            Step::Pause { ms } => std::thread::sleep(Duration::from_millis(*ms)),
            Step::ExpectRunning { .. } => {
                if let Some(status) = ctx.exited() {
                    return Err(failed(Observation::Running, Observation::Exited { status: status.to_string() }, None));
                }
            }
            Step::Signal { signal } => {
                let (signal, name) = signal.signal();
                ctx.signal(signal, name)
                    .map_err(|p| ScriptError::Harness { step: number, message: format!("{p:?}") })?;
            }
            Step::ExpectExit { success, .. } => {
                let expected = Observation::Exited {
                    status: if *success { "exit status: 0" } else { "a non-zero exit status" }.into(),
                };
                match ctx.wait_exit("the script expects the server to exit") {
                    Ok(status) if status.success() == *success => {}
                    Ok(status) => {
                        return Err(failed(expected, Observation::Exited { status: status.to_string() }, None))
                    }
                    Err(Problem::Fail(_)) => return Err(failed(expected, Observation::Running, None)),
                    Err(Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message)) => {
                        return Err(ScriptError::Harness { step: number, message })
                    }
                }
            }
            Step::Close { conn } => {
                // Dropped with whatever is unread: the target sees a reset or EOF.
                open.remove(conn).ok_or_else(|| invalid("the connection is not open"))?;
            }
            Step::Send { conn, .. }
            | Step::HalfClose { conn }
            | Step::LockStep { conn, .. }
            | Step::ExpectBytes { conn, .. }
            | Step::ExpectClosed { conn, .. }
            | Step::ExpectOpen { conn, .. } => {
                let Some(state) = open.get_mut(conn) else { return Err(invalid("the connection is not open")) };
                // Whatever is being written in the background goes first, within the timeout.
                if let Some(writer) = state.writer.take() {
                    let deadline = Instant::now() + timeout;
                    while !writer.is_finished() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    if !writer.is_finished() {
                        let waited_ms = timeout.as_millis() as u64;
                        return Err(failed(Observation::AllRead, Observation::NotRead { waited_ms }, None));
                    }
                    let _ = writer.join();
                }
                let sent_before = std::mem::replace(&mut state.just_sent, matches!(step, Step::Send { .. }));
                match step {
                    Step::Send { bytes, .. } => {
                        if sent_before {
                            let deadline = Instant::now() + SEND_GAP;
                            while state.conn.unread_by_peer().is_ok_and(|n| n > 0) && Instant::now() < deadline {
                                std::thread::sleep(Duration::from_micros(200));
                            }
                        }
                        if bytes.0.len() > BACKGROUND_SEND {
                            let writer = state
                                .conn
                                .send_in_background(bytes.0.clone())
                                .map_err(|p| ScriptError::Harness { step: number, message: format!("{p:?}") })?;
                            state.writer = Some(writer);
                        } else {
                            state.conn.send(&bytes.0);
                        }
                    }
                    Step::HalfClose { .. } => state.conn.half_close(),
                    Step::LockStep { rounds, .. } => {
                        for round in 1..=*rounds {
                            state.conn.send(PING);
                            let (got, closed) = state.conn.read_exactly_or_close(PONG.len());
                            if got != PONG {
                                let expected = Observation::Bytes { bytes: PONG[..].into() };
                                return Err(failed(expected, observed(got, closed, timeout), Some(round)));
                            }
                        }
                    }
                    Step::ExpectBytes { bytes, .. } => {
                        let (got, closed) = state.conn.read_exactly_or_close(bytes.0.len());
                        if got != bytes.0 {
                            let expected = Observation::Bytes { bytes: bytes.clone() };
                            return Err(failed(expected, observed(got, closed, timeout), None));
                        }
                    }
                    Step::ExpectClosed { .. } => {
                        let (got, closed) = state.conn.read_until_close();
                        if !(closed && got.is_empty()) {
                            let expected = Observation::Closed { before: Bytes::default() };
                            return Err(failed(expected, observed(got, closed, timeout), None));
                        }
                    }
                    Step::ExpectOpen { ms, .. } => {
                        let window = Duration::from_millis(*ms);
                        let (got, closed) = state.conn.read_for(window);
                        if closed || !got.is_empty() {
                            let expected = Observation::Open { received: Bytes::default(), waited_ms: *ms };
                            return Err(failed(expected, observed(got, closed, window), None));
                        }
                    }
                    _ => unreachable!("only connection steps reach here"),
                }
            }
        }
    }
    Ok(())
}

fn observed(got: Vec<u8>, closed: bool, waited: Duration) -> Observation {
    if closed {
        Observation::Closed { before: Bytes(got) }
    } else {
        Observation::Open { received: Bytes(got), waited_ms: waited.as_millis() as u64 }
    }
}

/// Reads a script file: a script, or a gate JSON report whose cases carry scripts (every one
/// of them is returned, with its case ID).
pub fn load(text: &str) -> Result<Vec<(String, Script)>, LoadError> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    if value.get("steps").is_some() {
        return Ok(vec![("script".to_string(), serde_json::from_value(value)?)]);
    }
    let cases = value.get("cases").and_then(|c| c.as_array()).ok_or(LoadError::NotAScript)?;
    let mut scripts = Vec::new();
    for case in cases {
        if let Some(script) = case.get("script").and_then(|s| s.get("script")) {
            let id = case.get("id").and_then(|i| i.as_str()).unwrap_or("case").to_string();
            scripts.push((id, serde_json::from_value(script.clone())?));
        }
    }
    if scripts.is_empty() {
        return Err(LoadError::NoScripts);
    }
    Ok(scripts)
}

/// Reads a script file from disk (see [`load`]).
pub fn load_file(path: &std::path::Path) -> Result<Vec<(String, Script)>, LoadError> {
    load(&std::fs::read_to_string(path)?)
}

/// Why a script file cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file cannot be read.
    #[error("cannot read it: {0}")]
    Read(#[from] std::io::Error),
    /// The file is not JSON of a script's or a report's shape.
    #[error("not a script: {0}")]
    Json(#[from] serde_json::Error),
    /// The JSON is neither a script nor a gate report.
    #[error("neither a script (no \"steps\") nor a gate report (no \"cases\")")]
    NotAScript,
    /// The file is a gate report, but no case of it has a script.
    #[error("the report has no case with a script (run the gate with --explore and --format json)")]
    NoScripts,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_through_the_spec_notation() {
        let all: Vec<u8> = (0..=255).collect();
        let text = serde_json::to_string(&Bytes(all.clone())).unwrap();
        assert_eq!(serde_json::from_str::<Bytes>(&text).unwrap().0, all);
        assert_eq!(unescape("pi\\x00\\n").unwrap(), b"pi\0\n");
        assert_eq!(unescape("bad\\q").unwrap_err().at, 3);
        assert!(unescape("\\x4").is_err());
    }

    #[test]
    fn long_runs_read_as_repetitions() {
        let bytes = Bytes([b"ping".repeat(1000), b"end".to_vec()].concat());
        assert_eq!(bytes.to_string(), "\"ping\" x 1000 + \"end\"");
        assert_eq!(Bytes(b"pingpin".to_vec()).to_string(), "\"pingpin\"");
    }

    #[test]
    fn scripts_round_trip_through_json() {
        let script = Script::new(vec![
            Step::Connect { conn: 1 },
            Step::Send { conn: 1, bytes: b"pi\xff"[..].into() },
            Step::ExpectClosed { conn: 1, because: vec!["SRV-INVALID-1".into()] },
            Step::ExpectRunning { because: vec![] },
        ]);
        let text = serde_json::to_string(&script).unwrap();
        assert!(text.contains(r#"{"step":"send","conn":1,"bytes":"pi\\xff"}"#), "{text}");
        assert_eq!(load(&text).unwrap(), vec![("script".to_string(), script)]);
        assert!(matches!(load("{}"), Err(LoadError::NotAScript)));
    }
}
