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
//! - [`spec`]: SPEC.md's requirements, parsed from the document itself.
//! - [`net`]: the bounded connect shared by the gate, the bench and the drivers.
//!
//! That much is the library, with three small dependencies (`default-features = false`). The
//! default feature `tool` adds what the `udsping` command needs, with its heavier dependencies:
//! the conformance gate (`conform`), the benchmark (`bench`), the demo (`demo`), terminal
//! output (`term`) and the command line (`cli`).
//! The gate and the bench start other implementations through `process` and reach them
//! through [`net`].
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

#![warn(missing_docs, unreachable_pub)]
// Unsafe code only where the platform leaves no safe way, each block with its SAFETY reason.
#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "tool")]
pub mod bench;
#[cfg(feature = "tool")]
pub mod cli;
pub mod client;
#[cfg(feature = "tool")]
pub mod conform;
#[cfg(feature = "tool")]
pub mod demo;
pub mod logger;
pub mod net;
#[cfg(feature = "tool")]
pub mod process;
#[cfg(feature = "tool")]
pub mod seed;
pub mod server;
pub mod socket_path;
pub mod spec;
#[cfg(feature = "tool")]
pub mod term;

/// The sans-IO protocol core, the `udsping-proto` crate (decoder, sessions, tokens).
pub use udsping_proto as proto;
