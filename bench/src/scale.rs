//! The scale phase (`liaison bench --scale N`): one node holding N messages in one group,
//! measured as an operator and an officer meet it. Every node is a real `liaison run` process
//! (its own data directory, store, API and web listener on loopback; started as
//! `liaison-bench liaison --data DIR run`, the same command line of the same build), driven
//! over HTTP only, as an integration and a browser drive it.
//!
//! ```text
//!  fill        A: N messages of 1 KiB through POST /v1/groups/{g}/messages/batch
//!              (batches of 1,000, a few clients at once: the node's durable rate)
//!  start       A stopped (SIGTERM) and started again on its filled data directory:
//!              seconds until its API answers; resident memory once it settled
//!  reads       first page of the group (GET /v1/messages?group=G&limit=50), a message by id,
//!              the web workspace's group page (/g/{g}) and record page (/m/{id}) as a
//!              logged-in officer
//!  catch-up    C, a member of the group since its first epoch but offline while A filled it,
//!              started: seconds until it durably holds everything A holds
//!  posts       one at a time on A, each answered once durable (a restarted node posts once
//!              it heard from a member: after the catch-up)
//!  audit       GET /v1/audit/verify over the whole chain (a record per post and read)
//! ```
//!
//! Each latency is sampled for a bounded time (at least once), so that a listing that costs
//! seconds at N messages still ends the phase; the number of samples is reported beside each
//! figure. The listing accepts both answers `GET /v1/messages` has had: the whole group as a
//! JSON array, or one page as `{ "messages": [...], "next": ... }`; `page_messages` says how
//! many messages the first page held.
//!
//! The design goals ([`ScaleReport::goals`]) are reported against the figures, never asserted.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use tokio::process::Child;

use super::{dir_size, percentiles, progress, SYNC_INTERVAL_MS};
use liaison_node::datadir::DataDir;
use liaison_node::error::{Error, Result};

/// Messages per batch request while filling (500 items of 1 KiB stay within the API's
/// 1 MiB body limit).
const BATCH: usize = 500;
/// Batch requests in flight at once while filling.
const FILL_CLIENTS: usize = 4;
/// Messages per page asked for.
const PAGE: usize = 50;
/// How long each latency is sampled, at most (one sample is always taken); with `--quick`.
const SAMPLE_FOR: (Duration, Duration) = (Duration::from_secs(15), Duration::from_secs(2));
/// Most samples per latency.
const MAX_SAMPLES: usize = 500;
/// Posts one at a time, at most.
const POSTS: usize = 200;
/// Message ids kept from the fill for reads by id.
const KEPT_IDS: usize = 10_000;
/// Answers posted under one message of the fill, for the thread's page.
pub const THREAD_REPLIES: usize = 20;
/// How long a node is left alone after its API first answers before its memory is read.
const SETTLE: Duration = Duration::from_secs(3);
/// How long one step (a start, a stop, one request, the catch-up) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(1_200);
/// The web officer's password once changed from the one-time password.
const OFFICER_PASSWORD: &str = "scale-bench-officer-password-1";

/// The store size the design goals are set for (see [`ScaleReport::goals`]).
pub const GOAL_MESSAGES: usize = 1_000_000;

