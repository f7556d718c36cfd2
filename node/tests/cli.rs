//! The `liaison` binary end to end: two daemons as real processes, driven by the CLI.

mod common;

use std::process::Command;

use common::{eventually, json, liaison, ok, Daemon, BIN};

#[test]
fn cli_end_to_end() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, name) in [(&a, "rilo"), (&b, "customs")] {
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
    // init refuses to overwrite an existing node.
    let again = liaison(&a, &["init", "--name", "x"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    // The token file is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(a.join("admin.token"))
        .expect("token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A command against a node that is not running says so.
    let down = liaison(&a, &["status"]);
    assert!(!down.status.success());
    let err = String::from_utf8_lossy(&down.stderr);
    assert!(err.contains("not running"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");

    let da = Daemon::start(&a);
    let db = Daemon::start(&b);
    let id_a = ok(&a, &["id"]);
    let id_b = ok(&b, &["id"]);
    assert_eq!(
        id_a.split_whitespace().count(),
        3,
        "id prints NAME NODE_ID HOST:PORT: {id_a}"
    );
    let args_b: Vec<&str> = id_b.split_whitespace().collect();
    let args_a: Vec<&str> = id_a.split_whitespace().collect();
    ok(&a, &["peer", "add", args_b[0], args_b[1], args_b[2]]);
    ok(&b, &["peer", "add", args_a[0], args_a[1], args_a[2]]);
    eventually("peers connect", || {
        let peers = json(&a, &["peer", "list", "--json"]);
        (peers[0]["state"] == "connected" && !peers[0]["descriptor_name"].is_null()).then_some(())
    });

    let group = ok(&a, &["group", "create", "Operation Heritage 2026"]);
    assert_eq!(group.len(), 32, "group id: {group}");
    ok(
        &a,
        &[
            "group",
            "add",
            "Operation Heritage 2026",
            "customs",
            "--role",
            "member",
        ],
    );
    let shown = json(&a, &["group", "show", &group, "--json"]);
    assert_eq!(shown["members"].as_array().map(Vec::len), Some(2));
    eventually("group reaches b", || {
        let groups = json(&b, &["group", "list", "--json"]);
        (groups.as_array().map(Vec::len) == Some(1)).then_some(())
    });

    let id = ok(
        &a,
        &[
            "send",
            "Operation Heritage 2026",
            "--subject",
            "Seizure",
            "--handling",
            "amber",
            "Bronze statuette held at Rotterdam",
        ],
    );
    assert_eq!(id.len(), 64, "message id: {id}");
    let from_b = ok(&b, &["send", &group, "--subject", "Reply", "Noted"]);
    eventually("b receives", || {
        let inbox = json(&b, &["inbox", "--json"]);
        inbox
            .as_array()?
            .iter()
            .any(|m| m["id"] == id.as_str())
            .then_some(())
    });
    let read = json(&b, &["read", &id, "--json"]);
    for key in [
        "id",
        "group_id",
        "author_id",
        "author_name",
        "created_at",
        "subject",
        "handling",
        "body",
    ] {
        assert!(!read[key].is_null(), "read --json lacks {key}: {read}");
    }
    assert_eq!(read["body"], "Bronze statuette held at Rotterdam");
    assert_eq!(read["author_name"], "rilo");
    assert_eq!(read["handling"], "amber");
    let text = ok(&b, &["read", &id]);
    assert!(text.contains("Bronze statuette"));
    eventually("a receives b's reply", || {
        let inbox = json(&a, &["inbox", &group, "--json"]);
        inbox
            .as_array()?
            .iter()
            .any(|m| m["id"] == from_b.as_str())
            .then_some(())
    });
    eventually("receipt from b", || {
        let r = json(&a, &["receipts", &id, "--json"]);
        r.as_array()?
            .iter()
            .any(|x| x["receiver_name"] == "customs")
            .then_some(())
    });
    // b lists itself for a's message (when it stored it), once, and a does not list itself
    // for its own message.
    let on_b = json(&b, &["receipts", &id, "--json"]);
    let on_b = on_b.as_array().expect("receipts on b");
    assert_eq!(on_b.len(), 1, "{on_b:?}");
    assert_eq!(on_b[0]["receiver_name"], "customs");
    assert!(on_b[0]["stored_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let on_a = json(&a, &["receipts", &id, "--json"]);
    assert!(
        !on_a
            .as_array()
            .expect("receipts on a")
            .iter()
            .any(|x| x["receiver_name"] == "rilo"),
        "{on_a:?}"
    );
    let status = json(&a, &["status", "--json"]);
    assert_eq!(status["connected"], 1);

    // Errors: unknown group, unknown message, wrong token.
    let bad = liaison(&a, &["send", "no-such-group", "x"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown group"));
    let bad = liaison(&a, &["read", &"0".repeat(64)]);
    assert!(!bad.status.success());
    let bad = Command::new(BIN)
        .arg("--data")
        .arg(&a)
        .args(["--token", "wrong", "status"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("token"));

    da.stop();
    db.stop();
    // After a clean stop the data survives a restart.
    let da = Daemon::start(&a);
    let inbox = json(&a, &["inbox", "--json"]);
    assert_eq!(inbox.as_array().map(Vec::len), Some(2));
    da.stop();
}

/// A failed command says why on one line and exits with the code `liaison --help` gives for
/// that cause: the node is not running (never started, or stopped), the token is wrong, what
/// was named does not exist.
#[test]
fn failures_exit_with_the_code_of_their_cause() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    common::init(&data, "customs");
    let help = ok(&data, &["--help"]);
    for line in [
        "3  the node is not running",
        "4  the token is wrong",
        "5  not found",
    ] {
        assert!(help.contains(line), "--help lacks {line:?}: {help}");
    }
    let failed = |out: &std::process::Output, code: i32, says: &str| {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(says), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    };

    // Never started: no runtime file, nothing at the configured address.
    assert!(!data.join("runtime.json").exists());
    let down = liaison(&data, &["status"]);
    failed(&down, 3, "not running");
    failed(&down, 3, "liaison run");

    let daemon = Daemon::start(&data);
    let wrong = common::run(&data, Some("wrong"), &["status"]);
    failed(&wrong, 4, "token");
    let missing = liaison(&data, &["read", &"0".repeat(64)]);
    failed(&missing, 5, "");
    let missing = liaison(&data, &["group", "show", "no-such-group"]);
    failed(&missing, 5, "no-such-group");
    daemon.stop();

    // Stopped: the node removed its runtime file, and nothing answers any more.
    let down = liaison(&data, &["inbox"]);
    failed(&down, 3, "not running");
}

/// Mistakes a new operator makes get an answer that names the mistake, and change nothing:
/// a second group of the same name, and an access level that does not exist.
#[test]
fn duplicate_group_names_and_unknown_access_levels_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    common::init(&data, "customs");
    let daemon = Daemon::start(&data);
    ok(&data, &["group", "create", "ops"]);
    let again = liaison(&data, &["group", "create", "ops"]);
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("exists already"), "{err}");
    let groups = json(&data, &["group", "list", "--json"]);
    assert_eq!(groups.as_array().map(Vec::len), Some(1), "{groups}");

    let wrong = liaison(&data, &["user", "add", "ana", "--grant", "ops:write"]);
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("\"write\" is neither read nor post"), "{err}");
    let users = json(&data, &["user", "list", "--json"]);
    assert_eq!(users.as_array().map(Vec::len), Some(0), "{users}");
    daemon.stop();
}

/// The short ids `inbox` prints are accepted by `read`, `receipts` and `thread`, as any
/// unambiguous prefix of at least 8 hex digits is.
#[test]
fn short_ids_from_the_inbox_name_their_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("n");
    common::init(&data, "customs");
    let daemon = Daemon::start(&data);
    ok(&data, &["group", "create", "ops"]);
    let id = ok(&data, &["send", "ops", "--subject", "Seizure", "3 icons"]);
    let inbox = ok(&data, &["inbox"]);
    let short = inbox
        .split_whitespace()
        .next()
        .expect("an inbox line")
        .to_owned();
    assert_eq!(short.len(), 16, "{inbox}");
    assert!(id.starts_with(&short), "{short} is not a prefix of {id}");
    let read = json(&data, &["read", &short, "--json"]);
    assert_eq!(read["id"], id.as_str());
    assert!(liaison(&data, &["receipts", &short]).status.success());
    assert!(liaison(&data, &["thread", &short[..8]]).status.success());
    let too_short = liaison(&data, &["read", &short[..7]]);
    assert!(!too_short.status.success());
    let err = String::from_utf8_lossy(&too_short.stderr);
    assert!(err.contains("at least its first 8"), "{err}");
    daemon.stop();
}

/// `peer add` refuses node ids that are no usable key (all zero, a point of small order) with
/// an answer that says so, and pins nothing; it takes a host name as address (resolved at each
/// connection attempt) and connects; `init` writes a commented `advertise` line to fill in, and
/// `liaison id` prints the `advertise` that is set, host name and all.
#[test]
fn peer_keys_are_checked_and_addresses_may_be_host_names() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    common::init(&a, "rilo");
    let toml = std::fs::read_to_string(a.join("node.toml")).expect("node.toml");
    assert!(
        toml.lines().any(|l| l.starts_with("# advertise = ")),
        "no advertise line to fill in:\n{toml}"
    );
    ok(
        &b,
        &[
            "init",
            "--name",
            "customs",
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--advertise",
            "liaison.customs.example:7400",
        ],
    );
    let id_b = ok(&b, &["id"]);
    assert!(id_b.ends_with(" liaison.customs.example:7400"), "{id_b}");
    let toml = std::fs::read_to_string(b.join("node.toml")).expect("node.toml");
    assert!(
        toml.contains("advertise = \"liaison.customs.example:7400\""),
        "{toml}"
    );
    // Run b on whatever port it gets: a pins it by host name.
    let config = toml
        .lines()
        .filter(|l| !l.starts_with("advertise"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(b.join("node.toml"), config).expect("node.toml");
    let da = Daemon::start(&a);
    let db = Daemon::start(&b);

    let id_a = ok(&a, &["id"]);
    let args_a: Vec<&str> = id_a.split_whitespace().collect();
    let id_b = ok(&b, &["id"]);
    let args_b: Vec<&str> = id_b.split_whitespace().collect();
    let port_b = args_b[2].rsplit_once(':').expect("HOST:PORT").1;
    let small_order = format!("01{}", "00".repeat(31));
    for bad in ["0".repeat(64), small_order] {
        let out = liaison(&a, &["peer", "add", "customs", &bad, "localhost:7400"]);
        assert!(!out.status.success(), "key {bad} was pinned");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not an ed25519 public key"), "{err}");
    }
    let peers = json(&a, &["peer", "list", "--json"]);
    assert_eq!(peers.as_array().map(Vec::len), Some(0), "{peers}");

    let by_name = format!("localhost:{port_b}");
    ok(&a, &["peer", "add", "customs", args_b[1], &by_name]);
    ok(&b, &["peer", "add", args_a[0], args_a[1], args_a[2]]);
    eventually("a reaches b by its host name", || {
        let peers = json(&a, &["peer", "list", "--json"]);
        (peers[0]["address"] == by_name.as_str() && peers[0]["state"] == "connected").then_some(())
    });
    da.stop();
    db.stop();
}

/// Every command that changes something answers with one JSON document on stdout under
/// `--json` (errors stay on stderr with a non-zero exit); a RED message to a node that is no
/// member is refused; a member this node sees no way to reach is added with a warning.
#[test]
fn changing_commands_answer_in_json_and_unreachable_members_are_warned_of() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    let init = json(
        &a,
        &[
            "init",
            "--name",
            "rilo",
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
            "--json",
        ],
    );
    assert_eq!(init["name"], "rilo", "{init}");
    assert_eq!(init["node_id"].as_str().map(str::len), Some(64), "{init}");
    assert!(init["token_file"]
        .as_str()
        .is_some_and(|t| t.ends_with("admin.token")));
    common::init(&b, "hub");
    common::init(&c, "leaf");
    let authority = json(
        &a,
        &[
            "authority",
            "init",
            "--key",
            &tmp.path().join("authority.key").display().to_string(),
            "--json",
        ],
    );
    assert_eq!(authority["authority"].as_str().map(str::len), Some(64));
    let (da, db, dc) = (Daemon::start(&a), Daemon::start(&b), Daemon::start(&c));
    // The leaf is b's peer only; a learns of it through b.
    common::link(&b, &c);
    common::link(&a, &b);

    let created = json(&a, &["group", "create", "ops", "--json"]);
    assert_eq!(created["name"], "ops");
    let group = created["id"].as_str().expect("group id").to_owned();
    let added = json(&a, &["group", "add", "ops", "hub", "--json"]);
    assert_eq!(added["id"], group.as_str());
    assert_eq!(
        added["members"].as_array().map(Vec::len),
        Some(2),
        "{added}"
    );
    assert!(
        added.get("warnings").is_none(),
        "a peer is reachable: {added}"
    );

    let leaf_id = ok(&c, &["id"])
        .split_whitespace()
        .nth(1)
        .expect("node id")
        .to_owned();
    let added = eventually("a admits the leaf it knows through the hub", || {
        let out = liaison(&a, &["group", "add", "ops", &leaf_id, "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json"))
    });
    assert_eq!(
        added["members"].as_array().map(Vec::len),
        Some(3),
        "{added}"
    );
    let warning = added["warnings"][0].as_str().unwrap_or_default().to_owned();
    assert!(warning.contains("not a peer of this node"), "{added}");
    // Without --json the warning goes to stderr, and stdout stays what it was.
    ok(&a, &["group", "create", "ops2"]);
    let out = liaison(&a, &["group", "add", "ops2", &leaf_id]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("warning: leaf"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("added "), "{stdout}");

    // A mistake under --json: stdout empty, the error on stderr, non-zero.
    let out = liaison(&a, &["group", "add", "ops", "nobody", "--json"]);
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!out.stderr.is_empty());

    let sent = json(&a, &["send", "ops", "--subject", "Seizure", "x", "--json"]);
    assert_eq!(sent["group"], "ops");
    let id = sent["id"].as_str().expect("message id").to_owned();
    assert_eq!(id.len(), 64);
    let before = json(&a, &["inbox", "--json"]);
    let red = liaison(
        &a,
        &[
            "send",
            "ops",
            "--handling",
            "red",
            "--to",
            "nobody@nowhere",
            "--json",
            "secret",
        ],
    );
    assert!(
        !red.status.success(),
        "a RED message to nobody was accepted"
    );
    assert!(red.stdout.is_empty());
    let err = String::from_utf8_lossy(&red.stderr);
    assert!(err.contains("nobody@nowhere"), "{err}");
    assert_eq!(json(&a, &["inbox", "--json"]), before);

    let user = json(&a, &["user", "add", "ana", "--grant", "ops:post", "--json"]);
    assert_eq!(user["user"]["name"], "ana");
    assert!(user["token"].as_str().is_some_and(|t| !t.is_empty()));
    let granted = json(&a, &["user", "grant", "ana", "ops2:read", "--json"]);
    assert_eq!(granted["name"], "ana");
    let revoked = json(&a, &["user", "revoke", "ana", "ops2", "--json"]);
    assert_eq!(revoked["grants"].as_object().map(|g| g.len()), Some(1));
    assert_eq!(
        json(&a, &["user", "remove", "ana", "--json"])["removed"],
        "ana"
    );

    let q = json(
        &a,
        &["quarantine", "add", &id, "--reason", "check", "--json"],
    );
    assert_eq!(q["id"], id.as_str());
    assert_eq!(
        json(&a, &["quarantine", "release", &id, "--json"])["id"],
        id.as_str()
    );

    let removed = json(&a, &["group", "remove", "ops", &leaf_id, "--json"]);
    assert_eq!(removed["members"].as_array().map(Vec::len), Some(2));
    let pinned = json(
        &c,
        &[
            "peer",
            "add",
            "rilo",
            init["node_id"].as_str().expect("id"),
            "127.0.0.1:9",
            "--json",
        ],
    );
    assert_eq!(pinned["name"], "rilo");
    assert_eq!(
        json(&c, &["peer", "remove", "rilo", "--json"])["removed"],
        "rilo"
    );
    da.stop();
    db.stop();
    dc.stop();
}
