//! SPEC.md section 5.6 and the reference's limits (section 11): the descriptor limit raised at
//! start, and SRV-IDLE-2: a table full of idle connections does not lock a waiting client out
//! for the idle timeout, and a table full of talking clients is left alone.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The soft and hard "Max open files" of a process, from /proc/PID/limits.
fn open_files_limits(pid: i32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[3].to_owned(), fields[4].to_owned())
}

// SPEC: SRV-LIMIT-1 — started from a shell with a low soft descriptor limit (as a service
// manager or a login shell may leave it), `udsping serve` raises it to the hard limit, and
// its default connection limit follows the hard limit, not a fixed 1,024.
#[test]
fn serve_raises_its_soft_descriptor_limit_to_the_hard_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let child = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -Sn 256 && exec "$0" serve --socket "$1""#)
        .arg(env!("CARGO_BIN_EXE_udsping"))
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = ChildGuard::new(child);
    wait_for_listener(&path);
    let (soft, hard) = open_files_limits(server.pid());
    assert_eq!(soft, hard, "the soft limit was left below the hard one");
    let hard: u64 = hard.parse().unwrap();
    if hard > 1024 + udsping::server::limits::RESERVED_DESCRIPTORS {
        assert!(udsping::server::limits::default_max_connections() > 1024);
    }
}

fn round(stream: &mut std::os::unix::net::UnixStream) {
    stream.write_all(b"ping").unwrap();
    assert_eq!(read_exactly(stream, 4), b"pong");
}

// SPEC: SRV-IDLE-2, SRV-LIMIT-1 — with every slot idle, a waiting client is admitted in the
// place of the connection idle longest, which is closed without a reply and counted as a
// timeout; the others go on.
#[test]
fn a_waiting_client_displaces_the_longest_idle_connection() {
    let server = TestServer::start_with(|c| {
        c.max_connections = 3;
        c.pressure_idle = Some(Duration::from_millis(100));
    });
    let mut oldest = connect(&server.path);
    round(&mut oldest);
    // Activity is kept to the millisecond: make "longest idle" unambiguous.
    std::thread::sleep(Duration::from_millis(20));
    let mut others = [connect(&server.path), connect(&server.path)];
    for stream in &mut others {
        round(stream);
    }
    let mut waiting = connect(&server.path);
    round(&mut waiting);
    assert_eq!(read_to_close(&mut oldest, DEADLINE), Heard { bytes: vec![], closed: true });
    for stream in &mut others {
        round(stream);
    }
    assert!(wait_until(DEADLINE, || server.stats().ended_by_timeout == 1), "{:?}", server.stats());
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.ended()), (4, 1), "{stats:?}");
}

// SPEC: SRV-IDLE-2 — clients that keep talking are not closed for a newcomer; it waits, and is
// admitted once one of them falls silent for the threshold.
#[test]
fn talking_clients_are_not_displaced() {
    let threshold = Duration::from_secs(2);
    let server = TestServer::start_with(|c| {
        c.max_connections = 2;
        c.pressure_idle = Some(threshold);
    });
    let mut busy = [connect(&server.path), connect(&server.path)];
    for stream in &mut busy {
        round(stream);
    }
    let mut waiting = connect(&server.path);
    waiting.write_all(b"ping").unwrap();
    // A round every 10 ms for half a second keeps both far from the 2 s threshold.
    for _ in 0..50 {
        for stream in &mut busy {
            round(stream);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = server.stats();
    assert_eq!((stats.accepted, stats.ended()), (2, 0), "a talking client was displaced: {stats:?}");
    // Now both are silent: the newcomer gets a slot once one has been idle for the threshold.
    assert_eq!(read_exactly(&mut waiting, 4), b"pong");
    assert!(wait_until(DEADLINE, || server.stats().ended_by_timeout == 1), "{:?}", server.stats());
}
