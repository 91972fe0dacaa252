//! SPEC.md section 7.2 under attack: a racer that only ever renames (atomically exchanges) a
//! user's file with the socket path while servers start over a stale socket, bind a vacant path
//! and shut down; and servers started at the same moment over one stale socket.
//!
//! Bounded here (a few hundred iterations each, 15 for the test with processes); `.ci/run`
//! runs thousands:
//!
//!     RACE_ITERATIONS=5000 RACE_PROCESS_ITERATIONS=1000 cargo test --test race -- --nocapture
//!
//! Each test prints its counts (`race: ...`), so a run shows the races were really hit.

mod common;

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use assert_cmd::cargo::CommandCargoExt;
use common::*;
use rustix::fs::{RenameFlags, CWD};
use udsping::server::{Server, ServerConfig};
use udsping::socket_path::{BindError, Removal};

fn iterations(default: u64) -> u64 {
    std::env::var("RACE_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const PRECIOUS: &[u8] = b"a user's precious file\n";

/// Leaves a stale socket file at `path`: bound, never listening, closed. (A listener closed at
/// once would do, but another test of this process that forks meanwhile holds a copy of it
/// until the child execs, and for that moment it is live.)
fn stale_socket_at(path: &Path) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let socket = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap();
    rustix::net::bind(&socket, &SocketAddrUnix::new(path).unwrap()).unwrap();
}

/// Renames `a` and `b` into each other's place in a tight loop until stopped; counts the
/// exchanges that happened (both names must exist for one to happen).
struct Racer {
    stop: Arc<AtomicBool>,
    exchanges: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Racer {
    fn start(a: PathBuf, b: PathBuf) -> Racer {
        let (stop, exchanges) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&exchanges));
        let thread = Some(thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                if rustix::fs::renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        Racer { stop, exchanges, thread }
    }

    fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("racer thread");
        }
        self.exchanges.load(Ordering::Relaxed)
    }
}

impl Drop for Racer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one racing run saw.
#[derive(Debug, Default)]
struct Counts {
    starts: u64,
    refused_foreign: u64,
    refused_replaced: u64,
    refused_raced: u64,
    refused_other: u64,
    removed: u64,
    put_back: u64,
    already_gone: u64,
}

/// The racer exchanges a precious file with the socket path while servers start (over the
/// stale socket the previous one left, or on a vacant path) and stop, `rounds` times. The
/// precious file is watched through an open descriptor: a link count of 0 means it was deleted.
fn race_precious_file(base: &Path, rounds: u64) -> Counts {
    let dir = tempfile::tempdir_in(base).expect("temporary directory");
    let path = dir.path().join("udsocket");
    let precious = dir.path().join("precious");
    std::fs::write(&precious, PRECIOUS).unwrap();
    let held = File::open(&precious).unwrap();
    stale_socket_at(&path); // to start over
    let mut racer = Racer::start(precious.clone(), path.clone());
    let mut counts = Counts::default();
    // On a loaded machine the racer's thread may not have run at all during the rounds asked
    // for; more rounds follow (bounded) until it has exchanged the files at least once, so
    // that the test always tests something.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while round < rounds || (racer.exchanges.load(Ordering::Relaxed) == 0 && std::time::Instant::now() < deadline) {
        round += 1;
        // Most rounds should start over a socket (or a vacant path), not over the precious
        // file, so that the racer acts inside the start and the stop: wait a moment (not an
        // assertion) until the racer has put a socket there.
        wait_until(Duration::from_secs(1), || {
            std::fs::symlink_metadata(&path).map_or(true, |m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        });
        match Server::bind(ServerConfig::new(&path)) {
            Ok(server) => {
                counts.starts += 1;
                // A shutdown requested before `run` makes it return at once, through the same
                // removal as any shutdown.
                server.shutdown_handle().shutdown();
                match server.run().expect("run").socket_file {
                    Some(Removal::Removed) => counts.removed += 1,
                    Some(Removal::Replaced) => counts.put_back += 1,
                    Some(Removal::AlreadyGone) => counts.already_gone += 1,
                    other => panic!("round {round}: unexpected removal {other:?}"),
                }
            }
            Err(BindError::Foreign { .. }) => counts.refused_foreign += 1,
            Err(BindError::Replaced { .. }) => counts.refused_replaced += 1,
            Err(BindError::Raced { .. }) => counts.refused_raced += 1,
            Err(e) => {
                counts.refused_other += 1;
                assert!(!e.to_string().contains("could not be put back"), "round {round}: {e}");
            }
        }
        // SPEC: LIFE-RACE-3 — never deleted, whatever the interleaving.
        let links = held.metadata().unwrap().nlink();
        assert_eq!(links, 1, "round {round}: the precious file was deleted ({counts:?})");
        // When the path is vacant the racer has nothing to exchange with: the next server
        // binds a vacant path, and its socket, exchanged away and back, is the next stale one.
    }
    let exchanges = racer.stop();
    let rounds = round;
    // The file is still where the racer keeps it, under one of its two names, intact; and no
    // private directory is left behind.
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|n| n == "udsocket" || n == "precious"), "left behind: {names:?}");
    let found = [&path, &precious].into_iter().filter(|p| std::fs::read(p).is_ok_and(|b| b == PRECIOUS)).count();
    assert_eq!(found, 1, "the precious file is not at either name: {names:?}");
    eprintln!("race: {}: {rounds} rounds, {exchanges} exchanges, 0 lost files; {counts:?}", base.display());
    assert!(exchanges > 0, "the racer never got to exchange: the test tested nothing");
    counts
}

