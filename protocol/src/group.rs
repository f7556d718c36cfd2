//! Closed user groups: owner-signed control events, membership per epoch, and epoch keys.
//!
//! A group is the ordered chain of its control events. Event 1 creates the group; every later
//! event adds a member, removes one, or rotates the key. Only the owner named in event 1 signs
//! events; every node applies them strictly in order (`seq` = last + 1, `prev` = hash of the
//! last). **Every event opens a new epoch whose number is the event's `seq`**, with a fresh
//! random epoch key HPKE-wrapped (RFC 9180 base mode, X25519 / HKDF-SHA256 /
//! ChaCha20-Poly1305) to each member of that epoch and to nobody else. A node that is not a
//! member of an epoch never holds its key.
//!
//! **A removal carries the owner's cut-off** ([`Change::RemoveWithCutoff`]): for every epoch in
//! which the removed node could post, the highest of its sequence numbers the owner held. A
//! removed node keeps the keys of its old epochs and could go on signing messages into them;
//! every node takes, keeps visible, serves and relays only the removed author's messages at or
//! below the cut-off ([`GroupState::beyond_cutoff`]), including any it had taken before it
//! learned of the removal, so that every member ends with the owner's view of what the removed
//! node said.

use std::collections::BTreeMap;
use std::fmt;

use hpke::{
    aead::ChaCha20Poly1305, kdf::HkdfSha256, Deserializable, OpModeR, OpModeS, Serializable,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::codec::{self, MAX_CONTROL_LEN};
use crate::error::{Rejection, UsageError};
use crate::identity::{hex_id, ExchangeKey, ExchangeSecret, IdentityKey, Kem, NodeId, Timestamp};

hex_id!(
    /// A group's random 16-byte id. Text form: 32 lowercase hex characters.
    GroupId,
    16,
    "group id"
);

/// The longest group name, in bytes.
pub const MAX_GROUP_NAME_LEN: usize = 128;

/// The most members a group may have.
pub const MAX_MEMBERS: usize = 1024;

/// Domain-separation prefix of control event signatures.
pub const CONTROL_DOMAIN: &[u8] = b"liaison/v1/control\0";

/// BLAKE3 key-derivation context of the control event chain hash.
pub const CONTROL_HASH_CONTEXT: &str = "liaison/v1/control-hash";

/// HPKE `info` prefix for wrapping epoch keys (followed by group id and epoch).
pub const EPOCH_KEY_INFO: &[u8] = b"liaison/v1/epoch-key";

/// What a member may do in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// May post and read.
    Member,
    /// May only read.
    Reader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Member => "member",
            Role::Reader => "reader",
        })
    }
}

impl std::str::FromStr for Role {
    type Err = crate::error::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "member" => Ok(Role::Member),
            "reader" => Ok(Role::Reader),
            _ => Err(crate::error::ParseError {
                what: "role",
                reason: "expected member or reader",
            }),
        }
    }
}

/// One membership change. Variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Creates the group; only valid as event 1. The owner becomes its first member.
    Create {
        /// The group's name.
        name: String,
        /// The owner, who signs every event of the group.
        owner: NodeId,
        /// The owner node's name.
        owner_name: String,
        /// The owner's X25519 key.
        owner_key: ExchangeKey,
    },
    /// Adds a member.
    Add {
        /// The node added.
        member: NodeId,
        /// Its name, as the owner knows it from its descriptor.
        name: String,
        /// Its role.
        role: Role,
        /// Its X25519 key, to which later epoch keys are wrapped.
        exchange_key: ExchangeKey,
    },
    /// Removes a member (not the owner).
    Remove {
        /// The node removed.
        member: NodeId,
    },
    /// Opens a new epoch with a fresh key and the same members.
    Rotate,
    /// A member moves to new keys: from this epoch on it is `node` (equal to `member` when only
    /// its exchange key changes), with the same name and role, and later epoch keys are wrapped
    /// to `exchange_key`. If `member` is the owner, `node` signs the group's later events.
    Rekey {
        /// The member as it was.
        member: NodeId,
        /// Its node id from now on.
        node: NodeId,
        /// Its X25519 key from now on.
        exchange_key: ExchangeKey,
    },
    /// Removes a member (not the owner) and states which of its messages count: for each
    /// earlier epoch in which it could post, the highest of its sequence numbers the owner held
    /// (absent: none of that epoch). Its messages above the cut-off are refused, and hidden
    /// where they were taken before. What an owner of this version proposes for a removal;
    /// [`Change::Remove`] (no cut-off) is still applied as before.
    RemoveWithCutoff {
        /// The node removed.
        member: NodeId,
        /// Per epoch, strictly ascending by epoch: the removed node's last message that counts.
        cutoff: Vec<Cutoff>,
    },
}

