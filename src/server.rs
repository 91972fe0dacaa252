//! The blocking reference server (SPEC.md sections 5 and 7): one thread per connection around
//! [`ServerSession`], an accept loop that sleeps in `poll` until a client or a shutdown arrives.
//!
//! Per message it does one `read` into a reused 4 KiB stack buffer and one `write` per batch of
//! owed pongs; it neither allocates nor logs unless `log_messages` is set.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags};

use crate::proto::{pong_chunks, Ending, ServerSession};
use crate::socket_path::{self, BindError, Removal, SocketFile};

pub mod limits;
use limits::{Activity, Pressure};

/// How to run a server. The defaults are those of `udsping serve` (SPEC.md section 11).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The socket file to listen on, or `@name` for an abstract address.
    pub socket: PathBuf,
    /// Mode of the socket file, applied without a window (SPEC: LIFE-PERM-1, LIFE-PERM-2).
    pub mode: u32,
    /// Connections served at once; further clients wait in the listen backlog until one ends
    /// (SPEC: SRV-LIMIT-1). Default: [`limits::default_max_connections`].
    pub max_connections: usize,
    /// With every slot taken and a client waiting, close the longest-idle connection once it
    /// has been idle this long (SPEC: SRV-IDLE-2); `None`: never.
    pub pressure_idle: Option<Duration>,
    /// Close a connection that sends nothing for this long (SPEC: SRV-IDLE-1); `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose pongs cannot be written for this long (SPEC: SRV-WRITE-1).
    pub write_timeout: Duration,
    /// Serve only peers with one of these uids or gids; both empty: anyone (SPEC: LIFE-CRED-1).
    pub allow_uids: Vec<u32>,
    /// See `allow_uids`: a peer whose gid is here is served too.
    pub allow_gids: Vec<u32>,
    /// Print the counts to stderr this often (SPEC: SRV-COUNT-1).
    pub stats_interval: Option<Duration>,
    /// Print the seed's per-message lines (`Server: Received ping`, ...) on stdout.
    pub log_messages: bool,
}

impl ServerConfig {
    /// The defaults of `udsping serve`, for `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        ServerConfig {
            socket: socket.into(),
            mode: 0o600,
            max_connections: limits::default_max_connections(),
            pressure_idle: Some(limits::PRESSURE_IDLE),
            idle_timeout: Some(Duration::from_secs(120)),
            write_timeout: Duration::from_secs(10),
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            stats_interval: None,
            log_messages: false,
        }
    }
}

/// The pause before accepting again after descriptors or memory ran out (SPEC: SRV-ACCEPT-1).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Connection counts, by how each connection ended (SPEC: SRV-COUNT-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Closed before a byte was read: the peer's credentials were not allowed (LIFE-CRED-1).
    pub refused: u64,
    /// Ended by `end` (SPEC: SRV-END-1): the orderly end.
    pub ended_by_end: u64,
    /// Closed at an invalid byte (SPEC: SRV-INVALID-1).
    pub ended_by_invalid: u64,
    /// EOF before `end` (SPEC: SRV-EOF-2): an abnormal end.
    pub ended_by_eof: u64,
    /// Idle or write timeout (SPEC: SRV-IDLE-1, SRV-WRITE-1).
    pub ended_by_timeout: u64,
    /// A read or write failed (reset, broken pipe, shutdown).
    pub ended_by_io_error: u64,
    /// Where the socket file stood after shutdown.
    pub socket_file: Option<Removal>,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accepted {}, refused {}, open {}, ended by end {}, by invalid input {}, by EOF {}, by timeout {}, by IO error {}",
            self.accepted,
            self.refused,
            self.open(),
            self.ended_by_end,
            self.ended_by_invalid,
            self.ended_by_eof,
            self.ended_by_timeout,
            self.ended_by_io_error
        )
    }
}

/// Live connection counts of a running server, readable from any thread.
#[derive(Clone)]
pub struct StatsHandle(Arc<Counters>);

impl StatsHandle {
    /// The counts now (`socket_file` is `None` while the server runs).
    pub fn snapshot(&self) -> Stats {
        let c = &self.0;
        Stats {
            accepted: c.accepted.load(Ordering::SeqCst),
            refused: c.refused.load(Ordering::SeqCst),
            ended_by_end: c.ended_by_end.load(Ordering::SeqCst),
            ended_by_invalid: c.ended_by_invalid.load(Ordering::SeqCst),
            ended_by_eof: c.ended_by_eof.load(Ordering::SeqCst),
            ended_by_timeout: c.ended_by_timeout.load(Ordering::SeqCst),
            ended_by_io_error: c.ended_by_io_error.load(Ordering::SeqCst),
            socket_file: None,
        }
    }
}

