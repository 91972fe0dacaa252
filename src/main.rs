//! The `udsping` command. As in ripgrep's `main`, this is the one place that turns an error
//! into its one line on stderr and its exit status (README.md, SPEC.md section 11): 0
//! success, 1 a failure at run time, 2 a usage error (clap's own included).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use udsping::cli::{self, Cli, UsageError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};

fn main() -> ExitCode {
    // A bug must still end as one line on stderr, not a backtrace.
    // It must not panic itself: a failed write to stderr is ignored, not unwrapped.
    std::panic::set_hook(Box::new(|info| {
        let line = format!("udsping: internal error: {}\n", info.to_string().replace('\n', " "));
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }));
    // Every child of this process is started through `udsping::process`, so a dead child no
    // guard owns is an orphan a daemonizing target left to the gate or the bench to reap.
    udsping::process::reap_orphans();
    let parsed = match Cli::try_parse() {
        Ok(parsed) => parsed,
        // --help and --version are "errors" that go to stdout and succeed.
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::from(EXIT_OK);
        }
        // `udsping` alone: the help is the answer, on stderr, as a usage error.
        Err(error) if error.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return ExitCode::from(EXIT_USAGE);
        }
        Err(error) => {
            eprintln!("udsping: {}", clap_one_line(&error.render().to_string()));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match cli::config(parsed).map_err(anyhow::Error::from).and_then(cli::run) {
        Ok(status) => status,
        // The reader of stdout went away (`udsping man | head`): nothing more to say.
        Err(error)
            if error.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::from(EXIT_OK)
        }
        Err(error) => {
            eprintln!("udsping: {}", one_line(&error));
            ExitCode::from(if error.is::<UsageError>() { EXIT_USAGE } else { EXIT_FAILURE })
        }
    }
}

/// The error and its causes on one line, "what: why: root cause". Many error types already
/// say their cause in their own message; a cause is added only where it is not there yet.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line.replace('\n', " ")
}

/// clap's usage error as one line: its message and tips, without the usage block (a CI log
/// greps one line; `--help` is named for the rest).
fn clap_one_line(rendered: &str) -> String {
    let said: Vec<&str> = rendered
        .lines()
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let message = said.join(" ");
    format!("{} (see --help)", message.strip_prefix("error: ").unwrap_or(&message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_become_one_line() {
        let rendered = "error: unrecognized subcommand 'bnech'\n\n  tip: a similar subcommand exists: 'bench'\n\n\
                        Usage: udsping [OPTIONS] <COMMAND>\n\nFor more information, try '--help'.\n";
        assert_eq!(
            clap_one_line(rendered),
            "unrecognized subcommand 'bnech' tip: a similar subcommand exists: 'bench' (see --help)"
        );
        let rendered = "error: the following required arguments were not provided:\n  <ROLE>\n\nUsage: x\n";
        assert_eq!(clap_one_line(rendered), "the following required arguments were not provided: <ROLE> (see --help)");
    }

    #[test]
    fn causes_join_one_line_without_repeating_themselves() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        // A context that does not say its cause gets it appended.
        let error = anyhow::Error::new(io()).context("cannot set up shutdown");
        assert_eq!(one_line(&error), "cannot set up shutdown: no such file");
        // An error whose message already holds its source is not repeated.
        let error = anyhow::Error::new(io()).context("cannot bind (no such file)");
        assert_eq!(one_line(&error), "cannot bind (no such file)");
        let error = anyhow::anyhow!("first line\nsecond line");
        assert_eq!(one_line(&error), "first line second line");
    }
}
