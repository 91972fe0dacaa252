//! What `udsping bench` is asked to measure: the scenarios, the options of a run, and the
//! thresholds beyond which a figure is marked `unstable`.

use std::time::Duration;

use super::subject::{self, Subject};

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

#[cfg(test)]
mod tests {
    use super::*;

    // The names on the command line (clap) and in the JSON (serde) are one vocabulary.
    #[test]
    fn scenario_names_agree() {
        for scenario in Scenario::ALL {
            assert_eq!(serde_json::to_value(scenario).unwrap(), serde_json::json!(scenario.name()));
        }
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
}
