//! `udsping bench`: the reference server (or another implementation's) against the raw-socket
//! limit, measured side by side in one run on one machine, so every figure is a ratio.
//!
//! - [`subject`]: what is measured: the reference and the raw baseline run in this process;
//!   the seed's Python server and a `-- CMD` run as child processes.
//! - [`measure`]: the scenarios' client loops and the CPU, latency and memory readings.
//!
//! The benchmark is a tool, not a test: `cargo test` runs every scenario for a fraction of a
//! second so that it keeps working, and asserts nothing about speed.

pub mod measure;
pub mod subject;

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use measure::Measurement;
use subject::Subject;

/// The scenarios of `udsping bench`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// One client, lock-step rounds (the seed's pattern).
    Lockstep,
    /// The same with client and server pinned to one CPU.
    LockstepPinned,
    /// One client streams pings from one thread and reads pongs on another.
    Pipelined,
    /// 1, 2, 4, 16, 64 and 256 concurrent lock-step clients.
    Clients,
    /// Short sessions (connect, one ping, end, close), from 1 and from 16 clients.
    Connect,
    /// Server memory with 0 and with 1,000 idle connections.
    IdleMemory,
}

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Lockstep,
        Scenario::LockstepPinned,
        Scenario::Pipelined,
        Scenario::Clients,
        Scenario::Connect,
        Scenario::IdleMemory,
    ];

    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Lockstep => "lockstep",
            Scenario::LockstepPinned => "lockstep-pinned",
            Scenario::Pipelined => "pipelined",
            Scenario::Clients => "clients",
            Scenario::Connect => "connect",
            Scenario::IdleMemory => "idle-memory",
        }
    }
}

/// How to run the benchmark.
#[derive(Clone, Debug)]
pub struct Options {
    pub scenarios: Vec<Scenario>,
    /// Length of each measurement.
    pub duration: Duration,
    /// The server measured against the baseline (the reference unless `-- CMD`).
    pub subject: Subject,
    /// Also measure the seed's Python server in `lockstep` and `clients`.
    pub seed_python: bool,
    /// Client counts of the `clients` scenario.
    pub client_counts: Vec<usize>,
    /// Idle connections of the `idle-memory` scenario.
    pub idle_connections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            scenarios: Scenario::ALL.to_vec(),
            duration: Duration::from_secs(2),
            subject: Subject::Reference,
            seed_python: false,
            client_counts: vec![1, 2, 4, 16, 64, 256],
            idle_connections: 1000,
        }
    }
}

/// One line of the report: one scenario at one client count, for one server, with the
/// baseline measured right before it.
#[derive(Clone, Debug)]
pub struct Row {
    pub scenario: Scenario,
    pub subject: String,
    pub clients: usize,
    pub measured: Measurement,
    pub baseline: Measurement,
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.measured.ops_per_sec() / self.baseline.ops_per_sec().max(1e-9)
    }

    fn percentile_us(measurement: &Measurement, q: f64) -> Option<f64> {
        measurement.latency.as_ref().filter(|h| !h.is_empty()).map(|h| h.value_at_quantile(q) as f64 / 1000.0)
    }

    pub fn cpu_s_per_million_ops(&self) -> f64 {
        self.measured.cpu.as_secs_f64() / (self.measured.ops.max(1) as f64 / 1e6)
    }

    fn extra(&self, name: &str) -> Option<f64> {
        self.measured.extra.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// The rows measured, and notes on measurements that could not be made (a reference-point
/// server that cannot take so many clients).
#[derive(Debug, Default)]
pub struct Results {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
}

/// Runs every requested scenario; `progress` gets a line before each measurement. A failure of
/// the baseline or of the server under test ends the run; the seed's Python server is only a
/// reference point, so its failures become notes.
pub fn run(options: &Options, mut progress: impl FnMut(&str)) -> Result<Results, String> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut subjects = vec![options.subject.clone()];
    if options.seed_python {
        subjects.push(Subject::SeedPython);
    }
    for &scenario in &options.scenarios {
        let counts: Vec<usize> = match scenario {
            Scenario::Clients => options.client_counts.clone(),
            Scenario::Connect => vec![1, 16],
            _ => vec![1],
        };
        let with_python = matches!(scenario, Scenario::Lockstep | Scenario::Clients);
        for clients in counts {
            progress(&format!("{} baseline, {clients} client(s)", scenario.name()));
            let baseline = measure_one(scenario, &Subject::Baseline, clients, options)?;
            for subject in subjects.iter().filter(|s| with_python || !matches!(s, Subject::SeedPython)) {
                progress(&format!("{} {}, {clients} client(s)", scenario.name(), subject.name()));
                match measure_one(scenario, subject, clients, options) {
                    Ok(measured) => rows.push(Row {
                        scenario,
                        subject: subject.name(),
                        clients,
                        measured,
                        baseline: baseline.clone(),
                    }),
                    Err(reason) if matches!(subject, Subject::SeedPython) => {
                        notes.push(format!("{clients} client(s): {reason}"))
                    }
                    Err(reason) => return Err(reason),
                }
            }
        }
    }
    Ok(Results { rows, notes })
}

