//! The server's resource limits (SPEC.md sections 5.6 and 11): the default connection limit
//! derived from the descriptor limit, the connection threads' stack, and the policy for a
//! table full of idle connections (SRV-IDLE-2).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// Descriptors kept free of connections: the listener, the wake-up pair, signal pipes, stdio,
/// and whatever a program that embeds the server opens besides.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// The stack of a connection thread. `serve_connection` needs its 4 KiB buffer and a few
/// frames; 64 KiB leaves room for `--log-messages` formatting and a panic's message. Only the
/// touched pages are resident, so a smaller stack saves address space, not memory: measured
/// with 10,000 idle connections (README, Performance).
pub const CONNECTION_STACK: usize = 64 * 1024;

/// Under pressure a connection idle this long may be closed to admit a waiting client
/// (SRV-IDLE-2).
pub const PRESSURE_IDLE: Duration = Duration::from_secs(1);

/// When the table is full and nothing is idle long enough yet, the accept loop looks again
/// at the latest after this long.
const PRESSURE_RECHECK: Duration = Duration::from_secs(1);

/// The largest soft descriptor limit this process may set: the hard limit, or the kernel's
/// `fs.nr_open` where the hard limit is unlimited.
fn descriptor_ceiling() -> u64 {
    getrlimit(Resource::Nofile).maximum.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(1 << 20)
    })
}

/// Raises the soft descriptor limit to the hard one, as servers commonly do at start: the
/// soft limit (often 1,024) exists for programs that still use `select`, which this one does
/// not. Failure leaves the limit as it was.
pub fn raise_descriptor_limit() {
    raise_descriptor_limit_to(descriptor_ceiling());
}

/// Where the soft descriptor limit is below `wanted`, raises it to the hard limit, and both to
/// `wanted` where that is higher and the process may (CAP_SYS_RESOURCE); where it may not, to
/// the hard limit alone. Failure leaves the limit as it was.
pub fn raise_descriptor_limit_to(wanted: u64) {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < wanted) {
        let maximum = limit.maximum.map(|m| m.max(wanted));
        if setrlimit(Resource::Nofile, Rlimit { current: maximum, maximum }).is_err() {
            let _ = setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum });
        }
    }
}

/// The default `--max-connections`: every descriptor the hard limit allows (the soft limit is
/// raised to it at start) less [`RESERVED_DESCRIPTORS`], and at most one thread per two
/// memory maps of `vm.max_map_count` (a thread's stack and its guard page are two), less 4,096
/// maps for the program itself, so the limit is reached before thread creation fails.
pub fn default_max_connections() -> usize {
    let by_descriptors = descriptor_ceiling().saturating_sub(RESERVED_DESCRIPTORS);
    let maps: u64 = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(65_530);
    let by_threads = maps.saturating_sub(4096) / 2;
    usize::try_from(by_descriptors.min(by_threads).max(1)).unwrap_or(usize::MAX)
}

/// When a connection last received bytes, and whether the pressure policy closed it; shared
/// by the connection's thread (which writes it) and the table (which reads it).
#[derive(Debug)]
pub struct Activity {
    /// When the connection was accepted.
    epoch: Instant,
    /// Milliseconds from `epoch` to the last read that returned bytes.
    last_ms: AtomicU64,
    evicted: AtomicBool,
}

impl Default for Activity {
    fn default() -> Self {
        Activity::new()
    }
}

impl Activity {
    /// A connection that has just been active.
    pub fn new() -> Activity {
        Activity { epoch: Instant::now(), last_ms: AtomicU64::new(0), evicted: AtomicBool::new(false) }
    }

    /// Bytes arrived (one clock read and one relaxed store per `read`).
    pub fn touch(&self) {
        self.last_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_since(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// The pressure policy closed this connection (it ends as a timeout, SRV-IDLE-2).
    pub fn evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }
}

/// What the accept loop should do about a full table with a client waiting.
#[derive(Debug, PartialEq, Eq)]
pub enum Pressure {
    /// Close this connection (by its table id): the longest idle, idle at least the threshold.
    Evict(u64),
    /// Nothing is idle long enough: look again at this time.
    WaitUntil(Instant),
}

/// SPEC: SRV-IDLE-2 — picks the connection to close when every slot is taken and a client
/// waits: the one idle longest, if it has been idle for `threshold`. Connections already
/// closed by the policy are skipped (their threads are on their way out).
pub fn under_pressure<'a>(
    connections: impl Iterator<Item = (u64, &'a Activity)>,
    threshold: Duration,
    now: Instant,
) -> Pressure {
    let oldest = connections.filter(|(_, a)| !a.evicted()).min_by_key(|(_, a)| a.idle_since());
    match oldest {
        Some((id, activity)) if now.saturating_duration_since(activity.idle_since()) >= threshold => {
            activity.evicted.store(true, Ordering::Relaxed);
            Pressure::Evict(id)
        }
        Some((_, activity)) => Pressure::WaitUntil((activity.idle_since() + threshold).min(now + PRESSURE_RECHECK)),
        None => Pressure::WaitUntil(now + PRESSURE_RECHECK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SPEC: SRV-IDLE-2 — the longest idle goes first, only past the threshold, once.
    #[test]
    fn the_longest_idle_connection_is_chosen_once_past_the_threshold() {
        let (a, mut b) = (Activity::new(), Activity::new());
        b.epoch = a.epoch;
        let epoch = a.epoch;
        a.last_ms.store(100, Ordering::Relaxed);
        b.last_ms.store(50, Ordering::Relaxed);
        let at = |ms| epoch + Duration::from_millis(ms);
        let table = || [(1, &a), (2, &b)].into_iter();
        assert_eq!(under_pressure(table(), PRESSURE_IDLE, at(500)), Pressure::WaitUntil(at(1050)));
        assert_eq!(under_pressure(table(), PRESSURE_IDLE, at(1050)), Pressure::Evict(2));
        assert!(b.evicted() && !a.evicted());
        assert_eq!(under_pressure(table(), PRESSURE_IDLE, at(1050)), Pressure::WaitUntil(at(1100)));
        assert_eq!(under_pressure(table(), PRESSURE_IDLE, at(1100)), Pressure::Evict(1));
        assert_eq!(under_pressure(table(), PRESSURE_IDLE, at(1100)), Pressure::WaitUntil(at(2100)));
    }

    #[test]
    fn the_default_limit_follows_the_descriptor_limit() {
        let limit = default_max_connections() as u64;
        assert!(limit >= 1 && limit <= descriptor_ceiling().saturating_sub(RESERVED_DESCRIPTORS).max(1));
    }
}
