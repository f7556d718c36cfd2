//! What operators and packagers touch besides the API: `--version`, shell completions, manual
//! pages, and log lines a log shipper can parse.

mod common;

use std::process::Command;

use common::{eventually, init, liaison, start_logging, stop_and_read_logs, BIN};

#[test]
fn version_names_the_wire_and_store_formats() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.starts_with("liaison "), "{text}");
    assert!(text.contains("wire format 1"), "{text}");
    assert!(text.contains("store format 4"), "{text}");
}

#[test]
fn completions_for_each_shell_and_a_clear_error_for_others() {
    for (shell, marker) in [
        ("bash", "_liaison"),
        ("zsh", "#compdef liaison"),
        ("fish", "complete -c liaison"),
    ] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .expect("run");
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).expect("utf-8");
        assert!(script.contains(marker), "{shell}: {script}");
        // Subcommands are completed too.
        assert!(script.contains("receipts"), "{shell}");
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("possible values"), "{err}");
}

#[test]
fn man_pages_for_every_visible_command() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("man1");
    let out = Command::new(BIN)
        .args(["man"])
        .arg(&dir)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let main = std::fs::read_to_string(dir.join("liaison.1")).expect("liaison.1");
    assert!(main.starts_with(".ie") || main.contains(".TH"), "{main}");
    assert!(
        main.contains("closed user groups"),
        "the about text: {main}"
    );
    let create =
        std::fs::read_to_string(dir.join("liaison-group-create.1")).expect("a nested page");
    assert!(create.contains("liaison\\-group\\-create"), "{create}");
    assert!(dir.join("liaison-send.1").exists());
    assert!(
        !dir.join("liaison-bench-node.1").exists(),
        "hidden commands get no page"
    );
}

/// `--log-format json` writes one JSON object per line; text written to a pipe has no colour
/// codes (a log shipper would store them verbatim).
#[test]
fn logs_parse_line_by_line_and_carry_no_colour_codes_in_a_pipe() {
    let tmp = tempfile::tempdir().expect("tmp");
    for (format, dir) in [
        ("json", tmp.path().join("j")),
        ("text", tmp.path().join("t")),
    ] {
        init(&dir, "customs");
        let child = start_logging(&dir, format, "info");
        let (status, logs) = stop_and_read_logs(child);
        assert!(status.success(), "{logs}");
        assert!(
            !logs.contains('\u{1b}'),
            "{format}: colour codes in a pipe: {logs}"
        );
        let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            !lines.is_empty(),
            "{format}: the node logged nothing at info"
        );
        if format == "json" {
            for line in lines {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                assert!(
                    v["level"].is_string() && v["timestamp"].is_string(),
                    "{line}"
                );
                assert!(v["fields"].is_object(), "{line}");
            }
        }
    }
}

/// `/healthz` and `/readyz` answer without a token and say nothing else; `/readyz` turns
/// unready when the disk is below the store's floor.
#[test]
fn health_probes_need_no_token_and_follow_the_disk_floor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("n");
    init(&dir, "customs");
    let get = |dir: &std::path::Path, path: &str| {
        let runtime: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("runtime.json")).expect("runtime.json"))
                .expect("runtime json");
        let api = runtime["api"].as_str().expect("api address").to_owned();
        let r = reqwest::blocking::get(format!("http://{api}{path}")).expect("get");
        (r.status().as_u16(), r.text().expect("text"))
    };
    {
        let _node = common::Daemon::start(&dir);
        assert_eq!(get(&dir, "/healthz"), (200, "alive\n".into()));
        assert_eq!(get(&dir, "/readyz"), (200, "ready\n".into()));
        // Everything else still needs a token, but the API's description.
        assert_eq!(get(&dir, "/v1/status").0, 401);
        assert_eq!(
            get(&dir, "/v1/openapi.json"),
            (200, liaison_node::openapi::json())
        );
    }
    // A floor above any disk's free space: the node runs, and says it is not ready.
    let config = std::fs::read_to_string(dir.join("node.toml")).expect("config");
    let config = if config.contains("min_free_mb") {
        config
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("min_free_mb") {
                    "min_free_mb = 1000000000".to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    } else if config.contains("[store]") {
        config.replace("[store]", "[store]\nmin_free_mb = 1000000000")
    } else {
        format!("{config}\n[store]\nmin_free_mb = 1000000000\n")
    };
    std::fs::write(dir.join("node.toml"), config).expect("write config");
    let _node = common::Daemon::start(&dir);
    assert_eq!(get(&dir, "/healthz").0, 200);
    let (code, text) = get(&dir, "/readyz");
    assert_eq!(code, 503, "{text}");
    assert!(text.starts_with("not ready"), "{text}");
}

/// SIGHUP does not end the node: there is nothing to reload (peers and officers change at once
/// through the API), so it is logged and the node serves on; SIGTERM still stops it cleanly.
#[test]
fn sighup_leaves_the_node_running() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("n");
    init(&dir, "customs");
    let node = common::Daemon::start(&dir);
    let pid = node.child.id().to_string();
    for _ in 0..2 {
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }
    // The signal is handled: the node still answers, with the same process.
    eventually("answer after SIGHUP", || {
        liaison(&dir, &["status"]).status.success().then_some(())
    });
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("runtime.json")).expect("runtime.json"))
            .expect("runtime json");
    assert_eq!(runtime["pid"].as_u64().map(|p| p.to_string()), Some(pid));
    node.stop();
}