fn measure_one(
    scenario: Scenario,
    subject: &Subject,
    clients: usize,
    options: &Options,
) -> Result<Measurement, String> {
    let name = subject.name();
    let context = move |e: std::io::Error| format!("{} against {name}: {e}", scenario.name());
    if scenario == Scenario::LockstepPinned {
        // The server's threads (or process) inherit the CPU mask of the thread that starts them.
        let (subject, duration) = (subject.clone(), options.duration);
        return std::thread::spawn(move || -> Result<Measurement, String> {
            measure::pin_to_one_cpu().map_err(|e| format!("cannot pin to one CPU: {e}"))?;
            let running = subject::start(&subject)?;
            measure::lockstep(&running.path, running.pid, 1, duration).map_err(context)
        })
        .join()
        .map_err(|_| "the pinned measurement panicked".to_string())?;
    }
    let running = subject::start(subject)?;
    let (path, pid, duration) = (&running.path, running.pid, options.duration);
    match scenario {
        Scenario::Lockstep | Scenario::LockstepPinned | Scenario::Clients => {
            measure::lockstep(path, pid, clients, duration)
        }
        Scenario::Pipelined => measure::pipelined(path, pid, duration),
        Scenario::Connect => measure::connect(path, pid, clients, duration),
        Scenario::IdleMemory => measure::idle_memory(path, pid, options.idle_connections),
    }
    .map_err(context)
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

/// The human report: one table, one line per scenario, client count and server.
pub fn human(results: &Results) -> String {
    let rows = &results.rows;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:<12} {:>7} {:>12} {:>12} {:>6} {:>8} {:>8} {:>9} {:>8} {:>10}",
        "scenario",
        "server",
        "clients",
        "ops/s",
        "baseline/s",
        "ratio",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "p99 x",
        "cpu s/Mop"
    );
    for row in rows {
        if row.scenario == Scenario::IdleMemory {
            let per = |m: &Measurement| m.extra.iter().find(|(n, _)| *n == "bytes_per_idle_connection").map(|e| e.1);
            let _ = writeln!(
                out,
                "{:<16} {:<12} {:>7} RSS {} KiB idle, {} KiB with {} idle connections: {} bytes each (baseline {})",
                row.scenario.name(),
                row.subject,
                fmt_opt(row.extra("idle_connections"), 0),
                fmt_opt(row.extra("rss_idle_0_bytes").map(|b| b / 1024.0), 0),
                fmt_opt(row.extra("rss_idle_n_bytes").map(|b| b / 1024.0), 0),
                fmt_opt(row.extra("idle_connections"), 0),
                fmt_opt(per(&row.measured), 0),
                fmt_opt(per(&row.baseline), 0),
            );
            continue;
        }
        let p99 = Row::percentile_us(&row.measured, 0.99);
        let p99_ratio = p99.zip(Row::percentile_us(&row.baseline, 0.99)).map(|(a, b)| a / b.max(1e-9));
        let _ = writeln!(
            out,
            "{:<16} {:<12} {:>7} {:>12.0} {:>12.0} {:>6.2} {:>8} {:>8} {:>9} {:>8} {:>10.2}",
            row.scenario.name(),
            row.subject,
            row.clients,
            row.measured.ops_per_sec(),
            row.baseline.ops_per_sec(),
            row.ratio(),
            fmt_opt(Row::percentile_us(&row.measured, 0.5), 1),
            fmt_opt(p99, 1),
            fmt_opt(Row::percentile_us(&row.measured, 0.999), 1),
            fmt_opt(p99_ratio, 2),
            row.cpu_s_per_million_ops(),
        );
        match row.scenario {
            Scenario::Pipelined => {
                let _ = writeln!(
                    out,
                    "{:<16} MB/s each way: {} (baseline {})",
                    "",
                    fmt_opt(row.extra("mb_per_sec_each_way"), 1),
                    fmt_opt(row.baseline.extra.first().map(|e| e.1), 1)
                );
            }
            Scenario::Clients if row.clients > 1 => {
                let spread = |m: &Measurement| {
                    let get = |name| m.extra.iter().find(|(n, _)| *n == name).map(|e| e.1);
                    format!("min {} max {}", fmt_opt(get("min_client_rounds"), 0), fmt_opt(get("max_client_rounds"), 0))
                };
                let _ = writeln!(
                    out,
                    "{:<16} rounds per client: {} (baseline {})",
                    "",
                    spread(&row.measured),
                    spread(&row.baseline)
                );
            }
            _ => {}
        }
    }
    for note in &results.notes {
        let _ = writeln!(out, "not measured: {note}");
    }
    out
}

