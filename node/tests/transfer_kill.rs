//! An attachment transfer killed half-way, as real processes: the fetching node, then the
//! serving node, is killed with SIGKILL while chunks are arriving; once it runs again, the
//! fetch goes on from the chunks already held and the file arrives whole, byte for byte.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{init, json, liaison, link, ok, Daemon};

/// A file of `len` bytes of noise (it does not compress, like a photo).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The chunks held (bits set) in the partial file of attachment `id` under `data`, if the
/// fetch has started and not finished.
fn held_chunks(data: &Path, id: &str) -> Option<u32> {
    let path = data
        .join("store")
        .join(liaison_node::attachments::files::DIR)
        .join("partial")
        .join(format!("{id}.held"));
    let bytes = std::fs::read(path).ok()?;
    // "LAH1" ‖ ciphertext length (u64 BE) ‖ one bit per chunk.
    Some(bytes.get(12..)?.iter().map(|b| b.count_ones()).sum())
}

fn whole(data: &Path, id: &str) -> PathBuf {
    data.join("store")
        .join(liaison_node::attachments::files::DIR)
        .join("whole")
        .join(id)
}

/// Posts `bytes` as an attachment on `author` and returns the attachment's id once `reader`
/// holds the message.
fn post(author: &Path, reader: &Path, group: &str, bytes: &[u8], name: &str) -> String {
    let file = author.parent().expect("root").join(name);
    std::fs::write(&file, bytes).expect("write");
    let id = ok(
        author,
        &[
            "send",
            group,
            "--subject",
            "evidence",
            "see the file",
            "--attach",
            file.to_str().expect("utf-8"),
        ],
    );
    common::eventually("the reader holds the message", || {
        let out = liaison(reader, &["read", &id, "--json"]);
        out.status.success().then_some(())
    });
    json(reader, &["read", &id, "--json"])["attachments"][0]["id"]
        .as_str()
        .expect("attachment id")
        .to_owned()
}

/// Asks `reader` for attachment `id` (which starts its fetch) and waits, polling the partial
/// file, until some chunks but not all are held. Panics if the whole file arrives first (the
/// kill would then prove nothing).
fn wait_half_way(reader: &Path, id: &str) -> u32 {
    let asked = liaison(reader, &["attachment", "get", id, "--wait", "0"]);
    assert!(!asked.status.success(), "held before it was asked for");
    let start = Instant::now();
    loop {
        if let Some(held) = held_chunks(reader, id).filter(|n| *n > 0) {
            return held;
        }
        assert!(
            !whole(reader, id).exists(),
            "the transfer finished before it could be killed half-way"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the fetch never started"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Fetches attachment `id` on `reader` (waiting while it is fetched) and returns its bytes.
fn get(reader: &Path, id: &str) -> Vec<u8> {
    let out = reader.parent().expect("root").join(format!("{id}.out"));
    ok(
        reader,
        &[
            "attachment",
            "get",
            id,
            "--wait",
            "120",
            "-o",
            out.to_str().expect("utf-8"),
        ],
    );
    std::fs::read(out).expect("saved")
}

/// A node restarted on another port (tests bind port 0, where a deployment keeps its port):
/// its peer is told the new address, as its operator would be.
fn repin(restarted: &Path, peer: &Path) {
    let line = ok(restarted, &["id"]);
    let parts: Vec<&str> = line.split_whitespace().collect();
    ok(
        peer,
        &["peer", "add", "--replace", parts[0], parts[1], parts[2]],
    );
}

#[test]
fn a_transfer_killed_half_way_on_either_side_resumes_and_completes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("author"), tmp.path().join("reader"));
    init(&a, "customs-fr");
    init(&b, "museum-it");
    let mut author = Daemon::start(&a);
    let mut reader = Daemon::start(&b);
    link(&a, &b);
    let group = ok(&a, &["group", "create", "heritage"]);
    ok(&a, &["group", "add", &group, "museum-it"]);
    common::eventually("the reader holds the group", || {
        let groups = json(&b, &["group", "list", "--json"]);
        (groups.as_array().map(Vec::len) == Some(1)).then_some(())
    });

    // 50 MiB (the largest attachment): over the reader's eager limit, fetched when asked.
    let first = noise(50 * 1024 * 1024, 0x5eed);
    let id = post(&a, &b, &group, &first, "scan-1.bin");
    let held = wait_half_way(&b, &id);
    reader.child.kill().expect("SIGKILL the reader");
    reader.child.wait().expect("reaped");
    eprintln!("reader killed holding {held} chunks");
    reader = Daemon::start(&b);
    repin(&b, &a);
    assert!(
        get(&b, &id) == first,
        "the first file arrives whole after the reader's kill"
    );

    let second = noise(50 * 1024 * 1024, 0xfeed);
    let id = post(&a, &b, &group, &second, "scan-2.bin");
    let held = wait_half_way(&b, &id);
    author.child.kill().expect("SIGKILL the author");
    author.child.wait().expect("reaped");
    eprintln!("author killed while the reader held {held} chunks");
    author = Daemon::start(&a);
    repin(&a, &b);
    assert!(
        get(&b, &id) == second,
        "the second file arrives whole after the author's kill"
    );
    assert!(
        held_chunks(&b, &id).is_none(),
        "no partial file is left behind"
    );
    reader.stop();
    author.stop();
}
