//! A deterministic simulation of a revocation racing posts.
//!
//! Four sync engines on a lossy network under a virtual clock (seeded ChaCha20: drops,
//! duplicates, delays and so reorders frames): the owner O, members A and B, and member X,
//! which keeps posting while the federation revokes it. The revocation (`at` = `T_REV`) reaches
//! each honest node at a different, random time, as a new roster would: that node then sets
//! the engine's policy, drops its link to X, and — the owner — removes X from the group.
//! Meanwhile X's posts, some signed before `T_REV` and some after, are pushed, relayed and
//! synchronised between nodes that know of the revocation and nodes that do not yet.
//!
//! ```text
//!     A ─── B
//!     │ \   │
//!     │  \  │
//!     X ─── O
//! ```
//!
//! Checks, after the network calms down: no honest node is ever blamed (a refusal under the
//! policy is not a strike); every honest node ends up showing the same messages of X — exactly
//! those created before `T_REV` that reached any honest node — and no honest node that knew
//! of the revocation ever served or relayed one created after it; every honest post reached
//! every honest member; everyone holds the owner's chain, X's removal included.

use std::collections::{BTreeMap, BTreeSet};

use liaison_protocol::group::Change;
use liaison_protocol::identity::Descriptor;
use liaison_protocol::message::{self, Handling};
use liaison_protocol::sync::{Archive, Config, Engine, Event, LocalDraft, Policy};
use liaison_protocol::{
    Content, ExchangeSecret, Frame, GroupId, IdentityKey, MessageId, NodeId, Payload, Role,
    Timestamp,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

const T0: Timestamp = Timestamp(1_767_225_600_000);
const NAMES: [&str; 4] = ["o", "a", "b", "x"];
const O: usize = 0;
const A: usize = 1;
const B: usize = 2;
const X: usize = 3;
const HONEST: [usize; 3] = [O, A, B];
const LINKS: [(usize, usize); 5] = [(O, A), (O, B), (O, X), (A, B), (A, X)];
const TICK_MS: u64 = 10;
const SYNC_MS: u64 = 500;
/// X is revoked from this time on.
const T_REV: Timestamp = Timestamp(T0.0 + 2_000);
/// The latest a node learns of the revocation, after `T_REV`.
const MAX_LEARN_DELAY_MS: u64 = 1_500;
/// Posting stops here; the network is quiet afterwards.
const POSTS_END: Timestamp = Timestamp(T0.0 + 5_000);
const END: Timestamp = Timestamp(T0.0 + 15_000);

/// Group, author, epoch, seq.
type Place = (GroupId, NodeId, u64, u64);

#[derive(Default)]
struct MemArchive {
    messages: BTreeMap<Place, (MessageId, Vec<u8>)>,
    origin: BTreeMap<MessageId, (GroupId, NodeId)>,
}

impl Archive for MemArchive {
    fn envelopes(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        after: u64,
        through: u64,
        max_bytes: usize,
    ) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut total = 0usize;
        let Some(from) = after.checked_add(1) else {
            return out;
        };
        if through < from {
            return out;
        }
        for (_, (_, bytes)) in self
            .messages
            .range((*group, *author, epoch, from)..=(*group, *author, epoch, through))
        {
            if !out.is_empty() && total + bytes.len() > max_bytes {
                break;
            }
            total += bytes.len();
            out.push(bytes.clone());
        }
        out
    }

    fn message_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)> {
        self.origin.get(id).copied()
    }
}

struct SimNode {
    engine: Engine,
    archive: MemArchive,
    pending: Vec<MessageId>,
    /// Strikes this node counted, against whom and why.
    rejected: Vec<(NodeId, String)>,
    /// When this node learnt of the revocation, if it did.
    learnt: Option<Timestamp>,
    learns_at: Timestamp,
}

