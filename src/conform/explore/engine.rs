//! The one engine under every family of generated cases: generate a plan from `(seed, index)`,
//! play it, shrink the first MUST failure (proptest's `TestRunner`, then the family's own
//! pass), confirm it in fresh processes, bound the time, and report, honouring every option of
//! [`ExploreOptions`]. A family says only what is particular to it ([`Family`]).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::conform::case::Role;
use crate::conform::harness::{Addressing, Ctx, Direction, Transcript, Waits};
use crate::conform::outcome::{CaseReport, Confirmation, ScriptReport};
use crate::conform::script::{Script, HUMAN_MARKER};
use crate::conform::verdict::{CaseResult, Failure, Problem};
use crate::process::Target;
use crate::spec::{self, Level};

/// Shrinking stops after this many re-runs of candidate cases...
pub(crate) const SHRINK_ITERATIONS: u32 = 300;
/// ... or after this long, whichever comes first.
pub(crate) const SHRINK_TIME: Duration = Duration::from_secs(20);
/// A family's own pass after proptest's shrinking re-runs at most this many candidates.
pub(crate) const REDUCE_RUNS: u32 = 100;
/// A minimal case is re-run this many times, each in a fresh process, to confirm it.
pub(crate) const CONFIRM_RUNS: u32 = 5;

/// How to explore (the waits, `--jobs` and the addressing are the run's).
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// The seed every case is generated from (`--seed`); case `i` depends on it and `i` alone.
    pub seed: u64,
    /// Generated cases per family (`--cases`); each family's default when `None`.
    pub cases: Option<u32>,
    /// Stop generating new cases after this long, for all families together (a failure found
    /// in time is still shrunk).
    pub time: Option<Duration>,
    /// Shrinking stops after this many re-runs of candidates...
    pub shrink_iterations: u32,
    /// ... or after this long.
    pub shrink_time: Duration,
    /// Fresh-process re-runs of a minimal case to confirm a failure.
    pub confirm_runs: u32,
}

impl ExploreOptions {
    /// The defaults, with `seed`.
    pub fn new(seed: u64) -> Self {
        ExploreOptions {
            seed,
            cases: None,
            time: None,
            shrink_iterations: SHRINK_ITERATIONS,
            shrink_time: SHRINK_TIME,
            confirm_runs: CONFIRM_RUNS,
        }
    }
}

/// A seed from the clock, for runs that do not choose one (reported, so it can be reused).
pub fn random_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_secs().wrapping_mul(1_000_003) ^ u64::from(now.subsec_nanos()) ^ u64::from(std::process::id())
}

/// The random number generator of case `index` of `seed`.
pub(crate) fn rng_for(seed: u64, index: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&index.to_le_bytes());
    bytes[16..].copy_from_slice(b"udsping-explore\0");
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// What an exploration works against: the target and the run's waits.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// The implementation under test.
    pub target: &'a Target,
    /// The run's waits.
    pub waits: Waits,
    /// How the target's socket is named.
    pub addressing: Addressing,
    /// Workers, each with its own target process.
    pub jobs: usize,
}

impl Env<'_> {
    /// A case's world for `role` against the target, in a fresh directory.
    pub(crate) fn ctx(&self, role: Role) -> Result<Ctx, Problem> {
        Ctx::new(self.target, self.waits, self.addressing, role)
    }

    /// Plays a case in a world of its own for `role`: `setup`, whose problems come without a
    /// transcript (nothing was played yet), then `case` with what `setup` made.
    pub(crate) fn fresh<T>(
        &self,
        role: Role,
        setup: impl FnOnce(&mut Ctx) -> Result<T, Problem>,
        case: impl FnOnce(&mut Ctx, T) -> CaseResult,
    ) -> Result<Transcript, Ran> {
        let mut ctx = self.ctx(role).map_err(|p| Ran::new(p, None))?;
        let made = setup(&mut ctx).map_err(|p| Ran::new(p, None))?;
        let result = case(&mut ctx, made);
        let transcript = ctx.transcript();
        match result {
            Ok(()) => Ok(transcript),
            Err(problem) => Err(Ran::new(problem, Some(transcript))),
        }
    }
}

/// How one generated case went, when it did not pass.
#[derive(Debug)]
pub(crate) struct Ran {
    /// Why it did not pass.
    pub(crate) problem: Problem,
    /// The gate's bytes in and out, where the run kept them.
    pub(crate) transcript: Option<Box<Transcript>>,
}

