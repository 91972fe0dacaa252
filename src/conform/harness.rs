//! What a conformance case works with: the implementation under test as a process in a fresh
//! directory, connections whose every byte is recorded (up to a cap), and bounded waits that
//! turn into messages saying what was expected and what was seen.
//!
//! The gate only ever talks to an implementation through the socket, the process and the
//! filesystem. Starting, killing and reaping the process is [`crate::process`]'s job; this
//! module adds what a case needs on top: the readiness probe, the judgement of a process that
//! died or daemonized, and the transcript.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use crate::net::connect_bounded;
pub use crate::process::Target;
use crate::process::{self, describe_status};
use crate::proto::quoted_prefix;

/// Bytes shown of a long stream in a failure message.
const SHOWN: usize = 48;

/// Bytes of each direction a transcript keeps at its start and at its end (the middle of a
/// flood is counted, not kept).
pub const TRANSCRIPT_KEPT: usize = 4096;
/// Events a transcript keeps (connects, closes, notes).
const EVENTS_KEPT: usize = 400;
/// Bytes a bounded read keeps of what a peer sends while the case waits for a close.
const READ_KEPT: usize = 64 * 1024;

/// How long a client may take to exit when nothing listens at its path (CLT-CONNECT-1 sets no
/// deadline, so the gate allows a generous one, whatever `--timeout` says).
pub const CONNECT_EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// Why a case did not pass.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// The implementation broke the case's requirement; the text says expected, seen, where.
    #[error("{0}")]
    Fail(String),
    /// The case could not exercise what it tests (never reported as a pass).
    #[error("{0}")]
    Inconclusive(String),
    /// The case does not apply to this target (the text says why).
    #[error("{0}")]
    Skip(String),
    /// The harness itself could not run the case (never reported as a pass).
    #[error("{0}")]
    Harness(String),
}

impl Problem {
    /// Adds the situation the problem arose in to a failure's message.
    pub fn prefixed(self, situation: &str) -> Problem {
        match self {
            Problem::Fail(message) => Problem::Fail(format!("{situation}: {message}")),
            other => other,
        }
    }

    fn harness(what: &str, error: impl std::fmt::Display) -> Problem {
        Problem::Harness(format!("{what}: {error}"))
    }
}

impl From<process::SpawnError> for Problem {
    fn from(error: process::SpawnError) -> Problem {
        Problem::Harness(format!("{error}"))
    }
}

pub(crate) type CaseResult = Result<(), Problem>;

pub(crate) fn fail<T>(message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Fail(message.into()))
}

/// A duration as a person reads it: `150 ms`, `2.0 s`.
pub fn human_duration(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

/// `1 round`, `2 rounds`.
pub fn plural(count: impl Into<u64>, noun: &str) -> String {
    let count = count.into();
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}

/// What the gate gives the implementation as `{socket}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// A socket file `udsocket` in the case's fresh directory.
    #[default]
    Path,
    /// A Linux abstract address `@udsping-conform-…`, unique per case (SPEC: TRN-ABSTRACT-1).
    Abstract,
}

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
    pub(crate) at: Duration,
    /// Connection number within the case (0 for events not tied to one).
    pub conn: usize,
    pub(crate) direction: Direction,
    pub(crate) bytes: Vec<u8>,
}

/// Everything a case did, timestamped from the case's start: the first and last
/// [`TRANSCRIPT_KEPT`] bytes of each direction, with counts of what was left out.
#[derive(Clone, Debug)]
pub struct Transcript {
    start: Instant,
    pub(crate) entries: Vec<Entry>,
    /// Bytes recorded at the start, per direction (sent, received).
    head_bytes: [usize; 2],
    /// Entries after the head was full, trimmed to the last [`TRANSCRIPT_KEPT`] bytes.
    tail: [Vec<Entry>; 2],
    /// Bytes counted but not kept, per direction.
    pub omitted: [u64; 2],
    events: usize,
    pub(crate) omitted_events: u64,
}

impl Transcript {
    fn new() -> Self {
        Transcript {
            start: Instant::now(),
            entries: Vec::new(),
            head_bytes: [0; 2],
            tail: [Vec::new(), Vec::new()],
            omitted: [0; 2],
            events: 0,
            omitted_events: 0,
        }
    }

    /// The entries in time order, the kept tails included, with a note where bytes were left
    /// out.
    fn snapshot(&self) -> Transcript {
        let mut out = self.clone();
        for (i, name) in ["sent", "received"].into_iter().enumerate() {
            if self.omitted[i] > 0 {
                let at = self.tail[i].first().map_or(self.start.elapsed(), |e| e.at);
                out.entries.push(Entry {
                    at,
                    conn: 0,
                    direction: Direction::Event,
                    bytes: format!("... {} bytes {name} left out of this transcript ...", self.omitted[i]).into_bytes(),
                });
            }
            out.entries.extend(self.tail[i].iter().cloned());
        }
        if self.omitted_events > 0 {
            out.entries.push(Entry {
                at: self.start.elapsed(),
                conn: 0,
                direction: Direction::Event,
                bytes: format!("... {} more events left out ...", self.omitted_events).into_bytes(),
            });
        }
        out.entries.sort_by_key(|e| e.at);
        out.tail = [Vec::new(), Vec::new()];
        out
    }
}

type SharedTranscript = Arc<Mutex<Transcript>>;

