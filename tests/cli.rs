//! The command line, black-box: exit statuses, one-line errors, `serve` + `ping` as separate
//! processes, signals.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command as TestCommand;
use common::*;
use predicates::prelude::*;
use rstest::rstest;

fn udsping() -> TestCommand {
    TestCommand::cargo_bin("udsping").unwrap()
}

/// Starts `udsping serve` on `path` and waits until it accepts.
fn spawn_server(path: &Path, extra: &[&str]) -> ChildGuard {
    spawn_serve(path, extra, Stdio::null(), Stdio::piped())
}

/// One line on stderr, prefixed, no backtrace.
fn one_error_line(containing: &str) -> impl Predicate<str> {
    predicate::str::starts_with("udsping: ")
        .and(predicate::str::contains(containing.to_owned()))
        .and(predicate::function(|s: &str| s.lines().count() == 1))
        .and(predicate::str::contains("panicked").not())
}

#[rstest]
#[case(&["--help"])]
#[case(&["serve", "--help"])]
#[case(&["ping", "--help"])]
#[case(&["demo", "--help"])]
fn help_exits_zero(#[case] args: &[&str]) {
    udsping().args(args).assert().success().stdout(predicate::str::contains("Usage"));
}

// SPEC: SRV-LIMIT-1, SRV-IDLE-1, SRV-WRITE-1, LIFE-CRED-1 — every limit, timeout and allow list
// is on `serve --help` with its default.
#[test]
fn serve_help_lists_defaults() {
    let help = udsping().args(["serve", "--help"]).assert().success().get_output().stdout.clone();
    let help = String::from_utf8(help).unwrap();
    for (option, default) in [
        ("--socket", "[default: udsocket]"),
        ("--mode", "[default: 0600]"),
        ("--max-connections", &format!("[default: {}]", udsping::server::limits::default_max_connections())),
        ("--idle-timeout", "[default: 120s]"),
        ("--write-timeout", "[default: 10s]"),
        ("--allow-uid", "[default: none"),
        ("--allow-gid", "[default: none]"),
        ("--stats-interval", "[default: never]"),
    ] {
        // The default stands in the option's own entry: between its name and the next option.
        let entry = help.split_once(&format!("{option} <")).map(|(_, rest)| rest).unwrap_or_default();
        let entry = entry.split("\n      --").next().unwrap_or_default();
        // clap wraps to the terminal's width, which differs between a terminal and a test.
        let entry = entry.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(entry.contains(default), "serve --help: {option} does not say {default}:\n{help}");
    }
}

#[rstest]
#[case(&["ping", "--rounds", "many"])]
#[case(&["serve", "--mode", "999"])]
#[case(&["serve", "--max-connections", "0"])]
#[case(&["no-such-command"])]
#[case(&["conform", "--timeout", "soon", "server", "--", "true"])]
#[case(&["conform"])]
fn usage_errors_exit_2(#[case] args: &[&str]) {
    // clap's errors too are one line saying what is wrong, not its usage block.
    udsping().args(args).assert().code(2).stderr(one_error_line("(see --help)"));
}

#[test]
fn no_command_prints_the_help_and_exits_2() {
    udsping().assert().code(2).stderr(predicate::str::contains("Usage:"));
}

// SPEC: CLT-CONNECT-1, TRN-PATH-1 — the default path is ./udsocket; nothing there is exit 1.
#[test]
fn ping_without_server_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    udsping().current_dir(dir.path()).arg("ping").assert().code(1).stderr(one_error_line("cannot connect to udsocket"));
}

// SPEC: TRN-PATH-2
#[test]
fn too_long_path_is_refused_by_both_commands() {
    let dir = tempfile::tempdir().unwrap();
    let long = dir.path().join("x".repeat(120));
    for command in ["serve", "ping"] {
        udsping().arg(command).arg("--socket").arg(&long).assert().code(1).stderr(one_error_line("never truncated"));
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

// SPEC: LIFE-BIND-1, CLT-END-1, CLT-EXIT-1, TRN-PATH-1 — two processes, default path.
#[test]
fn serve_and_ping_interoperate_with_the_default_path() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::cargo_bin("udsping").unwrap().arg("serve").current_dir(dir.path()).spawn().unwrap();
    let _server = ChildGuard::new(child);
    wait_for_listener(&dir.path().join("udsocket"));
    udsping()
        .current_dir(dir.path())
        .args(["ping", "--rounds", "250"])
        .assert()
        .success()
        .stdout(predicate::str::contains("ok: 250 rounds"));
}

// SPEC: CLT-ROUNDS-1 — 100 rounds by default, and the seed's log lines on request.
#[test]
fn ping_defaults_to_100_rounds_and_logs_like_the_seed() {
    let server = TestServer::start();
    let output = udsping().args(["ping", "--log-messages", "--socket"]).arg(&server.path).output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.matches("Client: Sent ping").count(), 100);
    assert_eq!(stdout.matches("Client: Received pong").count(), 100);
    assert!(stdout.contains("ok: 100 rounds"));
}

