//! Soak: hundreds of lock-step clients doing thousands of rounds each against `udsping serve`,
//! while a fault injector opens connections that close mid-token, send garbage, stall with half
//! a token, half-close, never read, and reconnect in a loop. Ignored by default:
//!
//!     cargo test --release --test soak -- --ignored --nocapture
//!
//! SOAK_CLIENTS and SOAK_ROUNDS set the size (default 200 x 2000; `.ci/run` uses less).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Instant;

use assert_cmd::cargo::CommandCargoExt;
use common::*;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn count_entries(dir: String) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(usize::MAX)
}

/// A well-behaved client: every reply must be exactly `pong`, in time; then `end` and a close.
fn lockstep(path: &std::path::Path, rounds: u64) -> Result<(), String> {
    let mut stream = connect(path);
    for round in 1..=rounds {
        stream.write_all(b"ping").map_err(|e| format!("round {round}: send: {e}"))?;
        let reply = read_exactly(&mut stream, 4);
        if reply != b"pong" {
            return Err(format!("round {round}: got {:?}", reply.escape_ascii().to_string()));
        }
    }
    stream.write_all(b"end").map_err(|e| format!("end: {e}"))?;
    let heard = read_to_close(&mut stream, DEADLINE);
    if heard != (Heard { bytes: vec![], closed: true }) {
        return Err(format!("after end: {heard:?}"));
    }
    Ok(())
}

const FAULTS: [&str; 6] = ["close-mid-token", "garbage", "stall-half-token", "half-close", "never-read", "reconnect"];

/// One fault; connections that must stay open are kept in `held` until the end.
fn inject(kind: usize, path: &std::path::Path, held: &Mutex<Vec<UnixStream>>) {
    let Ok(mut stream) = UnixStream::connect(path) else { return };
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    match FAULTS[kind] {
        "close-mid-token" => {
            let _ = stream.write_all(b"pingpi");
        }
        "garbage" => {
            let _ = stream.write_all(b"pingping\xff\x00garbage");
            let heard = read_to_close(&mut stream, DEADLINE);
            assert_eq!(heard, Heard { bytes: b"pongpong".to_vec(), closed: true }, "garbage fault");
        }
        "stall-half-token" => {
            let _ = stream.write_all(b"pin");
            held.lock().unwrap().push(stream);
        }
        "half-close" => {
            let _ = stream.write_all(b"pingping");
            let _ = stream.shutdown(Shutdown::Write);
            let heard = read_to_close(&mut stream, DEADLINE);
            assert_eq!(heard, Heard { bytes: b"pongpong".to_vec(), closed: true }, "half-close fault");
        }
        "never-read" => {
            stream.set_nonblocking(true).unwrap();
            let flood = b"ping".repeat(4096);
            while (&stream).write(&flood).is_ok() {}
            held.lock().unwrap().push(stream);
        }
        _ => {
            drop(stream);
            for _ in 0..5 {
                lockstep(path, 3).expect("reconnecting client");
            }
        }
    }
}

#[test]
#[ignore = "soak: cargo test --release --test soak -- --ignored"]
fn soak() {
    let (clients, rounds) = (setting("SOAK_CLIENTS", 200), setting("SOAK_ROUNDS", 2000));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let child = Command::cargo_bin("udsping")
        .unwrap()
        .arg("serve")
        .arg("--socket")
        .arg(&path)
        .args(["--write-timeout", "2s", "--max-connections", "4096"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = ChildGuard::new(child);
    let stderr = server.0.as_mut().unwrap().stderr.take().unwrap();
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || BufReader::new(stderr).lines().map_while(Result::ok).try_for_each(|l| sender.send(l)));
    // The counts, as SIGUSR1 prints them.
    let counts = |server: &ChildGuard| {
        server.signal(signal_hook::consts::SIGUSR1);
        loop {
            let line = lines.recv_timeout(DEADLINE).expect("SIGUSR1 prints the counts");
            if line.contains("accepted") {
                return line;
            }
        }
    };
    wait_for_listener(&path);
    let pid = server.pid();
    let (tasks, fds) = (format!("/proc/{pid}/task"), format!("/proc/{pid}/fd"));
    // Idle: the readiness probe was accepted and has ended, and its thread is gone (the
    // thread exits after closing its descriptor): the main thread and the log writer's remain.
    let idle = wait_until(DEADLINE, || {
        counts(&server).contains("accepted 1, refused 0, open 0,")
            && count_entries(tasks.clone()) == 1 + udsping::logger::WRITER_THREADS
    });
    assert!(idle, "the server did not become idle after the readiness probe");
    let (idle_threads, idle_fds) = (count_entries(tasks.clone()), count_entries(fds.clone()));

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let faults: Arc<Vec<AtomicU64>> = Arc::new(FAULTS.iter().map(|_| AtomicU64::new(0)).collect());
    let held = Arc::new(Mutex::new(Vec::new()));
    let injector = {
        let (stop, faults, held, path) = (Arc::clone(&stop), Arc::clone(&faults), Arc::clone(&held), path.clone());
        thread::spawn(move || {
            let mut kind = 0;
            while !stop.load(Ordering::SeqCst) {
                // Keep the number of held connections bounded; they are released at the end.
                if held.lock().unwrap().len() > 200 && matches!(FAULTS[kind], "stall-half-token" | "never-read") {
                    kind = (kind + 1) % FAULTS.len();
                    continue;
                }
                inject(kind, &path, &held);
                faults[kind].fetch_add(1, Ordering::Relaxed);
                kind = (kind + 1) % FAULTS.len();
            }
        })
    };
    let workers: Vec<_> = (0..clients)
        .map(|i| {
            let path = path.clone();
            thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || lockstep(&path, rounds).map_err(|e| format!("client {i}: {e}")))
                .unwrap()
        })
        .collect();
    let failures: Vec<String> = workers.into_iter().filter_map(|w| w.join().unwrap().err()).collect();
    stop.store(true, Ordering::SeqCst);
    injector.join().expect("the fault injector saw a wrong reply");
    held.lock().unwrap().clear();
    assert!(failures.is_empty(), "{} well-behaved clients failed, first: {:?}", failures.len(), failures.first());

    // Everything closed: the server returns to its idle threads and descriptors, and answers.
    let back =
        wait_until(DEADLINE, || count_entries(tasks.clone()) == idle_threads && count_entries(fds.clone()) == idle_fds);
    assert!(
        back,
        "threads {} (idle {idle_threads}), fds {} (idle {idle_fds})",
        count_entries(tasks),
        count_entries(fds)
    );
    lockstep(&path, 10).expect("the server still answers");

    // The counts add up: nothing open, every accepted connection ended somehow.
    let counts = counts(&server);
    assert!(counts.contains("open 0,"), "{counts}");

    let injected: Vec<String> =
        FAULTS.iter().zip(faults.iter()).map(|(k, n)| format!("{k} {}", n.load(Ordering::Relaxed))).collect();
    let total: u64 = faults.iter().map(|n| n.load(Ordering::Relaxed)).sum();
    println!(
        "soak: {clients} clients x {rounds} rounds = {} rounds, {total} faults injected ({}), {:.1} s wall; server: {}",
        clients * rounds,
        injected.join(", "),
        started.elapsed().as_secs_f64(),
        counts.trim_start_matches("udsping: ")
    );
}
