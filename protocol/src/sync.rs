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
//!   after [`Config::max_strikes`] within [`Config::strike_window_ms`] the engine asks the node
//!   to drop the connection. Strikes belong to the peer, not the connection: one that
//!   reconnects while it has that many is dropped again at once.
//! - A removed author's messages count only up to the cut-off the owner put in the removal
//!   ([`GroupState::beyond_cutoff`]): beyond it they are refused, never served or relayed, and
//!   not counted as held, including those taken before the removal was known.
//! - Times signed by others are checked against this node's clock: a message created, or a
//!   receipt stored, more than [`Config::max_clock_skew_ms`] in the future is refused, and so
//!   is a message that expires before it was created.
//! - Quotas: at most [`Config::max_groups_per_owner`] groups of one owner are adopted, at most
//!   [`Config::max_controls_per_group`] control events applied per group, and at most
//!   [`Config::max_author_bytes_per_day`] envelope bytes taken per author per day (by this
//!   node's clock). Over quota, input is refused with a strike if the peer is the one
//!   responsible (the owner, the author), and ignored otherwise.
//! - A version vector states, per author and epoch, the contiguous prefix held and the ranges
//!   held above gaps, so a responder sends only what is missing and one message lost
//!   everywhere never stops the catch-up of what follows it.
//! - One sync request per peer and group is outstanding at a time; the responder answers every
//!   request from a member (an empty answer if nothing is missing), with at most the bytes the
//!   request asks for. The requester sizes that per peer: it doubles while answers come back
//!   quickly, halves when one is slow or lost with its connection, so that on a slow or lossy
//!   link every answer arrives whole and what arrived stays.
//! - A node posts into a group only after it has heard, since it started, from a member of
//!   the group which of its own sequence numbers that member holds (its vector, or a complete
//!   answer); sequence numbers continue above anything a peer holds. A node restored from a
//!   backup (or that lost its newest records) thus never reuses a sequence number its peers
//!   know, and learns that its store is behind ([`Event::OwnMessagesElsewhere`]).
//! - A node that knows it was restored ([`Engine::set_restoring`]) also refuses to post into or
//!   change a group, including one it made or is alone in as far as it knows, until members
//!   have spoken and it holds the longest control chain they stated
//!   ([`Engine::restore_progress`]), so it never issues a second event under a number it
//!   used after the backup.
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
use crate::frame::{
    Frame, HeldRange, SyncRequest, SyncResponse, VectorEntry, MAX_FRAME_ACKS, MAX_FRAME_CONTROLS,
    MAX_FRAME_DESCRIPTORS, MAX_FRAME_ENVELOPES, MAX_FRAME_RECEIPTS, MAX_HELD_RANGES,
    MAX_VECTOR_ENTRIES,
};
use crate::group::{Applied, Change, Cutoff, GroupId, GroupState, LocalKeys, MAX_MEMBERS};
use crate::identity::{
    Descriptor, ExchangeSecret, IdentityKey, NodeId, NodeRef, SignedDescriptor, Timestamp,
};
use crate::message::{self, Draft, MessageId, Payload, Place, Sealed};
use crate::receipt::{Receipt, MAX_RECEIPT_MESSAGES};

/// Read access to the envelopes a node has stored, implemented by the node over its store.
pub trait Archive {
    /// Envelopes of `group` by `author` in `epoch` with a sequence number above `after` and at
    /// most `through`, in ascending order, stopping once their total size would exceed
    /// `max_bytes` (but returning at least one if any exists). An envelope that cannot be read
    /// (damaged) is left out and the rest returned: the requester gets it from another peer.
    fn envelopes(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        after: u64,
        through: u64,
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
    /// Most envelope bytes in one sync response (a request may ask for less), and most this
    /// node asks for.
    pub response_budget: usize,
    /// Envelope bytes this node first asks a peer for in one sync response; then doubled while
    /// answers come back within [`Config::response_target_ms`], halved when slower or lost,
    /// never below [`MIN_REQUEST_BYTES`] nor above [`Config::response_budget`].
    pub initial_request_bytes: usize,
    /// How long an answer to a sync request may take before this node asks for less next time.
    pub response_target_ms: u64,
    /// How long this node waits for the answer to a sync request before it asks again.
    pub response_timeout_ms: u64,
    /// The window over which strikes count towards [`Config::max_strikes`], in milliseconds.
    pub strike_window_ms: u64,
    /// Most groups of one owner this node adopts.
    pub max_groups_per_owner: usize,
    /// Most control events this node applies in one group.
    pub max_controls_per_group: usize,
    /// Most envelope bytes this node takes from one author per day (its own messages aside).
    pub max_author_bytes_per_day: u64,
    /// Forward messages received from their author to the other connected members at once.
    /// Group owners always do; other nodes rely on the periodic sync unless this is set.
    pub relay: bool,
    /// How far a time signed by another node (a descriptor's `valid_from`, a message's
    /// `created_at`, a receipt's `stored_at`) may lie ahead of this node's clock, in
    /// milliseconds, before it is refused as being in the future.
    pub max_clock_skew_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sync_interval_ms: 5_000,
            max_strikes: 16,
            max_queued_frames: 1024,
            max_in_flight: 16_384,
            response_budget: 1024 * 1024,
            initial_request_bytes: 64 * 1024,
            response_target_ms: 2_000,
            response_timeout_ms: 10_000,
            strike_window_ms: 3_600_000,
            max_groups_per_owner: 256,
            max_controls_per_group: 16_384,
            max_author_bytes_per_day: 4 * 1024 * 1024 * 1024,
            relay: false,
            max_clock_skew_ms: crate::identity::DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }
}

/// What an engine has done since it was made, for the node's metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Envelopes of other authors queued for peers: pushes this node relays, and envelopes in
    /// its sync answers. One envelope sent to two peers counts twice.
    pub relayed: u64,
}

/// How far a peer and this node are apart in one group, as the peer's last sync request
/// showed it (see [`Engine::lag`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lag {
    /// Messages this node holds and may serve that the peer lacked.
    pub peer_lacks: u64,
    /// Messages the peer held that this node lacked.
    pub lacks: u64,
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
        /// The message it answers, from its content (opened while checking it): the node
        /// indexes replies with it, so that a thread is found without opening its group.
        reply_to: Option<MessageId>,
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
    /// A peer holds messages of this node's own that its store lacks: the store was restored
    /// from a backup or lost its newest records. Sequence numbers continue above what the peer
    /// holds, and the messages come back with the next sync.
    OwnMessagesElsewhere {
        /// The group.
        group: GroupId,
        /// The epoch.
        epoch: u64,
        /// The peer.
        peer: NodeId,
        /// The highest of this node's seqs in that epoch the peer holds.
        held_by_peer: u64,
        /// The highest this node holds.
        held_here: u64,
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
    /// Identity rotations: each new key and the key it rotated from. A group's owner moves a
    /// rotated member to its new key with a `Rekey` event; until that event is applied here,
    /// the new key asking about a group its old key belongs to is expected, not a fault.
    pub rotated: BTreeMap<NodeId, NodeId>,
}

/// A frame to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// The peer to send it to.
    pub peer: NodeId,
    /// The encoded frame.
    pub frame: Vec<u8>,
}

