//! Child processes that the conformance gate and the bench start: a command line with
//! `{socket}` in it, started in its own process group with its output read through pipes into
//! bounded buffers, and a guard that kills and reaps it together with everything it started.
//!
//! Nothing here knows the protocol. The gate (SPEC.md section 8) and the bench use it so that
//! an implementation under test, however it is started (a shell wrapper, `npm start`, a command
//! that daemonizes), leaves nothing running once its guard is gone:
//!
//! - the command is the leader of a new process group, and the group is killed;
//! - the gate is a child subreaper (Linux), so a descendant that escapes the group (`setsid`,
//!   a double fork) is re-parented to the gate instead of to init; such escapees are recognised
//!   by an environment variable naming the run ([`MARKER_VAR`]) and killed and reaped too;
//! - stdout and stderr go to pipes read by one thread into [`Output`], which keeps the first
//!   and last bytes and the lines that look like errors, however much the command writes.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions};

/// The environment variable every started command gets, set to a value unique to its guard;
/// descendants that left the process group are recognised by it.
pub const MARKER_VAR: &str = "UDSPING_CONFORM_RUN";

/// Bytes kept from the start and from the end of each output stream.
const KEPT: usize = 16 * 1024;
/// Bytes kept of lines that look like errors, between the start and the end.
const KEPT_ERROR_LINES: usize = 16 * 1024;

/// An implementation's command line, in which `{socket}` (alone or inside an argument, as in
/// `--socket={socket}`) stands for the socket address.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Target {
    /// The program: a path, or a name looked up on `PATH`.
    pub program: String,
    /// Its arguments, with `{socket}` still in them.
    pub args: Vec<String>,
}

/// Why a command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The program is neither an executable file nor found on `PATH`.
    #[error("cannot run the target: {program:?} is not an executable file (nor found on PATH)")]
    NotExecutable {
        /// The program as given.
        program: String,
    },
    /// Starting it failed.
    #[error("cannot start {program:?}: {source}")]
    Start {
        /// The program as given.
        program: String,
        /// What `spawn` said.
        source: io::Error,
    },
}

impl Target {
    /// The arguments with every `{socket}` replaced by `socket`.
    pub fn args_for(&self, socket: &str) -> Vec<String> {
        self.args.iter().map(|a| a.replace("{socket}", socket)).collect()
    }

    /// The command line as a person would type it into a POSIX shell: a word with anything but
    /// letters, digits and `_@%+=:,./{}-` in it is single-quoted, so a printed rerun command
    /// (`sh -c 'exec ./server "$1"' sh {socket}`) can be pasted as it stands.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(shell_quoted)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Checks that the program can be started, before anything else is done with it.
    pub fn check(&self) -> Result<(), SpawnError> {
        let runnable = |path: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        let found = if self.program.contains('/') {
            runnable(Path::new(&self.program))
        } else {
            std::env::var_os("PATH")
                .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| runnable(&dir.join(&self.program))))
        };
        if found {
            Ok(())
        } else {
            Err(SpawnError::NotExecutable { program: self.program.clone() })
        }
    }
}

/// `word` as one word of a POSIX shell command line.
fn shell_quoted(word: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./{}-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.into()
    } else {
        format!("'{}'", word.replace('\'', r"'\''")).into()
    }
}

/// How a process ended, as a person would say it: "exited with status 1", "was killed by
/// signal 13 (SIGPIPE)".
pub fn describe_status(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        format!("exited with status {code}")
    } else if let Some(signal) = status.signal() {
        let name = Signal::from_named_raw(signal).map(signal_name).unwrap_or("");
        if name.is_empty() {
            format!("was killed by signal {signal}")
        } else {
            format!("was killed by signal {signal} ({name})")
        }
    } else {
        format!("ended ({status})")
    }
}