struct Packet {
    at: Timestamp,
    order: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

struct Sim {
    now: Timestamp,
    rng: ChaCha20Rng,
    nodes: Vec<SimNode>,
    ids: Vec<NodeId>,
    links: BTreeSet<(usize, usize)>,
    queue: Vec<Packet>,
    next_order: u64,
    chaos: bool,
    group: Option<GroupId>,
    /// Every message posted: id → (author, created_at).
    ledger: BTreeMap<MessageId, (usize, Timestamp)>,
}

fn keys(i: usize) -> (IdentityKey, ExchangeSecret) {
    (
        IdentityKey::from_seed(&[0x40 + i as u8; 32]),
        ExchangeSecret::from_seed(&[0x50 + i as u8; 32]),
    )
}

fn engine(i: usize) -> Engine {
    let (identity, exchange) = keys(i);
    let descriptor = Descriptor {
        node: identity.node_id(),
        name: format!("node-{}", NAMES[i]),
        addresses: vec![format!("127.0.0.{}:4433", i + 1)],
        exchange_key: exchange.public(),
        valid_from: T0,
        valid_until: T0.plus_millis(86_400_000),
    }
    .sign(&identity)
    .expect("signs")
    .to_bytes()
    .expect("encodes");
    let config = Config {
        sync_interval_ms: SYNC_MS,
        ..Config::default()
    };
    Engine::new(identity, exchange, descriptor, config)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut rng_seed = [0x77u8; 32];
        rng_seed[..8].copy_from_slice(&seed.to_be_bytes());
        let mut rng = ChaCha20Rng::from_seed(rng_seed);
        let mut nodes = Vec::new();
        let mut ids = Vec::new();
        for i in 0..NAMES.len() {
            let e = engine(i);
            ids.push(e.node_id());
            let delay = if i == X {
                u64::MAX / 2 // X never learns
            } else {
                rng.next_u64() % MAX_LEARN_DELAY_MS
            };
            nodes.push(SimNode {
                engine: e,
                archive: MemArchive::default(),
                pending: Vec::new(),
                rejected: Vec::new(),
                learnt: None,
                learns_at: T_REV.plus_millis(delay),
            });
        }
        let mut sim = Sim {
            now: T0,
            rng,
            nodes,
            ids,
            links: BTreeSet::new(),
            queue: Vec::new(),
            next_order: 0,
            chaos: true,
            group: None,
            ledger: BTreeMap::new(),
        };
        for (a, b) in LINKS {
            sim.link_up(a, b);
        }
        sim
    }

    fn index(&self, id: &NodeId) -> usize {
        self.ids.iter().position(|x| x == id).expect("a known node")
    }

    fn link_up(&mut self, a: usize, b: usize) {
        self.links.insert((a.min(b), a.max(b)));
        let now = self.now;
        let (ia, ib) = (self.ids[a], self.ids[b]);
        self.nodes[a].engine.handle_connected(now, ib);
        self.nodes[b].engine.handle_connected(now, ia);
        self.drain(a);
        self.drain(b);
    }

    fn link_down(&mut self, a: usize, b: usize) {
        if !self.links.remove(&(a.min(b), a.max(b))) {
            return;
        }
        let (ia, ib) = (self.ids[a], self.ids[b]);
        self.nodes[a].engine.handle_disconnected(&ib);
        self.nodes[b].engine.handle_disconnected(&ia);
        self.queue
            .retain(|p| !((p.from == a && p.to == b) || (p.from == b && p.to == a)));
    }

    fn is_up(&self, a: usize, b: usize) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    fn drain(&mut self, i: usize) {
        while let Some(event) = self.nodes[i].engine.poll_event() {
            let node = &mut self.nodes[i];
            match event {
                Event::MessageAccepted {
                    id,
                    header,
                    envelope,
                    ..
                } => {
                    let key = (header.group, header.author, header.epoch, header.seq);
                    node.archive.messages.insert(key, (id, envelope));
                    node.archive
                        .origin
                        .insert(id, (header.group, header.author));
                    node.pending.push(id);
                }
                Event::Rejected { peer, reason } => {
                    node.rejected.push((peer, reason.to_string()));
                }
                _ => {}
            }
        }
        while let Some(t) = self.nodes[i].engine.poll_transmit() {
            let to = self.index(&t.peer);
            assert!(self.is_up(i, to), "{} sent without a link", NAMES[i]);
            self.check_outgoing(i, &t.frame);
            let (drop, dup) = if self.chaos {
                (self.rng.next_u32() % 100 < 8, self.rng.next_u32() % 100 < 4)
            } else {
                (false, false)
            };
            if drop {
                continue;
            }
            for _ in 0..if dup { 2 } else { 1 } {
                let delay = 1 + self.rng.next_u64() % if self.chaos { 200 } else { 20 };
                self.queue.push(Packet {
                    at: self.now.plus_millis(delay),
                    order: self.next_order,
                    from: i,
                    to,
                    bytes: t.frame.clone(),
                });
                self.next_order += 1;
            }
        }
    }

