//! The `liaison-bench` binary (run as `liaison bench`): parse arguments, set up logging, run
//! the benchmark. Two hidden commands serve the benchmark's own child processes: `bench-node`
//! (one node driven over a pipe, see `process.rs`) and `liaison` (the `liaison` command line
//! itself, so that the scale phase's nodes are `liaison run` processes of this build).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use liaison_node::datadir::DataDir;

/// Measure what a node sustains against this machine's limits (real nodes on loopback).
#[derive(Debug, Parser)]
#[command(
    name = "liaison bench",
    bin_name = "liaison bench",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Smaller counts: finishes within a minute.
    #[arg(long)]
    quick: bool,
    /// Also write every figure as one JSON object to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also measure one node holding N messages in a group (default N: 100,000): start, idle
    /// memory, first page, reads, posts, audit verification, catch-up.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "100000")]
    scale: Option<usize>,
    #[command(subcommand)]
    child: Option<Child>,
}

/// The benchmark's child processes.
#[derive(Debug, Subcommand)]
enum Child {
    /// Serve one benchmark node to a parent benchmark over standard input and output.
    #[command(hide = true)]
    BenchNode {
        /// The node's data directory.
        #[arg(long)]
        data: PathBuf,
    },
    /// Run the `liaison` command line with these arguments.
    #[command(hide = true)]
    Liaison {
        /// The arguments, as `liaison` takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The benchmark's nodes refuse each other's first dials while pinning; not news.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match cli.child {
        Some(Child::Liaison { args }) => {
            let liaison = <liaison_node::cli::Cli as Parser>::parse_from(
                std::iter::once(OsString::from("liaison")).chain(args),
            );
            run(liaison_node::cli::run(liaison))
        }
        Some(Child::BenchNode { data }) => run(liaison_bench::serve_node(&DataDir::new(data))),
        _ => run(async {
            let options = liaison_bench::Options {
                quick: cli.quick,
                json: cli.json,
                scale: cli.scale,
            };
            liaison_bench::run(options).await.map(drop)
        }),
    }
}

/// Runs `work` on a multi-threaded runtime, as `liaison` does; an error is printed.
fn run(work: impl std::future::Future<Output = liaison_node::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
