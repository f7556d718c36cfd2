//! The sync engine: a sans-IO state machine that decides what a node sends its peers.
//!
//! The engine keeps, per group, the group state and the control events (to serve them), and per
//! author and epoch which sequence numbers this node holds: the highest contiguous one plus any
//! held above a gap. Messages themselves live in the node's store and are read back through
//! [`Archive`] when a peer asks for them.
//!
//! # Call order
//!
//! ```text
//! Engine::new → add_previous_keys (keys from before a rotation) → restore_group /
//!   restore_held (from the store, at start-up) → set_policy (the federation view)
//! loop:
//!   handle_connected(now, peer) | handle_disconnected(peer)
//!   handle_frame(now, peer, bytes, archive)          ← bytes from the transport, or
//!   SplitFrame::decode → Carried::check (any thread) → handle_split   ← the same, with the
//!                                                       signatures checked off the engine
//!   handle_durable(now, ids) | handle_store_failed(ids)   ← after the store's flush
//!   handle_timeout(now)                              ← when poll_timeout() is reached
//!   propose_* / commit_local_control / seal / commit_local_message   ← local actions
//!   set_policy / send_frame / strike / rotate_keys  ← what the node's federation view decides
//!   then drain: poll_event() (store accepted messages and control events, log rejections,
//!               drop peers), poll_transmit() (send frames), poll_timeout() (arm the timer)
//! ```
//!
//! # Rules
//!
//! - A peer receives a group's control events and messages only while it is a member of the
//!   group's current epoch, and only messages of epochs in which it was a member.
//! - A message is acknowledged (an `Ack` frame to the sender, a signed receipt towards the
//!   author) only after the node reports it durable with [`Engine::handle_durable`].
//! - Every rejected input raises [`Event::Rejected`] and a strike against the sending peer;
//!   after [`Config::max_strikes`] the engine asks the node to drop the connection.
//! - Queues are bounded: at most [`Config::max_queued_frames`] frames wait per peer and at most
//!   [`Config::max_in_flight`] messages wait for the store; beyond that, input is dropped
//!   unacknowledged, and the periodic sync recovers it.
//! - A gap left by a push is asked for (a sync request to the peer that pushed) only if it is
//!   still open a tenth of the sync interval later: pushes of one author arrive out of order
//!   whenever the sender's store writes finish out of order.
//! - Rosters and rotation statements are not the engine's: it hands them to the node
//!   ([`Event::Rosters`], [`Event::Rotations`]), which checks them against its federation view
//!   and tells the engine what follows ([`Policy`]): a message whose author was revoked before
//!   it was created is refused without a strike and never served or relayed; a descriptor that
//!   claims another node's roster name is refused.
//! - Pushes, acknowledgements and receipts for one peer are coalesced until the node next calls
//!   [`Engine::poll_transmit`] (or another frame goes to that peer first, which keeps the order):
//!   a drain that handled many messages sends one `Push`, one `Ack` and one `Receipts` frame per
//!   peer, not one of each per message.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use crate::error::{Rejection, UsageError};
use crate::frame::{vector_high, Frame, SyncRequest, SyncResponse, VectorEntry};
use crate::group::{Applied, Change, GroupId, GroupState, LocalKeys};
use crate::identity::{
    Descriptor, ExchangeSecret, IdentityKey, NodeId, SignedDescriptor, Timestamp,
};
use crate::message::{self, Draft, MessageId, Payload, Place, Sealed};
use crate::receipt::{Receipt, MAX_RECEIPT_MESSAGES};

/// Read access to the envelopes a node has stored, implemented by the node over its store.
pub trait Archive {
    /// Envelopes of `group` by `author` in `epoch` with a sequence number above `after`, in
    /// ascending order, stopping once their total size would exceed `max_bytes` (but returning
    /// at least one if any exists).
    fn envelopes(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        after: u64,
        max_bytes: usize,
    ) -> Vec<Vec<u8>>;

    /// The group and author of a stored message.
    fn message_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)>;

    /// The group and author of a stored message that a receipt names. Receipts are best
    /// effort, so an archive may answer `None` (as for a message not held) when looking it up
    /// would cost too much: one signed receipt names up to 1,024 messages, and a peer can
    /// send the same receipts again and again. Defaults to [`Archive::message_origin`].
    fn receipt_origin(&self, id: &MessageId) -> Option<(GroupId, NodeId)> {
        self.message_origin(id)
    }
}

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often to exchange version vectors with each connected peer, in milliseconds.
    pub sync_interval_ms: u64,
    /// Rejected inputs tolerated from one peer before the engine asks to drop it.
    pub max_strikes: u32,
    /// Frames that may wait to be sent to one peer.
    pub max_queued_frames: usize,
    /// Messages that may wait for the store at once.
    pub max_in_flight: usize,
    /// Envelope bytes in one sync response.
    pub response_budget: usize,
    /// Forward messages received from their author to the other connected members at once.
    /// Group owners always do; other nodes rely on the periodic sync unless this is set.
    pub relay: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sync_interval_ms: 5_000,
            max_strikes: 16,
            max_queued_frames: 1024,
            max_in_flight: 16_384,
            response_budget: 1024 * 1024,
            relay: false,
        }
    }
}

/// Something the node must act on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A valid new message: store `envelope` durably, then call [`Engine::handle_durable`].
    MessageAccepted {
        /// The peer it came from.
        from: NodeId,
        /// Its id.
        id: MessageId,
        /// Its header.
        header: Box<message::Header>,
        /// The exact envelope bytes received.
        envelope: Vec<u8>,
        /// The attachments its content names (opened while checking it): the node fetches
        /// them on their own streams ([`crate::transfer`]).
        attachments: Vec<crate::attachment::AttachmentRef>,
    },
    /// A control event was applied: store it (keyed by group and seq).
    ControlApplied {
        /// The group.
        group: GroupId,
        /// Its seq (= the epoch it opened).
        seq: u64,
        /// The exact event bytes.
        event: Vec<u8>,
    },
    /// A valid descriptor of another node, learned from a peer's directory.
    Directory {
        /// The node described.
        node: NodeId,
        /// Its descriptor.
        descriptor: Box<Descriptor>,
        /// The exact signed bytes.
        bytes: Vec<u8>,
    },
    /// A peer presented a valid descriptor.
    PeerDescriptor {
        /// The peer.
        peer: NodeId,
        /// Its descriptor.
        descriptor: Box<Descriptor>,
        /// The exact signed bytes.
        bytes: Vec<u8>,
    },
    /// A valid delivery receipt arrived (or this node signed one): store it for the messages
    /// named that are held here.
    Receipt {
        /// The group of the messages.
        group: GroupId,
        /// The node that stored them.
        receiver: NodeId,
        /// The messages the receipt names that this node holds (or is storing).
        messages: Vec<MessageId>,
        /// The exact signed bytes.
        bytes: Vec<u8>,
    },
    /// A peer acknowledged durable storage of messages.
    Acked {
        /// The peer.
        peer: NodeId,
        /// The messages.
        ids: Vec<MessageId>,
    },
    /// Input from a peer was refused.
    Rejected {
        /// The peer that sent it.
        peer: NodeId,
        /// Why.
        reason: Rejection,
    },
    /// A peer misbehaved too often: close its connection.
    Disconnect {
        /// The peer.
        peer: NodeId,
    },
    /// Federation rosters from a peer, for the node to check against its authorities (a
    /// [`Frame::Roster`]); the engine itself holds no roster.
    Rosters {
        /// The peer.
        peer: NodeId,
        /// The encoded rosters.
        rosters: Vec<Vec<u8>>,
    },
    /// Key rotation statements from a peer (a [`Frame::Rotation`]), for the node to check.
    Rotations {
        /// The peer.
        peer: NodeId,
        /// The encoded statements.
        statements: Vec<Vec<u8>>,
    },
    /// Input refused under the node's [`Policy`] without blaming the peer that carried it: a
    /// message its author signed after being revoked, a descriptor relayed for a node whose
    /// roster name another node holds. No strike.
    Refused {
        /// The peer it came from.
        peer: NodeId,
        /// Why.
        reason: Rejection,
    },
}