fn record(transcript: &SharedTranscript, conn: usize, direction: Direction, bytes: &[u8]) {
    let mut t = transcript.lock().unwrap_or_else(|p| p.into_inner());
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
        let tail = &mut t.tail[side];
        match tail.last_mut() {
            Some(last) if last.conn == conn => last.bytes.extend_from_slice(rest),
            _ => tail.push(Entry { at, conn, direction, bytes: rest.to_vec() }),
        }
        // Keep only the last TRANSCRIPT_KEPT bytes of the tail.
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
        t.omitted[side] += dropped;
    }
}

/// Every case directory that exists right now, so that a gate told to stop can remove them.
static DIRECTORIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
/// Set by [`abort_run`]: no case creates a directory any more.
static ABORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// For a gate that was told to stop (SIGINT, SIGTERM, SIGHUP): kills every target still
/// running, with everything it started, and removes every case directory. Returns the
/// directories that could not be removed, with why.
pub fn abort_run() -> Vec<(PathBuf, io::Error)> {
    process::kill_everything();
    let directories = {
        let mut directories = DIRECTORIES.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock that every case takes to create its directory: none is made after this.
        ABORTED.store(true, std::sync::atomic::Ordering::SeqCst);
        std::mem::take(&mut *directories)
    };
    directories
        .into_iter()
        .filter_map(|dir| match std::fs::remove_dir_all(&dir) {
            Ok(()) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => Some((dir, e)),
        })
        .collect()
}

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

/// Which side CMD is, for messages ("the server exited ...").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

/// Watches a case's directory for the socket file (SPEC: LIFE-PERM-1): its mode the moment it
/// appears, and whether its attributes changed afterwards (a `chmod` after `bind`).
struct PermWatch {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<thread::JoinHandle<PermSeen>>,
}

/// What the watch on a case's directory saw of the socket file (SPEC: LIFE-PERM-1).
#[derive(Clone, Debug, Default)]
pub struct PermSeen {
    /// The socket file's mode as `lstat` saw it right after it appeared.
    pub first_mode: Option<u32>,
    /// Its mode after each attribute change (`chmod`, `chown`) the kernel reported.
    pub changed_to: Vec<u32>,
}

impl PermWatch {
    fn start(dir: &Path, name: &str) -> io::Result<PermWatch> {
        use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
        use std::sync::atomic::{AtomicBool, Ordering};
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        inotify::add_watch(&fd, dir, WatchFlags::CREATE | WatchFlags::ATTRIB | WatchFlags::MOVED_TO)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (path, name, stopping) = (dir.join(name), name.to_string(), Arc::clone(&stop));
        let thread = thread::Builder::new().name("udsping-perm-watch".into()).spawn(move || {
            use std::os::unix::fs::PermissionsExt;
            let mut seen = PermSeen::default();
            let mode = || std::fs::symlink_metadata(&path).ok().map(|m| m.permissions().mode() & 0o7777);
            let mut buffer = [std::mem::MaybeUninit::uninit(); 4096];
            let timeout = rustix::event::Timespec { tv_sec: 0, tv_nsec: 5_000_000 };
            loop {
                let mut reader = inotify::Reader::new(&fd, &mut buffer);
                loop {
                    match reader.next() {
                        Ok(event) => {
                            if event.file_name().is_none_or(|n| n.to_bytes() != name.as_bytes()) {
                                continue;
                            }
                            let flags = event.events();
                            if flags.intersects(inotify::ReadFlags::CREATE | inotify::ReadFlags::MOVED_TO) {
                                if seen.first_mode.is_none() {
                                    seen.first_mode = mode();
                                }
                            } else if flags.contains(inotify::ReadFlags::ATTRIB) {
                                if let Some(m) = mode() {
                                    seen.changed_to.push(m);
                                }
                            }
                        }
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => break,
                    }
                }
                if stopping.load(Ordering::SeqCst) {
                    return seen;
                }
                let mut polled = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
                let _ = rustix::event::poll(&mut polled, Some(&timeout));
            }
        })?;
        Ok(PermWatch { stop, thread: Some(thread) })
    }

    fn finish(mut self) -> PermSeen {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for PermWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One case's world: its own directory, its process, its connections, its transcript.
pub struct Ctx {
    // Declared before `dir`, so that it is killed before its directory goes.
    process: Option<process::Child>,
    dir: tempfile::TempDir,
    /// The socket path, or `@name` for an abstract address.
    pub socket: PathBuf,
    pub(crate) timeout: Duration,
    /// How long a server may take to accept its first connection.
    pub startup_timeout: Duration,
    side: Side,
    target: Target,
    transcript: SharedTranscript,
    connections: usize,
    /// The case asked the process to end (a signal, or a refusal it waits for).
    exit_expected: bool,
    /// The case put something at the path before starting the server.
    prepared: bool,
    /// Whether the server accepted its first connection (for the run's early stop).
    pub started: bool,
    /// Why a plain start (nothing prepared at the path) failed, for the run's early stop.
    pub start_failure: Option<String>,
    /// A refusal was awaited in vain from a process that stayed silent: with a plain start
    /// failed too, evidence for the run's early stop that the target never starts.
    pub refusal_unanswered: bool,
    /// A start spawned before any start of the run had succeeded ran out of its time with no
    /// sign of life (silent; for a plain server start, nothing at the path): it may have been
    /// the machine's cold first start, so the case may run again (see `conform::run`).
    pub start_timed_out: bool,
    /// The run's record of its first successful start (each context has its own unless the
    /// run shares one).
    pub run_starts: RunStarts,
    spawned_at: Option<Instant>,
    /// A harness error that no other case can avoid either ("CMD must stay in the foreground").
    pub fatal: Option<String>,
    perm_watch: Option<PermWatch>,
    exit_noted: bool,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill_all();
        }
        let path = self.dir.path().to_path_buf();
        DIRECTORIES.lock().unwrap_or_else(|p| p.into_inner()).retain(|d| *d != path);
    }
}

