//! `udsping conform`: judges any implementation of SPEC.md, server or client, through its
//! socket, its process and the filesystem, the way h2spec judges HTTP/2 servers.
//!
//! - [`harness`]: the process in a fresh directory, recorded connections, bounded waits
//!   (processes themselves are [`crate::process`]'s, connecting is [`crate::net`]'s).
//! - [`server_cases`], [`client_cases`]: the cases, named by the SPEC.md section they check
//!   (`server/5.3/...`) and listing the requirement IDs they hold the implementation to.
//! - [`report`]: human, JSON and JUnit reports, organised like SPEC.md.
//! - [`script`]: a conversation as a value and the one runner that plays it; [`model`]
//!   computes a script's expectations from the protocol core; [`rows`] holds the stream cases
//!   of sections 4.2 to 5.4 as data.
//! - [`explore`]: generated conversations against a server, shrunk and confirmed (`--explore`,
//!   `--replay`); [`explore_lifecycle`]: generated lifecycles of the socket file (section 7);
//!   [`explore_client`]: generated servers against a client; [`export`]: the
//!   stream cases and generated scripts as JSON test vectors (`conform export DIR`).
//! - [`list`]: `--list`, the cases a run would select; [`target`]: `-- CMD`, checked runnable.
//!
//! A case's level is the strongest level among its requirements, read from SPEC.md itself, so a
//! case cannot claim to check a MUST that SPEC.md calls a SHOULD.

pub mod client_cases;
pub mod explore;
pub mod explore_client;
pub mod explore_lifecycle;
pub mod export;
pub mod harness;
pub mod list;
pub mod model;
pub mod report;
pub mod rows;
pub mod script;
pub mod server_cases;
pub mod target;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{Addressing, Ctx, Problem, Target, Transcript};

use crate::spec::{self, Level, Requirement};

/// Which side of the protocol is under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The implementation is a server; the gate connects to it as clients.
    Server,
    /// The implementation is a client; the gate is the server it connects to.
    Client,
}

impl Role {
    /// `server` or `client`, as in case IDs and the command line.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

/// One conformance case.
pub struct Case {
    /// `role/section/name`, for example `server/4.2/split-ping`.
    pub id: &'static str,
    /// The side of the protocol the case tests.
    pub role: Role,
    /// SPEC.md requirement IDs this case holds the implementation to.
    pub requirements: &'static [&'static str],
    pub(crate) title: &'static str,
    /// The kind of address the case needs the implementation to be given.
    pub needs: Needs,
    pub(crate) run: fn(&mut Ctx) -> harness::CaseResult,
}

/// Which addressing a case applies to (`--abstract` chooses the run's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// Any: the case talks only through connections and the process.
    Any,
    /// A socket file: the case checks or prepares the file (section 7.1 to 7.4).
    SocketFile,
    /// An abstract address (section 7.6).
    AbstractAddress,
}

impl Needs {
    /// Why a case does not apply under `addressing`, if it does not.
    pub fn excluded_by(&self, addressing: Addressing) -> Option<&'static str> {
        match (self, addressing) {
            (Needs::SocketFile, Addressing::Abstract) => {
                Some("needs a socket file; this run gives the implementation an abstract address (--abstract)")
            }
            (Needs::AbstractAddress, Addressing::Path) => {
                Some("about abstract addresses; runs with --abstract (TRN-ABSTRACT-1 is a MAY)")
            }
            _ => None,
        }
    }
}

impl Case {
    /// The SPEC.md section number in the ID (`4.2`).
    pub fn section_number(&self) -> &'static str {
        self.id.split('/').nth(1).unwrap_or("")
    }
}

/// Every case for `role`.
pub fn cases(role: Role) -> Vec<Case> {
    match role {
        Role::Server => server_cases::cases(),
        Role::Client => client_cases::cases(),
    }
}

