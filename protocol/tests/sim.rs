//! A deterministic simulation of several sync engines on a lossy network.
//!
//! Like quinn-proto's test `Pair`, but for N nodes: every node is a [`sync::Engine`] with an
//! in-memory [`Archive`] (a `BTreeMap` filled from [`Event::MessageAccepted`], reported durable
//! later and in batches, sometimes failing), joined by links between chosen pairs only. A
//! seeded ChaCha20 RNG drops, duplicates, delays (and so reorders) frames, takes links down and
//! up, and crashes and restarts one node, losing what it had not yet made durable. Time is a
//! virtual clock: the harness advances it in ticks and calls `handle_timeout` whenever
//! `poll_timeout` is due.
//!
//! Topology: a star around the owner O, a chain D–E–F behind it, and two cross links. E and F
//! have no link to the owner: they reach it only through D, or through each other and A.
//!
//! ```text
//!         C     B
//!          \   / \
//!           \ /   \
//!            O --- A
//!            |      \
//!            D       F
//!             \     /
//!              \   /
//!                E
//! ```
//!
//! Links: O–A, O–B, O–C, O–D, A–B, D–E, E–F, A–F.
//!
//! Scenario ([`scenario`]): O creates G1 (members A, B, D, E; reader C) and G2 (members A, C;
//! reader D), so B, E and F never belong to G2. Members post throughout, each in the epoch its
//! own view is at. B is removed from G1 mid-way; A crashes and restarts; F is added to G1 later
//! (it hears of it through E or A); both groups rotate their key. Then the network calms down:
//! no loss, every link re-established, several sync rounds.
//!
//! Checks ([`check`], and on every frame and event as it happens): no honest peer is ever
//! rejected or dropped; nothing is acknowledged or receipted before it is durable, and nothing
//! acknowledged is lost; at the end nothing is in flight; every node has seen its peers'
//! descriptors and heard of every other node; current members hold the whole control chain; a
//! node never in a group holds nothing of it (no state, no control event, no message); the
//! removed member holds the chain up to its removal and nothing after; every message (but a
//! removed author's that reached nobody) is held, with the exact bytes posted, by every current
//! member of its epoch, and by no node outside its epoch.

use std::collections::{BTreeMap, BTreeSet};

use liaison_protocol::group::Change;
use liaison_protocol::identity::{Descriptor, SignedDescriptor};
use liaison_protocol::message::{self, Draft, Handling};
use liaison_protocol::receipt::Receipt;
use liaison_protocol::sync::{Archive, Config, Engine, Event, LocalDraft};
use liaison_protocol::{
    Content, ExchangeSecret, Frame, GroupId, GroupState, IdentityKey, MessageId, NodeId, Payload,
    Place, Rejection, Role, Timestamp, UsageError,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

fn place(group: GroupId, author: NodeId, epoch: u64, seq: u64) -> Place {
    Place {
        group,
        author,
        epoch,
        seq,
    }
}

const T0: Timestamp = Timestamp(1_767_225_600_000);
const NAMES: [&str; 7] = ["O", "A", "B", "C", "D", "E", "F"];
const O: usize = 0;
const A: usize = 1;
const B: usize = 2;
const C: usize = 3;
const D: usize = 4;
const E: usize = 5;
const F: usize = 6;
const LINKS: [(usize, usize); 8] = [
    (O, A),
    (O, B),
    (O, C),
    (O, D),
    (A, B),
    (D, E),
    (E, F),
    (A, F),
];
const TICK_MS: u64 = 10;
const SYNC_MS: u64 = 1_000;

// ----- the in-memory store ------------------------------------------------------------------

type MsgKey = (GroupId, NodeId, u64, u64);

#[derive(Default, Clone)]
struct MemArchive {
    messages: BTreeMap<MsgKey, (MessageId, Vec<u8>)>,
    origin: BTreeMap<MessageId, MsgKey>,
    /// Messages whose write reached "disk" (`handle_durable` was called for them).
    durable: BTreeSet<MessageId>,
    controls: BTreeMap<(GroupId, u64), Vec<u8>>,
    receipts: BTreeMap<(MessageId, NodeId), Vec<u8>>,
    /// Messages whose stored envelope is damaged: held, but unreadable (left out of answers).
    damaged: BTreeSet<MessageId>,
}

impl MemArchive {
    fn insert(&mut self, key: MsgKey, id: MessageId, envelope: Vec<u8>) {
        if let Some((old, bytes)) = self.messages.get(&key) {
            assert_eq!((old, bytes), (&id, &envelope), "two messages at one seq");
        }
        self.messages.insert(key, (id, envelope));
        self.origin.insert(id, key);
    }
    fn remove(&mut self, id: &MessageId) {
        if let Some(key) = self.origin.remove(id) {
            self.messages.remove(&key);
        }
        self.durable.remove(id);
    }
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
        for (_, (id, bytes)) in self
            .messages
            .range((*group, *author, epoch, from)..=(*group, *author, epoch, through))
        {
            if self.damaged.contains(id) {
                continue;
            }
            if !out.is_empty() && total + bytes.len() > max_bytes {
                break;
            }
            total += bytes.len();
            out.push(bytes.clone());
        }
        out
    }

    fn message_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)> {
        self.origin.get(id).map(|(g, a, _, _)| (*g, *a))
    }
}

// ----- nodes and the network ----------------------------------------------------------------

struct SimNode {
    name: &'static str,
    seed: u8,
    engine: Engine,
    archive: MemArchive,
    /// Accepted, written, not yet reported durable.
    pending: Vec<MessageId>,
    rng: ChaCha20Rng,
    rejected: Vec<(NodeId, Rejection)>,
    disconnects: Vec<NodeId>,
    descriptors: BTreeSet<NodeId>,
    /// Nodes learned of through peers' directories.
    directory: BTreeSet<NodeId>,
    acked: Vec<(NodeId, MessageId)>,
    receipts: usize,
}

fn keys(seed: u8) -> (IdentityKey, ExchangeSecret) {
    (
        IdentityKey::from_seed(&[seed; 32]),
        ExchangeSecret::from_seed(&[seed ^ 0xa5; 32]),
    )
}

fn config(i: usize) -> Config {
    Config {
        sync_interval_ms: SYNC_MS,
        // D also forwards what it receives from authors at once; the others wait for sync.
        relay: i == D,
        // Answers of a few messages each, so that catch-up takes many rounds (and a gap that
        // stopped the rounds would show).
        response_budget: 8 * 1024,
        // Frames get lost here (on a real connection they do not): an answer not back within
        // three sync rounds is given up on and asked for again.
        response_timeout_ms: 3 * SYNC_MS,
        ..Config::default()
    }
}

fn engine(i: usize, seed: u8) -> Engine {
    let (identity, exchange) = keys(seed);
    let descriptor = Descriptor {
        node: identity.node_id(),
        name: format!("node-{}", NAMES[i].to_ascii_lowercase()),
        addresses: vec![format!("127.0.0.{}:4433", i + 1)],
        exchange_key: exchange.public(),
        valid_from: T0,
        valid_until: T0.plus_millis(86_400_000),
    }
    .sign(&identity)
    .expect("signs")
    .to_bytes()
    .expect("encodes");
    Engine::new(identity, exchange, descriptor, config(i))
}

struct Packet {
    at: Timestamp,
    order: u64,
    from: usize,
    to: usize,
    bytes: Vec<u8>,
}

#[derive(Clone, Copy)]
struct Faults {
    drop_per_mille: u32,
    dup_per_mille: u32,
    max_delay_ms: u64,
}

const CHAOS: Faults = Faults {
    drop_per_mille: 150,
    dup_per_mille: 50,
    max_delay_ms: 250,
};
const QUIET: Faults = Faults {
    drop_per_mille: 0,
    dup_per_mille: 0,
    max_delay_ms: 20,
};

/// A message some node posted, as the ledger of truth.
#[derive(Clone)]
struct Posted {
    group: GroupId,
    author: usize,
    epoch: u64,
    seq: u64,
    id: MessageId,
    bytes: Vec<u8>,
}

