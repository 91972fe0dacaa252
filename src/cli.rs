//! The command line: argument definitions (clap) and what each command does with them.
//!
//! Exit statuses (SPEC.md section 11): 0 success, 1 a protocol error or a refusal, 2 a usage
//! error. Every error is one line on stderr, prefixed `udsping: `.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::{self, ClientConfig};
use crate::server::{Server, ServerConfig, ShutdownHandle};
use crate::socket_path::Removal;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A protocol error, a refusal to start, or any other failure at run time.
pub const EXIT_FAILURE: u8 = 1;
/// The command line was wrong.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "udsping",
    version,
    about = "The ping/pong protocol over Unix domain sockets: reference server, client and conformance gate"
)]
#[command(after_help = "Exit status: 0 success, 1 protocol error or refusal, 2 usage error.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the protocol on a socket file until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Connect, run lock-step ping/pong rounds, send "end".
    Ping(PingArgs),
    /// Start a server in a temporary directory, run a client against it, print the verdict.
    Demo(DemoArgs),
    /// Judge another implementation against SPEC.md (exit 0 conforming, 1 a MUST failed, 2 the
    /// harness could not run).
    Conform(ConformArgs),
    /// Measure the reference server (or CMD's) against the raw-socket limit, side by side.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Every figure is measured in the same run as the raw baseline (a std-only thread per connection \
doing read 4 bytes, write \"pong\"), alternately in short trials (ABBA order), and reported as the median of the \
per-pair ratios with their interquartile range. A figure is marked UNSTABLE when that range exceeds 10% of the \
median, or other processes used over 10% of the CPUs, or the hypervisor stole over 2% of CPU time meanwhile. \
Every trial has a deadline (its length + 2 s): a server that stalls fails its scenario, the run goes on. \
The reference and the baseline run in this process; CMD and the seed's Python server (included when python3 \
is found) run as child processes.\n\n\
Exit status: 0 every scenario measured; 1 a scenario failed; 2 usage error (or an unreadable --compare file)."
)]
pub struct BenchArgs {
    /// Scenario to run (repeatable) [default: all].
    #[arg(long = "scenario", value_enum, value_name = "NAME")]
    pub scenarios: Vec<crate::bench::Scenario>,
    /// Seconds each server is measured per scenario, split into --pairs trials.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub duration: f64,
    /// Trials per server per scenario, interleaved with the baseline's (ABBA).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub pairs: u64,
    /// Run the whole set of scenarios this many times and say whether the runs agree.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub repeat: u64,
    /// A previous JSON report: say which ratios moved beyond their spread.
    #[arg(long, value_name = "FILE")]
    pub compare: Option<PathBuf>,
    /// Idle connections of the idle-crowd scenario (repeatable) [default: 1000 and 10000].
    #[arg(long = "idle-connections", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub idle_connections: Vec<u64>,
    /// Report format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: BenchFormat,
    /// Also draw every ratio with its spread and the latency percentiles into this SVG file.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Leave the seed's Python server out even where python3 is installed.
    #[arg(long)]
    pub no_seed: bool,
    /// Another server to measure instead of the reference, started as by `conform`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchFormat {
    Human,
    Json,
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 3600.0 => Ok(seconds),
        _ => Err(format!("expected seconds between 0 and 3600, such as 2 or 0.5; got {text:?}")),
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    /// CMD is a server: the gate plays clients against it.
    Server,
    /// CMD is a client: the gate plays the server.
    Client,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    Human,
    Json,
    Junit,
}

