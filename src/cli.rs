//! The command line: the flags of each command (clap), turned into a validated [`Config`] by
//! one function, [`config`], and carried out by [`run`].
//!
//! The work itself lives in library modules that tests call directly ([`crate::demo`],
//! [`crate::conform`], [`crate::bench`], [`crate::server`], [`crate::client`]); this module only
//! parses, validates and prints. Exit statuses (SPEC.md section 11): 0 success, 1 a protocol
//! error or a refusal, 2 a usage error ([`UsageError`]); `main` turns every error into one line
//! on stderr, prefixed `udsping: `.
//!
//! Every duration option takes one syntax, humantime's (`2s`, `500ms`, `1m30s`); a bare number
//! is refused with a message that shows those forms.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::LazyLock;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::bench::{self, subject::Subject, Scenario};
use crate::client::{self, ClientConfig};
use crate::conform::harness::{Addressing, Target};
use crate::conform::target::TargetError;
use crate::conform::{self, list, report, Options, Role};
use crate::demo::{self, DemoConfig};
use crate::logger;
use crate::server::{Server, ServerConfig, ShutdownHandle};
use crate::term;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A protocol error, a refusal to start, or any other failure at run time.
pub const EXIT_FAILURE: u8 = 1;
/// The command line was wrong, or the gate's harness could not run.
pub const EXIT_USAGE: u8 = 2;

/// `--version`: the crate's version and the SPEC.md version the gate checks.
static VERSION: LazyLock<String> =
    LazyLock::new(|| format!("{} (SPEC.md version {})", env!("CARGO_PKG_VERSION"), crate::spec::version()));

/// The `udsping` command line.
#[derive(Debug, Parser)]
#[command(
    name = "udsping",
    version = VERSION.as_str(),
    about = "The ping/pong protocol over Unix domain sockets: reference server, client and conformance gate"
)]
#[command(after_help = "Exit status: 0 success, 1 protocol error or refusal, 2 usage error.")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the protocol on a socket file until SIGINT, SIGTERM, SIGHUP or SIGQUIT.
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
    /// Print a shell completion script (`udsping completions bash > /etc/bash_completion.d/udsping`).
    Completions(CompletionsArgs),
    /// Print the man page, roff (`udsping man > udsping.1`).
    Man,
}

/// `udsping serve`.
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
    /// Close a connection that sends nothing for this long ("0s" never does; a half-sent token
    /// counts as idle).
    #[arg(long, default_value = "120s", value_parser = parse_duration, value_name = "DURATION")]
    pub idle_timeout: Duration,
    /// Close a connection whose pongs cannot be written for this long (a client that never reads).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub write_timeout: Duration,
    /// Serve only peers with this user ID (SO_PEERCRED; repeatable; with --allow-gid, either
    /// matches) [default: none, so anyone the socket file's mode admits]
    #[arg(long, value_name = "UID")]
    pub allow_uid: Vec<u32>,
    /// Serve only peers with this group ID (repeatable) [default: none]
    #[arg(long, value_name = "GID")]
    pub allow_gid: Vec<u32>,
    /// Print the connection counts to stderr this often (SIGUSR1 prints them once) [default: never]
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub stats_interval: Option<Duration>,
    /// Print the seed's per-message lines ("Server: Received ping", ...).
    #[arg(long)]
    pub log_messages: bool,
}

/// `udsping ping`.
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
    /// Give up when the connection, or any one reply, takes longer than this ("0s" waits for
    /// ever); a server whose listen backlog is full counts as not answering.
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
}

/// `udsping demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Lock-step rounds before "end" (0: the client sends only "end").
    #[arg(long, default_value_t = 100)]
    pub rounds: u64,
    /// Print every message, as the seed's programs do.
    #[arg(long)]
    pub log_messages: bool,
}

