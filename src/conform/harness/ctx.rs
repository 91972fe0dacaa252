//! One case's world: its own directory, the implementation's process (or processes), the
//! connections, the transcript and the bounded waits. Starting, killing and reaping processes
//! is [`crate::process`]'s job and connecting is [`crate::net`]'s; a [`Ctx`] adds what a case
//! needs on top: the readiness probe, the steps every case shares (a start, a connection, an
//! exit, a refusal), each failing with the requirement it exercises (SPEC.md section 8), and
//! the judgement of a process that died or daemonized.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::conn::{Bounds, Conn, ServerEnd};
use super::dir::CaseDir;
use super::transcript::{Direction, Recorder, Transcript};
use super::watch::{PermSeen, PermWatch};
use crate::conform::target::Role;
use crate::conform::verdict::{human_duration, CaseResult, Exercise, Observation, PathState, Problem};
use crate::net::{abstract_name, connect_bounded, unix_address};
use crate::process::{self, describe_status, Readiness, Target};

/// How long a client may take to exit when nothing listens at its path (CLT-CONNECT-1 sets no
/// deadline, so the gate allows a generous one, whatever `--timeout` says).
pub(crate) const CONNECT_EXIT_DEADLINE: Duration = Duration::from_secs(10);

/// How long after a server case's last step the server is watched for a crash that what the
/// case sent caused (SPEC.md section 8): a server that dies this soon after fails the case.
pub(crate) const AFTERMATH: Duration = Duration::from_millis(150);

/// What the gate gives the implementation as `{socket}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// A socket file `udsocket` in the case's fresh directory.
    #[default]
    Path,
    /// A Linux abstract address `@udsping-conform-…`, unique per case (SPEC: TRN-ABSTRACT-1).
    Abstract,
}

/// How long the target is waited for.
#[derive(Clone, Copy, Debug)]
pub struct Waits {
    /// Each expected event (`--timeout`).
    pub timeout: Duration,
    /// A server's first accepted connection, a client's connection (`--startup-timeout`).
    pub startup_timeout: Duration,
    /// The longest one case may take in all (`--case-timeout`): a wait it cuts short makes the
    /// case inconclusive, never failed.
    pub case_timeout: Duration,
}

impl Default for Waits {
    fn default() -> Self {
        Waits {
            timeout: Duration::from_secs(2),
            startup_timeout: Duration::from_secs(5),
            case_timeout: Duration::from_secs(60),
        }
    }
}

/// When a start of the target first succeeded in a run, shared by the run's cases: a start
/// spawned after that cannot be the machine's cold first start.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunStarts(Arc<std::sync::OnceLock<Instant>>);

impl RunStarts {
    pub(crate) fn succeeded(&self) {
        let _ = self.0.set(Instant::now());
    }

    /// Whether any start in the run has succeeded yet.
    pub(crate) fn any(&self) -> bool {
        self.0.get().is_some()
    }

    fn before(&self, at: Instant) -> bool {
        self.0.get().is_some_and(|first| *first <= at)
    }
}

/// What a case's starts of the target came to, for the run (its early stop, its cases run
/// again, its verdict on a target that never started).
#[derive(Debug, Default)]
pub(crate) struct StartRecord {
    /// A start with nothing prepared at the path was made.
    pub(crate) plain: bool,
    /// A start (any) got the target listening or, for a client, connected.
    pub(crate) succeeded: bool,
    /// Why a plain start failed.
    pub(crate) failure: Option<String>,
    /// A start of any kind failed (the case's verdict rests on the target starting).
    pub(crate) failed: bool,
    /// A refusal was awaited in vain from a process that stayed silent.
    pub(crate) refusal_unanswered: bool,
    /// A start spawned before any start of the run had succeeded ran out of its time with no
    /// sign of life: it may have been the machine's cold first start.
    pub(crate) cold: bool,
    /// A harness error that no other case can avoid either ("CMD must stay in the foreground").
    pub(crate) fatal: Option<String>,
}

