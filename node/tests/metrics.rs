//! The Prometheus endpoint, scraped while real nodes exchange messages: its counts are the
//! counts of what happened.

use std::net::SocketAddr;

use liaison_node::config::Config;
use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::demo::{create_group, holds, knows_group, peer, peer_ready, wait_until};
use liaison_protocol::message::MessageId;
use liaison_protocol::{GroupId, Role};

/// Creates and starts node `name` in `root/name` on loopback, ports chosen by the system, with
/// a short sync interval; `tweak` changes its config first.
async fn start_with(
    root: &std::path::Path,
    name: &str,
    tweak: impl FnOnce(&mut Config),
) -> RunningNode {
    let dir = DataDir::new(root.join(name));
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config::new(name, any, any);
    config.sync.interval_ms = 200;
    config.transport.redial_min_ms = 100;
    config.transport.redial_max_ms = 2_000;
    config.web.enabled = false;
    tweak(&mut config);
    dir.init(&config, &mut rand_core::OsRng).expect("init node");
    liaison_node::daemon::start(&dir).await.expect("start node")
}

/// The value of the sample `name` whose labels include every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let (set, value) = r.split_once("} ")?;
                (set, value)
            }
            None => ("", rest.strip_prefix(' ')?),
        };
        let all = labels
            .iter()
            .all(|(k, v)| set.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        all.then(|| value.trim().parse().ok()).flatten()
    })
}

async fn scrape(addr: SocketAddr) -> String {
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert!(response.status().is_success());
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    response.text().await.expect("body")
}

