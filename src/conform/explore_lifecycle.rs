//! Lifecycle exploration (`conform server --explore`, after the conversations): generated
//! sequences of what is at the socket path and what happens to the server, judged against
//! SPEC.md section 7's table as a model. Foreign things are left untouched, live servers are
//! never orphaned, stale sockets are replaced, the server's own file is removed at shutdown
//! only if it is still its own.
//!
//! A [`LifecyclePlan`] is an [`Occupant`] put at the path before the first start, then a list
//! of [`Event`]s: starts, `SIGTERM`, `SIGINT`, `SIGKILL`, a round of ping/pong, the socket file
//! replaced by a regular file. Events that make no sense in the model's state (a signal with
//! no server running) are skipped, so every shrunk plan is valid. Needs a socket file: it does
//! not run with `--abstract`.

use std::cell::RefCell;
use std::fmt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use rustix::process::Signal;
use serde::{Deserialize, Serialize};

use super::explore::{rng_for, Confirmation};
use super::harness::{Addressing, Ctx, Problem, Target, Transcript, Waits};
use super::{CaseReport, Outcome};
use crate::spec;

/// Generated lifecycle plans per `--explore` run.
pub const DEFAULT_CASES: u32 = 20;

/// The section an exploration case of this kind is reported under.
pub const SECTION: &str = "explore: generated lifecycles (SPEC.md section 7)";

/// What is at the path before the first start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occupant {
    /// Nothing: the server creates the socket file.
    Nothing,
    /// A socket file nobody listens on.
    StaleSocket,
    /// A socket the gate listens on.
    LiveServer,
    /// A regular file with user data.
    RegularFile,
    /// An empty directory.
    Directory,
    /// A symbolic link to a regular file.
    Symlink,
    /// A symbolic link to a stale socket.
    SymlinkToSocket,
    /// A named pipe.
    Fifo,
}

/// Something that happens to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Start the server (the first event always is one).
    Start,
    /// Send SIGTERM to the running server.
    Term,
    /// Send SIGINT to the running server.
    Int,
    /// Send SIGKILL to the running server (its socket file stays behind).
    Kill,
    /// Connect, one lock-step round, `end`.
    Round,
    /// The socket file removed and a regular file put in its place.
    Replace,
}

/// A generated lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifecyclePlan {
    /// What is at the path before the first start.
    pub occupant: Occupant,
    /// What happens, in order.
    pub events: Vec<Event>,
}

impl fmt::Display for LifecyclePlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at the path: {:?}; then", self.occupant)?;
        for event in &self.events {
            write!(f, " {event:?}")?;
        }
        Ok(())
    }
}

/// The generator of lifecycles: a start always comes first.
pub fn plans() -> impl Strategy<Value = LifecyclePlan> {
    let occupant = prop_oneof![
        4 => Just(Occupant::Nothing),
        3 => Just(Occupant::StaleSocket),
        1 => Just(Occupant::LiveServer),
        1 => Just(Occupant::RegularFile),
        1 => Just(Occupant::Directory),
        1 => Just(Occupant::Symlink),
        1 => Just(Occupant::SymlinkToSocket),
        1 => Just(Occupant::Fifo),
    ];
    let event = prop_oneof![
        3 => Just(Event::Round),
        2 => Just(Event::Start),
        1 => Just(Event::Term),
        1 => Just(Event::Int),
        1 => Just(Event::Kill),
        1 => Just(Event::Replace),
    ];
    (occupant, prop::collection::vec(event, 0..6)).prop_map(|(occupant, events)| {
        let events = std::iter::once(Event::Start).chain(events).collect();
        LifecyclePlan { occupant, events }
    })
}

/// What is at the path, as the gate sees it (`lstat`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PathState {
    /// Nothing (`ENOENT`).
    Nothing,
    /// A socket.
    Socket,
    /// A regular file.
    RegularFile {
        /// Its contents, lossily decoded as UTF-8.
        content: String,
    },
    /// A directory.
    Directory,
    /// A symbolic link (not followed).
    Symlink,
    /// A named pipe.
    Fifo,
    /// Anything else (a device).
    Other,
}

