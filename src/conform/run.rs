//! Running the gate: one [`Options`] (selection, waits, parallelism, addressing and, as an
//! optional part, exploration), [`preflight`] (what would make every case fail for the gate's
//! own reasons), and the runner: the selected cases `--jobs` at a time, each in a world of its
//! own, with the run's early stop, its second runs of cold first starts, and its verdict on a
//! target that never started; then exploration; or, instead, a replay of saved scripts. The
//! run's report ([`SuiteReport`]) and its exit status live here too.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::case::{Case, Role, Run};
use super::cases::{self, rows};
use super::explore::{self, Env, ExploreOptions};
use super::harness::{Addressing, Ctx, RunStarts, Waits, AFTERMATH};
use super::outcome::{CaseReport, FirstRun, Outcome};
use super::script::{self, Script};
use super::verdict::{human_duration, Exercise, Observation, Problem};
use crate::process::{FirstTries, Target};
use crate::spec;

/// How to run the gate.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--only` patterns: run only cases whose ID or a requirement matches one (all when empty).
    pub only: Vec<glob::Pattern>,
    /// `--skip` patterns: skip cases whose ID or a requirement matches one.
    pub skip: Vec<glob::Pattern>,
    /// How long the target is waited for (`--timeout`, `--startup-timeout`, `--case-timeout`).
    pub waits: Waits,
    /// Failed SHOULD cases also fail the run (`--strict`).
    pub strict: bool,
    /// Cases run at once, each with its own target process (`--jobs`).
    pub jobs: usize,
    /// How the target's socket is named: a path or an abstract name.
    pub addressing: Addressing,
    /// Generated cases after the fixed ones (`--explore`).
    pub explore: Option<ExploreOptions>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            only: Vec::new(),
            skip: Vec::new(),
            waits: Waits::default(),
            strict: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            addressing: Addressing::Path,
            explore: None,
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

    /// What exploration works against.
    pub fn env<'a>(&self, target: &'a Target) -> Env<'a> {
        Env { target, waits: self.waits, addressing: self.addressing, jobs: self.jobs }
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
    let all = cases::all(role);
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

/// Plain starts that must fail, with none succeeding, before the run stops starting the target.
const FAILED_STARTS_BEFORE_STOPPING: usize = 2;

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

/// What the cases so far say about the target as a whole: once it has failed to start in
/// the first cases (or daemonized), every remaining case would wait out the same deadlines
/// for the same reason, so they are reported as errors with that cause instead.
#[derive(Default)]
struct EarlyStop {
    /// When a start first succeeded, as the cases see it the moment it happens.
    starts: RunStarts,
    /// The plain starts that failed, and the refusals awaited in vain from silent processes
    /// (they count towards the stop only beside a failed plain start: alone they say only that
    /// the target does not refuse).
    tries: FirstTries,
    /// Whether any case made a plain start.
    plain_starts: bool,
    fatal: Option<String>,
}

impl EarlyStop {
    /// Why the next case is not run, if it is not, and whether it is to be run after all
    /// should the target start in a case already under way (a fatal cause holds regardless).
    fn stopped(&self) -> Option<(String, Ran)> {
        if let Some(fatal) = &self.fatal {
            return Some((fatal.clone(), Ran::Judged));
        }
        if self.starts.any() {
            return None;
        }
        let (failed, first) = self.tries.given_up(FAILED_STARTS_BEFORE_STOPPING)?;
        Some((format!("not run: the target failed to start in the first {failed} cases ({first})"), Ran::NotStarted))
    }
}

/// One finished case, as the runner keeps it.
struct Slot {
    report: CaseReport,
    ran: Ran,
    /// A start of the target failed in it.
    start_failed: bool,
}