    /// A node that knows of the revocation never sends a message X created after it.
    fn check_outgoing(&self, i: usize, frame: &[u8]) {
        if self.nodes[i].learnt.is_none() {
            return;
        }
        let envelopes = match Frame::decode(frame).expect("valid frames") {
            Frame::Push { envelopes } => envelopes,
            Frame::SyncResponse(r) => r.envelopes,
            _ => return,
        };
        for e in envelopes {
            let h = message::decode_header(&e).expect("valid envelope");
            assert!(
                !(h.author == self.ids[X] && h.created_at >= T_REV),
                "{} sent a message X created after its revocation",
                NAMES[i]
            );
        }
    }

    fn flush(&mut self, i: usize) {
        let ids = std::mem::take(&mut self.nodes[i].pending);
        let now = self.now;
        self.nodes[i].engine.handle_durable(now, &ids);
        self.drain(i);
    }

    fn post(&mut self, i: usize) {
        let Some(group) = self.group else { return };
        let now = self.now;
        let content = Content {
            officer: "officer".into(),
            recipients: vec![],
            reply_to: None,
            payload: Payload::Text {
                subject: format!("{} at {}", NAMES[i], now.0 - T0.0),
                body: String::new(),
            },
        };
        let node = &mut self.nodes[i];
        let mut rng = ChaCha20Rng::from_seed([i as u8; 32]);
        let Ok(sealed) = node.engine.seal(
            &group,
            LocalDraft {
                now,
                handling: Handling::Green,
                expires_at: None,
                content: &content,
            },
            &mut rng,
        ) else {
            return; // Not a member of the current epoch (X after its removal).
        };
        let h = &sealed.header;
        node.archive.messages.insert(
            (h.group, h.author, h.epoch, h.seq),
            (sealed.id, sealed.bytes.clone()),
        );
        node.archive.origin.insert(sealed.id, (h.group, h.author));
        node.engine.commit_local_message(&sealed);
        self.ledger.insert(sealed.id, (i, now));
        self.drain(i);
    }

    /// Node `i` learns that X is revoked, as it would from a new roster.
    fn learn(&mut self, i: usize) {
        let now = self.now;
        self.nodes[i].learnt = Some(now);
        let mut revoked = BTreeMap::new();
        revoked.insert(self.ids[X], T_REV);
        self.nodes[i].engine.set_policy(Policy {
            names: BTreeMap::new(),
            revoked,
            rotated: BTreeMap::new(),
        });
        self.link_down(i, X);
        if i == O {
            if let Some(group) = self.group {
                let mut rng = ChaCha20Rng::from_seed([0xee; 32]);
                let x = self.ids[X];
                let event = self.nodes[O]
                    .engine
                    .propose_remove(&group, &x, now, &mut rng)
                    .expect("the owner removes X");
                self.nodes[O]
                    .engine
                    .commit_local_control(now, &event)
                    .expect("applies");
                self.drain(O);
            }
        }
    }