fn path_state(path: &Path) -> PathState {
    let Ok(metadata) = std::fs::symlink_metadata(path) else { return PathState::Nothing };
    let kind = metadata.file_type();
    if kind.is_socket() {
        PathState::Socket
    } else if kind.is_file() {
        PathState::RegularFile { content: String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into() }
    } else if kind.is_dir() {
        PathState::Directory
    } else if kind.is_symlink() {
        PathState::Symlink
    } else if kind.is_fifo() {
        PathState::Fifo
    } else {
        PathState::Other
    }
}

/// What the gate saw, or should have seen, after an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Seen {
    /// The server accepts connections (and answered a round, for `Round`).
    Serving,
    /// The process exited with this status.
    Exited {
        /// The exit status as std shows it (`exit status: 1`), or `still running`.
        status: String,
    },
    /// The process exited successfully (0) or not.
    ExitedOk {
        /// Exited with status 0.
        ok: bool,
    },
    /// What was at the path.
    Path {
        /// What `lstat` shows there.
        state: PathState,
    },
    /// The process is still running.
    Running,
    /// The other server (the gate's listener) still accepts connections, or not.
    OtherServerAccepts {
        /// It accepts.
        accepts: bool,
    },
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Seen::Serving => f.write_str("the server serving"),
            Seen::Exited { status } => write!(f, "the server exited ({status})"),
            Seen::ExitedOk { ok: true } => f.write_str("the server exiting with status 0"),
            Seen::ExitedOk { ok: false } => f.write_str("the server exiting with a non-zero status"),
            Seen::Path { state } => write!(f, "at the path: {state:?}"),
            Seen::Running => f.write_str("the server still running"),
            Seen::OtherServerAccepts { accepts: true } => f.write_str("the other server still accepting"),
            Seen::OtherServerAccepts { accepts: false } => f.write_str("the other server no longer accepting"),
        }
    }
}

/// How a lifecycle broke SPEC.md section 7.
#[derive(Clone, Debug)]
pub struct LifecycleFailure {
    /// The event (numbered from 1) after which it was seen.
    pub event: usize,
    /// What a conforming server leads to (SPEC.md section 7).
    pub expected: Seen,
    /// What the gate saw.
    pub observed: Seen,
    /// The requirements the server broke.
    pub requirements: Vec<&'static str>,
    /// The gate's bytes in and out and its notes, over the whole lifecycle.
    pub transcript: Option<Transcript>,
}

impl fmt::Display for LifecycleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event {}: expected {}; observed {}", self.event, self.expected, self.observed)
    }
}

enum RunError {
    Failed(Box<LifecycleFailure>),
    Harness(String),
}

/// The model's view of the path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Model {
    /// Nothing there, or a socket nobody listens on (the server's own after `SIGKILL`).
    Free,
    /// The server runs and its socket is at the path.
    Serving,
    /// The server runs, but its file was replaced by a regular file.
    Replaced,
    /// Something a start must refuse and leave alone.
    Foreign,
}

const REPLACED: &str = "replaced while the server ran\n";
const USER_DATA: &str = "precious user data\n";

fn setup(ctx: &Ctx, occupant: Occupant) -> std::io::Result<Option<std::os::unix::net::UnixListener>> {
    let path = &ctx.socket;
    let dir = ctx.dir();
    match occupant {
        Occupant::Nothing => {}
        Occupant::StaleSocket => drop(std::os::unix::net::UnixListener::bind(path)?),
        Occupant::LiveServer => return Ok(Some(std::os::unix::net::UnixListener::bind(path)?)),
        Occupant::RegularFile => std::fs::write(path, USER_DATA)?,
        Occupant::Directory => std::fs::create_dir(path)?,
        Occupant::Symlink => {
            std::fs::write(dir.join("target"), USER_DATA)?;
            std::os::unix::fs::symlink(dir.join("target"), path)?;
        }
        Occupant::SymlinkToSocket => {
            drop(std::os::unix::net::UnixListener::bind(dir.join("real.sock"))?);
            std::os::unix::fs::symlink(dir.join("real.sock"), path)?;
        }
        Occupant::Fifo => rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::from_raw_mode(0o600))?,
    }
    Ok(None)
}

