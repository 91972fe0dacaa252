//! What a conformance case works with: the implementation under test as a process in a fresh
//! directory, connections whose every byte is recorded, and bounded waits that turn into
//! messages saying what was expected and what was seen.
//!
//! The gate only ever talks to an implementation through the socket, the process and the
//! filesystem.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::proto::quoted_prefix;

/// The file in a case's directory that captures the implementation's stderr.
pub const STDERR_FILE: &str = ".udsping-conform-stderr";

/// Bytes shown of a long stream in a failure message.
const SHOWN: usize = 48;

/// Why a case did not pass.
#[derive(Debug)]
pub enum Problem {
    /// The implementation broke the case's requirement; the text says expected, seen, where.
    Fail(String),
    /// The harness itself could not run the case (never reported as a pass).
    Harness(String),
}

impl Problem {
    /// Adds the situation the problem arose in to a failure's message.
    pub fn prefixed(self, situation: &str) -> Problem {
        match self {
            Problem::Fail(message) => Problem::Fail(format!("{situation}: {message}")),
            harness => harness,
        }
    }
}

pub type CaseResult = Result<(), Problem>;

pub fn fail<T>(message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Fail(message.into()))
}

/// The implementation under test: a command line in which `{socket}` stands for the socket path.
#[derive(Clone, Debug)]
pub struct Target {
    pub program: String,
    pub args: Vec<String>,
}

/// What the gate gives the implementation as `{socket}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Addressing {
    /// A socket file `udsocket` in the case's fresh directory.
    #[default]
    Path,
    /// A Linux abstract address `@udsping-conform-…`, unique per case (SPEC: TRN-ABSTRACT-1).
    Abstract,
}

/// Who wrote a transcript entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    pub at: Duration,
    /// Connection number within the case (0 for events not tied to one).
    pub conn: usize,
    pub direction: Direction,
    pub bytes: Vec<u8>,
}

/// Everything a case did, timestamped from the case's start.
#[derive(Clone, Debug)]
pub struct Transcript {
    start: Instant,
    pub entries: Vec<Entry>,
}

impl Transcript {
    fn new() -> Self {
        Transcript { start: Instant::now(), entries: Vec::new() }
    }
}

type SharedTranscript = Arc<Mutex<Transcript>>;

fn record(transcript: &SharedTranscript, conn: usize, direction: Direction, bytes: &[u8]) {
    let mut t = transcript.lock().unwrap_or_else(|p| p.into_inner());
    let at = t.start.elapsed();
    // Consecutive pieces in the same direction on the same connection read better as one line.
    if let Some(last) = t.entries.last_mut() {
        if last.conn == conn
            && last.direction == direction
            && direction != Direction::Event
            && at - last.at < Duration::from_millis(1)
        {
            last.bytes.extend_from_slice(bytes);
            return;
        }
    }
    t.entries.push(Entry { at, conn, direction, bytes: bytes.to_vec() });
}

/// The implementation's process, killed and reaped when dropped.
struct Process {
    child: Child,
    stderr_path: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One case's world: its own directory, its process, its connections, its transcript.
pub struct Ctx {
    dir: tempfile::TempDir,
    /// The socket path, or `@name` for an abstract address.
    pub socket: PathBuf,
    pub timeout: Duration,
    target: Target,
    process: Option<Process>,
    transcript: SharedTranscript,
    connections: usize,
}

impl Ctx {
    pub fn new(target: &Target, timeout: Duration, addressing: Addressing) -> Result<Ctx, Problem> {
        let dir = tempfile::Builder::new()
            .prefix("udsping-conform-")
            .tempdir()
            .map_err(|e| Problem::Harness(format!("cannot create a temporary directory: {e}")))?;
        let socket = match addressing {
            Addressing::Path => dir.path().join("udsocket"),
            // The directory's name is unique on this host, so the name is too, across the
            // cases running in parallel and other runs of the gate.
            Addressing::Abstract => {
                PathBuf::from(format!("@{}", dir.path().file_name().unwrap_or_default().to_string_lossy()))
            }
        };
        Ok(Ctx {
            dir,
            socket,
            timeout,
            target: target.clone(),
            process: None,
            transcript: Arc::new(Mutex::new(Transcript::new())),
            connections: 0,
        })
    }

