//! Cases that judge a server (SPEC.md sections 4, 5 and 7), played as clients over real sockets
//! and checked through the filesystem and the process. The stream-shaped cases of sections 4.2
//! to 5.4 are rows of data in [`super::rows`]; the cases here need code (several connections
//! held in particular states, descriptor limits, files at the path, signals).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::Duration;

use rustix::process::Signal;

use super::harness::{connect_bounded, fail, human_duration, plural, CaseResult, Conn, Ctx, Problem};
use super::{Case, Needs, Role};

/// How much slower than alone a round may be while idle connections are open (SRV-CONC-2):
/// this margin plus four times the slowest round alone. Generous against a loaded machine,
/// far below a server that makes connections wait on each other.
const DELAY_MARGIN: Duration = Duration::from_millis(500);

macro_rules! case {
    ($id:literal, [$($req:literal),+], $title:literal, $run:expr) => {
        case!(Any, $id, [$($req),+], $title, $run)
    };
    ($needs:ident, $id:literal, [$($req:literal),+], $title:literal, $run:expr) => {
        Case { id: $id, role: Role::Server, requirements: &[$($req),+], title: $title, needs: Needs::$needs, run: $run }
    };
}

/// Every server case, in SPEC.md order.
pub fn cases() -> Vec<Case> {
    let mut cases = vec![case!(
        SocketFile,
        "server/3/path-too-long",
        ["TRN-PATH-2"],
        "a socket path longer than sun_path is refused, naming it and its length, and nothing is created",
        path_too_long
    )];
    cases.extend(super::rows::cases());
    cases.extend([
        case!(
            "server/5.5/keeps-accepting",
            ["SRV-ISOLATE-1", "SRV-INVALID-2", "SRV-ERRNO-1"],
            "after every kind of ending, a new client is served",
            keeps_accepting
        ),
        case!(
            "server/5.5/idle-client",
            ["SRV-CONC-2"],
            "an idle and a half-token connection do not delay another client",
            idle_clients
        ),
        case!(
            "server/5.5/non-reading-client",
            ["SRV-CONC-2", "SRV-ISOLATE-1"],
            "a client that never reads its pongs does not delay another",
            non_reading_client
        ),
        case!("server/5.5/concurrent-clients", ["SRV-CONC-1"], "8 clients at once, 20 interleaved rounds each", |c| {
            many_clients(c, 8)
        }),
        case!("server/5.5/many-clients", ["SRV-CONC-3"], "64 clients at once, 20 interleaved rounds each", |c| {
            many_clients(c, 64)
        }),
        case!(
            "server/5.6/peer-gone",
            ["SRV-ERRNO-1"],
            "20 clients that stop reading, or close while the server writes: it lives on",
            peer_gone
        ),
        case!(
            "server/5.6/descriptor-exhaustion",
            ["SRV-ACCEPT-1"],
            "out of descriptors: no busy loop, and service resumes once they are free",
            descriptor_exhaustion
        ),
        case!(
            SocketFile,
            "server/7.1/vacant",
            ["LIFE-BIND-1", "TRN-SOCK-1"],
            "nothing at the path: the server binds a stream socket there",
            vacant
        ),
        case!(SocketFile, "server/7.1/stale-socket", ["LIFE-STALE-1"], "a stale socket file is replaced", stale_socket),
        case!(
            SocketFile,
            "server/7.1/live-socket",
            ["LIFE-LIVE-1"],
            "a live server at the path: refuse, exit non-zero, leave it alone",
            live_socket
        ),
        case!(
            SocketFile,
            "server/7.1/regular-file",
            ["LIFE-FOREIGN-1"],
            "a regular file at the path: refuse, file intact",
            |c| foreign(c, Occupant::File)
        ),
        case!(
            SocketFile,
            "server/7.1/directory",
            ["LIFE-FOREIGN-1"],
            "a directory at the path: refuse, untouched",
            |c| foreign(c, Occupant::Directory)
        ),
        case!(
            SocketFile,
            "server/7.1/symlink",
            ["LIFE-FOREIGN-1"],
            "a symbolic link to a file: refuse, link and target intact",
            |c| foreign(c, Occupant::Symlink)
        ),
        case!(
            SocketFile,
            "server/7.1/symlink-to-stale-socket",
            ["LIFE-FOREIGN-1"],
            "a symbolic link to a stale socket: refuse, untouched",
            |c| foreign(c, Occupant::SymlinkToSocket)
        ),
        case!(
            SocketFile,
            "server/7.1/unprovable-socket",
            ["LIFE-PROBE-1"],
            "a datagram socket (connect fails, not refused): refuse",
            unprovable_socket
        ),
        case!(
            SocketFile,
            "server/7.3/mode",
            ["LIFE-PERM-1"],
            "the socket file is owner-only (0600) from the moment it appears",
            mode
        ),
        case!(
            SocketFile,
            "server/7.4/sigterm",
            ["LIFE-SHUT-1"],
            "SIGTERM: exit 0, socket file removed, connections closed",
            |c| shutdown(c, Signal::TERM, "SIGTERM")
        ),
        case!(
            SocketFile,
            "server/7.4/sigint",
            ["LIFE-SHUT-1"],
            "SIGINT: exit 0, socket file removed, connections closed",
            |c| shutdown(c, Signal::INT, "SIGINT")
        ),
        case!(
            SocketFile,
            "server/7.4/replaced-file",
            ["LIFE-SHUT-2"],
            "a file that replaced the socket survives SIGTERM",
            |c| replaced_file(c, Signal::TERM, "SIGTERM")
        ),
        case!(
            SocketFile,
            "server/7.4/replaced-file-sigint",
            ["LIFE-SHUT-2"],
            "a file that replaced the socket survives SIGINT",
            |c| replaced_file(c, Signal::INT, "SIGINT")
        ),
        case!(
            AbstractAddress,
            "server/7.6/abstract-serves",
            ["TRN-ABSTRACT-1", "TRN-ABSTRACT-2"],
            "on an abstract address: serves, and creates no file",
            abstract_serves
        ),
        case!(
            AbstractAddress,
            "server/7.6/abstract-name-taken",
            ["TRN-ABSTRACT-2"],
            "the abstract name is taken: refuse, exit non-zero, leave the holder serving",
            abstract_name_taken
        ),
        case!(
            AbstractAddress,
            "server/7.6/abstract-sigterm",
            ["TRN-ABSTRACT-2"],
            "SIGTERM: exit 0, connections closed, the name released",
            |c| shutdown(c, Signal::TERM, "SIGTERM")
        ),
    ]);
    cases
}