#[derive(Debug, Args)]
#[command(
    after_help = "CMD runs in a new empty directory per case; its socket is `udsocket` there. The absolute path \
is also in $UDSPING_SOCKET, and every ARG equal to {socket} is replaced by it (with --abstract, both are a \
Linux abstract address `@udsping-conform-…` instead). CMD and ARGs that name an existing \
file relative to the current directory are passed as absolute paths, so `-- python3 server.py` works.\n\n\
Exit status: 0 every MUST case passed; 1 a MUST case failed (or a SHOULD with --strict); 2 the harness could not \
run (usage error, CMD not found)."
)]
pub struct ConformArgs {
    /// Which side CMD implements.
    #[arg(value_enum)]
    pub role: RoleArg,
    /// List the cases (ID, level, requirements, title) and exit.
    #[arg(long)]
    pub list: bool,
    /// Run only cases whose ID or requirement ID matches this glob (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub only: Vec<String>,
    /// Skip cases whose ID or requirement ID matches this glob (repeatable).
    #[arg(long, value_name = "PATTERN")]
    pub skip: Vec<String>,
    /// Report format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: FormatArg,
    /// Write the report here (the human report still goes to stdout).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Deadline for each expected event within a case, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: u64,
    /// SHOULD failures also fail the run.
    #[arg(long)]
    pub strict: bool,
    /// Cases run in parallel [default: the number of CPUs].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub jobs: Option<u64>,
    /// Print every case's transcript, not only the failures'.
    #[arg(long)]
    pub verbose: bool,
    /// Give CMD a Linux abstract address (`@udsping-conform-…`) instead of a socket file path:
    /// the socket-file cases are skipped and the abstract-address cases (SPEC.md 7.6) run.
    #[arg(long = "abstract")]
    pub abstract_address: bool,
    /// The implementation under test.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Socket file to listen on, or `@NAME` for a Linux abstract address (no file, no file
    /// permissions: pair it with --allow-uid).
    #[arg(long, default_value = "udsocket")]
    pub socket: PathBuf,
    /// Mode of the socket file (octal), set at creation with no wider window.
    #[arg(long, default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// Connections served at once; further clients wait in the listen backlog. The default is
    /// the descriptor hard limit less 64, at most (vm.max_map_count - 4096) / 2, here:
    #[arg(long, default_value_t = crate::server::limits::default_max_connections() as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Close a connection that sends nothing for this long ("0" never does; a half-sent token
    /// counts as idle).
    #[arg(long, default_value = "120s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: std::time::Duration,
    /// Close a connection whose pongs cannot be written for this long (a client that never reads).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub write_timeout: std::time::Duration,
    /// Serve only peers with this user ID (SO_PEERCRED; repeatable; with --allow-gid, either
    /// matches) [default: none, so anyone the socket file's mode admits]
    #[arg(long, value_name = "UID")]
    pub allow_uid: Vec<u32>,
    /// Serve only peers with this group ID (repeatable) [default: none]
    #[arg(long, value_name = "GID")]
    pub allow_gid: Vec<u32>,
    /// Print the connection counts to stderr this often (SIGUSR1 prints them once) [default: never]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub stats_interval: Option<std::time::Duration>,
    /// Print the seed's per-message lines ("Server: Received ping", ...).
    #[arg(long)]
    pub log_messages: bool,
}

/// Durations such as `10s`, `500ms`, `2m` (humantime's syntax), or `0`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("expected a duration such as 10s or 500ms: {e}"))
}

#[derive(Debug, Args)]
pub struct PingArgs {
    /// Socket file to connect to, or `@NAME` for a Linux abstract address.
    #[arg(long, default_value = "udsocket")]
    pub socket: PathBuf,
    /// Lock-step rounds before "end".
    #[arg(long, default_value_t = 100)]
    pub rounds: u64,
    /// Print the seed's per-message lines ("Client: Sent ping", ...).
    #[arg(long)]
    pub log_messages: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Lock-step rounds before "end".
    #[arg(long, default_value_t = 100)]
    pub rounds: u64,
    /// Print every message, as the seed's programs do.
    #[arg(long)]
    pub log_messages: bool,
}

/// Parses an octal file mode as `--mode` takes it (`0600`, `600`, `0o600`).
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("expected an octal file mode from 0 to 0777 (such as 0600), got {text:?}")),
    }
}

/// Runs a parsed command line and returns the process's exit status.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Ping(args) => ping(args),
        Command::Demo(args) => demo(args),
        Command::Conform(args) => return conform(args),
        Command::Bench(args) => return bench(args),
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(message) => {
            eprintln!("udsping: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    if args.write_timeout.is_zero() {
        return Err("--write-timeout must be more than 0 (a write that may block forever is what it bounds)".into());
    }
    let config = ServerConfig {
        socket: args.socket,
        mode: args.mode,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        pressure_idle: Some(crate::server::limits::PRESSURE_IDLE),
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        write_timeout: args.write_timeout,
        allow_uids: args.allow_uid,
        allow_gids: args.allow_gid,
        stats_interval: args.stats_interval.filter(|d| !d.is_zero()),
        log_messages: args.log_messages,
    };
    let shutdown = ShutdownHandle::new().map_err(|e| format!("cannot set up shutdown: {e}"))?;
    shutdown.stop_on_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let server = Server::bind_with(config, shutdown).map_err(|e| e.to_string())?;
    let path = server.path().to_owned();
    let stats = server.run().map_err(|e| format!("{}: {e}", path.display()))?;
    if stats.socket_file == Some(Removal::Replaced) {
        eprintln!("udsping: {}: another file replaced the socket; left it alone", path.display());
    }
    Ok(())
}

