//! The command as a Unix tool, black-box: exit statuses of usage errors, one duration syntax,
//! `--version`, completions and man page, colour only on a terminal, and the GitHub Action's
//! gate step run as the Action runs it.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use assert_cmd::Command as TestCommand;
use common::*;
use predicates::prelude::*;
use rstest::rstest;

fn udsping() -> TestCommand {
    TestCommand::cargo_bin("udsping").unwrap()
}

/// One line on stderr, prefixed, no backtrace.
fn one_error_line(containing: &'static str) -> impl Predicate<str> {
    predicate::str::starts_with("udsping: ")
        .and(predicate::str::contains(containing))
        .and(predicate::function(|s: &str| s.lines().count() == 1))
        .and(predicate::str::contains("panicked").not())
}

// Usage errors that clap does not see (found by `cli::config`) exit 2 like clap's own, with
// one line that says what is wrong.
#[rstest]
#[case(&["serve", "--write-timeout", "0s"], "--write-timeout must be more than 0s")]
#[case(&["bench", "--", "/no/such/cmd"], "cannot run the target")]
#[case(&["conform", "server"], "needs the command to test")]
#[case(&["conform", "server", "--output", "/no/such/dir/report.xml", "--", "true"], "--output /no/such/dir/report.xml")]
#[case(&["bench", "--svg", "/no/such/dir/bench.svg"], "--svg /no/such/dir/bench.svg")]
fn usage_errors_found_after_parsing_exit_2(#[case] args: &[&str], #[case] message: &'static str) {
    // Found before the work: nothing of a report or a run reaches stdout.
    udsping().args(args).assert().code(2).stdout("").stderr(one_error_line(message));
}

// clap's own errors exit 2 too; a bare number is refused with the accepted forms shown.
#[rstest]
#[case(&["serve", "--write-timeout", "0"])]
#[case(&["serve", "--idle-timeout", "120"])]
#[case(&["conform", "server", "--timeout", "2000", "--", "true"])]
#[case(&["bench", "--duration", "2"])]
fn a_bare_number_is_not_a_duration(#[case] args: &[&str]) {
    udsping()
        .args(args)
        .assert()
        .code(2)
        .stdout("")
        .stderr(predicate::str::contains("has no unit: write a duration such as 2s, 500ms, 1m30s"));
}

#[test]
fn clap_errors_exit_2() {
    udsping().args(["serve", "--no-such-flag"]).assert().code(2);
    udsping().args(["completions", "tcsh"]).assert().code(2);
    udsping().args(["conform", "server", "--timeout", "1s", "--timeout-ms", "5", "--", "true"]).assert().code(2);
}

// SPEC: CLT-END-1, LIFE-SHUT-1 — zero rounds: the client sends only `end`, and the demo still
// sees the connection accepted, ended by `end`, and the socket file removed.
#[test]
fn demo_with_zero_rounds_passes() {
    udsping().args(["demo", "--rounds", "0"]).assert().success().stdout(
        predicate::str::contains("1 connection accepted, 1 ended by \"end\"")
            .and(predicate::str::contains("verdict: PASS")),
    );
}

#[test]
fn version_names_the_spec_version() {
    let expected = format!("udsping {} (SPEC.md version {})\n", env!("CARGO_PKG_VERSION"), udsping::spec::version());
    udsping().arg("--version").assert().success().stdout(expected);
}

#[rstest]
#[case("bash", "complete -F")]
#[case("zsh", "#compdef udsping")]
#[case("fish", "complete -c udsping")]
fn completions_cover_every_subcommand(#[case] shell: &str, #[case] marker: &str) {
    let output = udsping().args(["completions", shell]).assert().success().get_output().stdout.clone();
    let script = String::from_utf8(output).unwrap();
    assert!(script.contains(marker), "{shell}: {script}");
    for word in ["serve", "ping", "demo", "conform", "bench", "write-timeout", "abstract"] {
        assert!(script.contains(word), "{shell} completion lacks {word}");
    }
}

#[test]
fn bash_completion_is_valid_bash() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("udsping.bash");
    let output = udsping().args(["completions", "bash"]).assert().success().get_output().stdout.clone();
    std::fs::write(&script, output).unwrap();
    let checked = Command::new("bash").arg("-n").arg(&script).status();
    match checked {
        Ok(status) => assert!(status.success(), "bash -n rejects the completion script"),
        Err(_) => eprintln!("SKIPPED: no bash"),
    }
}

#[test]
fn man_page_is_roff_and_lists_the_commands() {
    let output = udsping().arg("man").assert().success().get_output().stdout.clone();
    let page = String::from_utf8(output).unwrap();
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{}", &page[..page.len().min(200)]);
    assert!(page.contains(".TH udsping 1"), "no title line");
    for command in ["serve", "ping", "demo", "conform", "bench", "completions"] {
        assert!(page.contains(command), "man page lacks {command}");
    }
}

