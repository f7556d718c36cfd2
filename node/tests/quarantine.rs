//! Quarantine through the `liaison` binary: the admin takes a stored message out of every view
//! of the node (inbox, read, export, thread), across a restart, and puts it back; officers may
//! not; and the message stays stored and served to the group's other members.

mod common;

use common::{eventually, init, json, liaison, link, ok, run, Daemon};

fn listed(inbox: &serde_json::Value, id: &str) -> bool {
    inbox
        .as_array()
        .is_some_and(|a| a.iter().any(|m| m["id"] == id))
}

#[test]
fn the_admin_quarantines_a_message_out_of_every_view_and_releases_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    init(&a, "rilo");
    init(&b, "customs");
    let da = Daemon::start(&a);
    let db = Daemon::start(&b);
    link(&a, &b);
    let group = ok(&a, &["group", "create", "ops"]);
    ok(&a, &["group", "add", "ops", "customs", "--role", "member"]);
    let bad = ok(&a, &["send", "ops", "--subject", "Breaks the inbox", "x"]);
    let good = ok(&a, &["send", "ops", "--subject", "Fine", "y"]);

    // Refused: no reason, an unknown message, an officer.
    let no_reason = liaison(&a, &["quarantine", "add", &bad, "--reason", " "]);
    assert!(!no_reason.status.success());
    assert!(String::from_utf8_lossy(&no_reason.stderr).contains("needs a reason"));
    let unknown = liaison(
        &a,
        &["quarantine", "add", &"ab".repeat(32), "--reason", "test"],
    );
    assert!(!unknown.status.success());
    let officer = ok(&a, &["user", "add", "bob", "--grant", "ops:read"]);
    let denied = run(
        &a,
        Some(&officer),
        &["quarantine", "add", &bad, "--reason", "mine"],
    );
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("admin token"));

    let out = ok(
        &a,
        &["quarantine", "add", &bad, "--reason", "breaks the inbox"],
    );
    assert!(out.contains(&bad), "{out}");
    let hidden = |data: &std::path::Path| {
        let inbox = json(data, &["inbox", "--json"]);
        assert!(!listed(&inbox, &bad), "the quarantined message is listed");
        assert!(listed(&inbox, &good));
        let read = liaison(data, &["read", &bad]);
        assert!(!read.status.success());
        let err = String::from_utf8_lossy(&read.stderr).into_owned();
        assert!(
            err.contains("quarantined") && err.contains("breaks the inbox"),
            "{err}"
        );
        let export = ok(data, &["export", &group]);
        assert!(!export.contains(&bad) && export.contains(&good), "{export}");
        assert!(!liaison(data, &["thread", &bad]).status.success());
        let list = json(data, &["quarantine", "list", "--json"]);
        assert_eq!(list[0]["id"], bad.as_str());
        assert_eq!(list[0]["reason"], "breaks the inbox");
    };
    hidden(&a);
    // The officer does not see it either, and is told nothing about it.
    let read = run(&a, Some(&officer), &["read", &bad]);
    assert!(!read.status.success());
    assert!(!String::from_utf8_lossy(&read.stderr).contains("quarantined"));

    // Still stored and served: the member gets it.
    eventually("b receives the quarantined message", || {
        listed(&json(&b, &["inbox", "--json"]), &bad).then_some(())
    });

    // Across a restart.
    da.stop();
    let da = Daemon::start(&a);
    hidden(&a);

    let out = ok(&a, &["quarantine", "release", &bad]);
    assert!(out.contains(&bad), "{out}");
    assert!(listed(&json(&a, &["inbox", "--json"]), &bad));
    assert!(liaison(&a, &["read", &bad]).status.success());
    let list = json(&a, &["quarantine", "list", "--json"]);
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    let again = liaison(&a, &["quarantine", "release", &bad]);
    assert!(!again.status.success());
    da.stop();
    db.stop();
}
