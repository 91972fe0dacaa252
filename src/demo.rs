//! `udsping demo`: the reference server and client talking in a temporary directory, as the
//! original Python demo did, with a verdict (README.md's first command).
//!
//! It exercises SPEC.md sections 5, 6 and 7 end to end through the blocking drivers: the
//! server binds a fresh socket file, the client performs its rounds and sends `end`, and the
//! server stops and removes its file.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{self, ClientConfig, ClientError};
use crate::server::{Server, ServerConfig};
use crate::socket_path::{BindError, Removal};

/// How to run the demo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoConfig {
    /// Lock-step rounds before `end` (0 is allowed: the client sends only `end`).
    pub rounds: u64,
    /// Print the seed's per-message lines from both sides.
    pub log_messages: bool,
}

/// What the demo observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoReport {
    /// The socket file the server listened on (gone by the time the report exists).
    pub socket: PathBuf,
    /// Rounds the client completed.
    pub rounds: u64,
    /// Connections the server accepted.
    pub accepted: u64,
    /// Connections the server saw end with `end`.
    pub ended_by_end: u64,
    /// Whether the server removed its socket file on shutdown (SPEC: LIFE-SHUT-1).
    pub socket_removed: bool,
}

impl DemoReport {
    /// The verdict: one connection, ended by `end`, and the file removed.
    pub fn passed(&self) -> bool {
        self.accepted == 1 && self.ended_by_end == 1 && self.socket_removed
    }
}

/// Why the demo could not run to a verdict.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// No temporary directory for the socket.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] io::Error),
    /// The server could not bind.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The server failed while serving.
    #[error("{}: {source}", path.display())]
    Serve {
        /// The server's socket.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// The server thread panicked.
    #[error("the server thread failed")]
    ServerThread,
    /// The client failed.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// How long the server gets to account for the client's connection before it is stopped.
const SETTLE: Duration = Duration::from_secs(5);

/// Runs a server in a fresh temporary directory and a client against it; `listening` is told
/// the socket's path once the server is bound, before the client starts.
pub fn run(config: DemoConfig, listening: impl FnOnce(&Path)) -> Result<DemoReport, DemoError> {
    let dir = tempfile::tempdir().map_err(DemoError::TempDir)?;
    let socket = dir.path().join("udsocket");
    let server = Server::bind(ServerConfig { log_messages: config.log_messages, ..ServerConfig::new(&socket) })?;
    listening(&socket);
    let (stop, live) = (server.shutdown_handle(), server.stats());
    let running = std::thread::spawn(move || server.run());
    let client_result = client::run(&ClientConfig {
        rounds: config.rounds,
        log_messages: config.log_messages,
        ..ClientConfig::new(&socket)
    });
    // The client is done when it has sent "end", possibly before the server has even accepted
    // (with 0 rounds nothing waits for a reply). Give the server a bounded moment to accept
    // and account for the connection, so the verdict does not depend on scheduling.
    if client_result.is_ok() {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            let stats = live.snapshot();
            if stats.accepted >= 1 && stats.open() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    stop.shutdown();
    let stats = running
        .join()
        .map_err(|_| DemoError::ServerThread)?
        .map_err(|source| DemoError::Serve { path: socket.clone(), source })?;
    let summary = client_result?;
    Ok(DemoReport {
        socket,
        rounds: summary.rounds,
        accepted: stats.accepted,
        ended_by_end: stats.ended_by_end,
        socket_removed: stats.socket_file == Some(Removal::Removed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPEC: CLT-END-1, LIFE-SHUT-1 — zero rounds is a client that sends only `end`; the server
    // must still accept it and count it before it is stopped.
    #[test]
    fn zero_rounds_still_passes() {
        for _ in 0..20 {
            let report = run(DemoConfig { rounds: 0, log_messages: false }, |_| {}).unwrap();
            assert!(report.passed(), "{report:?}");
            assert_eq!(report.rounds, 0);
        }
    }

    #[test]
    fn rounds_are_reported_and_the_file_is_gone() {
        let report = run(DemoConfig { rounds: 7, log_messages: false }, |path| assert!(path.exists())).unwrap();
        assert!(report.passed(), "{report:?}");
        assert_eq!(report.rounds, 7);
        assert!(!report.socket.exists());
    }
}
