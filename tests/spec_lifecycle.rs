//! SPEC.md sections 3 and 7 against the library: what may be at the path, stale sockets,
//! permissions, shutdown. (The same rules through the command line are in `cli.rs`.)

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;

use common::*;
use rstest::rstest;
use udsping::client::{self, ClientConfig};
use udsping::server::{Server, ServerConfig};
use udsping::socket_path::{BindError, ForeignKind, PathError, Removal, MAX_PATH_BYTES};

fn bind_at(path: &Path) -> Result<Server, BindError> {
    Server::bind(ServerConfig::new(path))
}

/// Everything under `dir`, with each file's kind and content, to show nothing was touched.
fn snapshot(dir: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut entries: Vec<_> = walk(dir).into_iter().collect();
    entries.sort();
    entries
}

fn walk(dir: &Path) -> Vec<(String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let name = path.display().to_string();
        if meta.file_type().is_symlink() {
            out.push((name, "link".into(), std::fs::read_link(&path).unwrap().into_os_string().into_encoded_bytes()));
        } else if meta.is_dir() {
            out.push((name, "dir".into(), Vec::new()));
            out.extend(walk(&path));
        } else if meta.is_file() {
            out.push((name, "file".into(), std::fs::read(&path).unwrap()));
        } else {
            out.push((name, format!("other ino {}", meta.ino()), Vec::new()));
        }
    }
    out
}

// SPEC: LIFE-BIND-1, TRN-SOCK-1
#[test]
fn vacant_path_is_bound_and_served() {
    let server = TestServer::start();
    assert!(std::fs::symlink_metadata(&server.path).unwrap().file_type().is_socket());
    let summary = client::run(&ClientConfig { rounds: 5, ..ClientConfig::new(&server.path) }).unwrap();
    assert_eq!(summary.rounds, 5);
}

// SPEC: LIFE-STALE-1
#[test]
fn stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    drop(UnixListener::bind(&path).unwrap()); // the file outlives its listener: stale
    let server = bind_at(&path).expect("a stale socket must not stop the server");
    assert!(UnixStream::connect(&path).is_ok(), "the new socket listens");
    drop(server);
}

// SPEC: LIFE-LIVE-1 — the second server refuses; the first keeps its file and keeps answering.
#[test]
fn live_server_is_left_alone() {
    let first = TestServer::start();
    let ino = std::fs::symlink_metadata(&first.path).unwrap().ino();
    let refused = bind_at(&first.path).err().expect("the second server must refuse");
    assert!(matches!(refused, BindError::Live { .. }), "{refused}");
    assert!(refused.to_string().contains("another server is listening"), "{refused}");
    assert_eq!(std::fs::symlink_metadata(&first.path).unwrap().ino(), ino);
    client::run(&ClientConfig { rounds: 3, ..ClientConfig::new(&first.path) }).expect("first server still answers");
}

/// Puts something that is not a socket at `path`.
fn occupy(kind: &str, path: &Path) {
    let dir = path.parent().unwrap();
    match kind {
        "regular file" => std::fs::write(path, b"precious user data\n").unwrap(),
        "empty file" => std::fs::write(path, b"").unwrap(),
        "directory" => {
            std::fs::create_dir(path).unwrap();
            std::fs::write(path.join("inside"), b"also precious").unwrap();
        }
        "symlink to file" => {
            std::fs::write(dir.join("target"), b"target data").unwrap();
            std::os::unix::fs::symlink(dir.join("target"), path).unwrap();
        }
        "symlink to stale socket" => {
            drop(UnixListener::bind(dir.join("real.sock")).unwrap());
            std::os::unix::fs::symlink(dir.join("real.sock"), path).unwrap();
        }
        "dangling symlink" => std::os::unix::fs::symlink(dir.join("nowhere"), path).unwrap(),
        "fifo" => rustix::fs::mknodat(rustix::fs::CWD, path, rustix::fs::FileType::Fifo, 0o600.into(), 0).unwrap(),
        other => unreachable!("{other}"),
    }
}

