//! The command line: argument definitions (clap) and what each command does with them.
//!
//! Exit statuses (SPEC.md section 11): 0 success, 1 a protocol error or a refusal, 2 a usage
//! error. Every error is one line on stderr, prefixed `udsping: `.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::client::{self, ClientConfig};
use crate::server::{Server, ServerConfig};
use crate::socket_path::Removal;

/// Success.
pub const EXIT_OK: u8 = 0;
/// A protocol error, a refusal to start, or any other failure at run time.
pub const EXIT_FAILURE: u8 = 1;
/// The command line was wrong.
pub const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "udsping",
    version,
    about = "The ping/pong protocol over Unix domain sockets: reference server, client and conformance gate"
)]
#[command(after_help = "Exit status: 0 success, 1 protocol error or refusal, 2 usage error.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the protocol on a socket file until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Connect, run lock-step ping/pong rounds, send "end".
    Ping(PingArgs),
    /// Start a server in a temporary directory, run a client against it, print the verdict.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Socket file to listen on.
    #[arg(long, default_value = "udsocket")]
    pub socket: PathBuf,
    /// Mode of the socket file (octal), set at creation with no wider window.
    #[arg(long, default_value = "0600", value_parser = parse_mode)]
    pub mode: u32,
    /// Connections served at once; further clients wait in the listen backlog.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Print the seed's per-message lines ("Server: Received ping", ...).
    #[arg(long)]
    pub log_messages: bool,
}

#[derive(Debug, Args)]
pub struct PingArgs {
    /// Socket file to connect to.
    #[arg(long, default_value = "udsocket")]
    pub socket: PathBuf,
    /// Lock-step rounds before "end".
    #[arg(long, default_value_t = 100)]
    pub rounds: u64,
    /// Print the seed's per-message lines ("Client: Sent ping", ...).
    #[arg(long)]
    pub log_messages: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Lock-step rounds before "end".
    #[arg(long, default_value_t = 100)]
    pub rounds: u64,
    /// Print every message, as the seed's programs do.
    #[arg(long)]
    pub log_messages: bool,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("expected an octal file mode from 0 to 0777 (such as 0600), got {text:?}")),
    }
}

/// Runs a parsed command line and returns the process's exit status.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Ping(args) => ping(args),
        Command::Demo(args) => demo(args),
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(message) => {
            eprintln!("udsping: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let config = ServerConfig {
        socket: args.socket,
        mode: args.mode,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        log_messages: args.log_messages,
    };
    let server = Server::bind(config).map_err(|e| e.to_string())?;
    let path = server.path().to_owned();
    server.stop_on_signals().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let stats = server.run().map_err(|e| format!("{}: {e}", path.display()))?;
    if stats.socket_file == Some(Removal::Replaced) {
        eprintln!("udsping: {}: another file replaced the socket; left it alone", path.display());
    }
    Ok(())
}

fn ping(args: PingArgs) -> Result<(), String> {
    let config = ClientConfig { socket: args.socket, rounds: args.rounds, log_messages: args.log_messages };
    let summary = client::run(&config).map_err(|e| e.to_string())?;
    println!("ok: {} rounds over {}, then \"end\"", summary.rounds, config.socket.display());
    Ok(())
}

fn demo(args: DemoArgs) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let socket = dir.path().join("udsocket");
    let server = Server::bind(ServerConfig { log_messages: args.log_messages, ..ServerConfig::new(&socket) })
        .map_err(|e| e.to_string())?;
    println!("server: listening on {} (mode 0600)", socket.display());
    let (stop, live) = (server.shutdown_handle(), server.stats());
    let running = std::thread::spawn(move || server.run());
    let client_result =
        client::run(&ClientConfig { socket: socket.clone(), rounds: args.rounds, log_messages: args.log_messages });
    // The client is done when it has sent "end"; give the server a bounded moment to account
    // for the connection before stopping it, so the verdict does not depend on scheduling.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while live.snapshot().ended() < live.snapshot().accepted && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    stop.shutdown();
    let stats = running.join().map_err(|_| "the server thread failed".to_string())?.map_err(|e| e.to_string())?;
    let summary = client_result.map_err(|e| e.to_string())?;
    println!("client -> server: \"ping\" x {}, then \"end\"", summary.rounds);
    println!("server -> client: \"pong\" x {}", summary.rounds);
    println!("server: {} connection accepted, {} ended by \"end\"", stats.accepted, stats.ended_by_end);
    let removed = stats.socket_file == Some(Removal::Removed);
    println!("server: socket file {} on shutdown", if removed { "removed" } else { "NOT removed" });
    if stats.ended_by_end != 1 || !removed {
        return Err("verdict: FAIL".into());
    }
    println!("verdict: PASS");
    Ok(())
}
