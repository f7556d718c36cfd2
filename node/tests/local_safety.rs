//! What other processes and users of the node's own machine must not get: the admin token
//! through a proxy, secrets through lax file modes or an empty token, a node that never
//! disconnects a misbehaving peer, and account pages in sled's trace logs; and a CLI that
//! panics when its reader goes away.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{eventually, init, liaison, start_logging, stop_and_read_logs, Daemon, BIN};

/// The CLI talks to its own node directly, whatever `HTTP_PROXY` and friends say: a proxy
/// would receive the admin token.
#[test]
fn the_cli_never_sends_its_token_through_a_proxy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    init(&data, "customs");
    let daemon = Daemon::start(&data);
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy");
    proxy.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", proxy.local_addr().expect("addr"));
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .arg("status")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .env("HTTP_PROXY", &url)
        .env("http_proxy", &url)
        .env("ALL_PROXY", &url)
        .env("all_proxy", &url)
        .output()
        .expect("run");
    let reached = proxy.accept();
    assert!(
        reached.is_err(),
        "the CLI connected to the proxy (and would have sent it the admin token)"
    );
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.stop();
}

/// A process holding the port a stale `runtime.json` names gets no token: the CLI asks it to
/// prove it is the data directory's node first, and stops with an error when it cannot.
#[test]
fn the_cli_sends_no_token_to_a_process_that_is_not_its_node() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    init(&data, "customs");
    // Another local process on the port the node last used.
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = squatter.local_addr().expect("addr");
    let heard = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let log = heard.clone();
    std::thread::spawn(move || {
        for stream in squatter.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            log.lock()
                .expect("log")
                .push_str(&String::from_utf8_lossy(&request));
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
            );
        }
    });
    liaison_node::datadir::DataDir::new(&data)
        .write_runtime(&liaison_node::datadir::Runtime {
            quic: addr,
            api: addr,
            pid: 1,
            web: None,
        })
        .expect("stale runtime file");
    let out = liaison(&data, &["status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "status succeeded against another process"
    );
    assert!(
        stderr.contains("not this data directory's node"),
        "{stderr}"
    );
    let token = std::fs::read_to_string(data.join("admin.token")).expect("token");
    let heard = heard.lock().expect("log").clone();
    assert!(
        heard.contains("/v1/identity"),
        "the CLI did not ask for a proof: {heard}"
    );
    assert!(
        !heard.to_ascii_lowercase().contains("authorization") && !heard.contains(token.trim()),
        "the CLI sent a token to a process that is not its node:\n{heard}"
    );
}

/// `liaison status | head -0`: the reader is gone before the CLI writes; the CLI ends quietly
/// with success, as other Unix tools do, instead of panicking.
#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    init(&data, "customs");
    let daemon = Daemon::start(&data);
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .arg("status")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    daemon.stop();
}

/// How `liaison run` ends on `data`: its error, or None if it started (then it is stopped).
fn refused(data: &Path) -> Option<String> {
    let mut child = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let exited = eventually("the node to refuse or start", || {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(Some(status));
        }
        liaison(data, &["status"]).status.success().then_some(None)
    });
    match exited {
        Some(status) => {
            let mut err = String::new();
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)
                .expect("stderr");
            assert!(!status.success(), "run exited 0: {err}");
            Some(err)
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A data directory others can write, key or token files others can read, an empty admin
/// token and `sync.max_strikes = 0` each stop `liaison run` with an error that says what to
/// fix; put right, the node starts.
#[test]
fn unsafe_files_and_settings_are_refused_at_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    init(&data, "customs");

    chmod(&data, 0o777);
    let err = refused(&data).expect("a world-writable data directory was accepted");
    assert!(err.contains("chmod 700"), "{err}");
    chmod(&data, 0o700);

    for file in ["identity.key", "exchange.key", "admin.token"] {
        let path = data.join(file);
        chmod(&path, 0o644);
        let err = refused(&data).unwrap_or_else(|| panic!("{file} readable by all was accepted"));
        assert!(err.contains("chmod 600") && err.contains(file), "{err}");
        chmod(&path, 0o600);
    }

    let token_path = data.join("admin.token");
    let token = std::fs::read_to_string(&token_path).expect("token");
    std::fs::write(&token_path, "\n").expect("empty token");
    let err = refused(&data).expect("an empty admin token was accepted");
    assert!(
        err.contains("admin token") && err.contains("empty"),
        "{err}"
    );
    std::fs::write(&token_path, &token).expect("token back");

    let config_path = data.join("node.toml");
    let config = std::fs::read_to_string(&config_path).expect("config");
    assert!(config.contains("max_strikes = 16"), "{config}");
    std::fs::write(
        &config_path,
        config.replace("max_strikes = 16", "max_strikes = 0"),
    )
    .expect("config");
    let err = refused(&data).expect("max_strikes = 0 was accepted");
    assert!(err.contains("max_strikes"), "{err}");
    std::fs::write(&config_path, &config).expect("config back");

    assert!(
        refused(&data).is_none(),
        "the node did not start once put right"
    );
}

