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
//! A vector (`"format": "udsping-vector"`, `"version": 1`) has `id`, `title`, `requirements`,
//! `connections` and `script` (the [`super::script`] JSON form, replayable with `udsping
//! conform server --replay FILE -- CMD`). Each connection, in the order the script opens them:
//!
//! | field | meaning |
//! |---|---|
//! | `conn` | the script's number for it |
//! | `writes` | the client's writes, in order (byte strings in SPEC.md's notation) |
//! | `client_eof` | the client half-closed after its writes |
//! | `client_reset` | the client closed the connection (unread replies and all) |
//! | `replies` | every byte a conforming server sends on it, in order |
//! | `server_closes` | a conforming server closes it (after `replies`) |
//!
//! Byte strings are escaped as in the script format: ASCII as is, `\n`, `\r`, `\t`, `\\`,
//! `\'`, `\"`, and `\xNN` for any other byte.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::case::{Role, Run};
use super::cases::{self, rows};
use super::explore::{self, conversation::Conversations};
use super::script::{Action, Bytes, Script, Step};
use crate::proto::grammar::INVALID_TABLE;

/// The `format` field of a vector.
pub(crate) const FORMAT: &str = "udsping-vector";

/// One connection of a vector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ConnVector {
    pub(crate) conn: u32,
    pub(crate) writes: Vec<Bytes>,
    pub(crate) client_eof: bool,
    pub(crate) client_reset: bool,
    pub(crate) replies: Bytes,
    pub(crate) server_closes: bool,
}

/// A test vector: a script and, per connection, what goes each way.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Vector {
    pub(crate) format: &'static str,
    pub(crate) version: u32,
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) requirements: Vec<String>,
    pub(crate) connections: Vec<ConnVector>,
    pub(crate) script: Script,
}

impl Vector {
    /// The vector of `script`: its connections' writes and expected replies, read off its steps.
    pub(crate) fn new(id: String, title: String, requirements: Vec<String>, script: Script) -> Self {
        let mut connections: Vec<ConnVector> = Vec::new();
        for step in &script.steps {
            match step {
                Step::Do(Action::Connect { conn, .. }) => {
                    connections.push(ConnVector { conn: *conn, ..ConnVector::default() })
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
                            c.replies = Bytes::from([c.replies.as_slice(), crate::proto::PONG].concat());
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
                        c.replies = Bytes::from([c.replies.as_slice(), bytes.as_slice()].concat());
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
        Vector { format: FORMAT, version: super::script::VERSION, id, title, requirements, connections, script }
    }
}

/// The latest connection with this number (a number may be reused after a close).
fn latest(connections: &mut [ConnVector], conn: u32) -> Option<&mut ConnVector> {
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
        let script = explore::generate(&Conversations, seed, index).script();
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
        assert_eq!(conn.writes, [Bytes::from_static(b"pingpingpingPING")]);
        assert_eq!((conn.replies.as_slice(), conn.server_closes), (&b"pongpongpong"[..], true));
    }
}
