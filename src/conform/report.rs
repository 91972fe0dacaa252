//! The gate's reports: human (grouped by SPEC.md section), JSON (its types here, its schema
//! generated from them) and JUnit XML.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::claims::{profiles, unobservable, ProfileStatus, ProfileVerdict, Unobservable};
use super::harness::{Addressing, Transcript};
use super::outcome::{CaseReport, FirstRun, Outcome};
use super::run::SuiteReport;
use super::verdict::human_duration;
use crate::process::Target;

/// Transcript lines as text: `  +12.3 ms #1 sent "ping"`.
pub fn transcript_text(transcript: &Transcript) -> String {
    transcript.text()
}

fn label(case: &CaseReport, strict: bool) -> &'static str {
    match case.outcome {
        Outcome::Pass => "PASS",
        Outcome::Fail if case.blocks(strict) => "FAIL",
        Outcome::Fail => "WARN",
        Outcome::Skip => "SKIP",
        Outcome::Inconclusive => "INCONCLUSIVE",
        Outcome::Error => "ERROR",
    }
}

/// One case's line, as the human report and the progress lines show it.
pub fn case_line(case: &CaseReport, strict: bool) -> String {
    format!("{:<5} {:<40} {} [{}]", label(case, strict), case.id, case.title, case.level.as_str())
}

/// Under a case that ran twice: what its first run saw.
pub fn first_run_line(first_run: &FirstRun) -> String {
    format!(
        "run again after the other cases; its first run: {} after {}: {}",
        first_run.outcome.as_str(),
        human_duration(first_run.duration),
        first_run.message.as_deref().unwrap_or("(no message)")
    )
}

/// One profile's verdict in words: `core met: 14 of 14 observable MUSTs checked, all passed`.
pub(crate) fn profile_line(profile: &ProfileVerdict) -> String {
    let counts = format!("{} of {} observable MUSTs checked", profile.checked, profile.observable);
    match profile.status {
        ProfileStatus::Met => format!("{} met: {counts}, all passed", profile.name),
        ProfileStatus::NotMet => format!("{} NOT met: {counts}; failed: {}", profile.name, profile.failed.join(", ")),
        ProfileStatus::Incomplete if profile.partly > 0 => format!(
            "{} incomplete: {counts} and {} more by only some of the cases that hold you to them, all passed (the \
             others were not checked)",
            profile.name, profile.partly
        ),
        ProfileStatus::Incomplete => {
            format!("{} incomplete: {counts}, all passed (the others were not checked)", profile.name)
        }
        ProfileStatus::NotJudged => {
            format!(
                "{} not judged: none of its {} observable MUSTs was checked by this run",
                profile.name, profile.observable
            )
        }
    }
}