/// What the node's federation view tells the engine (see `roster::Federation`): names that
/// belong to one node, and nodes revoked from a time on. Set with [`Engine::set_policy`].
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Roster names and the node each belongs to: a descriptor of any other node that claims
    /// one is refused and not shared.
    pub names: BTreeMap<String, NodeId>,
    /// Revoked nodes and the time from which what they sign is refused: their messages
    /// created at or after it are neither accepted nor served, and their descriptors are
    /// not shared.
    pub revoked: BTreeMap<NodeId, Timestamp>,
}

/// A frame to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// The peer to send it to.
    pub peer: NodeId,
    /// The encoded frame.
    pub frame: Vec<u8>,
}

/// Sequence numbers held for one author in one epoch.
#[derive(Debug, Clone, Default)]
struct Held {
    high: u64,
    above: BTreeSet<u64>,
}

impl Held {
    fn contains(&self, seq: u64) -> bool {
        seq <= self.high || self.above.contains(&seq)
    }
    fn insert(&mut self, seq: u64) {
        if seq <= self.high {
            return;
        }
        self.above.insert(seq);
        while self.above.remove(&(self.high + 1)) {
            self.high += 1;
        }
    }
    fn remove(&mut self, seq: u64) {
        if seq == 0 || seq > self.high {
            self.above.remove(&seq);
            return;
        }
        // `seq` was counted in the contiguous run: the run now ends below it, and what was
        // held above it stays held, above a gap.
        self.above.extend(seq + 1..=self.high);
        self.high = seq - 1;
    }
    fn max(&self) -> u64 {
        self.above.last().copied().unwrap_or(0).max(self.high)
    }
}

#[derive(Debug)]
struct Replica {
    state: GroupState,
    controls: Vec<Vec<u8>>,
    held: BTreeMap<(NodeId, u64), Held>,
}

impl Replica {
    fn vector(&self) -> Vec<VectorEntry> {
        self.held
            .iter()
            .filter(|(_, h)| h.high > 0)
            .map(|((author, epoch), h)| VectorEntry {
                author: *author,
                epoch: *epoch,
                high: h.high,
            })
            .collect()
    }
    fn is_current_member(&self, node: &NodeId) -> bool {
        self.state.role(node).is_some()
    }
}

#[derive(Debug, Default)]
struct Peer {
    connected: bool,
    strikes: u32,
    next_sync: Timestamp,
    queued: usize,
    /// Last time a sync was requested from this peer per group outside the schedule.
    last_extra_request: HashMap<GroupId, Timestamp>,
    /// Gaps this peer's pushes left, per group and author's sequence space: the seq up to
    /// which everything must be held, and when to ask for what is missing if it still is not
    /// (see [`Engine::handle_timeout`]).
    gaps: HashMap<(GroupId, NodeId, u64), (u64, Timestamp)>,
}

/// Most gaps waiting per peer; a new gap beyond that is asked for at once.
const MAX_GAPS: usize = 4096;

#[derive(Debug)]
struct InFlight {
    group: GroupId,
    author: NodeId,
    epoch: u64,
    seq: u64,
    created_at: Timestamp,
    from: Vec<NodeId>,
    /// Kept only where this node relays (see [`Engine::handle_durable`]); the store has it.
    envelope: Option<Vec<u8>>,
}

/// The sync engine of one node. See the module documentation for the call order.
#[derive(Debug)]
pub struct Engine {
    identity: IdentityKey,
    exchange: ExchangeSecret,
    descriptor: Vec<u8>,
    config: Config,
    groups: BTreeMap<GroupId, Replica>,
    peers: BTreeMap<NodeId, Peer>,
    in_flight: HashMap<MessageId, InFlight>,
    next_seq: BTreeMap<(GroupId, u64), u64>,
    transmits: VecDeque<Transmit>,
    /// Pushes, acks and receipts waiting to be coalesced into frames, per peer.
    outbox: BTreeMap<NodeId, Outbox>,
    events: VecDeque<Event>,
    /// Signed descriptors of known nodes (this one included), shared with peers.
    directory: BTreeMap<NodeId, Vec<u8>>,
    /// BLAKE3 digests of receipts taken recently (see [`MAX_SEEN_RECEIPTS`]).
    seen_receipts: HashSet<[u8; 32]>,
    /// Keys this node had before it rotated, oldest first: epoch keys wrapped to them are still
    /// unwrapped, and groups still owned by one of them are moved to the current key.
    previous: Vec<(IdentityKey, ExchangeSecret)>,
    /// See [`Policy`].
    policy: Policy,
}

/// Most receipt digests kept to recognise a receipt taken before; emptied when full. Receipts
/// are never sent twice by an honest node, so a repeat is a replay: taking it again would
/// cost lookups and index writes for every message it names and forward it again.
const MAX_SEEN_RECEIPTS: usize = 16_384;

/// What waits for one peer until the next [`Engine::poll_transmit`].
#[derive(Debug, Default)]
struct Outbox {
    push: Vec<Vec<u8>>,
    push_bytes: usize,
    acks: Vec<MessageId>,
    receipts: Vec<Vec<u8>>,
}

/// Most message ids in one `Ack` frame.
const MAX_ACKS_PER_FRAME: usize = 4096;
/// Most receipts in one `Receipts` frame (each up to `MAX_RECEIPT_LEN`, so a frame stays far
/// below `MAX_FRAME_LEN`).
const MAX_RECEIPTS_PER_FRAME: usize = 64;

/// The most descriptors a node keeps in its directory.
pub const MAX_DIRECTORY: usize = 4096;

impl Engine {
    /// Makes an engine for the node with these keys; `descriptor` is its encoded
    /// [`SignedDescriptor`], sent in every `Hello`.
    pub fn new(
        identity: IdentityKey,
        exchange: ExchangeSecret,
        descriptor: Vec<u8>,
        config: Config,
    ) -> Engine {
        Engine {
            identity,
            exchange,
            descriptor,
            config,
            groups: BTreeMap::new(),
            peers: BTreeMap::new(),
            in_flight: HashMap::new(),
            next_seq: BTreeMap::new(),
            transmits: VecDeque::new(),
            outbox: BTreeMap::new(),
            events: VecDeque::new(),
            directory: BTreeMap::new(),
            seen_receipts: HashSet::new(),
            previous: Vec::new(),
            policy: Policy::default(),
        }
    }