impl Change {
    /// The member a removal removes.
    pub fn removed(&self) -> Option<NodeId> {
        match self {
            Change::Remove { member } | Change::RemoveWithCutoff { member, .. } => Some(*member),
            _ => None,
        }
    }
}

/// One epoch's entry of a removal's cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cutoff {
    /// An epoch in which the removed node was a member that may post.
    pub epoch: u64,
    /// Its highest sequence number in that epoch that counts (at least 1).
    pub seq: u64,
}

/// A removal as applied: in which epoch it took effect, and its cut-off (`None` for a
/// [`Change::Remove`], which has none).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Removal {
    epoch: u64,
    cutoff: Option<BTreeMap<u64, u64>>,
}

/// The epoch key wrapped to one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The member it is wrapped to.
    pub member: NodeId,
    /// The HPKE encapsulated key.
    pub enc: [u8; 32],
    /// The HPKE ciphertext of the 32-byte epoch key.
    #[serde(with = "crate::codec::bytes")]
    pub ciphertext: Vec<u8>,
}

/// A control event: the signed body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlEvent {
    /// The group.
    pub group: GroupId,
    /// Position in the group's chain, from 1; also the number of the epoch it opens.
    pub seq: u64,
    /// Chain hash of event `seq - 1` (all zero for event 1).
    pub prev: [u8; 32],
    /// When the owner made it.
    pub created_at: Timestamp,
    /// The change.
    pub change: Change,
    /// The new epoch's key, wrapped to each member of the new epoch.
    pub keys: Vec<WrappedKey>,
}

/// A control event with the owner's signature, kept as the exact bytes signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedControl {
    /// The [`ControlEvent`], encoded without the version byte.
    #[serde(with = "crate::codec::bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature by the owner over [`CONTROL_DOMAIN`] `||` body.
    #[serde(with = "crate::codec::bytes64")]
    pub signature: [u8; 64],
}

/// A 32-byte epoch key. Zeroized on drop, never printed.
#[derive(Clone)]
pub struct EpochKey(Zeroizing<[u8; 32]>);

impl EpochKey {
    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochKey(..)")
    }
}

/// A member's entry in an epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its node name, as the owner stated it.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its X25519 key.
    pub exchange_key: ExchangeKey,
}

/// The local node's keys, needed to unwrap epoch keys addressed to it.
#[derive(Debug, Clone, Copy)]
pub struct LocalKeys<'a> {
    /// This node's id.
    pub node: NodeId,
    /// This node's X25519 secret.
    pub exchange: &'a ExchangeSecret,
}

/// What applying a control event did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// The event was new and is now applied; it opened epoch `epoch`.
    New {
        /// The epoch it opened (its seq).
        epoch: u64,
        /// Whether this node holds the new epoch's key.
        have_key: bool,
    },
    /// The exact event was already applied: nothing changed.
    Duplicate,
}