/// One case's world.
pub(crate) struct Ctx {
    // Declared before `dir`, so that they are killed before their directory goes.
    process: Option<process::Child>,
    /// Earlier instances still running (a second start while one serves).
    others: Vec<process::Child>,
    dir: CaseDir,
    /// The socket path, or `@name` for an abstract address.
    pub socket: PathBuf,
    /// The waits of this run.
    pub waits: Waits,
    role: Role,
    target: Target,
    transcript: Recorder,
    connections: usize,
    /// No connection of the case waits past this.
    cap: Instant,
    spawns: usize,
    /// The case asked the process to end (a signal, or a refusal it waits for).
    exit_expected: bool,
    /// The case put something at the path before starting the server.
    prepared: bool,
    pub(crate) start: StartRecord,
    pub(crate) run_starts: RunStarts,
    spawned_at: Option<Instant>,
    perm_watch: Option<PermWatch>,
    exit_noted: bool,
}

impl Drop for Ctx {
    fn drop(&mut self) {
        for mut process in self.process.take().into_iter().chain(self.others.drain(..)) {
            process.kill_all();
        }
    }
}

impl Ctx {
    /// A case's world for `target` playing `role`, in a fresh directory.
    pub(crate) fn new(target: &Target, waits: Waits, addressing: Addressing, role: Role) -> Result<Ctx, Problem> {
        let dir = CaseDir::new()?;
        let socket = match addressing {
            Addressing::Path => dir.path().join("udsocket"),
            // The directory's name is unique on this host, so the name is too, across the
            // cases running in parallel and other runs of the gate.
            Addressing::Abstract => {
                PathBuf::from(format!("@{}", dir.path().file_name().unwrap_or_default().to_string_lossy()))
            }
        };
        Ok(Ctx {
            process: None,
            others: Vec::new(),
            dir,
            socket,
            waits,
            role,
            target: target.clone(),
            transcript: Recorder::default(),
            connections: 0,
            cap: Instant::now() + waits.case_timeout,
            spawns: 0,
            exit_expected: false,
            prepared: false,
            start: StartRecord::default(),
            run_starts: RunStarts::default(),
            spawned_at: None,
            perm_watch: None,
            exit_noted: false,
        })
    }

