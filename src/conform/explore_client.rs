//! `udsping conform client --explore`: the gate plays generated servers against a client and
//! judges its bytes and exit status against SPEC.md section 6 (CLT-*), shrinking the first
//! failure as [`super::explore`] does for servers.
//!
//! A generated [`ClientPlan`] answers the client's pings with `pong`s split at generated points
//! with pauses between the pieces (during which the client must stay silent, CLT-LOCKSTEP-1),
//! and in one generated round (early, or late, from round 50 on) does one thing wrong: a wrong
//! byte at a generated position of the reply, a close after part of the reply, or extra bytes
//! after the `pong` in the same write. The model is [`ClientSession`]: after a disruption the
//! client sends nothing more (in particular no `end`), closes and exits non-zero
//! (CLT-REPLY-2, CLT-EOF-1, CLT-EXIT-1); if it finishes its rounds before the disruption it
//! sends `end`, closes and exits 0 (CLT-END-1, CLT-EXIT-1).

use std::cell::RefCell;
use std::fmt;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use super::explore::{rng_for, Confirmation, SECTION_CLIENT};
use super::harness::{Addressing, Ctx, Problem, Target, Transcript, Waits};
use super::script::{Bytes, Observation};
use super::{CaseReport, Outcome};
use crate::proto::{ClientSession, PING, PONG};
use crate::spec;

/// Generated clients runs per `--explore` unless `--cases` says otherwise.
pub const DEFAULT_CASES: u32 = 60;

/// The one thing the gate's server does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disruption {
    /// Byte `at` (0 to 3) of the reply is `byte` instead.
    Wrong {
        /// Which byte of the reply, from 0.
        at: u8,
        /// The byte sent in its place.
        byte: u8,
    },
    /// The first `sent` bytes (0 to 3) of the reply, then a close.
    Close {
        /// Bytes of `pong` written before the close.
        sent: u8,
    },
    /// `"pong"` and then `byte`, in one write.
    Extra {
        /// The byte written after the `pong`.
        byte: u8,
    },
}

/// How a correct reply is written: pieces cut after byte 1, 2 or 3 (a bit each), `pause` ms
/// apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    /// Where the reply is cut: bit `i` set cuts it after byte `i + 1`.
    pub cuts: u8,
    /// Milliseconds between the pieces.
    pub pause: u8,
}

/// A generated server for one client run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPlan {
    /// How the replies of the first rounds are split (later rounds get whole `pong`s).
    pub splits: Vec<Split>,
    /// The round (from 1) in which the disruption happens.
    pub round: u32,
    /// What the server does wrong in that round.
    pub disruption: Disruption,
}

impl fmt::Display for ClientPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, split) in self.splits.iter().enumerate().filter(|(i, _)| (*i as u32) + 1 < self.round) {
            let pieces: Vec<String> = pieces(split).iter().map(|p| Bytes(p.to_vec()).to_string()).collect();
            writeln!(f, "round {}: replied {} ({} ms apart)", i + 1, pieces.join(" "), split.pause)?;
        }
        let before = (self.round - 1) as usize;
        if before > self.splits.len() {
            writeln!(f, "rounds {}..{}: replied \"pong\"", self.splits.len() + 1, before)?;
        }
        match self.disruption {
            Disruption::Wrong { at, byte } => {
                let mut reply = PONG.to_vec();
                reply[usize::from(at)] = byte;
                writeln!(f, "round {}: replied {}", self.round, Bytes(reply))
            }
            Disruption::Close { sent } => {
                writeln!(f, "round {}: replied {} and closed", self.round, Bytes(PONG[..usize::from(sent)].to_vec()))
            }
            Disruption::Extra { byte } => {
                writeln!(f, "round {}: replied {} in one write", self.round, Bytes([&PONG[..], &[byte]].concat()))
            }
        }
    }
}

fn pieces(split: &Split) -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut from = 0;
    for cut in 1..4 {
        if split.cuts & (1 << (cut - 1)) != 0 {
            out.push(&PONG[from..cut]);
            from = cut;
        }
    }
    out.push(&PONG[from..]);
    out
}