/// `udsping conform`.
#[derive(Debug, Args)]
#[command(
    after_help = "CMD runs in a new empty directory per case; its socket is `udsocket` there. The absolute path \
is also in $UDSPING_SOCKET, and {socket} in any ARG is replaced by it (`--socket={socket}` works; with --abstract, \
both are a Linux abstract address `@udsping-conform-…` instead). CMD itself is made absolute when it names a file \
in the current directory; ARGs are passed as written, so give scripts as absolute paths \
(`-- python3 \"$PWD/server.py\"`). CMD must stay in the foreground: it is started in its own process group, and \
it and everything it started are killed at the end of each case.\n\n\
Exit status: 0 every MUST case passed; 1 a MUST case failed (or a SHOULD with --strict); 2 the harness could not \
run (usage error, CMD not found, a selection of no case, a CMD that daemonizes); 130, 143, 129 the gate was \
interrupted by SIGINT, SIGTERM, SIGHUP (its targets killed, its temporary directories removed)."
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
    /// Deadline for each expected event within a case.
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// The same in milliseconds (the former spelling, kept for scripts).
    #[arg(long, hide = true, conflicts_with = "timeout", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_ms: Option<u64>,
    /// How long a server may take to accept its first connection, or to refuse to start (or
    /// --timeout, if longer), and a client to connect (or to give up when nothing listens, or
    /// 10 s, if longer). A case whose start, spawned before any start succeeded, ran out of it
    /// silently runs once more at the end if the target started in another case.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub startup_timeout: Duration,
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
    #[arg(long, value_parser = parse_positive_duration, value_name = "DURATION", requires = "explore")]
    pub explore_time: Option<Duration>,
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

/// Which side of the protocol CMD implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// CMD is a server: the gate plays clients against it.
    Server,
    /// CMD is a client: the gate plays the server.
    Client,
    /// No CMD: write the stream cases and generated scripts as JSON test vectors into DIR.
    Export,
}

/// `conform --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Readable text, one line per case.
    Human,
    /// One JSON object (`--list`: a JSON array).
    Json,
    /// JUnit XML, one test suite per SPEC.md section.
    Junit,
}

/// `udsping bench`.
#[derive(Debug, Args)]
#[command(
    after_help = "Every figure is measured in the same run as the raw baseline (a std-only thread per connection \
reading up to 4 KiB and writing a pong per 4 bytes read), alternately in short trials (ABBA order), and reported as \
the median of the per-pair ratios with their interquartile range. A figure is marked UNSTABLE when that range exceeds \
10% of the median, or other processes used over 10% of the CPUs, or the hypervisor stole over 2% of CPU time \
meanwhile, or a trial completed nothing. \
Every trial has a deadline (its length + 2 s + 10 ms per client): a server that stalls fails its scenario, the run goes on; \
a server that fails its first two figures without one measured is not measured again. \
The reference and the baseline run in this process, started afresh for each trial; CMD and the seed's Python \
server (included when python3 is found) run as child processes, started once per figure (the baseline then too).\n\n\
Exit status: 0 every scenario measured; 1 a scenario failed; 2 usage error (or an unreadable --compare file)."
)]
pub struct BenchArgs {
    /// Scenario to run (repeatable) [default: all].
    #[arg(long = "scenario", value_enum, value_name = "NAME")]
    pub scenarios: Vec<Scenario>,
    /// How long each server is measured per scenario (up to 1h), split into --pairs trials.
    #[arg(long, default_value = "2s", value_parser = parse_bench_duration, value_name = "DURATION")]
    pub duration: Duration,
    /// Trials per server per scenario, interleaved with the baseline's (ABBA) [default: 80 for
    /// lockstep-pinned and idle-crowd, 10 for the others].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub pairs: Option<u64>,
    /// How long a server started as a child process (CMD, the seed's) may take to listen. A
    /// figure taken before the server was first measured, whose first start ran out of it
    /// silently, is taken once more at the end if the server was measured for another figure.
    #[arg(long, default_value = "5s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub startup_timeout: Duration,
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

/// `bench --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchFormat {
    /// A table.
    Human,
    /// One JSON object.
    Json,
}