struct Sim {
    seed: u64,
    now: Timestamp,
    rng: ChaCha20Rng,
    nodes: Vec<SimNode>,
    ids: Vec<NodeId>,
    /// Up links, and when a down link comes back.
    links: BTreeMap<(usize, usize), Option<Timestamp>>,
    queue: Vec<Packet>,
    /// Frames held back (not lost) until released: by directed link and, if given, kind.
    held_links: BTreeSet<(usize, usize, Option<&'static str>)>,
    held: Vec<Packet>,
    next_order: u64,
    faults: Faults,
    store_failures: bool,
    ledger: Vec<Posted>,
    stats: Stats,
    /// A removed member that keeps signing into the epochs it had (its view of the group
    /// when it was removed), and the next seq it uses.
    rogue: Option<(usize, GroupState, u64)>,
    /// A copy of a node's store taken earlier, to restore it from (see [`Sim::restore`]).
    backup: Option<(usize, MemArchive)>,
    /// A node whose links stay up until then (frames are still lost, delayed and duplicated).
    steady: Option<(usize, Timestamp)>,
}

#[derive(Default, Debug)]
struct Stats {
    holes: u64,
    rogue_posts: u64,
    damaged: u64,
    sent: u64,
    dropped: u64,
    duplicated: u64,
    store_failed: u64,
    posts: u64,
    flaps: u64,
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let mut nodes = Vec::new();
        let mut ids = Vec::new();
        for (i, name) in NAMES.iter().enumerate() {
            let key_seed = 0x10 + i as u8;
            let engine = engine(i, key_seed);
            ids.push(engine.node_id());
            let mut rng_seed = [0u8; 32];
            rng_seed[..8].copy_from_slice(&seed.to_be_bytes());
            rng_seed[8] = i as u8;
            nodes.push(SimNode {
                name,
                seed: key_seed,
                engine,
                archive: MemArchive::default(),
                pending: Vec::new(),
                rng: ChaCha20Rng::from_seed(rng_seed),
                rejected: Vec::new(),
                disconnects: Vec::new(),
                descriptors: BTreeSet::new(),
                directory: BTreeSet::new(),
                acked: Vec::new(),
                receipts: 0,
            });
        }
        let mut net_seed = [0xeeu8; 32];
        net_seed[..8].copy_from_slice(&seed.to_be_bytes());
        let mut sim = Sim {
            seed,
            now: T0,
            rng: ChaCha20Rng::from_seed(net_seed),
            nodes,
            ids,
            links: BTreeMap::new(),
            queue: Vec::new(),
            held_links: BTreeSet::new(),
            held: Vec::new(),
            next_order: 0,
            faults: CHAOS,
            store_failures: true,
            ledger: Vec::new(),
            stats: Stats::default(),
            rogue: None,
            backup: None,
            steady: None,
        };
        for (a, b) in LINKS {
            sim.link_up(a, b);
        }
        sim
    }

    fn index(&self, id: &NodeId) -> usize {
        self.ids.iter().position(|x| x == id).expect("a known node")
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        self.rng.next_u32() % 1000 < per_mille
    }

    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    // ----- links ----------------------------------------------------------------------------

    fn link_up(&mut self, a: usize, b: usize) {
        self.links.insert((a, b), None);
        let now = self.now;
        let (ia, ib) = (self.ids[a], self.ids[b]);
        self.nodes[a].engine.handle_connected(now, ib);
        self.nodes[b].engine.handle_connected(now, ia);
        self.drain(a);
        self.drain(b);
    }

    fn link_down(&mut self, a: usize, b: usize, until: Timestamp) {
        self.links.insert((a, b), Some(until));
        let (ia, ib) = (self.ids[a], self.ids[b]);
        self.nodes[a].engine.handle_disconnected(&ib);
        self.nodes[b].engine.handle_disconnected(&ia);
        self.queue
            .retain(|p| !((p.from == a && p.to == b) || (p.from == b && p.to == a)));
        self.stats.flaps += 1;
    }

    fn is_up(&self, a: usize, b: usize) -> bool {
        matches!(
            self.links.get(&(a, b)).or_else(|| self.links.get(&(b, a))),
            Some(None)
        )
    }

    // ----- moving output ----------------------------------------------------------------------

    /// Takes everything node `i` wants done: events (store, record) and frames (the network).
    fn drain(&mut self, i: usize) {
        while let Some(event) = self.nodes[i].engine.poll_event() {
            self.on_event(i, event);
        }
        while let Some(t) = self.nodes[i].engine.poll_transmit() {
            let to = self.index(&t.peer);
            let frame = Frame::decode(&t.frame).expect("engines send valid frames");
            self.check_outgoing(i, &frame);
            assert!(
                self.is_up(i, to),
                "{} sent to {} without a link",
                NAMES[i],
                NAMES[to]
            );
            self.stats.sent += 1;
            if self.chance(self.faults.drop_per_mille) {
                self.stats.dropped += 1;
                continue;
            }
            let copies = if self.chance(self.faults.dup_per_mille) {
                self.stats.duplicated += 1;
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = 1 + self.below(self.faults.max_delay_ms);
                let packet = Packet {
                    at: self.now.plus_millis(delay),
                    order: self.next_order,
                    from: i,
                    to,
                    bytes: t.frame.clone(),
                };
                self.next_order += 1;
                let kind = frame.kind();
                if self.held_links.contains(&(i, to, None))
                    || self.held_links.contains(&(i, to, Some(kind)))
                {
                    self.held.push(packet);
                } else {
                    self.queue.push(packet);
                }
            }
        }
    }

    /// What a node sends: nothing acknowledged before it is durable. (Its own receipts are
    /// checked when it reports them, in [`Sim::on_event`].)
    fn check_outgoing(&self, i: usize, frame: &Frame) {
        let node = &self.nodes[i];
        if let Frame::Ack { ids } = frame {
            for id in ids {
                assert!(
                    node.archive.durable.contains(id),
                    "{} acknowledged a message before it was durable",
                    node.name
                );
            }
        }
    }

    fn on_event(&mut self, i: usize, event: Event) {
        let node = &mut self.nodes[i];
        match event {
            Event::MessageAccepted {
                from,
                id,
                header,
                envelope,
                ..
            } => {
                assert_ne!(from, self.ids[i]);
                let posted = self
                    .ledger
                    .iter()
                    .find(|p| p.id == id)
                    .unwrap_or_else(|| panic!("{} accepted an unknown message", node.name));
                assert_eq!(posted.bytes, envelope, "relayed bytes changed");
                assert_eq!(
                    (posted.group, posted.epoch, posted.seq),
                    (header.group, header.epoch, header.seq)
                );
                let key = (header.group, header.author, header.epoch, header.seq);
                node.archive.insert(key, id, envelope);
                node.pending.push(id);
            }
            Event::ControlApplied { group, seq, event } => {
                if let Some(old) = node.archive.controls.get(&(group, seq)) {
                    assert_eq!(old, &event, "two control events at one seq");
                }
                node.archive.controls.insert((group, seq), event);
            }
            Event::PeerDescriptor {
                peer,
                descriptor,
                bytes,
            } => {
                assert_eq!(descriptor.node, peer);
                assert_eq!(
                    SignedDescriptor::verify(&bytes, self.now).as_ref(),
                    Ok(&*descriptor)
                );
                node.descriptors.insert(peer);
            }
            Event::Receipt {
                group,
                receiver,
                messages,
                bytes,
            } => {
                let r = Receipt::verify(&bytes).expect("a valid receipt");
                assert_eq!((r.group, r.receiver), (group, receiver));
                assert!(!messages.is_empty());
                for message in messages {
                    assert!(
                        r.covers(&message),
                        "an event names a message its receipt does not"
                    );
                    if receiver == self.ids[i] {
                        assert!(
                            node.archive.durable.contains(&message),
                            "{} signed a receipt before the message was durable",
                            node.name
                        );
                    }
                    node.archive
                        .receipts
                        .insert((message, receiver), bytes.clone());
                    node.receipts += 1;
                }
            }
            Event::Acked { peer, ids } => {
                for id in ids {
                    node.acked.push((peer, id));
                }
            }
            Event::Directory {
                node: described,
                descriptor,
                bytes,
            } => {
                assert_eq!(descriptor.node, described);
                assert!(SignedDescriptor::verify(&bytes, self.now).is_ok());
                node.directory.insert(described);
            }
            Event::Rejected { peer, reason } => node.rejected.push((peer, reason)),
            Event::Disconnect { peer } => node.disconnects.push(peer),
            _ => {}
        }
    }