impl Ctx {
    /// A server context for exploration, which starts and restarts the target itself.
    pub(crate) fn new(target: &Target, waits: Waits, addressing: Addressing) -> Result<Ctx, Problem> {
        Ctx::for_side(target, waits, addressing, Side::Server)
    }

    pub(crate) fn for_side(target: &Target, waits: Waits, addressing: Addressing, side: Side) -> Result<Ctx, Problem> {
        let dir = {
            let mut directories = DIRECTORIES.lock().unwrap_or_else(|p| p.into_inner());
            if ABORTED.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(Problem::Harness("the gate is stopping".into()));
            }
            let dir = tempfile::Builder::new()
                .prefix("udsping-conform-")
                .tempdir()
                .map_err(|e| Problem::harness("cannot create a temporary directory", e))?;
            directories.push(dir.path().to_path_buf());
            dir
        };
        let socket = match addressing {
            Addressing::Path => dir.path().join("udsocket"),
            // The directory's name is unique on this host, so the name is too, across the
            // cases running in parallel and other runs of the gate.
            Addressing::Abstract => {
                PathBuf::from(format!("@{}", dir.path().file_name().unwrap_or_default().to_string_lossy()))
            }
        };
        Ok(Ctx {
            process: None,
            dir,
            socket,
            timeout: waits.timeout,
            startup_timeout: waits.startup_timeout,
            side,
            target: target.clone(),
            transcript: Arc::new(Mutex::new(Transcript::new())),
            connections: 0,
            exit_expected: false,
            prepared: false,
            started: false,
            start_failure: None,
            refusal_unanswered: false,
            start_timed_out: false,
            run_starts: RunStarts::default(),
            spawned_at: None,
            fatal: None,
            perm_watch: None,
            exit_noted: false,
        })
    }

    fn who(&self) -> &'static str {
        match self.side {
            Side::Server => "the server",
            Side::Client => "the client",
        }
    }

    /// The implementation under test.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The started process's id, if one was started.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.id())
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn transcript(&self) -> Transcript {
        self.transcript.lock().unwrap_or_else(|p| p.into_inner()).snapshot()
    }

    /// The transcript so far, leaving it empty: exploration plays many scripts against one
    /// process and reports each one's own lines.
    pub fn take_transcript(&self) -> Transcript {
        let mut t = self.transcript.lock().unwrap_or_else(|p| p.into_inner());
        let taken = t.snapshot();
        // A fresh transcript on the same clock: the next script's lines start from nothing.
        *t = Transcript { start: t.start, ..Transcript::new() };
        taken
    }

    /// The process's exit status, if it has exited (exploration restarts a dead target).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.exit_status()
    }

    pub(crate) fn note(&self, text: &str) {
        record(&self.transcript, 0, Direction::Event, text.as_bytes());
    }

    /// Records that the case put something at the path: a start that fails then is about
    /// that, not a sign that the target cannot start at all.
    pub fn mark_prepared(&mut self) {
        self.prepared = true;
    }

    /// Records that the case is about to make the process end (a signal, a refusal), so that
    /// its exit is not reported as a crash.
    pub fn expect_exit(&mut self) {
        self.exit_expected = true;
    }

    /// Watches for the socket file to appear (call before starting the server); see
    /// [`Ctx::permissions_seen`].
    pub fn watch_socket_file(&mut self) -> CaseResult {
        let name = self.socket.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let watch = PermWatch::start(self.dir.path(), &name)
            .map_err(|e| Problem::harness("cannot watch the directory (inotify)", e))?;
        self.perm_watch = Some(watch);
        Ok(())
    }

    /// What the watch saw of the socket file's mode.
    pub fn permissions_seen(&mut self) -> PermSeen {
        self.perm_watch.take().map(PermWatch::finish).unwrap_or_default()
    }

    /// Starts the implementation in the case's directory.
    pub fn spawn(&mut self) -> CaseResult {
        // A process started before in this case (a lifecycle's earlier start) goes first: its
        // clean-up kills everything with this case's marker, which the new one carries too.
        if let Some(mut earlier) = self.process.take() {
            earlier.kill_all();
        }
        self.exit_noted = false;
        let socket = self.socket.to_string_lossy().into_owned();
        let marker = self.dir.path().to_string_lossy().into_owned();
        let env = [("UDSPING_SOCKET", self.socket.clone().into_os_string())];
        self.spawned_at = Some(Instant::now());
        let child = process::Child::spawn(&self.target, self.dir.path(), &socket, &env, &marker)?;
        self.note(&format!("started {} (pid {})", self.target.display(), child.id()));
        self.process = Some(child);
        Ok(())
    }

    /// The implementation's stderr as a short excerpt for a message: its last lines and the
    /// lines before them that look like errors, escaped.
    pub fn stderr_tail(&self) -> String {
        let settle = if self.exit_noted { Duration::from_millis(500) } else { Duration::ZERO };
        self.process.as_ref().map(|process| process.stderr_tail(settle)).unwrap_or_default()
    }

    /// What the process wrote, once it is all in if the process has exited.
    fn settled_output(&self) -> Option<process::Output> {
        let process = self.process.as_ref()?;
        if self.exit_noted {
            process.settle_output(Duration::from_millis(500));
        }
        Some(process.output())
    }

    fn with_stderr(&self, message: String) -> String {
        let stderr = self.stderr_tail();
        if stderr.is_empty() {
            format!("{message}; stderr: (empty)")
        } else {
            format!("{message}; stderr: {stderr}")
        }
    }

    /// What the implementation wrote to stdout, as far as it was kept.
    pub fn stdout_text(&self) -> String {
        self.settled_output()
            .map(|o| {
                let out = o.stdout;
                String::from_utf8_lossy(&[out.head.as_slice(), &out.error_lines, &out.tail()].concat()).into_owned()
            })
            .unwrap_or_default()
    }

    /// The whole of what the implementation wrote to stderr, as far as it was kept.
    pub fn stderr_text(&self) -> String {
        self.settled_output()
            .map(|o| {
                let out = o.stderr;
                String::from_utf8_lossy(&[out.head.as_slice(), &out.error_lines, &out.tail()].concat()).into_owned()
            })
            .unwrap_or_default()
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        let status = self.process.as_mut().and_then(|p| p.try_status());
        if let (Some(status), false) = (status, self.exit_noted) {
            self.exit_noted = true;
            self.note(&format!("{} {}", self.who(), describe_status(status)));
        }
        status
    }

    /// A server that exited 0 while something it started keeps running (or serving) has
    /// daemonized: the gate cannot judge or stop what it cannot see.
    fn daemonized(&mut self, status: ExitStatus) -> Option<Problem> {
        let escaped = self.process.as_ref().map(|p| p.escapees()).unwrap_or_default();
        let serving = connect_bounded(&self.socket, Instant::now()).is_ok();
        if status.success() && (!escaped.is_empty() || serving) {
            let message = format!(
                "CMD exited with status 0 while {} (pid {escaped:?}) kept running{}: CMD must stay in the \
                 foreground (do not daemonize; a wrapper script should `exec` the server)",
                if escaped.is_empty() { "something it started" } else { "a process it started" },
                if serving { " and serving the socket" } else { "" }
            );
            self.fatal = Some(message.clone());
            return Some(Problem::Harness(message));
        }
        None
    }

    /// Starts a server and waits until its socket accepts a connection. The readiness probe is
    /// the first connection of the transcript: it connects and closes without sending a byte.
    pub fn start_server(&mut self) -> CaseResult {
        self.spawn()?;
        let started = Instant::now();
        let deadline = started + self.startup_timeout;
        loop {
            if let Ok(probe) = connect_bounded(&self.socket, deadline) {
                drop(probe);
                self.note("readiness probe: connected, then closed without sending a byte");
                if let Some(status) = self.exit_status() {
                    if let Some(problem) = self.daemonized(status) {
                        return Err(problem);
                    }
                }
                self.started = true;
                self.run_starts.succeeded();
                return Ok(());
            }
            if let Some(status) = self.exit_status() {
                if let Some(problem) = self.daemonized(status) {
                    return Err(problem);
                }
                let message = self.with_stderr(format!(
                    "{} {} after {} without accepting a connection",
                    self.who(),
                    describe_status(status),
                    human_duration(started.elapsed())
                ));
                if !self.prepared {
                    self.start_failure = Some(message.clone());
                }
                return fail(message);
            }
            if Instant::now() >= deadline {
                let message = self.with_stderr(format!(
                    "nothing accepted connections at {} within {} of starting (--startup-timeout)",
                    self.socket.display(),
                    human_duration(self.startup_timeout)
                ));
                self.start_timed_out = self.no_sign_of_life();
                if !self.prepared {
                    self.start_failure = Some(message.clone());
                }
                return fail(message);
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// A process that exited 0 while something it started runs on has daemonized.
    fn left_something_running(&mut self, status: ExitStatus) -> Result<ExitStatus, Problem> {
        let escaped = self.process.as_ref().map(|p| p.escapees()).unwrap_or_default();
        if status.success() && !escaped.is_empty() {
            let message = format!(
                "CMD exited with status 0 while a process it started (pid {escaped:?}) kept running: CMD must stay \
                 in the foreground (do not daemonize; a wrapper script should `exec` the program)"
            );
            self.fatal = Some(message.clone());
            return Err(Problem::Harness(message));
        }
        Ok(status)
    }

    /// Whether a process still running at the end of its start-up time has done nothing yet
    /// that a cold first start would not explain: it was started before any start of the run
    /// had succeeded, has written nothing, and (a server in a case that put nothing at the
    /// path) has bound nothing. Only then may its case run again: a process that said
    /// something, or bound and then stopped, or hung after the target had started warm, has
    /// shown how it behaves.
    fn no_sign_of_life(&self) -> bool {
        let untouched = match self.side {
            Side::Server => !self.prepared && !self.socket_bound(),
            Side::Client => true,
        };
        self.silent() && untouched && self.spawned_before_any_success()
    }

    /// Whether the process was started before any start of the run had succeeded: only such
    /// a start can be the machine's cold first one.
    fn spawned_before_any_success(&self) -> bool {
        self.spawned_at.is_some_and(|spawned| !self.run_starts.before(spawned))
    }

    /// Whether something is at the socket path, or (an abstract address) bound to the name.
    fn socket_bound(&self) -> bool {
        match crate::net::abstract_name(&self.socket) {
            // /proc/net/unix lists every bound name, an abstract one as `@name` at the end of its line.
            Some(name) => std::fs::read("/proc/net/unix").is_ok_and(|table| {
                let name = [b"@".as_slice(), name].concat();
                table.split(|&b| b == b'\n').any(|line| line.ends_with(&name))
            }),
            None => std::fs::symlink_metadata(&self.socket).is_ok(),
        }
    }

    /// Whether the process has written nothing yet, to stdout or stderr.
    fn silent(&self) -> bool {
        self.process.as_ref().is_some_and(process::Child::silent)
    }

    /// Waits (up to `limit`) for the process to exit by itself.
    pub fn wait_exit_within(&mut self, what: &str, limit: Duration) -> Result<ExitStatus, Problem> {
        self.exit_expected = true;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exit_status() {
                return self.left_something_running(status);
            }
            if Instant::now() >= deadline {
                return fail(self.with_stderr(format!(
                    "{what}; expected {} to exit within {}; it is still running",
                    self.who(),
                    human_duration(limit)
                )));
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits (up to the timeout) for the process to exit by itself.
    pub fn wait_exit(&mut self, what: &str) -> Result<ExitStatus, Problem> {
        self.wait_exit_within(what, self.timeout)
    }

    /// Waits for a process just started to refuse to start: to exit by itself, or until
    /// `decided` says the outcome is already known (it returns the failure). A refusal is how
    /// its start ends, so the wait is the start-up timeout (or the event timeout, if longer):
    /// on a machine slow to start the target, `--startup-timeout` covers these cases too.
    pub fn wait_refusal(
        &mut self,
        what: &str,
        mut decided: impl FnMut(&mut Ctx) -> Option<Problem>,
    ) -> Result<ExitStatus, Problem> {
        self.exit_expected = true;
        let limit = self.startup_timeout.max(self.timeout);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exit_status() {
                return self.left_something_running(status);
            }
            if let Some(problem) = decided(self) {
                return Err(problem);
            }
            if Instant::now() >= deadline {
                let option = if self.startup_timeout >= self.timeout { "--startup-timeout" } else { "--timeout" };
                let message = self.with_stderr(format!(
                    "{what}; expected {} to exit within {} ({option}); it is still running",
                    self.who(),
                    human_duration(limit)
                ));
                // Silent, with what the case put at the path intact (`decided` would have
                // said otherwise): as like a slow start as a refusal that never comes.
                if self.silent() {
                    self.refusal_unanswered = true;
                    self.start_timed_out = self.spawned_before_any_success();
                }
                return fail(message);
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends `signal` to the process CMD started (not to its group: the case is about how
    /// CMD itself reacts).
    pub fn signal(&mut self, signal: rustix::process::Signal, name: &str) -> CaseResult {
        self.exit_expected = true;
        let process = self.process.as_ref().ok_or_else(|| Problem::Harness("no process to signal".into()))?;
        process.signal(signal).map_err(|e| Problem::harness(&format!("cannot send {name}"), e))?;
        self.note(&format!("sent {name}"));
        Ok(())
    }

    /// After a server case: whether the server died without being asked to, and how. A dead
    /// server's listening socket refuses connections, so one connect tells (the connection is
    /// recorded and closed at once).
    ///
    /// After a failure a dying server may still be closing its descriptors, so then it is
    /// given a moment to finish dying, to explain the failure.
    pub fn death_during_case(&mut self, failed: bool) -> Option<String> {
        if self.side != Side::Server || self.exit_expected || !self.started {
            return None;
        }
        let status = match self.exit_status() {
            Some(status) => status,
            None => match connect_bounded(&self.socket, Instant::now()) {
                Ok(_) if failed => match self.process.as_mut()?.wait_for_exit(Duration::from_millis(250)) {
                    Some(status) => status,
                    None => {
                        self.note("after the case: the server still accepts connections");
                        return None;
                    }
                },
                Ok(_) => {
                    self.note("after the case: the server still accepts connections");
                    return None;
                }
                // A listener that is gone: the process is exiting, or closed it for its own
                // reasons (then it is not this check's business). A full backlog says nothing.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound) => {
                    self.process.as_mut()?.wait_for_exit(Duration::from_secs(1))?
                }
                Err(_) => return None,
            },
        };
        self.exit_status();
        Some(self.with_stderr(format!("the server {} during this case", describe_status(status))))
    }

    /// Opens a new recorded connection to the socket.
    pub fn connect(&mut self) -> Result<Conn, Problem> {
        self.connect_within(self.timeout)
    }

    /// Opens a new recorded connection, waiting at most `limit` for room in a full backlog.
    pub fn connect_within(&mut self, limit: Duration) -> Result<Conn, Problem> {
        let stream = match connect_bounded(&self.socket, Instant::now() + limit) {
            Ok(stream) => stream,
            Err(e) => {
                let died = self.exit_status().map(|s| format!(" ({} {})", self.who(), describe_status(s)));
                return fail(format!(
                    "cannot connect to {} within {}: {e}{}",
                    self.socket.display(),
                    human_duration(limit),
                    died.unwrap_or_default()
                ));
            }
        };
        self.connections += 1;
        record(&self.transcript, self.connections, Direction::Event, b"connected");
        Conn::new(stream, self.connections, Arc::clone(&self.transcript), self.timeout)
    }

    /// Listens at the socket path or abstract name (for client cases) before the client starts.
    pub fn listen(&self) -> Result<UnixListener, Problem> {
        let listener = crate::net::unix_address(&self.socket)
            .and_then(|address| UnixListener::bind_addr(&address))
            .map_err(|e| Problem::harness(&format!("cannot listen at {}", self.socket.display()), e))?;
        listener.set_nonblocking(true).map_err(|e| Problem::harness("cannot make the listener non-blocking", e))?;
        Ok(listener)
    }

    /// Accepts the client's connection, bounded by the start-up timeout and by the client
    /// exiting.
    pub fn accept(&mut self, listener: &UnixListener) -> Result<Conn, Problem> {
        let started = Instant::now();
        let deadline = started + self.startup_timeout;
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).map_err(|e| Problem::harness("cannot make a socket blocking", e))?;
                    self.connections += 1;
                    self.started = true;
                    self.run_starts.succeeded();
                    record(&self.transcript, self.connections, Direction::Event, b"client connected");
                    return Conn::new(stream, self.connections, Arc::clone(&self.transcript), self.timeout);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Problem::harness("accept failed", e)),
            }
            if let Some(status) = self.exit_status() {
                let message = self.with_stderr(format!("the client {} without connecting", describe_status(status)));
                self.start_failure = Some(message.clone());
                return fail(message);
            }
            if Instant::now() >= deadline {
                let message = self.with_stderr(format!(
                    "the client did not connect within {} of starting (--startup-timeout)",
                    human_duration(self.startup_timeout)
                ));
                self.start_timed_out = self.no_sign_of_life();
                self.start_failure = Some(message.clone());
                return fail(message);
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// What a bounded read saw.
enum Seen {
    Bytes,
    Closed,
    TimedOut,
}

/// When a start of the target first succeeded in a run, shared by the run's cases: a start
/// spawned after that cannot be the machine's cold first start.
#[derive(Clone, Debug, Default)]
pub struct RunStarts(Arc<std::sync::OnceLock<Instant>>);

impl RunStarts {
    fn succeeded(&self) {
        let _ = self.0.set(Instant::now());
    }

    /// Whether any start in the run has succeeded yet.
    pub fn any(&self) -> bool {
        self.0.get().is_some()
    }

    fn before(&self, at: Instant) -> bool {
        self.0.get().is_some_and(|first| *first <= at)
    }
}

/// How long the target is waited for: each expected event, and its start.
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    /// Each expected event (`--timeout`).
    pub timeout: Duration,
    /// A server's first accepted connection, a client's connection (`--startup-timeout`).
    pub startup_timeout: Duration,
}

/// A recorded connection with bounded reads.
pub struct Conn {
    stream: UnixStream,
    id: usize,
    transcript: SharedTranscript,
    timeout: Duration,
    /// No wait on this connection goes past this, however many waits a case makes.
    overall: Instant,
}

/// The longest any one case may wait on one connection in all.
pub const CASE_DEADLINE: Duration = Duration::from_secs(60);

impl Conn {
    fn new(stream: UnixStream, id: usize, transcript: SharedTranscript, timeout: Duration) -> Result<Self, Problem> {
        // A peer that never reads must not hang a write either.
        stream.set_write_timeout(Some(timeout)).map_err(|e| Problem::harness("cannot set a write timeout", e))?;
        Ok(Conn { stream, id, transcript, timeout, overall: Instant::now() + CASE_DEADLINE })
    }

    /// Sends bytes; a peer that already closed is not an error here (the reply shows it).
    pub fn send(&mut self, bytes: &[u8]) {
        match self.stream.write_all(bytes) {
            Ok(()) => record(&self.transcript, self.id, Direction::Sent, bytes),
            Err(e) => record(
                &self.transcript,
                self.id,
                Direction::Event,
                format!("send {} failed: {e}", quoted_prefix(bytes, SHOWN)).as_bytes(),
            ),
        }
    }

    /// Sends bytes from another thread, so the case can read while they are written.
    pub fn send_in_background(&mut self, bytes: Vec<u8>) -> Result<thread::JoinHandle<()>, Problem> {
        let mut writer = self.stream.try_clone().map_err(|e| Problem::harness("cannot clone a socket", e))?;
        record(
            &self.transcript,
            self.id,
            Direction::Event,
            format!("sending {} bytes from another thread", bytes.len()).as_bytes(),
        );
        Ok(thread::spawn(move || {
            let _ = writer.write_all(&bytes);
        }))
    }

    /// Sends each piece in its own write, `pause` apart, to force separate reads.
    pub fn send_pieces(&mut self, pieces: &[&[u8]], pause: Duration) {
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                thread::sleep(pause);
            }
            self.send(piece);
        }
    }

    /// Sends bytes without blocking until the kernel refuses more; returns how many were sent.
    pub fn flood(&mut self, bytes: &[u8]) -> usize {
        let _ = self.stream.set_nonblocking(true);
        let mut sent = 0;
        while let Ok(n) = (&self.stream).write(bytes) {
            sent += n;
        }
        let _ = self.stream.set_nonblocking(false);
        record(&self.transcript, self.id, Direction::Event, format!("flooded {sent} bytes without reading").as_bytes());
        sent
    }

    /// Ends the harness's receiving side: the peer's writes now fail with `EPIPE` (and raise
    /// `SIGPIPE` in a peer that does not ignore it).
    pub fn shutdown_read(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Read);
        record(&self.transcript, self.id, Direction::Event, b"shut down reading (the peer's writes now fail)");
    }

    /// Ends the harness's sending side: the peer reads EOF.
    pub fn half_close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        record(&self.transcript, self.id, Direction::Event, b"half-closed (EOF sent)");
    }

    fn read_some(&mut self, into: &mut Vec<u8>, deadline: Instant) -> Seen {
        self.read_some_limited(into, 4096, deadline)
    }

    /// One bounded read of at most `limit` bytes into `into`; a reset counts as a close
    /// (SPEC: WIRE-CLOSE-1).
    fn read_some_limited(&mut self, into: &mut Vec<u8>, limit: usize, deadline: Instant) -> Seen {
        let left = deadline.min(self.overall).saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Seen::TimedOut;
        }
        let _ = self.stream.set_read_timeout(Some(left));
        let mut buffer = [0u8; 4096];
        loop {
            return match self.stream.read(&mut buffer[..limit.min(4096)]) {
                Ok(0) => {
                    record(&self.transcript, self.id, Direction::Event, b"closed by peer");
                    Seen::Closed
                }
                Ok(n) => {
                    record(&self.transcript, self.id, Direction::Received, &buffer[..n]);
                    into.extend_from_slice(&buffer[..n]);
                    Seen::Bytes
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Seen::TimedOut,
                Err(e) => {
                    record(&self.transcript, self.id, Direction::Event, format!("closed by peer ({e})").as_bytes());
                    Seen::Closed
                }
            };
        }
    }

    /// Reads until `expected` has arrived; anything else is a failure that names `context`
    /// (what was sent), the expectation and what was seen.
    pub fn expect(&mut self, expected: &[u8], context: &str) -> CaseResult {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        while got.len() < expected.len() && expected.starts_with(&got) {
            let seen = self.read_some(&mut got, deadline);
            let what = match (seen, got.is_empty()) {
                (Seen::Bytes, _) => continue,
                (Seen::Closed, true) => "the connection closed without a reply".to_string(),
                (Seen::TimedOut, true) => "no reply".to_string(),
                (Seen::Closed, false) => format!("{} and then a close", quoted_prefix(&got, SHOWN)),
                (Seen::TimedOut, false) => format!("{} and then nothing more", quoted_prefix(&got, SHOWN)),
            };
            return fail(format!(
                "{context}; expected {} within {}; got {what}",
                quoted_prefix(expected, SHOWN),
                human_duration(self.timeout)
            ));
        }
        if !got.starts_with(expected) {
            let at = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(0);
            return fail(format!(
                "{context}; expected {}; got {} (first difference at byte {at})",
                quoted_prefix(expected, SHOWN),
                quoted_prefix(&got, SHOWN)
            ));
        }
        if got.len() > expected.len() {
            return fail(format!(
                "{context}; expected {}; got {} more: {}",
                quoted_prefix(expected, SHOWN),
                got.len() - expected.len(),
                quoted_prefix(&got[expected.len()..], SHOWN)
            ));
        }
        Ok(())
    }

    /// Reads until the peer closes; any byte before that is a failure.
    pub fn expect_close(&mut self, context: &str) -> CaseResult {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        loop {
            match self.read_some(&mut got, deadline) {
                // A flood is a failure already; no need to keep reading it.
                Seen::Bytes if got.len() > READ_KEPT => {
                    return fail(format!(
                        "{context}; expected the connection to close with no more bytes; got {} and more",
                        quoted_prefix(&got, SHOWN)
                    ))
                }
                Seen::Bytes => continue,
                Seen::Closed if got.is_empty() => return Ok(()),
                Seen::Closed => {
                    return fail(format!(
                        "{context}; expected the connection to close with no more bytes; got {} and then EOF",
                        quoted_prefix(&got, SHOWN)
                    ))
                }
                Seen::TimedOut => {
                    let extra =
                        if got.is_empty() { String::new() } else { format!(" after {}", quoted_prefix(&got, SHOWN)) };
                    return fail(format!(
                        "{context}; expected the connection to close within {}; it is still open{extra}",
                        human_duration(self.timeout)
                    ));
                }
            }
        }
    }

    /// Reads until `n` bytes arrived or the peer closed (bounded).
    pub fn read_exactly_or_close(&mut self, n: usize) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let want = n - got.len();
            match self.read_some_limited(&mut got, want, deadline) {
                Seen::Bytes => {}
                Seen::Closed => return (got, true),
                Seen::TimedOut => return (got, false),
            }
        }
        (got, false)
    }

    /// Reads everything until the peer closes (bounded, and at most `READ_KEPT` bytes: a
    /// flood stops the read); for the client cases.
    pub fn read_until_close(&mut self) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        loop {
            match self.read_some(&mut got, deadline) {
                Seen::Bytes if got.len() > READ_KEPT => return (got, false),
                Seen::Bytes => continue,
                Seen::Closed => return (got, true),
                Seen::TimedOut => return (got, false),
            }
        }
    }

    /// How many bytes sent on this connection the peer has not read yet (Linux `SIOCOUTQ`):
    /// a script waits for 0 between two writes so that the peer sees them as two reads.
    #[allow(unsafe_code)] // rustix has no safe call for SIOCOUTQ.
    pub fn unread_by_peer(&self) -> io::Result<usize> {
        // TIOCOUTQ, which is SIOCOUTQ for sockets (asm-generic/ioctls.h).
        const SIOCOUTQ: rustix::ioctl::Opcode = 0x5411;
        // SAFETY: SIOCOUTQ writes one `int` through its argument, which is what a
        // `Getter<_, c_int>` provides, and the descriptor is the live socket `self.stream` owns.
        let queued =
            unsafe { rustix::ioctl::ioctl(&self.stream, rustix::ioctl::Getter::<SIOCOUTQ, std::ffi::c_int>::new()) }?;
        Ok(usize::try_from(queued).unwrap_or(0))
    }

    /// Reads for `window` (or until the peer closes): what arrived, and whether it closed.
    pub fn read_for(&mut self, window: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + window;
        let mut got = Vec::new();
        loop {
            match self.read_some(&mut got, deadline) {
                Seen::Bytes => continue,
                Seen::Closed => return (got, true),
                Seen::TimedOut => return (got, false),
            }
        }
    }

    /// Checks that the peer sends nothing for `window` (used only to catch a client that does
    /// not wait for its reply: a correct client can never fail it).
    pub fn expect_silence(&mut self, window: Duration, context: &str) -> CaseResult {
        let mut got = Vec::new();
        match self.read_some(&mut got, Instant::now() + window) {
            Seen::TimedOut => Ok(()),
            Seen::Bytes => fail(format!(
                "{context}; expected nothing until the reply was complete; got {}",
                quoted_prefix(&got, SHOWN)
            )),
            Seen::Closed => {
                fail(format!("{context}; expected the client to wait for the reply; it closed the connection"))
            }
        }
    }
}

