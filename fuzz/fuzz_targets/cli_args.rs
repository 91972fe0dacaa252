//! The command line's parsing of user input never panics: arbitrary argument vectors through
//! clap, and arbitrary text through the hand-written `--mode` parser, which accepts exactly
//! the octal modes 0..=0o777.
#![no_main]

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use udsping::cli::{parse_mode, Cli};

fuzz_target!(|input: (Vec<String>, String)| {
    let (args, mode) = input;
    let _ = Cli::try_parse_from(std::iter::once("udsping".to_string()).chain(args));
    match parse_mode(&mode) {
        Ok(value) => {
            assert!(value <= 0o777);
            let digits = mode.strip_prefix("0o").unwrap_or(&mode);
            assert_eq!(u32::from_str_radix(digits, 8), Ok(value));
        }
        Err(error) => assert!(error.to_string().contains("octal")),
    }
});