// SPEC: LIFE-FOREIGN-1 — refused, named in the message, and left exactly as it was.
#[rstest]
#[case("regular file", ForeignKind::RegularFile)]
#[case("empty file", ForeignKind::RegularFile)]
#[case("directory", ForeignKind::Directory)]
#[case("symlink to file", ForeignKind::Symlink)]
#[case("symlink to stale socket", ForeignKind::Symlink)]
#[case("dangling symlink", ForeignKind::Symlink)]
#[case("fifo", ForeignKind::Fifo)]
fn foreign_file_is_refused_and_untouched(#[case] what: &str, #[case] kind: ForeignKind) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    occupy(what, &path);
    let before = snapshot(dir.path());
    let refused = bind_at(&path).err().expect("must refuse");
    assert!(matches!(refused, BindError::Foreign { kind: k, .. } if k == kind), "{refused}");
    assert!(refused.to_string().contains(&kind.to_string()), "{refused}");
    assert_eq!(snapshot(dir.path()), before);
}

// SPEC: LIFE-PROBE-1 — a socket that answers connect with something other than "refused"
// (here a datagram socket: EPROTOTYPE) is not proven stale, so it stays.
#[test]
fn unprovable_socket_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("udsocket");
    let datagram = UnixDatagram::bind(&path).unwrap();
    let refused = bind_at(&path).err().expect("must refuse");
    assert!(matches!(refused, BindError::Probe { .. }), "{refused}");
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    drop(datagram);
}

// SPEC: TRN-PATH-2 — the longest path that fits works; one byte more is refused, for the
// server and the client alike, and nothing is created.
#[test]
fn path_length_limit_is_exact_and_never_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("");
    let name_len = MAX_PATH_BYTES - base.as_os_str().len();
    let fits = base.join("s".repeat(name_len));
    let too_long = base.join("s".repeat(name_len + 1));
    assert_eq!(fits.as_os_str().len(), MAX_PATH_BYTES);

    let server = bind_at(&fits).expect("a path of exactly the maximum length binds");
    drop(server);
    let refused = bind_at(&too_long).err().expect("one byte more is refused");
    assert!(
        matches!(refused, BindError::Path(PathError::TooLong { len, .. }) if len == MAX_PATH_BYTES + 1),
        "{refused}"
    );
    assert!(refused.to_string().contains("never truncated"), "{refused}");
    let client_error = client::run(&ClientConfig::new(&too_long)).unwrap_err();
    assert!(client_error.to_string().contains(&format!("{} bytes", MAX_PATH_BYTES + 1)), "{client_error}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing may be created");
}

// SPEC: LIFE-PERM-1, LIFE-PERM-2 — the mode is set at creation.
#[rstest]
#[case(None, 0o600)]
#[case(Some(0o660), 0o660)]
#[case(Some(0o666), 0o666)]
#[case(Some(0o000), 0o000)]
fn socket_file_mode(#[case] configured: Option<u32>, #[case] expected: u32) {
    let server = TestServer::start_with(|config| {
        if let Some(mode) = configured {
            config.mode = mode;
        }
    });
    let mode = std::fs::symlink_metadata(&server.path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, expected, "mode {mode:o}");
}

// SPEC: LIFE-SHUT-1 — shutdown closes open connections and removes the socket file.
#[test]
fn shutdown_closes_connections_and_removes_the_file() {
    let mut server = TestServer::start();
    let path = server.path.clone();
    let mut idle = connect(&path);
    assert!(wait_until(DEADLINE, || server.stats().accepted == 1));
    let stats = server.stop();
    assert_eq!(stats.socket_file, Some(Removal::Removed));
    assert!(!path.exists());
    assert!(read_to_close(&mut idle, DEADLINE).closed, "the idle connection must be closed");
}

// SPEC: LIFE-SHUT-2 — a file that replaced the socket is left alone on shutdown.
#[test]
fn shutdown_leaves_a_replacement_alone() {
    let mut server = TestServer::start();
    let path = server.path.clone();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"someone else's file").unwrap();
    let stats = server.stop();
    assert_eq!(stats.socket_file, Some(Removal::Replaced));
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's file");
}

// SPEC: LIFE-SHUT-2 — likewise another server's socket that took the path.
#[test]
fn shutdown_leaves_another_servers_socket_alone() {
    let mut server = TestServer::start();
    let path = server.path.clone();
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    assert_eq!(server.stop().socket_file, Some(Removal::Replaced));
    assert!(UnixStream::connect(&path).is_ok(), "the other server's socket still answers");
    drop(other);
}
