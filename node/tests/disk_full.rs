//! A full disk, through the real binary: the node runs under fault_fs
//! (`tests/fault_fs/fault_fs.c`), whose control file states how many bytes the file system has
//! free (writes beyond them fail with ENOSPC, `statvfs` reports them). A full disk makes posts
//! fail with a clear error and changes nothing; reads go on where they can; status tells the
//! truth; and the node takes posts again once space returns, without a restart.

mod common;

use std::path::Path;

use common::fault_fs::{self, Api, Node};
use common::{eventually, init, liaison, ok, Daemon};
use liaison_node::datadir::DataDir;

const MIB: u64 = 1024 * 1024;

/// States that the disk has `bytes` free from now on.
fn set_free(control: &Path, bytes: u64) {
    let tmp = control.with_extension("new");
    std::fs::write(&tmp, bytes.to_string()).expect("write the space file");
    std::fs::rename(&tmp, control).expect("replace the space file");
}

/// A node with a group, `[store] min_free_mb` set to `floor_mb`; returns the group's id.
fn node_with_group(data: &Path, floor_mb: u64) -> String {
    init(data, "full");
    let dir = DataDir::new(data);
    let mut config = dir.config().expect("config");
    config.store.min_free_mb = floor_mb;
    std::fs::write(dir.config_path(), config.to_toml()).expect("write node.toml");
    let d = Daemon::start(data);
    let group = ok(data, &["group", "create", "disk"]);
    d.stop();
    group
}

fn post(api: &Api, node: &Node, group: &str, text: &str) -> (u16, serde_json::Value) {
    api.post(
        node.api().expect("api"),
        &format!("/v1/groups/{group}/messages"),
        &serde_json::json!({"subject": "disk", "body": text}),
    )
    .expect("the node answers")
}

fn status(api: &Api, node: &Node) -> serde_json::Value {
    let (code, s) = api.get(node.api().expect("api"), "/v1/status");
    assert_eq!(code, 200, "status: {s}");
    s
}

/// The seq of message `id`, read back through the API.
fn seq_of(api: &Api, node: &Node, id: &str) -> u64 {
    let (code, m) = api.get(node.api().expect("api"), &format!("/v1/messages/{id}"));
    assert_eq!(code, 200, "read {id}: {m}");
    m["seq"].as_u64().expect("seq")
}

