//! The gate as the oracle for the reference: `udsping conform` (with `--explore`), built from
//! the unmutated tree, judges the server and the client built from this one. Under
//! `scripts/mutants-gate`, cargo-mutants builds this tree with one mutant of the reference at a
//! time and runs this test: a mutant the gate passes either changes nothing a peer can observe
//! or is a gap in the gate (README, "Development").
//!
//! Ignored in `cargo test`: it needs the unmutated gate (`UDSPING_ORACLE_GATE`, which the script
//! builds), since a gate built from a mutated core would compute its expectations from the mutant.
//! SPEC: SRV-PONG-1, CLT-REPLY-1 — the reference passes the gate.

use std::path::PathBuf;
use std::process::Command;

/// The gate built from the unmutated tree, or this tree's own when run by hand.
fn gate() -> PathBuf {
    std::env::var_os("UDSPING_ORACLE_GATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_udsping")))
}

/// Runs `udsping conform ARGS -- CMD` with the oracle gate and fails with its report unless
/// every MUST case passed.
fn passes(args: &[&str], cmd: &[&str]) {
    let reference = env!("CARGO_BIN_EXE_udsping");
    let tmp = tempfile::tempdir().unwrap();
    let output = Command::new(gate())
        .args(["--color", "never", "conform"])
        .args(args)
        .arg("--")
        .arg(reference)
        .args(cmd)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the gate ({}) does not pass the reference ({reference}): {}\n{}{}",
        gate().display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
#[ignore = "the gate as oracle for mutants: run by scripts/mutants-gate"]
fn the_gate_passes_the_reference_server() {
    passes(&["server", "--explore", "--seed", "1"], &["serve", "--socket", "{socket}"]);
}

#[test]
#[ignore = "the gate as oracle for mutants: run by scripts/mutants-gate"]
fn the_gate_passes_the_reference_client() {
    passes(&["client", "--explore", "--seed", "1"], &["ping", "--socket", "{socket}"]);
}