/// The scale phase's figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ScaleReport {
    /// Messages the node held in its group when measured (N).
    pub messages: usize,
    /// Messages with a 1 KiB body posted per second while filling (batches through the API,
    /// each answered once its messages and audit records were durable).
    pub fill_msgs_per_s: f64,
    /// Seconds the fill took.
    pub fill_seconds: f64,
    /// Bytes of the node's data directory per message held (store, audit log, everything).
    pub store_bytes_per_msg: f64,
    /// Seconds from starting `liaison run` on the filled data directory until its API answered.
    pub start_seconds: f64,
    /// Resident memory (`VmRSS`) of the restarted node once it settled, in bytes.
    pub idle_rss_bytes: u64,
    /// `idle_rss_bytes` in MiB.
    pub idle_rss_mib: f64,
    /// Resident memory of the node after the reads and posts of this phase, in bytes.
    pub rss_after_reads_bytes: u64,
    /// Median milliseconds for the first page of the group (`limit=50`) over the API.
    pub page_p50_ms: f64,
    /// 99th percentile of the same.
    pub page_p99_ms: f64,
    /// First pages asked for.
    pub page_samples: usize,
    /// Messages the first page held (50 when paged; the whole group when not).
    pub page_messages: usize,
    /// Median milliseconds for one message by id over the API.
    pub read_p50_ms: f64,
    /// 99th percentile of the same.
    pub read_p99_ms: f64,
    /// Reads by id.
    pub read_samples: usize,
    /// Median milliseconds for one post over the API, one at a time (answered once durable).
    pub post_p50_ms: f64,
    /// 99th percentile of the same.
    pub post_p99_ms: f64,
    /// Posts.
    pub post_samples: usize,
    /// Seconds for `GET /v1/audit/verify` over the whole audit chain.
    pub audit_verify_seconds: f64,
    /// Audit records that verification checked.
    pub audit_records: u64,
    /// Median milliseconds the web workspace took to serve the group's first page.
    pub web_group_p50_ms: f64,
    /// 99th percentile of the same.
    pub web_group_p99_ms: f64,
    /// Group pages asked for.
    pub web_group_samples: usize,
    /// Median milliseconds the web workspace took to serve one record's page.
    pub web_record_p50_ms: f64,
    /// 99th percentile of the same.
    pub web_record_p99_ms: f64,
    /// Record pages asked for.
    pub web_record_samples: usize,
    /// Messages of the thread whose root's page is sampled as `web_thread_*`: a message of
    /// the fill and [`THREAD_REPLIES`] answers, half to it and half each to the answer before.
    pub thread_messages: usize,
    /// Median milliseconds the web workspace took to serve the page of that thread's root
    /// (the page shows the whole thread with the state of its alerts and requests).
    pub web_thread_p50_ms: f64,
    /// 99th percentile of the same.
    pub web_thread_p99_ms: f64,
    /// Thread pages asked for.
    pub web_thread_samples: usize,
    /// Messages a member that was offline while the group filled caught up.
    pub catchup_messages: usize,
    /// Seconds from that member's start until it held them all durably.
    pub catchup_seconds: f64,
    /// `catchup_messages / catchup_seconds`.
    pub catchup_msgs_per_s: f64,
    /// Each design goal against its figure.
    pub goals: Vec<Goal>,
}

/// A design goal against the figure measured (reported, never asserted).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Goal {
    /// The figure, a key of the `scale` section.
    pub figure: String,
    /// Its value in this run.
    pub value: f64,
    /// The goal: the figure should stay below it.
    pub below: f64,
    /// The unit of both.
    pub unit: String,
    /// The store size the goal is set for.
    pub at_messages: usize,
    /// The store size of this run.
    pub measured_at: usize,
    /// Whether the figure met the goal in this run.
    pub met: bool,
}

/// Runs the scale phase with `messages` messages, its nodes under `root`; `quick` samples
/// each latency for a shorter time.
pub async fn run(root: &Path, messages: usize, quick: bool) -> Result<ScaleReport> {
    let sample_for = if quick { SAMPLE_FOR.1 } else { SAMPLE_FOR.0 };
    let exe = liaison_exe()?;
    let http = reqwest::Client::builder()
        .timeout(STEP_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Invalid(format!("cannot make an HTTP client: {e}")))?;
    let dirs = (
        liaison_node::demo::init_node(root, "scale-a", SYNC_INTERVAL_MS)?,
        liaison_node::demo::init_node(root, "scale-c", SYNC_INTERVAL_MS)?,
    );
    let mut nodes = Nodes::default();
    let result = measure(&exe, &http, &dirs, &mut nodes, (messages, sample_for)).await;
    let stopped = nodes.stop().await;
    let report = result?;
    stopped?;
    Ok(report)
}

/// The phase's running nodes: the filled node A and the member C (when each runs).
#[derive(Default)]
struct Nodes {
    a: Option<Process>,
    c: Option<Process>,
}

impl Nodes {
    /// Stops whatever runs; the first failure.
    async fn stop(&mut self) -> Result<()> {
        let mut outcome = Ok(());
        for node in [self.a.take(), self.c.take()].into_iter().flatten() {
            let stopped = node.stop().await;
            if outcome.is_ok() {
                outcome = stopped;
            }
        }
        outcome
    }
}