/// The generator of servers for a client.
pub fn plans() -> impl Strategy<Value = ClientPlan> {
    let split = (0u8..8, 0u8..25).prop_map(|(cuts, pause)| Split { cuts, pause });
    // Mostly rounds 1 to 9, sometimes a late round, 50 to 100; monotonic, so it shrinks exactly.
    let round = (0u32..951).prop_map(|x| if x < 900 { 1 + x / 100 } else { 50 + (x - 900) });
    let wrong = prop_oneof![prop::sample::select(&b"PONGpaxz\0\xff\n"[..]), any::<u8>(),];
    let disruption = prop_oneof![
        ((0u8..4), wrong.clone()).prop_map(|(at, byte)| Disruption::Wrong { at, byte }),
        (0u8..4).prop_map(|sent| Disruption::Close { sent }),
        wrong.prop_map(|byte| Disruption::Extra { byte }),
    ];
    (prop::collection::vec(split, 0..6), round, disruption).prop_map(|(splits, round, disruption)| ClientPlan {
        splits,
        round,
        disruption,
    })
}

/// How a client run broke SPEC.md section 6.
#[derive(Clone, Debug)]
pub struct ClientFailure {
    /// The round (from 1) in which the client went wrong.
    pub round: u32,
    /// What a conforming client does there (SPEC.md section 6).
    pub expected: Observation,
    /// What the client did.
    pub observed: Observation,
    /// The requirements it broke.
    pub requirements: Vec<&'static str>,
    /// The gate's bytes in and out with the client, where the run kept them.
    pub transcript: Option<Transcript>,
}

impl fmt::Display for ClientFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "round {}: expected {}; observed {}", self.round, self.expected, self.observed)
    }
}

/// Why a run did not pass.
enum RunError {
    Failed(Box<ClientFailure>),
    Harness(String),
}

fn from_problem(problem: Problem, round: u32, requirements: &[&'static str]) -> RunError {
    match problem {
        Problem::Fail(error) => RunError::Failed(Box::new(ClientFailure {
            round,
            expected: Observation::Connected,
            observed: Observation::NotConnected { error },
            requirements: requirements.to_vec(),
            transcript: None,
        })),
        Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message) => {
            RunError::Harness(message)
        }
    }
}

/// Plays `plan` as the server of one run of the client `target`.
fn play(target: &Target, waits: Waits, addressing: Addressing, plan: &ClientPlan) -> Result<(), RunError> {
    let harness = |problem: Problem| match problem {
        Problem::Fail(message)
        | Problem::Harness(message)
        | Problem::Inconclusive(message)
        | Problem::Skip(message) => RunError::Harness(message),
    };
    let mut ctx = Ctx::new(target, waits, addressing).map_err(harness)?;
    let listener = ctx.listen().map_err(harness)?;
    ctx.spawn().map_err(harness)?;
    let result = serve(&mut ctx, &listener, plan);
    result.map_err(|error| match error {
        RunError::Failed(mut failure) => {
            failure.transcript = Some(ctx.transcript());
            RunError::Failed(failure)
        }
        other => other,
    })
}

