//! The frames two nodes exchange over a connection.
//!
//! Each frame is one encoded [`Frame`] (version byte first), carried length-prefixed by the
//! transport. Envelopes, control events, receipts and descriptors travel inside frames as the
//! exact bytes their signers produced.

use serde::{Deserialize, Serialize};

use crate::codec::{self, MAX_FRAME_LEN};
use crate::error::{DecodeError, UsageError};
use crate::group::GroupId;
use crate::identity::{NodeId, NodeRef};
use crate::message::MessageId;

/// Most entries in a sync request's vector (48 bytes each).
pub const MAX_VECTOR_ENTRIES: usize = 65_536;
/// Most held ranges in a sync request (56 bytes each).
pub const MAX_HELD_RANGES: usize = 8_192;
/// Most envelopes in a `Push` or `SyncResponse` frame.
pub const MAX_FRAME_ENVELOPES: usize = 16_384;
/// Most control events in a `Control` or `SyncResponse` frame.
pub const MAX_FRAME_CONTROLS: usize = 4_096;
/// Most message ids in an `Ack` frame.
pub const MAX_FRAME_ACKS: usize = 4_096;
/// Most receipts in a `Receipts` frame.
pub const MAX_FRAME_RECEIPTS: usize = 64;
/// Most descriptors in a `Directory` frame.
pub const MAX_FRAME_DESCRIPTORS: usize = 256;
/// Most rosters in a `Roster` frame (one per authority a node holds a roster of).
pub const MAX_FRAME_ROSTERS: usize = 64;
/// Most rotation statements in a `Rotation` frame.
pub const MAX_FRAME_ROTATIONS: usize = crate::roster::MAX_ROTATIONS;

/// One entry of a version vector: the highest contiguous sequence number held for an author
/// in one epoch of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorEntry {
    /// The author (compared only, never verified with: see [`NodeRef`]).
    pub author: NodeRef,
    /// The epoch.
    pub epoch: u64,
    /// Every seq from 1 to `high` is held.
    pub high: u64,
}

/// Sequence numbers an author's messages `first..=last` in one epoch that the requester holds
/// beyond its vector's contiguous prefix (after a gap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldRange {
    /// The author (compared only).
    pub author: NodeRef,
    /// The epoch.
    pub epoch: u64,
    /// The first seq of the range (at least 1).
    pub first: u64,
    /// The last seq of the range (at least `first`).
    pub last: u64,
}

/// "This is what I hold of `group`; send me what I lack."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The group.
    pub group: GroupId,
    /// The last control event applied (0: the group is unknown to the sender).
    pub control_seq: u64,
    /// What the sender holds from seq 1 on, strictly ascending by (author, epoch); absent
    /// entries mean 0.
    pub vector: Vec<VectorEntry>,
    /// What the sender holds above a gap, strictly ascending by (author, epoch, first), the
    /// ranges of one (author, epoch) disjoint and above its vector entry. A gap nobody can fill
    /// (a message lost everywhere) must not stop what follows it.
    pub ranges: Vec<HeldRange>,
    /// How many envelope bytes the sender wants in the answer at most (0: as the responder
    /// sees fit). A node on a slow or lossy link asks for less, so that each answer arrives
    /// whole before the link drops, and what arrived is kept.
    pub max_bytes: u64,
}

impl SyncRequest {
    /// Checks the limits and orders a decoded request must meet.
    fn check(&self) -> Result<(), DecodeError> {
        let invalid = |reason| DecodeError::InvalidField {
            field: "sync request",
            reason,
        };
        if self.vector.len() > MAX_VECTOR_ENTRIES {
            return Err(invalid("too many vector entries"));
        }
        if self.ranges.len() > MAX_HELD_RANGES {
            return Err(invalid("too many held ranges"));
        }
        if self
            .vector
            .windows(2)
            .any(|w| (w[0].author, w[0].epoch) >= (w[1].author, w[1].epoch))
        {
            return Err(invalid("vector entries not strictly ascending"));
        }
        if self.ranges.iter().any(|r| r.first == 0 || r.last < r.first) {
            return Err(invalid("a held range is empty or starts at 0"));
        }
        let overlapping = self.ranges.windows(2).any(|w| {
            let (a, b) = (&w[0], &w[1]);
            (a.author, a.epoch, a.first) >= (b.author, b.epoch, b.first)
                || ((a.author, a.epoch) == (b.author, b.epoch) && a.last >= b.first)
        });
        if overlapping {
            return Err(invalid("held ranges not strictly ascending and disjoint"));
        }
        Ok(())
    }

    /// What the sender holds of `author` in `epoch`: its contiguous prefix and the ranges it
    /// holds above it, ascending.
    pub fn held(&self, author: &NodeId, epoch: u64) -> (u64, &[HeldRange]) {
        let key = (NodeRef::from(author), epoch);
        let high = self
            .vector
            .binary_search_by(|e| (e.author, e.epoch).cmp(&key))
            .map_or(0, |i| self.vector[i].high);
        let start = self.ranges.partition_point(|r| (r.author, r.epoch) < key);
        let end = self.ranges.partition_point(|r| (r.author, r.epoch) <= key);
        (high, &self.ranges[start..end])
    }
}