/// Below the free space the store keeps, posts are refused with 507 and a message that says
/// what to do, before they take a seq: nothing changes, reads go on, status and the CLI say
/// so, and once space is freed the next post takes the next seq.
#[test]
fn a_nearly_full_disk_refuses_posts_changes_nothing_and_recovers() {
    let Some(lib) = fault_fs::library() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, control) = (tmp.path().join("node"), tmp.path().join("space"));
    let group = node_with_group(&data, 16);
    set_free(&control, 1024 * MIB);
    let mut node = Node::start_under(
        &lib,
        &data,
        &tmp.path().join("node.log"),
        &[("FAULT_FS_SPACE", &control)],
    );
    let api = Api::new(&data);

    let mut last = String::new();
    for i in 0..5 {
        let (code, v) = post(&api, &node, &group, &format!("before {i}"));
        assert!(matches!(code, 200 | 201), "post: {v}");
        last = v["id"].as_str().expect("id").to_owned();
    }
    let last_seq = seq_of(&api, &node, &last);
    let s = status(&api, &node);
    assert_eq!(s["store"]["healthy"], true, "{s}");
    let free = s["store"]["free_bytes"].as_u64().expect("free bytes");
    assert!(free <= 1024 * MIB, "status measures the disk: {s}");
    assert!(
        s["store"]["last_flush"].is_string(),
        "status says when the store last flushed: {s}"
    );

    // The disk fills up: 4 MiB left, the store keeps 16.
    set_free(&control, 4 * MIB);
    let s = eventually("status to report the full disk", || {
        let s = status(&api, &node);
        (s["store"]["healthy"] == false).then_some(s)
    });
    let problems = s["store"]["problems"].to_string();
    assert!(problems.contains("nearly full"), "{s}");
    let messages = s["messages"].as_u64().expect("count");

    let (code, v) = post(&api, &node, &group, "refused");
    assert_eq!(code, 507, "a post on a full disk: {v}");
    let error = v["error"].as_str().expect("error text");
    assert!(
        error.contains("nearly full") && error.contains("space is freed"),
        "the error says what happened and what to do: {error}"
    );
    let cli = liaison(&data, &["send", "disk", "--subject", "x", "refused too"]);
    assert!(!cli.status.success(), "the CLI's post fails on a full disk");
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains("nearly full"), "{stderr}");
    let text = ok(&data, &["status"]);
    assert!(
        text.contains("NEEDS ATTENTION") && text.contains("nearly full"),
        "{text}"
    );

    // Nothing changed, and reads go on.
    assert_eq!(status(&api, &node)["messages"].as_u64(), Some(messages));
    let (code, list) = api.get(
        node.api().expect("api"),
        &format!("/v1/messages?group={group}"),
    );
    assert_eq!(code, 200, "inbox on a full disk: {list}");
    assert_eq!(list["messages"].as_array().map(Vec::len), Some(5));
    assert_eq!(seq_of(&api, &node, &last), last_seq);

    // Space returns: posts are taken again, without a restart, and the first one takes the
    // next seq (the refused posts left no hole in this node's sequence).
    set_free(&control, 1024 * MIB);
    eventually("status to report the freed disk", || {
        (status(&api, &node)["store"]["healthy"] == true).then_some(())
    });
    let (code, v) = post(&api, &node, &group, "after");
    assert!(matches!(code, 200 | 201), "post after space returned: {v}");
    let id = v["id"].as_str().expect("id").to_owned();
    assert_eq!(seq_of(&api, &node, &id), last_seq + 1);
    node.stop();
}

