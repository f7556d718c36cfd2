//! The workspace's one door into the node: every read and change the pages make goes through
//! [`Facade`], so that the pages do not depend on how the node is asked (today: commands on
//! [`NodeHandle`], run as the officer with [`Command::As`]).
//!
//! Reads are scoped to the officer's [`Principal`]: a group without a grant, and a RED message
//! not addressed to the officer, answer "not found" as through the API. Operator actions run
//! as the node's admin; the pages check the operator role before calling them.
//!
//! The node lists a group's messages whole today ([`Command::Inbox`]); [`Facade::timeline`]
//! filters and cuts that list into pages of [`PAGE_SIZE`], newest first, behind a cursor, so
//! that pages and their links stay the same when the node serves pages itself.

use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::message::MessageId;
use liaison_protocol::record::{Record, RecordKind};
use liaison_protocol::{Handling, NodeId, Role};
use tokio::sync::broadcast;

use crate::accounts::Principal;
use crate::error::{Error, Result};
use crate::node::{Command, NodeHandle, Post};
use crate::views::{GroupView, MessageView, PeerView, ReceiptView, Status, ThreadView};

/// Messages on one timeline page.
pub const PAGE_SIZE: usize = 25;
/// Unread counts stop at this number (shown as "999+").
pub const UNREAD_CAP: u64 = 999;
/// Longest chain of replies followed up to a thread's first message.
const MAX_THREAD_DEPTH: usize = 64;

/// The kinds of message the workspace shows and composes (the record kinds).
pub const KINDS: [&str; 6] = [
    "note",
    "seizure",
    "cultural_object",
    "alert",
    "request",
    "feedback",
];

/// The TLP 2.0 handling codes, as the API spells them.
pub const HANDLINGS: [&str; 5] = ["clear", "green", "amber", "amber+strict", "red"];

/// The workspace's view of the node.
#[derive(Debug, Clone)]
pub struct Facade {
    node: NodeHandle,
}

/// What a timeline shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// One kind (see [`KINDS`]).
    pub kind: Option<String>,
    /// One handling code.
    pub handling: Option<String>,
    /// Created at or after (ms since the Unix epoch).
    pub from_ms: Option<u64>,
    /// Created before (ms since the Unix epoch).
    pub until_ms: Option<u64>,
    /// Author organisation (node name).
    pub org: Option<String>,
}

/// A page of a timeline, newest first.
#[derive(Debug, Clone)]
pub struct TimelinePage {
    /// The messages.
    pub items: Vec<MessageView>,
    /// The cursor of the next (older) page.
    pub next: Option<String>,
    /// Author organisations seen in the group (for the filter).
    pub orgs: Vec<String>,
}

/// A message to post, as the compose form gives it.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// Subject.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Handling code as text.
    pub handling: String,
    /// RED recipients, `OFFICER@NODE`.
    pub recipients: Vec<String>,
    /// The message replied to.
    pub reply_to: Option<String>,
    /// A structured record (any kind but a note), in its JSON Schema's shape; subject and
    /// body are then unused.
    pub record: Option<(RecordKind, serde_json::Value)>,
    /// Files uploaded with the form (by this officer, not yet posted), to name.
    pub attachments: Vec<AttachmentId>,
}

/// A refusal of one field of a draft, or of the whole draft (`field` empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The form field (`subject`, `body`, `handling`, `recipients`), or empty.
    pub field: &'static str,
    /// The node's reason.
    pub message: String,
}

/// Why a post failed.
#[derive(Debug)]
pub enum PostError {
    /// The draft was refused, field by field.
    Fields(Vec<FieldError>),
    /// The draft's record was refused, each problem at its JSON pointer into the record.
    Record(Vec<liaison_protocol::FieldError>),
    /// Anything else (not allowed, node stopping, ...).
    Node(Error),
}

/// A message with the messages of its thread.
#[derive(Debug, Clone)]
pub struct Thread {
    /// The thread, first message first; each with its depth under the first.
    pub items: Vec<(MessageView, usize)>,
}

