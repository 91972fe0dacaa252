//! What a case concludes, typed (SPEC.md section 8, "How a report blames"): a [`Failure`] names
//! the step it was seen at, the requirements that step exercises (the only ones it blames),
//! what a conforming implementation does there and what this one did, the way rustls and h2spec
//! keep expected and observed as fields rather than in a formatted string. [`Problem`] is every
//! way a case can end other than passing; [`Exercise`] is a step about to be taken, with the
//! requirements a failure there will blame.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::bytes::Bytes;

/// A step of a case, in words, and the requirements it exercises: a failure seen there blames
/// these and nothing else (SPEC.md section 8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Exercise {
    /// What the gate does at this step (`the liveness round`, `round 3 of client 7 of 64`).
    pub step: String,
    /// The requirements whose expectation the step checks.
    pub blames: Vec<&'static str>,
}

impl Exercise {
    /// A step that exercises `blames`.
    pub(crate) fn new(step: impl Into<String>, blames: &[&'static str]) -> Self {
        Exercise { step: step.into(), blames: blames.to_vec() }
    }

    /// The same requirements, at a step described otherwise (`round 3` of the same exercise).
    pub(crate) fn at(&self, step: impl Into<String>) -> Self {
        Exercise { step: step.into(), blames: self.blames.clone() }
    }

    /// The same step, blaming `blames` instead (a failure there that is some other
    /// requirement's business, such as SRV-OPEN-1's for bytes never read).
    pub(crate) fn blaming(&self, blames: impl Into<Vec<&'static str>>) -> Self {
        Exercise { step: self.step.clone(), blames: blames.into() }
    }

    /// The failure of this step's write: `bytes`, which the target had to read, never arrived.
    pub(crate) fn not_delivered<T>(&self, bytes: Bytes, error: &std::io::Error) -> Result<T, Problem> {
        self.failed(Observation::AllRead, Observation::NotDelivered { bytes, error: error.to_string() })
    }

    /// The failure of this step: `expected` did not hold, `observed` did.
    pub(crate) fn fail(&self, expected: Observation, observed: Observation) -> Problem {
        Problem::Fail(Box::new(Failure { step: self.step.clone(), blames: self.blames.clone(), expected, observed }))
    }

    /// [`Exercise::fail`] as an `Err`.
    pub(crate) fn failed<T>(&self, expected: Observation, observed: Observation) -> Result<T, Problem> {
        Err(self.fail(expected, observed))
    }
}

/// An expectation that did not hold: where, what it blames, expected and observed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Failure {
    /// The step at which it was seen, in words (`step 5 (#1 expect close)`, `the readiness probe`).
    pub step: String,
    /// The SPEC.md requirements the step exercises: what the failure blames.
    pub blames: Vec<&'static str>,
    /// What a conforming implementation does at that step.
    pub expected: Observation,
    /// What this one did instead.
    pub observed: Observation,
}

impl Failure {
    /// Whether what was observed is what a server's death does to a connection where the
    /// expected was awaited: a close after no more than the expected bytes, a refused
    /// connect, a write that found the peer gone, a reset.
    pub(crate) fn observed_is_a_death(&self) -> bool {
        match &self.observed {
            Observation::NotConnected { .. } | Observation::NotDelivered { .. } | Observation::ResetUnread => true,
            Observation::Closed { before } => match &self.expected {
                Observation::Bytes { bytes } => bytes.as_slice().starts_with(before.as_slice()),
                Observation::Pong | Observation::ReplyWithin { .. } => b"pong".starts_with(before.as_slice()),
                _ => false,
            },
            _ => false,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}; observed {}", self.step, self.expected, self.observed)
    }
}

/// Why a case did not pass.
#[derive(Debug)]
pub enum Problem {
    /// An expectation did not hold: the implementation broke the requirements the failure blames.
    Fail(Box<Failure>),
    /// The case could not reach what it tests, for a reason that breaks no requirement (the text
    /// says which, and what to change); never a pass, never a failure.
    Inconclusive(String),
    /// The case does not apply to this target (the text says why).
    Skip(String),
    /// The gate could not run the case (never a pass, never a failure).
    Harness(String),
}

