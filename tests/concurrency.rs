//! SPEC.md section 5.5 with real threads: many clients at once, each with its own
//! proptest-generated conversation and segmentation, next to clients that idle, stall mid-token
//! or never read. Bounded by deadlines; nothing here waits on a fixed sleep to decide an outcome.

mod common;

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use udsping::client::{self, ClientConfig};
use udsping::proto::grammar::{judge, split_at, ModelEnding, INVALID_CLASSES};

/// One client's conversation: pings, then one of the endings SPEC.md names (or an invalid
/// byte of any class), written in pieces cut at generated offsets.
fn conversation() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let classed: Vec<u8> = INVALID_CLASSES.iter().flat_map(|(_, bytes)| bytes.iter().copied()).collect();
    let ending = prop_oneof![
        Just(b"end".to_vec()),
        Just(b"pingPING".to_vec()),
        Just(b"pi".to_vec()),
        Just(b"endping".to_vec()),
        Just(Vec::new()),
        prop::sample::select(classed).prop_map(|b| vec![b]),
    ];
    (0usize..40, ending, prop::collection::vec(any::<prop::sample::Index>(), 0..4)).prop_map(|(pings, ending, cuts)| {
        let stream = [b"ping".repeat(pings), ending].concat();
        let points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        split_at(&stream, &points).into_iter().map(<[u8]>::to_vec).collect()
    })
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

proptest! {
    // Each case starts a server and 96 clients: a few cases, shrunk (a little) on failure.
    #![proptest_config(ProptestConfig { cases: 4, max_shrink_iters: 32, failure_persistence: None, ..ProptestConfig::default() })]

    // SPEC: SRV-CONC-1, SRV-CONC-2, SRV-ISOLATE-1 — 64 clients with proptest-generated
    // conversations and segmentations and 32 lock-step reference clients run at once, next to
    // idle, stalled and non-reading connections; every client gets exactly its replies, and
    // the server's accounting adds up.
    #[test]
    fn many_clients_at_once_each_get_exactly_their_replies(conversations in prop::collection::vec(conversation(), 64)) {
        let server = TestServer::start();
        let hostile = hostile_connections(&server.path);
        let lockstep_clients = 32;
        let start = Arc::new(Barrier::new(conversations.len() + lockstep_clients));
        let mut raw = Vec::new();
        for pieces in &conversations {
            let (path, start, pieces) = (server.path.clone(), Arc::clone(&start), pieces.clone());
            raw.push(thread::spawn(move || {
                start.wait();
                converse(&path, &pieces, Duration::from_millis(1))
            }));
        }
        let mut lockstep = Vec::new();
        for _ in 0..lockstep_clients {
            let (path, start) = (server.path.clone(), Arc::clone(&start));
            lockstep.push(thread::spawn(move || {
                start.wait();
                client::run(&ClientConfig { rounds: 200, ..ClientConfig::new(&path) }).map(|s| s.rounds).map_err(|e| e.to_string())
            }));
        }
        let heard: Vec<Heard> = raw.into_iter().map(|t| t.join().expect("a client thread panicked")).collect();
        let rounds: Vec<Result<u64, String>> = lockstep.into_iter().map(|t| t.join().expect("a client thread panicked")).collect();
        for (i, (pieces, heard)) in conversations.iter().zip(&heard).enumerate() {
            let stream = pieces.concat();
            prop_assert_eq!(heard, &Heard { bytes: b"pong".repeat(judge(&stream).pings), closed: true }, "client {}", i);
        }
        prop_assert!(rounds.iter().all(|r| r == &Ok(200)), "{:?}", rounds);
        let total = (conversations.len() + lockstep_clients) as u64;
        // The hostile connections are still open: everything else has ended.
        prop_assert!(wait_until(DEADLINE, || server.stats().ended() == total), "{:?}", server.stats());
        let stats = server.stats();
        prop_assert_eq!(stats.accepted, total + hostile.len() as u64);
        let expected_end = conversations
            .iter()
            .filter(|pieces| matches!(judge(&pieces.concat()).ending, ModelEnding::End { .. }))
            .count() as u64;
        prop_assert_eq!(stats.ended_by_end, expected_end + lockstep_clients as u64, "{:?}", stats);
        drop(hostile);
        server.wait_for_ended(total + 3);
    }
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
