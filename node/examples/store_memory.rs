//! What a store holding many messages costs in memory and at start: fills a store with N
//! messages (600-byte envelopes, 16 authors in 4 groups, written in batches of 256 as a busy
//! node writes them), then opens it in a fresh process and reports the time to open, the id
//! index's size and the process's resident memory, once open and after 10,000 reads by id.
//!
//! ```text
//! cargo run --release -p liaison-node --example store_memory -- fill DIR 1000000
//! cargo run --release -p liaison-node --example store_memory -- open DIR [CACHE_MB]
//! ```
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use liaison_node::store::{NewMessage, Store, StoreOptions};
use liaison_protocol::{GroupId, IdentityKey, MessageId, NodeId, Place};

const GROUPS: u64 = 4;
const AUTHORS: u64 = 16;
const BATCH: u64 = 256;
const ENVELOPE: usize = 600;

fn id(n: u64) -> MessageId {
    MessageId::from(*blake3::hash(&n.to_be_bytes()).as_bytes())
}

/// Message `n`: author `n % AUTHORS`, in group `author % GROUPS`, seq `n / AUTHORS + 1`.
fn place(n: u64, authors: &[NodeId]) -> Place {
    let a = n % AUTHORS;
    Place {
        group: GroupId::from([(a % GROUPS) as u8 + 1; 16]),
        author: authors[a as usize],
        epoch: 1,
        seq: n / AUTHORS + 1,
    }
}

/// Resident and peak resident memory of this process, in MiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn fill(dir: &Path, n: u64, authors: &[NodeId]) {
    let store = Store::open(dir).unwrap();
    let started = Instant::now();
    let mut envelope = vec![0u8; ENVELOPE];
    let mut next = store.message_count() as u64;
    while next < n {
        let batch: Vec<NewMessage> = (next..n.min(next + BATCH))
            .map(|m| {
                envelope[..8].copy_from_slice(&m.to_be_bytes());
                NewMessage {
                    id: id(m),
                    place: place(m, authors),
                    envelope: envelope.clone(),
                    meta: m.to_be_bytes().to_vec(),
                    created_at: m,
                    reply_to: None,
                }
            })
            .collect();
        next += batch.len() as u64;
        store.insert_messages(batch).await.unwrap();
    }
    store.flush().await.unwrap();
    println!(
        "filled {n} messages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

async fn open(dir: &Path, options: StoreOptions, authors: &[NodeId]) {
    let (before, _) = rss();
    let started = Instant::now();
    let store = Store::open_with(dir, &options).unwrap();
    let opened = started.elapsed();
    let n = store.message_count() as u64;
    let (open_rss, open_peak) = rss();
    let started = Instant::now();
    let mut found = 0;
    for k in 0..10_000u64 {
        let m = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) % n.max(1);
        found += usize::from(store.message(&id(m)).unwrap().is_some());
        let _ = place(m, authors);
    }
    let reads = started.elapsed();
    let (read_rss, read_peak) = rss();
    println!(
        "cache {} MiB: {n} messages, open {:.2} s, id index {:.1} MiB ({:.1} B/message), \
         RSS before open {before} MiB, after open {open_rss} MiB (peak {open_peak}), \
         after {found} reads by id ({:.1} us each) {read_rss} MiB (peak {read_peak})",
        options.cache_bytes / (1024 * 1024),
        opened.as_secs_f64(),
        store.id_index_bytes() as f64 / (1024.0 * 1024.0),
        store.id_index_bytes() as f64 / n.max(1) as f64,
        reads.as_secs_f64() * 1e6 / 10_000.0,
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let authors: Vec<NodeId> = (0..AUTHORS)
        .map(|a| IdentityKey::from_seed(&[a as u8 + 1; 32]).node_id())
        .collect();
    match args.get(1..).unwrap_or_default() {
        [cmd, dir, n] if cmd == "fill" => fill(Path::new(dir), n.parse().unwrap(), &authors).await,
        [cmd, dir, rest @ ..] if cmd == "open" => {
            let mut options = StoreOptions::default();
            if let Some(mb) = rest.first() {
                options.cache_bytes = mb.parse::<u64>().unwrap() * 1024 * 1024;
            }
            open(Path::new(dir), options, &authors).await
        }
        _ => eprintln!("usage: store_memory fill DIR N | open DIR [CACHE_MB]"),
    }
}
