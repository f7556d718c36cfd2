//! `liaison bench`: what a node sustains, measured in one run against the machine's own limits
//! measured in the same run.
//!
//! ```text
//!  1. limits     ed25519 sign / verify_strict, seal / open of 1 KiB bodies, ChaCha20-Poly1305,
//!                sled flushed write batches, raw quinn request/ack round trips, one quinn
//!                stream's bulk rate
//!  2. e2e        A ──post──▶ A's store ──Push──▶ B (verify, open, store, flush) ──Ack──▶ A
//!     api        HTTP POST on A (1 and 16 clients) ──▶ … ──▶ B's event stream (see [`api`])
//!     attachments  a file uploaded on A ──▶ fetched by B, held whole (see [`attachments`])
//!  3. fan-out    author ──▶ hub (group owner, relays at once) ──▶ every other member
//!  4. catch-up   C offline while A posts; C restarts and syncs until it holds everything
//!  5. resources  peak RSS (VmHWM of this process), store bytes on disk per message
//!  6. ratios     e2e / verify, catch-up / verify, e2e / quinn, API / e2e, attachment / quinn
//!     scale      with `--scale N`: one node holding N messages, as `liaison run` processes
//!                driven over HTTP: start, idle memory, pages, reads, posts, audit, catch-up
//!                (see [`scale`])
//! ```
//!
//! Every node is a real node ([`liaison_node::daemon::start`]) with its own data directory under a
//! temporary directory, its own sled store (acknowledgements only after flush) and its own QUIC
//! endpoint on loopback. The end-to-end phase runs node B in a child process, as nodes run in a
//! deployment ([`serve_node`]); the other phases run their nodes in this process. Deliveries are
//! observed through the node's [`NodeEvent`] hook, which reports ids only after the store's
//! flush returned.
//!
//! Nothing here asserts a figure: the benchmark reports, the operator judges.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use ed25519_dalek::Signer;
use liaison_protocol::message::{self, Content, Draft, MessageId, Payload};
use liaison_protocol::{GroupId, Handling, IdentityKey, Role, Timestamp};
use rand_core::OsRng;
use serde::Serialize;
use tokio::sync::{broadcast, Semaphore};
use tokio_util::sync::CancellationToken;

use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::demo;
use liaison_node::error::{Error, Result};
use liaison_node::node::{NodeEvent, NodeHandle, Post};
use liaison_node::transport::{self, AllowList, Transport, TransportConfig};

pub mod api;
pub mod attachments;
mod process;
pub mod scale;

pub use process::serve as serve_node;
use process::NodeProcess;

/// How long any one phase may take before the benchmark gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(180);
/// Concurrent posting tasks (the API's callers) when posting for throughput.
const POSTERS: usize = 256;
/// How long acknowledgements may trail the last durable store on B.
const ACK_GRACE: Duration = Duration::from_secs(5);
/// Periodic vector exchange of the benchmark's nodes, in milliseconds.
const SYNC_INTERVAL_MS: u64 = 1_000;

/// What `liaison bench` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Smaller counts and shorter measurements (well under a minute).
    pub quick: bool,
    /// Also write every figure as one JSON object to this file.
    pub json: Option<PathBuf>,
    /// Also run the scale phase with this many messages in the node's group.
    pub scale: Option<usize>,
}

/// How much work each phase does.
#[derive(Debug, Clone, Copy)]
struct Scale {
    /// Seconds per single-core limit measurement.
    limit_secs: f64,
    /// Seconds of raw quinn round trips.
    quinn_secs: f64,
    /// Seconds of sled flushes.
    sled_secs: f64,
    /// Messages of 1 KiB in the sustained end-to-end run.
    e2e_1k: usize,
    /// Messages of 64 KiB in the sustained end-to-end run.
    e2e_64k: usize,
    /// Messages posted one at a time for the latency figures.
    latency_samples: usize,
    /// Nodes in the fan-out group (author and hub included).
    fanout_nodes: usize,
    /// Messages posted one at a time in the fan-out group.
    fanout_messages: usize,
    /// Messages posted while the catch-up node is offline.
    catchup: usize,
    /// Messages posted through the API by one client, then by sixteen.
    api: (usize, usize),
    /// Messages posted on A but not yet durable on B, at most, in the sustained runs.
    window: usize,
    /// MiB of the attachment A sends B (within B's eager limit), and sent over one quinn
    /// stream for the bulk limit.
    attachment_mib: u64,
}

impl Scale {
    fn new(quick: bool) -> Scale {
        if quick {
            Scale {
                limit_secs: 0.25,
                quinn_secs: 0.5,
                sled_secs: 0.5,
                e2e_1k: 2_000,
                e2e_64k: 200,
                latency_samples: 50,
                fanout_nodes: 5,
                fanout_messages: 30,
                catchup: 2_000,
                api: (100, 400),
                window: 2048,
                attachment_mib: 4,
            }
        } else {
            Scale {
                limit_secs: 1.0,
                quinn_secs: 2.0,
                sled_secs: 2.0,
                e2e_1k: 20_000,
                e2e_64k: 1_000,
                latency_samples: 300,
                fanout_nodes: 10,
                fanout_messages: 200,
                catchup: 20_000,
                api: (1_000, 4_000),
                window: 2048,
                attachment_mib: 20,
            }
        }
    }
}

/// Every figure of one run; the JSON written by `--json`. Documented key by key in the
/// README's "Performance" section.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The machine and the run.
    pub machine: Machine,
    /// The machine's limits, measured in the same run.
    pub limits: Limits,
    /// Two nodes, one author, one receiver.
    pub e2e: E2e,
    /// The same two nodes through their HTTP APIs.
    pub api: api::Api,
    /// An attachment from one of the two nodes to the other.
    pub attachments: attachments::Attachments,
    /// One author, many receivers.
    pub fanout: Fanout,
    /// A node that was offline catching up.
    pub catchup: Catchup,
    /// Memory and disk.
    pub resources: Resources,
    /// The node against the machine.
    pub ratios: Ratios,
    /// One node holding many messages (with `--scale N` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale: Option<scale::ScaleReport>,
}

/// The machine and the run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Machine {
    /// Logical CPUs available to this process.
    pub cores: usize,
    /// Whether this was a `--quick` run.
    pub quick: bool,
    /// Version of liaison.
    pub version: String,
    /// Wall-clock seconds of the whole run.
    pub run_seconds: f64,
    /// The system's one-minute load average when the run started (`/proc/loadavg`): other
    /// work on the machine competes with the nodes for the cores.
    pub load_1m_start: f64,
    /// The same when the run ended.
    pub load_1m_end: f64,
}

