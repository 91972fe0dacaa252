//! Carrying out a validated command line: each command is a call into the library
//! ([`crate::server`], [`crate::client`], [`crate::demo`], [`crate::conform`], [`crate::bench`])
//! and the printing of its result; nothing here decides what the result is.

use std::io::{self, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::CommandFactory;

use super::config::{BenchConfig, Config, ConformConfig, Manners, Task, UsageError};
use super::flags::{BenchFormat, Cli, FormatArg};
use super::EXIT_OK;
use crate::client;
use crate::conform::{self, CaseReport, SuiteReport};
use crate::demo::{self, DemoConfig};
use crate::logger;
use crate::server::{Server, ServerConfig, ShutdownHandle};
use crate::{bench, term};

/// Carries out a validated command line and returns the exit status; an `Err` is printed by
/// `main` as one line, with status 2 when it is a [`UsageError`] and 1 otherwise.
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    let manners = config.manners;
    let say = |text: &str| if manners.quiet { Ok(()) } else { out(text) };
    match config.task {
        Task::Serve(config) => serve(config)?,
        Task::Ping(config) => {
            install_writer(logger::Mode::Blocking)?;
            let summary = client::run(&config)?;
            say(&format!("ok: {} rounds over {}, then \"end\"\n", summary.rounds, config.socket.display()))?;
            logged_failure()?;
        }
        Task::Demo(config) => return run_demo(config, manners),
        Task::ConformList { role, options, json } => {
            let cases = conform::list(role, &options);
            say(&if json { conform::list_json(&cases) } else { conform::list_human(&cases) })?;
        }
        Task::Conform(config) => return run_conform(*config, manners),
        Task::ConformExport { dir, seed, cases } => {
            let written = conform::export(&dir, seed, cases)?;
            say(&format!("conform export: wrote {written} files to {} (seed {seed})\n", dir.display()))?;
        }
        Task::Bench(config) => return run_bench(*config, manners),
        Task::Completions(shell) => {
            // Into memory first: clap_complete panics on a failed write, and a closed pipe
            // (`| head`) is not a bug.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "udsping", &mut script);
            out_bytes(&script)?;
        }
        Task::Man(None) => out_bytes(&man_page(Cli::command())?)?,
        Task::Man(Some(dir)) => {
            let written = man_pages(&dir)?;
            say(&format!("man: wrote {} pages to {}\n", written.len(), dir.display()))?;
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn man_page(command: clap::Command) -> anyhow::Result<Vec<u8>> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command).render(&mut page).context("cannot render the man page")?;
    Ok(page)
}

/// Writes `udsping.1` and `udsping-COMMAND.1` for every command into `dir` (created if
/// missing); the top page's SUBCOMMANDS section names them.
fn man_pages(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let top = Cli::command();
    let mut pages = vec![("udsping".to_string(), top.clone())];
    for sub in top.get_subcommands() {
        let name = format!("udsping-{}", sub.get_name());
        let version = top.get_version().unwrap_or_default().to_string();
        pages.push((name.clone(), sub.clone().name(name).version(version)));
    }
    let mut written = Vec::new();
    for (name, command) in pages {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, man_page(command)?).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// Writes to stdout. Unlike `print!`, a failed write is an error, not a panic; `main` ends a
/// run whose reader went away (`udsping man | head`) quietly, as `cat` and ripgrep do.
fn out(text: &str) -> io::Result<()> {
    out_bytes(text.as_bytes())
}

fn out_bytes(bytes: &[u8]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    // The kind is kept, so that `main` still tells a closed pipe from a full disk.
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write to stdout: {e}")))
}

/// Installs the log writer for a command (once per process): lossy for the server, so that
/// no reader of its output can stop or kill it (SPEC: SRV-LOG-1); blocking for the client.
fn install_writer(mode: logger::Mode) -> anyhow::Result<()> {
    let writer = logger::Writer::new(mode).context("cannot start the log writer")?;
    // Already installed (a program running several commands in one process): keep that one.
    let _ = writer.install();
    Ok(())
}

/// A write of the blocking log writer that failed (other than a closed pipe), as the error.
fn logged_failure() -> anyhow::Result<()> {
    match logger::take_failure() {
        Some(e) => Err(anyhow::Error::new(e).context("cannot write the log")),
        None => Ok(()),
    }
}

fn serve(config: ServerConfig) -> anyhow::Result<()> {
    install_writer(logger::Mode::Lossy)?;
    let served = serve_until_signalled(config);
    log::logger().flush();
    served
}

fn serve_until_signalled(config: ServerConfig) -> anyhow::Result<()> {
    let shutdown = ShutdownHandle::new().context("cannot set up shutdown")?;
    shutdown.stop_on_signals().context("cannot install signal handlers")?;
    let server = Server::bind_with(config, shutdown)?;
    let path = server.path().to_owned();
    // The server logs where its socket file stood (replaced, or not removed and why).
    server.run().with_context(|| path.display().to_string())?;
    Ok(())
}

fn run_demo(config: DemoConfig, manners: Manners) -> anyhow::Result<ExitCode> {
    install_writer(logger::Mode::Blocking)?;
    let report = demo::run(config, |socket| {
        // A closed stdout shows up again, as an error, when the report is written below.
        if !manners.quiet {
            let _ = out(&format!("server: listening on {} (mode 0600)\n", socket.display()));
        }
    })?;
    let mut text = String::new();
    text += &format!("client -> server: \"ping\" x {}, then \"end\"\n", report.rounds);
    text += &format!("server -> client: \"pong\" x {}\n", report.rounds);
    text += &format!("server: {} connection accepted, {} ended by \"end\"\n", report.accepted, report.ended_by_end);
    text +=
        &format!("server: socket file {} on shutdown\n", if report.socket_removed { "removed" } else { "NOT removed" });
    if report.passed() {
        text += "verdict: PASS\n";
    }
    if !manners.quiet {
        out(&if manners.colour { term::paint(&text) } else { text })?;
    }
    anyhow::ensure!(report.passed(), "verdict: FAIL");
    logged_failure()?;
    Ok(ExitCode::from(EXIT_OK))
}

fn run_conform(config: ConformConfig, manners: Manners) -> anyhow::Result<ExitCode> {
    for warning in &config.warnings {
        eprintln!("udsping: {}: {warning}", if warning.is_note() { "note" } else { "warning" });
    }
    // What has finished so far, for a report written when the gate is told to stop.
    let finished: Arc<Mutex<Vec<CaseReport>>> = Arc::default();
    stop_cleanly_on_signals(&config, Arc::clone(&finished)).context("cannot install signal handlers")?;
    let strict = config.options.strict;
    let suite = match &config.replay {
        Some(scripts) => conform::replay(&config.target, scripts, &config.options),
        None => conform::run_with_progress(config.role, &config.target, &config.options, &|case, done, total| {
            {
                let mut finished = finished.lock().unwrap_or_else(|p| p.into_inner());
                // A case that ends after the gate began to stop ended because its target was
                // killed: its outcome is the gate's doing, so it is reported as not run.
                if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                finished.push(case.clone());
            }
            if manners.quiet {
                return;
            }
            eprintln!(
                "[{done}/{total}] {} ({})",
                conform::case_line(case, strict),
                conform::human_duration(case.duration)
            );
            if let Some(first_run) = &case.first_run {
                eprintln!("        {}", conform::first_run_line(first_run));
            }
        }),
    };
    // A gate told to stop meanwhile ends as the signal thread says (its code, its partial
    // report), never with the report of a run whose targets it killed.
    while STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    write_report(&config, &suite, manners)?;
    Ok(ExitCode::from(suite.exit_code()))
}

/// Set the moment the gate is told to stop.
static STOPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The report in its format, to `--output` (and the human one to stdout) or to stdout.
fn write_report(config: &ConformConfig, suite: &SuiteReport, manners: Manners) -> anyhow::Result<()> {
    let human = conform::human(suite, config.verbose);
    let formatted = match config.format {
        FormatArg::Human => None,
        FormatArg::Json => Some(conform::json(suite).map_err(UsageError::Json)?),
        FormatArg::Junit => Some(conform::junit(suite).map_err(UsageError::Junit)?),
    };
    let shown = match (&config.output, formatted) {
        (Some(path), report) => {
            std::fs::write(path, report.unwrap_or_else(|| human.clone()))
                .map_err(|source| UsageError::Report { path: path.clone(), source })?;
            human
        }
        (None, Some(report)) => report,
        (None, None) => human,
    };
    if manners.quiet {
        return Ok(());
    }
    let painted = config.format == FormatArg::Human || config.output.is_some();
    out(&if painted && manners.colour { term::paint(&shown) } else { shown })?;
    Ok(())
}

/// A gate told to stop (a cancelled CI job: SIGINT, SIGTERM, SIGHUP; or SIGQUIT) kills the
/// targets it runs, removes its temporary directories, writes the report of the cases that
/// finished to `--output` (marked interrupted), and exits 128 + the signal's number. Handling
/// these signals also means none of them is ignored in CMD (handlers are reset at exec), even
/// when the gate itself was started with them ignored, as a background job is.
fn stop_cleanly_on_signals(config: &ConformConfig, finished: Arc<Mutex<Vec<CaseReport>>>) -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    let (role, target, options) = (config.role, config.target.clone(), config.options.clone());
    let (output, format) = (config.output.clone(), config.format);
    std::thread::Builder::new().name("udsping-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            STOPPING.store(true, std::sync::atomic::Ordering::SeqCst);
            for (dir, e) in conform::abort_run() {
                eprintln!("udsping: cannot remove {}: {e}", dir.display());
            }
            let name = match signal {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                SIGHUP => "SIGHUP",
                _ => "SIGQUIT",
            };
            if let Some(path) = &output {
                let cases = partial(role, finished.lock().unwrap_or_else(|p| p.into_inner()).clone());
                let suite = SuiteReport { role, target, options, cases, interrupted: Some(name) };
                let text = match format {
                    FormatArg::Human => Ok(conform::human(&suite, false)),
                    FormatArg::Json => conform::json(&suite).map_err(|e| e.to_string()),
                    FormatArg::Junit => conform::junit(&suite).map_err(|e| e.to_string()),
                };
                match text.map(|text| std::fs::write(path, text).map_err(|e| e.to_string())) {
                    Ok(Ok(())) => eprintln!("udsping: the partial report is in {}", path.display()),
                    Ok(Err(e)) | Err(e) => {
                        eprintln!("udsping: cannot write the partial report {}: {e}", path.display())
                    }
                }
            }
            eprintln!("udsping: stopped by {name}: the targets were killed and the temporary directories removed");
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}

/// Every case of `role` for a partial report: those that finished, in the suite's order, and
/// the others as skipped, not finished.
fn partial(role: conform::Role, finished: Vec<CaseReport>) -> Vec<CaseReport> {
    let mut cases: Vec<CaseReport> = conform::cases(role)
        .iter()
        .map(|case| match finished.iter().find(|f| f.id == case.id) {
            Some(report) => report.clone(),
            None => {
                let mut report = CaseReport::of(case);
                report.message = Some("not run: the gate was interrupted".into());
                report
            }
        })
        .collect();
    cases.extend(finished.into_iter().filter(|f| !conform::cases(role).iter().any(|c| c.id == f.id)));
    cases
}

fn run_bench(config: BenchConfig, manners: Manners) -> anyhow::Result<ExitCode> {
    for warning in &config.warnings {
        eprintln!("udsping: {}: {warning}", if warning.is_note() { "note" } else { "warning" });
    }
    let progress = term::Progress::stderr("bench");
    let mut report = bench::run(&config.options, |step| {
        if !manners.quiet {
            progress.step(step)
        }
    });
    if !manners.quiet {
        progress.finish();
    }
    if let Some(previous) = &config.previous {
        report.comparison = bench::report::compare(&report.results, previous);
    }
    if !manners.quiet {
        match config.format {
            BenchFormat::Human => out(&bench::report::human(&report))?,
            BenchFormat::Json => out(&bench::report::json(&report))?,
        }
    }
    if let Some(path) = &config.svg {
        bench::svg(&report, path)?;
    }
    let failed = report.results.iter().filter(|r| r.status == bench::report::Status::Failed).count();
    anyhow::ensure!(failed == 0, "bench: {failed} measurement(s) failed (see the report)");
    Ok(ExitCode::from(EXIT_OK))
}