    /// Adds keys this node had before a rotation (at start-up, oldest first): epoch keys
    /// wrapped to them are unwrapped when groups are restored or events applied.
    pub fn add_previous_keys(&mut self, identity: IdentityKey, exchange: ExchangeSecret) {
        self.previous.push((identity, exchange));
    }

    /// Moves this node to new keys (a rotation): the current keys become previous keys, and
    /// `descriptor` (signed by the new identity key) is sent in every `Hello` from now on.
    /// Existing connections were authenticated under the old key: the node must close them.
    pub fn rotate_keys(
        &mut self,
        identity: IdentityKey,
        exchange: ExchangeSecret,
        descriptor: Vec<u8>,
    ) {
        let old_identity = std::mem::replace(&mut self.identity, identity);
        let old_exchange = std::mem::replace(&mut self.exchange, exchange);
        self.previous.push((old_identity, old_exchange));
        self.descriptor = descriptor;
        self.next_seq.clear();
    }

    /// The control events that move this node's own groups to its current keys: for every
    /// group whose owner is one of its previous identity keys, a `Rekey` of that key to the
    /// current one, signed by the previous key; for every group it owns whose member record
    /// holds another exchange key than its current one, a `Rekey` of the exchange key. Store
    /// each durably, then pass it to [`Engine::commit_local_control`].
    pub fn propose_own_rekeys<R: rand_core::CryptoRng + rand_core::RngCore>(
        &self,
        now: Timestamp,
        rng: &mut R,
    ) -> Vec<(GroupId, u64, Result<Vec<u8>, UsageError>)> {
        let me = self.identity.node_id();
        let mut out = Vec::new();
        for replica in self.groups.values() {
            let state = &replica.state;
            let owner = state.owner();
            let signer = if owner == me {
                &self.identity
            } else if let Some((key, _)) = self.previous.iter().find(|(k, _)| k.node_id() == owner)
            {
                key
            } else {
                continue;
            };
            let stale_exchange = state
                .members()
                .get(&owner)
                .is_some_and(|m| m.exchange_key != self.exchange.public());
            if owner == me && !stale_exchange {
                continue;
            }
            let change = Change::Rekey {
                member: owner,
                node: me,
                exchange_key: self.exchange.public(),
            };
            out.push((
                state.id(),
                state.seq() + 1,
                state.propose(signer, change, now, rng),
            ));
        }
        out
    }

    /// Sets what the node's federation view says (see [`Policy`]); applies to input from now
    /// on.
    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// Sends `frame` to `peer` after whatever waits for it, if it is connected (rosters and
    /// rotation statements, which the node handles).
    pub fn send_frame(&mut self, peer: NodeId, frame: &Frame) {
        self.send(peer, frame);
    }

    /// Counts a strike against `peer` for input the node refused (a roster with a bad
    /// signature, say), exactly as if the engine had refused it.
    pub fn strike(&mut self, peer: NodeId, reason: Rejection) {
        self.reject(peer, reason);
    }

