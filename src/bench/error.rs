//! Why the benchmark could not run or report ([`BenchError`]), and why one scenario could not be
//! measured against one server (`ScenarioError`, which says whose doing a failure was).

use std::path::PathBuf;

use super::measure::MeasureError;
use super::subject::StartError;

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
pub(crate) enum ScenarioError {
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
    pub(crate) fn after_a_start(self) -> ScenarioError {
        match self {
            ScenarioError::Start { server, source: timed_out @ StartError::TimedOut { .. } } => {
                ScenarioError::Start { server, source: StartError::Command(timed_out.to_string()) }
            }
            other => other,
        }
    }

    /// The server under test was still starting, silent, when `--startup-timeout` ran out.
    pub(crate) fn start_timed_out(&self) -> bool {
        matches!(self, ScenarioError::Start { source: StartError::TimedOut { .. }, .. })
    }

    /// Whether the failure is `server`'s own doing, rather than the bench's, the machine's
    /// or the baseline's: what the early stop counts.
    pub(crate) fn blames(&self, server: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
