//! The blocking reference server (SPEC.md sections 5 and 7): one thread per connection around
//! [`ServerSession`], an accept loop that sleeps in `poll` until a client or a shutdown arrives.
//!
//! Per message it does one `read` into a reused 4 KiB stack buffer and one `write` per batch of
//! owed pongs; it neither allocates nor logs unless `log_messages` is set.
//!
//! It logs through the [`log`] facade (refusals, counts, the socket file's fate; the seed's
//! per-message lines with the target [`crate::logger::MESSAGES`]) and never writes to stdout or
//! stderr itself, so no reader of its output can stop or kill it (SPEC: SRV-LOG-1).
//!
//! Outside Linux (the `portable` module) there is no `SIGPWR` in [`STOP_SIGNALS`] and no
//! `SO_PEERCRED`: a server with allow lists refuses every peer, logging that peer credentials
//! are read only on Linux.
#![deny(unsafe_code, clippy::undocumented_unsafe_blocks)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
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
    /// The signal actions installed for this handle, removed (and their copies of `sender`
    /// closed) when it goes.
    signals: Mutex<Vec<signal_hook::SigId>>,
}

impl Drop for Wake {
    fn drop(&mut self) {
        for id in self.signals.get_mut().unwrap_or_else(|p| p.into_inner()).drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
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
        Ok(ShutdownHandle(Arc::new(Wake { stop, report, sender, receiver, signals: Mutex::default() })))
    }