impl Conn {
    /// One round that only proves the server is live: sends `ping` and waits for any byte
    /// (cases about the socket file, signals or limits judge their own behaviour and leave
    /// the exact reply to the wire cases). Returns the bytes that arrived.
    pub fn live_round(&mut self, context: &str) -> Result<Vec<u8>, Problem> {
        self.send(b"ping");
        let mut got = Vec::new();
        match self.read_some(&mut got, Instant::now() + self.timeout) {
            Seen::Bytes => Ok(got),
            Seen::Closed => {
                fail(format!("{context}: sent \"ping\"; expected a reply; the connection closed without one"))
            }
            Seen::TimedOut => fail(format!(
                "{context}: sent \"ping\"; expected a reply within {}; got none",
                human_duration(self.timeout)
            )),
        }
    }

    /// `count` live rounds: proof that the server serves this connection. It sends no `end`
    /// and waits for no close, so that a server which mishandles `end` fails the cases of
    /// SPEC 5.2 and not the lifecycle, isolation or limits case that needed a live server; the
    /// caller drops the connection.
    pub fn live_session(&mut self, count: u32, context: &str) -> CaseResult {
        for round in 1..=count {
            self.live_round(&format!("{context}, round {round}"))?;
        }
        Ok(())
    }

    /// Reads until the peer closes, ignoring any bytes before the close.
    pub fn expect_close_loosely(&mut self, context: &str) -> CaseResult {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        loop {
            match self.read_some(&mut got, deadline) {
                Seen::Bytes => got.clear(),
                Seen::Closed => return Ok(()),
                Seen::TimedOut => {
                    return fail(format!(
                        "{context}; expected the connection to close within {}; it is still open",
                        human_duration(self.timeout)
                    ))
                }
            }
        }
    }