/// Requirements that no case can observe from outside, and why. Every other requirement of
/// SPEC.md has at least one case (checked by `tests/conform.rs`). A report never claims these
/// (SPEC.md section 8): it lists them as unobservable.
pub const NOT_OBSERVABLE: &[(&str, &str)] = &[
    ("TRN-PATH-1", "the gate always runs the target in a directory whose socket is `udsocket`, so it cannot tell a default from an argument"),
    ("WIRE-DECODE-1", "memory held per connection is internal; it is bounded by the grammar for every input the gate can send"),
    ("WIRE-CLOSE-1", "it governs how a peer reads; the gate's own reads follow it"),
    ("SRV-PONG-4", "a MAY: batching writes is invisible on a byte stream"),
    ("SRV-EOF-2", "logs and counters are not part of the protocol"),
    ("LIFE-RACE-1", "needs another process to replace the file inside a microsecond window"),
    ("LIFE-RACE-2", "needs another process to bind inside a microsecond window"),
    ("LIFE-PERM-2", "a MAY: the option's name is the implementation's own"),
    ("SRV-LIMIT-1", "the limit and how to set it are the implementation's own"),
    ("SRV-IDLE-1", "the timeout is the implementation's (the reference's default is 120 s), too long for a gate case"),
    ("SRV-IDLE-2", "it needs the implementation's connection table full, and its limit and threshold are its own"),
    ("SRV-WRITE-1", "the timeout and how to set it are the implementation's own"),
    ("SRV-COUNT-1", "counters are internal; how they are shown is the implementation's own"),
    ("LIFE-CRED-1", "the allow lists and how to set them are the implementation's own, and testing needs root"),
    ("LIFE-CRED-2", "the allow lists and how refusals are reported are the implementation's own"),
    ("LIFE-RACE-3", "needs a racing process and thousands of attempts (tests/race.rs does it for the reference)"),
    ("LIFE-BIND-2", "needs the target's start to fail after bind, which needs control of its resource limits"),
    ("LIFE-SHUT-3", "observable (SIGHUP or SIGQUIT, then as LIFE-SHUT-1), but no case is written yet: a SHOULD"),
    ("SRV-LOG-1", "logs are not part of the protocol"),
    ("CLT-TIMEOUT-1", "the timeout and how to set it are the implementation's own (the reference's default is 10 s)"),
];

/// What became of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every expectation of the case held.
    Pass,
    /// An expectation did not hold: the implementation does not conform (`message` says how).
    Fail,
    /// The case did not apply, or was not selected.
    Skip,
    /// The case ran but could not exercise what it tests (the reason says why); never a pass.
    Inconclusive,
    /// The harness could not run the case.
    Error,
}

impl Outcome {
    /// The outcome in lowercase, as in the JSON report.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Skip => "skip",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Error => "error",
        }
    }
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The case's ID, `role/section/name`.
    pub id: &'static str,
    pub(crate) title: &'static str,
    /// The SPEC.md requirement IDs the case holds the implementation to.
    pub requirements: Vec<&'static str>,
    /// The strongest level among them: a failed MUST fails the run, a SHOULD only with `strict`.
    pub level: Level,
    /// The SPEC.md section heading the case belongs to.
    pub section: String,
    /// What became of the case.
    pub outcome: Outcome,
    /// Wall-clock time the case took.
    pub duration: Duration,
    /// Why the case did not pass (or was not run); `None` for a pass.
    pub message: Option<String>,
    /// The bytes and events of the case, where it ran.
    pub transcript: Option<Transcript>,
    /// For a script-shaped case (exploration, replay): the script and how it failed.
    pub script: Option<Box<explore::ScriptReport>>,
    /// What the case's first run saw, when the target did not get going there (a start
    /// spawned before any start had succeeded with no sign of life in its time, or held back
    /// by the early stop) but started in other cases, so the case was run once more after the
    /// others; this report is that second run's.
    pub first_run: Option<FirstRun>,
}

/// A case's first run, when it ran twice (see [`run`]).
#[derive(Clone, Debug)]
pub struct FirstRun {
    /// What became of it (a failure or an error, since only those are run again).
    pub outcome: Outcome,
    /// Wall-clock time it took.
    pub duration: Duration,
    /// Why it did not pass.
    pub message: Option<String>,
}

/// Whether a case's run is a verdict on the target, or says only that the target never got
/// going in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ran {
    /// The report stands.
    Judged,
    /// A start spawned before any start had succeeded showed no sign of life in its time (or
    /// the case was held back because of such starts): run the case again if the target
    /// started in another case.
    NotStarted,
}

/// How to run the suite.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--only` patterns: run only cases whose ID or a requirement matches one (all when empty).
    pub only: Vec<glob::Pattern>,
    /// `--skip` patterns: skip cases whose ID or a requirement matches one.
    pub skip: Vec<glob::Pattern>,
    /// Deadline for each expected event within a case.
    pub timeout: Duration,
    /// How long a server may take to accept its first connection or to refuse to start (a
    /// client, to connect).
    pub startup_timeout: Duration,
    /// Failed SHOULD cases also fail the run (`--strict`).
    pub strict: bool,
    /// Cases run at once, each with its own target process (`--jobs`).
    pub jobs: usize,
    /// How the target's socket is named: a path or an abstract name.
    pub addressing: Addressing,
}

