//! What became of each case: one [`CaseReport`] per case, fixed, generated or replayed, built
//! by one constructor ([`CaseReport::new`]) and concluded by one function
//! ([`CaseReport::conclude`]) from the case's typed result, with the parts a script-shaped case
//! adds ([`ScriptReport`], [`Confirmation`]). The run's report and exit status are `run`'s.

use std::time::Duration;

use serde::Serialize;

use super::case::Case;
use super::harness::Transcript;
use super::script::Script;
use super::verdict::{CaseResult, Failure, Problem};
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
    pub confirmation: Option<Confirmation>,
    /// What the case's first run saw, when the target did not get going there but started in
    /// other cases, so the case was run once more after the others; this report is the second
    /// run's.
    pub first_run: Option<FirstRun>,
}

impl CaseReport {
    /// `case`, not run (yet): skipped, with no message, under its SPEC.md section's heading.
    pub fn of(case: &Case) -> Self {
        CaseReport::new(case.id, case.title, heading(case.section), case.requirements.to_vec())
    }

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

/// How the re-runs of a minimal case went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Confirmation {
    /// Fresh processes the case was re-run in.
    pub runs: u32,
    /// Runs in which it failed again.
    pub failed: u32,
}

impl Confirmation {
    /// Whether the case failed in some re-runs but not all of them.
    pub fn is_flaky(&self) -> bool {
        self.failed < self.runs
    }
}

/// A script-shaped case's details in a report: the script, how it failed, and where it came from.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ScriptReport {
    /// The script that failed (or, for a replay, was replayed).
    pub script: Script,
    /// The first expectation that did not hold, where one failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
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

/// The SPEC.md section heading for a section number (`4.2` is `4.2 Segmentation`).
fn heading(section: &str) -> String {
    spec::all()
        .iter()
        .map(|r| r.section)
        .find(|s| s.strip_prefix(section).is_some_and(|rest| rest.starts_with([' ', '.'])))
        .unwrap_or(section)
        .to_string()
}
