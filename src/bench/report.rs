//! The bench report: the types the JSON report is made of (serde), its JSON Schema (generated
//! from these types by schemars and committed as `schemas/bench-report.schema.json`), the
//! human table, and the judgements made on finished figures: consistency across `--repeat`s
//! and the comparison with a previous report (`--compare`).

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::options::Scenario;

/// The whole report of one `udsping bench` run.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Report {
    /// Always "udsping bench".
    pub tool: String,
    /// The udsping version that wrote the report.
    pub version: String,
    /// How the figures were taken.
    pub settings: Settings,
    /// The machine the figures were taken on.
    pub machine: Machine,
    /// One entry per scenario, server, client count and repetition, in the order measured.
    pub results: Vec<ScenarioResult>,
    /// With `--repeat` above 1: whether each figure's repetitions agree.
    #[serde(default)]
    pub consistency: Vec<Consistency>,
    /// With `--compare`: each figure against the same figure of the previous report.
    #[serde(default)]
    pub comparison: Vec<Comparison>,
}

/// How the figures were taken, and the thresholds that mark one `unstable`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Settings {
    /// Time each server is measured in each scenario (split into `pairs` trials).
    pub duration_s: f64,
    /// Trials per server per figure, run in ABBA order (subject, baseline, baseline, subject,
    /// ...), as given by `--pairs`; `null`: each scenario's default (80 for `lockstep-pinned`
    /// and `idle-crowd`, 10 for the others). Each figure's own count is its `pairs`.
    pub pairs: Option<usize>,
    /// Runs of the whole set of scenarios (`--repeat`).
    pub repeat: usize,
    /// A figure is unstable when the interquartile range of its pair ratios exceeds this share
    /// of the median.
    pub unstable_spread: f64,
    /// ... or other processes used more than this share of all CPUs while it was measured.
    pub unstable_other_load: f64,
    /// ... or the hypervisor stole more than this share of CPU time.
    pub unstable_steal: f64,
    /// ... or the first CPU's frequency changed by more than this share.
    pub unstable_cpu_mhz_change: f64,
}

/// The machine the figures belong to.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Machine {
    /// CPUs available to the bench (0 when unknown).
    pub cpus: usize,
    /// RLIMIT_NOFILE at the end of the run (the idle crowd raises the soft limit).
    pub nofile_soft: Option<u64>,
    /// Hard RLIMIT_NOFILE at the end of the run (`None`: unlimited).
    pub nofile_hard: Option<u64>,
}

/// How one measurement ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Measured, with a spread within the threshold and a quiet machine.
    Ok,
    /// Measured, but the figures are not to be trusted: `reasons` says why.
    Unstable,
    /// The server under test or the baseline failed or missed a deadline: `reasons` says how.
    Failed,
    /// A reference point (the seed's Python server) that cannot take this load.
    NotMeasured,
}

/// One scenario at one client count for one server.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioResult {
    /// The scenario measured.
    pub scenario: Scenario,
    /// The server measured: `reference`, `baseline`, `seed-python` or the program's file name.
    pub server: String,
    /// Clients doing rounds or sessions at once.
    pub clients: usize,
    /// Idle connections held open meanwhile (`idle-crowd`; 0 elsewhere).
    pub idle_connections: usize,
    /// Which `--repeat` this is, from 0.
    pub repeat: usize,
    /// Length of one trial, in seconds: the duration over the figure's pairs.
    #[serde(default)]
    pub trial_s: f64,
    /// Whether the figures were measured, and whether they are steady.
    pub status: Status,
    /// Why the status is not `ok`.
    pub reasons: Vec<String>,
    /// Seconds the server under test took from being started to listening (a connection to
    /// its socket succeeding), for its first instance in the figure; `None` when it did not
    /// start.
    #[serde(default)]
    pub startup_s: Option<f64>,
    /// The machine's state over the measurement; `None` when it failed or was not made.
    pub conditions: Option<Conditions>,
    /// `None` when the measurement failed.
    pub figures: Option<Figures>,
    /// When the server under test showed no sign of life within `--startup-timeout` for this
    /// figure, before it was first measured, and was measured for another figure, this figure
    /// was taken once more after the others and this is the second: what the first saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_run: Option<FirstRun>,
}

/// A figure's first run, when it was taken twice.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct FirstRun {
    /// How it ended: `failed` (`not-measured` for the seed's Python server).
    pub status: Status,
    /// Why.
    pub reasons: Vec<String>,
}

