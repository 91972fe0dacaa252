//! Shared test support: servers and child processes that clean up after themselves, bounded
//! waits and raw conversations over a socket. The model of SPEC.md's grammar the tests judge
//! by is the library's one (`udsping::proto::grammar`), shared with the gate and the fuzzers.
#![allow(dead_code)] // each test crate uses part of it

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use udsping::server::{Server, ServerConfig, ShutdownHandle, Stats, StatsHandle};

/// The seed's Python programs, from the blog post.
pub const SEED_CLIENT: &str = udsping::seed::CLIENT_PY;
pub const SEED_SERVER: &str = udsping::seed::SERVER_PY;

/// Generous bound for anything a test waits for; only a broken implementation reaches it.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `condition` until it holds or `limit` passes; returns whether it held (the gate's
/// own bounded poll).
pub fn wait_until(limit: Duration, condition: impl FnMut() -> bool) -> bool {
    udsping::conform::poll_until(limit, condition)
}

/// A reference server on its own thread in its own temporary directory, stopped on drop.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    stop: ShutdownHandle,
    live: StatsHandle,
    thread: Option<JoinHandle<io::Result<Stats>>>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    pub fn start_with(configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("udsocket");
        let mut config = ServerConfig::new(&path);
        configure(&mut config);
        let server = Server::bind(config).expect("bind the reference server");
        let (stop, live) = (server.shutdown_handle(), server.stats());
        let thread = Some(thread::spawn(move || server.run()));
        TestServer { dir, path, stop, live, thread }
    }

    pub fn stats(&self) -> Stats {
        self.live.snapshot()
    }

    /// Waits until `count` connections were accepted and none is open any more (each ended or
    /// was refused).
    pub fn wait_for_ended(&self, count: u64) -> Stats {
        let ok = wait_until(DEADLINE, || {
            let s = self.stats();
            s.accepted >= count && s.open() == 0
        });
        let stats = self.stats();
        assert!(ok, "server did not account for {count} ended connections in time: {stats:?}");
        stats
    }

    /// Stops the server and returns its final counts; the directory stays until the guard goes.
    pub fn stop(&mut self) -> Stats {
        self.stop.shutdown();
        self.thread.take().expect("server already stopped").join().expect("server thread").expect("server run")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.shutdown();
            let _ = thread.join();
        }
    }
}

/// A child process that is killed and reaped when the guard goes, even if the test failed.
pub struct ChildGuard(pub Option<Child>);

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        ChildGuard(Some(child))
    }

    pub fn pid(&self) -> i32 {
        self.0.as_ref().unwrap().id() as i32
    }

    /// Waits (bounded) for the child to exit by itself and returns its status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = self.0.as_mut().unwrap();
        let mut status = None;
        let exited = wait_until(limit, || {
            status = child.try_wait().expect("try_wait");
            status.is_some()
        });
        assert!(exited, "child {} did not exit within {limit:?}", child.id());
        status.unwrap()
    }

    pub fn signal(&self, signal: i32) {
        let pid = rustix::process::Pid::from_raw(self.pid()).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::from_named_raw(signal).unwrap()).unwrap();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until something accepts connections at `path`.
pub fn wait_for_listener(path: &Path) {
    assert!(wait_until(DEADLINE, || UnixStream::connect(path).is_ok()), "nothing listens at {}", path.display());
}

/// Makes SIGINT and SIGQUIT act as their defaults here, so that targets started from this test
/// process get them at their defaults too. A shell starts a background job with both ignored,
/// and an ignored signal stays ignored across exec: the seed's Python server then never sees
/// the gate's SIGINT. `udsping conform` itself handles them (its targets get the defaults at
/// exec); a test that runs the gate in-process must do the same.
pub fn interrupts_at_default_for_targets() {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGQUIT] {
        let always = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        signal_hook::flag::register_conditional_default(signal, always).expect("a signal handler");
    }
}

/// `udsping serve --socket PATH EXTRA...` as a child with the given stdout and stderr, killed
/// and reaped by its guard, returned once it listens.
pub fn spawn_serve(
    path: &Path,
    extra: &[&str],
    stdout: std::process::Stdio,
    stderr: std::process::Stdio,
) -> ChildGuard {
    use assert_cmd::cargo::CommandCargoExt as _;
    let child = std::process::Command::cargo_bin("udsping")
        .expect("the udsping binary")
        .arg("serve")
        .arg("--socket")
        .arg(path)
        .args(extra)
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start udsping serve");
    let guard = ChildGuard::new(child);
    wait_for_listener(path);
    guard
}

/// Connects with bounded reads and writes, so a broken server fails a test instead of hanging it.
pub fn connect(path: &Path) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connect to the server");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    stream
}

/// What a raw conversation saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Heard {
    pub bytes: Vec<u8>,
    /// The server closed the connection (EOF or reset after its last byte, SPEC: WIRE-CLOSE-1).
    pub closed: bool,
}

/// Reads until the server closes or `limit` passes.
pub fn read_to_close(stream: &mut UnixStream, limit: Duration) -> Heard {
    let deadline = Instant::now() + limit;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Heard { bytes, closed: false };
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return Heard { bytes, closed: true },
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Heard { bytes, closed: true },
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Heard { bytes, closed: false }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Reads exactly `n` bytes (or fewer if the server closes first), bounded by `DEADLINE`.
pub fn read_exactly(stream: &mut UnixStream, n: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; n];
    let mut got = 0;
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    while got < n {
        match stream.read(&mut bytes[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed after {got} of {n} bytes: {e}"),
        }
    }
    bytes.truncate(got);
    bytes
}

/// Sends `pieces` one write each with `pause` between them, then half-closes (the server sees
/// EOF) and reads everything until the server closes. Writes after the server closed fail
/// and are not an error: the server may close as soon as it sees `end` or an invalid byte.
pub fn converse(path: &Path, pieces: &[Vec<u8>], pause: Duration) -> Heard {
    let mut stream = connect(path);
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 && !pause.is_zero() {
            thread::sleep(pause); // only forces the split into separate reads
        }
        if stream.write_all(piece).is_err() {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
    read_to_close(&mut stream, DEADLINE)
}
