//! Where the library's log lines go when the command line runs it (SPEC.md section 11,
//! SRV-LOG-1).
//!
//! The library logs through the [`log`] facade, so a program that embeds the server chooses
//! where its lines go. `udsping serve` installs a [`Writer`] in [`Mode::Lossy`]: every line goes
//! through a bounded queue ([`QUEUE_LINES`] records, [`QUEUE_BYTES`] bytes) to a writer thread,
//! which writes whatever has queued up in one go, and a line that finds the queue full (a
//! consumer that stopped reading) or whose write fails (a closed pipe, a full disk) is dropped
//! and counted, never waited for. The count is reported on stderr as soon as a write succeeds again
//! and when the writer is flushed. So neither a consumer that went away nor one that stopped
//! reading can stop or kill the server. `udsping ping` and `demo` write in [`Mode::Blocking`],
//! as any command-line tool does, and remember a failed write instead of panicking.
//!
//! Lines with the target [`MESSAGES`] (the seed's per-message lines) go to stdout as they are;
//! every other line goes to stderr prefixed `udsping: `.
#![forbid(unsafe_code)]

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The `log` target of the seed's per-message lines (`Server: Received ping`, ...), which go to
/// stdout unprefixed.
pub const MESSAGES: &str = "udsping::messages";

/// Records (log calls; one may hold several lines) each lossy queue holds before further ones
/// are dropped.
pub const QUEUE_LINES: usize = 4096;

/// Bytes each lossy queue holds before further records are dropped: the memory bound.
pub const QUEUE_BYTES: usize = 4 << 20;

/// Threads a lossy [`Writer`] runs (one per output stream), besides those of its user.
pub const WRITER_THREADS: usize = 2;

/// How long [`log::Log::flush`] waits for each queue to drain (so an exit with stuck readers
/// takes at most three times this).
pub const FLUSH_LIMIT: Duration = Duration::from_secs(1);

/// How a [`Writer`] treats a slow or failing consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Never wait: queue, drop and count (for the server).
    Lossy,
    /// Write in the caller's thread; remember the first failure (for the client).
    Blocking,
}

enum Item {
    Line(String),
    /// Answered once every line queued before it has been handled.
    Flush(SyncSender<()>),
}

/// One output stream of a lossy writer: the queue's sending end.
struct Queue {
    sender: SyncSender<Item>,
    /// Lines dropped.
    dropped: Arc<AtomicU64>,
    /// Bytes queued and not written yet.
    queued: Arc<AtomicUsize>,
}

/// A [`log::Log`] that writes `udsping: ` lines to stderr and [`MESSAGES`] lines to stdout.
pub struct Writer {
    /// Lossy mode: stderr's and stdout's queues.
    queues: Option<(Queue, Queue)>,
    /// Blocking mode: stdout was closed by its reader, so later lines are not attempted.
    stdout_closed: AtomicBool,
}

impl Writer {
    /// A writer in `mode`; lossy mode starts its two writer threads here.
    pub fn new(mode: Mode) -> io::Result<Writer> {
        let queues = match mode {
            Mode::Blocking => None,
            Mode::Lossy => {
                let stderr_dropped = Arc::new(AtomicU64::new(0));
                let stdout_dropped = Arc::new(AtomicU64::new(0));
                let stderr = spawn_queue(
                    "udsping-stderr",
                    || Box::new(io::stderr()),
                    Arc::clone(&stderr_dropped),
                    Some(Arc::clone(&stdout_dropped)),
                )?;
                let stdout = spawn_queue("udsping-stdout", || Box::new(io::stdout()), stdout_dropped, None)?;
                Some((stderr, stdout))
            }
        };
        Ok(Writer { queues, stdout_closed: AtomicBool::new(false) })
    }

