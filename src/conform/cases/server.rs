//! Cases that judge a server (SPEC.md sections 3, 5 and 7) and need code: several connections
//! held in particular states, descriptor limits, files at the path, signals. The stream-shaped
//! cases of sections 4.2 to 5.4 are rows of data in [`super::rows`]. A lifecycle case is one
//! function here and one line in [`cases`].
//!
//! Every step names what it exercises (SPEC.md section 8): the steps that prepare a case (the
//! start, a liveness round, a new connection) blame their own requirements, and only the steps
//! a case is about blame the case's.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::conform::bytes::Bytes;
use crate::conform::case::{case, Case, Run};
use crate::conform::harness::{poll_until, Conn, Ctx};
use crate::conform::occupant::Occupant;
use crate::conform::script::SEND_GAP;
use crate::conform::verdict::{human_duration, plural, CaseResult, Exercise, Observation, PathState, Problem};
use crate::net::{abstract_name, connect_bounded};
use crate::proto::PONG;

/// How much slower than alone a round may be while idle connections are open (SRV-CONC-2):
/// this margin plus four times the slowest round alone. Generous against a loaded machine,
/// far below a server that makes connections wait on each other.
const DELAY_MARGIN: Duration = Duration::from_millis(500);

/// How long a connect may wait for room in a full listen backlog where a full backlog already
/// decides the case.
const BACKLOG_WAIT: Duration = Duration::from_millis(500);

/// How long each other connection is read when one waited in vain for its reply: what the
/// server sent them has long arrived by then (the wait for the missing reply was --timeout).
const CROSS_WIRE_WATCH: Duration = Duration::from_millis(20);

/// Every server case that needs code, in SPEC.md order, around the rows of sections 4.2 to 5.4.
pub(crate) fn cases() -> Vec<Case> {
    let mut cases = vec![case!(server "3" / "path-too-long", ["TRN-PATH-2"], SocketFile,
        "a socket path longer than sun_path is refused, naming it and its length, and nothing is created",
        Run::Code(path_too_long))];
    cases.extend(super::rows::rows());
    cases.extend([
        case!(server "5.5" / "keeps-accepting", ["SRV-ISOLATE-1", "SRV-INVALID-2", "SRV-ERRNO-1"], Any,
            "after every kind of ending, a new client is served", Run::Code(keeps_accepting)),
        case!(server "5.5" / "idle-client", ["SRV-CONC-2"], Any,
            "an idle and a half-token connection do not delay another client", Run::Code(idle_clients)),
        case!(server "5.5" / "non-reading-client", ["SRV-CONC-2", "SRV-ISOLATE-1"], Any,
            "a client that never reads its pongs does not delay another", Run::Code(non_reading_client)),
        case!(server "5.5" / "concurrent-clients", ["SRV-CONC-1"], Any,
            "8 clients at once, 20 interleaved rounds each", Run::Code(|c| many_clients(c, 8, "SRV-CONC-1"))),
        case!(server "5.5" / "many-clients", ["SRV-CONC-3"], Any,
            "64 clients at once, 20 interleaved rounds each", Run::Code(|c| many_clients(c, 64, "SRV-CONC-3"))),
        case!(server "5.6" / "peer-gone", ["SRV-ERRNO-1"], Any,
            "20 clients that stop reading, or close while the server writes: it lives on", Run::Code(peer_gone)),
        case!(server "5.6" / "descriptor-exhaustion", ["SRV-ACCEPT-1"], Any,
            "out of descriptors: no busy loop, and service resumes once they are free",
            Run::Code(descriptor_exhaustion)),
        case!(server "7.1" / "vacant", ["LIFE-BIND-1", "TRN-SOCK-1"], SocketFile,
            "nothing at the path: the server binds a stream socket there", Run::Code(vacant)),
        case!(server "7.1" / "stale-socket", ["LIFE-STALE-1"], SocketFile,
            "a stale socket file is replaced", Run::Code(stale_socket)),
        case!(server "7.1" / "live-socket", ["LIFE-LIVE-1"], SocketFile,
            "a live server at the path: refuse, exit non-zero, leave it alone", Run::Code(live_socket)),
        case!(server "7.1" / "busy-socket", ["LIFE-PROBE-1", "LIFE-LIVE-1"], SocketFile,
            "a live server whose listen backlog is full: refuse at once (the probe never blocks), leave it alone",
            Run::Code(busy_socket)),
        case!(server "7.1" / "second-start", ["LIFE-LIVE-1"], SocketFile,
            "a second start while the first serves: it refuses, and the first serves on", Run::Code(second_start)),
        case!(server "7.1" / "regular-file", ["LIFE-FOREIGN-1"], SocketFile,
            "a regular file at the path: refuse, naming it, file intact", Run::Code(|c| foreign(c, Occupant::RegularFile))),
        case!(server "7.1" / "directory", ["LIFE-FOREIGN-1"], SocketFile,
            "a directory at the path: refuse, naming it, untouched", Run::Code(|c| foreign(c, Occupant::Directory))),
        case!(server "7.1" / "symlink", ["LIFE-FOREIGN-1"], SocketFile,
            "a symbolic link to a file: refuse, naming it, link and target intact",
            Run::Code(|c| foreign(c, Occupant::Symlink))),
        case!(server "7.1" / "symlink-to-stale-socket", ["LIFE-FOREIGN-1"], SocketFile,
            "a symbolic link to a stale socket: refuse, naming it, untouched",
            Run::Code(|c| foreign(c, Occupant::SymlinkToSocket))),
        case!(server "7.1" / "unprovable-socket", ["LIFE-PROBE-1"], SocketFile,
            "a datagram socket (connect fails, not refused): refuse", Run::Code(unprovable_socket)),
        case!(server "7.3" / "mode", ["LIFE-PERM-1"], SocketFile,
            "the socket file is owner-only (0600) from the moment it appears", Run::Code(mode)),
        case!(server "7.4" / "sigterm", ["LIFE-SHUT-1"], SocketFile,
            "SIGTERM: exit 0, socket file removed, busy connections closed",
            Run::Code(|c| shutdown(c, Signal::TERM, "SIGTERM"))),
        case!(server "7.4" / "sigint", ["LIFE-SHUT-1"], SocketFile,
            "SIGINT: exit 0, socket file removed, busy connections closed",
            Run::Code(|c| shutdown(c, Signal::INT, "SIGINT"))),
        case!(server "7.4" / "replaced-file", ["LIFE-SHUT-2"], SocketFile,
            "a file that replaced the socket survives SIGTERM", Run::Code(|c| replaced_file(c, Signal::TERM, "SIGTERM"))),
        case!(server "7.4" / "replaced-file-sigint", ["LIFE-SHUT-2"], SocketFile,
            "a file that replaced the socket survives SIGINT", Run::Code(|c| replaced_file(c, Signal::INT, "SIGINT"))),
        case!(server "7.6" / "abstract-serves", ["TRN-ABSTRACT-1", "TRN-ABSTRACT-2"], AbstractAddress,
            "on an abstract address: serves, and creates no file", Run::Code(abstract_serves)),
        case!(server "7.6" / "abstract-name-taken", ["TRN-ABSTRACT-2"], AbstractAddress,
            "the abstract name is taken: refuse, exit non-zero, leave the holder serving",
            Run::Code(abstract_name_taken)),
        case!(server "7.6" / "abstract-sigterm", ["TRN-ABSTRACT-2"], AbstractAddress,
            "SIGTERM: exit 0, connections closed, the name released", Run::Code(|c| shutdown(c, Signal::TERM, "SIGTERM"))),
    ]);
    cases
}

