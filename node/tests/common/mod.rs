//! Helpers shared by the tests that drive the `liaison` binary.
#![allow(dead_code)]

pub mod fault_fs;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_liaison");

/// Runs `liaison --data DATA ARGS...` (with an optional token).
pub fn run(data: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data").arg(data);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    cmd.args(args)
        .env_remove("LIAISON_DATA")
        .env_remove("LIAISON_TOKEN")
        .output()
        .expect("run liaison")
}

pub fn liaison(data: &Path, args: &[&str]) -> Output {
    run(data, None, args)
}

/// Runs and expects success; returns trimmed stdout.
pub fn ok_as(data: &Path, token: Option<&str>, args: &[&str]) -> String {
    succeeded(run(data, token, args), args)
}

/// The trimmed stdout of `liaison ARGS...`, which must have succeeded.
pub fn succeeded(out: Output, args: &[&str]) -> String {
    assert!(
        out.status.success(),
        "liaison {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

pub fn ok(data: &Path, args: &[&str]) -> String {
    ok_as(data, None, args)
}

pub fn json_as(data: &Path, token: Option<&str>, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok_as(data, token, args)).expect("json output")
}

pub fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    json_as(data, None, args)
}

/// Retries `f` until it returns Some, for at most 30 s.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `liaison run` child process.
pub struct Daemon {
    pub child: Child,
    pub data: PathBuf,
}

impl Daemon {
    pub fn start(data: &Path) -> Daemon {
        let child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .arg("run")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn daemon");
        eventually("daemon API", || {
            liaison(data, &["status"]).status.success().then_some(())
        });
        Daemon {
            child,
            data: data.to_path_buf(),
        }
    }

    pub fn stop(mut self) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let code = self.child.wait().expect("wait");
        assert!(code.success(), "daemon exited with {code:?} after SIGTERM");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `liaison --log-format FORMAT run` on `data` with `RUST_LOG` set and its log on a pipe,
/// once its API answers.
pub fn start_logging(data: &Path, format: &str, rust_log: &str) -> Child {
    let child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(["--log-format", format, "run"])
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    eventually("daemon API", || {
        liaison(data, &["status"]).status.success().then_some(())
    });
    child
}

/// Stops a node started by [`start_logging`] with SIGTERM: how it exited, and all it logged.
pub fn stop_and_read_logs(mut child: Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let mut logs = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut logs)
        .expect("read logs");
    (child.wait().expect("wait"), logs)
}

/// Inits a node named `name` in `dir` on loopback with system-chosen ports.
pub fn init(dir: &Path, name: &str) {
    ok(
        dir,
        &[
            "init",
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ],
    );
}

/// Pins `a` and `b` to each other (both running) and waits until they are connected.
pub fn link(a: &Path, b: &Path) {
    let id_a = ok(a, &["id"]);
    let id_b = ok(b, &["id"]);
    let args_a: Vec<&str> = id_a.split_whitespace().collect();
    let args_b: Vec<&str> = id_b.split_whitespace().collect();
    ok(a, &["peer", "add", args_b[0], args_b[1], args_b[2]]);
    ok(b, &["peer", "add", args_a[0], args_a[1], args_a[2]]);
    for (x, name) in [(a, args_b[0]), (b, args_a[0])] {
        eventually("peers connect", || {
            let peers = json(x, &["peer", "list", "--json"]);
            peers
                .as_array()?
                .iter()
                .any(|p| {
                    p["name"] == name
                        && p["state"] == "connected"
                        && !p["descriptor_name"].is_null()
                })
                .then_some(())
        });
    }
}
