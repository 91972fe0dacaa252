//! One trial of one scenario against one server: client loops over real sockets, latency in an
//! HDR histogram, CPU time from getrusage (this process) plus /proc (a child server), memory and
//! threads from /proc, and what else the machine was doing meanwhile (`/proc/stat`,
//! `/proc/loadavg`).
//!
//! Every trial runs under a [`Watchdog`]: at its deadline the trial's sockets are shut down, so
//! a server that stalls (or drips a byte every ten seconds) fails the trial in bounded time
//! instead of hanging the benchmark.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::proto::{END, PING, PONG};

/// Why a trial could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, for the message.
        what: &'static str,
        /// The error the call returned.
        #[source]
        source: io::Error,
    },
    /// The server answered a ping with something other than `pong`.
    #[error("the server replied {got:?} to a ping")]
    WrongReply {
        /// The bytes received instead, ASCII-escaped.
        got: String,
    },
    /// The server sent more than the one `pong` owed for a ping.
    #[error("the server sent {got:?} for one ping, {extra} byte(s) more than the pong owed (round {round} on the connection)")]
    Surplus {
        /// What arrived, ASCII-escaped (at most 64 bytes).
        got: String,
        /// Bytes beyond the pong.
        extra: usize,
        /// The round, counting from 1.
        round: u64,
    },
    /// The server closed (or reset) a connection in the middle of the rounds.
    #[error(
        "the server {how} the connection after {rounds} round(s), with {received} byte(s) of the next pong received"
    )]
    Closed {
        /// `closed` or `reset`.
        how: &'static str,
        /// Rounds completed on the connection.
        rounds: u64,
        /// Bytes of the pending reply that had arrived.
        received: usize,
    },
    /// The connection ended before every ping sent was answered.
    #[error("sent {sent} pings, received {received} pongs")]
    Lost {
        /// Pings written.
        sent: u64,
        /// Pongs read before the connection ended.
        received: u64,
    },
    /// The watchdog fired: the trial ran past its time limit.
    #[error("the trial did not end within {:.2} s of its start (the server stalls or is too slow to measure)", limit.as_secs_f64())]
    Deadline {
        /// The time limit the trial had.
        limit: Duration,
    },
    /// An idle connection of a crowd was not answered in time.
    #[error("idle connection {number} of {count} was not answered within {limit:?} (the server stalls, or its connection limit is lower)")]
    CrowdStalled {
        /// Which connection, counting from 1.
        number: usize,
        /// The crowd's size.
        count: usize,
        /// The time limit it had.
        limit: Duration,
    },
    /// The server closed idle connections of a crowd while the crowd was held open.
    #[error("the server closed {closed} of the {count} idle connections (its connection limit is lower, or it closes idle connections)")]
    CrowdShrank {
        /// Connections found closed.
        closed: usize,
        /// The crowd's size.
        count: usize,
    },
    /// A client thread of the trial panicked.
    #[error("a client thread panicked")]
    Panicked,
    /// Two latency histograms could not be merged (different bounds or precision).
    #[error("cannot merge latency histograms: {0}")]
    Histogram(#[from] hdrhistogram::AdditionError),
    /// The soft RLIMIT_NOFILE leaves no descriptors for the rest of the crowd.
    #[error("{count} idle connections need {needed} descriptors, and RLIMIT_NOFILE allows {limit} (raise it with `ulimit -n`)")]
    Descriptors {
        /// The crowd's size.
        count: usize,
        /// Descriptors the whole crowd needs: one per connection (two when the server runs in
        /// this process) plus a spare margin.
        needed: u64,
        /// The soft RLIMIT_NOFILE.
        limit: u64,
    },
    /// Pinning the process to one CPU (`sched_setaffinity`) failed.
    #[error("cannot pin to one CPU: {0}")]
    Pin(#[source] io::Error),
}

impl MeasureError {
    /// Says which idle connection of a crowd stalled.
    fn numbered(self, number: usize, count: usize) -> MeasureError {
        match self {
            MeasureError::Deadline { limit } => MeasureError::CrowdStalled { number, count, limit },
            other => other,
        }
    }

    fn io(what: &'static str) -> impl FnOnce(io::Error) -> MeasureError {
        move |source| MeasureError::Io { what, source }
    }
}

/// What one trial measured.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Rounds, pongs or sessions completed.
    pub ops: u64,
    /// Wall-clock time the trial took.
    pub elapsed: Duration,
    /// Round-trip (or session) latency in nanoseconds, where the scenario has rounds.
    pub latency: Option<Histogram<u64>>,
    /// CPU time of client and server together.
    pub cpu: Duration,
    /// Operations completed in the time `cpu` covers (for lock-step, the warm-up's too).
    pub cpu_ops: u64,
    /// The fewest and the most rounds one client completed (starvation), with several clients.
    pub client_rounds: Option<(u64, u64)>,
}

