//! The socket file: checking a path, what may be at it, creating and removing it safely
//! (SPEC.md sections 3 and 7).
//!
//! The seed removes whatever is at its path before binding. Here a path is inspected without
//! following links, only a socket that refuses connections counts as stale, its identity is
//! checked again right before removal, and the file is created with its final mode from the
//! start by setting the umask around `bind`.

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::FileType;
use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// Longest socket path in bytes: `sun_path` is 108 bytes on Linux, one of which is the NUL.
pub const MAX_PATH_BYTES: usize = 107;

/// A path that cannot name a Unix socket.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// SPEC: TRN-PATH-2
    #[error("socket path {path} is {len} bytes, but a Unix socket path holds at most {MAX_PATH_BYTES} (it is never truncated)")]
    TooLong {
        /// The socket path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
    },
    /// An empty path.
    #[error("socket path is empty")]
    Empty,
    /// A path with a NUL byte, which `sun_path` cannot hold.
    #[error("socket path {path} contains a NUL byte")]
    NulByte {
        /// The socket path.
        path: PathBuf,
    },
}

/// The name of an abstract address, written `@name` (SPEC: TRN-ABSTRACT-1).
pub fn abstract_name(path: &Path) -> Option<&[u8]> {
    path.as_os_str().as_encoded_bytes().strip_prefix(b"@")
}

/// The address of a socket path, or of an abstract `@name` (Linux only: elsewhere an
/// `@name` is an `Unsupported` error that says so).
pub fn unix_address(path: &Path) -> io::Result<std::os::unix::net::SocketAddr> {
    match abstract_name(path) {
        #[cfg(target_os = "linux")]
        Some(name) => <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(name),
        #[cfg(not(target_os = "linux"))]
        Some(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "abstract addresses (@name) exist only on Linux")),
        None => std::os::unix::net::SocketAddr::from_pathname(path),
    }
}

/// Connects to a socket path or an abstract `@name`.
pub fn connect(path: &Path) -> io::Result<std::os::unix::net::UnixStream> {
    std::os::unix::net::UnixStream::connect_addr(&unix_address(path)?)
}

/// Checks that `path` fits in `sun_path` as it is (SPEC: TRN-PATH-2). An abstract `@name` takes
/// the same room: its name follows a leading NUL instead of ending with one.
pub fn check_path(path: &Path) -> Result<(), PathError> {
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    if bytes.contains(&0) {
        return Err(PathError::NulByte { path: path.to_owned() });
    }
    if bytes.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong { path: path.to_owned(), len: bytes.len() });
    }
    Ok(())
}

/// A file held by an `O_PATH` descriptor, with its device and inode number. Holding it keeps the
/// number from being given to a new file, so "the file at the path has these numbers" really
/// means "the file at the path is this one" (SPEC: LIFE-RACE-1, LIFE-SHUT-2).
///
/// `O_PATH` is Linux's. Elsewhere a socket file cannot be opened at all, so nothing is held
/// and the pin is the device and inode number alone, which a new file could reuse once the
/// old one is gone.
#[derive(Debug)]
pub struct PinnedFile {
    _held: Option<OwnedFd>,
    dev: u64,
    ino: u64,
    file_type: FileType,
}

