//! The audit log's guarantee against a killed process: the `liaison` binary runs as a real
//! process, answers one API request — a post, a read, a list, a refused read, a refused post, a
//! request without a token — and is killed with SIGKILL as soon as the answer is in. The test
//! then opens the node's store itself: the last audit record must be the one of that request
//! (who, what, on what, how it went), and the chain must be intact. Read-only requests do not
//! wait for a flush of their own, so this is what tells that their record reached the store's
//! log before they were answered.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::fault_fs::{Api, Node};
use common::{init, ok, Daemon};
use liaison_node::audit::{verify, AuditLog, AuditRecord};
use liaison_node::datadir::DataDir;
use liaison_node::store::Store;

/// What the record of the request must say.
struct Expect {
    actor: &'static str,
    action: &'static str,
    target: String,
    outcome_starts: &'static str,
}

/// The last audit record in the store of the (stopped) node at `data`, after checking the
/// chain.
fn last_record(data: &Path, round: usize) -> AuditRecord {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let _inside = runtime.enter();
    let store = Store::open(&DataDir::new(data).store_path())
        .unwrap_or_else(|e| panic!("round {round}: the store does not open after SIGKILL: {e}"));
    let check = verify(&store).expect("verify the audit chain");
    assert!(check.intact, "round {round}: audit chain broken: {check:?}");
    let log = AuditLog::open(store).expect("open the audit log");
    log.records(0)
        .expect("audit records")
        .pop()
        .unwrap_or_else(|| panic!("round {round}: the audit log is empty"))
}

fn status_without_token(api: SocketAddr) -> u16 {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
        .get(format!("http://{api}/v1/status"))
        .send()
        .expect("GET without a token")
        .status()
        .as_u16()
}

#[test]
fn sigkill_after_an_answer_keeps_its_audit_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("node");
    let log = tmp.path().join("node.log");
    init(&data, "alpha");
    let group_id = {
        let daemon = Daemon::start(&data);
        let id = ok(&data, &["group", "create", "desk"]);
        daemon.stop();
        id
    };
    let api = Api::new(&data);
    let mut posted: Option<String> = None;
    // Each kind of request twice: the second time on a store that recovered from the kill.
    for round in 0..12 {
        let mut node = Node::start(&data, &log, &[]);
        let addr = node.api().expect("API address");
        let expect = match round % 6 {
            0 => {
                let body =
                    serde_json::json!({ "subject": "kill", "body": format!("round {round}") });
                let (status, answer) = api
                    .post(addr, "/v1/groups/desk/messages", &body)
                    .expect("post answered");
                assert_eq!(status, 200, "round {round}: post: {answer}");
                let id = answer["id"].as_str().expect("id").to_owned();
                posted = Some(id.clone());
                Expect {
                    actor: "admin",
                    action: "post",
                    target: format!("desk {id}"),
                    outcome_starts: "ok",
                }
            }
            1 => {
                let id = posted.clone().expect("posted in round 0");
                let (status, answer) = api.get(addr, &format!("/v1/messages/{id}"));
                assert_eq!(status, 200, "round {round}: read: {answer}");
                Expect {
                    actor: "admin",
                    action: "read",
                    target: id,
                    outcome_starts: "ok",
                }
            }
            2 => {
                let (status, answer) = api.get(addr, &format!("/v1/messages?group={group_id}"));
                assert_eq!(status, 200, "round {round}: list: {answer}");
                assert!(!answer["messages"].as_array().expect("list").is_empty());
                Expect {
                    actor: "admin",
                    action: "list",
                    target: group_id.clone(),
                    outcome_starts: "ok",
                }
            }
            3 => {
                let (status, _) = api.get(addr, "/v1/groups/nowhere");
                assert_eq!(status, 404, "round {round}: unknown group");
                Expect {
                    actor: "admin",
                    action: "group.show",
                    target: "nowhere".into(),
                    outcome_starts: "error: ",
                }
            }
            4 => {
                let body = serde_json::json!({ "body": "to nowhere" });
                let (status, _) = api
                    .post(addr, "/v1/groups/nowhere/messages", &body)
                    .expect("post answered");
                assert_eq!(status, 404, "round {round}: post to an unknown group");
                Expect {
                    actor: "admin",
                    action: "post",
                    target: "nowhere".into(),
                    outcome_starts: "error: ",
                }
            }
            _ => {
                assert_eq!(status_without_token(addr), 401, "round {round}: no token");
                Expect {
                    actor: "unknown",
                    action: "auth",
                    // The first refusal of its kind since the start is written at once.
                    target: "127.0.0.1 GET /v1/status".into(),
                    outcome_starts: "denied: ",
                }
            }
        };
        node.kill();
        let last = last_record(&data, round);
        assert_eq!(
            (
                last.actor.as_str(),
                last.action.as_str(),
                last.target.as_str()
            ),
            (expect.actor, expect.action, expect.target.as_str()),
            "round {round}: the last audit record is not the answered request's: {last:?}"
        );
        assert!(
            last.outcome.starts_with(expect.outcome_starts),
            "round {round}: outcome {:?}, expected {:?}…",
            last.outcome,
            expect.outcome_starts
        );
    }
}