/// Kind of a message: `note`, a record kind, or `unknown` for a record this node cannot
/// read.
pub fn kind_of(m: &MessageView) -> &str {
    &m.kind
}

impl Facade {
    /// The facade over `node`.
    pub fn new(node: NodeHandle) -> Facade {
        Facade { node }
    }

    async fn ask_as<T>(
        &self,
        who: &Principal,
        make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Command,
    ) -> Result<T> {
        self.node.as_officer(who.clone()).ask(make).await
    }

    /// The groups `who` may see.
    pub async fn groups(&self, who: &Principal) -> Result<Vec<GroupView>> {
        self.node.as_officer(who.clone()).groups().await
    }

    /// One group `who` may see, by id or name.
    pub async fn group(&self, who: &Principal, group: &str) -> Result<GroupView> {
        let group = group.to_owned();
        self.node.as_officer(who.clone()).group(group).await
    }

    async fn all_of(&self, who: &Principal, group: &str) -> Result<Vec<MessageView>> {
        let group = Some(group.to_owned());
        self.ask_as(who, |reply| Command::Inbox { group, reply })
            .await?
    }

    /// One page of a group's timeline, newest first, after `cursor` (from a previous page).
    pub async fn timeline(
        &self,
        who: &Principal,
        group: &str,
        filter: &Filter,
        cursor: Option<&str>,
    ) -> Result<TimelinePage> {
        let all = self.all_of(who, group).await?;
        let mut orgs: Vec<String> = all.iter().map(|m| m.author_name.clone()).collect();
        orgs.sort();
        orgs.dedup();
        let cursor = cursor.and_then(parse_cursor);
        let mut items: Vec<MessageView> = all
            .into_iter()
            .rev()
            .filter(|m| matches(m, filter))
            .filter(|m| {
                cursor
                    .as_ref()
                    .is_none_or(|c| (m.created_at_ms, &m.id) < (c.0, &c.1))
            })
            .take(PAGE_SIZE + 1)
            .collect();
        let next = if items.len() > PAGE_SIZE {
            items.truncate(PAGE_SIZE);
            items
                .last()
                .map(|m| format!("{}.{}", m.created_at_ms, m.id))
        } else {
            None
        };
        Ok(TimelinePage { items, next, orgs })
    }

    /// Messages of `group` newer than `since_ms` that `officer` did not post, up to
    /// [`UNREAD_CAP`].
    pub async fn unread(&self, who: &Principal, group: &str, since_ms: u64) -> Result<u64> {
        let all = self.all_of(who, group).await?;
        let mut n = 0;
        for m in all.iter().rev() {
            if m.created_at_ms <= since_ms || n >= UNREAD_CAP {
                break;
            }
            if m.officer != who.name() {
                n += 1;
            }
        }
        Ok(n)
    }

    /// The newest message time of `group`, for marking it read.
    pub async fn newest(&self, who: &Principal, group: &str) -> Result<Option<u64>> {
        Ok(self
            .all_of(who, group)
            .await?
            .last()
            .map(|m| m.created_at_ms))
    }

    /// One message with its body.
    pub async fn message(&self, who: &Principal, id: &str) -> Result<MessageView> {
        let id = parse_id(id)?;
        self.ask_as(who, |reply| Command::Read { id, reply })
            .await?
    }

    /// The organisations that confirmed storing a message.
    pub async fn receipts(&self, who: &Principal, id: &str) -> Result<Vec<ReceiptView>> {
        let id = parse_id(id)?;
        self.ask_as(who, |reply| Command::Receipts { id, reply })
            .await?
    }