// SPEC: LIFE-RACE-1, LIFE-RACE-2, LIFE-RACE-3, LIFE-SHUT-2 — on tmpfs.
#[test]
fn a_renaming_racer_never_loses_a_file_on_tmpfs() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIPPED: no /dev/shm (tmpfs) here");
        return;
    }
    race_precious_file(shm, iterations(400));
}

// SPEC: LIFE-RACE-1, LIFE-RACE-2, LIFE-RACE-3, LIFE-SHUT-2 — on the filesystem of the
// working tree.
#[test]
fn a_renaming_racer_never_loses_a_file_on_the_working_filesystem() {
    race_precious_file(Path::new(env!("CARGO_TARGET_TMPDIR")), iterations(400));
}

/// Whether the socket at `path` reaches `listener` (and not some other listener).
fn reaches(path: &Path, listener: &UnixListener) -> bool {
    let Ok(_client) = UnixStream::connect(path) else { return false };
    listener.set_nonblocking(true).unwrap();
    wait_until(DEADLINE, || listener.accept().is_ok())
}

// SPEC: LIFE-RACE-3, LIFE-RACE-2, LIFE-STALE-1 — two servers started at the same moment over
// one stale socket: exactly one serves, every time, and it is the one at the path.
#[test]
fn two_servers_started_at_once_over_a_stale_socket_end_with_exactly_one() {
    let rounds = iterations(300);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let mut refusals = std::collections::BTreeMap::<String, u64>::new();
    for round in 0..rounds {
        stale_socket_at(&path);
        let barrier = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    udsping::socket_path::bind(&path, 0o600)
                })
            })
            .collect();
        let starts: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let (mut serving, mut refused): (Vec<_>, Vec<_>) = starts.into_iter().partition(|r| r.is_ok());
        assert_eq!(serving.len(), 1, "round {round}: {} servers started ({refused:?})", serving.len());
        let (listener, mut file) = serving.pop().unwrap().unwrap();
        let why = match refused.pop().unwrap().unwrap_err() {
            BindError::Live { .. } => "live",
            BindError::Replaced { .. } => "replaced",
            BindError::Raced { .. } => "raced",
            other => panic!("round {round}: unexpected refusal: {other}"),
        };
        *refusals.entry(why.to_string()).or_default() += 1;
        assert!(reaches(&path, &listener), "round {round}: the path does not reach the server that started");
        assert_eq!(file.remove_if_ours().unwrap(), Removal::Removed, "round {round}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "round {round}: left behind {left:?}");
    }
    eprintln!("race: two starts at once over a stale socket: {rounds} rounds, 0 double servers; the other refused: {refusals:?}");
}

/// `udsping serve` at `path`, its output discarded.
fn serve_child(path: &Path) -> ChildGuard {
    let child = Command::cargo_bin("udsping")
        .unwrap()
        .arg("serve")
        .arg("--socket")
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard::new(child)
}

// SPEC: LIFE-RACE-3 — the same with two `udsping serve` processes: one keeps serving, the other
// exits 1, and the path reaches the one still running.
#[test]
fn two_serve_processes_started_at_once_end_with_exactly_one() {
    let rounds = std::env::var("RACE_PROCESS_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    for round in 0..rounds {
        stale_socket_at(&path);
        let mut children = [serve_child(&path), serve_child(&path)];
        // One of them exits (refused); the other serves until stopped.
        let mut exited = None;
        assert!(
            wait_until(DEADLINE, || {
                exited = children.iter_mut().position(|c| c.0.as_mut().unwrap().try_wait().unwrap().is_some());
                exited.is_some()
            }),
            "round {round}: neither server refused"
        );
        let loser = exited.unwrap();
        let status = children[loser].wait_exit(DEADLINE);
        assert_eq!(status.code(), Some(1), "round {round}");
        let winner = &mut children[1 - loser];
        wait_for_listener(&path);
        let summary = udsping::client::run(&udsping::client::ClientConfig {
            rounds: 2,
            ..udsping::client::ClientConfig::new(&path)
        });
        assert_eq!(summary.expect("the remaining server serves").rounds, 2, "round {round}");
        assert!(winner.0.as_mut().unwrap().try_wait().unwrap().is_none(), "round {round}: both exited");
        winner.signal(signal_hook::consts::SIGTERM);
        assert!(winner.wait_exit(DEADLINE).success(), "round {round}");
        assert!(std::fs::symlink_metadata(&path).is_err(), "round {round}: the winner's file stays");
    }
    eprintln!("race: two `udsping serve` at once over a stale socket: {rounds} rounds, 0 double servers");
}