fn signal_name(signal: Signal) -> &'static str {
    match signal {
        Signal::HUP => "SIGHUP",
        Signal::INT => "SIGINT",
        Signal::QUIT => "SIGQUIT",
        Signal::ILL => "SIGILL",
        Signal::ABORT => "SIGABRT",
        Signal::BUS => "SIGBUS",
        Signal::FPE => "SIGFPE",
        Signal::KILL => "SIGKILL",
        Signal::SEGV => "SIGSEGV",
        Signal::PIPE => "SIGPIPE",
        Signal::ALARM => "SIGALRM",
        Signal::TERM => "SIGTERM",
        Signal::USR1 => "SIGUSR1",
        Signal::USR2 => "SIGUSR2",
        _ => "",
    }
}

/// Whether the child process `pid` has exited, waiting up to `limit` for it to: a peek that
/// leaves it to be reaped by whoever waits for it (`waitid` with `WNOWAIT`).
pub fn exits_within(pid: u32, limit: Duration) -> bool {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let Some(pid) = Pid::from_raw(pid as i32) else { return false };
    let deadline = Instant::now() + limit;
    loop {
        let peek = waitid(WaitId::Pid(pid), WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT);
        match peek {
            Ok(Some(_)) => return true,
            // Already reaped (so gone), or not a child of this process.
            Err(rustix::io::Errno::CHILD) => return true,
            Ok(None) | Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(1)),
            _ => return false,
        }
    }
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    // Field 3 (the state letter) comes first; utime and stime are fields 14 and 15.
    let stat = stat_from_state(pid)?;
    let mut fields = stat.split_whitespace().skip(14 - 3);
    let mut next = || fields.next()?.parse::<u64>().ok();
    let ticks = next()? + next()?;
    Some(Duration::from_secs_f64(ticks as f64 / rustix::param::clock_ticks_per_second() as f64))
}

/// `/proc/PID/stat` from field 3 (the state letter) on. The command name (field 2) may contain
/// spaces and parentheses, so the fields are counted from its last ')'.
fn stat_from_state(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.rsplit_once(')')?.1.to_owned())
}

/// Makes this process the reaper of its orphaned descendants (Linux), once.
fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
            log::warn!("cannot become a child subreaper ({e}); a daemonizing target may outlive the gate");
        }
    });
}

/// Every started process group that is still alive, for [`kill_everything`].
static LIVE: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());
/// Set by [`kill_everything`]: no command starts any more.
static STOPPING: AtomicBool = AtomicBool::new(false);

/// Kills every process started here that is still alive, with everything it started, and
/// reaps them; for a gate that was itself told to stop (SIGINT, SIGTERM, SIGHUP).
pub fn kill_everything() {
    let live: Vec<(u32, String)> = {
        let live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock that every start takes: nothing starts after this.
        STOPPING.store(true, Ordering::SeqCst);
        live.clone()
    };
    for (pid, marker) in &live {
        let victims = kill_tree(*pid, marker);
        reap(*pid);
        for victim in victims {
            reap(victim);
        }
    }
}

/// A target's first tries (the gate's starts, the bench's figures): once the first `limit`
/// have failed with none succeeding, every other try would wait out the same deadlines for the
/// same reason, so the gate and the bench report them as failed with that cause instead.
#[derive(Clone, Debug, Default)]
pub struct FirstTries {
    succeeded: bool,
    failures: Vec<String>,
    /// Tries that ended in a way that counts towards giving up only beside a real failure
    /// (the gate's refusal awaited in vain from a silent process).
    silent: usize,
}

impl FirstTries {
    /// A try succeeded: the target is never given up on.
    pub fn succeeded(&mut self) {
        self.succeeded = true;
    }

    /// A try failed, for `reason`.
    pub fn failed(&mut self, reason: String) {
        self.failures.push(reason);
    }

    /// A try came to nothing without saying why.
    pub fn came_to_nothing(&mut self) {
        self.silent += 1;
    }

    /// Whether any try succeeded.
    pub fn any_succeeded(&self) -> bool {
        self.succeeded
    }

