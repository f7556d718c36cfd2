//! Writing this node's own posts: the posts waiting since the last round are sealed and written
//! as one store batch, their audit records with them, and each is answered (and pushed to
//! peers) once that batch and its records are durable.
//!
//! Rounds overlap: the next round is sealed and applied to the store as soon as the previous one
//! is applied, while the previous one's flush still runs, so that posts arriving meanwhile join
//! the next flush instead of waiting for a whole round to end (with one round at a time, a post
//! waited on average for one and a half rounds: seal, apply, flush, answer). What stays in
//! order, so that this node's own sequence never has a gap:
//!
//! - One round is applied at a time, in the order the rounds were sealed, and each after the
//!   one before it ([`Store::stage_messages_after`](crate::store::Store::stage_messages_after)
//!   refuses a round whose predecessor a failed flush lost): a round is never durable when an
//!   earlier one is not.
//! - Rounds are answered in the order they were sealed. A failed round's sequence numbers are
//!   handed back (`Engine::handle_local_failed`) together with those of every round sealed after
//!   it, once none is in flight; no new round is sealed meanwhile.
//! - At most [`MAX_POST_ROUNDS`] rounds are in flight; what arrives meanwhile waits for the next.

use std::time::Duration;

use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::message::{self, Content, Handling, MessageId, Payload, Sealed};
use liaison_protocol::record::Record;
use liaison_protocol::sync::LocalDraft;
use liaison_protocol::{GroupId, Timestamp, UsageError};
use rand_core::OsRng;
use tokio::sync::oneshot;

use super::attached::FetchWanted;
use super::command::Internal;
use super::command::Post;
use super::{now, Actor};
use crate::accounts::{Access, Principal};
use crate::error::{Error, Result};
use crate::store::{DurableTicket, NewMessage};

/// Rounds of local posts in flight at most (being applied, or applied and waiting for their
/// flush).
pub(super) const MAX_POST_ROUNDS: usize = 4;

/// The rounds of local posts being written.
#[derive(Debug, Default)]
pub(super) struct Rounds {
    /// A round is being applied to the store: the next is sealed only once it is.
    staging: bool,
    /// Rounds sealed and not answered yet (the one being applied included).
    in_flight: usize,
    /// Completes when the last round sealed has been answered: the next round is answered
    /// after it.
    last: Option<oneshot::Receiver<()>>,
    /// The write of the last round applied, which the next round must not outlive.
    last_ticket: Option<DurableTicket>,
    /// The posts of failed rounds, handed back to the engine once no round is in flight.
    failed: Vec<Sealed>,
}

/// One post of a round: the sealed message, its answer, and its audit record.
type RoundPost = (
    Sealed,
    oneshot::Sender<Result<MessageId>>,
    Option<crate::audit::PostAudit>,
);