    /// The local keys to unwrap epoch keys with: the current ones, then the previous ones.
    fn local_keys(&self) -> Vec<LocalKeys<'_>> {
        std::iter::once(LocalKeys {
            node: self.identity.node_id(),
            exchange: &self.exchange,
        })
        .chain(self.previous.iter().rev().map(|(i, x)| LocalKeys {
            node: i.node_id(),
            exchange: x,
        }))
        .collect()
    }

    /// Whether the policy refuses a message `author` created at `created_at`.
    fn revoked_at(&self, author: &NodeId, created_at: Timestamp) -> bool {
        self.policy
            .revoked
            .get(author)
            .is_some_and(|at| created_at >= *at)
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    /// This node's identity key.
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    // ----- start-up -----------------------------------------------------------------------

    /// Rebuilds a group from its stored control events (in order). No events are raised.
    pub fn restore_group(&mut self, controls: Vec<Vec<u8>>) -> Result<GroupId, Rejection> {
        let locals = self.local_keys();
        let first = controls
            .first()
            .ok_or(Rejection::InvalidControl("no events"))?;
        let mut state = GroupState::from_genesis_with(first, &locals)?;
        for event in &controls[1..] {
            state.apply_with(event, &locals)?;
        }
        let id = state.id();
        self.groups.insert(
            id,
            Replica {
                state,
                controls,
                held: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    /// Records that the store holds messages at these places (of groups restored before).
    pub fn restore_held(&mut self, places: impl IntoIterator<Item = Place>) {
        for place in places {
            if let Some(replica) = self.groups.get_mut(&place.group) {
                let held = replica.held.entry((place.author, place.epoch)).or_default();
                held.insert(place.seq);
            }
        }
    }

    // ----- queries ------------------------------------------------------------------------

    /// The state of a group this node holds.
    pub fn group(&self, id: &GroupId) -> Option<&GroupState> {
        self.groups.get(id).map(|r| &r.state)
    }

    /// Every group this node holds.
    pub fn groups(&self) -> impl Iterator<Item = &GroupState> {
        self.groups.values().map(|r| &r.state)
    }

    /// The version vector of a group.
    pub fn vector(&self, id: &GroupId) -> Vec<VectorEntry> {
        self.groups.get(id).map(Replica::vector).unwrap_or_default()
    }

    /// Whether this node holds (or is storing) a message at `place`.
    pub fn holds(&self, place: &Place) -> bool {
        self.groups
            .get(&place.group)
            .and_then(|r| r.held.get(&(place.author, place.epoch)))
            .is_some_and(|h| h.contains(place.seq))
    }

    /// Whether `peer` is connected.
    pub fn is_connected(&self, peer: &NodeId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.connected)
    }

    /// Messages waiting for the store.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    // ----- local actions ------------------------------------------------------------------

    /// Makes event 1 of a new group owned by this node. Store it durably, then pass it to
    /// [`Engine::commit_local_control`].
    pub fn propose_create<R: rand_core::CryptoRng + rand_core::RngCore>(
        &self,
        own_name: &str,
        name: &str,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<(GroupId, Vec<u8>), UsageError> {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        let id = GroupId::from(id);
        let bytes = GroupState::create(
            &self.identity,
            own_name,
            self.exchange.public(),
            id,
            name,
            now,
            rng,
        )?;
        Ok((id, bytes))
    }

    /// Makes the next control event of a group this node owns. Store it durably, then pass
    /// it to [`Engine::commit_local_control`].
    pub fn propose<R: rand_core::CryptoRng + rand_core::RngCore>(
        &self,
        group: &GroupId,
        change: Change,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Vec<u8>, UsageError> {
        let replica = self
            .groups
            .get(group)
            .ok_or(UsageError::NotAMember(*group))?;
        replica.state.propose(&self.identity, change, now, rng)
    }

    /// Applies a control event this node made (after storing it) and sends it to the group's
    /// connected members.
    pub fn commit_local_control(
        &mut self,
        now: Timestamp,
        event: &[u8],
    ) -> Result<GroupId, UsageError> {
        let (_, parsed) = crate::group::decode_control(event).map_err(|e| UsageError::Invalid {
            field: "control event",
            reason: e.to_string(),
        })?;
        let group = parsed.group;
        self.apply_controls(now, None, group, std::slice::from_ref(&event.to_vec()))
            .map_err(|e| UsageError::Invalid {
                field: "control event",
                reason: e.to_string(),
            })?;
        Ok(group)
    }

    /// Seals a message from this node into `group`'s current epoch with the next sequence
    /// number. Store the result durably, then pass it to [`Engine::commit_local_message`].
    pub fn seal<R: rand_core::CryptoRng + rand_core::RngCore>(
        &mut self,
        group: &GroupId,
        draft: LocalDraft<'_>,
        rng: &mut R,
    ) -> Result<Sealed, UsageError> {
        let me = self.identity.node_id();
        let replica = self
            .groups
            .get(group)
            .ok_or(UsageError::NotAMember(*group))?;
        let epoch = replica.state.epoch();
        let held_max = replica.held.get(&(me, epoch)).map_or(0, Held::max);
        let next = self
            .next_seq
            .get(&(*group, epoch))
            .copied()
            .unwrap_or(1)
            .max(held_max + 1);
        let sealed = message::seal(
            &replica.state,
            &self.identity,
            Draft {
                seq: next,
                now: draft.now,
                handling: draft.handling,
                expires_at: draft.expires_at,
                content: draft.content,
            },
            rng,
        )?;
        self.next_seq.insert((*group, epoch), next + 1);
        Ok(sealed)
    }

    /// Records a message this node sealed and stored durably, and pushes it to the connected
    /// members of its epoch.
    pub fn commit_local_message(&mut self, sealed: &Sealed) {
        let h = &sealed.header;
        if let Some(replica) = self.groups.get_mut(&h.group) {
            replica
                .held
                .entry((h.author, h.epoch))
                .or_default()
                .insert(h.seq);
        }
        let me = self.identity.node_id();
        self.push_to_members(&h.group, h.epoch, &[me], &sealed.bytes);
    }

    // ----- peers --------------------------------------------------------------------------

    /// A connection to `peer` is up: greet it and exchange vectors for shared groups.
    pub fn handle_connected(&mut self, now: Timestamp, peer: NodeId) {
        let p = self.peers.entry(peer).or_default();
        p.connected = true;
        p.strikes = 0;
        p.next_sync = now.plus_millis(self.config.sync_interval_ms);
        let hello = Frame::Hello {
            descriptor: self.descriptor.clone(),
        };
        self.send(peer, &hello);
        let known: Vec<Vec<u8>> = self
            .directory
            .iter()
            .filter(|(node, _)| **node != peer)
            .map(|(_, d)| d.clone())
            .collect();
        for chunk in known.chunks(256) {
            self.send(
                peer,
                &Frame::Directory {
                    descriptors: chunk.to_vec(),
                },
            );
        }
        self.sync_with(peer);
    }

    /// Adds a signed descriptor (from the store, at start-up) to the directory shared with
    /// peers. Invalid or expired descriptors are ignored.
    pub fn restore_descriptor(&mut self, now: Timestamp, bytes: Vec<u8>) {
        if let Ok(d) = SignedDescriptor::verify(&bytes, now) {
            if self.directory.len() < MAX_DIRECTORY || self.directory.contains_key(&d.node) {
                self.directory.insert(d.node, bytes);
            }
        }
    }

    /// Records a verified descriptor; if it is new, shares it with connected peers.
    fn learn_descriptor(&mut self, node: NodeId, bytes: &[u8]) -> bool {
        if node == self.identity.node_id()
            || self.directory.get(&node).map(Vec::as_slice) == Some(bytes)
        {
            return false;
        }
        if self.directory.len() >= MAX_DIRECTORY && !self.directory.contains_key(&node) {
            return false;
        }
        self.directory.insert(node, bytes.to_vec());
        let targets: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(id, p)| p.connected && **id != node)
            .map(|(id, _)| *id)
            .collect();
        let frame = Frame::Directory {
            descriptors: vec![bytes.to_vec()],
        };
        for peer in targets {
            self.send(peer, &frame);
        }
        true
    }

    /// The connection to `peer` is gone.
    pub fn handle_disconnected(&mut self, peer: &NodeId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = false;
        }
        self.transmits.retain(|t| t.peer != *peer);
        self.outbox.remove(peer);
        if let Some(p) = self.peers.get_mut(peer) {
            p.queued = 0;
        }
    }

    /// The next time [`Engine::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.peers
            .values()
            .filter(|p| p.connected)
            .flat_map(|p| std::iter::once(p.next_sync).chain(p.gaps.values().map(|(_, at)| *at)))
            .min()
    }

    /// Runs the periodic sync with every peer that is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.ask_for_gaps(now);
        let due: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.next_sync <= now)
            .map(|(id, _)| *id)
            .collect();
        for peer in due {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.next_sync = now.plus_millis(self.config.sync_interval_ms);
            }
            self.sync_with(peer);
        }
    }

    fn sync_with(&mut self, peer: NodeId) {
        let requests: Vec<Frame> = self
            .groups
            .values()
            .filter(|r| r.is_current_member(&peer))
            .map(|r| {
                Frame::SyncRequest(SyncRequest {
                    group: r.state.id(),
                    control_seq: r.state.seq(),
                    vector: r.vector(),
                })
            })
            .collect();
        for frame in requests {
            self.send(peer, &frame);
        }
    }

    /// Asks for the gaps whose grace period is over and that are still open; forgets those
    /// that closed.
    fn ask_for_gaps(&mut self, now: Timestamp) {
        let mut ask = Vec::new();
        for (peer, p) in &mut self.peers {
            p.gaps.retain(|(group, author, epoch), (through, at)| {
                if *at > now {
                    return true;
                }
                let open = self
                    .groups
                    .get(group)
                    .and_then(|r| r.held.get(&(*author, *epoch)))
                    .is_some_and(|held| held.high < *through);
                if open && p.connected {
                    ask.push((*peer, *group));
                }
                false
            });
        }
        ask.dedup();
        for (peer, group) in ask {
            self.request_sync(now, peer, group);
        }
    }

    /// A push from `peer` left a gap below `seq` in `author`'s sequence space: ask for it
    /// unless it closes within the grace period. Pushes of one author arrive out of order
    /// whenever the sender's store writes complete out of order, and the missing ones are
    /// usually a frame behind; asking at once brought them twice (and checked them twice).
    fn note_gap(&mut self, now: Timestamp, peer: NodeId, h: &message::Header) {
        let grace = (self.config.sync_interval_ms / 10).max(1);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let key = (h.group, h.author, h.epoch);
        if p.gaps.len() >= MAX_GAPS && !p.gaps.contains_key(&key) {
            self.request_sync(now, peer, h.group);
            return;
        }
        let gap = p.gaps.entry(key).or_insert((0, now.plus_millis(grace)));
        gap.0 = gap.0.max(h.seq);
    }

    fn request_sync(&mut self, now: Timestamp, peer: NodeId, group: GroupId) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let min_gap = (self.config.sync_interval_ms / 10).max(1);
        if let Some(last) = p.last_extra_request.get(&group) {
            if now < last.plus_millis(min_gap) {
                return;
            }
        }
        if p.last_extra_request.len() > 4096 {
            p.last_extra_request.clear();
        }
        p.last_extra_request.insert(group, now);
        let frame = match self.groups.get(&group) {
            Some(r) => SyncRequest {
                group,
                control_seq: r.state.seq(),
                vector: r.vector(),
            },
            None => SyncRequest {
                group,
                control_seq: 0,
                vector: Vec::new(),
            },
        };
        self.send(peer, &Frame::SyncRequest(frame));
    }

    // ----- input --------------------------------------------------------------------------

    /// Handles one frame received from `peer` (whose key the transport authenticated).
    pub fn handle_frame(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        bytes: &[u8],
        archive: &dyn Archive,
    ) {
        let (split, items) = match SplitFrame::decode(bytes) {
            Ok(s) => s,
            Err(e) => return self.reject(peer, e.into()),
        };
        let carried = split.carried();
        let checked = items.into_iter().map(|b| carried.check(b)).collect();
        self.handle_split(now, peer, split, checked, archive);
    }

    /// Handles a frame from `peer` split with [`SplitFrame::decode`], with the items it carried
    /// checked by [`Carried::check`], in order. [`Engine::handle_frame`] is exactly this with
    /// the checks done inline; the node may instead run them on other cores.
    pub fn handle_split(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        split: SplitFrame,
        checked: Vec<Checked>,
        archive: &dyn Archive,
    ) {
        match split.frame {
            Frame::Hello { descriptor } => match SignedDescriptor::verify(&descriptor, now) {
                Ok(d) if d.node == peer && self.claims_another_name(&d) => {
                    let reason = Rejection::NameClaimed {
                        node: d.node,
                        name: d.name,
                    };
                    self.reject(peer, reason);
                }
                Ok(d) if d.node == peer => {
                    self.learn_descriptor(peer, &descriptor);
                    self.events.push_back(Event::PeerDescriptor {
                        peer,
                        descriptor: Box::new(d),
                        bytes: descriptor,
                    });
                }
                Ok(_) => self.reject(peer, Rejection::InvalidDescriptor("describes another node")),
                Err(e) => self.reject(peer, e),
            },
            Frame::Push { .. } => {
                for item in checked {
                    self.accept_envelope(now, peer, item.into_envelope(), archive);
                }
            }
            Frame::Ack { ids } => self.events.push_back(Event::Acked { peer, ids }),
            Frame::SyncRequest(req) => self.answer(now, peer, req, archive),
            Frame::SyncResponse(resp) => self.take_response(now, peer, resp, checked, archive),
            Frame::Receipts { .. } => {
                for item in checked {
                    let (bytes, receipt) = item.into_receipt();
                    self.take_receipt(peer, bytes, receipt, archive);
                }
            }
            Frame::Directory { descriptors } => {
                for bytes in descriptors {
                    match SignedDescriptor::verify(&bytes, now) {
                        Ok(d) if self.claims_another_name(&d) => {
                            let reason = Rejection::NameClaimed {
                                node: d.node,
                                name: d.name,
                            };
                            self.events.push_back(Event::Refused { peer, reason });
                        }
                        Ok(d) if self.policy.revoked.contains_key(&d.node) => {
                            let reason = Rejection::Revoked(d.node);
                            self.events.push_back(Event::Refused { peer, reason });
                        }
                        Ok(d) => {
                            if self.learn_descriptor(d.node, &bytes) {
                                self.events.push_back(Event::Directory {
                                    node: d.node,
                                    descriptor: Box::new(d),
                                    bytes,
                                });
                            }
                        }
                        Err(e) => self.reject(peer, e),
                    }
                }
            }
            Frame::Control { group, events } => {
                if let Err(e) = self.apply_controls(now, Some(peer), group, &events) {
                    self.reject(peer, e);
                }
            }
            Frame::Roster { rosters } => self.events.push_back(Event::Rosters { peer, rosters }),
            Frame::Rotation { statements } => {
                self.events.push_back(Event::Rotations { peer, statements });
            }
        }
    }

    /// Whether `d` claims a roster name that belongs to another node.
    fn claims_another_name(&self, d: &Descriptor) -> bool {
        self.policy
            .names
            .get(&d.name)
            .is_some_and(|owner| *owner != d.node)
    }

    fn reject(&mut self, peer: NodeId, reason: Rejection) {
        self.events.push_back(Event::Rejected { peer, reason });
        let p = self.peers.entry(peer).or_default();
        p.strikes += 1;
        if p.strikes == self.config.max_strikes {
            self.events.push_back(Event::Disconnect { peer });
        }
    }

    /// Applies control events received from `from` (or made locally when `None`).
    fn apply_controls(
        &mut self,
        now: Timestamp,
        from: Option<NodeId>,
        group: GroupId,
        events: &[Vec<u8>],
    ) -> Result<(), Rejection> {
        let Some(first) = events.first() else {
            return Ok(());
        };
        let me = self.identity.node_id();
        let locals: Vec<LocalKeys<'_>> = std::iter::once(LocalKeys {
            node: me,
            exchange: &self.exchange,
        })
        .chain(self.previous.iter().rev().map(|(i, x)| LocalKeys {
            node: i.node_id(),
            exchange: x,
        }))
        .collect();
        let mut applied = Vec::new();
        if let Some(replica) = self.groups.get_mut(&group) {
            for event in events {
                match replica.state.apply_with(event, &locals) {
                    Ok(Applied::New { epoch, .. }) => {
                        replica.controls.push(event.clone());
                        applied.push((epoch, event.clone()));
                    }
                    Ok(_) => {}
                    Err(Rejection::OutOfOrder { .. }) if from.is_some() => {
                        if let Some(peer) = from {
                            self.request_sync(now, peer, group);
                        }
                        break;
                    }
                    Err(e) => {
                        self.note_applied(from, group, applied);
                        return Err(e);
                    }
                }
            }
        } else {
            // An unknown group: adopt it only from its first event, and only if this node is a
            // member of the resulting current epoch.
            let genesis = match GroupState::from_genesis_with(first, &locals) {
                Ok(state) => state,
                Err(Rejection::InvalidControl(_) | Rejection::OutOfOrder { .. })
                    if from.is_some() =>
                {
                    if let Some(peer) = from {
                        self.request_sync(now, peer, group);
                    }
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            if genesis.id() != group {
                return Err(Rejection::InvalidControl("event for another group"));
            }
            let mut state = genesis;
            applied.push((1, first.clone()));
            for event in &events[1..] {
                if let Applied::New { epoch, .. } = state.apply_with(event, &locals)? {
                    applied.push((epoch, event.clone()));
                }
            }
            if from.is_some() && state.role(&me).is_none() {
                if state.epochs_of(&me).next().is_some() {
                    // Added and removed again before this node adopted the group: the peer
                    // told it of its removal. Nothing to adopt, nobody to blame.
                    return Ok(());
                }
                return Err(Rejection::InvalidControl(
                    "a group this node is not a member of",
                ));
            }
            self.groups.insert(
                group,
                Replica {
                    state,
                    controls: applied.iter().map(|(_, e)| e.clone()).collect(),
                    held: BTreeMap::new(),
                },
            );
        }
        self.note_applied(from, group, applied);
        Ok(())
    }

    fn note_applied(&mut self, from: Option<NodeId>, group: GroupId, applied: Vec<(u64, Vec<u8>)>) {
        if applied.is_empty() {
            return;
        }
        let events: Vec<Vec<u8>> = applied.iter().map(|(_, e)| e.clone()).collect();
        for (seq, event) in applied {
            self.events
                .push_back(Event::ControlApplied { group, seq, event });
        }
        // Forward new events to connected members (the new member among them), except the
        // sender.
        let targets: Vec<NodeId> = match self.groups.get(&group) {
            Some(r) => self
                .peers
                .iter()
                .filter(|(id, p)| p.connected && Some(**id) != from && r.is_current_member(id))
                .map(|(id, _)| *id)
                .collect(),
            None => Vec::new(),
        };
        // A member removed by one of these events learns of its removal (and nothing after).
        let mut removed: Vec<(NodeId, usize)> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if let Ok((_, e)) = crate::group::decode_control(event) {
                if let Change::Remove { member } = e.change {
                    if Some(member) != from && self.is_connected(&member) {
                        removed.push((member, i + 1));
                    }
                }
            }
        }
        for (member, upto) in removed {
            let frame = Frame::Control {
                group,
                events: events[..upto].to_vec(),
            };
            self.send(member, &frame);
        }
        let frame = Frame::Control { group, events };
        for peer in targets {
            self.send(peer, &frame);
        }
    }

    fn accept_envelope(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        checked: CheckedEnvelope,
        archive: &dyn Archive,
    ) {
        let CheckedEnvelope {
            bytes: envelope,
            decoded,
            signature,
        } = checked;
        let (decoded_envelope, header, id) = match decoded {
            Ok(d) => d,
            Err(e) => return self.reject(peer, e),
        };
        if let Some(flight) = self.in_flight.get_mut(&id) {
            if !flight.from.contains(&peer) && flight.from.len() < 16 {
                flight.from.push(peer);
            }
            return;
        }
        let Some(replica) = self.groups.get(&header.group) else {
            // Possibly a race with the control event that adds this node: ask, do not punish.
            return self.request_sync(now, peer, header.group);
        };
        if header.epoch > replica.state.epoch() {
            // This node lags behind on control events, so it cannot judge the peer yet: the
            // peer may be a member added in an epoch not applied here. Blame nobody; ask the
            // peer if it is known to be a member (else the periodic sync catches up).
            if replica.state.role(&peer).is_some() {
                self.request_sync(now, peer, header.group);
            }
            return;
        }
        if replica.state.role_at(&peer, header.epoch).is_none()
            && replica.state.role(&peer).is_none()
        {
            return self.reject(
                peer,
                Rejection::PeerNotAMember {
                    group: header.group,
                    peer,
                },
            );
        }
        // The checks of `message::verify_and_open`, in its order; the signature was checked
        // when the envelope was (see `Carried::check`).
        if let Err(e) = signature {
            return self.reject(peer, e);
        }
        let verified = message::Verified {
            id,
            header,
            envelope: decoded_envelope,
        };
        if let Err(e) = message::check_author(&verified, &replica.state) {
            return self.reject(peer, e);
        }
        if self.revoked_at(&verified.header.author, verified.header.created_at) {
            // Signed after its author was revoked. The peer may have taken it before it learnt
            // of the revocation: refused, nobody blamed.
            let reason = Rejection::Revoked(verified.header.author);
            self.events.push_back(Event::Refused { peer, reason });
            return;
        }
        let held_here = replica
            .held
            .get(&(verified.header.author, verified.header.epoch))
            .is_some_and(|held| held.contains(verified.header.seq));
        let mut attachments = Vec::new();
        if !held_here {
            match message::open(&verified, &replica.state) {
                Ok(content) => {
                    if let Payload::Record(data) = content.payload {
                        attachments = data.attachments;
                    }
                }
                Err(e) => return self.reject(peer, e),
            }
        }
        let h = verified.header;
        if held_here {
            if archive.message_origin(&id).is_none() {
                // Another message holds this seq: the author used it twice. Never acknowledge
                // what is not stored.
                return self.reject(
                    peer,
                    Rejection::InvalidHeader("sequence number already used by another message"),
                );
            }
            // Already durable here (the first copy was opened then): acknowledge again, store
            // nothing.
            self.queue_ack(peer, id);
            return;
        }
        if self.in_flight.len() >= self.config.max_in_flight {
            return; // Dropped unacknowledged; the periodic sync brings it back.
        }
        let gap = replica
            .held
            .get(&(h.author, h.epoch))
            .map_or(h.seq > 1, |held| h.seq > held.max().saturating_add(1));
        if let Some(replica) = self.groups.get_mut(&h.group) {
            replica
                .held
                .entry((h.author, h.epoch))
                .or_default()
                .insert(h.seq);
        }
        let me = self.identity.node_id();
        let relays = self.config.relay
            || self
                .groups
                .get(&h.group)
                .is_some_and(|r| r.state.owner() == me);
        self.in_flight.insert(
            id,
            InFlight {
                group: h.group,
                author: h.author,
                epoch: h.epoch,
                seq: h.seq,
                created_at: h.created_at,
                from: vec![peer],
                envelope: relays.then(|| envelope.clone()),
            },
        );
        self.events.push_back(Event::MessageAccepted {
            from: peer,
            id,
            header: Box::new(h.clone()),
            envelope,
            attachments,
        });
        if gap {
            self.note_gap(now, peer, &h);
        }
    }

    fn answer(&mut self, now: Timestamp, peer: NodeId, req: SyncRequest, archive: &dyn Archive) {
        let Some(replica) = self.groups.get(&req.group) else {
            if req.control_seq > 0 {
                // The peer knows a group this node lacks: ask for it.
                self.request_sync(now, peer, req.group);
            }
            return;
        };
        if !replica.is_current_member(&peer) {
            // No longer a member: it gets the control events up to its removal, so that it
            // learns of it, and nothing else of this group. Never a member: nothing at all.
            if let Some(last) = replica.state.epochs_of(&peer).last() {
                let start = usize::try_from(req.control_seq).unwrap_or(usize::MAX);
                let end = usize::try_from(last + 1).unwrap_or(usize::MAX);
                if let Some(controls) = replica.controls.get(start..end).filter(|c| !c.is_empty()) {
                    let frame = Frame::SyncResponse(SyncResponse {
                        group: req.group,
                        controls: controls.to_vec(),
                        envelopes: Vec::new(),
                        more: false,
                    });
                    self.send(peer, &frame);
                }
            }
            return;
        }
        let behind = req.control_seq > replica.state.seq();
        let start = usize::try_from(req.control_seq).unwrap_or(usize::MAX);
        let controls: Vec<Vec<u8>> = replica
            .controls
            .get(start..)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let mut budget = self.config.response_budget;
        let mut envelopes = Vec::new();
        let mut more = false;
        for ((author, epoch), held) in &replica.held {
            if replica.state.role_at(&peer, *epoch).is_none() {
                continue;
            }
            let theirs = vector_high(&req.vector, author, *epoch);
            if held.max() <= theirs {
                continue;
            }
            if budget == 0 {
                more = true;
                break;
            }
            let mut batch = archive.envelopes(&req.group, author, *epoch, theirs, budget);
            // The archive stops *before* the budget is exceeded, so a spent budget is not the
            // only sign that more is held: compare the last seq sent with the highest held.
            let last_sent = batch
                .last()
                .and_then(|e| message::decode(e).ok())
                .map(|(_, h, _)| h.seq);
            if let Some(at) = self.policy.revoked.get(author) {
                // Never serve what a revoked author signed after its revocation (this node may
                // have taken it before it learnt of the revocation).
                batch.retain(|e| message::decode_header(e).is_ok_and(|h| h.created_at < *at));
            }
            for e in batch {
                budget = budget.saturating_sub(e.len());
                envelopes.push(e);
            }
            if budget == 0 || last_sent.is_some_and(|seq| seq < held.max()) {
                more = true;
            }
        }
        if behind {
            self.request_sync(now, peer, req.group);
        }
        if controls.is_empty() && envelopes.is_empty() {
            return;
        }
        let frame = Frame::SyncResponse(SyncResponse {
            group: req.group,
            controls,
            envelopes,
            more,
        });
        self.send(peer, &frame);
    }

    fn take_response(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        resp: SyncResponse,
        envelopes: Vec<Checked>,
        archive: &dyn Archive,
    ) {
        if !resp.controls.is_empty() {
            if let Err(e) = self.apply_controls(now, Some(peer), resp.group, &resp.controls) {
                return self.reject(peer, e);
            }
        }
        let before = self.in_flight.len();
        for item in envelopes {
            self.accept_envelope(now, peer, item.into_envelope(), archive);
        }
        // Ask for the rest only if this response brought something new. One that brought
        // nothing answered a request already answered (two requests crossed, say a gap's and
        // the periodic one); asking again on it would double every later response too.
        let fresh = !resp.controls.is_empty() || self.in_flight.len() > before;
        if resp.more && fresh {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.last_extra_request.remove(&resp.group);
            }
            self.request_sync(now, peer, resp.group);
        }
    }

    fn take_receipt(
        &mut self,
        peer: NodeId,
        bytes: Vec<u8>,
        receipt: Result<Receipt, Rejection>,
        archive: &dyn Archive,
    ) {
        let receipt = match receipt {
            Ok(r) => r,
            Err(e) => return self.reject(peer, e),
        };
        let digest = *blake3::hash(&bytes).as_bytes();
        if self.seen_receipts.contains(&digest) {
            return; // Taken before: a replay.
        }
        let Some(replica) = self.groups.get(&receipt.group) else {
            return; // Not a group held here: nothing to record or forward.
        };
        if replica.state.epochs_of(&receipt.receiver).next().is_none() {
            return self.reject(
                peer,
                Rejection::PeerNotAMember {
                    group: receipt.group,
                    peer: receipt.receiver,
                },
            );
        }
        if self.seen_receipts.len() >= MAX_SEEN_RECEIPTS {
            self.seen_receipts.clear();
        }
        self.seen_receipts.insert(digest);
        let mut held = Vec::with_capacity(receipt.messages.len());
        let mut authors: Vec<NodeId> = Vec::new();
        for id in &receipt.messages {
            let Some((group, author)) = archive.receipt_origin(id) else {
                continue; // Not held here (or not looked up).
            };
            if group != receipt.group {
                return self.reject(
                    peer,
                    Rejection::InvalidReceipt("it names a message of another group"),
                );
            }
            held.push(*id);
            if !authors.contains(&author) {
                authors.push(author);
            }
        }
        if held.is_empty() {
            return;
        }
        let me = self.identity.node_id();
        for author in authors {
            if author != me && author != peer && self.is_connected(&author) {
                self.queue_receipt(author, bytes.clone());
            }
        }
        self.events.push_back(Event::Receipt {
            group: receipt.group,
            receiver: receipt.receiver,
            messages: held,
            bytes,
        });
    }

    // ----- store results ------------------------------------------------------------------

    /// The store durably holds these messages: acknowledge them, send receipts towards their
    /// authors, and relay them where this node relays.
    pub fn handle_durable(&mut self, now: Timestamp, ids: &[MessageId]) {
        let me = self.identity.node_id();
        // One receipt per group and destination for the whole write: (group, to, ids).
        let mut receipts: Vec<(GroupId, NodeId, Vec<MessageId>)> = Vec::new();
        for id in ids {
            let Some(flight) = self.in_flight.remove(id) else {
                continue;
            };
            for peer in &flight.from {
                self.queue_ack(*peer, *id);
            }
            let to = if self.is_connected(&flight.author) {
                flight.author
            } else {
                flight.from[0]
            };
            match receipts
                .iter_mut()
                .find(|(g, t, _)| *g == flight.group && *t == to)
            {
                Some((_, _, ids)) => ids.push(*id),
                None => receipts.push((flight.group, to, vec![*id])),
            }
            let relays = self.config.relay
                || self
                    .groups
                    .get(&flight.group)
                    .is_some_and(|r| r.state.owner() == me);
            if let Some(envelope) = flight.envelope.as_deref() {
                if relays
                    && flight.from.contains(&flight.author)
                    && !self.revoked_at(&flight.author, flight.created_at)
                {
                    let mut skip = flight.from.clone();
                    skip.push(flight.author);
                    self.push_to_members(&flight.group, flight.epoch, &skip, envelope);
                }
            }
        }
        for (group, to, ids) in receipts {
            for chunk in ids.chunks(MAX_RECEIPT_MESSAGES) {
                let Ok(receipt) = Receipt::sign(&self.identity, group, chunk, now) else {
                    continue;
                };
                self.queue_receipt(to, receipt.clone());
                self.events.push_back(Event::Receipt {
                    group,
                    receiver: me,
                    messages: chunk.to_vec(),
                    bytes: receipt,
                });
            }
        }
    }

    /// The store could not write these messages: forget them so that they are fetched again.
    pub fn handle_store_failed(&mut self, ids: &[MessageId]) {
        for id in ids {
            if let Some(f) = self.in_flight.remove(id) {
                if let Some(r) = self.groups.get_mut(&f.group) {
                    if let Some(h) = r.held.get_mut(&(f.author, f.epoch)) {
                        h.remove(f.seq);
                    }
                }
            }
        }
    }

    // ----- output -------------------------------------------------------------------------

    fn push_to_members(&mut self, group: &GroupId, epoch: u64, skip: &[NodeId], envelope: &[u8]) {
        let Some(replica) = self.groups.get(group) else {
            return;
        };
        let me = self.identity.node_id();
        let targets: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(id, p)| {
                p.connected
                    && **id != me
                    && !skip.contains(id)
                    && replica.state.role_at(id, epoch).is_some()
                    && replica.is_current_member(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in targets {
            self.queue_push(peer, envelope.to_vec());
        }
    }

    /// Queues an envelope for the next `Push` frame to `peer`.
    fn queue_push(&mut self, peer: NodeId, envelope: Vec<u8>) {
        if !self.is_connected(&peer) {
            return;
        }
        let budget = self.config.response_budget;
        let full = self
            .outbox
            .get(&peer)
            .is_some_and(|o| !o.push.is_empty() && o.push_bytes + envelope.len() > budget);
        if full {
            self.flush_outbox(peer);
        }
        let o = self.outbox.entry(peer).or_default();
        o.push_bytes += envelope.len();
        o.push.push(envelope);
    }

    /// Queues an acknowledgement for the next `Ack` frame to `peer`.
    fn queue_ack(&mut self, peer: NodeId, id: MessageId) {
        if self.is_connected(&peer) {
            self.outbox.entry(peer).or_default().acks.push(id);
        }
    }

    /// Queues a receipt for the next `Receipts` frame to `peer`.
    fn queue_receipt(&mut self, peer: NodeId, receipt: Vec<u8>) {
        if self.is_connected(&peer) {
            self.outbox.entry(peer).or_default().receipts.push(receipt);
        }
    }

    /// Turns what waits for `peer` into frames: pushes, then acks, then receipts.
    fn flush_outbox(&mut self, peer: NodeId) {
        let Some(o) = self.outbox.remove(&peer) else {
            return;
        };
        if !o.push.is_empty() {
            self.send_now(peer, &Frame::Push { envelopes: o.push });
        }
        for chunk in o.acks.chunks(MAX_ACKS_PER_FRAME) {
            let ids = chunk.to_vec();
            self.send_now(peer, &Frame::Ack { ids });
        }
        for chunk in o.receipts.chunks(MAX_RECEIPTS_PER_FRAME) {
            let receipts = chunk.to_vec();
            self.send_now(peer, &Frame::Receipts { receipts });
        }
    }

    /// Sends `frame` after whatever waits in `peer`'s outbox, so that frames keep their order.
    fn send(&mut self, peer: NodeId, frame: &Frame) {
        if self.outbox.contains_key(&peer) {
            self.flush_outbox(peer);
        }
        self.send_now(peer, frame);
    }

    fn send_now(&mut self, peer: NodeId, frame: &Frame) {
        let max = self.config.max_queued_frames;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.connected || p.queued >= max {
            return;
        }
        let Ok(bytes) = frame.encode() else {
            return;
        };
        p.queued += 1;
        self.transmits.push_back(Transmit { peer, frame: bytes });
    }

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        while let Some(peer) = self.outbox.keys().next().copied() {
            self.flush_outbox(peer);
        }
        let t = self.transmits.pop_front()?;
        if let Some(p) = self.peers.get_mut(&t.peer) {
            p.queued = p.queued.saturating_sub(1);
        }
        Some(t)
    }

    /// The next event for the node.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// A frame decoded apart from the engine, with the signed items it carries (the envelopes of a
/// `Push` or `SyncResponse`, the receipts of a `Receipts` frame) taken out, so that the node can
/// check their signatures elsewhere — on other cores — with [`Carried::check`] and then hand
/// everything to [`Engine::handle_split`]. Checking needs no engine state.
#[derive(Debug)]
pub struct SplitFrame {
    frame: Frame,
}

impl SplitFrame {
    /// Decodes a frame (bounded, as [`Frame::decode`]); returns it and the signed items it
    /// carries, in order (empty for frames that carry none).
    pub fn decode(bytes: &[u8]) -> Result<(SplitFrame, Vec<Vec<u8>>), crate::DecodeError> {
        let mut frame = Frame::decode(bytes)?;
        let items = match &mut frame {
            Frame::Push { envelopes } => std::mem::take(envelopes),
            Frame::SyncResponse(resp) => std::mem::take(&mut resp.envelopes),
            Frame::Receipts { receipts } => std::mem::take(receipts),
            _ => Vec::new(),
        };
        Ok((SplitFrame { frame }, items))
    }

    /// What the frame's items are, and so how to check them.
    pub fn carried(&self) -> Carried {
        match self.frame {
            Frame::Receipts { .. } => Carried::Receipts,
            _ => Carried::Envelopes,
        }
    }
}

/// The kind of signed items a [`SplitFrame`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// Message envelopes.
    Envelopes,
    /// Delivery receipts.
    Receipts,
}

