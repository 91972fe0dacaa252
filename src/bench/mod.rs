//! `udsping bench`: the reference server (or another implementation's) against the raw-socket
//! limit, measured side by side in one run on one machine, so every figure is a ratio.
//!
//! - [`subject`]: what is measured: the reference and the raw baseline run in this process;
//!   the seed's Python server and a `-- CMD` run as child processes.
//! - `figure`: how one figure is taken: the trials in ABBA order, which server instance each
//!   runs against, the blame of a failed trial, and the figures made of the samples.
//! - [`measure`]: one trial of a scenario: the client loops, the CPU, latency and memory
//!   readings, the watchdog that bounds every trial, and the machine's load.
//! - [`report`]: the report's types (JSON, with a generated schema), the human table, and the
//!   judgements across repetitions and against a previous report.
//!
//! How a figure is taken: the server under test and the baseline are measured alternately in
//! short trials (`pairs` of them each, in ABBA order: subject, baseline, baseline, subject,
//! ...), so that both see the same drift of the machine. Servers in this process (the
//! reference, the baseline) are started afresh for each trial, so that what is fixed per
//! instance varies within the figure rather than between runs; a server in a child process is
//! started once per figure, and the baseline with it. The figure is the median of the per-pair ratios, reported with their interquartile
//! range. A figure whose range is wide, or that was measured while other processes or the
//! hypervisor took CPU time, is marked `unstable` with the reason.
//!
//! The benchmark is a tool, not a test: `cargo test` runs every scenario for a fraction of a
//! second so that it keeps working, and asserts nothing about speed.

mod figure;
pub mod measure;
pub mod report;
pub mod subject;
mod svg;

use std::path::{Path, PathBuf};
use std::time::Duration;

use figure::{idle_crowd, interleaved, Measured};
use measure::{MachineState, MeasureError};
use report::{Conditions, Figures, Report, ScenarioResult, Spread, Status};
use subject::{StartError, Subject};

use crate::process::FirstTries;

pub use svg::svg;

/// The scenarios of `udsping bench`; their names (`lockstep-pinned`) are clap's and serde's.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// One client, lock-step rounds, client and server pinned to one CPU: the steadiest figure.
    LockstepPinned,
    /// One client, lock-step rounds (the seed's pattern), unpinned: dominated by cross-CPU
    /// wake-ups on a small VM.
    Lockstep,
    /// One client streams pings from one thread and reads pongs on another.
    Pipelined,
    /// 1, 2, 4, 16, 64 and 256 concurrent lock-step clients.
    Clients,
    /// Short sessions (connect, one ping, end, close), from 1 and from 16 clients.
    Connect,
    /// One lock-step client with and without 1,000 and 10,000 idle connections (pinned to one
    /// CPU), and the memory each idle connection costs.
    IdleCrowd,
}

impl Scenario {
    /// Every scenario, in the order they run and report.
    pub const ALL: [Scenario; 6] = [
        Scenario::LockstepPinned,
        Scenario::Lockstep,
        Scenario::Pipelined,
        Scenario::Clients,
        Scenario::Connect,
        Scenario::IdleCrowd,
    ];

    /// Pairs of trials per figure when `--pairs` is not given. Pinned, a trial is steady at
    /// 25 ms, and the 80 pairs that fit in 2 s make the quartiles of the pair ratios steady
    /// too: ten figures in a row on the 2-vCPU VM all had their medians within each other's
    /// interquartile ranges, where at 10 or 40 pairs the range was now and then narrow enough
    /// to miss a neighbour's median. Unpinned, a trial samples where the scheduler put the
    /// threads, which takes 200 ms to average out (at 25 ms the unpinned lock-step pairs
    /// ranged from 0.45 to 1.19).
    pub fn default_pairs(&self) -> usize {
        match self {
            Scenario::LockstepPinned | Scenario::IdleCrowd => 80,
            _ => 10,
        }
    }