// SPEC: LIFE-SHUT-1 — SIGTERM and SIGINT: exit 0, file removed, open connections closed.
// SPEC: LIFE-SHUT-3 — and likewise every other catchable signal whose default action ends the
// process, SIGHUP and SIGQUIT first.
#[rstest]
#[case(signal_hook::consts::SIGTERM)]
#[case(signal_hook::consts::SIGINT)]
#[case(signal_hook::consts::SIGHUP)]
#[case(signal_hook::consts::SIGQUIT)]
#[case(signal_hook::consts::SIGUSR2)]
#[case(signal_hook::consts::SIGALRM)]
#[case(libc::SIGPWR)]
fn signal_stops_the_server_and_removes_its_file(#[case] signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let mut server = spawn_server(&path, &[]);
    let mut idle = connect(&path);
    server.signal(signal);
    assert!(server.wait_exit(DEADLINE).success());
    assert!(!path.exists(), "the socket file must be removed");
    assert!(read_to_close(&mut idle, DEADLINE).closed);
}

// SPEC: LIFE-SHUT-2 — a file that replaced the socket survives the server's shutdown.
#[test]
fn shutdown_leaves_a_replaced_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let mut server = spawn_server(&path, &[]);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"mine").unwrap();
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success());
    assert_eq!(std::fs::read(&path).unwrap(), b"mine");
    let mut stderr = String::new();
    server.0.as_mut().unwrap().stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(stderr.contains("left it alone"), "{stderr}");
}

// SPEC: LIFE-LIVE-1 — the second server exits 1 and the first keeps serving.
#[test]
fn second_server_refuses_a_live_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let _first = spawn_server(&path, &[]);
    udsping()
        .arg("serve")
        .arg("--socket")
        .arg(&path)
        .assert()
        .code(1)
        .stderr(one_error_line("another server is listening"));
    udsping().arg("ping").arg("--socket").arg(&path).assert().success();
}

// SPEC: LIFE-FOREIGN-1 — through the CLI too: exit 1, file intact.
#[test]
fn serve_refuses_a_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    std::fs::write(&path, b"precious").unwrap();
    udsping().arg("serve").arg("--socket").arg(&path).assert().code(1).stderr(one_error_line("regular file"));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

// SPEC: LIFE-STALE-1 — a socket file left by a killed server does not stop the next one.
#[test]
fn restart_after_kill_replaces_the_stale_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    drop(spawn_server(&path, &[])); // SIGKILL: the file stays behind
    assert!(path.exists());
    let _second = spawn_server(&path, &[]);
    udsping().arg("ping").arg("--socket").arg(&path).assert().success();
}

// SPEC: LIFE-PERM-1, LIFE-PERM-2 — through the CLI.
#[rstest]
#[case(&[], 0o600)]
#[case(&["--mode", "0660"], 0o660)]
fn serve_creates_the_socket_with_its_mode(#[case] args: &[&str], #[case] mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let _server = spawn_server(&path, args);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, mode);
}

/// A scripted server that answers the first ping with `reply` and then closes.
fn scripted_server(path: &Path, reply: &'static [u8]) -> thread::JoinHandle<Vec<u8>> {
    let listener = UnixListener::bind(path).unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut ping = [0u8; 4];
        stream.read_exact(&mut ping).unwrap();
        stream.write_all(reply).unwrap();
        drop(stream.shutdown(std::net::Shutdown::Write));
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        [&ping[..], &rest].concat()
    })
}

// SPEC: CLT-REPLY-2, CLT-EOF-1, CLT-EXIT-1 — exit 1, one line saying what arrived, no `end`.
#[rstest]
#[case(b"pang", "expected \"pong\", received \"pa\"")]
#[case(b"PONG", "expected \"pong\", received \"P\"")]
#[case(b"po", "server closed the connection after 2 of 4 reply bytes (\"po\")")]
#[case(b"", "server closed the connection after 0 of 4 reply bytes")]
#[case(b"pongpong", "received \"pong\" although no reply was owed")]
fn ping_reports_a_bad_server(#[case] reply: &'static [u8], #[case] message: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let server = scripted_server(&path, reply);
    udsping().arg("ping").arg("--socket").arg(&path).assert().code(1).stderr(one_error_line(message));
    let sent = server.join().unwrap();
    assert_eq!(sent, b"ping", "after a bad reply the client sends nothing more");
}

