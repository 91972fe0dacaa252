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
doing read 4 bytes, write \"pong\") and reported as a ratio. The reference and the baseline run in this process; \
CMD and the seed's Python server (included when python3 is found) run as child processes."
)]
pub struct BenchArgs {
    /// Scenario to run (repeatable) [default: all].
    #[arg(long = "scenario", value_enum, value_name = "NAME")]
    pub scenarios: Vec<crate::bench::Scenario>,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 2.0, value_parser = parse_seconds)]
    pub duration: f64,
    /// Report format.
    #[arg(long, value_enum, default_value = "human")]
    pub format: BenchFormat,
    /// Also draw throughput against clients and the latency distributions into this SVG file.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// CMD is a server: the gate plays clients against it.
    Server,
    /// CMD is a client: the gate plays the server.
    Client,
    /// No CMD: write the stream cases and generated scripts as JSON test vectors into DIR.
    Export,
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
    /// After the fixed cases, run generated conversations against the server (or generated
    /// servers against the client) and shrink the first failure (deterministic for a --seed).
    #[arg(long)]
    pub explore: bool,
    /// Generated conversations for --explore (default: 200 for a server, 60 for a client), or
    /// generated vectors for `export` (default: 200).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cases: Option<u32>,
    /// Seed of the generated conversations [default: from the clock; the report names it].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Stop generating conversations after this long (a failure found in time is still shrunk).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION", requires = "explore")]
    pub explore_time: Option<std::time::Duration>,
    /// Instead of the cases, play the scripts in FILE: a script, or a JSON report of --explore.
    #[arg(long, value_name = "FILE", conflicts_with = "explore")]
    pub replay: Option<PathBuf>,
    /// For `export`: the directory to write the test vectors into.
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
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
    /// Connections served at once; further clients wait in the listen backlog.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
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
        Command::Bench(args) => bench(args),
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
    let usage = |message: String| {
        eprintln!("udsping: {message}");
        ExitCode::from(EXIT_USAGE)
    };
    let role = match args.role {
        RoleArg::Server => Role::Server,
        RoleArg::Client => Role::Client,
        RoleArg::Export => return export(&args),
    };
    if !args.explore && (args.cases.is_some() || args.seed.is_some()) {
        return usage(
            "--cases and --seed choose generated conversations: add --explore (or use `conform export`)".into(),
        );
    }
    if args.dir.is_some() {
        return usage("a directory is only for `conform export DIR`; the command to test goes after `--`".into());
    }
    if role == Role::Client && args.replay.is_some() {
        return usage("--replay plays scripts against servers; a client has none to replay".into());
    }
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
    let mut explore = conform::explore::ExploreOptions {
        timeout: options.timeout,
        jobs: options.jobs,
        addressing: options.addressing,
        time: args.explore_time,
        ..conform::explore::ExploreOptions::new(args.seed.unwrap_or_else(conform::explore::random_seed))
    };
    if let Some(cases) = args.cases {
        (explore.cases, explore.client_cases) = (cases, cases);
    }
    let suite = match &args.replay {
        Some(file) => {
            let scripts = match conform::script::load_file(file) {
                Ok(scripts) => scripts,
                Err(e) => return usage(format!("cannot replay {}: {e}", file.display())),
            };
            let cases = conform::explore::replay(&scripts, &target, &explore);
            conform::SuiteReport { role, target: target.clone(), options: options.clone(), cases }
        }
        None => {
            let mut suite = conform::run(role, &target, &options);
            if args.explore {
                suite.cases.extend(conform::explore::explore_all(role, &target, &explore));
            }
            suite
        }
    };
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

/// `udsping conform export DIR`: the stream cases and generated scripts as JSON test vectors.
fn export(args: &ConformArgs) -> ExitCode {
    let Some(dir) = &args.dir else {
        eprintln!("udsping: conform export needs a directory, for example: udsping conform export vectors/");
        return ExitCode::from(EXIT_USAGE);
    };
    let seed = args.seed.unwrap_or(0);
    let cases = args.cases.unwrap_or(crate::conform::explore::DEFAULT_CASES);
    match crate::conform::export::write(dir, seed, cases) {
        Ok(written) => {
            println!("conform export: wrote {written} files to {} (seed {seed})", dir.display());
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            eprintln!("udsping: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
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

fn bench(args: BenchArgs) -> Result<(), String> {
    use std::io::IsTerminal;

    use crate::bench::{self, subject::Subject};
    let subject = match args.command.split_first() {
        None => Subject::Reference,
        Some((program, rest)) => {
            let target = crate::conform::harness::Target {
                program: absolute_if_file(program),
                args: rest.iter().map(|a| absolute_if_file(a)).collect(),
            };
            crate::conform::check_target(&target)?;
            Subject::Command(target)
        }
    };
    let python = std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
    let options = bench::Options {
        scenarios: if args.scenarios.is_empty() { bench::Scenario::ALL.to_vec() } else { args.scenarios },
        duration: std::time::Duration::from_secs_f64(args.duration),
        subject,
        seed_python: python && !args.no_seed,
        ..bench::Options::default()
    };
    let terminal = std::io::stderr().is_terminal();
    let results = bench::run(&options, |step| {
        if terminal {
            eprint!("\r\x1b[2Kbench: {step}");
        } else {
            eprintln!("bench: {step}");
        }
    })?;
    if terminal {
        eprint!("\r\x1b[2K");
    }
    match args.format {
        BenchFormat::Human => print!("{}", bench::human(&results)),
        BenchFormat::Json => print!("{}", bench::json(&results, &options)),
    }
    if let Some(path) = &args.svg {
        bench::svg(&results, path).map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
    }
    Ok(())
}