/// Everything the phase measures; `nodes` holds what runs, so that the caller stops it on any
/// outcome.
async fn measure(
    exe: &Path,
    http: &reqwest::Client,
    (a_dir, c_dir): &(DataDir, DataDir),
    nodes: &mut Nodes,
    (messages, sample_for): (usize, Duration),
) -> Result<ScaleReport> {
    let mut report = ScaleReport {
        messages,
        ..ScaleReport::default()
    };
    nodes.a = Some(Process::start(exe, a_dir, "scale-a", http).await?.0);
    nodes.c = Some(Process::start(exe, c_dir, "scale-c", http).await?.0);
    let (Some(a), Some(c)) = (&nodes.a, &nodes.c) else {
        return Err(Error::Invalid("the scale nodes did not start".into()));
    };
    // A owns the group; C is a member from the first epoch on (a member admitted later gets
    // only the epochs from its admission on), offline while A fills the group.
    pin(a, c).await?;
    pin(c, a).await?;
    let created = a
        .post("/v1/groups", &json!({ "name": "bench scale" }))
        .await?;
    let group = text(&created, "id")?;
    // Refused until A has seen C connected (it needs C's key for group keys).
    let members = format!("/v1/groups/{group}/members");
    let member = json!({ "peer": c.name, "role": "member" });
    wait_for("scale-c to become a member", || async {
        Ok(a.post(&members, &member).await.is_ok())
    })
    .await?;
    let path = format!("/v1/groups/{group}");
    wait_for("the group to reach scale-c", || async {
        Ok(c.get(&path).await.is_ok())
    })
    .await?;
    if let Some(c) = nodes.c.take() {
        c.stop().await?;
    }
    let a = nodes
        .a
        .as_ref()
        .ok_or_else(|| Error::Invalid("node scale-a is not running".into()))?;

    let started = Instant::now();
    let ids = fill(a, &group, messages).await?;
    report.fill_seconds = started.elapsed().as_secs_f64();
    report.fill_msgs_per_s = messages as f64 / report.fill_seconds;
    progress("filled, messages per second", report.fill_msgs_per_s, "/s");
    let root = ids
        .first()
        .ok_or_else(|| Error::Invalid("the fill kept no message id".into()))?;
    report.thread_messages = thread(a, &group, root).await?;
    // The web officer, made now; its session after the restart.
    let officer = a
        .post(
            "/v1/users",
            &json!({
                "name": "scale-officer",
                "grants": [format!("{group}:read")],
                "login": "password",
            }),
        )
        .await?;
    let one_time = text(&officer, "password")?;

    // The restart on the filled data directory.
    if let Some(a) = nodes.a.take() {
        a.stop().await?;
    }
    report.store_bytes_per_msg = dir_size(a_dir.root()) as f64 / messages.max(1) as f64;
    progress(
        "data directory per message",
        report.store_bytes_per_msg,
        "B",
    );
    let (a, took) = Process::start(exe, a_dir, "scale-a", http).await?;
    let a = &*nodes.a.insert(a);
    report.start_seconds = took.as_secs_f64();
    progress("start until the API answers", report.start_seconds, "s");
    tokio::time::sleep(SETTLE).await;
    report.idle_rss_bytes = a.rss();
    report.idle_rss_mib = report.idle_rss_bytes as f64 / super::MIB;
    progress("resident memory, idle", report.idle_rss_mib, "MiB");

    reads(a, &group, &ids, sample_for, &mut report).await?;
    let web = WebSession::login(a, http, "scale-officer", &one_time).await?;
    web_pages(&web, &group, &ids, root, sample_for, &mut report).await?;
    // The member that was offline catches up.
    let held = count(a).await?;
    let t0 = Instant::now();
    let (c, _) = Process::start(exe, c_dir, "scale-c", http).await?;
    let c = &*nodes.c.insert(c);
    pin(a, c).await?;
    pin(c, a).await?;
    let caught_up = std::cell::Cell::new(0);
    let waited = wait_for("the member to catch up", || async {
        caught_up.set(count(c).await?);
        Ok(caught_up.get() >= held)
    })
    .await;
    waited.map_err(|e| Error::Invalid(format!("{e} (it holds {} of {held})", caught_up.get())))?;
    report.catchup_seconds = t0.elapsed().as_secs_f64();
    report.catchup_messages = held;
    report.catchup_msgs_per_s = held as f64 / report.catchup_seconds;
    progress("member caught up", report.catchup_msgs_per_s, "/s");

    // Posts after the catch-up: a restarted node posts only once it heard from a member (it
    // cannot tell otherwise which of its sequence numbers are used).
    posts(a, &group, sample_for, &mut report).await?;
    audit(a, &mut report).await?;
    report.rss_after_reads_bytes = a.rss();
    progress(
        "resident memory after the reads",
        report.rss_after_reads_bytes as f64 / super::MIB,
        "MiB",
    );

    report.goals = goals(&report);
    Ok(report)
}