/// A pseudo-terminal: the controller side, and the path of the terminal side.
fn pty() -> (OwnedFd, std::path::PathBuf) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    (controller, std::path::PathBuf::from(name.to_str().unwrap()))
}

/// Runs `udsping demo` with stdout on a terminal and returns what it wrote there.
fn demo_on_a_terminal(no_color: Option<&str>) -> String {
    let (controller, terminal) = pty();
    let stdout = std::fs::OpenOptions::new().read(true).write(true).open(&terminal).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_udsping"));
    command.args(["demo", "--rounds", "1"]).stdout(Stdio::from(stdout)).stderr(Stdio::null()).env("TERM", "xterm");
    match no_color {
        Some(value) => command.env("NO_COLOR", value),
        None => command.env_remove("NO_COLOR"),
    };
    let mut child = ChildGuard::new(command.spawn().unwrap());
    // The Command keeps its copy of the terminal descriptor until dropped; then the child's is
    // the only one, and once it exits, reads see EIO.
    drop(command);
    assert!(child.wait_exit(DEADLINE).success());
    let mut out = Vec::new();
    let mut file = std::fs::File::from(controller);
    let mut buf = [0u8; 4096];
    loop {
        let ready = {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let mut fds = [PollFd::new(&file, PollFlags::IN)];
            poll(&mut fds, Some(&Timespec { tv_sec: 1, tv_nsec: 0 })).unwrap()
        };
        if ready == 0 {
            break;
        }
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let coloured = demo_on_a_terminal(None);
    assert!(coloured.contains("verdict: \x1b[32mPASS\x1b[0m"), "{coloured:?}");
    let plain = demo_on_a_terminal(Some("1"));
    assert!(plain.contains("verdict: PASS") && !plain.contains('\x1b'), "{plain:?}");
    let piped = udsping().args(["demo", "--rounds", "1"]).env_remove("NO_COLOR").output().unwrap();
    assert!(!String::from_utf8_lossy(&piped.stdout).contains('\x1b'), "colour in a pipe");
}

/// action.yml's steps, by id.
fn action_step(id: &str) -> (String, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("action.yml")).unwrap();
    let action: serde_yaml::Value = serde_yaml::from_str(&text).expect("action.yml is YAML");
    assert_eq!(action["runs"]["using"], "composite");
    for input in ["role", "command", "args", "junit"] {
        assert!(action["inputs"][input]["description"].is_string(), "action.yml lacks input {input}");
    }
    let steps = action["runs"]["steps"].as_sequence().expect("steps");
    for step in steps.iter().filter(|s| s.get("run").is_some()) {
        assert_eq!(step["shell"], "bash", "every run step names its shell: {step:?}");
    }
    let install = steps.iter().filter_map(|s| s["run"].as_str()).find(|r| r.contains("cargo install")).unwrap();
    assert!(install.contains("--locked") && install.contains("$ACTION_PATH"), "{install}");
    let step = steps.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no step {id}"));
    let run = step["run"].as_str().unwrap().to_string();
    let env = step["env"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.as_str().unwrap().to_string(), v.as_str().unwrap().to_string()))
        .collect();
    (run, env)
}

/// Runs the Action's gate step as the runner would: bash, its env with `${{ inputs.X }}`
/// filled in, and `udsping` on PATH (this build's).
fn run_gate_step(inputs: &[(&str, &str)], dir: &Path) -> std::process::Output {
    let (script, env) = action_step("gate");
    assert!(!script.contains("${{"), "the script reads inputs through env only (no expression injection)");
    let inputs: BTreeMap<&str, &str> = inputs.iter().copied().collect();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_udsping")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let mut command = Command::new("bash");
    command.arg("-c").arg(&script).current_dir(dir).env("PATH", path);
    for (name, value) in env {
        let input = value
            .strip_prefix("${{ inputs.")
            .and_then(|v| v.strip_suffix(" }}"))
            .unwrap_or_else(|| panic!("{name}: {value} is not an input"));
        command.env(name, inputs.get(input).copied().unwrap_or(""));
    }
    let child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_action_gate_step_runs_the_gate_and_writes_junit() {
    let dir = tempfile::tempdir().unwrap();
    let server = format!("{} serve --socket {{socket}}", env!("CARGO_BIN_EXE_udsping"));
    let inputs = [
        ("role", "server"),
        ("command", server.as_str()),
        ("args", "--only server/5.* --jobs '2'"),
        ("junit", "out/report.xml"),
    ];
    let output = run_gate_step(&inputs, dir.path());
    // The report's directory does not exist: the gate says so before running anything.
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::create_dir(dir.path().join("out")).unwrap();
    // A file the glob would match if the shell expanded it: the gate must get the pattern.
    std::fs::create_dir_all(dir.path().join("server/5.x")).unwrap();
    let output = run_gate_step(&inputs, dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("conform: ") && stdout.contains(" 0 failed"), "{stdout}");
    let junit = std::fs::read_to_string(dir.path().join("out/report.xml")).unwrap();
    assert!(junit.contains("<testsuites") && junit.contains("server/5."), "{junit}");
    // The glob reached the gate unexpanded and quoted words stayed words: only section 5 ran.
    let lines: Vec<&str> = junit.lines().collect();
    for (i, line) in lines.iter().enumerate().filter(|(_, l)| l.contains("<testcase name=\"server/4.")) {
        assert!(lines[i + 1].contains("<skipped message=\"not selected"), "{line} ran");
    }
    let lockstep = lines.iter().position(|l| l.contains("<testcase name=\"server/5.1/lockstep\"")).unwrap();
    assert!(lines[lockstep + 1].contains("<system-out>"), "server/5.1/lockstep did not run: {junit}");
}

#[test]
fn the_action_gate_step_fails_the_job_when_the_gate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_gate_step(
        &[
            ("role", "server"),
            ("command", "sh -c 'exit 0' {socket}"),
            ("args", "--only server/5.1/*"),
            ("junit", "r.xml"),
        ],
        dir.path(),
    );
    // A target that never starts cannot be judged: exit 2, which fails the job as exit 1 would.
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stdout));
    let junit = std::fs::read_to_string(dir.path().join("r.xml")).unwrap();
    assert!(junit.contains("<error"), "the report is written for a failed gate too: {junit}");
}

