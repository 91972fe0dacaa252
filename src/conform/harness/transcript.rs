//! A case's transcript: every byte the gate sent and received and every event (connects,
//! closes, signals, exits), timestamped from the case's start, within bounds: the first and
//! last [`TRANSCRIPT_KEPT`] bytes of each direction are kept, the middle of a flood is counted.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conform::bytes::Bytes;
use crate::proto::quoted;

/// Bytes of each direction a transcript keeps at its start and at its end.
pub(crate) const TRANSCRIPT_KEPT: usize = 4096;
/// Events a transcript keeps (connects, closes, notes).
const EVENTS_KEPT: usize = 400;

/// Who wrote a transcript entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The harness sent these bytes on a connection.
    Sent,
    /// The harness received these bytes.
    Received,
    /// Something happened: a connect, a close, a signal, a process exit.
    Event,
}

/// One line of a case's transcript.
#[derive(Clone, Debug)]
pub struct Entry {
    /// When, from the case's start.
    pub at: Duration,
    /// Connection number within the case (0 for events not tied to one).
    pub conn: usize,
    /// Who wrote it.
    pub direction: Direction,
    /// The bytes, or the event's text.
    pub bytes: Vec<u8>,
}

/// One transcript line as the JSON report writes it.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Line {
    /// Milliseconds since the case started (to 0.1 ms).
    t_ms: f64,
    /// Connection number within the case (0 for events not tied to one).
    conn: usize,
    /// Who wrote the entry.
    direction: Direction,
    /// The bytes with everything but printable ASCII escaped, or the event's text.
    text: String,
    /// The bytes in hex, where some are not printable.
    #[serde(skip_serializing_if = "Option::is_none")]
    hex: Option<String>,
}

/// A transcript as the JSON report writes it (`null` for none): a list of [`Line`]s.
pub(crate) fn serialize_lines<S: serde::Serializer>(
    transcript: &Option<Transcript>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize as _;
    let lines = transcript.as_ref().map(|t| {
        t.entries
            .iter()
            .map(|e| Line {
                t_ms: (e.at.as_secs_f64() * 1e4).round() / 10.0,
                conn: e.conn,
                direction: e.direction,
                text: e.bytes.escape_ascii().to_string(),
                hex: (e.direction != Direction::Event && !e.bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' '))
                    .then(|| e.bytes.iter().map(|b| format!("{b:02x}")).collect()),
            })
            .collect::<Vec<Line>>()
    });
    lines.serialize(serializer)
}

/// Everything a case did, timestamped from the case's start.
#[derive(Clone, Debug)]
pub struct Transcript {
    start: Instant,
    /// The entries, in time order once taken with `Recorder::snapshot`.
    pub entries: Vec<Entry>,
    /// Bytes recorded at the start, per direction (sent, received).
    head_bytes: [usize; 2],
    /// Entries after the head was full, trimmed to the last [`TRANSCRIPT_KEPT`] bytes.
    tail: [Vec<Entry>; 2],
    /// Bytes counted but not kept, per direction (sent, received).
    pub omitted: [u64; 2],
    events: usize,
    omitted_events: u64,
}

impl Transcript {
    fn new(start: Instant) -> Self {
        Transcript {
            start,
            entries: Vec::new(),
            head_bytes: [0; 2],
            tail: [Vec::new(), Vec::new()],
            omitted: [0; 2],
            events: 0,
            omitted_events: 0,
        }
    }

    /// Lines of text, `  +12.3 ms #1 sent "ping"`; a long run of one token reads as
    /// `sent "ping" x 1024` (the JSON report has every byte kept).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for entry in &self.entries {
            let what = match entry.direction {
                Direction::Sent => format!("sent {}", shown(&entry.bytes)),
                Direction::Received => format!("received {}", shown(&entry.bytes)),
                Direction::Event => String::from_utf8_lossy(&entry.bytes).into_owned(),
            };
            let conn = if entry.conn == 0 { "  ".to_string() } else { format!("#{}", entry.conn) };
            let _ = writeln!(out, "{:>9.1} ms {conn} {what}", entry.at.as_secs_f64() * 1000.0);
        }
        out
    }
}

/// Bytes as a transcript line shows them: quoted in full when short, summarised when long.
fn shown(bytes: &[u8]) -> String {
    if bytes.len() <= 64 {
        quoted(bytes)
    } else {
        Bytes::from(bytes.to_vec()).to_string()
    }
}

/// The transcript a case's connections and events write to, shared between threads.
#[derive(Clone, Debug)]
pub(crate) struct Recorder(Arc<Mutex<Transcript>>);