fn serve(ctx: &mut Ctx, listener: &std::os::unix::net::UnixListener, plan: &ClientPlan) -> Result<(), RunError> {
    let mut conn = match ctx.accept(listener) {
        Ok(conn) => conn,
        // A client that showed no sign of life before --startup-timeout ran out has not
        // taken part in the conversation: that is no failure of CLT-LOCKSTEP-1.
        Err(Problem::Fail(message)) if ctx.start_timed_out => return Err(RunError::Harness(message)),
        Err(problem) => return Err(from_problem(problem, 1, &["CLT-LOCKSTEP-1"])),
    };
    let failed = |round, expected, observed, requirements: &[&'static str]| {
        Err(RunError::Failed(Box::new(ClientFailure {
            round,
            expected,
            observed,
            requirements: requirements.to_vec(),
            transcript: None,
        })))
    };
    let closed_or_open = |got: Vec<u8>, closed: bool, waited: Duration| {
        if closed {
            Observation::Closed { before: Bytes(got) }
        } else {
            Observation::Open { received: Bytes(got), waited_ms: waited.as_millis() as u64 }
        }
    };
    for round in 1.. {
        let (got, closed) = conn.read_exactly_or_close(PING.len());
        if got == b"end" && closed {
            // The client finished its rounds before the disruption: `end`, a close, exit 0.
            let status = wait_exit(ctx, round)?;
            if !status.success() {
                let observed = Observation::Exited { status: status.to_string() };
                return failed(
                    round,
                    Observation::Exited { status: "exit status: 0".into() },
                    observed,
                    &["CLT-EXIT-1"],
                );
            }
            return Ok(());
        }
        if got != PING {
            let expected = Observation::Bytes { bytes: PING[..].into() };
            let observed = closed_or_open(got, closed, ctx.timeout);
            return failed(round, expected, observed, &["CLT-LOCKSTEP-1", "CLT-END-1", "WIRE-GRAMMAR-1"]);
        }
        if round == plan.round {
            return disrupt(ctx, &mut conn, plan.disruption, round);
        }
        let split = plan.splits.get((round - 1) as usize).copied().unwrap_or(Split { cuts: 0, pause: 0 });
        let pieces = pieces(&split);
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 && split.pause > 0 {
                // SPEC: CLT-LOCKSTEP-1 — nothing from the client until the reply is complete.
                let window = Duration::from_millis(u64::from(split.pause));
                let (got, closed) = conn.read_for(window);
                if closed || !got.is_empty() {
                    let expected =
                        Observation::Open { received: Bytes::default(), waited_ms: window.as_millis() as u64 };
                    return failed(
                        round,
                        expected,
                        closed_or_open(got, closed, window),
                        &["CLT-LOCKSTEP-1", "CLT-REPLY-1"],
                    );
                }
            }
            conn.send(piece);
        }
    }
    unreachable!("the loop returns")
}

/// After the disruption: nothing more from the client (no `end`), a close, a non-zero exit.
fn disrupt(ctx: &mut Ctx, conn: &mut super::harness::Conn, disruption: Disruption, round: u32) -> Result<(), RunError> {
    let why: &[&'static str] = match disruption {
        Disruption::Wrong { at, byte } => {
            let mut reply = PONG.to_vec();
            reply[usize::from(at)] = byte;
            conn.send(&reply);
            &["CLT-REPLY-2", "CLT-EXIT-1"]
        }
        Disruption::Close { sent } => {
            conn.send(&PONG[..usize::from(sent)]);
            conn.half_close();
            &["CLT-EOF-1", "CLT-EXIT-1"]
        }
        Disruption::Extra { byte } => {
            conn.send(&[&PONG[..], &[byte]].concat());
            &["CLT-REPLY-2", "CLT-EXIT-1"]
        }
    };
    // A wrong byte where the model's client session says a pong continues is not wrong.
    let mut model = ClientSession::new(u64::from(round) + 1);
    for _ in 1..round {
        let _ = model.poll_transmit();
        let _ = model.on_bytes(PONG);
    }
    let _ = model.poll_transmit();
    let sent: Vec<u8> = match disruption {
        Disruption::Wrong { at, byte } => {
            let mut reply = PONG.to_vec();
            reply[usize::from(at)] = byte;
            reply
        }
        Disruption::Close { sent } => PONG[..usize::from(sent)].to_vec(),
        Disruption::Extra { byte } => [&PONG[..], &[byte]].concat(),
    };
    let broken = model.on_bytes(&sent).is_err() || matches!(disruption, Disruption::Close { .. });
    if !broken {
        return serve_rest(ctx, conn, round);
    }
    let (rest, closed) = conn.read_until_close();
    // After extra bytes, a client that read "pong" alone may have sent its next ping before
    // seeing them; it must stop there.
    let allowed: &[u8] =
        if matches!(disruption, Disruption::Extra { .. }) && rest.starts_with(PING) { PING } else { b"" };
    if rest != allowed || !closed {
        let expected = Observation::Closed { before: Bytes(allowed.to_vec()) };
        let observed = if closed {
            Observation::Closed { before: Bytes(rest) }
        } else {
            Observation::Open { received: Bytes(rest), waited_ms: ctx.timeout.as_millis() as u64 }
        };
        return Err(RunError::Failed(Box::new(ClientFailure {
            round,
            expected,
            observed,
            requirements: why.to_vec(),
            transcript: None,
        })));
    }
    let status = wait_exit(ctx, round)?;
    if status.success() {
        return Err(RunError::Failed(Box::new(ClientFailure {
            round,
            expected: Observation::Exited { status: "a non-zero exit status".into() },
            observed: Observation::Exited { status: status.to_string() },
            requirements: vec!["CLT-EXIT-1"],
            transcript: None,
        })));
    }
    Ok(())
}

