//! `udsping bench`: the reference server (or another implementation's) against the raw-socket
//! limit, measured side by side in one run on one machine, so every figure is a ratio.
//!
//! - [`subject`]: what is measured: the reference and the raw baseline run in this process;
//!   the seed's Python server and a `-- CMD` run as child processes.
//! - `figure`: how one figure is taken: the trials in ABBA order, which server instance each
//!   runs against, the blame of a failed trial, and the figures made of the samples.
//! - [`measure`]: one trial of a scenario: the client loops, the CPU, latency and memory
//!   readings, the watchdog that bounds every trial, and the machine's load.
//! - `options` and `error`: what a run is asked to measure, and why it could not.
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

mod error;
mod figure;
pub mod measure;
mod options;
pub mod report;
pub mod subject;
mod svg;

use std::path::Path;

use figure::{idle_crowd, interleaved, Measured};
use measure::MachineState;
use report::{Conditions, Figures, Report, ScenarioResult, Spread, Status};
use subject::Subject;

use crate::process::FirstTries;

pub use error::BenchError;
use error::ScenarioError;
pub use options::{Options, Scenario, Thresholds};
pub use svg::svg;

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
    use std::time::Duration;

    use super::*;
    use figure::{pair_ratios, side};
    use measure::Sample;
    use report::ConnectFigures;

    #[test]
    fn quartiles_interpolate() {
        let s = Spread::of(vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!((s.ratio, s.ratio_low, s.ratio_high, s.ratio_min, s.ratio_max), (3.0, 2.0, 4.0, 1.0, 5.0));
        assert_eq!(s.pair_ratios, vec![4.0, 1.0, 3.0, 2.0, 5.0]);
        assert_eq!(Spread::of(vec![1.0, 2.0]).ratio, 1.5);
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
}
