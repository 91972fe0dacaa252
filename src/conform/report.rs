//! The gate's reports: human (grouped by SPEC.md section), JSON and JUnit XML.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::harness::{Addressing, Direction, Transcript};
use super::{CaseReport, Outcome, SuiteReport};
use crate::proto::quoted;
use crate::spec::Level;

/// Transcript lines as text: `  +12.3 ms #1 sent "ping"`.
pub fn transcript_text(transcript: &Transcript) -> String {
    let mut out = String::new();
    for entry in &transcript.entries {
        let what = match entry.direction {
            Direction::Sent => format!("sent {}", quoted(&entry.bytes)),
            Direction::Received => format!("received {}", quoted(&entry.bytes)),
            Direction::Event => String::from_utf8_lossy(&entry.bytes).into_owned(),
        };
        let conn = if entry.conn == 0 { "  ".to_string() } else { format!("#{}", entry.conn) };
        let _ = writeln!(out, "{:>9.1} ms {conn} {what}", entry.at.as_secs_f64() * 1000.0);
    }
    out
}

fn label(case: &CaseReport, strict: bool) -> &'static str {
    match case.outcome {
        Outcome::Pass => "PASS",
        Outcome::Fail if case.level == Level::Must || strict => "FAIL",
        Outcome::Fail => "WARN",
        Outcome::Skip => "SKIP",
        Outcome::Error => "ERROR",
    }
}

/// The report for a terminal: one line per case under its SPEC.md section, the failure
/// message (and transcript) under a failing case, then a summary and the profiles met.
pub fn human(report: &SuiteReport, verbose: bool) -> String {
    let mut out = String::new();
    let target = std::iter::once(report.target.program.as_str())
        .chain(report.target.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let abstract_flag = if report.options.addressing == Addressing::Abstract { " --abstract" } else { "" };
    let _ = writeln!(out, "udsping conform {}{abstract_flag} -- {target}", report.role.as_str());
    let mut section = "";
    for case in report.cases.iter().filter(|c| c.outcome != Outcome::Skip || verbose) {
        if case.section != section {
            section = &case.section;
            let _ = writeln!(out, "\n{section}");
        }
        let _ = writeln!(
            out,
            "  {:<5} {:<40} {} [{}]",
            label(case, report.options.strict),
            case.id,
            case.title,
            case.level.as_str()
        );
        if let Some(message) = case.message.as_ref().filter(|_| case.outcome != Outcome::Pass) {
            let _ = writeln!(out, "        {message}");
        }
        if verbose || matches!(case.outcome, Outcome::Fail | Outcome::Error) {
            if let Some(transcript) = &case.transcript {
                for line in transcript_text(transcript).lines() {
                    let _ = writeln!(out, "        {line}");
                }
            }
        }
    }
    let warnings = report.cases.iter().filter(|c| c.outcome == Outcome::Fail && c.level != Level::Must).count();
    let _ = writeln!(out);
    let profiles: Vec<String> = report
        .profiles()
        .into_iter()
        .map(|(name, met)| match met {
            Some(true) => format!("{name} met"),
            Some(false) => format!("{name} NOT met"),
            None => format!("{name} not checked"),
        })
        .collect();
    let _ = writeln!(out, "profiles: {}", profiles.join(", "));
    if warnings > 0 && !report.options.strict {
        let _ = writeln!(out, "warnings: {warnings} SHOULD case(s) failed (use --strict to fail on them)");
    }
    let _ = writeln!(
        out,
        "conform: {} passed, {} failed, {} errors, {} skipped",
        report.count(Outcome::Pass),
        report.count(Outcome::Fail),
        report.count(Outcome::Error),
        report.count(Outcome::Skip)
    );
    out
}

fn transcript_json(transcript: &Transcript) -> Value {
    Value::Array(
        transcript
            .entries
            .iter()
            .map(|e| {
                let direction = match e.direction {
                    Direction::Sent => "sent",
                    Direction::Received => "received",
                    Direction::Event => "event",
                };
                let mut entry = json!({
                    "t_ms": (e.at.as_secs_f64() * 1e4).round() / 10.0,
                    "conn": e.conn,
                    "direction": direction,
                    "text": if e.direction == Direction::Event { String::from_utf8_lossy(&e.bytes).into_owned() } else { e.bytes.escape_ascii().to_string() },
                });
                if e.direction != Direction::Event && !e.bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                    entry["hex"] = Value::String(e.bytes.iter().map(|b| format!("{b:02x}")).collect());
                }
                entry
            })
            .collect(),
    )
}

/// One JSON object: suite, version, target, options, cases, summary.
pub fn json(report: &SuiteReport) -> String {
    let cases: Vec<Value> = report
        .cases
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "title": c.title,
                "section": c.section,
                "requirements": c.requirements,
                "level": c.level.as_str(),
                "outcome": c.outcome.as_str(),
                "duration_ms": c.duration.as_millis() as u64,
                "message": c.message,
                "transcript": c.transcript.as_ref().map(transcript_json),
                "script": c.script.as_ref().map(|s| serde_json::to_value(s).expect("a script serializes")),
            })
        })
        .collect();
    let profiles: serde_json::Map<String, Value> = report
        .profiles()
        .into_iter()
        .map(|(name, met)| (name.to_string(), met.map_or(Value::Null, Value::Bool)))
        .collect();
    let value = json!({
        "suite": "udsping conform",
        "version": env!("CARGO_PKG_VERSION"),
        "role": report.role.as_str(),
        "target": { "program": report.target.program, "args": report.target.args },
        "options": {
            "only": report.options.only.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "skip": report.options.skip.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
            "timeout_ms": report.options.timeout.as_millis() as u64,
            "strict": report.options.strict,
            "jobs": report.options.jobs,
            "addressing": match report.options.addressing {
                Addressing::Path => "path",
                Addressing::Abstract => "abstract",
            },
        },
        "cases": cases,
        "summary": {
            "pass": report.count(Outcome::Pass),
            "fail": report.count(Outcome::Fail),
            "skip": report.count(Outcome::Skip),
            "error": report.count(Outcome::Error),
            "exit_code": report.exit_code(),
            "profiles": profiles,
        },
    });
    serde_json::to_string_pretty(&value).expect("a JSON value serializes") + "\n"
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
            Outcome::Fail if case.level == Level::Must || report.options.strict => {
                TestCaseStatus::non_success(NonSuccessKind::Failure)
            }
            Outcome::Fail | Outcome::Skip => TestCaseStatus::skipped(),
            Outcome::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        };
        if let Some(message) = &case.message {
            status.set_message(message.clone());
        }
        let mut test_case = TestCase::new(case.id, status);
        test_case.set_classname(format!("{}.{}", report.role.as_str(), case.section)).set_time(case.duration);
        if let Some(transcript) = &case.transcript {
            test_case.set_system_out(transcript_text(transcript));
        }
        suites.last_mut().expect("a suite was pushed").add_test_case(test_case);
    }
    junit.add_test_suites(suites);
    junit.to_string()
}
