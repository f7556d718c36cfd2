//! What the node shows about itself: the JSON documents of the API and the CLI.
//!
//! Long because it is the one module of the API's request and response types (the CLI reads
//! the same ones, and the OpenAPI description is derived from them): one type per document,
//! each small, kept together so that the wire shape of the API is read in one place.

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Inputs (commands, peers' frames) whose handling failed with a fault since the node
    /// started; each failed alone, and the node went on. Its log says which.
    #[serde(default)]
    pub faults: u64,
    /// The store's health.
    pub store: StoreStatus,
    /// The federation rosters in force, if this node trusts an authority.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rosters: Vec<RosterStatus>,
    /// A roster nearing or past its end of validity, said in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster_warning: Option<String>,
    /// Present while this node, restored from a backup, learns from its peers which of its own
    /// messages and group changes they hold; it posts to a group only once that group is
    /// confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<crate::restored::RestoreStatus>,
}

/// One roster in force, in the status.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The node id before.
    pub old_node_id: String,
    /// The node id from now on (the same for an exchange key rotation).
    pub node_id: String,
    /// Groups this node owns that were moved to the new keys.
    pub groups_moved: usize,
}

/// The store's health, in `/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreStatus {
    /// Whether nothing needs an operator's attention.
    pub healthy: bool,
    /// What needs attention, in words: a failed flush, a nearly full disk, damaged messages.
    pub problems: Vec<String>,
    /// Free bytes on the disk holding the store, if known.
    pub free_bytes: Option<u64>,
    /// Free bytes the store keeps; below them new messages are refused.
    pub min_free_bytes: u64,
    /// Messages found damaged and waiting to be fetched again from peers.
    pub damaged: usize,
    /// Times the store reopened its database after a failed flush.
    pub reopened: u64,
    /// When the store last flushed to disk (RFC 3339), if it has since the node started.
    pub last_flush: Option<String>,
    /// The same, in milliseconds since the Unix epoch.
    pub last_flush_ms: Option<u64>,
    /// Flushes since the node started.
    pub flushes: u64,
    /// What the store repaired when it last opened, in words.
    pub repaired_at_start: Vec<String>,
}

impl StoreStatus {
    /// The view of `health`.
    pub fn of(health: &crate::store::Health) -> StoreStatus {
        let mut problems = Vec::new();
        if let Some(failed) = &health.failed {
            problems.push(failed.clone());
        }
        if let Some(e) = &health.write_failed {
            problems.push(if health.free_bytes == Some(0) {
                format!(
                    "the disk holding the store is full: writes fail ({e}); free space on it, \
                     the node takes writes again by itself"
                )
            } else {
                format!("the last write to the store failed: {e}")
            });
        }
        if health.low_space() {
            problems.push(format!(
                "the disk is nearly full ({} bytes free, the store keeps {}): new messages are \
                 refused until space is freed",
                health.free_bytes.unwrap_or(0),
                health.min_free_bytes
            ));
        }
        if health.damaged > 0 {
            problems.push(format!(
                "{} damaged messages are being fetched again from peers",
                health.damaged
            ));
        }
        let opened = &health.opened;
        let mut repaired = Vec::new();
        if !opened.removed.is_empty() {
            repaired.push(format!(
                "removed {} half-written snapshot files",
                opened.removed.len()
            ));
        }
        for dir in &opened.set_aside {
            repaired.push(format!(
                "set damaged index files aside in {}",
                dir.display()
            ));
        }
        if opened.rebuilt {
            repaired.push("rebuilt the index from the envelope log".into());
        } else if opened.index_damaged {
            repaired.push("restored what the damaged index lost from the envelope log".into());
        } else if opened.replayed > 0 {
            repaired.push(format!(
                "indexed {} entries the index lacked from the envelope log",
                opened.replayed
            ));
        }
        if opened.dropped > 0 {
            repaired.push(format!(
                "dropped {} unacknowledged messages a crash cut short",
                opened.dropped
            ));
        }
        let last_flush_ms = health.last_flush.and_then(|t| {
            let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
            u64::try_from(ms).ok()
        });
        StoreStatus {
            healthy: health.is_healthy(),
            problems,
            free_bytes: health.free_bytes,
            min_free_bytes: health.min_free_bytes,
            damaged: health.damaged,
            reopened: health.reopened,
            last_flush_ms,
            last_flush: last_flush_ms.map(rfc3339),
            flushes: health.flushes,
            repaired_at_start: repaired,
        }
    }
}

