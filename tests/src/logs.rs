//! Captures the log lines of every node running in this test process, so that tests can check
//! that a node logged the reason it rejected something.
//!
//! Each node's actor and connection tasks run inside a `node{node=SHORT_ID name=NAME}` span, so
//! a line is attributed to a node by its short id. Install the capture once per test binary with
//! [`capture`]; every test in the binary shares it.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing_subscriber::fmt::MakeWriter;

/// Every captured line, in order.
#[derive(Clone, Default)]
pub struct Logs {
    lines: Arc<Mutex<Vec<String>>>,
}

static LOGS: OnceLock<Logs> = OnceLock::new();

/// Installs the capturing subscriber (once) and returns the shared log.
///
/// Captures `liaison_node` at debug level and everything else at warn. Set `LIAISON_TEST_LOG=1`
/// to also print the lines to the test's stderr.
pub fn capture() -> Logs {
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,liaison_node=debug,liaison_tests=debug",
            ))
            .with_ansi(false)
            .with_writer(logs.clone())
            .finish();
        // Another subscriber may already be installed by the test binary; then nothing is
        // captured and tests that need the logs fail loudly in `wait_for`.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

impl Logs {
    /// Lines that contain every one of `needles`.
    pub fn matching(&self, needles: &[&str]) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .cloned()
            .collect()
    }

    /// Number of lines that contain every one of `needles`.
    pub fn count(&self, needles: &[&str]) -> usize {
        self.matching(needles).len()
    }

    /// Waits until more than `before` lines contain every one of `needles`; returns the newest.
    pub async fn wait_for(&self, before: usize, needles: &[&str]) -> String {
        let what = format!("a log line containing {needles:?}");
        liaison_node::demo::wait_until(&what, || async { self.count(needles) > before })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.matching(needles).pop().unwrap_or_default()
    }
}

/// One formatted event at a time: the fmt layer writes each event with a single `write_all`
/// into a fresh writer, so each writer's buffer is one or more whole lines.
pub struct LineWriter {
    logs: Logs,
    buf: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let echo = std::env::var_os("LIAISON_TEST_LOG").is_some();
        let mut lines = self
            .logs
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for line in text.lines().filter(|l| !l.is_empty()) {
            if echo {
                eprintln!("{line}");
            }
            lines.push(line.to_owned());
        }
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> LineWriter {
        LineWriter {
            logs: self.clone(),
            buf: Vec::new(),
        }
    }
}