impl Problem {
    /// A harness error: `what` could not be done, because of `error`.
    pub fn harness(what: &str, error: impl fmt::Display) -> Problem {
        Problem::Harness(format!("{what}: {error}"))
    }

    /// The failure, if the implementation is to blame.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Problem::Fail(failure) => Some(failure),
            _ => None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Fail(failure) => write!(f, "{}: {failure}", failure.blames.join(", ")),
            Problem::Inconclusive(reason) => write!(f, "inconclusive: {reason}"),
            Problem::Skip(reason) => f.write_str(reason),
            Problem::Harness(message) => write!(f, "harness error: {message}"),
        }
    }
}

impl From<crate::process::SpawnError> for Problem {
    fn from(error: crate::process::SpawnError) -> Problem {
        Problem::Harness(error.to_string())
    }
}

/// A case's result: `Ok` is a pass.
pub(crate) type CaseResult = Result<(), Problem>;

/// What is at a path, as the gate sees it (`lstat`, not following a symbolic link).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PathState {
    /// Nothing (`ENOENT`).
    Nothing,
    /// A socket file with this mode.
    Socket {
        /// Its permission bits.
        mode: u32,
    },
    /// A regular file.
    RegularFile {
        /// Its contents, lossily decoded as UTF-8.
        content: String,
    },
    /// A directory.
    Directory,
    /// A symbolic link (not followed).
    Symlink,
    /// A named pipe.
    Fifo,
    /// Anything else (a device).
    Other,
}

impl PathState {
    /// What `lstat` shows at `path`.
    pub fn of(path: &std::path::Path) -> PathState {
        use std::os::unix::fs::{FileTypeExt, PermissionsExt};
        let Ok(metadata) = std::fs::symlink_metadata(path) else { return PathState::Nothing };
        let kind = metadata.file_type();
        if kind.is_socket() {
            PathState::Socket { mode: metadata.permissions().mode() & 0o7777 }
        } else if kind.is_file() {
            let content = std::fs::read(path).unwrap_or_default();
            PathState::RegularFile { content: String::from_utf8_lossy(&content).into_owned() }
        } else if kind.is_dir() {
            PathState::Directory
        } else if kind.is_symlink() {
            PathState::Symlink
        } else if kind.is_fifo() {
            PathState::Fifo
        } else {
            PathState::Other
        }
    }
}

impl fmt::Display for PathState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathState::Nothing => f.write_str("nothing"),
            PathState::Socket { mode } => write!(f, "a socket file (mode {mode:04o})"),
            PathState::RegularFile { content } => write!(f, "a regular file holding {content:?}"),
            PathState::Directory => f.write_str("a directory"),
            PathState::Symlink => f.write_str("a symbolic link"),
            PathState::Fifo => f.write_str("a FIFO"),
            PathState::Other => f.write_str("a device or other special file"),
        }
    }
}

