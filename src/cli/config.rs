//! The command line's flags turned into a validated [`Config`] by one function, [`config`]:
//! every check that can be made before work starts is made there, so a usage error never
//! costs a run. [`super::run`] carries the configuration out.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::flags::{BenchFormat, Cli, ColorArg, Command, ConformArgs, FormatArg, RoleArg};
use crate::bench::{self, subject::Subject, Scenario};
use crate::client::ClientConfig;
use crate::conform::{self, Addressing, ExploreOptions, Options, Role, Script, Target, TargetError, Waits};
use crate::demo::DemoConfig;
use crate::server::ServerConfig;

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
        source: conform::LoadError,
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

/// A validated command line: what to do, and how to speak.
#[derive(Debug)]
pub struct Config {
    /// What to do.
    pub task: Task,
    /// Colour and quietness.
    pub manners: Manners,
}

/// How the command speaks (`--color`, `--quiet`).
#[derive(Clone, Copy, Debug)]
pub struct Manners {
    /// Colour what goes to stdout.
    pub colour: bool,
    /// Nothing on stdout, no progress on stderr.
    pub quiet: bool,
}

/// What a validated command line does: what [`super::run`] carries out.
#[derive(Debug)]
pub enum Task {
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
    /// Print the man page, or write a page per command into a directory.
    Man(Option<PathBuf>),
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
    /// naming a directory relative to this one), and what they changed (an argument naming a
    /// file here, made absolute).
    pub warnings: Vec<Warning>,
    /// Scripts to play instead of the cases (`--replay FILE`), read before any work.
    pub replay: Option<Vec<(String, Script)>>,
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
    /// An argument of CMD names a file or directory relative to this directory.
    #[error(transparent)]
    Argument(#[from] conform::RelativeArgument),
    /// `--case-timeout` is shorter than `--timeout`: any case that waits out one expected event
    /// (a silence, a refusal) ends inconclusive on the gate's own limit.
    #[error(
        "--case-timeout {case} is shorter than --timeout {wait}: a case that waits out one event ends \
         inconclusive on the gate's own limit; raise --case-timeout"
    )]
    CaseShorterThanWait {
        /// `--case-timeout`, in words.
        case: String,
        /// `--timeout`, in words.
        wait: String,
    },
}

impl Warning {
    /// Whether it reports what the command line's checks did (a file argument made
    /// absolute), rather than something to fix.
    pub fn is_note(&self) -> bool {
        matches!(self, Warning::Argument(conform::RelativeArgument::File { .. }))
    }
}

fn argument_warnings(command: &[String]) -> impl Iterator<Item = Warning> {
    conform::relative_arguments(command).into_iter().map(Warning::from)
}

/// Turns parsed flags into a validated configuration: every check that can be made before
/// work starts is made here, so a usage error never costs a run.
pub fn config(cli: Cli) -> Result<Config, UsageError> {
    let colour = match cli.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => crate::term::colour_stdout(),
    };
    let manners = Manners { colour, quiet: cli.quiet };
    Ok(Config { task: task(cli.command)?, manners })
}

fn task(command: Command) -> Result<Task, UsageError> {
    Ok(match command {
        Command::Serve(args) => {
            if args.write_timeout.is_zero() {
                return Err(UsageError::WriteTimeoutZero);
            }
            Task::Serve(ServerConfig {
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
        Command::Ping(args) => Task::Ping(ClientConfig {
            rounds: args.rounds,
            log_messages: args.log_messages,
            timeout: args.timeout,
            ..ClientConfig::new(args.socket)
        }),
        Command::Demo(args) => Task::Demo(DemoConfig { rounds: args.rounds, log_messages: args.log_messages }),
        Command::Conform(args) => conform_config(args)?,
        Command::Bench(args) => {
            let subject = if args.command.is_empty() {
                Subject::Reference
            } else {
                Subject::Command(
                    conform::target_from_command(&args.command)
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
            let warnings = argument_warnings(&args.command).collect();
            Task::Bench(Box::new(BenchConfig { options, warnings, format: args.format, svg: args.svg, previous }))
        }
        Command::Completions(args) => Task::Completions(args.shell),
        Command::Man(args) => Task::Man(args.dir),
    })
}

fn conform_config(args: ConformArgs) -> Result<Task, UsageError> {
    let role = match args.role {
        RoleArg::Server => Role::Server,
        RoleArg::Client => Role::Client,
        RoleArg::Export => {
            let dir = args.dir.ok_or(UsageError::Explore(
                "conform export needs a directory, for example: udsping conform export vectors/",
            ))?;
            return Ok(Task::ConformExport { dir, seed: args.seed.unwrap_or(0), cases: args.cases.unwrap_or(200) });
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
        waits: Waits {
            timeout: args.timeout_ms.map_or(args.timeout, Duration::from_millis),
            startup_timeout: args.startup_timeout,
            case_timeout: args.case_timeout,
        },
        strict: args.strict,
        addressing: if args.abstract_address { Addressing::Abstract } else { Addressing::Path },
        explore: args.explore.then(|| ExploreOptions {
            cases: args.cases,
            time: args.explore_time,
            ..ExploreOptions::new(args.seed.unwrap_or_else(conform::random_seed))
        }),
        ..Options::default()
    };
    if let Some(jobs) = args.jobs {
        options.jobs = usize::try_from(jobs).unwrap_or(usize::MAX);
    }
    if args.list {
        return Ok(Task::ConformList { role, options, json: args.format == FormatArg::Json });
    }
    let target = conform::target_from_command(&args.command)
        .map_err(|source| UsageError::Target { command: "conform", source })?;
    let mut warnings: Vec<Warning> = match conform::preflight(role, &target, &options) {
        // Exploring (or replaying) with every fixed case filtered out is a run of its own.
        Err(conform::GateError::NothingSelected { .. }) if args.explore || args.replay.is_some() => Vec::new(),
        result => result.map_err(UsageError::Gate)?.into_iter().map(Warning::from).collect(),
    };
    warnings.extend(argument_warnings(&args.command));
    if options.waits.case_timeout < options.waits.timeout {
        warnings.push(Warning::CaseShorterThanWait {
            case: conform::human_duration(options.waits.case_timeout),
            wait: conform::human_duration(options.waits.timeout),
        });
    }
    if let Some(path) = &args.output {
        check_writable("--output", path)?;
    }
    let replay = match args.replay {
        Some(path) => {
            Some(conform::load_scripts(&path).map_err(|source| UsageError::Replay { path: path.clone(), source })?)
        }
        None => None,
    };
    Ok(Task::Conform(Box::new(ConformConfig {
        role,
        target,
        options,
        warnings,
        replay,
        format: args.format,
        output: args.output,
        verbose: args.verbose,
    })))
}

/// Whether a file could be written at `path` without writing it: an existing file must be
/// writable and not a directory, a new one needs a writable directory to go in.
pub(crate) fn check_writable(option: &'static str, path: &Path) -> Result<(), UsageError> {
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