impl Actor {
    /// Seals the posts waiting since the last round and writes them as one store batch (one
    /// sled batch, one flush, shared with any round staged meanwhile), unless a round is being
    /// applied, [`MAX_POST_ROUNDS`] are in flight, or a failed round's sequence numbers are
    /// still to be handed back (see the module docs).
    pub(super) fn store_local_posts(&mut self) {
        let rounds = &self.post_rounds;
        if self.local_posts.is_empty()
            || rounds.staging
            || rounds.in_flight >= MAX_POST_ROUNDS
            || !rounds.failed.is_empty()
        {
            return;
        }
        let now_instant = std::time::Instant::now();
        let mut posts: Vec<RoundPost> = Vec::new();
        // Whom each of `posts` answers, for the reply index.
        let mut parents: Vec<Option<MessageId>> = Vec::new();
        for post in std::mem::take(&mut self.local_posts) {
            let draft = LocalDraft {
                now: post.created_at,
                handling: post.handling,
                expires_at: None,
                content: &post.content,
            };
            match self.engine.seal(&post.group, draft, &mut OsRng) {
                Ok(sealed) => {
                    if !post.attachments.is_empty() {
                        self.posted_attachments.insert(sealed.id, post.attachments);
                    }
                    parents.push(post.content.reply_to);
                    posts.push((sealed, post.reply, post.audit));
                }
                Err(
                    liaison_protocol::UsageError::SequenceUnconfirmed(_)
                    | liaison_protocol::UsageError::RestorePending(_),
                ) if now_instant < post.wait_until => {
                    self.local_posts.push(post);
                }
                Err(e) => {
                    self.pending_writes = self.pending_writes.saturating_sub(1);
                    let _ = post.reply.send(Err(e.into()));
                }
            }
        }
        if posts.is_empty() {
            return;
        }
        let rounds = &mut self.post_rounds;
        rounds.staging = true;
        rounds.in_flight += 1;
        let before = rounds.last.take();
        let (done, last) = oneshot::channel();
        rounds.last = Some(last);
        let after = rounds.last_ticket;
        let named: Vec<FetchWanted> = posts
            .iter()
            .flat_map(|(sealed, _, _)| {
                let refs = self
                    .posted_attachments
                    .get(&sealed.id)
                    .into_iter()
                    .flatten();
                FetchWanted::named_by(sealed.id, sealed.header.place(), refs.cloned(), None)
            })
            .collect();
        let store = self.store.clone();
        let attachments = self.attachments.clone();
        let tx = self.internal_tx.clone();
        self.writes.spawn(async move {
            // The attachments a post names are indexed before it is written.
            let indexed = super::attached::index_ahead(&attachments, &named)
                .await
                .map_err(|e| format!("cannot index the attachments it names: {e}"));
            let batch = posts
                .iter()
                .zip(parents)
                .map(|((sealed, _, _), reply_to)| NewMessage {
                    id: sealed.id,
                    place: sealed.header.place(),
                    envelope: sealed.bytes.clone(),
                    meta: now().0.to_be_bytes().to_vec(),
                    created_at: sealed.header.created_at.0,
                    reply_to,
                })
                .collect();
            let staged = match indexed {
                Ok(()) => {
                    crate::audit::stage_posts(
                        &store,
                        batch,
                        after,
                        posts
                            .iter()
                            .map(|(sealed, _, audit)| (sealed.id, audit.as_ref())),
                    )
                    .await
                }
                Err(e) => Err(e),
            };
            let (result, audited, staged) = match staged {
                Ok(staged) => {
                    let _ = tx
                        .send(Internal::PostsStaged {
                            ticket: staged.ticket(),
                        })
                        .await;
                    let (result, audited) = staged.settle(&store).await;
                    (result, audited, true)
                }
                Err(e) => (Err(e), posts.iter().map(|_| Ok(())).collect(), false),
            };
            // Answered in the order the rounds were sealed (a dropped sender: that round's
            // task ended, answered or not, which the actor learns on its own).
            if let Some(before) = before {
                let _ = before.await;
            }
            let posts = posts
                .into_iter()
                .zip(audited)
                .map(|((sealed, reply, _), audited): (RoundPost, Result<()>)| {
                    (sealed, reply, audited.err())
                })
                .collect();
            let _ = tx
                .send(Internal::PostsStored {
                    posts,
                    result,
                    staged,
                })
                .await;
            let _ = done.send(());
        });
    }

    /// A round was applied to the store: the next may be sealed and applied while its flush
    /// runs.
    pub(super) fn on_posts_staged(&mut self, ticket: Option<DurableTicket>) {
        self.post_rounds.staging = false;
        if ticket.is_some() {
            self.post_rounds.last_ticket = ticket;
        }
    }

    /// A round was written (or failed to be): each post is answered, and pushed to peers once
    /// durable.
    pub(super) fn on_posts_stored(
        &mut self,
        posts: Vec<(Sealed, oneshot::Sender<Result<MessageId>>, Option<Error>)>,
        result: std::result::Result<(), String>,
        staged: bool,
    ) {
        let rounds = &mut self.post_rounds;
        if !staged {
            rounds.staging = false;
        }
        rounds.in_flight = rounds.in_flight.saturating_sub(1);
        self.pending_writes = self.pending_writes.saturating_sub(posts.len());
        match &result {
            Err(_) => rounds
                .failed
                .extend(posts.iter().map(|(sealed, _, _)| sealed.clone())),
            Ok(()) => self.metrics.stored_local(posts.len()),
        }
        if rounds.in_flight == 0 {
            rounds.last_ticket = None;
            if !rounds.failed.is_empty() {
                // Every round sealed after the first failed one has ended too: their
                // sequence numbers go back together, so that none is left as a gap.
                let failed = std::mem::take(&mut rounds.failed);
                self.engine.handle_local_failed(&failed);
            }
        }
        for (sealed, reply, audit_failed) in posts {
            match &result {
                Ok(()) => {
                    self.engine.commit_local_message(&sealed);
                    self.note_origin(sealed.id, &sealed.header);
                    if let Some(refs) = self.posted_attachments.remove(&sealed.id) {
                        // Indexed before the write (`attached::index_ahead`).
                        let ids: Vec<AttachmentId> = refs.iter().map(|r| r.id).collect();
                        self.attachments.posted(&ids);
                    }
                    self.publish_fresh(std::iter::once((sealed.id, Some(&sealed.bytes[..]))));
                    let _ = reply.send(match audit_failed {
                        None => Ok(sealed.id),
                        Some(e) => Err(e),
                    });
                }
                Err(e) => {
                    self.posted_attachments.remove(&sealed.id);
                    let _ = reply.send(Err(Error::io(
                        "cannot store the message",
                        std::io::Error::other(e.clone()),
                    )));
                }
            }
        }
    }
}

