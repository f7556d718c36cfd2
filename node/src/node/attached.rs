//! The actor's side of attachments: which stored message names which attachment, which
//! attachments to fetch and when, whether a peer may have one, whether an officer may open
//! one.
//!
//! A peer gets chunks of an attachment only if it is a member of the group of a message
//! naming it, in that message's epoch and in the group's current epoch (the rule for the
//! message itself); an officer opens one only through a message naming it that the officer
//! may read (grants and TLP:RED recipients apply as to the message). Anything else looks
//! exactly like an attachment this node does not have.

use std::sync::Arc;

use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::message::{self, Place};
use liaison_protocol::transfer::ChunkRequest;
use liaison_protocol::{GroupId, MessageId, NodeId};
use tracing::{info_span, warn, Instrument};

use super::command::Internal;
use super::{Actor, MAX_FETCHES, MAX_FETCH_QUEUE};
use crate::accounts::Principal;
use crate::attachments::transfer::{self, Job};
use crate::attachments::Attachments;
use crate::error::{Error, Result};

impl Actor {
    /// The received messages of a durable write are stored and indexed: fetch the eager
    /// attachments among them.
    pub(super) fn fetch_eager(&mut self, wanted: Vec<FetchWanted>) {
        let eager = self.attachments.options().eager_max_bytes;
        for job in wanted {
            if job.from.is_some() && job.reference.size <= eager {
                self.want_attachment(job);
            }
        }
    }

    /// Fetches the attachment of `wanted` unless it is held whole or being fetched: at once
    /// if a slot is free, else after the fetches before it.
    pub(super) fn want_attachment(&mut self, wanted: FetchWanted) {
        let id = wanted.reference.id;
        if self.fetching.contains(&id) || self.attachments.is_whole(&id) {
            return;
        }
        if self.fetching.len() < MAX_FETCHES {
            self.spawn_fetch(wanted);
        } else if self.fetch_queue.len() < MAX_FETCH_QUEUE
            && !self.fetch_queue.iter().any(|w| w.reference.id == id)
        {
            self.fetch_queue.push_back(wanted);
        }
    }

    /// Starts queued fetches while slots are free.
    pub(super) fn start_fetches(&mut self) {
        while self.fetching.len() < MAX_FETCHES {
            let Some(wanted) = self.fetch_queue.pop_front() else {
                return;
            };
            let id = wanted.reference.id;
            if !self.fetching.contains(&id) && !self.attachments.is_whole(&id) {
                self.spawn_fetch(wanted);
            }
        }
    }

    fn spawn_fetch(&mut self, wanted: FetchWanted) {
        let id = wanted.reference.id;
        // The author first, then the peer the message came from, then the other members.
        let mut peers: Vec<NodeId> = Vec::new();
        let members = self
            .engine
            .group(&wanted.group)
            .map(|g| g.members().keys().copied().collect::<Vec<_>>())
            .unwrap_or_default();
        for p in [Some(wanted.author), wanted.from]
            .into_iter()
            .flatten()
            .chain(members)
        {
            if p != self.me && !peers.contains(&p) {
                peers.push(p);
            }
        }
        self.fetching.insert(id);
        let job = Job {
            reference: wanted.reference,
            message: wanted.message,
            peers,
        };
        let (attachments, connections) = (self.attachments.clone(), self.connections.clone());
        let (tx, cancel) = (self.internal_tx.clone(), self.shutdown.clone());
        self.writes.spawn(
            async move {
                let result = transfer::fetch(attachments, connections, job, cancel).await;
                let _ = tx.send(Internal::FetchDone { id, result }).await;
            }
            .instrument(info_span!("fetch", attachment = %id.short())),
        );
    }

    /// At start: fetches what was being fetched, and the eager attachments not yet held.
    pub(super) fn resume_fetches(&mut self) {
        let partial = self.attachments.files().partial_ids().unwrap_or_else(|e| {
            warn!(error = %e, "cannot list partly fetched attachments");
            Vec::new()
        });
        let eager = self.attachments.options().eager_max_bytes;
        for (id, size, message) in self.attachments.named().all() {
            if self.attachments.is_whole(&id) || (size > eager && !partial.contains(&id)) {
                continue;
            }
            if let Some(wanted) = self.wanted_from_message(message, id) {
                self.want_attachment(wanted);
            }
        }
    }

    /// The attachment `id` as stored message `message` names it; none if the message is
    /// withheld (its author removed or revoked before it), so that such a file is neither
    /// fetched nor served to peers.
    fn wanted_from_message(&self, message: MessageId, id: AttachmentId) -> Option<FetchWanted> {
        let bytes = self.store.message(&message).ok()??;
        self.wanted_from_bytes(message, &bytes, id)
    }