/// How long keeps-accepting watches the server after each way a connection ends: a server
/// that crashes that long after an ending fails there (a later crash is not told apart).
const WATCH_AFTER_ENDING: Duration = Duration::from_millis(500);

fn keeps_accepting(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    // The last ending closes with two pongs queued unread once the server owes nothing more:
    // its next read sees a reset, and it never has to write to the gone peer (that is
    // server/5.6/peer-gone's business), whatever the scheduling.
    let endings: [(&[u8], bool, &str, &[&'static str]); 5] = [
        (b"end", false, "\"end\"", &["SRV-ISOLATE-1"]),
        (b"PING", false, "invalid input", &["SRV-ISOLATE-1", "SRV-INVALID-2"]),
        (b"pi", true, "EOF mid-token", &["SRV-ISOLATE-1"]),
        (b"", true, "EOF at once", &["SRV-ISOLATE-1"]),
        (b"pingping", false, "a reset with pongs unread", &["SRV-ISOLATE-1", "SRV-ERRNO-1"]),
    ];
    // Only the lifecycle of connections is judged here: a liveness round proves the server
    // serves (the exact bytes are the wire cases' business). Each connection that proves the
    // server serves after one ending is the one the next ending ends, so no connection the
    // case does not name ends while the server is watched.
    let mut conn = ctx.connect()?;
    conn.live_round("before ending a connection by \"end\"")?;
    for (sent, eof, name, blames) in endings {
        let _ = conn.send(sent);
        if eof {
            conn.half_close();
        } else if sent == b"pingping" {
            conn.wait_queued(8, ctx.waits.timeout);
        }
        conn.close();
        // SPEC: SRV-INVALID-2, SRV-ISOLATE-1 — a crash a moment after the ending is still
        // the ending's doing: the server is watched for a while before the next connection.
        let watched = Exercise::new(
            format!("the {} after a connection ended by {name}", human_duration(WATCH_AFTER_ENDING)),
            blames,
        );
        ctx.expect_running_for(WATCH_AFTER_ENDING, &watched)?;
        let step = Exercise::new(format!("a new connection after one that ended by {name}"), blames);
        conn = serves_new(ctx, 2, &step)?;
    }
    Ok(())
}

/// `count` rounds on `conn` that prove the server serves it, each reply any bytes with `pong`
/// in them: a failure here is what the case is about (`step`), not SRV-PONG-1.
fn serves(conn: &mut Conn, count: u32, step: &Exercise) -> CaseResult {
    (1..=count).try_for_each(|round| {
        conn.ping_round(&step.at(format!("{}, round {round} (\"ping\", read until \"pong\")", step.step)))
    })
}

/// A new connection that `count` rounds prove served ([`serves`]); a failure to connect
/// fails `step` too. The connection, for what the case does next.
fn serves_new(ctx: &mut Ctx, count: u32, step: &Exercise) -> Result<Conn, Problem> {
    let mut conn = ctx.connect_for(step)?;
    serves(&mut conn, count, step)?;
    Ok(conn)
}

/// Lock-step rounds on `conn` until at least `rounds` were done and `at_least` has passed,
/// each reply awaited no longer than `bound`; returns the slowest round.
fn timed_rounds(
    conn: &mut Conn,
    rounds: u32,
    at_least: Duration,
    bound: Duration,
    step: &Exercise,
) -> Result<Duration, Problem> {
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut round = 0;
    while round < rounds || started.elapsed() < at_least {
        round += 1;
        let round_at = step.at(format!("{}, round {round}", step.step));
        conn.deliver(b"ping", &round_at)?;
        slowest = slowest.max(conn.expect_reply_within(bound, &round_at)?);
    }
    Ok(slowest)
}

fn idle_clients(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let timeout = ctx.waits.timeout;
    let mut first = ctx.connect()?;
    let alone =
        timed_rounds(&mut first, 20, Duration::ZERO, timeout, &Exercise::new("20 rounds alone", &["SRV-PONG-1"]))?;
    ctx.note(&format!("slowest of 20 rounds alone: {:.2} ms", alone.as_secs_f64() * 1e3));
    // `first` now stays idle; so does a second connection, and a third holds half a token.
    let mut idle = ctx.connect()?;
    let mut half = ctx.connect()?;
    half.deliver(b"pi", &Exercise::new("half a token on a third connection", &["SRV-OPEN-1"]))?;
    let situation = format!(
        "a new client while two idle connections and a half-token (\"pi\") one are open (alone, the slowest round \
         took {:.2} ms)",
        alone.as_secs_f64() * 1e3
    );
    let step = Exercise::new(situation, &["SRV-CONC-2"]);
    // A full backlog with three connections open already shows they hold the server up.
    let mut conn = ctx.connect_within(BACKLOG_WAIT.min(timeout), &step)?;
    // The bound is relative to the same server alone; rounds go on long enough that a stall
    // the half token causes a moment later is seen too.
    let bound = DELAY_MARGIN + alone * 4;
    let with_peers = timed_rounds(&mut conn, 20, Duration::from_millis(300), bound, &step).map_err(|problem| {
        let others = [
            ("the first connection".to_string(), &mut first, 20),
            ("the idle connection".to_string(), &mut idle, 0),
            ("the half-token connection".to_string(), &mut half, 0),
        ];
        cross_wired("the new client's reply never came", others).unwrap_or(problem)
    })?;
    ctx.note(&format!("slowest round with the idle peers: {:.2} ms", with_peers.as_secs_f64() * 1e3));
    Ok(())
}

fn non_reading_client(ctx: &mut Ctx) -> CaseResult {
    ctx.start_serving()?;
    let mut flooder = ctx.connect()?;
    // Pings keep coming until the server stops taking them (none accepted for 100 ms): by then
    // its pongs fill every buffer back to the non-reader, so a server that writes them
    // blocking is stuck from now on, whatever the scheduling. One flood may fit in the
    // buffers and decide nothing.
    let pings = b"ping".repeat(4096);
    let deadline = Instant::now() + ctx.waits.timeout;
    let mut last_taken = Instant::now();
    while Instant::now() < deadline && last_taken.elapsed() < Duration::from_millis(100) {
        if flooder.flood(&pings) > 0 {
            last_taken = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let step = Exercise::new("a new client while another never reads its pongs", &["SRV-CONC-2", "SRV-ISOLATE-1"]);
    serves_new(ctx, 20, &step).map(drop)
}

fn many_clients(ctx: &mut Ctx, count: usize, requirement: &'static str) -> CaseResult {
    ctx.start_serving()?;
    let mut conns = Vec::new();
    for i in 0..count {
        let step = Exercise::new(
            format!(
                "connecting client {} of {count} (with {} connected, none served yet)",
                i + 1,
                plural(i as u64, "client")
            ),
            &[requirement],
        );
        conns.push(ctx.connect_within(BACKLOG_WAIT.min(ctx.waits.timeout), &step)?);
    }
    let timeout = ctx.waits.timeout;
    // All are connected before any round starts, then they proceed in interleaved rounds;
    // any reply counts (the exact bytes are the wire cases' business).
    for round in 1..=20 {
        let step_for = |i: usize| {
            Exercise::new(format!("round {round} of client {} of {count} connected at once", i + 1), &[requirement])
        };
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.deliver(b"ping", &step_for(i))?;
        }
        // Every client has sent `round` pings by now.
        replies_in_turn(&mut conns, round, timeout, &format!("round {round}: "), step_for)?;
    }
    Ok(())
}

/// Awaits the reply of each of `conns` in turn (each owed `owed` pongs by now), client `i + 1`'s
/// at `step_for(i)`: one that never came fails there, or SRV-ISOLATE-1 where another client got
/// more than its own ([`cross_wired`]). `prefix` begins the words for a missing reply.
fn replies_in_turn(
    conns: &mut [Conn],
    owed: usize,
    timeout: Duration,
    prefix: &str,
    step_for: impl Fn(usize) -> Exercise,
) -> CaseResult {
    for i in 0..conns.len() {
        if let Err(problem) = conns[i].expect_reply_within(timeout, &step_for(i)) {
            let missing = format!("{prefix}client {}'s reply never came", i + 1);
            let others = conns
                .iter_mut()
                .enumerate()
                .filter(|(other, _)| *other != i)
                .map(|(other, conn)| (format!("client {}", other + 1), conn, owed));
            return Err(cross_wired(&missing, others).unwrap_or(problem));
        }
    }
    Ok(())
}

/// When a client waits in vain for its reply (`missing`, in words), whether another connection
/// (`others`: its name, the connection, the pongs it is owed so far) got more than its own
/// replies: state shared between connections handed one client's pong to another, which breaks
/// SPEC: SRV-ISOLATE-1 rather than the concurrency requirement the case is about. What the
/// others hold unread is read first.
fn cross_wired<'c>(missing: &str, others: impl IntoIterator<Item = (String, &'c mut Conn, usize)>) -> Option<Problem> {
    let (name, conn, owed) = others.into_iter().find_map(|(name, conn, owed)| {
        conn.read_for(CROSS_WIRE_WATCH);
        (conn.received().len() > PONG.len() * owed).then_some((name, conn, owed))
    })?;
    let step = Exercise::new(format!("{missing}, while {name} got more than its own"), &["SRV-ISOLATE-1"]);
    Some(step.fail(
        Observation::Bytes { bytes: Bytes::from(PONG.repeat(owed)) },
        Observation::Bytes { bytes: Bytes::from(conn.received().to_vec()) },
    ))
}

fn peer_gone(ctx: &mut Ctx) -> CaseResult {
    ctx.start_serving()?;
    // Half the clients shut down their reading side before sending a ping, so the server's
    // `pong` is a write to a peer that is gone (EPIPE, and SIGPIPE unless the server ignores
    // it) whatever the scheduling; the other half flood pings without reading until the
    // kernel refuses more and then close, so the server is certainly still writing.
    for i in 1..=20 {
        let after = Exercise::new(
            format!("a new connection after client {i} of 20 stopped reading or closed"),
            &["SRV-ERRNO-1"],
        );
        let mut conn = ctx.connect_for(&after)?;
        if i % 2 == 1 {
            conn.shutdown_read();
            let _ = conn.send(b"ping");
            // The server has read the ping once a later connection is served; give it the
            // chance to write its pong before this one goes.
            // Whether the server failed at its write to the gone peer or handed the probe's
            // reply to it, another connection was affected: both requirements say it must not be.
            let step = Exercise::new(
                format!("while client {i} stopped reading and sent \"ping\""),
                &["SRV-ERRNO-1", "SRV-ISOLATE-1"],
            );
            serves_new(ctx, 1, &step)?.close();
        } else {
            conn.flood(&b"ping".repeat(4096));
        }
        conn.close();
    }
    let step =
        Exercise::new("a new client after 20 that stopped reading or closed with replies unread", &["SRV-ERRNO-1"]);
    serves_new(ctx, 2, &step).map(drop)
}

fn descriptor_exhaustion(ctx: &mut Ctx) -> CaseResult {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};
    ctx.start_serving()?;
    let pid = ctx.pid().ok_or_else(|| Problem::Harness("no server process".into()))?;
    // The descriptor numbers the process holds below `below`: accept fails with EMFILE when
    // every number under the limit is taken (a number above it, opened before the limit was
    // lowered, stays open but does not count).
    let held_below = move |below: u64| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map(|entries| {
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok()).filter(|&fd| fd < below).count()
        })
    };
    let open = held_below(u64::MAX).map_err(|e| Problem::harness("cannot count descriptors", e))?;
    // Room for a few connections more than it has now, then far more clients than that.
    let limit = (open + 6) as u64;
    let descriptors = move || held_below(limit);
    let process = Pid::from_raw(pid as i32).ok_or_else(|| Problem::Harness("bad pid".into()))?;
    // The hard limit stays as inherited from the gate (only the soft one is lowered).
    let maximum = rustix::process::getrlimit(Resource::Nofile).maximum;
    let original = prlimit(Some(process), Resource::Nofile, Rlimit { current: Some(limit), maximum })
        .map_err(|e| Problem::harness("cannot lower the server's descriptor limit", e))?;
    ctx.note(&format!("lowered the server's descriptor limit to {limit} ({open} open)"));
    let step = Exercise::new("with its descriptors exhausted by clients connecting", &["SRV-ACCEPT-1"]);
    let mut clients = Vec::new();
    for _ in 0..40 {
        // A server with a short backlog stops taking connections sooner: that is not this case.
        match ctx.connect_within(BACKLOG_WAIT.min(ctx.waits.timeout), &step) {
            Ok(mut conn) => {
                let _ = conn.send(b"ping");
                clients.push(conn);
            }
            Err(_) => break,
        }
    }
    ctx.note(&format!("{} connected and sent \"ping\"", plural(clients.len() as u64, "client")));
    // The case means something only if the server's accept hit the limit. The wait ends as
    // soon as the limit is seen (or the process is gone); a slow server gets the case's whole
    // timeout. The highest count seen counts: a server that closes its listener when accept
    // fails drops below the limit at once.
    let mut peak = open;
    poll_until(ctx.waits.timeout, || match descriptors() {
        Ok(n) => {
            peak = peak.max(n);
            n as u64 >= limit
        }
        Err(_) => true,
    });
    if (peak as u64) < limit {
        // A server that died with its descriptors exhausted broke SRV-ACCEPT-1: that is the
        // verdict, not an inconclusive run.
        if let Some(status) = ctx.exited() {
            return step.failed(Observation::Running, ctx.exit_observed(status));
        }
        // So did one that is alive but closed its listener (an accept loop that ended on
        // EMFILE): nothing listens at the path any more.
        if let Err(e) = connect_bounded(&ctx.socket, Instant::now() + Duration::from_millis(200)) {
            if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) {
                return step.failed(Observation::Connected, Observation::NotConnected { error: e.to_string() });
            }
        }
        return Err(Problem::Inconclusive(format!(
            "the process CMD started (pid {pid}) held at most {peak} of the {limit} descriptor numbers below the \
             limit the gate set: its accept never ran out (is the server another process, started by a wrapper, or \
             does it take one client at a time?)"
        )));
    }
    // A server that retries accept at once burns a whole CPU; over this window it may use
    // half of one at most. The window measures; it decides nothing by itself.
    let window = Duration::from_millis(500);
    let cpu = |pid| crate::process::cpu_time(pid);
    let before = cpu(pid);
    std::thread::sleep(window);
    if let (Some(before), Some(after)) = (before, cpu(pid)) {
        let used = after.saturating_sub(before);
        if used > window / 2 {
            let window_ms = window.as_millis() as u64;
            return step.failed(
                Observation::CpuTime { used_ms: window_ms / 2, window_ms },
                Observation::CpuTime { used_ms: used.as_millis() as u64, window_ms },
            );
        }
    }
    // Free descriptors by restoring the limit: every waiting client must now be served, in
    // turn (so a server that serves one client at a time passes too).
    prlimit(Some(process), Resource::Nofile, original).map_err(|e| Problem::harness("cannot restore the limit", e))?;
    ctx.note("restored the server's descriptor limit");
    let count = clients.len();
    let timeout = ctx.waits.timeout;
    // Each client sent one ping.
    replies_in_turn(&mut clients, 1, timeout, "", |i| {
        step.at(format!("client {} of {count}, waiting since descriptors ran out, after the limit was restored", i + 1))
    })?;
    // Closed by the gate (not by `end`, which is SRV-END-1's business): their descriptors go back.
    drop(clients);
    let after = Exercise::new("a new client after descriptors were exhausted and freed again", &["SRV-ACCEPT-1"]);
    serves_new(ctx, 3, &after).map(drop)
}

