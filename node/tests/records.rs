//! Structured records end to end: two daemons as real processes; every kind posted through the
//! CLI on one and through the API on the other, read back equal on both; invalid records
//! refused with their field errors; threads and their state following feedback; statistics;
//! exports that keep the nominal section back unless asked, as JSON and per-kind CSV; schemas
//! and templates served.

mod common;

use std::path::Path;

use common::{eventually, init, json, liaison, link, ok, Daemon};
use liaison_protocol::record::{self, Record, RecordKind};

struct Api {
    base: String,
    token: String,
    http: reqwest::blocking::Client,
}

fn api(data: &Path) -> Api {
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("runtime.json")).expect("runtime.json"))
            .expect("json");
    Api {
        base: format!("http://{}", runtime["api"].as_str().expect("api addr")),
        token: std::fs::read_to_string(data.join("admin.token"))
            .expect("token")
            .trim()
            .to_owned(),
        http: reqwest::blocking::Client::new(),
    }
}

impl Api {
    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .expect("request");
        (
            r.status().as_u16(),
            r.json().unwrap_or(serde_json::Value::Null),
        )
    }

    fn text(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .expect("request");
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .expect("request");
        (
            r.status().as_u16(),
            r.json().unwrap_or(serde_json::Value::Null),
        )
    }
}

/// The record a node shows for message `id`, once it holds it.
fn record_on(api: &Api, id: &str) -> serde_json::Value {
    eventually("the message arrives", || {
        let (status, m) = api.get(&format!("/v1/messages/{id}"));
        (status == 200).then_some(m)
    })
}

/// The example of `kind` in its tagged form, to post through the API.
fn tagged(kind: RecordKind) -> serde_json::Value {
    serde_json::to_value(Record::example(kind)).expect("json")
}

/// Writes the filled-in template of `kind` (the example, as `record template` prints it) to a
/// file and returns its path.
fn template_file(data: &Path, dir: &Path, kind: RecordKind) -> std::path::PathBuf {
    let text = ok(data, &["record", "template", kind.as_str()]);
    assert!(text.contains("// "), "a commented template");
    let path = dir.join(format!("{kind}.json"));
    std::fs::write(&path, text).expect("write template");
    path
}

