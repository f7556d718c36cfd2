//! Power loss: the `liaison` binary runs on a data directory watched by fault_fs
//! (`tests/fault_fs/fault_fs.c`), which keeps a shadow copy that receives only the bytes that
//! were `fsync`ed or `fdatasync`ed — `sync_file_range`, which sled uses for its own writes,
//! makes nothing durable, as on a real power cut. Officers post through the API from several
//! threads while the operator adds officer accounts (which sled alone holds); at a random
//! moment (seeded, the seed is printed) the node is killed, and the shadow is what the disk
//! holds after the power cut. The node starts on that disk, and every post whose id the API had
//! returned must be there, with its text, and every account it confirmed; the audit chain must
//! be intact. Then the next round runs on that disk.
//!
//! CI runs 6 power cuts; `LIAISON_FULL_TESTS=1` runs 40 (`LIAISON_POWER_CUTS=N` sets any
//! count, `LIAISON_POWER_SEED=S` repeats a run's moments).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use common::fault_fs::{self, copy_tree, Api, Node};
use common::{init, ok, Daemon};

/// A small seeded generator (SplitMix64): enough to pick the moments of the cuts reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn cuts() -> u64 {
    env_u64("LIAISON_POWER_CUTS").unwrap_or(
        if std::env::var("LIAISON_FULL_TESTS").is_ok_and(|v| v == "1") {
            40
        } else {
            6
        },
    )
}

/// Checks, on the node running on the disk that survived a power cut, that every officer account
/// the API acknowledged is there (accounts live in sled alone, not in the envelope log), that
/// every post the API acknowledged is listed, and that those acknowledged in the last round read back with their
/// text (earlier ones were read back in earlier rounds, on disks that held them already).
/// What the API acknowledged before a power cut.
struct Acknowledged {
    /// Posts: id → text.
    posts: BTreeMap<String, String>,
    /// The posts acknowledged in the last round.
    fresh: BTreeSet<String>,
    /// Officer accounts.
    accounts: BTreeSet<String>,
}

