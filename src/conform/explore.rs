//! `udsping conform server --explore`: generated conversations against any server, each failure
//! shrunk to a minimal script, confirmed (or reported flaky), and reported with its seed and a
//! replay command.
//!
//! A generated [`Plan`] is 1 to 8 connections, each with a token stream (pings, long runs of
//! pings, `end`, partial tokens, invalid bytes of every class of SPEC.md section 4.4, `"pong"`),
//! optionally one byte of it corrupted, cut at generated offsets into writes with pauses and
//! looks between them, optional lock-step rounds (up to thousands) first, and an ending (left
//! open, half-closed, or closed with replies unread); the connections' writes are interleaved in
//! a generated order. [`super::model`] turns the plan into a script with the expectations of
//! SPEC.md sections 4 and 5, so nothing generated needs a hand-written answer.
//!
//! Generation and shrinking are proptest's: case `i` of seed `S` is generated from a random
//! number generator seeded with `(S, i)` alone, so a run is deterministic for a seed whatever
//! the number of workers, and a failure is shrunk by proptest's `TestRunner` (simplify while it
//! still fails). Workers reuse one target process each while it stays healthy and restart it
//! when it dies. The minimal script is then re-run in fresh processes to tell a real failure
//! from a flaky one.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::{Deserialize, Serialize};

use super::harness::{Addressing, Ctx, Problem, Target, Transcript, Waits};
use super::model::{self, Action};
use super::rows::QUIET;
use super::script::{self, Bytes, Script, ScriptError, ScriptFailure};
use super::{CaseReport, Outcome};
use crate::proto::grammar::INVALID_CLASSES;
use crate::proto::{END, PING, PONG};
use crate::spec;

/// Generated scripts per run unless `--cases` says otherwise: on the reference, the fixed
/// cases and these together take well under 10 s on a 2-CPU machine (README's measurements).
pub const DEFAULT_CASES: u32 = 200;
/// Shrinking stops after this many re-runs of candidate scripts.
pub const SHRINK_ITERATIONS: u32 = 300;
/// ... or after this long, whichever comes first.
pub const SHRINK_TIME: Duration = Duration::from_secs(20);
/// The action-level pass after proptest's shrinking (`reduce`) re-runs at most this many
/// candidate scripts.
pub const REDUCE_RUNS: u32 = 100;
/// A minimal script is re-run this many times, each in a fresh process, to confirm it.
pub const CONFIRM_RUNS: u32 = 5;

/// How to explore.
#[derive(Clone, Debug)]
pub struct ExploreOptions {
    /// Generated scripts to run (`--cases`).
    pub cases: u32,
    /// The seed every case is generated from (`--seed`); case `i` depends on it and `i` alone.
    pub seed: u64,
    /// Stop generating new scripts after this long (shrinking a failure found in time still runs).
    pub time: Option<Duration>,
    /// How long any one expectation waits for the target (`--timeout`).
    pub timeout: Duration,
    /// How long the target may take to start (`--startup-timeout`).
    pub startup_timeout: Duration,
    /// Worker threads, each with its own target process (`--jobs`).
    pub jobs: usize,
    /// How the target's socket is named: a path or an abstract name.
    pub addressing: Addressing,
    /// Shrinking stops after this many re-runs of candidate scripts.
    pub shrink_iterations: u32,
    /// Fresh-process re-runs of the minimal script to confirm a failure.
    pub confirm_runs: u32,
    /// Generated servers when the target is a client ([`super::explore_client`]).
    pub client_cases: u32,
    /// Generated lifecycles after the conversations ([`super::explore_lifecycle`]; only with a
    /// socket file).
    pub lifecycle_cases: u32,
}

impl ExploreOptions {
    /// The waits for the target that these options give.
    pub fn waits(&self) -> Waits {
        Waits { timeout: self.timeout, startup_timeout: self.startup_timeout }
    }

    /// The defaults, with `seed`.
    pub fn new(seed: u64) -> Self {
        ExploreOptions {
            cases: DEFAULT_CASES,
            seed,
            time: None,
            timeout: Duration::from_millis(2000),
            startup_timeout: Duration::from_secs(5),
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            addressing: Addressing::Path,
            shrink_iterations: SHRINK_ITERATIONS,
            confirm_runs: CONFIRM_RUNS,
            client_cases: super::explore_client::DEFAULT_CASES,
            lifecycle_cases: super::explore_lifecycle::DEFAULT_CASES,
        }
    }
}