    /// The name on the command line and in the reports.
    pub fn name(&self) -> String {
        use clap::ValueEnum as _;
        self.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default()
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// When a figure is marked `unstable`.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Interquartile range of the pair ratios over their median.
    pub spread: f64,
    /// Share of all CPUs used by other processes.
    pub other_load: f64,
    /// Share of CPU time stolen by the hypervisor.
    pub steal: f64,
    /// Change of the first CPU's frequency, where the kernel shows it.
    pub cpu_mhz_change: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { spread: 0.10, other_load: 0.10, steal: 0.02, cpu_mhz_change: 0.05 }
    }
}

/// How to run the benchmark.
#[derive(Clone, Debug)]
pub struct Options {
    /// The scenarios to run, in this order.
    pub scenarios: Vec<Scenario>,
    /// Time each server is measured per scenario and client count, split into `pairs` trials.
    pub duration: Duration,
    /// Trials per server, interleaved with the other server's in ABBA order; `None`: each
    /// scenario's [`Scenario::default_pairs`].
    pub pairs: Option<usize>,
    /// The server measured against the baseline (the reference unless `-- CMD`).
    pub subject: Subject,
    /// Also measure the seed's Python server in `lockstep` and `clients`.
    pub seed_python: bool,
    /// Client counts of the `clients` scenario.
    pub client_counts: Vec<usize>,
    /// Crowd sizes of the `idle-crowd` scenario.
    pub idle_counts: Vec<usize>,
    /// Runs of the whole set of scenarios.
    pub repeat: usize,
    /// Beyond which a figure is marked `unstable`.
    pub thresholds: Thresholds,
    /// How long a server started as a child process may take to listen.
    pub startup_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scenarios: Scenario::ALL.to_vec(),
            duration: Duration::from_secs(2),
            pairs: None,
            subject: Subject::Reference,
            seed_python: false,
            client_counts: vec![1, 2, 4, 16, 64, 256],
            idle_counts: vec![1000, 10_000],
            repeat: 1,
            thresholds: Thresholds::default(),
            startup_timeout: subject::STARTUP_TIMEOUT,
        }
    }
}

impl Options {
    /// Pairs of trials of `scenario`'s figures.
    pub fn pairs(&self, scenario: Scenario) -> usize {
        self.pairs.unwrap_or_else(|| scenario.default_pairs()).max(1)
    }

    /// The length of one trial of `scenario`.
    pub fn trial_length(&self, scenario: Scenario) -> Duration {
        self.duration / u32::try_from(self.pairs(scenario)).unwrap_or(u32::MAX)
    }
}

/// Why the benchmark could not run or report (a failed measurement is not one: it is a
/// `failed` entry in the report).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The report to compare with (`--compare`) could not be read.
    #[error("cannot read the report to compare with, {}: {source}", path.display())]
    ReadPrevious {
        /// The report's path.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The report to compare with is not JSON of the bench report's shape.
    #[error("{} is not a udsping bench JSON report: {source}", path.display())]
    ParsePrevious {
        /// The report's path.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The SVG chart (`--svg`) could not be drawn or written.
    #[error("cannot draw {}: {source}", path.display())]
    Svg {
        /// The chart's path.
        path: PathBuf,
        /// The drawing error.
        #[source]
        source: plotters::drawing::DrawingAreaErrorKind<std::io::Error>,
    },
}

/// Why one scenario could not be measured against one server.
#[derive(Debug, thiserror::Error)]
enum ScenarioError {
    #[error("cannot start {server}: {source}")]
    Start {
        server: String,
        #[source]
        source: StartError,
    },
    #[error("against {server}: {source}")]
    Measure {
        server: String,
        #[source]
        source: MeasureError,
    },
    /// The server's process ended during a trial: that, not what the client then saw, is the cause.
    #[error("against {server}: {death} (the client saw: {source})")]
    Died {
        server: String,
        death: String,
        #[source]
        source: MeasureError,
    },
    /// A server process exited while something it started went on serving (a daemon).
    #[error(
        "against {server}: the server {status} while something it started went on serving: run the server in the foreground (`exec` it from a wrapper)"
    )]
    LeftServing { server: String, status: String },
    /// The bench could not set itself up (not the server's doing).
    #[error("cannot set up the measurement: {0}")]
    Setup(#[source] MeasureError),
    #[error("the measurement thread panicked")]
    Panicked,
}