    /// Makes SIGINT, SIGTERM, SIGHUP, SIGQUIT and every other catchable signal whose default
    /// action ends the process ([`STOP_SIGNALS`]) shut the server down (SPEC: LIFE-SHUT-1,
    /// LIFE-SHUT-3). Install this before binding: a signal that arrives between `bind` and the
    /// handlers would otherwise kill the process with its default action and leave the socket
    /// file behind. SIGUSR1 makes it log its counts once (SPEC: SRV-COUNT-1).
    pub fn stop_on_signals(&self) -> io::Result<()> {
        let stop = STOP_SIGNALS.iter().map(|&signal| (signal, &self.0.stop));
        let mut installed = self.0.signals.lock().unwrap_or_else(|p| p.into_inner());
        for (signal, flag) in stop.chain([(signal_hook::consts::SIGUSR1, &self.0.report)]) {
            installed.push(signal_hook::flag::register(signal, Arc::clone(flag))?);
            installed.push(signal_hook::low_level::pipe::register(signal, self.0.sender.try_clone()?)?);
        }
        // SPEC: LIFE-SHUT-3, SRV-LOG-1 — a log file grown past RLIMIT_FSIZE makes writes fail
        // with EFBIG, costing log lines, instead of killing the server: SIGXFSZ is caught by a
        // flag nothing reads.
        installed.push(signal_hook::flag::register(signal_hook::consts::SIGXFSZ, Arc::default())?);
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

pub use platform::STOP_SIGNALS;

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
        // The listener comes back non-blocking, as the accept loop needs it.
        let (listener, socket_file) = socket_path::bind(&config.socket, config.mode)?;
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
        let mut next_stats = self.config.stats_interval.and_then(|every| Instant::now().checked_add(every));
        let mut refusals = RefusalLog::default();
        // A client accepted when no thread could be started for it: served first, later.
        let mut waiting: Option<UnixStream> = None;
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
            // A waiting client needs no readiness: once the back-off is over, it is retried now.
            let retry_now = accepting && waiting.is_some();
            let watched = if (accepting && !retry_now) || pressed { &mut fds[..] } else { &mut fds[..1] };
            // Wake up when a back-off ends, the counts are due, refusals are to be summed up or
            // the pressure policy looks again, whichever is first.
            let now = retry_now.then(Instant::now);
            let pressure_wake = pressure_until.filter(|&until| !has_room && until > Instant::now());
            let wake_at = now
                .into_iter()
                .chain(backoff_until)
                .chain(next_stats)
                .chain(refusals.next_due())
                .chain(pressure_wake)
                .min();
            let timeout = wake_at.map(|at| {
                rustix::event::Timespec::try_from(at.saturating_duration_since(Instant::now())).unwrap_or_default()
            });
            match poll(watched, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {} // SPEC: SRV-ERRNO-1
                Err(errno) => return Err(errno.into()),
            }
            let client_waits = pressed && fds[1].revents().contains(PollFlags::IN);
            drain(&self.wake.receiver);
            let due = next_stats.is_some_and(|at| Instant::now() >= at);
            if self.wake.report.swap(false, Ordering::SeqCst) || due {
                log::info!("{}: {}", self.path().display(), StatsHandle(Arc::clone(&counters)).snapshot());
            }
            if due {
                next_stats = self.config.stats_interval.and_then(|every| Instant::now().checked_add(every));
            }
            refusals.report_due(self.path(), Instant::now());
            if backoff_until.is_some_and(|until| Instant::now() >= until) {
                backoff_until = None;
            }
            if accepting {
                backoff_until = self.accept_ready(&connections, &counters, &mut refusals, &mut waiting);
            }
            if has_room {
                pressure_until = None;
            }
            if let (true, Some(threshold)) = (client_waits, self.config.pressure_idle) {
                let threshold = threshold.min(self.config.idle_timeout.unwrap_or(threshold));
                pressure_until = Some(match connections.make_room(threshold, Instant::now()) {
                    // The closed connection's thread wakes this loop as it leaves the table.
                    Pressure::Evict(_) => Instant::now() + Duration::from_secs(1),
                    Pressure::WaitUntil(at) => at,
                });
            }
        }
        drop(waiting);
        drop(self.listener);
        let removal = self.socket_file.remove_if_ours();
        // SPEC: LIFE-SHUT-1 — connections are closed, not abandoned.
        connections.close_all(Duration::from_secs(5));
        let path = self.socket_file.path();
        refusals.report_due(path, Instant::now() + REFUSAL_WINDOW);
        match &removal {
            Ok(Removal::Replaced) => log::warn!("{}: another file replaced the socket; left it alone", path.display()),
            Err(e) => log::warn!("{}: the socket file was not removed: {e}", path.display()),
            Ok(_) => {}
        }
        Ok(Stats { socket_file: Some(removal?), ..StatsHandle(counters).snapshot() })
    }

    /// Accepts every waiting client there is room for, starting with `waiting`, a client
    /// accepted before for whom no thread could be started. Returns a back-off deadline when
    /// `accept` fails (descriptors or memory ran out, or any persistent error) or a thread
    /// cannot be started, so the loop neither crashes nor spins, and no accepted client is
    /// dropped unanswered (SPEC: SRV-ACCEPT-1).
    fn accept_ready(
        &self,
        connections: &Arc<Connections>,
        counters: &Arc<Counters>,
        refusals: &mut RefusalLog,
        waiting: &mut Option<UnixStream>,
    ) -> Option<Instant> {
        while connections.open() < self.config.max_connections {
            let stream = match waiting.take() {
                Some(stream) => stream,
                None => match self.listener.accept() {
                    Ok((stream, _)) => {
                        counters.accepted.fetch_add(1, Ordering::Relaxed);
                        if !self.peer_allowed(&stream, refusals) {
                            counters.refused.fetch_add(1, Ordering::Relaxed);
                            continue; // dropping the stream closes it before a byte is read
                        }
                        stream
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Errors of one pending connection concern only it.
                    Err(e) if is_about_one_connection(&e) => continue,
                    // SPEC: SRV-ACCEPT-1 — back off instead of spinning (EMFILE, ENFILE, ENOBUFS,
                    // ENOMEM, and any error that would repeat); existing connections go on.
                    Err(_) => return Some(Instant::now() + ACCEPT_BACKOFF),
                },
            };
            match self.spawn_connection(stream, connections, counters) {
                Ok(()) => {}
                // SPEC: SRV-ACCEPT-1 — no thread now (a pids or memory limit): the client waits,
                // connected, and is served after the back-off.
                Err(Unstarted(Some(stream))) => {
                    *waiting = Some(stream);
                    return Some(Instant::now() + ACCEPT_BACKOFF);
                }
                // Its socket options could not be set: this connection is broken, not the server.
                Err(Unstarted(None)) => {
                    counters.ended_by_io_error.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        None
    }

    /// SPEC: LIFE-CRED-1 — with allow lists configured, the peer's uid, primary gid or one of
    /// its supplementary groups must be in them.
    fn peer_allowed(&self, stream: &UnixStream, refusals: &mut RefusalLog) -> bool {
        let config = &self.config;
        if config.allow_uids.is_empty() && config.allow_gids.is_empty() {
            return true;
        }
        match platform::peer_credentials(stream) {
            Ok(cred) => {
                let (uid, gid) = (cred.uid, cred.gid);
                if config.allow_uids.contains(&uid) || config.allow_gids.contains(&gid) {
                    return true;
                }
                if !config.allow_gids.is_empty()
                    && peer_groups(stream).is_some_and(|groups| groups.iter().any(|g| config.allow_gids.contains(g)))
                {
                    return true;
                }
                if refusals.admit(Some(uid), Instant::now()) {
                    log::warn!(
                        "{}: refused a connection from pid {} (uid {uid}, gid {gid}): not an allowed user or group",
                        self.path().display(),
                        cred.pid
                    );
                }
                false
            }
            Err(e) => {
                if refusals.admit(None, Instant::now()) {
                    log::warn!("{}: refused a connection whose credentials cannot be read: {e}", self.path().display());
                }
                false
            }
        }
    }

    fn spawn_connection(
        &self,
        stream: UnixStream,
        connections: &Arc<Connections>,
        counters: &Arc<Counters>,
    ) -> Result<(), Unstarted> {
        // On Linux an accepted socket does not inherit the listener's O_NONBLOCK, so the
        // connection thread's IO is blocking without another syscall.
        // SPEC: SRV-IDLE-1, SRV-WRITE-1 — the kernel enforces both: a read or write that waits
        // longer fails with EAGAIN, and the connection ends as a timeout.
        let timeouts = stream
            .set_read_timeout(self.config.idle_timeout)
            .and(stream.set_write_timeout(Some(self.config.write_timeout)));
        if timeouts.is_err() {
            return Err(Unstarted(None));
        }
        let stream = Arc::new(stream);
        // Kept until the thread has started: if it cannot, the closure (and the connection in
        // it, which leaves the table) is dropped, and this is the stream's last holder.
        let kept = Arc::clone(&stream);
        // The thread owns the connection (the whole of it: `Connection` has a `Drop`), and the
        // connection leaves the table when the thread ends.
        let activity = Arc::new(Activity::new());
        let connection = Connection {
            id: connections.insert(Arc::clone(&stream), Arc::clone(&activity)),
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
            let counter = match serve_connection(&connection.stream, log, &activity) {
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
        // On success `kept` goes here, leaving the thread and the table as the stream's holders.
        match spawned {
            Ok(_) => Ok(()),
            Err(_) => Err(Unstarted(Arc::into_inner(kept))),
        }
    }
}

/// A connection whose thread did not start, with the stream when it can be served later (the
/// back-off is the same whatever the error was).
struct Unstarted(Option<UnixStream>);

/// `accept` errors that concern one pending connection only, so the next `accept` may succeed.
fn is_about_one_connection(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error().map(rustix::io::Errno::from_raw_os_error),
        Some(rustix::io::Errno::CONNABORTED | rustix::io::Errno::PROTO | rustix::io::Errno::PERM)
    )
}

/// How long one window of the refusal rate limit lasts (SPEC: LIFE-CRED-2).
pub const REFUSAL_WINDOW: Duration = Duration::from_secs(1);
/// How many refusals per peer uid each window logs one by one; the rest are summed up.
pub const REFUSALS_LOGGED_PER_WINDOW: u32 = 5;
/// At most this many uids are tracked; refusals from further uids are summed together.
const REFUSAL_UIDS: usize = 1024;

/// Rate limit for refusal lines (SPEC: LIFE-CRED-2): per peer uid (`None`: unreadable
/// credentials), the first few of each window are logged one by one, and the rest as one
/// "N more" line when the window ends. A flood of refused peers costs a line or two per second.
#[derive(Default)]
struct RefusalLog {
    windows: HashMap<Option<u32>, RefusalWindow>,
    /// Refusals from uids beyond [`REFUSAL_UIDS`], not logged one by one.
    overflow: u64,
}

struct RefusalWindow {
    ends: Instant,
    logged: u32,
    suppressed: u64,
}

impl RefusalLog {
    /// Counts a refusal; whether to log it one by one.
    fn admit(&mut self, uid: Option<u32>, now: Instant) -> bool {
        if !self.windows.contains_key(&uid) && self.windows.len() >= REFUSAL_UIDS {
            self.overflow += 1;
            return false;
        }
        let window =
            self.windows.entry(uid).or_insert(RefusalWindow { ends: now + REFUSAL_WINDOW, logged: 0, suppressed: 0 });
        if window.logged < REFUSALS_LOGGED_PER_WINDOW {
            window.logged += 1;
            true
        } else {
            window.suppressed += 1;
            false
        }
    }

    /// When the earliest window with refusals to sum up ends.
    fn next_due(&self) -> Option<Instant> {
        self.windows.values().map(|w| w.ends).min()
    }

    /// Logs the "N more" lines of every window that ended by `now` and forgets those windows.
    fn report_due(&mut self, path: &Path, now: Instant) {
        if self.next_due().is_none_or(|due| due > now) {
            return;
        }
        self.windows.retain(|uid, window| {
            if window.ends > now {
                return true;
            }
            if window.suppressed > 0 {
                let who = uid.map_or_else(|| "peers with unreadable credentials".to_string(), |u| format!("uid {u}"));
                log::warn!(
                    "{}: refused {} more connections from {who} in {} s (not logged one by one)",
                    path.display(),
                    window.suppressed,
                    REFUSAL_WINDOW.as_secs()
                );
            }
            false
        });
        if self.windows.is_empty() && self.overflow > 0 {
            log::warn!("{}: refused {} more connections from other users", path.display(), self.overflow);
            self.overflow = 0;
        }
    }
}

/// A connected peer, as the kernel recorded it at `connect` (SPEC: LIFE-CRED-1).
struct PeerCredentials {
    pid: i32,
    uid: u32,
    gid: u32,
}

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use portable as platform;

/// What differs on Linux: `SIGPWR` and `SO_PEERCRED`.
#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::unix::net::UnixStream;

    use super::PeerCredentials;

    /// The signals that stop a server wired with
    /// [`ShutdownHandle::stop_on_signals`](super::ShutdownHandle::stop_on_signals): all those
    /// that can be caught and whose default action ends the process, except the faults of the
    /// process itself (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT), SIGPIPE, which
    /// Rust ignores, and SIGXFSZ, which is caught and ignored (SPEC: LIFE-SHUT-1, LIFE-SHUT-3).
    pub const STOP_SIGNALS: [i32; 11] = {
        use signal_hook::consts::*;
        [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, libc::SIGPWR, SIGXCPU]
    };

    /// The peer's pid, uid and gid (`SO_PEERCRED`).
    pub(super) fn peer_credentials(stream: &UnixStream) -> io::Result<PeerCredentials> {
        let cred = rustix::net::sockopt::socket_peercred(stream)?;
        Ok(PeerCredentials { pid: cred.pid.as_raw_nonzero().get(), uid: cred.uid.as_raw(), gid: cred.gid.as_raw() })
    }
}

/// What differs elsewhere (macOS, the BSDs): no `SIGPWR`, and no peer credentials, so that a
/// server with allow lists refuses every peer and says why (SPEC.md section 11).
#[cfg(not(target_os = "linux"))]
mod portable {
    use std::io;
    use std::os::unix::net::UnixStream;

    use super::PeerCredentials;

    /// The signals that stop a server wired with
    /// [`ShutdownHandle::stop_on_signals`](super::ShutdownHandle::stop_on_signals): those of
    /// Linux (SPEC: LIFE-SHUT-1, LIFE-SHUT-3) but `SIGPWR`, which only Linux has.
    pub const STOP_SIGNALS: [i32; 10] = {
        use signal_hook::consts::*;
        [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR2, SIGALRM, SIGVTALRM, SIGPROF, SIGIO, SIGXCPU]
    };

    /// Peer credentials are read only on Linux: never any here.
    pub(super) fn peer_credentials(_stream: &UnixStream) -> io::Result<PeerCredentials> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "peer credentials (SO_PEERCRED) are read only on Linux, so allow lists refuse every peer here",
        ))
    }
}