/// A seed from the clock, for runs that do not choose one (reported, so it can be reused).
pub fn random_seed() -> u64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_secs().wrapping_mul(1_000_003) ^ u64::from(now.subsec_nanos()) ^ u64::from(std::process::id())
}

/// One piece of a connection's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tok {
    /// This many `ping`s in a row (mostly 1 to 3, sometimes 100 or more).
    Pings(u16),
    /// `end`.
    End,
    /// A piece of `ping` or `end` (a partial token, or the rest of one).
    Fragment(&'static [u8]),
    /// One byte, mostly of the invalid classes of SPEC.md section 4.4.
    Byte(u8),
    /// `pong`, which a client never sends (invalid).
    Pong,
}

const FRAGMENTS: &[&[u8]] = &[b"p", b"pi", b"pin", b"ing", b"ng", b"g", b"e", b"en", b"nd", b"d"];

impl Tok {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Tok::Pings(n) => PING.repeat(usize::from(*n)),
            Tok::End => END.to_vec(),
            Tok::Fragment(bytes) => bytes.to_vec(),
            Tok::Byte(byte) => vec![*byte],
            Tok::Pong => PONG.to_vec(),
        }
    }
}

/// What the client does at a cut, after the write before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Look {
    /// Nothing: the next write follows.
    Nothing,
    /// Read what the model says has arrived by now ([`Action::Observe`]).
    Observe,
    /// Read it and check the quiet period passes with nothing more ([`Action::Quiet`]).
    Quiet,
}

/// A cut of a connection's stream into two writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// Where: the token (counted modulo the number of tokens) and the byte within it (modulo
    /// its length plus one), so that removing a later token while shrinking leaves the cut
    /// where it was.
    pub at: (u16, u16),
    /// What the client does there.
    pub look: Look,
}

/// How a connection ends once its stream is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Left to the model's end (EOF, replies and close expected).
    Leave,
    /// Half-closed (EOF from the client), then observed.
    HalfClose,
    /// Closed with whatever is unread (a reset).
    Close,
}

/// One connection of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnPlan {
    /// Lock-step rounds before the stream (0 for none).
    pub lock_step: u16,
    /// The stream, token by token.
    pub toks: Vec<Tok>,
    /// One byte of the stream replaced by this one, placed as a cut is.
    pub corrupt: Option<((u16, u16), u8)>,
    /// Where the stream is split into writes, and what the client does at each split.
    pub cuts: Vec<Cut>,
    /// How the connection ends.
    pub finish: Finish,
}

/// One turn of the interleaving: which connection goes next, after how long a pause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Turn {
    /// Counted modulo the number of connections with something left to do.
    pub conn: u16,
    /// Milliseconds of pause before it (a partial token held open, a server left waiting).
    pub pause: u16,
}

/// A generated conversation: connections and the order their writes interleave in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The connections, numbered from 1 in this order.
    pub conns: Vec<ConnPlan>,
    /// The first turns (round-robin after them, without pauses).
    pub order: Vec<Turn>,
}

fn invalid_byte() -> impl Strategy<Value = u8> {
    let classed: Vec<u8> = INVALID_CLASSES.iter().flat_map(|(_, bytes)| bytes.iter().copied()).collect();
    prop_oneof![4 => prop::sample::select(classed), 1 => any::<u8>()]
}

/// A count from one generated integer, by tiers: below `zero` it is `base`; below `zero +
/// small` it is spread over `small_range`; above, it counts up by one from `large_from`. The
/// map is monotonic, so shrinking the integer shrinks the count all the way down, and exactly
/// (a union of ranges would stop shrinking at the large range's start).
fn tiered(x: u32, zero: u32, base: u32, small: u32, small_range: (u32, u32), large_from: u32) -> u32 {
    if x < zero {
        base
    } else if x < zero + small {
        small_range.0 + (x - zero) * (small_range.1 - small_range.0 + 1) / small
    } else {
        large_from + (x - zero - small)
    }
}

/// Mostly 1 to 3 pings (the small tier), one token in 13 a long run of 100 to 3000.
fn pings_count() -> impl Strategy<Value = u16> {
    (0u32..37_700).prop_map(|x| tiered(x, 0, 0, 34_800, (1, 3), 100) as u16)
}

fn tok() -> impl Strategy<Value = Tok> {
    prop_oneof![
        12 => pings_count().prop_map(Tok::Pings),
        2 => Just(Tok::End),
        2 => prop::sample::select(FRAGMENTS).prop_map(Tok::Fragment),
        2 => invalid_byte().prop_map(Tok::Byte),
        1 => Just(Tok::Pong),
    ]
}