// The README's first command.
#[test]
fn demo_passes() {
    udsping().arg("demo").assert().success().stdout(predicate::str::contains("verdict: PASS"));
}

// No panics: an absurd duration is a usage error (exit 2), not an overflow.
#[rstest]
#[case(&["serve", "--stats-interval", "500000000000years"])]
#[case(&["serve", "--idle-timeout", "500000000000years"])]
#[case(&["ping", "--timeout", "500000000000years"])]
#[case(&["ping", "--timeout", "soon"])]
fn absurd_durations_are_usage_errors(#[case] args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let output = udsping().current_dir(dir.path()).args(args).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
}

// No panics: a full stdout is a one-line error and exit 1.
#[test]
fn ping_to_a_full_stdout_fails_with_one_line() {
    let server = TestServer::start();
    for extra in [&[][..], &["--log-messages"][..]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let output = Command::cargo_bin("udsping")
            .unwrap()
            .args(["ping", "--rounds", "3", "--socket"])
            .arg(&server.path)
            .args(extra)
            .stdout(full)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(stderr.starts_with("udsping: cannot write") && stderr.lines().count() == 1, "{extra:?}: {stderr}");
    }
}

// No panics: a reader that goes away (`| head -1`) ends the command quietly; the rounds still
// complete, so the status is 0.
#[test]
fn ping_into_a_closed_pipe_ends_quietly() {
    let server = TestServer::start();
    let mut child = Command::cargo_bin("udsping")
        .unwrap()
        .args(["ping", "--log-messages", "--rounds", "2000", "--socket"])
        .arg(&server.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take()); // like `head -c 1`
    let mut guard = ChildGuard::new(child);
    let status = guard.wait_exit(DEADLINE);
    let mut stderr = String::new();
    guard.0.as_mut().unwrap().stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

// SPEC: CLT-TIMEOUT-1 — a server that accepts and never replies: the client gives up, exits 1
// and says what it waited for.
#[test]
fn ping_gives_up_on_a_silent_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let listener = UnixListener::bind(&path).unwrap();
    let holder = thread::spawn(move || listener.accept().map(|(stream, _)| stream));
    udsping()
        .args(["ping", "--timeout", "300ms", "--socket"])
        .arg(&path)
        .timeout(DEADLINE)
        .assert()
        .code(1)
        .stderr(one_error_line("gave up after 300ms: no reply to round 1's ping"));
    drop(holder.join().unwrap());
}

// SPEC: CLT-TIMEOUT-1 — a full listen backlog is a timeout, not a hang.
#[test]
fn ping_gives_up_on_a_full_backlog() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    let address = SocketAddrUnix::new(&path).unwrap();
    rustix::net::bind(&listener, &address).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    // Never accepted: fill the backlog until the kernel says EAGAIN.
    let mut queued = Vec::new();
    loop {
        let client =
            rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::NONBLOCK, None).unwrap();
        match rustix::net::connect(&client, &address) {
            Ok(()) => queued.push(client),
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => panic!("connect: {e}"),
        }
        assert!(queued.len() < 10_000, "the backlog never filled");
    }
    udsping()
        .args(["ping", "--timeout", "300ms", "--socket"])
        .arg(&path)
        .timeout(DEADLINE)
        .assert()
        .code(1)
        .stderr(one_error_line("gave up after 300ms: the connection was not accepted"));
    drop((queued, listener));
}

// SPEC: LIFE-SHUT-3, SRV-LOG-1 — SIGXFSZ (a log file over the size limit) neither kills nor stops
// the server.
#[test]
fn sigxfsz_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let mut server = spawn_server(&path, &[]);
    server.signal(signal_hook::consts::SIGXFSZ);
    udsping().args(["ping", "--rounds", "5", "--socket"]).arg(&path).assert().success();
    assert!(server.0.as_mut().unwrap().try_wait().unwrap().is_none(), "SIGXFSZ ended the server");
    server.signal(signal_hook::consts::SIGTERM);
    assert!(server.wait_exit(DEADLINE).success());
}
