//! What the gate puts at the socket path before a server starts (SPEC.md section 7.1): one
//! [`Occupant`] for the fixed cases and the generated lifecycles alike, how it is put there,
//! what a refusal must call it, and whether what it holds is still as it was.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Instant;

use crate::conform::verdict::Problem;
use crate::net::connect_bounded;

/// What is at the socket path before a start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Occupant {
    /// Nothing: the server creates the socket file.
    Nothing,
    /// A socket file nobody listens on.
    StaleSocket,
    /// A socket the gate listens on.
    LiveServer,
    /// A socket the gate listens on with its backlog full (a probe gets `EAGAIN`).
    BusyServer,
    /// A regular file with user data.
    RegularFile,
    /// A directory with a file in it.
    Directory,
    /// A symbolic link to a regular file.
    Symlink,
    /// A symbolic link to a stale socket.
    SymlinkToSocket,
    /// A named pipe.
    Fifo,
}

/// The user data in a regular file the gate puts at the path (or a symbolic link points to).
pub(crate) const USER_DATA: &str = "precious user data\n";

/// What the gate keeps alive at the path while a case runs: a listener, or nothing. Dropped,
/// it goes.
pub(crate) enum Held {
    Nothing,
    Listener(UnixListener),
    Busy { _listener: BusyListener },
}

impl Occupant {
    /// Puts it at `path`, with whatever it refers to in `dir` (a link's target, a directory's
    /// file).
    pub(crate) fn put(self, path: &Path, dir: &Path) -> Result<Held, Problem> {
        let io = |e: std::io::Error| Problem::harness("cannot prepare the path", e);
        match self {
            Occupant::Nothing => {}
            Occupant::StaleSocket => drop(UnixListener::bind(path).map_err(io)?),
            Occupant::LiveServer => return Ok(Held::Listener(UnixListener::bind(path).map_err(io)?)),
            Occupant::BusyServer => return Ok(Held::Busy { _listener: BusyListener::at(path)? }),
            Occupant::RegularFile => std::fs::write(path, USER_DATA).map_err(io)?,
            Occupant::Directory => {
                std::fs::create_dir(path).map_err(io)?;
                std::fs::write(path.join("inside"), USER_DATA).map_err(io)?;
            }
            Occupant::Symlink => {
                std::fs::write(dir.join("target"), USER_DATA).map_err(io)?;
                std::os::unix::fs::symlink(dir.join("target"), path).map_err(io)?;
            }
            Occupant::SymlinkToSocket => {
                drop(UnixListener::bind(dir.join("real.sock")).map_err(io)?);
                std::os::unix::fs::symlink(dir.join("real.sock"), path).map_err(io)?;
            }
            Occupant::Fifo => rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from_raw_mode(0o600))
                .map_err(|e| io(e.into()))?,
        }
        Ok(Held::Nothing)
    }

    /// What it is, in words, and the words any one of which (case-insensitive) says so in a
    /// refusal's message (SPEC: LIFE-FOREIGN-1 asks the message to say what was found).
    pub(crate) fn described(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Occupant::Nothing => ("nothing", &[]),
            Occupant::StaleSocket => ("a stale socket", &["socket"]),
            Occupant::LiveServer => ("a live server's socket", &["socket"]),
            Occupant::BusyServer => ("a live server's socket with its backlog full", &["socket"]),
            Occupant::RegularFile => {
                ("a regular file", &["regular", "plain file", "a file", "is a file", "s_ifreg", "ordinary"])
            }
            Occupant::Directory => ("a directory", &["director", "folder", "eisdir", "is a dir"]),
            Occupant::Symlink => ("a symbolic link to a file", &["link"]),
            Occupant::SymlinkToSocket => ("a symbolic link to a stale socket", &["link"]),
            Occupant::Fifo => ("a named pipe", &["fifo", "pipe"]),
        }
    }

    /// Whether what it refers to is as [`Occupant::put`] left it: the directory's file, the
    /// link's target (what is at the path itself is the caller's to compare).
    pub(crate) fn contents_intact(self, path: &Path, dir: &Path) -> bool {
        let holds_user_data = |file: &Path| std::fs::read(file).is_ok_and(|d| d == USER_DATA.as_bytes());
        match self {
            Occupant::Directory => holds_user_data(&path.join("inside")),
            Occupant::Symlink => holds_user_data(&dir.join("target")),
            Occupant::SymlinkToSocket => {
                std::fs::symlink_metadata(dir.join("real.sock")).is_ok_and(|m| m.file_type().is_socket())
            }
            _ => true,
        }
    }
}

/// A listener at `path` whose backlog is full and that never accepts: a live server that a
/// probe `connect` gets `EAGAIN` from (or, blocking, waits on for ever). Dropped, it goes.
pub(crate) struct BusyListener {
    _pending: Vec<UnixStream>,
    _listener: std::os::fd::OwnedFd,
}

impl BusyListener {
    pub(crate) fn at(path: &Path) -> Result<BusyListener, Problem> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        // A backlog of none: one pending connection fills it.
        let listener = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)
            .and_then(|socket| {
                rustix::net::bind(&socket, &SocketAddrUnix::new(path)?)?;
                rustix::net::listen(&socket, 0)?;
                Ok(socket)
            })
            .map_err(|e| Problem::harness("cannot listen at the path", e))?;
        let mut pending = Vec::new();
        while pending.len() < 16 {
            match connect_bounded(path, Instant::now()) {
                Ok(stream) => pending.push(stream),
                Err(_) => break,
            }
        }
        if connect_bounded(path, Instant::now()).is_ok() {
            return Err(Problem::Harness("cannot fill the listen backlog at the path".into()));
        }
        Ok(BusyListener { _pending: pending, _listener: listener })
    }
}
