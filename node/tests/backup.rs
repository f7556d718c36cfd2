//! `liaison backup` and `liaison restore` with real nodes: a backup taken while posts go on
//! holds everything acknowledged before it began; a node restored from it learns its own
//! sequence numbers from its peer before it posts, and what it posts then reaches the peer;
//! a wrong passphrase, a damaged backup and a non-empty target are refused and change nothing.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{eventually, init, json, liaison, link, ok, Daemon};

const PASSPHRASE: &str = "customs-rilo-backup-2026\n";

fn ids_in(data: &Path, group: &str) -> BTreeSet<String> {
    json(data, &["inbox", group, "--json"])
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Everything in `dir`, as (relative path, bytes), to show that a refused command changed
/// nothing.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("list") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("inside").display().to_string();
                out.push((rel, std::fs::read(&p).expect("read")));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_backup_under_load_restores_and_the_restored_node_never_reuses_a_sequence_number() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    init(&a, "rilo");
    init(&b, "customs");
    let node_a = Daemon::start(&a);
    let node_b = Daemon::start(&b);
    link(&a, &b);
    let group = ok(&a, &["group", "create", "Operation Backup"]);
    ok(&a, &["group", "add", &group, "customs"]);
    eventually("b has the group", || {
        let groups = json(&b, &["group", "list", "--json"]);
        (groups.as_array().map(Vec::len) == Some(1)).then_some(())
    });

    // Posts go on, one after another, while the backup is taken: each id is kept once the
    // node acknowledged it (the command printed it).
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let poster = {
        let (acked, stop, a, group) = (acked.clone(), stop.clone(), a.clone(), group.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let id = ok(
                    &a,
                    &["send", &group, "--subject", "load", &format!("post {n}")],
                );
                acked.lock().expect("lock").push(id);
            }
        })
    };
    eventually("some posts acknowledged", || {
        (acked.lock().expect("lock").len() >= 10).then_some(())
    });
    let before: Vec<String> = acked.lock().expect("lock").clone();
    let dest = tmp.path().join("nightly");
    let passfile = tmp.path().join("passphrase");
    std::fs::write(&passfile, PASSPHRASE).expect("passphrase");
    let pass = passfile.to_str().expect("utf-8");
    let dest_s = dest.to_str().expect("utf-8");
    ok(
        &a,
        &["backup", dest_s, "--with-keys", "--passphrase-file", pass],
    );
    // More posts after the backup: the restored node has none of them, its peer has all.
    let at_backup = acked.lock().expect("lock").len();
    eventually("posts after the backup", || {
        (acked.lock().expect("lock").len() >= at_backup + 10).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    poster.join().expect("poster");
    let all: Vec<String> = acked.lock().expect("lock").clone();

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).expect("manifest"))
            .expect("json");
    let a_id = ok(&a, &["id"]);
    assert_eq!(
        manifest["node_id"],
        a_id.split_whitespace().nth(1).expect("id")
    );
    assert_eq!(manifest["store_format"], 4);
    assert_eq!(manifest["wire_format"], 1);
    assert_eq!(manifest["keys"], true);
    assert!(manifest["created_at_ms"].as_u64().expect("time") > 0);
    assert!(manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .all(|f| f["blake3"].as_str().map(str::len) == Some(64)));
    // A backup never overwrites.
    let again = liaison(&a, &["backup", dest_s]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));

    eventually("b holds every acknowledged post", || {
        let held = ids_in(&b, &group);
        all.iter().all(|id| held.contains(id)).then_some(())
    });
    node_a.stop();

    // Restore into another data directory; the old one is gone for good.
    let restored = tmp.path().join("a-restored");
    let out = liaison(&restored, &["restore", dest_s, "--passphrase-file", pass]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(restored.join("restored.json").exists());
    let mode = std::fs::metadata(restored.join("identity.key"))
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let mode = std::fs::metadata(&restored)
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the data directory is the node's alone");
    std::fs::remove_dir_all(&a).expect("the old data directory is lost");

    let node_r = Daemon::start(&restored);
    // Everything acknowledged before the backup began is in the restored store.
    let held = ids_in(&restored, &group);
    let missing: Vec<_> = before.iter().filter(|id| !held.contains(*id)).collect();
    assert!(missing.is_empty(), "lost by the backup: {missing:?}");
    let status = json(&restored, &["status", "--json"]);
    assert!(
        status["restore"].is_object(),
        "a restored node says it is catching up: {status}"
    );

    // The node catches up its own sequence numbers from b, then posts again; b takes every
    // new post (a reused number would be dropped by b as a conflict).
    eventually("catch-up done", || {
        let s = json(&restored, &["status", "--json"]);
        s.get("restore").is_none().then_some(())
    });
    assert!(!restored.join("restored.json").exists());
    let mut after = Vec::new();
    for n in 0..10 {
        after.push(ok(
            &restored,
            &[
                "send",
                &group,
                "--subject",
                "after",
                &format!("after restore {n}"),
            ],
        ));
    }
    eventually("b takes every post made after the restore", || {
        let held = ids_in(&b, &group);
        after.iter().all(|id| held.contains(id)).then_some(())
    });
    // And the restored node gets back what it posted after the backup.
    eventually("the restored node has all its posts again", || {
        let held = ids_in(&restored, &group);
        all.iter().all(|id| held.contains(id)).then_some(())
    });
    node_r.stop();
    node_b.stop();
}

