//! Cases that judge a server (SPEC.md sections 4, 5 and 7), played as clients over real sockets
//! and checked through the filesystem and the process. The stream-shaped cases of sections 4.2
//! to 5.4 are rows of data in [`super::rows`]; the cases here need code (several connections
//! held in particular states, descriptor limits, files at the path, signals).

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::time::Duration;

use rustix::process::Signal;

use super::harness::{fail, CaseResult, Conn, Ctx};
use super::{Case, Needs, Role};

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
    let mut cases = super::rows::cases();
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
        case!("server/5.5/many-clients", ["SRV-CONC-1"], "64 clients at once, 20 lock-step rounds each", many_clients),
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
        case!(SocketFile, "server/7.3/mode", ["LIFE-PERM-1"], "the socket file is owner-only (0600)", mode),
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
            "a file that replaced the socket survives shutdown",
            replaced_file
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

/// Lock-step rounds: one `ping` per write, the next only after its `pong`. Every case that is
/// not about segmentation talks this way, so that a server which mishandles segmentation fails
/// the segmentation cases and no others.
fn rounds(conn: &mut Conn, count: u32, situation: &str) -> CaseResult {
    for round in 1..=count {
        conn.send(b"ping");
        conn.expect(b"pong", &format!("{situation}, round {round}: sent \"ping\""))?;
    }
    Ok(())
}

/// Lock-step rounds, then `end` in its own write, then the server must close.
fn session(conn: &mut Conn, count: u32, situation: &str) -> CaseResult {
    rounds(conn, count, situation)?;
    conn.send(b"end");
    conn.expect_close(&format!("{situation}: sent \"end\" after {count} rounds"))
}

fn keeps_accepting(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let endings: [(&[u8], bool, &str); 5] = [
        (b"end", false, "\"end\""),
        (b"PING", false, "invalid input"),
        (b"pi", true, "EOF mid-token"),
        (b"", true, "EOF at once"),
        (&b"ping".repeat(2000), false, "a reset with unread pongs"),
    ];
    for (sent, eof, name) in endings {
        let mut conn = ctx.connect()?;
        rounds(&mut conn, 1, &format!("before ending by {name}"))?;
        conn.send(sent);
        if eof {
            conn.half_close();
        }
        drop(conn);
        let mut next = ctx.connect()?;
        session(&mut next, 2, &format!("a new connection after one that ended by {name}"))?;
    }
    Ok(())
}

fn idle_clients(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let _idle = ctx.connect()?;
    let mut half = ctx.connect()?;
    half.send(b"pi");
    let mut conn = ctx.connect()?;
    session(&mut conn, 20, "while an idle and a half-token connection are open")
}

fn non_reading_client(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let mut flooder = ctx.connect()?;
    flooder.flood(&b"ping".repeat(4096));
    let mut conn = ctx.connect()?;
    session(&mut conn, 20, "while another client never reads its pongs")
}

fn many_clients(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let mut conns = Vec::new();
    for _ in 0..64 {
        conns.push(ctx.connect()?);
    }
    // All 64 are connected before any round starts, then they proceed in interleaved rounds.
    for round in 1..=20 {
        for conn in conns.iter_mut() {
            conn.send(b"ping");
        }
        for (i, conn) in conns.iter_mut().enumerate() {
            conn.expect(b"pong", &format!("round {round} of client {} of 64 connected at once", i + 1))?;
        }
    }
    for conn in conns.iter_mut() {
        conn.send(b"end");
        conn.expect_close("sent \"end\" with 64 clients connected")?;
    }
    Ok(())
}