fn cut() -> impl Strategy<Value = Cut> {
    let look = prop_oneof![10 => Just(Look::Nothing), 8 => Just(Look::Observe), 1 => Just(Look::Quiet)];
    ((any::<u16>(), any::<u16>()), look).prop_map(|(at, look)| Cut { at, look })
}

fn turn() -> impl Strategy<Value = Turn> {
    // Mostly none, often 1 to 3 ms, one turn in 75 a pause of 150 to 200 ms (a partial
    // token held open, a server left waiting).
    let pause = (0u32..1_310)
        .prop_map(|x| if x < 1_293 { tiered(x, 1_000, 0, 293, (1, 3), 0) } else { 150 + 3 * (x - 1_293) } as u16);
    (any::<u16>(), pause).prop_map(|(conn, pause)| Turn { conn, pause })
}

fn conn_plan() -> impl Strategy<Value = ConnPlan> {
    // Mostly none, one connection in 5 1 to 4 rounds, one in 40 a long run of 200 to 2000.
    let lock_step = (0u32..72_000).prop_map(|x| tiered(x, 55_800, 0, 14_400, (1, 4), 200) as u16);
    let corrupt = prop_oneof![3 => Just(None), 1 => ((any::<u16>(), any::<u16>()), invalid_byte()).prop_map(Some)];
    let finish = prop_oneof![3 => Just(Finish::Leave), 1 => Just(Finish::HalfClose), 1 => Just(Finish::Close)];
    (lock_step, prop::collection::vec(tok(), 0..6), corrupt, prop::collection::vec(cut(), 0..4), finish)
        .prop_map(|(lock_step, toks, corrupt, cuts, finish)| ConnPlan { lock_step, toks, corrupt, cuts, finish })
}

/// The generator of conversations.
pub fn plans() -> impl Strategy<Value = Plan> {
    // One range, not a union of small and large counts: proptest shrinks within a range, and
    // would not move a failure found with many connections to a plan with fewer.
    (prop::collection::vec(conn_plan(), 1..=8), prop::collection::vec(turn(), 0..16))
        .prop_map(|(conns, order)| Plan { conns, order })
}

impl ConnPlan {
    /// This connection's actions in groups that stay together when interleaved.
    fn groups(&self, conn: u32) -> Vec<Vec<Action>> {
        let mut groups = vec![vec![Action::Connect { conn }]];
        if self.lock_step > 0 {
            groups.push(vec![Action::LockStep { conn, rounds: u32::from(self.lock_step) }]);
        }
        let toks: Vec<Vec<u8>> = self.toks.iter().map(Tok::bytes).collect();
        let starts: Vec<usize> = toks.iter().scan(0, |at, t| Some(std::mem::replace(at, *at + t.len()))).collect();
        let mut stream = toks.concat();
        // A byte position from (token, byte); `end` allows the position after the token.
        let position = |(tok, byte): (u16, u16), end: usize| -> Option<usize> {
            let i = usize::from(tok) % toks.len().max(1);
            let len = toks.get(i)?.len();
            (len + end > 0).then(|| starts[i] + usize::from(byte) % (len + end))
        };
        if let Some((at, byte)) = self.corrupt {
            if let Some(i) = position(at, 0) {
                stream[i] = byte;
            }
        }
        let mut cuts: Vec<(usize, &Cut)> = self.cuts.iter().map(|c| (position(c.at, 1).unwrap_or(0), c)).collect();
        cuts.sort_by_key(|(at, _)| *at);
        let mut from = 0;
        let last = Cut { at: (0, 0), look: Look::Nothing };
        for (at, cut) in cuts.iter().copied().chain([(stream.len(), &last)]) {
            let mut group = Vec::new();
            if at > from {
                group.push(Action::Send { conn, bytes: Bytes(stream[from..at].to_vec()) });
                from = at;
            }
            match cut.look {
                Look::Nothing => {}
                Look::Observe => group.push(Action::Observe { conn }),
                Look::Quiet => group.push(Action::Quiet { conn }),
            }
            if !group.is_empty() {
                groups.push(group);
            }
        }
        match self.finish {
            Finish::Leave => {}
            Finish::HalfClose => groups.push(vec![Action::HalfClose { conn }, Action::Observe { conn }]),
            Finish::Close => groups.push(vec![Action::Close { conn }]),
        }
        groups
    }
}