async fn start(root: &std::path::Path, name: &str) -> RunningNode {
    start_with(root, name, |c| {
        c.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
}

/// Posts `text` to `group` through `node`'s HTTP API, as the admin; returns the message id.
async fn post_http(
    root: &std::path::Path,
    node: &RunningNode,
    group: GroupId,
    text: &str,
) -> MessageId {
    let token = DataDir::new(root.join(&node.name))
        .admin_token()
        .expect("token");
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/groups/{group}/messages",
            node.api_addr
        ))
        .bearer_auth(token.as_str())
        .json(&serde_json::json!({ "subject": text, "body": text }))
        .send()
        .await
        .expect("post");
    assert!(response.status().is_success(), "{}", response.status());
    let created: serde_json::Value = response.json().await.expect("JSON");
    created["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("message id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_relayed_exchange() {
    let root = tempfile::tempdir().expect("tmp");
    // The owner relays between two members that do not know each other.
    let owner = start(root.path(), "owner").await;
    let left = start(root.path(), "left").await;
    let right = start(root.path(), "right").await;
    for (a, b) in [(&owner, &left), (&owner, &right)] {
        peer(a, b).await.expect("pin");
        wait_until("link", || peer_ready(&a.handle, &b.name))
            .await
            .expect("a sees b");
        wait_until("link", || peer_ready(&b.handle, &a.name))
            .await
            .expect("b sees a");
    }
    let g = create_group(
        &owner,
        "ops",
        &[(&left, Role::Member), (&right, Role::Member)],
    )
    .await
    .expect("group");
    for n in [&left, &right] {
        wait_until("group", || knows_group(&n.handle, g))
            .await
            .expect("member knows the group");
    }

    // Three posts on the left, one on the right, each through the HTTP API.
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(post_http(root.path(), &left, g, &format!("left {i}")).await);
    }
    ids.push(post_http(root.path(), &right, g, "right 0").await);
    // A request with a wrong token is counted with its status.
    let refused = reqwest::Client::new()
        .get(format!("http://{}/v1/status", left.api_addr))
        .bearer_auth("not-the-token")
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status().as_u16(), 401);
    // A method HTTP does not define is counted, under `other`, not as a label of its own.
    let method = reqwest::Method::from_bytes(b"BREW").expect("method");
    let odd = reqwest::Client::new()
        .request(method, format!("http://{}/v1/status", left.api_addr))
        .send()
        .await
        .expect("request");
    assert!(odd.status().is_client_error());

    for n in [&owner, &left, &right] {
        for id in &ids {
            wait_until("delivery", || holds(&n.handle, *id))
                .await
                .expect("delivered");
        }
    }
    wait_until("four messages everywhere", || async {
        for n in [&owner, &left, &right] {
            let status = n.handle.as_admin().status().await.expect("up");
            if status.messages != 4 {
                return false;
            }
        }
        true
    })
    .await
    .expect("four messages everywhere");
    // Each member's peer (the owner) asks it to sync every interval: wait until the lag it
    // reports is in, and then zero both ways.
    let left_addr = left.metrics_addr.expect("metrics served");
    let owner_addr = owner.metrics_addr.expect("metrics served");
    let right_addr = right.metrics_addr.expect("metrics served");
    let group = g.short();
    wait_until("lag reported", || async {
        let text = scrape(left_addr).await;
        let labels = [("peer", "owner"), ("group", group.as_str())];
        sample(&text, "liaison_sync_lag_messages", &labels) == Some(0.0)
            && sample(&text, "liaison_sync_peer_lag_messages", &labels) == Some(0.0)
    })
    .await
    .expect("lag reported");
    // Receipts travel after storage: wait until the left has one for its posts.
    wait_until("receipts", || async {
        let text = scrape(left_addr).await;
        sample(
            &text,
            "liaison_receipts_total",
            &[("direction", "received")],
        )
        .is_some_and(|n| n >= 1.0)
    })
    .await
    .expect("receipts received");

    let left_text = scrape(left_addr).await;
    let owner_text = scrape(owner_addr).await;
    let right_text = scrape(right_addr).await;
    let stored = |text: &str, origin: &str| {
        sample(text, "liaison_messages_stored_total", &[("origin", origin)])
    };
    assert_eq!(stored(&left_text, "local"), Some(3.0), "{left_text}");
    assert_eq!(stored(&left_text, "peer"), Some(1.0), "{left_text}");
    assert_eq!(stored(&right_text, "local"), Some(1.0), "{right_text}");
    assert_eq!(stored(&right_text, "peer"), Some(3.0), "{right_text}");
    assert_eq!(stored(&owner_text, "peer"), Some(4.0), "{owner_text}");
    assert_eq!(
        sample(&left_text, "liaison_messages_received_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        sample(&owner_text, "liaison_messages_received_total", &[]),
        Some(4.0)
    );
    // The owner relayed each member's posts to the other member (a sync answer may carry one
    // again); the members relayed nothing.
    let relayed = sample(&owner_text, "liaison_messages_relayed_total", &[]).expect("relayed");
    assert!(relayed >= 4.0, "{owner_text}");
    assert_eq!(
        sample(&left_text, "liaison_messages_relayed_total", &[]),
        Some(0.0)
    );
    assert!(
        sample(
            &left_text,
            "liaison_receipts_total",
            &[("direction", "signed")]
        )
        .is_some_and(|n| n >= 1.0),
        "{left_text}"
    );
    assert_eq!(
        sample(&owner_text, "liaison_peers", &[("state", "connected")]),
        Some(2.0)
    );
    assert_eq!(
        sample(&left_text, "liaison_peers", &[("state", "connected")]),
        Some(1.0)
    );
    for text in [&left_text, &owner_text, &right_text] {
        assert_eq!(sample(text, "liaison_store_messages", &[]), Some(4.0));
        assert!(sample(text, "liaison_store_size_bytes", &[]).is_some_and(|b| b > 0.0));
        assert!(sample(text, "liaison_disk_free_bytes", &[]).is_some_and(|b| b > 0.0));
        assert!(sample(text, "liaison_store_flush_seconds_count", &[]).is_some_and(|n| n >= 1.0));
        assert_eq!(
            sample(text, "liaison_rejected_total", &[]),
            None,
            "nothing was refused: {text}"
        );
        assert_eq!(sample(text, "liaison_event_streams_open", &[]), Some(0.0));
    }
    let route = "/v1/groups/{group}/messages";
    let posts = |text: &str| {
        sample(
            text,
            "liaison_api_request_duration_seconds_count",
            &[("method", "POST"), ("route", route), ("status", "200")],
        )
    };
    assert_eq!(posts(&left_text), Some(3.0), "{left_text}");
    assert_eq!(posts(&right_text), Some(1.0));
    assert_eq!(posts(&owner_text), None);
    assert_eq!(
        sample(
            &left_text,
            "liaison_api_request_duration_seconds_count",
            &[
                ("method", "GET"),
                ("route", "/v1/status"),
                ("status", "401")
            ],
        ),
        Some(1.0),
        "{left_text}"
    );

    assert_eq!(
        sample(
            &left_text,
            "liaison_api_request_duration_seconds_count",
            &[("method", "other")],
        ),
        Some(1.0),
        "{left_text}"
    );
    assert!(!left_text.contains("BREW"), "{left_text}");
    dashboard_reads_only_these_metrics(&left_text);

    for n in [owner, left, right] {
        n.shutdown().await.expect("shutdown");
    }
}

/// Every metric the Grafana dashboard in `docs/` queries is one the node serves.
fn dashboard_reads_only_these_metrics(text: &str) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/grafana-dashboard.json"
    );
    let dashboard = std::fs::read_to_string(path).expect("dashboard");
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut names = std::collections::BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(at) = rest.find("liaison_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    for name in names {
        let base = ["_total", "_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            text.contains(&format!("# TYPE {base} ")),
            "the dashboard queries {name}, which the node does not serve"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_configured() {
    let root = tempfile::tempdir().expect("tmp");
    let node = start_with(root.path(), "quiet", |_| {}).await;
    assert_eq!(node.metrics_addr, None);
    node.shutdown().await.expect("shutdown");
}
