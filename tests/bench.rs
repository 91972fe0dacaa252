//! `udsping bench` keeps working: every scenario runs for a fraction of a second against the
//! reference and the baseline, and the reports have their fields. Nothing here judges speed
//! (that is the benchmark's job, not a test's).

use std::time::Duration;

use assert_cmd::Command;
use predicates::prelude::*;
use udsping::bench::{self, Options, Scenario};

#[test]
fn every_scenario_runs_and_reports() {
    let options = Options {
        duration: Duration::from_millis(100),
        client_counts: vec![1, 4],
        idle_connections: 50,
        ..Options::default()
    };
    let results = bench::run(&options, |_| {}).expect("the benchmark runs");
    for scenario in Scenario::ALL {
        let rows: Vec<_> = results.rows.iter().filter(|r| r.scenario == scenario).collect();
        assert!(!rows.is_empty(), "{} produced no row", scenario.name());
        for row in rows {
            assert_eq!(row.subject, "reference");
            assert!(row.measured.ops > 0 && row.baseline.ops > 0, "{} measured nothing: {row:?}", scenario.name());
            assert!(row.ratio().is_finite());
        }
    }
    let json: serde_json::Value = serde_json::from_str(&bench::json(&results, &options)).unwrap();
    let lockstep = json["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "lockstep").unwrap();
    for field in [
        "clients",
        "ops_per_sec",
        "baseline_ops_per_sec",
        "ratio",
        "p50_us",
        "p99_us",
        "p999_us",
        "cpu_s_per_million_ops",
    ] {
        assert!(lockstep[field].is_number(), "lockstep lacks {field}: {lockstep}");
    }
    let idle = json["scenarios"].as_array().unwrap().iter().find(|s| s["name"] == "idle-memory").unwrap();
    assert!(idle["bytes_per_idle_connection"].is_number());

    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bench.svg");
    bench::svg(&results, &svg).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn bench_measures_another_server_through_the_command_line() {
    let bin = env!("CARGO_BIN_EXE_udsping");
    Command::cargo_bin("udsping")
        .unwrap()
        .args(["bench", "--scenario", "lockstep", "--duration", "100ms", "--no-seed", "--format", "json", "--"])
        .args([bin, "serve", "--socket", "{socket}"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("\"name\": \"lockstep\"").and(predicate::str::contains("\"server\": \"udsping\"")),
        )
        .stderr(predicate::str::contains("bench: lockstep"));
}

#[test]
fn bench_rejects_a_bad_duration() {
    Command::cargo_bin("udsping").unwrap().args(["bench", "--duration", "0"]).assert().code(2);
}
