//! The protocol as pure state machines: bytes in, "what to do next" out.
//!
//! Nothing here touches a socket, a thread or a clock, and nothing allocates on the per-byte
//! path, so the same code is driven by udsping's blocking server and client, by your own IO
//! loop, by the conformance gate, by property tests and by the fuzzers.
//!
//! - [`decoder`]: the client-to-server grammar (SPEC.md section 4).
//! - [`server`]: what a server owes for what it received (SPEC.md section 5).
//! - [`client`]: a lock-step client's rounds and reply checking (SPEC.md section 6).
//! - [`grammar`]: SPEC.md section 4.4's table and an independent oracle of the grammar, shared
//!   by tests, the gate and the fuzzers.
//!
//! What follows is the crate's README: the one vocabulary of both sessions, and an example.
//!
#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::format;
use alloc::string::String;

pub mod client;
pub mod decoder;
pub mod grammar;
pub mod server;

pub use client::{ClientSession, ProtocolError, ReplyBytes};
pub use decoder::{Decoded, Decoder, Event, Expected, InvalidByte, Status};
pub use server::{pong_chunks, Ending, Reply, ServerSession};

// SPEC: WIRE-GRAMMAR-1 — the only three tokens; the server sends nothing but PONG and the
// client nothing but PING and END.

/// The client's request token.
pub const PING: &[u8; 4] = b"ping";
/// The client's final token.
pub const END: &[u8; 3] = b"end";
/// The server's reply token.
pub const PONG: &[u8; 4] = b"pong";

/// Formats bytes as a double-quoted string with Rust-style escapes (`"pi\xff"`), the notation
/// SPEC.md uses, so that every message shows non-printable bytes unambiguously.
pub fn quoted(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// Like [`quoted`], but at most `limit` bytes are shown, followed by the total length, so a
/// message about a long stream stays one readable line.
pub fn quoted_prefix(bytes: &[u8], limit: usize) -> String {
    if bytes.len() <= limit {
        quoted(bytes)
    } else {
        format!("{}... ({} bytes)", quoted(&bytes[..limit]), bytes.len())
    }
}