    fn tick(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        let mut rest = Vec::new();
        for p in self.queue.drain(..) {
            if p.at <= now {
                due.push(p);
            } else {
                rest.push(p);
            }
        }
        self.queue = rest;
        due.sort_by_key(|p| (p.at, p.order));
        for p in due {
            if !self.is_up(p.from, p.to) {
                continue;
            }
            let from = self.ids[p.from];
            let node = &mut self.nodes[p.to];
            node.engine.handle_frame(now, from, &p.bytes, &node.archive);
            self.drain(p.to);
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].learnt.is_none() && self.nodes[i].learns_at <= now {
                self.learn(i);
            }
            if !self.nodes[i].pending.is_empty() && self.rng.next_u32() % 100 < 40 {
                self.flush(i);
            }
            if self.nodes[i]
                .engine
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.nodes[i].engine.handle_timeout(now);
                self.drain(i);
            }
        }
        if now < POSTS_END {
            for i in 0..self.nodes.len() {
                let rate = if i == X { 30 } else { 8 };
                if self.rng.next_u32() % 100 < rate {
                    self.post(i);
                }
            }
        } else {
            self.chaos = false;
        }
        self.now = now.plus_millis(TICK_MS);
    }

    fn create_group(&mut self) {
        let mut rng = ChaCha20Rng::from_seed([0xcc; 32]);
        let now = self.now;
        let (gid, genesis) = self.nodes[O]
            .engine
            .propose_create("node-o", "ops", now, &mut rng)
            .expect("creates");
        self.nodes[O]
            .engine
            .commit_local_control(now, &genesis)
            .expect("applies");
        for i in [A, B, X] {
            let (identity, exchange) = keys(i);
            let event = self.nodes[O]
                .engine
                .propose(
                    &gid,
                    Change::Add {
                        member: identity.node_id(),
                        name: format!("node-{}", NAMES[i]),
                        role: Role::Member,
                        exchange_key: exchange.public(),
                    },
                    now,
                    &mut rng,
                )
                .expect("adds");
            self.nodes[O]
                .engine
                .commit_local_control(now, &event)
                .expect("applies");
        }
        self.group = Some(gid);
        self.drain(O);
    }
}

fn run(seed: u64) {
    let mut sim = Sim::new(seed);
    sim.create_group();
    // Let every member learn of the group before posting starts.
    while sim.now < T0.plus_millis(300) {
        sim.tick();
    }
    while sim.now < END {
        sim.tick();
    }
    for i in 0..NAMES.len() {
        sim.flush(i);
    }
    let ctx = format!("seed {seed}");
    let gid = sim.group.expect("group");
    let x = sim.ids[X];

    for &i in &HONEST {
        let node = &sim.nodes[i];
        assert!(node.learnt.is_some(), "{ctx}: {} never learnt", NAMES[i]);
        let blamed: Vec<&(NodeId, String)> = node
            .rejected
            .iter()
            .filter(|(peer, _)| *peer != x)
            .collect();
        assert!(blamed.is_empty(), "{ctx}: {} blamed {blamed:?}", NAMES[i]);
        let state = node.engine.group(&gid).expect("holds the group");
        assert_eq!(
            state.role(&x),
            None,
            "{ctx}: X still a member at {}",
            NAMES[i]
        );
        assert_eq!(
            state.seq(),
            sim.nodes[O].engine.group(&gid).expect("owner").seq()
        );
    }

    // What each honest node shows of X: what it holds that X created before the revocation.
    let shown = |i: usize| -> BTreeSet<MessageId> {
        sim.nodes[i]
            .archive
            .origin
            .iter()
            .filter(|(_, (_, author))| *author == x)
            .filter(|(id, _)| sim.ledger[*id].1 < T_REV)
            .map(|(id, _)| *id)
            .collect()
    };
    let reached: BTreeSet<MessageId> = HONEST.iter().flat_map(|&i| shown(i)).collect();
    assert!(!reached.is_empty(), "{ctx}: none of X's posts got through");
    for &i in &HONEST {
        assert_eq!(
            shown(i),
            reached,
            "{ctx}: {} shows other messages of X",
            NAMES[i]
        );
    }
    let late = sim
        .ledger
        .values()
        .filter(|(a, at)| *a == X && *at >= T_REV)
        .count();
    assert!(late > 0, "{ctx}: X posted nothing after its revocation");

    // Every honest post reached every honest member.
    for (id, (author, _)) in &sim.ledger {
        if *author == X {
            continue;
        }
        for &i in &HONEST {
            assert!(
                sim.nodes[i].archive.origin.contains_key(id),
                "{ctx}: {} lacks a post of {}",
                NAMES[i],
                NAMES[*author]
            );
        }
    }
}

#[test]
fn a_revocation_racing_posts_converges() {
    let seeds: Vec<u64> = match std::env::var("LIAISON_REVOCATION_SEED") {
        Ok(s) => vec![s.parse().expect("a number")],
        Err(_) => (1..=6).collect(),
    };
    for seed in seeds {
        println!("revocation simulation, seed {seed}");
        run(seed);
    }
}