impl ScenarioError {
    /// The same failure of a start that followed a successful one, so that it cannot pass for
    /// a cold first start.
    fn after_a_start(self) -> ScenarioError {
        match self {
            ScenarioError::Start { server, source: timed_out @ StartError::TimedOut { .. } } => {
                ScenarioError::Start { server, source: StartError::Command(timed_out.to_string()) }
            }
            other => other,
        }
    }

    /// The server under test was still starting, silent, when `--startup-timeout` ran out.
    fn start_timed_out(&self) -> bool {
        matches!(self, ScenarioError::Start { source: StartError::TimedOut { .. }, .. })
    }

    /// Whether the failure is `server`'s own doing, rather than the bench's, the machine's
    /// or the baseline's: what the early stop counts.
    fn blames(&self, server: &str) -> bool {
        match self {
            ScenarioError::Start { server: failed, .. }
            | ScenarioError::Died { server: failed, .. }
            | ScenarioError::LeftServing { server: failed, .. } => failed.starts_with(server),
            ScenarioError::Measure { server: failed, source } => {
                failed.starts_with(server)
                    && !matches!(
                        source,
                        MeasureError::Pin(_)
                            | MeasureError::Descriptors { .. }
                            | MeasureError::Panicked
                            | MeasureError::Histogram(_)
                    )
            }
            ScenarioError::Setup(_) | ScenarioError::Panicked => false,
        }
    }
}

/// Reads a previous JSON report for `--compare`.
pub fn read_report(path: &Path) -> Result<Report, BenchError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| BenchError::ReadPrevious { path: path.to_owned(), source })?;
    serde_json::from_str(&text).map_err(|source| BenchError::ParsePrevious { path: path.to_owned(), source })
}

/// Figures of one server that must fail, with none measured, before the run stops measuring
/// it: a server that stalls or dies in its first figures would make every other figure wait
/// out its deadline for the same reason (as the gate stops starting a target that failed to
/// start in its first cases).
const FAILED_FIGURES_BEFORE_STOPPING: usize = 2;

/// A server's figures so far, as [`FirstTries`]: once it failed its first figures by its own
/// doing, with none measured, its other figures are failed with that cause.
trait FigureTally {
    fn cause(&self, server: &str) -> Option<String>;
    fn record(&mut self, result: &ScenarioResult, servers_fault: bool);
}

impl FigureTally for FirstTries {
    fn cause(&self, server: &str) -> Option<String> {
        let (failed, first) = self.given_up(FAILED_FIGURES_BEFORE_STOPPING)?;
        Some(format!("not run: {server} failed its first {failed} figures ({first})"))
    }

    /// Counts `result`; `servers_fault`: it failed by the server's own doing (not the
    /// bench's, the machine's or the baseline's).
    fn record(&mut self, result: &ScenarioResult, servers_fault: bool) {
        if result.figures.is_some() {
            self.succeeded();
        } else if servers_fault {
            self.failed(result.reasons.first().cloned().unwrap_or_default());
        }
    }
}