impl Options {
    /// The waits for the target that these options give.
    pub fn waits(&self) -> harness::Waits {
        harness::Waits { timeout: self.timeout, startup_timeout: self.startup_timeout }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            only: Vec::new(),
            skip: Vec::new(),
            timeout: Duration::from_millis(2000),
            startup_timeout: Duration::from_secs(5),
            strict: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            addressing: Addressing::Path,
        }
    }
}

fn pattern_matches(pattern: &glob::Pattern, case: &Case) -> bool {
    pattern.matches(case.id) || case.requirements.iter().any(|r| pattern.matches(r))
}

impl Options {
    /// Whether `case` runs: it matches an `--only` pattern (if any) by ID or requirement, and
    /// no `--skip` pattern.
    pub fn selects(&self, case: &Case) -> bool {
        let matches = |patterns: &[glob::Pattern]| patterns.iter().any(|p| pattern_matches(p, case));
        (self.only.is_empty() || matches(&self.only)) && !matches(&self.skip)
    }
}

/// Why the gate cannot run at all (exit status 2, before any case).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The target command could not be started.
    #[error(transparent)]
    Target(#[from] crate::process::SpawnError),
    /// `--only` or `--skip` leaves no case to run.
    #[error("{option} {patterns} selects no {role} case (`udsping conform {role} --list` lists them)")]
    NothingSelected {
        /// `--only` or `--skip`.
        option: &'static str,
        /// The option's patterns, comma-separated.
        patterns: String,
        /// `server` or `client`.
        role: &'static str,
    },
    /// A case's socket path would not fit in `sun_path` (TMPDIR is too deep).
    #[error(
        "the socket path {path} would be {length} bytes, more than sun_path holds (107): set TMPDIR to a shorter directory"
    )]
    PathTooLong {
        /// The socket path a case would use.
        path: String,
        /// Its length in bytes.
        length: usize,
    },
}

/// A `--only`/`--skip` pattern that matches no case while others do: a warning, not an error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{option} {pattern:?} matches no {role} case")]
pub struct UnmatchedPattern {
    /// `--only` or `--skip`.
    pub option: &'static str,
    /// The pattern as given.
    pub pattern: String,
    /// `server` or `client`.
    pub role: &'static str,
}

/// Checks, before any case runs, what would make every case fail for the gate's own reasons:
/// a program that cannot be started, a selection of no case, a temporary directory whose
/// socket path does not fit in `sun_path` (SPEC: TRN-PATH-2). Returns warnings (a pattern
/// that matches nothing while others match).
pub fn preflight(role: Role, target: &Target, options: &Options) -> Result<Vec<UnmatchedPattern>, GateError> {
    target.check()?;
    if options.addressing == Addressing::Path {
        // What the cases will use: a directory `udsping-conform-XXXXXX` in the temporary
        // directory, and `udsocket` in it.
        let path = std::env::temp_dir().join("udsping-conform-XXXXXX").join("udsocket");
        let length = path.as_os_str().len();
        if length > 107 {
            return Err(GateError::PathTooLong { path: path.display().to_string(), length });
        }
    }
    let all = cases(role);
    let mut warnings = Vec::new();
    for (option, patterns) in [("--only", &options.only), ("--skip", &options.skip)] {
        for pattern in patterns.iter() {
            if !all.iter().any(|c| pattern_matches(pattern, c)) {
                warnings.push(UnmatchedPattern { option, pattern: pattern.as_str().to_string(), role: role.as_str() });
            }
        }
    }
    if !all.iter().any(|c| options.selects(c)) {
        let only_matches_nothing = options.only.iter().all(|p| !all.iter().any(|c| pattern_matches(p, c)));
        let (option, patterns) = if !options.only.is_empty() && only_matches_nothing {
            ("--only", &options.only)
        } else {
            ("--skip", &options.skip)
        };
        let patterns = patterns.iter().map(|p| format!("{:?}", p.as_str())).collect::<Vec<_>>().join(", ");
        return Err(GateError::NothingSelected { option, patterns, role: role.as_str() });
    }
    Ok(warnings)
}

