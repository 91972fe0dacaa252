//! The scenarios' measurements: client loops over real sockets, latency in an HDR histogram,
//! CPU time from getrusage (this process) plus /proc (a child server), memory from /proc.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::proto::{END, PING, PONG};

/// What one run of one scenario against one server measured.
#[derive(Clone, Debug)]
pub struct Measurement {
    pub ops: u64,
    pub elapsed: Duration,
    /// Round-trip latency in nanoseconds, where the scenario has rounds.
    pub latency: Option<Histogram<u64>>,
    /// CPU time of client and server together.
    pub cpu: Duration,
    /// Scenario-specific figures, by name.
    pub extra: Vec<(&'static str, f64)>,
}

impl Measurement {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A server that stops accepting (a full listen backlog) fails the measurement instead of
/// hanging it.
fn connect_bounded(path: &Path) -> io::Result<UnixStream> {
    let stream = crate::net::connect_bounded(path, Instant::now() + Duration::from_secs(5))?;
    // Replies slower than this mean the server stalls this client (the seed serves one at a time).
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// CPU time (user + system) of this process, and of `child` if the server is one.
pub fn cpu_time(child: Option<u32>) -> Duration {
    let own = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let (user, system) = (u.user_time(), u.system_time());
            Duration::from_micros((user.tv_sec() * 1_000_000 + user.tv_usec()) as u64)
                + Duration::from_micros((system.tv_sec() * 1_000_000 + system.tv_usec()) as u64)
        })
        .unwrap_or_default();
    own + child.and_then(crate::process::cpu_time).unwrap_or_default()
}

/// Resident memory of a process (this one for `None`), from /proc/PID/status.
pub fn rss_bytes(pid: Option<u32>) -> io::Result<u64> {
    let status = std::fs::read_to_string(pid.map_or("/proc/self/status".into(), |p| format!("/proc/{p}/status")))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or_else(|| io::Error::other("no VmRSS line"))?;
    Ok(kib * 1024)
}

/// One lock-step client until `deadline`; checks every reply.
fn lockstep_client(mut stream: UnixStream, deadline: Instant) -> io::Result<(u64, Histogram<u64>)> {
    let mut latency = histogram();
    let mut reply = [0u8; 4];
    let mut rounds = 0u64;
    while rounds % 64 != 0 || Instant::now() < deadline {
        let start = Instant::now();
        stream.write_all(PING)?;
        stream.read_exact(&mut reply)?;
        latency.saturating_record(start.elapsed().as_nanos() as u64);
        if &reply != PONG {
            return Err(io::Error::other(format!("the server replied {:?}", reply.escape_ascii().to_string())));
        }
        rounds += 1;
    }
    stream.write_all(END)?;
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok((rounds, latency))
}

/// `clients` lock-step clients at once for `duration`: aggregate rounds, merged latency, and
/// the fewest and most rounds one client completed (starvation).
pub fn lockstep(path: &Path, pid: Option<u32>, clients: usize, duration: Duration) -> io::Result<Measurement> {
    let streams: Vec<UnixStream> = (0..clients).map(|_| connect_bounded(path)).collect::<io::Result<_>>()?;
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                lockstep_client(stream, Instant::now() + duration)
            })
        })
        .collect();
    let cpu_before = cpu_time(pid);
    barrier.wait();
    let start = Instant::now();
    let mut latency = histogram();
    let (mut total, mut fewest, mut most) = (0, u64::MAX, 0);
    for thread in threads {
        let (rounds, h) = thread.join().map_err(|_| io::Error::other("a client thread panicked"))??;
        latency.add(&h).map_err(|e| io::Error::other(e.to_string()))?;
        total += rounds;
        fewest = fewest.min(rounds);
        most = most.max(rounds);
    }
    let elapsed = start.elapsed();
    let extra = vec![("min_client_rounds", fewest as f64), ("max_client_rounds", most as f64)];
    Ok(Measurement { ops: total, elapsed, latency: Some(latency), cpu: cpu_time(pid) - cpu_before, extra })
}