fn vacant(ctx: &mut Ctx) -> CaseResult {
    // The start itself is the case: the readiness probe's connection is a stream connection
    // accepted at the path (SPEC: LIFE-BIND-1, TRN-SOCK-1), and the file there must be a socket.
    ctx.start_server()?;
    let state = PathState::of(&ctx.socket);
    if !matches!(state, PathState::Socket { .. }) {
        let step = Exercise::new("after the start, what is at the path", &["LIFE-BIND-1", "TRN-SOCK-1"]);
        let path = ctx.socket.display().to_string();
        return step.failed(
            Observation::Path { path: path.clone(), state: PathState::Socket { mode: 0o600 } },
            Observation::Path { path, state },
        );
    }
    Ok(())
}

fn stale_socket(ctx: &mut Ctx) -> CaseResult {
    Occupant::StaleSocket.put(&ctx.socket, ctx.dir())?;
    ctx.note("created a stale socket file at the path");
    let step = Exercise::new("the start over a stale socket file (connect is refused)", &["LIFE-STALE-1"]);
    // The readiness probe connects at the path: something listens there now, so the stale
    // socket was replaced.
    ctx.start_server_over(&step)
}

/// What a refusal's message must say (SPEC.md section 7.1): the path, and for a foreign file
/// what was found; `None` where SPEC.md asks for no message.
pub(crate) struct Said<'a> {
    /// The path is named (its file name, at least).
    pub(crate) path: bool,
    /// What was found, in any of these words (case-insensitive).
    pub(crate) found: Option<(&'a str, &'a [&'a str])>,
}

pub(crate) const SAYS_NOTHING: Said<'static> = Said { path: false, found: None };

/// Expects the server to refuse to start (exit non-zero by itself) with what the case put at
/// the path intact, and a message that says what SPEC.md requires, no more and no less.
/// `intact` says whether what the case put there is untouched: once it is not, the outcome is
/// decided without waiting for the exit.
pub(crate) fn expect_refusal(
    ctx: &mut Ctx,
    step: &Exercise,
    said: Said<'_>,
    what: &str,
    intact: &dyn Fn() -> Option<Observation>,
) -> CaseResult {
    ctx.mark_prepared();
    ctx.spawn()?;
    let untouched = Observation::Untouched { what: what.to_string() };
    ctx.expect_refusal(step, |_| intact().map(|observed| step.fail(untouched.clone(), observed)))?;
    if let Some(observed) = intact() {
        return step.failed(untouched, observed);
    }
    let text = ctx.said();
    let lower = text.to_lowercase();
    let name = ctx.socket.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut saying = Vec::new();
    let mut missing = false;
    if said.path {
        saying.push(format!("the path ({name})"));
        missing |= !text.contains(&name);
    }
    if let Some((what, words)) = said.found {
        saying.push(format!("what it found ({what})"));
        missing |= !words.iter().any(|w| lower.contains(w));
    }
    if missing {
        let tail = ctx.stderr_tail();
        let excerpt = if tail.is_empty() { crate::process::escape(text.trim().as_bytes(), 300) } else { tail };
        return step.failed(Observation::Message { saying }, Observation::Said { text: excerpt });
    }
    Ok(())
}

fn path_too_long(ctx: &mut Ctx) -> CaseResult {
    // SPEC: TRN-PATH-2 — observable only when CMD takes the path as an argument.
    if !ctx.target().args.iter().any(|a| a.contains("{socket}")) {
        return Err(Problem::Skip(
            "CMD takes no {socket} argument, so the gate cannot give it a path longer than sun_path (pass {socket} \
             to check TRN-PATH-2)"
                .into(),
        ));
    }
    // A directory named so that `<it>/udsocket` is 120 bytes: too long for sun_path (107 and
    // a NUL). A server that truncates binds a prefix of the path, in the long directory or,
    // when the case directory's path is long, in the case directory: every prefix that could
    // be bound is watched.
    const LENGTH: usize = 120;
    let base = ctx.dir().to_path_buf();
    let name_length = LENGTH.saturating_sub(base.as_os_str().len() + "/".len() + "/udsocket".len()).max(1);
    let long_dir = base.join("d".repeat(name_length));
    std::fs::create_dir(&long_dir).map_err(|e| Problem::harness("cannot create the long directory", e))?;
    ctx.socket = long_dir.join("udsocket");
    let length = ctx.socket.as_os_str().len();
    ctx.note(&format!("the socket path is {length} bytes: {}", ctx.socket.display()));
    let prefixes = truncations(&ctx.socket);
    let step = Exercise::new(
        format!("the start with a socket path of {length} bytes, more than sun_path holds (107 and a NUL)"),
        &["TRN-PATH-2"],
    );
    let created = move || {
        prefixes.iter().find(|p| std::fs::symlink_metadata(p).is_ok()).map(|p| Observation::Path {
            path: format!("{} (the path truncated to {} bytes)", p.display(), p.as_os_str().len()),
            state: PathState::of(p),
        })
    };
    let said = Said { path: true, found: None };
    expect_refusal(ctx, &step, said, "nothing created for the path", &created)?;
    if !ctx.said().contains(&length.to_string()) {
        let saying = vec![format!("the path's length ({length})")];
        return step.failed(Observation::Message { saying }, Observation::Said { text: ctx.stderr_tail() });
    }
    Ok(())
}

/// Every path a server that truncates `path` into `sun_path` could bind: its prefixes from
/// 100 to one byte short of it (the path itself is not created either, but it cannot be
/// bound), that do not exist yet.
fn truncations(path: &Path) -> Vec<PathBuf> {
    let bytes = path.as_os_str().as_encoded_bytes();
    (100..bytes.len())
        .filter(|&n| bytes[n - 1] != b'/')
        .map(|n| PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..n])))
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .collect()
}