/// How a profile of SPEC.md section 8 fared in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileStatus {
    /// Every MUST of the profile the gate can observe was checked and passed.
    Met,
    /// A MUST case of the profile failed.
    NotMet,
    /// Nothing failed, but some observable MUST was not checked (skipped, inconclusive, not
    /// selected, or the harness could not run its case).
    Incomplete,
}

/// One profile's verdict, with what it rests on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ProfileVerdict {
    /// The profile's name, as in SPEC.md section 8.
    pub name: &'static str,
    /// Whether the run shows the implementation meets the profile.
    pub status: ProfileStatus,
    /// Observable MUSTs of the profile, for this role, that were checked (every case citing
    /// them ran).
    pub checked: usize,
    /// MUSTs of the profile, for this role, that some case can observe.
    pub observable: usize,
    /// MUSTs of the profile, for this role, that no case can observe: a report claims nothing
    /// about them.
    pub unobservable: Vec<&'static str>,
    /// MUSTs with a failed case.
    pub failed: Vec<&'static str>,
}

/// Whether a requirement binds `role`: SRV-* and LIFE-* bind servers, CLT-* clients, TRN-*
/// and WIRE-* both (SPEC.md section 8).
pub fn applies_to(id: &str, role: Role) -> bool {
    match role {
        Role::Server => !id.starts_with("CLT-"),
        Role::Client => !id.starts_with("SRV-") && !id.starts_with("LIFE-"),
    }
}

/// The whole run.
#[derive(Clone, Debug)]
pub struct SuiteReport {
    /// The side of the protocol tested.
    pub role: Role,
    /// The command that was tested.
    pub target: Target,
    /// The options the suite ran with.
    pub options: Options,
    /// One report per case of the role, selected or not, in the suite's order (then exploration's, if any).
    pub cases: Vec<CaseReport>,
}

impl SuiteReport {
    pub(crate) fn count(&self, outcome: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == outcome).count()
    }

    /// Failed cases that fail the run: MUST ones, and SHOULD ones with `--strict`.
    pub fn blocking_failures(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Fail && (c.level == Level::Must || self.options.strict))
            .count()
    }

    /// 0 every MUST case passed; 1 a MUST case failed (or a SHOULD with `--strict`); 2 the
    /// harness could not run a case.
    pub fn exit_code(&self) -> u8 {
        if self.count(Outcome::Error) > 0 {
            2
        } else if self.blocking_failures() > 0 {
            1
        } else {
            0
        }
    }

    /// Per profile of SPEC.md section 8 that binds this role: met only when every observable
    /// MUST of the profile (for this role) was checked and passed.
    pub fn profiles(&self) -> Vec<ProfileVerdict> {
        let requirements = spec::requirements();
        let all_cases = cases(self.role);
        spec::PROFILES
            .iter()
            .map(|&profile| {
                let musts: Vec<&'static str> = requirements
                    .iter()
                    .filter(|r| r.profile == profile && r.level == Level::Must && applies_to(r.id, self.role))
                    .map(|r| r.id)
                    .collect();
                // A MUST that only cases for the other kind of address cite binds only servers
                // that use abstract addresses (a MAY): it does not count in a path run.
                let optional_here = |id: &&str| {
                    let citing: Vec<&Case> = all_cases.iter().filter(|c| c.requirements.contains(id)).collect();
                    !citing.is_empty()
                        && self.options.addressing == Addressing::Path
                        && citing.iter().all(|c| c.needs == Needs::AbstractAddress)
                };
                let musts: Vec<&'static str> = musts.into_iter().filter(|id| !optional_here(id)).collect();
                let (observable, unobservable): (Vec<&str>, Vec<&str>) =
                    musts.iter().partition(|id| all_cases.iter().any(|c| c.requirements.contains(id)));
                let cases = &self.cases;
                let citing = |id: &'static str| cases.iter().filter(move |c| c.requirements.contains(&id));
                let failed: Vec<&'static str> = observable
                    .iter()
                    .copied()
                    .filter(|id| citing(id).any(|c| c.outcome == Outcome::Fail && c.level == Level::Must))
                    .collect();
                let checked = observable
                    .iter()
                    .filter(|id| citing(id).all(|c| matches!(c.outcome, Outcome::Pass | Outcome::Fail)))
                    .count();
                let status = if !failed.is_empty() {
                    ProfileStatus::NotMet
                } else if checked == observable.len() {
                    ProfileStatus::Met
                } else {
                    ProfileStatus::Incomplete
                };
                ProfileVerdict { name: profile, status, checked, observable: observable.len(), unobservable, failed }
            })
            // A profile with no MUST for this role (lifecycle, for a client) is not claimed.
            .filter(|verdict| verdict.observable + verdict.unobservable.len() > 0)
            .collect()
    }
}

