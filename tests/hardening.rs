//! SPEC.md sections 5.6, 5.7, 7.5 and 7.6: limits, timeouts, descriptor exhaustion, signals,
//! peer credentials, accounting and abstract addresses, black-box.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use common::*;
use udsping::client::{self, ClientConfig};

const SHORT: Duration = Duration::from_millis(200);

// SPEC: SRV-IDLE-1 — an idle connection and a half-token one are closed without a reply; a busy
// one is not, and the counts say why each ended.
#[test]
fn idle_connections_are_closed() {
    let server = TestServer::start_with(|c| c.idle_timeout = Some(SHORT));
    let mut idle = connect(&server.path);
    let mut half = connect(&server.path);
    half.write_all(b"pi").unwrap();
    assert_eq!(read_to_close(&mut idle, DEADLINE), Heard { bytes: vec![], closed: true });
    assert_eq!(read_to_close(&mut half, DEADLINE), Heard { bytes: vec![], closed: true });
    let summary = client::run(&ClientConfig { rounds: 500, ..ClientConfig::new(&server.path) }).unwrap();
    assert_eq!(summary.rounds, 500);
    let stats = server.wait_for_ended(3);
    assert_eq!((stats.ended_by_timeout, stats.ended_by_end), (2, 1), "{stats:?}");
}

// SPEC: SRV-WRITE-1, SRV-CONC-2 — a client that never reads is closed once a write has waited
// the write timeout; another client is served meanwhile.
#[test]
fn a_client_that_never_reads_is_closed_after_the_write_timeout() {
    let server = TestServer::start_with(|c| c.write_timeout = SHORT);
    let flooder = connect(&server.path);
    flooder.set_nonblocking(true).unwrap();
    let flood = b"ping".repeat(4096);
    // Fill both directions: the server's writes to this client now block.
    while (&flooder).write(&flood).is_ok() {}
    assert_eq!(client::run(&ClientConfig { rounds: 100, ..ClientConfig::new(&server.path) }).unwrap().rounds, 100);
    assert!(
        wait_until(DEADLINE, || server.stats().ended_by_timeout == 1),
        "the flooding client was not closed: {:?}",
        server.stats()
    );
    drop(flooder);
}

// SPEC: SRV-LIMIT-1 — beyond the limit a client waits connected but unanswered, and is
// served as soon as a connection ends.
#[test]
fn clients_beyond_the_limit_wait_in_the_backlog() {
    // Without SRV-IDLE-2's policy, which would admit the third once the others idle 1 s.
    let server = TestServer::start_with(|c| {
        c.max_connections = 2;
        c.pressure_idle = None;
    });
    let mut first = connect(&server.path);
    let mut second = connect(&server.path);
    for stream in [&mut first, &mut second] {
        stream.write_all(b"ping").unwrap();
        assert_eq!(read_exactly(stream, 4), b"pong");
    }
    let mut third = connect(&server.path);
    third.write_all(b"ping").unwrap();
    // A correct server never answers here, so this cannot fail spuriously; it catches a
    // server that ignores its limit.
    third.set_read_timeout(Some(SHORT)).unwrap();
    let mut early = [0u8; 4];
    assert!(std::io::Read::read(&mut third, &mut early).is_err(), "answered beyond the limit");
    assert_eq!(server.stats().accepted, 2);
    drop(first);
    assert_eq!(read_exactly(&mut third, 4), b"pong");
    assert_eq!(server.stats().accepted, 3);
}

/// `udsping serve` as a child with its stderr collected line by line.
fn serve_child(path: &std::path::Path, extra: &[&str]) -> (ChildGuard, mpsc::Receiver<String>) {
    let mut child = Command::cargo_bin("udsping")
        .unwrap()
        .arg("serve")
        .arg("--socket")
        .arg(path)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let guard = ChildGuard::new(child);
    wait_for_listener(path);
    (guard, receiver)
}

fn next_line_containing(lines: &mpsc::Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no stderr line containing {needle:?} within {DEADLINE:?}"),
        }
    }
}

/// How many descriptors `pid` has open, once it is quiet (its readiness probe's closed).
fn open_descriptors(pid: i32) -> u64 {
    let count = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    let mut last = count();
    // Settled when two readings 50 ms apart agree (the probe's connection thread has ended).
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = count();
        if now == last {
            return now;
        }
        last = now;
    }
}

fn cpu_seconds(pid: i32) -> f64 {
    udsping::process::cpu_time(pid as u32).expect("the server's /proc/PID/stat").as_secs_f64()
}