/// The peer's supplementary groups (`SO_PEERGROUPS`, Linux 4.13), or `None` where the kernel
/// does not give them; the primary gid of `SO_PEERCRED` is then all there is (SPEC: LIFE-CRED-1).
#[cfg(all(
    target_os = "linux",
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64", target_arch = "powerpc"))
))]
#[allow(unsafe_code)] // the one unsafe call of the server: rustix has no SO_PEERGROUPS
fn peer_groups(stream: &UnixStream) -> Option<Vec<u32>> {
    use std::os::fd::AsRawFd;
    /// `SO_PEERGROUPS` from `asm-generic/socket.h`; the `libc` crate does not export it.
    const SO_PEERGROUPS: libc::c_int = 59;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = libc::socklen_t::try_from(std::mem::size_of_val(groups.as_slice())).ok()?;
        // SAFETY: the buffer is valid for writes of `len` bytes and lives across the call; `len`
        // is a valid socklen_t the kernel updates; the descriptor is open for as long as
        // `stream` is borrowed. getsockopt writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, SO_PEERGROUPS, groups.as_mut_ptr().cast(), &mut len)
        };
        let needed = usize::try_from(len).ok()? / std::mem::size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(needed);
            return Some(groups);
        }
        // ERANGE: the kernel says how much room it needs; anything else (ENOPROTOOPT on an old
        // kernel): no supplementary groups to go by.
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || needed <= groups.len() {
            return None;
        }
        groups.resize(needed, 0);
    }
}