/// The strongest level among `ids`, and the SPEC.md section heading for `section_number`.
fn describe(requirements: &[Requirement<'_>], ids: &[&str], section_number: &str) -> (Level, String) {
    let level = spec::strongest_level(requirements, ids);
    let section = requirements
        .iter()
        .map(|r| r.section)
        .find(|s| s.strip_prefix(section_number).is_some_and(|rest| rest.starts_with([' ', '.'])))
        .unwrap_or(section_number);
    (level, section.to_string())
}

/// Plain starts that must fail, with none succeeding, before the run stops starting the target.
const FAILED_STARTS_BEFORE_STOPPING: usize = 2;

/// What the cases so far say about the target as a whole: once it has failed to start in
/// the first cases (or daemonized), every remaining case would wait out the same deadlines
/// for the same reason, so they are reported as errors with that cause instead.
#[derive(Default)]
struct EarlyStop {
    /// When a start first succeeded, as the cases see it the moment it happens.
    starts: harness::RunStarts,
    /// Plain starts that failed.
    failed_starts: Vec<String>,
    /// Refusals awaited in vain from silent processes: they count towards the stop once a
    /// plain start failed too (alone they say only that the target does not refuse).
    unanswered_refusals: usize,
    fatal: Option<String>,
}

impl EarlyStop {
    /// Why the next case is not run, if it is not, and whether it is to be run after all
    /// should the target start in a case already under way (a fatal cause holds regardless).
    fn stopped(&self) -> Option<(String, Ran)> {
        if let Some(fatal) = &self.fatal {
            return Some((fatal.clone(), Ran::Judged));
        }
        let failed = self.failed_starts.len() + self.unanswered_refusals;
        let first =
            self.failed_starts.first().filter(|_| !self.starts.any() && failed >= FAILED_STARTS_BEFORE_STOPPING)?;
        let cause = format!("not run: the target failed to start in the first {failed} cases ({first})");
        Some((cause, Ran::NotStarted))
    }
}

/// Runs the selected cases of `role` against `target`, `options.jobs` at a time. A case whose
/// start, spawned before any start had succeeded, showed no sign of life in its time runs
/// once more after the others if the target started in another case (so do cases the early
/// stop held back meanwhile); its report is the second run's, with [`CaseReport::first_run`].
pub fn run(role: Role, target: &Target, options: &Options) -> SuiteReport {
    run_with_progress(role, target, options, &|_, _, _| {})
}

/// [`run`], calling `progress(report, done, total)` as each selected case finishes.
pub fn run_with_progress(
    role: Role,
    target: &Target,
    options: &Options,
    progress: &(dyn Fn(&CaseReport, usize, usize) + Sync),
) -> SuiteReport {
    let requirements = spec::requirements();
    let all = cases(role);
    let total = all.iter().filter(|c| options.selects(c) && c.needs.excluded_by(options.addressing).is_none()).count();
    let slots: Vec<Mutex<Option<(CaseReport, Ran)>>> = all.iter().map(|_| Mutex::new(None)).collect();
    let done = AtomicUsize::new(0);
    let early_stop = Mutex::new(EarlyStop::default());
    let run_all = |indices: &[usize], first_runs: &[FirstRun], total: usize| {
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..options.jobs.max(1).min(indices.len()) {
                scope.spawn(|| loop {
                    let at = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&index) = indices.get(at) else { break };
                    let (mut report, ran) = run_case(&all[index], &requirements, target, options, &early_stop);
                    report.first_run = first_runs.get(at).cloned();
                    if !matches!(report.outcome, Outcome::Skip) || report.duration > Duration::ZERO {
                        progress(&report, done.fetch_add(1, Ordering::SeqCst) + 1, total);
                    }
                    *slots[index].lock().unwrap_or_else(|p| p.into_inner()) = Some((report, ran));
                });
            }
        });
    };
    run_all(&(0..all.len()).collect::<Vec<_>>(), &[], total);
    // A start that showed no sign of life within --startup-timeout, while the target started
    // in other cases, says more about the machine than the target: the first start after a
    // VM is restored, or on a cold page cache, can take seconds longer than the next. Such
    // cases (and those the early stop did not run because of them) run once more, after the
    // others; the progress count goes on past the first total.
    let started_somewhere = early_stop.lock().unwrap_or_else(|p| p.into_inner()).starts.any();
    let (again, first_runs): (Vec<usize>, Vec<FirstRun>) = slots
        .iter()
        .enumerate()
        .filter_map(|(index, slot)| match &*slot.lock().unwrap_or_else(|p| p.into_inner()) {
            Some((report, Ran::NotStarted))
                if started_somewhere && matches!(report.outcome, Outcome::Fail | Outcome::Error) =>
            {
                Some((
                    index,
                    FirstRun { outcome: report.outcome, duration: report.duration, message: report.message.clone() },
                ))
            }
            _ => None,
        })
        .unzip();
    if !again.is_empty() {
        run_all(&again, &first_runs, total + again.len());
    }
    let cases = slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every case ran").0)
        .collect();
    SuiteReport { role, target: target.clone(), options: options.clone(), cases }
}

