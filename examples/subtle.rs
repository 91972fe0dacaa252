//! Servers with subtle defects, of the kind real implementations have, for the exploration
//! self-test (tests/explore.rs): no fixed case of the gate is written for them, and
//! `conform server --explore` must find each one and shrink it to a script of a few steps.
//!
//!     subtle <defect> <socket path>
//!
//! - `split-after-ping`: a hand-written parser that loses a pending `"pin"` when a complete
//!   ping came before it in the same read, so the `"g"` that completes it is taken for garbage
//!   (WIRE-STREAM-1).
//! - `thousandth-twice`: answers the 1000th ping of a connection twice (SRV-PONG-1), the kind
//!   of bug a batching write path has at a buffer boundary.
//! - `pause-close`: closes a connection whose partial token is followed by more than 100 ms of
//!   silence, an idle timeout set far too short for a half-sent token (WIRE-STREAM-2).
//! - `shared-pongs`: one counter of pongs owed for all connections, drained by whichever
//!   connection writes next (after a millisecond's wait to batch them): alone, each connection
//!   is answered exactly; when several send at once, one gets another's pongs (SRV-ISOLATE-1).
//!
//! Clients (`conform client --explore`):
//!
//! - `client-extra-bytes`: reassembles four bytes per round and checks them, but drops whatever
//!   else came in the same read, so `"pong"` followed by garbage passes (CLT-REPLY-2).
//! - `client-late-end`: from round 50 on, still sends `end` after a wrong reply before it exits
//!   non-zero (CLT-REPLY-2).
//! - `client-read-four`: reads each reply as exactly four bytes (as Go's `io.ReadFull` does)
//!   before looking at them: conforming, but slow to notice a wrong byte after a `pong`
//!   (CLT-REPLY-3, a SHOULD).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use udsping::proto::{pong_chunks, Decoder, ServerSession, END, PING};
use udsping::socket_path;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Defect {
    SplitAfterPing,
    ThousandthTwice,
    PauseClose,
    SharedPongs,
}

/// Pongs owed, for every connection at once (`shared-pongs`).
static OWED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let (Some(defect @ ("client-extra-bytes" | "client-late-end" | "client-read-four")), Some(socket)) =
        (args.get(1).map(String::as_str), args.get(2))
    {
        return client(defect, Path::new(socket));
    }
    let defect = match args.get(1).map(String::as_str) {
        Some("split-after-ping") => Defect::SplitAfterPing,
        Some("thousandth-twice") => Defect::ThousandthTwice,
        Some("pause-close") => Defect::PauseClose,
        Some("shared-pongs") => Defect::SharedPongs,
        _ => {
            eprintln!("usage: subtle split-after-ping|thousandth-twice|pause-close|shared-pongs <socket path>");
            return ExitCode::from(2);
        }
    };
    let Some(socket) = args.get(2) else {
        eprintln!("usage: subtle <defect> <socket path>");
        return ExitCode::from(2);
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).expect("signal handler");
    }
    let (listener, socket_file) = match socket_path::bind(Path::new(socket), 0o600) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("subtle: {e}");
            return ExitCode::from(1);
        }
    };
    listener.set_nonblocking(true).expect("non-blocking listener");
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                std::thread::spawn(move || match defect {
                    Defect::SplitAfterPing => hand_parsed(stream),
                    Defect::ThousandthTwice | Defect::PauseClose | Defect::SharedPongs => serve(stream, defect),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    drop(listener);
    drop(socket_file);
    ExitCode::SUCCESS
}

/// The core's session, with one defect bolted on.
fn serve(mut stream: UnixStream, defect: Defect) {
    let mut session = ServerSession::new();
    // A second decoder only to know whether a partial token is pending.
    let mut shadow = Decoder::new();
    let mut answered = 0usize;
    let mut buffer = [0u8; 4096];
    loop {
        let timeout = (defect == Defect::PauseClose && shadow.is_mid_token()).then(|| Duration::from_millis(100));
        let _ = stream.set_read_timeout(timeout);
        let n = match stream.read(&mut buffer) {
            Ok(n) => n,
            // "Idle": the half-sent token timed out.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return,
            Err(_) => return,
        };
        let mut reply = if n == 0 { session.on_eof() } else { session.on_bytes(&buffer[..n]) };
        shadow.decode(&buffer[..n]);
        if defect == Defect::ThousandthTwice && answered < 1000 && answered + reply.pongs >= 1000 {
            reply.pongs += 1;
        }
        if defect == Defect::SharedPongs {
            // The defect: owed pongs go into one counter for everybody, and whoever writes
            // next, after a moment to batch them, takes them all.
            OWED.fetch_add(reply.pongs, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
            reply.pongs = OWED.swap(0, Ordering::SeqCst);
        }
        answered += reply.pongs;
        for chunk in pong_chunks(reply.pongs) {
            if stream.write_all(chunk).is_err() {
                return;
            }
        }
        if reply.close.is_some() {
            return;
        }
    }
}

/// A parser written by hand: whole pings off the front of each read, the rest kept for the next.
fn hand_parsed(mut stream: UnixStream) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut data = std::mem::take(&mut pending);
        data.extend_from_slice(&buffer[..n]);
        let mut pongs = 0;
        let mut at = 0;
        while data[at..].starts_with(PING) {
            pongs += 1;
            at += 4;
        }
        let rest = &data[at..];
        let close = if rest.starts_with(END) {
            true
        } else if PING.starts_with(rest) || END.starts_with(rest) {
            // The defect: the leftover is copied from the wrong place when pings came first and
            // three bytes are left, so "pin" is lost.
            if !(pongs > 0 && rest.len() == 3) {
                pending = rest.to_vec();
            }
            false
        } else {
            true
        };
        if stream.write_all(&b"pong".repeat(pongs)).is_err() || close {
            return;
        }
    }
}