// SPEC: SRV-ACCEPT-1 — with its descriptor limit lowered, the server keeps its connections,
// backs off instead of spinning while accept fails, and serves again once descriptors are free.
#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let (server, _stderr) = serve_child(&path, &[]);
    let pid = rustix::process::Pid::from_raw(server.pid()).unwrap();
    let maximum = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let limit = rustix::process::Rlimit { current: Some(open_descriptors(server.pid()) + 3), maximum };
    let original = rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, limit).unwrap();
    // Each connection costs the server a descriptor: room for three, and far more clients.
    let mut clients: Vec<_> = (0..30).map(|_| connect(&path)).collect();
    for client in &mut clients {
        client.write_all(b"ping").unwrap();
    }
    let served = clients.iter_mut().take(3).map(|c| read_exactly(c, 4)).filter(|r| r == b"pong").count();
    assert_eq!(served, 3, "the first clients fit and are served");
    // Accept now fails with EMFILE. A busy loop would burn a whole CPU over this window; the
    // back-off (50 ms between attempts) uses a small fraction. The window only measures.
    let before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(server.pid()) - before;
    assert!(used < 0.5, "the server used {used:.2} s of CPU in 1 s while out of descriptors: it spins");
    assert!(rustix::process::test_kill_process(pid).is_ok(), "the server died");
    // Free descriptors: every client that waited is served; none was dropped meanwhile.
    rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, original).unwrap();
    for (i, client) in clients.iter_mut().enumerate().skip(3) {
        assert_eq!(read_exactly(client, 4), b"pong", "client {i} lost while descriptors were exhausted");
    }
    drop(clients);
    let summary = client::run(&ClientConfig { rounds: 10, ..ClientConfig::new(&path) });
    assert_eq!(summary.expect("the server serves again once descriptors are free").rounds, 10);
}

// SPEC: SRV-ERRNO-1, SRV-COUNT-1 — a storm of SIGUSR1 interrupts nothing that matters: the
// clients finish, every signal prints the counts, and the counts add up.
#[test]
fn signals_interrupt_nothing_and_print_the_counts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsping.sock");
    let (server, lines) = serve_child(&path, &[]);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || client::run(&ClientConfig { rounds: 2000, ..ClientConfig::new(&path) }))
        })
        .collect();
    for _ in 0..50 {
        server.signal(signal_hook::consts::SIGUSR1);
    }
    for client in clients {
        assert_eq!(client.join().unwrap().expect("rounds complete under signals").rounds, 2000);
    }
    next_line_containing(&lines, "accepted");
    // Quiet now: one more report must add up (the readiness probe is the fifth connection).
    assert!(wait_until(DEADLINE, || {
        server.signal(signal_hook::consts::SIGUSR1);
        let line = next_line_containing(&lines, "accepted");
        line.contains("accepted 5, refused 0, open 0, ended by end 4, by invalid input 0, by EOF 1")
    }));
}

#[test]
fn stats_interval_prints_periodically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let (_server, lines) = serve_child(&path, &["--stats-interval", "100ms"]);
    let first = next_line_containing(&lines, "accepted");
    assert!(first.starts_with("udsping: ") && first.contains("by timeout"), "{first}");
    next_line_containing(&lines, "accepted");
}

// SPEC: LIFE-CRED-1 — a peer whose uid is not allowed is closed before a byte is read, and the
// refusal is logged with its pid, uid and gid; an allowed one is served. Needs root, to run the
// refused client as another user.
#[test]
fn peers_with_other_credentials_are_refused() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: not root, so no client can be run as another user here");
        return;
    }
    let nobody = 65534;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("udsocket");
    // The file mode would refuse nobody first; the credentials are under test.
    let (server, lines) = serve_child(&path, &["--allow-uid", "0", "--mode", "0666"]);
    let refused = Command::cargo_bin("udsping")
        .unwrap()
        .args(["ping", "--rounds", "3", "--socket"])
        .arg(&path)
        .uid(nobody)
        .gid(nobody)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("server closed the connection after 0 of 4 reply bytes"), "{stderr}");
    let logged = next_line_containing(&lines, "refused a connection");
    assert!(logged.contains(&format!("(uid {nobody}, gid {nobody})")) && logged.contains("from pid "), "{logged}");
    assert_eq!(client::run(&ClientConfig { rounds: 3, ..ClientConfig::new(&path) }).unwrap().rounds, 3);
    // SPEC: SRV-COUNT-1 — the refusal is counted as one, apart from the connections served.
    assert!(wait_until(DEADLINE, || {
        server.signal(signal_hook::consts::SIGUSR1);
        let line = next_line_containing(&lines, "accepted");
        line.contains("refused 1, open 0, ended by end 1,")
    }));
}