/// What is at `path` now, unless it is still the very file that was there when this was
/// called (the same inode, the same kind, mode and content): what a refusal must leave
/// untouched. A replacement of the same kind and mode is not the same file.
pub(crate) fn unless_unchanged(path: &Path) -> impl Fn() -> Option<Observation> {
    let path = path.to_path_buf();
    let identity = |path: &Path| std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let before = (identity(&path), PathState::of(&path));
    move || {
        let now = (identity(&path), PathState::of(&path));
        (now != before).then(|| Observation::Path {
            path: format!("{} (not the file that was there before)", path.display()),
            state: now.1,
        })
    }
}

fn live_socket(ctx: &mut Ctx) -> CaseResult {
    let listener = Occupant::LiveServer.put(&ctx.socket, ctx.dir())?;
    ctx.note("the harness listens at the path");
    let step = Exercise::new("the start while another server listens at the path", &["LIFE-LIVE-1"]);
    refuses_beside_another_server(ctx, &step)?;
    if let Err(e) = connect_bounded(&ctx.socket, Instant::now() + ctx.waits.timeout) {
        let error = e.to_string();
        return step.failed(Observation::OtherServerAccepts { accepts: true }, Observation::NotConnected { error });
    }
    drop(listener);
    Ok(())
}

/// SPEC: LIFE-LIVE-1 — with another server's socket at the path: a refusal naming the path,
/// and that socket left where it is.
fn refuses_beside_another_server(ctx: &mut Ctx, step: &Exercise) -> CaseResult {
    let intact = unless_unchanged(&ctx.socket);
    expect_refusal(ctx, step, Said { path: true, found: None }, "the other server's socket", &intact)
}

