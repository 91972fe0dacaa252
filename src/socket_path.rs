//! The socket file: checking a path, what may be at it, creating and removing it safely
//! (SPEC.md sections 3 and 7).
//!
//! The seed removes whatever is at its path before binding. Here a path is inspected without
//! following links and only a socket that refuses connections counts as stale. Nothing is ever
//! removed by name at the path itself: the server's socket is created in a fresh private
//! directory next to the path, checked, given its final mode and moved into place with
//! `renameat2(RENAME_NOREPLACE)` (which fails if anything is there); a file is removed from the
//! path by first renaming whatever is there into a private directory and comparing it with the
//! file the server holds; anything else is renamed back (SPEC: LIFE-RACE-1, LIFE-RACE-2,
//! LIFE-RACE-3, LIFE-SHUT-2).
//!
//! The guarantees are Linux's in full. Elsewhere (macOS, the BSDs; the split is the `linux` and
//! `portable` modules at the end) the same steps run with weaker means: no `O_PATH`, so files
//! are compared by device and inode number with no descriptor holding them (a new file given a
//! removed one's number passes for it); no `/proc/self/fd`, so the socket is bound in the private
//! directory by its real path, which must fit in the 104-byte `sun_path`; no `renameat2`, so a
//! move out of a private directory is `link` then `unlink` (a move into one is a plain
//! `rename`); no `SO_PEERCRED`, so the bound socket is recognised by the connection its listener
//! accepts; and a full backlog refuses connections (`ECONNREFUSED`), so the probe can take a live
//! server that is not accepting for a stale one. Abstract addresses are Linux-only (SPEC.md
//! section 11).
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::SocketAddrUnix;

use crate::net::{abstract_name, unix_address};

#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
use portable as platform;

/// Longest socket path in bytes: `sun_path` is 108 bytes on Linux (104 on macOS and the BSDs),
/// one of which is the NUL.
pub const MAX_PATH_BYTES: usize = platform::MAX_PATH_BYTES;

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
/// number from being given to a new file, so "the file there has these numbers" really means
/// "the file there is this one" (SPEC: LIFE-RACE-1, LIFE-SHUT-2). Outside Linux nothing holds
/// it: the numbers alone are compared.
#[derive(Debug)]
pub struct PinnedFile {
    held: platform::Held,
    dev: rustix::fs::Dev,
    ino: u64,
    file_type: FileType,
}

impl PinnedFile {
    /// Pins whatever is at `path` itself (a symbolic link is pinned, not followed).
    fn at(path: &Path) -> io::Result<PinnedFile> {
        Self::at_in(rustix::fs::CWD, path)
    }

    /// Pins the entry `name` of the directory `dir`, without following a link.
    fn at_in(dir: impl AsFd, name: impl rustix::path::Arg) -> io::Result<PinnedFile> {
        let (held, stat) = platform::hold(dir, name)?;
        Ok(PinnedFile { dev: stat.st_dev, ino: stat.st_ino, file_type: FileType::from_raw_mode(stat.st_mode), held })
    }

    /// Whether the entry `name` of `dir` is this file; `NotFound` if there is none.
    fn is_in(&self, dir: impl AsFd, name: impl rustix::path::Arg) -> io::Result<bool> {
        let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(stat.st_dev == self.dev && stat.st_ino == self.ino)
    }