    /// The thread `message` belongs to: its first message and every reply below it that `who`
    /// may see, in reply order.
    pub async fn thread(&self, who: &Principal, message: &MessageView) -> Result<Thread> {
        let all = self.all_of(who, &message.group_id).await?;
        let by_id: std::collections::HashMap<&str, &MessageView> =
            all.iter().map(|m| (m.id.as_str(), m)).collect();
        let mut root = message.id.as_str();
        for _ in 0..MAX_THREAD_DEPTH {
            match by_id.get(root).and_then(|m| m.reply_to.as_deref()) {
                Some(parent) if by_id.contains_key(parent) => root = parent,
                _ => break,
            }
        }
        let mut items = Vec::new();
        let mut stack = vec![(root, 0usize)];
        while let Some((id, depth)) = stack.pop() {
            let Some(m) = by_id.get(id) else { continue };
            items.push(((*m).clone(), depth));
            let mut children: Vec<&MessageView> = all
                .iter()
                .filter(|c| c.reply_to.as_deref() == Some(id))
                .collect();
            children.sort_by_key(|c| std::cmp::Reverse(c.created_at_ms));
            if depth < MAX_THREAD_DEPTH {
                stack.extend(children.into_iter().map(|c| (c.id.as_str(), depth + 1)));
            }
        }
        Ok(Thread { items })
    }

    /// Posts a draft to `group` as `who`; a refusal names the field it concerns. `audit`: the
    /// post's audit record, written by the node with the message and made durable by the same
    /// flush (see [`crate::audit::stage_posts`]), so that the answer waits for one flush.
    pub async fn post(
        &self,
        who: &Principal,
        group: &str,
        draft: Draft,
        audit: Option<crate::audit::PostAudit>,
    ) -> std::result::Result<MessageId, PostError> {
        let mut errors = Vec::new();
        let handling = match draft.handling.parse::<Handling>() {
            Ok(h) => Some(h),
            Err(e) => {
                errors.push(FieldError {
                    field: "handling",
                    message: e.to_string(),
                });
                None
            }
        };
        let reply_to = match draft.reply_to.as_deref().filter(|r| !r.is_empty()) {
            None => None,
            Some(r) => match r.parse::<MessageId>() {
                Ok(id) => Some(id),
                Err(e) => {
                    errors.push(FieldError {
                        field: "",
                        message: e.to_string(),
                    });
                    None
                }
            },
        };
        let Some(handling) = handling.filter(|_| errors.is_empty()) else {
            return Err(PostError::Fields(errors));
        };
        // A record is read and checked as the API's records endpoint reads it, from its tagged
        // JSON form; its errors point into the record.
        let record = match draft.record {
            None => None,
            Some((kind, value)) => {
                let tagged = serde_json::json!({ "kind": kind.as_str(), "record": value });
                let record = Record::from_tagged_value(&tagged).map_err(|e| {
                    PostError::Record(e.into_iter().map(strip_record_pointer).collect())
                })?;
                Some(Box::new(record))
            }
        };
        let post = Post {
            officer: who.name().to_owned(),
            recipients: draft.recipients,
            subject: draft.subject,
            body: draft.body,
            record,
            attachments: draft.attachments,
            handling,
            reply_to,
        };
        let group = group.to_owned();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let item = crate::node::PostItem { post, audit, reply };
        let taken = self
            .node
            .as_officer(who.clone())
            .post_each(group, vec![item])
            .await;
        let answered = match taken {
            Ok(()) => answer.await.unwrap_or(Err(Error::Internal(
                "the node failed while handling this post; the fault is in its log",
            ))),
            Err(e) => Err(e),
        };
        match answered {
            Ok(id) => Ok(id),
            Err(Error::InvalidRecord(fields)) => Err(PostError::Record(
                fields.into_iter().map(strip_record_pointer).collect(),
            )),
            Err(Error::Invalid(message)) => Err(PostError::Fields(vec![FieldError {
                field: field_of(&message),
                message,
            }])),
            Err(e) => Err(PostError::Node(e)),
        }
    }

    /// The reference of attachment `id` (its name, media type, key) if `who` may read a
    /// message that names it.
    pub async fn attachment(&self, who: &Principal, id: &str) -> Result<AttachmentRef> {
        let id: AttachmentId = id
            .parse()
            .map_err(|e| Error::Invalid(format!("attachment {id}: {e}")))?;
        self.node.as_officer(who.clone()).attachment(id).await
    }

    /// The thread of message `id` as the node sees it: each entry with the state of an alert
    /// or request and the outcome of feedback.
    pub async fn thread_states(&self, who: &Principal, id: &str) -> Result<ThreadView> {
        let id = parse_id(id)?;
        self.ask_as(who, |reply| Command::Thread { id, reply })
            .await?
    }