fn busy_socket(ctx: &mut Ctx) -> CaseResult {
    let busy = Occupant::BusyServer.put(&ctx.socket, ctx.dir())?;
    ctx.note("the harness listens at the path, its backlog full (never accepting)");
    let step = Exercise::new(
        "the start while another server listens at the path with its backlog full (a probe connect gets EAGAIN)",
        &["LIFE-PROBE-1", "LIFE-LIVE-1"],
    );
    refuses_beside_another_server(ctx, &step)?;
    drop(busy);
    Ok(())
}

fn second_start(ctx: &mut Ctx) -> CaseResult {
    ctx.start_serving()?;
    let step = Exercise::new("a second start while the first instance serves the path", &["LIFE-LIVE-1"]);
    second_start_refused(ctx, &step)
}

/// SPEC: LIFE-LIVE-1 — a second instance started while the current one serves (which the
/// caller saw serve) refuses, leaves the first one's socket file as it was, and the first
/// serves on. The fixed case's and the generated lifecycles' one check.
pub(crate) fn second_start_refused(ctx: &mut Ctx, step: &Exercise) -> CaseResult {
    let intact = unless_unchanged(&ctx.socket);
    ctx.note("starting a second instance while the first serves");
    ctx.mark_prepared();
    ctx.spawn_another()?;
    let untouched = Observation::Untouched { what: "the first instance's socket".into() };
    ctx.expect_refusal(step, |_| intact().map(|observed| step.fail(untouched.clone(), observed)))?;
    if let Some(observed) = intact() {
        return step.failed(untouched, observed);
    }
    ctx.resume_previous();
    let first = step.at(format!("{}: the first, after the second refused", step.step));
    serves_new(ctx, 1, &first).map(drop)
}