/// Sequence numbers held for one author in one epoch: every seq up to `high`, and runs above
/// gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Held {
    high: u64,
    /// Runs `first → last` above `high + 1`: disjoint, none adjacent to another or to `high`.
    above: BTreeMap<u64, u64>,
}

impl Held {
    fn contains(&self, seq: u64) -> bool {
        seq != 0
            && (seq <= self.high
                || self
                    .above
                    .range(..=seq)
                    .next_back()
                    .is_some_and(|(_, last)| seq <= *last))
    }

    fn insert(&mut self, seq: u64) {
        if seq == 0 || self.contains(seq) {
            return;
        }
        let (mut first, mut last) = (seq, seq);
        if let Some((&f, &l)) = self.above.range(..seq).next_back() {
            if l.checked_add(1) == Some(seq) {
                first = f;
                self.above.remove(&f);
            }
        }
        if let Some(next) = seq.checked_add(1) {
            if let Some(l) = self.above.remove(&next) {
                last = l;
            }
        }
        if self.high.checked_add(1) == Some(first) {
            self.high = last;
        } else {
            self.above.insert(first, last);
        }
    }

    fn remove(&mut self, seq: u64) {
        if !self.contains(seq) {
            return;
        }
        if seq <= self.high {
            // The contiguous run now ends below `seq`; what was above it stays, above a gap.
            if seq < self.high {
                self.above.insert(seq + 1, self.high);
            }
            self.high = seq - 1;
            return;
        }
        if let Some((&first, &last)) = self.above.range(..=seq).next_back() {
            self.above.remove(&first);
            if first < seq {
                self.above.insert(first, seq - 1);
            }
            if seq < last {
                self.above.insert(seq + 1, last);
            }
        }
    }

    /// Whether every seq from `first` to `last` is held.
    fn covers(&self, first: u64, last: u64) -> bool {
        if first > last || last <= self.high {
            return true;
        }
        let from = first.max(self.high.saturating_add(1));
        self.above
            .range(..=from)
            .next_back()
            .is_some_and(|(_, end)| *end >= last)
    }

    fn max(&self) -> u64 {
        self.above
            .last_key_value()
            .map_or(self.high, |(_, last)| *last)
    }

    /// Forgets every seq above `last`.
    fn truncate(&mut self, last: u64) {
        self.high = self.high.min(last);
        self.above.retain(|first, _| *first <= last);
        if let Some(end) = self.above.values_mut().next_back() {
            *end = (*end).min(last);
        }
    }

    /// The held runs, ascending, the contiguous prefix first.
    fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        (self.high > 0)
            .then_some((1, self.high))
            .into_iter()
            .chain(self.above.iter().map(|(f, l)| (*f, *l)))
    }
}

/// The runs of `mine` that a requester holding `theirs_high` and the ranges `theirs` lacks,
/// ascending, none above `limit`.
fn missing_runs(
    mine: &Held,
    theirs_high: u64,
    theirs: &[HeldRange],
    limit: u64,
) -> Vec<(u64, u64)> {
    let mut theirs = theirs.iter().map(|r| (r.first, r.last)).peekable();
    let mut out = Vec::new();
    let Some(start) = theirs_high.checked_add(1) else {
        return out; // They hold every seq there is.
    };
    for (first, last) in mine.runs() {
        let last = last.min(limit);
        let mut from = first.max(start);
        while from <= last {
            // Their ranges that end before `from` say nothing about what is left.
            while theirs.next_if(|&(_, l)| l < from).is_some() {}
            match theirs.peek() {
                Some(&(f, l)) if f <= from => match l.checked_add(1) {
                    Some(next) => from = next,
                    None => break,
                },
                Some(&(f, _)) if f <= last => {
                    out.push((from, f - 1));
                    from = f;
                }
                _ => {
                    out.push((from, last));
                    break;
                }
            }
        }
    }
    out
}

/// How far `peer` and this node are apart in `replica`'s group, by `req` (see [`Lag`]).
/// Linear in the runs of both sides.
fn lag_between(replica: &Replica, peer: &NodeId, req: &SyncRequest) -> Lag {
    let mut lag = Lag::default();
    let mut mine: HashMap<(NodeRef, u64), &Held> = HashMap::new();
    for ((author, epoch), held) in &replica.held {
        mine.insert((NodeRef::from(*author), *epoch), held);
        if replica.state.role_at(peer, *epoch).is_none() {
            continue;
        }
        let (high, ranges) = req.held(author, *epoch);
        let limit = replica.state.cutoff(author, *epoch).unwrap_or(u64::MAX);
        for (first, last) in missing_runs(held, high, ranges, limit) {
            lag.peer_lacks = lag.peer_lacks.saturating_add(last - first + 1);
        }
    }
    // What the peer holds: per author and epoch, its contiguous prefix and the ranges above.
    let mut theirs: BTreeMap<(NodeRef, u64), Vec<(u64, u64)>> = BTreeMap::new();
    for e in &req.vector {
        if e.high > 0 {
            theirs
                .entry((e.author, e.epoch))
                .or_default()
                .push((1, e.high));
        }
    }
    for r in &req.ranges {
        if r.first >= 1 && r.first <= r.last {
            theirs
                .entry((r.author, r.epoch))
                .or_default()
                .push((r.first, r.last));
        }
    }
    for (key, mut runs) in theirs {
        runs.sort_unstable();
        let held: Vec<(u64, u64)> = mine
            .get(&key)
            .map(|h| h.runs().collect())
            .unwrap_or_default();
        lag.lacks = lag.lacks.saturating_add(count_outside(&runs, &held));
    }
    lag
}

/// Seqs in `runs` outside every run of `held` (both ascending; `held`'s runs disjoint).
/// Overlapping runs in `runs` (a peer's sloppy request) are counted as far as they extend
/// past the one before.
fn count_outside(runs: &[(u64, u64)], held: &[(u64, u64)]) -> u64 {
    let mut total = 0u64;
    let mut next = 0u64; // The first seq not yet counted.
    let mut j = 0;
    for &(first, last) in runs {
        let first = first.max(next);
        if first > last {
            continue;
        }
        next = last.saturating_add(1);
        while j < held.len() && held[j].1 < first {
            j += 1;
        }
        let mut covered = 0u64;
        let mut k = j;
        while k < held.len() && held[k].0 <= last {
            let (f, l) = held[k];
            covered = covered.saturating_add(l.min(last) - f.max(first) + 1);
            k += 1;
        }
        total = total.saturating_add((last - first + 1).saturating_sub(covered));
    }
    total
}

#[derive(Debug)]
struct Replica {
    state: GroupState,
    controls: Vec<Vec<u8>>,
    held: BTreeMap<(NodeId, u64), Held>,
    /// The members that told this node, since it started, which of its own seqs they hold
    /// (see [`Engine::seal`]), and when the first did; `None` for a group made here.
    reported: Option<(Timestamp, BTreeSet<NodeId>)>,
    /// Whether the group was made here (nobody can hold anything of it yet).
    made_here: bool,
    /// The longest control chain a member (or a node this one does not count as a member yet)
    /// stated in a sync request (see [`Engine::set_restoring`]).
    members_chain: u64,
}

