//! The conformance gate judged: the reference passes every case, the seed's Python programs get
//! exactly the verdict SPEC.md section 9 predicts, every observable requirement has a case,
//! and the command line keeps its contract (formats, filters, exit statuses).

mod common;

use common::{SEED_CLIENT, SEED_SERVER};

use std::collections::BTreeSet;
use std::process::Command;

use assert_cmd::Command as TestCommand;
use predicates::prelude::*;
use udsping::conform::harness::{Addressing, Target};
use udsping::conform::{self, Needs, Options, Outcome, Role, NOT_OBSERVABLE};
use udsping::spec;

fn reference(role: Role) -> Target {
    let program = env!("CARGO_BIN_EXE_udsping").to_string();
    let args = match role {
        Role::Server => vec!["serve", "--socket", "{socket}"],
        Role::Client => vec!["ping", "--socket", "{socket}"],
    };
    Target { program, args: args.into_iter().map(String::from).collect() }
}

fn failing_cases(report: &conform::SuiteReport) -> BTreeSet<&'static str> {
    report.cases.iter().filter(|c| matches!(c.outcome, Outcome::Fail | Outcome::Error)).map(|c| c.id).collect()
}

fn describe_failures(report: &conform::SuiteReport) -> String {
    report.cases.iter().filter(|c| c.outcome != Outcome::Pass).map(|c| format!("{}: {:?}\n", c.id, c.message)).collect()
}

/// The cases that do not apply under `addressing`: every other case must have run.
fn not_applicable(role: Role, addressing: Addressing) -> BTreeSet<&'static str> {
    conform::cases(role).into_iter().filter(|c| c.needs.excluded_by(addressing).is_some()).map(|c| c.id).collect()
}

fn skipped_cases(report: &conform::SuiteReport) -> BTreeSet<&'static str> {
    report.cases.iter().filter(|c| c.outcome == Outcome::Skip).map(|c| c.id).collect()
}

// SPEC: SRV-PONG-1, LIFE-SHUT-1, TRN-ABSTRACT-2 — the reference server passes every server
// case, given a path and given an abstract address; only the other addressing's cases skip.
#[rstest::rstest]
#[case::path(Addressing::Path, Needs::AbstractAddress)]
#[case::abstract_address(Addressing::Abstract, Needs::SocketFile)]
fn reference_server_passes_every_case(#[case] addressing: Addressing, #[case] skipped: Needs) {
    let options = Options { addressing, ..Options::default() };
    let report = conform::run(Role::Server, &reference(Role::Server), &options);
    assert!(failing_cases(&report).is_empty(), "{}", describe_failures(&report));
    assert_eq!(skipped_cases(&report), not_applicable(Role::Server, addressing));
    assert!(conform::cases(Role::Server).iter().any(|c| c.needs == skipped), "no {skipped:?} case skipped");
    assert_eq!(report.exit_code(), 0);
    assert!(report.profiles().iter().all(|(_, met)| *met == Some(true)), "{:?}", report.profiles());
}

// SPEC: CLT-LOCKSTEP-1, CLT-EXIT-1, TRN-ABSTRACT-2 — the reference client passes every client
// case, given a path and given an abstract address.
#[rstest::rstest]
fn reference_client_passes_every_case(#[values(Addressing::Path, Addressing::Abstract)] addressing: Addressing) {
    let options = Options { addressing, ..Options::default() };
    let report = conform::run(Role::Client, &reference(Role::Client), &options);
    assert!(failing_cases(&report).is_empty(), "{}", describe_failures(&report));
    assert_eq!(skipped_cases(&report), not_applicable(Role::Client, addressing));
    assert_eq!(report.exit_code(), 0);
}

// SPEC: TRN-ABSTRACT-2 — a server that takes `@name` for a file name is caught: it creates a
// file, and nothing listens on the abstract name.
#[test]
fn a_server_without_abstract_addresses_fails_the_abstract_run() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("path-only.sh");
    // Binds a socket file at whatever it is given, `@…` included.
    let program = env!("CARGO_BIN_EXE_udsping");
    std::fs::write(&script, format!("#!/bin/sh\nexec {program} serve --socket \"./$1\"\n")).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let target = Target { program: script.to_string_lossy().into_owned(), args: vec!["{socket}".into()] };
    let options = Options {
        addressing: Addressing::Abstract,
        only: vec![glob::Pattern::new("server/7.6/*").unwrap()],
        ..Options::default()
    };
    let report = conform::run(Role::Server, &target, &options);
    let expected: BTreeSet<&str> =
        ["server/7.6/abstract-serves", "server/7.6/abstract-name-taken", "server/7.6/abstract-sigterm"].into();
    assert_eq!(failing_cases(&report), expected, "{}", describe_failures(&report));
}

fn seed_script(name: &str) -> Option<(tempfile::TempDir, Target)> {
    if !Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: python3 is not installed, so the seed's programs cannot be judged here");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join(name);
    std::fs::write(&script, if name == "server.py" { SEED_SERVER } else { SEED_CLIENT }).unwrap();
    let target = Target { program: "python3".into(), args: vec![script.to_string_lossy().into_owned()] };
    Some((dir, target))
}