/// One pinned peer.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    /// Its node id.
    pub node_id: String,
    /// Its name, as the owner stated it.
    pub name: String,
    /// `member` or `reader`.
    pub role: String,
}

/// One group.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Nodes removed from the group (and not added again).
    #[serde(default)]
    pub removed: Vec<RemovedView>,
    /// What the change just made may not do as meant (only in the answer to that change):
    /// e.g. a member added that this node sees no way to reach.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A node removed from a group.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RemovedView {
    /// Its node id.
    pub node_id: String,
    /// Its name, as the owner stated it.
    pub name: String,
    /// The epoch its removal opened: of its messages, only those the owner held then count.
    pub removed_in_epoch: u64,
    /// The owner's cut-off, per epoch in which it was a member: the highest of its sequence
    /// numbers the owner held when it removed it; what lies above is dropped by every member.
    /// Absent for a removal made without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutoff: Option<Vec<CutoffView>>,
}

/// One epoch of a removal's cut-off.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CutoffView {
    /// The epoch.
    pub epoch: u64,
    /// The highest sequence number of the removed node kept in that epoch (0: none).
    pub last_seq: u64,
}

/// One message.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// If the author has since been removed from the group: the epoch its removal opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_removed_in_epoch: Option<u64>,
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
    /// The attachments it names (`GET /v1/attachments/{id}` opens one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentView>,
}

/// A page of messages, newest first (`GET /v1/messages`, `GET /v1/groups/{group}/messages`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// The messages (without bodies), newest first.
    pub messages: Vec<MessageView>,
    /// The cursor of the next (older) page: pass it as `before`. `null` on the last page.
    pub next: Option<String>,
}

/// An attachment as a message names it (its key stays in the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttachmentView {
    /// The attachment id.
    pub id: String,
    /// The file name.
    pub name: String,
    /// The media type, found from the content by the author's node.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether it is held whole on this node (else it is fetched when opened).
    pub held: bool,
}

fn note_kind() -> String {
    "note".to_owned()
}

/// A message an export left out, and why.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Refused {
    /// The message id.
    pub id: String,
    /// Its handling code.
    pub handling: String,
    /// Why it was not exported.
    pub reason: String,
}

/// `GET /v1/groups/{group}/export`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExportView {
    /// The group.
    pub group_id: String,
    /// Messages exported, with bodies, oldest first.
    pub exported: Vec<MessageView>,
    /// Messages a handling code keeps in.
    pub refused: Vec<Refused>,
}

/// A stored message the admin took out of this node's views.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantineView {
    /// The message id.
    pub id: String,
    /// Whether the quarantine is in force (false in the answer to a release).
    pub quarantined: bool,
    /// Why, in the admin's words.
    pub reason: String,
    /// When it was set (or released), RFC 3339.
    pub at: String,
    /// The same, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// A request to quarantine a stored message.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QuarantineRequest {
    /// The message id (64 hex digits).
    pub id: String,
    /// Why (kept and shown; at most 500 characters).
    pub reason: String,
}

/// One delivery receipt.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReceiptView {
    /// The receiving node's id.
    pub receiver_id: String,
    /// Its name, if known.
    pub receiver_name: String,
    /// When it stored the message, RFC 3339 UTC.
    pub stored_at: String,
}

/// `POST /v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LoadRoster {
    /// The roster file's bytes, hex.
    pub roster: String,
}

/// `POST /v1/key/rotate`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotateKeys {
    /// Rotate only the exchange key, not the identity.
    #[serde(default)]
    pub exchange_only: bool,
}

/// `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreateGroup {
    /// The group name.
    pub name: String,
}

/// `POST /v1/groups/{group}/members`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddMember {
    /// A peer name or node id.
    pub peer: String,
    /// `member` (default) or `reader`.
    #[serde(default)]
    pub role: Option<String>,
}

/// `POST /v1/groups/{group}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Attachments to name, by the ids `POST /v1/attachments` answered to the poster.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// `POST /v1/groups/{group}/records`: a record in its tagged JSON form (what `liaison record
/// template` prints) and how to post it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Attachments to name, by the ids `POST /v1/attachments` answered to the poster.
    #[serde(default)]
    pub attachments: Vec<String>,
}