// SPEC: TRN-ABSTRACT-1, TRN-ABSTRACT-2 — serve and ping over an abstract address; a taken name
// is refused; there is no file to create or remove; the name is released at shutdown.
#[test]
fn abstract_addresses_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("@udsping-test-{}-{}", std::process::id(), dir.path().file_name().unwrap().to_string_lossy());
    let server = udsping::server::Server::bind(udsping::server::ServerConfig::new(&name)).unwrap();
    let stop = server.shutdown_handle();
    let running = std::thread::spawn(move || server.run());
    assert_eq!(client::run(&ClientConfig { rounds: 5, ..ClientConfig::new(&name) }).unwrap().rounds, 5);
    let second = udsping::server::Server::bind(udsping::server::ServerConfig::new(&name));
    assert!(second.err().is_some_and(|e| e.to_string().contains("another server is listening")));
    stop.shutdown();
    let stats = running.join().unwrap().unwrap();
    assert_eq!(stats.socket_file, Some(udsping::socket_path::Removal::NoFile));
    assert!(client::run(&ClientConfig::new(&name)).is_err(), "the name is gone with the server");
}

// The CPU reading that the busy-loop checks rely on (here, in the gate and in the benchmark)
// counts user and system time: after burning user time it agrees with getrusage.
#[test]
fn process_cpu_time_agrees_with_getrusage() {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(300) {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
    }
    let from_proc = udsping::process::cpu_time(std::process::id()).unwrap();
    let from_rusage = udsping::bench::measure::cpu_time(None);
    let difference = from_rusage.abs_diff(from_proc);
    // Clock ticks are 10 ms, and other tests' threads run between the two readings.
    assert!(difference < Duration::from_millis(150), "/proc says {from_proc:?}, getrusage {from_rusage:?}");
}

/// `udsping serve` as a child with the given stdout and stderr, waited for until it listens.
/// A pipe whose read end is already closed: every write to it fails with EPIPE.
fn broken_pipe() -> Stdio {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    Stdio::from(writer)
}

// SPEC: SRV-LOG-1 — with stderr a broken pipe, log lines (SIGUSR1's counts, refusals, the
// periodic counts) cost nothing: the server serves on, and SIGTERM still ends it cleanly.
#[test]
fn a_log_reader_that_went_away_kills_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let extra = ["--stats-interval", "10ms", "--allow-uid", "0", "--allow-uid", "4242"];
    let mut server = spawn_serve(&path, &extra, broken_pipe(), broken_pipe());
    for _ in 0..20 {
        server.signal(signal_hook::consts::SIGUSR1);
    }
    let summary = client::run(&ClientConfig { rounds: 200, ..ClientConfig::new(&path) });
    assert_eq!(summary.expect("served with a broken stderr").rounds, 200);
    assert!(server.0.as_mut().unwrap().try_wait().unwrap().is_none(), "the server died");
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success());
    assert!(!path.exists(), "the socket file must be removed");
}

// SPEC: SRV-LOG-1 — with `--log-messages` and a stdout nobody reads, replies are not held up:
// far more lines than a pipe and the queue hold are dropped and counted, and the count is
// reported on stderr.
#[test]
fn an_unread_log_stalls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let (unread, _kept_open) = {
        let (reader, writer) = rustix::pipe::pipe().unwrap();
        (Stdio::from(writer), reader)
    };
    let mut server = spawn_serve(&path, &["--log-messages"], unread, Stdio::piped());
    // Two lines per ping: 64 KiB of pipe and 4096 queued lines are full well before the end.
    let summary = client::run(&ClientConfig { rounds: 20_000, ..ClientConfig::new(&path) });
    assert_eq!(summary.expect("served with an unread stdout").rounds, 20_000);
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success(), "SIGTERM works with an unread stdout");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.0.as_mut().unwrap().stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("log lines were dropped"), "{stderr}");
}