    /// Installs `self` as the process's logger (once per process).
    pub fn install(self) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(log::LevelFilter::Info);
        Ok(())
    }

    /// Lines dropped so far in lossy mode (stderr's and stdout's together).
    pub fn dropped(&self) -> u64 {
        self.queues.as_ref().map_or(0, |(e, o)| e.dropped.load(Ordering::Relaxed) + o.dropped.load(Ordering::Relaxed))
    }

    fn write_blocking(&self, to_stdout: bool, line: &str) {
        if to_stdout && self.stdout_closed.load(Ordering::Relaxed) {
            return;
        }
        // Held across the write: it also keeps lines of several threads whole.
        let mut failure = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
        let written = if to_stdout { write_line(&mut io::stdout(), line) } else { write_line(&mut io::stderr(), line) };
        match written {
            Ok(()) => {}
            // The reader went away (`ping | head -1`): the rest is not wanted; end quietly.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.stdout_closed.store(true, Ordering::Relaxed),
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
}

/// Blocking mode's first failed write (other than to a closed pipe).
static FAILURE: Mutex<Option<io::Error>> = Mutex::new(None);

/// The first write of a blocking [`Writer`] that failed for a reason other than a closed pipe
/// (`> /dev/full`), so the command can end with an error instead of a panic.
pub fn take_failure() -> Option<io::Error> {
    FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take()
}

fn write_line(out: &mut impl Write, line: &str) -> io::Result<()> {
    out.write_all(line.as_bytes())?;
    out.flush()
}

/// Lines in a formatted record (each ends with a newline).
fn line_count(record: &str) -> u64 {
    record.bytes().filter(|&b| b == b'\n').count() as u64
}

fn format_line(record: &log::Record<'_>) -> (bool, String) {
    if record.target() == MESSAGES {
        (true, format!("{}\n", record.args()))
    } else {
        (false, format!("udsping: {}\n", record.args()))
    }
}

impl log::Log for Writer {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (to_stdout, line) = format_line(record);
        match &self.queues {
            None => self.write_blocking(to_stdout, &line),
            Some((stderr, stdout)) => {
                let queue = if to_stdout { stdout } else { stderr };
                let (len, lines) = (line.len(), line_count(&line));
                // SPEC: SRV-LOG-1 — dropped and counted, never waited for.
                if queue.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES {
                    queue.queued.fetch_sub(len, Ordering::Relaxed);
                    queue.dropped.fetch_add(lines, Ordering::Relaxed);
                    return;
                }
                if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                    queue.sender.try_send(Item::Line(line))
                {
                    queue.queued.fetch_sub(len, Ordering::Relaxed);
                    queue.dropped.fetch_add(lines, Ordering::Relaxed);
                }
            }
        }
    }

    /// Waits, up to [`FLUSH_LIMIT`], until every queued line has been written or dropped, and
    /// reports the dropped lines once more if there were any.
    fn flush(&self) {
        let Some((stderr, stdout)) = &self.queues else { return };
        // Each wait has its own limit, so a stuck stdout does not cost stderr its last lines.
        stdout.wait_until_written(Instant::now() + FLUSH_LIMIT);
        stderr.wait_until_written(Instant::now() + FLUSH_LIMIT);
        let dropped = self.dropped();
        if dropped > 0 {
            // Through the queue too, never straight to stderr: a reader that stopped reading
            // would block that write, and the process would never exit.
            let note = format!("udsping: {dropped} log lines were dropped in all\n");
            let len = note.len();
            stderr.queued.fetch_add(len, Ordering::Relaxed);
            match stderr.sender.try_send(Item::Line(note)) {
                Ok(()) => stderr.wait_until_written(Instant::now() + FLUSH_LIMIT),
                Err(_) => {
                    stderr.queued.fetch_sub(len, Ordering::Relaxed);
                }
            }
        }
    }
}

