//! The library logs through the `log` facade (SPEC: SRV-LOG-1): a program that embeds the server
//! chooses where its lines go. Here the embedding program is this test, with a logger that
//! keeps every line.

mod common;

use std::sync::Mutex;

use common::*;

static LINES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

struct Keep;

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LINES.lock().unwrap().push((record.target().to_string(), record.args().to_string()));
    }
    fn flush(&self) {}
}

fn lines_containing(needle: &str) -> Vec<(String, String)> {
    LINES.lock().unwrap().iter().filter(|(_, line)| line.contains(needle)).cloned().collect()
}

// SPEC: SRV-LOG-1, LIFE-CRED-1 — refusals, counts and the seed's per-message lines reach the
// embedding program's logger, each under its target, and nothing is printed by the library.
#[test]
fn the_server_logs_through_the_facade() {
    log::set_logger(&Keep).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let uid = rustix::process::getuid().as_raw();
    let refusing = TestServer::start_with(|c| c.allow_uids = vec![uid + 1]);
    drop(connect(&refusing.path));
    assert!(wait_until(DEADLINE, || !lines_containing("refused a connection from pid").is_empty()));
    let (target, line) = lines_containing("refused a connection from pid").remove(0);
    assert!(target.starts_with("udsping"), "{target}");
    assert!(
        line.starts_with(&refusing.path.display().to_string()) && line.contains(&format!("(uid {uid}, ")),
        "{line}"
    );

    let serving = TestServer::start_with(|c| c.log_messages = true);
    let summary = udsping::client::run(&udsping::client::ClientConfig {
        rounds: 3,
        log_messages: true,
        ..udsping::client::ClientConfig::new(&serving.path)
    });
    assert_eq!(summary.unwrap().rounds, 3);
    serving.wait_for_ended(1);
    let messages: Vec<String> = LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(target, _)| target == udsping::logger::MESSAGES)
        .map(|(_, line)| line.clone())
        .collect();
    assert_eq!(messages.iter().filter(|l| *l == "Client: Sent ping").count(), 3, "{messages:?}");
    assert_eq!(messages.iter().filter(|l| *l == "Client: Received pong").count(), 3, "{messages:?}");
    assert_eq!(messages.iter().filter(|l| l.contains("Server: Received ping")).count(), 3, "{messages:?}");
    assert!(messages.iter().any(|l| l.ends_with("Server: Connection shutting down")), "{messages:?}");
}