/// Runs every requested scenario `repeat` times; `progress` gets a line before each
/// measurement. Failures become `failed` entries; the run goes
/// on, except for a server that failed its first figures without one measured.
pub fn run(options: &Options, mut progress: impl FnMut(&str)) -> Report {
    let mut results = Vec::new();
    let mut subjects = vec![options.subject.clone()];
    if options.seed_python {
        subjects.push(Subject::SeedPython);
    }
    let mut stops: Vec<FirstTries> = subjects.iter().map(|_| FirstTries::default()).collect();
    // Figures whose server did not start in time: (index in `results`, index in `subjects`).
    let mut again: Vec<(usize, usize)> = Vec::new();
    for repeat in 0..options.repeat.max(1) {
        for &scenario in &options.scenarios {
            let sizes: Vec<(usize, usize)> = match scenario {
                Scenario::Clients => options.client_counts.iter().map(|&c| (c, 0)).collect(),
                Scenario::Connect => vec![(1, 0), (16, 0)],
                Scenario::IdleCrowd => options.idle_counts.iter().map(|&n| (1, n)).collect(),
                _ => vec![(1, 0)],
            };
            let with_python = matches!(scenario, Scenario::Lockstep | Scenario::Clients);
            for (clients, idle) in sizes {
                for (which, (subject, stop)) in subjects.iter().zip(&mut stops).enumerate() {
                    if matches!(subject, Subject::SeedPython) && !with_python {
                        continue;
                    }
                    let entry = entry(scenario, subject, clients, idle, repeat, options);
                    if let Some(cause) = stop.cause(&subject.name()) {
                        results.push(ScenarioResult { status: Status::Failed, reasons: vec![cause], ..entry });
                        continue;
                    }
                    let crowd = if idle > 0 { format!(", {idle} idle") } else { String::new() };
                    progress(&format!("{scenario} {} vs baseline, {clients} client(s){crowd}", subject.name()));
                    // Only a figure taken before this server was first measured may have met its
                    // cold first start: a silent hang after that is the server's own.
                    let measured_before = stop.any_succeeded();
                    let figure = measure_figure(entry, subject, options);
                    stop.record(&figure.result, figure.servers_fault);
                    if figure.start_timed_out && !measured_before {
                        again.push((results.len(), which));
                    }
                    results.push(figure.result);
                }
            }
        }
    }
    // As in the gate: a start with no sign of life within --startup-timeout, before the server
    // was first measured, while it was measured for other figures, says more about the machine
    // (a cold first start) than the server, so that figure is taken once more, after the others.
    for (index, which) in again.into_iter().filter(|&(_, which)| stops[which].any_succeeded()) {
        let first = &results[index];
        let first_run = report::FirstRun { status: first.status, reasons: first.reasons.clone() };
        let entry =
            entry(first.scenario, &subjects[which], first.clients, first.idle_connections, first.repeat, options);
        progress(&format!(
            "{} {} vs baseline, {} client(s), again: its first start ran out of --startup-timeout",
            entry.scenario, entry.server, entry.clients
        ));
        let mut figure = measure_figure(entry, &subjects[which], options);
        figure.result.first_run = Some(first_run);
        results[index] = figure.result;
    }
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let t = options.thresholds;
    Report {
        tool: "udsping bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        settings: report::Settings {
            duration_s: options.duration.as_secs_f64(),
            pairs: options.pairs,
            repeat: options.repeat.max(1),
            unstable_spread: t.spread,
            unstable_other_load: t.other_load,
            unstable_steal: t.steal,
            unstable_cpu_mhz_change: t.cpu_mhz_change,
        },
        machine: report::Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            nofile_soft: limit.current,
            nofile_hard: limit.maximum,
        },
        consistency: report::consistency(&results),
        comparison: Vec::new(),
        results,
    }
}

/// The report entry of one figure, before it is measured.
fn entry(
    scenario: Scenario,
    subject: &Subject,
    clients: usize,
    idle: usize,
    repeat: usize,
    options: &Options,
) -> ScenarioResult {
    ScenarioResult {
        scenario,
        server: subject.name(),
        clients,
        idle_connections: idle,
        repeat,
        trial_s: options.trial_length(scenario).as_secs_f64(),
        status: Status::Ok,
        reasons: Vec::new(),
        startup_s: None,
        conditions: None,
        figures: None,
        first_run: None,
    }
}

