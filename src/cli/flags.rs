//! The command line's definitions: every command's flags (clap), and the value parsers they
//! share. [`super::config`] turns them into a validated configuration.
//!
//! Every duration option takes one syntax, humantime's (`2s`, `500ms`, `1m30s`); a bare number
//! is refused with a message that shows those forms.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::bench::Scenario;

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
    /// When to colour the output: on a terminal only (and never with NO_COLOR set), always, or never.
    #[arg(long, global = true, value_enum, default_value = "auto", value_name = "WHEN")]
    pub color: ColorArg,
    /// Print nothing on stdout and no progress on stderr: the exit status says it all (errors
    /// still go to stderr, and --output and --svg files are still written).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorArg {
    /// On a terminal, unless NO_COLOR is set or TERM is dumb.
    Auto,
    /// Always, even into a pipe or a file.
    Always,
    /// Never.
    Never,
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
    /// Judge another implementation against SPEC.md (exit 0 conforming, 1 a MUST failed, 2 not
    /// judged: the harness could not run, or a MUST case was inconclusive).
    Conform(ConformArgs),
    /// Measure the reference server (or CMD's) against the raw-socket limit, side by side.
    Bench(BenchArgs),
    /// Print a shell completion script (`udsping completions bash > /etc/bash_completion.d/udsping`).
    Completions(CompletionsArgs),
    /// Print the man page, roff (`udsping man > udsping.1`), or write one page per command.
    Man(ManArgs),
}

/// `udsping man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `udsping.1` and a page for each command (`udsping-serve.1`, ...) into this
    /// directory instead of printing the top page.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
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
both are a Linux abstract address `@udsping-conform-…` instead). CMD, and each ARG that names an existing file \
in the current directory (`-- python3 server.py {socket}`), are made absolute, so they mean what they mean here. \
CMD must stay in the foreground: it is started in its own process group, and it and everything it started are \
killed at the end of each case.\n\n\
A failure blames only the requirements of the step it was seen at (SPEC.md section 8); each failed case prints \
the command that reruns it alone.\n\n\
Exit status: 0 every MUST case passed; 1 a MUST case failed (or a SHOULD with --strict); 2 not judged: the \
harness could not run (usage error, CMD not found, a selection of no case, a CMD that daemonizes, a target that \
never started) or a MUST case was inconclusive (the gate's own case limit ran out, say) and none failed; \
130, 143, 129 the gate was interrupted by SIGINT, SIGTERM, SIGHUP (its targets killed, its temporary directories \
removed, and with --output the partial report written, marked interrupted)."
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
    /// The longest one case may take (a client doing many rounds, a slow conversation). A case
    /// cut short by it is inconclusive, never failed, and says to raise it.
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration, value_name = "DURATION")]
    pub case_timeout: Duration,
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
    /// Generated cases per family for --explore (default: 200 conversations, 20 bursts and 20
    /// lifecycles for a server, 60 generated servers for a client), or generated vectors for
    /// `export` (default: 200).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub cases: Option<u32>,
    /// Seed of the generated conversations [default: from the clock; the report names it].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Stop generating cases after this long, all families together (a failure found in time
    /// is still shrunk).
    #[arg(long, value_parser = parse_positive_duration, value_name = "DURATION", requires = "explore")]
    pub explore_time: Option<Duration>,
    /// Instead of the cases, play the scripts in FILE: a script, a test vector of `conform
    /// export`, or a report (JSON or human) of --explore. A replay judges only the requirements
    /// its scripts name.
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

pub(crate) fn parse_bench_duration(text: &str) -> Result<Duration, ValueError> {
    const MAX: Duration = Duration::from_secs(3600);
    match parse_positive_duration(text)? {
        duration if duration > MAX => Err(ValueError::TooLong { text: text.to_string(), max: MAX }),
        duration => Ok(duration),
    }
}