/// One node's view of a group: its chain of control events applied so far.
#[derive(Debug, Clone)]
pub struct GroupState {
    id: GroupId,
    name: String,
    owner: NodeId,
    /// Chain hashes of applied events; `hashes[i]` is event `i + 1`'s.
    hashes: Vec<[u8; 32]>,
    /// Members of each epoch; `epochs[i]` is epoch `i + 1`.
    epochs: Vec<BTreeMap<NodeId, Member>>,
    /// When the owner made the event that opened each epoch; `opened[i]` is epoch `i + 1`'s.
    opened: Vec<Timestamp>,
    keys: BTreeMap<u64, EpochKey>,
    /// Every removal of each node, in chain order.
    removals: BTreeMap<NodeId, Vec<Removal>>,
}

fn hash_control(bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(CONTROL_HASH_CONTEXT);
    h.update(bytes);
    *h.finalize().as_bytes()
}

fn wrap_info(group: &GroupId, epoch: u64) -> Vec<u8> {
    let mut info = EPOCH_KEY_INFO.to_vec();
    info.extend_from_slice(group.as_bytes());
    info.extend_from_slice(&epoch.to_be_bytes());
    info
}

/// Decodes a signed control event and its body, without checking the signature.
pub fn decode_control(bytes: &[u8]) -> Result<(SignedControl, ControlEvent), Rejection> {
    let signed: SignedControl = codec::decode(bytes, MAX_CONTROL_LEN)?;
    let event: ControlEvent = codec::decode_bare(&signed.body, MAX_CONTROL_LEN)?;
    Ok((signed, event))
}