/// One client streams pings in 64 KiB writes from one thread and reads pongs on another.
pub fn pipelined(path: &Path, pid: Option<u32>, duration: Duration) -> io::Result<Measurement> {
    let mut writer = connect_bounded(path)?;
    let mut reader = writer.try_clone()?;
    let chunk = PING.repeat(16 * 1024);
    let cpu_before = cpu_time(pid);
    let start = Instant::now();
    let sending = thread::spawn(move || -> io::Result<u64> {
        let mut sent = 0u64;
        while Instant::now() < start + duration {
            writer.write_all(&chunk)?;
            sent += chunk.len() as u64;
        }
        writer.write_all(END)?;
        writer.shutdown(std::net::Shutdown::Write)?;
        Ok(sent)
    });
    let mut buffer = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    let elapsed = start.elapsed();
    let sent = sending.join().map_err(|_| io::Error::other("the writer panicked"))??;
    if received != sent {
        return Err(io::Error::other(format!("sent {} pings, received {} pongs", sent / 4, received / 4)));
    }
    let mb_per_sec = received as f64 / elapsed.as_secs_f64() / 1e6;
    let extra = vec![("mb_per_sec_each_way", mb_per_sec)];
    Ok(Measurement { ops: received / 4, elapsed, latency: None, cpu: cpu_time(pid) - cpu_before, extra })
}

/// Short sessions (connect, one ping, `end`, wait for the close) back to back from `clients`
/// threads.
pub fn connect(path: &Path, pid: Option<u32>, clients: usize, duration: Duration) -> io::Result<Measurement> {
    let barrier = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (barrier, path) = (Arc::clone(&barrier), path.to_owned());
            thread::spawn(move || -> io::Result<(u64, Histogram<u64>)> {
                barrier.wait();
                let deadline = Instant::now() + duration;
                let mut latency = histogram();
                let mut sessions = 0;
                let mut rest = Vec::new();
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let mut stream = connect_bounded(&path)?;
                    let mut reply = [0u8; 4];
                    stream.write_all(PING)?;
                    stream.read_exact(&mut reply)?;
                    stream.write_all(END)?;
                    // The baseline does not parse `end`; EOF ends its connection.
                    stream.shutdown(std::net::Shutdown::Write)?;
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
    for thread in threads {
        let (sessions, h) = thread.join().map_err(|_| io::Error::other("a client thread panicked"))??;
        latency.add(&h).map_err(|e| io::Error::other(e.to_string()))?;
        total += sessions;
    }
    Ok(Measurement {
        ops: total,
        elapsed: start.elapsed(),
        latency: Some(latency),
        cpu: cpu_time(pid) - cpu_before,
        extra: vec![],
    })
}

/// Server memory with `count` idle connections: each does one round (so the server has surely
/// accepted it and set it up), then stays open without a byte more.
pub fn idle_memory(path: &Path, pid: Option<u32>, count: usize) -> io::Result<Measurement> {
    raise_descriptor_limit();
    let before = rss_bytes(pid)?;
    let start = Instant::now();
    let mut idle = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = connect_bounded(path)?;
        let mut reply = [0u8; 4];
        stream.write_all(PING)?;
        stream.read_exact(&mut reply)?;
        idle.push(stream);
    }
    let after = rss_bytes(pid)?;
    let per_connection = after.saturating_sub(before) as f64 / count as f64;
    let extra = vec![
        ("rss_idle_0_bytes", before as f64),
        ("rss_idle_n_bytes", after as f64),
        ("idle_connections", count as f64),
        ("bytes_per_idle_connection", per_connection),
    ];
    Ok(Measurement { ops: count as u64, elapsed: start.elapsed(), latency: None, cpu: Duration::ZERO, extra })
}

/// Both ends of every idle connection live in this process when the server does: lift the
/// soft descriptor limit to the hard one.
pub fn raise_descriptor_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
}

/// Pins the calling thread (and the threads and processes it starts afterwards) to one CPU.
pub fn pin_to_one_cpu() -> io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    set.set(0);
    rustix::thread::sched_setaffinity(None, &set).map_err(io::Error::from)
}