impl Carried {
    /// Runs the checks of one item that need no engine state — decoding and limits, then the
    /// signature (`verify_strict`) — on any thread. The engine runs the rest in
    /// [`Engine::handle_split`], in the order of [`message::verify_and_open`].
    pub fn check(self, bytes: Vec<u8>) -> Checked {
        match self {
            Carried::Envelopes => {
                Checked(CheckedItem::Envelope(Box::new(CheckedEnvelope::new(bytes))))
            }
            Carried::Receipts => {
                let receipt = Receipt::verify(&bytes);
                Checked(CheckedItem::Receipt { bytes, receipt })
            }
        }
    }
}

/// One item checked by [`Carried::check`]: the exact bytes with the outcome of the checks, so
/// an outcome never travels without the bytes it belongs to.
#[derive(Debug)]
pub struct Checked(CheckedItem);

#[derive(Debug)]
enum CheckedItem {
    Envelope(Box<CheckedEnvelope>),
    Receipt {
        bytes: Vec<u8>,
        receipt: Result<Receipt, Rejection>,
    },
}

impl Checked {
    /// As an envelope (checked again if it was checked as something else).
    fn into_envelope(self) -> CheckedEnvelope {
        match self.0 {
            CheckedItem::Envelope(e) => *e,
            CheckedItem::Receipt { bytes, .. } => CheckedEnvelope::new(bytes),
        }
    }