/// What else the machine was doing while a scenario was measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
pub struct Conditions {
    /// Wall-clock seconds between the readings before and after (for `idle-crowd`: around the server's own trials).
    pub elapsed_s: f64,
    /// The 1-minute load average (`/proc/loadavg`) before the scenario, where readable.
    pub load_1m_before: Option<f64>,
    /// The 1-minute load average after the scenario, where readable.
    pub load_1m_after: Option<f64>,
    /// Share of all CPUs' time used by other processes (`/proc/stat` busy time less this
    /// process's and the server's).
    pub other_load: Option<f64>,
    /// Share of CPU time the hypervisor stole (`/proc/stat` steal).
    pub steal: Option<f64>,
    /// The first CPU's frequency in MHz before the scenario, where the kernel shows it.
    pub cpu_mhz_before: Option<f64>,
    /// The first CPU's frequency in MHz after the scenario, where the kernel shows it.
    pub cpu_mhz_after: Option<f64>,
}

/// The per-scenario figures.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Figures {
    /// `lockstep`, `lockstep-pinned` and `clients`.
    Rounds(RoundsFigures),
    /// `pipelined`.
    Pipelined(PipelinedFigures),
    /// `connect`.
    Connect(ConnectFigures),
    /// `idle-crowd`.
    IdleCrowd(Box<IdleCrowdFigures>),
}

impl Figures {
    /// The figure's headline ratio with its spread (for `idle-crowd`: the server under
    /// test's rounds per second with the crowd over without).
    pub fn spread(&self) -> &Spread {
        match self {
            Figures::Rounds(f) => &f.spread,
            Figures::Pipelined(f) => &f.spread,
            Figures::Connect(f) => &f.spread,
            Figures::IdleCrowd(f) => &f.measured.crowded_over_quiet,
        }
    }

    /// Every server's side of the figure (for `idle-crowd`: the quiet and crowded instances).
    pub fn sides(&self) -> Vec<&Side> {
        match self {
            Figures::Rounds(f) => vec![&f.measured, &f.baseline],
            Figures::Pipelined(f) => vec![&f.measured, &f.baseline],
            Figures::Connect(f) => vec![&f.measured, &f.baseline],
            Figures::IdleCrowd(f) => {
                vec![&f.measured.quiet, &f.measured.crowded, &f.baseline.quiet, &f.baseline.crowded]
            }
        }
    }
}

/// A ratio measured over interleaved pairs of trials: the median of the per-pair ratios and
/// their spread.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Spread {
    /// Median of the per-pair ratios.
    pub ratio: f64,
    /// First quartile of the per-pair ratios.
    pub ratio_low: f64,
    /// Third quartile of the per-pair ratios.
    pub ratio_high: f64,
    /// Smallest per-pair ratio.
    pub ratio_min: f64,
    /// Largest per-pair ratio.
    pub ratio_max: f64,
    /// Number of pairs of trials.
    pub pairs: usize,
    /// Each pair's ratio, in the order measured.
    pub pair_ratios: Vec<f64>,
}

impl Spread {
    /// From per-pair ratios (at least one).
    pub fn of(mut ratios: Vec<f64>) -> Spread {
        let measured = ratios.clone();
        ratios.sort_by(f64::total_cmp);
        let q = |p: f64| quantile(&ratios, p);
        Spread {
            ratio: q(0.5),
            ratio_low: q(0.25),
            ratio_high: q(0.75),
            ratio_min: ratios.first().copied().unwrap_or(f64::NAN),
            ratio_max: ratios.last().copied().unwrap_or(f64::NAN),
            pairs: ratios.len(),
            pair_ratios: measured,
        }
    }

    /// The interquartile range as a share of the median.
    pub fn relative_width(&self) -> f64 {
        (self.ratio_high - self.ratio_low) / self.ratio.abs().max(1e-9)
    }

    fn contains(&self, value: f64) -> bool {
        (self.ratio_low..=self.ratio_high).contains(&value)
    }
}

/// The value at quantile `p` of sorted values, interpolated linearly between neighbours.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => {
            let position = p * (n - 1) as f64;
            let (below, above) = (position.floor() as usize, position.ceil() as usize);
            sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
        }
    }
}