// SPEC: LIFE-CRED-2 — refusals are logged one by one only a few at a time; the rest are summed
// up, and the lines account for every refusal.
#[test]
fn refusal_lines_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    // This test's own uid is not allowed, so every connection it makes is refused.
    let uid = rustix::process::getuid().as_raw();
    let (mut server, lines) = serve_child(&path, &["--allow-uid", &(uid + 1).to_string()]);
    let attempts = 2000;
    for _ in 0..attempts {
        drop(connect(&path));
    }
    // Quiet once every attempt (and the readiness probe) was counted; every line is kept.
    let mut seen = Vec::new();
    let counted = format!("accepted {}, refused {}", attempts + 1, attempts + 1);
    assert!(wait_until(DEADLINE, || {
        server.signal(signal_hook::consts::SIGUSR1);
        while let Ok(line) = lines.recv_timeout(SHORT) {
            seen.push(line);
        }
        seen.iter().any(|line| line.contains(&counted))
    }));
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success());
    // The reader thread ends with the server's stderr: then every line is in.
    seen.extend(lines.iter());
    let refused = attempts + 1;
    let (mut singles, mut summed) = (0u64, 0u64);
    for line in seen {
        if line.contains("refused a connection from pid") {
            singles += 1;
        } else if let Some(more) = line.split("refused ").nth(1).filter(|_| line.contains("more connections from uid"))
        {
            summed += more.split(' ').next().unwrap().parse::<u64>().unwrap();
        }
    }
    assert!(singles < attempts, "{singles} refusals logged one by one: not rate-limited");
    assert_eq!(singles + summed, refused, "the lines account for every refusal");
}

// SPEC: SRV-COUNT-1, WIRE-CLOSE-1 — a client that leaves with pongs unread (its close reaches
// the server as a reset, or as a failed write) ended by EOF, not by an IO error.
#[test]
fn a_client_that_leaves_with_pongs_unread_counts_as_eof() {
    let server = common::TestServer::start();
    for _ in 0..20 {
        let mut stream = connect(&server.path);
        stream.write_all(&b"ping".repeat(4096)).unwrap();
        drop(stream);
    }
    let stats = server.wait_for_ended(20);
    assert_eq!((stats.ended_by_eof, stats.ended_by_io_error), (20, 0), "{stats:?}");
}

/// Runs `udsping` as user and group 65534 (nobody) with `groups` as supplementary groups.
fn as_nobody(groups: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534"]);
    if groups.is_empty() {
        command.arg("--clear-groups");
    } else {
        command.arg(format!("--groups={groups}"));
    }
    command.arg("--").arg(assert_cmd::cargo::cargo_bin("udsping"));
    command
}

/// Runs `program` as user and group 65534 (nobody), without supplementary groups.
fn as_nobody_running(program: &str) -> Command {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", program]);
    command
}

fn can_run_as_nobody() -> bool {
    rustix::process::geteuid().is_root()
        && Command::new("setpriv").arg("--version").output().is_ok_and(|o| o.status.success())
}

// SPEC: LIFE-CRED-1 — an allowed gid matches a peer's supplementary group, not only its
// primary one. Needs root and setpriv, to run the client as another user.
#[test]
fn allowed_gid_matches_supplementary_groups() {
    if !can_run_as_nobody() {
        eprintln!("SKIPPED: not root or no setpriv, so no client can be run with other groups here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("udsocket");
    let (_server, lines) = serve_child(&path, &["--allow-gid", "4242", "--mode", "0666"]);
    let ping =
        |groups: &str| as_nobody(groups).args(["ping", "--rounds", "3", "--socket"]).arg(&path).output().unwrap();
    let served = ping("4243,4242");
    assert!(served.status.success(), "{}", String::from_utf8_lossy(&served.stderr));
    let refused = ping("4243");
    assert_eq!(refused.status.code(), Some(1));
    // (The readiness probe, from this test's own uid, was refused first.)
    let logged = next_line_containing(&lines, "(uid 65534, gid 65534)");
    assert!(logged.contains("refused a connection"), "{logged}");
}

// SPEC: SRV-ACCEPT-1 — when no thread can be started for a client (a process limit), the
// client waits connected instead of being closed unanswered, and is served once threads can
// be started again; SIGTERM works meanwhile. Needs root, to run the server as a user whose
// process limit applies.
#[test]
fn a_client_waits_while_no_thread_can_be_started() {
    if !can_run_as_nobody() {
        eprintln!("SKIPPED: not root or no setpriv, so the server cannot run under a process limit here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let path = dir.path().join("udsocket");
    let child = as_nobody("").arg("serve").arg("--socket").arg(&path).stderr(Stdio::null()).spawn().unwrap();
    let mut server = ChildGuard::new(child);
    wait_for_listener(&path);
    // prlimit(2) on another user's process needs CAP_SYS_RESOURCE, which root may lack (in a
    // container): the limit is set by a process of the same user instead. Soft limit only.
    let soft = |limit: String| {
        let mut set = as_nobody_running("prlimit");
        set.arg(format!("--pid={}", server.pid())).arg(format!("--nproc={limit}:"));
        assert!(set.status().unwrap().success(), "prlimit --nproc={limit}");
    };
    let original = rustix::process::getrlimit(rustix::process::Resource::Nproc).current;
    let original = original.map_or("unlimited".to_string(), |n| n.to_string());
    soft("1".into());
    let mut waiting = connect(&path);
    waiting.write_all(b"ping").unwrap();
    // A correct server never answers here (it cannot start a thread), so this cannot fail
    // spuriously; it catches a server that closes the client instead.
    waiting.set_read_timeout(Some(SHORT)).unwrap();
    let mut early = [0u8; 4];
    match std::io::Read::read(&mut waiting, &mut early) {
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
        other => panic!("the waiting client was answered or closed: {other:?}"),
    }
    let spent = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_millis(500));
    assert!(cpu_seconds(server.pid()) - spent < 0.3, "the server spins while it cannot start threads");
    soft(original);
    assert_eq!(read_exactly(&mut waiting, 4), b"pong", "served once threads can be started");
    drop(waiting);
    soft("1".into());
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success(), "SIGTERM works while no thread can be started");
    assert!(!path.exists());
}

// SPEC: SRV-ACCEPT-1, LIFE-SHUT-1 — SIGTERM works while accept fails for want of descriptors,
// and the socket file is still removed.
#[test]
fn sigterm_works_while_out_of_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let (mut server, _stderr) = serve_child(&path, &[]);
    let pid = rustix::process::Pid::from_raw(server.pid()).unwrap();
    let maximum = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let open = open_descriptors(server.pid());
    let limit = rustix::process::Rlimit { current: Some(open + 3), maximum };
    rustix::process::prlimit(Some(pid), rustix::process::Resource::Nofile, limit).unwrap();
    let clients: Vec<_> = (0..30).map(|_| connect(&path)).collect();
    assert!(wait_until(DEADLINE, || open_descriptors(server.pid()) >= open + 3), "never out of descriptors");
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success());
    assert!(!path.exists(), "the socket file must be removed");
    drop(clients);
}