/// Posts `messages` messages with a 1 KiB body to `group` on `a` in batches, several batches
/// at once; returns up to [`KEPT_IDS`] of their ids, spread over the group.
async fn fill(a: &Process, group: &str, messages: usize) -> Result<Vec<String>> {
    let batches = messages.div_ceil(BATCH);
    let keep_every = (messages / KEPT_IDS).max(1);
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let report_every = (messages / 10).max(BATCH);
    let body = "f".repeat(1024);
    let path = format!("/v1/groups/{group}/messages/batch");
    let client = || async {
        let mut kept = Vec::new();
        loop {
            let batch = next.fetch_add(1, Ordering::Relaxed);
            if batch >= batches {
                return Ok::<_, Error>(kept);
            }
            let first = batch * BATCH;
            let items: Vec<Value> = (first..(first + BATCH).min(messages))
                .map(|i| json!({ "subject": format!("scale {i}"), "body": body }))
                .collect();
            let sent = items.len();
            let answer = a.post(&path, &Value::Array(items)).await?;
            let items = answer
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::Invalid(format!("unexpected batch answer: {answer}")))?;
            for (k, item) in items.iter().enumerate() {
                let Some(id) = item.get("id").and_then(Value::as_str) else {
                    return Err(Error::Invalid(format!("a batch item was refused: {item}")));
                };
                if (first + k).is_multiple_of(keep_every) {
                    kept.push(id.to_owned());
                }
            }
            let before = done.fetch_add(sent, Ordering::Relaxed);
            if (before + sent) / report_every > before / report_every {
                progress("  filled", (before + sent) as f64, "messages");
            }
        }
    };
    let clients: Vec<_> = (0..FILL_CLIENTS).map(|_| client()).collect();
    let kept = futures_util::future::try_join_all(clients).await?;
    Ok(kept.into_iter().flatten().collect())
}

/// Posts [`THREAD_REPLIES`] answers under `root`, one at a time: even ones answer the root,
/// odd ones the answer before them, so the thread has breadth and depth. Returns the thread's
/// size, root included.
async fn thread(a: &Process, group: &str, root: &str) -> Result<usize> {
    let path = format!("/v1/groups/{group}/messages");
    let mut last = root.to_owned();
    for i in 0..THREAD_REPLIES {
        let to = if i % 2 == 0 { root } else { last.as_str() };
        let item = json!({ "subject": format!("answer {i}"), "body": "an answer", "reply_to": to });
        last = text(&a.post(&path, &item).await?, "id")?;
    }
    Ok(THREAD_REPLIES + 1)
}

/// The first page of the group and messages by id, over the API.
async fn reads(
    a: &Process,
    group: &str,
    ids: &[String],
    sample_for: Duration,
    report: &mut ScaleReport,
) -> Result<()> {
    let path = format!("/v1/messages?group={group}&limit={PAGE}");
    let (mut pages, held) = sample((MAX_SAMPLES, sample_for), |_| async {
        let answer = a.get(&path).await?;
        Ok(page_of(&answer)?.len())
    })
    .await?;
    report.page_samples = pages.len();
    report.page_messages = held.unwrap_or(0);
    (report.page_p50_ms, report.page_p99_ms) = percentiles(&mut pages);
    progress(
        &format!("first page, p50 ({} samples)", report.page_samples),
        report.page_p50_ms,
        "ms",
    );
    progress("first page, p99", report.page_p99_ms, "ms");
    progress("  messages on it", report.page_messages as f64, "");

    let (mut reads, _) = sample((MAX_SAMPLES, sample_for), |i| {
        let path = format!("/v1/messages/{}", spread(ids, i));
        async move { a.get(&path).await.map(drop) }
    })
    .await?;
    report.read_samples = reads.len();
    (report.read_p50_ms, report.read_p99_ms) = percentiles(&mut reads);
    progress("read by id, p50", report.read_p50_ms, "ms");
    progress("read by id, p99", report.read_p99_ms, "ms");
    Ok(())
}