    /// Messages as they are durably stored on this node (any group: each shows an officer
    /// what [`Fresh::view_for`](crate::node::Fresh::view_for) lets them see).
    pub async fn subscribe(
        &self,
    ) -> Result<broadcast::Receiver<std::sync::Arc<crate::node::Fresh>>> {
        self.node.ask(Command::Subscribe).await
    }

    // ----- operators (run as the node's admin) ----------------------------------------

    /// Node status.
    pub async fn status(&self) -> Result<Status> {
        self.node.as_admin().status().await
    }

    /// Pinned peers.
    pub async fn peers(&self) -> Result<Vec<PeerView>> {
        self.node.as_admin().peers().await
    }

    /// Pins a peer.
    pub async fn add_peer(&self, name: String, node_id: &str, address: String) -> Result<PeerView> {
        let node: NodeId = node_id
            .trim()
            .parse()
            .map_err(|e| Error::Invalid(format!("{e}")))?;
        self.node.as_admin().add_peer(name, node, address).await
    }

    /// Unpins a peer.
    pub async fn remove_peer(&self, peer: String) -> Result<()> {
        self.node.as_admin().remove_peer(peer).await
    }

    /// Every group of the node.
    pub async fn all_groups(&self) -> Result<Vec<GroupView>> {
        self.node.as_admin().groups().await
    }

    /// Creates a group owned by this node.
    pub async fn create_group(&self, name: String) -> Result<String> {
        self.node
            .as_admin()
            .create_group(name)
            .await
            .map(|g| g.to_string())
    }

    /// Admits a member (owner only).
    pub async fn add_member(&self, group: String, peer: String, role: &str) -> Result<GroupView> {
        let role: Role = role.parse().map_err(|e| Error::Invalid(format!("{e}")))?;
        self.node.as_admin().add_member(group, peer, role).await
    }

    /// Removes a member (owner only).
    pub async fn remove_member(&self, group: String, peer: String) -> Result<GroupView> {
        self.node.as_admin().remove_member(group, peer).await
    }
}

/// A record error's pointer from the tagged form (`/record/items/0`) to the record's own
/// (`/items/0`), as the form names its fields.
fn strip_record_pointer(mut e: liaison_protocol::FieldError) -> liaison_protocol::FieldError {
    if let Some(rest) = e.pointer.strip_prefix("/record") {
        e.pointer = rest.to_owned();
    }
    e
}

fn parse_id(id: &str) -> Result<MessageId> {
    id.parse()
        .map_err(|_| Error::NotFound(format!("no message {id} on this node")))
}

fn parse_cursor(c: &str) -> Option<(u64, String)> {
    let (ms, id) = c.split_once('.')?;
    Some((ms.parse().ok()?, id.to_owned()))
}

fn matches(m: &MessageView, f: &Filter) -> bool {
    f.kind.as_deref().is_none_or(|k| k == kind_of(m))
        && f.handling.as_deref().is_none_or(|h| h == m.handling)
        && f.from_ms.is_none_or(|t| m.created_at_ms >= t)
        && f.until_ms.is_none_or(|t| m.created_at_ms < t)
        && f.org.as_deref().is_none_or(|o| o == m.author_name)
}

/// The form field a node refusal is about.
fn field_of(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("recipient") {
        "recipients"
    } else if m.contains("subject") {
        "subject"
    } else if m.contains("body") || m.contains("too large") {
        "body"
    } else if m.contains("handling") || m.contains("tlp") {
        "handling"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_land_on_their_field() {
        assert_eq!(
            field_of("a TLP:RED message needs its recipients: --to OFFICER@NODE"),
            "recipients"
        );
        assert_eq!(field_of("subject over 512 bytes"), "subject");
        assert_eq!(field_of("the node is busy"), "");
        assert_eq!(parse_cursor("12.ab"), Some((12, "ab".to_owned())));
        assert_eq!(parse_cursor("x.ab"), None);
    }
}
