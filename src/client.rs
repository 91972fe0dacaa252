//! The blocking reference client (SPEC.md section 6): the driver around [`ClientSession`].
//!
//! Every wait is bounded by [`ClientConfig::timeout`]: the connect (a full listen backlog is a
//! timeout, not a hang) and each reply (SPEC: CLT-TIMEOUT-1). The seed's per-message lines go
//! through the [`log`] facade (target [`crate::logger::MESSAGES`]); the client itself never
//! writes to stdout or stderr.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::logger::MESSAGES;

use crate::proto::{ClientSession, ProtocolError};
use crate::socket_path::{check_path, PathError};

/// How to run a client.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The socket file to connect to, or `@name` for an abstract address.
    pub socket: PathBuf,
    /// Lock-step rounds before `end` (SPEC: CLT-ROUNDS-1: 100 by default).
    pub rounds: u64,
    /// Log the seed's lines (`Client: Sent ping`, `Client: Received pong`), target
    /// [`MESSAGES`].
    pub log_messages: bool,
    /// How long the connect, and then each reply, may take (SPEC: CLT-TIMEOUT-1).
    pub timeout: Duration,
}

/// The client's default [`ClientConfig::timeout`] (`udsping ping --timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl ClientConfig {
    /// The defaults of `udsping ping`, for `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        ClientConfig { socket: socket.into(), rounds: 100, log_messages: false, timeout: DEFAULT_TIMEOUT }
    }
}

/// What a successful run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Rounds completed before `end`.
    pub rounds: u64,
}

/// Why a client run failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The path cannot name a socket.
    #[error(transparent)]
    Path(#[from] PathError),
    /// SPEC: CLT-CONNECT-1
    #[error("cannot connect to {path}: {source}")]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// SPEC: CLT-REPLY-2, CLT-EOF-1
    #[error("{path}: protocol error: {error}")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// How the server broke the protocol.
        error: ProtocolError,
    },
    /// Reading or writing failed.
    #[error("{path}: {source} after {rounds} rounds")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// Rounds completed before the failure.
        rounds: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// SPEC: CLT-TIMEOUT-1
    #[error("{path}: gave up after {timeout:?}: {waited_for}")]
    Timeout {
        /// The socket path.
        path: PathBuf,
        /// How long it waited.
        timeout: Duration,
        /// What it waited for.
        waited_for: String,
    },
}

/// Connects and runs the configured rounds.
pub fn run(config: &ClientConfig) -> Result<Summary, ClientError> {
    check_path(&config.socket)?;
    let timeout =
        |waited_for: String| ClientError::Timeout { path: config.socket.clone(), timeout: config.timeout, waited_for };
    // SPEC: CLT-TIMEOUT-1 — a backlog that stays full is a timeout, not a hang.
    // A zero timeout waits for ever; so, in effect, does one too long for the clock.
    let far = Instant::now() + Duration::from_secs(3600 * 24 * 365);
    let deadline = Some(config.timeout).filter(|t| !t.is_zero()).and_then(|t| Instant::now().checked_add(t));
    let stream = match crate::net::connect_bounded(&config.socket, deadline.unwrap_or(far)) {
        Ok(stream) => stream,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            return Err(timeout("the connection was not accepted (the server's listen backlog stayed full)".into()))
        }
        Err(source) => return Err(ClientError::Connect { path: config.socket.clone(), source }),
    };
    let bound = Some(config.timeout).filter(|t| !t.is_zero());
    let set = stream.set_read_timeout(bound).and(stream.set_write_timeout(bound));
    set.map_err(|source| ClientError::Connect { path: config.socket.clone(), source })?;
    if config.log_messages {
        log::info!(target: MESSAGES, "Connecting to {}", config.socket.display());
    }
    let mut session = ClientSession::new(config.rounds);
    let result = exchange(&mut session, stream, config.log_messages);
    result.map_err(|failure| match failure {
        Failure::Protocol(error) => ClientError::Protocol { path: config.socket.clone(), error },
        Failure::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            let round = session.completed_rounds() + 1;
            if session.wants_read() {
                timeout(format!("no reply to round {round}'s ping"))
            } else {
                timeout(format!("the server did not take round {round}'s bytes"))
            }
        }
        Failure::Io(source) => {
            ClientError::Io { path: config.socket.clone(), rounds: session.completed_rounds(), source }
        }
    })?;
    Ok(Summary { rounds: session.completed_rounds() })
}

enum Failure {
    Protocol(ProtocolError),
    Io(io::Error),
}

/// Runs `session` over any byte stream until it is finished or fails; the stream is closed
/// (dropped) either way, and after a failure nothing more is sent (SPEC: CLT-REPLY-2).
fn exchange<S: Read + Write>(session: &mut ClientSession, mut stream: S, log: bool) -> Result<(), Failure> {
    // Room for more than one reply, so that a server sending extra bytes is caught.
    let mut buffer = [0u8; 64];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            match stream.write_all(bytes) {
                Ok(()) => {}
                // SPEC: CLT-EOF-1 — the server closed before this round's reply.
                Err(e) if is_closed(&e) && session.wants_read() => {
                    return session.on_eof().map_err(Failure::Protocol);
                }
                Err(e) => return Err(Failure::Io(e)),
            }
            if log && session.wants_read() {
                log::info!(target: MESSAGES, "Client: Sent ping");
            }
        }
        // SPEC: CLT-END-1 — `end` is sent; dropping the stream closes the connection.
        if !session.wants_read() {
            return Ok(());
        }
        let before = session.completed_rounds();
        let received = match stream.read(&mut buffer) {
            Ok(0) => session.on_eof(),
            Ok(n) => session.on_bytes(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // SPEC: WIRE-CLOSE-1 — a reset after the last byte is a close.
            Err(e) if is_closed(&e) => session.on_eof(),
            Err(e) => return Err(Failure::Io(e)),
        };
        received.map_err(Failure::Protocol)?;
        if log && session.completed_rounds() > before {
            log::info!(target: MESSAGES, "Client: Received pong");
        }
    }
}

fn is_closed(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
}
