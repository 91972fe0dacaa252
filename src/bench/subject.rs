//! What a benchmark runs against: the reference server, the raw baseline, the seed's Python
//! server, or another implementation's command. Each is started in its own temporary directory
//! and stopped when dropped.

use std::io::{self, Read, Write};

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::process::Target;
use crate::server::{Server, ServerConfig, ShutdownHandle};
use crate::socket_path::BindError;

/// Why a server to measure could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The server's temporary directory could not be created.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] io::Error),
    /// The in-process server's shutdown handle, the baseline server or the seed script could not be set up.
    #[error("cannot set up the server: {0}")]
    Setup(#[source] io::Error),
    /// The in-process server could not bind its socket.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The command did not start serving (the gate's own words say how).
    #[error("{0}")]
    Command(String),
    /// The command was still running, silent and not listening (nothing at the path) when
    /// `--startup-timeout` ran out.
    #[error("nothing accepted connections at {path} within {:.1} s (--startup-timeout)", .timeout.as_secs_f64())]
    TimedOut {
        /// The socket path it was given.
        path: PathBuf,
        /// The start-up timeout.
        timeout: Duration,
    },
}

/// A server to measure.
#[derive(Clone, Debug)]
pub enum Subject {
    /// `udsping serve`'s server, in this process.
    Reference,
    /// The raw limit: a std-only thread per connection that reads into a 4 KiB buffer (as the
    /// reference does) and writes a `pong` for every 4 bytes read, without looking at them. In
    /// lock-step that is "read 4 bytes, write 4 bytes"; pipelined, it is a plain copy.
    Baseline,
    /// The seed's Python server (one connection at a time), as a reference point.
    SeedPython,
    /// Another implementation, started as in the conformance gate.
    Command(Target),
}

impl Subject {
    /// The name in the report and the table: `reference`, `baseline`, `seed-python`, or the program's file name.
    pub fn name(&self) -> String {
        match self {
            Subject::Reference => "reference".into(),
            Subject::Baseline => "baseline".into(),
            Subject::SeedPython => "seed-python".into(),
            Subject::Command(target) => target.program.rsplit('/').next().unwrap_or(&target.program).to_string(),
        }
    }
}

