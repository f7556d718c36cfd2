//! What the node shows about itself: the JSON documents of the API and the CLI.

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// This node's id.
    pub node_id: String,
    /// This node's name.
    pub name: String,
    /// The bound QUIC address.
    pub quic_addr: String,
    /// The bound API address.
    pub api_addr: String,
    /// Pinned peers.
    pub peers: usize,
    /// Peers connected now.
    pub connected: usize,
    /// Groups this node holds.
    pub groups: usize,
    /// Messages in the store.
    pub messages: usize,
    /// Messages received but not yet durable.
    pub in_flight: usize,
    /// The software version.
    pub version: String,
    /// The federation rosters in force, if this node trusts an authority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rosters: Vec<RosterStatus>,
    /// A roster nearing or past its end of validity, said in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_warning: Option<String>,
}

/// One roster in force, in the status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RosterStatus {
    /// The authority's key.
    pub authority: String,
    /// The federation.
    pub federation: String,
    /// Its version.
    pub version: u64,
    /// Its end of validity, RFC 3339.
    pub valid_until: String,
    /// `valid`, `expiring`, `expired (grace)` or `expired`.
    pub state: String,
    /// How many entries it admits.
    pub entries: usize,
    /// How many nodes it revokes.
    pub revoked: usize,
}

/// What taking a roster did (`liaison roster load`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RosterLoaded {
    /// The federation.
    pub federation: String,
    /// The version now in force.
    pub version: u64,
    /// `new`, or `known` (this roster was already in force).
    pub outcome: String,
    /// Nodes revoked by it that were not before.
    pub revoked: Vec<String>,
    /// Entries new in it.
    pub joined: Vec<String>,
    /// Entries it dropped.
    pub left: Vec<String>,
}

/// What a key rotation did (`liaison key rotate`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rotated {
    /// The node id before.
    pub old_node_id: String,
    /// The node id from now on (the same for an exchange key rotation).
    pub node_id: String,
    /// Groups this node owns that were moved to the new keys.
    pub groups_moved: usize,
}

/// One pinned peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerView {
    /// The operator's name for it.
    pub name: String,
    /// Its node id.
    pub node_id: String,
    /// The address dialled.
    pub address: String,
    /// `connected`, `connecting` or `disconnected`.
    pub state: String,
    /// The name in its own signed descriptor, once it connected.
    pub descriptor_name: Option<String>,
    /// The last connection error.
    pub last_error: Option<String>,
    /// `pin`, `roster`, or `pin+roster`: why this node is a peer.
    #[serde(default)]
    pub source: String,
    /// Why it is not admitted now (revoked, rotated away, refused here, roster expired).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
}

/// One member of a group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberView {
    /// Its node id.
    pub node_id: String,
    /// Its name, as the owner stated it.
    pub name: String,
    /// `member` or `reader`.
    pub role: String,
}

/// One group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupView {
    /// The group id.
    pub id: String,
    /// The group name.
    pub name: String,
    /// The owner's node id.
    pub owner_id: String,
    /// The owner's name.
    pub owner_name: String,
    /// The current epoch.
    pub epoch: u64,
    /// This node's role (`member`, `reader`), or `removed`.
    pub role: String,
    /// The owner was revoked by a federation authority: the group gets no new epochs.
    #[serde(default)]
    pub owner_revoked: bool,
    /// Members of the current epoch.
    pub members: Vec<MemberView>,
}

/// One message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageView {
    /// The message id.
    pub id: String,
    /// The group id.
    pub group_id: String,
    /// The group name.
    pub group_name: String,
    /// The author node's id.
    pub author_id: String,
    /// The author node's name.
    pub author_name: String,
    /// The posting officer.
    pub officer: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at_ms: u64,
    /// The subject.
    pub subject: String,
    /// The TLP handling code.
    pub handling: String,
    /// Expiry, RFC 3339 UTC.
    pub expires_at: Option<String>,
    /// The message replied to.
    pub reply_to: Option<String>,
    /// Named recipients (`OFFICER@NODE`), for TLP:RED.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// The epoch.
    pub epoch: u64,
    /// The author's sequence number in the epoch.
    pub seq: u64,
    /// The body (only when reading one message). For a record, its JSON, pretty-printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The kind of record (`note` for free text), or `unknown` for a kind this node does not
    /// know.
    #[serde(default = "note_kind")]
    pub kind: String,
    /// The record in its JSON Schema's shape (only when reading one message; not for notes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<serde_json::Value>,
    /// Set when the message carries a record of a kind or schema version newer than this node
    /// reads: what is known of it. The message is kept; an upgraded node reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// Set when an export left out the record's nominal section (persons, companies).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nominal_withheld: bool,
}

fn note_kind() -> String {
    "note".to_owned()
}

/// A message an export left out, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Refused {
    /// The message id.
    pub id: String,
    /// Its handling code.
    pub handling: String,
    /// Why it was not exported.
    pub reason: String,
}