/// The web workspace's group page, record pages, and the page of the thread under `root`
/// (see [`thread`]), as a logged-in officer.
async fn web_pages(
    web: &WebSession,
    group: &str,
    ids: &[String],
    root: &str,
    sample_for: Duration,
    report: &mut ScaleReport,
) -> Result<()> {
    let path = format!("/g/{group}");
    let (mut pages, _) = sample((MAX_SAMPLES, sample_for), |_| web.page(&path)).await?;
    report.web_group_samples = pages.len();
    (report.web_group_p50_ms, report.web_group_p99_ms) = percentiles(&mut pages);
    progress("web group page, p50", report.web_group_p50_ms, "ms");
    progress("web group page, p99", report.web_group_p99_ms, "ms");
    let (mut records, _) = sample((MAX_SAMPLES, sample_for), |i| {
        let path = format!("/m/{}", spread(ids, i));
        async move { web.page(&path).await }
    })
    .await?;
    report.web_record_samples = records.len();
    (report.web_record_p50_ms, report.web_record_p99_ms) = percentiles(&mut records);
    progress("web record page, p50", report.web_record_p50_ms, "ms");
    progress("web record page, p99", report.web_record_p99_ms, "ms");
    let path = format!("/m/{root}");
    let (mut threads, _) = sample((MAX_SAMPLES, sample_for), |_| web.page(&path)).await?;
    report.web_thread_samples = threads.len();
    (report.web_thread_p50_ms, report.web_thread_p99_ms) = percentiles(&mut threads);
    progress(
        &format!("web thread page ({} messages), p50", report.thread_messages),
        report.web_thread_p50_ms,
        "ms",
    );
    progress("web thread page, p99", report.web_thread_p99_ms, "ms");
    Ok(())
}

/// Posts one at a time, each answered once durable.
async fn posts(
    a: &Process,
    group: &str,
    sample_for: Duration,
    report: &mut ScaleReport,
) -> Result<()> {
    let path = format!("/v1/groups/{group}/messages");
    let body = "p".repeat(1024);
    let (mut posts, _) = sample((POSTS, sample_for), |i| {
        let item = json!({ "subject": format!("scale post {i}"), "body": body });
        let path = &path;
        async move { a.post(path, &item).await.map(drop) }
    })
    .await?;
    report.post_samples = posts.len();
    (report.post_p50_ms, report.post_p99_ms) = percentiles(&mut posts);
    progress("post one at a time, p50", report.post_p50_ms, "ms");
    progress("post one at a time, p99", report.post_p99_ms, "ms");
    Ok(())
}

/// Verifies the whole audit chain once.
async fn audit(a: &Process, report: &mut ScaleReport) -> Result<()> {
    let t0 = Instant::now();
    let verified = a.get("/v1/audit/verify").await?;
    report.audit_verify_seconds = t0.elapsed().as_secs_f64();
    report.audit_records = verified.get("records").and_then(Value::as_u64).unwrap_or(0);
    if verified.get("intact").and_then(Value::as_bool) != Some(true) {
        return Err(Error::Invalid(format!(
            "the filled node's audit chain did not verify: {verified}"
        )));
    }
    progress(
        &format!("audit verify, {} records", report.audit_records),
        report.audit_verify_seconds,
        "s",
    );
    Ok(())
}

/// The figures against the design goals (issue targets at [`GOAL_MESSAGES`] messages: start
/// under 3 s, idle memory under 256 MiB, a first page under 20 ms, web pages under 50 ms).
fn goals(r: &ScaleReport) -> Vec<Goal> {
    let goal = |figure: &str, value: f64, below: f64, unit: &str| Goal {
        figure: figure.to_owned(),
        value,
        below,
        unit: unit.to_owned(),
        at_messages: GOAL_MESSAGES,
        measured_at: r.messages,
        met: value < below,
    };
    vec![
        goal("start_seconds", r.start_seconds, 3.0, "s"),
        goal("idle_rss_mib", r.idle_rss_mib, 256.0, "MiB"),
        goal("page_p99_ms", r.page_p99_ms, 20.0, "ms"),
        goal("web_group_p99_ms", r.web_group_p99_ms, 50.0, "ms"),
        goal("web_record_p99_ms", r.web_record_p99_ms, 50.0, "ms"),
        goal("web_thread_p99_ms", r.web_thread_p99_ms, 50.0, "ms"),
    ]
}

// ----- helpers -------------------------------------------------------------------------------