/// `RUST_LOG=trace` shows the node's own traces, never sled's pages (which hold account
/// records and token hashes).
#[test]
fn sled_says_no_more_than_info_whatever_the_filter() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    init(&data, "customs");
    let child = start_logging(&data, "json", "trace");
    // An account written to the store: what sled would have dumped.
    let added = liaison(&data, &["user", "add", "ana"]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let (_, logs) = stop_and_read_logs(child);
    let mut ours = 0;
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let target = v["target"].as_str().unwrap_or_default();
        let level = v["level"].as_str().unwrap_or_default();
        assert!(
            !(target.starts_with("sled") && matches!(level, "DEBUG" | "TRACE")),
            "sled logged at {level}: {line}"
        );
        ours += usize::from(target.starts_with("liaison") && matches!(level, "DEBUG" | "TRACE"));
    }
    assert!(
        ours > 0,
        "nothing at debug or trace: the filter was not applied\n{logs}"
    );
}

/// How many refusals the audit records whose outcome starts with `outcome` stand for: one for
/// a record written at once, N for `..., N more like it ...` or `..., N times ...`.
fn refusals_told(records: &[serde_json::Value], action: &str, outcome: &str) -> (usize, u64) {
    let mut told = 0;
    let mut count = 0;
    for r in records {
        let text = r["outcome"].as_str().unwrap_or_default();
        if r["action"] != action || !text.starts_with(outcome) {
            continue;
        }
        count += 1;
        told += match text[outcome.len()..].strip_prefix(", ") {
            None => 1,
            Some(rest) => rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .expect("a count"),
        };
    }
    (count, told)
}

/// Requests refused before a handler (no token, a wrong token, a body that does not parse, a
/// method or route that does not exist) are all audited, but bounded: a short piece of the
/// path, and repeats from one source counted into one record per interval. The audit log is
/// read and checked as a stream. Below the free-space floor posts are refused with an error
/// that says so, while reads and the audit log go on.
#[test]
fn refused_requests_are_audited_within_bounds_and_the_disk_floor_refuses_posts() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    init(&data, "customs");
    let started = std::time::Instant::now();
    let daemon = Daemon::start(&data);
    let dir = liaison_node::datadir::DataDir::new(&data);
    let api = dir.runtime().expect("runtime.json").api;
    let token = std::fs::read_to_string(data.join("admin.token")).expect("token");
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = |path: &str| format!("http://{api}{path}");
    let long = format!("/v1/{}", "x".repeat(60_000));
    for _ in 0..200 {
        let r = http
            .get(url(&long))
            .bearer_auth("lsn_admin_wrong")
            .send()
            .expect("send");
        assert_eq!(r.status().as_u16(), 401);
    }
    for _ in 0..50 {
        let r = http.get(url("/v1/status")).send().expect("send");
        assert_eq!(r.status().as_u16(), 401);
    }
    for _ in 0..20 {
        let bad_json = http
            .post(url("/v1/groups"))
            .bearer_auth(token.trim())
            .header("content-type", "application/json")
            .body("{\"name\":")
            .send()
            .expect("send");
        assert_eq!(bad_json.status().as_u16(), 400);
        let method = http
            .delete(url("/v1/status"))
            .bearer_auth(token.trim())
            .send()
            .expect("send");
        assert_eq!(method.status().as_u16(), 405);
        let route = http
            .get(url("/v1/nothing-here"))
            .bearer_auth(token.trim())
            .send()
            .expect("send");
        assert_eq!(route.status().as_u16(), 404);
    }
    // A stop writes the counts of the interval under way.
    daemon.stop();
    let daemon = Daemon::start(&data);
    let records = common::json(&data, &["audit", "--json"]);
    let records = records.as_array().expect("records");
    // Each interval (60 s) that passed may hold a first record and a count per kind.
    let intervals = started.elapsed().as_secs() / 60 + 1;
    for (action, outcome, sent) in [
        ("auth", "denied: wrong token", 200),
        ("auth", "denied: no token", 50),
        ("refused", "error: 400 Bad Request", 20),
        ("refused", "error: 405 Method Not Allowed", 20),
        ("refused", "error: 404 Not Found", 20),
    ] {
        let (count, told) = refusals_told(records, action, outcome);
        assert_eq!(told, sent, "{outcome}: {records:#?}");
        assert!(
            count as u64 <= 2 * intervals,
            "{count} records for {outcome}"
        );
    }
    for r in records {
        let target = r["target"].as_str().unwrap_or_default();
        assert!(target.len() < 128, "a long target: {target}");
    }
    let verify = common::ok(&data, &["audit", "verify"]);
    assert!(verify.contains("intact"), "{verify}");
    common::ok(&data, &["group", "create", "ops"]);
    daemon.stop();

    // A free-space floor above what the disk has: posts are refused and say why, reads go on.
    let mut config = dir.config().expect("config");
    config.store.min_free_mb = 1_000_000_000;
    std::fs::write(dir.config_path(), config.to_toml()).expect("node.toml");
    let daemon = Daemon::start(&data);
    let post = liaison(&data, &["send", "ops", "--subject", "s", "body"]);
    assert!(!post.status.success(), "a post below the floor was taken");
    let err = String::from_utf8_lossy(&post.stderr);
    assert!(
        err.contains("nearly full") && err.contains("reads go on"),
        "{err}"
    );
    assert!(liaison(&data, &["inbox"]).status.success());
    assert!(liaison(&data, &["group", "list"]).status.success());
    assert!(common::ok(&data, &["audit", "verify"]).contains("intact"));
    daemon.stop();
}

