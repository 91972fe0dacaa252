//! udsping: the reference specification, implementation and conformance gate for the
//! ping/pong protocol over Unix domain sockets.
//!
//! The protocol is specified in `SPEC.md`. The crate is layered so that each layer can be read
//! and tested alone:
//!
//! - [`proto`]: the protocol as pure state machines (decoder, server session, client session);
//!   no IO, no allocation on the per-byte path.
//! - [`socket_path`]: the socket file's lifecycle: what may be at the path, stale sockets,
//!   permissions, removal on shutdown.
//! - [`server`] and [`client`]: small blocking drivers on `std::os::unix::net` around the core.
//!   They log through the [`log`](https://docs.rs/log) facade; [`logger`] is where the command line
//!   sends those lines.
//!
//! ```
//! use udsping::{client, server};
//!
//! let dir = tempfile::tempdir()?;
//! let socket = dir.path().join("udsocket");
//! let server = server::Server::bind(server::ServerConfig::new(&socket))?;
//! let stop = server.shutdown_handle();
//! let running = std::thread::spawn(move || server.run());
//!
//! let summary = client::run(&client::ClientConfig { rounds: 3, ..client::ClientConfig::new(&socket) })?;
//! assert_eq!(summary.rounds, 3);
//!
//! stop.shutdown();
//! let stats = running.join().unwrap()?;
//! assert_eq!(stats.accepted, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Unsafe code only where the platform leaves no safe way, each block with its SAFETY reason.
#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod conform;
pub mod logger;
pub mod proto;
pub mod server;
pub mod socket_path;
pub mod spec;