fn foreign(ctx: &mut Ctx, occupant: Occupant) -> CaseResult {
    let (path, dir) = (ctx.socket.clone(), ctx.dir().to_owned());
    let _held = occupant.put(&path, &dir)?;
    let (what, words) = occupant.described();
    ctx.note(&format!("put {what} at the path"));
    let before = PathState::of(&path);
    let check = move || -> Option<Observation> {
        let now = PathState::of(&path);
        (now != before || !occupant.contents_intact(&path, &dir))
            .then(|| Observation::Path { path: path.display().to_string(), state: now })
    };
    let step = Exercise::new(format!("the start with {what} at the socket path"), &["LIFE-FOREIGN-1"]);
    expect_refusal(ctx, &step, Said { path: true, found: Some((what, words)) }, what, &check)
}

fn unprovable_socket(ctx: &mut Ctx) -> CaseResult {
    let datagram = UnixDatagram::bind(&ctx.socket).map_err(|e| Problem::harness("cannot bind a datagram socket", e))?;
    let intact = unless_unchanged(&ctx.socket);
    ctx.note("bound a datagram socket at the path");
    let step = Exercise::new(
        "the start with a datagram socket at the path (a stream connect fails with EPROTOTYPE, not ECONNREFUSED)",
        &["LIFE-PROBE-1"],
    );
    // SPEC: LIFE-PROBE-1 asks for no message.
    expect_refusal(ctx, &step, SAYS_NOTHING, "the datagram socket", &intact)?;
    drop(datagram);
    Ok(())
}

