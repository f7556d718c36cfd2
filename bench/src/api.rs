//! The API phase: what an integration sees. Clients post 1 KiB messages through node A's HTTP
//! API (`POST /v1/groups/{group}/messages`, each answered once the message and its audit record
//! are durable on A), and one client reads node B's event stream (`GET /v1/events`, a message
//! view per new message, as B's API serves it once B stored the message durably). Each run
//! posts with 1, then 16, concurrent clients (each its own HTTP connection, one post at a time),
//! at most a window of messages posted but not yet seen on B's stream.
//!
//! `msgs_per_s` is the run's messages divided by the time from its first post to the last
//! message seen on B's stream; `post_p50_ms`/`post_p99_ms` are the times a post took to be
//! answered on A; `seen_p50_ms`/`seen_p99_ms` from a post's start until B's stream showed it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use liaison_protocol::GroupId;
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};

use super::{cpu_seconds, percentiles, progress, NodeProcess, PHASE_TIMEOUT};
use liaison_node::client::Client;
use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::error::{Error, Result};
use liaison_node::views::{Created, MessageView, PostMessage};

/// Messages posted through A but not yet seen on B's stream, at most (B's stream reads each
/// message it shows; the window keeps its feed from overflowing).
const WINDOW: usize = 256;

/// The API phase's figures: `_1` with one client, `_16` with sixteen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Api {
    /// Messages with a 1 KiB body posted through A's API and seen on B's event stream, per
    /// second, one client posting one message at a time.
    pub msgs_per_s_1: f64,
    /// Median milliseconds until A's API answered a post (durable on A, its audit record
    /// included), one client.
    pub post_p50_ms_1: f64,
    /// 99th percentile of the same.
    pub post_p99_ms_1: f64,
    /// Median milliseconds from a post's start until B's event stream showed the message, one
    /// client.
    pub seen_p50_ms_1: f64,
    /// 99th percentile of the same.
    pub seen_p99_ms_1: f64,
    /// Messages in the one-client run.
    pub messages_1: usize,
    /// CPU both nodes' processes used during the one-client run, in cores (CPU time ÷ wall
    /// time; the clients run in node A's process, so their share is included).
    pub cores_busy_1: f64,
    /// As `msgs_per_s_1`, with sixteen clients each posting one message at a time.
    pub msgs_per_s_16: f64,
    /// As `post_p50_ms_1`, sixteen clients.
    pub post_p50_ms_16: f64,
    /// 99th percentile of the same.
    pub post_p99_ms_16: f64,
    /// As `seen_p50_ms_1`, sixteen clients.
    pub seen_p50_ms_16: f64,
    /// 99th percentile of the same.
    pub seen_p99_ms_16: f64,
    /// Messages in the sixteen-client run.
    pub messages_16: usize,
    /// As `cores_busy_1`, sixteen clients.
    pub cores_busy_16: f64,
}

/// One run of the API phase.
struct ApiRun {
    clients: usize,
    messages: usize,
    msgs_per_s: f64,
    post_p50_ms: f64,
    post_p99_ms: f64,
    seen_p50_ms: f64,
    seen_p99_ms: f64,
    cores_busy: f64,
}

/// Runs the API phase on the end-to-end phase's nodes: A in this process, B in its child.
pub async fn run(
    root: &Path,
    a: &RunningNode,
    b: &NodeProcess,
    group: GroupId,
    messages: (usize, usize),
) -> Result<Api> {
    let token_of = |name: &str| -> Result<String> {
        Ok(DataDir::new(root.join(name)).admin_token()?.to_string())
    };
    let a_base = format!("http://{}", a.api_addr);
    let b_api = DataDir::new(root.join(&b.name))
        .runtime()
        .ok_or_else(|| Error::Invalid("node B's runtime file names no API address".into()))?
        .api;
    let b_client = Client::new(&format!("http://{b_api}"), token_of(&b.name)?)?;
    let target = Target {
        base: a_base,
        token: token_of(&a.name)?,
        group,
    };
    // Warm-up: connections, the API's first requests, B's stream.
    one_run(&target, &b_client, b, 1, 20.min(messages.0)).await?;
    let one = one_run(&target, &b_client, b, 1, messages.0).await?;
    report(&one);
    let sixteen = one_run(&target, &b_client, b, 16, messages.1).await?;
    report(&sixteen);
    Ok(Api {
        msgs_per_s_1: one.msgs_per_s,
        post_p50_ms_1: one.post_p50_ms,
        post_p99_ms_1: one.post_p99_ms,
        seen_p50_ms_1: one.seen_p50_ms,
        seen_p99_ms_1: one.seen_p99_ms,
        messages_1: one.messages,
        cores_busy_1: one.cores_busy,
        msgs_per_s_16: sixteen.msgs_per_s,
        post_p50_ms_16: sixteen.post_p50_ms,
        post_p99_ms_16: sixteen.post_p99_ms,
        seen_p50_ms_16: sixteen.seen_p50_ms,
        seen_p99_ms_16: sixteen.seen_p99_ms,
        messages_16: sixteen.messages,
        cores_busy_16: sixteen.cores_busy,
    })
}

