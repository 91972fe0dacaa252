use std::process::ExitCode;

use clap::Parser;
use udsping::cli::{self, Cli};

fn main() -> ExitCode {
    // A bug must still end as one line on stderr, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("udsping: internal error: {}", info.to_string().replace('\n', " "));
    }));
    match Cli::try_parse() {
        Ok(parsed) => cli::run(parsed),
        Err(error) => {
            let _ = error.print();
            ExitCode::from(if error.use_stderr() { cli::EXIT_USAGE } else { cli::EXIT_OK })
        }
    }
}
