//! What the command prints to a terminal and only there: colour and a progress line.
//!
//! Colour follows the conventions of ripgrep and cargo: only when the stream is a terminal,
//! never when `NO_COLOR` is set to anything non-empty (<https://no-color.org>) or `TERM` is
//! `dumb`. Output that goes to a file or a pipe is plain text, the same on every run.

use std::io::IsTerminal;

/// Whether to colour output written to a stream that `is_terminal` describes, given the
/// environment.
pub fn colour_wanted(is_terminal: bool, no_color: Option<&std::ffi::OsStr>, term: Option<&std::ffi::OsStr>) -> bool {
    is_terminal && no_color.is_none_or(|v| v.is_empty()) && term.is_none_or(|t| t != "dumb")
}

/// Whether to colour what goes to stdout, from this process's stdout and environment.
pub fn colour_stdout() -> bool {
    colour_wanted(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const DIM: &str = "\x1b[2m";
const BOLD_RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";

/// Colours the outcome labels of the gate's human report (`  PASS  `, `  FAIL  `, `  WARN  `,
/// `  ERROR `, `  SKIP  ` at the start of a case line) and the demo's verdict; every other
/// byte is left as it was, so the text reads the same with the escapes stripped.
pub fn paint(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let colour = |label: &str| match label {
            "PASS" => Some(GREEN),
            "FAIL" => Some(RED),
            "WARN" => Some(YELLOW),
            "ERROR" => Some(BOLD_RED),
            "SKIP" => Some(DIM),
            _ => None,
        };
        let case_label = line
            .strip_prefix("  ")
            .and_then(|rest| rest.split_once(' '))
            .and_then(|(label, _)| colour(label).map(|c| (label, c)));
        if let Some((label, code)) = case_label {
            out.push_str("  ");
            out.push_str(code);
            out.push_str(label);
            out.push_str(RESET);
            out.push_str(&line[2 + label.len()..]);
        } else if let Some(verdict) = line.strip_prefix("verdict: ") {
            let word = verdict.trim_end();
            match colour(word) {
                Some(code) => {
                    out.push_str("verdict: ");
                    out.push_str(code);
                    out.push_str(word);
                    out.push_str(RESET);
                    out.push_str(&verdict[word.len()..]);
                }
                None => out.push_str(line),
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Progress of a long run on stderr: one line rewritten in place on a terminal, one line per
/// step elsewhere (a CI log keeps every step).
#[derive(Debug)]
pub struct Progress {
    prefix: &'static str,
    in_place: bool,
}

impl Progress {
    /// Progress lines starting `prefix: `, rewritten in place when stderr is a terminal.
    pub fn stderr(prefix: &'static str) -> Progress {
        Progress { prefix, in_place: std::io::stderr().is_terminal() }
    }

    /// The text to write for `step`.
    pub fn line(&self, step: &str) -> String {
        if self.in_place {
            format!("\r\x1b[2K{}: {step}", self.prefix)
        } else {
            format!("{}: {step}\n", self.prefix)
        }
    }

    /// Reports one step.
    pub fn step(&self, step: &str) {
        eprint!("{}", self.line(step));
    }

    /// Clears the in-place line once the run is over.
    pub fn finish(&self) {
        if self.in_place {
            eprint!("\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour_wanted(true, None, Some(OsStr::new("xterm"))));
        assert!(colour_wanted(true, Some(OsStr::new("")), None), "an empty NO_COLOR does not count");
        assert!(!colour_wanted(false, None, None));
        assert!(!colour_wanted(true, Some(OsStr::new("1")), None));
        assert!(!colour_wanted(true, None, Some(OsStr::new("dumb"))));
    }

    #[test]
    fn paint_colours_labels_and_nothing_else() {
        let text = "server/4.1\n  PASS  server/4.1/ping  one ping [MUST]\n  FAIL  x  y [MUST]\n        PASS in a message\nverdict: PASS\nprofiles: core met\n";
        let painted = paint(text);
        assert!(painted.contains("  \x1b[32mPASS\x1b[0m  server/4.1/ping"));
        assert!(painted.contains("  \x1b[31mFAIL\x1b[0m  x"));
        assert!(painted.contains("verdict: \x1b[32mPASS\x1b[0m\n"));
        assert!(painted.contains("        PASS in a message\n"), "indented text is not a label");
        let stripped = painted.replace(GREEN, "").replace(RED, "").replace(RESET, "");
        assert_eq!(stripped, text);
    }

    #[test]
    fn progress_in_a_log_is_one_line_per_step() {
        let log = Progress { prefix: "bench", in_place: false };
        assert_eq!(log.line("lockstep"), "bench: lockstep\n");
        let terminal = Progress { prefix: "bench", in_place: true };
        assert_eq!(terminal.line("lockstep"), "\r\x1b[2Kbench: lockstep");
    }
}
