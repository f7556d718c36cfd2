//! Crash safety of the `liaison` binary: a victim node runs as a real process, posts through its
//! API and receives from a peer in a loop, and is killed with SIGKILL at random moments (seeded;
//! the seed is printed), then restarted. After every kill the test opens the victim's store
//! itself and checks that every message whose id the API returned, and every message the victim
//! had acknowledged to its peer with a signed receipt, is present and decrypts to the text that
//! was posted; that nothing is stored twice; and that the store opens at all.
//!
//! CI runs 20 kills; `LIAISON_FULL_TESTS=1` runs 200 (`LIAISON_CRASH_KILLS=N` sets any count,
//! `LIAISON_CRASH_SEED=S` repeats a run's moments).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use liaison_node::config::Config;
use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::store::Store;
use liaison_protocol::group::{GroupState, LocalKeys};
use liaison_protocol::message::{self, MessageId, Payload, Place};
use liaison_protocol::{GroupId, Handling, NodeId, Role};

const BIN: &str = env!("CARGO_BIN_EXE_liaison");

/// A small seeded generator (SplitMix64): enough to pick kill moments reproducibly.
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

fn kills() -> u64 {
    env_u64("LIAISON_CRASH_KILLS").unwrap_or(
        if std::env::var("LIAISON_FULL_TESTS").is_ok_and(|v| v == "1") {
            200
        } else {
            20
        },
    )
}

/// The victim: the `liaison` binary running on a data directory, its log appended to a file.
struct Victim {
    data: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    pid: Arc<AtomicU32>,
}