/// The machine's limits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Limits {
    /// ed25519 signatures of an envelope-sized header per second, one core.
    pub sign_per_s: f64,
    /// ed25519 `verify_strict` of an envelope-sized header per second, one core.
    pub verify_per_s: f64,
    /// Messages with a 1 KiB body sealed per second, one core.
    pub seal_1k_per_s: f64,
    /// Messages with a 1 KiB body verified and opened per second, one core.
    pub open_1k_per_s: f64,
    /// ChaCha20-Poly1305 bytes encrypted per second (64 KiB buffers), one core.
    pub aead_bytes_per_s: f64,
    /// sled write batches (8 × 1 KiB) each followed by a completed flush, per second.
    pub sled_flushes_per_s: f64,
    /// Sequential 64-byte request / 8-byte acknowledgement round trips per second on one quinn
    /// connection over loopback.
    pub quinn_roundtrips_per_s: f64,
    /// MiB per second sent over one quinn stream on loopback and read whole on the other end
    /// (64 KiB writes): the bulk limit an attachment transfer is set against.
    pub quinn_bulk_mib_per_s: f64,
}

/// Two nodes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct E2e {
    /// Messages with a 1 KiB body posted on A, durably stored on B and acknowledged to A, per
    /// second, sustained.
    pub msgs_per_s_1k: f64,
    /// The same with 64 KiB bodies.
    pub msgs_per_s_64k: f64,
    /// Body bytes per second of the 64 KiB run.
    pub body_bytes_per_s_64k: f64,
    /// Median milliseconds from post on A to durable on B, one message at a time.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
    /// Median milliseconds from post on A to durable on B during the sustained 1 KiB run.
    pub loaded_p50_ms: f64,
    /// 99th percentile of the same.
    pub loaded_p99_ms: f64,
    /// CPU cores busy on average during the 1 KiB run (CPU time of both processes / wall
    /// time; both nodes and the benchmark itself).
    pub cores_busy_1k: f64,
    /// The same for the 64 KiB run.
    pub cores_busy_64k: f64,
    /// Acknowledgements A had not received 5 s after B durably held every message of the
    /// 1 KiB run (a dropped `Ack` is not resent; the message stays delivered).
    pub acks_missing_1k: usize,
    /// The same for the 64 KiB run.
    pub acks_missing_64k: usize,
    /// Messages in the 1 KiB run.
    pub messages_1k: usize,
    /// Messages in the 64 KiB run.
    pub messages_64k: usize,
    /// Messages posted on A but not yet durable on B, at most, in the sustained runs.
    pub window: usize,
}

/// One author, many receivers.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Fanout {
    /// Nodes in the group (author and hub included).
    pub nodes: usize,
    /// Messages posted, one at a time.
    pub messages: usize,
    /// Median milliseconds from post until every other member holds the message durably.
    pub p50_ms: f64,
    /// 99th percentile of the same.
    pub p99_ms: f64,
}

/// A node that was offline catching up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catchup {
    /// Messages posted while it was offline.
    pub messages: usize,
    /// Seconds from its restart until it held all of them durably.
    pub seconds: f64,
    /// `messages / seconds`.
    pub msgs_per_s: f64,
    /// Messages per second posted on the author while the node was offline (1 KiB).
    pub post_msgs_per_s: f64,
    /// CPU cores busy on average during the catch-up (both nodes).
    pub cores_busy: f64,
}

/// Memory and disk.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    /// The largest peak resident set of any process of the run (this one holds several nodes
    /// during fan-out and catch-up): an upper bound for one node.
    pub peak_rss_bytes: u64,
    /// Peak resident set of node B's own process during the end-to-end runs: one node alone
    /// under sustained load.
    pub peak_rss_node_bytes: u64,
    /// Peak resident set of this process during the end-to-end runs (node A and the
    /// benchmark's own bookkeeping).
    pub peak_rss_e2e_bytes: u64,
    /// Peak resident set during catch-up (two nodes).
    pub peak_rss_catchup_bytes: u64,
    /// Peak resident set during fan-out (all its nodes).
    pub peak_rss_fanout_bytes: u64,
    /// Bytes of the caught-up node's store directory on disk per message it holds (1 KiB
    /// bodies).
    pub store_bytes_per_msg: f64,
}

/// The node against the machine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ratios {
    /// `e2e.msgs_per_s_1k / limits.verify_per_s`.
    pub e2e_over_verify: f64,
    /// `catchup.msgs_per_s / limits.verify_per_s`.
    pub catchup_over_verify: f64,
    /// `e2e.msgs_per_s_1k / limits.quinn_roundtrips_per_s`.
    pub e2e_over_quinn: f64,
    /// `api.msgs_per_s_16 / e2e.msgs_per_s_1k`: what an integration gets through the
    /// API against what the node sustains.
    pub api_over_e2e: f64,
    /// `attachments.mib_per_s / limits.quinn_bulk_mib_per_s`: an attachment end to end
    /// against what one quinn stream carries (goal to design for: at least 0.5).
    pub attachment_over_quinn: f64,
}

