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

#[cfg(test)]
mod tests {
    use super::*;

    // The notation of SPEC.md section 2: double quotes, Rust-style escapes.
    #[test]
    fn quoted_writes_bytes_as_spec_md_does() {
        assert_eq!(quoted(b"pi\xff"), r#""pi\xff""#);
        assert_eq!(quoted(b"ping\n"), r#""ping\n""#);
        assert_eq!(quoted(b"\x00\"\\"), r#""\x00\"\\""#);
        assert_eq!(quoted(b""), r#""""#);
    }

    #[test]
    fn quoted_prefix_cuts_only_what_exceeds_the_limit() {
        assert_eq!(quoted_prefix(b"ping", 4), r#""ping""#);
        assert_eq!(quoted_prefix(b"ping", 5), r#""ping""#);
        assert_eq!(quoted_prefix(b"pingx", 4), r#""ping"... (5 bytes)"#);
        assert_eq!(quoted_prefix(b"\xff\xff", 1), r#""\xff"... (2 bytes)"#);
        assert_eq!(quoted_prefix(b"p", 0), r#"""... (1 bytes)"#);
        assert_eq!(quoted_prefix(b"", 0), r#""""#);
    }
}