/// One figure as taken, with what its failure says about the server.
struct Figure {
    result: ScenarioResult,
    /// It failed by the server's own doing (for the early stop).
    servers_fault: bool,
    /// It failed because the server was still starting when `--startup-timeout` ran out.
    start_timed_out: bool,
}

/// One figure: a scenario at one size against one server, with its status.
fn measure_figure(mut result: ScenarioResult, subject: &Subject, options: &Options) -> Figure {
    let (scenario, clients, idle) = (result.scenario, result.clients, result.idle_connections);
    let measured = if matches!(scenario, Scenario::LockstepPinned | Scenario::IdleCrowd) {
        // The servers' threads (or processes) inherit the CPU mask of the thread that starts
        // them, so the whole figure is taken on a pinned thread of its own. The idle crowd is
        // pinned too: unpinned, one client's rounds vary more with cross-CPU wake-ups than
        // with the crowd.
        let (subject, options) = (subject.clone(), options.clone());
        std::thread::spawn(move || -> Result<_, ScenarioError> {
            measure::pin_to_one_cpu().map_err(ScenarioError::Setup)?;
            match scenario {
                Scenario::IdleCrowd => idle_crowd(&subject, idle, &options),
                _ => interleaved(scenario, &subject, clients, &options),
            }
        })
        .join()
        .unwrap_or(Err(ScenarioError::Panicked))
    } else {
        interleaved(scenario, subject, clients, options)
    };
    match measured {
        Ok(Measured { figures, before, after, startup }) => {
            let conditions = conditions(&before, &after);
            (result.status, result.reasons) = judge(figures.spread(), &conditions, &options.thresholds);
            if let Some(reason) = empty_trial(&figures, result.trial_s) {
                result.status = Status::Unstable;
                result.reasons.push(reason);
            }
            result.startup_s = Some(startup.as_secs_f64());
            result.conditions = Some(conditions);
            result.figures = Some(figures);
        }
        Err(e) => {
            // The seed's Python server serves one client at a time: a reference point that
            // cannot take a load is noted, not a failure of the run.
            result.status = if matches!(subject, Subject::SeedPython) { Status::NotMeasured } else { Status::Failed };
            result.reasons.push(e.to_string());
            let (servers_fault, start_timed_out) = (e.blames(&subject.name()), e.start_timed_out());
            return Figure { result, servers_fault, start_timed_out };
        }
    }
    Figure { result, servers_fault: false, start_timed_out: false }
}

fn conditions(before: &MachineState, after: &MachineState) -> Conditions {
    let (other_load, steal) = before.competition(after);
    Conditions {
        elapsed_s: after.elapsed_since(before).as_secs_f64(),
        load_1m_before: before.load_1m,
        load_1m_after: after.load_1m,
        other_load,
        steal,
        cpu_mhz_before: before.cpu_mhz,
        cpu_mhz_after: after.cpu_mhz,
    }
}

