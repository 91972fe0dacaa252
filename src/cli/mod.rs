//! The command line, split the way ripgrep splits its `flags/`: `flags` holds the
//! definitions (clap) and the value parsers, `config` turns them into a validated
//! [`Config`] by one function, and `run` carries it out by calling the library.
//!
//! Exit statuses (SPEC.md section 11): 0 success, 1 a protocol error or a refusal, 2 a usage
//! error ([`UsageError`]); `main` turns every error into one line on stderr, prefixed
//! `udsping: `.

mod config;
mod flags;
mod run;

pub use config::{config, BenchConfig, Config, ConformConfig, Manners, Task, UsageError, Warning};
pub use flags::{
    parse_duration, parse_mode, parse_positive_duration, BenchArgs, BenchFormat, Cli, ColorArg, Command, ConformArgs,
    FormatArg, RoleArg, ValueError,
};
pub use run::run;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A protocol error, a refusal to start, or any other failure at run time.
pub const EXIT_FAILURE: u8 = 1;
/// The command line was wrong, or the gate's harness could not run.
pub const EXIT_USAGE: u8 = 2;

#[cfg(test)]
mod tests {
    use super::config::check_writable;
    use super::*;
    use clap::{CommandFactory, Parser};
    use std::time::Duration;

    fn parse(args: &[&str]) -> Result<Config, UsageError> {
        config(Cli::try_parse_from(std::iter::once("udsping").chain(args.iter().copied())).unwrap())
    }

    #[test]
    fn durations_take_units_and_refuse_bare_numbers() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bare in ["0", "2", "0.5", " 10 "] {
            let message = parse_duration(bare).unwrap_err().to_string();
            assert!(message.contains("no unit") && message.contains("2s, 500ms"), "{bare}: {message}");
        }
        assert!(matches!(parse_duration("2 parsecs"), Err(ValueError::Duration { .. })));
        assert_eq!(parse_positive_duration("0s"), Err(ValueError::Zero));
        assert!(matches!(flags::parse_bench_duration("2h"), Err(ValueError::TooLong { .. })));
    }

    #[test]
    fn every_duration_option_uses_the_one_syntax() {
        for args in [
            &["serve", "--idle-timeout", "120"][..],
            &["serve", "--write-timeout", "10"],
            &["serve", "--stats-interval", "1"],
            &["conform", "server", "--timeout", "2", "--", "true"],
            &["bench", "--duration", "2"],
        ] {
            let error = Cli::try_parse_from(std::iter::once("udsping").chain(args.iter().copied())).unwrap_err();
            assert!(error.to_string().contains("no unit"), "{args:?}: {error}");
        }
        let Ok(Config { task: Task::Serve(serve), .. }) =
            parse(&["serve", "--idle-timeout", "0s", "--stats-interval", "1m"])
        else {
            panic!("serve parses")
        };
        assert_eq!((serve.idle_timeout, serve.stats_interval), (None, Some(Duration::from_secs(60))));
    }

    #[test]
    fn conform_timeout_keeps_its_millisecond_alias() {
        let timeout = |args: &[&str]| match parse(args) {
            Ok(Config { task: Task::Conform(c), .. }) => c.options.waits.timeout,
            other => panic!("{other:?}"),
        };
        assert_eq!(timeout(&["conform", "server", "--", "true"]), Duration::from_secs(2));
        assert_eq!(timeout(&["conform", "server", "--timeout", "750ms", "--", "true"]), Duration::from_millis(750));
        assert_eq!(timeout(&["conform", "server", "--timeout-ms", "500", "--", "true"]), Duration::from_millis(500));
    }

    #[test]
    fn usage_errors_are_found_before_any_work() {
        assert!(matches!(parse(&["serve", "--write-timeout", "0s"]), Err(UsageError::WriteTimeoutZero)));
        assert!(matches!(
            parse(&["bench", "--", "/no/such/cmd"]),
            Err(UsageError::Target { command: "bench", source: crate::conform::TargetError::NotExecutable { .. } })
        ));
        assert!(matches!(
            parse(&["conform", "server"]),
            Err(UsageError::Target { command: "conform", source: crate::conform::TargetError::Missing })
        ));
        for (option, args) in [
            ("--output", &["conform", "server", "--output", "/no/such/dir/report.xml", "--", "true"][..]),
            ("--svg", &["bench", "--svg", "/no/such/dir/bench.svg"]),
            ("--output", &["conform", "server", "--output", "/", "--", "true"]),
        ] {
            match parse(args) {
                Err(UsageError::Unwritable { option: o, .. }) => assert_eq!(o, option),
                other => panic!("{args:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_new_file_in_a_writable_directory_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("report.xml");
        check_writable("--output", &path).unwrap();
        assert!(!path.exists(), "checking does not create the file");
        std::fs::write(&path, "old").unwrap();
        check_writable("--output", &path).unwrap();
    }

    #[test]
    fn the_version_names_the_spec_version() {
        let version = Cli::command().render_version();
        assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
        assert!(version.contains(&format!("SPEC.md version {}", crate::spec::version())), "{version}");
    }
}