/// Runs `op` one call at a time, each timed, until `max` calls or `budget` have passed (at
/// least once); returns the times and the last call's answer.
async fn sample<T, F, Fut>(
    (max, budget): (usize, Duration),
    mut op: F,
) -> Result<(Vec<Duration>, Option<T>)>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let mut times = Vec::new();
    let mut last = None;
    while times.len() < max.max(1) && (times.is_empty() || start.elapsed() < budget) {
        let t0 = Instant::now();
        last = Some(op(times.len()).await?);
        times.push(t0.elapsed());
    }
    Ok((times, last))
}

/// The `i`-th id of a walk that visits `ids` spread out, not in posting order.
fn spread(ids: &[String], i: usize) -> &str {
    if ids.is_empty() {
        return "";
    }
    ids[(i.wrapping_mul(7_919)) % ids.len()].as_str()
}

/// The messages of a listing: the whole answer when it is an array, else its `messages`.
fn page_of(answer: &Value) -> Result<&Vec<Value>> {
    answer
        .as_array()
        .or_else(|| answer.get("messages").and_then(Value::as_array))
        .ok_or_else(|| Error::Invalid(format!("unexpected listing answer: {answer:.200}")))
}

/// The string field `key` of `value`.
fn text(value: &Value, key: &str) -> Result<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| Error::Invalid(format!("no {key:?} in the answer {value}")))
}

/// Messages the node holds (`GET /v1/status`).
async fn count(node: &Process) -> Result<usize> {
    let status = node.get("/v1/status").await?;
    status
        .get("messages")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .ok_or_else(|| Error::Invalid(format!("no message count in the status {status}")))
}

/// Pins `peer` on `node` at its address now (a node takes a new port at each start).
async fn pin(node: &Process, peer: &Process) -> Result<()> {
    let status = peer.get("/v1/status").await?;
    node.post(
        "/v1/peers",
        &json!({
            "name": peer.name,
            "node_id": text(&status, "node_id")?,
            "address": text(&status, "quic_addr")?,
            "replace": true,
        }),
    )
    .await
    .map(drop)
}

