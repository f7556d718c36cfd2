//! One message as an officer sees it, read from the store against a [`Snapshot`].
//!
//! A stored envelope was checked when it was accepted (its signature, its author's right to
//! post in the epoch, its ciphertext hash) or was sealed here, so it is opened with the epoch
//! key without verifying its signature again. What hides it: a quarantine (checked before a
//! byte is read), a group the caller may not see, a withheld author (see
//! [`Snapshot::withheld`]), and TLP:RED for anyone but its named recipients and the officer
//! of this node who posted it. Each answers exactly like a message that is not here.

use std::collections::BTreeMap;

use liaison_protocol::message::{self, Content, Handling, Header, MessageId, Place};
use liaison_protocol::receipt::Receipt;
use liaison_protocol::{GroupId, GroupState, NodeId};

use super::snapshot::Snapshot;
use crate::accounts::Principal;
use crate::attachments::Attachments;
use crate::error::{Error, Result};
use crate::records::Shown;
use crate::store::Store;
use crate::views::{MessageView, ReceiptView};

/// What a view reads: the published snapshot, the store and the attachments.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub(crate) snap: &'a Snapshot,
    pub(crate) store: &'a Store,
    pub(crate) attachments: &'a Attachments,
}

/// A message opened for a caller that may read it.
pub(crate) struct Opened<'a> {
    pub(crate) header: Header,
    pub(crate) content: Content,
    pub(crate) state: &'a GroupState,
}

impl<'a> Ctx<'a> {
    /// The message `id` as `who` may see it (the body and record only if `with_body`).
    pub(crate) fn read(
        &self,
        who: &Principal,
        id: &MessageId,
        with_body: bool,
    ) -> Result<MessageView> {
        let opened = self.open(who, id)?;
        Ok(self.view_of(id, &opened.header, opened.content, opened.state, with_body))
    }