fn keeps_accepting(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    // The last ending closes with two pongs queued unread once the server owes nothing more:
    // its next read sees a reset, and it never has to write to the gone peer (that is
    // server/5.6/peer-gone's business), whatever the scheduling.
    let endings: [(&[u8], bool, &str); 5] = [
        (b"end", false, "\"end\""),
        (b"PING", false, "invalid input"),
        (b"pi", true, "EOF mid-token"),
        (b"", true, "EOF at once"),
        (b"pingping", false, "a reset with pongs unread"),
    ];
    // Only the lifecycle of connections is judged here: any reply proves the server is live
    // (the exact bytes are the wire cases' business).
    for (sent, eof, name) in endings {
        let mut conn = ctx.connect()?;
        conn.live_round(&format!("before ending by {name}"))?;
        conn.send(sent);
        if eof {
            conn.half_close();
        } else if sent == b"pingping" {
            conn.wait_queued(8, ctx.timeout);
        }
        conn.close();
        let mut next = ctx.connect()?;
        next.live_session(2, &format!("a new connection after one that ended by {name}"))?;
    }
    Ok(())
}

/// Lock-step rounds on `conn` until at least `rounds` were done and `at_least` has passed,
/// each reply awaited no longer than `bound`; returns the slowest round.
fn timed_rounds(
    conn: &mut Conn,
    rounds: u32,
    at_least: Duration,
    bound: Duration,
    situation: &str,
) -> Result<Duration, Problem> {
    let started = std::time::Instant::now();
    let mut slowest = Duration::ZERO;
    let mut round = 0;
    while round < rounds || started.elapsed() < at_least {
        round += 1;
        conn.send(b"ping");
        match conn.first_byte_within(bound) {
            Ok(took) => slowest = slowest.max(took),
            Err(what) => {
                return fail(format!(
                    "{situation}, round {round}: sent \"ping\"; expected a reply within {}; got {what}",
                    human_duration(bound)
                ))
            }
        }
    }
    Ok(slowest)
}