impl Replica {
    fn new(state: GroupState, controls: Vec<Vec<u8>>) -> Replica {
        Replica {
            state,
            controls,
            held: BTreeMap::new(),
            reported: None,
            made_here: false,
            members_chain: 0,
        }
    }

    /// `member` told this node which of its own seqs it holds.
    fn note_report(&mut self, now: Timestamp, member: NodeId) {
        let (_, members) = self.reported.get_or_insert_with(|| (now, BTreeSet::new()));
        if members.len() < MAX_MEMBERS {
            members.insert(member);
        }
    }

    /// What this node holds: its vector (contiguous prefixes) and the ranges above gaps, each
    /// within its limit (the rest is left out: a responder then sends some of what is held).
    fn holdings(&self) -> (Vec<VectorEntry>, Vec<HeldRange>) {
        let mut vector = Vec::new();
        let mut ranges = Vec::new();
        for ((author, epoch), held) in &self.held {
            if held.high > 0 && vector.len() < MAX_VECTOR_ENTRIES {
                vector.push(VectorEntry {
                    author: author.into(),
                    epoch: *epoch,
                    high: held.high,
                });
            }
            for (first, last) in &held.above {
                if ranges.len() < MAX_HELD_RANGES {
                    ranges.push(HeldRange {
                        author: author.into(),
                        epoch: *epoch,
                        first: *first,
                        last: *last,
                    });
                }
            }
        }
        (vector, ranges)
    }

    fn vector(&self) -> Vec<VectorEntry> {
        self.holdings().0
    }

    fn is_current_member(&self, node: &NodeId) -> bool {
        self.state.role(node).is_some()
    }

    /// Whether `node` is a current member other than `me`.
    fn others_than(&self, me: &NodeId) -> bool {
        self.state.members().keys().any(|m| m != me)
    }
}

#[derive(Debug, Default)]
struct Peer {
    connected: bool,
    /// When each strike within the window was counted, oldest first (at most `max_strikes`).
    strikes: VecDeque<Timestamp>,
    next_sync: Timestamp,
    /// Sync requests sent and not yet answered, per group: when, and the bytes asked for.
    awaiting: HashMap<GroupId, (Timestamp, usize)>,
    /// Envelope bytes to ask this peer for in one answer (see [`Config::initial_request_bytes`]).
    request_bytes: usize,
    queued: usize,
    /// Last time a sync was requested from this peer per group outside the schedule.
    last_extra_request: HashMap<GroupId, Timestamp>,
    /// Gaps this peer's pushes left, per group and author's sequence space: the seqs that
    /// must all be held (first, last), and when to ask for what is missing if it still is not
    /// (see [`Engine::handle_timeout`]).
    gaps: HashMap<(GroupId, NodeId, u64), (u64, u64, Timestamp)>,
    /// How far apart this peer and this node were in each group at its last sync request.
    lag: HashMap<GroupId, Lag>,
}

/// How far a node restored from a backup is in learning its own state from its peers (see
/// [`Engine::restore_progress`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreProgress {
    /// Whether a member has told this node what it holds since it started.
    pub heard: bool,
    /// The groups in which this node may not post or change membership yet.
    pub pending: Vec<GroupId>,
}

/// Most gaps waiting per peer; a new gap beyond that is asked for at once.
const MAX_GAPS: usize = 4096;

/// Most unanswered sync requests per peer (one per group).
const MAX_AWAITING: usize = 4096;

/// The fewest envelope bytes a node asks for in one sync answer (a responder still sends at
/// least one envelope).
pub const MIN_REQUEST_BYTES: usize = 16 * 1024;