impl Sample {
    /// Operations per second: `ops` over `elapsed`.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Shuts a trial's sockets down at its deadline, so every blocked read and write returns.
pub struct Watchdog {
    shared: Arc<(Mutex<Watched>, Condvar)>,
    limit: Duration,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Watched {
    streams: Vec<UnixStream>,
    done: bool,
    expired: bool,
}

impl Watchdog {
    /// A watchdog that fires `limit` from now.
    pub fn start(limit: Duration) -> Watchdog {
        let shared = Arc::new((Mutex::new(Watched::default()), Condvar::new()));
        let deadline = Instant::now() + limit;
        let watching = Arc::clone(&shared);
        let thread = thread::spawn(move || {
            let (lock, changed) = &*watching;
            let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
            while !state.done {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    state.expired = true;
                    for stream in &state.streams {
                        let _ = stream.shutdown(std::net::Shutdown::Both);
                    }
                    return;
                }
                state = changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
            }
        });
        Watchdog { shared, limit, thread: Some(thread) }
    }

    /// Puts `stream` under watch (a duplicate of its descriptor, shut down at the deadline).
    pub fn watch(&self, stream: &UnixStream) -> Result<(), MeasureError> {
        let copy = stream.try_clone().map_err(MeasureError::io("cannot watch a connection"))?;
        let mut state = self.shared.0.lock().unwrap_or_else(|p| p.into_inner());
        if state.expired {
            return Err(MeasureError::Deadline { limit: self.limit });
        }
        state.streams.push(copy);
        Ok(())
    }

    /// Whether the deadline passed and the watched sockets were shut down.
    pub fn expired(&self) -> bool {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).expired
    }

    /// The trial's own error, or the deadline's if the watchdog fired: a shut-down socket makes
    /// the client loops fail with whatever error the kernel gives, which is not the cause.
    pub fn blame(&self, error: MeasureError) -> MeasureError {
        if self.expired() {
            MeasureError::Deadline { limit: self.limit }
        } else {
            error
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).done = true;
        self.shared.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server that stops accepting (a full listen backlog) fails the measurement instead of
/// hanging it.
fn connect_bounded(path: &Path, watchdog: &Watchdog) -> Result<UnixStream, MeasureError> {
    let stream = crate::net::connect_bounded(path, Instant::now() + watchdog.limit)
        .map_err(MeasureError::io("cannot connect"))?;
    watchdog.watch(&stream)?;
    Ok(stream)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// CPU time (user + system) of this process, and of `child` if the server is one.
pub fn cpu_time(child: Option<u32>) -> Duration {
    usage(nix::sys::resource::UsageWho::RUSAGE_SELF) + child.and_then(crate::process::cpu_time).unwrap_or_default()
}

/// User and system time of `who`, from getrusage.
fn usage(who: nix::sys::resource::UsageWho) -> Duration {
    nix::sys::resource::getrusage(who)
        .map(|u| {
            let (user, system) = (u.user_time(), u.system_time());
            Duration::from_micros((user.tv_sec() * 1_000_000 + user.tv_usec()) as u64)
                + Duration::from_micros((system.tv_sec() * 1_000_000 + system.tv_usec()) as u64)
        })
        .unwrap_or_default()
}

/// Resident and virtual memory and thread count of a process (this one for `None`), from
/// /proc/PID/status.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProcessSize {
    pub rss_bytes: u64,
    pub vsz_bytes: u64,
    pub threads: u64,
}

pub(crate) fn process_size(pid: Option<u32>) -> io::Result<ProcessSize> {
    let status = std::fs::read_to_string(pid.map_or("/proc/self/status".into(), |p| format!("/proc/{p}/status")))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .ok_or_else(|| io::Error::other(format!("no {name} line in /proc/PID/status")))
    };
    Ok(ProcessSize {
        rss_bytes: field("VmRSS:")? * 1024,
        vsz_bytes: field("VmSize:")? * 1024,
        threads: field("Threads:")?,
    })
}

/// One lock-step client until `deadline`; checks every reply.
/// Reads at least a pong's worth of bytes into `reply` (more, if more came at once); returns
/// how many. `rounds`: completed on the connection so far, for the message if it ends.
fn read_reply(stream: &mut UnixStream, reply: &mut [u8], rounds: u64) -> Result<usize, MeasureError> {
    let mut received = 0;
    while received < PONG.len() {
        match stream.read(&mut reply[received..]) {
            Ok(0) => return Err(MeasureError::Closed { how: "closed", rounds, received }),
            Ok(n) => received += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(MeasureError::Closed { how: "reset", rounds, received })
            }
            Err(e) => return Err(MeasureError::Io { what: "read", source: e }),
        }
    }
    Ok(received)
}