fn ping(args: PingArgs) -> Result<(), String> {
    let config = ClientConfig { socket: args.socket, rounds: args.rounds, log_messages: args.log_messages };
    let summary = client::run(&config).map_err(|e| e.to_string())?;
    println!("ok: {} rounds over {}, then \"end\"", summary.rounds, config.socket.display());
    Ok(())
}

fn demo(args: DemoArgs) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let socket = dir.path().join("udsocket");
    let server = Server::bind(ServerConfig { log_messages: args.log_messages, ..ServerConfig::new(&socket) })
        .map_err(|e| e.to_string())?;
    println!("server: listening on {} (mode 0600)", socket.display());
    let (stop, live) = (server.shutdown_handle(), server.stats());
    let running = std::thread::spawn(move || server.run());
    let client_result =
        client::run(&ClientConfig { socket: socket.clone(), rounds: args.rounds, log_messages: args.log_messages });
    // The client is done when it has sent "end"; give the server a bounded moment to account
    // for the connection before stopping it, so the verdict does not depend on scheduling.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while live.snapshot().open() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    stop.shutdown();
    let stats = running.join().map_err(|_| "the server thread failed".to_string())?.map_err(|e| e.to_string())?;
    let summary = client_result.map_err(|e| e.to_string())?;
    println!("client -> server: \"ping\" x {}, then \"end\"", summary.rounds);
    println!("server -> client: \"pong\" x {}", summary.rounds);
    println!("server: {} connection accepted, {} ended by \"end\"", stats.accepted, stats.ended_by_end);
    let removed = stats.socket_file == Some(Removal::Removed);
    println!("server: socket file {} on shutdown", if removed { "removed" } else { "NOT removed" });
    if stats.ended_by_end != 1 || !removed {
        return Err("verdict: FAIL".into());
    }
    println!("verdict: PASS");
    Ok(())
}