/// Runs the benchmark, prints progress and a table, and writes the JSON if asked.
pub async fn run(options: Options) -> Result<Report> {
    let scale = Scale::new(options.quick);
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("liaison-bench-")
        .tempdir()
        .map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "liaison bench{}: {cores} cores, nodes in {}",
        if options.quick { " --quick" } else { "" },
        tmp.path().display()
    );
    let mut report = Report {
        machine: Machine {
            cores,
            quick: options.quick,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            run_seconds: 0.0,
            load_1m_start: load_average(),
            load_1m_end: 0.0,
        },
        ..Report::default()
    };

    // A profiling aid: LIAISON_BENCH_PHASES=e2e,catchup runs only those phases.
    let only = std::env::var("LIAISON_BENCH_PHASES").ok();
    let wanted = |phase: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == phase))
    };

    if wanted("limits") {
        println!("1/5 limits of this machine");
        report.limits = limits(scale, tmp.path()).await?;
    }
    if wanted("e2e") || wanted("api") || wanted("attachments") {
        println!("2/5 end to end, two nodes, and through their APIs");
        reset_peak_rss();
        let phases = (wanted("e2e"), wanted("api"), wanted("attachments"));
        let (e2e, api, attachments, peak_rss_b) =
            e2e(scale, &tmp.path().join("e2e"), phases).await?;
        report.e2e = e2e;
        report.api = api;
        report.attachments = attachments;
        report.resources.peak_rss_e2e_bytes = peak_rss("self");
        report.resources.peak_rss_node_bytes = peak_rss_b;
    }
    if wanted("fanout") {
        println!("3/5 fan-out, {} nodes", scale.fanout_nodes);
        reset_peak_rss();
        report.fanout = fanout(scale, &tmp.path().join("fanout")).await?;
        report.resources.peak_rss_fanout_bytes = peak_rss("self");
    }
    if wanted("catchup") {
        println!("4/5 catch-up of {} messages", scale.catchup);
        reset_peak_rss();
        let (catchup, bytes_per_msg) = catchup(scale, &tmp.path().join("catchup")).await?;
        report.catchup = catchup;
        report.resources.peak_rss_catchup_bytes = peak_rss("self");
        report.resources.store_bytes_per_msg = bytes_per_msg;
    }

    if let Some(messages) = options.scale.filter(|_| wanted("scale")) {
        println!(
            "scale: one node holding {} messages",
            human(messages as f64)
        );
        report.scale = Some(scale::run(&tmp.path().join("scale"), messages, options.quick).await?);
    }

    println!("5/5 resources and ratios");
    report.resources.peak_rss_bytes = report
        .resources
        .peak_rss_e2e_bytes
        .max(report.resources.peak_rss_fanout_bytes)
        .max(report.resources.peak_rss_catchup_bytes)
        .max(report.resources.peak_rss_node_bytes)
        .max(peak_rss("self"));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    report.ratios = Ratios {
        e2e_over_verify: ratio(report.e2e.msgs_per_s_1k, report.limits.verify_per_s),
        catchup_over_verify: ratio(report.catchup.msgs_per_s, report.limits.verify_per_s),
        e2e_over_quinn: ratio(
            report.e2e.msgs_per_s_1k,
            report.limits.quinn_roundtrips_per_s,
        ),
        api_over_e2e: ratio(report.api.msgs_per_s_16, report.e2e.msgs_per_s_1k),
        attachment_over_quinn: ratio(
            report.attachments.mib_per_s,
            report.limits.quinn_bulk_mib_per_s,
        ),
    };
    report.machine.run_seconds = started.elapsed().as_secs_f64();
    report.machine.load_1m_end = load_average();

    print_table(&report);
    if let Some(path) = &options.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Invalid(format!("cannot encode the report: {e}")))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        println!("JSON written to {}", path.display());
    }
    Ok(report)
}

// ----- 1. limits -----------------------------------------------------------------------------

async fn limits(scale: Scale, root: &Path) -> Result<Limits> {
    let secs = scale.limit_secs;
    let (sign_per_s, verify_per_s, seal_1k_per_s, open_1k_per_s, aead_bytes_per_s) =
        tokio::task::spawn_blocking(move || -> Result<_> {
            let (sign, verify) = ed25519_rates(secs);
            progress("ed25519 sign", sign, "/s");
            progress("ed25519 verify_strict", verify, "/s");
            let (seal, open) = message_rates(secs)?;
            progress("seal 1 KiB", seal, "/s");
            progress("verify + open 1 KiB", open, "/s");
            let aead = aead_rate(secs);
            progress("ChaCha20-Poly1305", aead / MIB, "MiB/s");
            Ok((sign, verify, seal, open, aead))
        })
        .await
        .map_err(|e| Error::Invalid(format!("a measurement failed: {e}")))??;
    let dir = root.join("sled-limit");
    let sled_secs = scale.sled_secs;
    let sled_flushes_per_s = tokio::task::spawn_blocking(move || sled_rate(&dir, sled_secs))
        .await
        .map_err(|e| Error::Invalid(format!("a measurement failed: {e}")))??;
    progress("sled batch + flush", sled_flushes_per_s, "/s");
    let quinn_roundtrips_per_s = quinn_rate(scale.quinn_secs).await?;
    progress("quinn round trip", quinn_roundtrips_per_s, "/s");
    let quinn_bulk_mib_per_s = quinn_bulk(scale.attachment_mib).await?;
    progress("quinn bulk, one stream", quinn_bulk_mib_per_s, "MiB/s");
    Ok(Limits {
        sign_per_s,
        verify_per_s,
        seal_1k_per_s,
        open_1k_per_s,
        aead_bytes_per_s,
        sled_flushes_per_s,
        quinn_roundtrips_per_s,
        quinn_bulk_mib_per_s,
    })
}

const MIB: f64 = 1024.0 * 1024.0;

/// Calls `op` in rounds of `chunk` until `secs` have passed; returns calls per second.
fn rate(secs: f64, chunk: usize, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut done = 0usize;
    loop {
        for _ in 0..chunk {
            op();
        }
        done += chunk;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= secs {
            return done as f64 / elapsed;
        }
    }
}

/// Sign and `verify_strict` per second over an envelope-sized input (domain + 203-byte header).
fn ed25519_rates(secs: f64) -> (f64, f64) {
    let identity = IdentityKey::generate(&mut OsRng);
    let key = identity.signing_key();
    let public = key.verifying_key();
    let mut input = message::ENVELOPE_DOMAIN.to_vec();
    input.extend_from_slice(&[7u8; 203]);
    let signature = key.sign(&input);
    let sign = rate(secs, 64, || {
        std::hint::black_box(key.sign(std::hint::black_box(&input)));
    });
    let verify = rate(secs, 64, || {
        let ok = public.verify_strict(std::hint::black_box(&input), &signature);
        std::hint::black_box(ok.is_ok());
    });
    (sign, verify)
}

/// Seal, and verify + open (everything a receiver checks), of messages with a 1 KiB body.
fn message_rates(secs: f64) -> Result<(f64, f64)> {
    let (identity, state) = demo::solo_group(GroupId::from([1u8; 16]))?;
    let content = Content {
        officer: "bench".into(),
        recipients: Vec::new(),
        reply_to: None,
        payload: Payload::Text {
            subject: "bench".into(),
            body: "x".repeat(1024),
        },
    };
    let mut seq = 0u64;
    let mut failed = None;
    let seal_one = |seq: u64| {
        message::seal(
            &state,
            &identity,
            Draft {
                seq,
                now: Timestamp(2),
                handling: Handling::Green,
                expires_at: None,
                content: &content,
            },
            &mut OsRng,
        )
    };
    let sample = seal_one(1)?;
    let seal = rate(secs, 32, || {
        seq += 1;
        if let Err(e) = seal_one(seq) {
            failed = Some(e);
        }
    });
    if let Some(e) = failed {
        return Err(e.into());
    }
    let mut rejected = None;
    let open = rate(secs, 32, || {
        if let Err(e) = message::verify_and_open(std::hint::black_box(&sample.bytes), &state) {
            rejected = Some(e);
        }
    });
    if let Some(e) = rejected {
        return Err(Error::Invalid(format!(
            "a sealed message did not open: {e}"
        )));
    }
    Ok((seal, open))
}