/// What one lock-step client did in a trial.
struct ClientRounds {
    /// Rounds after the warm-up, and their latencies.
    counted: u64,
    latency: Histogram<u64>,
    /// Every round, the warm-up's included.
    all: u64,
}

/// Lock-step rounds until `deadline`; those that start before `counted_from` are a warm-up.
fn lockstep_client(
    mut stream: UnixStream,
    counted_from: Instant,
    deadline: Instant,
) -> Result<ClientRounds, MeasureError> {
    let mut latency = histogram();
    // Room for more than a pong, so that one read shows a surplus that came with it (a correct
    // server sends exactly 4 bytes, and reading into a larger buffer costs nothing).
    let mut reply = [0u8; 64];
    let (mut counted, mut all) = (0u64, 0u64);
    // The clock is read once per round anyway (latency), so the deadline costs nothing more.
    loop {
        let start = Instant::now();
        if start >= deadline {
            break;
        }
        stream.write_all(PING).map_err(MeasureError::io("write"))?;
        let received = read_reply(&mut stream, &mut reply, all)?;
        all += 1;
        if &reply[..PONG.len()] != PONG {
            return Err(MeasureError::WrongReply { got: reply[..PONG.len()].escape_ascii().to_string() });
        }
        if received > PONG.len() {
            let (got, extra) = (reply[..received].escape_ascii().to_string(), received - PONG.len());
            return Err(MeasureError::Surplus { got, extra, round: all });
        }
        if start >= counted_from {
            latency.saturating_record(start.elapsed().as_nanos() as u64);
            counted += 1;
        }
    }
    stream.write_all(END).map_err(MeasureError::io("write"))?;
    stream.shutdown(std::net::Shutdown::Write).map_err(MeasureError::io("shutdown"))?;
    Ok(ClientRounds { counted, latency, all })
}

/// How long lock-step clients run before their rounds count: the first rounds on a fresh
/// connection pay for its server thread's first wake-ups and page faults.
pub const WARM_UP: Duration = Duration::from_millis(5);

