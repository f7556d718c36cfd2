//! The `liaison` binary: parse arguments, set up logging, run the command.

use std::process::ExitCode;

use clap::Parser;
use liaison_node::cli::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.command {
        liaison_node::cli::Cmd::Run => "info",
        // The benchmark's nodes refuse each other's first dials while pinning; not news.
        liaison_node::cli::Cmd::Bench { .. } | liaison_node::cli::Cmd::BenchNode => "error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
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
            ExitCode::FAILURE
        }
    }
}