fn conform(args: ConformArgs) -> ExitCode {
    use crate::conform::harness::{Addressing, Target};
    use crate::conform::{self, report, Options, Role};
    let role = match args.role {
        RoleArg::Server => Role::Server,
        RoleArg::Client => Role::Client,
    };
    let usage = |message: String| {
        eprintln!("udsping: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    let patterns = |texts: &[String]| -> Result<Vec<glob::Pattern>, String> {
        texts.iter().map(|t| glob::Pattern::new(t).map_err(|e| format!("bad pattern {t:?}: {e}"))).collect()
    };
    let (only, skip) = match (patterns(&args.only), patterns(&args.skip)) {
        (Ok(only), Ok(skip)) => (only, skip),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let mut options = Options {
        only,
        skip,
        timeout: std::time::Duration::from_millis(args.timeout_ms),
        strict: args.strict,
        addressing: if args.abstract_address { Addressing::Abstract } else { Addressing::Path },
        ..Options::default()
    };
    if let Some(jobs) = args.jobs {
        options.jobs = usize::try_from(jobs).unwrap_or(usize::MAX);
    }
    if args.list {
        print!("{}", list_cases(role, &options, args.format == FormatArg::Json));
        return ExitCode::from(EXIT_OK);
    }
    let Some((program, rest)) = args.command.split_first() else {
        return usage(
            "conform needs the command to test after `--`, for example: udsping conform server -- ./my-server {socket}"
                .into(),
        );
    };
    let target =
        Target { program: absolute_if_file(program), args: rest.iter().map(|a| absolute_if_file(a)).collect() };
    if let Err(message) = conform::check_target(&target) {
        return usage(message);
    }
    let suite = conform::run(role, &target, &options);
    let human = report::human(&suite, args.verbose);
    let formatted = match args.format {
        FormatArg::Human => human.clone(),
        FormatArg::Json => report::json(&suite),
        FormatArg::Junit => match report::junit(&suite) {
            Ok(xml) => xml,
            Err(e) => return usage(format!("cannot write the JUnit report: {e}")),
        },
    };
    match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, formatted) {
                eprintln!("udsping: cannot write {}: {e}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
            print!("{human}");
        }
        None => print!("{formatted}"),
    }
    ExitCode::from(suite.exit_code())
}

/// An argument naming an existing file relative to the current directory, made absolute,
/// because the target runs in another directory.
fn absolute_if_file(arg: &str) -> String {
    let path = std::path::Path::new(arg);
    if path.is_relative() && arg != "{socket}" && path.exists() {
        if let Ok(absolute) = std::path::absolute(path) {
            return absolute.to_string_lossy().into_owned();
        }
    }
    arg.to_string()
}

fn list_cases(role: crate::conform::Role, options: &crate::conform::Options, as_json: bool) -> String {
    let requirements = crate::spec::requirements();
    let level_of = |ids: &[&str]| {
        ids.iter()
            .filter_map(|id| requirements.iter().find(|r| r.id == *id))
            .map(|r| r.level)
            .min()
            .map_or("MUST", |l| l.as_str())
    };
    let cases: Vec<_> = crate::conform::cases(role).into_iter().filter(|c| options.selects(c)).collect();
    if as_json {
        let list: Vec<serde_json::Value> = cases
            .iter()
            .map(|c| serde_json::json!({"id": c.id, "level": level_of(c.requirements), "requirements": c.requirements, "title": c.title}))
            .collect();
        return serde_json::to_string_pretty(&list).expect("JSON serializes") + "\n";
    }
    cases
        .iter()
        .map(|c| format!("{:<40} {:<6} {:<50} {}\n", c.id, level_of(c.requirements), c.requirements.join(","), c.title))
        .collect()
}

fn bench(args: BenchArgs) -> ExitCode {
    use crate::bench::{self, subject::Subject};
    let fail = |code: u8, message: &dyn std::fmt::Display| {
        eprintln!("udsping: {message}");
        ExitCode::from(code)
    };
    let subject = match args.command.split_first() {
        None => Subject::Reference,
        Some((program, rest)) => {
            let target = crate::conform::harness::Target {
                program: absolute_if_file(program),
                args: rest.iter().map(|a| absolute_if_file(a)).collect(),
            };
            if let Err(message) = crate::conform::check_target(&target) {
                return fail(EXIT_USAGE, &message);
            }
            Subject::Command(target)
        }
    };
    // Read before measuring: a wrong path should not cost a whole run.
    let previous = match args.compare.as_deref().map(bench::read_report).transpose() {
        Ok(previous) => previous,
        Err(e) => return fail(EXIT_USAGE, &e),
    };
    let python = std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    let defaults = bench::Options::default();
    let options = bench::Options {
        scenarios: if args.scenarios.is_empty() { bench::Scenario::ALL.to_vec() } else { args.scenarios },
        duration: std::time::Duration::from_secs_f64(args.duration),
        pairs: usize::try_from(args.pairs).unwrap_or(usize::MAX),
        repeat: usize::try_from(args.repeat).unwrap_or(usize::MAX),
        idle_counts: if args.idle_connections.is_empty() {
            defaults.idle_counts.clone()
        } else {
            args.idle_connections.iter().map(|&n| usize::try_from(n).unwrap_or(usize::MAX)).collect()
        },
        subject,
        seed_python: python && !args.no_seed,
        ..defaults
    };
    let mut report = bench::run(&options, bench::stderr_progress());
    if let Some(previous) = &previous {
        report.comparison = bench::report::compare(&report.results, previous);
    }
    match args.format {
        BenchFormat::Human => print!("{}", bench::report::human(&report)),
        BenchFormat::Json => print!("{}", bench::report::json(&report)),
    }
    if let Some(path) = &args.svg {
        if let Err(e) = bench::svg(&report, path) {
            return fail(EXIT_FAILURE, &e);
        }
    }
    let failed = report.results.iter().filter(|r| r.status == bench::report::Status::Failed).count();
    if failed > 0 {
        return fail(EXIT_FAILURE, &format!("bench: {failed} measurement(s) failed (see the report)"));
    }
    ExitCode::from(EXIT_OK)
}