    /// The implementation under test.
    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    /// The started process's id, if one was started.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.id())
    }

    /// The case's directory (the target's working directory).
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The transcript so far.
    pub(crate) fn transcript(&self) -> Transcript {
        self.transcript.snapshot()
    }

    /// The transcript so far, leaving it empty (exploration plays many scripts against one process).
    pub(crate) fn take_transcript(&self) -> Transcript {
        self.transcript.take()
    }

    /// Notes an event in the transcript.
    pub(crate) fn note(&self, text: &str) {
        self.transcript.note(text);
    }

    /// Records that the case put something at the path: a start that fails then is about
    /// that, not a sign that the target cannot start at all.
    pub(crate) fn mark_prepared(&mut self) {
        self.prepared = true;
    }

    /// Watches for the socket file to appear (call before starting the server).
    pub(crate) fn watch_socket_file(&mut self) -> CaseResult {
        let name = self.socket.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let watch = PermWatch::start(self.dir.path(), &name)
            .map_err(|e| Problem::harness("cannot watch the directory (inotify)", e))?;
        self.perm_watch = Some(watch);
        Ok(())
    }

    /// What the watch saw of the socket file's mode.
    pub(crate) fn permissions_seen(&mut self) -> PermSeen {
        self.perm_watch.take().map(PermWatch::finish).unwrap_or_default()
    }

    /// Starts the implementation in the case's directory (an earlier process of the case is
    /// killed first: a lifecycle restarts its server).
    pub(crate) fn spawn(&mut self) -> CaseResult {
        if let Some(mut earlier) = self.process.take() {
            earlier.kill_all();
        }
        self.spawn_process()
    }

    /// Starts another instance while the current one runs on (a second start over a live server).
    pub(crate) fn spawn_another(&mut self) -> CaseResult {
        if let Some(earlier) = self.process.take() {
            self.others.push(earlier);
        }
        self.spawn_process()
    }

    /// Back to the instance that ran before [`Ctx::spawn_another`]; the current one is killed.
    pub(crate) fn resume_previous(&mut self) {
        if let Some(previous) = self.others.pop() {
            if let Some(mut current) = self.process.replace(previous) {
                current.kill_all();
            }
            self.exit_noted = false;
        }
    }

    fn spawn_process(&mut self) -> CaseResult {
        self.exit_noted = false;
        self.spawns += 1;
        let socket = self.socket.to_string_lossy().into_owned();
        // Unique to this start, so that killing one instance never takes another for its escapee.
        let marker = format!("{}#{}", self.dir.path().display(), self.spawns);
        let env = [("UDSPING_SOCKET", self.socket.clone().into_os_string())];
        self.spawned_at = Some(Instant::now());
        let child = process::Child::spawn(&self.target, self.dir.path(), &socket, &env, &marker)?;
        self.note(&format!("started {} (pid {})", self.target.display(), child.id()));
        self.process = Some(child);
        Ok(())
    }

    /// The end of the implementation's stderr for a message: its last lines and the lines
    /// before them that look like errors, escaped.
    pub(crate) fn stderr_tail(&self) -> String {
        let settle = if self.exit_noted { Duration::from_millis(500) } else { Duration::ZERO };
        self.process.as_ref().map(|process| process.stderr_tail(settle)).unwrap_or_default()
    }

    /// Everything the implementation wrote to stderr and stdout, as far as it was kept (all
    /// of it, once it has exited).
    pub(crate) fn said(&self) -> String {
        let Some(process) = self.process.as_ref() else { return String::new() };
        if self.exit_noted {
            process.settle_output(Duration::from_millis(500));
        }
        let output = process.output();
        [output.stderr, output.stdout]
            .iter()
            .map(|s| String::from_utf8_lossy(&[s.head.as_slice(), &s.error_lines, &s.tail()].concat()).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The process's exit status, if it has exited (noted in the transcript once).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.process.as_mut().and_then(|p| p.try_status());
        if let (Some(status), false) = (status, self.exit_noted) {
            self.exit_noted = true;
            self.note(&format!("{} {}", self.role.who(), describe_status(status)));
        }
        status
    }

    /// How the process exited, as an observation with the end of its stderr.
    pub(crate) fn exit_observed(&self, status: ExitStatus) -> Observation {
        Observation::Exited { status: describe_status(status), stderr: self.stderr_tail() }
    }

    /// A harness error that no case can avoid, when CMD exited 0 while something it started
    /// runs on.
    fn check_daemon(&mut self, status: ExitStatus) -> CaseResult {
        // Something serving at the path counts only where the target put it there: in a
        // refusal case the gate's own listener may be serving it.
        let socket = (self.role == Role::Server && !self.prepared).then_some(self.socket.as_path());
        match self.process.as_ref().and_then(|p| p.daemonized(status, socket)) {
            Some(daemon) => {
                let message = daemon.to_string();
                self.start.fatal = Some(message.clone());
                Err(Problem::Harness(message))
            }
            None => Ok(()),
        }
    }

    /// The step a plain start is: nothing at the path, the server started, and a connection
    /// to its socket accepted (the readiness probe, the transcript's first connection, closed
    /// without a byte sent).
    fn plain_start(&self) -> Exercise {
        Exercise::new("the start (nothing at the path; the readiness probe connects)", &["LIFE-BIND-1"])
    }

    /// Starts a server with nothing at the path and waits until its socket accepts a
    /// connection. A failure blames SPEC: LIFE-BIND-1; given an abstract address, a server
    /// that does not listen on it cannot be judged at all (a harness error).
    pub(crate) fn start_server(&mut self) -> CaseResult {
        self.start.plain |= !self.prepared;
        let step = self.plain_start();
        self.start_listening(&step)
    }

    /// Starts the server and sees it serve one connection (a liveness round, SPEC.md section 8)
    /// before a case about concurrency, limits or a second start exercises it: a server that
    /// never answers a `ping` fails SPEC: SRV-PONG-1 there, and is not charged with what the
    /// case is about.
    pub(crate) fn start_serving(&mut self) -> CaseResult {
        self.start_server()?;
        let step = Exercise::new("the first connection after the start", &["LIFE-BIND-1"]);
        let mut conn = self.connect_for(&step)?;
        conn.live_round("before the case's own connections")?;
        conn.close();
        Ok(())
    }

    /// Starts a server over what the case put at the path, which `step` says it must replace
    /// (a stale socket), and waits until it accepts a connection.
    pub(crate) fn start_server_over(&mut self, step: &Exercise) -> CaseResult {
        self.mark_prepared();
        self.start_listening(step)
    }

    fn start_listening(&mut self, step: &Exercise) -> CaseResult {
        self.spawn()?;
        let started = Instant::now();
        let deadline = started + self.waits.startup_timeout;
        let readiness = self.process.as_mut().expect("just spawned").await_listening(&self.socket, deadline);
        let expected = Observation::Listening { within_ms: self.waits.startup_timeout.as_millis() as u64 };
        let observed = match readiness {
            Readiness::Listening => {
                self.note("readiness probe: connected, then closed without sending a byte");
                if let Some(status) = self.exited() {
                    self.check_daemon(status)?;
                }
                self.start.succeeded = true;
                self.run_starts.succeeded();
                return Ok(());
            }
            Readiness::Exited(status) => {
                self.exited();
                self.check_daemon(status)?;
                self.exit_observed(status)
            }
            Readiness::TimedOut => {
                self.start.cold = self.no_sign_of_life();
                let stderr = self.stderr_tail();
                let stderr = if stderr.is_empty() { "(empty)".to_string() } else { stderr };
                Observation::NotConnected {
                    error: format!(
                        "nothing accepted a connection at {} within {}; the process is still running; stderr: {stderr}",
                        self.socket.display(),
                        human_duration(self.waits.startup_timeout)
                    ),
                }
            }
        };
        self.start.failed = true;
        let problem = match abstract_name(&self.socket) {
            // SPEC: TRN-ABSTRACT-1 — abstract addresses are a MAY: a server that does not listen
            // on one breaks nothing, and nothing can be judged.
            Some(_) => Problem::Harness(format!(
                "the server did not listen on the abstract address {} it was given: expected {expected}; observed \
                 {observed} (abstract addresses are a MAY: run without --abstract)",
                self.socket.display()
            )),
            None => step.fail(expected, observed),
        };
        if !self.prepared {
            self.start.failure = Some(problem.to_string());
        }
        Err(problem)
    }

    /// Whether a process still running at the end of its start-up time has done nothing yet
    /// that a cold first start would not explain: it was started before any start of the run
    /// had succeeded, has written nothing, and (a server in a case that put nothing at the
    /// path) has bound nothing. Only then may its case run again.
    fn no_sign_of_life(&self) -> bool {
        let untouched = match self.role {
            Role::Server => !self.prepared && !self.socket_bound(),
            Role::Client => true,
        };
        self.silent() && untouched && self.spawned_before_any_success()
    }

    /// Whether the process was started before any start of the run had succeeded: only such
    /// a start can be the machine's cold first one.
    pub(crate) fn spawned_before_any_success(&self) -> bool {
        self.spawned_at.is_some_and(|spawned| !self.run_starts.before(spawned))
    }

    /// Whether something is at the socket path, or (an abstract address) bound to the name.
    fn socket_bound(&self) -> bool {
        match abstract_name(&self.socket) {
            // /proc/net/unix lists every bound name, an abstract one as `@name` at the end of its line.
            Some(name) => std::fs::read("/proc/net/unix").is_ok_and(|table| {
                let name = [b"@".as_slice(), name].concat();
                table.split(|&b| b == b'\n').any(|line| line.ends_with(&name))
            }),
            None => std::fs::symlink_metadata(&self.socket).is_ok(),
        }
    }

    /// Whether the process has written nothing yet, to stdout or stderr.
    fn silent(&self) -> bool {
        self.process.as_ref().is_some_and(process::Child::silent)
    }

    /// Waits up to `limit` for the process to exit by itself, with status 0 (`success`) or
    /// another; otherwise `step` fails. A CMD that exited 0 while something it started runs on
    /// is a harness error.
    pub(crate) fn expect_exit_within(&mut self, step: &Exercise, success: bool, limit: Duration) -> CaseResult {
        let status = self.await_exit(step, Observation::Exits { success }, limit)?;
        if status.success() == success {
            return Ok(());
        }
        step.failed(Observation::Exits { success }, self.exit_observed(status))
    }

    /// Waits up to the event timeout for the process to exit by itself, with any status.
    pub(crate) fn expect_any_exit(&mut self, step: &Exercise) -> Result<ExitStatus, Problem> {
        self.await_exit(step, Observation::Exiting, self.waits.timeout)
    }

    fn await_exit(&mut self, step: &Exercise, expected: Observation, limit: Duration) -> Result<ExitStatus, Problem> {
        self.exit_expected = true;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                self.check_daemon(status)?;
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return step.failed(expected, Observation::Running);
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// [`Ctx::expect_exit_within`] the event timeout.
    pub(crate) fn expect_exit(&mut self, step: &Exercise, success: bool) -> CaseResult {
        self.expect_exit_within(step, success, self.waits.timeout)
    }

    /// Waits for the process to end by itself after a signal that cannot be caught, for a
    /// lifecycle that goes on after it (a harness error if it does not).
    pub(crate) fn await_death(&mut self) -> CaseResult {
        self.exit_expected = true;
        let limit = self.waits.timeout;
        match self.process.as_mut().and_then(|p| p.wait_for_exit(limit)) {
            Some(_) => {
                self.exited();
                Ok(())
            }
            None => Err(Problem::Harness(format!("the process did not die within {}", human_duration(limit)))),
        }
    }

    /// Waits for a process just started to refuse to start: to exit by itself with a non-zero
    /// status, or until `decided` says the outcome is already known (it returns the failure).
    /// A refusal is how its start ends, so the wait is the start-up timeout (or the event
    /// timeout, if longer); still running then, `step` fails.
    pub(crate) fn expect_refusal(
        &mut self,
        step: &Exercise,
        mut decided: impl FnMut(&mut Ctx) -> Option<Problem>,
    ) -> Result<ExitStatus, Problem> {
        self.exit_expected = true;
        let limit = self.waits.startup_timeout.max(self.waits.timeout);
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.exited() {
                self.check_daemon(status)?;
                if status.success() {
                    return step.failed(Observation::Exits { success: false }, self.exit_observed(status));
                }
                return Ok(status);
            }
            if let Some(problem) = decided(self) {
                return Err(problem);
            }
            if Instant::now() >= deadline {
                // Silent, with what the case put at the path intact (`decided` would have
                // said otherwise): as like a slow start as a refusal that never comes.
                if self.silent() {
                    self.start.refusal_unanswered = true;
                    self.start.cold = self.spawned_before_any_success();
                }
                self.start.failed = true;
                let option =
                    if self.waits.startup_timeout >= self.waits.timeout { "--startup-timeout" } else { "--timeout" };
                self.note(&format!("still running after {} ({option})", human_duration(limit)));
                let observed = Observation::StillRunning {
                    waited_ms: limit.as_millis() as u64,
                    option: option.into(),
                    stderr: self.stderr_tail(),
                };
                return step.failed(Observation::Exits { success: false }, observed);
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends `signal` to the process CMD started (not to its group: the case is about how CMD
    /// itself reacts).
    pub(crate) fn signal(&mut self, signal: rustix::process::Signal, name: &str) -> CaseResult {
        self.exit_expected = true;
        let process = self.process.as_ref().ok_or_else(|| Problem::Harness("no process to signal".into()))?;
        process.signal(signal).map_err(|e| Problem::harness(&format!("cannot send {name}"), e))?;
        self.note(&format!("sent {name}"));
        Ok(())
    }

    /// After a server case: whether the server died without being asked to, and how. A
    /// server that crashes because of what the case sent may die a moment after the case's
    /// last step, so it is watched for [`AFTERMATH`] first; then one connect tells (a dead
    /// server's listener refuses; the connection is recorded and closed at once).
    pub(crate) fn death_during_case(&mut self) -> Option<Observation> {
        if self.role != Role::Server || self.exit_expected || !self.start.succeeded {
            return None;
        }
        let status = match self.process.as_mut()?.wait_for_exit(AFTERMATH) {
            Some(status) => status,
            None => match connect_bounded(&self.socket, Instant::now()) {
                Ok(_) => {
                    self.note("after the case: the server still runs and accepts connections");
                    return None;
                }
                // A listener that is gone: the process is exiting, or closed it for its own
                // reasons (then it is not this check's business). A full backlog says nothing.
                Err(e) if matches!(e.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound) => {
                    self.process.as_mut()?.wait_for_exit(Duration::from_secs(1))?
                }
                Err(_) => return None,
            },
        };
        self.exited();
        Some(self.exit_observed(status))
    }

    /// The server runs on for `window` after what a client just did; an exit within it fails
    /// `step` (SPEC.md section 8: a crash is seen for a while after what caused it).
    pub(crate) fn expect_running_for(&mut self, window: Duration, step: &Exercise) -> CaseResult {
        match self.process.as_mut().and_then(|p| p.wait_for_exit(window)) {
            Some(status) => {
                self.exited();
                step.failed(Observation::Running, self.exit_observed(status))
            }
            None => Ok(()),
        }
    }

    /// Opens a new recorded connection to a server that has served others (the readiness
    /// probe at least): a failure blames SPEC: SRV-ISOLATE-1, which says it keeps accepting.
    pub(crate) fn connect(&mut self) -> Result<Conn, Problem> {
        self.connect_for(&Exercise::new("a new connection", &["SRV-ISOLATE-1"]))
    }

    /// What is at the socket path is `expected`; otherwise `step` fails with what is there.
    pub(crate) fn expect_at_path(&self, step: &Exercise, expected: PathState) -> CaseResult {
        let state = PathState::of(&self.socket);
        if state == expected {
            return Ok(());
        }
        let path = self.socket.display().to_string();
        step.failed(Observation::Path { path: path.clone(), state: expected }, Observation::Path { path, state })
    }

    /// Opens a new recorded connection, waiting at most `--timeout` for room in a full
    /// backlog; a failure fails `step`.
    pub(crate) fn connect_for(&mut self, step: &Exercise) -> Result<Conn, Problem> {
        self.connect_within(self.waits.timeout, step)
    }

    /// Opens a new recorded connection, waiting at most `limit` for room in a full backlog;
    /// a failure fails `step`.
    pub(crate) fn connect_within(&mut self, limit: Duration, step: &Exercise) -> Result<Conn, Problem> {
        match connect_bounded(&self.socket, Instant::now() + limit) {
            Ok(stream) => {
                self.connections += 1;
                self.transcript.record(self.connections, Direction::Event, b"connected");
                self.conn(stream)
            }
            Err(e) => {
                let died = self.exited().map(|s| format!("; {} {}", self.role.who(), describe_status(s)));
                let error = format!("{e}, within {}{}", human_duration(limit), died.unwrap_or_default());
                step.failed(Observation::Connected, Observation::NotConnected { error })
            }
        }
    }

    fn conn(&self, stream: std::os::unix::net::UnixStream) -> Result<Conn, Problem> {
        let bounds = Bounds { timeout: self.waits.timeout, cap: self.cap, case_timeout: self.waits.case_timeout };
        let server = if self.role == Role::Server { self.pid() } else { None }
            .map(|pid| ServerEnd { pid, socket: self.socket.clone() });
        Conn::new(stream, self.connections, self.transcript.clone(), bounds, server)
    }

    /// Listens at the socket path or abstract name (for client cases) before the client starts.
    pub(crate) fn listen(&self) -> Result<UnixListener, Problem> {
        let listener = unix_address(&self.socket)
            .and_then(|address| UnixListener::bind_addr(&address))
            .map_err(|e| Problem::harness(&format!("cannot listen at {}", self.socket.display()), e))?;
        listener.set_nonblocking(true).map_err(|e| Problem::harness("cannot make the listener non-blocking", e))?;
        Ok(listener)
    }

    /// Starts the client and accepts its connection, bounded by the start-up timeout and by
    /// the client exiting. A client that never connects breaks no requirement of SPEC.md
    /// section 6 and leaves nothing to judge: a harness error (section 8).
    pub(crate) fn start_client(&mut self, listener: &UnixListener) -> Result<Conn, Problem> {
        self.start.plain = true;
        self.spawn()?;
        let started = Instant::now();
        let deadline = started + self.waits.startup_timeout;
        let why = loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).map_err(|e| Problem::harness("cannot make a socket blocking", e))?;
                    self.connections += 1;
                    self.start.succeeded = true;
                    self.run_starts.succeeded();
                    self.transcript.record(self.connections, Direction::Event, b"client connected");
                    return self.conn(stream);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(Problem::harness("accept failed", e)),
            }
            if let Some(status) = self.exited() {
                self.check_daemon(status)?;
                break format!("the client {} without connecting", describe_status(status));
            }
            if Instant::now() >= deadline {
                self.start.cold = self.no_sign_of_life();
                break format!(
                    "the client did not connect within {} of starting (--startup-timeout)",
                    human_duration(self.waits.startup_timeout)
                );
            }
            thread::sleep(Duration::from_millis(2));
        };
        let stderr = self.stderr_tail();
        let stderr = if stderr.is_empty() { "(empty)".to_string() } else { stderr };
        let message = format!("{why}; stderr: {stderr}; so nothing of SPEC.md section 6 could be checked");
        self.start.failed = true;
        self.start.failure = Some(message.clone());
        Err(Problem::Harness(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server context for `sleep 5`, which never listens, with 100 ms to start.
    fn never_listening() -> Ctx {
        let target = Target { program: "sleep".into(), args: vec!["5".into()] };
        let waits = Waits { startup_timeout: Duration::from_millis(100), ..Waits::default() };
        Ctx::new(&target, waits, Addressing::Path, Role::Server).unwrap()
    }

    // README "Processes and resources": only a start spawned before any start of the run had
    // succeeded may have been the machine's cold first one, even if the success came while it
    // was starting; one spawned after a success that then hangs silently is the target's own.
    #[test]
    fn only_a_start_spawned_before_any_success_may_be_a_cold_one() {
        let mut cold = never_listening();
        let failure = cold.start_server().unwrap_err();
        assert!(cold.start.cold, "a silent start before any success");
        // SPEC: LIFE-BIND-1 — a start that never listens blames the start's requirement.
        assert_eq!(failure.failure().unwrap().blames, ["LIFE-BIND-1"]);

        let mut overtaken = never_listening();
        overtaken.spawn().unwrap();
        overtaken.run_starts.succeeded(); // another case's start, while this one is under way
        assert!(overtaken.spawned_before_any_success());

        let mut warm = never_listening();
        warm.run_starts.succeeded();
        assert!(warm.start_server().is_err());
        assert!(!warm.start.cold, "a silent hang after a success");
    }
}
