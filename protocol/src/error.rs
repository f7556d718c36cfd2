//! Typed errors that keep apart who is at fault.
//!
//! - [`DecodeError`] and [`Rejection`]: the *peer* (or whoever produced the bytes) sent
//!   something invalid. A node logs these, stores nothing, and may drop the peer.
//! - [`UsageError`]: the *caller* of this crate asked for something impossible (posting to a
//!   group it is not in, an oversized body, a non-owner changing membership). Nothing was sent.

use crate::group::GroupId;
use crate::identity::NodeId;
use crate::record::FieldError;

/// The first of a list of field errors and how many more there are, for messages.
fn first_error(errors: &[FieldError]) -> String {
    match errors {
        [] => "no reason given".to_owned(),
        [one] => one.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more)", rest.len()),
    }
}

/// Bytes that could not be decoded into a wire object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No bytes at all.
    #[error("empty input")]
    Empty,
    /// The input is longer than the limit for its type.
    #[error("{len} bytes exceed the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit for this type.
        max: usize,
    },
    /// The version byte is not one this implementation speaks.
    #[error("unsupported wire version {0}")]
    UnsupportedVersion(u8),
    /// The bytes do not form a valid encoding.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// A valid encoding was followed by extra bytes.
    #[error("{0} trailing bytes after the object")]
    TrailingBytes(usize),
    /// A field holds a value outside its allowed range (a key that is not a curve point, a
    /// string over its length limit, ...).
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why a well-formed-looking input from a peer was refused.
///
/// Every variant means the sender (or the author it relays for) misbehaved or is not entitled
/// to what it sent; none of them is a local failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The bytes did not decode.
    #[error("undecodable: {0}")]
    Decode(#[from] DecodeError),
    /// A signature did not verify under the key it claims.
    #[error("bad signature on {0}")]
    BadSignature(&'static str),
    /// The group is not one this node holds.
    #[error("unknown group {0}")]
    UnknownGroup(GroupId),
    /// The author was not a member of the group in the message's epoch.
    #[error("author {author} is not a member of group {group} in epoch {epoch}")]
    NotAMember {
        /// The group.
        group: GroupId,
        /// The author named in the header.
        author: NodeId,
        /// The epoch named in the header.
        epoch: u64,
    },
    /// The author is only a reader in that epoch.
    #[error("author {author} may only read group {group} in epoch {epoch}")]
    ReaderMayNotPost {
        /// The group.
        group: GroupId,
        /// The author named in the header.
        author: NodeId,
        /// The epoch named in the header.
        epoch: u64,
    },
    /// The epoch named does not exist (yet) in this node's view of the group.
    #[error("group {group} has no epoch {epoch}")]
    UnknownEpoch {
        /// The group.
        group: GroupId,
        /// The epoch named.
        epoch: u64,
    },
    /// This node holds no key for the epoch (it was not a member then).
    #[error("no key for epoch {epoch} of group {group}")]
    NoEpochKey {
        /// The group.
        group: GroupId,
        /// The epoch named.
        epoch: u64,
    },
    /// The ciphertext does not match the hash in the signed header.
    #[error("ciphertext does not match its signed hash")]
    CiphertextMismatch,
    /// The key commitment in the header does not match the derived message key.
    #[error("key commitment mismatch")]
    CommitmentMismatch,
    /// Authenticated decryption failed.
    #[error("decryption failed")]
    DecryptFailed,
    /// The decrypted content breaks a rule: a field over its limit, an invalid record (each
    /// problem at its JSON pointer), feedback that replies to nothing.
    #[error("invalid content: {}", first_error(.0))]
    InvalidContent(Vec<FieldError>),
    /// A header field is out of range (sequence number 0, ...).
    #[error("invalid header: {0}")]
    InvalidHeader(&'static str),
    /// A control event was not signed by the group's owner.
    #[error("control event for group {0} not signed by its owner")]
    NotOwner(GroupId),
    /// A control event does not follow the last applied one.
    #[error("control event {got} for group {group} out of order: expected {expected}")]
    OutOfOrder {
        /// The group.
        group: GroupId,
        /// The sequence number expected next.
        expected: u64,
        /// The sequence number received.
        got: u64,
    },
    /// A control event repeats an already applied sequence number with different content.
    #[error("control event {seq} for group {group} conflicts with the one applied")]
    ConflictingControl {
        /// The group.
        group: GroupId,
        /// The sequence number.
        seq: u64,
    },
    /// A control event's content is not valid in the current group state.
    #[error("invalid control event: {0}")]
    InvalidControl(&'static str),
    /// The peer relaying this is not a member of the group, so it may not carry its traffic.
    #[error("peer {peer} is not a member of group {group}")]
    PeerNotAMember {
        /// The group.
        group: GroupId,
        /// The peer that sent it.
        peer: NodeId,
    },
    /// A descriptor names another node than the connection's peer, or is expired.
    #[error("invalid descriptor: {0}")]
    InvalidDescriptor(&'static str),
    /// The frame is not expected in this state.
    #[error("unexpected frame: {0}")]
    UnexpectedFrame(&'static str),
    /// A receipt contradicts what this node holds (it names a message of another group).
    #[error("invalid receipt: {0}")]
    InvalidReceipt(&'static str),
    /// The author was removed from the group, and the message lies beyond the cut-off the owner
    /// recorded in the removal: the owner did not hold it, so no member keeps it.
    #[error(
        "author {author} was removed from group {group}; its message {epoch}/{seq} lies beyond the owner's cut-off"
    )]
    BeyondCutoff {
        /// The group.
        group: GroupId,
        /// The removed author.
        author: NodeId,
        /// The epoch named in the header.
        epoch: u64,
        /// The sequence number named in the header.
        seq: u64,
    },
    /// A time its signer put in it lies further in this node's future than the clocks of two
    /// nodes may differ, or contradicts another time of it.
    #[error("{field} {at_ms} is {reason} (this node's clock: {now_ms})")]
    BadTime {
        /// Which time: `created_at`, `expires_at`, `stored_at`.
        field: &'static str,
        /// The time, in milliseconds since the Unix epoch.
        at_ms: u64,
        /// This node's clock when it was checked.
        now_ms: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The peer sent more than a quota allows (groups of one owner, control events of one
    /// group, bytes of one author in a day).
    #[error("over quota: {0}")]
    OverQuota(&'static str),
    /// The peer asked for something that concerns it in no way (a sync for a group it does not
    /// belong to).
    #[error("irrelevant request: {0}")]
    Irrelevant(&'static str),
    /// A roster signed by an authority this node does not trust (not necessarily a fault: it
    /// may belong to another federation).
    #[error("roster of an authority not trusted here ({})", .0.short())]
    UnknownAuthority(crate::roster::AuthorityId),
    /// A roster breaks the rules of WIRE.md §12.
    #[error("invalid roster: {0}")]
    InvalidRoster(&'static str),
    /// Two different rosters carry the same version of one authority.
    #[error("authority {} signed two different rosters as version {version}", .authority.short())]
    ConflictingRoster {
        /// The authority.
        authority: crate::roster::AuthorityId,
        /// The version.
        version: u64,
    },
    /// The node that signed this was revoked before it signed it.
    #[error("{0} is revoked")]
    Revoked(NodeId),
    /// A second identity rotation of one key to another new key.
    #[error("{0} already rotated to another key")]
    ConflictingRotation(NodeId),
    /// A rotation statement that cannot be taken.
    #[error("invalid rotation statement: {0}")]
    InvalidRotation(&'static str),
    /// A descriptor claims a name that the federation's roster gives another node.
    #[error("descriptor of {node} claims the roster name {name:?} of another node")]
    NameClaimed {
        /// The node the descriptor describes.
        node: NodeId,
        /// The name it claims.
        name: String,
    },
}

/// The caller asked for something this crate cannot do. Nothing was produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    /// A value could not be encoded (it exceeds the frame limit).
    #[error("cannot encode: {0}")]
    Encode(String),
    /// A field is too long or otherwise out of range.
    #[error("{field} is invalid: {reason}")]
    Invalid {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The content to seal breaks a rule: a field over its limit, an invalid record (each
    /// problem at its JSON pointer), feedback that replies to nothing.
    #[error("invalid content: {}", first_error(.0))]
    InvalidRecord(Vec<FieldError>),
    /// The local node is not a member of the group.
    #[error("this node is not a member of group {0}")]
    NotAMember(GroupId),
    /// The local node is only a reader in the group.
    #[error("this node may only read group {0}")]
    ReaderMayNotPost(GroupId),
    /// Only the group's owner may change membership.
    #[error("only the owner may change the membership of group {0}")]
    NotOwner(GroupId),
    /// The node named is already a member.
    #[error("{0} is already a member")]
    AlreadyMember(NodeId),
    /// Another member of the group already has this name.
    #[error("another member is already named {0:?}")]
    NameTaken(String),
    /// The node named is not a member.
    #[error("{0} is not a member")]
    NoSuchMember(NodeId),
    /// The owner cannot remove itself.
    #[error("the owner cannot be removed from its own group")]
    RemoveOwner,
    /// The local node holds no key for the current epoch.
    #[error("no key for the current epoch of group {0}")]
    NoEpochKey(GroupId),
    /// HPKE failed to wrap a key (a member's exchange key is invalid).
    #[error("cannot wrap the epoch key: {0}")]
    Wrap(String),
    /// This node has not yet learned, since it started, which of its own sequence numbers in
    /// the group its peers already hold; posting now could reuse one (after a restore from a
    /// backup, or the loss of its newest records), and every peer would drop the new message.
    #[error(
        "group {0}: this node has not yet heard from a member since it started, so it cannot tell which of its sequence numbers are already used (as after a restore from a backup); posting resumes once a member is connected"
    )]
    SequenceUnconfirmed(GroupId),
    /// This node was restored from a backup and has not yet learned from its peers which of
    /// its own sequence numbers and control events they hold (see
    /// `sync::Engine::set_restoring`); posting or changing the group now could reuse them.
    #[error(
        "group {0}: this node was restored from a backup and is still learning from its peers which of its own messages and group changes they hold; posting and membership changes resume once a member has told it (`liaison status` shows the progress)"
    )]
    RestorePending(GroupId),
}

/// Text that is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {reason}")]
pub struct ParseError {
    /// What was being parsed ("node id", "group id", ...).
    pub what: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}
