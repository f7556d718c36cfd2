//! `liaison run`, the manual pages, and `liaison bench` (which runs `liaison-bench`).

use super::*;

/// Runs the node in the foreground until SIGINT or SIGTERM.
pub(super) async fn run_daemon(dir: &DataDir) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Watched before the node starts, so that no signal finds the default action (which ends
    // the process) once the node answers.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io("cannot watch SIGTERM", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot watch SIGINT", e))?;
    // There is nothing to reload on SIGHUP: peers, groups and officers change at once through
    // the API and live in the store, and `node.toml` holds addresses and limits bound at
    // start. A SIGHUP (a `kill -HUP` meant for another daemon, a closed terminal) is logged and
    // the node runs on.
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("cannot watch SIGHUP", e))?;
    let node = crate::daemon::start(dir).await?;
    say!(
        "{} running: node {} quic {} api {}",
        node.name,
        node.node_id,
        node.quic_addr,
        node.api_addr
    );
    if let Some(url) = &node.web_url {
        say!("web workspace: {url}");
    }
    if let Some(addr) = node.metrics_addr {
        println!("metrics: http://{addr}/metrics");
    }
    if let Some(fingerprint) = &node.web_fingerprint {
        say!(
            "web certificate (self-signed) SHA-256 fingerprint: {fingerprint}\n  \
             officers compare it with what their browser shows before they accept it"
        );
    }
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
            _ = hup.recv() => tracing::info!(
                "SIGHUP: nothing to reload (peers and officers take effect at once through the \
                 API; node.toml is read at start): running on"
            ),
        }
    }
    node.shutdown().await
}

/// Writes `liaison.1` and one page per command (and per subcommand, `liaison-group-add.1`) into
/// `dir`; hidden commands get none.
pub(super) fn write_man_pages(dir: &std::path::Path) -> Result<()> {
    fn write(dir: &std::path::Path, command: &clap::Command) -> Result<()> {
        // After `build`, a subcommand's display name is its full path: `liaison-group-add`.
        let name = command.get_display_name().unwrap_or(command.get_name());
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .render(&mut page)
            .map_err(|e| Error::io(format!("render {}", path.display()), e))?;
        std::fs::write(&path, page)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        // clap's generated `help` subcommands repeat what each page already says.
        let pages = command
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help");
        for sub in pages {
            write(dir, sub)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    write(dir, &command)
}

/// `liaison bench ARGS`: the benchmark is its own executable, `liaison-bench`, built beside
/// `liaison` (`cargo build --release -p liaison-bench`); this runs it with the same arguments
/// and the same standard input and output, and fails as it fails.
pub(super) async fn bench(args: &[std::ffi::OsString]) -> Result<()> {
    let me = std::env::current_exe().map_err(|e| Error::io("cannot find this executable", e))?;
    let exe = me.with_file_name(format!("liaison-bench{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        return Err(Error::Invalid(format!(
            "`liaison bench` runs {}, which is not there; build it with `cargo build --release \
             -p liaison-bench` (it is built beside liaison)",
            exe.display()
        )));
    }
    let status = tokio::process::Command::new(&exe)
        .args(args)
        .status()
        .await
        .map_err(|e| Error::io(format!("cannot run {}", exe.display()), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{} failed ({status})",
            exe.display()
        )))
    }
}