/// `clients` lock-step clients at once for `length`: aggregate rounds, merged latency, and
/// the fewest and most rounds one client completed (starvation).
pub fn lockstep(
    path: &Path,
    pid: Option<u32>,
    clients: usize,
    length: Duration,
    watchdog: &Watchdog,
) -> Result<Sample, MeasureError> {
    let streams: Vec<UnixStream> =
        (0..clients).map(|_| connect_bounded(path, watchdog)).collect::<Result<_, MeasureError>>()?;
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let counted_from = Instant::now() + WARM_UP;
                lockstep_client(stream, counted_from, counted_from + length)
            })
        })
        .collect();
    // CPU time is read around the whole trial, warm-up included (reading it as the warm-up
    // ends would mean waking up on the clients' CPU at that moment), and set against every
    // round in that time.
    let cpu_before = cpu_time(pid);
    barrier.wait();
    let start = Instant::now() + WARM_UP;
    let mut latency = histogram();
    let (mut total, mut all, mut fewest, mut most) = (0, 0, u64::MAX, 0);
    let mut failure = None;
    for thread in threads {
        match thread.join().map_err(|_| MeasureError::Panicked).and_then(|r| r) {
            Ok(client) => {
                latency.add(&client.latency)?;
                total += client.counted;
                all += client.all;
                fewest = fewest.min(client.counted);
                most = most.max(client.counted);
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let elapsed = start.elapsed();
    let client_rounds = (clients > 1).then_some((fewest, most));
    let cpu = cpu_time(pid) - cpu_before;
    Ok(Sample { ops: total, elapsed, latency: Some(latency), cpu, cpu_ops: all, client_rounds })
}

/// One client streams pings in 64 KiB writes from one thread and reads pongs on another.
pub fn pipelined(path: &Path, pid: Option<u32>, length: Duration, watchdog: &Watchdog) -> Result<Sample, MeasureError> {
    let mut writer = connect_bounded(path, watchdog)?;
    let mut reader = writer.try_clone().map_err(MeasureError::io("cannot clone the connection"))?;
    let chunk = PING.repeat(16 * 1024);
    let cpu_before = cpu_time(pid);
    let start = Instant::now();
    let sending = thread::spawn(move || -> Result<u64, MeasureError> {
        let mut sent = 0u64;
        while Instant::now() < start + length {
            writer.write_all(&chunk).map_err(MeasureError::io("write"))?;
            sent += chunk.len() as u64;
        }
        writer.write_all(END).map_err(MeasureError::io("write"))?;
        writer.shutdown(std::net::Shutdown::Write).map_err(MeasureError::io("shutdown"))?;
        Ok(sent)
    });
    let mut buffer = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    let read_result = loop {
        match reader.read(&mut buffer) {
            Ok(0) => break Ok(()),
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break Ok(()),
            Err(e) => break Err(MeasureError::Io { what: "read", source: e }),
        }
    };
    let elapsed = start.elapsed();
    // The writer ends too: at its deadline, or when the watchdog shuts the socket down.
    let sent = sending.join().map_err(|_| MeasureError::Panicked)??;
    read_result?;
    if received != sent {
        return Err(MeasureError::Lost { sent: sent / 4, received: received / 4 });
    }
    let ops = received / 4;
    Ok(Sample { ops, elapsed, latency: None, cpu: cpu_time(pid) - cpu_before, cpu_ops: ops, client_rounds: None })
}

/// Short sessions (connect, one ping, `end`, wait for the close) back to back from `clients`
/// threads.
pub fn connect(
    path: &Path,
    pid: Option<u32>,
    clients: usize,
    length: Duration,
    watchdog: &Arc<Watchdog>,
) -> Result<Sample, MeasureError> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (barrier, path, watchdog) = (Arc::clone(&barrier), path.to_owned(), Arc::clone(watchdog));
            thread::spawn(move || -> Result<(u64, Histogram<u64>), MeasureError> {
                barrier.wait();
                let deadline = Instant::now() + length;
                let mut latency = histogram();
                let mut sessions = 0;
                let mut rest = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let mut stream = connect_bounded(&path, &watchdog)?;
                    let mut reply = [0u8; 4];
                    stream.write_all(PING).map_err(MeasureError::io("write"))?;
                    read_reply(&mut stream, &mut reply, 0)?;
                    stream.write_all(END).map_err(MeasureError::io("write"))?;
                    // The baseline does not parse `end`; EOF ends its connection.
                    stream.shutdown(std::net::Shutdown::Write).map_err(MeasureError::io("shutdown"))?;
                    let _ = stream.read_to_end(&mut rest);
                    latency.saturating_record(start.elapsed().as_nanos() as u64);
                    sessions += 1;
                }
                Ok((sessions, latency))
            })
        })
        .collect();
    let cpu_before = cpu_time(pid);
    barrier.wait();
    let start = Instant::now();
    let mut latency = histogram();
    let mut total = 0;
    let mut failure = None;
    for thread in threads {
        match thread.join().map_err(|_| MeasureError::Panicked).and_then(|r| r) {
            Ok((sessions, h)) => {
                latency.add(&h)?;
                total += sessions;
            }
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Sample {
        ops: total,
        elapsed: start.elapsed(),
        latency: Some(latency),
        cpu: cpu_time(pid) - cpu_before,
        cpu_ops: total,
        client_rounds: None,
    })
}