// SPEC: LIFE-BIND-2 — wherever start-up runs out of descriptors (a limit lowered step by step
// until the server starts), it fails with one line and leaves nothing behind: no socket file,
// no private directory.
#[test]
fn a_start_that_fails_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    // Below 8 the dynamic loader itself may run out (exit 127) before `main`.
    for limit in 8..64 {
        let child = Command::new("prlimit")
            .arg(format!("--nofile={limit}:{limit}"))
            .arg(assert_cmd::cargo::cargo_bin("udsping"))
            .arg("serve")
            .arg("--socket")
            .arg(&path)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut server = ChildGuard::new(child);
        let mut exited = None;
        let listening = wait_until(DEADLINE, || {
            exited = server.0.as_mut().unwrap().try_wait().unwrap();
            exited.is_some() || std::os::unix::net::UnixStream::connect(&path).is_ok()
        });
        assert!(listening, "limit {limit}: neither failed nor listened");
        if exited.is_none() {
            server.signal(signal_hook::consts::SIGTERM);
            assert!(server.wait_exit(DEADLINE).success());
            assert!(limit > 8, "the server started even with {limit} descriptors: nothing was tested");
            return;
        }
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut server.0.as_mut().unwrap().stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(exited.unwrap().code(), Some(1), "limit {limit}: {stderr}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "limit {limit}: left behind {left:?} ({stderr})");
    }
    panic!("the server never started");
}

// SPEC: SRV-LOG-1 — with a stderr pipe that is full and never read, the lines still coming
// (periodic counts, SIGUSR1's) stall nothing: clients are served and SIGTERM works.
#[test]
fn a_full_unread_stderr_stalls_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let mut server = spawn_serve(&path, &["--stats-interval", "1ms"], Stdio::null(), Stdio::from(writer));
    // Full: the pipe holds 64 KiB by default; wait until nearly all of it is taken.
    let queued = || rustix::io::ioctl_fionread(&reader).unwrap_or(0);
    assert!(wait_until(DEADLINE, || queued() >= 60 * 1024), "stderr never filled: {} bytes", queued());
    for _ in 0..20 {
        server.signal(signal_hook::consts::SIGUSR1);
    }
    let summary = client::run(&ClientConfig { rounds: 200, ..ClientConfig::new(&path) });
    assert_eq!(summary.expect("served with a full stderr").rounds, 200);
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success(), "SIGTERM works with a full stderr");
    assert!(!path.exists(), "the socket file must be removed");
    drop(reader);
}