/// ChaCha20-Poly1305 bytes per second on 64 KiB buffers.
fn aead_rate(secs: f64) -> f64 {
    const LEN: usize = 64 * 1024;
    let cipher = ChaCha20Poly1305::new(&[9u8; 32].into());
    let mut buffer = vec![0u8; LEN];
    let per_s = rate(secs, 4, || {
        let tag = cipher.encrypt_in_place_detached(&[0u8; 12].into(), b"aad", &mut buffer);
        std::hint::black_box(tag.is_ok());
    });
    per_s * LEN as f64
}

/// Write batches of 8 × 1 KiB, each followed by a completed `flush`, per second.
fn sled_rate(dir: &Path, secs: f64) -> Result<f64> {
    let engine = |e: sled::Error| Error::Invalid(format!("sled failed in the benchmark: {e}"));
    let db = sled::Config::new().path(dir).open().map_err(engine)?;
    let value = vec![5u8; 1024];
    let mut n = 0u64;
    let mut failed = None;
    let per_s = rate(secs, 1, || {
        let mut batch = sled::Batch::default();
        for i in 0..8u64 {
            batch.insert(&(n * 8 + i).to_be_bytes(), value.as_slice());
        }
        n += 1;
        if let Err(e) = db.apply_batch(batch).and_then(|()| db.flush().map(|_| ())) {
            failed = Some(e);
        }
    });
    match failed {
        Some(e) => Err(engine(e)),
        None => Ok(per_s),
    }
}

/// Two quinn endpoints on loopback with the node's transport settings, and a connection
/// between them: (client, server, the client's side, the server's side).
async fn quinn_pair() -> Result<(Transport, Transport, quinn::Connection, quinn::Connection)> {
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let (a, b) = (
        IdentityKey::generate(&mut OsRng),
        IdentityKey::generate(&mut OsRng),
    );
    let (a, b) = (a.signing_key(), b.signing_key());
    let (allow_a, allow_b) = (AllowList::new(), AllowList::new());
    allow_a.insert(b.verifying_key().to_bytes());
    allow_b.insert(a.verifying_key().to_bytes());
    let client = Transport::bind(loopback, a, allow_a, TransportConfig::default())?;
    let server = Transport::bind(loopback, b, allow_b, TransportConfig::default())?;
    let server_addr = server.local_addr()?;
    let (dialled, accepted) = tokio::join!(
        client.connect(server_addr, b.verifying_key().to_bytes()),
        server.accept()
    );
    let conn = dialled?;
    let (server_conn, _) =
        accepted.ok_or_else(|| Error::Invalid("the quinn listener stopped".into()))?;
    Ok((client, server, conn, server_conn))
}

/// `mib` MiB written on one quinn stream in 64 KiB writes and read to its end on the other
/// side, in MiB per second (the first MiB sent before the clock starts, as a warm-up).
async fn quinn_bulk(mib: u64) -> Result<f64> {
    let (client, server, conn, server_conn) = quinn_pair().await?;
    let total = mib * 1024 * 1024;
    let reader = tokio::spawn(async move {
        let mut recv = server_conn.accept_uni().await.map_err(|e| e.to_string())?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut got = 0u64;
        let mut started = None;
        while let Some(n) = recv.read(&mut buf).await.map_err(|e| e.to_string())? {
            got += n as u64;
            if started.is_none() && got >= 1024 * 1024 {
                started = Some((Instant::now(), got));
            }
        }
        let (at, warm) = started.ok_or("the stream ended within its first MiB")?;
        Ok::<_, String>((got - warm, at.elapsed()))
    });
    let quinn_err = |e: String| Error::Invalid(format!("quinn bulk: {e}"));
    let mut send = conn
        .open_uni()
        .await
        .map_err(|e| quinn_err(e.to_string()))?;
    let block = vec![7u8; 64 * 1024];
    let mut sent = 0u64;
    while sent < total + 1024 * 1024 {
        send.write_all(&block)
            .await
            .map_err(|e| quinn_err(e.to_string()))?;
        sent += block.len() as u64;
    }
    send.finish().map_err(|e| quinn_err(e.to_string()))?;
    let measured = tokio::time::timeout(PHASE_TIMEOUT, reader)
        .await
        .map_err(|_| quinn_err("no end of stream in time".into()))?
        .map_err(|e| quinn_err(e.to_string()))?
        .map_err(quinn_err)?;
    conn.close(0u32.into(), b"done");
    client.close();
    server.close();
    let (bytes, took) = measured;
    Ok(bytes as f64 / MIB / took.as_secs_f64().max(f64::EPSILON))
}

/// Sequential small request / acknowledgement round trips on one quinn connection.
async fn quinn_rate(secs: f64) -> Result<f64> {
    let (client, server, conn, server_conn) = quinn_pair().await?;
    let echo = tokio::spawn(async move {
        let Ok((mut send, mut recv)) = server_conn.accept_bi().await else {
            return;
        };
        while let Ok(Some(_)) = transport::read_frame(&mut recv, 1024).await {
            if transport::write_frame(&mut send, &[1u8; 8]).await.is_err() {
                return;
            }
        }
    });
    let quinn_err = |e: transport::FrameError| Error::Invalid(format!("quinn round trip: {e}"));
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| Error::Invalid(format!("cannot open a quinn stream: {e}")))?;
    let request = [2u8; 64];
    // Warm up, then measure.
    for _ in 0..100 {
        transport::write_frame(&mut send, &request)
            .await
            .map_err(quinn_err)?;
        transport::read_frame(&mut recv, 1024)
            .await
            .map_err(quinn_err)?;
    }
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        transport::write_frame(&mut send, &request)
            .await
            .map_err(quinn_err)?;
        transport::read_frame(&mut recv, 1024)
            .await
            .map_err(quinn_err)?;
        done += 1;
    }
    let per_s = done as f64 / start.elapsed().as_secs_f64();
    let _ = send.finish();
    conn.close(0u32.into(), b"done");
    echo.abort();
    client.close();
    server.close();
    Ok(per_s)
}

// ----- 2. end to end -------------------------------------------------------------------------