impl Plan {
    /// The plan's actions: each connection's groups in order, interleaved as `order` says
    /// (then round-robin).
    pub fn actions(&self) -> Vec<Action> {
        let mut queues: Vec<std::collections::VecDeque<Vec<Action>>> =
            self.conns.iter().enumerate().map(|(i, c)| c.groups(i as u32 + 1).into()).collect();
        let mut actions = Vec::new();
        let mut order = self.order.iter();
        let mut turn = 0;
        loop {
            let live: Vec<usize> = (0..queues.len()).filter(|&i| !queues[i].is_empty()).collect();
            if live.is_empty() {
                return actions;
            }
            let pick = match order.next() {
                Some(next) => {
                    if next.pause > 0 {
                        actions.push(Action::Pause { ms: u64::from(next.pause) });
                    }
                    live[usize::from(next.conn) % live.len()]
                }
                None => {
                    turn += 1;
                    live[turn % live.len()]
                }
            };
            actions.extend(queues[pick].pop_front().expect("a live queue"));
        }
    }

    /// The plan as a script with the model's expectations.
    pub fn script(&self) -> Script {
        model::expect(&self.actions(), QUIET)
    }
}

/// The random number generator of case `index` of `seed`.
pub fn rng_for(seed: u64, index: u64) -> TestRng {
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..16].copy_from_slice(&index.to_le_bytes());
    bytes[16..].copy_from_slice(b"udsping-explore\0");
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Case `index` of `seed`, as generated (before any shrinking): exploration generates it the
/// same way, from a runner with this case's generator.
pub fn generate(seed: u64, index: u64) -> Plan {
    let mut runner = TestRunner::new_with_rng(Config::default(), rng_for(seed, index));
    plans().new_tree(&mut runner).expect("the strategy has no filters").current()
}

/// How the re-runs of a minimal script went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Confirmation {
    /// Fresh processes the script was re-run in.
    pub runs: u32,
    /// Runs in which it failed again.
    pub failed: u32,
}

impl Confirmation {
    /// Whether the script failed in some re-runs but not all of them.
    pub fn is_flaky(&self) -> bool {
        self.failed < self.runs
    }
}

/// A script-shaped case's details in a report: the script, how it failed, and where it came from.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScriptReport {
    /// The script that failed (or, for a replay, was replayed).
    pub script: Script,
    /// The first expectation that did not hold, where one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<ScriptFailure>,
    /// The exploration seed that generated the script, where one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Which generated case of the seed failed (from 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_index: Option<u64>,
    /// Steps of the script as generated, before shrinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_steps: Option<usize>,
    /// How re-running the minimal script went, where it was re-run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
}

/// A failure exploration found, shrunk and confirmed.
#[derive(Clone, Debug)]
pub struct Found {
    /// Which generated case of the seed failed (from 0).
    pub index: u64,
    /// The script as generated, before shrinking.
    pub original: Script,
    /// The shrunk script that still fails.
    pub minimal: Script,
    /// How the minimal script failed.
    pub failure: ScriptFailure,
    /// The target's bytes in and out in the first re-run that failed again; `None` if none did.
    pub transcript: Option<Transcript>,
    /// How re-running the minimal script went.
    pub confirmation: Confirmation,
    /// Candidate scripts run while shrinking (proptest's and the action-level pass together).
    pub shrink_steps: u32,
}

/// What an exploration did.
#[derive(Clone, Debug, Default)]
pub struct Exploration {
    /// Generated cases run (all of them, unless time ran out or a failure stopped the run).
    pub ran: u64,
    /// The first failure (the lowest case index), shrunk and confirmed.
    pub found: Option<Found>,
    /// The target exited while scripts ran (each is also a failure of the script that ran).
    pub deaths: Vec<String>,
    /// The harness could not run (never reported as a pass).
    pub harness_error: Option<String>,
    /// Wall-clock time of the whole exploration, shrinking and confirmation included.
    pub elapsed: Duration,
}

/// A worker's target: one process, restarted when it dies.
struct Worker<'a> {
    target: &'a Target,
    options: &'a ExploreOptions,
    ctx: Option<Ctx>,
    deaths: &'a Mutex<Vec<String>>,
}