#[cfg(not(all(
    target_os = "linux",
    not(any(target_arch = "mips", target_arch = "mips64", target_arch = "sparc64", target_arch = "powerpc"))
)))]
fn peer_groups(_stream: &UnixStream) -> Option<Vec<u32>> {
    None
}

fn drain(receiver: &UnixStream) {
    let mut sink = [0u8; 64];
    while matches!((&*receiver).read(&mut sink), Ok(n) if n > 0) {}
}

/// Serves one connection to its end: the driver around [`ServerSession`]. Every failure here,
/// from the peer or from IO, ends this connection's thread and nothing else (SPEC: SRV-INVALID-2, SRV-ISOLATE-1).
fn serve_connection(mut stream: &UnixStream, log: bool, activity: &Activity) -> io::Result<Ending> {
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
            // SPEC: WIRE-CLOSE-1, SRV-COUNT-1 — a reset is how a peer's close reads when it left
            // bytes unread: the end of its stream.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => session.on_eof(),
            Err(e) => return Err(e),
        };
        // SPEC: SRV-PONG-3 — answered as soon as the read that completed the pings returns.
        for chunk in pong_chunks(reply.pongs) {
            match stream.write_all(chunk) {
                Ok(()) => {}
                // SPEC: SRV-COUNT-1 — the peer closed before reading its pongs: its stream ended
                // (with `end` if it sent it before leaving).
                Err(e) if is_peer_gone(&e) => {
                    let eof = Ending::Eof { mid_token: false };
                    return Ok(reply.close.unwrap_or_else(|| session.on_eof().close.unwrap_or(eof)));
                }
                Err(e) => return Err(e),
            }
        }
        if log {
            log_reply(reply.pongs, reply.close);
        }
        if let Some(ending) = reply.close {
            return Ok(ending);
        }
    }
}

