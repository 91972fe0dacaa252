//! A connection of the gate's, to the implementation or from it: every byte recorded in the
//! case's transcript, every read bounded twice, by the wait for the event expected and by the
//! case's own time limit (`--case-timeout`). One read loop ([`Conn::read_until`]) serves every
//! way of reading; a read cut short by the case's limit is never taken for the peer's doing.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use super::transcript::{Direction, Recorder};
use crate::conform::bytes::Bytes;
use crate::conform::verdict::{human_duration, CaseResult, Exercise, Observation, Problem};
use crate::proto::{quoted_prefix, PING, PONG};

/// Bytes a read keeps of what a peer sends while the case waits for a close: beyond that, a
/// flood is a failure already.
const READ_KEPT: usize = 64 * 1024;

/// Why a case is inconclusive when its own time limit cut `what` short: it names the limit
/// and the option that raises it.
pub(crate) fn capped(case_timeout: Duration, what: &str) -> Problem {
    Problem::Inconclusive(format!(
        "the gate's time limit for one case (--case-timeout {}) ran out {what}; raise it to let the case finish",
        human_duration(case_timeout)
    ))
}

/// How a read ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// What the read waited for arrived.
    Done,
    /// The peer closed the connection (EOF, or a reset: SPEC: WIRE-CLOSE-1).
    Closed,
    /// Nothing more arrived within the wait.
    Quiet,
    /// The peer sent more than a read keeps ([`READ_KEPT`]) without what was waited for.
    Flood,
    /// The case's own time limit ran out first: the read says nothing about the peer.
    Capped,
}

/// What a bounded read heard: the bytes, how it ended, and how long it waited.
#[derive(Clone, Debug)]
pub(crate) struct Heard {
    /// Every byte that arrived.
    pub bytes: Vec<u8>,
    /// How the read ended.
    pub end: End,
    /// How long it waited.
    pub waited: Duration,
    /// The close was a reset: on Linux the peer closed with bytes sent to it still unread.
    pub reset: bool,
}

impl Heard {
    /// Whether the peer closed.
    pub(crate) fn closed(&self) -> bool {
        self.end == End::Closed
    }

    /// As an observation: the bytes, then the close or the silence; only the bytes when they
    /// were what the read waited for (the wait was not watched to its end).
    pub(crate) fn observed(&self) -> Observation {
        if self.end == End::Done {
            return Observation::Bytes { bytes: Bytes::from(self.bytes.clone()) };
        }
        Observation::heard(self.bytes.clone(), self.closed(), self.waited)
    }
}

/// How long a connection's waits may last.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Each expected event (`--timeout`).
    pub(crate) timeout: Duration,
    /// No wait goes past this: the case's own limit.
    pub(crate) cap: Instant,
    /// That limit as a duration (`--case-timeout`), for messages.
    pub(crate) case_timeout: Duration,
}

/// The server process at the other end of a connection, when the gate started it, and the
/// address it listens on.
#[derive(Clone, Debug)]
pub(crate) struct ServerEnd {
    pub(crate) pid: u32,
    pub(crate) socket: std::path::PathBuf,
}

/// A recorded connection with bounded reads.
pub(crate) struct Conn {
    stream: UnixStream,
    id: usize,
    transcript: Recorder,
    bounds: Bounds,
    /// The server at the other end, when the gate started it: a reset it caused by dying, or
    /// by dropping a connection it never accepted, is told apart from one it caused by
    /// closing early.
    server: Option<ServerEnd>,
    /// Every byte received on this connection so far (at most [`READ_KEPT`]): a case can tell
    /// a connection that got more replies than it asked for, another connection's among them.
    received: Vec<u8>,
}

impl Conn {
    pub(super) fn new(
        stream: UnixStream,
        id: usize,
        transcript: Recorder,
        bounds: Bounds,
        server: Option<ServerEnd>,
    ) -> Result<Self, Problem> {
        // A peer that never reads must not hang a write either.
        stream
            .set_write_timeout(Some(bounds.timeout))
            .map_err(|e| Problem::harness("cannot set a write timeout", e))?;
        Ok(Conn { stream, id, transcript, bounds, server, received: Vec::new() })
    }