    /// The same, from the stored message's bytes already read.
    fn wanted_from_bytes(
        &self,
        message: MessageId,
        bytes: &[u8],
        id: AttachmentId,
    ) -> Option<FetchWanted> {
        let (_, header, _) = message::decode(bytes).ok()?;
        let state = self.engine.group(&header.group)?;
        if self.withheld(state, &header) {
            return None;
        }
        let (_, content) = message::verify_and_open(bytes, state).ok()?;
        let reference = content
            .payload
            .attachments()
            .iter()
            .find(|a| a.id == id)?
            .clone();
        Some(FetchWanted {
            reference,
            message,
            group: header.group,
            author: header.author,
            from: None,
        })
    }

    /// Whether `peer` may have chunks of `request.attachment`: the reference if so. A holder
    /// that may serve it but has nothing of it fetches it (so attachments are relayed).
    pub(super) fn serve_attachment(
        &mut self,
        peer: NodeId,
        request: &ChunkRequest,
    ) -> Option<AttachmentRef> {
        let bytes = self.store.message(&request.message).ok()??;
        let (_, header, _) = message::decode(&bytes).ok()?;
        let state = self.engine.group(&header.group)?;
        state.role_at(&peer, header.epoch)?;
        state.role(&peer)?;
        let mut wanted = self.wanted_from_bytes(request.message, &bytes, request.attachment)?;
        wanted.from = Some(peer);
        let reference = wanted.reference.clone();
        if !self.attachments.is_whole(&reference.id) {
            self.want_attachment(wanted);
        }
        Some(reference)
    }

    /// The reference of attachment `id` through a message naming it that `who` may read,
    /// once it is held whole here; fetched otherwise.
    pub(super) fn open_attachment(
        &mut self,
        who: &Principal,
        id: &AttachmentId,
    ) -> Result<AttachmentRef> {
        let not_found =
            || Error::NotFound(format!("no attachment {id} that you may open on this node"));
        let entry = self.attachments.named().entry(id).ok_or_else(not_found)?;
        for message in entry.messages {
            if self.read(who, &message, false).is_err() {
                continue;
            }
            let Some(wanted) = self.wanted_from_message(message, *id) else {
                continue;
            };
            if self.attachments.is_whole(id) {
                return Ok(wanted.reference);
            }
            let (held, count) = match self.attachments.files().existing_partial(id) {
                Ok(Some(p)) => (p.held().held(), p.held().count()),
                _ => (
                    0,
                    liaison_protocol::attachment::chunk_count(wanted.reference.size),
                ),
            };
            self.want_attachment(wanted);
            return Err(Error::NotYet(format!(
                "attachment {id} is being fetched from the group's nodes ({held} of {count} \
                 chunks here); ask again shortly"
            )));
        }
        Err(not_found())
    }
}

/// Records durably in the attachment index that these messages name these attachments. Called
/// on a write's own task *before* the messages are written: a crash between the two leaves an
/// index entry for a message that is not stored (harmless: opening an attachment goes through
/// a stored message the officer may read), never a stored message whose attachments cannot be
/// opened. Nothing to record costs nothing.
pub(super) async fn index_ahead(
    attachments: &Arc<Attachments>,
    wanted: &[FetchWanted],
) -> Result<()> {
    if wanted.is_empty() {
        return Ok(());
    }
    let attachments = attachments.clone();
    let entries: Vec<(AttachmentId, MessageId, u64)> = wanted
        .iter()
        .map(|w| (w.reference.id, w.message, w.reference.size))
        .collect();
    tokio::task::spawn_blocking(move || {
        for (id, message, size) in entries {
            attachments.named().add(id, message, size)?;
        }
        attachments.named().sync()
    })
    .await
    .map_err(|_| Error::ShuttingDown)?
}

/// An attachment a stored message names, which may need fetching.
#[derive(Debug, Clone)]
pub(super) struct FetchWanted {
    pub(super) reference: AttachmentRef,
    pub(super) message: MessageId,
    pub(super) group: GroupId,
    pub(super) author: NodeId,
    pub(super) from: Option<NodeId>,
}

impl FetchWanted {
    /// The attachments `refs` that message `message`, at `place`, names; `from` is the peer it
    /// came from (`None`: posted here).
    pub(super) fn named_by(
        message: MessageId,
        place: Place,
        refs: impl IntoIterator<Item = AttachmentRef>,
        from: Option<NodeId>,
    ) -> impl Iterator<Item = FetchWanted> {
        refs.into_iter().map(move |reference| FetchWanted {
            reference,
            message,
            group: place.group,
            author: place.author,
            from,
        })
    }
}
