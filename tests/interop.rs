//! Interoperability with the seed's Python programs (tests/seed/programs.py, verbatim from the
//! blog post's listing but for the `run()` calls).
//! Skipped, with a message, where python3 is absent.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use udsping::client::{self, ClientConfig};

fn python3() -> Option<&'static str> {
    let found = Command::new("python3").arg("--version").stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    if !found {
        eprintln!("SKIPPED: python3 is not installed, so the seed's programs cannot run here");
    }
    found.then_some("python3")
}

fn write_script(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

// SPEC: CLT-LOCKSTEP-1, CLT-END-1 — the reference client against the seed's server: the seed
// compares whole reads with "ping", which only a strictly lock-step client satisfies.
#[test]
fn reference_client_against_seed_server() {
    let Some(python) = python3() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "server.py", SEED_SERVER);
    let child = Command::new(python).arg(&script).current_dir(dir.path()).stdout(Stdio::null()).spawn().unwrap();
    let _server = ChildGuard::new(child);
    let socket = dir.path().join("udsocket");
    wait_for_listener(&socket);
    for _ in 0..3 {
        let summary = client::run(&ClientConfig::new(&socket)).expect("the seed server answers a lock-step client");
        assert_eq!(summary.rounds, 100);
    }
}

// SPEC: SRV-PONG-1, SRV-END-1 — the seed's client against the reference server.
#[test]
fn seed_client_against_reference_server() {
    let Some(python) = python3() else { return };
    let server = TestServer::start();
    let script = write_script(server.dir.path(), "client.py", SEED_CLIENT);
    let output = Command::new(python).arg(&script).current_dir(server.dir.path()).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.matches("Client: Received pong").count(), 100, "{stdout}");
    let stats = server.wait_for_ended(1);
    assert_eq!(stats.ended_by_end, 1, "{stats:?}");
}