/// A post accepted from the API, not yet sealed.
pub(super) struct LocalPost {
    pub(super) group: GroupId,
    pub(super) content: Content,
    /// The attachments the content names, stored with the message once it is sealed.
    pub(super) attachments: Vec<AttachmentRef>,
    pub(super) handling: Handling,
    pub(super) created_at: Timestamp,
    /// Until when it may wait for the group's sequence numbers to be confirmed (see
    /// `Engine::seal`): a node that has just started waits for its peers to connect.
    pub(super) wait_until: std::time::Instant,
    pub(super) reply: oneshot::Sender<Result<MessageId>>,
    /// Its audit record, written when it is stored (see [`Command::PostEach`]).
    pub(super) audit: Option<crate::audit::PostAudit>,
}

/// How long a post waits, after the node started or joined the group, for a member to say
/// which of this node's sequence numbers it holds, before it is refused.
pub(super) const POST_CONFIRM_WAIT: Duration = Duration::from_secs(10);

impl Actor {
    pub(super) fn post(
        &mut self,
        who: &Principal,
        group: &str,
        post: Post,
        audit: Option<crate::audit::PostAudit>,
        reply: oneshot::Sender<Result<MessageId>>,
    ) {
        let result = (|| {
            let gid = self.resolve_visible_group(who, group)?;
            if who.access(&gid) != Some(Access::Post) {
                return Err(Error::Forbidden(format!(
                    "officer {} may only read group {}",
                    who.name(),
                    self.engine.group(&gid).map_or("", |g| g.name())
                )));
            }
            if post.handling == Handling::Red && post.recipients.is_empty() {
                return Err(Error::Invalid(
                    "a TLP:RED message needs its recipients: --to OFFICER@NODE (repeatable)".into(),
                ));
            }
            let state = self.engine.group(&gid).ok_or(UsageError::NotAMember(gid))?;
            let known = |name: &str| self.resolve_peer(name).ok();
            let recipients = crate::names::resolve_recipients(
                state,
                self.me,
                &self.name,
                &known,
                &post.recipients,
            )?;
            if let Some(parent) = &post.reply_to {
                self.check_reply(who, &gid, parent, post.record.as_deref())?;
            }
            // Before sealing, which takes the next seq: a post the store would refuse must not
            // leave a gap in this node's sequence.
            self.store.check_room()?;
            let refs = post
                .attachments
                .iter()
                .map(|id| self.attachments.pending(who.name(), id))
                .collect::<Result<Vec<_>>>()?;
            let payload = match (&post.record, refs.is_empty()) {
                (Some(record), _) => record.to_payload(refs.clone())?,
                (None, true) => Payload::Text {
                    subject: post.subject,
                    body: post.body,
                },
                (None, false) => Record::Note(liaison_protocol::record::Note {
                    subject: post.subject,
                    body: post.body,
                })
                .to_payload(refs.clone())?,
            };
            let content = Content {
                officer: post.officer,
                recipients,
                reply_to: post.reply_to,
                payload,
            };
            // What `Engine::seal` would refuse (membership, role, content limits) is refused
            // now; sealing itself waits for the write (see `store_local_posts`).
            let state = self
                .engine
                .group(&gid)
                .ok_or(liaison_protocol::UsageError::NotAMember(gid))?;
            message::check_draft(state, &self.me, &content)?;
            Ok((gid, content, refs))
        })();
        let (group, content, attachments) = match result {
            Ok(s) => s,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        // Sealed and stored with the other posts of this round in one write.
        self.pending_writes += 1;
        self.local_posts.push(LocalPost {
            group,
            content,
            attachments,
            handling: post.handling,
            created_at: now(),
            wait_until: std::time::Instant::now() + POST_CONFIRM_WAIT,
            reply,
            audit,
        });
    }
}