    /// As a receipt (checked again if it was checked as something else).
    fn into_receipt(self) -> (Vec<u8>, Result<Receipt, Rejection>) {
        match self.0 {
            CheckedItem::Receipt { bytes, receipt } => (bytes, receipt),
            CheckedItem::Envelope(e) => {
                let receipt = Receipt::verify(&e.bytes);
                (e.bytes, receipt)
            }
        }
    }
}

#[derive(Debug)]
struct CheckedEnvelope {
    bytes: Vec<u8>,
    decoded: Result<(message::Envelope, message::Header, MessageId), Rejection>,
    /// Meaningful only when `decoded` is `Ok`.
    signature: Result<(), Rejection>,
}

impl CheckedEnvelope {
    fn new(bytes: Vec<u8>) -> CheckedEnvelope {
        let decoded = message::decode(&bytes);
        let signature = match &decoded {
            Ok((envelope, header, _)) => message::check_signature(envelope, header),
            Err(_) => Ok(()),
        };
        CheckedEnvelope {
            bytes,
            decoded,
            signature,
        }
    }
}

/// What the local node posts, for [`Engine::seal`].
#[derive(Debug, Clone)]
pub struct LocalDraft<'a> {
    /// Creation time.
    pub now: Timestamp,
    /// Handling code.
    pub handling: message::Handling,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// The content.
    pub content: &'a message::Content,
}