/// `count` idle connections to a server: each does one round (so the server has surely
/// accepted it and set it up), then stays open without a byte more until dropped.
///
/// When the crowd does not fit in this process's descriptor limit (10,000 connections to a
/// server in this process need 20,000 descriptors, both ends), batches of client ends are
/// handed to holder processes (`sleep`, which inherits them and does nothing), so that each
/// batch counts against a holder's limit instead of ours.
pub struct Crowd {
    held: Vec<UnixStream>,
    holders: Vec<std::process::Child>,
}

impl Drop for Crowd {
    fn drop(&mut self) {
        for holder in &mut self.holders {
            let _ = holder.kill();
            let _ = holder.wait();
        }
    }
}

impl Crowd {
    /// Fails if the server closed any of the connections still held in this process (those
    /// handed to holders were checked before the hand-off).
    pub fn check(&self, count: usize) -> Result<(), MeasureError> {
        match closed(&self.held) {
            0 => Ok(()),
            closed => Err(MeasureError::CrowdShrank { closed, count }),
        }
    }
}

/// How many of `streams` the peer has closed (readable at once: an idle connection has
/// nothing else to read).
fn closed(streams: &[UnixStream]) -> usize {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds: Vec<PollFd> = streams.iter().map(|s| PollFd::new(s, PollFlags::IN)).collect();
    match poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })) {
        Ok(0) | Err(_) => 0,
        Ok(_) => fds.iter().filter(|f| !f.revents().is_empty()).count(),
    }
}

/// Descriptors this process has open.
fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Opens a crowd, failing if the server does not take every connection within `limit`.
/// `server_here`: the server runs in this process, so each connection costs two descriptors.
pub fn open_crowd(path: &Path, count: usize, server_here: bool, limit: Duration) -> Result<Crowd, MeasureError> {
    let deadline = Instant::now() + limit;
    let mut crowd = Crowd { held: Vec::with_capacity(count), holders: Vec::new() };
    let per_connection = if server_here { 2 } else { 1 };
    let mut opened = 0;
    while opened < count {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
        let room = soft.saturating_sub(open_descriptors() + SPARE_DESCRIPTORS) / per_connection;
        if room == 0 {
            let needed = count as u64 * per_connection + SPARE_DESCRIPTORS;
            return Err(MeasureError::Descriptors { count, needed, limit: soft });
        }
        let batch = (count - opened).min(usize::try_from(room).unwrap_or(usize::MAX));
        let streams = (opened..opened + batch)
            .map(|i| idle_connection(path, deadline, limit).map_err(|e| e.numbered(i + 1, count)))
            .collect::<Result<Vec<_>, _>>()?;
        opened += batch;
        match closed(&streams) {
            0 => {}
            closed => return Err(MeasureError::CrowdShrank { closed, count }),
        }
        if opened == count && crowd.holders.is_empty() {
            crowd.held = streams; // the whole crowd fits here: no holder needed
        } else {
            crowd.holders.push(hand_off(&streams).map_err(MeasureError::io("cannot start a holder process (sleep)"))?);
        }
    }
    Ok(crowd)
}

/// How long one idle connection's setup round may take.
const ROUND_LIMIT: Duration = Duration::from_secs(2);

/// Kept free besides the crowd: listeners, the measuring clients, watchdog duplicates, stdio.
const SPARE_DESCRIPTORS: u64 = 256;

fn idle_connection(path: &Path, deadline: Instant, limit: Duration) -> Result<UnixStream, MeasureError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(MeasureError::Deadline { limit });
    }
    // A timeout per connection rather than a watched duplicate: a duplicate would double the
    // crowd's descriptors. One round takes microseconds; a server that takes seconds over it
    // stalls, and fails here as a trial would.
    let mut stream =
        crate::net::connect_bounded(path, deadline).map_err(MeasureError::io("cannot connect an idle connection"))?;
    stream.set_read_timeout(Some(left.min(ROUND_LIMIT))).map_err(MeasureError::io("setsockopt"))?;
    let mut reply = [0u8; 4];
    stream.write_all(PING).map_err(MeasureError::io("write"))?;
    match stream.read_exact(&mut reply) {
        Ok(()) if &reply == PONG => Ok(stream),
        Ok(()) => Err(MeasureError::WrongReply { got: reply.escape_ascii().to_string() }),
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
            Err(MeasureError::Deadline { limit: left.min(ROUND_LIMIT) })
        }
        Err(e) => Err(MeasureError::Io { what: "read", source: e }),
    }
}