/// Plays `plan` against `target` in a fresh directory.
fn play(target: &Target, waits: Waits, plan: &LifecyclePlan) -> Result<(), RunError> {
    let harness = |problem: Problem| match problem {
        Problem::Fail(message)
        | Problem::Harness(message)
        | Problem::Inconclusive(message)
        | Problem::Skip(message) => RunError::Harness(message),
    };
    let mut ctx = Ctx::new(target, waits, Addressing::Path).map_err(harness)?;
    let listener = setup(&ctx, plan.occupant).map_err(|e| RunError::Harness(format!("cannot set up the path: {e}")))?;
    ctx.note(&format!("put {:?} at the path", plan.occupant));
    let mut model = match plan.occupant {
        Occupant::Nothing | Occupant::StaleSocket => Model::Free,
        _ => Model::Foreign,
    };
    let result = run_events(&mut ctx, plan, &mut model, listener.as_ref());
    drop(listener);
    result.map_err(|error| match error {
        RunError::Failed(mut failure) => {
            failure.transcript = Some(ctx.transcript());
            RunError::Failed(failure)
        }
        other => other,
    })
}

fn run_events(
    ctx: &mut Ctx,
    plan: &LifecyclePlan,
    model: &mut Model,
    listener: Option<&std::os::unix::net::UnixListener>,
) -> Result<(), RunError> {
    for (index, event) in plan.events.iter().enumerate() {
        let number = index + 1;
        let fail = |expected, observed, requirements: &[&'static str]| {
            Err(RunError::Failed(Box::new(LifecycleFailure {
                event: number,
                expected,
                observed,
                requirements: requirements.to_vec(),
                transcript: None,
            })))
        };
        let running = matches!(model, Model::Serving | Model::Replaced);
        match (event, running) {
            (Event::Start, false) => {
                if *model == Model::Free {
                    // SPEC: LIFE-BIND-1, LIFE-STALE-1 — nothing or a stale socket: it binds.
                    match ctx.start_server() {
                        Ok(()) => *model = Model::Serving,
                        Err(Problem::Fail(_)) => {
                            let status = ctx.exited().map_or("still running".into(), |s| s.to_string());
                            return fail(Seen::Serving, Seen::Exited { status }, &["LIFE-BIND-1", "LIFE-STALE-1"]);
                        }
                        Err(Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message)) => {
                            return Err(RunError::Harness(message))
                        }
                    }
                } else {
                    // SPEC: LIFE-FOREIGN-1, LIFE-LIVE-1 — refuse, exit non-zero, leave it alone.
                    let ids: &[&str] = if listener.is_some() { &["LIFE-LIVE-1"] } else { &["LIFE-FOREIGN-1"] };
                    let before = path_state(&ctx.socket);
                    ctx.spawn().map_err(|p| RunError::Harness(format!("{p:?}")))?;
                    let status = match ctx.wait_refusal("something foreign was at the path", |_| None) {
                        Ok(status) => status,
                        Err(Problem::Fail(_)) => return fail(Seen::ExitedOk { ok: false }, Seen::Running, ids),
                        Err(Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message)) => {
                            return Err(RunError::Harness(message))
                        }
                    };
                    if status.success() {
                        return fail(Seen::ExitedOk { ok: false }, Seen::ExitedOk { ok: true }, ids);
                    }
                    let now = path_state(&ctx.socket);
                    if now != before {
                        return fail(Seen::Path { state: before }, Seen::Path { state: now }, ids);
                    }
                    if let Some(listener) = listener {
                        let accepts =
                            super::harness::connect_bounded(&ctx.socket, Instant::now() + ctx.timeout).is_ok();
                        let _ = listener.accept();
                        if !accepts {
                            return fail(
                                Seen::OtherServerAccepts { accepts: true },
                                Seen::OtherServerAccepts { accepts },
                                ids,
                            );
                        }
                    }
                }
            }
            (Event::Round, true) if *model == Model::Serving => {
                let mut conn = match ctx.connect() {
                    Ok(conn) => conn,
                    Err(Problem::Fail(_)) => return fail(Seen::Serving, Seen::Running, &["LIFE-BIND-1"]),
                    Err(Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message)) => {
                        return Err(RunError::Harness(message))
                    }
                };
                conn.send(b"pingend");
                let (got, closed) = conn.read_for(ctx.timeout);
                if got != b"pong" || !closed {
                    return fail(Seen::Serving, Seen::Running, &["LIFE-BIND-1", "LIFE-STALE-1"]);
                }
            }
            (Event::Replace, true) if *model == Model::Serving => {
                std::fs::remove_file(&ctx.socket)
                    .and_then(|()| std::fs::write(&ctx.socket, REPLACED))
                    .map_err(|e| RunError::Harness(format!("cannot replace the socket file: {e}")))?;
                ctx.note("replaced the socket file with a regular file");
                *model = Model::Replaced;
            }
            (Event::Term | Event::Int, true) => {
                let (signal, name) =
                    if *event == Event::Term { (Signal::TERM, "SIGTERM") } else { (Signal::INT, "SIGINT") };
                ctx.signal(signal, name).map_err(|p| RunError::Harness(format!("{p:?}")))?;
                let status = match ctx.wait_exit(&format!("sent {name}")) {
                    Ok(status) => status,
                    Err(Problem::Fail(_)) => return fail(Seen::ExitedOk { ok: true }, Seen::Running, &["LIFE-SHUT-1"]),
                    Err(Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message)) => {
                        return Err(RunError::Harness(message))
                    }
                };
                if !status.success() {
                    return fail(
                        Seen::ExitedOk { ok: true },
                        Seen::Exited { status: status.to_string() },
                        &["LIFE-SHUT-1"],
                    );
                }
                let now = path_state(&ctx.socket);
                // SPEC: LIFE-SHUT-1, LIFE-SHUT-2 — its own file removed; a replacement left alone.
                let (expected, ids, next): (PathState, &[&str], Model) = if *model == Model::Replaced {
                    (PathState::RegularFile { content: REPLACED.into() }, &["LIFE-SHUT-2"], Model::Foreign)
                } else {
                    (PathState::Nothing, &["LIFE-SHUT-1"], Model::Free)
                };
                if now != expected {
                    return fail(Seen::Path { state: expected }, Seen::Path { state: now }, ids);
                }
                *model = next;
            }
            (Event::Kill, true) => {
                ctx.signal(Signal::KILL, "SIGKILL").map_err(|p| RunError::Harness(format!("{p:?}")))?;
                ctx.wait_exit("sent SIGKILL").map_err(|p| RunError::Harness(format!("{p:?}")))?;
                // Its socket stays behind, stale (or the replacement stays, foreign).
                *model = if *model == Model::Replaced { Model::Foreign } else { Model::Free };
            }
            _ => continue, // not meaningful in this state
        }
    }
    Ok(())
}