fn mode(ctx: &mut Ctx) -> CaseResult {
    // SPEC: LIFE-PERM-1 — the directory is watched from before the server starts, so the
    // file's mode is seen the moment it appears, and so is any later change to it.
    ctx.watch_socket_file()?;
    ctx.start_server()?;
    let step = Exercise::new("the socket file's mode, watched from before the start", &["LIFE-PERM-1"]);
    let state = PathState::of(&ctx.socket);
    let PathState::Socket { mode } = state else {
        return step.failed(
            Observation::Mode { first: 0o600, changed_to: Vec::new() },
            Observation::Path { path: ctx.socket.display().to_string(), state },
        );
    };
    let seen = ctx.permissions_seen();
    let first = seen.first_mode.unwrap_or(mode);
    if first != 0o600 || !seen.changed_to.is_empty() || mode != 0o600 {
        let mut changed_to = seen.changed_to;
        if changed_to.last().is_none_or(|m| *m != mode) && first != mode {
            changed_to.push(mode);
        }
        return step.failed(
            Observation::Mode { first: 0o600, changed_to: Vec::new() },
            Observation::Mode { first, changed_to },
        );
    }
    Ok(())
}

fn shutdown(ctx: &mut Ctx, signal: Signal, name: &str) -> CaseResult {
    ctx.start_server()?;
    // A connection surely accepted and being served when the signal arrives: it has completed a
    // round and is now in the middle of a token. A server that waits for its connections to
    // finish never exits. A second connection, never used, may still wait in the backlog.
    let mut busy = ctx.connect()?;
    busy.live_round("a connection then left in the middle of a token")?;
    busy.deliver(b"pi", &Exercise::new("half a token", &["SRV-OPEN-1"]))?;
    // The signal comes once the server has read the "pi": only then is it in the middle of
    // a token (a server slower to read gets the signal anyway, after SEND_GAP).
    busy.wait_read_by_peer(SEND_GAP);
    let idle = ctx.connect()?;
    let step = Exercise::new(
        format!("{name} with a connection in the middle of a token after a round, and an idle one"),
        &["LIFE-SHUT-1"],
    );
    let abstract_address = abstract_name(&ctx.socket).is_some();
    let step = if abstract_address { step.blaming(["TRN-ABSTRACT-2"]) } else { step };
    ctx.signal(signal, name)?;
    ctx.expect_exit(&step, true)?;
    if !abstract_address {
        ctx.expect_at_path(&step, PathState::Nothing)?;
    } else {
        // SPEC: TRN-ABSTRACT-2 — nothing to remove, but the name must be free again.
        match connect_bounded(&ctx.socket, Instant::now() + ctx.waits.timeout) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => {
                let refused = Observation::NotConnected { error: "connection refused".into() };
                return step.failed(refused, Observation::NotConnected { error: e.to_string() });
            }
            Ok(_) => {
                let refused = Observation::NotConnected { error: "connection refused".into() };
                return step.failed(refused, Observation::Connected);
            }
        }
    }
    let mut idle = idle;
    busy.expect_closed_loosely(&step.at(format!("{}: the connection in the middle of a token", step.step)))?;
    idle.expect_closed_loosely(&step.at(format!("{}: the idle connection", step.step)))
}

