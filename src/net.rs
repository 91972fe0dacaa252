//! Connecting to a Unix socket without ever blocking past a deadline, for the conformance gate
//! and the bench (which talk to servers that may be broken) and for anything else that must not
//! hang on a server that stopped accepting.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

/// Connects to a socket path, or to a Linux abstract address written `@name`, without ever
/// blocking past `deadline`: a blocking `connect` to a Unix socket whose listen backlog is full
/// waits indefinitely (a server that stopped accepting would hang the caller), so it connects
/// non-blocking and retries while the kernel says `EAGAIN`. Other errors (`ECONNREFUSED`,
/// `ENOENT`) are returned at once. The stream returned is blocking.
pub fn connect_bounded(path: &Path, deadline: Instant) -> io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let address = match path.as_os_str().as_encoded_bytes().strip_prefix(b"@") {
        None => SocketAddrUnix::new(path)?,
        Some(name) => SocketAddrUnix::new_abstract_name(name)?,
    };
    loop {
        let socket = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        match rustix::net::connect(&socket, &address) {
            Ok(()) => {
                let stream = UnixStream::from(socket);
                stream.set_nonblocking(false)?;
                return Ok(stream);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Err(rustix::io::Errno::AGAIN) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the listen backlog stayed full (the server does not accept)",
                ))
            }
            Err(errno) => return Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_backlog_times_out_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // Never accepted: the backlog fills, and then connect must give up at the deadline.
        let mut held = Vec::new();
        let error = loop {
            match connect_bounded(&path, Instant::now() + Duration::from_millis(50)) {
                Ok(stream) => held.push(stream),
                Err(e) => break e,
            }
            assert!(held.len() < 100_000, "the backlog never filled");
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(listener);
        let refused = connect_bounded(&path, Instant::now()).unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    }
}
