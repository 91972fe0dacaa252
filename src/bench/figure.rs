//! How one figure is taken: trials of the server under test and the baseline in ABBA order,
//! each against a server started for it (in this process) or for the figure (a child
//! process), with the deadline and the blame of every trial; and the figures made of the
//! trials' samples (median of the per-pair ratios, each side's rates, latencies and CPU).
//! What to measure, the early stop and the judgement of a finished figure are the parent
//! module's.

use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::error::ScenarioError;
use super::measure::{self, MachineState, MeasureError, Sample, Watchdog};
use super::options::{Options, Scenario};
use super::report::{
    self, ConnectFigures, CrowdSide, Figures, IdleCrowdFigures, PipelinedFigures, RoundsFigures, Side, Spread,
};
use super::subject::{self, Running, Subject};

/// A trial may overrun its length by this much (connecting its clients, one last round)
/// before its watchdog fails it.
fn trial_limit(trial: Duration, clients: usize) -> Duration {
    trial + Duration::from_secs(2) + Duration::from_millis(10) * clients as u32
}

/// One trial of `scenario` against a started server; a failure blames the server's death
/// when its process died meanwhile, and a server process that exited while something it
/// started went on serving is a failure too (what was measured is not the process watched).
fn run_trial(
    scenario: Scenario,
    running: &Running,
    name: String,
    clients: usize,
    length: Duration,
) -> Result<Sample, ScenarioError> {
    let watchdog = Arc::new(Watchdog::start(trial_limit(length, clients)));
    let (path, pid) = (&running.path, running.pid);
    let sample = match scenario {
        Scenario::Pipelined => measure::pipelined(path, pid, length, &watchdog),
        Scenario::Connect => measure::connect(path, pid, clients, length, &watchdog),
        _ => measure::lockstep(path, pid, clients, length, &watchdog),
    }
    .map_err(|e| watchdog.blame(e))
    .map_err(|source| match running.death() {
        Some(death) => ScenarioError::Died { server: name.clone(), death, source },
        None => ScenarioError::Measure { server: name.clone(), source },
    })?;
    match running.exited() {
        Some(status) => Err(ScenarioError::LeftServing { server: name, status }),
        None => Ok(sample),
    }
}

/// `pairs` pairs of trials in ABBA order (a b, b a, a b, ...): `one(is_a)` measures one
/// side. Returns a's samples and b's.
pub(super) fn abba(
    pairs: usize,
    mut one: impl FnMut(bool) -> Result<Sample, ScenarioError>,
) -> Result<(Vec<Sample>, Vec<Sample>), ScenarioError> {
    let (mut of_a, mut of_b) = (Vec::new(), Vec::new());
    for index in 0..pairs.max(1) {
        let a_first = index % 2 == 0;
        for is_a in [a_first, !a_first] {
            let sample = one(is_a)?;
            if is_a { &mut of_a } else { &mut of_b }.push(sample);
        }
    }
    Ok((of_a, of_b))
}

/// One figure as measured, with the machine's state before and after.
pub(super) struct Measured {
    pub(super) figures: Figures,
    pub(super) before: MachineState,
    pub(super) after: MachineState,
    /// The server under test's (first) instance's time from start to listening.
    pub(super) startup: Duration,
}

fn start(subject: &Subject, idle: usize, options: &Options) -> Result<Running, ScenarioError> {
    subject::start(subject, idle, options.startup_timeout)
        .map_err(|source| ScenarioError::Start { server: subject.name(), source })
}