/// What a lifecycle exploration found.
#[derive(Clone, Debug)]
pub struct LifecycleFound {
    /// Which generated case of the seed failed (from 0).
    pub index: u64,
    /// The shrunk lifecycle that still fails.
    pub minimal: LifecyclePlan,
    /// How the server failed in the minimal lifecycle.
    pub failure: LifecycleFailure,
    /// How re-running the minimal lifecycle went.
    pub confirmation: Confirmation,
}

/// Runs `cases` generated lifecycles against the server `target`; shrinks and confirms the
/// first failure. Returns how many ran, what was found, and a harness error.
pub fn explore(target: &Target, cases: u32, seed: u64, waits: Waits) -> (u64, Option<LifecycleFound>, Option<String>) {
    for index in 0..u64::from(cases) {
        let config =
            Config { cases: 1, failure_persistence: None, max_shrink_iters: 100, verbose: 0, ..Config::default() };
        // Offset from the conversations' cases, so the two explorations draw different numbers.
        let mut runner = TestRunner::new_with_rng(config, rng_for(seed, index | 1 << 63));
        let Ok(tree) = plans().new_tree(&mut runner) else { break };
        let last = RefCell::new(None);
        let errors = RefCell::new(None);
        let result = runner.run_one(tree, |plan| match play(target, waits, &plan) {
            Ok(()) => Ok(()),
            Err(RunError::Failed(failure)) => {
                let message = failure.to_string();
                *last.borrow_mut() = Some(*failure);
                Err(TestCaseError::fail(message))
            }
            Err(RunError::Harness(message)) => {
                errors.borrow_mut().get_or_insert(message);
                Ok(())
            }
        });
        if let Some(error) = errors.into_inner() {
            return (index + 1, None, Some(error));
        }
        if let Err(TestError::Fail(_, minimal)) = result {
            let mut confirmation = Confirmation { runs: 0, failed: 0 };
            let mut failure = None;
            for _ in 0..super::explore::CONFIRM_RUNS {
                confirmation.runs += 1;
                if let Err(RunError::Failed(f)) = play(target, waits, &minimal) {
                    confirmation.failed += 1;
                    failure.get_or_insert(*f);
                }
            }
            let found =
                failure.or(last.into_inner()).map(|failure| LifecycleFound { index, minimal, failure, confirmation });
            return (index + 1, found, None);
        }
    }
    (u64::from(cases), None, None)
}