impl Victim {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("victim log");
        let child = Command::new(BIN)
            .arg("--data")
            .arg(&self.data)
            .arg("run")
            .env("RUST_LOG", "info")
            .env_remove("LIAISON_DATA")
            .env_remove("LIAISON_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the victim");
        self.pid.store(child.id(), Ordering::SeqCst);
        self.child = Some(child);
    }

    /// SIGKILL (std's `Child::kill` sends SIGKILL on Unix), after checking that the process had
    /// not exited on its own (for example because its store did not open).
    fn kill(&mut self) {
        let mut child = self.child.take().expect("victim running");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "the victim exited by itself ({status}) before the kill; its log:\n{}",
                self.log_tail()
            );
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap the victim");
        self.pid.store(0, Ordering::SeqCst);
    }

    fn stop(&mut self) {
        let child = self.child.take().expect("victim running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let mut child = child;
        let code = child.wait().expect("wait");
        assert!(code.success(), "victim exited with {code:?} after SIGTERM");
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Victim {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The API of the victim process whose pid is `pid`, if it is up (its runtime file names that
/// pid).
fn api_of(data: &Path, pid: u32) -> Option<SocketAddr> {
    DataDir::new(data)
        .runtime()
        .filter(|r| r.pid == pid && pid != 0)
        .map(|r| r.api)
}

struct Api {
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn get(&self, api: SocketAddr, path: &str) -> Option<serde_json::Value> {
        let resp = self
            .http
            .get(format!("http://{api}{path}"))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    async fn post(
        &self,
        api: SocketAddr,
        path: &str,
        body: &serde_json::Value,
    ) -> Option<serde_json::Value> {
        let resp = self
            .http
            .post(format!("http://{api}{path}"))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }
}

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What must survive every kill: message id → the text posted.
type Expected = BTreeMap<MessageId, String>;

/// Opens the victim's store (the process is dead) and checks it. Returns how many messages it
/// holds. A message verified and decrypted in an earlier round is checked by the hash of its
/// bytes (`verified`), which keeps each round's check short.
async fn check_store(
    data: &Path,
    group: GroupId,
    must_hold: &Expected,
    verified: &mut BTreeMap<MessageId, [u8; 32]>,
    round: u64,
    seed: u64,
) -> usize {
    let dir = DataDir::new(data);
    let (identity, exchange) = dir.keys().expect("victim keys");
    let store = Store::open(&dir.store_path()).unwrap_or_else(|e| {
        panic!("round {round} (seed {seed}): the store does not open after SIGKILL: {e}")
    });
    let controls: Vec<Vec<u8>> = store
        .control_events(&group)
        .expect("control events")
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let local = Some(LocalKeys {
        node: identity.node_id(),
        exchange: &exchange,
    });
    let mut state = GroupState::from_genesis(&controls[0], local).expect("event 1 intact");
    for e in &controls[1..] {
        state.apply(e, local).expect("control event intact");
    }
    let mut lost = Vec::new();
    for (id, text) in must_hold {
        let Some(bytes) = store.message(id).expect("read") else {
            lost.push(id.short());
            continue;
        };
        let hash = *blake3::hash(&bytes).as_bytes();
        if let Some(known) = verified.get(id) {
            assert_eq!(
                *known,
                hash,
                "round {round} (seed {seed}): message {} changed on disk",
                id.short()
            );
            continue;
        }
        let (checked, content) = message::verify_and_open(&bytes, &state).unwrap_or_else(|e| {
            panic!(
                "round {round} (seed {seed}): message {} is damaged: {e}",
                id.short()
            )
        });
        assert_eq!(checked.id, *id, "stored under another id");
        let Payload::Text { body, .. } = content.payload else {
            panic!("message {} is not the note that was posted", id.short());
        };
        assert_eq!(&body, text, "message {} holds another text", id.short());
        verified.insert(*id, hash);
    }
    assert!(
        lost.is_empty(),
        "round {round} (seed {seed}): {} acknowledged messages lost after SIGKILL: {lost:?}",
        lost.len()
    );
    // Nothing twice: one index entry per message, one message per (author, epoch, seq).
    let listed = store.group_messages(&group).expect("group index");
    let ids: BTreeSet<MessageId> = listed.iter().copied().collect();
    assert_eq!(
        ids.len(),
        listed.len(),
        "round {round}: a message is listed twice"
    );
    let slots: BTreeSet<Place> = store.held(&group).expect("held").into_iter().collect();
    assert_eq!(
        slots.len(),
        ids.len(),
        "round {round}: index and messages disagree"
    );
    assert_eq!(
        store.message_count(),
        ids.len(),
        "round {round}: message count drifted"
    );
    for id in &ids {
        assert!(
            store.message(id).expect("read").is_some(),
            "dangling index entry"
        );
    }
    let held = ids.len();
    drop(store);
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let seed = env_u64("LIAISON_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let kills = kills();
    eprintln!("crash test: {kills} kills, seed {seed} (LIAISON_CRASH_SEED={seed} repeats it)");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().expect("tmp");

    // The peer: an in-process node that is never killed.
    let peer_dir = DataDir::new(tmp.path().join("peer"));
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config::new("peer", any, any);
    config.sync.interval_ms = 200;
    config.transport.redial_min_ms = 100;
    config.transport.redial_max_ms = 1_000;
    // The victim comes back on a new port after each kill, so the peer learns that the old
    // connection is dead only from its idle timeout; keep it short so that the victim
    // reconnects and receives within its short lives.
    config.transport.keep_alive_ms = 200;
    config.transport.idle_timeout_ms = 800;
    peer_dir
        .init(&config, &mut rand_core::OsRng)
        .expect("init peer");
    let peer: RunningNode = liaison_node::daemon::start(&peer_dir)
        .await
        .expect("start peer");

    // The victim: `liaison init`, then a shorter sync interval in its node.toml.
    let data = tmp.path().join("victim");
    let init = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args([
            "init",
            "--name",
            "victim",
            "--listen",
            "127.0.0.1:0",
            "--api",
            "127.0.0.1:0",
        ])
        .output()
        .expect("liaison init");
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let vdir = DataDir::new(&data);
    let mut vconfig = vdir.config().expect("victim config");
    vconfig.sync.interval_ms = 200;
    vconfig.transport.redial_min_ms = 100;
    vconfig.transport.redial_max_ms = 1_000;
    vconfig.transport.keep_alive_ms = 200;
    vconfig.transport.idle_timeout_ms = 800;
    std::fs::write(vdir.config_path(), vconfig.to_toml()).expect("write node.toml");
    let victim_id: NodeId = vdir.keys().expect("keys").0.node_id();
    let api = Arc::new(Api {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client"),
        token: vdir.admin_token().expect("token").to_string(),
    });
    let pid = Arc::new(AtomicU32::new(0));
    let mut victim = Victim {
        data: data.clone(),
        log: tmp.path().join("victim.log"),
        child: None,
        pid: pid.clone(),
    };
    victim.spawn();
    let addr = eventually("the victim's API", || async {
        let a = api_of(&data, pid.load(Ordering::SeqCst))?;
        api.get(a, "/v1/status").await.map(|_| a)
    })
    .await;

    // Peer them, and make a group owned by the peer with the victim as a member.
    let status = api.get(addr, "/v1/status").await.expect("status");
    let victim_quic: String = status["quic_addr"].as_str().expect("quic").to_owned();
    api.post(
        addr,
        "/v1/peers",
        &serde_json::json!({
            "name": "peer",
            "node_id": peer.node_id.to_string(),
            "address": peer.quic_addr.to_string(),
        }),
    )
    .await
    .expect("victim pins the peer");
    let (name, address) = ("victim".to_owned(), victim_quic);
    peer.handle
        .as_admin()
        .add_peer(name, victim_id, address)
        .await
        .expect("peer pins the victim");
    liaison_node::demo::wait_until("the victim to connect", || {
        liaison_node::demo::peer_ready(&peer.handle, "victim")
    })
    .await
    .expect("linked");
    let name = "crash".to_owned();
    let group = peer
        .handle
        .as_admin()
        .create_group(name)
        .await
        .expect("group");
    let (g, p) = (group.to_string(), "victim".to_owned());
    peer.handle
        .as_admin()
        .add_member(g, p, Role::Member)
        .await
        .expect("add the victim");
    eventually("the group to reach the victim", || {
        let api = api.clone();
        async move { api.get(addr, &format!("/v1/groups/{group}")).await }
    })
    .await;

    // What the victim's API returned (id → text), and what the peer posted.
    let returned: Arc<Mutex<Expected>> = Arc::default();
    let peer_posts: Arc<Mutex<Expected>> = Arc::default();
    let peer = Arc::new(peer);
    let mut verified = BTreeMap::new();
    for round in 0..kills {
        if victim.child.is_none() {
            victim.spawn();
        }
        let lifetime = Duration::from_millis(rng.between(20, 1_500));
        let mut posters = tokio::task::JoinSet::new();
        {
            let (api, returned, data, pid) =
                (api.clone(), returned.clone(), data.clone(), pid.clone());
            posters.spawn(async move {
                let mut i = 0u64;
                loop {
                    let Some(a) = api_of(&data, pid.load(Ordering::SeqCst)) else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let text = format!("victim round {round} post {i}");
                    i += 1;
                    let body = serde_json::json!({"subject": "crash", "body": text});
                    if let Some(v) = api
                        .post(a, &format!("/v1/groups/{group}/messages"), &body)
                        .await
                    {
                        let id: MessageId =
                            v["id"].as_str().expect("id").parse().expect("a message id");
                        returned
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(id, text);
                    }
                }
            });
        }
        {
            let (peer, peer_posts) = (peer.clone(), peer_posts.clone());
            posters.spawn(async move {
                let mut i = 0u64;
                loop {
                    let text = format!("peer round {round} post {i}");
                    i += 1;
                    if let Ok(id) = liaison_node::demo::post(
                        &peer,
                        group,
                        "officer",
                        "crash",
                        &text,
                        Handling::Green,
                    )
                    .await
                    {
                        peer_posts
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .insert(id, text);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            });
        }
        tokio::time::sleep(lifetime).await;
        victim.kill();
        posters.abort_all();
        while posters.join_next().await.is_some() {}

        // Every message the victim confirmed storing: the ids its API returned, and the
        // peer's messages for which the peer holds the victim's signed receipt.
        let mut must_hold = returned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let peers: Expected = peer_posts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut acked = 0;
        for (id, text) in peers {
            let receipts = liaison_node::node::stored_receipts(&peer.store, &id)
                .expect("peer store")
                .expect("the peer holds its own post");
            if receipts.iter().any(|(r, _)| *r == victim_id) {
                must_hold.insert(id, text);
                acked += 1;
            }
        }
        let held = check_store(&data, group, &must_hold, &mut verified, round, seed).await;
        eprintln!(
            "round {round}: killed after {lifetime:?}; {} returned by the API, {acked} \
             acknowledged to the peer, {held} stored, all intact",
            must_hold.len() - acked
        );
    }

    // Finally the victim comes back and catches up with everything; after a clean stop its
    // store holds every message of both sides, intact and once each.
    victim.spawn();
    let addr = eventually("the victim's API after the last kill", || async {
        let a = api_of(&data, pid.load(Ordering::SeqCst))?;
        api.get(a, "/v1/status").await.map(|_| a)
    })
    .await;
    let peers = peer_posts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mine = returned
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    // A guard against a hang only; the victim normally catches up in seconds.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut missing: Vec<MessageId> = peers
        .keys()
        .filter(|id| !verified.contains_key(id))
        .copied()
        .collect();
    while !missing.is_empty() {
        let mut still = Vec::new();
        for id in missing {
            if api.get(addr, &format!("/v1/messages/{id}")).await.is_none() {
                still.push(id);
            }
        }
        missing = still;
        assert!(
            Instant::now() < deadline,
            "the victim never caught up: {} of the peer's messages missing",
            missing.len()
        );
        if !missing.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut unseen: Vec<MessageId> = mine.keys().copied().collect();
    while !unseen.is_empty() {
        unseen.retain(|id| !peer.store.has_message(id).unwrap_or(false));
        assert!(
            Instant::now() < deadline,
            "the peer never received {} of the victim's confirmed posts",
            unseen.len()
        );
        if !unseen.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    victim.stop();
    let mut everything = mine.clone();
    everything.extend(peers.clone());
    let held = check_store(&data, group, &everything, &mut verified, kills, seed).await;
    // More may be held than was confirmed: posts that became durable but whose confirmation
    // was lost with the kill. Never fewer.
    assert!(held >= everything.len());
    eprintln!(
        "after {kills} kills: {} posts confirmed by the victim's API and {} by the peer, all \
         held once and intact by the victim and present at the peer; {} more stored whose \
         confirmation the kill cut off",
        mine.len(),
        peers.len(),
        held - everything.len()
    );
    Arc::try_unwrap(peer)
        .expect("posters are gone")
        .shutdown()
        .await
        .expect("peer stops");
}