/// A started server; stops (and cleans up) when dropped.
pub struct Running {
    /// The socket the server listens on.
    pub path: PathBuf,
    /// The process whose memory and CPU the server uses: `None` for this process.
    pub pid: Option<u32>,
    /// How long it took from starting the server to a connection to its socket succeeding.
    pub startup: Duration,
    // Fields drop in order: the process goes before its directory.
    child: Option<Mutex<crate::process::Child>>,
    _workdir: Option<tempfile::TempDir>,
    _dir: Option<tempfile::TempDir>,
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Running {
    /// A server running in this process, in `dir`, stopped by `stop`.
    fn in_process(path: PathBuf, dir: tempfile::TempDir, stop: impl FnOnce() + Send + 'static) -> Running {
        let stop: Box<dyn FnOnce() + Send> = Box::new(stop);
        Running {
            path,
            pid: None,
            startup: Duration::ZERO,
            child: None,
            _workdir: None,
            _dir: Some(dir),
            stop: Some(stop),
        }
    }

    /// How the server's process exited, if it has (never waits); `None` for a server in this
    /// process or one still running.
    pub fn exited(&self) -> Option<String> {
        let mut child = self.child.as_ref()?.lock().unwrap_or_else(|p| p.into_inner());
        child.try_status().map(crate::process::describe_status)
    }

    /// How the server's process ended, if it has (waiting up to 250 ms for one that is dying,
    /// so that its death, not the client's broken connection, is the explanation), with the
    /// end of its stderr. `None` for a server in this process or one still running.
    pub fn death(&self) -> Option<String> {
        let mut child = self.child.as_ref()?.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + Duration::from_millis(250);
        let status = loop {
            match child.try_status() {
                Some(status) => break status,
                None if Instant::now() >= deadline => return None,
                None => thread::sleep(Duration::from_millis(5)),
            }
        };
        let stderr = stderr_of(&child);
        Some(format!("the server {}; its stderr: {stderr}", crate::process::describe_status(status)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

const SEED_SERVER: &str = crate::seed::SERVER_PY;

/// The end of an exited command's stderr, once its pipe has been read to the end (what it
/// wrote last may still be in the pipe when it is seen to exit).
fn stderr_of(child: &crate::process::Child) -> String {
    let stderr = child.stderr_tail(Duration::from_millis(250));
    if stderr.is_empty() {
        "nothing".to_string()
    } else {
        stderr
    }
}

/// How long a server started as a child process may take to accept its first connection.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts `subject` and returns once it accepts connections, with room for `idle` connections
/// besides the measuring clients (the reference's limit is raised to fit them; other servers
/// have their own). A child process has `startup_timeout` to get there.
pub fn start(subject: &Subject, idle: usize, startup_timeout: Duration) -> Result<Running, StartError> {
    let started = Instant::now();
    let mut running = start_untimed(subject, idle, startup_timeout)?;
    running.startup = started.elapsed();
    Ok(running)
}

fn start_untimed(subject: &Subject, idle: usize, startup_timeout: Duration) -> Result<Running, StartError> {
    match subject {
        Subject::Reference => {
            let dir = tempfile::tempdir().map_err(StartError::TempDir)?;
            let path = dir.path().join("udsocket");
            let shutdown = ShutdownHandle::new().map_err(StartError::Setup)?;
            let mut config = ServerConfig::new(&path);
            config.max_connections = config.max_connections.max(idle + 64);
            let server = Server::bind_with(config, shutdown.clone())?;
            let thread = thread::spawn(move || server.run());
            let stop = move || {
                shutdown.shutdown();
                let _ = thread.join();
            };
            Ok(Running::in_process(path, dir, stop))
        }
        Subject::Baseline => {
            let dir = tempfile::tempdir().map_err(StartError::TempDir)?;
            let path = dir.path().join("udsocket");
            let (stop, thread) = baseline_server(&path).map_err(StartError::Setup)?;
            let wake_path = path.clone();
            let stop = move || {
                stop.store(true, Ordering::SeqCst);
                let _ = UnixStream::connect(&wake_path); // wakes the blocking accept
                let _ = thread.join();
            };
            Ok(Running::in_process(path, dir, stop))
        }
        Subject::SeedPython => {
            let dir = tempfile::tempdir().map_err(StartError::TempDir)?;
            let script = dir.path().join("seed_server.py");
            std::fs::write(&script, SEED_SERVER).map_err(StartError::Setup)?;
            let target = Target { program: "python3".into(), args: vec![script.to_string_lossy().into_owned()] };
            let mut running = start_command(&target, startup_timeout)?;
            running._dir = Some(dir);
            Ok(running)
        }
        Subject::Command(target) => start_command(target, startup_timeout),
    }
}

fn start_command(target: &Target, startup_timeout: Duration) -> Result<Running, StartError> {
    let dir = tempfile::Builder::new().prefix("udsping-bench-").tempdir().map_err(StartError::TempDir)?;
    let path = dir.path().join("udsocket");
    let socket = path.to_string_lossy().into_owned();
    let marker = dir.path().to_string_lossy().into_owned();
    let env = [("UDSPING_SOCKET", path.clone().into_os_string())];
    let mut child = crate::process::Child::spawn(target, dir.path(), &socket, &env, &marker)
        .map_err(|e| StartError::Command(e.to_string()))?;
    let deadline = Instant::now() + startup_timeout;
    match child.await_listening(&path, deadline) {
        crate::process::Readiness::Listening => {}
        crate::process::Readiness::Exited(status) => {
            let stderr = stderr_of(&child);
            // Exiting 0 at once is what a daemonizing server does.
            let hint = if status.success() { " (a server must stay in the foreground)" } else { "" };
            return Err(StartError::Command(format!(
                "{} {} before accepting connections{hint}; stderr: {stderr}",
                target.program,
                crate::process::describe_status(status)
            )));
        }
        crate::process::Readiness::TimedOut => {
            // As in the gate: only a start with no sign of life (nothing written, nothing at
            // the path) may be a slow one worth trying again.
            if child.silent() && std::fs::symlink_metadata(&path).is_err() {
                return Err(StartError::TimedOut { path, timeout: startup_timeout });
            }
            return Err(StartError::Command(format!(
                "nothing accepted connections at {} within {:.1} s (--startup-timeout); stderr: {}",
                path.display(),
                startup_timeout.as_secs_f64(),
                stderr_of(&child)
            )));
        }
    }
    // As in the gate: a CMD that returned while something it started serves has left the
    // process whose CPU and memory would be measured, and whose death would be noticed.
    if let Some(status) = child.try_status() {
        if let Some(daemon) = child.daemonized(status, Some(&path)) {
            return Err(StartError::Command(daemon.to_string()));
        }
        return Err(StartError::Command(format!(
            "{} {} right after accepting connections",
            target.program,
            crate::process::describe_status(status)
        )));
    }
    let pid = Some(child.id());
    Ok(Running {
        path,
        pid,
        startup: Duration::ZERO,
        child: Some(Mutex::new(child)),
        _workdir: Some(dir),
        _dir: None,
        stop: None,
    })
}

/// The raw baseline: the least a server can do to move the same bytes.
fn baseline_server(path: &Path) -> io::Result<(Arc<AtomicBool>, JoinHandle<()>)> {
    let listener = UnixListener::bind(path)?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = Arc::clone(&stop);
    let thread = thread::spawn(move || {
        for stream in listener.incoming() {
            if stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                let mut carried = 0; // bytes of an incomplete 4-byte unit from the last read
                while let Ok(n @ 1..) = stream.read(&mut buffer) {
                    let units = (carried + n) / 4;
                    carried = (carried + n) % 4;
                    if crate::proto::pong_chunks(units).try_for_each(|chunk| stream.write_all(chunk)).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok((stop, thread))
}