/// One server's throughput and latency over all its trials in a scenario.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Side {
    /// Rounds, pongs or sessions over all trials.
    pub ops: u64,
    /// Median over trials of each trial's rate; min and max beside it.
    pub ops_per_sec: f64,
    /// Slowest trial's rate, in operations per second.
    pub ops_per_sec_min: f64,
    /// Fastest trial's rate, in operations per second.
    pub ops_per_sec_max: f64,
    /// Latency percentiles over all trials, where the scenario has rounds.
    pub p50_us: Option<f64>,
    /// 99th-percentile latency in microseconds, where the scenario has rounds.
    pub p99_us: Option<f64>,
    /// 99.9th-percentile latency in microseconds, where the scenario has rounds.
    pub p999_us: Option<f64>,
    /// CPU seconds of client and server together per million operations.
    pub cpu_s_per_million_ops: f64,
}

/// `lockstep`, `lockstep-pinned`, `clients`: lock-step rounds.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct RoundsFigures {
    /// The server's rounds per second over the baseline's, pair by pair.
    #[serde(flatten)]
    pub spread: Spread,
    /// The server under test.
    pub measured: Side,
    /// The baseline, measured in the same pairs.
    pub baseline: Side,
    /// With several clients: the busiest client's rounds over the least busy one's (median
    /// over trials), a measure of starvation.
    pub client_rounds_max_over_min: Option<f64>,
    /// `client_rounds_max_over_min` for the baseline.
    pub baseline_client_rounds_max_over_min: Option<f64>,
}

/// `pipelined`: one client streaming pings while it reads pongs.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct PipelinedFigures {
    /// The server's pongs per second over the baseline's, pair by pair.
    #[serde(flatten)]
    pub spread: Spread,
    /// The server under test.
    pub measured: Side,
    /// The baseline, measured in the same pairs.
    pub baseline: Side,
    /// The server's pongs in MB per second (each way: pings in, pongs out), median over trials.
    pub mb_per_sec_each_way: f64,
    /// `mb_per_sec_each_way` for the baseline.
    pub baseline_mb_per_sec_each_way: f64,
}

/// `connect`: short sessions back to back.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct ConnectFigures {
    /// The server's sessions per second over the baseline's, pair by pair.
    #[serde(flatten)]
    pub spread: Spread,
    /// The server under test.
    pub measured: Side,
    /// The baseline, measured in the same pairs.
    pub baseline: Side,
}

/// `idle-crowd`: one lock-step client with and without a crowd of idle connections, for the
/// server under test and for the baseline.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct IdleCrowdFigures {
    /// Idle connections held open during the crowded trials.
    pub idle_connections: usize,
    /// The server under test.
    pub measured: CrowdSide,
    /// The baseline.
    pub baseline: CrowdSide,
}

/// One server's figures in `idle-crowd`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct CrowdSide {
    /// The client against an instance with no other connection.
    pub quiet: Side,
    /// The client against an instance holding the idle connections.
    pub crowded: Side,
    /// Rounds per second crowded over quiet, per interleaved pair.
    pub crowded_over_quiet: Spread,
    /// The crowded instance's process before and after the crowd connected (for a server in
    /// the bench process: the bench process).
    pub rss_bytes_before: u64,
    /// Resident set size in bytes after the crowd connected.
    pub rss_bytes_after: u64,
    /// Resident memory each idle connection added, in bytes.
    pub rss_bytes_per_idle: f64,
    /// Virtual memory each idle connection added, in bytes.
    pub vsz_bytes_per_idle: f64,
    /// Threads each idle connection added.
    pub threads_per_idle: f64,
}

/// Whether a figure's repetitions agree: each median lies within every other repetition's
/// interquartile range.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Consistency {
    /// The figure's scenario.
    pub scenario: Scenario,
    /// The figure's server.
    pub server: String,
    /// The figure's client count.
    pub clients: usize,
    /// The figure's idle connections (`idle-crowd`; 0 elsewhere).
    pub idle_connections: usize,
    /// Each repetition's median ratio, in repetition order.
    pub ratios: Vec<f64>,
    /// Each repetition's first quartile, in repetition order.
    pub ratio_lows: Vec<f64>,
    /// Each repetition's third quartile, in repetition order.
    pub ratio_highs: Vec<f64>,
    /// Every repetition's median lies within every repetition's interquartile range.
    pub consistent: bool,
}

/// What `--compare` concluded about one figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// The two interquartile ranges overlap.
    Same,
    /// Now above the previous range, and the ranges are disjoint.
    Higher,
    /// Now below the previous range, and the ranges are disjoint.
    Lower,
}

/// One figure against the previous report's.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// The figure's scenario.
    pub scenario: Scenario,
    /// The figure's server.
    pub server: String,
    /// The figure's client count.
    pub clients: usize,
    /// The figure's idle connections (`idle-crowd`; 0 elsewhere).
    pub idle_connections: usize,
    /// The figure in the previous report.
    pub previous: Interval,
    /// The figure now (its first repetition).
    pub now: Interval,
    /// How the two ranges compare.
    pub verdict: Verdict,
}

