//! SPEC.md section 5.5 with real threads: many clients at once, each with its own generated
//! conversation, next to clients that idle, stall mid-token or never read. Bounded by
//! deadlines; nothing here waits on a fixed sleep to decide an outcome.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::*;
use udsping::client::{self, ClientConfig};

/// A small deterministic generator, so each client's conversation differs but every run is
/// the same.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below
    }
}

/// Client `seed`'s stream: pings, then one of the endings SPEC.md names.
fn generated_stream(seed: u64) -> Vec<u8> {
    let mut rng = Lcg(seed);
    let mut stream = b"ping".repeat(rng.next(40) as usize);
    stream.extend_from_slice(match rng.next(5) {
        0 => &b"end"[..],
        1 => b"pingPING",
        2 => b"pi",
        3 => b"\xff",
        _ => b"endping",
    });
    stream
}

/// Connections that misbehave for as long as they are held: idle, half a token, and a client
/// that pipelines pings without ever reading the pongs until both socket buffers are full.
fn hostile_connections(path: &std::path::Path) -> Vec<UnixStream> {
    let idle = connect(path);
    let mut stalled = connect(path);
    stalled.write_all(b"pi").unwrap();
    let flooding = connect(path);
    flooding.set_nonblocking(true).unwrap();
    let flood = b"ping".repeat(1024);
    // Stop once the kernel refuses more: the server's writes to this client now block.
    while (&flooding).write(&flood).is_ok() {}
    vec![idle, stalled, flooding]
}

// SPEC: SRV-CONC-1, SRV-CONC-2, SRV-ISOLATE-1 — 64 clients with generated conversations and 32
// lock-step reference clients run at once, next to idle, stalled and non-reading connections;
// every client gets exactly its replies, and the server's accounting adds up.
#[test]
fn many_clients_at_once_each_get_exactly_their_replies() {
    let server = TestServer::start();
    let hostile = hostile_connections(&server.path);
    let raw_clients = 64;
    let lockstep_clients = 32;
    let start = Arc::new(Barrier::new(raw_clients + lockstep_clients));
    let mut threads = Vec::new();
    for seed in 0..raw_clients as u64 {
        let (path, start) = (server.path.clone(), Arc::clone(&start));
        threads.push(thread::spawn(move || {
            let stream = generated_stream(seed);
            start.wait();
            let heard = converse(&path, std::slice::from_ref(&stream), Duration::ZERO);
            assert_eq!(heard, Heard { bytes: b"pong".repeat(model_pongs(&stream)), closed: true }, "client {seed}");
        }));
    }
    for _ in 0..lockstep_clients {
        let (path, start) = (server.path.clone(), Arc::clone(&start));
        threads.push(thread::spawn(move || {
            start.wait();
            let summary =
                client::run(&ClientConfig { rounds: 200, ..ClientConfig::new(&path) }).expect("lock-step client");
            assert_eq!(summary.rounds, 200);
        }));
    }
    for t in threads {
        t.join().expect("a client failed");
    }
    let total = (raw_clients + lockstep_clients) as u64;
    // The hostile connections are still open: everything else has ended.
    assert!(wait_until(DEADLINE, || server.stats().ended() == total), "{:?}", server.stats());
    let stats = server.stats();
    assert_eq!(stats.accepted, total + hostile.len() as u64);
    let ends_with_end = |stream: Vec<u8>| stream[4 * model_pongs(&stream)..].starts_with(b"end");
    let expected_end = (0..raw_clients as u64).filter(|&s| ends_with_end(generated_stream(s))).count() as u64;
    assert_eq!(stats.ended_by_end, expected_end + lockstep_clients as u64, "{stats:?}");
    drop(hostile);
    server.wait_for_ended(total + 3);
}

// SPEC: SRV-ISOLATE-1, SRV-INVALID-2 — after every kind of ending, the server still accepts and serves.
#[test]
fn server_keeps_accepting_after_every_kind_of_ending() {
    let server = TestServer::start();
    let endings: [&[u8]; 6] = [b"pingend", b"PING", b"\xff", b"pingpi", b"", b"pingendping"];
    for ending in endings {
        converse(&server.path, &[ending.to_vec()], Duration::ZERO);
        let summary = client::run(&ClientConfig { rounds: 3, ..ClientConfig::new(&server.path) });
        assert_eq!(
            summary.expect("server must keep serving").rounds,
            3,
            "after {:?}",
            ending.escape_ascii().to_string()
        );
    }
    // A client that resets mid-conversation (closing with unread pongs queued to it).
    let mut vanishing = connect(&server.path);
    vanishing.write_all(&b"ping".repeat(1000)).unwrap();
    drop(vanishing);
    assert_eq!(client::run(&ClientConfig { rounds: 3, ..ClientConfig::new(&server.path) }).unwrap().rounds, 3);
    server.wait_for_ended(2 * endings.len() as u64 + 2);
}

// SPEC: SRV-CONC-2 — a full socket buffer on one connection does not slow another connection
// down: the other connection completes all its rounds while the first stays blocked.
#[test]
fn a_client_that_never_reads_does_not_block_others() {
    let server = TestServer::start();
    let hostile = hostile_connections(&server.path);
    for _ in 0..4 {
        let summary = client::run(&ClientConfig { rounds: 500, ..ClientConfig::new(&server.path) }).unwrap();
        assert_eq!(summary.rounds, 500);
    }
    assert!(wait_until(DEADLINE, || server.stats().ended() == 4), "{:?}", server.stats());
    drop(hostile);
}