    /// If the target is given up on: how many tries failed, and the first one's reason.
    pub fn given_up(&self, limit: usize) -> Option<(usize, &str)> {
        let failed = self.failures.len() + self.silent;
        let first = self.failures.first().filter(|_| !self.succeeded && failed >= limit)?;
        Some((failed, first))
    }
}

/// How the start of a server ended (see [`Child::await_listening`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// A connection to its socket succeeded.
    Listening,
    /// The command exited first.
    Exited(ExitStatus),
    /// Neither happened before the deadline.
    TimedOut,
}

/// What a command that exited 0 left running.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// Processes it started that left its process group and run on.
    pub escaped: Vec<u32>,
    /// Something still accepts connections at its socket.
    pub serving: bool,
}

impl std::fmt::Display for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.escaped.is_empty() {
            "something it started".to_string()
        } else {
            format!("a process it started (pid {:?})", self.escaped)
        };
        let serving = if self.serving { " and serving the socket" } else { "" };
        write!(
            f,
            "CMD exited with status 0 while {what} kept running{serving}: CMD must stay in the foreground (do not \
             daemonize; a wrapper script should `exec` the program)"
        )
    }
}

/// A started command; dropping it kills and reaps the command and all its descendants.
pub struct Child {
    child: std::process::Child,
    marker: String,
    status: Option<ExitStatus>,
    output: Arc<Mutex<Output>>,
    stop_reading: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    cleaned: bool,
}

impl Child {
    /// Starts `target` in `dir` with `socket` for `{socket}` and `$env_var`, stdin from
    /// `/dev/null`, stdout and stderr into bounded buffers, as leader of a new process group.
    /// `marker` must be unique to this start (the gate uses the case's temporary directory).
    pub fn spawn(
        target: &Target,
        dir: &Path,
        socket: &str,
        env: &[(&str, OsString)],
        marker: &str,
    ) -> Result<Child, SpawnError> {
        become_subreaper();
        let mut command = std::process::Command::new(&target.program);
        command
            .args(target.args_for(socket))
            .current_dir(dir)
            .env(MARKER_VAR, marker)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own, so that a wrapper's children can be killed with it. (std
            // resets the signal mask and SIGPIPE for the child; handlers become defaults at
            // exec, and `udsping conform` handles SIGINT, SIGTERM, SIGHUP and SIGQUIT, so
            // none of them stays ignored even when the gate runs as a background job.)
            .process_group(0);
        for (name, value) in env {
            command.env(name, value);
        }
        // Started and registered under one lock, so that a gate being stopped (which takes
        // the same lock) either kills this command or never lets it start.
        let mut child = {
            let mut live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
            if STOPPING.load(Ordering::SeqCst) {
                return Err(SpawnError::Start {
                    program: target.program.clone(),
                    source: io::Error::other("the gate is stopping"),
                });
            }
            let child =
                command.spawn().map_err(|source| SpawnError::Start { program: target.program.clone(), source })?;
            live.push((child.id(), marker.to_string()));
            child
        };
        let output = Arc::new(Mutex::new(Output::default()));
        let stop_reading = Arc::new(AtomicBool::new(false));
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        let reader = {
            let (output, stop) = (Arc::clone(&output), Arc::clone(&stop_reading));
            thread::Builder::new()
                .name("udsping-output".into())
                .spawn(move || read_output(stdout, stderr, &output, &stop))
                .ok()
        };
        Ok(Child { child, marker: marker.to_string(), status: None, output, stop_reading, reader, cleaned: false })
    }