fn idle_clients(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let timeout = ctx.timeout;
    let mut first = ctx.connect()?;
    let alone = timed_rounds(&mut first, 20, Duration::ZERO, timeout, "alone")?;
    ctx.note(&format!("slowest of 20 rounds alone: {:.2} ms", alone.as_secs_f64() * 1e3));
    // `first` now stays idle; so does a second connection, and a third holds half a token.
    let _idle = ctx.connect()?;
    let mut half = ctx.connect()?;
    half.send(b"pi");
    // A full backlog with three connections open already shows they hold the server up.
    let mut conn = ctx.connect_within(BACKLOG_WAIT.min(ctx.timeout))?;
    // The bound is relative to the same server alone; rounds go on long enough that a stall
    // the half token causes a moment later is seen too.
    let bound = DELAY_MARGIN + alone * 4;
    let with_peers = timed_rounds(
        &mut conn,
        20,
        Duration::from_millis(300),
        bound,
        &format!(
            "a new client while two idle connections and a half-token (\"pi\") one are open (alone, the slowest \
             round took {:.2} ms)",
            alone.as_secs_f64() * 1e3
        ),
    )?;
    ctx.note(&format!("slowest round with the idle peers: {:.2} ms", with_peers.as_secs_f64() * 1e3));
    Ok(())
}