    /// A path that reaches this very file, whatever has been renamed since: the descriptor's
    /// `/proc/self/fd` entry where `/proc` is mounted (Linux), else `fallback`.
    fn reach(&self, fallback: &Path) -> PathBuf {
        platform::reach(&self.held, fallback)
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
        /// What was found there.
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
    /// `lstat` of the path failed for a reason other than "nothing there".
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
    /// Moving the stale socket aside, or unlinking it there, failed.
    #[error("{path}: cannot remove the stale socket ({source})")]
    RemoveStale {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// SPEC: LIFE-RACE-2
    #[error("{path}: something else took the path while starting; leaving it alone")]
    Raced {
        /// The socket path.
        path: PathBuf,
    },
    /// Binding, pinning or placing the new socket failed.
    #[error("{path}: cannot bind ({source})")]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// SPEC: LIFE-RACE-3 — a foreign file was moved aside and could not be put back.
    #[error("{path}: {source}")]
    Stranded {
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

/// Connects to the pinned socket file (through its descriptor, so the answer is about that
/// file even if the path changed meanwhile) to learn whether anyone listens. The connect is
/// non-blocking so that a live server with a full backlog (`EAGAIN`) cannot hang the probe: it
/// counts as live.
fn probe(path: &Path, pinned: PinnedFile) -> Result<Occupant, BindError> {
    let probe_error = |errno: Errno| BindError::Probe { path: path.to_owned(), source: errno.into() };
    match connect_nonblocking(&pinned.reach(path)).map_err(probe_error)? {
        // SPEC: LIFE-LIVE-1 — closed at once (dropped), without sending a byte.
        Ok(_) | Err(Errno::AGAIN) => Ok(Occupant::LiveSocket),
        // SPEC: LIFE-STALE-1 — only "refused" proves nobody listens.
        Err(Errno::CONNREFUSED) => Ok(Occupant::StaleSocket(pinned)),
        // SPEC: LIFE-PROBE-1
        Err(errno) => Err(probe_error(errno)),
    }
}

/// A non-blocking connect: the outer error is about making the socket, the inner one is the
/// connect's own answer.
fn connect_nonblocking(path: &Path) -> Result<Result<OwnedFd, Errno>, Errno> {
    let address = SocketAddrUnix::new(path)?;
    let socket = crate::net::nonblocking_socket()?;
    Ok(rustix::net::connect(&socket, &address).map(|()| socket))
}

/// A path split into the directory that holds it (pinned by a descriptor) and its name there,
/// so that every rename and comparison is about one directory even if its name changes.
#[derive(Debug)]
struct Place {
    path: PathBuf,
    parent: OwnedFd,
    name: OsString,
}

impl Place {
    fn of(path: &Path) -> io::Result<Place> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path does not end in a file name"))?;
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let parent =
            rustix::fs::open(parent, platform::DIR_FLAGS | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Place { path: path.to_owned(), parent, name: name.to_owned() })
    }
}

/// A directory the server creates next to its path (so renames between them stay on one
/// filesystem), mode 0700, under a fresh name: nobody else can reach what is inside it.
#[derive(Debug)]
struct PrivateDir {
    fd: OwnedFd,
    name: OsString,
    /// Its path, for messages and for systems without `/proc`.
    path: PathBuf,
}

/// The name of the server's socket inside its private directory, and of a file moved aside.
const BOUND: &str = "socket";
const ASIDE: &str = "aside";

impl PrivateDir {
    fn create(place: &Place) -> io::Result<PrivateDir> {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        loop {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let mut name = OsString::from(".");
            name.push(&place.name);
            name.push(format!(
                ".udsping-{}-{}-{}",
                std::process::id(),
                SEQUENCE.fetch_add(1, Ordering::Relaxed),
                nanos.subsec_nanos()
            ));
            match rustix::fs::mkdirat(&place.parent, &*name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(Errno::EXIST) => continue,
                Err(errno) => return Err(errno.into()),
            }
            let path = place.path.with_file_name(&name);
            let opened = rustix::fs::openat(
                &place.parent,
                &*name,
                platform::DIR_FLAGS | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            let fd = match opened {
                Ok(fd) => fd,
                Err(errno) => {
                    let _ = rustix::fs::unlinkat(&place.parent, &*name, AtFlags::REMOVEDIR);
                    return Err(errno.into());
                }
            };
            // Between `mkdirat` and `openat` another user who may write the parent could have
            // put a directory of their own under this name: only one owned by this user and
            // closed to everyone else is private. (Not removed: it is not ours.)
            let stat = rustix::fs::fstat(&fd)?;
            if stat.st_uid != rustix::process::geteuid().as_raw() || stat.st_mode & 0o077 != 0 {
                return Err(io::Error::other(format!("{} was replaced by another directory", path.display())));
            }
            return Ok(PrivateDir { fd, name, path });
        }
    }

    /// Removes the directory if it is empty and still the one created; a directory holding a
    /// file that could not be put back stays, and its path is in the error that said so.
    fn remove(self, place: &Place) {
        let ours = rustix::fs::fstat(&self.fd)
            .and_then(|mine| {
                rustix::fs::statat(&place.parent, &*self.name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|there| (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino))
            })
            .unwrap_or(false);
        if ours {
            let _ = rustix::fs::unlinkat(&place.parent, &*self.name, AtFlags::REMOVEDIR);
        }
    }
}

/// Renames `from` in `from_dir` to `to` in `to_dir` only if nothing is at `to`, with
/// `renameat2(RENAME_NOREPLACE)` on Linux. Filesystems without it (`EINVAL`), and systems
/// without `renameat2`, get the same guarantee from `link`, which never replaces, followed by
/// removing the old name (outside Linux only ever a name in a private directory).
fn rename_noreplace(from_dir: &OwnedFd, from: &OsStr, to_dir: &OwnedFd, to: &OsStr) -> Result<(), Errno> {
    platform::rename_noreplace(from_dir, from, to_dir, to)
}

/// `link` (which never replaces), then `unlink` of the old name.
fn link_unlink(from_dir: &OwnedFd, from: &OsStr, to_dir: &OwnedFd, to: &OsStr) -> Result<(), Errno> {
    rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty())?;
    rustix::fs::unlinkat(from_dir, from, AtFlags::empty())
}

/// Why [`remove_if`] did not finish.
#[derive(Debug, thiserror::Error)]
enum RemoveError {
    #[error(transparent)]
    Io(#[from] io::Error),
    /// SPEC: LIFE-RACE-3 — left where it is, and said where.
    #[error("another file had taken the socket's place and could not be put back ({source}); it is now at {at}")]
    Stranded { at: PathBuf, source: io::Error },
}

/// Removes the file at `place` if it is `expected`, without ever removing anything else, under
/// any interleaving of other processes' renames (SPEC: LIFE-RACE-1, LIFE-RACE-3, LIFE-SHUT-2):
/// whatever is at the path is first renamed into `private`, where nobody else can reach it,
/// then compared with the held file. Ours is unlinked; anything else is renamed back unless the
/// path was taken meanwhile, in which case it stays in `private` and the error names it.
fn remove_if(place: &Place, expected: &PinnedFile, private: &PrivateDir) -> Result<Removal, RemoveError> {
    match platform::move_aside(&place.parent, &place.name, &private.fd, OsStr::new(ASIDE)) {
        Ok(()) => settle(place, expected, private),
        Err(Errno::NOENT) => Ok(Removal::AlreadyGone),
        Err(errno) => Err(io::Error::from(errno).into()),
    }
}

/// The second half of [`remove_if`]: the file taken from the path is in `private`.
fn settle(place: &Place, expected: &PinnedFile, private: &PrivateDir) -> Result<Removal, RemoveError> {
    // A file whose identity cannot be read is not known to be ours: it goes back.
    if expected.is_in(&private.fd, ASIDE).unwrap_or(false) {
        rustix::fs::unlinkat(&private.fd, ASIDE, AtFlags::empty()).map_err(io::Error::from)?;
        return Ok(Removal::Removed);
    }
    match rename_noreplace(&private.fd, OsStr::new(ASIDE), &place.parent, &place.name) {
        Ok(()) => Ok(Removal::Replaced),
        Err(errno) => Err(RemoveError::Stranded { at: private.path.join(ASIDE), source: errno.into() }),
    }
}

/// The socket file a server created, pinned so that it removes only its own file. Dropping it
/// removes the file if it is still ours, so a server that is bound but never run leaves
/// nothing behind.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    /// `None` for an abstract address, which has no file.
    placed: Option<(Place, PinnedFile)>,
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

    /// Removes the file at the path if it is still the socket created by `bind`; anything else
    /// there is left (or put back) where it was (SPEC: LIFE-SHUT-2).
    pub fn remove_if_ours(&mut self) -> io::Result<Removal> {
        self.removed = true;
        let Some((place, pinned)) = &self.placed else { return Ok(Removal::NoFile) };
        // SPEC: LIFE-SHUT-2
        let private = PrivateDir::create(place)?;
        let removal = remove_if(place, pinned, &private);
        private.remove(place);
        removal.map_err(|e| match e {
            RemoveError::Io(e) => e,
            stranded => io::Error::other(stranded.to_string()),
        })
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove_if_ours();
        }
    }
}

/// Makes `path` ready and binds a listener there whose file has exactly `mode` from the moment
/// it appears at the path (SPEC: LIFE-BIND-1, LIFE-STALE-1, LIFE-PERM-1, LIFE-PERM-2). The
/// listener is returned non-blocking.
pub fn bind(path: &Path, mode: u32) -> Result<(UnixListener, SocketFile), BindError> {
    check_path(path)?;
    if abstract_name(path).is_some() {
        return bind_abstract(path);
    }
    let stale = match inspect(path)? {
        Occupant::Vacant => None,
        Occupant::StaleSocket(probed) => Some(probed),
        Occupant::LiveSocket => return Err(BindError::Live { path: path.to_owned() }),
        Occupant::Foreign(kind) => return Err(BindError::Foreign { path: path.to_owned(), kind }),
    };
    create(path, mode, stale.as_ref())
}

/// Creates the socket file at `path`, removing `stale` first if it is given.
fn create(path: &Path, mode: u32, stale: Option<&PinnedFile>) -> Result<(UnixListener, SocketFile), BindError> {
    let bind_error = |source: io::Error| BindError::Bind { path: path.to_owned(), source };
    let place = Place::of(path).map_err(bind_error)?;
    let private = PrivateDir::create(&place).map_err(bind_error)?;
    let placed = place_socket(&place, &private, mode, stale);
    if placed.is_err() {
        // SPEC: LIFE-BIND-2 — a start that fails removes what it created. Only this process
        // has ever reached the private directory; a bound socket still in it is ours.
        let _ = rustix::fs::unlinkat(&private.fd, BOUND, AtFlags::empty());
    }
    private.remove(&place);
    let (listener, pinned) = placed?;
    Ok((listener, SocketFile { path: path.to_owned(), placed: Some((place, pinned)), removed: false }))
}

/// SPEC: LIFE-RACE-1, LIFE-STALE-1 — removes the probed stale socket, and only it.
fn remove_stale(place: &Place, probed: &PinnedFile, private: &PrivateDir) -> Result<(), BindError> {
    let path = &place.path;
    match remove_if(place, probed, private) {
        Ok(Removal::Removed | Removal::AlreadyGone | Removal::NoFile) => Ok(()),
        Ok(Removal::Replaced) => Err(BindError::Replaced { path: path.to_owned() }),
        Err(RemoveError::Io(source)) => Err(BindError::RemoveStale { path: path.to_owned(), source }),
        Err(stranded) => {
            Err(BindError::Stranded { path: path.to_owned(), source: io::Error::other(stranded.to_string()) })
        }
    }
}

/// Binds in `private`, checks and pins the new socket file, gives it its mode, removes the stale
/// socket if there is one, and moves the new file to the path unless something is there.
fn place_socket(
    place: &Place,
    private: &PrivateDir,
    mode: u32,
    stale: Option<&PinnedFile>,
) -> Result<(UnixListener, PinnedFile), BindError> {
    let path = &place.path;
    let bind_error = |source: io::Error| BindError::Bind { path: path.to_owned(), source };
    // SPEC: TRN-SOCK-1 — `UnixListener` is AF_UNIX, SOCK_STREAM, bound to a filesystem path.
    let listener = UnixListener::bind(platform::entry(private, BOUND).map_err(bind_error)?).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let pinned = PinnedFile::at_in(&private.fd, BOUND).map_err(bind_error)?;
    let reach = pinned.reach(&private.path.join(BOUND));
    // Owner read and write while the file is reachable by nobody else, so that the check
    // below can connect whatever the final mode is.
    rustix::fs::chmod(&reach, Mode::from_raw_mode(0o600)).map_err(|e| bind_error(e.into()))?;
    if !is_listener_of(&listener, &reach).map_err(bind_error)? {
        return Err(bind_error(io::Error::other("the socket bound in the private directory is not the one pinned")));
    }
    // SPEC: LIFE-PERM-1, LIFE-PERM-2 — the final mode is set before the file can be reached at
    // the path, so it is never wider there.
    std::fs::set_permissions(&reach, std::fs::Permissions::from_mode(mode)).map_err(bind_error)?;
    if let Some(probed) = stale {
        remove_stale(place, probed, private)?;
    }
    // SPEC: LIFE-RACE-2 — the file appears at the path only if nothing is there.
    match rename_noreplace(&private.fd, OsStr::new(BOUND), &place.parent, &place.name) {
        Ok(()) => Ok((listener, pinned)),
        Err(Errno::EXIST) => Err(BindError::Raced { path: path.to_owned() }),
        Err(errno) => Err(bind_error(errno.into())),
    }
}

/// Whether connecting to `reach` arrives at `listener` (from this very process, where the
/// kernel says who connected): the pinned file is the socket that was bound, not something put
/// in its place before it was pinned. An error says the check itself could not be made (out of
/// descriptors, say).
fn is_listener_of(listener: &UnixListener, reach: &Path) -> io::Result<bool> {
    match connect_nonblocking(reach)? {
        Ok(_connection) => {}
        // Not a socket that listens, or not one this process may reach: not ours.
        Err(Errno::CONNREFUSED | Errno::NOTSOCK | Errno::PROTOTYPE | Errno::AGAIN) => return Ok(false),
        Err(errno) => return Err(errno.into()),
    }
    match listener.accept() {
        Ok((accepted, _)) => platform::connected_from_this_process(&accepted),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// SPEC: TRN-ABSTRACT-1, TRN-ABSTRACT-2 — no file to inspect, protect or remove; a taken name
/// is refused.
fn bind_abstract(path: &Path) -> Result<(UnixListener, SocketFile), BindError> {
    let bound = unix_address(path).and_then(|a| UnixListener::bind_addr(&a));
    let listener = bound.map_err(|source| match source.kind() {
        io::ErrorKind::AddrInUse => BindError::Live { path: path.to_owned() },
        _ => BindError::Bind { path: path.to_owned(), source },
    })?;
    listener.set_nonblocking(true).map_err(|source| BindError::Bind { path: path.to_owned(), source })?;
    Ok((listener, SocketFile { path: path.to_owned(), placed: None, removed: true }))
}

/// What differs on Linux: `O_PATH` pins, `/proc/self/fd` paths, `renameat2` and `SO_PEERCRED`.
#[cfg(target_os = "linux")]
mod linux {
    use std::ffi::OsStr;
    use std::io;
    use std::os::fd::{AsFd, AsRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};

    use rustix::fs::{Mode, OFlags, RenameFlags, Stat};
    use rustix::io::Errno;

    use super::{link_unlink, PrivateDir};

    pub(super) const MAX_PATH_BYTES: usize = 107;

    /// The descriptor that pins a file.
    pub(super) type Held = OwnedFd;

    /// Opens the directory itself, without read permission being needed.
    pub(super) const DIR_FLAGS: OFlags = OFlags::PATH;

    /// Pins the entry `name` of `dir` with an `O_PATH` descriptor, without following a link.
    pub(super) fn hold(dir: impl AsFd, name: impl rustix::path::Arg) -> io::Result<(Held, Stat)> {
        let held = rustix::fs::openat(dir, name, OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?;
        let stat = rustix::fs::fstat(&held)?;
        Ok((held, stat))
    }

    pub(super) fn reach(held: &Held, fallback: &Path) -> PathBuf {
        proc_fd_path(held).unwrap_or_else(|| fallback.to_owned())
    }

    /// `/proc/self/fd/N` for a descriptor, if `/proc` is mounted. It is short whatever the file's
    /// real path, so a socket in a private directory next to a 107-byte path can still be bound.
    fn proc_fd_path(fd: &impl AsRawFd) -> Option<PathBuf> {
        let path = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        path.exists().then_some(path)
    }

    /// A path to the entry `name` of `private`: through `/proc/self/fd` (short, and immune to
    /// the directory being renamed) where it is mounted.
    pub(super) fn entry(private: &PrivateDir, name: &str) -> io::Result<PathBuf> {
        Ok(proc_fd_path(&private.fd).unwrap_or_else(|| private.path.clone()).join(name))
    }

    /// Whether the peer of `accepted` is this process (`SO_PEERCRED`).
    pub(super) fn connected_from_this_process(accepted: &UnixStream) -> io::Result<bool> {
        Ok(rustix::net::sockopt::socket_peercred(accepted)?.pid == rustix::process::getpid())
    }

    pub(super) fn rename_noreplace(
        from_dir: &OwnedFd,
        from: &OsStr,
        to_dir: &OwnedFd,
        to: &OsStr,
    ) -> Result<(), Errno> {
        match rustix::fs::renameat_with(from_dir, from, to_dir, to, RenameFlags::NOREPLACE) {
            Err(Errno::INVAL) => link_unlink(from_dir, from, to_dir, to),
            other => other,
        }
    }

    /// Moves whatever is at `from` to `to`, a name in a private directory where nothing is.
    pub(super) fn move_aside(from_dir: &OwnedFd, from: &OsStr, to_dir: &OwnedFd, to: &OsStr) -> Result<(), Errno> {
        rename_noreplace(from_dir, from, to_dir, to)
    }
}

/// What differs elsewhere (macOS, the BSDs): no `O_PATH`, no `/proc/self/fd`, no `renameat2`
/// (`link` and `unlink` instead), no `SO_PEERCRED`.
#[cfg(not(target_os = "linux"))]
mod portable {
    use std::ffi::OsStr;
    use std::io;
    use std::os::fd::{AsFd, OwnedFd};
    use std::os::unix::net::UnixStream;
    use std::path::{Path, PathBuf};

    use rustix::fs::{AtFlags, OFlags, Stat};
    use rustix::io::Errno;

    use super::{link_unlink, PrivateDir};

    /// `sun_path` is 104 bytes on macOS and the BSDs.
    pub(super) const MAX_PATH_BYTES: usize = 103;

    /// Nothing holds a pinned file: its device and inode number are all there is.
    pub(super) type Held = ();

    /// Directories (the path's parent, the private directory) are opened for reading: without
    /// `O_PATH`, the parent must be readable.
    pub(super) const DIR_FLAGS: OFlags = OFlags::RDONLY;

    /// The device and inode number of the entry `name` of `dir`, without following a link.
    pub(super) fn hold(dir: impl AsFd, name: impl rustix::path::Arg) -> io::Result<(Held, Stat)> {
        Ok(((), rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?))
    }

    pub(super) fn reach(_held: &Held, fallback: &Path) -> PathBuf {
        fallback.to_owned()
    }

    /// A path to the entry `name` of `private`: its real path, there being no `/proc/self/fd`,
    /// so the socket path must leave room in `sun_path` for the private directory's name.
    pub(super) fn entry(private: &PrivateDir, name: &str) -> io::Result<PathBuf> {
        let entry = private.path.join(name);
        let len = entry.as_os_str().len();
        if len > MAX_PATH_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "outside Linux the socket is bound in a private directory next to the path, and {} is {len} \
                     bytes, more than a Unix socket path holds ({MAX_PATH_BYTES}); choose a shorter path",
                    entry.display()
                ),
            ));
        }
        Ok(entry)
    }

    /// Without peer credentials, a connection accepted at once is taken for this process's own:
    /// the socket is still in the private directory, which only this process reaches.
    pub(super) fn connected_from_this_process(_accepted: &UnixStream) -> io::Result<bool> {
        Ok(true)
    }

    pub(super) fn rename_noreplace(
        from_dir: &OwnedFd,
        from: &OsStr,
        to_dir: &OwnedFd,
        to: &OsStr,
    ) -> Result<(), Errno> {
        link_unlink(from_dir, from, to_dir, to)
    }

    /// Moves whatever is at `from` to `to`, a name in a private directory where nothing is: a
    /// plain `rename`, atomic, since nothing there can be replaced (`link` and `unlink` of a public
    /// name could unlink a file put there in between).
    pub(super) fn move_aside(from_dir: &OwnedFd, from: &OsStr, to_dir: &OwnedFd, to: &OsStr) -> Result<(), Errno> {
        rustix::fs::renameat(from_dir, from, to_dir, to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stale_socket_at(path: &Path) {
        drop(UnixListener::bind(path).unwrap()); // std leaves the file behind: a stale socket
    }

    /// Entries of `dir`, sorted: shows no private directory was left behind.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    fn remove_at(path: &Path, expected: &PinnedFile) -> Result<Removal, RemoveError> {
        let place = Place::of(path).unwrap();
        let private = PrivateDir::create(&place).unwrap();
        let removal = remove_if(&place, expected, &private);
        private.remove(&place);
        removal
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
        assert!(matches!(remove_at(&path, &probed), Ok(Removal::Replaced)));
        assert!(std::os::unix::fs::FileTypeExt::is_socket(&std::fs::symlink_metadata(&path).unwrap().file_type()));
        assert_eq!(names(dir.path()), ["udsocket"]);
    }

    // SPEC: LIFE-RACE-1 — a regular file put where the stale socket was is put back, not removed.
    #[test]
    fn stale_socket_replaced_by_a_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        stale_socket_at(&path);
        let Occupant::StaleSocket(probed) = inspect(&path).unwrap() else { panic!("must be stale") };
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"user data").unwrap();
        assert!(matches!(remove_at(&path, &probed), Ok(Removal::Replaced)));
        assert_eq!(std::fs::read(&path).unwrap(), b"user data");
        assert_eq!(names(dir.path()), ["udsocket"]);
    }

