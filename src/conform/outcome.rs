//! What became of each case: one [`CaseReport`] per case, fixed, generated or replayed, built
//! by one constructor ([`CaseReport::new`]) and concluded by one function
//! ([`CaseReport::conclude`]) from the case's typed result, with the parts a script-shaped case
//! adds ([`ScriptReport`], [`Confirmation`]). The run's report and exit status are `run`'s.

use std::time::Duration;

use serde::Serialize;

use super::case::Case;
use super::harness::{serialize_lines, Line, Transcript};
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

/// A case's first run, when it ran twice.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FirstRun {
    /// What became of it: `fail` or `error` (only those are run again).
    pub outcome: Outcome,
    /// Wall-clock time it took (JSON: `duration_ms`, in milliseconds).
    #[serde(rename = "duration_ms", serialize_with = "milliseconds")]
    #[schemars(with = "u64")]
    pub duration: Duration,
    /// Why it did not pass.
    pub message: Option<String>,
}

/// The result of one case, as the JSON report writes it too.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct CaseReport {
    /// The case's ID, `role/section/name`.
    pub id: String,
    /// What the case checks, in a line.
    pub title: String,
    /// The SPEC.md section heading the case belongs to.
    pub section: String,
    /// The SPEC.md requirement IDs the case holds the implementation to.
    pub requirements: Vec<&'static str>,
    /// The strongest level among them, or for a failure among what it blames: `MUST`,
    /// `SHOULD` or `MAY`. A failed MUST fails the run, a SHOULD only with `--strict`.
    #[serde(serialize_with = "level_name")]
    #[schemars(with = "String")]
    pub level: Level,
    /// What became of the case.
    pub outcome: Outcome,
    /// Wall-clock time the case took (JSON: `duration_ms`, in milliseconds).
    #[serde(rename = "duration_ms", serialize_with = "milliseconds")]
    #[schemars(with = "u64")]
    pub duration: Duration,
    /// Why the case did not pass (or was not run), in words; `null` for a pass.
    pub message: Option<String>,
    /// For a failure: the step it was seen at, the requirements that step exercises (the
    /// only ones it blames), what was expected and what was observed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// More lines under the message (a minimal case, a replay command).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// The command that runs this case again, alone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerun: Option<String>,
    /// The bytes and events of the case, where it ran.
    #[serde(serialize_with = "serialize_lines")]
    #[schemars(with = "Option<Vec<Line>>")]
    pub transcript: Option<Transcript>,
    /// For a script-shaped case (exploration, replay): the minimal script, how it failed, the
    /// seed; what `--replay` reads back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<Box<ScriptReport>>,
    /// For a failure exploration found: how re-running its minimal case in fresh processes went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
    /// When the target showed no sign of life within `--startup-timeout` in the case's first
    /// run but started in other cases, the case ran once more after the others and this
    /// report is the second run's: what the first saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_run: Option<FirstRun>,
}

fn milliseconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_millis() as u64)
}

fn level_name<S: serde::Serializer>(level: &Level, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(level.as_str())
}

impl CaseReport {
    /// Whether its outcome counts against the run: a MUST case's always, a SHOULD case's
    /// only with `--strict` (otherwise its failure is a warning).
    pub fn blocks(&self, strict: bool) -> bool {
        self.level == Level::Must || strict
    }

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