impl Default for Recorder {
    fn default() -> Self {
        Recorder(Arc::new(Mutex::new(Transcript::new(Instant::now()))))
    }
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Transcript> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records bytes sent or received on `conn`, or an event (`conn` 0 for none).
    pub(crate) fn record(&self, conn: usize, direction: Direction, bytes: &[u8]) {
        let mut t = self.lock();
        let at = t.start.elapsed();
        let side = match direction {
            Direction::Sent => 0,
            Direction::Received => 1,
            Direction::Event => {
                if t.events >= EVENTS_KEPT {
                    t.omitted_events += 1;
                    return;
                }
                t.events += 1;
                t.entries.push(Entry { at, conn, direction, bytes: bytes.to_vec() });
                return;
            }
        };
        let room = TRANSCRIPT_KEPT.saturating_sub(t.head_bytes[side]);
        let (head, rest) = bytes.split_at(room.min(bytes.len()));
        if !head.is_empty() {
            t.head_bytes[side] += head.len();
            // Consecutive pieces in the same direction on the same connection read better as one line.
            match t.entries.last_mut() {
                Some(last)
                    if last.conn == conn && last.direction == direction && at - last.at < Duration::from_millis(1) =>
                {
                    last.bytes.extend_from_slice(head)
                }
                _ => t.entries.push(Entry { at, conn, direction, bytes: head.to_vec() }),
            }
        }
        if !rest.is_empty() {
            let dropped = keep_tail(&mut t.tail[side], conn, direction, at, rest);
            t.omitted[side] += dropped;
        }
    }

    /// Records an event.
    pub(crate) fn note(&self, text: &str) {
        self.record(0, Direction::Event, text.as_bytes());
    }

    /// The entries in time order, the kept tails included, with a note where bytes were left out.
    pub(crate) fn snapshot(&self) -> Transcript {
        let t = self.lock();
        let mut out = t.clone();
        for (i, name) in ["sent", "received"].into_iter().enumerate() {
            if t.omitted[i] > 0 {
                let at = t.tail[i].first().map_or(t.start.elapsed(), |e| e.at);
                let text = format!("... {} bytes {name} left out of this transcript ...", t.omitted[i]);
                out.entries.push(Entry { at, conn: 0, direction: Direction::Event, bytes: text.into_bytes() });
            }
            out.entries.extend(t.tail[i].iter().cloned());
        }
        if t.omitted_events > 0 {
            let text = format!("... {} more events left out ...", t.omitted_events);
            out.entries.push(Entry { at: t.start.elapsed(), conn: 0, direction: Direction::Event, bytes: text.into() });
        }
        out.entries.sort_by_key(|e| e.at);
        out.tail = [Vec::new(), Vec::new()];
        out
    }

    /// The transcript so far, leaving it empty: exploration plays many scripts against one
    /// process and reports each one's own lines.
    pub(crate) fn take(&self) -> Transcript {
        let taken = self.snapshot();
        let mut t = self.lock();
        // A fresh transcript on the same clock: the next script's lines start from nothing.
        *t = Transcript::new(t.start);
        taken
    }
}

/// Appends `bytes` to a tail, keeping only its last [`TRANSCRIPT_KEPT`] bytes; returns how
/// many were dropped.
fn keep_tail(tail: &mut Vec<Entry>, conn: usize, direction: Direction, at: Duration, bytes: &[u8]) -> u64 {
    match tail.last_mut() {
        Some(last) if last.conn == conn => last.bytes.extend_from_slice(bytes),
        _ => tail.push(Entry { at, conn, direction, bytes: bytes.to_vec() }),
    }
    let mut kept: usize = tail.iter().map(|e| e.bytes.len()).sum();
    let mut dropped = 0u64;
    while kept > TRANSCRIPT_KEPT {
        let excess = kept - TRANSCRIPT_KEPT;
        let first = &mut tail[0];
        if first.bytes.len() <= excess {
            kept -= first.bytes.len();
            dropped += first.bytes.len() as u64;
            tail.remove(0);
        } else {
            first.bytes.drain(..excess);
            kept -= excess;
            dropped += excess as u64;
        }
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transcript_keeps_the_ends_of_a_flood_and_counts_the_rest() {
        let recorder = Recorder::default();
        for i in 0..1000u32 {
            recorder.record(1, Direction::Received, format!("{i:08}").repeat(16).as_bytes());
            recorder.record(1, Direction::Sent, b"ping");
        }
        let snapshot = recorder.snapshot();
        let kept = |direction| -> usize {
            snapshot.entries.iter().filter(|e| e.direction == direction).map(|e| e.bytes.len()).sum()
        };
        assert_eq!(kept(Direction::Received), 2 * TRANSCRIPT_KEPT);
        assert_eq!(snapshot.omitted[1], 1000 * 128 - 2 * TRANSCRIPT_KEPT as u64);
        assert_eq!(kept(Direction::Sent), 4000);
        let last = snapshot.entries.iter().rev().find(|e| e.direction == Direction::Received).unwrap();
        assert!(last.bytes.ends_with(b"00000999"), "the tail is the end of the stream");
        assert!(snapshot.entries.iter().any(|e| String::from_utf8_lossy(&e.bytes).contains("bytes received left out")));
    }

    // The pipelined case's 40,000 bytes of pings read as one summarised line, not 4 KiB.
    #[test]
    fn a_long_run_of_pings_reads_as_a_count() {
        let recorder = Recorder::default();
        recorder.record(1, Direction::Sent, &b"ping".repeat(1024));
        let text = recorder.snapshot().text();
        assert!(text.contains("#1 sent \"ping\" x 1024"), "{text}");
        assert!(text.len() < 200, "{text}");
    }
}
