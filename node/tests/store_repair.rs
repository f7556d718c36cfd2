//! A damaged store, through the real binary: what sled leaves half-made or damaged does not stop
//! a start, a damaged index is restored from the envelope log without losing messages, groups
//! or audit records, and an operator can check the store and rebuild its index with
//! `liaison store check` and `liaison store rebuild`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{eventually, init, json, liaison, link, ok, Daemon};
use liaison_node::datadir::DataDir;

const POSTS: usize = 40;

/// A stopped node with a group and `POSTS` posts; returns the group id and the post ids.
fn node_with_posts(data: &Path) -> (String, Vec<String>) {
    init(data, "store");
    let d = Daemon::start(data);
    let group = ok(data, &["group", "create", "repair"]);
    let ids = (0..POSTS)
        .map(|i| {
            ok(
                data,
                &["send", "repair", "--subject", "s", &format!("post {i}")],
            )
        })
        .collect();
    d.stop();
    (group, ids)
}

/// Starts the node and checks that it holds every post of `ids` with its text, the group, and
/// an intact audit chain of at least `audit` records; returns its status and the node.
fn start_and_check(data: &Path, ids: &[String], audit: u64) -> (serde_json::Value, Daemon) {
    let d = Daemon::start(data);
    let groups = json(data, &["group", "list", "--json"]);
    assert!(
        groups.to_string().contains("\"repair\""),
        "the group is there: {groups}"
    );
    let inbox = json(data, &["inbox", "repair", "--json"]);
    let held: BTreeSet<&str> = inbox
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    let lost: Vec<&String> = ids
        .iter()
        .filter(|id| !held.contains(id.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} posts lost",
        lost.len(),
        ids.len()
    );
    for (i, id) in ids.iter().enumerate() {
        let m = json(data, &["read", id, "--json"]);
        assert_eq!(m["body"].as_str(), Some(format!("post {i}").as_str()));
    }
    let verify = json(data, &["audit", "verify", "--json"]);
    assert_eq!(verify["intact"], true, "{verify}");
    assert!(
        verify["records"].as_u64().expect("records") >= audit,
        "audit records lost: {verify}, had {audit}"
    );
    (json(data, &["status", "--json"]), d)
}

/// The audit records of a running node.
fn audit_records(data: &Path) -> u64 {
    json(data, &["audit", "verify", "--json"])["records"]
        .as_u64()
        .expect("records")
}

fn repaired(status: &serde_json::Value) -> String {
    status["store"]["repaired_at_start"].to_string()
}

/// sled 0.34 leaves an empty `snap.*.generating` when a full disk cuts a snapshot short, and
/// every later open failed with "Read corrupted data" (spacejam/sled#1527); a damaged `conf`
/// stopped the start with a message that did not help. Both are handled at start.
#[test]
fn a_start_goes_past_what_sled_left_half_made_or_damaged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("node");
    let (_, ids) = node_with_posts(&data);
    let audit = {
        let d = Daemon::start(&data);
        let n = audit_records(&data);
        d.stop();
        n
    };
    let store = data.join("store");
    std::fs::write(store.join("snap.00000000000A2F3C.generating"), b"").expect("leftover");
    std::fs::write(
        store.join("conf"),
        b"segment_size: 524288\nuse_compression: true\nversion: 0.3\n\xde\xad\xbe\xef",
    )
    .expect("damage conf");
    let (status, d) = start_and_check(&data, &ids, audit);
    let text = repaired(&status);
    assert!(
        text.contains("half-written snapshot"),
        "status says what was removed: {status}"
    );
    assert!(
        !store.join("snap.00000000000A2F3C.generating").exists(),
        "the leftover is gone"
    );
    d.stop();
}

/// Damage to sled's `db` file lost messages, a group and audit records without a word (one
/// trial started with 0 of 300 messages and `audit verify` said intact). The envelope log holds
/// them all: the start restores the index from it and says so.
#[test]
fn a_damaged_index_is_restored_from_the_envelope_log_at_start() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("node");
    let (_, ids) = node_with_posts(&data);
    let audit = {
        let d = Daemon::start(&data);
        let n = audit_records(&data);
        d.stop();
        n
    };
    // Garble what sled wrote into its data file (which it fills with zeros ahead of its
    // writes), past its first third.
    let db = data.join("store").join("db");
    let mut bytes = std::fs::read(&db).expect("db");
    let used = bytes.iter().rposition(|b| *b != 0).expect("sled wrote") + 1;
    for (i, b) in bytes[used / 3..used].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&db, &bytes).expect("garble db");

    let (status, d) = start_and_check(&data, &ids, audit);
    let text = repaired(&status);
    assert!(
        text.contains("envelope log"),
        "status says the index was restored from the envelope log: {status}"
    );
    d.stop();
}