/// An answer to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The group.
    pub group: GroupId,
    /// Control events after the requester's `control_seq`, in order.
    #[serde(with = "crate::codec::bytes::list")]
    pub controls: Vec<Vec<u8>>,
    /// Envelopes the requester lacks.
    #[serde(with = "crate::codec::bytes::list")]
    pub envelopes: Vec<Vec<u8>>,
    /// The responder left out something it holds that the requester lacks by its request
    /// (WIRE.md §8). The requester asks again at once only if this answer brought something
    /// new; asking again on every `more` doubles every later answer when two requests cross.
    pub more: bool,
}

/// A frame. Variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame on a connection: the sender's signed descriptor.
    Hello {
        /// An encoded [`crate::identity::SignedDescriptor`].
        #[serde(with = "crate::codec::bytes")]
        descriptor: Vec<u8>,
    },
    /// New envelopes.
    Push {
        /// Encoded envelopes.
        #[serde(with = "crate::codec::bytes::list")]
        envelopes: Vec<Vec<u8>>,
    },
    /// These messages are durably stored by the sender of this frame.
    Ack {
        /// Their ids.
        ids: Vec<MessageId>,
    },
    /// A version vector for one group.
    SyncRequest(SyncRequest),
    /// What the requester lacked.
    SyncResponse(SyncResponse),
    /// Signed delivery receipts.
    Receipts {
        /// Encoded receipts.
        #[serde(with = "crate::codec::bytes::list")]
        receipts: Vec<Vec<u8>>,
    },
    /// New control events of a group, in order.
    Control {
        /// The group.
        group: GroupId,
        /// Encoded signed control events.
        #[serde(with = "crate::codec::bytes::list")]
        events: Vec<Vec<u8>>,
    },
    /// Signed descriptors of other nodes the sender knows, so that a group owner can admit a
    /// node it reaches only through others.
    Directory {
        /// Encoded [`crate::identity::SignedDescriptor`]s.
        #[serde(with = "crate::codec::bytes::list")]
        descriptors: Vec<Vec<u8>>,
    },
    /// Federation rosters the sender holds (WIRE.md §12), so that they travel through the
    /// federation.
    Roster {
        /// Encoded [`crate::roster::SignedRoster`]s.
        #[serde(with = "crate::codec::bytes::list")]
        rosters: Vec<Vec<u8>>,
    },
    /// Key rotation statements the sender holds (WIRE.md §12).
    Rotation {
        /// Encoded [`crate::roster::SignedRotation`]s.
        #[serde(with = "crate::codec::bytes::list")]
        statements: Vec<Vec<u8>>,
    },
}

impl Frame {
    /// Encodes the frame.
    pub fn encode(&self) -> Result<Vec<u8>, UsageError> {
        let bytes = codec::encode(self)?;
        if bytes.len() > MAX_FRAME_LEN {
            return Err(UsageError::Encode(format!(
                "frame of {} bytes exceeds {MAX_FRAME_LEN}",
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Decodes a frame, enforcing [`MAX_FRAME_LEN`], the most items of each kind a frame may
    /// carry (`MAX_FRAME_*`, [`MAX_VECTOR_ENTRIES`], [`MAX_HELD_RANGES`]) and the order of a
    /// sync request's vector and ranges.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        let frame: Frame = codec::decode(bytes, MAX_FRAME_LEN)?;
        frame.check()?;
        Ok(frame)
    }

    fn check(&self) -> Result<(), DecodeError> {
        let (count, max, field) = match self {
            Frame::Hello { .. } => return Ok(()),
            Frame::Push { envelopes } => (envelopes.len(), MAX_FRAME_ENVELOPES, "push"),
            Frame::Ack { ids } => (ids.len(), MAX_FRAME_ACKS, "ack"),
            Frame::SyncRequest(req) => return req.check(),
            Frame::SyncResponse(resp) => {
                if resp.controls.len() > MAX_FRAME_CONTROLS {
                    return Err(DecodeError::InvalidField {
                        field: "sync response",
                        reason: "too many control events",
                    });
                }
                (resp.envelopes.len(), MAX_FRAME_ENVELOPES, "sync response")
            }
            Frame::Receipts { receipts } => (receipts.len(), MAX_FRAME_RECEIPTS, "receipts"),
            Frame::Control { events, .. } => (events.len(), MAX_FRAME_CONTROLS, "control"),
            Frame::Directory { descriptors } => {
                (descriptors.len(), MAX_FRAME_DESCRIPTORS, "directory")
            }
            Frame::Roster { rosters } => (rosters.len(), MAX_FRAME_ROSTERS, "roster"),
            Frame::Rotation { statements } => (statements.len(), MAX_FRAME_ROTATIONS, "rotation"),
        };
        if count > max {
            return Err(DecodeError::InvalidField {
                field,
                reason: "more items than a frame may carry",
            });
        }
        Ok(())
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Push { .. } => "push",
            Frame::Ack { .. } => "ack",
            Frame::SyncRequest(_) => "sync-request",
            Frame::SyncResponse(_) => "sync-response",
            Frame::Receipts { .. } => "receipts",
            Frame::Control { .. } => "control",
            Frame::Directory { .. } => "directory",
            Frame::Roster { .. } => "roster",
            Frame::Rotation { .. } => "rotation",
        }
    }
}

/// The contiguous prefix a vector states for `author` in `epoch` (0 if absent).
pub fn vector_high(vector: &[VectorEntry], author: &NodeId, epoch: u64) -> u64 {
    vector
        .iter()
        .find(|e| e.author.is(author) && e.epoch == epoch)
        .map_or(0, |e| e.high)
}