/// `GET /v1/groups/{group}/export`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportView {
    /// The group.
    pub group_id: String,
    /// Messages exported, with bodies, oldest first.
    pub exported: Vec<MessageView>,
    /// Messages a handling code keeps in.
    pub refused: Vec<Refused>,
}

/// One delivery receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptView {
    /// The receiving node's id.
    pub receiver_id: String,
    /// Its name, if known.
    pub receiver_name: String,
    /// When it stored the message, RFC 3339 UTC.
    pub stored_at: String,
}

/// `POST /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddPeer {
    /// A name for the peer.
    pub name: String,
    /// Its node id.
    pub node_id: String,
    /// Its QUIC address, `HOST:PORT`.
    pub address: String,
    /// Replace the pin that already has this name or node id.
    #[serde(default)]
    pub replace: bool,
}

/// `POST /v1/roster`: a signed roster to take.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadRoster {
    /// The roster file's bytes, hex.
    pub roster: String,
}

/// `POST /v1/key/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RotateKeys {
    /// Rotate only the exchange key, not the identity.
    #[serde(default)]
    pub exchange_only: bool,
}

/// `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateGroup {
    /// The group name.
    pub name: String,
}

/// `POST /v1/groups/{group}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AddMember {
    /// A peer name or node id.
    pub peer: String,
    /// `member` (default) or `reader`.
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /v1/groups/{group}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostMessage {
    /// Subject line.
    #[serde(default)]
    pub subject: String,
    /// Body text.
    pub body: String,
    /// TLP code: `clear`, `green` (default), `amber`, `amber+strict`, `red`.
    #[serde(default)]
    pub handling: Option<String>,
    /// Named recipients `OFFICER@NODE` (required for `red`).
    #[serde(default)]
    pub to: Vec<String>,
    /// Message replied to.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// `POST /v1/groups/{group}/records`: a record in its tagged JSON form (what `liaison record
/// template` prints) and how to post it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PostRecord {
    /// The kind of record: `note`, `seizure`, `cultural_object`, `alert`, `request`,
    /// `feedback`.
    pub kind: String,
    /// The record, in the shape of the kind's JSON Schema (`GET /v1/schemas/{kind}`).
    pub record: serde_json::Value,
    /// TLP code: `clear`, `green` (default), `amber`, `amber+strict`, `red`.
    #[serde(default)]
    pub handling: Option<String>,
    /// Named recipients `OFFICER@NODE` (required for `red`).
    #[serde(default)]
    pub to: Vec<String>,
    /// The message replied to: a message of the same group the poster can read. Feedback
    /// must reply to an alert or a request.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// One kind of record and its schema: `GET /v1/schemas`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// The kind (`seizure`).
    pub kind: String,
    /// What it is called (`seizure report`).
    pub title: String,
    /// Its wire code.
    pub code: u16,
    /// The newest schema version this node reads and writes.
    pub version: u16,
    /// Where the JSON Schema is served.
    pub href: String,
}

/// One message of a thread.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadEntry {
    /// The message id.
    pub id: String,
    /// The message it replies to.
    pub reply_to: Option<String>,
    /// Depth below the thread's root (0 for the root).
    pub depth: usize,
    /// Its kind.
    pub kind: String,
    /// Its subject or summary.
    pub summary: String,
    /// The author node's name and the officer.
    pub author: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// For feedback: its outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// For an alert or request: its state from the feedback below it (`open`, `actioned`,
    /// `closed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// For a closed alert or request: the outcome that closed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_by: Option<String>,
}

/// `GET /v1/messages/{id}/thread`: the thread a message belongs to, from its root, each
/// reply below the message it answers, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThreadView {
    /// The group.
    pub group_id: String,
    /// The root's id.
    pub root: String,
    /// Set when the root replies to a message this node does not hold or the caller may not
    /// read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_replies_to: Option<String>,
    /// The messages, depth first, oldest first among siblings.
    pub entries: Vec<ThreadEntry>,
}

/// `GET /v1/groups/{group}/stats`: counts of what a group holds, as the caller may read it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StatsView {
    /// The group.
    pub group_id: String,
    /// Messages counted.
    pub messages: u64,
    /// Messages by kind (`unknown` for kinds this node cannot read).
    pub by_kind: std::collections::BTreeMap<String, u64>,
    /// Seized items by commodity category.
    pub by_commodity: std::collections::BTreeMap<String, u64>,
    /// Feedback by outcome.
    pub by_outcome: std::collections::BTreeMap<String, u64>,
    /// Messages by month of creation (`2026-01`).
    pub by_month: std::collections::BTreeMap<String, u64>,
    /// Alerts and requests by state (`open`, `actioned`, `closed`).
    pub by_state: std::collections::BTreeMap<String, u64>,
}

/// An id returned by a create or post.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Created {
    /// The new id.
    pub id: String,
}

/// An error body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and what to do.
    pub error: String,
    /// For an invalid record: each problem at its JSON pointer into the request body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<liaison_protocol::FieldError>,
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC.
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