/// A ratio and its interquartile range.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Interval {
    /// Median of the per-pair ratios.
    pub ratio: f64,
    /// First quartile of the per-pair ratios.
    pub ratio_low: f64,
    /// Third quartile of the per-pair ratios.
    pub ratio_high: f64,
}

impl From<&Spread> for Interval {
    fn from(s: &Spread) -> Self {
        Interval { ratio: s.ratio, ratio_low: s.ratio_low, ratio_high: s.ratio_high }
    }
}

type Key<'a> = (Scenario, &'a str, usize, usize);

fn key(r: &ScenarioResult) -> Key<'_> {
    (r.scenario, r.server.as_str(), r.clients, r.idle_connections)
}

/// Groups the repetitions of each figure and says whether they agree.
pub fn consistency(results: &[ScenarioResult]) -> Vec<Consistency> {
    let mut keys: Vec<Key> = Vec::new();
    for r in results.iter().filter(|r| r.figures.is_some()) {
        if !keys.contains(&key(r)) {
            keys.push(key(r));
        }
    }
    keys.into_iter()
        .filter_map(|k| {
            let spreads: Vec<&Spread> = results
                .iter()
                .filter(|r| key(r) == k)
                .filter_map(|r| r.figures.as_ref().map(Figures::spread))
                .collect();
            (spreads.len() > 1).then(|| Consistency {
                scenario: k.0,
                server: k.1.to_owned(),
                clients: k.2,
                idle_connections: k.3,
                ratios: spreads.iter().map(|s| s.ratio).collect(),
                ratio_lows: spreads.iter().map(|s| s.ratio_low).collect(),
                ratio_highs: spreads.iter().map(|s| s.ratio_high).collect(),
                consistent: spreads.iter().all(|a| spreads.iter().all(|b| b.contains(a.ratio))),
            })
        })
        .collect()
}

/// Each figure of `now` (its first repetition) against the same figure of `previous`.
pub fn compare(now: &[ScenarioResult], previous: &Report) -> Vec<Comparison> {
    now.iter()
        .filter(|r| r.repeat == 0)
        .filter_map(|r| {
            let spread = r.figures.as_ref()?.spread();
            let before = previous.results.iter().find(|p| key(p) == key(r))?.figures.as_ref()?.spread();
            let verdict = if spread.ratio_low > before.ratio_high {
                Verdict::Higher
            } else if spread.ratio_high < before.ratio_low {
                Verdict::Lower
            } else {
                Verdict::Same
            };
            Some(Comparison {
                scenario: r.scenario,
                server: r.server.clone(),
                clients: r.clients,
                idle_connections: r.idle_connections,
                previous: before.into(),
                now: spread.into(),
                verdict,
            })
        })
        .collect()
}

/// The JSON Schema of [`Report`], as committed in `schemas/bench-report.schema.json`.
pub fn schema() -> String {
    serde_json::to_string_pretty(&schemars::schema_for!(Report)).expect("a schema serializes") + "\n"
}

/// The JSON report.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("the report serializes") + "\n"
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

fn range(s: &Spread) -> String {
    format!("{:.2} [{:.2}-{:.2}]", s.ratio, s.ratio_low, s.ratio_high)
}