/// Another process fills the disk beyond what the store keeps free, then the store's flush
/// fails (syncs fail with ENOSPC, as they can on a full disk). Posts and reads fail with a
/// status and an error that say so, and status says so too; once syncs work and the disk has a
/// little room the store reopens by itself and reads go on (posts wait for the free space the
/// store keeps); once that is back, posts are taken again. Nothing acknowledged is lost, the audit
/// chain stays intact, and all of it is there after a restart.
#[test]
fn a_full_disk_fails_writes_clearly_and_the_store_recovers_when_space_returns() {
    let Some(lib) = fault_fs::library() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let (data, control) = (tmp.path().join("node"), tmp.path().join("space"));
    let fail_sync = tmp.path().join("fail-sync");
    let group = node_with_group(&data, 16);
    set_free(&control, 1024 * MIB);
    let mut node = Node::start_under(
        &lib,
        &data,
        &tmp.path().join("node.log"),
        &[
            ("FAULT_FS_SPACE", &control),
            ("FAULT_FS_FAIL_SYNC", &fail_sync),
        ],
    );
    let api = Api::new(&data);
    let mut acked = Vec::new();
    for i in 0..5 {
        let (code, v) = post(&api, &node, &group, &format!("before {i}"));
        assert!(matches!(code, 200 | 201), "post: {v}");
        acked.push(v["id"].as_str().expect("id").to_owned());
    }
    let addr = node.api().expect("api");

    // Full: not a byte left. Posts and reads are refused (a read cannot be audited), with
    // 507 and an error that says so; status says so.
    set_free(&control, 0);
    let (code, v) = eventually("a read to meet the full disk", || {
        let (code, v) = api.get(addr, &format!("/v1/messages/{}", acked[0]));
        (code != 200).then_some((code, v))
    });
    assert_eq!(code, 507, "a read that cannot be audited: {v}");
    let error = v["error"].as_str().expect("error text");
    assert!(
        error.contains("audit record") && error.contains("disk holding the store is full"),
        "the error says what happened and what to do: {error}"
    );
    let (code, v) = post(&api, &node, &group, "on a full disk");
    assert_eq!(code, 507, "a post on a full disk: {v}");
    let s = status(&api, &node);
    assert_eq!(s["store"]["healthy"], false, "status on a full disk: {s}");
    assert!(
        s["store"]["problems"]
            .to_string()
            .contains("disk holding the store is full"),
        "status says the disk is full: {s}"
    );

    // A little room, but syncs fail: the store's flush fails. It refuses writes (and so
    // reads, which are audited) until it has reopened its database. A read does not wait for
    // the flush its audit record starts, so one may still be answered before that flush has
    // failed; no change is answered after it (the post below).
    set_free(&control, 8 * MIB);
    std::fs::write(&fail_sync, b"").expect("fail syncs");
    let (code, v) = eventually("a read to meet the failed flush", || {
        let (code, v) = api.get(addr, &format!("/v1/messages/{}", acked[0]));
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("flushing"))
            .then_some((code, v))
    });
    assert!(
        matches!(code, 503 | 507),
        "a read whose audit record was not flushed: {code} {v}"
    );
    let s = status(&api, &node);
    let problems = s["store"]["problems"].to_string();
    assert!(problems.contains("flush failed"), "status says so: {s}");
    let (code, v) = post(&api, &node, &group, "while the store is failed");
    assert!(
        matches!(code, 503 | 507),
        "a post on a failed store: {code} {v}"
    );

    // Syncs work again: the store reopens by itself (the disk has some room), reads go on,
    // posts are still refused below the free space the store keeps.
    std::fs::remove_file(&fail_sync).expect("syncs work again");
    eventually("reads to go on once the store reopened", || {
        let (code, _) = api.get(addr, &format!("/v1/messages/{}", acked[0]));
        (code == 200).then_some(())
    });
    let (code, v) = post(&api, &node, &group, "still nearly full");
    assert_eq!(
        code, 507,
        "a post below the free space the store keeps: {v}"
    );
    let s = status(&api, &node);
    let problems = s["store"]["problems"].to_string();
    assert!(problems.contains("nearly full"), "{s}");
    assert!(
        !problems.contains("flush failed"),
        "the store reopened: {s}"
    );
    assert_eq!(s["store"]["reopened"], 1, "{s}");

    // The free space the store keeps is back: posts are taken again.
    set_free(&control, 1024 * MIB);
    eventually("the store to take posts again", || {
        let (code, v) = post(&api, &node, &group, "after");
        matches!(code, 200 | 201).then(|| acked.push(v["id"].as_str().expect("id").to_owned()))
    });
    let s = status(&api, &node);
    assert_eq!(
        s["store"]["healthy"], true,
        "status once space returned: {s}"
    );
    for id in &acked {
        let (code, m) = api.get(addr, &format!("/v1/messages/{id}"));
        assert_eq!(code, 200, "read {id} after the disk was full: {m}");
    }
    let (code, audit) = api.get(addr, "/v1/audit/verify");
    assert_eq!(code, 200, "{audit}");
    assert_eq!(audit["intact"], true, "the audit chain survives: {audit}");
    node.stop();

    // And after a restart, on the same disk.
    let mut node = Node::start(&data, &tmp.path().join("node.log"), &[]);
    let addr = node.api().expect("api");
    for id in &acked {
        let (code, m) = api.get(addr, &format!("/v1/messages/{id}"));
        assert_eq!(code, 200, "read {id} after a restart: {m}");
    }
    let (code, audit) = api.get(addr, "/v1/audit/verify");
    assert_eq!(code, 200, "{audit}");
    assert_eq!(
        audit["intact"], true,
        "the audit chain survives a restart: {audit}"
    );
    if std::env::var_os("LIAISON_SHOW_LOG").is_some() {
        eprintln!("{}", std::fs::read_to_string(&node.log).unwrap_or_default());
    }
    node.stop();
}