fn non_reading_client(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let mut flooder = ctx.connect()?;
    // Pings keep coming until the server stops taking them (none accepted for 100 ms): by then
    // its pongs fill every buffer back to the non-reader, so a server that writes them
    // blocking is stuck from now on, whatever the scheduling. One flood may fit in the
    // buffers and decide nothing.
    let pings = b"ping".repeat(4096);
    let deadline = std::time::Instant::now() + ctx.timeout;
    let mut last_taken = std::time::Instant::now();
    while std::time::Instant::now() < deadline && last_taken.elapsed() < Duration::from_millis(100) {
        if flooder.flood(&pings) > 0 {
            last_taken = std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut conn = ctx.connect()?;
    conn.live_session(20, "while another client never reads its pongs")
}

/// How long a connect may wait for room in a full listen backlog where a full backlog already
/// decides the case.
const BACKLOG_WAIT: Duration = Duration::from_millis(500);

fn many_clients(ctx: &mut Ctx, count: usize) -> CaseResult {
    ctx.start_server()?;
    let mut conns = Vec::new();
    for i in 0..count {
        match ctx.connect_within(BACKLOG_WAIT.min(ctx.timeout)) {
            Ok(conn) => conns.push(conn),
            Err(Problem::Fail(message)) => {
                return fail(format!(
                    "connecting client {} of {count}: {message} (with {} connected, none of them served yet)",
                    i + 1,
                    plural(i as u64, "client")
                ))
            }
            Err(other) => return Err(other),
        }
    }
    let timeout = ctx.timeout;
    // All are connected before any round starts, then they proceed in interleaved rounds;
    // any reply counts (the exact bytes are the wire cases' business).
    for round in 1..=20 {
        for conn in conns.iter_mut() {
            conn.send(b"ping");
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            if let Err(what) = conn.first_byte_within(timeout) {
                return fail(format!(
                    "round {round} of client {} of {count} connected at once: sent \"ping\"; expected a reply within {}; got {what}",
                    i + 1,
                    human_duration(timeout)
                ));
            }
        }
    }
    Ok(())
}

fn peer_gone(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    // Half the clients shut down their reading side before sending a ping, so the server's
    // `pong` is a write to a peer that is gone (EPIPE, and SIGPIPE unless the server ignores
    // it) whatever the scheduling; the other half flood pings without reading until the
    // kernel refuses more and then close, so the server is certainly still writing.
    for i in 1..=20 {
        let mut conn = ctx.connect()?;
        if i % 2 == 1 {
            conn.shutdown_read();
            conn.send(b"ping");
            // The server has read the ping once a later connection is served; give it the
            // chance to write its pong before this one goes.
            let mut probe = ctx.connect()?;
            probe.live_round(&format!("while client {i} stopped reading and sent \"ping\""))?;
            probe.close();
        } else {
            conn.flood(&b"ping".repeat(4096));
        }
        conn.close();
    }
    let mut conn = ctx.connect()?;
    conn.live_session(2, "a new client after 20 that stopped reading or closed with replies unread")
}

fn descriptor_exhaustion(ctx: &mut Ctx) -> CaseResult {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};
    ctx.start_server()?;
    let harness = |what: &str, e: &dyn std::fmt::Display| Problem::Harness(format!("{what}: {e}"));
    let pid = ctx.pid().ok_or_else(|| Problem::Harness("no server process".into()))?;
    // The descriptor numbers the process holds below `below`: accept fails with EMFILE when
    // every number under the limit is taken (a number above it, opened before the limit was
    // lowered, stays open but does not count).
    let held_below = move |below: u64| {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map(|entries| {
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok()).filter(|&fd| fd < below).count()
        })
    };
    let open = held_below(u64::MAX).map_err(|e| harness("cannot count descriptors", &e))?;
    // Room for a few connections more than it has now, then far more clients than that.
    let limit = (open + 6) as u64;
    let descriptors = move || held_below(limit);
    let process = Pid::from_raw(pid as i32).ok_or_else(|| Problem::Harness("bad pid".into()))?;
    // The hard limit stays as inherited from the gate (only the soft one is lowered).
    let maximum = rustix::process::getrlimit(Resource::Nofile).maximum;
    let original = prlimit(Some(process), Resource::Nofile, Rlimit { current: Some(limit), maximum })
        .map_err(|e| harness("cannot lower the server's descriptor limit", &e))?;
    ctx.note(&format!("lowered the server's descriptor limit to {limit} ({open} open)"));
    let mut clients = Vec::new();
    for _ in 0..40 {
        // A server with a short backlog stops taking connections sooner: that is not this case.
        match ctx.connect_within(BACKLOG_WAIT.min(ctx.timeout)) {
            Ok(mut conn) => {
                conn.send(b"ping");
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
    super::harness::poll_until(ctx.timeout, || match descriptors() {
        Ok(n) => {
            peak = peak.max(n);
            n as u64 >= limit
        }
        Err(_) => true,
    });
    if (peak as u64) < limit {
        // A server that died with its descriptors exhausted broke SRV-ACCEPT-1: that is the
        // verdict, not an inconclusive run.
        if let Some(death) = ctx.death_during_case(true) {
            return fail(format!(
                "{death}; with {} connecting as its descriptors ran out",
                plural(clients.len() as u64, "client")
            ));
        }
        // So did one that is alive but closed its listener (an accept loop that ended on
        // EMFILE): nothing listens at the path any more.
        if let Err(e) = connect_bounded(&ctx.socket, std::time::Instant::now() + Duration::from_millis(200)) {
            if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) {
                return fail(format!(
                    "with {} connecting as its descriptors ran out, the server stopped listening (a new connect: {e})",
                    plural(clients.len() as u64, "client")
                ));
            }
        }
        return Err(Problem::Inconclusive(format!(
            "the process CMD started (pid {pid}) held at most {peak} of the {limit} descriptor numbers below the \
             limit the gate set: its accept never ran out (is the server another process, started by a wrapper, or does it \
             take one client at a time?)"
        )));
    }
    // A server that retries accept at once burns a whole CPU; over this window it may use
    // half of one at most. The window measures; it decides nothing by itself.
    let window = Duration::from_millis(500);
    let cpu_seconds = |pid| crate::process::cpu_time(pid).map(|t| t.as_secs_f64());
    let before = cpu_seconds(pid);
    std::thread::sleep(window);
    if let (Some(before), Some(after)) = (before, cpu_seconds(pid)) {
        if after - before > 0.5 * window.as_secs_f64() {
            return fail(format!(
                "with its descriptors exhausted by {} the server used {:.2} s of CPU in {}; expected it to back off, not spin",
                plural(clients.len() as u64, "client"),
                after - before,
                human_duration(window)
            ));
        }
    }
    // Free descriptors by restoring the limit: every waiting client must now be served, in
    // turn (so a server that serves one client at a time passes too), and finish with `end`.
    prlimit(Some(process), Resource::Nofile, original).map_err(|e| harness("cannot restore the limit", &e))?;
    ctx.note("restored the server's descriptor limit");
    let count = clients.len();
    let timeout = ctx.timeout;
    for (i, conn) in clients.iter_mut().enumerate() {
        let situation =
            format!("client {} of {count}, waiting since descriptors ran out, after the limit was restored", i + 1);
        if let Err(what) = conn.first_byte_within(timeout) {
            return fail(format!(
                "{situation}: expected a reply to its \"ping\" within {}; got {what}",
                human_duration(timeout)
            ));
        }
    }
    // Closed by the gate (not by `end`, which is SRV-END-1's business): their descriptors go back.
    drop(clients);
    let mut conn = ctx.connect()?;
    conn.live_session(3, "a new client after descriptors were exhausted and freed again")
}

fn vacant(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let metadata =
        std::fs::symlink_metadata(&ctx.socket).or_else(|e| fail(format!("no file at the socket path: {e}")))?;
    if !metadata.file_type().is_socket() {
        return fail("the file at the socket path is not a socket");
    }
    let mut conn = ctx.connect()?;
    conn.live_session(2, "a server that bound a vacant path")
}

fn stale_socket(ctx: &mut Ctx) -> CaseResult {
    drop(UnixListener::bind(&ctx.socket).map_err(|e| harness_io("cannot create a stale socket", e))?);
    ctx.note("created a stale socket file at the path");
    ctx.mark_prepared();
    ctx.start_server().map_err(|p| p.prefixed("with a stale socket file at the path (connect is refused)"))?;
    let mut conn = ctx.connect()?;
    conn.live_session(2, "after the stale socket was replaced")
}

fn harness_io(what: &str, error: std::io::Error) -> Problem {
    Problem::Harness(format!("{what}: {error}"))
}

/// Expects the server to refuse to start: exit non-zero by itself, with a message that names
/// the path when `names_path` (on stderr or stdout). `intact` says whether what the case put
/// at the path is still there: once it is not, the outcome is decided without waiting for
/// the exit.
fn expect_refusal(
    ctx: &mut Ctx,
    situation: &str,
    names_path: bool,
    intact: &dyn Fn() -> bool,
    damage: &str,
) -> CaseResult {
    ctx.mark_prepared();
    ctx.spawn()?;
    let status =
        ctx.wait_refusal(situation, |_| (!intact()).then(|| Problem::Fail(format!("{situation}; {damage}"))))?;
    if !intact() {
        return fail(format!("{situation}; {damage}"));
    }
    if status.success() {
        return fail(format!(
            "{situation}; expected a non-zero exit status; got {}",
            crate::process::describe_status(status)
        ));
    }
    if names_path {
        let name = ctx.socket.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let said = ctx.stderr_text() + &ctx.stdout_text();
        if !said.contains(&name) {
            return fail(format!(
                "{situation}; expected a message naming the path {}; the server said: {}",
                ctx.socket.display(),
                if ctx.stderr_tail().is_empty() { "nothing on stderr".to_string() } else { ctx.stderr_tail() }
            ));
        }
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
    // a NUL), and cut inside "udsocket" by a server that truncates, so that a truncated bind
    // shows as a file in that directory.
    const LENGTH: usize = 120;
    let base = ctx.dir().to_path_buf();
    let name_length = LENGTH.saturating_sub(base.as_os_str().len() + "/".len() + "/udsocket".len()).max(1);
    let long_dir = base.join("d".repeat(name_length));
    std::fs::create_dir(&long_dir).map_err(|e| harness_io("cannot create the long directory", e))?;
    ctx.socket = long_dir.join("udsocket");
    let length = ctx.socket.as_os_str().len();
    ctx.note(&format!("the socket path is {length} bytes: {}", ctx.socket.display()));
    let empty = move || std::fs::read_dir(&long_dir).is_ok_and(|mut entries| entries.next().is_none());
    let situation = format!("the socket path is {length} bytes, more than sun_path holds (107 and a NUL)");
    expect_refusal(
        ctx,
        &situation,
        true,
        &empty,
        "expected nothing created; a file appeared in the path's directory (was the path truncated?)",
    )?;
    let said = ctx.stderr_text() + &ctx.stdout_text();
    if !said.contains(&length.to_string()) {
        return fail(format!(
            "{situation}; expected a message giving the path's length ({length}); the server said: {}",
            ctx.stderr_tail()
        ));
    }
    Ok(())
}

fn live_socket(ctx: &mut Ctx) -> CaseResult {
    let listener = UnixListener::bind(&ctx.socket).map_err(|e| harness_io("cannot listen at the path", e))?;
    let inode = std::fs::symlink_metadata(&ctx.socket).map(|m| m.ino()).unwrap_or(0);
    ctx.note("the harness listens at the path");
    let path = ctx.socket.clone();
    let intact = move || std::fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == inode);
    expect_refusal(
        ctx,
        "another server listens at the path",
        true,
        &intact,
        "expected its socket file left in place; it was removed or replaced",
    )?;
    if connect_bounded(&ctx.socket, std::time::Instant::now() + ctx.timeout).is_err() {
        return fail("another server listened at the path; it no longer accepts connections after the refusal");
    }
    drop(listener);
    Ok(())
}

#[derive(Clone, Copy)]
enum Occupant {
    File,
    Directory,
    Symlink,
    SymlinkToSocket,
}

fn foreign(ctx: &mut Ctx, occupant: Occupant) -> CaseResult {
    let harness = |e: std::io::Error| harness_io("cannot prepare the path", e);
    let dir = ctx.dir().to_owned();
    let (what, check): (&str, Box<dyn Fn() -> bool>) = match occupant {
        Occupant::File => {
            std::fs::write(&ctx.socket, b"precious user data\n").map_err(harness)?;
            let path = ctx.socket.clone();
            ("a regular file", Box::new(move || std::fs::read(&path).is_ok_and(|d| d == b"precious user data\n")))
        }
        Occupant::Directory => {
            std::fs::create_dir(&ctx.socket).map_err(harness)?;
            std::fs::write(ctx.socket.join("inside"), b"data").map_err(harness)?;
            let path = ctx.socket.join("inside");
            ("a directory", Box::new(move || std::fs::read(&path).is_ok_and(|d| d == b"data")))
        }
        Occupant::Symlink => {
            std::fs::write(dir.join("target"), b"target data").map_err(harness)?;
            std::os::unix::fs::symlink(dir.join("target"), &ctx.socket).map_err(harness)?;
            let (path, target) = (ctx.socket.clone(), dir.join("target"));
            let check = move || {
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
                    && std::fs::read(&target).is_ok_and(|d| d == b"target data")
            };
            ("a symbolic link to a file", Box::new(check))
        }
        Occupant::SymlinkToSocket => {
            drop(UnixListener::bind(dir.join("real.sock")).map_err(harness)?);
            std::os::unix::fs::symlink(dir.join("real.sock"), &ctx.socket).map_err(harness)?;
            let (path, target) = (ctx.socket.clone(), dir.join("real.sock"));
            let check = move || {
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
                    && std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_socket())
            };
            ("a symbolic link to a stale socket", Box::new(check))
        }
    };
    ctx.note(&format!("put {what} at the path"));
    let situation = format!("{what} was at the socket path");
    expect_refusal(ctx, &situation, true, &*check, "expected it left untouched; it was removed or changed")
}

fn unprovable_socket(ctx: &mut Ctx) -> CaseResult {
    let datagram = UnixDatagram::bind(&ctx.socket).map_err(|e| harness_io("cannot bind a datagram socket", e))?;
    let inode = std::fs::symlink_metadata(&ctx.socket).map(|m| m.ino()).unwrap_or(0);
    ctx.note("bound a datagram socket at the path");
    let path = ctx.socket.clone();
    let intact = move || std::fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == inode);
    expect_refusal(
        ctx,
        "a datagram socket was at the path (stream connect fails with EPROTOTYPE, not ECONNREFUSED)",
        false,
        &intact,
        "expected it left alone; it was removed or replaced",
    )?;
    drop(datagram);
    Ok(())
}