    /// Opens message `id` for `who` (see the module docs).
    pub(crate) fn open(&self, who: &Principal, id: &MessageId) -> Result<Opened<'a>> {
        // Before a byte of it is read: a quarantined message may be one that breaks a view.
        self.snap.check_quarantine(who, id)?;
        #[cfg(test)]
        super::super::faults::at_view(id);
        let not_found = || Error::NotFound(format!("no message {id} on this node"));
        let bytes = self.store.message(id)?.ok_or_else(not_found)?;
        let (envelope, header, decoded) = message::decode(&bytes)?;
        if decoded != *id || who.access(&header.group).is_none() {
            return Err(not_found());
        }
        let state = self.snap.group(&header.group).ok_or_else(not_found)?;
        if self.snap.withheld(state, &header) {
            return Err(not_found());
        }
        let verified = message::Verified {
            id: *id,
            header,
            envelope,
        };
        let content = message::open(&verified, state)?;
        let header = verified.header;
        if header.handling == Handling::Red {
            let own = header.author == self.snap.me && content.officer == who.name();
            if !own && !crate::names::is_recipient(&content.recipients, self.snap.me, who.name()) {
                return Err(not_found());
            }
        }
        Ok(Opened {
            header,
            content,
            state,
        })
    }

    /// The header of message `id` if `who` may see the message, without opening it: every
    /// check of [`Ctx::open`] but TLP:RED's recipients, which need the body.
    pub(crate) fn header(&self, who: &Principal, id: &MessageId) -> Result<Header> {
        self.snap.check_quarantine(who, id)?;
        let not_found = || Error::NotFound(format!("no message {id} on this node"));
        let bytes = self.store.message(id)?.ok_or_else(not_found)?;
        let (_, header, decoded) = message::decode(&bytes)?;
        if decoded != *id || who.access(&header.group).is_none() {
            return Err(not_found());
        }
        let state = self.snap.group(&header.group).ok_or_else(not_found)?;
        if self.snap.withheld(state, &header) {
            return Err(not_found());
        }
        Ok(header)
    }

    /// The view of a message this node holds and has opened.
    pub(crate) fn view_of(
        &self,
        id: &MessageId,
        h: &Header,
        content: Content,
        state: &GroupState,
        with_body: bool,
    ) -> MessageView {
        let snap = self.snap;
        let recipients = content
            .recipients
            .iter()
            .map(|r| format!("{}@{}", r.officer, snap.node_name(&r.node, Some(&h.group))))
            .collect();
        let shown = Shown::of(&content.payload);
        MessageView {
            id: id.to_string(),
            group_id: h.group.to_string(),
            group_name: state.name().to_owned(),
            author_id: h.author.to_string(),
            author_name: snap.node_name(&h.author, Some(&h.group)),
            officer: content.officer,
            created_at: crate::views::rfc3339(h.created_at.0),
            created_at_ms: h.created_at.0,
            subject: shown.subject,
            handling: h.handling.to_string(),
            expires_at: h.expires_at.map(|t| crate::views::rfc3339(t.0)),
            reply_to: content.reply_to.map(|r| r.to_string()),
            recipients,
            epoch: h.epoch,
            seq: h.seq,
            author_removed_in_epoch: state.removed_in(&h.author),
            body: with_body.then_some(shown.body),
            kind: shown.kind,
            record: shown.record.filter(|_| with_body),
            unreadable: shown.unreadable,
            nominal_withheld: false,
            attachments: content
                .payload
                .attachments()
                .iter()
                .map(|a| crate::views::AttachmentView {
                    id: a.id.to_string(),
                    name: a.name.clone(),
                    media_type: a.media_type.clone(),
                    size: a.size,
                    held: self.attachments.is_whole(&a.id),
                })
                .collect(),
        }
    }

    /// Every message of `group` that `who` may read, with its record, oldest first.
    pub(crate) fn readable(&self, who: &Principal, group: &GroupId) -> Result<Vec<MessageView>> {
        let mut out = Vec::new();
        for entry in self.store.listing(group, None)? {
            let entry = entry?;
            match self.read(who, &entry.id, true) {
                Ok(v) => out.push(v),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The receipts of message `id`: per receiver, the earliest time it says it stored the
    /// message. Only whoever may read the message sees them.
    pub(crate) fn receipts(&self, who: &Principal, id: &MessageId) -> Result<Vec<ReceiptView>> {
        let opened = self.open(who, id)?;
        let h = &opened.header;
        let (group, author) = (h.group, h.author);
        let origin = Place {
            group,
            author,
            epoch: h.epoch,
            seq: h.seq,
        };
        let me = self.snap.me;
        let mut stored: BTreeMap<NodeId, u64> = BTreeMap::new();
        for (_, bytes) in self.store.receipts(&origin)? {
            let Ok(r) = Receipt::verify(&bytes) else {
                continue;
            };
            if !r.covers(id) || r.receiver == me || r.group != group {
                continue;
            }
            let at = stored.entry(r.receiver).or_insert(r.stored_at.0);
            *at = (*at).min(r.stored_at.0);
        }
        let mut out: Vec<(NodeId, u64)> = stored.into_iter().collect();
        // A message from another node was stored here when it arrived (the time kept with it);
        // this node's signed receipt for it went to the author and is not kept.
        if author != me {
            let arrived = self
                .store
                .message_meta(id)?
                .and_then(|m| <[u8; 8]>::try_from(m.as_slice()).ok())
                .map(u64::from_be_bytes);
            if let Some(at) = arrived {
                out.push((me, at));
            }
        }
        out.sort_by_key(|(receiver, _)| *receiver.as_bytes());
        Ok(out
            .into_iter()
            .map(|(receiver, at)| ReceiptView {
                receiver_id: receiver.to_string(),
                receiver_name: self.snap.node_name(&receiver, Some(&group)),
                stored_at: crate::views::rfc3339(at),
            })
            .collect())
    }

    /// The one message whose id starts with `prefix` in a group `who` may read.
    pub(crate) fn resolve_id(&self, who: &Principal, prefix: &str) -> Result<MessageId> {
        use super::super::resolve::{is_prefix, MIN_PREFIX};
        if !is_prefix(prefix) {
            return Err(Error::Invalid(format!(
                "{prefix:?} is not a message id: give its 64 hex digits, or at least its first \
                 {MIN_PREFIX}"
            )));
        }
        let mut found: Vec<MessageId> = Vec::new();
        for group in self.snap.visible(who) {
            for id in self.store.group_messages(&group)? {
                if id.to_string().starts_with(prefix) && !found.contains(&id) {
                    found.push(id);
                }
            }
        }
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!(
                "no message whose id starts with {prefix} on this node"
            ))),
            many => Err(Error::Invalid(format!(
                "{} messages have ids starting with {prefix}: give more digits",
                many.len()
            ))),
        }
    }
}