    /// Waits up to `limit` for at least one byte; returns when it arrived, or why not.
    pub fn first_byte_within(&mut self, limit: Duration) -> Result<Duration, &'static str> {
        let started = Instant::now();
        let mut got = Vec::new();
        match self.read_some(&mut got, started + limit) {
            Seen::Bytes => Ok(started.elapsed()),
            Seen::Closed => Err("the connection closed without a reply"),
            Seen::TimedOut => Err("no reply"),
        }
    }

    /// Waits up to `limit` until at least `count` bytes from the peer are queued, without
    /// reading them, so that a close that follows leaves them unread (the peer's next read sees
    /// a reset, SPEC: WIRE-CLOSE-1) while the peer owes nothing more.
    pub fn wait_queued(&mut self, count: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buffer = vec![std::mem::MaybeUninit::uninit(); count];
        loop {
            let _ = self.stream.set_read_timeout(Some(Duration::from_millis(5)));
            match rustix::net::recv(&self.stream, &mut buffer[..], rustix::net::RecvFlags::PEEK) {
                Ok((_, queued)) if queued >= count => return true,
                // The peer closed: nothing more will come.
                Ok((_, 0)) => return false,
                Ok(_) | Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {}
                Err(_) => return false,
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Closes the connection at once, with whatever the peer sent still unread.
    pub fn close(self) {
        record(&self.transcript, self.id, Direction::Event, b"closed by the harness");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server context for `sleep 5`, which never listens, with 100 ms to start.
    fn never_listening() -> Ctx {
        let target = Target { program: "sleep".into(), args: vec!["5".into()] };
        let waits = Waits { timeout: Duration::from_secs(1), startup_timeout: Duration::from_millis(100) };
        Ctx::for_side(&target, waits, Addressing::Path, Side::Server).unwrap()
    }

    // README "Processes and resources": only a start spawned before any start of the run had
    // succeeded may have been the machine's cold first one, even if the success came while it
    // was starting; one spawned after a success that then hangs silently is the target's own.
    #[test]
    fn only_a_start_spawned_before_any_success_may_be_a_cold_one() {
        let mut cold = never_listening();
        assert!(cold.start_server().is_err());
        assert!(cold.start_timed_out, "a silent start before any success");

        let mut overtaken = never_listening();
        overtaken.spawn().unwrap();
        overtaken.run_starts.succeeded(); // another case's start, while this one is under way
        assert!(overtaken.spawned_before_any_success());

        let mut warm = never_listening();
        warm.run_starts.succeeded();
        assert!(warm.start_server().is_err());
        assert!(!warm.start_timed_out, "a silent hang after a success");
    }

    #[test]
    fn a_transcript_keeps_the_ends_of_a_flood_and_counts_the_rest() {
        let transcript = Arc::new(Mutex::new(Transcript::new()));
        for i in 0..1000u32 {
            record(&transcript, 1, Direction::Received, format!("{i:08}").repeat(16).as_bytes());
            record(&transcript, 1, Direction::Sent, b"ping");
        }
        let snapshot = transcript.lock().unwrap().snapshot();
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
}