/// 100 lock-step rounds, with one defect each.
fn client(defect: &str, socket: &Path) -> ExitCode {
    let Ok(mut stream) = UnixStream::connect(socket) else { return ExitCode::from(1) };
    let mut buffer = [0u8; 64];
    if defect == "client-extra-bytes" {
        for _ in 0..100 {
            if stream.write_all(PING).is_err() {
                return ExitCode::from(1);
            }
            let mut reply = Vec::new();
            while reply.len() < 4 {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => return ExitCode::from(1),
                    Ok(n) => reply.extend_from_slice(&buffer[..n]),
                }
            }
            // The defect: only the first four bytes of what arrived are looked at.
            if &reply[..4] != b"pong" {
                return ExitCode::from(1);
            }
        }
        let _ = stream.write_all(END);
        return ExitCode::SUCCESS;
    }
    if defect == "client-read-four" {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut session = udsping::proto::ClientSession::new(100);
        loop {
            while let Some(bytes) = session.poll_transmit() {
                if stream.write_all(bytes).is_err() {
                    return ExitCode::from(1);
                }
            }
            if !session.wants_read() {
                return ExitCode::SUCCESS;
            }
            let mut reply = [0u8; 4];
            if let Err(e) = stream.read_exact(&mut reply) {
                eprintln!("subtle: waiting for a reply: {e}");
                return ExitCode::from(1);
            }
            if let Err(error) = session.on_bytes(&reply) {
                eprintln!("subtle: {error}");
                return ExitCode::from(1);
            }
        }
    }
    let mut session = udsping::proto::ClientSession::new(100);
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if stream.write_all(bytes).is_err() {
                return ExitCode::from(1);
            }
        }
        if !session.wants_read() {
            return ExitCode::SUCCESS;
        }
        let result = match stream.read(&mut buffer) {
            Ok(0) | Err(_) => session.on_eof(),
            Ok(n) => session.on_bytes(&buffer[..n]),
        };
        if let Err(error) = result {
            // The defect: late in the run, the error path still says goodbye.
            if session.completed_rounds() >= 49 {
                let _ = stream.write_all(END);
            }
            eprintln!("subtle: {error}");
            return ExitCode::from(1);
        }
    }
}