/// `liaison store check` reads the whole store and says whether it is sound (exit 0) or what is
/// damaged (exit 1); it marks a damaged envelope, which the node then reports as waiting to be
/// fetched again. `liaison store rebuild` rebuilds the index from the envelope log, keeping the
/// accounts. Both refuse a store the node has open, and their --help says when to use them.
#[test]
fn store_check_and_rebuild_from_the_cli() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("node");
    let (_, ids) = node_with_posts(&data);

    for (args, phrases) in [
        (
            &["store", "--help"][..],
            &["check", "rebuild", "stop the node first"][..],
        ),
        (
            &["store", "check", "--help"][..],
            &["Stop the node first", "fetches them again", "Exits 0"][..],
        ),
        (
            &["store", "rebuild", "--help"][..],
            &["Stop the node first", "set-aside", "accounts"][..],
        ),
    ] {
        let help = ok(&data, args);
        for phrase in phrases {
            assert!(help.contains(phrase), "{args:?} says {phrase:?}:\n{help}");
        }
    }

    // Refused while the node runs.
    let d = Daemon::start(&data);
    let _officer = ok(&data, &["user", "add", "clerk"]);
    let audit = audit_records(&data);
    let busy = liaison(&data, &["store", "check"]);
    assert!(!busy.status.success());
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(err.contains("in use"), "{err}");
    d.stop();

    let sound = ok(&data, &["store", "check"]);
    assert!(sound.contains("result    sound"), "{sound}");
    let report = json(&data, &["store", "check", "--json"]);
    assert_eq!(report["sound"], true, "{report}");
    assert_eq!(report["messages"].as_u64(), Some(POSTS as u64), "{report}");
    assert!(
        sound.contains(&format!("messages  {POSTS} in the index")),
        "{sound}"
    );

    // Damage one envelope in the log: a byte of its frame, found by the message id it holds.
    let log = data.join("store").join("envelopes-v4.log");
    let mut bytes = std::fs::read(&log).expect("log");
    let id = hex::decode(&ids[7]).expect("hex id");
    let at = bytes
        .windows(id.len())
        .position(|w| w == id.as_slice())
        .expect("the frame holds the message id");
    bytes[at + id.len() + 8] ^= 0xff;
    std::fs::write(&log, &bytes).expect("damage the log");

    let out = liaison(&data, &["store", "check"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "check fails: {report}");
    assert!(report.contains("damaged   1 messages"), "{report}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged"), "{err}");

    // The node reports the damaged message as waiting to be fetched again; the others read.
    let d = Daemon::start(&data);
    let status = json(&data, &["status", "--json"]);
    assert_eq!(status["store"]["damaged"], 1, "{status}");
    assert!(
        status["store"]["problems"]
            .to_string()
            .contains("fetched again"),
        "{status}"
    );
    assert!(!liaison(&data, &["read", &ids[7]]).status.success());
    assert!(liaison(&data, &["read", &ids[8]]).status.success());
    d.stop();

    // Rebuild: sled's files set aside, the index rebuilt from the log, the account kept.
    let out = ok(&data, &["store", "rebuild"]);
    assert!(
        out.contains(&format!("{} messages", POSTS - 1)),
        "the damaged envelope is not indexed again: {out}"
    );
    assert!(out.contains("copied from the old index"), "{out}");
    let aside = std::fs::read_dir(data.join("store"))
        .expect("store dir")
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().starts_with("set-aside-"));
    assert!(aside, "the old index is set aside, not deleted");
    let d = Daemon::start(&data);
    let users = json(&data, &["user", "list", "--json"]);
    assert!(users.to_string().contains("clerk"), "{users}");
    let verify = json(&data, &["audit", "verify", "--json"]);
    assert_eq!(verify["intact"], true, "{verify}");
    assert!(verify["records"].as_u64().expect("records") >= audit);
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| *i != 7) {
        let m = json(&data, &["read", id, "--json"]);
        assert_eq!(m["body"].as_str(), Some(format!("post {i}").as_str()));
    }
    d.stop();
}

/// A damaged envelope was answered with 500 on read and left out of listings, and never fetched
/// again although its error said to re-sync it from peers. Now the node fetches it again from
/// a peer that holds it, by itself, and says so in status meanwhile.
#[test]
fn a_damaged_envelope_is_fetched_again_from_a_peer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, name) in [(&a, "customs-a"), (&b, "customs-b")] {
        init(dir, name);
        let d = DataDir::new(dir);
        let mut config = d.config().expect("config");
        config.sync.interval_ms = 200;
        std::fs::write(d.config_path(), config.to_toml()).expect("write node.toml");
    }
    let (da, db) = (Daemon::start(&a), Daemon::start(&b));
    link(&a, &b);
    ok(&a, &["group", "create", "repair"]);
    ok(&a, &["group", "add", "repair", "customs-b"]);
    eventually("the group to reach b", || {
        liaison(&b, &["group", "show", "repair"])
            .status
            .success()
            .then_some(())
    });
    let ids: Vec<String> = (0..5)
        .map(|i| {
            ok(
                &b,
                &["send", "repair", "--subject", "s", &format!("from b {i}")],
            )
        })
        .collect();
    for id in &ids {
        eventually("a to receive b's posts", || {
            liaison(&a, &["read", id]).status.success().then_some(())
        });
    }
    da.stop();

    // Damage one of b's envelopes in a's log.
    let log = a.join("store").join("envelopes-v4.log");
    let mut bytes = std::fs::read(&log).expect("log");
    let id = hex::decode(&ids[2]).expect("hex id");
    let at = bytes
        .windows(id.len())
        .position(|w| w == id.as_slice())
        .expect("the frame holds the message id");
    bytes[at + id.len() + 8] ^= 0xff;
    std::fs::write(&log, &bytes).expect("damage the log");
    let out = liaison(&a, &["store", "check"]);
    assert_eq!(out.status.code(), Some(1), "check finds the damage");

    let da = Daemon::start(&a);
    eventually("a to fetch the damaged envelope again from b", || {
        let out = liaison(&a, &["read", &ids[2], "--json"]);
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (out.status.success() && m["body"].as_str() == Some("from b 2")).then_some(())
    });
    eventually("status to show the repair done", || {
        let s = json(&a, &["status", "--json"]);
        (s["store"]["damaged"] == 0 && s["store"]["healthy"] == true).then_some(())
    });
    da.stop();
    db.stop();
    // The old frame stays in the log as bytes no record points into: sound.
    let sound = ok(&a, &["store", "check"]);
    assert!(
        sound.contains("result    sound") && sound.contains("1 damaged stretches"),
        "{sound}"
    );
}