#[test]
fn records_travel_between_two_nodes_through_cli_and_api() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("customs"), tmp.path().join("rilo"));
    init(&a, "customs");
    init(&b, "rilo");
    let _da = Daemon::start(&a);
    let _db = Daemon::start(&b);
    link(&a, &b);
    let group = ok(&b, &["group", "create", "Operation Heritage 2026"]);
    ok(&b, &["group", "add", &group, "customs", "--role", "member"]);
    eventually("group reaches customs", || {
        let groups = json(&a, &["group", "list", "--json"]);
        groups
            .as_array()?
            .iter()
            .any(|g| g["id"] == group.as_str())
            .then_some(())
    });
    let (api_a, api_b) = (api(&a), api(&b));

    // Schemas and templates are served, and they are the protocol's.
    for kind in RecordKind::ALL {
        let (status, schema) = api_a.get(&format!("/v1/schemas/{kind}"));
        assert_eq!(status, 200);
        assert_eq!(schema, record::json_schema(kind));
        let (status, text) = api_a.text(&format!("/v1/schemas/{kind}/template"));
        assert_eq!(status, 200);
        assert_eq!(text, record::template(kind));
    }
    let (_, list) = api_a.get("/v1/schemas");
    assert_eq!(list.as_array().map(Vec::len), Some(RecordKind::ALL.len()));

    // Every kind posted with the CLI on customs and with the API on rilo, read back equal on
    // both nodes. The alert goes first: the feedback replies to it.
    let mut alert_ids: Vec<String> = Vec::new();
    for kind in [
        RecordKind::Alert,
        RecordKind::Note,
        RecordKind::Seizure,
        RecordKind::CulturalObject,
        RecordKind::Request,
        RecordKind::Feedback,
    ] {
        let expect = Record::example(kind).to_json_value();
        // CLI on customs.
        let file = template_file(&a, tmp.path(), kind);
        let mut args = vec![
            "send",
            group.as_str(),
            "--record",
            file.to_str().expect("path"),
        ];
        if kind == RecordKind::Feedback {
            args.extend(["--reply-to", alert_ids[0].as_str()]);
        }
        let id_cli = ok(&a, &args);
        // API on rilo.
        let mut body = tagged(kind);
        body["handling"] = "amber".into();
        if kind == RecordKind::Feedback {
            body["reply_to"] = alert_ids[1].as_str().into();
        }
        let (status, created) = api_b.post(&format!("/v1/groups/{group}/records"), body);
        assert_eq!(status, 200, "{kind}: {created}");
        let id_api = created["id"].as_str().expect("id").to_owned();
        for id in [&id_cli, &id_api] {
            for node in [&api_a, &api_b] {
                let m = record_on(node, id);
                assert_eq!(m["kind"], kind.as_str(), "{m}");
                if kind == RecordKind::Note {
                    assert_eq!(m["subject"], expect["subject"]);
                    assert_eq!(m["body"], expect["body"]);
                } else {
                    assert_eq!(m["record"], expect, "{kind} read back on a node");
                }
            }
        }
        if kind == RecordKind::Alert {
            alert_ids = vec![id_cli.clone(), id_api.clone()];
        }
        // The CLI shows it too.
        let shown = ok(&b, &["read", &id_cli]);
        assert!(shown.contains(&format!("Kind:     {kind}")), "{shown}");
    }

    // Invalid records: the CLI fails with the field, the API answers 422 with every field.
    let mut bad = tagged(RecordKind::Seizure);
    bad["record"]["identifiers"]["containers"][0] = "CSQU3054384".into();
    bad["record"]["items"][0]["hs_code"] = "9706.00".into();
    let bad_file = tmp.path().join("bad.json");
    std::fs::write(&bad_file, bad.to_string()).expect("write");
    let out = liaison(
        &a,
        &["send", &group, "--record", bad_file.to_str().expect("path")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/record/items/0/hs_code") && err.contains("/record/identifiers/containers/0"),
        "{err}"
    );
    let (status, answer) = api_a.post(&format!("/v1/groups/{group}/records"), bad);
    assert_eq!(status, 422, "{answer}");
    let pointers: Vec<&str> = answer["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["pointer"].as_str())
        .collect();
    assert_eq!(
        pointers,
        [
            "/record/items/0/hs_code",
            "/record/identifiers/containers/0"
        ]
    );
    let mut unknown = tagged(RecordKind::Seizure);
    unknown["record"]["place"]["location_type"] = "airpot".into();
    let (status, answer) = api_a.post(&format!("/v1/groups/{group}/records"), unknown);
    assert_eq!(status, 422);
    assert_eq!(
        answer["fields"][0]["pointer"],
        "/record/place/location_type"
    );

    // Replies are checked: feedback must answer an alert or a request of this group.
    let note = ok(&a, &["send", &group, "--subject", "hello", "text"]);
    let mut fb = tagged(RecordKind::Feedback);
    fb["reply_to"] = note.as_str().into();
    let (status, answer) = api_a.post(&format!("/v1/groups/{group}/records"), fb.clone());
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]
        .as_str()
        .unwrap_or("")
        .contains("alert or a request"));
    fb["reply_to"] = "00".repeat(32).into();
    let (status, answer) = api_a.post(&format!("/v1/groups/{group}/records"), fb);
    assert_eq!(status, 400, "{answer}");

    // The thread of the first alert: the feedback below it closes it with a seizure.
    let thread = json(&b, &["thread", &alert_ids[0], "--json"]);
    let entries = thread["entries"].as_array().expect("entries");
    assert_eq!(entries[0]["id"], alert_ids[0]);
    assert_eq!(entries[0]["state"], "closed");
    assert_eq!(entries[0]["closed_by"], "seizure_made");
    assert_eq!(entries[1]["kind"], "feedback");
    assert_eq!(entries[1]["depth"], 1);
    assert_eq!(entries.len(), 2);

    // Statistics count what the group holds.
    let stats = json(&b, &["stats", &group, "--json"]);
    assert_eq!(stats["by_kind"]["seizure"], 2);
    assert_eq!(stats["by_kind"]["feedback"], 2);
    assert_eq!(stats["by_kind"]["note"], 3);
    assert_eq!(stats["by_commodity"]["cultural_heritage"], 2);
    assert_eq!(stats["by_outcome"]["seizure_made"], 2);
    assert_eq!(stats["by_state"]["closed"], 2);
    assert_eq!(
        stats["by_state"]["open"], 2,
        "the two requests have no answer"
    );

    // Exports keep the nominal section back unless asked, in JSON lines and in CSV.
    let lines = ok(&a, &["export", &group]);
    assert!(lines.contains("CSQU3054383"));
    assert!(
        !lines.contains("Petrenko"),
        "nominal data left out by default"
    );
    let full = ok(&a, &["export", &group, "--include-nominal"]);
    assert!(full.contains("Petrenko"));
    let csv = ok(
        &a,
        &["export", &group, "--format", "csv", "--kind", "seizure"],
    );
    let header = csv.lines().next().expect("header");
    assert!(header.contains("items.0.hs_code"), "{header}");
    assert_eq!(csv.lines().count(), 3, "header and two seizures");
    assert!(!csv.contains("Petrenko"));
    let out_dir = tmp.path().join("csv");
    ok(
        &a,
        &[
            "export",
            &group,
            "--format",
            "csv",
            "--out",
            out_dir.to_str().expect("path"),
        ],
    );
    for kind in [
        "seizure",
        "cultural_object",
        "alert",
        "request",
        "feedback",
        "note",
    ] {
        assert!(out_dir.join(format!("{kind}.csv")).exists(), "{kind}.csv");
    }
    let (status, text) = api_a.text(&format!(
        "/v1/groups/{group}/export?format=csv&kind=seizure&include_nominal=true"
    ));
    assert_eq!(status, 200);
    assert!(text.contains("Petrenko"));
    // The API streams its CSV a line at a time; it is the CSV the CLI builds whole.
    let whole = ok(
        &a,
        &[
            "export",
            &group,
            "--format",
            "csv",
            "--kind",
            "seizure",
            "--include-nominal",
        ],
    );
    assert_eq!(text.trim_end(), whole.trim_end());
}
