//! Officers: grants decide what each officer sees, through the API and the CLI; TLP:RED is
//! for named recipients; exports respect handling codes; everything is in the audit log, and
//! tampering with it is detected.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use common::{eventually, init, json, json_as, link, ok, ok_as, run, Daemon, BIN};

struct Api {
    base: String,
    http: reqwest::blocking::Client,
}

fn api(data: &std::path::Path) -> Api {
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("runtime.json")).expect("runtime.json"))
            .expect("json");
    Api {
        base: format!("http://{}", runtime["api"].as_str().expect("api addr")),
        http: reqwest::blocking::Client::new(),
    }
}

impl Api {
    fn get(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

    fn post(&self, token: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|m| m["id"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn officers_see_exactly_what_they_are_granted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("rilo"), tmp.path().join("museum"));
    init(&a, "rilo");
    init(&b, "museum");
    let da = Daemon::start(&a);
    let db = Daemon::start(&b);
    link(&a, &b);
    let admin = std::fs::read_to_string(a.join("admin.token")).expect("token");
    let admin = admin.trim();

    let ops = ok(&a, &["group", "create", "ops"]);
    let intel = ok(&a, &["group", "create", "intel"]);
    ok(&a, &["group", "add", "ops", "museum", "--role", "reader"]);
    let alice = ok(
        &a,
        &[
            "user",
            "add",
            "alice",
            "--grant",
            "ops:post",
            "--grant",
            "intel:read",
        ],
    );
    let bob = ok(&a, &["user", "add", "bob", "--grant", "ops:read"]);
    assert!(alice.starts_with("lsn_off_") && bob.starts_with("lsn_off_"));
    let users = json(&a, &["user", "list", "--json"]);
    assert_eq!(users.as_array().map(Vec::len), Some(2));
    assert!(
        !users.to_string().contains(&alice),
        "a token is stored or shown again"
    );
    eventually("museum learns ops", || {
        (json(&b, &["group", "list", "--json"]).as_array()?.len() == 1).then_some(())
    });
    let carol = ok(&b, &["user", "add", "carol", "--grant", "ops:post"]);

    let http = api(&a);
    // Groups: alice sees both, bob only ops; intel does not exist for bob.
    let (_, groups) = http.get(&alice, "/v1/groups");
    assert_eq!(groups.as_array().map(Vec::len), Some(2));
    let (_, groups) = http.get(&bob, "/v1/groups");
    assert_eq!(ids(&groups), vec![ops.clone()]);
    let (status, hidden) = http.get(&bob, &format!("/v1/groups/{intel}"));
    let (status_none, none) = http.get(&bob, "/v1/groups/00000000000000000000000000000000");
    assert_eq!((status, status_none), (404, 404));
    assert_eq!(
        hidden["error"].as_str().map(|s| s.replace(&intel, "X")),
        none["error"]
            .as_str()
            .map(|s| s.replace("00000000000000000000000000000000", "X")),
        "a hidden group answers exactly like a missing one"
    );
    // Officers cannot use admin endpoints.
    assert_eq!(http.get(&bob, "/v1/peers").0, 403);
    assert_eq!(http.get(&bob, "/v1/audit").0, 403);

    // Posting: alice in ops (ok), alice in intel (read only: 403), bob in ops (403), bob in
    // intel (404), admin in intel (ok).
    let (status, posted) = http.post(
        &alice,
        &format!("/v1/groups/{ops}/messages"),
        serde_json::json!({"subject": "seizure", "body": "green body", "handling": "green"}),
    );
    assert_eq!(status, 200, "{posted}");
    let green = posted["id"].as_str().expect("id").to_owned();
    assert_eq!(
        http.post(
            &alice,
            &format!("/v1/groups/{intel}/messages"),
            serde_json::json!({"body": "x"})
        )
        .0,
        403
    );
    assert_eq!(
        http.post(
            &bob,
            &format!("/v1/groups/{ops}/messages"),
            serde_json::json!({"body": "x"})
        )
        .0,
        403
    );
    assert_eq!(
        http.post(
            &bob,
            &format!("/v1/groups/{intel}/messages"),
            serde_json::json!({"body": "x"})
        )
        .0,
        404
    );
    let intel_msg = ok(
        &a,
        &[
            "send",
            "intel",
            "--subject",
            "intel only",
            "for intel readers",
        ],
    );

    // AMBER+STRICT and RED messages by alice (CLI, with her token).
    let strict = ok_as(
        &a,
        Some(&alice),
        &[
            "send",
            "ops",
            "--handling",
            "amber+strict",
            "--subject",
            "strict",
            "org only",
        ],
    );
    let no_rcpt = run(
        &a,
        Some(&alice),
        &["send", "ops", "--handling", "red", "red without recipients"],
    );
    assert!(!no_rcpt.status.success());
    let red = ok_as(
        &a,
        Some(&alice),
        &[
            "send",
            "ops",
            "--handling",
            "red",
            "--to",
            "bob@rilo",
            "--to",
            "carol@museum",
            "--subject",
            "red",
            "eyes only",
        ],
    );

    // Bob, through the CLI: ops messages only, the RED one because he is named.
    let inbox = json_as(&a, Some(&bob), &["inbox", "--json"]);
    let mut seen = ids(&inbox);
    seen.sort();
    let mut expected = vec![green.clone(), strict.clone(), red.clone()];
    expected.sort();
    assert_eq!(seen, expected, "bob's inbox");
    let read = json_as(&a, Some(&bob), &["read", &green, "--json"]);
    assert_eq!(
        read["officer"], "alice",
        "the posting officer is shown to readers"
    );
    assert!(!run(&a, Some(&bob), &["read", &intel_msg]).status.success());
    assert!(!run(&a, Some(&bob), &["inbox", "intel"]).status.success());
    assert_eq!(
        json_as(&a, Some(&bob), &["group", "list", "--json"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    // The admin is not named on the RED message: it does not see it.
    assert!(!ids(&json(&a, &["inbox", "ops", "--json"])).contains(&red));
    assert_eq!(http.get(admin, &format!("/v1/messages/{red}")).0, 404);
    // The author officer sees her own RED message.
    assert_eq!(http.get(&alice, &format!("/v1/messages/{red}")).0, 200);

    // The reader node: carol is named on the RED message and reads it; her node may only read.
    eventually("museum receives", || {
        let inbox = json_as(&b, Some(&carol), &["inbox", "--json"]);
        ids(&inbox).contains(&red).then_some(())
    });
    let r = json_as(&b, Some(&carol), &["read", &red, "--json"]);
    assert_eq!(r["body"], "eyes only");
    assert_eq!(r["officer"], "alice");
    let denied = run(&b, Some(&carol), &["send", "ops", "reader node posts"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("only read"));

    // Export: bob gets green, not AMBER+STRICT (named, with the reason), not RED.
    let out = run(&a, Some(&bob), &["export", "ops", "--format", "jsonl"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let exported: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(
        ids(&serde_json::Value::Array(exported.clone())),
        vec![green.clone()]
    );
    assert_eq!(exported[0]["body"], "green body");
    assert!(
        stderr.contains(&strict) && stderr.contains("AMBER+STRICT"),
        "{stderr}"
    );
    assert!(stderr.contains(&red) && stderr.contains("RED"), "{stderr}");

    // Live feed: bob watches ops; alice posts; the message arrives on the stream.
    let mut watch = Command::new(BIN)
        .arg("--data")
        .arg(&a)
        .args(["--token", &bob, "watch", "ops", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let stdout = watch.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // The subscription is in place once the watch is audited.
    eventually("watch subscribed", || {
        let log = json(&a, &["audit", "--json"]);
        log.as_array()?
            .iter()
            .any(|r| r["action"] == "watch")
            .then_some(())
    });
    // A RED message that does not name bob stays off his stream; the next one shows, and
    // first. The author sees her own RED message on her stream.
    let mut own_watch = Command::new(BIN)
        .arg("--data")
        .arg(&a)
        .args(["--token", &alice, "watch", "ops", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watch");
    let own_stdout = own_watch.stdout.take().expect("stdout");
    let (own_tx, own_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(own_stdout).lines().map_while(Result::ok) {
            if own_tx.send(line).is_err() {
                break;
            }
        }
    });
    eventually("both watches subscribed", || {
        let log = json(&a, &["audit", "--json"]);
        (log.as_array()?
            .iter()
            .filter(|r| r["action"] == "watch")
            .count()
            >= 2)
            .then_some(())
    });
    let hidden = ok_as(
        &a,
        Some(&alice),
        &[
            "send",
            "ops",
            "--handling",
            "red",
            "--to",
            "carol@museum",
            "--subject",
            "not for bob",
            "eyes only",
        ],
    );
    let live = ok_as(
        &a,
        Some(&alice),
        &["send", "ops", "--subject", "live", "live body"],
    );
    let line = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("watch prints the new message");
    let m: serde_json::Value = serde_json::from_str(&line).expect("json line");
    assert_eq!(m["id"], live.as_str(), "bob's stream showed {line}");
    assert_eq!(m["body"], serde_json::Value::Null, "a stream shows no body");
    let own: Vec<serde_json::Value> = (0..2)
        .map(|_| {
            let line = own_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("alice's watch prints her messages");
            serde_json::from_str(&line).expect("json line")
        })
        .collect();
    assert_eq!(own[0]["id"], hidden.as_str());
    assert_eq!(own[0]["handling"], "red");
    assert_eq!(own[1]["id"], live.as_str());
    let _ = own_watch.kill();
    let _ = own_watch.wait();

    // Bob's grant is revoked: his open stream ends, saying why, and shows nothing more.
    ok(&a, &["user", "revoke", "bob", "ops"]);
    let status = eventually("the watch ends after the revocation", || {
        watch.try_wait().expect("wait")
    });
    let mut why = String::new();
    watch
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut why)
        .expect("stderr");
    assert!(!status.success(), "watch exited 0 after losing access");
    assert!(why.contains("revoked"), "{why}");
    ok(&a, &["user", "grant", "bob", "ops:read"]);

    // A wrong token is refused and audited.
    assert_eq!(http.get("lsn_off_wrong", "/v1/groups").0, 401);

    // The audit log holds each action once, and verifies.
    let log = json(&a, &["audit", "--json"]);
    let log = log.as_array().expect("records");
    let count = |actor: &str, action: &str, outcome_prefix: &str| {
        log.iter()
            .filter(|r| {
                r["actor"] == actor
                    && r["action"] == action
                    && r["outcome"]
                        .as_str()
                        .is_some_and(|o| o.starts_with(outcome_prefix))
            })
            .count()
    };
    assert_eq!(count("admin", "user.add", "ok"), 2);
    assert_eq!(
        count("officer:alice", "post", "ok"),
        5,
        "green, strict, red, not for bob, live"
    );
    assert_eq!(
        count("officer:alice", "post", "error"),
        1,
        "red without recipients"
    );
    assert_eq!(
        count("officer:alice", "post", "denied"),
        1,
        "intel is read-only for alice"
    );
    assert_eq!(count("officer:bob", "post", "denied"), 2);
    assert_eq!(count("officer:bob", "export", "ok"), 1);
    assert_eq!(count("officer:bob", "read", "ok"), 1);
    assert_eq!(count("officer:bob", "read", "denied"), 1);
    assert_eq!(count("officer:bob", "watch", "ok"), 1);
    assert_eq!(count("unknown", "auth", "denied"), 1);
    assert_eq!(count("admin", "group.add", "ok"), 1);
    assert_eq!(count("admin", "group.create", "ok"), 2);
    assert!(count("officer:bob", "list", "ok") >= 1);
    let verified = ok(&a, &["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");

    // Tamper with record 5 directly in the store while the node is down: verify names it.
    da.stop();
    {
        let db = sled::open(a.join("store")).expect("open store");
        let tree = db.open_tree("audit-v1").expect("tree");
        let key = 5u64.to_be_bytes();
        let mut record: serde_json::Value =
            serde_json::from_slice(&tree.get(key).expect("get").expect("record 5")).expect("json");
        record["outcome"] = serde_json::Value::String("ok (edited)".into());
        tree.insert(key, serde_json::to_vec(&record).expect("encode"))
            .expect("insert");
        db.flush().expect("flush");
    }
    let da = Daemon::start(&a);
    let out = run(&a, None, &["audit", "verify"]);
    assert!(!out.status.success(), "verify must fail after tampering");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("record 5"), "{err}");
    da.stop();
    db.stop();
}