fn run_case(
    case: &Case,
    requirements: &[Requirement<'_>],
    target: &Target,
    options: &Options,
    early_stop: &Mutex<EarlyStop>,
) -> (CaseReport, Ran) {
    let (level, section) = describe(requirements, case.requirements, case.section_number());
    let mut report = CaseReport {
        id: case.id,
        title: case.title,
        requirements: case.requirements.to_vec(),
        level,
        section,
        outcome: Outcome::Skip,
        duration: Duration::ZERO,
        message: None,
        transcript: None,
        script: None,
        first_run: None,
    };
    if !options.selects(case) {
        report.message = Some("not selected by --only/--skip".into());
        return (report, Ran::Judged);
    }
    if let Some(reason) = case.needs.excluded_by(options.addressing) {
        report.message = Some(reason.into());
        return (report, Ran::Judged);
    }
    let (stopped, run_starts) = {
        let stop = early_stop.lock().unwrap_or_else(|p| p.into_inner());
        (stop.stopped(), stop.starts.clone())
    };
    if let Some((cause, ran)) = stopped {
        (report.outcome, report.message) = (Outcome::Error, Some(cause));
        report.duration = Duration::from_nanos(1);
        return (report, ran);
    }
    let started = Instant::now();
    let side = match case.role {
        Role::Server => harness::Side::Server,
        Role::Client => harness::Side::Client,
    };
    let mut ran = Ran::Judged;
    let (result, transcript) = match Ctx::for_side(target, options.waits(), options.addressing, side) {
        Ok(mut ctx) => {
            ctx.run_starts = run_starts;
            let mut result = (case.run)(&mut ctx);
            // SPEC: SRV-INVALID-2, SRV-ISOLATE-1 — a server that died inside a case is
            // reported as such, whatever the case itself concluded.
            if let Some(death) = ctx.death_during_case(matches!(result, Err(Problem::Fail(_)))) {
                result = Err(match result {
                    Err(Problem::Inconclusive(message)) => Problem::Inconclusive(format!("{message}; and {death}")),
                    Ok(()) => Problem::Fail(format!(
                        "{death}; nothing asked it to stop (a server that crashes on what a client sends breaks \
                         SRV-INVALID-2 and SRV-ISOLATE-1)"
                    )),
                    Err(Problem::Fail(message)) => Problem::Fail(format!("{death}; {message}")),
                    Err(other) => other,
                });
            }
            let mut stop = early_stop.lock().unwrap_or_else(|p| p.into_inner());
            stop.failed_starts.extend(ctx.start_failure.take());
            stop.unanswered_refusals += usize::from(ctx.refusal_unanswered);
            if ctx.start_timed_out {
                ran = Ran::NotStarted;
            }
            if stop.fatal.is_none() {
                stop.fatal = ctx.fatal.take();
            }
            drop(stop);
            let transcript = ctx.transcript();
            drop(ctx); // kills and reaps the target before the case is reported
            (result, Some(transcript))
        }
        Err(problem) => (Err(problem), None),
    };
    report.duration = started.elapsed();
    report.transcript = transcript;
    (report.outcome, report.message) = match result {
        Ok(()) => (Outcome::Pass, None),
        Err(Problem::Fail(message)) => (Outcome::Fail, Some(format!("{}: {message}", case.requirements.join(", ")))),
        Err(Problem::Inconclusive(message)) => (Outcome::Inconclusive, Some(format!("inconclusive: {message}"))),
        Err(Problem::Skip(message)) => (Outcome::Skip, Some(message)),
        Err(Problem::Harness(message)) => (Outcome::Error, Some(format!("harness error: {message}"))),
    };
    (report, ran)
}