impl GroupState {
    /// Makes event 1 of a new group owned by `owner`, with the given random `id`. Apply it with
    /// [`GroupState::from_genesis`] to get the state.
    pub fn create<R: rand_core::CryptoRng + rand_core::RngCore>(
        owner: &IdentityKey,
        owner_name: &str,
        owner_key: ExchangeKey,
        id: GroupId,
        name: &str,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Vec<u8>, UsageError> {
        crate::fields::check_group_name(name).map_err(|e| UsageError::Invalid {
            field: "group name",
            reason: e.0.into(),
        })?;
        check_node_name(owner_name)?;
        let mut members = BTreeMap::new();
        members.insert(
            owner.node_id(),
            Member {
                name: owner_name.to_owned(),
                role: Role::Member,
                exchange_key: owner_key,
            },
        );
        let change = Change::Create {
            name: name.to_owned(),
            owner: owner.node_id(),
            owner_name: owner_name.to_owned(),
            owner_key,
        };
        make_event(owner, id, 1, [0; 32], now, change, &members, rng)
    }

    /// Starts a group's state from its event 1.
    pub fn from_genesis(
        bytes: &[u8],
        local: Option<LocalKeys<'_>>,
    ) -> Result<GroupState, Rejection> {
        GroupState::from_genesis_with(bytes, local.as_slice())
    }

    /// [`GroupState::from_genesis`] for a node that had several keys: an epoch key wrapped to
    /// any of them is unwrapped (a node keeps its keys from before a rotation to read the
    /// epochs it was a member of under them).
    pub fn from_genesis_with(
        bytes: &[u8],
        locals: &[LocalKeys<'_>],
    ) -> Result<GroupState, Rejection> {
        let (signed, event) = decode_control(bytes)?;
        let Change::Create {
            name,
            owner,
            owner_name,
            owner_key,
        } = &event.change
        else {
            return Err(Rejection::InvalidControl("event 1 must create the group"));
        };
        if event.seq != 1 {
            return Err(Rejection::OutOfOrder {
                group: event.group,
                expected: 1,
                got: event.seq,
            });
        }
        if event.prev != [0; 32] {
            return Err(Rejection::InvalidControl(
                "event 1 must have an all-zero prev",
            ));
        }
        if crate::fields::check_group_name(name).is_err() {
            return Err(Rejection::InvalidControl("invalid group name"));
        }
        owner
            .verify(
                CONTROL_DOMAIN,
                &signed.body,
                &signed.signature,
                "control event",
            )
            .map_err(|_| Rejection::NotOwner(event.group))?;
        if check_node_name(owner_name).is_err() {
            return Err(Rejection::InvalidControl("invalid owner name"));
        }
        let mut members = BTreeMap::new();
        members.insert(
            *owner,
            Member {
                name: owner_name.clone(),
                role: Role::Member,
                exchange_key: *owner_key,
            },
        );
        let mut state = GroupState {
            id: event.group,
            name: name.clone(),
            owner: *owner,
            hashes: Vec::new(),
            epochs: Vec::new(),
            opened: Vec::new(),
            keys: BTreeMap::new(),
            removals: BTreeMap::new(),
        };
        state.commit(bytes, &event, members, locals)?;
        Ok(state)
    }

    /// Applies the next control event. Events must come strictly in order; the exact event
    /// applied before is reported as [`Applied::Duplicate`] and changes nothing.
    pub fn apply(
        &mut self,
        bytes: &[u8],
        local: Option<LocalKeys<'_>>,
    ) -> Result<Applied, Rejection> {
        self.apply_with(bytes, local.as_slice())
    }

    /// [`GroupState::apply`] for a node that had several keys (see
    /// [`GroupState::from_genesis_with`]).
    pub fn apply_with(
        &mut self,
        bytes: &[u8],
        locals: &[LocalKeys<'_>],
    ) -> Result<Applied, Rejection> {
        let (signed, event) = decode_control(bytes)?;
        if event.group != self.id {
            return Err(Rejection::InvalidControl("event for another group"));
        }
        let applied = self.seq();
        if event.seq == 0 {
            return Err(Rejection::InvalidControl("sequence number 0"));
        }
        if event.seq <= applied {
            let known = self.hashes.get(idx(event.seq)).copied();
            return if known == Some(hash_control(bytes)) {
                Ok(Applied::Duplicate)
            } else {
                Err(Rejection::ConflictingControl {
                    group: self.id,
                    seq: event.seq,
                })
            };
        }
        if event.seq != applied + 1 {
            return Err(Rejection::OutOfOrder {
                group: self.id,
                expected: applied + 1,
                got: event.seq,
            });
        }
        self.owner
            .verify(
                CONTROL_DOMAIN,
                &signed.body,
                &signed.signature,
                "control event",
            )
            .map_err(|_| Rejection::NotOwner(self.id))?;
        if Some(&event.prev) != self.hashes.last() {
            return Err(Rejection::InvalidControl("prev does not match the chain"));
        }
        let rekey = matches!(event.change, Change::Rekey { .. });
        let members = self.next_members(&event.change).map_err(|e| match e {
            UsageError::AlreadyMember(_) if rekey => {
                Rejection::InvalidControl("rekeys a member onto another member")
            }
            UsageError::NoSuchMember(_) if rekey => {
                Rejection::InvalidControl("rekeys a non-member")
            }
            UsageError::AlreadyMember(_) => Rejection::InvalidControl("adds an existing member"),
            UsageError::Invalid {
                field: "cutoff", ..
            } => Rejection::InvalidControl(
                "cut-off not strictly ascending by epoch, or naming an epoch in which the node could not post",
            ),
            UsageError::NoSuchMember(_) => Rejection::InvalidControl("removes a non-member"),
            UsageError::RemoveOwner => Rejection::InvalidControl("removes the owner"),
            UsageError::Invalid {
                field: "node name", ..
            } => Rejection::InvalidControl("invalid member name"),
            UsageError::NameTaken(_) => {
                Rejection::InvalidControl("adds a member under another member's name")
            }
            UsageError::Invalid {
                field: "change", ..
            } => Rejection::InvalidControl("create only as event 1"),
            _ => Rejection::InvalidControl("invalid change"),
        })?;
        let have_key = self.commit(bytes, &event, members, locals)?;
        self.note_removal(&event.change, event.seq);
        if let Change::Rekey { member, node, .. } = &event.change {
            if *member == self.owner {
                self.owner = *node;
            }
        }
        Ok(Applied::New {
            epoch: event.seq,
            have_key,
        })
    }

    /// Validates the wrapped keys against `members`, unwraps ours, and records the epoch.
    fn commit(
        &mut self,
        bytes: &[u8],
        event: &ControlEvent,
        members: BTreeMap<NodeId, Member>,
        locals: &[LocalKeys<'_>],
    ) -> Result<bool, Rejection> {
        if members.len() > MAX_MEMBERS {
            return Err(Rejection::InvalidControl("too many members"));
        }
        if event.keys.len() != members.len()
            || event.keys.iter().any(|k| !members.contains_key(&k.member))
            || (1..event.keys.len()).any(|i| event.keys[i - 1].member >= event.keys[i].member)
        {
            return Err(Rejection::InvalidControl(
                "wrapped keys must be exactly one per member, sorted by node id",
            ));
        }
        let mut have_key = false;
        for local in locals {
            if let Some(wrapped) = event.keys.iter().find(|k| k.member == local.node) {
                if let Some(key) = unwrap_key(&self.id, event.seq, wrapped, *local) {
                    self.keys.insert(event.seq, key);
                    have_key = true;
                    break;
                }
            }
        }
        self.hashes.push(hash_control(bytes));
        self.epochs.push(members);
        self.opened.push(event.created_at);
        Ok(have_key)
    }

    /// Records the removal `change` makes in epoch `epoch`, if it is one.
    fn note_removal(&mut self, change: &Change, epoch: u64) {
        let (member, cutoff) = match change {
            Change::Remove { member } => (*member, None),
            Change::RemoveWithCutoff { member, cutoff } => (
                *member,
                Some(cutoff.iter().map(|c| (c.epoch, c.seq)).collect()),
            ),
            _ => return,
        };
        self.removals
            .entry(member)
            .or_default()
            .push(Removal { epoch, cutoff });
    }

    /// Checks a cut-off for removing `member` by the event that opens the next epoch: strictly
    /// ascending epochs before it, in each of which `member` could post, and seqs from 1.
    fn check_cutoff(&self, member: &NodeId, cutoff: &[Cutoff]) -> Result<(), UsageError> {
        let next = self.seq() + 1;
        let ascending = cutoff.windows(2).all(|w| w[0].epoch < w[1].epoch);
        let valid = cutoff
            .iter()
            .all(|c| c.seq >= 1 && c.epoch < next && self.may_post(member, c.epoch));
        if ascending && valid {
            Ok(())
        } else {
            Err(UsageError::Invalid {
                field: "cutoff",
                reason: "epochs must ascend strictly, each one in which the member could post, with seqs from 1".into(),
            })
        }
    }

    fn next_members(&self, change: &Change) -> Result<BTreeMap<NodeId, Member>, UsageError> {
        let mut members = self.members().clone();
        match change {
            Change::Create { .. } => {
                return Err(UsageError::Invalid {
                    field: "change",
                    reason: "create only as event 1".into(),
                })
            }
            Change::Add {
                member,
                name,
                role,
                exchange_key,
            } => {
                if members.contains_key(member) {
                    return Err(UsageError::AlreadyMember(*member));
                }
                check_node_name(name)?;
                if members.values().any(|m| m.name == *name) {
                    return Err(UsageError::NameTaken(name.clone()));
                }
                members.insert(
                    *member,
                    Member {
                        name: name.clone(),
                        role: *role,
                        exchange_key: *exchange_key,
                    },
                );
            }
            Change::Remove { member } => {
                if *member == self.owner {
                    return Err(UsageError::RemoveOwner);
                }
                if members.remove(member).is_none() {
                    return Err(UsageError::NoSuchMember(*member));
                }
            }
            Change::RemoveWithCutoff { member, cutoff } => {
                if *member == self.owner {
                    return Err(UsageError::RemoveOwner);
                }
                if members.remove(member).is_none() {
                    return Err(UsageError::NoSuchMember(*member));
                }
                self.check_cutoff(member, cutoff)?;
            }
            Change::Rotate => {}
            Change::Rekey {
                member,
                node,
                exchange_key,
            } => {
                let Some(mut record) = members.remove(member) else {
                    return Err(UsageError::NoSuchMember(*member));
                };
                if members.contains_key(node) {
                    return Err(UsageError::AlreadyMember(*node));
                }
                record.exchange_key = *exchange_key;
                members.insert(*node, record);
            }
        }
        Ok(members)
    }

    /// Makes the next control event with `change`, signed by `owner`. It is not applied: apply
    /// the returned bytes with [`GroupState::apply`] like any received event.
    pub fn propose<R: rand_core::CryptoRng + rand_core::RngCore>(
        &self,
        owner: &IdentityKey,
        change: Change,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Vec<u8>, UsageError> {
        if owner.node_id() != self.owner {
            return Err(UsageError::NotOwner(self.id));
        }
        let members = self.next_members(&change)?;
        if members.len() > MAX_MEMBERS {
            return Err(UsageError::Invalid {
                field: "members",
                reason: format!("a group has at most {MAX_MEMBERS} members"),
            });
        }
        let prev = self.hashes.last().copied().unwrap_or([0; 32]);
        make_event(
            owner,
            self.id,
            self.seq() + 1,
            prev,
            now,
            change,
            &members,
            rng,
        )
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// The group's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner, who alone changes membership (and signs the next event).
    pub fn owner(&self) -> NodeId {
        self.owner
    }

    /// The last applied control event's seq.
    pub fn seq(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The current epoch (equal to [`GroupState::seq`]).
    pub fn epoch(&self) -> u64 {
        self.seq()
    }

    /// Members of the current epoch.
    pub fn members(&self) -> &BTreeMap<NodeId, Member> {
        static EMPTY: BTreeMap<NodeId, Member> = BTreeMap::new();
        self.epochs.last().unwrap_or(&EMPTY)
    }

    /// When the owner opened `epoch` (its event's `created_at`), if it exists.
    pub fn opened_at(&self, epoch: u64) -> Option<Timestamp> {
        if epoch == 0 {
            return None;
        }
        self.opened.get(idx(epoch)).copied()
    }

    /// Members of `epoch`, if it exists.
    pub fn members_at(&self, epoch: u64) -> Option<&BTreeMap<NodeId, Member>> {
        if epoch == 0 {
            return None;
        }
        self.epochs.get(idx(epoch))
    }

    /// `node`'s role in `epoch`, if it was a member then.
    pub fn role_at(&self, node: &NodeId, epoch: u64) -> Option<Role> {
        self.members_at(epoch)?.get(node).map(|m| m.role)
    }

    /// `node`'s role in the current epoch.
    pub fn role(&self, node: &NodeId) -> Option<Role> {
        self.members().get(node).map(|m| m.role)
    }

    /// Whether `node` may post in `epoch`.
    pub fn may_post(&self, node: &NodeId, epoch: u64) -> bool {
        self.role_at(node, epoch) == Some(Role::Member)
    }

    /// The key of `epoch`, if this node holds it.
    pub fn epoch_key(&self, epoch: u64) -> Option<&EpochKey> {
        self.keys.get(&epoch)
    }

    /// The cut-off that applies to `author`'s messages in `epoch`: the highest seq that counts,
    /// if a removal with a cut-off ended the membership `epoch` belongs to (that of the first
    /// removal after `epoch`); `None` if every seq counts (no removal since, or one made without
    /// a cut-off).
    pub fn cutoff(&self, author: &NodeId, epoch: u64) -> Option<u64> {
        let removal = self
            .removals
            .get(author)?
            .iter()
            .find(|r| r.epoch > epoch)?;
        removal
            .cutoff
            .as_ref()
            .map(|c| c.get(&epoch).copied().unwrap_or(0))
    }

    /// Whether `author`'s message `seq` in `epoch` lies beyond the cut-off of its removal: such
    /// a message is refused, and hidden where it was taken before the removal was known.
    pub fn beyond_cutoff(&self, author: &NodeId, epoch: u64, seq: u64) -> bool {
        self.cutoff(author, epoch).is_some_and(|last| seq > last)
    }

    /// The nodes removed and not added again, with the epoch their last removal opened.
    pub fn removed(&self) -> impl Iterator<Item = (NodeId, u64)> + '_ {
        self.removals.iter().filter_map(|(node, removals)| {
            let last = removals.last()?;
            (!self.members().contains_key(node)).then_some((*node, last.epoch))
        })
    }

    /// The epoch whose event removed `node`, if it was removed and not added again.
    pub fn removed_in(&self, node: &NodeId) -> Option<u64> {
        if self.members().contains_key(node) {
            return None;
        }
        self.removals.get(node)?.last().map(|r| r.epoch)
    }

    /// Every epoch in which `node` was a member.
    pub fn epochs_of(&self, node: &NodeId) -> impl Iterator<Item = u64> + '_ {
        let node = *node;
        self.epochs
            .iter()
            .enumerate()
            .filter(move |(_, m)| m.contains_key(&node))
            .map(|(i, _)| i as u64 + 1)
    }
}

fn check_node_name(name: &str) -> Result<(), UsageError> {
    crate::fields::check_node_name(name).map_err(|e| UsageError::Invalid {
        field: "node name",
        reason: e.0.into(),
    })
}

fn idx(seq: u64) -> usize {
    usize::try_from(seq.saturating_sub(1)).unwrap_or(usize::MAX)
}

#[allow(clippy::too_many_arguments)]
fn make_event<R: rand_core::CryptoRng + rand_core::RngCore>(
    owner: &IdentityKey,
    group: GroupId,
    seq: u64,
    prev: [u8; 32],
    now: Timestamp,
    change: Change,
    members: &BTreeMap<NodeId, Member>,
    rng: &mut R,
) -> Result<Vec<u8>, UsageError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(key.as_mut());
    let info = wrap_info(&group, seq);
    let mut keys = Vec::with_capacity(members.len());
    for (node, member) in members {
        let pk = member.exchange_key.hpke()?;
        let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem, R>(
            &OpModeS::Base,
            &pk,
            &info,
            key.as_ref(),
            node.as_bytes(),
            rng,
        )
        .map_err(|e| UsageError::Wrap(e.to_string()))?;
        let mut enc_bytes = [0u8; 32];
        enc_bytes.copy_from_slice(&enc.to_bytes());
        keys.push(WrappedKey {
            member: *node,
            enc: enc_bytes,
            ciphertext,
        });
    }
    let event = ControlEvent {
        group,
        seq,
        prev,
        created_at: now,
        change,
        keys,
    };
    let body = codec::encode_bare(&event)?;
    let signature = owner.sign(CONTROL_DOMAIN, &body);
    let bytes = codec::encode(&SignedControl { body, signature })?;
    if bytes.len() > MAX_CONTROL_LEN {
        return Err(UsageError::Invalid {
            field: "control event",
            reason: "too large".into(),
        });
    }
    Ok(bytes)
}

fn unwrap_key(
    group: &GroupId,
    epoch: u64,
    wrapped: &WrappedKey,
    local: LocalKeys<'_>,
) -> Option<EpochKey> {
    let sk = local.exchange.hpke().ok()?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc).ok()?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &wrap_info(group, epoch),
            &wrapped.ciphertext,
            local.node.as_bytes(),
        )
        .ok()?,
    );
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(EpochKey(Zeroizing::new(bytes)))
}
