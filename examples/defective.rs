//! Deliberately defective implementations, one defect each, for the conformance gate's
//! self-test (tests/conform.rs): each must be caught by the cases for the requirement it
//! breaks and by no other case. (tests/fixtures/ holds the fixtures written as a stranger
//! would: a C server and its mutants, a Python client, a flooding target.)
//!
//!     defective <defect> <socket path>
//!
//! Server defects: server-no-owed-pongs (SRV-INVALID-1), server-answers-after-end (SRV-END-2),
//! server-world-readable (LIFE-PERM-1), server-keeps-socket (LIFE-SHUT-1),
//! server-unlinks-files (LIFE-FOREIGN-1), server-serial (SRV-CONC-1, SRV-CONC-2, and LIFE-SHUT-1: it sits in a connection's read when
//! SIGTERM comes).
//! Client defects: client-ignores-reply (CLT-REPLY-2), client-exit-zero (CLT-EXIT-1),
//! client-99-rounds (CLT-ROUNDS-1, a SHOULD).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use udsping::proto::{pong_chunks, ClientSession, Ending, PING};
use udsping::socket_path;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(defect), Some(socket)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: defective <defect> <socket path>");
        return ExitCode::from(2);
    };
    let socket = Path::new(socket);
    match defect.as_str() {
        "client-ignores-reply" | "client-exit-zero" | "client-99-rounds" => client(defect, socket),
        _ => server(defect, socket),
    }
}

fn server(defect: &str, socket: &Path) -> ExitCode {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).expect("signal handler");
    }
    if defect == "server-unlinks-files" && std::fs::symlink_metadata(socket).is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(socket);
    }
    let mode = if defect == "server-world-readable" { 0o644 } else { 0o600 };
    let (listener, socket_file) = match socket_path::bind(socket, mode) {
        Ok(bound) => bound,
        Err(e) => {
            eprintln!("defective: {e}");
            return ExitCode::from(1);
        }
    };
    listener.set_nonblocking(true).expect("non-blocking listener");
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).expect("blocking stream");
                let defect = defect.to_string();
                if defect == "server-serial" {
                    serve(stream, &defect);
                } else {
                    std::thread::spawn(move || serve(stream, &defect));
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    if defect == "server-keeps-socket" {
        std::process::exit(0); // skips removing the socket file
    }
    drop(listener);
    drop(socket_file); // removes it if it is still ours
    ExitCode::SUCCESS
}

fn serve(mut stream: UnixStream, defect: &str) {
    let mut session = udsping::proto::ServerSession::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buffer) {
            Ok(n) => n,
            Err(_) => return,
        };
        let mut reply = if n == 0 { session.on_eof() } else { session.on_bytes(&buffer[..n]) };
        match reply.close {
            Some(Ending::Invalid(_)) if defect == "server-no-owed-pongs" => reply.pongs = 0,
            Some(Ending::End) if defect == "server-answers-after-end" => {
                let read = &buffer[..n];
                let after_end = read.windows(3).position(|w| w == b"end").map_or(0, |i| i + 3);
                reply.pongs += read[after_end..].chunks_exact(4).filter(|c| *c == PING).count();
            }
            _ => {}
        }
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

fn client(defect: &str, socket: &Path) -> ExitCode {
    let failure = if defect == "client-exit-zero" { ExitCode::SUCCESS } else { ExitCode::from(1) };
    let mut stream = match UnixStream::connect(socket) {
        Ok(stream) => stream,
        Err(e) => {
            eprintln!("defective: cannot connect to {}: {e}", socket.display());
            return ExitCode::from(1);
        }
    };
    let rounds = if defect == "client-99-rounds" { 99 } else { 100 };
    if defect == "client-ignores-reply" {
        // Reassembles four bytes per round but never looks at them.
        for _ in 0..rounds {
            if stream.write_all(PING).is_err() {
                return ExitCode::from(1);
            }
            let mut reply = [0u8; 4];
            let mut got = 0;
            while got < reply.len() {
                match stream.read(&mut reply[got..]) {
                    Ok(0) | Err(_) => {
                        eprintln!("defective: the server closed after {got} of 4 reply bytes");
                        return ExitCode::from(1);
                    }
                    Ok(n) => got += n,
                }
            }
        }
        let _ = stream.write_all(b"end");
        return ExitCode::SUCCESS;
    }
    let mut session = ClientSession::new(rounds);
    let mut buffer = [0u8; 64];
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if stream.write_all(bytes).is_err() {
                return failure;
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
            eprintln!("defective: {error}");
            return failure;
        }
    }
}