// The seed's server, judged: it fails exactly where SPEC.md section 9 says it departs
// (segmentation, the UTF-8 crash, one client at a time, unconditional unlink, mode, signals).
#[test]
fn seed_server_verdict() {
    let Some((_dir, target)) = seed_script("server.py") else { return };
    let report = conform::run(Role::Server, &target, &Options::default());
    let expected: BTreeSet<&str> = [
        "server/4.2/split-ping",
        "server/4.2/byte-by-byte",
        "server/4.2/coalesced",
        "server/4.2/pending-byte",
        "server/4.2/pipelined",
        "server/4.4/non-utf8",
        "server/4.4/owed-pongs-first",
        "server/5.5/idle-client",
        "server/5.5/many-clients",
        "server/7.1/live-socket",
        "server/7.1/regular-file",
        "server/7.1/symlink",
        "server/7.1/symlink-to-stale-socket",
        "server/7.1/unprovable-socket",
        "server/7.3/mode",
        "server/7.4/sigterm",
        "server/7.4/sigint",
    ]
    .into();
    assert_eq!(failing_cases(&report), expected, "{}", describe_failures(&report));
    assert!(report.cases.iter().all(|c| c.outcome != Outcome::Error));
    assert_eq!(report.exit_code(), 1);
}

// The seed's client, judged: it neither reassembles split replies nor checks them nor stops
// on EOF (SPEC.md section 9).
#[test]
fn seed_client_verdict() {
    let Some((_dir, target)) = seed_script("client.py") else { return };
    let report = conform::run(Role::Client, &target, &Options::default());
    let expected: BTreeSet<&str> =
        ["client/6/split-reply", "client/6/wrong-reply", "client/6/early-close", "client/6/close-mid-reply"].into();
    assert_eq!(failing_cases(&report), expected, "{}", describe_failures(&report));
}

#[test]
fn every_observable_requirement_has_a_case() {
    let requirements = spec::requirements();
    let known: BTreeSet<&str> = requirements.iter().map(|r| r.id).collect();
    let mut covered = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for case in conform::cases(Role::Server).into_iter().chain(conform::cases(Role::Client)) {
        assert!(ids.insert(case.id), "case {} is defined twice", case.id);
        assert!(case.id.starts_with(case.role.as_str()), "{} is named for the wrong role", case.id);
        for id in case.requirements {
            assert!(known.contains(id), "case {} cites {id}, which SPEC.md does not define", case.id);
            covered.insert(*id);
        }
    }
    for (id, why) in NOT_OBSERVABLE {
        assert!(known.contains(id), "NOT_OBSERVABLE names {id}, which SPEC.md does not define");
        assert!(!covered.contains(id), "{id} has a case, so it is observable after all ({why})");
    }
    let unobservable: BTreeSet<&str> = NOT_OBSERVABLE.iter().map(|(id, _)| *id).collect();
    let missing: Vec<&str> =
        known.iter().filter(|id| !covered.contains(*id) && !unobservable.contains(*id)).copied().collect();
    assert!(
        missing.is_empty(),
        "requirements with no conformance case (add one, or explain in NOT_OBSERVABLE): {missing:?}"
    );
}

fn udsping() -> TestCommand {
    TestCommand::cargo_bin("udsping").unwrap()
}