/// `ok` or `unstable`, with the reasons.
fn judge(spread: &Spread, c: &Conditions, t: &Thresholds) -> (Status, Vec<String>) {
    let mut reasons = Vec::new();
    if spread.relative_width() > t.spread {
        reasons.push(format!(
            "unstable: the pair ratios' interquartile range is {:.0}% of the median (threshold {:.0}%)",
            spread.relative_width() * 100.0,
            t.spread * 100.0
        ));
    }
    if let Some(other) = c.other_load.filter(|&o| o > t.other_load) {
        reasons.push(format!(
            "unstable: other processes used {:.0}% of the CPUs meanwhile (threshold {:.0}%; load {} -> {})",
            other * 100.0,
            t.other_load * 100.0,
            c.load_1m_before.map_or("?".into(), |l| format!("{l:.2}")),
            c.load_1m_after.map_or("?".into(), |l| format!("{l:.2}")),
        ));
    }
    if let Some(steal) = c.steal.filter(|&s| s > t.steal) {
        reasons.push(format!(
            "unstable: the hypervisor stole {:.1}% of CPU time (threshold {:.0}%)",
            steal * 100.0,
            t.steal * 100.0
        ));
    }
    if let (Some(a), Some(b)) = (c.cpu_mhz_before, c.cpu_mhz_after) {
        if (b - a).abs() / a.max(1.0) > t.cpu_mhz_change {
            reasons.push(format!("unstable: the CPU frequency changed from {a:.0} to {b:.0} MHz"));
        }
    }
    (if reasons.is_empty() { Status::Ok } else { Status::Unstable }, reasons)
}

