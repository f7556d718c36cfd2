//! The live feed of new messages (`GET /v1/events`, the web workspace's live updates): each
//! message is opened once, when it becomes durable here, and every subscriber filters that one
//! view by what its caller may see, instead of each subscriber asking the actor to read,
//! verify and open the message again.
//!
//! The feed is built only while someone subscribes. A message on it was checked when it was
//! accepted (its signature, its author's right to post in the epoch, its ciphertext hash) or
//! was sealed here, so it is opened without checking its signature again; anything that hides
//! a stored message from views (a withheld author, see `Actor::withheld`) keeps it off the
//! feed. A quarantine placed after a message is on the feed does not take it back from a
//! stream that has not shown it yet; every later read goes by the quarantine.

use std::sync::Arc;

use liaison_protocol::message::{self, MessageId, Recipient};
use liaison_protocol::{GroupId, NodeId};

use super::reads::view::Ctx;
use super::Actor;
use crate::accounts::Principal;
use crate::views::MessageView;

/// A message as it became durable on this node, opened once for every live feed.
#[derive(Debug)]
pub struct Fresh {
    id: MessageId,
    group: GroupId,
    /// The view with its body and record.
    view: MessageView,
    /// Who may see it, if it is TLP:RED.
    red: Option<Red>,
}

/// Who may see a TLP:RED message: its named recipients on this node, and the officer of this
/// node who posted it.
#[derive(Debug)]
struct Red {
    me: NodeId,
    /// The posting officer, if this node is its author.
    own_officer: Option<String>,
    recipients: Vec<Recipient>,
}

impl Fresh {
    /// The message's id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The message as `who` may see it (the body and record only if `with_body`), or `None`
    /// if `who` may not see it: as [`Scoped::read`](super::Scoped::read) answers for a
    /// message just stored.
    pub fn view_for(&self, who: &Principal, with_body: bool) -> Option<MessageView> {
        who.access(&self.group)?;
        if let Some(red) = &self.red {
            let own = red.own_officer.as_deref() == Some(who.name());
            if !own && !crate::names::is_recipient(&red.recipients, red.me, who.name()) {
                return None;
            }
        }
        let mut view = self.view.clone();
        if !with_body {
            view.body = None;
            view.record = None;
        }
        Some(view)
    }
}

impl Actor {
    /// Puts messages that just became durable here on the live feed, if anyone subscribes:
    /// each with its envelope, or `None` to read it from the store.
    pub(super) fn publish_fresh<'a>(
        &self,
        messages: impl Iterator<Item = (MessageId, Option<&'a [u8]>)>,
    ) {
        if self.new_messages.receiver_count() == 0 {
            return;
        }
        let snap = self.snapshot();
        let ctx = super::reads::view::Ctx {
            snap: &snap,
            store: &self.store,
            attachments: &self.attachments,
        };
        for (id, envelope) in messages {
            let stored;
            let bytes = match envelope {
                Some(bytes) => bytes,
                None => match self.store.message(&id) {
                    Ok(Some(bytes)) => {
                        stored = bytes;
                        &stored[..]
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(id = %id.short(), error = %e, "cannot read a new message for the live feed");
                        continue;
                    }
                },
            };
            if let Some(fresh) = fresh(&ctx, id, bytes) {
                let _ = self.new_messages.send(Arc::new(fresh));
            }
        }
    }
}

/// Opens a message that just became durable here (see the module docs).
fn fresh(ctx: &Ctx<'_>, id: MessageId, bytes: &[u8]) -> Option<Fresh> {
    let snap = ctx.snap;
    let (envelope, header, decoded) = message::decode(bytes).ok()?;
    if decoded != id {
        return None;
    }
    let state = snap.group(&header.group)?;
    if snap.withheld(state, &header) {
        return None;
    }
    let verified = message::Verified {
        id,
        header,
        envelope,
    };
    let content = match message::open(&verified, state) {
        Ok(content) => content,
        Err(e) => {
            tracing::warn!(id = %id.short(), error = %e, "cannot open a new message for the live feed");
            return None;
        }
    };
    let h = verified.header;
    let red = (h.handling == message::Handling::Red).then(|| Red {
        me: snap.me,
        own_officer: (h.author == snap.me).then(|| content.officer.clone()),
        recipients: content.recipients.clone(),
    });
    Some(Fresh {
        id,
        group: h.group,
        view: ctx.view_of(&id, &h, content, state, true),
        red,
    })
}