/// One kind of record and its schema: `GET /v1/schemas`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
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

/// The answer to `DELETE /v1/peers/{peer}` and `DELETE /v1/users/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Removed {
    /// Always true: what was named is gone.
    pub removed: bool,
}

/// An id returned by a create or post.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Created {
    /// The new id.
    pub id: String,
}

/// An error body.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do.
    pub error: String,
    /// For an invalid record: each problem at its JSON pointer into the request body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldProblem>)]
    pub fields: Vec<liaison_protocol::FieldError>,
}

/// One problem of an invalid record (in `fields` of a 422 answer).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldProblem {
    /// The field, as a JSON pointer (RFC 6901) from the record's root (`/items/0/hs_code`);
    /// empty for the record as a whole.
    pub pointer: String,
    /// What is wrong with it, for the person who filled it in.
    pub reason: String,
}

/// Formats milliseconds since the Unix epoch as RFC 3339 UTC with milliseconds
/// (`2026-01-20T10:00:00.000Z`). Every `u64` formats: a year after 9999, which RFC 3339 cannot
/// write, is written in ISO 8601's expanded form, `+` and at least six digits
/// (`+010000-01-01T00:00:00.000Z`), which JavaScript's `Date` reads. Times are signed by other
/// nodes, so formatting one must never fail.
pub fn rfc3339(ms: u64) -> String {
    const DAY_MS: u64 = 86_400_000;
    let (days, in_day) = (ms / DAY_MS, ms % DAY_MS);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
    let (second, milli) = (in_day / 1000 % 60, in_day % 1000);
    let year = if year <= 9999 {
        format!("{year:04}")
    } else {
        format!("+{year:06}")
    };
    format!("{year}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z")
}

/// The proleptic Gregorian (year, month, day) of `days` after 1970-01-01: the inverse of
/// `days_from_civil` in H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", for days
/// from the epoch on (no overflow for any `u64` of milliseconds).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z % 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], from March
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ----- accounts -------------------------------------------------------------------------

/// An account as the API shows it (no token hash).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    /// The officer's name.
    pub name: String,
    /// Grants: group id → `read` or `post`.
    pub grants: std::collections::BTreeMap<String, crate::accounts::Access>,
    /// Creation time, RFC 3339.
    pub created_at: String,
}

impl From<crate::accounts::Account> for UserView {
    fn from(a: crate::accounts::Account) -> Self {
        UserView {
            name: a.name,
            grants: a.grants,
            created_at: rfc3339(a.created_at_ms),
        }
    }
}

/// `POST /v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddUser {
    /// The officer's name.
    pub name: String,
    /// Grants as `GROUP[:read|:post]` (default access: `read`).
    #[serde(default)]
    pub grants: Vec<String>,
    /// Web login to issue: `enrol` (a one-time enrolment code), `password` (a one-time
    /// password, replaced at first login), or none (API token only).
    #[serde(default)]
    pub login: Option<String>,
    /// Give the officer the web workspace's operator pages.
    #[serde(default)]
    pub operator: bool,
}

/// The answer to `POST /v1/users`: the token, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    /// The account.
    pub user: UserView,
    /// The officer's bearer token. Only its hash is kept.
    pub token: String,
    /// The one-time enrolment code for the web workspace (`login: enrol`), shown this once;
    /// the enrolment link is the workspace's `/enrol#CODE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrolment_code: Option<String>,
    /// The one-time web password (`login: password`), shown this once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `POST /v1/users/{name}/grants`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrantBody {
    /// `GROUP[:read|:post]`.
    pub grant: String,
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_agrees_with_humantime_where_it_can_print() {
        // Every day from 1970 to 9999 at a time that moves through the day, and the last
        // millisecond humantime prints.
        let mut ms = 0u64;
        while ms < 253_402_300_800_000 {
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
            assert_eq!(rfc3339(ms), humantime::format_rfc3339_millis(t).to_string());
            ms += 7 * 86_400_000 + 3_723_457;
        }
        assert_eq!(rfc3339(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn rfc3339_formats_years_after_9999_and_every_u64() {
        assert_eq!(rfc3339(253_402_300_800_000), "+010000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(u64::MAX), "+584556019-04-03T14:25:51.615Z");
    }
}