/// The report for a terminal: one line per case under its SPEC.md section, the failure
/// message (its details, the command that reruns it, and its transcript) under a case that
/// did not pass, then a summary and the profiles.
pub fn human(report: &SuiteReport, verbose: bool) -> String {
    let mut out = String::new();
    let target = report.target.display();
    let abstract_flag = if report.options.addressing == Addressing::Abstract { " --abstract" } else { "" };
    let _ = writeln!(out, "udsping conform {}{abstract_flag} -- {target}", report.role.as_str());
    if let Some(signal) = report.interrupted {
        let _ = writeln!(out, "INTERRUPTED by {signal}: this report is partial (cases not finished are skipped)");
    }
    let mut section = "";
    for case in
        report.cases.iter().filter(|c| c.outcome != Outcome::Skip || c.duration > std::time::Duration::ZERO || verbose)
    {
        if case.section != section {
            section = &case.section;
            let _ = writeln!(out, "\n{section}");
        }
        let _ = writeln!(out, "  {}", case_line(case, report.options.strict));
        if let Some(message) = case.message.as_ref().filter(|_| case.outcome != Outcome::Pass) {
            let _ = writeln!(out, "        {message}");
        }
        for line in &case.details {
            let _ = writeln!(out, "        {line}");
        }
        if let Some(first_run) = &case.first_run {
            let _ = writeln!(out, "        {}", first_run_line(first_run));
        }
        if let Some(rerun) = &case.rerun {
            let _ = writeln!(out, "        rerun alone: {rerun}");
        }
        if verbose || matches!(case.outcome, Outcome::Fail | Outcome::Error | Outcome::Inconclusive) {
            if let Some(transcript) = &case.transcript {
                for line in transcript_text(transcript).lines() {
                    let _ = writeln!(out, "        {line}");
                }
            }
        }
    }
    let warnings = report.cases.iter().filter(|c| c.outcome == Outcome::Fail && !c.blocks(false)).count();
    let _ = writeln!(out);
    let _ = writeln!(out, "profiles ({}):", report.role.as_str());
    for profile in profiles(report) {
        let _ = writeln!(out, "  {}", profile_line(&profile));
    }
    let unobservable: Vec<&str> =
        unobservable(report.role).iter().filter(|u| u.level == "MUST").map(|u| u.id).collect();
    let _ = writeln!(
        out,
        "not observable from outside, so not claimed by this report: {} (see src/conform/claims.rs, NOT_OBSERVABLE)",
        unobservable.join(", ")
    );
    let ran_twice = report.cases.iter().filter(|c| c.first_run.is_some()).count();
    if ran_twice > 0 {
        let _ = writeln!(
            out,
            "ran twice: {ran_twice} case(s) whose first run did not get the target going (no sign of life within \
             --startup-timeout, {}, before any start had succeeded; or held back by the early stop), though it \
             started in other cases; if this machine is slow to start it, raise --startup-timeout",
            human_duration(report.options.waits.startup_timeout)
        );
    }
    let undecided = report.blocking(Outcome::Inconclusive);
    if undecided > 0 && report.exit_code() == 2 && report.count(Outcome::Error) == 0 {
        let _ = writeln!(
            out,
            "undecided: {undecided} MUST case(s) inconclusive, so the run is no pass (exit status 2): give each what \
             its reason asks for, or --skip it to run without it"
        );
    }
    if warnings > 0 && !report.options.strict {
        let _ = writeln!(out, "warnings: {warnings} SHOULD case(s) failed (use --strict to fail on them)");
    }
    let _ = writeln!(
        out,
        "conform: {} passed, {} failed, {} errors, {} skipped, {} inconclusive",
        report.count(Outcome::Pass),
        report.count(Outcome::Fail),
        report.count(Outcome::Error),
        report.count(Outcome::Skip),
        report.count(Outcome::Inconclusive)
    );
    out
}

/// The run's options in the JSON report.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct JsonOptions {
    /// `--only` patterns.
    pub(crate) only: Vec<String>,
    /// `--skip` patterns.
    pub(crate) skip: Vec<String>,
    /// Deadline for each expected event within a case, in milliseconds.
    pub(crate) timeout_ms: u64,
    /// How long a server may take to accept its first connection (a client, to connect), in
    /// milliseconds.
    pub(crate) startup_timeout_ms: u64,
    /// The longest one case may take, in milliseconds (`--case-timeout`).
    pub(crate) case_timeout_ms: u64,
    /// Failed SHOULD cases also fail the run (`--strict`).
    pub(crate) strict: bool,
    /// Cases run at once (`--jobs`).
    pub(crate) jobs: usize,
    /// How the target's socket was named.
    pub(crate) addressing: Addressing,
    /// The exploration seed, with `--explore`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seed: Option<u64>,
}

/// The counts and verdicts in the JSON report.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct JsonSummary {
    /// Cases that passed.
    pub(crate) pass: usize,
    /// Cases that failed.
    pub(crate) fail: usize,
    /// Cases skipped (not applicable or not selected).
    pub(crate) skip: usize,
    /// Cases that ran but could not reach what they test.
    pub(crate) inconclusive: usize,
    /// Cases the harness could not run.
    pub(crate) error: usize,
    /// The gate's exit status for this run.
    pub(crate) exit_code: u8,
    /// Each SPEC.md section 8 profile's verdict, by name.
    pub(crate) profiles: BTreeMap<&'static str, ProfileVerdict>,
    /// Requirements binding this role that no case observes: the report claims nothing
    /// about them (SPEC.md section 8).
    pub(crate) unobservable: Vec<Unobservable>,
}

/// The JSON report (`--format json`).
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct JsonReport<'a> {
    /// Always "udsping conform".
    pub(crate) suite: &'static str,
    /// The udsping version that wrote the report.
    pub(crate) version: &'static str,
    /// The side tested: `server` or `client`.
    pub(crate) role: &'static str,
    /// The command tested.
    pub(crate) target: &'a Target,
    /// The options the gate ran with.
    pub(crate) options: JsonOptions,
    /// The signal that stopped the run before it finished: the report is partial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) interrupted: Option<&'static str>,
    /// Every case, selected or not.
    pub(crate) cases: &'a [CaseReport],
    /// The counts and the profiles' verdicts.
    pub(crate) summary: JsonSummary,
}