#[test]
fn list_names_cases_levels_and_requirements() {
    udsping()
        .args(["conform", "server", "--list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("server/7.1/regular-file").and(predicate::str::contains("LIFE-FOREIGN-1")));
    let output =
        udsping().args(["conform", "client", "--list", "--format", "json", "--only", "CLT-EOF-*"]).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["client/6/early-close", "client/6/close-mid-reply"]);
}

#[test]
fn missing_command_is_a_harness_error_not_a_pass() {
    udsping()
        .args(["conform", "server", "--", "/nonexistent/server"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot run the target"));
    udsping().args(["conform", "server"]).assert().code(2).stderr(predicate::str::contains("needs the command"));
    udsping().args(["conform", "server", "--only", "[", "--", "true"]).assert().code(2);
}

// SPEC: TRN-ABSTRACT-2 — `--abstract` on the command line: the run says so, the abstract
// cases pass and the socket-file cases are skipped.
#[test]
fn abstract_flag_runs_the_abstract_cases() {
    let bin = env!("CARGO_BIN_EXE_udsping");
    let output = udsping()
        .args(["conform", "server", "--abstract", "--only", "server/7.*", "--format", "json"])
        .args(["--", bin, "serve", "--socket", "{socket}"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&output).unwrap();
    assert_eq!(report["options"]["addressing"], "abstract");
    let outcome =
        |id: &str| report["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap()["outcome"].clone();
    assert_eq!(outcome("server/7.6/abstract-name-taken"), "pass");
    assert_eq!(outcome("server/7.1/stale-socket"), "skip");
    assert_eq!(report["summary"]["pass"], 3);
}

#[test]
fn json_and_junit_reports_describe_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let junit_path = dir.path().join("report.xml");
    let bin = env!("CARGO_BIN_EXE_udsping");
    for (format, path) in [("json", &json_path), ("junit", &junit_path)] {
        udsping()
            .args([
                "conform",
                "server",
                "--only",
                "server/5.1/*",
                "--only",
                "server/7.3/*",
                "--format",
                format,
                "--output",
            ])
            .arg(path)
            .args(["--", bin, "serve", "--socket", "{socket}"])
            .assert()
            .success()
            .stdout(predicate::str::contains("conform: 3 passed, 0 failed"));
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(report["suite"], "udsping conform");
    assert_eq!(report["summary"]["pass"], 3);
    assert_eq!(report["summary"]["skip"], report["cases"].as_array().unwrap().len() - 3);
    let lockstep = report["cases"].as_array().unwrap().iter().find(|c| c["id"] == "server/5.1/lockstep").unwrap();
    assert_eq!(lockstep["level"], "MUST");
    assert!(lockstep["requirements"].as_array().unwrap().contains(&"SRV-PONG-1".into()));
    assert!(lockstep["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["direction"] == "received" && e["text"] == "pong"));

    let xml = std::fs::read_to_string(&junit_path).unwrap();
    let parsed = quick_junit::Report::deserialize_from_str(&xml).expect("the JUnit report parses");
    assert_eq!(parsed.tests, report["cases"].as_array().unwrap().len());
    assert!(xml.contains("server/5.1/lockstep"));
}

#[test]
fn a_failing_target_fails_the_run_with_a_message() {
    // `udsping ping` is a client, not a server: it exits at once, so server cases fail.
    let bin = env!("CARGO_BIN_EXE_udsping");
    udsping()
        .args(["conform", "server", "--only", "server/5.1/lockstep", "--timeout", "500ms", "--", bin, "ping"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("FAIL").and(predicate::str::contains("exited")));
}

/// The defective fixtures (examples/defective.rs). `cargo test` builds examples; when a single
/// test target was asked for, build it here.
fn defective_fixture() -> String {
    let deps = std::env::current_exe().unwrap();
    let path = deps.parent().unwrap().parent().unwrap().join("examples").join("defective");
    if !path.exists() {
        let status = Command::new(env!("CARGO")).args(["build", "--example", "defective"]).status().unwrap();
        assert!(status.success(), "cannot build examples/defective.rs");
    }
    path.to_string_lossy().into_owned()
}

// Each fixture breaks one requirement; the gate must fail exactly the cases for it.
#[rstest::rstest]
#[case::no_owed_pongs(Role::Server, "server-no-owed-pongs", &["server/4.4/owed-pongs-first"])]
#[case::answers_after_end(Role::Server, "server-answers-after-end", &["server/5.2/bytes-after-end"])]
#[case::world_readable(Role::Server, "server-world-readable", &["server/7.3/mode"])]
#[case::keeps_socket(Role::Server, "server-keeps-socket", &["server/7.4/sigterm", "server/7.4/sigint"])]
#[case::unlinks_files(Role::Server, "server-unlinks-files", &["server/7.1/regular-file"])]
#[case::serial(Role::Server, "server-serial", &["server/5.5/idle-client", "server/5.5/non-reading-client", "server/5.5/many-clients"])]
#[case::ignores_reply(Role::Client, "client-ignores-reply", &["client/6/wrong-reply"])]
#[case::exit_zero(Role::Client, "client-exit-zero", &["client/6/wrong-reply", "client/6/early-close", "client/6/close-mid-reply"])]
#[case::rounds_99(Role::Client, "client-99-rounds", &["client/6/default-rounds"])]
fn each_defect_is_caught_by_its_cases_only(#[case] role: Role, #[case] defect: &str, #[case] expected: &[&str]) {
    let target = Target { program: defective_fixture(), args: vec![defect.into(), "{socket}".into()] };
    let report = conform::run(role, &target, &Options::default());
    assert_eq!(failing_cases(&report), expected.iter().copied().collect(), "{}", describe_failures(&report));
    // Each broken case names, among its requirement IDs, the one the fixture breaks.
    let broken = report.cases.iter().filter(|c| c.outcome == Outcome::Fail);
    assert!(broken.clone().all(|c| c.message.as_ref().is_some_and(|m| m.contains(c.requirements[0]))));
    let must_failed = broken.clone().any(|c| c.level == spec::Level::Must);
    assert_eq!(report.exit_code(), if must_failed { 1 } else { 0 });
}

// SPEC: CLT-ROUNDS-1 — a SHOULD failure warns (exit 0) unless --strict (exit 1).
#[test]
fn should_failures_warn_unless_strict() {
    let fixture = defective_fixture();
    let run = |strict: bool| {
        let mut command = udsping();
        command.args(["conform", "client", "--only", "CLT-ROUNDS-1"]);
        if strict {
            command.arg("--strict");
        }
        command.args(["--", &fixture, "client-99-rounds", "{socket}"]).assert()
    };
    run(false).code(0).stdout(predicate::str::contains("WARN").and(predicate::str::contains("warnings: 1 SHOULD")));
    run(true).code(1).stdout(predicate::str::contains("FAIL"));
}