impl Worker<'_> {
    /// Plays `script` against this worker's process (starting one if needed).
    fn play(&mut self, script: &Script) -> Result<(), ScriptError> {
        if let Some(ctx) = &mut self.ctx {
            if let Some(status) = ctx.exited() {
                lock(self.deaths).push(format!("the server exited ({status}); restarted it"));
                self.ctx = None;
            }
        }
        let ctx = match &mut self.ctx {
            Some(ctx) => ctx,
            None => self.ctx.insert(start(self.target, self.options)?),
        };
        let result = script::play(ctx, script);
        // Each script's transcript is its own; the process's lines so far are dropped.
        let _ = ctx.take_transcript();
        result
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn start(target: &Target, options: &ExploreOptions) -> Result<Ctx, ScriptError> {
    let harness = |problem: Problem| match problem {
        Problem::Fail(message)
        | Problem::Harness(message)
        | Problem::Inconclusive(message)
        | Problem::Skip(message) => ScriptError::Harness { step: 0, message },
    };
    let mut ctx = Ctx::new(target, options.waits(), options.addressing).map_err(harness)?;
    ctx.start_server().map_err(harness)?;
    Ok(ctx)
}

/// Runs `options.cases` generated scripts against `target` (a server command), shrinks the
/// first failure (the one of the lowest case index) and confirms it.
pub fn explore(target: &Target, options: &ExploreOptions) -> Exploration {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let ran = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    type Shrunk = (u64, Plan, Vec<Action>, u32, Option<ScriptFailure>);
    let found: Mutex<Option<Shrunk>> = Mutex::new(None);
    let harness_error: Mutex<Option<String>> = Mutex::new(None);
    let deaths = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.max(1) {
            scope.spawn(|| {
                let worker = RefCell::new(Worker { target, options, ctx: None, deaths: &deaths });
                loop {
                    let out_of_time = options.time.is_some_and(|t| started.elapsed() >= t);
                    if stop.load(Ordering::SeqCst) || out_of_time {
                        break;
                    }
                    let index = next.fetch_add(1, Ordering::SeqCst);
                    if index >= u64::from(options.cases) {
                        break;
                    }
                    let config = Config {
                        cases: 1,
                        failure_persistence: None,
                        max_shrink_iters: options.shrink_iterations,
                        max_shrink_time: SHRINK_TIME.as_millis() as u32,
                        verbose: 0,
                        ..Config::default()
                    };
                    let mut runner = TestRunner::new_with_rng(config, rng_for(options.seed, index));
                    let Ok(tree) = plans().new_tree(&mut runner) else { break };
                    let shrinks = std::cell::Cell::new(0u32);
                    // proptest's minimal value is the last one that failed: keep its failure.
                    let last_failure = RefCell::new(None);
                    let result = runner.run_one(tree, |plan| {
                        shrinks.set(shrinks.get() + 1);
                        match worker.borrow_mut().play(&plan.script()) {
                            Ok(()) => Ok(()),
                            Err(ScriptError::Failed(failure)) => {
                                let message = failure.to_string();
                                *last_failure.borrow_mut() = Some(*failure);
                                Err(TestCaseError::fail(message))
                            }
                            Err(other) => {
                                lock(&harness_error).get_or_insert(other.to_string());
                                Ok(())
                            }
                        }
                    });
                    ran.fetch_add(1, Ordering::SeqCst);
                    if let Err(TestError::Fail(_, minimal)) = result {
                        stop.store(true, Ordering::SeqCst);
                        let mut last = last_failure.into_inner();
                        let mut budget = REDUCE_RUNS;
                        let reduced = reduce(&mut worker.borrow_mut(), minimal.actions(), &mut budget, &mut last);
                        let runs = shrinks.get().saturating_sub(1) + (REDUCE_RUNS - budget);
                        let original = generate(options.seed, index);
                        let mut slot = lock(&found);
                        if slot.as_ref().is_none_or(|(i, ..)| index < *i) {
                            *slot = Some((index, original, reduced, runs, last));
                        }
                    }
                    if lock(&harness_error).is_some() {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let mut exploration = Exploration {
        ran: ran.load(Ordering::SeqCst),
        found: None,
        deaths: deaths.into_inner().unwrap_or_else(|p| p.into_inner()),
        harness_error: harness_error.into_inner().unwrap_or_else(|p| p.into_inner()),
        elapsed: Duration::ZERO,
    };
    if let Some((index, original, minimal, shrink_steps, last)) = found.into_inner().unwrap_or_else(|p| p.into_inner())
    {
        let minimal = model::expect(&minimal, QUIET);
        let (confirmation, confirmed) = confirm(target, options, &minimal);
        // A script that never failed again in a fresh process failed because of what the
        // exploring process had been through: it is reported (flaky) with its failure then.
        let (failure, transcript) = match confirmed {
            Some((failure, transcript)) => (Some(failure), transcript),
            None => (last, None),
        };
        exploration.found = failure.map(|failure| Found {
            index,
            original: original.script(),
            minimal,
            failure,
            transcript,
            confirmation,
            shrink_steps,
        });
    }
    exploration.elapsed = started.elapsed();
    exploration
}

/// After proptest's shrinking, which works on the plan (where removing a connection shifts the
/// interleaving of the others), a pass over the script's actions in the manner of delta
/// debugging: drop each connection whole, then each action from the last, while the script
/// still fails, within `budget` runs. `last` keeps the failure of the current actions.
fn reduce(
    worker: &mut Worker<'_>,
    mut actions: Vec<Action>,
    budget: &mut u32,
    last: &mut Option<ScriptFailure>,
) -> Vec<Action> {
    let mut still_fails = |candidate: &[Action], budget: &mut u32| {
        *budget = budget.saturating_sub(1);
        match worker.play(&model::expect(candidate, QUIET)) {
            Err(ScriptError::Failed(failure)) => {
                *last = Some(*failure);
                true
            }
            _ => false,
        }
    };
    let mut conns: Vec<u32> = actions.iter().filter_map(Action::conn).collect();
    conns.sort_unstable();
    conns.dedup();
    for conn in conns {
        let candidate: Vec<Action> = actions.iter().filter(|a| a.conn() != Some(conn)).cloned().collect();
        if *budget > 0 && !candidate.is_empty() && still_fails(&candidate, budget) {
            actions = candidate;
        }
    }
    for i in (0..actions.len()).rev() {
        let mut candidate = actions.clone();
        candidate.remove(i);
        if *budget > 0 && still_fails(&candidate, budget) {
            actions = candidate;
        }
    }
    actions
}

/// Re-runs `script` in fresh processes; the first failure and its transcript.
fn confirm(
    target: &Target,
    options: &ExploreOptions,
    script: &Script,
) -> (Confirmation, Option<(ScriptFailure, Option<Transcript>)>) {
    let mut confirmation = Confirmation { runs: 0, failed: 0 };
    let mut first = None;
    for _ in 0..options.confirm_runs.max(1) {
        confirmation.runs += 1;
        let Ok(mut ctx) = start(target, options) else { continue };
        if let Err(ScriptError::Failed(failure)) = script::play(&mut ctx, script) {
            confirmation.failed += 1;
            if first.is_none() {
                first = Some((*failure, Some(ctx.transcript())));
            }
        }
    }
    (confirmation, first)
}

/// A `&'static str` for a report field. A report's IDs and titles are static because the fixed
/// cases' are; an exploration makes at most a few per run, once, so leaking them costs nothing.
fn leak(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

/// The requirement IDs among `ids` that SPEC.md defines, as static strings.
fn requirement_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let requirements = spec::requirements();
    let mut out: Vec<&'static str> =
        ids.into_iter().filter_map(|id| requirements.iter().find(|r| r.id == id).map(|r| r.id)).collect();
    out.dedup();
    out
}

/// The requirements a failure blames: its step's, and SPEC: SRV-PONG-1 ("no other bytes")
/// when bytes arrived that the step did not expect.
fn blame(failure: &ScriptFailure) -> Vec<&'static str> {
    let extra = match (&failure.expected, &failure.observed) {
        (script::Observation::Bytes { .. }, _) => false,
        (_, script::Observation::Closed { before }) => !before.0.is_empty(),
        (_, script::Observation::Open { received, .. }) => !received.0.is_empty(),
        _ => false,
    };
    let because = failure.at.because().iter().map(String::as_str);
    let mut ids = requirement_ids(because.chain(extra.then_some("SRV-PONG-1")));
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Transcript lines kept of a long run: the first and the last, so a failure after thousands
/// of rounds still reads on one screen (the script says what came before).
const TRANSCRIPT_HEAD: usize = 10;
const TRANSCRIPT_TAIL: usize = 40;

fn trimmed(transcript: &Transcript) -> Transcript {
    use super::harness::Direction;
    let mut out = transcript.clone();
    // Long byte runs as `sent "ping" x 1000`: the script and the JSON report have every byte.
    for entry in out.entries.iter_mut().filter(|e| e.direction != Direction::Event && e.bytes.len() > 64) {
        let bytes = std::mem::take(&mut entry.bytes);
        let shown = Bytes(bytes.clone()).to_string();
        let shown = if shown.len() <= 96 { shown } else { crate::proto::quoted_prefix(&bytes, 48) };
        let verb = if entry.direction == Direction::Sent { "sent" } else { "received" };
        entry.bytes = format!("{verb} {shown}").into_bytes();
        entry.direction = Direction::Event;
    }
    let n = out.entries.len();
    if n > TRANSCRIPT_HEAD + TRANSCRIPT_TAIL + 1 {
        let mut gap = out.entries[TRANSCRIPT_HEAD].clone();
        gap.direction = super::harness::Direction::Event;
        gap.conn = 0;
        gap.bytes = format!("... {} lines left out ...", n - TRANSCRIPT_HEAD - TRANSCRIPT_TAIL).into_bytes();
        out.entries.splice(TRANSCRIPT_HEAD..n - TRANSCRIPT_TAIL, [gap]);
    }
    out
}

/// The SPEC.md section heading an exploration case is reported under.
pub const SECTION: &str = "explore: generated conversations (SPEC.md sections 4 and 5)";
/// ... and a client exploration case.
pub const SECTION_CLIENT: &str = "explore: generated servers (SPEC.md section 6)";

/// The command line that replays a case from a saved report or script.
pub fn replay_command(role: &str, target: &Target) -> String {
    let command: Vec<&str> =
        std::iter::once(target.program.as_str()).chain(target.args.iter().map(String::as_str)).collect();
    format!("udsping conform {role} --replay FILE -- {}", command.join(" "))
}

/// The exploration as report cases: one that passed, or one per failure found (and one error
/// if the harness could not run).
pub fn reports(exploration: &Exploration, target: &Target, options: &ExploreOptions) -> Vec<CaseReport> {
    let requirements = spec::requirements();
    let level_of = |ids: &[&str]| spec::strongest_level(&requirements, ids);
    let generated = requirement_ids([
        "SRV-PONG-1",
        "SRV-PONG-2",
        "SRV-PONG-3",
        "WIRE-STREAM-1",
        "WIRE-STREAM-2",
        "WIRE-INVALID-1",
        "SRV-INVALID-1",
        "SRV-INVALID-2",
        "SRV-END-1",
        "SRV-END-2",
        "SRV-EOF-1",
        "SRV-ISOLATE-1",
        "SRV-CONC-2",
    ]);
    let deaths =
        if exploration.deaths.is_empty() { String::new() } else { format!("; {}", exploration.deaths.join("; ")) };
    let mut out = Vec::new();
    if let Some(error) = &exploration.harness_error {
        out.push(CaseReport {
            id: "server/explore/harness",
            title: "exploration could not run",
            requirements: generated.clone(),
            level: spec::Level::Must,
            section: SECTION.to_string(),
            outcome: Outcome::Error,
            duration: exploration.elapsed,
            message: Some(format!("harness error: {error}")),
            transcript: None,
            script: None,
            first_run: None,
        });
    }
    let Some(found) = &exploration.found else {
        if exploration.harness_error.is_none() {
            out.push(CaseReport {
                id: "server/explore/generated",
                title: leak(format!(
                    "{} generated conversations (seed {}), none failed{deaths}",
                    exploration.ran, options.seed
                )),
                level: level_of(&generated),
                requirements: generated,
                section: SECTION.to_string(),
                outcome: Outcome::Pass,
                duration: exploration.elapsed,
                message: None,
                transcript: None,
                script: None,
                first_run: None,
            });
        }
        return out;
    };
    let blamed = blame(&found.failure);
    let flaky = if found.confirmation.is_flaky() {
        format!(
            "FLAKY: the minimal script failed {} of {} re-runs in a fresh server",
            found.confirmation.failed, found.confirmation.runs
        )
    } else {
        format!(
            "confirmed: failed {} of {} re-runs in a fresh server",
            found.confirmation.failed, found.confirmation.runs
        )
    };
    let indent = |text: &str| text.lines().map(|l| format!("        {l}\n")).collect::<String>();
    let message = format!(
        "{}: {}\n{}minimal script ({} steps, shrunk from {} in {} runs); {flaky}{deaths}:\n{}{}",
        blamed.join(", "),
        found.failure,
        "        ",
        found.minimal.steps.len(),
        found.original.steps.len(),
        found.shrink_steps,
        indent(&found.minimal.text()),
        indent(&format!(
            "replay: {} (FILE: this report as --format json, or its \"script\"); re-explore: --explore --seed {} --cases {}",
            replay_command("server", target),
            options.seed,
            found.index + 1
        )),
    );
    out.push(CaseReport {
        id: leak(format!("server/explore/seed-{}-case-{}", options.seed, found.index)),
        title: leak(format!("a generated conversation, shrunk to {} steps", found.minimal.steps.len())),
        level: level_of(&blamed),
        requirements: blamed,
        section: SECTION.to_string(),
        outcome: Outcome::Fail,
        duration: exploration.elapsed,
        message: Some(message.trim_end().to_string()),
        transcript: found.transcript.as_ref().map(trimmed),
        script: Some(Box::new(ScriptReport {
            script: found.minimal.clone(),
            failure: Some(found.failure.clone()),
            seed: Some(options.seed),
            case_index: Some(found.index),
            original_steps: Some(found.original.steps.len()),
            confirmation: Some(found.confirmation.clone()),
        })),
        first_run: None,
    });
    out
}

/// Every exploration `--explore` runs for `role`, as report cases: for a server the generated
/// conversations and then (with a socket file) the generated lifecycles; for a client the
/// generated servers.
pub fn explore_all(role: super::Role, target: &Target, options: &ExploreOptions) -> Vec<CaseReport> {
    use super::{explore_client as client, explore_lifecycle as lifecycle};
    let started = Instant::now();
    if role == super::Role::Client {
        let (waits, addressing) = (options.waits(), options.addressing);
        let (ran, found, error) =
            client::explore(target, options.client_cases, options.seed, waits, addressing, options.time);
        return client::reports(ran, found.as_ref(), error.as_deref(), options.seed, started.elapsed());
    }
    let exploration = explore(target, options);
    let mut out = reports(&exploration, target, options);
    if options.addressing == Addressing::Path {
        let started = Instant::now();
        let (ran, found, error) = lifecycle::explore(target, options.lifecycle_cases, options.seed, options.waits());
        out.extend(lifecycle::reports(ran, found.as_ref(), error.as_deref(), options.seed, started.elapsed()));
    }
    out
}

/// Plays saved scripts (`--replay FILE`), each in a fresh server, as report cases.
pub fn replay(scripts: &[(String, Script)], target: &Target, options: &ExploreOptions) -> Vec<CaseReport> {
    let requirements = spec::requirements();
    scripts
        .iter()
        .map(|(name, script)| {
            let started = Instant::now();
            let blamed_all = requirement_ids(script.requirements());
            let (outcome, message, transcript, failure, blamed) = match start(target, options) {
                Err(error) => (Outcome::Error, Some(error.to_string()), None, None, blamed_all.clone()),
                Ok(mut ctx) => {
                    let result = script::play(&mut ctx, script);
                    let transcript = Some(trimmed(&ctx.transcript()));
                    match result {
                        Ok(()) => (Outcome::Pass, None, transcript, None, blamed_all.clone()),
                        Err(ScriptError::Failed(failure)) => {
                            let blamed = blame(&failure);
                            let message = format!("{}: {failure}", blamed.join(", "));
                            (Outcome::Fail, Some(message), transcript, Some(*failure), blamed)
                        }
                        Err(other) => (Outcome::Error, Some(other.to_string()), transcript, None, blamed_all.clone()),
                    }
                }
            };
            let level = spec::strongest_level(&requirements, &blamed);
            CaseReport {
                id: leak(format!("server/replay/{name}")),
                title: leak(format!("a saved script of {} steps", script.steps.len())),
                requirements: blamed,
                level,
                section: "replay: saved scripts".to_string(),
                outcome,
                duration: started.elapsed(),
                message,
                transcript,
                script: Some(Box::new(ScriptReport {
                    script: script.clone(),
                    failure,
                    seed: None,
                    case_index: None,
                    original_steps: None,
                    confirmation: None,
                })),
                first_run: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_for_a_seed_and_case() {
        for index in 0..20 {
            assert_eq!(generate(7, index), generate(7, index));
            assert_eq!(generate(7, index).script(), generate(7, index).script());
        }
        assert!((0..20).any(|i| generate(7, i) != generate(8, i)));
    }

    // SPEC: WIRE-STREAM-1 — the generators reach what the issue lists: several connections,
    // long runs, split tokens, invalid bytes, quiet checks and every ending.
    #[test]
    fn generated_scripts_cover_the_generators() {
        let scripts: Vec<Script> = (0..300).map(|i| generate(1, i).script()).collect();
        let texts: Vec<String> = scripts.iter().map(Script::text).collect();
        let any = |needle: &str| texts.iter().any(|t| t.contains(needle));
        assert!(any("#5 connect"), "up to 8 connections");
        assert!(any("lock-step rounds") && any("\"ping\" x 1"), "long runs");
        assert!(any("expect nothing, still open"), "quiet checks");
        assert!(any("half-close") && any("close\n"), "endings");
        assert!(any("pause 1"), "pauses, some long");
        let bytes: Vec<u8> = scripts
            .iter()
            .flat_map(|s| s.steps.iter())
            .filter_map(|s| match s {
                script::Step::Send { bytes, .. } => Some(bytes.0.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(bytes.contains(&0) && bytes.iter().any(|b| *b >= 0x80) && bytes.contains(&b'P'), "byte classes");
    }
}