/// Polls `check` every 20 ms until it is true, or fails after [`STEP_TIMEOUT`].
async fn wait_for<F, Fut>(what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = Instant::now();
    while !check().await? {
        if start.elapsed() > STEP_TIMEOUT {
            return Err(Error::Invalid(format!("timed out waiting for {what}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The executable the nodes run: this one, whose hidden `liaison` command is the `liaison`
/// command line of the same build (`liaison-bench liaison --data DIR run` is `liaison --data
/// DIR run`).
fn liaison_exe() -> Result<PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("cannot find the liaison-bench executable", e))
}

/// A node running as `liaison run` in a child process, driven over its API.
struct Process {
    name: String,
    child: Child,
    pid: u32,
    api: String,
    web: Option<String>,
    token: String,
    http: reqwest::Client,
}

impl Process {
    /// Starts `liaison run` on `dir`; returns the node once its API answered, and how long
    /// that took from the start of the process.
    async fn start(
        exe: &Path,
        dir: &DataDir,
        name: &str,
        http: &reqwest::Client,
    ) -> Result<(Process, Duration)> {
        let token = dir.admin_token()?.to_string();
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new(exe)
            .arg("liaison")
            .arg("--data")
            .arg(dir.root())
            .arg("run")
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {}", exe.display()), e))?;
        let pid = child
            .id()
            .ok_or_else(|| Error::Invalid(format!("node {name} exited at once")))?;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(|e| Error::io(format!("cannot watch node {name}"), e))?
            {
                return Err(Error::Invalid(format!(
                    "node {name} exited with {status} before its API answered"
                )));
            }
            if let Some(runtime) = dir.runtime().filter(|r| r.pid == pid) {
                let api = format!("http://{}", runtime.api);
                let answered = http
                    .get(format!("{api}/v1/status"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if answered {
                    let took = t0.elapsed();
                    let web = runtime.web.map(|w| w.trim_end_matches('/').to_owned());
                    let node = Process {
                        name: name.to_owned(),
                        child,
                        pid,
                        api,
                        web,
                        token,
                        http: http.clone(),
                    };
                    return Ok((node, took));
                }
            }
            if t0.elapsed() > STEP_TIMEOUT {
                return Err(Error::Invalid(format!("node {name} did not start in time")));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the node as a service manager does (SIGTERM: it flushes and exits) and waits for
    /// it to exit cleanly.
    async fn stop(mut self) -> Result<()> {
        let signalled = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .await
            .map_err(|e| Error::io("cannot run kill", e))?;
        if !signalled.success() {
            return Err(Error::Invalid(format!("cannot signal node {}", self.name)));
        }
        let status = match tokio::time::timeout(STEP_TIMEOUT, self.child.wait()).await {
            Ok(status) => status.map_err(|e| Error::io("cannot wait for a node", e))?,
            Err(_) => {
                let _ = self.child.kill().await;
                return Err(Error::Invalid(format!("node {} did not stop", self.name)));
            }
        };
        if status.success() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "node {} exited with {status}",
                self.name
            )))
        }
    }

    /// Resident memory now (`VmRSS`), in bytes; 0 where unavailable.
    fn rss(&self) -> u64 {
        super::proc_status_kib(&self.pid.to_string(), "VmRSS:") * 1024
    }

    async fn get(&self, path: &str) -> Result<Value> {
        let request = self.http.get(format!("{}{path}", self.api));
        self.answer("GET", path, request).await
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        let request = self.http.post(format!("{}{path}", self.api)).json(body);
        self.answer("POST", path, request).await
    }

    /// Sends `request` with the admin token; the JSON answer, or an error naming the request.
    async fn answer(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value> {
        let failed = |e: String| Error::Invalid(format!("{method} {path} on {}: {e}", self.name));
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| failed(e.to_string()))?;
        if !status.is_success() {
            return Err(failed(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes)
            )));
        }
        serde_json::from_slice(&bytes).map_err(|e| failed(format!("unreadable answer: {e}")))
    }
}

/// An officer logged in to a node's web workspace: its session cookie.
struct WebSession {
    base: String,
    cookie: String,
    http: reqwest::Client,
}

impl WebSession {
    /// Logs `name` in with its one-time password and sets [`OFFICER_PASSWORD`], as the
    /// workspace asks at the first login; the session is then a full one.
    async fn login(
        node: &Process,
        http: &reqwest::Client,
        name: &str,
        one_time: &str,
    ) -> Result<WebSession> {
        let base = node
            .web
            .clone()
            .ok_or_else(|| Error::Invalid(format!("node {} serves no web workspace", node.name)))?;
        let mut web = WebSession {
            base,
            cookie: String::new(),
            http: http.clone(),
        };
        web.form("/login", &[("name", name), ("password", one_time)])
            .await?;
        let account = web.page_text("/account").await?;
        let csrf = account
            .split_once("name=\"csrf\" value=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(token, _)| token.to_owned())
            .ok_or_else(|| Error::Invalid("no CSRF token on the account page".into()))?;
        web.form(
            "/account/password",
            &[
                ("csrf", &csrf),
                ("current", one_time),
                ("password", OFFICER_PASSWORD),
                ("confirm", OFFICER_PASSWORD),
            ],
        )
        .await?;
        // A full session is shown the group list, not sent back to the login.
        web.page("/").await?;
        Ok(web)
    }

    /// Sends a form as a same-origin browser does; keeps the session cookie it sets. The
    /// workspace answers a form it took with a redirect.
    async fn form(&mut self, path: &str, fields: &[(&str, &str)]) -> Result<()> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .header("sec-fetch-site", "same-origin")
            .form(fields)
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("web POST {path}: {e}")))?;
        if !response.status().is_redirection() {
            let status = response.status();
            let page = response.text().await.unwrap_or_default();
            return Err(Error::Invalid(format!(
                "web POST {path} was answered {status}: {page:.300}"
            )));
        }
        if let Some(cookie) = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
        {
            self.cookie = cookie.to_owned();
        }
        Ok(())
    }

    /// Loads a page whole; fails unless it is served (200).
    async fn page(&self, path: &str) -> Result<()> {
        self.page_text(path).await.map(drop)
    }

    async fn page_text(&self, path: &str) -> Result<String> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .map_err(|e| Error::Invalid(format!("web GET {path}: {e}")))?;
        let status = response.status();
        let page = response
            .text()
            .await
            .map_err(|e| Error::Invalid(format!("web GET {path}: {e}")))?;
        if status != reqwest::StatusCode::OK {
            return Err(Error::Invalid(format!(
                "web GET {path} was answered {status}"
            )));
        }
        Ok(page)
    }
}