/// What one expectation saw, or should have seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// Exactly these bytes (whatever follows).
    Bytes {
        /// The bytes.
        bytes: Bytes,
    },
    /// A reply that contains `pong` (the liveness round's forgiving expectation).
    Pong,
    /// A token the client may send next: `ping` or `end`.
    PingOrEnd,
    /// These bytes and then the end of the connection (EOF or a reset, SPEC: WIRE-CLOSE-1).
    Closed {
        /// What arrived before the end.
        before: Bytes,
    },
    /// These bytes and then nothing more for `waited_ms`, the connection still open.
    Open {
        /// What arrived (nothing, for an expectation of silence).
        received: Bytes,
        /// How long the gate watched.
        waited_ms: u64,
    },
    /// A reply with `pong` in it within `ms` (the exact reply is the wire cases' business).
    ReplyWithin {
        /// The bound, in milliseconds.
        ms: u64,
    },
    /// A connection accepted.
    Connected,
    /// A connection that could not be made.
    NotConnected {
        /// Why (the error `connect` gave).
        error: String,
    },
    /// The target reading every byte the gate wrote.
    AllRead,
    /// A write of the gate's that failed: the target had closed the connection (or stopped
    /// reading it) before these bytes reached it.
    NotDelivered {
        /// The bytes that were not delivered.
        bytes: Bytes,
        /// The error the write gave.
        error: String,
    },
    /// The target not reading what was written, for `waited_ms`.
    NotRead {
        /// How long the gate waited.
        waited_ms: u64,
    },
    /// The connection closed once the peer had read every byte sent on it.
    ClosedAllRead,
    /// The connection reset: the peer closed it with bytes sent on it still unread.
    ResetUnread,
    /// The process still running.
    Running,
    /// The process still running after the wait for it ran out.
    StillRunning {
        /// How long the gate waited, in milliseconds.
        waited_ms: u64,
        /// The option that sets the wait (`--startup-timeout`, `--timeout`).
        option: String,
        /// The end of what it wrote to stderr, escaped (empty if nothing).
        #[serde(skip_serializing_if = "String::is_empty")]
        stderr: String,
    },
    /// The process exiting by itself, with any status.
    Exiting,
    /// The process exiting by itself, with status 0 (`success`) or with another status.
    Exits {
        /// Status 0 rather than any other.
        success: bool,
    },
    /// The process exited.
    Exited {
        /// How, as a person says it (`exited with status 1`, `was killed by signal 9 (SIGKILL)`).
        status: String,
        /// The end of what it wrote to stderr, escaped (empty if nothing).
        #[serde(skip_serializing_if = "String::is_empty")]
        stderr: String,
    },
    /// The target listening: a connection to its socket accepted within `within_ms`.
    Listening {
        /// The bound, in milliseconds.
        within_ms: u64,
    },
    /// What was at a path.
    Path {
        /// The path.
        path: String,
        /// What `lstat` showed there.
        state: PathState,
    },
    /// The socket file's mode from the moment it appeared (SPEC: LIFE-PERM-1).
    Mode {
        /// Its mode when it appeared at the path.
        first: u32,
        /// Its modes after each attribute change, in order.
        changed_to: Vec<u32>,
    },
    /// Files in the target's working directory.
    Files {
        /// Their names.
        names: Vec<String>,
    },
    /// A message from the target (stderr or stdout) that says each of these, in any words.
    Message {
        /// What it must say, in words (`the path udsocket`, `what was found (a directory)`).
        saying: Vec<String>,
    },
    /// What the target wrote to stderr and stdout (an excerpt, escaped).
    Said {
        /// The excerpt (empty: nothing).
        text: String,
    },
    /// CPU time the process used over a window.
    CpuTime {
        /// Milliseconds of CPU used (for an expectation: at most this).
        used_ms: u64,
        /// Over this many milliseconds of wall-clock time.
        window_ms: u64,
    },
    /// What the case put at the path, left as it was.
    Untouched {
        /// What it was, in words.
        what: String,
    },
    /// The other listener at the path (the gate's) still accepts connections, or not.
    OtherServerAccepts {
        /// It accepts.
        accepts: bool,
    },
}

impl Observation {
    /// What a read saw: bytes and then the close, or bytes and then silence for `waited`.
    pub fn heard(bytes: Vec<u8>, closed: bool, waited: Duration) -> Observation {
        if closed {
            Observation::Closed { before: Bytes::from(bytes) }
        } else {
            Observation::Open { received: Bytes::from(bytes), waited_ms: waited.as_millis() as u64 }
        }
    }

    /// Silence with the connection open for `window`.
    pub fn silence(window: Duration) -> Observation {
        Observation::Open { received: Bytes::default(), waited_ms: window.as_millis() as u64 }
    }