fn mode(ctx: &mut Ctx) -> CaseResult {
    // SPEC: LIFE-PERM-1 — the directory is watched from before the server starts, so the
    // file's mode is seen the moment it appears, and so is any later change to it.
    ctx.watch_socket_file()?;
    ctx.start_server()?;
    let metadata =
        std::fs::symlink_metadata(&ctx.socket).or_else(|e| fail(format!("no file at the socket path: {e}")))?;
    let mode = metadata.permissions().mode() & 0o7777;
    let seen = ctx.permissions_seen();
    if let Some(first) = seen.first_mode.filter(|m| m & !mode != 0) {
        return fail(format!(
            "the socket file appeared with mode {first:04o}, wider than its final mode {mode:04o}: it was open to \
             others until it was narrowed"
        ));
    }
    if !seen.changed_to.is_empty() {
        return fail(format!(
            "the socket file's attributes changed after it was created (to {}): a chmod after bind leaves a \
             window with the mode the umask gave it; expected the mode set at creation",
            seen.changed_to.iter().map(|m| format!("{m:04o}")).collect::<Vec<_>>().join(", then ")
        ));
    }
    if mode != 0o600 {
        return fail(format!("expected the socket file's mode to be 0600; got {mode:04o}"));
    }
    Ok(())
}