/// Runs the selected cases of `role` against `target`, `options.jobs` at a time, then the
/// exploration `options` asks for. A case whose start, spawned before any start had succeeded,
/// showed no sign of life in its time runs once more after the others if the target started
/// in another case (so do cases the early stop held back meanwhile); its report is the second
/// run's, with [`CaseReport::first_run`]. When no start of the target succeeded in the whole
/// run, nothing could be judged: its failures are errors.
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
    let all = cases::all(role);
    let total = all.iter().filter(|c| options.selects(c) && c.needs.excluded_by(options.addressing).is_none()).count();
    let slots: Vec<Mutex<Option<Slot>>> = all.iter().map(|_| Mutex::new(None)).collect();
    let done = AtomicUsize::new(0);
    let early_stop = Mutex::new(EarlyStop::default());
    let lock = |slot: &Mutex<Option<Slot>>| -> Option<(Ran, Outcome, Duration, Option<String>)> {
        let slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|s| (s.ran, s.report.outcome, s.report.duration, s.report.message.clone()))
    };
    let run_all = |indices: &[usize], first_runs: &[FirstRun], total: usize| {
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..options.jobs.max(1).min(indices.len()) {
                scope.spawn(|| loop {
                    let at = next.fetch_add(1, Ordering::SeqCst);
                    let Some(&index) = indices.get(at) else { break };
                    let mut slot = run_case(&all[index], target, options, &early_stop);
                    slot.report.first_run = first_runs.get(at).cloned();
                    if slot.report.outcome != Outcome::Skip || slot.report.duration > Duration::ZERO {
                        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                        // A failure in a start that never showed a sign of life is not the
                        // case's verdict yet: it runs again if the target starts elsewhere,
                        // and is an error if it never does. The progress line says so, never FAIL.
                        if slot.ran == Ran::NotStarted && slot.report.outcome == Outcome::Fail {
                            let mut shown = slot.report.clone();
                            shown.outcome = Outcome::Error;
                            shown.message = Some(format!(
                                "the target showed no sign of life here; this case runs again if it starts in \
                                 another, and is an error if it never does: {}",
                                shown.message.as_deref().unwrap_or_default()
                            ));
                            progress(&shown, n, total);
                        } else {
                            progress(&slot.report, n, total);
                        }
                    }
                    *slots[index].lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
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
        .filter_map(|(index, slot)| match lock(slot) {
            Some((Ran::NotStarted, outcome @ (Outcome::Fail | Outcome::Error), duration, message))
                if started_somewhere =>
            {
                Some((index, FirstRun { outcome, duration, message }))
            }
            _ => None,
        })
        .unzip();
    if !again.is_empty() {
        run_all(&again, &first_runs, total + again.len());
    }
    let stop = early_stop.into_inner().unwrap_or_else(|p| p.into_inner());
    let never_started = stop.plain_starts && !stop.starts.any();
    let mut cases: Vec<CaseReport> = slots
        .into_iter()
        .map(|slot| slot.into_inner().unwrap_or_else(|p| p.into_inner()).expect("every case ran"))
        .map(|slot| {
            let mut report = slot.report;
            // SPEC.md section 8: a target that never started in the run could not be judged;
            // its failures are errors, never a requirement's failure.
            if never_started && report.outcome == Outcome::Fail {
                let message = report.message.take().unwrap_or_default();
                let how =
                    if slot.start_failed { "its start failed here" } else { "this case's failure rests on nothing" };
                report.outcome = Outcome::Error;
                report.failure = None;
                report.message = Some(format!(
                    "harness error: the target never started in this run ({how}), so nothing could be judged: {message}"
                ));
            }
            report
        })
        .collect();
    if let Some(explore_options) = &options.explore {
        cases.extend(explore::explore_all(role, &options.env(target), explore_options));
    }
    SuiteReport { role, target: target.clone(), options: options.clone(), cases, interrupted: None }
}

/// What a server that died during `case`, unasked, broke: SPEC: SRV-ISOLATE-1 (it no longer
/// accepts), and SRV-INVALID-2 only where the case's last bytes were invalid input (what a
/// row's script's last step, "the server still running", names). A coded case that sends
/// invalid input watches for the crash itself, where it knows what caused it.
fn death_blames(case: &Case) -> Vec<&'static str> {
    if let Run::Conversation(moves) = case.run {
        if let Some(script::Step::ExpectRunning { because }) = rows::script(moves).steps.last() {
            return because.iter().filter_map(|id| spec::id(id)).collect();
        }
    }
    vec!["SRV-ISOLATE-1"]
}

/// The command line that runs `case` alone against `target`.
pub(crate) fn rerun_command(role: Role, id: &str, target: &Target, options: &Options) -> String {
    let abstract_flag = if options.addressing == Addressing::Abstract { " --abstract" } else { "" };
    format!("udsping conform {}{abstract_flag} --only {id} -- {}", role.as_str(), target.display())
}

fn run_case(case: &Case, target: &Target, options: &Options, early_stop: &Mutex<EarlyStop>) -> Slot {
    let mut report = CaseReport::of(case);
    let skipped = |mut report: CaseReport, message: &str| {
        report.message = Some(message.to_string());
        Slot { report, ran: Ran::Judged, start_failed: false }
    };
    if !options.selects(case) {
        return skipped(report, "not selected by --only/--skip");
    }
    if let Some(reason) = case.needs.excluded_by(options.addressing) {
        return skipped(report, reason);
    }
    let (stopped, run_starts) = {
        let stop = early_stop.lock().unwrap_or_else(|p| p.into_inner());
        (stop.stopped(), stop.starts.clone())
    };
    report.rerun = Some(rerun_command(case.role, case.id, target, options));
    if let Some((cause, ran)) = stopped {
        let mut report = report.conclude(Err(Problem::Harness(cause)));
        report.duration = Duration::from_nanos(1);
        return Slot { report, ran, start_failed: false };
    }
    let started = Instant::now();
    let mut ran = Ran::Judged;
    let mut start_failed = false;
    let (result, transcript) = match Ctx::new(target, options.waits, options.addressing, case.role) {
        Ok(mut ctx) => {
            ctx.run_starts = run_starts;
            let mut result = match case.run {
                Run::Code(run) => run(&mut ctx),
                Run::Conversation(moves) => {
                    ctx.start_server().and_then(|()| script::play(&mut ctx, &rows::script(moves)))
                }
            };
            // SPEC: SRV-INVALID-2, SRV-ISOLATE-1 — a server that died inside a case is
            // reported as such, whatever the case itself concluded.
            if let Some(death) = ctx.death_during_case() {
                let text = format!("the server died during this case: {death}");
                let dies = death_blames(case);
                result = match result {
                    Ok(()) => Exercise::new(
                        format!(
                            "within {} of the case's last step, with nothing asking the server to stop",
                            human_duration(AFTERMATH)
                        ),
                        &dies,
                    )
                    .failed(Observation::Running, death),
                    Err(Problem::Inconclusive(reason)) => Err(Problem::Inconclusive(format!("{reason}; and {text}"))),
                    // The death is blamed too, as the script's last step ("the server still
                    // running") would have. In a stream case, a failure that is what a death
                    // does to a connection is the death's alone: the step's own requirements
                    // were not what failed (SPEC.md section 8).
                    Err(Problem::Fail(mut failure)) => {
                        report.details.push(text);
                        if matches!(case.run, Run::Conversation(_)) && failure.observed_is_a_death() {
                            failure.blames.clear();
                        }
                        for id in dies {
                            if !failure.blames.contains(&id) {
                                failure.blames.push(id);
                            }
                        }
                        Err(Problem::Fail(failure))
                    }
                    other => {
                        report.details.push(text);
                        other
                    }
                };
            }
            let mut stop = early_stop.lock().unwrap_or_else(|p| p.into_inner());
            stop.plain_starts |= ctx.start.plain;
            if let Some(failure) = ctx.start.failure.take() {
                stop.tries.failed(failure);
            }
            if ctx.start.refusal_unanswered {
                stop.tries.came_to_nothing();
            }
            start_failed = ctx.start.failed;
            if ctx.start.cold {
                ran = Ran::NotStarted;
            }
            if stop.fatal.is_none() {
                stop.fatal = ctx.start.fatal.take();
            }
            drop(stop);
            let transcript = ctx.transcript();
            drop(ctx); // kills and reaps the target before the case is reported
            (result, Some(transcript))
        }
        Err(problem) => (Err(problem), None),
    };
    let mut report = report.conclude(result);
    report.duration = started.elapsed();
    report.transcript = transcript;
    if report.outcome == Outcome::Pass {
        report.rerun = None;
    }
    Slot { report, ran, start_failed }
}

/// Plays saved scripts (`--replay`) instead of the cases, each in a fresh server: the report
/// judges only the requirements their steps name (SPEC.md section 8).
pub fn replay(target: &Target, scripts: &[(String, Script)], options: &Options) -> SuiteReport {
    let cases = explore::replay(scripts, &options.env(target));
    SuiteReport { role: Role::Server, target: target.clone(), options: options.clone(), cases, interrupted: None }
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
    /// One report per case of the role, selected or not, in the suite's order (then
    /// exploration's, if any); for a replay, one per script.
    pub cases: Vec<CaseReport>,
    /// The signal that stopped the run before it finished (the report is partial).
    pub interrupted: Option<&'static str>,
}

impl SuiteReport {
    pub(crate) fn count(&self, outcome: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == outcome).count()
    }

    /// Cases with `outcome` that count against the run: MUST ones, and SHOULD ones with
    /// `--strict`. Failed, they fail it; inconclusive, they keep it from passing (SPEC.md
    /// section 8: inconclusive is never a pass).
    pub fn blocking(&self, outcome: Outcome) -> usize {
        self.cases.iter().filter(|c| c.outcome == outcome && c.blocks(self.options.strict)).count()
    }

    /// 0 every MUST case passed; 1 a MUST case failed (or a SHOULD with `--strict`); 2 the
    /// harness could not run a case, or could not decide one (an inconclusive MUST case:
    /// the run checked less than it was asked to, so it is no pass either).
    pub fn exit_code(&self) -> u8 {
        if self.count(Outcome::Error) > 0 {
            2
        } else if self.blocking(Outcome::Fail) > 0 {
            1
        } else if self.blocking(Outcome::Inconclusive) > 0 {
            2
        } else {
            0
        }
    }
}