/// A figure with a trial that completed nothing (its ratio 0, or a baseline's division by
/// almost nothing) is not to be trusted: on a loaded machine a trial of a few milliseconds may
/// pass before its client thread runs at all.
fn empty_trial(figures: &Figures, trial_s: f64) -> Option<String> {
    figures.sides().iter().any(|side| side.ops_per_sec_min <= 0.0).then(|| {
        format!(
            "unstable: a trial of {:.0} ms completed nothing (too short for this machine's load: raise --duration)",
            trial_s * 1000.0
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use figure::{pair_ratios, side};
    use measure::Sample;
    use report::ConnectFigures;

    // The names on the command line (clap) and in the JSON (serde) are one vocabulary.
    #[test]
    fn scenario_names_agree() {
        for scenario in Scenario::ALL {
            assert_eq!(serde_json::to_value(scenario).unwrap(), serde_json::json!(scenario.name()));
        }
    }

    #[test]
    fn quartiles_interpolate() {
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!((s.ratio, s.ratio_low, s.ratio_high, s.ratio_min, s.ratio_max), (3.0, 2.0, 4.0, 1.0, 5.0));
        assert_eq!(s.pair_ratios, vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!(Spread::of(vec![1.0, 2.0]).ratio, 1.5);
    }

    // Only the server's own failures count towards giving up on it.
    #[test]
    fn a_failure_of_the_bench_or_the_baseline_does_not_blame_the_server() {
        let stall = MeasureError::Deadline { limit: Duration::from_secs(2) };
        assert!(ScenarioError::Measure { server: "drip".into(), source: stall }.blames("drip"));
        let crowd = ScenarioError::Measure { server: "drip (crowded)".into(), source: MeasureError::Panicked };
        assert!(!crowd.blames("drip"));
        let limit = MeasureError::Descriptors { count: 10, needed: 30, limit: 20 };
        assert!(!ScenarioError::Measure { server: "drip".into(), source: limit }.blames("drip"));
        let baseline = MeasureError::Deadline { limit: Duration::from_secs(2) };
        assert!(!ScenarioError::Measure { server: "baseline".into(), source: baseline }.blames("drip"));
        assert!(!ScenarioError::Setup(MeasureError::Panicked).blames("drip"));
        assert!(
            ScenarioError::LeftServing { server: "drip".into(), status: "exited with status 0".into() }.blames("drip")
        );
    }

    // A server that stalls in its first two figures is not measured again; one that has
    // measured once keeps being measured, whatever fails later.
    #[test]
    fn a_server_is_given_up_only_after_failing_its_first_figures() {
        let blank = entry(Scenario::Lockstep, &Subject::Reference, 1, 0, 0, &Options::default());
        let failed = ScenarioResult { status: Status::Failed, reasons: vec!["it stalled".into()], ..blank.clone() };
        let not_measured =
            ScenarioResult { status: Status::NotMeasured, reasons: vec!["too many".into()], ..blank.clone() };
        let measured = ScenarioResult {
            figures: Some(Figures::Connect(ConnectFigures {
                spread: Spread::of(vec![1.0]),
                measured: side(&[]),
                baseline: side(&[]),
            })),
            ..blank
        };

        let mut stop = FirstTries::default();
        stop.record(&failed, true);
        stop.record(&not_measured, false);
        stop.record(&failed, false); // the bench's or the baseline's failure
        assert_eq!(stop.cause("drip"), None);
        stop.record(&failed, true);
        assert_eq!(stop.cause("drip").unwrap(), "not run: drip failed its first 2 figures (it stalled)");

        let mut stop = FirstTries::default();
        stop.record(&measured, false);
        for _ in 0..3 {
            stop.record(&failed, true);
        }
        assert_eq!(stop.cause("flaky"), None);
    }

    #[test]
    fn a_trial_that_completed_nothing_makes_the_figure_unstable() {
        let sample = |ops| Sample {
            ops,
            elapsed: Duration::from_millis(25),
            latency: None,
            cpu: Duration::ZERO,
            cpu_ops: ops,
            client_rounds: None,
        };
        let figures = |subject: &[Sample]| {
            let baseline = [sample(100), sample(100)];
            Figures::Connect(ConnectFigures {
                spread: pair_ratios(subject, &baseline),
                measured: side(subject),
                baseline: side(&baseline),
            })
        };
        assert_eq!(empty_trial(&figures(&[sample(90), sample(95)]), 0.025), None);
        let reason = empty_trial(&figures(&[sample(90), sample(0)]), 0.025).unwrap();
        assert!(reason.contains("a trial of 25 ms completed nothing"), "{reason}");
    }

    #[test]
    fn pinned_figures_take_more_pairs_unless_told() {
        let mut options = Options { duration: Duration::from_secs(2), ..Options::default() };
        assert_eq!(
            (options.pairs(Scenario::LockstepPinned), options.trial_length(Scenario::LockstepPinned)),
            (80, Duration::from_millis(25))
        );
        assert_eq!(
            (options.pairs(Scenario::Lockstep), options.trial_length(Scenario::Lockstep)),
            (10, Duration::from_millis(200))
        );
        options.pairs = Some(4);
        assert_eq!(options.trial_length(Scenario::LockstepPinned), Duration::from_millis(500));
    }

    #[test]
    fn a_wide_spread_or_a_busy_machine_is_unstable() {
        let t = Thresholds::default();
        let narrow = Spread::of(vec![1.0, 1.01, 0.99, 1.0]);
        let quiet = Conditions { other_load: Some(0.01), steal: Some(0.0), ..Conditions::default() };
        assert_eq!(judge(&narrow, &quiet, &t).0, Status::Ok);
        let wide = Spread::of(vec![0.5, 1.0, 1.5, 1.0]);
        assert_eq!(judge(&wide, &quiet, &t).0, Status::Unstable);
        let busy = Conditions { other_load: Some(0.5), ..quiet.clone() };
        let (status, reasons) = judge(&narrow, &busy, &t);
        assert_eq!(status, Status::Unstable);
        assert!(reasons[0].contains("other processes used 50%"), "{reasons:?}");
        let stolen = Conditions { steal: Some(0.1), ..quiet };
        assert!(judge(&narrow, &stolen, &t).1[0].contains("stole"));
    }

    // A silent hang of a second instance in one figure (the idle crowd's) is not a cold start.
    #[test]
    fn a_start_after_a_start_is_not_taken_again() {
        let timed_out = || ScenarioError::Start {
            server: "srv".into(),
            source: StartError::TimedOut { path: "/tmp/x/udsocket".into(), timeout: Duration::from_secs(1) },
        };
        assert!(timed_out().start_timed_out());
        let after = timed_out().after_a_start();
        assert!(!after.start_timed_out());
        assert!(after.blames("srv"));
        assert!(after.to_string().contains("within 1.0 s (--startup-timeout)"), "{after}");
    }
}