impl Queue {
    /// Waits until everything queued so far has been written (or dropped), or `deadline`.
    fn wait_until_written(&self, deadline: Instant) {
        let (done, finished) = mpsc::sync_channel(1);
        let mut item = Item::Flush(done);
        loop {
            match self.sender.try_send(item) {
                Ok(()) => {
                    let _ = finished.recv_timeout(deadline.saturating_duration_since(Instant::now()));
                    return;
                }
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    item = back;
                    thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
    }
}

/// Starts a writer thread for one stream. The stderr thread also reports the lines dropped on
/// both streams (`others`) as soon as one of its writes succeeds.
fn spawn_queue(
    name: &str,
    open: fn() -> Box<dyn Write + Send>,
    dropped: Arc<AtomicU64>,
    others: Option<Arc<AtomicU64>>,
) -> io::Result<Queue> {
    let (sender, receiver) = mpsc::sync_channel(QUEUE_LINES);
    let (counted, queued) = (Arc::clone(&dropped), Arc::new(AtomicUsize::new(0)));
    let written = Arc::clone(&queued);
    thread::Builder::new()
        .name(name.into())
        .stack_size(64 * 1024)
        .spawn(move || drain(receiver, open(), &counted, others.as_deref(), BATCH_LINES, &written))?;
    Ok(Queue { sender, dropped, queued })
}

/// Lines one write of a writer thread takes at most: under a burst, lines that queued up meanwhile
/// go out together, so a busy log costs one `write` per batch instead of one per line.
const BATCH_LINES: u64 = 256;

fn drain(
    receiver: Receiver<Item>,
    mut out: Box<dyn Write + Send>,
    dropped: &AtomicU64,
    others: Option<&AtomicU64>,
    batch_lines: u64,
    queued: &AtomicUsize,
) {
    let mut reported = 0;
    let mut batch = String::new();
    let mut flushes = Vec::new();
    while let Ok(first) = receiver.recv() {
        let mut lines: u64 = 0;
        let mut next = Some(first);
        while let Some(item) = next {
            match item {
                Item::Line(line) => {
                    batch.push_str(&line);
                    lines += line_count(&line);
                }
                Item::Flush(done) => flushes.push(done),
            }
            next = if lines < batch_lines { receiver.try_recv().ok() } else { None };
        }
        let failed = lines > 0 && write_line(&mut out, &batch).is_err();
        queued.fetch_sub(batch.len(), Ordering::Relaxed);
        if failed {
            dropped.fetch_add(lines, Ordering::Relaxed);
        } else if let Some(others) = others {
            let total = dropped.load(Ordering::Relaxed) + others.load(Ordering::Relaxed);
            if total > reported {
                let note = format!(
                    "udsping: {} log lines were dropped (the log's reader was slow or failing)\n",
                    total - reported
                );
                if write_line(&mut out, &note).is_ok() {
                    reported = total;
                }
            }
        }
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.try_send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPEC: SRV-LOG-1 — a lossy writer never waits: lines beyond the queue are dropped and
    // counted, at once.
    #[test]
    fn a_full_queue_drops_and_counts() {
        let (sender, receiver) = mpsc::sync_channel(2);
        let writer = Writer {
            queues: Some((
                Queue { sender: sender.clone(), dropped: Arc::default(), queued: Arc::default() },
                Queue { sender, dropped: Arc::default(), queued: Arc::default() },
            )),
            stdout_closed: AtomicBool::new(false),
        };
        let logger: &dyn log::Log = &writer;
        for i in 0..10 {
            logger.log(&log::Record::builder().level(log::Level::Warn).args(format_args!("line {i}")).build());
        }
        assert_eq!(writer.dropped(), 8);
        drop(receiver);
    }

    // SPEC: SRV-LOG-1 — a failing consumer costs the dropped line, and the count is reported
    // once a write succeeds.
    #[test]
    fn failed_writes_are_counted_and_reported_later() {
        struct Flaky(Arc<Mutex<(u32, Vec<u8>)>>);
        impl Write for Flaky {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                let mut state = self.0.lock().unwrap();
                state.0 += 1;
                if state.0 <= 2 {
                    return Err(io::Error::from(io::ErrorKind::BrokenPipe));
                }
                state.1.extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let state = Arc::new(Mutex::new((0, Vec::new())));
        let (sender, receiver) = mpsc::sync_channel(8);
        for line in ["a\n", "b\n", "c\n"] {
            sender.send(Item::Line(line.into())).unwrap();
        }
        drop(sender);
        let (dropped, others) = (AtomicU64::new(0), AtomicU64::new(0));
        drain(receiver, Box::new(Flaky(Arc::clone(&state))), &dropped, Some(&others), 1, &AtomicUsize::new(6));
        assert_eq!(dropped.load(Ordering::Relaxed), 2);
        let written = String::from_utf8(state.lock().unwrap().1.clone()).unwrap();
        assert_eq!(written, "c\nudsping: 2 log lines were dropped (the log's reader was slow or failing)\n");
    }

    /// A consumer that stopped reading: every write waits until the test lets it go.
    static GATE: (Mutex<bool>, std::sync::Condvar) = (Mutex::new(false), std::sync::Condvar::new());

    struct Stuck;

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let mut open = GATE.0.lock().unwrap();
            while !*open {
                open = GATE.1.wait(open).unwrap();
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    // SPEC: SRV-LOG-1 — with stderr's reader stuck and its queue full, logging drops and counts,
    // and flushing (at exit) gives up after its limit instead of hanging the process.
    #[test]
    fn a_stuck_reader_costs_lines_not_the_exit() {
        let (stderr_dropped, stdout_dropped) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let stderr = spawn_queue("test-stderr", || Box::new(Stuck), stderr_dropped, Some(Arc::clone(&stdout_dropped)));
        let stdout = spawn_queue("test-stdout", || Box::new(io::sink()), stdout_dropped, None);
        let writer = Arc::new(Writer {
            queues: Some((stderr.unwrap(), stdout.unwrap())),
            stdout_closed: AtomicBool::new(false),
        });
        let logger: &dyn log::Log = &*writer;
        // The queue, and a batch the writer thread took before it got stuck, are full well before the end.
        for i in 0..QUEUE_LINES + 1000 {
            logger.log(&log::Record::builder().level(log::Level::Warn).args(format_args!("line {i}")).build());
        }
        assert!(writer.dropped() >= 100, "dropped {}", writer.dropped());
        let (returned, flushed) = mpsc::channel();
        let flushing = Arc::clone(&writer);
        thread::spawn(move || {
            log::Log::flush(&*flushing);
            let _ = returned.send(());
        });
        let came_back = flushed.recv_timeout(FLUSH_LIMIT * 5).is_ok();
        *GATE.0.lock().unwrap() = true;
        GATE.1.notify_all();
        assert!(came_back, "flush hung on a stuck reader");
    }
}