fn shutdown(ctx: &mut Ctx, signal: Signal, name: &str) -> CaseResult {
    ctx.start_server()?;
    let mut idle = ctx.connect()?;
    ctx.signal(signal, name)?;
    let status = ctx.wait_exit(&format!("sent {name}"))?;
    if !status.success() {
        return fail(format!(
            "sent {name}; expected exit status 0; the server {}",
            crate::process::describe_status(status)
        ));
    }
    if crate::net::abstract_name(&ctx.socket).is_none() {
        if std::fs::symlink_metadata(&ctx.socket).is_ok() {
            return fail(format!("sent {name}; expected the socket file removed; it is still there"));
        }
    } else {
        // SPEC: TRN-ABSTRACT-2 — nothing to remove, but the name must be free again.
        match connect_bounded(&ctx.socket, std::time::Instant::now() + ctx.timeout) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return fail(format!("sent {name}; expected a connection to the abstract name refused; got {e}")),
            Ok(_) => {
                return fail(format!(
                    "sent {name}; expected the abstract name released; something still accepts connections on it"
                ))
            }
        }
    }
    idle.expect_close_loosely(&format!("an idle connection was open when {name} arrived"))
}

fn replaced_file(ctx: &mut Ctx, signal: Signal, name: &str) -> CaseResult {
    ctx.start_server()?;
    std::fs::remove_file(&ctx.socket).map_err(|e| harness_io("cannot remove the socket file", e))?;
    std::fs::write(&ctx.socket, b"not the server's").map_err(|e| harness_io("cannot write a replacement", e))?;
    ctx.note("replaced the socket file with a regular file");
    ctx.signal(signal, name)?;
    ctx.wait_exit(&format!("sent {name}"))?;
    if std::fs::read(&ctx.socket).ok().as_deref() != Some(b"not the server's") {
        return fail(format!(
            "the socket file was replaced by a regular file, then {name}; expected that file left alone; it was removed"
        ));
    }
    Ok(())
}

/// Files in the case's directory.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn abstract_serves(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let mut conn = ctx.connect()?;
    conn.live_session(2, &format!("a server on the abstract address {}", ctx.socket.display()))?;
    let files = files_in(ctx.dir());
    if !files.is_empty() {
        return fail(format!(
            "given the abstract address {}; expected no file created in its working directory; found {files:?}",
            ctx.socket.display()
        ));
    }
    Ok(())
}

fn abstract_name_taken(ctx: &mut Ctx) -> CaseResult {
    let holder = ctx.listen()?;
    ctx.note("the harness listens on the abstract name");
    let socket = ctx.socket.clone();
    // The holder's backlog keeps a probe waiting, so "still listening" is a connect that works.
    let intact = move || connect_bounded(&socket, std::time::Instant::now()).is_ok();
    expect_refusal(
        ctx,
        "another server listens on the abstract name",
        false,
        &intact,
        "it no longer accepts connections after the refusal",
    )?;
    drop(holder);
    Ok(())
}