impl Stats {
    /// Connections that have ended, however.
    pub fn ended(&self) -> u64 {
        self.ended_by_end + self.ended_by_invalid + self.ended_by_eof + self.ended_by_timeout + self.ended_by_io_error
    }

    /// Connections being served: accepted, neither refused nor ended.
    pub fn open(&self) -> u64 {
        self.accepted.saturating_sub(self.refused + self.ended())
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused: AtomicU64,
    ended_by_end: AtomicU64,
    ended_by_invalid: AtomicU64,
    ended_by_eof: AtomicU64,
    ended_by_timeout: AtomicU64,
    ended_by_io_error: AtomicU64,
}

/// Stops a running server from any thread (or from a signal handler, see
/// [`ShutdownHandle::stop_on_signals`]).
#[derive(Clone)]
pub struct ShutdownHandle(Arc<Wake>);

struct Wake {
    stop: Arc<AtomicBool>,
    /// Set to have the accept loop print the counts once.
    report: Arc<AtomicBool>,
    /// Writing a byte here wakes the accept loop's `poll`.
    sender: UnixStream,
    receiver: UnixStream,
}

impl Wake {
    fn nudge(&self) {
        // A full buffer already holds a wake-up, so a failed write loses nothing.
        let _ = (&self.sender).write(&[1]);
    }
}

impl ShutdownHandle {
    /// A handle for a server not bound yet, so that signals can be routed to it before the
    /// socket exists (see [`Server::bind_with`]).
    pub fn new() -> io::Result<ShutdownHandle> {
        let (sender, receiver) = UnixStream::pair()?;
        sender.set_nonblocking(true)?;
        receiver.set_nonblocking(true)?;
        let (stop, report) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        Ok(ShutdownHandle(Arc::new(Wake { stop, report, sender, receiver })))
    }

    /// Makes SIGINT and SIGTERM shut the server down (SPEC: LIFE-SHUT-1). Install this before
    /// binding: a signal that arrives between `bind` and the handlers would otherwise kill the
    /// process with its default action and leave the socket file behind.
    /// SIGUSR1 makes it print its counts once (SPEC: SRV-COUNT-1).
    pub fn stop_on_signals(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};
        for (signal, flag) in [(SIGINT, &self.0.stop), (SIGTERM, &self.0.stop), (SIGUSR1, &self.0.report)] {
            signal_hook::flag::register(signal, Arc::clone(flag))?;
            signal_hook::low_level::pipe::register(signal, self.0.sender.try_clone()?)?;
        }
        Ok(())
    }

    /// Asks the server to print its counts to stderr once, as SIGUSR1 does.
    pub fn request_stats(&self) {
        self.0.report.store(true, Ordering::SeqCst);
        self.0.nudge();
    }

    /// Asks the server to stop: it stops accepting, closes its connections, removes its socket
    /// file if it is still its own, and [`Server::run`] returns.
    pub fn shutdown(&self) {
        self.0.stop.store(true, Ordering::SeqCst);
        self.0.nudge();
    }
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: UnixListener,
    socket_file: SocketFile,
    config: ServerConfig,
    wake: Arc<Wake>,
    counters: Arc<Counters>,
}

impl Server {
    /// Prepares the path and binds (SPEC.md section 7.1): refuses a live server, anything that
    /// is not a socket, and races; removes only a stale socket.
    pub fn bind(config: ServerConfig) -> Result<Server, BindError> {
        let shutdown =
            ShutdownHandle::new().map_err(|source| BindError::Bind { path: config.socket.clone(), source })?;
        Self::bind_with(config, shutdown)
    }

    /// Like [`bind`](Server::bind), stopped through a handle made (and perhaps wired to
    /// signals) beforehand. A shutdown requested before `run` makes `run` return at once.
    /// The process's soft descriptor limit is raised to its hard limit first (see
    /// [`limits::raise_descriptor_limit`]).
    pub fn bind_with(config: ServerConfig, shutdown: ShutdownHandle) -> Result<Server, BindError> {
        limits::raise_descriptor_limit();
        let (listener, socket_file) = socket_path::bind(&config.socket, config.mode)?;
        listener.set_nonblocking(true).map_err(|source| BindError::Bind { path: config.socket.clone(), source })?;
        Ok(Server { listener, socket_file, config, wake: shutdown.0, counters: Arc::default() })
    }