    /// Whether `heard`'s close was a reset that the server, alive and listening, caused by
    /// closing with bytes sent to it unread (on Linux a reset means exactly that). A server
    /// that died meanwhile closed by dying: that is the death's business (SPEC.md section 8),
    /// not an early close; so is one that closed its listener, which drops the connections
    /// still waiting in its backlog, never accepted (SRV-ACCEPT-1's business).
    pub(crate) fn closed_unread(&self, heard: &Heard) -> bool {
        heard.closed() && heard.reset && !self.server_exits() && self.server_listens()
    }

    /// Whether the server the gate started at the other end is exiting (gone within 100 ms):
    /// a close it made by dying is the death's business, not the connection's.
    fn server_exits(&self) -> bool {
        self.server.as_ref().is_some_and(|s| crate::process::exits_within(s.pid, Duration::from_millis(100)))
    }

    /// Whether something still listens at the server's address (a full backlog counts: it
    /// says nothing); `true` where the gate did not start the server.
    fn server_listens(&self) -> bool {
        let Some(server) = &self.server else { return true };
        match crate::net::connect_bounded(&server.socket, Instant::now() + Duration::from_millis(50)) {
            Err(e) => !matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound),
            Ok(_) => true,
        }
    }

    /// Where a round's reply was awaited: the server closed, alive, with the round's `ping`
    /// unread (a reset before any byte of the reply). That is no wrong reply but a close before
    /// the ping was judged: `step` becomes that failure, blaming SPEC: SRV-OPEN-1.
    pub(crate) fn unread_round(&self, heard: &Heard, step: &Exercise) -> Option<Problem> {
        self.unread_reply(heard, step, Observation::Pong)
    }

    /// [`Conn::unread_round`] for any reply (`expected`) to bytes the server had to read.
    pub(crate) fn unread_reply(&self, heard: &Heard, step: &Exercise, expected: Observation) -> Option<Problem> {
        (heard.bytes.is_empty() && self.closed_unread(heard))
            .then(|| step.blaming(["SRV-OPEN-1"]).fail(expected, Observation::ResetUnread))
    }

    /// How long each expected event is awaited (`--timeout`).
    pub(crate) fn timeout(&self) -> Duration {
        self.bounds.timeout
    }

    fn note(&self, text: &str) {
        self.transcript.record(self.id, Direction::Event, text.as_bytes());
    }

    /// The reason a read cut short by the case's limit gives: the case is inconclusive, and
    /// says which figure to raise.
    pub(crate) fn capped(&self, what: &str) -> Problem {
        capped(self.bounds.case_timeout, what)
    }

    /// Writes all of `bytes` (recorded); a failed write is recorded and returned.
    pub(crate) fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let written = self.stream.write_all(bytes);
        match &written {
            Ok(()) => self.transcript.record(self.id, Direction::Sent, bytes),
            Err(e) => self.note(&format!("send {} failed: {e}", quoted_prefix(bytes, 48))),
        }
        written
    }

    /// Every byte received on this connection so far (the first [`READ_KEPT`]).
    pub(crate) fn received(&self) -> &[u8] {
        &self.received
    }

    /// Writes all of `bytes`, which the implementation must read: a failed write fails the step.
    /// A server the gate started that is still running closed the connection before reading
    /// them: that is SPEC: SRV-OPEN-1's failure, whatever the step is about (SPEC.md section 8);
    /// a server that died meanwhile closed by dying, which is the death's business.
    pub(crate) fn deliver(&mut self, bytes: &[u8], step: &Exercise) -> CaseResult {
        self.send(bytes).or_else(|e| {
            let alive = self.server.is_some() && !self.server_exits();
            let open = step.blaming(["SRV-OPEN-1"]);
            (if alive { &open } else { step }).not_delivered(Bytes::from(bytes.to_vec()), &e)
        })
    }

    /// Sends bytes from another thread, so that the case can read while they are written; the
    /// thread returns how the write went.
    pub(crate) fn send_in_background(&mut self, bytes: Vec<u8>) -> Result<thread::JoinHandle<io::Result<()>>, Problem> {
        let mut writer = self.writer()?;
        self.note(&format!("sending {} bytes from another thread", bytes.len()));
        Ok(thread::spawn(move || writer.send(&bytes)))
    }

    /// Another handle on this connection for writing from another thread (recorded alike).
    pub(crate) fn writer(&self) -> Result<Conn, Problem> {
        let stream = self.stream.try_clone().map_err(|e| Problem::harness("cannot clone a socket", e))?;
        Ok(Conn {
            stream,
            id: self.id,
            transcript: self.transcript.clone(),
            bounds: self.bounds,
            server: self.server.clone(),
            received: Vec::new(),
        })
    }

    /// Sends bytes without blocking until the kernel refuses more; returns how many were sent.
    pub(crate) fn flood(&mut self, bytes: &[u8]) -> usize {
        let _ = self.stream.set_nonblocking(true);
        let mut sent = 0;
        while let Ok(n) = (&self.stream).write(bytes) {
            sent += n;
        }
        let _ = self.stream.set_nonblocking(false);
        self.note(&format!("flooded {sent} bytes without reading"));
        sent
    }

    /// Ends the harness's receiving side: the peer's writes now fail with `EPIPE` (and raise
    /// `SIGPIPE` in a peer that does not ignore it).
    pub(crate) fn shutdown_read(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Read);
        self.note("shut down reading (the peer's writes now fail)");
    }

    /// Ends the harness's sending side: the peer reads EOF.
    pub(crate) fn half_close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
        self.note("half-closed (EOF sent)");
    }

    /// Closes the connection at once, with whatever the peer sent still unread.
    pub(crate) fn close(self) {
        self.note("closed by the harness");
    }

    /// The one read loop: reads until `done(bytes so far)` holds, the peer closes, nothing
    /// arrives for `wait`, `max` bytes arrived without `done` (a flood), or the case's limit
    /// runs out. It never reads more than `max` bytes, so `max` 1 reads a single byte.
    pub(crate) fn read_until(&mut self, wait: Duration, max: usize, mut done: impl FnMut(&[u8]) -> bool) -> Heard {
        let started = Instant::now();
        let deadline = started + wait;
        let mut bytes = Vec::new();
        let mut buffer = [0u8; 4096];
        let mut reset = false;
        let end = loop {
            if done(&bytes) {
                break End::Done;
            }
            if bytes.len() >= max {
                break End::Flood;
            }
            let now = Instant::now();
            if now >= self.bounds.cap {
                break End::Capped;
            }
            if now >= deadline {
                break End::Quiet;
            }
            let _ = self.stream.set_read_timeout(Some(deadline.min(self.bounds.cap) - now));
            let room = (max - bytes.len()).min(buffer.len());
            match self.stream.read(&mut buffer[..room]) {
                Ok(0) => {
                    self.note("closed by peer");
                    break End::Closed;
                }
                Ok(n) => {
                    self.transcript.record(self.id, Direction::Received, &buffer[..n]);
                    let kept = n.min(READ_KEPT.saturating_sub(self.received.len()));
                    self.received.extend_from_slice(&buffer[..kept]);
                    bytes.extend_from_slice(&buffer[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                // A reset after the peer's last byte is a close (SPEC: WIRE-CLOSE-1).
                Err(e) => {
                    reset = e.kind() == io::ErrorKind::ConnectionReset;
                    self.note(&format!("closed by peer ({e})"));
                    break End::Closed;
                }
            }
        };
        Heard { bytes, end, waited: started.elapsed(), reset }
    }

    /// Reads until `n` bytes arrived or the peer closed (within the timeout), never more than `n`.
    pub(crate) fn read_exactly_or_close(&mut self, n: usize) -> Heard {
        self.read_until(self.bounds.timeout, n, |got| got.len() >= n)
    }

    /// Reads until the peer closes (within the timeout, and at most a flood's worth).
    pub(crate) fn read_until_close(&mut self) -> Heard {
        self.read_until(self.bounds.timeout, READ_KEPT, |_| false)
    }

    /// Reads for `window`, or until the peer closes.
    pub(crate) fn read_for(&mut self, window: Duration) -> Heard {
        self.read_until(window, READ_KEPT, |_| false)
    }

    /// The peer closes (within the timeout), whatever it sends before.
    pub(crate) fn expect_closed_loosely(&mut self, step: &Exercise) -> CaseResult {
        let heard = self.read_until(self.bounds.timeout, usize::MAX, |_| false);
        match heard.end {
            End::Capped => Err(self.capped("while waiting for the connection to close")),
            End::Closed => Ok(()),
            _ => step.failed(Observation::closed(), Observation::silence(heard.waited)),
        }
    }

    /// Nothing arrives for `window` and the connection stays open.
    pub(crate) fn expect_silence(&mut self, window: Duration, step: &Exercise) -> CaseResult {
        let heard = self.read_for(window);
        match heard.end {
            End::Capped => Err(self.capped("while watching for silence")),
            End::Quiet if heard.bytes.is_empty() => Ok(()),
            _ => step.failed(Observation::silence(window), heard.observed()),
        }
    }

    /// A reply with `pong` in it arrives within `limit` (whatever else comes with it: the
    /// exact bytes are the wire cases' business, but an echo is no reply); returns how long
    /// it took.
    pub(crate) fn expect_reply_within(&mut self, limit: Duration, step: &Exercise) -> Result<Duration, Problem> {
        self.expect_pong(limit, step, Observation::ReplyWithin { ms: limit.as_millis() as u64 })
    }

    /// `ping`, then reading until `pong` has arrived among whatever comes (SPEC.md section 8):
    /// the one round every case that only needs the server to serve plays; `step` blames it.
    pub(crate) fn ping_round(&mut self, step: &Exercise) -> CaseResult {
        self.deliver(PING, step)?;
        self.expect_pong(self.bounds.timeout, step, Observation::Pong).map(drop)
    }

    fn expect_pong(&mut self, limit: Duration, step: &Exercise, expected: Observation) -> Result<Duration, Problem> {
        let heard = self.read_until(limit, READ_KEPT, |got| got.windows(PONG.len()).any(|w| w == PONG));
        match heard.end {
            End::Done => Ok(heard.waited),
            End::Capped => Err(self.capped("while waiting for a reply")),
            _ => Err(self.unread_round(&heard, step).unwrap_or_else(|| step.fail(expected, heard.observed()))),
        }
    }

    /// A liveness round, the most forgiving conversation there is. Cases about the socket
    /// file, signals, limits and concurrency use it to see that the server serves and leave
    /// the exact reply to the wire cases; its failure blames SPEC: SRV-PONG-1 alone.
    pub(crate) fn live_round(&mut self, context: &str) -> CaseResult {
        self.ping_round(&Exercise::new(
            format!("the liveness round ({context}: \"ping\", read until \"pong\")"),
            &["SRV-PONG-1"],
        ))
    }

    /// How many bytes sent on this connection the peer has not read yet (Linux `SIOCOUTQ`):
    /// a script waits for 0 between two writes so that the peer sees them as two reads.
    #[allow(unsafe_code)] // rustix has no safe call for SIOCOUTQ.
    pub(crate) fn unread_by_peer(&self) -> io::Result<usize> {
        // TIOCOUTQ, which is SIOCOUTQ for sockets (asm-generic/ioctls.h).
        const SIOCOUTQ: rustix::ioctl::Opcode = 0x5411;
        // SAFETY: SIOCOUTQ writes one `int` through its argument, which is what a
        // `Getter<_, c_int>` provides, and the descriptor is the live socket `self.stream` owns.
        let queued =
            unsafe { rustix::ioctl::ioctl(&self.stream, rustix::ioctl::Getter::<SIOCOUTQ, std::ffi::c_int>::new()) }?;
        Ok(usize::try_from(queued).unwrap_or(0))
    }

    /// Waits (at most `limit`) until the peer has read everything sent so far.
    pub(crate) fn wait_read_by_peer(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.unread_by_peer().is_ok_and(|n| n > 0) && Instant::now() < deadline {
            thread::sleep(Duration::from_micros(200));
        }
    }

    /// Waits up to `limit` until at least `count` bytes from the peer are queued, without
    /// reading them, so that a close that follows leaves them unread (the peer's next read sees
    /// a reset, SPEC: WIRE-CLOSE-1) while the peer owes nothing more.
    pub(crate) fn wait_queued(&mut self, count: usize, limit: Duration) -> bool {
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
}