/// `udsping completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// A value on the command line that does not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// `--mode` is not an octal mode.
    #[error("expected an octal file mode from 0 to 0777 (such as 0600), got {0:?}")]
    Mode(String),
    /// A duration without a unit.
    #[error("{0:?} has no unit: write a duration such as 2s, 500ms, 1m30s or 0s")]
    BareNumber(String),
    /// Not a duration at all.
    #[error("expected a duration such as 2s, 500ms or 1m30s, got {text:?}: {reason}")]
    Duration {
        /// The text given.
        text: String,
        /// What humantime found wrong.
        reason: humantime::DurationError,
    },
    /// Zero where only a positive duration makes sense.
    #[error("must be more than 0s, such as 2s or 500ms")]
    Zero,
    /// Longer than the option allows.
    #[error("must be at most {}, got {text:?}", humantime::format_duration(*.max))]
    TooLong {
        /// The text given.
        text: String,
        /// The limit.
        max: Duration,
    },
}

/// Parses an octal file mode as `--mode` takes it (`0600`, `600`, `0o600`).
pub fn parse_mode(text: &str) -> Result<u32, ValueError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(ValueError::Mode(text.to_string())),
    }
}

/// Parses a duration option: humantime's syntax (`10s`, `500ms`, `2m`, `0s`), never a bare
/// number, whose unit a reader would have to guess.
pub fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    if text.trim().parse::<f64>().is_ok() {
        return Err(ValueError::BareNumber(text.to_string()));
    }
    match humantime::parse_duration(text) {
        // Far beyond any use, and far from overflowing a clock: `500000000000years` is a
        // usage error, not a panic.
        Ok(duration) if duration > MAX_DURATION => {
            Err(ValueError::TooLong { text: text.to_string(), max: MAX_DURATION })
        }
        Ok(duration) => Ok(duration),
        Err(reason) => Err(ValueError::Duration { text: text.to_string(), reason }),
    }
}

/// The longest duration any option takes: 100 years.
const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Like [`parse_duration`], and more than zero.
pub fn parse_positive_duration(text: &str) -> Result<Duration, ValueError> {
    match parse_duration(text)? {
        Duration::ZERO => Err(ValueError::Zero),
        duration => Ok(duration),
    }
}

fn parse_bench_duration(text: &str) -> Result<Duration, ValueError> {
    const MAX: Duration = Duration::from_secs(3600);
    match parse_positive_duration(text)? {
        duration if duration > MAX => Err(ValueError::TooLong { text: text.to_string(), max: MAX }),
        duration => Ok(duration),
    }
}

