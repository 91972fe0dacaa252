//! What a conformance case works with: the implementation under test as a process in a fresh
//! directory ([`Ctx`]), connections whose every byte is recorded ([`Conn`]), the transcript,
//! and bounded waits. The gate only ever talks to an implementation through the socket, the
//! process and the filesystem.
//!
//! - `ctx`: a case's world, and the steps every case shares (start, connect, exit, refusal).
//! - `conn`: a recorded connection and its one bounded read loop.
//! - `transcript`: the bytes and events of a case, bounded.
//! - `dir`: each case's directory, removed by a gate told to stop.
//! - `watch`: the socket file's mode as it appears (inotify).

mod conn;
mod ctx;
mod dir;
mod transcript;
mod watch;

pub(crate) use conn::{Conn, End, Heard};
pub use ctx::{Addressing, Waits};
pub(crate) use ctx::{Ctx, RunStarts, AFTERMATH, CONNECT_EXIT_DEADLINE};
pub use dir::abort_run;
pub(crate) use transcript::{serialize_lines, Line};
pub use transcript::{Direction, Transcript};

use std::thread;
use std::time::{Duration, Instant};

/// Polls `condition` every millisecond until it holds or `limit` passes; returns whether it held.
pub fn poll_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(1));
    }
}
