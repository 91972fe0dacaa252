//! Driving the sans-IO core, `udsping_proto`, from your own IO loop: a single-threaded,
//! non-blocking server on plain `poll(2)` (through rustix) that serves any number of clients
//! at once. The core never touches a socket; this file is all the IO there is.
//!
//!     cargo run --example poll_loop -- SOCKET
//!
//! It serves until SIGINT or SIGTERM, then removes its socket file. What it leaves out, for
//! brevity, is what `udsping::server` adds on top: the socket file's lifecycle (stale sockets,
//! SPEC.md section 7), idle and write timeouts, limits and counters. `tests/tool.rs` runs the
//! conformance gate's stream and reply cases (SPEC.md sections 4 and 5.1 to 5.5) against it.

use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::ExitCode;

use rustix::event::{poll, PollFd, PollFlags};
use udsping_proto::{pong_chunks, Reply, ServerSession};

/// One client: its socket, its protocol state, and the bytes of `pong`s it is owed.
struct Connection {
    stream: UnixStream,
    session: ServerSession,
    /// Bytes owed and not yet written: the writer may stop anywhere, even inside a `pong`.
    unsent: usize,
    /// Bytes written so far, so a partial write resumes at the right byte of `pong`.
    sent: usize,
    /// The session said to close once the owed bytes are out.
    closing: bool,
}

impl Connection {
    /// Takes what the session decided: more bytes owed, perhaps a close after them.
    fn apply(&mut self, reply: Reply) {
        self.unsent += reply.pongs * udsping_proto::PONG.len();
        self.closing |= reply.close.is_some();
    }

    /// Reads what is there and hands it to the session; `Err` means drop the connection.
    fn on_readable(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    let reply = self.session.on_eof();
                    self.apply(reply);
                    return Ok(());
                }
                Ok(n) => {
                    let reply = self.session.on_bytes(&buf[..n]);
                    self.apply(reply);
                    if self.closing {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes owed bytes until done or the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        // A 4 KiB block of "pongpong...": every owed byte is in it at offset `sent % 4`.
        let block = pong_chunks(1024).next().expect("1024 pongs are one block");
        while self.unsent > 0 {
            let start = self.sent % 4;
            let end = block.len().min(start + self.unsent);
            match self.stream.write(&block[start..end]) {
                Ok(n) => {
                    self.sent += n;
                    self.unsent -= n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// What to wait for: room to write while bytes are owed, otherwise input.
    fn interest(&self) -> PollFlags {
        if self.unsent > 0 {
            PollFlags::OUT
        } else {
            PollFlags::IN
        }
    }

    fn done(&self) -> bool {
        self.closing && self.unsent == 0
    }
}

fn main() -> ExitCode {
    let Some(socket) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: poll_loop SOCKET");
        return ExitCode::from(2);
    };
    match serve(&socket) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poll_loop: {}: {e}", socket.display());
            ExitCode::FAILURE
        }
    }
}

fn serve(socket: &std::path::Path) -> io::Result<()> {
    // SIGINT and SIGTERM write a byte into a pipe that the loop polls, so a signal wakes it.
    let (stop_read, stop_write) = UnixStream::pair()?;
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::low_level::pipe::register(signal, stop_write.try_clone()?)?;
    }
    let listener = UnixListener::bind(socket)?;
    listener.set_nonblocking(true)?;
    let mut connections: Vec<Connection> = Vec::new();
    loop {
        let mut fds = Vec::with_capacity(connections.len() + 2);
        fds.push(PollFd::new(&stop_read, PollFlags::IN));
        fds.push(PollFd::new(&listener, PollFlags::IN));
        fds.extend(connections.iter().map(|c| PollFd::new(&c.stream, c.interest())));
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<PollFlags> = fds.iter().map(PollFd::revents).collect();
        drop(fds);
        if !ready[0].is_empty() {
            break;
        }
        let mut index = 0;
        connections.retain_mut(|connection| {
            let events = ready[index + 2];
            index += 1;
            if events.is_empty() {
                return true;
            }
            let result = if connection.unsent > 0 { Ok(()) } else { connection.on_readable() };
            let keep = result.and_then(|()| connection.flush()).is_ok() && !connection.done();
            if !keep {
                // Closing after the owed bytes: shut down writing so the client sees EOF at once.
                let _ = connection.stream.shutdown(std::net::Shutdown::Both);
            }
            keep
        });
        if !ready[1].is_empty() {
            loop {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(true)?;
                        let session = ServerSession::new();
                        connections.push(Connection { stream, session, unsent: 0, sent: 0, closing: false });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    // Out of descriptors or a client that gave up: keep serving the others.
                    Err(_) => break,
                }
            }
        }
    }
    drop(connections);
    std::fs::remove_file(socket)
}