    /// The path the server listens on.
    pub fn path(&self) -> &Path {
        self.socket_file.path()
    }

    /// A handle that reads the live counts while the server runs.
    pub fn stats(&self) -> StatsHandle {
        StatsHandle(Arc::clone(&self.counters))
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(Arc::clone(&self.wake))
    }

    /// Serves until shut down, then closes every connection and removes the socket file if it
    /// is still ours. Returns the connection counts.
    pub fn run(mut self) -> io::Result<Stats> {
        let connections = Arc::new(Connections::default());
        let counters = Arc::clone(&self.counters);
        let mut backoff_until: Option<Instant> = None;
        let mut next_stats = self.config.stats_interval.map(|every| Instant::now() + every);
        // SPEC: SRV-IDLE-2 — when full, the backlog is watched for a waiting client, except
        // until this time (after making room, or while nothing is idle long enough).
        let mut pressure_until: Option<Instant> = None;
        while !self.wake.stop.load(Ordering::SeqCst) {
            let has_room = connections.open() < self.config.max_connections;
            let accepting = has_room && backoff_until.is_none_or(|until| Instant::now() >= until);
            let pressed = !has_room
                && self.config.pressure_idle.is_some()
                && pressure_until.is_none_or(|until| Instant::now() >= until);
            let mut fds = [PollFd::new(&self.wake.receiver, PollFlags::IN), PollFd::new(&self.listener, PollFlags::IN)];
            let watched = if accepting || pressed { &mut fds[..] } else { &mut fds[..1] };
            // Wake up when a back-off ends, the counts are due or the pressure policy looks
            // again, whichever is first.
            let pressure_wake = pressure_until.filter(|&until| !has_room && until > Instant::now());
            let wake_at = backoff_until.into_iter().chain(next_stats).chain(pressure_wake).min();
            let timeout = wake_at.map(|at| {
                rustix::event::Timespec::try_from(at.saturating_duration_since(Instant::now())).unwrap_or_default()
            });
            match poll(watched, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {} // SPEC: SRV-ERRNO-1
                Err(errno) => return Err(errno.into()),
            }
            let waiting = pressed && fds[1].revents().contains(PollFlags::IN);
            drain(&self.wake.receiver);
            let due = next_stats.is_some_and(|at| Instant::now() >= at);
            if self.wake.report.swap(false, Ordering::SeqCst) || due {
                eprintln!("udsping: {}: {}", self.path().display(), StatsHandle(Arc::clone(&counters)).snapshot());
            }
            if due {
                next_stats = self.config.stats_interval.map(|every| Instant::now() + every);
            }
            if backoff_until.is_some_and(|until| Instant::now() >= until) {
                backoff_until = None;
            }
            if accepting {
                backoff_until = self.accept_ready(&connections, &counters);
            }
            if has_room {
                pressure_until = None;
            }
            if let (true, Some(threshold)) = (waiting, self.config.pressure_idle) {
                let threshold = threshold.min(self.config.idle_timeout.unwrap_or(threshold));
                pressure_until = Some(match connections.make_room(threshold, Instant::now()) {
                    // The closed connection's thread wakes this loop as it leaves the table.
                    Pressure::Evict(_) => Instant::now() + Duration::from_secs(1),
                    Pressure::WaitUntil(at) => at,
                });
            }
        }
        drop(self.listener);
        let removal = self.socket_file.remove_if_ours();
        // SPEC: LIFE-SHUT-1 — connections are closed, not abandoned.
        connections.close_all(Duration::from_secs(5));
        Ok(Stats { socket_file: Some(removal?), ..StatsHandle(counters).snapshot() })
    }

