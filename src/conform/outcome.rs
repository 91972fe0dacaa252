//! What became of each case, and of the run: one [`CaseReport`] per case, fixed, generated or
//! replayed, built by one constructor ([`CaseReport::new`]) and concluded by one function
//! ([`CaseReport::conclude`]) from the case's typed result; the [`SuiteReport`] of the run and
//! its exit status.

use std::time::Duration;

use super::case::Role;
use super::explore::ScriptReport;
use super::harness::Transcript;
use super::run::Options;
use super::verdict::{CaseResult, Failure, Problem};
use crate::process::Target;
use crate::spec::{self, Level};

/// What became of a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every expectation of the case held.
    Pass,
    /// An expectation did not hold: the implementation broke what the failure blames.
    Fail,
    /// The case did not apply, or was not selected.
    Skip,
    /// The case ran but could not reach what it tests (the reason says why); never a pass.
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

/// A case's first run, when it ran twice (see [`super::run::run`]).
#[derive(Clone, Debug)]
pub struct FirstRun {
    /// What became of it (a failure or an error, since only those are run again).
    pub outcome: Outcome,
    /// Wall-clock time it took.
    pub duration: Duration,
    /// Why it did not pass.
    pub message: Option<String>,
}

/// The result of one case.
#[derive(Clone, Debug)]
pub struct CaseReport {
    /// The case's ID, `role/section/name`.
    pub id: String,
    /// What it checks, in one line.
    pub title: String,
    /// The SPEC.md section heading the case belongs to.
    pub section: String,
    /// The SPEC.md requirement IDs the case holds the implementation to.
    pub requirements: Vec<&'static str>,
    /// The strongest level among its requirements, or for a failure among what it blames: a
    /// failed MUST fails the run, a SHOULD only with `--strict`.
    pub level: Level,
    /// What became of the case.
    pub outcome: Outcome,
    /// Wall-clock time the case took.
    pub duration: Duration,
    /// For a failure: where, what it blames, expected and observed.
    pub failure: Option<Failure>,
    /// Why the case did not pass (or was not run), in words; `None` for a pass.
    pub message: Option<String>,
    /// More lines under the message (a minimal script, a replay command).
    pub details: Vec<String>,
    /// The command that runs this case again, alone.
    pub rerun: Option<String>,
    /// The bytes and events of the case, where it ran.
    pub transcript: Option<Transcript>,
    /// For a script-shaped case (exploration, replay): the script and how it failed.
    pub script: Option<Box<ScriptReport>>,
    /// For a failure exploration found: how re-running its minimal case in fresh processes went.
    pub confirmation: Option<super::explore::Confirmation>,
    /// What the case's first run saw, when the target did not get going there but started in
    /// other cases, so the case was run once more after the others; this report is the second
    /// run's.
    pub first_run: Option<FirstRun>,
}

impl CaseReport {
    /// A case not run (yet): skipped, with no message.
    pub fn new(
        id: impl Into<String>,
        title: impl Into<String>,
        section: impl Into<String>,
        requirements: Vec<&'static str>,
    ) -> Self {
        let level = spec::strongest_level(spec::all(), &requirements);
        CaseReport {
            id: id.into(),
            title: title.into(),
            section: section.into(),
            requirements,
            level,
            outcome: Outcome::Skip,
            duration: Duration::ZERO,
            failure: None,
            message: None,
            details: Vec::new(),
            rerun: None,
            transcript: None,
            script: None,
            confirmation: None,
            first_run: None,
        }
    }

    /// Concludes the case from its result: a pass, or the outcome its problem calls for. A
    /// failure's level is the strongest among what it blames (a liveness round that fails in a
    /// SHOULD case fails SRV-PONG-1, a MUST).
    pub fn conclude(mut self, result: CaseResult) -> Self {
        (self.outcome, self.message, self.failure) = match result {
            Ok(()) => (Outcome::Pass, None, None),
            Err(problem) => {
                let message = Some(problem.to_string());
                match problem {
                    Problem::Fail(failure) => {
                        self.level = spec::strongest_level(spec::all(), &failure.blames);
                        (Outcome::Fail, message, Some(*failure))
                    }
                    Problem::Inconclusive(_) => (Outcome::Inconclusive, message, None),
                    Problem::Skip(reason) => (Outcome::Skip, Some(reason), None),
                    Problem::Harness(_) => (Outcome::Error, message, None),
                }
            }
        };
        self
    }

    /// The requirements a failure of this case blames (none unless it failed).
    pub fn blamed(&self) -> &[&'static str] {
        self.failure.as_ref().map_or(&[], |f| f.blames.as_slice())
    }

    /// Whether the case checked `id`: it ran to a verdict on it (it passed, or failed blaming
    /// it). A case that failed at an earlier step, blaming something else, did not.
    pub fn checked(&self, id: &str) -> bool {
        match self.outcome {
            Outcome::Pass => true,
            Outcome::Fail => self.blamed().contains(&id),
            _ => false,
        }
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

    /// Failed cases that fail the run: MUST ones, and SHOULD ones with `--strict`.
    pub fn blocking_failures(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Fail && (c.level == Level::Must || self.options.strict))
            .count()
    }

    /// Inconclusive cases that keep the run from passing: MUST ones, and SHOULD ones with
    /// `--strict` (SPEC.md section 8: inconclusive is never a pass).
    pub fn blocking_inconclusive(&self) -> usize {
        self.cases
            .iter()
            .filter(|c| c.outcome == Outcome::Inconclusive && (c.level == Level::Must || self.options.strict))
            .count()
    }

    /// 0 every MUST case passed; 1 a MUST case failed (or a SHOULD with `--strict`); 2 the
    /// harness could not run a case, or could not decide one (an inconclusive MUST case:
    /// the run checked less than it was asked to, so it is no pass either).
    pub fn exit_code(&self) -> u8 {
        if self.count(Outcome::Error) > 0 {
            2
        } else if self.blocking_failures() > 0 {
            1
        } else if self.blocking_inconclusive() > 0 {
            2
        } else {
            0
        }
    }
}