/// The lifecycle exploration as report cases.
pub fn reports(
    ran: u64,
    found: Option<&LifecycleFound>,
    error: Option<&str>,
    seed: u64,
    elapsed: Duration,
) -> Vec<CaseReport> {
    let requirements = spec::requirements();
    let level_of = |ids: &[&str]| spec::strongest_level(&requirements, ids);
    let all = vec!["LIFE-BIND-1", "LIFE-STALE-1", "LIFE-LIVE-1", "LIFE-FOREIGN-1", "LIFE-SHUT-1", "LIFE-SHUT-2"];
    let report = |id, title, requirements: Vec<&'static str>, outcome, message, transcript| CaseReport {
        id,
        title,
        level: level_of(&requirements),
        requirements,
        section: SECTION.to_string(),
        outcome,
        duration: elapsed,
        message,
        transcript,
        script: None,
        first_run: None,
    };
    if let Some(error) = error {
        let message = Some(format!("harness error: {error}"));
        return vec![report(
            "server/explore-lifecycle/harness",
            "exploration could not run",
            all,
            Outcome::Error,
            message,
            None,
        )];
    }
    let Some(found) = found else {
        let title: &'static str =
            Box::leak(format!("{ran} generated lifecycles (seed {seed}), none failed").into_boxed_str());
        return vec![report("server/explore-lifecycle/generated", title, all, Outcome::Pass, None, None)];
    };
    let verdict = if found.confirmation.is_flaky() { "FLAKY: the minimal plan failed" } else { "confirmed: failed" };
    let message = format!(
        "{}: {}\n        minimal lifecycle: {}; {verdict} {} of {} re-runs",
        found.failure.requirements.join(", "),
        found.failure,
        found.minimal,
        found.confirmation.failed,
        found.confirmation.runs
    );
    // As in `explore`: a report's IDs are static; a run makes one.
    let id: &'static str =
        Box::leak(format!("server/explore-lifecycle/seed-{seed}-case-{}", found.index).into_boxed_str());
    vec![report(
        id,
        "a generated lifecycle, shrunk",
        found.failure.requirements.clone(),
        Outcome::Fail,
        Some(message),
        found.failure.transcript.clone(),
    )]
}