    // ----- time ---------------------------------------------------------------------------------

    /// One tick: deliver due frames, flush stores, fire timers, bring links back, advance time.
    fn tick(&mut self) {
        let now = self.now;
        let mut due: Vec<Packet> = Vec::new();
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
            if !self.nodes[i].pending.is_empty() && self.chance(300) {
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

        let back: Vec<(usize, usize)> = self
            .links
            .iter()
            .filter(|(_, until)| until.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for (a, b) in back {
            self.link_up(a, b);
        }
        self.now = now.plus_millis(TICK_MS);
    }

    /// The store reports its batch: most writes durable, some (in chaos) failed.
    fn flush(&mut self, i: usize) {
        let pending = std::mem::take(&mut self.nodes[i].pending);
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        for id in pending {
            if self.store_failures && self.chance(20) {
                failed.push(id);
            } else {
                ok.push(id);
            }
        }
        let now = self.now;
        let node = &mut self.nodes[i];
        for id in &failed {
            node.archive.remove(id);
        }
        self.stats.store_failed += failed.len() as u64;
        node.engine.handle_store_failed(&failed);
        node.archive.durable.extend(ok.iter().copied());
        node.engine.handle_durable(now, &ok);
        self.drain(i);
    }

    fn run_until(&mut self, end: Timestamp, mut each: impl FnMut(&mut Sim)) {
        while self.now < end {
            each(self);
            self.tick();
        }
    }

    // ----- local actions ------------------------------------------------------------------------

    fn create(&mut self, name: &str) -> GroupId {
        let now = self.now;
        let node = &mut self.nodes[O];
        let (gid, event) = node
            .engine
            .propose_create("node-o", name, now, &mut node.rng)
            .expect("creates");
        node.archive.controls.insert((gid, 1), event.clone());
        node.engine
            .commit_local_control(now, &event)
            .expect("commits");
        self.drain(O);
        gid
    }

    fn change(&mut self, gid: GroupId, change: Change) {
        let now = self.now;
        let node = &mut self.nodes[O];
        let event = node
            .engine
            .propose(&gid, change, now, &mut node.rng)
            .expect("proposes");
        self.commit(gid, event);
    }

    /// The owner removes `who`, with its cut-off.
    fn remove(&mut self, gid: GroupId, who: usize) {
        let now = self.now;
        let member = self.ids[who];
        let node = &mut self.nodes[O];
        let event = node
            .engine
            .propose_remove(&gid, &member, now, &mut node.rng)
            .expect("proposes");
        self.commit(gid, event);
    }

    /// The owner stores its control event, then applies and sends it.
    fn commit(&mut self, gid: GroupId, event: Vec<u8>) {
        let now = self.now;
        let node = &mut self.nodes[O];
        let seq = node.engine.group(&gid).expect("own group").seq() + 1;
        node.archive.controls.insert((gid, seq), event.clone());
        node.engine
            .commit_local_control(now, &event)
            .expect("commits");
        self.drain(O);
    }

    fn add(&mut self, gid: GroupId, who: usize, role: Role) {
        let (_, exchange) = keys(self.nodes[who].seed);
        self.change(
            gid,
            Change::Add {
                member: self.ids[who],
                name: format!("node-{}", NAMES[who].to_ascii_lowercase()),
                role,
                exchange_key: exchange.public(),
            },
        );
    }

    /// Node `i` posts to `gid` if its own view lets it.
    fn post(&mut self, i: usize, gid: GroupId) {
        let now = self.now;
        let n = self.stats.posts + self.stats.holes;
        let content = Content {
            officer: format!("officer-{}", NAMES[i]),
            recipients: vec![],
            reply_to: None,
            payload: Payload::Text {
                subject: format!("report {n}"),
                body: format!("seed {} post {n} from {}", self.seed, NAMES[i]),
            },
        };
        let node = &mut self.nodes[i];
        let draft = LocalDraft {
            now,
            handling: Handling::Amber,
            expires_at: None,
            content: &content,
        };
        let sealed = match node.engine.seal(&gid, draft, &mut node.rng) {
            Ok(s) => s,
            Err(
                UsageError::NotAMember(_)
                | UsageError::ReaderMayNotPost(_)
                | UsageError::NoEpochKey(_)
                | UsageError::SequenceUnconfirmed(_),
            ) => return,
            Err(e) => panic!("seal: {e}"),
        };
        if self.store_failures && node.rng.next_u32() % 1000 < 40 {
            // The write failed and the node died before it could hand the seq back (or an
            // older version left this gap): a seq that no message will ever have.
            self.stats.holes += 1;
            return;
        }
        let h = &sealed.header;
        // Stored durably first, then committed.
        node.archive.insert(
            (h.group, h.author, h.epoch, h.seq),
            sealed.id,
            sealed.bytes.clone(),
        );
        node.archive.durable.insert(sealed.id);
        node.engine.commit_local_message(&sealed);
        self.ledger.push(Posted {
            group: h.group,
            author: i,
            epoch: h.epoch,
            seq: h.seq,
            id: sealed.id,
            bytes: sealed.bytes.clone(),
        });
        self.stats.posts += 1;
        self.drain(i);
    }

    /// Keeps a copy of node `i`'s store, as a backup to restore later.
    fn back_up(&mut self, i: usize) {
        self.backup = Some((i, self.nodes[i].archive.clone()));
    }

    /// Node `i` stops and is restored from the backup taken before: every message and control
    /// event it stored since is gone from its store (its peers still hold them), and it
    /// restarts from the copy. It learns which of its own sequence numbers are used from the
    /// peers it reaches, so its links come up with it and stay up for a few sync rounds (frames
    /// on them are still lost, delayed and duplicated): a peer it cannot reach cannot tell it.
    fn restore(&mut self, i: usize) {
        for (a, b) in LINKS {
            if (a == i || b == i) && !self.is_up(a, b) {
                self.link_up(a, b);
            }
        }
        self.steady = Some((i, self.now.plus_millis(3 * SYNC_MS)));
        let (who, copy) = self.backup.take().expect("a backup");
        assert_eq!(who, i);
        self.nodes[i].pending.clear();
        let mut copy = copy;
        let unwritten: Vec<MessageId> = copy
            .origin
            .keys()
            .filter(|id| !copy.durable.contains(id))
            .copied()
            .collect();
        for id in unwritten {
            copy.remove(&id);
        }
        self.nodes[i].archive = copy;
        self.crash(i);
    }

    /// Node `i` crashes: what was not durable is lost, and it restarts from its store.
    fn crash(&mut self, i: usize) {
        let peers: Vec<usize> = LINKS
            .iter()
            .filter_map(|&(a, b)| match (a == i, b == i) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .collect();
        for &p in &peers {
            let id = self.ids[i];
            self.nodes[p].engine.handle_disconnected(&id);
        }
        self.queue.retain(|p| p.from != i && p.to != i);
        let node = &mut self.nodes[i];
        for id in std::mem::take(&mut node.pending) {
            node.archive.remove(&id);
        }
        let lost: Vec<MessageId> = node
            .archive
            .origin
            .keys()
            .filter(|id| !node.archive.durable.contains(id))
            .copied()
            .collect();
        assert!(lost.is_empty(), "only pending writes are lost");
        let mut engine = engine(i, node.seed);
        let mut groups: BTreeMap<GroupId, Vec<Vec<u8>>> = BTreeMap::new();
        for ((g, _), e) in &node.archive.controls {
            groups.entry(*g).or_default().push(e.clone());
        }
        for (_, events) in groups {
            engine.restore_group(events).expect("restores");
        }
        engine.restore_held(
            node.archive
                .messages
                .keys()
                .map(|&(group, author, epoch, seq)| place(group, author, epoch, seq)),
        );
        node.engine = engine;
        for p in peers {
            if self.is_up(i, p) {
                let now = self.now;
                let (ii, ip) = (self.ids[i], self.ids[p]);
                self.nodes[i].engine.handle_connected(now, ip);
                self.nodes[p].engine.handle_connected(now, ii);
                self.drain(i);
                self.drain(p);
            }
        }
    }

    /// Sends `frame` from `from` to `to` as a node that does more than its engine would.
    fn inject(&mut self, from: usize, to: usize, frame: &Frame) {
        if !self.is_up(from, to) {
            return;
        }
        let delay = 1 + self.below(self.faults.max_delay_ms);
        let packet = Packet {
            at: self.now.plus_millis(delay),
            order: self.next_order,
            from,
            to,
            bytes: frame.encode().expect("encodes"),
        };
        self.next_order += 1;
        self.queue.push(packet);
    }

    /// The removed member goes on signing into the epochs it had, as the group looked to it
    /// when it was removed: from seq one million on, dated years back, TLP:RED, pushed to the
    /// peers it still has links to.
    fn rogue_post(&mut self) {
        let Some((who, state, seq)) = self.rogue.as_mut() else {
            return;
        };
        let (who, state, next) = (*who, state.clone(), *seq);
        if let Some(r) = self.rogue.as_mut() {
            r.2 += 1;
        }
        let (identity, _) = keys(self.nodes[who].seed);
        let content = Content {
            officer: "officer-rogue".into(),
            recipients: vec![],
            reply_to: None,
            payload: Payload::Text {
                subject: "rewritten history".into(),
                body: format!("seed {} rogue post {next}", self.seed),
            },
        };
        let draft = Draft {
            seq: next,
            now: Timestamp(T0.0 - 6 * 365 * 86_400_000),
            handling: Handling::Red,
            expires_at: None,
            content: &content,
        };
        let sealed = message::seal(&state, &identity, draft, &mut self.rng).expect("seals");
        let h = &sealed.header;
        self.ledger.push(Posted {
            group: h.group,
            author: who,
            epoch: h.epoch,
            seq: h.seq,
            id: sealed.id,
            bytes: sealed.bytes.clone(),
        });
        self.stats.rogue_posts += 1;
        let push = Frame::Push {
            envelopes: vec![sealed.bytes],
        };
        let peers: Vec<usize> = LINKS
            .iter()
            .filter_map(|&(a, b)| match (a == who, b == who) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .collect();
        for to in peers {
            self.inject(who, to, &push);
        }
    }

    /// A message of another author stored at `at`, of epoch `from_epoch` or later, becomes
    /// unreadable there (a damaged envelope): `at` leaves it out of its answers, and its peers
    /// must get it from another (the epoch must be one in which another path exists).
    fn damage(&mut self, at: usize, gid: GroupId, from_epoch: u64) {
        let own = self.ids[at];
        let node = &mut self.nodes[at];
        let victim = node
            .archive
            .messages
            .iter()
            .find(|((g, a, e, _), (id, _))| {
                *g == gid && *a != own && *e >= from_epoch && !node.archive.damaged.contains(id)
            })
            .map(|(_, (id, _))| *id);
        if let Some(id) = victim {
            node.archive.damaged.insert(id);
            self.stats.damaged += 1;
        }
    }

    /// Releases the frames held on `from → to`, in order, and stops holding any.
    fn release(&mut self, from: usize, to: usize) {
        self.held_links.retain(|&(f, t, _)| (f, t) != (from, to));
        let now = self.now;
        for mut p in std::mem::take(&mut self.held) {
            if (p.from, p.to) == (from, to) {
                p.at = now;
                self.queue.push(p);
            } else {
                self.held.push(p);
            }
        }
    }

    fn random_fault(&mut self) {
        if self.chance(3) {
            let (a, b) = LINKS[self.below(LINKS.len() as u64) as usize];
            let steady = self
                .steady
                .is_some_and(|(i, until)| (a == i || b == i) && self.now < until);
            if self.is_up(a, b) && !steady {
                let until = self.now.plus_millis(500 + self.below(2_500));
                self.link_down(a, b, until);
            }
        }
    }

    /// Ends the chaos: no more loss, and every link is re-established.
    fn calm(&mut self) {
        self.faults = QUIET;
        self.store_failures = false;
        let until = self.now;
        for (a, b) in LINKS {
            if self.is_up(a, b) {
                self.link_down(a, b, until);
            }
            self.link_up(a, b);
        }
    }
}

// ----- the scenario and its checks ----------------------------------------------------------

struct Outcome {
    g1: GroupId,
    g2: GroupId,
    removal_epoch: u64,
}

fn scenario(sim: &mut Sim) -> Outcome {
    let g1 = sim.create("Operation Heritage 2026");
    let g2 = sim.create("Standing regional group");
    let secs = |s: u64| T0.plus_millis(s * 1_000);

    // Members join one by one while the first posts go out.
    let joins = [
        (g1, A, Role::Member),
        (g2, A, Role::Member),
        (g1, B, Role::Member),
        (g1, C, Role::Reader),
        (g2, C, Role::Member),
        (g1, D, Role::Member),
        (g2, D, Role::Reader),
        (g1, E, Role::Member),
    ];
    let mut b_removed = false;
    for (gid, who, role) in joins {
        let end = sim.now.plus_millis(300);
        sim.run_until(end, |s| chatter(s, g1, g2, b_removed));
        sim.add(gid, who, role);
    }
    sim.run_until(secs(6), |s| chatter(s, g1, g2, b_removed));
    // B is removed from G1 while it posts (its posts race the removal); from then on it also
    // signs messages into the epochs it had, as a removed member may.
    let b_view = sim.nodes[B].engine.group(&g1).cloned().expect("B knows G1");
    sim.remove(g1, B);
    sim.rogue = Some((B, b_view, 1_000_000));
    b_removed = true;
    let removal_epoch = sim.nodes[O].engine.group(&g1).expect("g1").epoch();
    sim.run_until(secs(7), |s| chatter(s, g1, g2, b_removed));
    // D's store is backed up now, and restored from that backup later: D then lacks what it
    // stored meanwhile, its own posts among them, which its peers hold.
    sim.back_up(D);
    sim.run_until(secs(9), |s| chatter(s, g1, g2, b_removed));
    sim.crash(A);
    sim.run_until(secs(10), |s| chatter(s, g1, g2, b_removed));
    sim.restore(D);
    sim.run_until(secs(11), |s| chatter(s, g1, g2, b_removed));
    // F joins G1: it is linked only to E and A.
    sim.add(g1, F, Role::Member);
    let f_joined = sim.nodes[O].engine.group(&g1).expect("g1").epoch();
    sim.run_until(secs(13), |s| chatter(s, g1, g2, b_removed));
    sim.change(g2, Change::Rotate);
    sim.run_until(secs(18), |s| chatter(s, g1, g2, b_removed));
    // A copy of a message goes bad on D, the relay that links E to the owner; since F joined,
    // E also reaches the owner through F and A.
    sim.damage(D, g1, f_joined);
    sim.change(g1, Change::Rotate);
    sim.run_until(secs(20), |s| chatter(s, g1, g2, b_removed));

    // Quiet: no loss, no new posts, every link fresh; several sync rounds.
    sim.calm();
    sim.run_until(secs(32), |_| {});
    Outcome {
        g1,
        g2,
        removal_epoch,
    }
}

/// Random posts and link failures; once B is removed, it also posts as a rogue.
fn chatter(sim: &mut Sim, g1: GroupId, g2: GroupId, b_removed: bool) {
    sim.random_fault();
    if sim.chance(60) {
        let i = sim.below(NAMES.len() as u64) as usize;
        let gid = if sim.chance(600) { g1 } else { g2 };
        // B's own engine refuses once B has learned of its removal.
        sim.post(i, gid);
    }
    if b_removed && sim.chance(15) {
        sim.rogue_post();
    }
}

fn check(sim: &Sim, out: &Outcome) {
    let name = |id: &NodeId| NAMES[sim.index(id)];
    let removed = sim.ids[B];
    for node in &sim.nodes {
        // The removed member's messages beyond the owner's cut-off are refused where it pushes
        // them itself, with a strike, and it may be dropped for that; nobody else is blamed.
        let rejected: Vec<String> = node
            .rejected
            .iter()
            .filter(|(p, r)| !(*p == removed && matches!(r, Rejection::BeyondCutoff { .. })))
            .map(|(p, r)| format!("{} from {}: {r}", node.name, name(p)))
            .collect();
        assert!(
            rejected.is_empty(),
            "seed {}: honest peers rejected: {rejected:#?}",
            sim.seed
        );
        assert!(
            node.disconnects.iter().all(|p| *p == removed),
            "{} dropped an honest peer",
            node.name
        );
        assert_eq!(node.engine.in_flight(), 0, "{} still storing", node.name);
        assert!(node.pending.is_empty() || node.engine.in_flight() == 0);
    }
    for (a, b) in LINKS {
        for (x, y) in [(a, b), (b, a)] {
            if sim.nodes[y].disconnects.contains(&sim.ids[x]) {
                continue; // Dropped for its strikes: y greets it no more.
            }
            assert!(
                sim.nodes[x].descriptors.contains(&sim.ids[y]),
                "seed {}: {} never got {}'s descriptor",
                sim.seed,
                NAMES[x],
                NAMES[y]
            );
        }
    }
    // Through the directories, every node has learned of every other.
    for (i, node) in sim.nodes.iter().enumerate() {
        for (j, id) in sim.ids.iter().enumerate() {
            if i != j {
                assert!(
                    node.descriptors.contains(id) || node.directory.contains(id),
                    "{} never heard of {}",
                    node.name,
                    NAMES[j]
                );
            }
        }
    }

    for gid in [out.g1, out.g2] {
        let truth: &GroupState = sim.nodes[O].engine.group(&gid).expect("the owner's group");
        let owner_controls: Vec<&Vec<u8>> = sim.nodes[O]
            .archive
            .controls
            .range((gid, 0)..=(gid, u64::MAX))
            .map(|(_, e)| e)
            .collect();
        assert_eq!(owner_controls.len() as u64, truth.seq());

        for (i, node) in sim.nodes.iter().enumerate() {
            let id = sim.ids[i];
            let epochs: BTreeSet<u64> = truth.epochs_of(&id).collect();
            let controls: Vec<&Vec<u8>> = node
                .archive
                .controls
                .range((gid, 0)..=(gid, u64::MAX))
                .map(|(_, e)| e)
                .collect();
            let view = node.engine.group(&gid);
            if truth.role(&id).is_some() {
                // A current member holds the whole chain.
                assert_eq!(
                    view.map(GroupState::seq),
                    Some(truth.seq()),
                    "{}",
                    node.name
                );
                assert_eq!(controls, owner_controls, "{}", node.name);
            } else if epochs.is_empty() {
                // Never a member: nothing of the group at all.
                assert!(view.is_none(), "{} knows a group it is not in", node.name);
                assert!(controls.is_empty(), "{} stored control events", node.name);
            } else {
                // Removed: it learns of its removal, and of nothing after it.
                let seq = view.map_or(0, GroupState::seq);
                assert_eq!(seq, out.removal_epoch, "{} and its removal", node.name);
                assert_eq!(controls, owner_controls[..controls.len()], "{}", node.name);
                assert_eq!(controls.len() as u64, seq, "{}", node.name);
                let view = view.expect("a removed member keeps the group");
                assert!(view.role(&id).is_none());
                assert!(view.epoch_key(seq).is_none());
            }
            // Nothing stored from an epoch it was not in.
            for (g, _, e, _) in node.archive.messages.keys() {
                if *g == gid {
                    assert!(epochs.contains(e), "{} holds epoch {e}", node.name);
                }
            }
        }

        // Every message that survived (all but a removed author's unsent ones) is held by
        // every current member that belongs to its epoch, with the exact bytes; nobody else
        // holds it.
        for p in sim.ledger.iter().filter(|p| p.group == gid) {
            let author = sim.ids[p.author];
            let removed_author = truth.role(&author).is_none();
            // Beyond the owner's cut-off: nobody keeps it, whether it came before or after the
            // removal, and whoever took it before learning of the removal hides it now.
            let beyond = truth.beyond_cutoff(&author, p.epoch, p.seq);
            // Survived: some node holds exactly this message — not the author itself if it was
            // removed (nobody takes from it any more). Only a removed author's messages that
            // reached nobody, and a restored author's that it lost before they left it, are
            // lost.
            let survived = sim.nodes.iter().enumerate().any(|(i, n)| {
                !(removed_author && i == p.author)
                    && n.engine.holds(&place(gid, author, p.epoch, p.seq))
                    && n.archive
                        .messages
                        .get(&(gid, author, p.epoch, p.seq))
                        .is_some_and(|(_, b)| *b == p.bytes)
            });
            for (i, node) in sim.nodes.iter().enumerate() {
                let id = sim.ids[i];
                let holds = node.engine.holds(&place(gid, author, p.epoch, p.seq));
                let stored = node.archive.messages.get(&(gid, author, p.epoch, p.seq));
                let hidden = node
                    .engine
                    .group(&gid)
                    .is_some_and(|g| g.beyond_cutoff(&author, p.epoch, p.seq));
                assert_eq!(
                    holds,
                    stored.is_some() && !hidden,
                    "{}: engine and store disagree on {} {}/{}",
                    node.name,
                    NAMES[p.author],
                    p.epoch,
                    p.seq
                );
                if beyond {
                    assert!(
                        !holds,
                        "seed {}: {} keeps {}'s message {}/{} beyond the cut-off",
                        sim.seed, node.name, NAMES[p.author], p.epoch, p.seq
                    );
                    continue;
                }
                if truth.role_at(&id, p.epoch).is_none() {
                    assert!(!holds, "{} holds a message of epoch {}", node.name, p.epoch);
                } else if truth.role(&id).is_some() && survived {
                    assert!(
                        holds,
                        "seed {}: {} lacks {}'s message {}/{} of {}",
                        sim.seed,
                        node.name,
                        NAMES[p.author],
                        p.epoch,
                        p.seq,
                        truth.name()
                    );
                    assert_eq!(stored.map(|(_, b)| b), Some(&p.bytes));
                    let (_, content) =
                        message::verify_and_open(&p.bytes, node.engine.group(&gid).expect("g"))
                            .expect("a member opens it");
                    assert_eq!(content.officer, format!("officer-{}", NAMES[p.author]));
                }
            }
        }
    }

    // Nothing anyone acknowledged or signed a receipt for was lost.
    for node in &sim.nodes {
        for (peer, id) in &node.acked {
            let p = &sim.nodes[sim.index(peer)];
            assert!(
                p.archive.durable.contains(id),
                "{} lost an acked message",
                p.name
            );
        }
        for (id, receiver) in node.archive.receipts.keys() {
            let r = &sim.nodes[sim.index(receiver)];
            assert!(
                r.archive.durable.contains(id),
                "{} lost a receipted message",
                r.name
            );
        }
        // And nobody stored a message that was never posted.
        for (id, _) in node.archive.messages.values() {
            assert!(sim.ledger.iter().any(|p| p.id == *id));
        }
    }
    let receipts: usize = sim.nodes.iter().map(|n| n.receipts).sum();
    assert!(receipts > 0);
}

fn run(seed: u64) -> Stats {
    let mut sim = Sim::new(seed);
    let out = scenario(&mut sim);
    check(&sim, &out);
    // The scenario did what it says.
    let truth = sim.nodes[O].engine.group(&out.g1).expect("g1");
    assert!(truth.role(&sim.ids[B]).is_none() && truth.epochs_of(&sim.ids[B]).count() > 0);
    assert_eq!(truth.role(&sim.ids[F]), Some(Role::Member));
    assert_eq!(truth.role(&sim.ids[C]), Some(Role::Reader));
    let g2 = sim.nodes[O].engine.group(&out.g2).expect("g2");
    for outsider in [B, E, F] {
        assert!(g2.epochs_of(&sim.ids[outsider]).next().is_none());
    }
    std::mem::take(&mut sim.stats)
}

#[test]
fn sync_converges_under_loss_reordering_and_churn() {
    // SIM_SEEDS=N runs more seeds (e.g. when changing the engine); 20 by default.
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    // Seeds are independent: run them on every core, seed i on thread i mod n.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let per_thread: Vec<Vec<Stats>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..seeds)
                        .filter(|seed| seed % threads == t)
                        .map(run)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let mut total = Stats::default();
    for s in per_thread.into_iter().flatten() {
        assert!(s.dropped > 0 && s.duplicated > 0 && s.flaps > 0 && s.posts > 20);
        assert!(s.rogue_posts > 0 && s.damaged > 0);
        total.holes += s.holes;
        total.rogue_posts += s.rogue_posts;
        total.damaged += s.damaged;
        total.sent += s.sent;
        total.dropped += s.dropped;
        total.duplicated += s.duplicated;
        total.store_failed += s.store_failed;
        total.posts += s.posts;
        total.flaps += s.flaps;
    }
    println!("{total:?}");
}

/// A race the random runs rarely hit, forced: F is added and posts at once, and pushes its
/// message straight to A over their link while A has not yet heard of F's addition (every
/// frame from the owner to A, and the control event F forwards to A, are held back: a reorder
/// the network may do). A must not blame F; once the held frames arrive, A takes F's message.
#[test]
fn a_new_member_is_not_blamed_for_being_ahead() {
    let mut sim = Sim::new(1);
    sim.faults = QUIET;
    sim.store_failures = false;
    let g1 = sim.create("Operation Heritage 2026");
    for who in [A, D, E] {
        sim.add(g1, who, Role::Member);
    }
    let settle = |sim: &mut Sim, ms: u64| {
        let end = sim.now.plus_millis(ms);
        sim.run_until(end, |_| {});
    };
    settle(&mut sim, 3 * SYNC_MS);
    assert_eq!(sim.nodes[A].engine.group(&g1).map(GroupState::seq), Some(4));

    sim.held_links.insert((O, A, None));
    sim.held_links.insert((F, A, Some("control")));
    sim.add(g1, F, Role::Member);
    // F hears of it through D and E.
    for _ in 0..(3 * SYNC_MS / TICK_MS) {
        sim.tick();
        if sim.nodes[F].engine.group(&g1).is_some() {
            break;
        }
    }
    assert_eq!(sim.nodes[F].engine.group(&g1).map(GroupState::seq), Some(5));
    assert_eq!(sim.nodes[A].engine.group(&g1).map(GroupState::seq), Some(4));
    // F posts once the members it is connected to said which of its seqs they hold (E at
    // once; A, which has not heard of F's addition, asks F about the longer chain it names).
    let posts = sim.ledger.len();
    for _ in 0..(3 * SYNC_MS / TICK_MS) {
        sim.post(F, g1);
        if sim.ledger.len() > posts {
            break;
        }
        sim.tick();
    }
    assert_eq!(sim.ledger.len(), posts + 1);
    settle(&mut sim, 200);
    // A may learn of F's addition from F itself (F's sync request names a longer chain, and
    // A asks it back), or wait for the owner's frames; either way it blames nobody.
    let rejected = &sim.nodes[A].rejected;
    assert!(rejected.is_empty(), "A blamed a peer: {rejected:?}");

    sim.release(O, A);
    sim.release(F, A);
    settle(&mut sim, 3 * SYNC_MS);
    assert_eq!(sim.nodes[A].engine.group(&g1).map(GroupState::seq), Some(5));
    assert!(sim.nodes[A].engine.holds(&place(g1, sim.ids[F], 5, 1)));
    for node in &sim.nodes {
        assert!(
            node.rejected.is_empty(),
            "{}: {:?}",
            node.name,
            node.rejected
        );
    }
}

/// A node added and removed again before it heard of the group is told of its removal (the
/// chain up to it) by its peers; it must not blame them for it, and it adopts nothing.
#[test]
fn a_node_removed_before_it_heard_of_the_group_blames_nobody() {
    let mut sim = Sim::new(2);
    sim.faults = QUIET;
    sim.store_failures = false;
    let g1 = sim.create("Operation Heritage 2026");
    for who in [A, D, E] {
        sim.add(g1, who, Role::Member);
    }
    let settle = |sim: &mut Sim, ms: u64| {
        let end = sim.now.plus_millis(ms);
        sim.run_until(end, |_| {});
    };
    settle(&mut sim, 3 * SYNC_MS);
    sim.post(A, g1);
    sim.held_links.insert((A, F, None));
    sim.held_links.insert((E, F, None));
    sim.add(g1, F, Role::Member);
    settle(&mut sim, 3 * SYNC_MS);
    sim.remove(g1, F);
    settle(&mut sim, 3 * SYNC_MS);
    assert!(sim.nodes[F].engine.group(&g1).is_none());
    sim.release(A, F);
    sim.release(E, F);
    settle(&mut sim, 5 * SYNC_MS);
    for node in &sim.nodes {
        assert!(
            node.rejected.is_empty(),
            "{}: {:?}",
            node.name,
            node.rejected
        );
    }
    let f = &sim.nodes[F];
    assert!(f.archive.messages.is_empty());
    if let Some(view) = f.engine.group(&g1) {
        assert!(view.role(&sim.ids[F]).is_none());
        assert!(view.epoch_key(view.epoch()).is_none());
    }
}

/// A quiet run in which B joins a group of O's and O then posts three messages: the run, the
/// group, O's messages as (id, envelope) and whether B held the group before the posts.
fn owner_posts_three(seed: u64, name: &str) -> (Sim, GroupId, Vec<(MessageId, Vec<u8>)>, bool) {
    let mut sim = Sim::new(seed);
    sim.faults = QUIET;
    sim.store_failures = false;
    let g = sim.create(name);
    sim.add(g, B, Role::Member);
    let end = sim.now.plus_millis(3 * SYNC_MS);
    sim.run_until(end, |_| {});
    let settled = sim.nodes[B].engine.group(&g).is_some();
    for _ in 0..3 {
        sim.post(O, g);
    }
    let owner = sim.ids[O];
    let posted: Vec<(MessageId, Vec<u8>)> = sim.nodes[O]
        .archive
        .messages
        .iter()
        .filter(|((group, author, _, _), _)| *group == g && *author == owner)
        .map(|(_, (id, bytes))| (*id, bytes.clone()))
        .collect();
    assert_eq!(posted.len(), 3);
    (sim, g, posted, settled)
}

/// A sync response that brings nothing new (a copy of one already handled, as when two
/// requests crossed) does not make the receiver ask again: asking on every copy would double
/// every later response of a catch-up, each copy checked in full.
#[test]
fn a_repeated_sync_response_is_not_asked_again() {
    let (mut sim, g, posted, settled) = owner_posts_three(2, "Operation Crossed Wires");
    assert!(settled);
    let owner = sim.ids[O];
    let envelopes: Vec<Vec<u8>> = posted.into_iter().map(|(_, bytes)| bytes).collect();
    let frame = Frame::SyncResponse(liaison_protocol::frame::SyncResponse {
        group: g,
        controls: Vec::new(),
        envelopes,
        more: true,
    })
    .encode()
    .expect("encodes");
    let requests_after = |sim: &mut Sim| {
        let now = sim.now;
        let node = &mut sim.nodes[B];
        node.engine.handle_frame(now, owner, &frame, &node.archive);
        while node.engine.poll_event().is_some() {}
        let mut requests = 0;
        while let Some(t) = node.engine.poll_transmit() {
            let sent = Frame::decode(&t.frame).expect("valid frame");
            if t.peer == owner && matches!(sent, Frame::SyncRequest(_)) {
                requests += 1;
            }
        }
        requests
    };
    assert_eq!(
        requests_after(&mut sim),
        1,
        "new messages and more: ask for the rest"
    );
    assert_eq!(
        requests_after(&mut sim),
        0,
        "the same response again: nothing to ask"
    );
}

#[test]
fn a_replayed_receipt_is_taken_once() {
    let (mut sim, g, posted, _) = owner_posts_three(3, "Operation Echo");
    let ids: Vec<MessageId> = posted.into_iter().map(|(id, _)| id).collect();
    // B's own signed receipt for O's messages, arriving twice at O.
    let (b_key, _) = keys(sim.nodes[B].seed);
    let receipt = Receipt::sign(&b_key, g, &ids, sim.now).expect("receipt");
    let frame = Frame::Receipts {
        receipts: vec![receipt],
    }
    .encode()
    .expect("encodes");
    let from_b = sim.ids[B];
    let mut taken = || {
        let now = sim.now;
        let node = &mut sim.nodes[O];
        node.engine.handle_frame(now, from_b, &frame, &node.archive);
        let mut receipts = 0;
        while let Some(event) = node.engine.poll_event() {
            match event {
                Event::Receipt { messages, .. } => {
                    assert_eq!(messages.len(), 3);
                    receipts += 1;
                }
                Event::Rejected { reason, .. } => panic!("a valid receipt was rejected: {reason}"),
                _ => {}
            }
        }
        while node.engine.poll_transmit().is_some() {}
        receipts
    };
    assert_eq!(taken(), 1, "a new receipt is taken");
    assert_eq!(taken(), 0, "the same receipt again is ignored");
}

/// A push that leaves a gap is asked about only if the gap is still open after a grace period
/// (a tenth of the sync interval): pushes of one author arrive out of order whenever the
/// sender's store writes finish out of order, and asking at once brought the missing messages
/// twice.
#[test]
fn a_gap_is_asked_for_only_if_it_stays_open() {
    let (mut sim, g, _, settled) = owner_posts_three(4, "Operation Late Frame");
    assert!(settled);
    for _ in 0..3 {
        sim.post(O, g);
    }
    let owner = sim.ids[O];
    // O's six messages in seq order, sealed but not yet delivered to B.
    let posted: Vec<Vec<u8>> = sim.nodes[O]
        .archive
        .messages
        .iter()
        .filter(|((group, author, _, _), _)| *group == g && *author == owner)
        .map(|(_, (_, bytes))| bytes.clone())
        .collect();
    assert_eq!(posted.len(), 6);
    let grace = SYNC_MS / 10;
    let start = sim.now;
    // Pushes `seqs` from O to B at `at`, then runs B's timers due by then; returns the sync
    // requests B sent O.
    let push_at = |sim: &mut Sim, at: u64, seqs: &[usize]| {
        let now = start.plus_millis(at);
        let node = &mut sim.nodes[B];
        if !seqs.is_empty() {
            let frame = Frame::Push {
                envelopes: seqs.iter().map(|s| posted[s - 1].clone()).collect(),
            }
            .encode()
            .expect("encodes");
            node.engine.handle_frame(now, owner, &frame, &node.archive);
        }
        if node.engine.poll_timeout().is_some_and(|t| t <= now) {
            node.engine.handle_timeout(now);
        }
        while node.engine.poll_event().is_some() {}
        let mut requests = 0;
        while let Some(t) = node.engine.poll_transmit() {
            if t.peer == owner
                && matches!(Frame::decode(&t.frame).expect("valid"), Frame::SyncRequest(r) if r.group == g)
            {
                requests += 1;
            }
        }
        // The owner answers each request at once, with nothing (the test pushes what it
        // wants B to have): a request waits for its answer before another is sent.
        for _ in 0..requests {
            let answer = Frame::SyncResponse(liaison_protocol::frame::SyncResponse {
                group: g,
                controls: Vec::new(),
                envelopes: Vec::new(),
                more: false,
            })
            .encode()
            .expect("encodes");
            node.engine.handle_frame(now, owner, &answer, &node.archive);
        }
        while node.engine.poll_event().is_some() {}
        while node.engine.poll_transmit().is_some() {}
        requests
    };
    // Whatever periodic sync is due now goes first; the next is a whole interval away.
    push_at(&mut sim, 0, &[]);
    // 3 before 1 and 2: no request at once, and none once 1 and 2 came within the grace.
    assert_eq!(push_at(&mut sim, 0, &[3]), 0, "a fresh gap waits");
    assert_eq!(push_at(&mut sim, grace / 2, &[1, 2]), 0);
    assert_eq!(
        push_at(&mut sim, grace + 1, &[]),
        0,
        "the gap closed in time"
    );
    // 6 before 4 and 5, which do not come: asked for once the grace is over.
    assert_eq!(push_at(&mut sim, 2 * grace, &[6]), 0, "a fresh gap waits");
    assert_eq!(
        push_at(&mut sim, 3 * grace - 1, &[]),
        0,
        "still within the grace"
    );
    assert_eq!(push_at(&mut sim, 3 * grace, &[]), 1, "the gap stayed open");
    assert_eq!(push_at(&mut sim, 4 * grace, &[]), 0, "asked once");
}

impl Sim {
    /// Node `i` seals a message into `gid` that it then loses (the write failed and the node
    /// died before it could hand the seq back, or an older version left the gap): a seq no
    /// message will ever have. Returns the seq.
    fn lose_post(&mut self, i: usize, gid: GroupId) -> u64 {
        let now = self.now;
        let content = Content {
            officer: format!("officer-{}", NAMES[i]),
            recipients: vec![],
            reply_to: None,
            payload: Payload::Text {
                subject: "never stored".into(),
                body: "lost".into(),
            },
        };
        let node = &mut self.nodes[i];
        let draft = LocalDraft {
            now,
            handling: Handling::Green,
            expires_at: None,
            content: &content,
        };
        let sealed = node.engine.seal(&gid, draft, &mut node.rng).expect("seals");
        sealed.header.seq
    }

    fn settle(&mut self, ms: u64) {
        let end = self.now.plus_millis(ms);
        self.run_until(end, |_| {});
    }

    fn quiet(seed: u64) -> Sim {
        let mut sim = Sim::new(seed);
        sim.faults = QUIET;
        sim.store_failures = false;
        sim
    }

    /// The seqs of `author`'s messages in `gid` that node `i` holds (its engine's view).
    fn held_seqs(&self, i: usize, gid: GroupId, author: usize, epoch: u64) -> Vec<u64> {
        let author = self.ids[author];
        (1..=200)
            .filter(|s| self.nodes[i].engine.holds(&place(gid, author, epoch, *s)))
            .collect()
    }
}

/// A seq of an author that no node will ever hold (lost in a crash, or left by an older
/// version) must not stop catch-up of what follows it. A request used to carry only the
/// contiguous prefix, so every answer brought the same first budget's worth after the gap and
/// the rest never came.
#[test]
fn a_gap_in_an_authors_sequence_does_not_stop_catch_up() {
    let mut sim = Sim::quiet(5);
    let g = sim.create("Operation Missing Link");
    sim.add(g, A, Role::Member);
    sim.settle(3 * SYNC_MS);
    let epoch = sim.nodes[O].engine.group(&g).expect("g").epoch();
    // A is away while O posts 60 messages, one of which (seq 3) was never stored.
    let far = sim.now.plus_millis(1_000_000);
    sim.link_down(O, A, far);
    let mut expected = Vec::new();
    for k in 1..=61u64 {
        if k == 3 {
            assert_eq!(sim.lose_post(O, g), 3);
        } else {
            sim.post(O, g);
            expected.push(k);
        }
    }
    assert_eq!(sim.held_seqs(O, g, O, epoch), expected);
    sim.link_up(O, A);
    sim.settle(10 * SYNC_MS);
    // Far more than one answer's worth (8 KiB) followed the gap; all of it arrived.
    assert_eq!(sim.held_seqs(A, g, O, epoch), expected);
    for node in &sim.nodes {
        assert!(
            node.rejected.is_empty(),
            "{}: {:?}",
            node.name,
            node.rejected
        );
    }
}

/// A node restored from a backup lacks its own latest messages, which its peers hold. It must
/// not number new messages with their seqs (every peer would drop them as a reuse): it posts
/// only once its connected members said which of its seqs they hold, continues above them,
/// and fetches the lost ones back.
#[test]
fn a_restored_node_does_not_reuse_its_sequence_numbers() {
    let mut sim = Sim::quiet(6);
    let g = sim.create("Operation Backup");
    sim.add(g, A, Role::Member);
    sim.settle(3 * SYNC_MS);
    for _ in 0..2 {
        sim.post(A, g);
    }
    sim.settle(SYNC_MS);
    sim.back_up(A);
    for _ in 0..3 {
        sim.post(A, g);
    }
    sim.settle(3 * SYNC_MS);
    let epoch = sim.nodes[O].engine.group(&g).expect("g").epoch();
    assert_eq!(sim.held_seqs(O, g, A, epoch), vec![1, 2, 3, 4, 5]);

    sim.restore(A);
    assert_eq!(sim.held_seqs(A, g, A, epoch), vec![1, 2]);
    // Refused until O has said what it holds; then numbered after it.
    let posts = sim.ledger.len();
    let mut tries = 0;
    while sim.ledger.len() == posts {
        sim.post(A, g);
        sim.tick();
        tries += 1;
        assert!(
            tries < 3 * SYNC_MS / TICK_MS,
            "the restored node never posts"
        );
    }
    assert!(
        tries > 1,
        "the restored node posted before it heard from a member"
    );
    let new = sim.ledger.last().expect("a post").clone();
    assert_eq!((new.epoch, new.seq), (epoch, 6));
    sim.settle(3 * SYNC_MS);
    assert_eq!(sim.held_seqs(O, g, A, epoch), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(sim.held_seqs(A, g, A, epoch), vec![1, 2, 3, 4, 5, 6]);
    for node in &sim.nodes {
        assert!(
            node.rejected.is_empty(),
            "{}: {:?}",
            node.name,
            node.rejected
        );
    }
}

/// B is removed while A has not heard of it yet. B goes on signing into the epoch it had (seq
/// one million, dated 2020, TLP:RED) and pushes to the owner and to A. The owner refuses it
/// (its cut-off holds B's seqs 1 and 2 only) and blames B; A takes it, and once it learns of
/// the removal hides it, serves it to nobody and blames nobody for having relayed it. Every
/// member ends with the owner's view: B's messages 1 and 2.
#[test]
fn a_removed_members_messages_beyond_the_cut_off_are_dropped_everywhere() {
    let mut sim = Sim::quiet(7);
    let g = sim.create("Operation Cut-Off");
    for who in [A, B, C] {
        sim.add(g, who, Role::Member);
    }
    sim.settle(3 * SYNC_MS);
    for _ in 0..2 {
        sim.post(B, g);
    }
    sim.settle(3 * SYNC_MS);
    let epoch = sim.nodes[B].engine.group(&g).expect("g").epoch();
    assert_eq!(sim.held_seqs(C, g, B, epoch), vec![1, 2]);

    let b_view = sim.nodes[B].engine.group(&g).cloned().expect("B's view");
    // A hears nothing of the removal for a while: neither from the owner nor from B (which
    // passes its own removal on). B's rogue pushes are sent past its engine.
    sim.held_links.insert((O, A, None));
    sim.held_links.insert((B, A, None));
    sim.remove(g, B);
    assert_eq!(
        sim.nodes[O]
            .engine
            .group(&g)
            .expect("g")
            .cutoff(&sim.ids[B], epoch),
        Some(2)
    );
    sim.rogue = Some((B, b_view, 1_000_000));
    sim.rogue_post();
    sim.settle(SYNC_MS / 2);
    let rogue = sim.ledger.last().expect("the rogue post").clone();
    let b = sim.ids[B];
    assert!(
        sim.nodes[A].engine.holds(&place(g, b, epoch, 1_000_000)),
        "A took it"
    );
    assert!(!sim.nodes[O].engine.holds(&place(g, b, epoch, 1_000_000)));
    assert!(sim.nodes[O]
        .rejected
        .iter()
        .any(|(p, r)| *p == b && matches!(r, Rejection::BeyondCutoff { .. })));

    sim.release(O, A);
    sim.release(B, A);
    sim.settle(5 * SYNC_MS);
    let owner_view = sim.held_seqs(O, g, B, epoch);
    assert_eq!(owner_view, vec![1, 2]);
    for i in [O, A, C] {
        assert_eq!(sim.held_seqs(i, g, B, epoch), owner_view, "{}", NAMES[i]);
        assert!(!sim.nodes[i].engine.holds(&place(g, b, epoch, 1_000_000)));
    }
    // A still stores it (taken before it knew), hidden; C never received it.
    assert!(sim.nodes[A].archive.origin.contains_key(&rogue.id));
    assert!(!sim.nodes[C].archive.origin.contains_key(&rogue.id));
    for node in &sim.nodes {
        let blamed: Vec<_> = node.rejected.iter().filter(|(p, _)| *p != b).collect();
        assert!(blamed.is_empty(), "{}: {blamed:?}", node.name);
    }
}

/// A batch of posts whose write failed hands its seqs back: the next post takes the first of
/// them, so the author's own sequence has no gap. (The seqs used to stay consumed; every peer
/// then waited for messages that never existed.)
#[test]
fn a_failed_write_hands_its_sequence_numbers_back() {
    let mut sim = Sim::quiet(8);
    let g = sim.create("Operation Full Disk");
    sim.post(O, g);
    let now = sim.now;
    let content = Content {
        officer: "officer-O".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: "s".into(),
            body: "b".into(),
        },
    };
    let node = &mut sim.nodes[O];
    let draft = || LocalDraft {
        now,
        handling: Handling::Green,
        expires_at: None,
        content: &content,
    };
    let failed: Vec<_> = (0..3)
        .map(|_| node.engine.seal(&g, draft(), &mut node.rng).expect("seals"))
        .collect();
    let seqs: Vec<u64> = failed.iter().map(|s| s.header.seq).collect();
    assert_eq!(seqs, vec![2, 3, 4]);
    node.engine.handle_local_failed(&failed);
    let next = node.engine.seal(&g, draft(), &mut node.rng).expect("seals");
    assert_eq!(next.header.seq, 2);
}

/// A member that is connected but never says which of this node's seqs it holds (none of its
/// frames arrive: a one-way link, a node that lost the group) must not keep the node from
/// posting for ever: once one member said it, the node posts a sync interval later. It used to
/// wait for every connected member, so one silent member stopped it after every restart.
#[test]
fn a_silent_member_does_not_stop_posting_for_ever() {
    let mut sim = Sim::quiet(8);
    let g = sim.create("Operation Quiet");
    sim.add(g, A, Role::Member);
    sim.add(g, B, Role::Member);
    sim.settle(3 * SYNC_MS);
    sim.held_links.insert((B, A, None));
    sim.crash(A);
    let start = sim.now;
    let posts = sim.ledger.len();
    while sim.ledger.len() == posts {
        sim.post(A, g);
        sim.tick();
        assert!(
            sim.now < start.plus_millis(5 * SYNC_MS),
            "A never posts while B is silent"
        );
    }
    assert!(
        sim.now > start.plus_millis(SYNC_MS),
        "A posted before a sync interval passed without B's word"
    );
    sim.release(B, A);
    sim.settle(3 * SYNC_MS);
    let new = sim.ledger.last().expect("a post").clone();
    for i in [O, B] {
        assert!(sim.nodes[i]
            .engine
            .holds(&place(g, sim.ids[A], new.epoch, new.seq)));
    }
}