#[test]
fn restore_refuses_a_wrong_passphrase_a_damaged_backup_and_a_non_empty_target() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = tmp.path().join("a");
    init(&a, "rilo");
    let node = Daemon::start(&a);
    ok(&a, &["group", "create", "Solo"]);
    let id = ok(&a, &["send", "Solo", "--subject", "s", "kept"]);
    node.stop();

    // The node is stopped: the CLI copies the data directory itself.
    let passfile = tmp.path().join("passphrase");
    std::fs::write(&passfile, PASSPHRASE).expect("passphrase");
    let pass = passfile.to_str().expect("utf-8");
    let short = tmp.path().join("short");
    std::fs::write(&short, "too short").expect("passphrase");
    let dest = tmp.path().join("offline");
    let dest_s = dest.to_str().expect("utf-8");
    let refused = liaison(
        &a,
        &[
            "backup",
            dest_s,
            "--with-keys",
            "--passphrase-file",
            short.to_str().expect("utf-8"),
        ],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("shorter"), "{}", stderr(&refused));
    assert!(!dest.exists());
    ok(
        &a,
        &["backup", dest_s, "--with-keys", "--passphrase-file", pass],
    );
    let backup = tree(&dest);

    // A wrong passphrase.
    let wrong = tmp.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all").expect("wrong");
    let target = tmp.path().join("target");
    let out = liaison(
        &target,
        &[
            "restore",
            dest_s,
            "--passphrase-file",
            wrong.to_str().expect("utf-8"),
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists(), "nothing was written");
    // Keys in the backup and no passphrase.
    let out = liaison(&target, &["restore", dest_s]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("passphrase"), "{}", stderr(&out));
    assert!(!target.exists());

    // A non-empty target.
    std::fs::create_dir(&target).expect("target");
    std::fs::write(target.join("notes.txt"), "keep me").expect("file");
    let out = liaison(&target, &["restore", dest_s, "--passphrase-file", pass]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert_eq!(
        tree(&target),
        vec![("notes.txt".into(), b"keep me".to_vec())]
    );
    // From here on the target is an existing empty directory (a mount point, say).
    std::fs::remove_file(target.join("notes.txt")).expect("clean");
    let empty = |dir: &Path| std::fs::read_dir(dir).expect("list").next().is_none();

    // A damaged backup: one byte of the envelope log flipped.
    let damaged = tmp.path().join("damaged");
    std::fs::create_dir(&damaged).expect("copy");
    for (rel, bytes) in &backup {
        let p = damaged.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("dirs");
        std::fs::write(p, bytes).expect("copy");
    }
    let log = damaged.join("store/envelopes-v4.log");
    let mut bytes = std::fs::read(&log).expect("log");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&log, bytes).expect("damage");
    let out = liaison(
        &target,
        &[
            "restore",
            damaged.to_str().expect("utf-8"),
            "--passphrase-file",
            pass,
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("does not match the manifest"),
        "{}",
        stderr(&out)
    );
    assert!(empty(&target), "nothing was left in the target");
    assert_eq!(tree(&dest), backup, "the backup itself is unchanged");

    // Restored without its keys, with another node's keys put in place: it refuses to start.
    let other = tmp.path().join("other");
    init(&other, "someone-else");
    let keyless = tmp.path().join("keyless");
    let out = liaison(&keyless, &["restore", dest_s, "--without-keys"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!keyless.join("identity.key").exists());
    for key in ["identity.key", "exchange.key", "admin.token"] {
        std::fs::copy(other.join(key), keyless.join(key)).expect("key");
    }
    let out = liaison(&keyless, &["run"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("restored from a backup of node"),
        "{}",
        stderr(&out)
    );

    // The real one restores, and holds the message.
    let out = liaison(&target, &["restore", dest_s, "--passphrase-file", pass]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!target.join(".restoring").exists());
    let mode = std::fs::metadata(&target)
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the data directory is the node's alone");
    // Alone in its group, with no peer at all: the operator lets it post at once.
    ok(&target, &["restore", "--skip-catch-up"]);
    assert!(!target.join("restored.json").exists());
    let node = Daemon::start(&target);
    assert!(ids_in(&target, "Solo").contains(&id));
    let status = json(&target, &["status", "--json"]);
    assert!(status.get("restore").is_none(), "{status}");
    ok(&target, &["send", "Solo", "--subject", "s", "after"]);
    node.stop();
}

/// Pins `a` and `b` to each other again at their current addresses (both restarted on new
/// ports) and waits until they are connected.
fn relink(a: &Path, b: &Path) {
    let id_a = ok(a, &["id"]);
    let id_b = ok(b, &["id"]);
    let args_a: Vec<&str> = id_a.split_whitespace().collect();
    let args_b: Vec<&str> = id_b.split_whitespace().collect();
    ok(
        a,
        &["peer", "add", "--replace", args_b[0], args_b[1], args_b[2]],
    );
    ok(
        b,
        &["peer", "add", "--replace", args_a[0], args_a[1], args_a[2]],
    );
    for (x, name) in [(a, args_b[0]), (b, args_a[0])] {
        eventually("peers connect", || {
            let peers = json(x, &["peer", "list", "--json"]);
            peers
                .as_array()?
                .iter()
                .any(|p| p["name"] == name && p["state"] == "connected")
                .then_some(())
        });
    }
}

fn members(data: &Path, group: &str) -> usize {
    json(data, &["group", "show", group, "--json"])["members"]
        .as_array()
        .map_or(0, Vec::len)
}

/// A group this node owned alone when the backup was taken, and to which it added a member
/// afterwards: restored, it believes it is alone again. It must learn its own later control
/// event from that member before it changes the group, or its next change would be a second,
/// different event with the same number, which every member refuses.
#[test]
fn a_restored_owner_learns_its_later_group_changes_before_it_changes_the_group() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b, c) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    init(&a, "rilo");
    init(&b, "customs");
    init(&c, "museum");
    let node_a = Daemon::start(&a);
    let node_b = Daemon::start(&b);
    let node_c = Daemon::start(&c);
    link(&a, &b);
    link(&a, &c);
    let group = ok(&a, &["group", "create", "Heritage"]);
    let dest = tmp.path().join("before-b");
    ok(&a, &["backup", dest.to_str().expect("utf-8")]);

    ok(&a, &["group", "add", &group, "customs"]);
    let mut posted = Vec::new();
    for n in 0..3 {
        posted.push(ok(&a, &["send", &group, "--subject", "s", &format!("{n}")]));
    }
    eventually("b has a's posts", || {
        let held = json(&b, &["inbox", "--json"]);
        (held.as_array().map(Vec::len) == Some(3)).then_some(())
    });
    node_a.stop();
    node_b.stop();

    // The backup holds no keys: they are put in place by hand.
    let r = tmp.path().join("restored");
    let out = liaison(&r, &["restore", dest.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    for key in ["identity.key", "exchange.key", "admin.token"] {
        std::fs::copy(a.join(key), r.join(key)).expect("key");
    }
    std::fs::remove_dir_all(&a).expect("the old data directory is lost");
    let node_r = Daemon::start(&r);
    // No member reachable (c is connected, but not in the group): it waits.
    assert_eq!(members(&r, &group), 1, "the backup predates b");
    let status = json(&r, &["status", "--json"]);
    assert_eq!(
        status["restore"]["pending_groups"][0],
        group.as_str(),
        "{status}"
    );
    assert_eq!(status["restore"]["heard_from_peer"], false);
    let refused = liaison(&r, &["group", "add", &group, "museum"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("restored from a backup"),
        "{}",
        stderr(&refused)
    );
    let text = ok(&r, &["status"]);
    assert!(text.contains("restored from a backup"), "{text}");

    // b comes back: the restored node learns the event that added b, and its posts.
    let node_b = Daemon::start(&b);
    relink(&r, &b);
    eventually("catch-up done", || {
        json(&r, &["status", "--json"])
            .get("restore")
            .is_none()
            .then_some(())
    });
    assert_eq!(members(&r, &group), 2);
    ok(&r, &["group", "add", &group, "museum"]);
    eventually("b takes the new change (no second event 2)", || {
        (members(&b, &group) == 3).then_some(())
    });
    let id = ok(&r, &["send", &group, "--subject", "s", "after restore"]);
    eventually("b and c take the new post", || {
        let on_b = ids_in(&b, &group);
        let on_c = ids_in(&c, &group);
        (on_b.contains(&id) && on_c.contains(&id)).then_some(())
    });
    eventually("the restored node has its own posts back", || {
        let held = ids_in(&r, &group);
        posted.iter().all(|p| held.contains(p)).then_some(())
    });
    node_r.stop();
    node_b.stop();
    node_c.stop();
}

/// The new commands are completed by the shells and have manual pages.
#[test]
fn backup_and_restore_have_completions_and_manual_pages() {
    let out = std::process::Command::new(common::BIN)
        .args(["completions", "bash"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).expect("utf-8");
    for word in ["backup", "restore", "--with-keys", "--skip-catch-up"] {
        assert!(script.contains(word), "{word}");
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let man = tmp.path().join("man1");
    let out = std::process::Command::new(common::BIN)
        .arg("man")
        .arg(&man)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(man.join("liaison-restore.1")).expect("restore page");
    assert!(page.contains("skip\\-catch\\-up"), "{page}");
    assert!(man.join("liaison-backup.1").exists());
}