/// One day, in milliseconds: the period of [`Config::max_author_bytes_per_day`].
const DAY_MS: u64 = 86_400_000;

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
    /// Signed descriptors of other known nodes, with their `valid_from` (their order: see
    /// [`Descriptor::supersedes`]), shared with peers.
    directory: BTreeMap<NodeId, (Timestamp, Vec<u8>)>,
    /// BLAKE3 digests of receipts taken recently (see [`MAX_SEEN_RECEIPTS`]).
    seen_receipts: HashSet<[u8; 32]>,
    /// The latest `now` the node passed in.
    clock: Timestamp,
    /// Envelope bytes taken per author in the current day: the day, and the bytes.
    author_bytes: HashMap<NodeId, (u64, u64)>,
    /// The highest of this node's own seqs per group and epoch that a peer said it holds.
    own_floor: HashMap<(GroupId, u64), u64>,
    /// Keys this node had before it rotated, oldest first: epoch keys wrapped to them are still
    /// unwrapped, and groups still owned by one of them are moved to the current key.
    previous: Vec<(IdentityKey, ExchangeSecret)>,
    /// See [`Policy`].
    policy: Policy,
    /// See [`Counters`].
    counters: Counters,
    /// Set while this node, restored from a backup, learns its own state from its peers: when
    /// a member first told it what it holds (see [`Engine::set_restoring`]).
    restoring: Option<Option<Timestamp>>,
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
            clock: Timestamp::default(),
            author_bytes: HashMap::new(),
            own_floor: HashMap::new(),
            previous: Vec::new(),
            policy: Policy::default(),
            counters: Counters::default(),
            restoring: None,
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
        // What peers said they hold of this node's own messages was about the old key.
        self.own_floor.clear();
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
        self.groups.insert(id, Replica::new(state, controls));
        Ok(id)
    }

    /// Records that the store holds messages at these places (of groups restored before).
    /// Seqs beyond the cut-off of their author's removal are not counted (the store may still
    /// hold what it took before it learned of the removal; the node hides it).
    pub fn restore_held(&mut self, places: impl IntoIterator<Item = Place>) {
        for place in places {
            if let Some(replica) = self.groups.get_mut(&place.group) {
                if replica
                    .state
                    .beyond_cutoff(&place.author, place.epoch, place.seq)
                {
                    continue;
                }
                let held = replica.held.entry((place.author, place.epoch)).or_default();
                held.insert(place.seq);
            }
        }
    }

    /// The store lost the messages at these places (found damaged on disk): they are no
    /// longer held, so the next sync with a peer asks for them again, like any gap.
    pub fn handle_lost(&mut self, places: &[Place]) {
        for place in places {
            if let Some(held) = self
                .groups
                .get_mut(&place.group)
                .and_then(|r| r.held.get_mut(&(place.author, place.epoch)))
            {
                held.remove(place.seq);
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

    /// The signed descriptors of other nodes this node shares with its peers, one per node.
    pub fn directory(&self) -> impl Iterator<Item = &[u8]> {
        self.directory.values().map(|(_, bytes)| bytes.as_slice())
    }

    /// Whether `peer` is connected.
    pub fn is_connected(&self, peer: &NodeId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.connected)
    }

    /// Messages waiting for the store.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What this engine has done since it was made.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Per peer and group, how far apart the two were at the peer's last sync request in it
    /// (members ask every sync interval, and after each push that leaves a gap). Peers that
    /// never asked, and groups they never asked about, are not listed.
    pub fn lag(&self) -> impl Iterator<Item = (NodeId, GroupId, Lag)> + '_ {
        self.peers
            .iter()
            .flat_map(|(peer, p)| p.lag.iter().map(move |(group, lag)| (*peer, *group, *lag)))
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
    /// it to [`Engine::commit_local_control`]. A removal is made with
    /// [`Engine::propose_remove`], which records the cut-off.
    pub fn propose<R: rand_core::CryptoRng + rand_core::RngCore>(
        &self,
        group: &GroupId,
        change: Change,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Vec<u8>, UsageError> {
        if let Change::Remove { .. } = change {
            return Err(UsageError::Invalid {
                field: "change",
                reason: "a removal records the owner's cut-off: use propose_remove".into(),
            });
        }
        let replica = self
            .groups
            .get(group)
            .ok_or(UsageError::NotAMember(*group))?;
        if !self.restore_confirmed(replica, now) {
            return Err(UsageError::RestorePending(*group));
        }
        if replica.controls.len() >= self.config.max_controls_per_group {
            return Err(UsageError::Invalid {
                field: "change",
                reason: format!(
                    "the group has {} control events, the most this node keeps",
                    replica.controls.len()
                ),
            });
        }
        replica.state.propose(&self.identity, change, now, rng)
    }

    /// Makes the event that removes `member` from a group this node owns, with this node's
    /// cut-off: for every epoch in which `member` could post, the highest of its seqs held here
    /// (or being stored). Every member then keeps only those of its messages at or below that.
    /// Store the event durably, then pass it to [`Engine::commit_local_control`].
    pub fn propose_remove<R: rand_core::CryptoRng + rand_core::RngCore>(
        &self,
        group: &GroupId,
        member: &NodeId,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Vec<u8>, UsageError> {
        let change = self.removal(group, member)?;
        self.propose(group, change, now, rng)
    }

    /// The change that removes `member` from a group this node owns, with this node's cut-off
    /// (see [`Engine::propose_remove`]), for a caller that signs several changes in a row.
    pub fn removal(&self, group: &GroupId, member: &NodeId) -> Result<Change, UsageError> {
        let replica = self
            .groups
            .get(group)
            .ok_or(UsageError::NotAMember(*group))?;
        let cutoff = replica
            .state
            .epochs_of(member)
            .filter(|e| replica.state.may_post(member, *e))
            .filter_map(|epoch| {
                let seq = replica.held.get(&(*member, epoch)).map_or(0, Held::max);
                (seq > 0).then_some(Cutoff { epoch, seq })
            })
            .collect();
        Ok(Change::RemoveWithCutoff {
            member: *member,
            cutoff,
        })
    }

    /// How many more control events this node keeps for `group` (see
    /// [`Config::max_controls_per_group`]); zero for a group it does not hold.
    pub fn control_room(&self, group: &GroupId) -> usize {
        self.groups.get(group).map_or(0, |r| {
            self.config
                .max_controls_per_group
                .saturating_sub(r.controls.len())
        })
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
    /// number. Store the result durably, then pass it to [`Engine::commit_local_message`] — or,
    /// if the write failed, to [`Engine::handle_local_failed`], which frees its sequence number
    /// again. Seal the next message only once the store took this one (or failed it), so that
    /// a failed write never leaves a gap in this node's own sequence.
    ///
    /// Refused ([`UsageError::SequenceUnconfirmed`]) until a member of the group told this
    /// node, since it started, which of its own sequence numbers it holds (its sync request,
    /// or a complete answer to this node's), unless this node is the group's only member: a
    /// store restored from a backup would otherwise reuse numbers its peers hold, and they
    /// would drop the new messages. The next number lies above anything a peer said it holds.
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
        if replica.state.role(&me).is_some() && !self.restore_confirmed(replica, draft.now) {
            return Err(UsageError::RestorePending(*group));
        }
        if replica.state.role(&me).is_some() && !self.sequence_confirmed(replica, draft.now) {
            return Err(UsageError::SequenceUnconfirmed(*group));
        }
        if draft.expires_at.is_some_and(|at| at < draft.now) {
            return Err(UsageError::Invalid {
                field: "expires_at",
                reason: "a message cannot expire before it is created".into(),
            });
        }
        let epoch = replica.state.epoch();
        let held_max = replica.held.get(&(me, epoch)).map_or(0, Held::max);
        let floor = self.own_floor.get(&(*group, epoch)).copied().unwrap_or(0);
        let next = self
            .next_seq
            .get(&(*group, epoch))
            .copied()
            .unwrap_or(1)
            .max(held_max.saturating_add(1))
            .max(floor.saturating_add(1));
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

    /// Whether this node may number a new message in `replica`'s group (see [`Engine::seal`]):
    /// it made the group, or is its only member, or members told it which of its seqs they
    /// hold — every connected member, or at least one a sync interval ago (by then every
    /// connected member that knows it belongs to the group has sent its vector).
    fn sequence_confirmed(&self, replica: &Replica, now: Timestamp) -> bool {
        let me = self.identity.node_id();
        if replica.made_here || !replica.others_than(&me) {
            return true;
        }
        let Some((first, reported)) = &replica.reported else {
            return false;
        };
        if now >= first.plus_millis(self.config.sync_interval_ms) {
            return true;
        }
        replica
            .state
            .members()
            .keys()
            .filter(|m| **m != me && self.is_connected(m))
            .all(|m| reported.contains(m))
    }

    /// Puts the engine in (or out of) the state of a node restored from a backup, which must
    /// learn from its peers what it authored after the backup before it authors more: its own
    /// sequence numbers (peers' vectors) and the control events of groups it owns (peers' longer
    /// chains). While it is on, [`Engine::seal`] and [`Engine::propose`] refuse a group
    /// ([`UsageError::RestorePending`]) until [`Engine::restore_progress`] no longer lists it.
    pub fn set_restoring(&mut self, on: bool) {
        self.restoring = on.then_some(None);
    }

    /// While restoring (see [`Engine::set_restoring`]): whether a member has told this node
    /// what it holds yet, and the groups this node is a current member of that are not yet
    /// confirmed. `None` when not restoring.
    ///
    /// A group is confirmed once a sync interval has passed since the first member spoke (by
    /// then every connected peer sent its requests, so a group this node thinks it is alone in
    /// but was joined by others after the backup has been heard of), no member stated a longer
    /// control chain than this node holds (its own later events are being fetched), and, if it
    /// has other members, one of them said which of this node's seqs it holds. A group made
    /// since this start is confirmed.
    pub fn restore_progress(&self, now: Timestamp) -> Option<RestoreProgress> {
        let heard = (*self.restoring.as_ref()?).is_some();
        let me = self.identity.node_id();
        let pending = self
            .groups
            .iter()
            .filter(|(_, r)| r.is_current_member(&me) && !self.restore_confirmed(r, now))
            .map(|(g, _)| *g)
            .collect();
        Some(RestoreProgress { heard, pending })
    }

    /// See [`Engine::restore_progress`].
    fn restore_confirmed(&self, replica: &Replica, now: Timestamp) -> bool {
        let Some(heard) = self.restoring else {
            return true;
        };
        if replica.made_here {
            return true;
        }
        let Some(heard) = heard else {
            return false;
        };
        if now < heard.plus_millis(self.config.sync_interval_ms)
            || replica.members_chain > replica.state.seq()
        {
            return false;
        }
        !replica.others_than(&self.identity.node_id()) || replica.reported.is_some()
    }

    /// A member told this node what it holds: while restoring, the first such word starts the
    /// wait of [`Engine::restore_progress`].
    fn heard_while_restoring(&mut self, now: Timestamp) {
        if let Some(heard @ None) = &mut self.restoring {
            *heard = Some(now);
        }
    }

    /// The store could not write these messages this node sealed: their sequence numbers are
    /// free again, as long as none was sealed after them (see [`Engine::seal`]).
    pub fn handle_local_failed(&mut self, sealed: &[Sealed]) {
        let mut lowest: BTreeMap<(GroupId, u64), (u64, u64)> = BTreeMap::new();
        for s in sealed {
            let h = &s.header;
            let range = lowest.entry((h.group, h.epoch)).or_insert((h.seq, h.seq));
            range.0 = range.0.min(h.seq);
            range.1 = range.1.max(h.seq);
        }
        for (key, (first, last)) in lowest {
            if self.next_seq.get(&key) == Some(&(last + 1)) {
                self.next_seq.insert(key, first);
            }
        }
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

    /// A connection to `peer` is up: greet it and exchange vectors for shared groups. A peer
    /// that still has [`Config::max_strikes`] strikes within the window is dropped again at
    /// once ([`Event::Disconnect`]).
    pub fn handle_connected(&mut self, now: Timestamp, peer: NodeId) {
        self.clock = self.clock.max(now);
        let window = self.config.strike_window_ms;
        let initial = self.config.initial_request_bytes;
        let p = self.peers.entry(peer).or_default();
        p.connected = true;
        p.awaiting.clear();
        if p.request_bytes == 0 {
            p.request_bytes = initial;
        }
        while p
            .strikes
            .front()
            .is_some_and(|at| at.plus_millis(window) <= now)
        {
            p.strikes.pop_front();
        }
        if p.strikes.len() >= self.config.max_strikes as usize {
            self.events.push_back(Event::Disconnect { peer });
            return;
        }
        p.next_sync = now.plus_millis(self.config.sync_interval_ms);
        let hello = Frame::Hello {
            descriptor: self.descriptor.clone(),
        };
        self.send(peer, &hello);
        let known: Vec<Vec<u8>> = self
            .directory
            .iter()
            .filter(|(node, _)| **node != peer)
            .map(|(_, (_, d))| d.clone())
            .collect();
        for chunk in known.chunks(MAX_FRAME_DESCRIPTORS) {
            self.send(
                peer,
                &Frame::Directory {
                    descriptors: chunk.to_vec(),
                },
            );
        }
        self.sync_with(now, peer);
    }

    /// Adds a signed descriptor (from the store, at start-up) to the directory shared with
    /// peers, unless an invalid or expired one, or one older than the descriptor held for the
    /// same node (see [`Descriptor::supersedes`]).
    pub fn restore_descriptor(&mut self, now: Timestamp, bytes: Vec<u8>) {
        if let Ok(d) = SignedDescriptor::verify_within(&bytes, now, self.config.max_clock_skew_ms) {
            self.keep_descriptor(&d, &bytes);
        }
    }

    /// Keeps `d` (signed as `bytes`) in the directory if it is new and supersedes what is
    /// held for its node; returns whether it did.
    fn keep_descriptor(&mut self, d: &Descriptor, bytes: &[u8]) -> bool {
        if d.node == self.identity.node_id() {
            return false;
        }
        match self.directory.get(&d.node) {
            // Equal or older: the held one stays (see `Descriptor::supersedes`).
            Some((held_from, _)) if d.valid_from <= *held_from => return false,
            Some(_) => {}
            None if self.directory.len() >= MAX_DIRECTORY => return false,
            None => {}
        }
        self.directory
            .insert(d.node, (d.valid_from, bytes.to_vec()));
        true
    }

    /// Records a verified descriptor received from `from`; if it supersedes what was held,
    /// shares it with the other connected peers — never back to `from`, which has it.
    fn learn_descriptor(&mut self, from: NodeId, d: &Descriptor, bytes: &[u8]) -> bool {
        if !self.keep_descriptor(d, bytes) {
            return false;
        }
        let node = d.node;
        let targets: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(id, p)| p.connected && **id != node && **id != from)
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
        let min = MIN_REQUEST_BYTES;
        if let Some(p) = self.peers.get_mut(peer) {
            p.connected = false;
            p.queued = 0;
            // An answer was lost with the connection: ask for less next time, so that one
            // arrives whole before the link drops again.
            if !p.awaiting.is_empty() {
                p.request_bytes = (p.request_bytes / 2).max(min);
            }
            p.awaiting.clear();
        }
        self.transmits.retain(|t| t.peer != *peer);
        self.outbox.remove(peer);
    }

    /// The next time [`Engine::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.peers
            .values()
            .filter(|p| p.connected)
            .flat_map(|p| std::iter::once(p.next_sync).chain(p.gaps.values().map(|(_, _, at)| *at)))
            .min()
    }

    /// Runs the periodic sync with every peer that is due.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now);
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
            self.sync_with(now, peer);
        }
    }

    /// Whether this node is a current member of `replica` under its current key or under a
    /// key it rotated from: after an identity rotation, the owner's `Rekey` moving it to its
    /// new key is learnt by syncing as the new key, so the old key's membership must still
    /// count (a node that rotated is not a node that was removed).
    fn is_mine(&self, replica: &Replica) -> bool {
        replica.is_current_member(&self.identity.node_id())
            || self
                .previous
                .iter()
                .any(|(key, _)| replica.is_current_member(&key.node_id()))
    }

    /// Sends `peer` a sync request for every group of which both are current members, except
    /// those for which an earlier request is still unanswered (and not yet timed out).
    fn sync_with(&mut self, now: Timestamp, peer: NodeId) {
        let groups: Vec<GroupId> = self
            .groups
            .values()
            .filter(|r| r.is_current_member(&peer) && self.is_mine(r))
            .map(|r| r.state.id())
            .collect();
        for group in groups {
            self.send_request(now, peer, group);
        }
    }

    /// Asks for the gaps whose grace period is over and that are still open; forgets those
    /// that closed.
    fn ask_for_gaps(&mut self, now: Timestamp) {
        let mut ask = Vec::new();
        for (peer, p) in &mut self.peers {
            p.gaps.retain(|(group, author, epoch), (first, last, at)| {
                if *at > now {
                    return true;
                }
                let open = self
                    .groups
                    .get(group)
                    .and_then(|r| r.held.get(&(*author, *epoch)))
                    .is_some_and(|held| !held.covers(*first, *last));
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
    fn note_gap(&mut self, now: Timestamp, peer: NodeId, h: &message::Header, from: u64) {
        let grace = (self.config.sync_interval_ms / 10).max(1);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let key = (h.group, h.author, h.epoch);
        if p.gaps.len() >= MAX_GAPS && !p.gaps.contains_key(&key) {
            self.request_sync(now, peer, h.group);
            return;
        }
        let gap = p
            .gaps
            .entry(key)
            .or_insert((from, from, now.plus_millis(grace)));
        gap.0 = gap.0.min(from);
        gap.1 = gap.1.max(h.seq - 1);
    }

    /// Asks `peer` for a sync of `group` outside the schedule, at most once per tenth of the
    /// sync interval, and not while an earlier request is unanswered.
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
        self.send_request(now, peer, group);
    }

    /// Sends `peer` a sync request for `group` (one for a group unknown here names no holdings)
    /// unless one is unanswered and not yet timed out; a timed-out one makes the next ask for
    /// less. A node removed from a group (that knows it) asks nothing more about it.
    fn send_request(&mut self, now: Timestamp, peer: NodeId, group: GroupId) {
        if self.groups.get(&group).is_some_and(|r| !self.is_mine(r)) {
            return;
        }
        let timeout = self.config.response_timeout_ms;
        let max = self.config.response_budget.max(MIN_REQUEST_BYTES);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if let Some((sent, _)) = p.awaiting.get(&group) {
            if now < sent.plus_millis(timeout) {
                return;
            }
            p.request_bytes = (p.request_bytes / 2).max(MIN_REQUEST_BYTES);
        }
        if p.awaiting.len() >= MAX_AWAITING && !p.awaiting.contains_key(&group) {
            p.awaiting
                .retain(|_, (sent, _)| now < sent.plus_millis(timeout));
            if p.awaiting.len() >= MAX_AWAITING {
                return;
            }
        }
        let bytes = p.request_bytes.clamp(MIN_REQUEST_BYTES, max);
        p.awaiting.insert(group, (now, bytes));
        let frame = match self.groups.get(&group) {
            Some(r) => {
                let (vector, ranges) = r.holdings();
                SyncRequest {
                    group,
                    control_seq: r.state.seq(),
                    vector,
                    ranges,
                    max_bytes: bytes as u64,
                }
            }
            None => SyncRequest {
                group,
                control_seq: 0,
                vector: Vec::new(),
                ranges: Vec::new(),
                max_bytes: bytes as u64,
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
        self.clock = self.clock.max(now);
        match split.frame {
            Frame::Hello { descriptor } => match SignedDescriptor::verify_within(
                &descriptor,
                now,
                self.config.max_clock_skew_ms,
            ) {
                Ok(d) if d.node == peer && self.claims_another_name(&d) => {
                    let reason = Rejection::NameClaimed {
                        node: d.node,
                        name: d.name,
                    };
                    self.reject(peer, reason);
                }
                Ok(d) if d.node == peer => {
                    self.learn_descriptor(peer, &d, &descriptor);
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
                    self.take_receipt(now, peer, bytes, receipt, archive);
                }
            }
            Frame::Directory { descriptors } => {
                for bytes in descriptors {
                    match SignedDescriptor::verify_within(
                        &bytes,
                        now,
                        self.config.max_clock_skew_ms,
                    ) {
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
                            if self.learn_descriptor(peer, &d, &bytes) {
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

    /// Refuses input from `peer`: an event for the log and a strike. Strikes count within
    /// [`Config::strike_window_ms`], across connections; at [`Config::max_strikes`] the node
    /// is asked to drop the peer.
    fn reject(&mut self, peer: NodeId, reason: Rejection) {
        self.events.push_back(Event::Rejected { peer, reason });
        let now = self.clock;
        let window = self.config.strike_window_ms;
        let max = self.config.max_strikes as usize;
        let p = self.peers.entry(peer).or_default();
        while p
            .strikes
            .front()
            .is_some_and(|at| at.plus_millis(window) <= now)
        {
            p.strikes.pop_front();
        }
        p.strikes.push_back(now);
        while p.strikes.len() > max.max(1) {
            p.strikes.pop_front();
        }
        if p.strikes.len() >= max && p.connected {
            self.events.push_back(Event::Disconnect { peer });
        }
    }

    /// Refuses input over a quota or beyond a cut-off: with a strike if `peer` is `culprit`
    /// (the owner or author responsible), silently otherwise (an honest peer relaying it).
    fn refuse(&mut self, peer: NodeId, culprit: NodeId, reason: Rejection) {
        if peer == culprit {
            self.reject(peer, reason);
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
        let max_controls = self.config.max_controls_per_group;
        let mut applied = Vec::new();
        if let Some(replica) = self.groups.get_mut(&group) {
            let owner = replica.state.owner();
            for event in events {
                let seq = crate::group::decode_control(event).map_or(0, |(_, e)| e.seq);
                if seq > replica.state.seq() && replica.controls.len() >= max_controls {
                    self.note_applied(from, group, applied);
                    if let Some(peer) = from {
                        self.refuse(
                            peer,
                            owner,
                            Rejection::OverQuota("control events of one group"),
                        );
                    }
                    return Ok(());
                }
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
            let owner = genesis.owner();
            if let Some(peer) = from {
                let of_owner = self
                    .groups
                    .values()
                    .filter(|r| r.state.owner() == owner)
                    .count();
                if of_owner >= self.config.max_groups_per_owner {
                    self.refuse(peer, owner, Rejection::OverQuota("groups of one owner"));
                    return Ok(());
                }
                if events.len() > max_controls {
                    self.refuse(
                        peer,
                        owner,
                        Rejection::OverQuota("control events of one group"),
                    );
                    return Ok(());
                }
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
            let controls = applied.iter().map(|(_, e)| e.clone()).collect();
            let mut replica = Replica::new(state, controls);
            // A group made here holds nothing of anyone yet; one learned from a peer is
            // confirmed once members say what they hold (asked for at once).
            replica.made_here = from.is_none();
            self.groups.insert(group, replica);
            if let Some(peer) = from {
                self.request_sync(now, peer, group);
            }
        }
        self.apply_cutoffs(group, &applied);
        self.note_applied(from, group, applied);
        Ok(())
    }

    /// Forgets the seqs beyond the cut-off of every removal among `applied`: they are no longer
    /// counted as held, served or relayed (the node hides what its store holds of them).
    fn apply_cutoffs(&mut self, group: GroupId, applied: &[(u64, Vec<u8>)]) {
        let Some(replica) = self.groups.get_mut(&group) else {
            return;
        };
        for (_, event) in applied {
            let Ok((_, e)) = crate::group::decode_control(event) else {
                continue;
            };
            let Some(member) = e.change.removed() else {
                continue;
            };
            for ((author, epoch), held) in replica.held.range_mut((member, 0)..=(member, u64::MAX))
            {
                if let Some(last) = replica.state.cutoff(author, *epoch) {
                    held.truncate(last);
                }
            }
        }
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
        // A member removed by one of these events learns of its removal (and nothing after);
        // one added by them is also sent this node's vector, which tells it which of its own
        // seqs this node holds (so that it may post at once; see `Engine::seal`).
        let mut removed: Vec<(NodeId, usize)> = Vec::new();
        let mut added: Vec<NodeId> = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if let Ok((_, e)) = crate::group::decode_control(event) {
                if let Some(member) = e.change.removed() {
                    if Some(member) != from && self.is_connected(&member) {
                        removed.push((member, i + 1));
                    }
                }
                if let Change::Add { member, .. } = e.change {
                    added.push(member);
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
        for peer in &targets {
            self.send(*peer, &frame);
        }
        let now = self.clock;
        for member in added {
            if targets.contains(&member) {
                self.send_request(now, member, group);
            }
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
        match message::check_author(&verified, &replica.state) {
            Ok(()) => {}
            // Beyond a removed author's cut-off: the author itself is to blame; a member that
            // took it before it learned of the removal and passes it on is not.
            Err(e @ Rejection::BeyondCutoff { .. }) => {
                return self.refuse(peer, verified.header.author, e);
            }
            Err(e) => return self.reject(peer, e),
        }
        if let Err(e) = self.check_times(now, &verified.header) {
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
        let mut reply_to = None;
        if !held_here {
            match message::open(&verified, &replica.state) {
                Ok(content) => {
                    reply_to = content.reply_to;
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
        let gap_from = replica
            .held
            .get(&(h.author, h.epoch))
            .map_or(1, |held| held.max().saturating_add(1));
        if !self.charge_author(now, &h.author, envelope.len()) {
            // Refused, not stored: asked for again by the periodic sync, and taken the next day.
            return self.refuse(
                peer,
                h.author,
                Rejection::OverQuota("bytes of one author in a day"),
            );
        }
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
            reply_to,
        });
        if h.seq > gap_from {
            self.note_gap(now, peer, &h, gap_from);
        }
    }

    /// The times of a message against this node's clock: created at most the allowed clock
    /// skew in the future, and not expiring before it was created.
    fn check_times(&self, now: Timestamp, h: &message::Header) -> Result<(), Rejection> {
        let bad = |field, at: Timestamp, reason| Rejection::BadTime {
            field,
            at_ms: at.0,
            now_ms: now.0,
            reason,
        };
        if h.created_at > now.plus_millis(self.config.max_clock_skew_ms) {
            return Err(bad("created_at", h.created_at, "in the future"));
        }
        if let Some(expires) = h.expires_at {
            if expires < h.created_at {
                return Err(bad("expires_at", expires, "before created_at"));
            }
        }
        Ok(())
    }

    /// Counts `bytes` of `author` against today's quota; whether they fit. This node's own
    /// messages never count.
    fn charge_author(&mut self, now: Timestamp, author: &NodeId, bytes: usize) -> bool {
        if *author == self.identity.node_id() {
            return true;
        }
        let day = now.0 / DAY_MS;
        let max = self.config.max_author_bytes_per_day;
        let (at, used) = self.author_bytes.entry(*author).or_insert((day, 0));
        if *at != day {
            *at = day;
            *used = 0;
        }
        let after = used.saturating_add(bytes as u64);
        if after > max {
            return false;
        }
        *used = after;
        true
    }

    fn answer(&mut self, now: Timestamp, peer: NodeId, req: SyncRequest, archive: &dyn Archive) {
        let Some(replica) = self.groups.get(&req.group) else {
            if req.control_seq > 0 {
                // The peer knows a group this node lacks: ask for it.
                self.request_sync(now, peer, req.group);
            } else {
                // Neither node holds the group: nothing this node sent can have led to this.
                self.reject(
                    peer,
                    Rejection::Irrelevant("a sync request for a group neither node holds"),
                );
            }
            return;
        };
        if !replica.is_current_member(&peer) {
            return self.answer_non_member(now, peer, &req);
        }
        self.learn_own_floor(peer, &req);
        let Some(replica) = self.groups.get(&req.group) else {
            return;
        };
        let lag = lag_between(replica, &peer, &req);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.lag.insert(req.group, lag);
        }
        let me = self.identity.node_id();
        let Some(replica) = self.groups.get(&req.group) else {
            return;
        };
        let behind = req.control_seq > replica.state.seq();
        let mut budget = match usize::try_from(req.max_bytes) {
            Ok(0) | Err(_) => self.config.response_budget,
            Ok(asked) => asked.min(self.config.response_budget),
        };
        let mut more = false;
        // Control events first (within the budget, at least one): a member must apply them
        // before it can take messages of new epochs.
        let start = usize::try_from(req.control_seq).unwrap_or(usize::MAX);
        let mut controls = Vec::new();
        for event in replica.controls.get(start..).unwrap_or_default() {
            if !controls.is_empty()
                && (event.len() > budget || controls.len() == MAX_FRAME_CONTROLS)
            {
                more = true;
                break;
            }
            budget = budget.saturating_sub(event.len());
            controls.push(event.clone());
        }
        let mut envelopes: Vec<Vec<u8>> = Vec::new();
        'authors: for ((author, epoch), held) in &replica.held {
            if more {
                break;
            }
            if replica.state.role_at(&peer, *epoch).is_none() {
                continue;
            }
            let (high, ranges) = req.held(author, *epoch);
            let limit = replica.state.cutoff(author, *epoch).unwrap_or(u64::MAX);
            for (first, last) in missing_runs(held, high, ranges, limit) {
                if envelopes.len() >= MAX_FRAME_ENVELOPES
                    || (budget == 0 && !(envelopes.is_empty() && controls.is_empty()))
                {
                    more = true;
                    break 'authors;
                }
                let mut batch =
                    archive.envelopes(&req.group, author, *epoch, first - 1, last, budget);
                let wanted = last - first + 1;
                if (batch.len() as u64) < wanted {
                    // The budget ran out, or the archive could not read some (damaged): the
                    // requester gets those elsewhere, or asks again.
                    more = true;
                }
                if let Some(at) = self.policy.revoked.get(author) {
                    // Never serve what a revoked author signed after its revocation (this node
                    // may have taken it before it learnt of the revocation).
                    batch.retain(|e| message::decode_header(e).is_ok_and(|h| h.created_at < *at));
                }
                for e in batch {
                    let over = e.len() > budget || envelopes.len() >= MAX_FRAME_ENVELOPES;
                    if over && !(envelopes.is_empty() && controls.is_empty()) {
                        more = true;
                        break 'authors;
                    }
                    budget = budget.saturating_sub(e.len());
                    envelopes.push(e);
                    if *author != me {
                        self.counters.relayed += 1;
                    }
                }
            }
        }
        if behind {
            self.request_sync(now, peer, req.group);
        }
        // Answered even when nothing is missing: the requester waits for an answer before it
        // asks again (see `Engine::send_request`).
        let frame = Frame::SyncResponse(SyncResponse {
            group: req.group,
            controls,
            envelopes,
            more,
        });
        self.send(peer, &frame);
    }

    /// A sync request from a node that is not a member of the group's current epoch here. One
    /// that was removed gets the control events up to its removal, so that it learns of it, and
    /// nothing else; one this node may lag behind on (its chain is longer) is asked back; any
    /// other request concerns the peer in no way.
    /// Whether `peer` is the newest key of a current member of `replica`, by the identity
    /// rotations of the policy (followed back a bounded number of steps).
    fn rotated_from_member(&self, replica: &Replica, peer: NodeId) -> bool {
        let mut key = peer;
        for _ in 0..crate::roster::MAX_ROTATION_CHAIN {
            match self.policy.rotated.get(&key) {
                Some(old) if replica.is_current_member(old) => return true,
                Some(old) => key = *old,
                None => return false,
            }
        }
        false
    }

    fn answer_non_member(&mut self, now: Timestamp, peer: NodeId, req: &SyncRequest) {
        let Some(replica) = self.groups.get(&req.group) else {
            return;
        };
        let seq = replica.state.seq();
        // `last` is the last epoch the peer was a member of; event `last + 1` removed it.
        match replica.state.epochs_of(&peer).last() {
            Some(last) if req.control_seq <= last => {
                let start = usize::try_from(req.control_seq).unwrap_or(usize::MAX);
                let end = usize::try_from(last.saturating_add(1)).unwrap_or(usize::MAX);
                let controls = replica
                    .controls
                    .get(start..end)
                    .unwrap_or_default()
                    .iter()
                    .take(MAX_FRAME_CONTROLS)
                    .cloned()
                    .collect();
                let frame = Frame::SyncResponse(SyncResponse {
                    group: req.group,
                    controls,
                    envelopes: Vec::new(),
                    more: false,
                });
                self.send(peer, &frame);
            }
            // Added again in an epoch this node has not applied yet, perhaps: ask.
            _ if req.control_seq > seq => {
                if let Some(r) = self.groups.get_mut(&req.group) {
                    r.members_chain = r.members_chain.max(req.control_seq);
                }
                self.request_sync(now, peer, req.group);
            }
            // The new key of a member whose move (`Rekey`) is not applied here yet: the owner
            // pushes the event to it once it is.
            None if self.rotated_from_member(replica, peer) => {}
            Some(_) => self.reject(
                peer,
                Rejection::Irrelevant("a sync request from a removed member that knows it"),
            ),
            None => self.reject(
                peer,
                Rejection::Irrelevant("a sync request for a group the peer is not a member of"),
            ),
        }
    }

    /// A member's sync request states which of this node's own messages it holds: sequence
    /// numbers continue above them (see [`Engine::seal`]), and a peer holding more than this
    /// node's store is reported ([`Event::OwnMessagesElsewhere`]).
    fn learn_own_floor(&mut self, peer: NodeId, req: &SyncRequest) {
        let me = self.identity.node_id();
        let Some(replica) = self.groups.get_mut(&req.group) else {
            return;
        };
        replica.note_report(self.clock, peer);
        replica.members_chain = replica.members_chain.max(req.control_seq);
        let clock = self.clock;
        self.heard_while_restoring(clock);
        let Some(replica) = self.groups.get_mut(&req.group) else {
            return;
        };
        let mine = NodeRef::from(&me);
        let mut highest: BTreeMap<u64, u64> = BTreeMap::new();
        let entries = req.vector.partition_point(|e| e.author < mine);
        for e in req.vector[entries..]
            .iter()
            .take_while(|e| e.author == mine)
        {
            highest.insert(e.epoch, e.high);
        }
        let ranges = req.ranges.partition_point(|r| r.author < mine);
        for r in req.ranges[ranges..].iter().take_while(|r| r.author == mine) {
            let h = highest.entry(r.epoch).or_insert(0);
            *h = (*h).max(r.last);
        }
        for (epoch, theirs) in highest {
            let here = replica.held.get(&(me, epoch)).map_or(0, Held::max);
            let floor = self.own_floor.entry((req.group, epoch)).or_insert(0);
            if theirs > here && theirs > *floor {
                self.events.push_back(Event::OwnMessagesElsewhere {
                    group: req.group,
                    epoch,
                    peer,
                    held_by_peer: theirs,
                    held_here: here,
                });
            }
            *floor = (*floor).max(theirs);
        }
    }

    fn take_response(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        resp: SyncResponse,
        envelopes: Vec<Checked>,
        archive: &dyn Archive,
    ) {
        self.note_answered(now, peer, &resp);
        if !resp.controls.is_empty() {
            if let Err(e) = self.apply_controls(now, Some(peer), resp.group, &resp.controls) {
                return self.reject(peer, e);
            }
        }
        let before = self.in_flight.len();
        for item in envelopes {
            self.accept_envelope(now, peer, item.into_envelope(), archive);
        }
        if !resp.more {
            // A complete answer from a member: this node now holds (or is storing) all that
            // member holds of its own messages.
            if let Some(replica) = self.groups.get_mut(&resp.group) {
                if replica.is_current_member(&peer) {
                    replica.note_report(now, peer);
                    self.heard_while_restoring(now);
                }
            }
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

    /// An answer from `peer` arrived: the request for its group is no longer outstanding, and
    /// the next asks for twice as much if this one was full and quick, half if it was slow.
    fn note_answered(&mut self, now: Timestamp, peer: NodeId, resp: &SyncResponse) {
        let target = self.config.response_target_ms;
        let max = self.config.response_budget.max(MIN_REQUEST_BYTES);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let Some((sent, asked)) = p.awaiting.remove(&resp.group) else {
            return;
        };
        let took = now.0.saturating_sub(sent.0);
        if took > target {
            p.request_bytes = (asked / 2).max(MIN_REQUEST_BYTES);
        } else if resp.more {
            p.request_bytes = asked.saturating_mul(2).min(max);
        }
    }

    fn take_receipt(
        &mut self,
        now: Timestamp,
        peer: NodeId,
        bytes: Vec<u8>,
        receipt: Result<Receipt, Rejection>,
        archive: &dyn Archive,
    ) {
        let receipt = match receipt {
            Ok(r) => r,
            Err(e) => return self.reject(peer, e),
        };
        if receipt.stored_at > now.plus_millis(self.config.max_clock_skew_ms) {
            return self.reject(
                peer,
                Rejection::BadTime {
                    field: "stored_at",
                    at_ms: receipt.stored_at.0,
                    now_ms: now.0,
                    reason: "in the future",
                },
            );
        }
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
            let counts = self.groups.get(&flight.group).is_some_and(|r| {
                !r.state
                    .beyond_cutoff(&flight.author, flight.epoch, flight.seq)
            });
            if let Some(envelope) = flight.envelope.as_deref() {
                if relays
                    && counts
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
        let relayed = !skip.contains(&me);
        for peer in targets {
            if relayed {
                self.counters.relayed += 1;
            }
            self.queue_push(peer, envelope.to_vec());
        }
    }

    /// Queues an envelope for the next `Push` frame to `peer`.
    fn queue_push(&mut self, peer: NodeId, envelope: Vec<u8>) {
        if !self.is_connected(&peer) {
            return;
        }
        let budget = self.config.response_budget;
        let full = self.outbox.get(&peer).is_some_and(|o| {
            !o.push.is_empty()
                && (o.push_bytes + envelope.len() > budget || o.push.len() >= MAX_FRAME_ENVELOPES)
        });
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
        for chunk in o.acks.chunks(MAX_FRAME_ACKS) {
            let ids = chunk.to_vec();
            self.send_now(peer, &Frame::Ack { ids });
        }
        for chunk in o.receipts.chunks(MAX_FRAME_RECEIPTS) {
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

#[cfg(test)]
mod lag_tests {
    use super::count_outside;

    #[test]
    fn seqs_outside_held_runs_are_counted_once() {
        // Held: 1..=5 and 8..=9.
        let held = [(1, 5), (8, 9)];
        assert_eq!(count_outside(&[(1, 5)], &held), 0);
        assert_eq!(count_outside(&[(1, 10)], &held), 3); // 6, 7, 10
        assert_eq!(count_outside(&[(1, 3), (6, 12)], &held), 5); // 6, 7, 10, 11, 12
        assert_eq!(count_outside(&[(4, 9)], &[]), 6);
        // Overlapping runs (a sloppy request) count each seq once.
        assert_eq!(count_outside(&[(1, 10), (5, 12)], &held), 5);
        assert_eq!(count_outside(&[(u64::MAX - 1, u64::MAX)], &held), 2);
    }
}