impl Ran {
    /// A run that did not pass, with its transcript.
    pub(crate) fn new(problem: Problem, transcript: Option<Transcript>) -> Self {
        Ran { problem, transcript: transcript.map(Box::new) }
    }
}

/// A family of generated cases (see the module documentation).
pub(crate) trait Family: Sync {
    /// What proptest generates and shrinks.
    type Plan: Clone + fmt::Debug;
    /// What is played and reported (for conversations, the plan's actions; else the plan).
    type Repro: Clone + Send;
    /// What a worker keeps between cases (a server process to reuse).
    type Worker;

    /// The case IDs' prefix, `server/explore`.
    const ID: &'static str;
    /// The report's section for the family.
    const SECTION: &'static str;
    /// What its cases are, in the plural: `generated conversations`.
    const NOUN: &'static str;
    /// The requirements its cases exercise.
    const REQUIREMENTS: &'static [&'static str];
    /// Cases per run without `--cases`.
    const DEFAULT_CASES: u32;
    /// Case `index`'s number for [`rng_for`] (families draw apart from one another).
    fn rng_index(&self, index: u64) -> u64 {
        index
    }
    /// The generator.
    fn strategy(&self) -> BoxedStrategy<Self::Plan>;
    /// What a plan plays.
    fn repro(&self, plan: &Self::Plan) -> Self::Repro;
    /// A fresh worker.
    fn worker(&self) -> Self::Worker;
    /// Plays one case.
    fn play(&self, env: &Env<'_>, worker: &mut Self::Worker, repro: &Self::Repro) -> Result<(), Ran>;
    /// A pass of the family's own after proptest's shrinking, within `budget` runs; `last`
    /// keeps the failure of the current minimal case.
    fn reduce(
        &self,
        _env: &Env<'_>,
        _worker: &mut Self::Worker,
        repro: Self::Repro,
        _budget: &mut u32,
        _last: &mut Option<Ran>,
    ) -> Self::Repro {
        repro
    }
    /// A case as a replayable script, where it is one.
    fn script(&self, _repro: &Self::Repro) -> Option<Script> {
        None
    }
    /// A case as lines of text: its script's, for a family whose cases are scripts.
    fn text(&self, repro: &Self::Repro) -> String {
        self.script(repro).map(|script| script.text()).unwrap_or_default()
    }
    /// Steps (or events) in a case, for "shrunk from N": its script's steps, for a family
    /// whose cases are scripts.
    fn size(&self, repro: &Self::Repro) -> usize {
        self.script(repro).map_or(0, |script| script.steps.len())
    }
    /// What a worker saw that no case failed for (a server that died between cases).
    fn notes(&self, _worker: &Self::Worker) -> Vec<String> {
        Vec::new()
    }
}

/// A failure exploration found, shrunk and confirmed.
#[derive(Clone, Debug)]
pub(crate) struct Found<R> {
    /// Which generated case of the seed failed (from 0).
    pub index: u64,
    /// The case as generated, before shrinking.
    pub original: R,
    /// The shrunk case that still fails.
    pub minimal: R,
    /// How the minimal case failed.
    pub failure: Failure,
    /// The target's bytes in and out in the first re-run that failed again (else the last failure's).
    pub transcript: Option<Transcript>,
    /// How re-running the minimal case went (`None` for a warning, which is not re-run).
    pub confirmation: Option<Confirmation>,
    /// Candidate cases run while shrinking.
    pub shrink_runs: u32,
}

impl<R> Found<R> {
    /// The failure `ran` found, if it is one.
    fn new(
        index: u64,
        original: R,
        minimal: R,
        ran: Ran,
        confirmation: Option<Confirmation>,
        shrink_runs: u32,
    ) -> Option<Self> {
        let failure = ran.problem.failure()?.clone();
        let transcript = ran.transcript.map(|t| *t);
        Some(Found { index, original, minimal, failure, transcript, confirmation, shrink_runs })
    }
}