fn is_peer_gone(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset)
}

/// The seed's log lines, for `--log-messages`, through the `log` facade (target
/// [`crate::logger::MESSAGES`]): one record per read, however many pings it completed.
fn log_reply(pongs: usize, close: Option<Ending>) {
    use crate::logger::MESSAGES;
    const PER_PING: &str = "Server: Received ping\nServer: Sent pong";
    let mut lines = vec![PER_PING; pongs].join("\n");
    let ending = match close {
        None => None,
        Some(Ending::End) => Some("Server: Connection shutting down".to_string()),
        Some(Ending::Invalid(invalid)) => Some(format!("Server Error: {invalid}, shutting down connection")),
        Some(Ending::Eof { mid_token }) => Some(format!(
            "Server Error: client closed before \"end\"{}",
            if mid_token { " in the middle of a token" } else { "" }
        )),
    };
    if let Some(ending) = ending {
        if !lines.is_empty() {
            lines.push('\n');
        }
        lines.push_str(&ending);
    }
    if !lines.is_empty() {
        log::info!(target: MESSAGES, "{lines}");
    }
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
    /// Every open connection's stream, shared with its thread, and its activity: the descriptor
    /// stays open for as long as either holds it, so shutdown can never reach a number that was
    /// closed and reused.
    open: HashMap<u64, (Arc<UnixStream>, Arc<Activity>)>,
}

/// One served connection, owned by its thread. Dropping it takes it out of the table.
struct Connection {
    stream: Arc<UnixStream>,
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

    fn insert(&self, stream: Arc<UnixStream>, activity: Arc<Activity>) -> u64 {
        let mut table = self.lock();
        let id = table.next_id;
        table.next_id += 1;
        table.open.insert(id, (stream, activity));
        id
    }

    /// SPEC: SRV-IDLE-2 — shuts down the longest-idle connection if it has been idle for
    /// `threshold`; its thread then ends it (as a timeout) and frees the slot.
    fn make_room(&self, threshold: Duration, now: Instant) -> Pressure {
        let table = self.lock();
        let pressure = limits::under_pressure(table.open.iter().map(|(&id, (_, a))| (id, &**a)), threshold, now);
        if let Pressure::Evict(id) = pressure {
            if let Some((stream, _)) = table.open.get(&id) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        }
        pressure
    }

    /// Removes a connection; returns how many were open before.
    fn remove(&self, id: u64) -> usize {
        let mut table = self.lock();
        let before = table.open.len();
        let stream = table.open.remove(&id);
        drop(table);
        drop(stream); // closed (if this was the last holder) outside the lock
        self.changed.notify_all();
        before
    }

    /// Shuts every connection down (its thread's blocking read returns) and waits, up to
    /// `limit`, for the threads to finish.
    fn close_all(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut table = self.lock();
        for (stream, _) in table.open.values() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
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