/// A disruption the model accepts (a "wrong" byte equal to the right one): play on correctly.
fn serve_rest(ctx: &mut Ctx, conn: &mut super::harness::Conn, round: u32) -> Result<(), RunError> {
    for round in round + 1.. {
        let (got, closed) = conn.read_exactly_or_close(PING.len());
        if got == b"end" && closed {
            let status = wait_exit(ctx, round)?;
            return if status.success() {
                Ok(())
            } else {
                Err(RunError::Failed(Box::new(ClientFailure {
                    round,
                    expected: Observation::Exited { status: "exit status: 0".into() },
                    observed: Observation::Exited { status: status.to_string() },
                    requirements: vec!["CLT-EXIT-1"],
                    transcript: None,
                })))
            };
        }
        if got != PING {
            return Err(RunError::Failed(Box::new(ClientFailure {
                round,
                expected: Observation::Bytes { bytes: PING[..].into() },
                observed: Observation::Closed { before: Bytes(got) },
                requirements: vec!["CLT-LOCKSTEP-1", "CLT-END-1"],
                transcript: None,
            })));
        }
        conn.send(PONG);
    }
    unreachable!("the loop returns")
}

fn wait_exit(ctx: &mut Ctx, round: u32) -> Result<std::process::ExitStatus, RunError> {
    ctx.wait_exit("the client's conversation is over").map_err(|p| match p {
        Problem::Fail(_) => RunError::Failed(Box::new(ClientFailure {
            round,
            expected: Observation::Exited { status: "an exit".into() },
            observed: Observation::Running,
            requirements: vec!["CLT-EXIT-1"],
            transcript: None,
        })),
        Problem::Harness(message) | Problem::Inconclusive(message) | Problem::Skip(message) => {
            RunError::Harness(message)
        }
    })
}

/// What a client exploration found.
#[derive(Clone, Debug)]
pub struct ClientFound {
    /// Which generated case of the seed failed (from 0).
    pub index: u64,
    /// The shrunk server plan that still makes the client fail.
    pub minimal: ClientPlan,
    /// How the client failed against the minimal plan.
    pub failure: ClientFailure,
    /// How re-running the minimal plan went.
    pub confirmation: Confirmation,
    /// Candidate plans run while shrinking.
    pub runs: u32,
}