    /// The connection closed with nothing (more) before it.
    pub fn closed() -> Observation {
        Observation::Closed { before: Bytes::default() }
    }
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Bytes { bytes } => write!(f, "{bytes}"),
            Observation::Pong => f.write_str("a reply with \"pong\" in it"),
            Observation::PingOrEnd => f.write_str("\"ping\" or \"end\""),
            Observation::Closed { before } if before.is_empty() => f.write_str("the connection closed"),
            Observation::Closed { before } => write!(f, "{before} and then the connection closed"),
            Observation::Open { received, waited_ms } if received.is_empty() => {
                write!(f, "nothing for {}, connection open", human_duration(Duration::from_millis(*waited_ms)))
            }
            Observation::Open { received, waited_ms } => write!(
                f,
                "{received} and then nothing more for {}, connection open",
                human_duration(Duration::from_millis(*waited_ms))
            ),
            Observation::ReplyWithin { ms } => {
                write!(f, "a reply with \"pong\" in it within {}", human_duration(Duration::from_millis(*ms)))
            }
            Observation::Connected => f.write_str("a connection"),
            Observation::NotConnected { error } => write!(f, "no connection ({error})"),
            Observation::AllRead => f.write_str("the server reading what was sent"),
            Observation::NotDelivered { bytes, error } => {
                write!(f, "the write of {bytes} failing ({error}): the peer had closed the connection")
            }
            Observation::NotRead { waited_ms } => write!(
                f,
                "the server not reading what was sent for {}",
                human_duration(Duration::from_millis(*waited_ms))
            ),
            Observation::ClosedAllRead => f.write_str("the connection closed after the server read every byte sent"),
            Observation::ResetUnread => {
                f.write_str("the connection reset: the server closed it with bytes sent on it still unread")
            }
            Observation::Running => f.write_str("the process still running"),
            Observation::StillRunning { waited_ms, option, stderr } => {
                write!(
                    f,
                    "the process still running after {} ({option})",
                    human_duration(Duration::from_millis(*waited_ms))
                )?;
                if stderr.is_empty() {
                    f.write_str("; stderr: (empty)")
                } else {
                    write!(f, "; stderr: {stderr}")
                }
            }
            Observation::Exiting => f.write_str("the process exiting by itself"),
            Observation::Exits { success: true } => f.write_str("an exit with status 0"),
            Observation::Exits { success: false } => f.write_str("an exit with a non-zero status"),
            Observation::Exited { status, stderr } if stderr.is_empty() => {
                write!(f, "the process {status}; stderr: (empty)")
            }
            Observation::Exited { status, stderr } => write!(f, "the process {status}; stderr: {stderr}"),
            Observation::Listening { within_ms } => write!(
                f,
                "a connection accepted within {} of starting (--startup-timeout)",
                human_duration(Duration::from_millis(*within_ms))
            ),
            Observation::Path { path, state } => write!(f, "{state} at {path}"),
            Observation::Mode { first, changed_to } if changed_to.is_empty() => {
                write!(f, "mode {first:04o} from the moment it appeared, never changed")
            }
            Observation::Mode { first, changed_to } => {
                let later: Vec<String> = changed_to.iter().map(|m| format!("{m:04o}")).collect();
                write!(
                    f,
                    "mode {first:04o} when it appeared, then changed at the path (chmod) to {}",
                    later.join(", then ")
                )
            }
            Observation::Files { names } if names.is_empty() => f.write_str("no file"),
            Observation::Files { names } => write!(f, "the files {names:?}"),
            Observation::Message { saying } => write!(f, "a message naming {}", saying.join(" and ")),
            Observation::Said { text } if text.trim().is_empty() => f.write_str("nothing said on stderr or stdout"),
            Observation::Said { text } => write!(f, "the message: {text}"),
            Observation::CpuTime { used_ms, window_ms } => write!(
                f,
                "{} of CPU in {}",
                human_duration(Duration::from_millis(*used_ms)),
                human_duration(Duration::from_millis(*window_ms))
            ),
            Observation::Untouched { what } => write!(f, "{what} left as it was"),
            Observation::OtherServerAccepts { accepts: true } => f.write_str("the other server still accepting"),
            Observation::OtherServerAccepts { accepts: false } => f.write_str("the other server no longer accepting"),
        }
    }
}

/// A duration as a person reads it: `150 ms`, `2.0 s`.
pub fn human_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// `1 round`, `2 rounds`.
pub(crate) fn plural(count: impl Into<u64>, noun: &str) -> String {
    let count = count.into();
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_step_expected_observed_and_blames_its_step() {
        let step = Exercise::new("the liveness round", &["SRV-PONG-1"]);
        let problem = step.fail(Observation::Pong, Observation::silence(Duration::from_secs(2)));
        assert_eq!(
            problem.to_string(),
            "SRV-PONG-1: the liveness round: expected a reply with \"pong\" in it; observed nothing for 2.0 s, \
             connection open"
        );
        assert_eq!(problem.failure().unwrap().blames, ["SRV-PONG-1"]);
        assert_eq!(step.at("round 2").step, "round 2");
    }
}
