//! The fault_fs layer (`node/tests/fault_fs/fault_fs.c`), built with the machine's C compiler
//! when a test first needs it, and the `liaison` daemon run under it.
//!
//! fault_fs is loaded with `LD_PRELOAD` into the daemon only (the CLI and the test itself run
//! without it). It watches one directory, the node's data directory, and can keep a shadow
//! copy of it that receives only what was `fsync`ed or `fdatasync`ed (what a machine that
//! lost power would find on its disk), and limit the free space files may grow into.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use liaison_node::datadir::DataDir;

use super::BIN;

/// The built layer, or why there is none.
static LIBRARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Builds fault_fs once per test process with `$CC`, `cc`, `gcc` or `clang`, whichever runs
/// first. `None` (with the reason printed) only where the machine has no C compiler; a
/// compiler that fails to build it fails the test.
pub fn library() -> Option<PathBuf> {
    let built = LIBRARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fault_fs/fault_fs.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fault_fs")
            .join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).expect("a directory for fault_fs");
        let out = dir.join("libfault_fs.so");
        let compilers: Vec<String> = std::env::var("CC")
            .ok()
            .into_iter()
            .chain(["cc", "gcc", "clang"].map(String::from))
            .collect();
        for cc in &compilers {
            let run = Command::new(cc)
                .args(["-shared", "-fPIC", "-O1", "-o"])
                .arg(&out)
                .arg(&source)
                .arg("-ldl")
                .output();
            match run {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("cannot run the C compiler {cc}: {e}"),
                Ok(o) if o.status.success() => return Ok(out),
                Ok(o) => panic!(
                    "{cc} failed to build {}:\n{}",
                    source.display(),
                    String::from_utf8_lossy(&o.stderr)
                ),
            }
        }
        Err(format!(
            "no C compiler ({}) on this machine to build {}",
            compilers.join(", "),
            source.display()
        ))
    });
    match built {
        Ok(path) => Some(path.clone()),
        Err(why) => {
            eprintln!("SKIPPED: {why}; this test needs it to inject disk faults");
            None
        }
    }
}

/// A `liaison run` process on a data directory, its log appended to a file.
pub struct Node {
    pub data: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Starts `liaison run` on `data` with `env` set (the fault_fs variables, if any), and
    /// waits until its API answers.
    pub fn start(data: &Path, log: &Path, env: &[(&str, &Path)]) -> Node {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("node log");
        let mut cmd = Command::new(BIN);
        cmd.arg("--data")
            .arg(data)
            .arg("run")
            .env("RUST_LOG", "info")
            .env_remove("LIAISON_DATA")
            .env_remove("LIAISON_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn liaison run");
        let mut node = Node {
            data: data.to_path_buf(),
            log: log.to_path_buf(),
            child: Some(child),
        };
        let started = Instant::now();
        while node.api().is_none() {
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!(
                    "the node exited ({status}) before its API answered; its log:\n{}",
                    node.log_tail()
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the node's API did not come up; its log:\n{}",
                node.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// Starts `liaison run` on `data` under fault_fs (`lib`) watching `data`, with `vars` for
    /// the layer (`FAULT_FS_SHADOW`, `FAULT_FS_SPACE`).
    pub fn start_under(lib: &Path, data: &Path, log: &Path, vars: &[(&str, &Path)]) -> Node {
        let mut env: Vec<(&str, &Path)> = vec![("LD_PRELOAD", lib), ("FAULT_FS_ROOT", data)];
        env.extend_from_slice(vars);
        Node::start(data, log, &env)
    }

    /// The API address of this process, once its runtime file names it.
    pub fn api(&self) -> Option<SocketAddr> {
        let pid = self.child.as_ref()?.id();
        DataDir::new(&self.data)
            .runtime()
            .filter(|r| r.pid == pid)
            .map(|r| r.api)
    }

    /// SIGKILL, after checking that the process had not exited on its own.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("node running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "the node exited by itself ({status}) before the kill; its log:\n{}",
                self.log_tail()
            );
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap the node");
    }

    /// SIGTERM; the node must exit cleanly.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("node running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let code = child.wait().expect("wait");
        assert!(
            code.success(),
            "the node exited with {code:?} after SIGTERM; its log:\n{}",
            self.log_tail()
        );
    }

    /// The last lines of the node's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Copies the directory tree `from` to `to` (files, directories and their modes).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    std::fs::set_permissions(to, std::fs::metadata(from).expect("stat").permissions())
        .expect("chmod the copy");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let kind = entry.file_type().expect("file type");
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}

/// A blocking client of a node's API with its admin token.
pub struct Api {
    http: reqwest::blocking::Client,
    token: String,
}

impl Api {
    pub fn new(data: &Path) -> Api {
        Api {
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http client"),
            token: DataDir::new(data)
                .admin_token()
                .expect("admin token")
                .to_string(),
        }
    }

    /// GET: the status code and the JSON body (`Null` if there is none).
    pub fn get(&self, api: SocketAddr, path: &str) -> (u16, serde_json::Value) {
        let resp = self
            .http
            .get(format!("http://{api}{path}"))
            .bearer_auth(&self.token)
            .send()
            .expect("GET");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(serde_json::Value::Null))
    }

    /// POST: the status code and the JSON body, or `None` if the request itself failed (the
    /// node was killed under it).
    pub fn post(
        &self,
        api: SocketAddr,
        path: &str,
        body: &serde_json::Value,
    ) -> Option<(u16, serde_json::Value)> {
        let resp = self
            .http
            .post(format!("http://{api}{path}"))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().unwrap_or(serde_json::Value::Null)))
    }
}