fn report(run: &ApiRun) {
    let n = run.clients;
    progress(
        &format!("API, {n} client(s): messages"),
        run.msgs_per_s,
        "/s",
    );
    progress("  post answered on A, p50", run.post_p50_ms, "ms");
    progress("  post answered on A, p99", run.post_p99_ms, "ms");
    progress("  seen on B's stream, p50", run.seen_p50_ms, "ms");
    progress("  cores busy", run.cores_busy, "");
}

/// Where the clients post.
struct Target {
    base: String,
    token: String,
    group: GroupId,
}

async fn one_run(
    target: &Target,
    b: &Client,
    b_process: &NodeProcess,
    clients: usize,
    count: usize,
) -> Result<ApiRun> {
    let mut events = b
        .events(&format!("/v1/events?group={}", target.group))
        .await?;
    // B's stream, read by its own task: each message id with the instant it was seen.
    let (seen_tx, mut seen_rx) = mpsc::channel::<(String, Instant)>(WINDOW * 2);
    let reader = tokio::spawn(async move {
        while let Some(data) = events.next().await? {
            let view: MessageView = serde_json::from_str(&data)
                .map_err(|e| Error::Invalid(format!("unreadable event from B: {e}")))?;
            if seen_tx.send((view.id, Instant::now())).await.is_err() {
                break;
            }
        }
        Ok::<_, Error>(())
    });
    let gate = Arc::new(Semaphore::new(WINDOW));
    let body: Arc<str> = Arc::from("a".repeat(1024));
    let start = Instant::now();
    let cpu_start = cpu_seconds("self") + b_process.cpu_seconds();
    let mut posters = tokio::task::JoinSet::new();
    for w in 0..clients {
        let n = count / clients + usize::from(w < count % clients);
        // Each client its own connection, as separate integrations would have.
        let client = Client::new(&target.base, target.token.clone())?;
        let path = format!("/v1/groups/{}/messages", target.group);
        let (gate, body) = (gate.clone(), body.clone());
        posters.spawn(async move {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                gate.acquire()
                    .await
                    .map_err(|_| Error::Invalid("the window closed".into()))?
                    .forget();
                let t0 = Instant::now();
                let created: Created = client
                    .post(
                        &path,
                        &PostMessage {
                            subject: "bench".into(),
                            body: body.to_string(),
                            handling: None,
                            to: Vec::new(),
                            reply_to: None,
                            attachments: Vec::new(),
                        },
                    )
                    .await?;
                out.push((created.id, t0, t0.elapsed()));
            }
            Ok::<_, Error>(out)
        });
    }
    let collect = async {
        let mut posted: HashMap<String, Instant> = HashMap::with_capacity(count);
        let mut answered = Vec::with_capacity(count);
        let mut seen: HashMap<String, Instant> = HashMap::with_capacity(count);
        // Posted (answered) but not yet seen on B.
        let mut unseen: HashSet<String> = HashSet::new();
        let mut running = true;
        while running || !unseen.is_empty() {
            tokio::select! {
                done = posters.join_next(), if running => match done {
                    Some(joined) => {
                        let part = joined
                            .map_err(|e| Error::Invalid(format!("an API client failed: {e}")))??;
                        for (id, t0, took) in part {
                            if !seen.contains_key(&id) {
                                unseen.insert(id.clone());
                            }
                            posted.insert(id, t0);
                            answered.push(took);
                        }
                    }
                    None => running = false,
                },
                event = seen_rx.recv() => match event {
                    Some((id, at)) => {
                        unseen.remove(&id);
                        if seen.insert(id, at).is_none() {
                            gate.add_permits(1);
                        }
                    }
                    None => return Err(Error::Invalid("B's event stream ended".into())),
                },
            }
        }
        Ok::<_, Error>((posted, answered, seen))
    };
    let outcome = tokio::time::timeout(PHASE_TIMEOUT, collect).await;
    let cores_busy =
        (cpu_seconds("self") + b_process.cpu_seconds() - cpu_start) / start.elapsed().as_secs_f64();
    reader.abort();
    let (posted, mut answered, seen) =
        outcome.map_err(|_| Error::Invalid("timed out in the API phase".into()))??;
    let mut last = start;
    let mut delays = Vec::with_capacity(count);
    for (id, t0) in &posted {
        let at = seen.get(id).copied().unwrap_or(start);
        last = last.max(at);
        delays.push(at.saturating_duration_since(*t0));
    }
    let (post_p50_ms, post_p99_ms) = percentiles(&mut answered);
    let (seen_p50_ms, seen_p99_ms) = percentiles(&mut delays);
    Ok(ApiRun {
        clients,
        messages: count,
        msgs_per_s: count as f64 / last.duration_since(start).as_secs_f64(),
        post_p50_ms,
        post_p99_ms,
        seen_p50_ms,
        seen_p99_ms,
        cores_busy,
    })
}