/// A figure of the subject against the baseline, trial by trial.
pub(super) fn interleaved(
    scenario: Scenario,
    subject: &Subject,
    clients: usize,
    options: &Options,
) -> Result<Measured, ScenarioError> {
    let length = options.trial_length(scenario);
    // Servers in this process (the reference, the baseline) are started afresh for each of
    // their trials. Started once per figure, the reference gave figures whose medians differed
    // by twice what their pairs' spread predicts (a standard deviation of 1.6% against 0.7%
    // from resampling the pairs): something fixed per instance (where its buffers, stacks and
    // sockets landed) that one figure samples once. Fresh instances sample it in every pair,
    // so it shows in the spread instead of between runs; each is started just before its own
    // trial, so that neither waits idle through the other's.
    //
    // A server in a child process is started once for the figure, and the baseline with it:
    // a process exec'd for each trial would be measured cold against a warm baseline, and
    // one that takes seconds to start would make 80 starts outlast the measuring.
    let shared = match subject {
        Subject::Reference => None,
        _ => Some((start(subject, 0, options)?, start(&Subject::Baseline, 0, options)?)),
    };
    let servers: Vec<u32> = shared.iter().filter_map(|(measured, _)| measured.pid).collect();
    let mut startup = shared.as_ref().map(|(measured, _)| measured.startup);
    let before = MachineState::now(&servers);
    let (a, b) = abba(options.pairs(scenario), |is_subject| {
        let (server, name) =
            if is_subject { (subject, subject.name()) } else { (&Subject::Baseline, "baseline".into()) };
        match &shared {
            Some((measured, baseline)) => {
                run_trial(scenario, if is_subject { measured } else { baseline }, name, clients, length)
            }
            None => {
                let running = start(server, 0, options)?;
                if is_subject {
                    startup.get_or_insert(running.startup);
                }
                run_trial(scenario, &running, name, clients, length)
            }
        }
    })?;
    let after = MachineState::now(&servers);
    let spread = pair_ratios(&a, &b);
    let (measured, baseline) = (side(&a), side(&b));
    let figures = match scenario {
        Scenario::Pipelined => {
            let mb = |samples: &[Sample]| median(samples.iter().map(|s| s.ops_per_sec() * 4.0 / 1e6).collect());
            Figures::Pipelined(PipelinedFigures {
                spread,
                mb_per_sec_each_way: mb(&a),
                baseline_mb_per_sec_each_way: mb(&b),
                measured,
                baseline,
            })
        }
        Scenario::Connect => Figures::Connect(ConnectFigures { spread, measured, baseline }),
        _ => Figures::Rounds(RoundsFigures {
            spread,
            measured,
            baseline,
            client_rounds_max_over_min: starvation(&a),
            baseline_client_rounds_max_over_min: starvation(&b),
        }),
    };
    Ok(Measured { figures, before, after, startup: startup.unwrap_or_default() })
}

/// `idle-crowd` for the subject and then the baseline: a quiet instance and a crowded one of
/// each, measured alternately.
pub(super) fn idle_crowd(subject: &Subject, idle: usize, options: &Options) -> Result<Measured, ScenarioError> {
    // Room for a crowd: what does not fit after this goes to holder processes (measure::Crowd).
    crate::server::limits::raise_descriptor_limit_to(idle as u64 * 2 + 256);
    // The conditions are those of the subject's trials, whose ratio is the figure's headline.
    let (measured, before, after, startup) = crowd_side(subject, idle, options)?;
    let (baseline, ..) = crowd_side(&Subject::Baseline, idle, options)?;
    let figures = Figures::IdleCrowd(Box::new(IdleCrowdFigures { idle_connections: idle, measured, baseline }));
    Ok(Measured { figures, before, after, startup })
}

fn crowd_side(
    subject: &Subject,
    idle: usize,
    options: &Options,
) -> Result<(CrowdSide, MachineState, MachineState, Duration), ScenarioError> {
    let fail = |source| ScenarioError::Measure { server: subject.name(), source };
    let io = |source| fail(MeasureError::Io { what: "cannot read /proc/PID/status", source });
    let threads_before = measure::process_size(None).map_err(io)?.threads;
    let quiet = start(subject, 0, options)?;
    // With the quiet instance serving, a silent hang of the crowded one is the server's own,
    // not a cold first start: no reason to take the figure again.
    let crowded = start(subject, idle, options).map_err(ScenarioError::after_a_start)?;
    let startup = quiet.startup;
    let size_before = measure::process_size(crowded.pid).map_err(io)?;
    // Connecting 10,000 clients takes about a second; a server that cannot take them all
    // (its own limit) fails this bound instead of hanging the run.
    let open_limit = Duration::from_secs(30) + Duration::from_millis(2) * idle as u32;
    let crowd = measure::open_crowd(&crowded.path, idle, crowded.pid.is_none(), open_limit).map_err(fail)?;
    let size_after = measure::process_size(crowded.pid).map_err(io)?;
    let length = options.trial_length(Scenario::IdleCrowd);
    let servers: Vec<u32> = [quiet.pid, crowded.pid].into_iter().flatten().collect();
    let before = MachineState::now(&servers);
    // One quiet and one crowded instance for the whole figure: a crowd of 10,000 takes a
    // second to gather, too long to gather again for every pair.
    let (q, c) = abba(options.pairs(Scenario::IdleCrowd), |is_quiet| {
        let (running, which) = if is_quiet { (&quiet, "quiet") } else { (&crowded, "crowded") };
        run_trial(Scenario::Lockstep, running, format!("{} ({which})", subject.name()), 1, length)
    })?;
    let after = MachineState::now(&servers);
    // A server whose own limit is below the crowd makes room by closing idle connections
    // (SRV-IDLE-2): then the figure is not of N idle connections.
    crowd.check(idle).map_err(fail)?;
    drop(crowd);
    drop((quiet, crowded));
    measure::settle(None, threads_before, Duration::from_secs(10));
    let per = |a: u64, b: u64| b.saturating_sub(a) as f64 / idle.max(1) as f64;
    let side = CrowdSide {
        crowded_over_quiet: pair_ratios(&c, &q),
        quiet: side(&q),
        crowded: side(&c),
        rss_bytes_before: size_before.rss_bytes,
        rss_bytes_after: size_after.rss_bytes,
        rss_bytes_per_idle: per(size_before.rss_bytes, size_after.rss_bytes),
        vsz_bytes_per_idle: per(size_before.vsz_bytes, size_after.vsz_bytes),
        threads_per_idle: per(size_before.threads, size_after.threads),
    };
    Ok((side, before, after, startup))
}

pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    report::quantile(&values, 0.5)
}

/// The ratio of `a`'s rate to `b`'s, pair by pair.
pub(super) fn pair_ratios(a: &[Sample], b: &[Sample]) -> Spread {
    Spread::of(a.iter().zip(b).map(|(a, b)| a.ops_per_sec() / b.ops_per_sec().max(1e-9)).collect())
}

/// Median over trials of the busiest client's rounds over the least busy one's.
fn starvation(samples: &[Sample]) -> Option<f64> {
    let ratios: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.client_rounds)
        .map(|(fewest, most)| most as f64 / fewest.max(1) as f64)
        .collect();
    (!ratios.is_empty()).then(|| median(ratios))
}

/// One server's figures over its trials.
pub(super) fn side(samples: &[Sample]) -> Side {
    let rates: Vec<f64> = samples.iter().map(Sample::ops_per_sec).collect();
    let mut latency: Option<Histogram<u64>> = None;
    for h in samples.iter().filter_map(|s| s.latency.as_ref()) {
        match &mut latency {
            None => latency = Some(h.clone()),
            // Histograms of one shape always add.
            Some(total) => total.add(h).unwrap_or_default(),
        }
    }
    let at = |q: f64| latency.as_ref().filter(|h| !h.is_empty()).map(|h| h.value_at_quantile(q) as f64 / 1000.0);
    let ops: u64 = samples.iter().map(|s| s.ops).sum();
    let cpu: Duration = samples.iter().map(|s| s.cpu).sum();
    let cpu_ops: u64 = samples.iter().map(|s| s.cpu_ops).sum();
    Side {
        ops,
        ops_per_sec: median(rates.clone()),
        ops_per_sec_min: rates.iter().copied().fold(f64::INFINITY, f64::min),
        ops_per_sec_max: rates.iter().copied().fold(0.0, f64::max),
        p50_us: at(0.5),
        p99_us: at(0.99),
        p999_us: at(0.999),
        cpu_s_per_million_ops: cpu.as_secs_f64() / (cpu_ops.max(1) as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Subject and baseline take turns to go first, so drift over the figure falls on both
    // alike; a failed trial ends the figure there.
    #[test]
    fn pairs_run_in_abba_order() {
        let mut measured = Vec::new();
        let sample = |ops| Sample {
            ops,
            elapsed: Duration::from_secs(1),
            latency: None,
            cpu: Duration::ZERO,
            cpu_ops: ops,
            client_rounds: None,
        };
        let (a, b) = abba(3, |is_a| {
            measured.push(if is_a { 'a' } else { 'b' });
            Ok(sample(measured.len() as u64))
        })
        .unwrap();
        assert_eq!(measured, ['a', 'b', 'b', 'a', 'a', 'b']);
        assert_eq!(a.iter().map(|s| s.ops).collect::<Vec<_>>(), [1, 4, 5]);
        assert_eq!(b.iter().map(|s| s.ops).collect::<Vec<_>>(), [2, 3, 6]);
        let mut trials = 0;
        let failed = abba(3, |_| {
            trials += 1;
            if trials == 2 {
                Err(ScenarioError::Panicked)
            } else {
                Ok(sample(1))
            }
        });
        assert!(matches!(failed, Err(ScenarioError::Panicked)));
        assert_eq!(trials, 2);
    }
}
