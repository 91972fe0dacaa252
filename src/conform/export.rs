//! `udsping conform export DIR`: the gate's pure-data cases as JSON test vectors, so that an
//! implementation in another language can unit-test its decoder and server logic without a
//! socket, and replay the same scripts over one with `--replay`.
//!
//! The directory gets:
//!
//! - `invalid-bytes.json`: SPEC.md section 4.4's table, `[{"stream", "first_invalid", "why"}]`.
//! - `cases/<id>.json`: one vector per stream case of [`super::cases::rows`] (`/` in the ID becomes
//!   `_`).
//! - `generated/seed-<S>-case-<i>.json`: one vector per generated conversation of seed `S`.
//!
//! A vector (`"format": "udsping-vector"`, `"version": 2`) has `id`, `title`, `requirements`,
//! `connections` and `script` (the [`super::script`] JSON form, replayable with `udsping
//! conform server --replay FILE -- CMD`). Each connection, in the order the script opens them:
//!
//! | field | meaning |
//! |---|---|
//! | `conn` | the script's number for it |
//! | `writes` | the client's writes, in order, each `{"text", "hex"}` |
//! | `client_eof` | the client half-closed after its writes |
//! | `client_reset` | the client closed the connection (unread replies and all) |
//! | `replies` | every byte a conforming server sends on it, in order, `{"text", "hex"}`; `null` for a connection the client reset, whose replies nobody reads |
//! | `server_closes` | a conforming server closes it (after `replies`); `null` for a connection the client reset |
//!
//! `text` is SPEC.md's notation (ASCII as is, `\n`, `\r`, `\t`, `\\`, `\'`, `\"`, and
//! `\xNN` for any other byte), `hex` the same bytes in lower-case hex. The schema is
//! `schemas/vector.schema.json`; `examples/consume_vectors.py` checks every vector of a
//! directory against a server model of its own in about 30 lines of Python.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::bytes::Bytes;
use super::case::{Role, Run};
use super::cases::{self, rows};
use super::explore;
use super::script::{Action, Script, Step};
use crate::proto::grammar::INVALID_TABLE;

/// The `format` field of a vector.
pub(crate) const FORMAT: &str = super::script::VECTOR_FORMAT;

/// The vector format's version.
const VERSION: u32 = 2;

/// Bytes twice: in SPEC.md's notation and in hex.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub(crate) struct Both {
    /// In SPEC.md's notation.
    text: Bytes,
    /// In lower-case hex, two digits a byte.
    hex: String,
}

impl From<Bytes> for Both {
    fn from(bytes: Bytes) -> Self {
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Both { text: bytes, hex }
    }
}

/// One connection of a vector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub(crate) struct ConnVector {
    /// The script's number for it.
    conn: u32,
    /// The client's writes, in order.
    writes: Vec<Both>,
    /// The client half-closed after its writes.
    client_eof: bool,
    /// The client closed the connection, replies unread and all.
    client_reset: bool,
    /// Every byte a conforming server sends on it, in order; `null` where the client reset it.
    replies: Option<Both>,
    /// Whether a conforming server closes it after `replies`; `null` where the client reset it.
    server_closes: Option<bool>,
}

/// A test vector: a script and, per connection, what goes each way.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Vector {
    /// Always `udsping-vector`.
    format: &'static str,
    /// Always 2.
    version: u32,
    /// The case's ID, or `generated/seed-S-case-I`.
    id: String,
    /// What it checks.
    title: String,
    /// The SPEC.md requirements its steps name.
    requirements: Vec<String>,
    /// Per connection, what goes each way.
    connections: Vec<ConnVector>,
    /// The replayable script (`udsping conform server --replay`).
    script: Script,
}

/// A connection while its vector is read off a script.
#[derive(Default)]
struct Reading {
    conn: u32,
    writes: Vec<Bytes>,
    client_eof: bool,
    client_reset: bool,
    replies: Vec<u8>,
    server_closes: bool,
}