fn descriptor_exhaustion(ctx: &mut Ctx) -> CaseResult {
    use rustix::process::{prlimit, Pid, Resource, Rlimit};
    ctx.start_server()?;
    let harness = |m: String| super::harness::Problem::Harness(m);
    let pid = ctx.pid().ok_or_else(|| harness("no server process".into()))?;
    let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| harness(format!("cannot count descriptors: {e}")))?
        .count();
    // Room for a few connections more than it has now, then far more clients than that.
    let limit = (open + 6) as u64;
    let process = Pid::from_raw(pid as i32).ok_or_else(|| harness("bad pid".into()))?;
    // The hard limit stays as inherited from the gate (only the soft one is lowered).
    let maximum = rustix::process::getrlimit(Resource::Nofile).maximum;
    let original = prlimit(Some(process), Resource::Nofile, Rlimit { current: Some(limit), maximum })
        .map_err(|e| harness(format!("cannot lower the server's descriptor limit: {e}")))?;
    ctx.note(&format!("lowered the server's descriptor limit to {limit} ({open} open)"));
    let mut clients = Vec::new();
    for _ in 0..40 {
        // A server with a short backlog stops taking connections sooner: that is not this case.
        match ctx.connect() {
            Ok(mut conn) => {
                conn.send(b"ping");
                clients.push(conn);
            }
            Err(_) => break,
        }
    }
    ctx.note(&format!("{} clients connected and sent \"ping\"", clients.len()));
    // A server that retries accept at once burns a whole CPU; over this window it may use
    // half of one at most. The window measures; it decides nothing by itself.
    let window = Duration::from_millis(1000);
    let cpu_seconds = |pid| super::harness::process_cpu_time(pid).map(|t| t.as_secs_f64());
    let before = cpu_seconds(pid);
    std::thread::sleep(window);
    if let (Some(before), Some(after)) = (before, cpu_seconds(pid)) {
        if after - before > 0.5 * window.as_secs_f64() {
            return fail(format!(
                "with its descriptors exhausted by {} clients the server used {:.2} s of CPU in {} ms; expected it to back off, not spin",
                clients.len(),
                after - before,
                window.as_millis()
            ));
        }
    }
    // Free descriptors by restoring the limit: every waiting client must now be served, in
    // turn (so a server that serves one client at a time passes too), and finish with `end`.
    prlimit(Some(process), Resource::Nofile, original)
        .map_err(|e| harness(format!("cannot restore the limit: {e}")))?;
    ctx.note("restored the server's descriptor limit");
    let count = clients.len();
    for (i, conn) in clients.iter_mut().enumerate() {
        let situation =
            format!("client {} of {count}, waiting since descriptors ran out, after the limit was restored", i + 1);
        conn.expect(b"pong", &situation)?;
        conn.send(b"end");
        conn.expect_close(&situation)?;
    }
    let mut conn = ctx.connect()?;
    session(&mut conn, 3, "a new client after descriptors were exhausted and freed again")
}

fn vacant(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let metadata =
        std::fs::symlink_metadata(&ctx.socket).or_else(|e| fail(format!("no file at the socket path: {e}")))?;
    if !metadata.file_type().is_socket() {
        return fail("the file at the socket path is not a socket");
    }
    let mut conn = ctx.connect()?;
    session(&mut conn, 2, "a server that bound a vacant path")
}

fn stale_socket(ctx: &mut Ctx) -> CaseResult {
    drop(UnixListener::bind(&ctx.socket).map_err(|e| super::harness::Problem::Harness(e.to_string()))?);
    ctx.note("created a stale socket file at the path");
    ctx.start_server().map_err(|p| p.prefixed("with a stale socket file at the path (connect is refused)"))?;
    let mut conn = ctx.connect()?;
    session(&mut conn, 2, "after the stale socket was replaced")
}

/// Expects the server to refuse to start: exit non-zero by itself.
fn expect_refusal(ctx: &mut Ctx, situation: &str) -> CaseResult {
    ctx.spawn()?;
    let status = ctx.wait_exit(situation)?;
    if status.success() {
        return fail(format!("{situation}; expected a non-zero exit status; got {status}"));
    }
    Ok(())
}

