//! The batch post endpoint (`POST /v1/groups/{group}/messages/batch`) and `liaison send
//! --batch`, against a real node process: each item is answered with its own id or its own
//! error, in order; a bad item changes nothing for the others; every item has its audit
//! record; a batch refused as a whole (too many items, unreadable) posts nothing.

mod common;

use std::path::Path;

use common::{init, json, ok, ok_as, run, Daemon};

struct Api {
    base: String,
    http: reqwest::blocking::Client,
}

impl Api {
    fn of(data: &Path) -> Api {
        let runtime: serde_json::Value = serde_json::from_slice(
            &std::fs::read(data.join("runtime.json")).expect("runtime.json"),
        )
        .expect("json");
        Api {
            base: format!("http://{}", runtime["api"].as_str().expect("api addr")),
            http: reqwest::blocking::Client::builder()
                .no_proxy()
                .build()
                .expect("http client"),
        }
    }

    fn batch(&self, token: &str, group: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/v1/groups/{group}/messages/batch", self.base))
            .bearer_auth(token)
            .body(body)
            .send()
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(serde_json::Value::Null))
    }

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
}

fn admin_token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .expect("admin token")
        .trim()
        .to_owned()
}

/// The bodies of the messages of `group`, by id.
fn bodies(api: &Api, token: &str, group: &str) -> Vec<(String, String)> {
    let (status, list) = api.get(token, &format!("/v1/messages?group={group}&limit=1000"));
    assert_eq!(status, 200, "{list}");
    assert!(list["next"].is_null(), "one page holds them all: {list}");
    // A page is newest first; these are wanted in the order they were posted.
    let mut list = list["messages"].as_array().expect("list").clone();
    list.sort_by_key(|m| (m["created_at_ms"].as_u64(), m["seq"].as_u64()));
    list.iter()
        .map(|m| {
            let id = m["id"].as_str().expect("id").to_owned();
            let (status, full) = api.get(token, &format!("/v1/messages/{id}"));
            assert_eq!(status, 200, "{full}");
            (id, full["body"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// The audit records of posts to `group` (its name as posted to), oldest first.
fn post_records(api: &Api, token: &str, group: &str) -> Vec<(String, String)> {
    let (status, log) = api.get(token, "/v1/audit");
    assert_eq!(status, 200, "{log}");
    log.as_array()
        .expect("audit log")
        .iter()
        .filter(|r| {
            r["action"] == "post" && r["target"].as_str().is_some_and(|t| t.starts_with(group))
        })
        .map(|r| {
            (
                r["target"].as_str().unwrap_or_default().to_owned(),
                r["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn batch_answers_each_item_and_a_bad_item_changes_nothing_for_the_others() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("a");
    init(&data, "alpha");
    let daemon = Daemon::start(&data);
    ok(&data, &["group", "create", "desk"]);
    let api = Api::of(&data);
    let admin = admin_token(&data);

    // A JSON array: messages and records, good and bad, mixed.
    let items = serde_json::json!([
        { "subject": "one", "body": "first" },
        { "kind": "note", "record": { "subject": "two", "body": "second" } },
        { "kind": "seizure", "record": {} },
        { "body": "bad handling", "handling": "purple" },
        "not an object",
        { "body": "reply to nothing", "reply_to": "00".repeat(32) },
        { "subject": "three", "body": "third" },
    ]);
    let (status, answer) = api.batch(&admin, "desk", serde_json::to_vec(&items).expect("json"));
    assert_eq!(status, 200, "{answer}");
    let answers = answer["items"].as_array().expect("items");
    assert_eq!(answers.len(), 7, "{answer}");
    assert_eq!(answer["posted"], 3, "{answer}");
    assert_eq!(answer["failed"], 4, "{answer}");
    for i in [0, 1, 6] {
        assert!(answers[i]["id"].is_string(), "item {i}: {}", answers[i]);
        assert!(
            answers[i].get("error").is_none(),
            "item {i}: {}",
            answers[i]
        );
    }
    assert_eq!(answers[2]["status"], 422, "{}", answers[2]);
    assert!(
        !answers[2]["fields"].as_array().expect("fields").is_empty(),
        "an invalid record names its fields: {}",
        answers[2]
    );
    assert_eq!(answers[3]["status"], 400, "{}", answers[3]);
    assert_eq!(answers[4]["status"], 400, "{}", answers[4]);
    assert!(
        answers[5]["status"].as_u64().is_some_and(|s| s >= 400),
        "{}",
        answers[5]
    );
    for i in [2, 3, 4, 5] {
        assert!(answers[i].get("id").is_none(), "item {i}: {}", answers[i]);
        assert!(answers[i]["error"].is_string(), "item {i}: {}", answers[i]);
    }

    // Exactly the good items are stored, with their content, in the order of the batch.
    let stored = bodies(&api, &admin, "desk");
    let ids: Vec<String> = [0, 1, 6]
        .iter()
        .map(|&i| answers[i]["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(
        stored.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        ids,
        "the stored messages are the good items, in order"
    );
    assert_eq!(stored[0].1, "first");
    assert_eq!(stored[2].1, "third");

    // Each item has its own audit record: the stored ones with their id, the others their
    // error.
    let records = post_records(&api, &admin, "desk");
    assert_eq!(records.len(), 7, "{records:?}");
    for id in &ids {
        assert!(
            records.contains(&(format!("desk {id}"), "ok".to_owned())),
            "no audit record for {id}: {records:?}"
        );
    }
    assert_eq!(
        records
            .iter()
            .filter(|(_, o)| o.starts_with("error: "))
            .count(),
        4,
        "{records:?}"
    );

    // JSON lines: a line that is not JSON is that item's error; blank lines are skipped.
    let lines = b"{\"body\": \"fourth\"}\n\nnot json\n{\"body\": \"fifth\"}\n".to_vec();
    let (status, answer) = api.batch(&admin, "desk", lines);
    assert_eq!(status, 200, "{answer}");
    let answers = answer["items"].as_array().expect("items");
    assert_eq!(answers.len(), 3, "{answer}");
    assert!(
        answers[0]["id"].is_string() && answers[2]["id"].is_string(),
        "{answer}"
    );
    assert_eq!(answers[1]["status"], 400, "{answer}");
    assert_eq!(bodies(&api, &admin, "desk").len(), 5);

    // Refused as a whole, posting nothing: too many items, an unreadable array, nothing at all,
    // an unknown group (each item is refused).
    let many: Vec<serde_json::Value> = (0..1001)
        .map(|i| serde_json::json!({ "body": format!("{i}") }))
        .collect();
    let (status, answer) = api.batch(&admin, "desk", serde_json::to_vec(&many).expect("json"));
    assert_eq!(status, 413, "{answer}");
    let (status, answer) = api.batch(&admin, "desk", b"[{\"body\": \"x\"},".to_vec());
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = api.batch(&admin, "desk", b"  \n".to_vec());
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = api.batch(&admin, "nowhere", b"{\"body\": \"x\"}\n".to_vec());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["items"][0]["status"], 404, "{answer}");
    assert_eq!(
        bodies(&api, &admin, "desk").len(),
        5,
        "nothing more was posted"
    );

    // An officer who may only read: every item refused, nothing posted.
    let reader = ok(&data, &["user", "add", "rita", "--grant", "desk:read"]);
    let (status, answer) = api.batch(
        &reader,
        "desk",
        b"{\"body\": \"x\"}\n{\"body\": \"y\"}\n".to_vec(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["failed"], 2, "{answer}");
    assert_eq!(answer["items"][0]["status"], 403, "{answer}");
    assert_eq!(
        bodies(&api, &admin, "desk").len(),
        5,
        "nothing more was posted"
    );
    daemon.stop();
}

#[test]
fn send_batch_posts_a_jsonl_file_and_names_each_bad_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("a");
    init(&data, "alpha");
    let daemon = Daemon::start(&data);
    ok(&data, &["group", "create", "desk"]);

    let good = tmp.path().join("good.jsonl");
    std::fs::write(
        &good,
        "{\"subject\": \"a\", \"body\": \"alpha\"}\n{\"kind\": \"note\", \"record\": {\"subject\": \"b\", \"body\": \"bravo\"}}\n",
    )
    .expect("write");
    let out = ok(
        &data,
        &["send", "desk", "--batch", good.to_str().expect("path")],
    );
    let answers: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line per item"))
        .collect();
    assert_eq!(answers.len(), 2, "{out}");
    assert_eq!(answers[0]["line"], 1);
    assert_eq!(answers[1]["line"], 2);
    assert!(answers.iter().all(|a| a["id"].is_string()), "{out}");

    // A bad line fails the command, after every line was answered; the good ones are posted.
    let mixed = tmp.path().join("mixed.jsonl");
    std::fs::write(
        &mixed,
        "{\"body\": \"charlie\"}\n\n{\"body\": \"delta\", \"handling\": \"purple\"}\n{\"body\": \"echo\"}\n",
    )
    .expect("write");
    let result = run(
        &data,
        None,
        &["send", "desk", "--batch", mixed.to_str().expect("path")],
    );
    assert!(!result.status.success(), "a bad line fails the command");
    let stdout = String::from_utf8(result.stdout).expect("utf-8");
    let stderr = String::from_utf8_lossy(&result.stderr);
    let answers: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line per item"))
        .collect();
    assert_eq!(answers.len(), 3, "{stdout}");
    assert_eq!(
        answers
            .iter()
            .map(|a| a["line"].as_u64().expect("line"))
            .collect::<Vec<_>>(),
        vec![1, 3, 4],
        "{stdout}"
    );
    assert!(
        answers[0]["id"].is_string() && answers[2]["id"].is_string(),
        "{stdout}"
    );
    assert_eq!(answers[1]["status"], 400, "{stdout}");
    assert!(stderr.contains("1 of 3"), "{stderr}");

    let inbox = json(&data, &["inbox", "desk", "--json"]);
    let subjects: Vec<&str> = inbox
        .as_array()
        .expect("inbox")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(subjects.len(), 4, "the four good items are posted: {inbox}");
    let read = ok_as(
        &data,
        None,
        &["read", answers[2]["id"].as_str().expect("id")],
    );
    assert!(read.contains("echo"), "{read}");

    // A file without items is refused before anything is sent.
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "\n \n").expect("write");
    let result = run(
        &data,
        None,
        &["send", "desk", "--batch", empty.to_str().expect("path")],
    );
    assert!(!result.status.success());
    daemon.stop();
}