    /// Accepts every waiting client there is room for. Returns a back-off deadline when the
    /// process is out of descriptors or memory, so the loop neither crashes nor spins.
    fn accept_ready(&self, connections: &Arc<Connections>, counters: &Arc<Counters>) -> Option<Instant> {
        while connections.open() < self.config.max_connections {
            let stream = match self.listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // SPEC: SRV-ACCEPT-1 — back off instead of spinning; existing connections go on.
                Err(e) if is_resource_exhaustion(&e) => return Some(Instant::now() + ACCEPT_BACKOFF),
                // Errors of one pending connection (ECONNABORTED, EPROTO) concern only it.
                Err(_) => continue,
            };
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            if !self.peer_allowed(&stream) {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                continue; // dropping the stream closes it before a byte is read
            }
            if let Err(e) = self.spawn_connection(stream, connections, counters) {
                counters.ended_by_io_error.fetch_add(1, Ordering::Relaxed);
                if is_resource_exhaustion(&e) {
                    return Some(Instant::now() + ACCEPT_BACKOFF);
                }
            }
        }
        None
    }

    /// SPEC: LIFE-CRED-1 — with allow lists configured, the peer's uid or gid must be in them.
    fn peer_allowed(&self, stream: &UnixStream) -> bool {
        let config = &self.config;
        if config.allow_uids.is_empty() && config.allow_gids.is_empty() {
            return true;
        }
        match peer_credentials(stream) {
            Ok((pid, uid, gid)) => {
                let allowed = config.allow_uids.contains(&uid) || config.allow_gids.contains(&gid);
                if !allowed {
                    eprintln!(
                        "udsping: {}: refused a connection from pid {pid} (uid {uid}, gid {gid}): not an allowed user or group",
                        self.path().display(),
                    );
                }
                allowed
            }
            Err(e) => {
                eprintln!(
                    "udsping: {}: refused a connection whose credentials cannot be read: {e}",
                    self.path().display()
                );
                false
            }
        }
    }

    fn spawn_connection(
        &self,
        stream: UnixStream,
        connections: &Arc<Connections>,
        counters: &Arc<Counters>,
    ) -> io::Result<()> {
        // On Linux an accepted socket does not inherit the listener's O_NONBLOCK, so the
        // connection thread's IO is blocking without another syscall.
        // SPEC: SRV-IDLE-1, SRV-WRITE-1 — the kernel enforces both: a read or write that waits
        // longer fails with EAGAIN, and the connection ends as a timeout.
        stream.set_read_timeout(self.config.idle_timeout)?;
        stream.set_write_timeout(Some(self.config.write_timeout))?;
        let activity = Arc::new(Activity::new());
        let mut connection = Connection {
            id: connections.insert(stream.as_raw_fd(), Arc::clone(&activity)),
            stream,
            table: Arc::clone(connections),
            wake: Arc::clone(&self.wake),
            max: self.config.max_connections,
        };
        let (counters, log) = (Arc::clone(counters), self.config.log_messages);
        // SPEC: SRV-CONC-1, SRV-CONC-2 — a thread per connection, so a connection that blocks in
        // read or write blocks only its own thread.
        let thread = thread::Builder::new().name("udsping-conn".into()).stack_size(limits::CONNECTION_STACK);
        let spawned = thread.spawn(move || {
            let counter = match serve_connection(&mut connection.stream, log, &activity) {
                _ if activity.evicted() => &counters.ended_by_timeout, // SPEC: SRV-IDLE-2
                Ok(Ending::End) => &counters.ended_by_end,
                Ok(Ending::Invalid(_)) => &counters.ended_by_invalid,
                Ok(Ending::Eof { .. }) => &counters.ended_by_eof,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    &counters.ended_by_timeout
                }
                Err(_) => &counters.ended_by_io_error,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        });
        // If the thread could not start, the closure (and the connection in it) is dropped here.
        spawned.map(drop)
    }
}

fn is_resource_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(rustix::io::Errno::from_raw_os_error),
        Some(
            rustix::io::Errno::MFILE
                | rustix::io::Errno::NFILE
                | rustix::io::Errno::NOBUFS
                | rustix::io::Errno::NOMEM
                | rustix::io::Errno::AGAIN
        )
    )
}

fn drain(receiver: &UnixStream) {
    let mut sink = [0u8; 64];
    while matches!((&*receiver).read(&mut sink), Ok(n) if n > 0) {}
}