/// Runs `cases` generated servers against the client `target` (one client process per run);
/// shrinks and confirms the first failure.
pub fn explore(
    target: &Target,
    cases: u32,
    seed: u64,
    waits: Waits,
    addressing: Addressing,
    time: Option<Duration>,
) -> (u64, Option<ClientFound>, Option<String>) {
    let started = Instant::now();
    let mut harness_error = None;
    for index in 0..u64::from(cases) {
        if time.is_some_and(|t| started.elapsed() >= t) {
            return (index, None, harness_error);
        }
        let config = Config {
            cases: 1,
            failure_persistence: None,
            max_shrink_iters: 200,
            max_shrink_time: 20_000,
            verbose: 0,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, rng_for(seed, index));
        let Ok(tree) = plans().new_tree(&mut runner) else { break };
        let runs = std::cell::Cell::new(0u32);
        let last = RefCell::new(None);
        let errors = RefCell::new(None);
        let result = runner.run_one(tree, |plan| {
            runs.set(runs.get() + 1);
            match play(target, waits, addressing, &plan) {
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
            }
        });
        harness_error = harness_error.or(errors.into_inner());
        if harness_error.is_some() {
            return (index + 1, None, harness_error);
        }
        if let Err(TestError::Fail(_, minimal)) = result {
            let mut confirmation = Confirmation { runs: 0, failed: 0 };
            let mut failure = None;
            for _ in 0..super::explore::CONFIRM_RUNS {
                confirmation.runs += 1;
                if let Err(RunError::Failed(f)) = play(target, waits, addressing, &minimal) {
                    confirmation.failed += 1;
                    failure.get_or_insert(*f);
                }
            }
            let failure = failure.or(last.into_inner());
            let found =
                failure.map(|failure| ClientFound { index, minimal, failure, confirmation, runs: runs.get() - 1 });
            return (index + 1, found, None);
        }
    }
    (u64::from(cases), None, harness_error)
}

fn leak(text: String) -> &'static str {
    // As in `explore`: a report's IDs and titles are static; a run makes one or two.
    Box::leak(text.into_boxed_str())
}

/// The client exploration as report cases.
pub fn reports(
    ran: u64,
    found: Option<&ClientFound>,
    harness_error: Option<&str>,
    seed: u64,
    elapsed: Duration,
) -> Vec<CaseReport> {
    let requirements = spec::requirements();
    let level_of = |ids: &[&str]| spec::strongest_level(&requirements, ids);
    let all = vec!["CLT-LOCKSTEP-1", "CLT-REPLY-1", "CLT-REPLY-2", "CLT-EOF-1", "CLT-END-1", "CLT-EXIT-1"];
    let report = |id, title, requirements: Vec<&'static str>, outcome, message, transcript| CaseReport {
        id,
        title,
        level: level_of(&requirements),
        requirements,
        section: SECTION_CLIENT.to_string(),
        outcome,
        duration: elapsed,
        message,
        transcript,
        script: None,
        first_run: None,
    };
    if let Some(error) = harness_error {
        let message = Some(format!("harness error: {error}"));
        return vec![report("client/explore/harness", "exploration could not run", all, Outcome::Error, message, None)];
    }
    let Some(found) = found else {
        let title = leak(format!("{ran} generated servers (seed {seed}), the client met every one"));
        return vec![report("client/explore/generated", title, all, Outcome::Pass, None, None)];
    };
    let verdict = if found.confirmation.is_flaky() { "FLAKY: the minimal plan failed" } else { "confirmed: failed" };
    let plan: String = found.minimal.to_string().lines().map(|l| format!("        {l}\n")).collect();
    let message = format!(
        "{}: {}\n        minimal server ({} runs of shrinking); {verdict} {} of {} re-runs:\n{plan}        re-explore: --explore --seed {seed} --cases {}",
        found.failure.requirements.join(", "),
        found.failure,
        found.runs,
        found.confirmation.failed,
        found.confirmation.runs,
        found.index + 1
    );
    vec![report(
        leak(format!("client/explore/seed-{seed}-case-{}", found.index)),
        "a generated server, shrunk",
        found.failure.requirements.clone(),
        Outcome::Fail,
        Some(message),
        found.failure.transcript.clone(),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_every_cut_and_keep_the_bytes() {
        for cuts in 0..8 {
            assert_eq!(pieces(&Split { cuts, pause: 0 }).concat(), PONG);
        }
        assert_eq!(pieces(&Split { cuts: 0b101, pause: 0 }), [&b"p"[..], b"on", b"g"]);
    }
}