/// Runs the end-to-end phase: node A in this process, node B in a child process (as in a
/// deployment, the two share no runtime and no store lock), then the API phase on the same
/// nodes; `(e2e, api)` says which to measure. Returns the figures and B's peak resident set.
async fn e2e(
    scale: Scale,
    root: &Path,
    phases: (bool, bool, bool),
) -> Result<(E2e, api::Api, attachments::Attachments, u64)> {
    let nodes = demo::start_nodes(root, &["bench-a"], SYNC_INTERVAL_MS).await?;
    let mut b = match NodeProcess::spawn(root, "bench-b", SYNC_INTERVAL_MS).await {
        Ok(b) => b,
        Err(e) => {
            shutdown_all(nodes).await?;
            return Err(e);
        }
    };
    let result = async {
        let [a] = nodes.as_slice() else {
            return Err(Error::Invalid("expected one node".into()));
        };
        let group = e2e_group(a, &mut b).await?;
        if !phases.0 {
            return Ok((E2e::default(), group));
        }
        let small = "x".repeat(1024);
        // Warm-up: connections, allocator, store files.
        sustained(a, &b, group, &small, 200.min(scale.e2e_1k), scale.window).await?;

        let mut latencies = Vec::with_capacity(scale.latency_samples);
        let mut durable_b = b.subscribe();
        for _ in 0..scale.latency_samples {
            let t0 = Instant::now();
            let id = post(&a.handle, group, &small).await?;
            wait_for(&mut durable_b, id).await?;
            latencies.push(t0.elapsed());
        }
        drop(durable_b);
        let (p50_ms, p99_ms) = percentiles(&mut latencies);
        progress("post → durable on B, p50", p50_ms, "ms");
        progress("post → durable on B, p99", p99_ms, "ms");

        let run_1k = sustained(a, &b, group, &small, scale.e2e_1k, scale.window).await?;
        progress("1 KiB messages", run_1k.per_s, "/s");
        progress("  p50 under load", run_1k.p50_ms, "ms");
        progress("  acknowledgements missing", run_1k.acks_missing as f64, "");
        progress("  cores busy", run_1k.cores_busy, "");
        let large = "y".repeat(64 * 1024);
        let run_64k = sustained(a, &b, group, &large, scale.e2e_64k, scale.window).await?;
        progress("64 KiB messages", run_64k.per_s, "/s");
        progress(
            "  acknowledgements missing",
            run_64k.acks_missing as f64,
            "",
        );
        progress("  cores busy", run_64k.cores_busy, "");
        let e2e = E2e {
            msgs_per_s_1k: run_1k.per_s,
            msgs_per_s_64k: run_64k.per_s,
            body_bytes_per_s_64k: run_64k.per_s * large.len() as f64,
            p50_ms,
            p99_ms,
            loaded_p50_ms: run_1k.p50_ms,
            loaded_p99_ms: run_1k.p99_ms,
            cores_busy_1k: run_1k.cores_busy,
            cores_busy_64k: run_64k.cores_busy,
            acks_missing_1k: run_1k.acks_missing,
            acks_missing_64k: run_64k.acks_missing,
            messages_1k: scale.e2e_1k,
            messages_64k: scale.e2e_64k,
            window: scale.window,
        };
        Ok((e2e, group))
    }
    .await;
    let api = match (&result, nodes.as_slice()) {
        (Ok((_, group)), [a]) if phases.1 => api::run(root, a, &b, *group, scale.api).await,
        _ => Ok(api::Api::default()),
    };
    let attached = match (&result, nodes.as_slice()) {
        (Ok((_, group)), [a]) if phases.2 => {
            attachments::run(root, a, &b, *group, scale.attachment_mib).await
        }
        _ => Ok(attachments::Attachments::default()),
    };
    let peak_rss_b = b.peak_rss();
    let stopped = b.stop().await;
    shutdown_all(nodes).await?;
    let (e2e, _) = result?;
    let api = api?;
    let attached = attached?;
    stopped?;
    Ok((e2e, api, attached, peak_rss_b))
}