fn live_socket(ctx: &mut Ctx) -> CaseResult {
    let listener = UnixListener::bind(&ctx.socket).map_err(|e| super::harness::Problem::Harness(e.to_string()))?;
    let inode = std::fs::symlink_metadata(&ctx.socket).map(|m| m.ino()).unwrap_or(0);
    ctx.note("the harness listens at the path");
    expect_refusal(ctx, "another server listens at the path")?;
    match std::fs::symlink_metadata(&ctx.socket) {
        Ok(m) if m.ino() == inode => {}
        _ => return fail(
            "another server listened at the path; expected its socket file left in place; it was removed or replaced",
        ),
    }
    if super::harness::connect_bounded(&ctx.socket, std::time::Instant::now() + ctx.timeout).is_err() {
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
    let harness = |e: std::io::Error| super::harness::Problem::Harness(e.to_string());
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
    let refused = expect_refusal(ctx, &situation);
    if !check() {
        return fail(format!("{situation}; expected it left untouched; it was removed or changed"));
    }
    refused
}

fn unprovable_socket(ctx: &mut Ctx) -> CaseResult {
    let datagram = UnixDatagram::bind(&ctx.socket).map_err(|e| super::harness::Problem::Harness(e.to_string()))?;
    let inode = std::fs::symlink_metadata(&ctx.socket).map(|m| m.ino()).unwrap_or(0);
    ctx.note("bound a datagram socket at the path");
    let refused = expect_refusal(
        ctx,
        "a datagram socket was at the path (stream connect fails with EPROTOTYPE, not ECONNREFUSED)",
    );
    if std::fs::symlink_metadata(&ctx.socket).map(|m| m.ino()).ok() != Some(inode) {
        return fail("a datagram socket was at the path; expected it left alone; it was removed or replaced");
    }
    drop(datagram);
    refused
}

fn mode(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let metadata =
        std::fs::symlink_metadata(&ctx.socket).or_else(|e| fail(format!("no file at the socket path: {e}")))?;
    let mode = metadata.permissions().mode() & 0o777;
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
        return fail(format!("sent {name}; expected exit status 0; got {status}"));
    }
    if crate::socket_path::abstract_name(&ctx.socket).is_none() {
        if std::fs::symlink_metadata(&ctx.socket).is_ok() {
            return fail(format!("sent {name}; expected the socket file removed; it is still there"));
        }
    } else {
        // SPEC: TRN-ABSTRACT-2 — nothing to remove, but the name must be free again.
        match super::harness::connect_bounded(&ctx.socket, std::time::Instant::now() + ctx.timeout) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
            Err(e) => return fail(format!("sent {name}; expected a connection to the abstract name refused; got {e}")),
            Ok(_) => {
                return fail(format!(
                    "sent {name}; expected the abstract name released; something still accepts connections on it"
                ))
            }
        }
    }
    idle.expect_close(&format!("an idle connection was open when {name} arrived"))
}

fn replaced_file(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let harness = |e: std::io::Error| super::harness::Problem::Harness(e.to_string());
    std::fs::remove_file(&ctx.socket).map_err(harness)?;
    std::fs::write(&ctx.socket, b"not the server's").map_err(harness)?;
    ctx.note("replaced the socket file with a regular file");
    ctx.signal(Signal::TERM, "SIGTERM")?;
    ctx.wait_exit("sent SIGTERM")?;
    if std::fs::read(&ctx.socket).ok().as_deref() != Some(b"not the server's") {
        return fail("the socket file was replaced by a regular file, then SIGTERM; expected that file left alone; it was removed");
    }
    Ok(())
}

/// Files in the case's directory other than the harness's own stderr capture.
fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != super::harness::STDERR_FILE)
                .collect()
        })
        .unwrap_or_default()
}

fn abstract_serves(ctx: &mut Ctx) -> CaseResult {
    ctx.start_server()?;
    let mut conn = ctx.connect()?;
    session(&mut conn, 2, &format!("a server on the abstract address {}", ctx.socket.display()))?;
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
    expect_refusal(ctx, "another server listens on the abstract name")?;
    if super::harness::connect_bounded(&ctx.socket, std::time::Instant::now() + ctx.timeout).is_err() {
        return fail(
            "another server listened on the abstract name; it no longer accepts connections after the refusal",
        );
    }
    // The connection waits in the holder's backlog: the name still belongs to the holder.
    drop(holder);
    Ok(())
}
