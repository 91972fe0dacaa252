#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use udsping::cli::{self, Cli};

fn main() -> ExitCode {
    // A bug must still end as one line on stderr, not a backtrace.
    // It must not panic itself: a failed write to stderr is ignored, not unwrapped.
    std::panic::set_hook(Box::new(|info| {
        let line = format!("udsping: internal error: {}\n", info.to_string().replace('\n', " "));
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }));
    match Cli::try_parse() {
        Ok(parsed) => cli::run(parsed),
        Err(error) => {
            let _ = error.print();
            ExitCode::from(if error.use_stderr() { cli::EXIT_USAGE } else { cli::EXIT_OK })
        }
    }
}