    // SPEC: LIFE-RACE-1 — the probed socket itself is removed, and so is the private directory.
    #[test]
    fn the_probed_stale_socket_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        stale_socket_at(&path);
        let Occupant::StaleSocket(probed) = inspect(&path).unwrap() else { panic!("must be stale") };
        assert!(matches!(remove_at(&path, &probed), Ok(Removal::Removed)));
        assert!(matches!(remove_at(&path, &probed), Ok(Removal::AlreadyGone)));
        assert!(names(dir.path()).is_empty());
    }

    // SPEC: LIFE-RACE-3 — a foreign file that was moved aside while the path was taken again is
    // left in the private directory, never removed, and the error says where it is.
    #[test]
    fn a_file_that_cannot_be_put_back_is_kept_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        stale_socket_at(&path);
        let Occupant::StaleSocket(probed) = inspect(&path).unwrap() else { panic!("must be stale") };
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"user data").unwrap();
        let place = Place::of(&path).unwrap();
        let private = PrivateDir::create(&place).unwrap();
        // The first half of `remove_if`; then the path is taken before the file can go back.
        rename_noreplace(&place.parent, &place.name, &private.fd, OsStr::new(ASIDE)).unwrap();
        std::fs::write(&path, b"newer file").unwrap();
        let error = settle(&place, &probed, &private).unwrap_err();
        let aside = private.path.join(ASIDE);
        assert!(matches!(&error, RemoveError::Stranded { at, .. } if *at == aside), "{error}");
        assert!(error.to_string().contains(&aside.display().to_string()), "{error}");
        assert_eq!(std::fs::read(&aside).unwrap(), b"user data");
        assert_eq!(std::fs::read(&path).unwrap(), b"newer file");
        private.remove(&place);
        assert!(aside.exists(), "a directory holding a foreign file stays");
    }

    // SPEC: LIFE-RACE-2, LIFE-BIND-2 — a path taken after the stale socket was removed makes
    // bind refuse; nothing is removed, and the refused bind leaves nothing of its own behind.
    #[test]
    fn path_taken_before_bind_is_refused_not_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        let other = UnixListener::bind(&path).unwrap();
        assert!(matches!(create(&path, 0o600, None), Err(BindError::Raced { .. })));
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok(), "the other listener still answers");
        assert_eq!(names(dir.path()), ["udsocket"]);
        drop(other);
    }

    // SPEC: LIFE-PERM-1 — the file has its final mode when it appears, and the private
    // directory is gone.
    #[test]
    fn bound_file_has_its_mode_and_no_private_directory_remains() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udsocket");
        let (_listener, mut file) = bind(&path, 0o640).unwrap();
        assert_eq!(std::fs::symlink_metadata(&path).unwrap().permissions().mode() & 0o777, 0o640);
        assert_eq!(names(dir.path()), ["udsocket"]);
        assert_eq!(file.remove_if_ours().unwrap(), Removal::Removed);
        assert!(names(dir.path()).is_empty());
    }
}