/// The JSON report: `{"scenarios": [...]}` with one entry per row.
pub fn json(results: &Results, options: &Options) -> String {
    let rows = &results.rows;
    let entries: Vec<Value> = rows
        .iter()
        .map(|row| {
            if row.scenario == Scenario::IdleMemory {
                let mut entry = json!({ "name": row.scenario.name(), "server": row.subject, "clients": row.clients });
                for (name, value) in &row.measured.extra {
                    entry[*name] = json!(value);
                }
                for (name, value) in &row.baseline.extra {
                    entry[format!("baseline_{name}")] = json!(value);
                }
                return entry;
            }
            let mut entry = json!({
                "name": row.scenario.name(),
                "server": row.subject,
                "clients": row.clients,
                "ops_per_sec": row.measured.ops_per_sec(),
                "baseline_ops_per_sec": row.baseline.ops_per_sec(),
                "ratio": row.ratio(),
                "cpu_s_per_million_ops": row.cpu_s_per_million_ops(),
                "baseline_cpu_s_per_million_ops": row.baseline.cpu.as_secs_f64() / (row.baseline.ops.max(1) as f64 / 1e6),
                "duration_s": row.measured.elapsed.as_secs_f64(),
            });
            for (name, q) in [("p50_us", 0.5), ("p99_us", 0.99), ("p999_us", 0.999)] {
                if let Some(v) = Row::percentile_us(&row.measured, q) {
                    entry[name] = json!(v);
                    entry[format!("baseline_{name}")] = json!(Row::percentile_us(&row.baseline, q));
                }
            }
            for (name, value) in &row.measured.extra {
                entry[*name] = json!(value);
            }
            for (name, value) in &row.baseline.extra {
                entry[format!("baseline_{name}")] = json!(value);
            }
            entry
        })
        .collect();
    let value = json!({
        "tool": "udsping bench",
        "version": env!("CARGO_PKG_VERSION"),
        "duration_s": options.duration.as_secs_f64(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "scenarios": entries,
        "not_measured": results.notes,
    });
    serde_json::to_string_pretty(&value).expect("JSON serializes") + "\n"
}

/// An SVG with throughput against client count and the lock-step latency distributions.
pub fn svg(results: &Results, path: &std::path::Path) -> Result<(), String> {
    use plotters::prelude::*;
    let rows = &results.rows;
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(550);

    let clients: Vec<&Row> = rows.iter().filter(|r| r.scenario == Scenario::Clients).collect();
    let max_ops = clients.iter().flat_map(|r| [r.measured.ops_per_sec(), r.baseline.ops_per_sec()]).fold(1.0, f64::max);
    let max_clients = clients.iter().map(|r| r.clients).max().unwrap_or(1).max(2) as f64;
    let mut chart = ChartBuilder::on(&left)
        .caption("throughput against clients", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..max_clients).log_scale(), 0f64..max_ops * 1.1)
        .map_err(|e| e.to_string())?;
    chart.configure_mesh().x_desc("clients").y_desc("rounds/s").draw().map_err(|e| e.to_string())?;
    let mut servers: Vec<&str> = clients.iter().map(|r| r.subject.as_str()).collect();
    servers.dedup();
    let palette = [RED, BLUE, GREEN, MAGENTA];
    for (i, server) in servers.iter().enumerate() {
        let points: Vec<(f64, f64)> = clients
            .iter()
            .filter(|r| r.subject == *server)
            .map(|r| (r.clients as f64, r.measured.ops_per_sec()))
            .collect();
        let color = palette[i % palette.len()];
        chart
            .draw_series(LineSeries::new(points, color))
            .map_err(|e| e.to_string())?
            .label(*server)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color));
    }
    let baseline: Vec<(f64, f64)> = clients
        .iter()
        .filter(|r| r.subject == servers.first().copied().unwrap_or(""))
        .map(|r| (r.clients as f64, r.baseline.ops_per_sec()))
        .collect();
    chart
        .draw_series(LineSeries::new(baseline, BLACK))
        .map_err(|e| e.to_string())?
        .label("baseline")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK));
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| e.to_string())?;

    // Latency: the value at each percentile, on a log axis, for one client in lock-step.
    let lockstep: Vec<(&str, &Histogram<u64>)> = rows
        .iter()
        .filter(|r| r.scenario == Scenario::Lockstep)
        .flat_map(|r| [(r.subject.as_str(), r.measured.latency.as_ref()), ("baseline", r.baseline.latency.as_ref())])
        .filter_map(|(name, h)| h.map(|h| (name, h)))
        .collect();
    let quantiles = [0.5, 0.75, 0.9, 0.99, 0.999, 0.9999];
    let max_us = lockstep.iter().map(|(_, h)| h.value_at_quantile(0.9999) as f64 / 1000.0).fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(&right)
        .caption("lock-step round trip (1 client)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..(quantiles.len() - 1) as f64, (0.1f64..max_us * 2.0).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("microseconds")
        .x_labels(quantiles.len())
        .x_label_formatter(&|x| quantiles.get(x.round() as usize).map_or(String::new(), |q| format!("p{}", q * 100.0)))
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (name, histogram)) in lockstep.iter().enumerate() {
        let points: Vec<(f64, f64)> = quantiles
            .iter()
            .enumerate()
            .map(|(x, q)| (x as f64, histogram.value_at_quantile(*q) as f64 / 1000.0))
            .collect();
        let color = if *name == "baseline" { BLACK } else { palette[i % palette.len()] };
        chart
            .draw_series(LineSeries::new(points, color))
            .map_err(|e| e.to_string())?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 15, y)], color));
    }
    chart.configure_series_labels().background_style(WHITE).border_style(BLACK).draw().map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