fn replaced_file(ctx: &mut Ctx, signal: Signal, name: &str) -> CaseResult {
    // A server seen serving has set itself up (its signal handlers among the rest): a signal
    // right after the readiness probe could find it still starting.
    ctx.start_serving()?;
    std::fs::remove_file(&ctx.socket).map_err(|e| Problem::harness("cannot remove the socket file", e))?;
    std::fs::write(&ctx.socket, b"not the server's").map_err(|e| Problem::harness("cannot write a replacement", e))?;
    ctx.note("replaced the socket file with a regular file");
    ctx.signal(signal, name)?;
    // Any exit will do here: how it exits is LIFE-SHUT-1's business (server/7.4/sigterm).
    let exits = Exercise::new(format!("{name} after the socket file was replaced"), &["LIFE-SHUT-1"]);
    let status = ctx.expect_any_exit(&exits)?;
    if status.signal() == Some(signal.as_raw()) {
        // Killed by the signal's default action, it cleaned nothing up: whether it leaves a
        // replacement alone was not exercised (how it should exit is server/7.4's business).
        return Err(Problem::Inconclusive(format!(
            "the server was killed by {name} (it does not handle it), so it never reached its clean-up: LIFE-SHUT-2 \
             was not exercised"
        )));
    }
    let step = Exercise::new(format!("the replacement of the socket file, after {name}"), &["LIFE-SHUT-2"]);
    ctx.expect_at_path(&step, PathState::RegularFile { content: "not the server's".into() })
}

fn abstract_serves(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let mut conn = ctx.connect()?;
    conn.live_round(&format!("a server on the abstract address {}", ctx.socket.display()))?;
    let files: Vec<String> = std::fs::read_dir(ctx.dir())
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    if !files.is_empty() {
        let step = Exercise::new(
            format!("the working directory of a server given the abstract address {}", ctx.socket.display()),
            &["TRN-ABSTRACT-2"],
        );
        return step.failed(Observation::Files { names: Vec::new() }, Observation::Files { names: files });
    }
    Ok(())
}

fn abstract_name_taken(ctx: &mut Ctx) -> CaseResult {
    let holder = ctx.listen()?;
    ctx.note("the harness listens on the abstract name");
    let socket = ctx.socket.clone();
    // The holder's backlog keeps a probe waiting, so "still listening" is a connect that works.
    let intact = move || {
        connect_bounded(&socket, Instant::now())
            .err()
            .map(|e| Observation::NotConnected { error: format!("the holder no longer accepts: {e}") })
    };
    let step = Exercise::new("the start while another server listens on the abstract name", &["TRN-ABSTRACT-2"]);
    expect_refusal(ctx, &step, SAYS_NOTHING, "the holder of the name", &intact)?;
    drop(holder);
    Ok(())
}