/// Pins A and B to each other, creates a group on A with B as member and waits until B
/// holds it.
async fn e2e_group(a: &RunningNode, b: &mut NodeProcess) -> Result<GroupId> {
    let (name, node, address) = (b.name.clone(), b.node_id, b.quic_addr.to_string());
    within("pinning", a.handle.as_admin().add_peer(name, node, address)).await??;
    b.add_peer(a).await?;
    demo::wait_until("peers to connect", || demo::peer_ready(&a.handle, &b.name)).await?;
    let group = within(
        "the group",
        demo::create_group_of(&a.handle, "bench e2e", &[(&b.name, Role::Member)]),
    )
    .await??;
    let started = Instant::now();
    while !b.knows_group(group).await? {
        if started.elapsed() > PHASE_TIMEOUT {
            return Err(Error::Invalid(
                "timed out waiting for the group to reach B".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(group)
}

/// The outcome of one sustained run.
struct Sustained {
    per_s: f64,
    cores_busy: f64,
    acks_missing: usize,
    p50_ms: f64,
    p99_ms: f64,
}

/// Posts `count` messages on `a`, at most `window` of them not yet durable on `b` at any time
/// (a closed loop: the rate is what B absorbs, not what A can seal, so no queue overflows),
/// and waits until `b` holds every one durably and `a` has its acknowledgement for every one.
async fn sustained(
    a: &RunningNode,
    b: &NodeProcess,
    group: GroupId,
    body: &str,
    count: usize,
    window: usize,
) -> Result<Sustained> {
    let stop = CancellationToken::new();
    let gate = Arc::new(Semaphore::new(window));
    let durable = collect(
        b.subscribe(),
        count,
        Watch::Durable,
        stop.clone(),
        Some(gate.clone()),
    );
    let mut acked = collect(a.subscribe(), count, Watch::Acked, stop.clone(), None);
    let start = Instant::now();
    let cpu_start = cpu_seconds("self") + b.cpu_seconds();
    let posted = post_many(&a.handle, group, body, count, POSTERS, Some(gate)).await?;
    let durable = join_phase("messages to be durable on B", durable).await?;
    let last_durable = durable.values().max().copied().unwrap_or_else(Instant::now);
    // B queues each acknowledgement as its flush returns; give them a moment to arrive.
    let acked = match tokio::time::timeout(ACK_GRACE, &mut acked).await {
        Ok(joined) => joined,
        Err(_) => {
            stop.cancel();
            acked.await
        }
    };
    let acked =
        acked.map_err(|e| Error::Invalid(format!("collecting acknowledgements: {e}")))??;
    let last = acked
        .values()
        .max()
        .copied()
        .unwrap_or(last_durable)
        .max(last_durable);
    let seconds = last.duration_since(start).as_secs_f64();
    let per_s = count as f64 / seconds;
    // Approximate: includes the few moments between the last acknowledgement and now.
    let cores_busy =
        (cpu_seconds("self") + b.cpu_seconds() - cpu_start) / start.elapsed().as_secs_f64();
    let mut latencies: Vec<Duration> = posted
        .iter()
        .filter_map(|(id, t0)| durable.get(id).map(|t| t.saturating_duration_since(*t0)))
        .collect();
    let (p50_ms, p99_ms) = percentiles(&mut latencies);
    Ok(Sustained {
        per_s,
        p50_ms,
        p99_ms,
        acks_missing: count.saturating_sub(acked.len()),
        cores_busy,
    })
}

// ----- 3. fan-out ----------------------------------------------------------------------------

async fn fanout(scale: Scale, root: &Path) -> Result<Fanout> {
    let names: Vec<String> = (0..scale.fanout_nodes)
        .map(|i| format!("bench-f{i}"))
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let nodes = demo::start_nodes(root, &names, SYNC_INTERVAL_MS).await?;
    let result = async {
        // A star, as a RILO runs it: node 0 owns the group and relays; node 1 posts.
        let (hub, leaves) = nodes
            .split_first()
            .ok_or_else(|| Error::Invalid("no nodes".into()))?;
        for leaf in leaves {
            within("pinning", demo::peer(hub, leaf)).await??;
        }
        for leaf in leaves {
            connect_wait(hub, leaf).await?;
        }
        let members: Vec<(&RunningNode, Role)> = leaves.iter().map(|n| (n, Role::Member)).collect();
        let group = within(
            "the group",
            demo::create_group(hub, "bench fan-out", &members),
        )
        .await??;
        for leaf in leaves {
            demo::wait_until("the group to reach every member", || {
                demo::knows_group(&leaf.handle, group)
            })
            .await?;
        }
        let author = &leaves[0];
        let mut receivers: Vec<broadcast::Receiver<NodeEvent>> = nodes
            .iter()
            .filter(|n| n.node_id != author.node_id)
            .map(RunningNode::subscribe)
            .collect();
        let body = "z".repeat(1024);
        let mut latencies = Vec::with_capacity(scale.fanout_messages);
        for i in 0..scale.fanout_messages + 5 {
            let t0 = Instant::now();
            let id = post(&author.handle, group, &body).await?;
            for rx in &mut receivers {
                wait_for(rx, id).await?;
            }
            if i >= 5 {
                latencies.push(t0.elapsed());
            }
        }
        let (p50_ms, p99_ms) = percentiles(&mut latencies);
        progress("post → all members durable, p50", p50_ms, "ms");
        progress("post → all members durable, p99", p99_ms, "ms");
        Ok(Fanout {
            nodes: scale.fanout_nodes,
            messages: scale.fanout_messages,
            p50_ms,
            p99_ms,
        })
    }
    .await;
    shutdown_all(nodes).await?;
    result
}

// ----- 4. catch-up ---------------------------------------------------------------------------

async fn catchup(scale: Scale, root: &Path) -> Result<(Catchup, f64)> {
    let mut nodes =
        demo::start_nodes(root, &["bench-author", "bench-late"], SYNC_INTERVAL_MS).await?;
    let late = nodes
        .pop()
        .ok_or_else(|| Error::Invalid("expected two nodes".into()))?;
    let author = nodes
        .pop()
        .ok_or_else(|| Error::Invalid("expected two nodes".into()))?;
    let late_dir = DataDir::new(root.join("bench-late"));
    let mut restarted = None;
    let result = async {
        connect(&author, &late).await?;
        let group = within(
            "the group",
            demo::create_group(&author, "bench catch-up", &[(&late, Role::Member)]),
        )
        .await??;
        demo::wait_until("the group to reach the late node", || {
            demo::knows_group(&late.handle, group)
        })
        .await?;
        late.shutdown().await?;
        let body = "w".repeat(1024);
        let start = Instant::now();
        post_many(&author.handle, group, &body, scale.catchup, POSTERS, None).await?;
        let post_msgs_per_s = scale.catchup as f64 / start.elapsed().as_secs_f64();
        progress("posted while offline", post_msgs_per_s, "/s");

        let start = Instant::now();
        let cpu_start = cpu_seconds("self");
        let node = within("the restart", liaison_node::daemon::start(&late_dir)).await??;
        let store = node.store.clone();
        restarted = Some(node);
        let want = scale.catchup;
        tokio::time::timeout(PHASE_TIMEOUT, async {
            while store.message_count() < want {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await
        .map_err(|_| Error::Invalid("timed out waiting for the catch-up".into()))?;
        // The count moves when a batch is applied; it is durable once its flush returns.
        store.flush().await?;
        let seconds = start.elapsed().as_secs_f64();
        let cores_busy = (cpu_seconds("self") - cpu_start) / seconds;
        let msgs_per_s = want as f64 / seconds;
        progress("caught up", msgs_per_s, "/s");
        progress("  cores busy", cores_busy, "");
        let bytes = dir_size(store.path());
        let per_msg = bytes as f64 / store.message_count().max(1) as f64;
        progress("store on disk per message", per_msg, "B");
        Ok((
            Catchup {
                messages: want,
                seconds,
                msgs_per_s,
                post_msgs_per_s,
                cores_busy,
            },
            per_msg,
        ))
    }
    .await;
    let mut all = vec![author];
    all.extend(restarted);
    shutdown_all(all).await?;
    result
}

// ----- helpers -------------------------------------------------------------------------------

fn bench_post(body: &str) -> Post {
    Post {
        officer: "bench".into(),
        recipients: Vec::new(),
        subject: "bench".into(),
        body: body.to_owned(),
        record: None,
        handling: Handling::Green,
        reply_to: None,
        attachments: Vec::new(),
    }
}

async fn post(handle: &NodeHandle, group: GroupId, body: &str) -> Result<MessageId> {
    let post = bench_post(body);
    let admin = handle.as_admin();
    within("a post", admin.post(group.to_string(), post)).await?
}

/// `fut`, or an error naming `what` after [`PHASE_TIMEOUT`].
async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(PHASE_TIMEOUT, fut)
        .await
        .map_err(|_| Error::Invalid(format!("timed out waiting for {what}")))
}

/// Posts `count` messages from `posters` concurrent tasks, each post first taking a permit of
/// `gate` if given; returns each id with the instant its post was submitted.
async fn post_many(
    handle: &NodeHandle,
    group: GroupId,
    body: &str,
    count: usize,
    posters: usize,
    gate: Option<Arc<Semaphore>>,
) -> Result<Vec<(MessageId, Instant)>> {
    let body: Arc<str> = Arc::from(body);
    let mut tasks = tokio::task::JoinSet::new();
    let posters = posters.clamp(1, count.max(1));
    for w in 0..posters {
        let n = count / posters + usize::from(w < count % posters);
        let (handle, body, gate) = (handle.clone(), body.clone(), gate.clone());
        tasks.spawn(async move {
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                if let Some(gate) = &gate {
                    gate.acquire()
                        .await
                        .map_err(|_| Error::Invalid("the window closed".into()))?
                        .forget();
                }
                let t0 = Instant::now();
                out.push((post(&handle, group, &body).await?, t0));
            }
            Ok::<_, Error>(out)
        });
    }
    let mut all = Vec::with_capacity(count);
    let joined = tokio::time::timeout(PHASE_TIMEOUT, async {
        while let Some(done) = tasks.join_next().await {
            let part = done.map_err(|e| Error::Invalid(format!("a poster failed: {e}")))??;
            all.extend(part);
        }
        Ok::<_, Error>(())
    })
    .await;
    match joined {
        Ok(r) => r?,
        Err(_) => return Err(Error::Invalid("timed out posting".into())),
    }
    Ok(all)
}

/// Which report of the node hook to collect.
#[derive(Debug, Clone, Copy)]
enum Watch {
    /// Messages durably stored by the node.
    Durable,
    /// Acknowledgements the node received.
    Acked,
}

/// Collects, per message id, the first instant `rx` reported it, until `want` ids are seen or
/// `stop` is cancelled; returns a permit to `gate` for every new id.
fn collect(
    mut rx: broadcast::Receiver<NodeEvent>,
    want: usize,
    watch: Watch,
    stop: CancellationToken,
    gate: Option<Arc<Semaphore>>,
) -> tokio::task::JoinHandle<Result<HashMap<MessageId, Instant>>> {
    tokio::spawn(async move {
        let mut seen = HashMap::with_capacity(want);
        while seen.len() < want {
            let event = tokio::select! {
                () = stop.cancelled() => break,
                event = rx.recv() => event,
            };
            let event = event.map_err(|e| {
                Error::Invalid(format!("lost node events ({e}); the benchmark fell behind"))
            })?;
            let ids = match (watch, event) {
                (Watch::Durable, NodeEvent::Durable { ids }) => ids,
                (Watch::Acked, NodeEvent::Acked { ids, .. }) => ids,
                _ => continue,
            };
            let now = Instant::now();
            let before = seen.len();
            for id in ids.iter() {
                seen.entry(*id).or_insert(now);
            }
            if let Some(gate) = &gate {
                gate.add_permits(seen.len() - before);
            }
        }
        Ok(seen)
    })
}

async fn join_phase<T>(what: &str, task: tokio::task::JoinHandle<Result<T>>) -> Result<T> {
    match tokio::time::timeout(PHASE_TIMEOUT, task).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(Error::Invalid(format!("waiting for {what}: {e}"))),
        Err(_) => Err(Error::Invalid(format!("timed out waiting for {what}"))),
    }
}

/// Waits until `rx` reports message `id` durable.
async fn wait_for(rx: &mut broadcast::Receiver<NodeEvent>, id: MessageId) -> Result<()> {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(NodeEvent::Durable { ids }) if ids.contains(&id) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(Error::Invalid(format!("lost node events: {e}"))),
            }
        }
    };
    tokio::time::timeout(PHASE_TIMEOUT, wait)
        .await
        .map_err(|_| Error::Invalid(format!("timed out waiting for message {}", id.short())))?
}

/// Pins two nodes to each other and waits until both see the other connected.
async fn connect(a: &RunningNode, b: &RunningNode) -> Result<()> {
    within("pinning", demo::peer(a, b)).await??;
    connect_wait(a, b).await
}

async fn connect_wait(a: &RunningNode, b: &RunningNode) -> Result<()> {
    demo::wait_until("peers to connect", || demo::peer_ready(&a.handle, &b.name)).await?;
    demo::wait_until("peers to connect", || demo::peer_ready(&b.handle, &a.name)).await
}

async fn shutdown_all(nodes: Vec<RunningNode>) -> Result<()> {
    let mut first_error = None;
    for n in nodes {
        let name = n.name.clone();
        match within("a node to stop", n.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => {
                first_error.get_or_insert(Error::Invalid(format!("stopping {name}: {e}")));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Median and 99th percentile in milliseconds (nearest rank).
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}

/// Total length of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = HashSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d.clone()) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The one-minute load average, from `/proc/loadavg`; 0 where unavailable.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) `process` (`self` or a pid) has used so far, from
/// `/proc/PROCESS/stat`; 0 where unavailable. Assumes the usual 100 clock ticks per second.
fn cpu_seconds(process: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size (`VmHWM`) of `process` (`self` or a pid), in bytes; 0 where
/// unavailable.
fn peak_rss(process: &str) -> u64 {
    proc_status_kib(process, "VmHWM:") * 1024
}

/// The line `field` (`VmHWM:`, `VmRSS:`) of `/proc/PROCESS/status`, in KiB; 0 where
/// unavailable.
fn proc_status_kib(process: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0)
}

/// Resets `VmHWM` to the current resident set (Linux `clear_refs` 5), so that the next
/// [`peak_rss`] is the peak of one phase. Harmless where unsupported.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn progress(what: &str, value: f64, unit: &str) {
    println!("      {what:<34} {:>14} {unit}", human(value));
}

/// A number with thousands separators, or two decimals below 100.
fn human(v: f64) -> String {
    if v < 100.0 {
        return format!("{v:.2}");
    }
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_table(r: &Report) {
    let row = |section: &str, key: &str, value: f64, unit: &str| {
        println!("  {:<10} {key:<24} {:>14} {unit}", section, human(value));
    };
    println!();
    println!(
        "Liaison {} bench{} on {} cores, {:.0} s, load average {:.2} at the start, {:.2} at the end",
        r.machine.version,
        if r.machine.quick { " --quick" } else { "" },
        r.machine.cores,
        r.machine.run_seconds,
        r.machine.load_1m_start,
        r.machine.load_1m_end
    );
    let l = &r.limits;
    row("limits", "sign_per_s", l.sign_per_s, "/s  (one core)");
    row(
        "",
        "verify_per_s",
        l.verify_per_s,
        "/s  (one core, verify_strict)",
    );
    row("", "seal_1k_per_s", l.seal_1k_per_s, "/s  (one core)");
    row(
        "",
        "open_1k_per_s",
        l.open_1k_per_s,
        "/s  (one core, verify + open)",
    );
    row(
        "",
        "aead_bytes_per_s",
        l.aead_bytes_per_s / MIB,
        "MiB/s (one core)",
    );
    row(
        "",
        "sled_flushes_per_s",
        l.sled_flushes_per_s,
        "/s  (8 × 1 KiB + flush)",
    );
    row(
        "",
        "quinn_roundtrips_per_s",
        l.quinn_roundtrips_per_s,
        "/s  (one connection)",
    );
    row(
        "",
        "quinn_bulk_mib_per_s",
        l.quinn_bulk_mib_per_s,
        "MiB/s (one stream)",
    );
    let e = &r.e2e;
    row(
        "e2e",
        "msgs_per_s_1k",
        e.msgs_per_s_1k,
        "/s  (A → durable on B → ack)",
    );
    row("", "msgs_per_s_64k", e.msgs_per_s_64k, "/s");
    row(
        "",
        "body_bytes_per_s_64k",
        e.body_bytes_per_s_64k / MIB,
        "MiB/s",
    );
    row("", "p50_ms", e.p50_ms, "ms  (one at a time)");
    row("", "p99_ms", e.p99_ms, "ms");
    row(
        "",
        "loaded_p50_ms",
        e.loaded_p50_ms,
        "ms  (sustained 1 KiB run)",
    );
    row("", "loaded_p99_ms", e.loaded_p99_ms, "ms");
    row(
        "",
        "cores_busy_1k",
        e.cores_busy_1k,
        "cores (both processes)",
    );
    let f = &r.fanout;
    row(
        "fanout",
        "p50_ms",
        f.p50_ms,
        &format!("ms  ({} nodes)", f.nodes),
    );
    row("", "p99_ms", f.p99_ms, "ms");
    let c = &r.catchup;
    row(
        "catchup",
        "msgs_per_s",
        c.msgs_per_s,
        &format!("/s  ({} messages)", c.messages),
    );
    row("", "seconds", c.seconds, "s");
    row("", "cores_busy", c.cores_busy, "cores (whole process)");
    let s = &r.resources;
    row(
        "resources",
        "peak_rss_bytes",
        s.peak_rss_bytes as f64 / MIB,
        "MiB (largest process)",
    );
    row(
        "",
        "peak_rss_node_bytes",
        s.peak_rss_node_bytes as f64 / MIB,
        "MiB (node B alone, end to end)",
    );
    row(
        "",
        "store_bytes_per_msg",
        s.store_bytes_per_msg,
        "B  (1 KiB bodies)",
    );
    let a = &r.api;
    row(
        "api",
        "msgs_per_s_1",
        a.msgs_per_s_1,
        "/s  (HTTP post on A → B's event stream, 1 client)",
    );
    row("", "post_p50_ms_1", a.post_p50_ms_1, "ms  (answered on A)");
    row("", "post_p99_ms_1", a.post_p99_ms_1, "ms");
    row(
        "",
        "cores_busy_1",
        a.cores_busy_1,
        "cores (both processes, clients included)",
    );
    row("", "msgs_per_s_16", a.msgs_per_s_16, "/s  (16 clients)");
    row("", "post_p50_ms_16", a.post_p50_ms_16, "ms");
    row("", "post_p99_ms_16", a.post_p99_ms_16, "ms");
    row("", "cores_busy_16", a.cores_busy_16, "cores");
    let t = &r.attachments;
    row(
        "attachment",
        "mib_per_s",
        t.mib_per_s,
        &format!("MiB/s (A → held whole on B, {} MiB)", t.mib),
    );
    let q = &r.ratios;
    row(
        "ratios",
        "e2e_over_verify",
        q.e2e_over_verify,
        "(goal ≥ 0.5)",
    );
    row(
        "",
        "catchup_over_verify",
        q.catchup_over_verify,
        "(goal ≥ 0.5)",
    );
    row("", "e2e_over_quinn", q.e2e_over_quinn, "");
    row(
        "",
        "api_over_e2e",
        q.api_over_e2e,
        "(goal ≥ 0.5, 16 clients)",
    );
    row(
        "",
        "attachment_over_quinn",
        q.attachment_over_quinn,
        "(goal ≥ 0.5)",
    );
    if let Some(s) = &r.scale {
        print_scale(s);
    }
}

fn print_scale(s: &scale::ScaleReport) {
    let row = |section: &str, key: &str, value: f64, unit: &str| {
        println!("  {:<10} {key:<24} {:>14} {unit}", section, human(value));
    };
    let n = human(s.messages as f64);
    row("scale", "messages", s.messages as f64, "in one group");
    row(
        "",
        "fill_msgs_per_s",
        s.fill_msgs_per_s,
        "/s  (API batches, durable)",
    );
    row(
        "",
        "start_seconds",
        s.start_seconds,
        "s  (until the API answers)",
    );
    row(
        "",
        "idle_rss_mib",
        s.idle_rss_mib,
        "MiB (settled after start)",
    );
    row(
        "",
        "page_p50_ms",
        s.page_p50_ms,
        "ms  (first page, limit 50)",
    );
    row(
        "",
        "page_p99_ms",
        s.page_p99_ms,
        &format!(
            "ms  ({} samples, {} messages on it)",
            s.page_samples, s.page_messages
        ),
    );
    row("", "read_p50_ms", s.read_p50_ms, "ms  (a message by id)");
    row("", "read_p99_ms", s.read_p99_ms, "ms");
    row("", "post_p50_ms", s.post_p50_ms, "ms  (one at a time)");
    row("", "post_p99_ms", s.post_p99_ms, "ms");
    row(
        "",
        "audit_verify_seconds",
        s.audit_verify_seconds,
        &format!("s  ({} records)", s.audit_records),
    );
    row(
        "",
        "web_group_p50_ms",
        s.web_group_p50_ms,
        "ms  (web: group page)",
    );
    row("", "web_group_p99_ms", s.web_group_p99_ms, "ms");
    row(
        "",
        "web_record_p50_ms",
        s.web_record_p50_ms,
        "ms  (web: record page)",
    );
    row("", "web_record_p99_ms", s.web_record_p99_ms, "ms");
    row(
        "",
        "web_thread_p50_ms",
        s.web_thread_p50_ms,
        &format!("ms  (web: a thread of {} messages)", s.thread_messages),
    );
    row("", "web_thread_p99_ms", s.web_thread_p99_ms, "ms");
    row(
        "",
        "catchup_msgs_per_s",
        s.catchup_msgs_per_s,
        "/s  (a member offline while the group filled)",
    );
    for g in &s.goals {
        println!(
            "  {:<10} goal {:<19} {:>14} {} against < {} {} at {} messages: {}",
            "",
            g.figure,
            human(g.value),
            g.unit,
            human(g.below),
            g.unit,
            human(g.at_messages as f64),
            if g.met { "met" } else { "missed" },
        );
    }
    println!("  {:<10} (measured at {n} messages)", "");
}