/// The JSON report's value.
pub(crate) fn json_report(report: &SuiteReport) -> JsonReport<'_> {
    let waits = &report.options.waits;
    JsonReport {
        suite: "udsping conform",
        version: env!("CARGO_PKG_VERSION"),
        role: report.role.as_str(),
        target: &report.target,
        options: JsonOptions {
            only: report.options.only.iter().map(|p| p.as_str().to_string()).collect(),
            skip: report.options.skip.iter().map(|p| p.as_str().to_string()).collect(),
            timeout_ms: waits.timeout.as_millis() as u64,
            startup_timeout_ms: waits.startup_timeout.as_millis() as u64,
            case_timeout_ms: waits.case_timeout.as_millis() as u64,
            strict: report.options.strict,
            jobs: report.options.jobs,
            addressing: report.options.addressing,
            seed: report.options.explore.as_ref().map(|e| e.seed),
        },
        interrupted: report.interrupted,
        cases: &report.cases,
        summary: JsonSummary {
            pass: report.count(Outcome::Pass),
            fail: report.count(Outcome::Fail),
            skip: report.count(Outcome::Skip),
            inconclusive: report.count(Outcome::Inconclusive),
            error: report.count(Outcome::Error),
            exit_code: report.exit_code(),
            profiles: profiles(report).into_iter().map(|p| (p.name, p)).collect(),
            unobservable: unobservable(report.role),
        },
    }
}

/// The JSON Schema of [`json`]'s output, generated from these types (committed as
/// `schemas/conform-report.schema.json`).
pub fn schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(JsonReport<'static>)).expect("a schema serializes") + "\n"
}

/// One JSON object: suite, version, target, options, cases, summary.
pub fn json(report: &SuiteReport) -> Result<String, serde_json::Error> {
    Ok(serde_json::to_string_pretty(&json_report(report))? + "\n")
}

/// JUnit XML: one test suite per SPEC.md section, one test case per conformance case.
pub fn junit(report: &SuiteReport) -> Result<String, quick_junit::SerializeError> {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut junit = Report::new(format!("udsping conform {}", report.role.as_str()));
    let mut suites: Vec<TestSuite> = Vec::new();
    for case in &report.cases {
        if suites.last().is_none_or(|s| s.name.as_str() != case.section) {
            suites.push(TestSuite::new(case.section.clone()));
        }
        let mut status = match case.outcome {
            Outcome::Pass => TestCaseStatus::success(),
            // A SHOULD failure is a warning unless --strict: reported, but not as a failure.
            Outcome::Fail if case.blocks(report.options.strict) => TestCaseStatus::non_success(NonSuccessKind::Failure),
            Outcome::Fail | Outcome::Skip | Outcome::Inconclusive => TestCaseStatus::skipped(),
            Outcome::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        };
        if let Some(message) = &case.message {
            status.set_message(message.clone());
        }
        // A case that ran twice: its first run as a rerun, which CI systems show as flaky when
        // the second passed (`flakyFailure`, `flakyError`).
        if let Some(first_run) = &case.first_run {
            let kind =
                if first_run.outcome == Outcome::Error { NonSuccessKind::Error } else { NonSuccessKind::Failure };
            let mut rerun = quick_junit::TestRerun::new(kind);
            rerun.set_message(first_run_line(first_run));
            rerun.time = Some(first_run.duration);
            status.add_rerun(rerun);
        }
        let mut test_case = TestCase::new(case.id.clone(), status);
        test_case.set_classname(format!("{}.{}", report.role.as_str(), case.section)).set_time(case.duration);
        let mut out = case.details.join("\n");
        if let Some(rerun) = &case.rerun {
            out += &format!("\nrerun alone: {rerun}\n");
        }
        if let Some(transcript) = &case.transcript {
            out += &transcript_text(transcript);
        }
        if !out.is_empty() {
            test_case.set_system_out(out);
        }
        suites.last_mut().expect("a suite was pushed").add_test_case(test_case);
    }
    junit.add_test_suites(suites);
    junit.to_string()
}
