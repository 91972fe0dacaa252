//! Unix socket addresses (a path, or a Linux abstract `@name`) and connecting to one without
//! ever blocking past a deadline: for the conformance gate and the bench, which talk to servers
//! that may be broken, and for anything else that must not hang on a server that stopped
//! accepting. The socket *file* (what is at a path, its lifecycle) is [`crate::socket_path`]'s.
//!
//! It also holds the two things about Unix sockets that differ between Linux and the other
//! Unix systems, for the whole crate: abstract addresses (`@name`) exist only on Linux (elsewhere
//! they are an [`io::ErrorKind::Unsupported`] error), and a socket is made non-blocking and
//! close-on-exec atomically where `SOCK_NONBLOCK | SOCK_CLOEXEC` exists (Linux), with `fcntl`
//! and `ioctl(FIONBIO)` right after `socket` elsewhere. (On macOS and the BSDs a full backlog
//! is `ECONNREFUSED`, so [`connect_bounded`] returns that at once instead of waiting.)

use std::io;
use std::os::fd::OwnedFd;
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
    let address = match abstract_name(path) {
        None => rustix::net::SocketAddrUnix::new(path)?,
        Some(name) => platform::abstract_address(name)?,
    };
    loop {
        let socket = nonblocking_socket()?;
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

/// The name of an abstract address, written `@name` (SPEC: TRN-ABSTRACT-1).
pub fn abstract_name(path: &Path) -> Option<&[u8]> {
    path.as_os_str().as_encoded_bytes().strip_prefix(b"@")
}

/// The address of a socket path, or of an abstract `@name` (an [`io::ErrorKind::Unsupported`]
/// error outside Linux).
pub fn unix_address(path: &Path) -> io::Result<std::os::unix::net::SocketAddr> {
    match abstract_name(path) {
        Some(name) => platform::abstract_std_address(name),
        None => std::os::unix::net::SocketAddr::from_pathname(path),
    }
}

/// A new `AF_UNIX` stream socket, non-blocking and close-on-exec.
pub(crate) fn nonblocking_socket() -> rustix::io::Result<OwnedFd> {
    platform::nonblocking_socket()
}

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use portable as platform;

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::OwnedFd;
    use std::os::linux::net::SocketAddrExt;

    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

    pub(super) fn nonblocking_socket() -> rustix::io::Result<OwnedFd> {
        rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
    }

    /// The abstract address `name` (SPEC: TRN-ABSTRACT-1).
    pub(super) fn abstract_address(name: &[u8]) -> io::Result<SocketAddrUnix> {
        Ok(SocketAddrUnix::new_abstract_name(name)?)
    }

    /// The abstract address `name`, as `std` spells it.
    pub(super) fn abstract_std_address(name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
        std::os::unix::net::SocketAddr::from_abstract_name(name)
    }
}

#[cfg(not(target_os = "linux"))]
mod portable {
    use std::io;
    use std::os::fd::OwnedFd;

    use rustix::io::FdFlags;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};

    pub(super) fn nonblocking_socket() -> rustix::io::Result<OwnedFd> {
        let socket = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None)?;
        rustix::io::fcntl_setfd(&socket, FdFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&socket, true)?;
        Ok(socket)
    }

    fn unsupported() -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, "abstract socket addresses (@name) exist only on Linux")
    }

    pub(super) fn abstract_address(_name: &[u8]) -> io::Result<SocketAddrUnix> {
        Err(unsupported())
    }

    pub(super) fn abstract_std_address(_name: &[u8]) -> io::Result<std::os::unix::net::SocketAddr> {
        Err(unsupported())
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