/// Rewrites the target of audit record `seq` in a stopped node's store and recomputes the
/// hash of it and of every later record, as anyone who can write the store can; returns the
/// record as it was. (The store is opened once: sled keeps its lock a while after a drop.)
fn rewrite_audit_record(data: &Path, seq: u64, target: &str) -> serde_json::Value {
    let db = sled::open(data.join("store")).expect("open the store's index");
    let tree = db.open_tree("audit-v1").expect("audit tree");
    let hash_of = |v: &[u8]| -> [u8; 32] {
        let r: serde_json::Value = serde_json::from_slice(v).expect("record");
        let mut h = [0u8; 32];
        hex::decode_to_slice(r["hash"].as_str().expect("hash"), &mut h).expect("hex");
        h
    };
    let mut prev = match tree.get((seq - 1).to_be_bytes()).expect("read") {
        Some(v) => hash_of(&v),
        None => [0u8; 32],
    };
    let mut original = serde_json::Value::Null;
    let records: Vec<(sled::IVec, sled::IVec)> = tree
        .range(seq.to_be_bytes()..)
        .map(|item| item.expect("read"))
        .collect();
    for (k, v) in records {
        let mut r: serde_json::Value = serde_json::from_slice(&v).expect("record");
        if r["seq"] == seq {
            original = r.clone();
            r["target"] = target.into();
        }
        let text = |key: &str| serde_json::to_string(&r[key]).expect("json");
        // The hashed form: seq, at_ms, actor, action, target, outcome, in this order.
        let body = format!(
            "{{\"seq\":{},\"at_ms\":{},\"actor\":{},\"action\":{},\"target\":{},\"outcome\":{}}}",
            r["seq"],
            r["at_ms"],
            text("actor"),
            text("action"),
            text("target"),
            text("outcome")
        );
        let mut h = blake3::Hasher::new_derive_key(liaison_node::audit::AUDIT_CONTEXT);
        h.update(&prev);
        h.update(body.as_bytes());
        let hash = *h.finalize().as_bytes();
        r["prev"] = hex::encode(prev).into();
        r["hash"] = hex::encode(hash).into();
        tree.insert(k, serde_json::to_vec(&r).expect("json"))
            .expect("write");
        prev = hash;
    }
    db.flush().expect("flush");
    original
}

/// A checkpoint the node signs is kept outside the node; whoever rewrites the audit log in the
/// store and recomputes every hash fools the plain chain check, not the check against the
/// checkpoint. A checkpoint that was altered is refused.
#[test]
fn a_signed_checkpoint_exposes_a_rewritten_audit_log() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    init(&data, "customs");
    let daemon = Daemon::start(&data);
    common::ok(&data, &["group", "create", "ops"]);
    common::ok(&data, &["send", "ops", "--subject", "Seizure", "12 icons"]);
    let file = tmp.path().join("checkpoint.json");
    let said = common::ok(
        &data,
        &["audit", "checkpoint", "--out", &file.display().to_string()],
    );
    assert!(said.contains("checkpoint of audit record"), "{said}");
    let checkpoint: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("checkpoint file")).expect("json");
    let seq = checkpoint["seq"].as_u64().expect("seq");
    assert!(seq >= 3, "{checkpoint}");
    let against = [
        "audit",
        "verify",
        "--checkpoint",
        &file.display().to_string(),
    ];
    let ok = common::ok(&data, &against);
    assert!(ok.contains("the one the checkpoint signed"), "{ok}");
    // An altered checkpoint is refused.
    let mut altered = checkpoint.clone();
    altered["seq"] = (seq - 1).into();
    let altered_file = tmp.path().join("altered.json");
    std::fs::write(&altered_file, altered.to_string()).expect("write");
    let out = liaison(
        &data,
        &[
            "audit",
            "verify",
            "--checkpoint",
            &altered_file.display().to_string(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("signature does not verify"), "{err}");
    common::ok(
        &data,
        &["send", "ops", "--subject", "Later", "after the checkpoint"],
    );
    daemon.stop();

    // Record 2 (the first post) is rewritten, every later hash recomputed.
    let before = rewrite_audit_record(&data, 2, "nothing to see");
    assert_eq!(before["action"], "post", "{before}");

    let daemon = Daemon::start(&data);
    let log = common::json(&data, &["audit", "--json"]);
    assert_eq!(log[1]["target"], "nothing to see");
    let plain = common::ok(&data, &["audit", "verify"]);
    assert!(plain.contains("intact"), "the plain check: {plain}");
    let out = liaison(&data, &against);
    assert!(
        !out.status.success(),
        "the check against the checkpoint missed the rewrite"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("broken at record {seq}")) && err.contains("rewritten"),
        "{err}"
    );
    daemon.stop();
}