    /// The process ID of the direct child (the leader of its process group).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the command has exited (never blocks).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `limit` for the command to exit.
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends `signal` to the command itself (not its group).
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        let pid = Pid::from_raw(self.child.id() as i32).ok_or_else(|| io::Error::other("no pid"))?;
        rustix::process::kill_process(pid, signal).map_err(io::Error::from)
    }

    /// Processes that carry this command's marker but are no longer its descendants (they
    /// left its process group and were re-parented to this process): a daemon it started.
    pub fn escapees(&self) -> Vec<u32> {
        escapees(&self.marker, &[self.child.id()])
    }

    /// Waits until a connection to `socket` succeeds (the probe is closed at once, without a
    /// byte sent), the command exits, or `deadline` passes: how the gate and the bench see
    /// that a server they started is ready.
    pub fn await_listening(&mut self, socket: &Path, deadline: Instant) -> Readiness {
        loop {
            if let Ok(probe) = crate::net::connect_bounded(socket, deadline) {
                drop(probe);
                return Readiness::Listening;
            }
            if let Some(status) = self.try_status() {
                return Readiness::Exited(status);
            }
            if Instant::now() >= deadline {
                return Readiness::TimedOut;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Whether the command, having exited with `status`, left something running: it exited 0
    /// while a process it started runs on, or while something still accepts connections at
    /// `socket` (a daemon, which neither the gate nor the bench can judge or stop).
    pub fn daemonized(&self, status: ExitStatus, socket: Option<&Path>) -> Option<Daemon> {
        if !status.success() {
            return None;
        }
        let escaped = self.escapees();
        let serving = socket.is_some_and(|socket| crate::net::connect_bounded(socket, Instant::now()).is_ok());
        (!escaped.is_empty() || serving).then_some(Daemon { escaped, serving })
    }

    /// Waits up to `limit` for both pipes to reach EOF (after the command exited, what it
    /// wrote last may still be in the pipe).
    pub fn settle_output(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.reader.as_ref().is_some_and(|r| !r.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// The end of its stderr for a message (the last lines and the error-looking ones before
    /// them, escaped), after waiting up to `settle` for the pipes to be read to their end.
    pub fn stderr_tail(&self, settle: Duration) -> String {
        if !settle.is_zero() {
            self.settle_output(settle);
        }
        self.output().stderr.excerpt(3)
    }

    /// Whether the command has written nothing yet, to stdout or stderr (a start with no
    /// sign of life, for the gate and the bench).
    pub fn silent(&self) -> bool {
        let output = self.output.lock().unwrap_or_else(|p| p.into_inner());
        output.stdout.total == 0 && output.stderr.total == 0
    }

    /// What the command wrote so far.
    pub fn output(&self) -> Output {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Kills the command, its process group and every descendant and escapee, and reaps them.
    pub fn kill_all(&mut self) {
        if self.cleaned {
            return;
        }
        self.cleaned = true;
        let victims = kill_tree(self.child.id(), &self.marker);
        let _ = self.child.kill();
        if let Ok(status) = self.child.wait() {
            self.status.get_or_insert(status);
        }
        // The command is reaped, so every orphan of it has been re-parented by now.
        for victim in victims {
            reap(victim);
        }
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).retain(|(pid, _)| *pid != self.child.id());
        if REAP_ORPHANS.load(Ordering::SeqCst) {
            reap_dead_orphans();
        }
        // The pipes reach EOF once every writer is dead; the flag covers a writer that
        // escaped even the marker (it cleared its environment).
        self.stop_reading.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Kills `pid`'s process group, its descendants (in any group) and the processes carrying
/// `marker` that were re-parented to this process; returns every process it signalled.
fn kill_tree(pid: u32, marker: &str) -> Vec<u32> {
    let mut victims = BTreeSet::new();
    // A few passes: a process may fork while the previous pass kills.
    for _ in 0..3 {
        let mut found: Vec<u32> = descendants(pid);
        for escapee in escapees(marker, &[pid]) {
            found.push(escapee);
            found.extend(descendants(escapee));
        }
        if let Some(group) = Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process_group(group, Signal::KILL);
        }
        let fresh: Vec<u32> = found.into_iter().filter(|p| victims.insert(*p)).collect();
        for victim in &fresh {
            if let Some(victim) = Pid::from_raw(*victim as i32) {
                let _ = rustix::process::kill_process(victim, Signal::KILL);
            }
        }
        if fresh.is_empty() {
            break;
        }
    }
    victims.into_iter().collect()
}

/// Set by [`reap_orphans`]: clean-ups also reap dead orphans.
static REAP_ORPHANS: AtomicBool = AtomicBool::new(false);

/// Makes every clean-up also reap the dead processes re-parented to this one (a child
/// subreaper): a daemonizing command's intermediate process exits at once, in a session of
/// its own, and nothing else would ever wait for it. Only for a process whose every other
/// child is started through this module, such as the `udsping` command: a zombie not in
/// `LIVE` is taken for an orphan, so in a process that spawns children of its own (a test
/// harness) this would reap what someone else waits for.
pub fn reap_orphans() {
    REAP_ORPHANS.store(true, Ordering::SeqCst);
}

/// Reaps the dead children of this process that no guard owns. Commands still guarded (in
/// `LIVE`) are left to their guards; the lock that every start takes keeps a command just
/// started from being taken for an orphan.
fn reap_dead_orphans() {
    let live = LIVE.lock().unwrap_or_else(|p| p.into_inner());
    for pid in children(std::process::id()) {
        if live.iter().any(|(guarded, _)| *guarded == pid) || !is_zombie(pid) {
            continue;
        }
        if let Some(process) = Pid::from_raw(pid as i32) {
            let _ = rustix::process::waitpid(Some(process), WaitOptions::NOHANG);
        }
    }
}

/// Whether `pid` has died and waits to be reaped (state `Z` in /proc/PID/stat).
fn is_zombie(pid: u32) -> bool {
    stat_from_state(pid).is_some_and(|stat| stat.split_whitespace().next() == Some("Z"))
}

/// Reaps `pid` if it is (or becomes, within a moment) a child of this process.
fn reap(pid: u32) {
    let Some(process) = Pid::from_raw(pid as i32) else { return };
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match rustix::process::waitpid(Some(process), WaitOptions::NOHANG) {
            Ok(Some(_)) => return,
            // Not (or no longer) a child of this process: init or its parent reaps it.
            Err(_) => return,
            Ok(None) if Instant::now() >= deadline => return,
            Ok(None) => thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// The children of `pid`, from `/proc/PID/task/*/children`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("children")).ok())
        .flat_map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// Every descendant of `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = VecDeque::from([pid]);
    while let Some(next) = queue.pop_front() {
        for child in children(next) {
            if !found.contains(&child) && found.len() < 10_000 {
                found.push(child);
                queue.push_back(child);
            }
        }
    }
    found
}

/// Children of this process, other than `except`, whose environment carries `marker`.
fn escapees(marker: &str, except: &[u32]) -> Vec<u32> {
    let wanted = format!("{MARKER_VAR}={marker}");
    children(std::process::id())
        .into_iter()
        .filter(|pid| !except.contains(pid))
        .filter(|&pid| carries(pid, wanted.as_bytes()))
        .collect()
}

/// Whether the environment of `pid` holds `var`. In the middle of an `execve` a process's
/// environment reads empty for a moment (the new image's is not set up yet): a wrapper that
/// execs its way to a daemon (`setsid env ... server`) must not be taken then for a process
/// without the marker, so an empty read is tried again for up to 20 ms. A zombie has no
/// environment any more, and needs no killing.
fn carries(pid: u32, var: &[u8]) -> bool {
    for _ in 0..20 {
        match std::fs::read(format!("/proc/{pid}/environ")) {
            Ok(env) if !env.is_empty() => return env.split(|b| *b == 0).any(|v| v == var),
            Ok(_) if !is_zombie(pid) => thread::sleep(Duration::from_millis(1)),
            _ => return false,
        }
    }
    false
}

/// What a command wrote to one stream: the first and last bytes, lines between them that
/// look like errors, and how much there was.
#[derive(Clone, Debug, Default)]
pub struct Stream {
    /// The first bytes written.
    pub head: Vec<u8>,
    tail: VecDeque<u8>,
    /// Error-looking lines seen after the head was full (complete lines only).
    pub error_lines: Vec<u8>,
    partial_line: Vec<u8>,
    /// How many bytes were written in all.
    pub total: u64,
}

impl Stream {
    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = KEPT.saturating_sub(self.head.len());
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(to_head);
        for &b in rest {
            if self.tail.len() == KEPT {
                self.tail.pop_front();
            }
            self.tail.push_back(b);
            if self.partial_line.len() < 512 {
                self.partial_line.push(b);
            }
            if b == b'\n' {
                if looks_like_error(&self.partial_line) && self.error_lines.len() < KEPT_ERROR_LINES {
                    self.error_lines.extend_from_slice(&self.partial_line);
                }
                self.partial_line.clear();
            }
        }
    }

    /// The last bytes kept (the head if the stream was short).
    pub fn tail(&self) -> Vec<u8> {
        if self.total as usize <= KEPT {
            self.head.clone()
        } else {
            self.tail.iter().copied().collect()
        }
    }

    /// The last `count` lines and the error-looking lines before them, escaped so that they
    /// cannot drive a terminal, joined with " | ".
    pub fn excerpt(&self, count: usize) -> String {
        let all: Vec<u8> = if self.total as usize <= KEPT {
            self.head.clone()
        } else {
            [self.head.as_slice(), b"\n", &self.error_lines, b"\n", &self.tail()].concat()
        };
        let lines: Vec<&[u8]> = all.split(|b| *b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)).collect();
        let last = lines.len().saturating_sub(count);
        let mut shown: Vec<&[u8]> = lines[..last].iter().filter(|l| looks_like_error(l)).copied().collect();
        let skip = shown.len().saturating_sub(3);
        shown.drain(..skip);
        shown.extend(&lines[last..]);
        let mut text = shown.iter().map(|l| escape(l, 300)).collect::<Vec<_>>().join(" | ");
        if self.total as usize > 2 * KEPT {
            text.push_str(&format!(" ({} bytes in all)", self.total));
        }
        text
    }
}

fn looks_like_error(line: &[u8]) -> bool {
    let line = String::from_utf8_lossy(line).to_ascii_lowercase();
    ["error", "traceback", "exception", "panic", "fatal", "abort", "denied", "refused", "failed"]
        .iter()
        .any(|w| line.contains(w))
}

/// Target-written bytes made safe for a report: printable ASCII as is (but `"` and `\`), and
/// everything else (control characters, ANSI escapes, `\r`, non-ASCII) escaped; at most
/// `limit` bytes shown.
pub fn escape(bytes: &[u8], limit: usize) -> String {
    let shown = &bytes[..bytes.len().min(limit)];
    // An apostrophe cannot drive a terminal and is common in error messages ("can't open
    // file"); quotes and backslashes stay escaped, so that a quoted excerpt reads unambiguously.
    let mut text = String::with_capacity(shown.len());
    for &byte in shown {
        if byte == b'\'' {
            text.push('\'');
        } else {
            text.extend(byte.escape_ascii().map(char::from));
        }
    }
    if bytes.len() > limit {
        text.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    text
}

/// A command's stdout and stderr.
#[derive(Clone, Debug, Default)]
pub struct Output {
    /// What it wrote to stdout.
    pub stdout: Stream,
    /// What it wrote to stderr.
    pub stderr: Stream,
}

/// Reads both pipes until both reach EOF, or `stop` is set and nothing is left to read.
fn read_output(
    stdout: Option<std::process::ChildStdout>,
    stderr: Option<std::process::ChildStderr>,
    output: &Mutex<Output>,
    stop: &AtomicBool,
) {
    use rustix::event::{PollFd, PollFlags};
    let mut streams: Vec<(Box<dyn Read + Send>, bool)> = Vec::new();
    let mut fds = Vec::new();
    if let Some(out) = stdout {
        fds.push(out.as_fd().try_clone_to_owned());
        streams.push((Box::new(out), false));
    }
    if let Some(err) = stderr {
        fds.push(err.as_fd().try_clone_to_owned());
        streams.push((Box::new(err), true));
    }
    let fds: Vec<_> = fds.into_iter().filter_map(Result::ok).collect();
    if fds.len() != streams.len() {
        return;
    }
    let mut open: Vec<bool> = vec![true; streams.len()];
    let mut buffer = vec![0u8; 64 * 1024];
    let timeout = rustix::event::Timespec { tv_sec: 0, tv_nsec: 50_000_000 };
    while open.iter().any(|o| *o) {
        let mut polled: Vec<PollFd<'_>> = fds
            .iter()
            .zip(&open)
            .map(|(fd, o)| PollFd::new(fd, if *o { PollFlags::IN } else { PollFlags::empty() }))
            .collect();
        let ready = match rustix::event::poll(&mut polled, Some(&timeout)) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return,
        };
        let revents: Vec<PollFlags> = polled.iter().map(|p| p.revents()).collect();
        drop(polled);
        if ready == 0 {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            continue;
        }
        for (i, flags) in revents.into_iter().enumerate() {
            if !open[i] || flags.is_empty() {
                continue;
            }
            let (reader, is_stderr) = &mut streams[i];
            match reader.read(&mut buffer) {
                Ok(0) | Err(_) => open[i] = false,
                Ok(n) => {
                    let mut output = output.lock().unwrap_or_else(|p| p.into_inner());
                    let stream = if *is_stderr { &mut output.stderr } else { &mut output.stdout };
                    stream.push(&buffer[..n]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_is_displayed_as_a_shell_would_read_it() {
        let target = Target {
            program: "sh".into(),
            args: ["-c", "exec ./server \"$1\"", "it's", "", "{socket}", "--socket=/tmp/a b"]
                .map(String::from)
                .to_vec(),
        };
        assert_eq!(target.display(), r#"sh -c 'exec ./server "$1"' 'it'\''s' '' {socket} '--socket=/tmp/a b'"#);
        // What the shell makes of it is the target again.
        let words = std::process::Command::new("sh")
            .args(["-c", &format!("for w in {}; do printf '%s\\n' \"$w\"; done", target.display())])
            .output()
            .unwrap();
        let mut expected = vec![target.program.clone()];
        expected.extend(target.args.iter().cloned());
        assert_eq!(String::from_utf8(words.stdout).unwrap().lines().collect::<Vec<_>>(), expected);
    }

    #[test]
    fn escaped_bytes_cannot_drive_a_terminal_and_read_as_written() {
        assert_eq!(escape(b"can't open \"x\"\x1b[2J\r\xff", 100), "can't open \\\"x\\\"\\x1b[2J\\r\\xff");
        assert_eq!(escape(b"abcdef", 3), "abc... (6 bytes)");
    }

    #[test]
    fn a_flood_keeps_its_ends_and_its_error_lines() {
        let mut stream = Stream::default();
        stream.push(b"first line\n");
        for _ in 0..100_000 {
            stream.push(b"noise noise noise\n");
        }
        stream.push(b"Traceback: UnicodeDecodeError\n");
        for _ in 0..100_000 {
            stream.push(b"noise noise noise\n");
        }
        stream.push(b"last \x1b[2Jline\n");
        assert_eq!(stream.total, 11 + 200_000 * 18 + 30 + 14);
        assert!(stream.head.len() <= KEPT && stream.tail().len() <= KEPT);
        let excerpt = stream.excerpt(2);
        assert!(excerpt.contains("UnicodeDecodeError"), "{excerpt}");
        assert!(excerpt.contains("last \\x1b[2Jline"), "{excerpt}");
    }

    #[test]
    fn statuses_are_described_as_people_say_them() {
        assert_eq!(describe_status(ExitStatus::from_raw(1 << 8)), "exited with status 1");
        assert_eq!(describe_status(ExitStatus::from_raw(13)), "was killed by signal 13 (SIGPIPE)");
    }
}