/// What an exploration did.
#[derive(Clone, Debug)]
pub(crate) struct Exploration<R> {
    /// Generated cases run (all of them, unless time ran out or a failure stopped the run).
    pub ran: u64,
    /// The first failure that blames a MUST (the lowest case index), shrunk and confirmed.
    pub found: Option<Found<R>>,
    /// The first failure that blames only SHOULDs (not shrunk: exploration went on).
    pub warning: Option<Found<R>>,
    /// Cases that could not reach what they test (the gate's own limit ran out), with the
    /// first reason.
    pub inconclusive: (u64, Option<String>),
    /// What workers saw that no case failed for.
    pub notes: Vec<String>,
    /// The harness could not run (never reported as a pass).
    pub harness_error: Option<String>,
    /// Wall-clock time of the whole exploration, shrinking and confirmation included.
    pub elapsed: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The case a family's generated case `index` of `seed` is, before any shrinking.
pub(crate) fn generate<F: Family>(family: &F, seed: u64, index: u64) -> F::Plan {
    let mut runner = TestRunner::new_with_rng(Config::default(), rng_for(seed, family.rng_index(index)));
    family.strategy().new_tree(&mut runner).expect("the strategies have no filters").current()
}

/// Whether a failure blames a MUST (it stops exploration) or only SHOULDs (a warning).
fn blames_a_must(failure: &Failure) -> bool {
    spec::strongest_level(spec::all(), &failure.blames) == Level::Must
}

/// Runs a family's generated cases against `env`'s target, shrinks the first MUST failure (the
/// one of the lowest case index) and confirms it. `deadline` bounds the generating of new
/// cases (`--explore-time`, shared by the families of a run).
pub(crate) fn explore<F: Family>(
    family: &F,
    env: &Env<'_>,
    options: &ExploreOptions,
    deadline: Option<Instant>,
) -> Exploration<F::Repro> {
    let started = Instant::now();
    let cases = u64::from(options.cases.unwrap_or(F::DEFAULT_CASES));
    let next = AtomicU64::new(0);
    let ran = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    type Candidate<R> = (u64, R, R, u32, Option<Ran>);
    let found: Mutex<Option<Candidate<F::Repro>>> = Mutex::new(None);
    let warning: Mutex<Option<(u64, F::Repro, Ran)>> = Mutex::new(None);
    let inconclusive: Mutex<(u64, Option<String>)> = Mutex::new((0, None));
    let harness_error: Mutex<Option<String>> = Mutex::new(None);
    let notes: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..env.jobs.clamp(1, cases.max(1) as usize) {
            scope.spawn(|| {
                let worker = RefCell::new(family.worker());
                loop {
                    if stop.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= cases {
                        break;
                    }
                    let config = Config {
                        cases: 1,
                        failure_persistence: None,
                        max_shrink_iters: options.shrink_iterations,
                        max_shrink_time: options.shrink_time.as_millis() as u32,
                        verbose: 0,
                        ..Config::default()
                    };
                    let mut runner = TestRunner::new_with_rng(config, rng_for(options.seed, family.rng_index(index)));
                    let Ok(tree) = family.strategy().new_tree(&mut runner) else { break };
                    let calls = Cell::new(0u32);
                    // proptest's minimal value is the last one that failed: keep its failure.
                    let last: RefCell<Option<Ran>> = RefCell::new(None);
                    let result = runner.run_one(tree, |plan| {
                        calls.set(calls.get() + 1);
                        let repro = family.repro(&plan);
                        match family.play(env, &mut worker.borrow_mut(), &repro) {
                            Ok(()) => Ok(()),
                            Err(ran) => match &ran.problem {
                                Problem::Fail(failure) if blames_a_must(failure) => {
                                    let message = failure.to_string();
                                    *last.borrow_mut() = Some(ran);
                                    Err(TestCaseError::fail(message))
                                }
                                // A SHOULD: noted once (the generated case, not a shrunk one).
                                Problem::Fail(_) => {
                                    if calls.get() == 1 {
                                        let mut slot = lock(&warning);
                                        if slot.as_ref().is_none_or(|(i, ..)| index < *i) {
                                            *slot = Some((index, repro, ran));
                                        }
                                    }
                                    Ok(())
                                }
                                Problem::Inconclusive(reason) => {
                                    if calls.get() == 1 {
                                        let mut seen = lock(&inconclusive);
                                        seen.0 += 1;
                                        seen.1.get_or_insert_with(|| reason.clone());
                                    }
                                    Ok(())
                                }
                                Problem::Harness(message) | Problem::Skip(message) => {
                                    lock(&harness_error).get_or_insert(message.clone());
                                    Ok(())
                                }
                            },
                        }
                    });
                    ran.fetch_add(1, Ordering::SeqCst);
                    if let Err(TestError::Fail(_, minimal)) = result {
                        stop.store(true, Ordering::SeqCst);
                        let mut last = last.into_inner();
                        let mut budget = REDUCE_RUNS;
                        let minimal = family.repro(&minimal);
                        let reduced = family.reduce(env, &mut worker.borrow_mut(), minimal, &mut budget, &mut last);
                        let runs = calls.get().saturating_sub(1) + (REDUCE_RUNS - budget);
                        let original = family.repro(&generate(family, options.seed, index));
                        let mut slot = lock(&found);
                        if slot.as_ref().is_none_or(|(i, ..)| index < *i) {
                            *slot = Some((index, original, reduced, runs, last));
                        }
                    }
                    if lock(&harness_error).is_some() {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                lock(&notes).extend(family.notes(&worker.borrow()));
            });
        }
    });
    let mut exploration = Exploration {
        ran: ran.load(Ordering::SeqCst),
        found: None,
        warning: warning
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .and_then(|(index, repro, ran)| Found::new(index, repro.clone(), repro, ran, None, 0)),
        inconclusive: inconclusive.into_inner().unwrap_or_else(|p| p.into_inner()),
        notes: notes.into_inner().unwrap_or_else(|p| p.into_inner()),
        harness_error: harness_error.into_inner().unwrap_or_else(|p| p.into_inner()),
        elapsed: Duration::ZERO,
    };
    if let Some((index, original, minimal, shrink_runs, last)) = found.into_inner().unwrap_or_else(|p| p.into_inner()) {
        let (confirmation, confirmed) = confirm(family, env, options, &minimal);
        // A case that never failed again in a fresh process failed because of what the
        // exploring process had been through: it is reported (flaky) with its failure then.
        let ran = confirmed.or(last);
        exploration.found =
            ran.and_then(|ran| Found::new(index, original, minimal, ran, Some(confirmation), shrink_runs));
    }
    exploration.elapsed = started.elapsed();
    exploration
}

/// Re-runs `repro` with fresh workers; the first failure again.
fn confirm<F: Family>(
    family: &F,
    env: &Env<'_>,
    options: &ExploreOptions,
    repro: &F::Repro,
) -> (Confirmation, Option<Ran>) {
    let mut confirmation = Confirmation { runs: 0, failed: 0 };
    let mut first = None;
    for _ in 0..options.confirm_runs.max(1) {
        confirmation.runs += 1;
        if let Err(ran) = family.play(env, &mut family.worker(), repro) {
            if ran.problem.failure().is_some() {
                confirmation.failed += 1;
                first.get_or_insert(ran);
            }
        }
    }
    (confirmation, first)
}

/// Transcript lines kept of a long run: the first and the last, so a failure after thousands
/// of rounds still reads on one screen (the script says what came before).
const TRANSCRIPT_HEAD: usize = 10;
const TRANSCRIPT_TAIL: usize = 40;

/// A long transcript cut to its first and last lines.
pub(crate) fn trimmed(transcript: &Transcript) -> Transcript {
    let mut out = transcript.clone();
    let n = out.entries.len();
    if n > TRANSCRIPT_HEAD + TRANSCRIPT_TAIL + 1 {
        let mut gap = out.entries[TRANSCRIPT_HEAD].clone();
        gap.direction = Direction::Event;
        gap.conn = 0;
        gap.bytes = format!("... {} lines left out ...", n - TRANSCRIPT_HEAD - TRANSCRIPT_TAIL).into_bytes();
        out.entries.splice(TRANSCRIPT_HEAD..n - TRANSCRIPT_TAIL, [gap]);
    }
    out
}

/// The command line that replays saved scripts against `target`.
pub(crate) fn replay_command(target: &Target) -> String {
    format!("udsping conform server --replay FILE -- {}", target.display())
}

/// The exploration of one family as report cases: one that passed (or could not reach what
/// it tests), the failure found, the SHOULD warning found, and an error if the harness could
/// not run.
pub(crate) fn reports<F: Family>(
    family: &F,
    exploration: &Exploration<F::Repro>,
    env: &Env<'_>,
    options: &ExploreOptions,
) -> Vec<CaseReport> {
    let seed = options.seed;
    let all: Vec<&'static str> = F::REQUIREMENTS.to_vec();
    let report = |id: String, title: String, requirements: Vec<&'static str>| {
        let mut report = CaseReport::new(id, title, F::SECTION, requirements);
        report.duration = exploration.elapsed;
        report
    };
    let mut out = Vec::new();
    if let Some(error) = &exploration.harness_error {
        let case = report(format!("{}/harness", F::ID), "exploration could not run".into(), all.clone());
        out.push(case.conclude(Err(Problem::Harness(error.clone()))));
    }
    for (found, warning) in [(&exploration.found, false), (&exploration.warning, true)] {
        let Some(found) = found else { continue };
        out.push(found_report(family, found, warning, env, options, &report));
    }
    if exploration.found.is_none() && exploration.harness_error.is_none() {
        let notes =
            if exploration.notes.is_empty() { String::new() } else { format!("; {}", exploration.notes.join("; ")) };
        let (inconclusive, reason) = &exploration.inconclusive;
        let judged = exploration.ran - inconclusive;
        let title = format!("{} {} (seed {seed}), none failed{notes}", exploration.ran, F::NOUN);
        let case = report(format!("{}/generated", F::ID), title, all);
        out.push(if judged == 0 && *inconclusive > 0 {
            case.conclude(Err(Problem::Inconclusive(format!(
                "every generated case was cut short: {}",
                reason.as_deref().unwrap_or("")
            ))))
        } else {
            let mut case = case.conclude(Ok(()));
            if *inconclusive > 0 {
                case.title =
                    format!("{} ({inconclusive} inconclusive: {})", case.title, reason.as_deref().unwrap_or(""));
            }
            case
        });
    }
    out
}