/// Starts a process that inherits `streams` and holds them until killed; this process's
/// copies close when the caller drops them. Nothing else starts a process meanwhile in the
/// bench, which is what makes clearing close-on-exec for the spawn safe from leaks.
fn hand_off(streams: &[UnixStream]) -> io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let set = |flags| streams.iter().try_for_each(|s| rustix::io::fcntl_setfd(s, flags));
    set(rustix::io::FdFlags::empty())?;
    let holder = std::process::Command::new("sleep")
        .arg("100000")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    set(rustix::io::FdFlags::CLOEXEC)?;
    holder
}

/// Waits (bounded) until the process's thread count is back to `threads` or below, so the
/// next measurement does not share the CPUs with a crowd's threads winding down.
pub fn settle(pid: Option<u32>, threads: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while process_size(pid).is_ok_and(|s| s.threads > threads) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Pins the calling thread (and the threads and processes it starts afterwards) to one CPU:
/// the last one this process may use. Not CPU 0, which most kernels and hypervisors load with
/// more interrupts and timers, and never one outside the inherited mask (a container's cpuset
/// may exclude CPU 0, where pinning to it fails).
pub fn pin_to_one_cpu() -> Result<usize, MeasureError> {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
    let allowed = sched_getaffinity(None).map_err(|e| MeasureError::Pin(e.into()))?;
    let cpu = (0..CpuSet::MAX_CPU).rev().find(|&cpu| allowed.is_set(cpu)).unwrap_or(0);
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(|e| MeasureError::Pin(e.into()))?;
    Ok(cpu)
}

/// What the machine was doing: read before and after a scenario, to say whether something
/// else competed for the CPUs while it ran.
#[derive(Clone, Copy, Debug)]
pub struct MachineState {
    at: Instant,
    /// `/proc/loadavg`'s one-minute figure.
    pub load_1m: Option<f64>,
    /// Jiffies from `/proc/stat`'s `cpu` line: busy (user, nice, system, irq, softirq), steal,
    /// and all of them.
    busy: u64,
    steal: u64,
    total: u64,
    /// CPU time of this process and of the servers it started.
    own_cpu: Duration,
    /// The first CPU's current frequency, where the kernel exposes it.
    pub cpu_mhz: Option<f64>,
}

impl MachineState {
    /// The state now; `servers`: the child processes whose CPU time is the benchmark's own.
    pub fn now(servers: &[u32]) -> MachineState {
        let load_1m = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()));
        let (mut busy, mut steal, mut total) = (0, 0, 0);
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            if let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) {
                // user nice system idle iowait irq softirq steal (guest time is inside user)
                let f: Vec<u64> = line.split_whitespace().skip(1).take(8).filter_map(|v| v.parse().ok()).collect();
                if f.len() == 8 {
                    busy = f[0] + f[1] + f[2] + f[5] + f[6];
                    steal = f[7];
                    total = f.iter().sum();
                }
            }
        }
        let cpu_mhz = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .map(|khz| khz / 1000.0);
        let own_cpu = cpu_time(None) + servers.iter().filter_map(|&pid| crate::process::cpu_time(pid)).sum();
        MachineState { at: Instant::now(), load_1m, busy, steal, total, own_cpu, cpu_mhz }
    }

    /// Time from `earlier` to this reading.
    pub fn elapsed_since(&self, earlier: &MachineState) -> Duration {
        self.at.saturating_duration_since(earlier.at)
    }

    /// The share of all CPUs' time, between `self` and `later`, that other processes used, and
    /// the share the hypervisor stole.
    pub fn competition(&self, later: &MachineState) -> (Option<f64>, Option<f64>) {
        let total = later.total.saturating_sub(self.total);
        if total == 0 {
            return (None, None);
        }
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let wall = later.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let busy_s = later.busy.saturating_sub(self.busy) as f64 / ticks;
        let own_s = later.own_cpu.saturating_sub(self.own_cpu).as_secs_f64();
        let other = ((busy_s - own_s) / (wall * cpus)).clamp(0.0, 1.0);
        let steal = later.steal.saturating_sub(self.steal) as f64 / total as f64;
        (Some(other), Some(steal))
    }
}