/// A command line that parses but cannot be carried out (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// `serve --write-timeout 0s`.
    #[error("--write-timeout must be more than 0s (a write that may block forever is what it bounds)")]
    WriteTimeoutZero,
    /// A `--only`/`--skip` glob that does not parse.
    #[error("bad pattern {pattern:?}: {source}")]
    Pattern {
        /// The pattern given.
        pattern: String,
        /// Why it is not a glob.
        source: glob::PatternError,
    },
    /// `-- CMD` names nothing runnable.
    #[error("{command}: {source}")]
    Target {
        /// `conform` or `bench`.
        command: &'static str,
        /// What is wrong with CMD.
        source: TargetError,
    },
    /// An output file that cannot be written, found before the work starts.
    #[error("{option} {}: {source}", path.display())]
    Unwritable {
        /// `--output` or `--svg`.
        option: &'static str,
        /// The path given.
        path: PathBuf,
        /// Why it cannot be written.
        source: io::Error,
    },
    /// `bench --compare FILE` names no readable report.
    #[error("{0}")]
    Compare(#[source] Box<bench::BenchError>),
    /// `--cases`/`--seed` without `--explore`, a DIR outside `export`, `--replay` for a client,
    /// `export` without a DIR.
    #[error("{0}")]
    Explore(&'static str),
    /// `--replay FILE` names no readable script or report.
    #[error("cannot replay {}: {source}", path.display())]
    Replay {
        /// The file given.
        path: PathBuf,
        /// Why it is not a script.
        source: conform::script::LoadError,
    },
    /// The gate cannot run at all: nothing selected, a socket path too long for `sun_path`.
    #[error(transparent)]
    Gate(conform::GateError),
    /// The JSON report could not be serialized (the gate's verdict is then unknown).
    #[error("cannot write the JSON report: {0}")]
    Json(#[source] serde_json::Error),
    /// The JUnit report could not be serialized (the gate's verdict is then unknown).
    #[error("cannot write the JUnit report: {0}")]
    Junit(#[source] quick_junit::SerializeError),
    /// The report could not be written after the run (the gate's verdict is then unknown).
    #[error("cannot write {}: {source}", path.display())]
    Report {
        /// Where it was to go.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
}

/// A validated command line: what [`run`] carries out.
#[derive(Debug)]
pub enum Config {
    /// Serve until a signal.
    Serve(ServerConfig),
    /// Run a client.
    Ping(ClientConfig),
    /// The demo.
    Demo(DemoConfig),
    /// List the gate's cases.
    ConformList {
        /// Which side's cases.
        role: Role,
        /// The selection.
        options: Options,
        /// As JSON rather than columns.
        json: bool,
    },
    /// Run the gate.
    Conform(Box<ConformConfig>),
    /// Write the gate's data cases and generated scripts as JSON test vectors.
    ConformExport {
        /// Where to write them.
        dir: PathBuf,
        /// The seed of the generated scripts.
        seed: u64,
        /// How many generated scripts.
        cases: u32,
    },
    /// Run the benchmark.
    Bench(Box<BenchConfig>),
    /// Print a completion script.
    Completions(clap_complete::Shell),
    /// Print the man page.
    Man,
}

/// A gate run.
#[derive(Debug)]
pub struct ConformConfig {
    /// Which side CMD implements.
    pub role: Role,
    /// The implementation under test, checked runnable.
    pub target: Target,
    /// Selection, deadlines, parallelism.
    pub options: Options,
    /// What the checks found odd but not fatal (a pattern that matches nothing, an argument
    /// naming a file relative to this directory).
    pub warnings: Vec<Warning>,
    /// Generated conversations after the fixed cases (`--explore`), if any.
    pub explore: Option<conform::explore::ExploreOptions>,
    /// Scripts to play instead of the cases (`--replay FILE`), read before any work.
    pub replay: Option<(conform::explore::ExploreOptions, Vec<(String, conform::script::Script)>)>,
    /// The report's format.
    pub format: FormatArg,
    /// Where the report goes (checked writable), or stdout.
    pub output: Option<PathBuf>,
    /// Print every transcript.
    pub verbose: bool,
}

/// A benchmark run.
#[derive(Debug)]
pub struct BenchConfig {
    /// What to measure, and how long.
    pub options: bench::Options,
    /// What the checks found odd but not fatal (an argument naming a file relative to this directory).
    pub warnings: Vec<Warning>,
    /// The report's format.
    pub format: BenchFormat,
    /// Where to draw the SVG (checked writable), if anywhere.
    pub svg: Option<PathBuf>,
    /// A previous report to compare the figures with (`--compare`), read before any work.
    pub previous: Option<bench::report::Report>,
}

/// Something odd about the command line that does not stop the run, printed before it starts.
#[derive(Debug, thiserror::Error)]
pub enum Warning {
    /// `--only`/`--skip` matches no case while others do.
    #[error(transparent)]
    Pattern(#[from] conform::UnmatchedPattern),
    /// An argument of CMD names a file relative to this directory.
    #[error(transparent)]
    Argument(#[from] conform::target::RelativeArgument),
}

fn argument_warnings(target: &Target) -> impl Iterator<Item = Warning> {
    conform::target::relative_arguments(target).into_iter().map(Warning::from)
}

/// Turns parsed flags into a validated configuration: every check that can be made before
/// work starts is made here, so a usage error never costs a run.
pub fn config(cli: Cli) -> Result<Config, UsageError> {
    Ok(match cli.command {
        Command::Serve(args) => {
            if args.write_timeout.is_zero() {
                return Err(UsageError::WriteTimeoutZero);
            }
            Config::Serve(ServerConfig {
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
            })
        }
        Command::Ping(args) => Config::Ping(ClientConfig {
            rounds: args.rounds,
            log_messages: args.log_messages,
            timeout: args.timeout,
            ..ClientConfig::new(args.socket)
        }),
        Command::Demo(args) => Config::Demo(DemoConfig { rounds: args.rounds, log_messages: args.log_messages }),
        Command::Conform(args) => conform_config(args)?,
        Command::Bench(args) => {
            let subject = if args.command.is_empty() {
                Subject::Reference
            } else {
                Subject::Command(
                    conform::target::from_command(&args.command)
                        .map_err(|source| UsageError::Target { command: "bench", source })?,
                )
            };
            if let Some(path) = &args.svg {
                check_writable("--svg", path)?;
            }
            let python =
                std::process::Command::new("python3").arg("--version").output().is_ok_and(|o| o.status.success());
            // Read before measuring: a wrong path should not cost a whole run.
            let previous = args
                .compare
                .as_deref()
                .map(bench::read_report)
                .transpose()
                .map_err(|source| UsageError::Compare(Box::new(source)))?;
            let defaults = bench::Options::default();
            let options = bench::Options {
                scenarios: if args.scenarios.is_empty() { Scenario::ALL.to_vec() } else { args.scenarios },
                duration: args.duration,
                pairs: args.pairs.map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
                repeat: usize::try_from(args.repeat).unwrap_or(usize::MAX),
                startup_timeout: args.startup_timeout,
                idle_counts: if args.idle_connections.is_empty() {
                    defaults.idle_counts.clone()
                } else {
                    args.idle_connections.iter().map(|&n| usize::try_from(n).unwrap_or(usize::MAX)).collect()
                },
                subject,
                seed_python: python && !args.no_seed,
                ..defaults
            };
            let warnings = match &options.subject {
                Subject::Command(target) => argument_warnings(target).collect(),
                _ => Vec::new(),
            };
            Config::Bench(Box::new(BenchConfig { options, warnings, format: args.format, svg: args.svg, previous }))
        }
        Command::Completions(args) => Config::Completions(args.shell),
        Command::Man => Config::Man,
    })
}

fn conform_config(args: ConformArgs) -> Result<Config, UsageError> {
    let role = match args.role {
        RoleArg::Server => Role::Server,
        RoleArg::Client => Role::Client,
        RoleArg::Export => {
            let dir = args.dir.ok_or(UsageError::Explore(
                "conform export needs a directory, for example: udsping conform export vectors/",
            ))?;
            return Ok(Config::ConformExport {
                dir,
                seed: args.seed.unwrap_or(0),
                cases: args.cases.unwrap_or(conform::explore::DEFAULT_CASES),
            });
        }
    };
    if !args.explore && (args.cases.is_some() || args.seed.is_some()) {
        return Err(UsageError::Explore(
            "--cases and --seed choose generated conversations: add --explore (or use `conform export`)",
        ));
    }
    if args.dir.is_some() {
        return Err(UsageError::Explore(
            "a directory is only for `conform export DIR`; the command to test goes after `--`",
        ));
    }
    if role == Role::Client && args.replay.is_some() {
        return Err(UsageError::Explore("--replay plays scripts against servers; a client has none to replay"));
    }
    let patterns = |texts: Vec<String>| -> Result<Vec<glob::Pattern>, UsageError> {
        texts
            .into_iter()
            .map(|pattern| glob::Pattern::new(&pattern).map_err(|source| UsageError::Pattern { pattern, source }))
            .collect()
    };
    let mut options = Options {
        only: patterns(args.only)?,
        skip: patterns(args.skip)?,
        timeout: args.timeout_ms.map_or(args.timeout, Duration::from_millis),
        startup_timeout: args.startup_timeout,
        strict: args.strict,
        addressing: if args.abstract_address { Addressing::Abstract } else { Addressing::Path },
        ..Options::default()
    };
    if let Some(jobs) = args.jobs {
        options.jobs = usize::try_from(jobs).unwrap_or(usize::MAX);
    }
    if args.list {
        return Ok(Config::ConformList { role, options, json: args.format == FormatArg::Json });
    }
    let target = conform::target::from_command(&args.command)
        .map_err(|source| UsageError::Target { command: "conform", source })?;
    let mut warnings: Vec<Warning> = match conform::preflight(role, &target, &options) {
        // Exploring (or replaying) with every fixed case filtered out is a run of its own.
        Err(conform::GateError::NothingSelected { .. }) if args.explore || args.replay.is_some() => Vec::new(),
        result => result.map_err(UsageError::Gate)?.into_iter().map(Warning::from).collect(),
    };
    warnings.extend(argument_warnings(&target));
    if let Some(path) = &args.output {
        check_writable("--output", path)?;
    }
    let mut explore = conform::explore::ExploreOptions {
        timeout: options.timeout,
        startup_timeout: options.startup_timeout,
        jobs: options.jobs,
        addressing: options.addressing,
        time: args.explore_time,
        ..conform::explore::ExploreOptions::new(args.seed.unwrap_or_else(conform::explore::random_seed))
    };
    if let Some(cases) = args.cases {
        (explore.cases, explore.client_cases) = (cases, cases);
    }
    let replay = match args.replay {
        Some(path) => {
            let scripts = conform::script::load_file(&path)
                .map_err(|source| UsageError::Replay { path: path.clone(), source })?;
            Some((explore.clone(), scripts))
        }
        None => None,
    };
    Ok(Config::Conform(Box::new(ConformConfig {
        role,
        target,
        options,
        warnings,
        explore: args.explore.then_some(explore),
        replay,
        format: args.format,
        output: args.output,
        verbose: args.verbose,
    })))
}

/// Whether a file could be written at `path` without writing it: an existing file must be
/// writable and not a directory, a new one needs a writable directory to go in.
fn check_writable(option: &'static str, path: &Path) -> Result<(), UsageError> {
    use rustix::fs::{access, Access};
    let unwritable = |source: io::Error| UsageError::Unwritable { option, path: path.to_owned(), source };
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Err(unwritable(io::Error::from(io::ErrorKind::IsADirectory))),
        Ok(_) => access(path, Access::WRITE_OK).map_err(|e| unwritable(e.into())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let parent = match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            match std::fs::metadata(parent) {
                Ok(metadata) if metadata.is_dir() => {
                    access(parent, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| unwritable(e.into()))
                }
                Ok(_) => Err(unwritable(io::Error::from(io::ErrorKind::NotADirectory))),
                Err(error) => Err(unwritable(error)),
            }
        }
        Err(error) => Err(unwritable(error)),
    }
}

/// Carries out a validated command line and returns the exit status; an `Err` is printed by
/// `main` as one line, with status 2 when it is a [`UsageError`] and 1 otherwise.
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    match config {
        Config::Serve(config) => serve(config)?,
        Config::Ping(config) => {
            install_writer(logger::Mode::Blocking)?;
            let summary = client::run(&config)?;
            out(&format!("ok: {} rounds over {}, then \"end\"\n", summary.rounds, config.socket.display()))?;
            logged_failure()?;
        }
        Config::Demo(config) => return run_demo(config),
        Config::ConformList { role, options, json } => {
            let cases = list::list(role, &options);
            out(&if json { list::json(&cases) } else { list::human(&cases) })?;
        }
        Config::Conform(config) => return run_conform(*config),
        Config::ConformExport { dir, seed, cases } => {
            let written = conform::export::write(&dir, seed, cases)?;
            out(&format!("conform export: wrote {written} files to {} (seed {seed})\n", dir.display()))?;
        }
        Config::Bench(config) => return run_bench(*config),
        Config::Completions(shell) => {
            // Into memory first: clap_complete panics on a failed write, and a closed pipe
            // (`| head`) is not a bug.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "udsping", &mut script);
            out_bytes(&script)?;
        }
        Config::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut page).context("cannot render the man page")?;
            out_bytes(&page)?;
        }
    }
    Ok(ExitCode::from(EXIT_OK))
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

fn run_demo(config: DemoConfig) -> anyhow::Result<ExitCode> {
    install_writer(logger::Mode::Blocking)?;
    let report = demo::run(config, |socket| {
        // A closed stdout shows up again, as an error, when the report is written below.
        let _ = out(&format!("server: listening on {} (mode 0600)\n", socket.display()));
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
    out(&if term::colour_stdout() { term::paint(&text) } else { text })?;
    anyhow::ensure!(report.passed(), "verdict: FAIL");
    logged_failure()?;
    Ok(ExitCode::from(EXIT_OK))
}

fn run_conform(config: ConformConfig) -> anyhow::Result<ExitCode> {
    for warning in &config.warnings {
        eprintln!("udsping: warning: {warning}");
    }
    stop_cleanly_on_signals().context("cannot install signal handlers")?;
    let strict = config.options.strict;
    let suite = match &config.replay {
        Some((explore, scripts)) => {
            let cases = conform::explore::replay(scripts, &config.target, explore);
            conform::SuiteReport {
                role: config.role,
                target: config.target.clone(),
                options: config.options.clone(),
                cases,
            }
        }
        None => {
            let mut suite =
                conform::run_with_progress(config.role, &config.target, &config.options, &|case, done, total| {
                    eprintln!(
                        "[{done}/{total}] {} ({})",
                        report::case_line(case, strict),
                        conform::harness::human_duration(case.duration)
                    );
                    if let Some(first_run) = &case.first_run {
                        eprintln!("        {}", report::first_run_line(first_run));
                    }
                });
            if let Some(explore) = &config.explore {
                suite.cases.extend(conform::explore::explore_all(config.role, &config.target, explore));
            }
            suite
        }
    };
    let human = report::human(&suite, config.verbose);
    let formatted = match config.format {
        FormatArg::Human => None,
        FormatArg::Json => Some(report::json(&suite).map_err(UsageError::Json)?),
        FormatArg::Junit => Some(report::junit(&suite).map_err(UsageError::Junit)?),
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
    let painted = config.format == FormatArg::Human || config.output.is_some();
    out(&if painted && term::colour_stdout() { term::paint(&shown) } else { shown })?;
    Ok(ExitCode::from(suite.exit_code()))
}

/// A gate told to stop (a cancelled CI job: SIGINT, SIGTERM, SIGHUP; or SIGQUIT) kills the
/// targets it runs, removes its temporary directories and exits 128 + the signal's number.
/// Handling these signals also means none of them is ignored in CMD (handlers are reset at
/// exec), even when the gate itself was started with them ignored, as a background job is.
fn stop_cleanly_on_signals() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT])?;
    std::thread::Builder::new().name("udsping-signals".into()).spawn(move || {
        if let Some(signal) = signals.forever().next() {
            for (dir, e) in conform::harness::abort_run() {
                eprintln!("udsping: cannot remove {}: {e}", dir.display());
            }
            let name = match signal {
                SIGINT => "SIGINT",
                SIGTERM => "SIGTERM",
                SIGHUP => "SIGHUP",
                _ => "SIGQUIT",
            };
            eprintln!("udsping: stopped by {name}: the targets were killed and the temporary directories removed");
            std::process::exit(128 + signal);
        }
    })?;
    Ok(())
}

fn run_bench(config: BenchConfig) -> anyhow::Result<ExitCode> {
    for warning in &config.warnings {
        eprintln!("udsping: warning: {warning}");
    }
    let progress = term::Progress::stderr("bench");
    let mut report = bench::run(&config.options, |step| progress.step(step));
    progress.finish();
    if let Some(previous) = &config.previous {
        report.comparison = bench::report::compare(&report.results, previous);
    }
    match config.format {
        BenchFormat::Human => out(&bench::report::human(&report))?,
        BenchFormat::Json => out(&bench::report::json(&report))?,
    }
    if let Some(path) = &config.svg {
        bench::svg(&report, path)?;
    }
    let failed = report.results.iter().filter(|r| r.status == bench::report::Status::Failed).count();
    anyhow::ensure!(failed == 0, "bench: {failed} measurement(s) failed (see the report)");
    Ok(ExitCode::from(EXIT_OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, UsageError> {
        config(Cli::try_parse_from(std::iter::once("udsping").chain(args.iter().copied())).unwrap())
    }

    #[test]
    fn durations_take_units_and_refuse_bare_numbers() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bare in ["0", "2", "0.5", " 10 "] {
            let message = parse_duration(bare).unwrap_err().to_string();
            assert!(message.contains("no unit") && message.contains("2s, 500ms"), "{bare}: {message}");
        }
        assert!(matches!(parse_duration("2 parsecs"), Err(ValueError::Duration { .. })));
        assert_eq!(parse_positive_duration("0s"), Err(ValueError::Zero));
        assert!(matches!(parse_bench_duration("2h"), Err(ValueError::TooLong { .. })));
    }

    #[test]
    fn every_duration_option_uses_the_one_syntax() {
        for args in [
            &["serve", "--idle-timeout", "120"][..],
            &["serve", "--write-timeout", "10"],
            &["serve", "--stats-interval", "1"],
            &["conform", "server", "--timeout", "2", "--", "true"],
            &["bench", "--duration", "2"],
        ] {
            let error = Cli::try_parse_from(std::iter::once("udsping").chain(args.iter().copied())).unwrap_err();
            assert!(error.to_string().contains("no unit"), "{args:?}: {error}");
        }
        let Ok(Config::Serve(serve)) = parse(&["serve", "--idle-timeout", "0s", "--stats-interval", "1m"]) else {
            panic!("serve parses")
        };
        assert_eq!((serve.idle_timeout, serve.stats_interval), (None, Some(Duration::from_secs(60))));
    }

    #[test]
    fn conform_timeout_keeps_its_millisecond_alias() {
        let timeout = |args: &[&str]| match parse(args) {
            Ok(Config::Conform(c)) => c.options.timeout,
            other => panic!("{other:?}"),
        };
        assert_eq!(timeout(&["conform", "server", "--", "true"]), Duration::from_secs(2));
        assert_eq!(timeout(&["conform", "server", "--timeout", "750ms", "--", "true"]), Duration::from_millis(750));
        assert_eq!(timeout(&["conform", "server", "--timeout-ms", "500", "--", "true"]), Duration::from_millis(500));
    }

    #[test]
    fn usage_errors_are_found_before_any_work() {
        assert!(matches!(parse(&["serve", "--write-timeout", "0s"]), Err(UsageError::WriteTimeoutZero)));
        assert!(matches!(
            parse(&["bench", "--", "/no/such/cmd"]),
            Err(UsageError::Target { command: "bench", source: TargetError::NotExecutable { .. } })
        ));
        assert!(matches!(
            parse(&["conform", "server"]),
            Err(UsageError::Target { command: "conform", source: TargetError::Missing })
        ));
        for (option, args) in [
            ("--output", &["conform", "server", "--output", "/no/such/dir/report.xml", "--", "true"][..]),
            ("--svg", &["bench", "--svg", "/no/such/dir/bench.svg"]),
            ("--output", &["conform", "server", "--output", "/", "--", "true"]),
        ] {
            match parse(args) {
                Err(UsageError::Unwritable { option: o, .. }) => assert_eq!(o, option),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_new_file_in_a_writable_directory_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.xml");
        check_writable("--output", &path).unwrap();
        assert!(!path.exists(), "checking does not create the file");
        std::fs::write(&path, "old").unwrap();
        check_writable("--output", &path).unwrap();
    }

    #[test]
    fn the_version_names_the_spec_version() {
        let version = Cli::command().render_version();
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
        assert!(version.contains(&format!("SPEC.md version {}", crate::spec::version())), "{version}");
    }
}