fn check_acknowledged(
    api: &Api,
    node: &Node,
    group: &str,
    acknowledged: &Acknowledged,
    round: u64,
    seed: u64,
) -> usize {
    let Acknowledged {
        posts: acked,
        fresh,
        accounts,
    } = acknowledged;
    let addr = node.api().expect("api");
    let (status, users) = api.get(addr, "/v1/users");
    assert_eq!(status, 200, "users: {users}");
    let names: BTreeSet<&str> = users
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    let gone: Vec<&String> = accounts
        .iter()
        .filter(|a| !names.contains(a.as_str()))
        .collect();
    assert!(
        gone.is_empty(),
        "after power cut {round} (seed {seed}): {} of {} acknowledged accounts are gone: {gone:?}",
        gone.len(),
        accounts.len()
    );
    // Every page of the group's listing.
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut path = format!("/v1/messages?group={group}&limit=1000");
    loop {
        let (status, page) = api.get(addr, &path);
        assert_eq!(status, 200, "inbox");
        held.extend(
            page["messages"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/messages?group={group}&limit=1000&before={next}"),
            None => break,
        }
    }
    let lost: Vec<&String> = acked.keys().filter(|id| !held.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "after power cut {round} (seed {seed}): {} of {} acknowledged posts are gone: {:?}\n\
         the node's log:\n{}",
        lost.len(),
        acked.len(),
        lost.iter().take(10).collect::<Vec<_>>(),
        node.log_tail()
    );
    for id in fresh {
        let (status, m) = api.get(addr, &format!("/v1/messages/{id}"));
        assert_eq!(
            status, 200,
            "after power cut {round} (seed {seed}): reading {id}: {m}"
        );
        assert_eq!(
            m["body"].as_str(),
            Some(acked[id].as_str()),
            "after power cut {round}: {id} holds another text"
        );
    }
    let (status, audit) = api.get(addr, "/v1/audit/verify");
    assert_eq!(status, 200, "audit verify: {audit}");
    assert_eq!(
        audit["intact"], true,
        "after power cut {round} (seed {seed}): the audit chain is broken: {audit}"
    );
    held.len()
}

#[test]
fn power_loss_keeps_every_acknowledged_post() {
    let Some(lib) = fault_fs::library() else {
        return;
    };
    let seed = env_u64("LIAISON_POWER_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let cuts = cuts();
    eprintln!("power loss test: {cuts} cuts, seed {seed} (LIAISON_POWER_SEED={seed} repeats it)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tmp");
    let disk = |n: u64| tmp.path().join(format!("disk{n}"));
    let log = tmp.path().join("node.log");

    // The node and its group, made on a disk that is not watched yet.
    init(&disk(0), "victim");
    let group = {
        let d = Daemon::start(&disk(0));
        let group = ok(&disk(0), &["group", "create", "power"]);
        d.stop();
        group
    };
    let api = Arc::new(Api::new(&disk(0)));

    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let accounts: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut fresh = BTreeSet::new();
    for round in 0..=cuts {
        // The disk as the last power cut left it; the shadow starts as a copy of it.
        let (here, next) = (disk(round), disk(round + 1));
        copy_tree(&here, &next);
        let mut node = if round < cuts {
            Node::start_under(&lib, &here, &log, &[("FAULT_FS_SHADOW", &next)])
        } else {
            Node::start(&here, &log, &[])
        };
        let now = Acknowledged {
            posts: acked.lock().unwrap_or_else(PoisonError::into_inner).clone(),
            fresh: std::mem::take(&mut fresh),
            accounts: accounts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        };
        let held = check_acknowledged(&api, &node, &group, &now, round, seed);
        if round > 0 {
            eprintln!(
                "power cut {round}: {} posts acknowledged so far, {held} held, all intact; {} \
                 accounts, all there",
                now.posts.len(),
                now.accounts.len()
            );
        }
        if round == cuts {
            node.stop();
            break;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let addr = node.api().expect("api");
        let posters: Vec<_> = (0..3)
            .map(|t| {
                let (api, acked, stop, group) =
                    (api.clone(), acked.clone(), stop.clone(), group.clone());
                std::thread::spawn(move || {
                    let mut mine = BTreeSet::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        let text = format!("round {round} thread {t} post {i}");
                        i += 1;
                        let body = serde_json::json!({"subject": "power", "body": text});
                        let Some((200 | 201, v)) =
                            api.post(addr, &format!("/v1/groups/{group}/messages"), &body)
                        else {
                            continue;
                        };
                        let id = v["id"].as_str().expect("an id").to_owned();
                        acked
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(id.clone(), text);
                        mine.insert(id);
                    }
                    mine
                })
            })
            .collect();
        let officers = {
            let (api, accounts, stop) = (api.clone(), accounts.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let name = format!("officer-{round}-{i}");
                    i += 1;
                    let body = serde_json::json!({"name": name, "grants": []});
                    if let Some((200 | 201, _)) = api.post(addr, "/v1/users", &body) {
                        accounts
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(name);
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(rng.between(50, 1_500)));
        // The power cut: the process dies, and only the shadow (what was synced) remains.
        node.kill();
        stop.store(true, Ordering::SeqCst);
        for p in posters {
            fresh.extend(p.join().expect("poster"));
        }
        officers.join().expect("officers");
        remove_tree(&here);
    }
}

/// Removes a disk that is no longer needed (the test keeps at most two at a time).
fn remove_tree(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// A post that names an attachment: once the API answered it, a power cut keeps not only the
/// message and the file but also the index entry that lets an officer open the file through
/// the message. Each round posts one such message, cuts the power as soon as the answer is in,
/// and opens the file on the disk that survived.
#[test]
fn power_loss_keeps_a_posted_attachment_openable() {
    let Some(lib) = fault_fs::library() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let disk = |n: u64| tmp.path().join(format!("disk{n}"));
    let log = tmp.path().join("node.log");
    init(&disk(0), "victim");
    let group = {
        let d = Daemon::start(&disk(0));
        let group = ok(&disk(0), &["group", "create", "power"]);
        d.stop();
        group
    };
    for round in 0..3u64 {
        let (here, next) = (disk(round), disk(round + 1));
        copy_tree(&here, &next);
        let mut node = Node::start_under(&lib, &here, &log, &[("FAULT_FS_SHADOW", &next)]);
        let file = tmp.path().join(format!("seizure-{round}.txt"));
        let content = format!("inventory of seizure {round}");
        std::fs::write(&file, &content).expect("write");
        let id = ok(
            &here,
            &[
                "send",
                &group,
                "--subject",
                "seizure",
                "see the file",
                "--attach",
                file.to_str().expect("utf-8"),
            ],
        );
        // The power cut, as soon as the answer is in.
        node.kill();
        remove_tree(&here);

        let mut after = Node::start(&next, &log, &[]);
        let read = common::json(&next, &["read", &id, "--json"]);
        let attachment = read["attachments"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("round {round}: the message names no attachment: {read}"))
            .to_owned();
        let saved = tmp.path().join("saved.txt");
        let out = common::liaison(
            &next,
            &[
                "attachment",
                "get",
                &attachment,
                "--wait",
                "0",
                "-o",
                saved.to_str().expect("utf-8"),
            ],
        );
        assert!(
            out.status.success(),
            "round {round}: the attachment of an acknowledged post does not open after a power \
             cut: {}\nthe node's log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            after.log_tail()
        );
        assert_eq!(std::fs::read_to_string(&saved).expect("saved"), content);
        after.stop();
    }
}
