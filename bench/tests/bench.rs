//! `liaison-bench --quick --scale 2000 --json PATH` (what `liaison bench` runs) runs end to end and reports every figure the
//! operators and the README rely on (the scale phase at a small N, so that it cannot rot). Nothing here judges a figure or times anything: the machine running
//! the tests is not the machine the figures describe.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

/// Every key the benchmark promises, as `section.key`; each must be a positive number.
const KEYS: &[&str] = &[
    "limits.verify_per_s",
    "limits.sign_per_s",
    "limits.seal_1k_per_s",
    "limits.open_1k_per_s",
    "limits.aead_bytes_per_s",
    "limits.quinn_roundtrips_per_s",
    "limits.sled_flushes_per_s",
    "limits.quinn_bulk_mib_per_s",
    "e2e.msgs_per_s_1k",
    "e2e.msgs_per_s_64k",
    "e2e.p50_ms",
    "e2e.p99_ms",
    "api.msgs_per_s_1",
    "api.post_p50_ms_1",
    "api.post_p99_ms_1",
    "api.seen_p50_ms_1",
    "api.msgs_per_s_16",
    "api.post_p50_ms_16",
    "api.post_p99_ms_16",
    "api.seen_p50_ms_16",
    "api.cores_busy_1",
    "api.cores_busy_16",
    "attachments.mib_per_s",
    "fanout.p50_ms",
    "fanout.p99_ms",
    "catchup.msgs_per_s",
    "resources.peak_rss_bytes",
    "resources.peak_rss_node_bytes",
    "resources.store_bytes_per_msg",
    "ratios.e2e_over_verify",
    "ratios.catchup_over_verify",
    "ratios.e2e_over_quinn",
    "ratios.api_over_e2e",
    "ratios.attachment_over_quinn",
    "scale.messages",
    "scale.fill_msgs_per_s",
    "scale.store_bytes_per_msg",
    "scale.start_seconds",
    "scale.idle_rss_bytes",
    "scale.page_p50_ms",
    "scale.page_p99_ms",
    "scale.page_messages",
    "scale.read_p50_ms",
    "scale.post_p50_ms",
    "scale.audit_verify_seconds",
    "scale.audit_records",
    "scale.web_group_p50_ms",
    "scale.web_record_p50_ms",
    "scale.web_thread_p50_ms",
    "scale.thread_messages",
    "scale.catchup_msgs_per_s",
];

#[test]
fn quick_bench_reports_every_figure() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let json = dir.path().join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_liaison-bench"))
        .args(["--quick", "--scale", "2000", "--json"])
        .arg(&json)
        .env_remove("LIAISON_BENCH_PHASES")
        .output()
        .expect("run liaison-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "liaison bench failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("e2e_over_verify"),
        "the table is missing from stdout:\n{stdout}"
    );

    let text = std::fs::read_to_string(&json).expect("the JSON file was written");
    let report: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    for key in KEYS {
        let (section, name) = key.split_once('.').expect("section.key");
        let value = report
            .get(section)
            .and_then(|s| s.get(name))
            .unwrap_or_else(|| panic!("{key} is missing from {text}"));
        let number = value
            .as_f64()
            .unwrap_or_else(|| panic!("{key} is not a number: {value}"));
        assert!(
            number > 0.0,
            "{key} is {number}, expected a positive figure"
        );
    }
    assert_eq!(report["machine"]["quick"], serde_json::Value::Bool(true));
    assert_eq!(report["scale"]["messages"], 2000);
    let goals = report["scale"]["goals"]
        .as_array()
        .expect("the scale goals");
    assert!(!goals.is_empty(), "no goals reported");
    for goal in goals {
        assert!(
            goal["met"].is_boolean(),
            "a goal without its outcome: {goal}"
        );
    }
}

/// The hidden `liaison-bench bench-node` serves one node to a parent benchmark over its standard input
/// and output: it reports itself ready, answers every command line (unknown and malformed ones
/// with an error, without stopping), and stops cleanly when its input ends.
#[test]
fn bench_node_answers_its_parent_and_stops_at_end_of_input() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("node");
    let init = Command::new(env!("CARGO_BIN_EXE_liaison-bench"))
        .args(["liaison", "--data"])
        .arg(&data)
        .args([
            "init",
            "--name",
            "bench-x",
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run liaison init");
    assert!(init.status.success(), "init failed: {init:?}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_liaison-bench"))
        .args(["bench-node", "--data"])
        .arg(&data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start liaison bench-node");
    let mut input = child.stdin.take().expect("stdin");
    let mut output = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut next = || {
        output
            .next()
            .expect("a line from bench-node")
            .expect("readable output")
    };

    let ready = next();
    let words: Vec<&str> = ready.split(' ').collect();
    assert_eq!(words.len(), 3, "unexpected first line {ready:?}");
    assert_eq!(words[0], "ready");
    assert_eq!(words[1].len(), 64, "a node id in hex: {ready:?}");
    let addr: std::net::SocketAddr = words[2].parse().expect("a QUIC address");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let group = "00".repeat(16);
    let asks = [
        ("frobnicate".to_owned(), "error unknown command"),
        ("knows not-a-group".to_owned(), "error bad group id"),
        (format!("knows {group}"), "no"),
        ("peer x 1234 127.0.0.1:1".to_owned(), "error bad node id"),
    ];
    for (ask, want) in asks {
        writeln!(input, "{ask}").expect("write a command");
        let reply = next();
        assert!(
            reply.starts_with(want),
            "{ask:?} was answered {reply:?}, expected {want:?}…"
        );
    }
    drop(input);
    let status = child.wait().expect("bench-node exits");
    assert!(status.success(), "bench-node exited with {status}");
}