impl PinnedFile {
    /// Pins whatever is at `path` itself (a symbolic link is pinned, not followed).
    #[cfg(target_os = "linux")]
    fn at(path: &Path) -> io::Result<PinnedFile> {
        use rustix::fs::{Mode, OFlags};
        let held = rustix::fs::open(path, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
        let stat = rustix::fs::fstat(&held)?;
        Ok(PinnedFile {
            dev: stat.st_dev,
            ino: stat.st_ino,
            file_type: FileType::from_raw_mode(stat.st_mode),
            _held: Some(held),
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn at(path: &Path) -> io::Result<PinnedFile> {
        use std::os::unix::fs::FileTypeExt;
        let metadata = std::fs::symlink_metadata(path)?;
        let kind = metadata.file_type();
        let file_type = match () {
            _ if kind.is_socket() => FileType::Socket,
            _ if kind.is_file() => FileType::RegularFile,
            _ if kind.is_dir() => FileType::Directory,
            _ if kind.is_symlink() => FileType::Symlink,
            _ if kind.is_fifo() => FileType::Fifo,
            _ if kind.is_char_device() => FileType::CharacterDevice,
            _ if kind.is_block_device() => FileType::BlockDevice,
            _ => FileType::Unknown,
        };
        Ok(PinnedFile { dev: metadata.dev(), ino: metadata.ino(), file_type, _held: None })
    }

    /// Whether `path` names this file now; `NotFound` if nothing is there.
    fn is_at(&self, path: &Path) -> io::Result<bool> {
        let metadata = std::fs::symlink_metadata(path)?;
        Ok(metadata.dev() == self.dev && metadata.ino() == self.ino)
    }
}

/// A kind of file that is not a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForeignKind {
    /// A regular file.
    RegularFile,
    /// A directory.
    Directory,
    /// A symbolic link (never followed).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Anything else.
    Unknown,
}

impl fmt::Display for ForeignKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForeignKind::RegularFile => "regular file",
            ForeignKind::Directory => "directory",
            ForeignKind::Symlink => "symbolic link",
            ForeignKind::Fifo => "FIFO",
            ForeignKind::CharDevice => "character device",
            ForeignKind::BlockDevice => "block device",
            ForeignKind::Unknown => "file of unknown type",
        })
    }
}

/// What a server finds at its path before binding (the table of SPEC.md section 7.1).
#[derive(Debug)]
pub enum Occupant {
    /// Nothing: the path is free.
    Vacant,
    /// A socket file that refuses connections: left over by a server that is gone.
    StaleSocket(PinnedFile),
    /// A socket file with a listener.
    LiveSocket,
    /// Something that is not a socket; never touched.
    Foreign(ForeignKind),
}

/// Why a server did not start listening at its path.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The path cannot name a socket at all.
    #[error(transparent)]
    Path(#[from] PathError),
    /// SPEC: LIFE-LIVE-1
    #[error("{path}: another server is listening there; leaving it alone")]
    Live {
        /// The socket path.
        path: PathBuf,
    },
    /// SPEC: LIFE-FOREIGN-1
    #[error("{path}: a {kind} is there, not a socket; refusing to touch it")]
    Foreign {
        /// The socket path.
        path: PathBuf,
        /// What is there.
        kind: ForeignKind,
    },
    /// SPEC: LIFE-PROBE-1
    #[error("{path}: cannot tell whether the socket there is stale (connect: {source}); leaving it alone")]
    Probe {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The path could not be examined.
    #[error("{path}: cannot inspect the path ({source})")]
    Inspect {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// SPEC: LIFE-RACE-1
    #[error("{path}: the stale socket was replaced while starting; leaving the new file alone")]
    Replaced {
        /// The socket path.
        path: PathBuf,
    },
    /// The stale socket could not be removed.
    #[error("{path}: cannot remove the stale socket ({source})")]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// SPEC: LIFE-RACE-2
    #[error("{path}: something else took the path while starting (address in use); leaving it alone")]
    Raced {
        /// The socket path.
        path: PathBuf,
    },
    /// `bind(2)` failed for another reason.
    #[error("{path}: cannot bind ({source})")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Inspects `path` without following links and probes a socket found there.
pub fn inspect(path: &Path) -> Result<Occupant, BindError> {
    let pinned = match PinnedFile::at(path) {
        Ok(pinned) => pinned,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Occupant::Vacant),
        Err(source) => return Err(BindError::Inspect { path: path.to_owned(), source }),
    };
    let kind = match pinned.file_type {
        FileType::Socket => return probe(path, pinned),
        FileType::Symlink => ForeignKind::Symlink,
        FileType::Directory => ForeignKind::Directory,
        FileType::RegularFile => ForeignKind::RegularFile,
        FileType::Fifo => ForeignKind::Fifo,
        FileType::CharacterDevice => ForeignKind::CharDevice,
        FileType::BlockDevice => ForeignKind::BlockDevice,
        FileType::Unknown => ForeignKind::Unknown,
    };
    Ok(Occupant::Foreign(kind))
}

/// Connects to a socket file to learn whether anyone listens. The connect is non-blocking so
/// that a live server with a full backlog (`EAGAIN`) cannot hang the probe: it counts as live.
fn probe(path: &Path, pinned: PinnedFile) -> Result<Occupant, BindError> {
    let probe_error = |errno: Errno| BindError::Probe { path: path.to_owned(), source: errno.into() };
    let address = SocketAddrUnix::new(path).map_err(probe_error)?;
    let socket = nonblocking_socket().map_err(probe_error)?;
    match rustix::net::connect(&socket, &address) {
        // SPEC: LIFE-LIVE-1 — closed at once (dropping `socket`), without sending a byte.
        Ok(()) | Err(Errno::AGAIN) => Ok(Occupant::LiveSocket),
        // SPEC: LIFE-STALE-1 — only "refused" proves nobody listens.
        Err(Errno::CONNREFUSED) => Ok(Occupant::StaleSocket(pinned)),
        // SPEC: LIFE-PROBE-1
        Err(errno) => Err(probe_error(errno)),
    }
}

/// A non-blocking, close-on-exec stream socket. macOS cannot create one with both flags set, so
/// there they are set right after; everywhere else in one call, with no window.
fn nonblocking_socket() -> Result<OwnedFd, Errno> {
    #[cfg(not(target_vendor = "apple"))]
    let socket = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    #[cfg(target_vendor = "apple")]
    let socket = {
        let socket = rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::empty(), None)?;
        rustix::io::fcntl_setfd(&socket, rustix::io::FdFlags::CLOEXEC)?;
        rustix::io::ioctl_fionbio(&socket, true)?;
        socket
    };
    Ok(socket)
}

/// The socket file a server created, pinned so that it removes only its own file. Dropping it
/// removes the file if it is still ours, so a server that is bound but never run leaves
/// nothing behind.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// `None` for an abstract address, which has no file.
    pinned: Option<PinnedFile>,
    removed: bool,
}