/// The human report: one line per figure, with its spread and status, then the reasons,
/// consistency and comparison.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<19} {:<12} {:>7} {:>18} {:>5} {:>11} {:>11} {:>7} {:>8} {:>6} {:>9}  status",
        "scenario",
        "server",
        "clients",
        "ratio [IQR]",
        "pairs",
        "ops/s",
        "baseline/s",
        "p50 us",
        "p99 us",
        "p99 x",
        "cpu s/Mop"
    );
    for r in &report.results {
        let status = match r.status {
            Status::Ok => "ok",
            Status::Unstable => "UNSTABLE",
            Status::Failed => "FAILED",
            Status::NotMeasured => "not measured",
        };
        let label = if report.settings.repeat > 1 {
            format!("{} #{}", r.scenario, r.repeat + 1)
        } else {
            r.scenario.to_string()
        };
        match &r.figures {
            None => {
                let idle = if r.idle_connections > 0 { format!("{} idle", r.idle_connections) } else { String::new() };
                let _ = writeln!(out, "{label:<19} {:<12} {:>7} {idle:>86}  {status}", r.server, r.clients);
            }
            Some(Figures::IdleCrowd(f)) => {
                let side = |s: &CrowdSide| {
                    format!(
                        "crowded/quiet {}, p99 {}->{} us, {:.0} B RSS and {:.0} KiB VSZ per idle connection",
                        range(&s.crowded_over_quiet),
                        opt(s.quiet.p99_us, 1),
                        opt(s.crowded.p99_us, 1),
                        s.rss_bytes_per_idle,
                        s.vsz_bytes_per_idle / 1024.0
                    )
                };
                let _ = writeln!(
                    out,
                    "{label:<19} {:<12} {:>7} {} idle: {}  {status}",
                    r.server,
                    r.clients,
                    f.idle_connections,
                    side(&f.measured)
                );
                let _ = writeln!(
                    out,
                    "{:<19} {:<12} {:>7} {} idle: {}",
                    "",
                    "baseline",
                    r.clients,
                    f.idle_connections,
                    side(&f.baseline)
                );
            }
            Some(figures) => {
                let (spread, measured, baseline) = match figures {
                    Figures::Rounds(f) => (&f.spread, &f.measured, &f.baseline),
                    Figures::Pipelined(f) => (&f.spread, &f.measured, &f.baseline),
                    Figures::Connect(f) => (&f.spread, &f.measured, &f.baseline),
                    Figures::IdleCrowd(_) => unreachable!("matched above"),
                };
                let p99_ratio = measured.p99_us.zip(baseline.p99_us).map(|(a, b)| a / b.max(1e-9));
                let _ = writeln!(
                    out,
                    "{label:<19} {:<12} {:>7} {:>18} {:>5} {:>11.0} {:>11.0} {:>7} {:>8} {:>6} {:>9.2}  {status}",
                    r.server,
                    r.clients,
                    range(spread),
                    spread.pairs,
                    measured.ops_per_sec,
                    baseline.ops_per_sec,
                    opt(measured.p50_us, 1),
                    opt(measured.p99_us, 1),
                    opt(p99_ratio, 2),
                    measured.cpu_s_per_million_ops,
                );
                match figures {
                    Figures::Pipelined(f) => {
                        let _ = writeln!(
                            out,
                            "{:<19} MB/s each way: {:.1} (baseline {:.1})",
                            "", f.mb_per_sec_each_way, f.baseline_mb_per_sec_each_way
                        );
                    }
                    Figures::Rounds(f) if r.clients > 1 => {
                        let _ = writeln!(
                            out,
                            "{:<19} busiest client's rounds over the least busy's: {} (baseline {})",
                            "",
                            opt(f.client_rounds_max_over_min, 2),
                            opt(f.baseline_client_rounds_max_over_min, 2)
                        );
                    }
                    _ => {}
                }
            }
        }
        for line in &r.reasons {
            let _ = writeln!(out, "{:<19} {}", "", line);
        }
        if let Some(first_run) = &r.first_run {
            let reasons = first_run.reasons.join("; ");
            let _ = writeln!(out, "{:<19} taken again after the other figures; its first run: {reasons}", "");
        }
    }
    if !report.consistency.is_empty() {
        let _ = writeln!(out, "\nrepetitions (each median within every other's interquartile range?):");
        for c in &report.consistency {
            let runs: Vec<String> = (0..c.ratios.len())
                .map(|i| format!("{:.2} [{:.2}-{:.2}]", c.ratios[i], c.ratio_lows[i], c.ratio_highs[i]))
                .collect();
            let verdict = if c.consistent { "consistent" } else { "NOT consistent" };
            let _ =
                writeln!(out, "  {:<16} {:<12} {:>5}: {}  {verdict}", c.scenario, c.server, c.clients, runs.join(", "));
        }
    }
    if !report.comparison.is_empty() {
        let _ = writeln!(out, "\nagainst the previous report:");
        for c in &report.comparison {
            let verdict = match c.verdict {
                Verdict::Same => "same within the spread",
                Verdict::Higher => "HIGHER beyond the spread",
                Verdict::Lower => "LOWER beyond the spread",
            };
            let _ = writeln!(
                out,
                "  {:<16} {:<12} {:>5}: {:.2} [{:.2}-{:.2}] -> {:.2} [{:.2}-{:.2}]  {verdict}",
                c.scenario,
                c.server,
                c.clients,
                c.previous.ratio,
                c.previous.ratio_low,
                c.previous.ratio_high,
                c.now.ratio,
                c.now.ratio_low,
                c.now.ratio_high
            );
        }
    }
    out
}