fn found_report<F: Family>(
    family: &F,
    found: &Found<F::Repro>,
    warning: bool,
    env: &Env<'_>,
    options: &ExploreOptions,
    report: &dyn Fn(String, String, Vec<&'static str>) -> CaseReport,
) -> CaseReport {
    let seed = options.seed;
    let size = family.size(&found.minimal);
    let original_size = family.size(&found.original);
    let title = if warning {
        format!("a generated case of {size} steps broke a SHOULD (not shrunk)")
    } else {
        format!("{} shrunk to {size} steps", F::NOUN.trim_end_matches('s').replace("generated ", "a generated "))
    };
    let id = format!("{}/seed-{seed}-case-{}", F::ID, found.index);
    let mut case = report(id, title, found.failure.blames.clone());
    let verdict = match &found.confirmation {
        Some(c) if c.is_flaky() => {
            format!("FLAKY: the minimal case failed {} of {} re-runs in a fresh process", c.failed, c.runs)
        }
        Some(c) => format!("confirmed: failed {} of {} re-runs in a fresh process", c.failed, c.runs),
        None => "exploration went on (a SHOULD)".into(),
    };
    case.details.push(if warning {
        format!("generated case ({size} steps); {verdict}:")
    } else {
        format!("minimal case ({size} steps, shrunk from {original_size} in {} runs); {verdict}:", found.shrink_runs)
    });
    case.details.extend(family.text(&found.minimal).lines().map(|l| format!("   {l}")));
    let script = family.script(&found.minimal);
    if let Some(script) = &script {
        case.details
            .push(format!("replay: {} (FILE: this report, in any format, or its script)", replay_command(env.target)));
        let json = serde_json::to_string(script).expect("a script serializes");
        case.details.push(format!("{HUMAN_MARKER}{json}"));
    }
    case.details.push(format!("re-explore: --explore --seed {seed} --cases {}", found.index + 1));
    case.transcript = found.transcript.as_ref().map(trimmed);
    case.script = script.map(|script| {
        Box::new(ScriptReport {
            original_steps: Some(original_size),
            script,
            failure: Some(found.failure.clone()),
            seed: Some(seed),
            case_index: Some(found.index),
            confirmation: found.confirmation.clone(),
        })
    });
    case.confirmation = found.confirmation.clone();
    let mut concluded = case.conclude(Err(Problem::Fail(Box::new(found.failure.clone()))));
    if !warning && found.confirmation.as_ref().is_some_and(Confirmation::is_flaky) {
        concluded.title = format!("{} (flaky)", concluded.title);
    }
    concluded
}
