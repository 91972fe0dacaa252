//! The seed's Python programs, from the blog post the protocol started from (SPEC.md section 9
//! lists where they depart from the specification). The bench measures the server as a
//! reference point; the interop and conformance tests run both.

/// The seed's server (`listen(1)`, one connection at a time, `recv(16)` compared with "ping").
pub const SERVER_PY: &str = include_str!("seed/server.py");

/// The seed's client (100 rounds, replies neither reassembled nor checked).
pub const CLIENT_PY: &str = include_str!("seed/client.py");
