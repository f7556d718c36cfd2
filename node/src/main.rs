//! The `liaison` binary: parse arguments, set up logging, run the command.

use std::process::ExitCode;

use std::io::IsTerminal;

use clap::Parser;
use liaison_node::cli::{run, Cli, LogFormat};

/// The log directive that keeps sled at `info` or quieter.
const SLED_AT_MOST_INFO: &str = "sled=info";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.command {
        liaison_node::cli::Cmd::Run => "info",
        // The benchmark logs for itself.
        liaison_node::cli::Cmd::Bench { .. } => "error",
        _ => "warn",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // sled logs whole pages (account records, token hashes) at debug and trace: whatever the
    // filter asks, it says no more than info.
    if let Ok(sled) = SLED_AT_MOST_INFO.parse() {
        filter = filter.add_directive(sled);
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // JSON never carries colour codes, whatever the output is.
        LogFormat::Json => logs.json().with_ansi(false).init(),
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