/// What [`SocketFile::remove_if_ours`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// The socket file was still ours and is gone (SPEC: LIFE-SHUT-1).
    Removed,
    /// Nothing was at the path any more.
    AlreadyGone,
    /// Another file is at the path now; it was left alone (SPEC: LIFE-SHUT-2).
    Replaced,
    /// An abstract address: there is no file (SPEC: TRN-ABSTRACT-1).
    NoFile,
}

impl SocketFile {
    /// The path as given (`@name` for an abstract address).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file at the path if it is still the socket created by `bind`.
    pub fn remove_if_ours(&mut self) -> io::Result<Removal> {
        self.removed = true;
        let Some(pinned) = &self.pinned else { return Ok(Removal::NoFile) };
        // SPEC: LIFE-SHUT-2
        match pinned.is_at(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::AlreadyGone),
            Err(e) => Err(e),
            Ok(false) => Ok(Removal::Replaced),
            Ok(true) => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Removal::AlreadyGone),
                other => other.map(|()| Removal::Removed),
            },
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove_if_ours();
        }
    }
}

/// The umask is per process; this keeps two binds in one process from interleaving their
/// umask changes.
static UMASK_LOCK: Mutex<()> = Mutex::new(());

/// Makes `path` ready and binds a listener there whose file has exactly `mode` from the moment
/// it exists (SPEC: LIFE-BIND-1, LIFE-STALE-1, LIFE-PERM-1, LIFE-PERM-2).
///
/// Other threads of this process that create files while the umask is narrowed get narrower
/// modes for those microseconds; the server binds before it starts any thread of its own.
pub fn bind(path: &Path, mode: u32) -> Result<(UnixListener, SocketFile), BindError> {
    check_path(path)?;
    if abstract_name(path).is_some() {
        return bind_abstract(path);
    }
    match inspect(path)? {
        Occupant::Vacant => {}
        Occupant::StaleSocket(probed) => remove_stale(path, &probed)?,
        Occupant::LiveSocket => return Err(BindError::Live { path: path.to_owned() }),
        Occupant::Foreign(kind) => return Err(BindError::Foreign { path: path.to_owned(), kind }),
    }
    create(path, mode)
}