/// The path of an example's binary, built if `cargo test` has not built it yet.
fn example(name: &str) -> String {
    let deps = std::env::current_exe().unwrap();
    let path = deps.parent().unwrap().parent().unwrap().join("examples").join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO")).args(["build", "--example", name]).status().unwrap();
        assert!(status.success(), "cannot build examples/{name}.rs");
    }
    path.to_string_lossy().into_owned()
}

// The README's library example, a poll(2) loop around `udsping_proto` alone, passes the gate's
// cases on the byte stream and the replies; the rest (socket file lifecycle, timeouts) is
// what it leaves to `udsping::server`, and says so.
#[test]
fn the_poll_loop_example_passes_the_stream_and_reply_cases() {
    let program = example("poll_loop");
    let output = udsping()
        .args(["conform", "server", "--format", "json"])
        .args(["--only", "server/4.*", "--only", "server/5.[1-5]/*"])
        .args(["--", &program, "{socket}"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let cases = report["cases"].as_array().unwrap();
    let ran: Vec<&serde_json::Value> = cases.iter().filter(|c| c["outcome"] != "skip").collect();
    assert!(ran.len() >= 15, "only {} cases ran", ran.len());
    let failed: Vec<String> =
        ran.iter().filter(|c| c["outcome"] != "pass").map(|c| format!("{}: {}", c["id"], c["message"])).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(output.status.code(), Some(0));
}

// `udsping man | head` and the like: a reader that went away ends the run quietly, with no
// "internal error" (print! would panic) and no message.
#[rstest]
#[case(&["man"])]
#[case(&["completions", "bash"])]
#[case(&["conform", "server", "--list"])]
#[case(&["--help"])]
fn a_closed_stdout_ends_quietly(#[case] args: &[&str]) {
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_udsping"))
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("internal error"), "{output:?}");
}

// The manners a ripgrep or hyperfine user expects: --color decides colour whatever stdout is,
// --quiet leaves only the exit status, man --dir writes a page per command that the top page
// names.
#[test]
fn color_quiet_and_man_pages_per_command() {
    let run = |args: &[&str]| TestCommand::cargo_bin("udsping").unwrap().args(args).output().unwrap();
    let painted = run(&["--color", "always", "demo", "--rounds", "2"]);
    assert!(String::from_utf8_lossy(&painted.stdout).contains("\x1b[32mPASS"), "{painted:?}");
    let plain = run(&["--color", "never", "demo", "--rounds", "2"]);
    assert!(!String::from_utf8_lossy(&plain.stdout).contains('\x1b'), "{plain:?}");
    let quiet = run(&["--quiet", "demo", "--rounds", "2"]);
    assert!(quiet.status.success() && quiet.stdout.is_empty(), "{quiet:?}");
    let bin = env!("CARGO_BIN_EXE_udsping");
    let gate =
        run(&["conform", "server", "--quiet", "--only", "server/5.4/*", "--", bin, "serve", "--socket", "{socket}"]);
    assert!(gate.status.success() && gate.stdout.is_empty() && gate.stderr.is_empty(), "{gate:?}");
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&["man", "--dir", dir.path().to_str().unwrap()]).status.success());
    for command in ["serve", "ping", "demo", "conform", "bench", "completions", "man"] {
        let page = std::fs::read_to_string(dir.path().join(format!("udsping-{command}.1"))).unwrap();
        assert!(page.starts_with(".ie") || page.contains(&format!(".TH udsping-{command} 1")), "{command}: {page}");
    }
    let top = std::fs::read_to_string(dir.path().join("udsping.1")).unwrap();
    assert!(top.contains("udsping\\-serve(1)"), "{top}");
}