/// Serves one connection to its end: the driver around [`ServerSession`]. Every failure here,
/// from the peer or from IO, ends this connection's thread and nothing else (SPEC: SRV-INVALID-2, SRV-ISOLATE-1).
fn serve_connection(stream: &mut UnixStream, log: bool, activity: &Activity) -> io::Result<Ending> {
    let mut session = ServerSession::new();
    let mut buffer = [0u8; 4096];
    loop {
        let reply = match stream.read(&mut buffer) {
            Ok(0) => session.on_eof(),
            Ok(n) => {
                activity.touch();
                session.on_bytes(&buffer[..n])
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // SPEC: SRV-PONG-3 — answered as soon as the read that completed the pings returns.
        for chunk in pong_chunks(reply.pongs) {
            stream.write_all(chunk)?;
        }
        if log {
            log_reply(reply.pongs, reply.close);
        }
        if let Some(ending) = reply.close {
            return Ok(ending);
        }
    }
}

/// The seed's log lines, for `--log-messages`.
fn log_reply(pongs: usize, close: Option<Ending>) {
    let mut out = io::stdout().lock();
    for _ in 0..pongs {
        let _ = writeln!(out, "Server: Received ping\nServer: Sent pong");
    }
    let _ = match close {
        None => Ok(()),
        Some(Ending::End) => writeln!(out, "Server: Connection shutting down"),
        Some(Ending::Invalid(invalid)) => writeln!(out, "Server Error: {invalid}, shutting down connection"),
        Some(Ending::Eof { mid_token }) => {
            writeln!(
                out,
                "Server Error: client closed before \"end\"{}",
                if mid_token { " in the middle of a token" } else { "" }
            )
        }
    };
}

/// The open connections, so that shutdown can close them and wait for their threads.
#[derive(Default)]
struct Connections {
    state: Mutex<ConnectionTable>,
    changed: Condvar,
}

#[derive(Default)]
struct ConnectionTable {
    next_id: u64,
    /// The descriptor of every open connection, with its activity. Each stays open while it is
    /// in the table: a [`Connection`] leaves the table before its stream closes, so shutdown can
    /// never reach a descriptor number that was closed and reused.
    open: HashMap<u64, (RawFd, Arc<Activity>)>,
}

/// One served connection, owned by its thread. Dropping it takes it out of the table first and
/// closes the stream after (fields drop after `drop` runs), which keeps the table's invariant.
struct Connection {
    stream: UnixStream,
    id: u64,
    table: Arc<Connections>,
    wake: Arc<Wake>,
    max: usize,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Waking the accept loop costs a poll and a read; it is needed only when it stopped
        // accepting because every slot was taken.
        if self.table.remove(self.id) >= self.max {
            self.wake.nudge();
        }
    }
}

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionTable> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self) -> usize {
        self.lock().open.len()
    }

    fn insert(&self, fd: RawFd, activity: Arc<Activity>) -> u64 {
        let mut table = self.lock();
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(id, (fd, activity));
        id
    }

    /// SPEC: SRV-IDLE-2 — shuts down the longest-idle connection if it has been idle for
    /// `threshold`; its thread then ends it (as a timeout) and frees the slot.
    fn make_room(&self, threshold: Duration, now: Instant) -> Pressure {
        let table = self.lock();
        let pressure = limits::under_pressure(table.open.iter().map(|(&id, (_, a))| (id, &**a)), threshold, now);
        if let Pressure::Evict(id) = pressure {
            if let Some(&(fd, _)) = table.open.get(&id) {
                // SAFETY: a descriptor in the table is open (see `ConnectionTable::open`), and
                // the table is locked, so its owner cannot close it meanwhile.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Both);
            }
        }
        pressure
    }

    /// Removes a connection; returns how many were open before.
    fn remove(&self, id: u64) -> usize {
        let mut table = self.lock();
        let before = table.open.len();
        table.open.remove(&id);
        drop(table);
        self.changed.notify_all();
        before
    }

    /// Shuts every connection down (its thread's blocking read returns) and waits, up to
    /// `limit`, for the threads to finish.
    fn close_all(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut table = self.lock();
        for &(fd, _) in table.open.values() {
            // SAFETY: a descriptor in the table is open (see `ConnectionTable::open`), and the
            // table is locked, so its owner cannot close it meanwhile.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let _ = rustix::net::shutdown(fd, rustix::net::Shutdown::Both);
        }
        while !table.open.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            table = self.changed.wait_timeout(table, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }
}
/// The peer's pid, uid and gid (SO_PEERCRED). Linux only: elsewhere the credentials are
/// unknown, so an allow list admits nobody and the log line says why.
fn peer_credentials(stream: &UnixStream) -> io::Result<(i32, u32, u32)> {
    #[cfg(target_os = "linux")]
    {
        let cred = rustix::net::sockopt::socket_peercred(stream)?;
        Ok((cred.pid.as_raw_nonzero().get(), cred.uid.as_raw(), cred.gid.as_raw()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = stream;
        Err(io::Error::new(io::ErrorKind::Unsupported, "SO_PEERCRED exists only on Linux"))
    }
}