    /// The started process's id, if one was started.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn transcript(&self) -> Transcript {
        self.transcript.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The transcript so far, leaving it empty: exploration plays many scripts against one
    /// process and reports each one's own lines.
    pub fn take_transcript(&self) -> Transcript {
        let mut t = self.transcript.lock().unwrap_or_else(|p| p.into_inner());
        let entries = std::mem::take(&mut t.entries);
        Transcript { start: t.start, entries }
    }

    /// The process's exit status, if it has exited (exploration restarts a dead target).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.exit_status()
    }

    pub fn note(&self, text: &str) {
        record(&self.transcript, 0, Direction::Event, text.as_bytes());
    }

    /// Starts the implementation in the case's directory.
    pub fn spawn(&mut self) -> CaseResult {
        let socket = self.socket.to_string_lossy().into_owned();
        let args: Vec<String> =
            self.target.args.iter().map(|a| if a == "{socket}" { socket.clone() } else { a.clone() }).collect();
        let stderr_path = self.dir.path().join(STDERR_FILE);
        let stderr =
            std::fs::File::create(&stderr_path).map_err(|e| Problem::Harness(format!("cannot capture stderr: {e}")))?;
        let child = Command::new(&self.target.program)
            .args(&args)
            .current_dir(self.dir.path())
            .env("UDSPING_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| Problem::Harness(format!("cannot start {:?}: {e}", self.target.program)))?;
        self.note(&format!("started {} (pid {})", self.target.program, child.id()));
        self.process = Some(Process { child, stderr_path });
        Ok(())
    }

    /// The last lines the implementation wrote to stderr, for failure messages.
    pub fn stderr_tail(&self) -> String {
        let Some(process) = &self.process else { return String::new() };
        let text = std::fs::read(&process.stderr_path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().rev().take(3).collect();
        lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.process.as_mut().and_then(|p| p.child.try_wait().ok().flatten())
    }

    /// Starts a server and waits until its socket accepts a connection.
    pub fn start_server(&mut self) -> CaseResult {
        self.spawn()?;
        let deadline = Instant::now() + self.timeout.max(Duration::from_secs(5));
        loop {
            if connect_bounded(&self.socket, deadline).is_ok() {
                self.note("server accepts connections");
                return Ok(());
            }
            if let Some(status) = self.exit_status() {
                return fail(format!(
                    "the server exited ({status}) before accepting connections; stderr: {}",
                    self.stderr_tail()
                ));
            }
            if Instant::now() >= deadline {
                return fail(format!(
                    "nothing accepted connections at {} within {:?}",
                    self.socket.display(),
                    deadline.elapsed()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, what: &str) -> Result<ExitStatus, Problem> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(status) = self.exit_status() {
                self.note(&format!("process exited: {status}"));
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return fail(format!(
                    "{what}; expected the process to exit within {} ms; it is still running",
                    self.timeout.as_millis()
                ));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn signal(&self, signal: rustix::process::Signal, name: &str) -> CaseResult {
        let process = self.process.as_ref().ok_or_else(|| Problem::Harness("no process to signal".into()))?;
        let pid = rustix::process::Pid::from_raw(process.child.id() as i32).expect("a child's pid is positive");
        rustix::process::kill_process(pid, signal).map_err(|e| Problem::Harness(format!("cannot send {name}: {e}")))?;
        self.note(&format!("sent {name}"));
        Ok(())
    }

    /// Opens a new recorded connection to the socket.
    pub fn connect(&mut self) -> Result<Conn, Problem> {
        let stream = connect_bounded(&self.socket, Instant::now() + self.timeout).or_else(|e| {
            fail(format!("cannot connect to {} within {} ms: {e}", self.socket.display(), self.timeout.as_millis()))
        })?;
        self.connections += 1;
        record(&self.transcript, self.connections, Direction::Event, b"connected");
        Ok(Conn::new(stream, self.connections, Arc::clone(&self.transcript), self.timeout))
    }

    /// Listens at the socket path or abstract name (for client cases) before the client starts.
    pub fn listen(&self) -> Result<UnixListener, Problem> {
        let listener = crate::socket_path::unix_address(&self.socket)
            .and_then(|address| UnixListener::bind_addr(&address))
            .map_err(|e| Problem::Harness(format!("cannot listen at {}: {e}", self.socket.display())))?;
        listener.set_nonblocking(true).map_err(|e| Problem::Harness(e.to_string()))?;
        Ok(listener)
    }

    /// Accepts the client's connection, bounded by the timeout and by the client exiting.
    pub fn accept(&mut self, listener: &UnixListener) -> Result<Conn, Problem> {
        let deadline = Instant::now() + self.timeout.max(Duration::from_secs(5));
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).map_err(|e| Problem::Harness(e.to_string()))?;
                    self.connections += 1;
                    record(&self.transcript, self.connections, Direction::Event, b"client connected");
                    return Ok(Conn::new(stream, self.connections, Arc::clone(&self.transcript), self.timeout));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Problem::Harness(format!("accept failed: {e}"))),
            }
            if let Some(status) = self.exit_status() {
                return fail(format!(
                    "the client exited ({status}) without connecting; stderr: {}",
                    self.stderr_tail()
                ));
            }
            if Instant::now() >= deadline {
                return fail("the client did not connect within the timeout");
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses, so the fields are counted
    // from its last ')': field 3 (the state letter) comes first, utime and stime are 14 and 15.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(14 - 3);
    let mut next = || fields.next()?.parse::<u64>().ok();
    let ticks = next()? + next()?;
    Some(Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64))
}

/// Connects without ever blocking past `deadline`: a blocking `connect` to a Unix socket whose
/// listen backlog is full waits indefinitely (a server that stopped accepting would hang the
/// gate), so it connects non-blocking and retries while the kernel says `EAGAIN`. `@name` is an
/// abstract address.
pub fn connect_bounded(path: &Path, deadline: Instant) -> io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let address = match crate::socket_path::abstract_name(path) {
        None => SocketAddrUnix::new(path)?,
        Some(name) => SocketAddrUnix::new_abstract_name(name)?,
    };
    loop {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        match rustix::net::connect(&socket, &address) {
            Ok(()) => {
                let stream = UnixStream::from(socket);
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(rustix::io::Errno::AGAIN) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Err(rustix::io::Errno::AGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the listen backlog stayed full (the server does not accept)",
                ))
            }
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// What a bounded read saw.
enum Seen {
    Bytes,
    Closed,
    TimedOut,
}

/// A recorded connection with bounded reads.
pub struct Conn {
    stream: UnixStream,
    id: usize,
    transcript: SharedTranscript,
    timeout: Duration,
}

impl Conn {
    fn new(stream: UnixStream, id: usize, transcript: SharedTranscript, timeout: Duration) -> Self {
        Conn { stream, id, transcript, timeout }
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
        let mut writer =
            self.stream.try_clone().map_err(|e| Problem::Harness(format!("cannot clone a socket: {e}")))?;
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
        let left = deadline.saturating_duration_since(Instant::now());
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
            let what = match seen {
                Seen::Bytes => continue,
                Seen::Closed => "EOF",
                Seen::TimedOut => "nothing more",
            };
            return fail(format!(
                "{context}; expected {} within {} ms; got {what} after {} bytes{}",
                quoted_prefix(expected, SHOWN),
                self.timeout.as_millis(),
                got.len(),
                if got.is_empty() { String::new() } else { format!(" ({})", quoted_prefix(&got, SHOWN)) }
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
                        "{context}; expected the connection to close within {} ms; it is still open{extra}",
                        self.timeout.as_millis()
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

    /// Reads everything until the peer closes (bounded); for the client cases.
    pub fn read_until_close(&mut self) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + self.timeout;
        let mut got = Vec::new();
        loop {
            match self.read_some(&mut got, deadline) {
                Seen::Bytes => continue,
                Seen::Closed => return (got, true),
                Seen::TimedOut => return (got, false),
            }
        }
    }

    /// How many bytes sent on this connection the peer has not read yet (Linux `SIOCOUTQ`):
    /// a script waits for 0 between two writes so that the peer sees them as two reads.
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