impl Vector {
    /// The vector of `script`: its connections' writes and expected replies, read off its steps.
    pub(crate) fn new(id: String, title: String, requirements: Vec<String>, script: Script) -> Self {
        let mut connections: Vec<Reading> = Vec::new();
        for step in &script.steps {
            match step {
                Step::Do(Action::Connect { conn, .. }) => {
                    connections.push(Reading { conn: *conn, ..Reading::default() })
                }
                Step::Do(Action::Send { conn, bytes, .. }) => {
                    if let Some(c) = latest(&mut connections, *conn) {
                        c.writes.push(bytes.clone());
                    }
                }
                Step::LockStep { conn, rounds, .. } => {
                    if let Some(c) = latest(&mut connections, *conn) {
                        for _ in 0..*rounds {
                            c.writes.push(Bytes::from_static(crate::proto::PING));
                            c.replies.extend_from_slice(crate::proto::PONG);
                        }
                    }
                }
                Step::Do(Action::SendAtOnce { sends }) => {
                    for send in sends {
                        if let Some(c) = latest(&mut connections, send.conn) {
                            c.writes.push(send.bytes.clone());
                        }
                    }
                }
                Step::Do(Action::HalfClose { conn }) => {
                    if let Some(c) = latest(&mut connections, *conn) {
                        c.client_eof = true;
                    }
                }
                Step::Do(Action::Close { conn }) => {
                    if let Some(c) = latest(&mut connections, *conn) {
                        c.client_reset = true;
                    }
                }
                Step::ExpectBytes { conn, bytes, .. } => {
                    if let Some(c) = latest(&mut connections, *conn) {
                        c.replies.extend_from_slice(bytes);
                    }
                }
                Step::ExpectClosed { conn, .. } => {
                    if let Some(c) = latest(&mut connections, *conn) {
                        c.server_closes = true;
                    }
                }
                Step::Do(Action::Pause { .. })
                | Step::ExpectOpen { .. }
                | Step::ExpectRunning { .. }
                | Step::Signal { .. }
                | Step::ExpectExit { .. } => {}
            }
        }
        let connections = connections
            .into_iter()
            .map(|c| ConnVector {
                conn: c.conn,
                writes: c.writes.into_iter().map(Both::from).collect(),
                client_eof: c.client_eof,
                client_reset: c.client_reset,
                // Nobody reads what a server sends on a connection the client reset.
                replies: (!c.client_reset).then(|| Both::from(Bytes::from(c.replies))),
                server_closes: (!c.client_reset).then_some(c.server_closes),
            })
            .collect();
        Vector { format: FORMAT, version: VERSION, id, title, requirements, connections, script }
    }
}

/// The latest connection with this number (a number may be reused after a close).
fn latest(connections: &mut [Reading], conn: u32) -> Option<&mut Reading> {
    connections.iter_mut().rev().find(|c| c.conn == conn)
}

#[derive(Serialize)]
struct InvalidVector {
    stream: Bytes,
    first_invalid: usize,
    why: &'static str,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file or directory of the export could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The error writing it.
        source: std::io::Error,
    },
}

fn write_json(path: PathBuf, value: &impl Serialize) -> Result<(), ExportError> {
    let text = serde_json::to_string_pretty(value).expect("vectors serialize") + "\n";
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ExportError::Write { path: parent.to_owned(), source })?;
    }
    std::fs::write(&path, text).map_err(|source| ExportError::Write { path, source })
}

/// The JSON Schema of a vector, generated from these types (committed as
/// `schemas/vector.schema.json`).
pub fn schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(Vector)).expect("a schema serializes") + "\n"
}

/// The vectors of every stream case, then of `cases` generated conversations of `seed`.
pub(crate) fn vectors(seed: u64, cases: u32) -> Vec<(PathBuf, Vector)> {
    let mut out = Vec::new();
    for case in cases::all(Role::Server) {
        let Run::Conversation(moves) = case.run else { continue };
        let requirements = case.requirements.iter().map(|r| r.to_string()).collect();
        let vector = Vector::new(case.id.to_string(), case.title.to_string(), requirements, rows::script(moves));
        out.push((Path::new("cases").join(format!("{}.json", case.id.replace('/', "_"))), vector));
    }
    for index in 0..u64::from(cases) {
        let script = explore::generated_script(seed, index);
        let requirements = script.requirements().into_iter().map(String::from).collect();
        let id = format!("generated/seed-{seed}-case-{index}");
        let title = format!("generated conversation {index} of seed {seed}");
        out.push((PathBuf::from(format!("{id}.json")), Vector::new(id, title, requirements, script)));
    }
    out
}

/// Writes the table, the case vectors and `cases` generated vectors into `dir`; returns how
/// many files it wrote.
pub fn write(dir: &Path, seed: u64, cases: u32) -> Result<usize, ExportError> {
    let table: Vec<InvalidVector> = INVALID_TABLE
        .iter()
        .map(|row| InvalidVector { stream: row.stream.into(), first_invalid: row.offset, why: row.why })
        .collect();
    write_json(dir.join("invalid-bytes.json"), &table)?;
    let vectors = vectors(seed, cases);
    for (path, vector) in &vectors {
        write_json(dir.join(path), vector)?;
    }
    Ok(vectors.len() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPEC: SRV-INVALID-1 — a vector says what goes each way: three pongs, then the close.
    #[test]
    fn a_vector_reads_the_replies_off_the_script() {
        let vectors = vectors(0, 0);
        let (_, owed) = vectors.iter().find(|(_, v)| v.id == "server/4.4/owed-pongs-first").unwrap();
        assert_eq!(owed.connections.len(), 1);
        let conn = &owed.connections[0];
        assert_eq!(conn.writes, [Both::from(Bytes::from_static(b"pingpingpingPING"))]);
        assert_eq!(conn.writes[0].hex, "70696e6770696e6770696e6750494e47");
        assert_eq!(conn.replies.as_ref().map(|r| r.text.as_slice()), Some(&b"pongpongpong"[..]));
        assert_eq!(conn.server_closes, Some(true));
    }
}