/// Binds at a path believed vacant; whatever appeared there meanwhile is left alone.
fn create(path: &Path, mode: u32) -> Result<(UnixListener, SocketFile), BindError> {
    // SPEC: TRN-SOCK-1 — `UnixListener` is AF_UNIX, SOCK_STREAM, bound to a filesystem path.
    let listener = {
        let _guard = UMASK_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A mode is u32 here and u16 on the BSDs; 0o777 fits either.
        #[allow(clippy::unnecessary_cast)]
        let restrict = rustix::fs::Mode::from_bits_truncate((!mode & 0o777) as rustix::fs::RawMode);
        let previous = rustix::process::umask(restrict);
        let bound = UnixListener::bind(path);
        rustix::process::umask(previous);
        bound
    }
    .map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => BindError::Raced { path: path.to_owned() },
        _ => BindError::Bind { path: path.to_owned(), source },
    })?;
    let pinned = PinnedFile::at(path).map_err(|source| BindError::Inspect { path: path.to_owned(), source })?;
    Ok((listener, SocketFile { path: path.to_owned(), pinned: Some(pinned), removed: false }))
}

/// SPEC: TRN-ABSTRACT-1, TRN-ABSTRACT-2 — no file to inspect, protect or remove; a taken name
/// is refused.
fn bind_abstract(path: &Path) -> Result<(UnixListener, SocketFile), BindError> {
    let bound = unix_address(path).and_then(|a| UnixListener::bind_addr(&a));
    let listener = bound.map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => BindError::Live { path: path.to_owned() },
        _ => BindError::Bind { path: path.to_owned(), source },
    })?;
    Ok((listener, SocketFile { path: path.to_owned(), pinned: None, removed: true }))
}

fn remove_stale(path: &Path, probed: &PinnedFile) -> Result<(), BindError> {
    // SPEC: LIFE-RACE-1 — the file must still be the socket that refused the probe.
    match probed.is_at(path) {
        Ok(true) => {}
        Ok(false) => return Err(BindError::Replaced { path: path.to_owned() }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(BindError::Inspect { path: path.to_owned(), source }),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(BindError::RemoveStale { path: path.to_owned(), source: e })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stale_socket_at(path: &Path) {
        drop(UnixListener::bind(path).unwrap()); // std leaves the file behind: a stale socket
    }

    // SPEC: LIFE-RACE-1 — a stale socket replaced by another one between probe and removal is
    // not removed.
    #[test]
    fn replaced_stale_socket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        stale_socket_at(&path);
        let Occupant::StaleSocket(probed) = inspect(&path).unwrap() else { panic!("must be stale") };
        // No hard link keeps the old inode: only the pin stops the new socket from reusing
        // its number and passing for the old one.
        std::fs::remove_file(&path).unwrap();
        stale_socket_at(&path);
        assert!(matches!(remove_stale(&path, &probed), Err(BindError::Replaced { .. })));
        assert!(std::os::unix::fs::FileTypeExt::is_socket(&std::fs::symlink_metadata(&path).unwrap().file_type()));
    }

    // SPEC: LIFE-RACE-1 — a regular file put where the stale socket was is not removed.
    #[test]
    fn stale_socket_replaced_by_a_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        stale_socket_at(&path);
        let Occupant::StaleSocket(probed) = inspect(&path).unwrap() else { panic!("must be stale") };
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"user data").unwrap();
        assert!(matches!(remove_stale(&path, &probed), Err(BindError::Replaced { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"user data");
    }

    /// The process umask now, read under the lock so no concurrent bind is in its window.
    fn current_umask() -> rustix::fs::Mode {
        let _guard = UMASK_LOCK.lock().unwrap();
        let umask = rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o022));
        rustix::process::umask(umask);
        umask
    }

    // SPEC: LIFE-PERM-1 — binding narrows the umask only for the bind itself.
    #[test]
    fn umask_is_restored_after_bind() {
        let dir = tempfile::tempdir().unwrap();
        let before = current_umask();
        let (_listener, _file) = bind(&dir.path().join("udsocket"), 0o600).unwrap();
        assert_eq!(current_umask(), before);
    }

    // SPEC: LIFE-RACE-2 — a path taken after the stale socket was removed makes bind refuse,
    // and nothing is removed.
    #[test]
    fn path_taken_before_bind_is_refused_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        let other = UnixListener::bind(&path).unwrap();
        assert!(matches!(create(&path, 0o600), Err(BindError::Raced { .. })));
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok(), "the other listener still answers");
        drop(other);
    }
}
