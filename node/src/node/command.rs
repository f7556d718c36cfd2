//! The command contract: what callers send the actor ([`Command`], through a [`NodeHandle`]),
//! what its own tasks send it ([`Internal`]), and what it reports to observers
//! ([`NodeEvent`]). Callers outside the node use the typed methods of [`super::Scoped`] (the
//! door), which choose the principal a command runs as; nothing here is reachable without
//! one.

use std::sync::Arc;

use liaison_protocol::attachment::{AttachmentId, AttachmentRef};
use liaison_protocol::message::{Handling, MessageId, Sealed};
use liaison_protocol::record::Record;
use liaison_protocol::{GroupId, NodeId, Role};
use tokio::sync::{mpsc, oneshot};

use crate::accounts::Principal;
use crate::error::{Error, Result};
use crate::federation::RosterView;
use crate::views::{GroupView, PeerView, QuarantineView, RosterLoaded, Rotated, Status};

use super::archive::ReadKey;
use super::attached::FetchWanted;
use super::door::Scoped;
use super::trust;

/// A request to the actor. Private to the node: callers reach it through the typed methods of
/// [`Scoped`], which say whom each request is for.
#[derive(Debug)]
pub(crate) enum Command {
    /// Node status.
    Status(oneshot::Sender<Status>),
    /// Pinned peers.
    Peers(oneshot::Sender<Vec<PeerView>>),
    /// Pin a peer.
    AddPeer {
        /// Name.
        name: String,
        /// Node id.
        node: NodeId,
        /// Address.
        address: String,
        /// Reply.
        reply: oneshot::Sender<Result<PeerView>>,
    },
    /// Pin a peer in place of the pin that has its name or its node id (`peer add --replace`).
    ReplacePeer {
        /// Name.
        name: String,
        /// Node id.
        node: NodeId,
        /// Address.
        address: String,
        /// Reply.
        reply: oneshot::Sender<Result<PeerView>>,
    },
    /// Take a federation roster (its encoded bytes) from the operator.
    LoadRoster {
        /// The encoded signed roster.
        bytes: Vec<u8>,
        /// Reply: what changed.
        reply: oneshot::Sender<Result<crate::views::RosterLoaded>>,
    },
    /// The federation rosters in force.
    Rosters(oneshot::Sender<Vec<crate::federation::RosterView>>),
    /// Move this node to new keys, with a rotation statement its peers follow.
    RotateKeys {
        /// Only the exchange key (the key group keys are wrapped to), not the identity.
        exchange_only: bool,
        /// Reply: the node id from now on.
        reply: oneshot::Sender<Result<crate::views::Rotated>>,
    },
    /// Unpin a peer and drop its connection.
    RemovePeer {
        /// Peer name or node id.
        peer: String,
        /// Reply.
        reply: oneshot::Sender<Result<()>>,
    },
    /// Groups.
    Groups(oneshot::Sender<Vec<GroupView>>),
    /// One group.
    Group {
        /// Group id or name.
        group: String,
        /// Reply.
        reply: oneshot::Sender<Result<GroupView>>,
    },
    /// Create a group owned by this node.
    CreateGroup {
        /// Name.
        name: String,
        /// Reply with the group id.
        reply: oneshot::Sender<Result<GroupId>>,
    },
    /// Add a member (owner only).
    AddMember {
        /// Group id or name.
        group: String,
        /// Peer name or node id.
        peer: String,
        /// Role.
        role: Role,
        /// Reply.
        reply: oneshot::Sender<Result<GroupView>>,
    },
    /// Remove a member (owner only).
    RemoveMember {
        /// Group id or name.
        group: String,
        /// Peer name or node id.
        peer: String,
        /// Reply.
        reply: oneshot::Sender<Result<GroupView>>,
    },
    /// Post a message.
    Post {
        /// Group id or name.
        group: String,
        /// What to post.
        post: Post,
        /// Reply with the message id once durable.
        reply: oneshot::Sender<Result<MessageId>>,
    },
    /// Post several messages to one group, in order, each as [`Command::Post`] posts one and
    /// answered on its own channel; an item's audit record, if it has one, is written by the
    /// node with the message and made durable by the same flush. A refused item changes nothing
    /// for the others. `reply` says that every item was taken.
    PostEach {
        /// Group id or name.
        group: String,
        /// The posts.
        items: Vec<PostItem>,
        /// Answered once every item is taken (each has its own answer).
        reply: oneshot::Sender<()>,
    },
    /// An attachment the caller may open: the reference (key included) from a message naming
    /// it that the caller may read, once it is held whole here. Not held yet: it is fetched,
    /// and the answer is [`Error::NotYet`].
    Attachment {
        /// The attachment.
        id: AttachmentId,
        /// Reply.
        reply: oneshot::Sender<Result<AttachmentRef>>,
    },
    /// What the metrics endpoint shows (see [`crate::metrics`]).
    Metrics(oneshot::Sender<crate::metrics::Snapshot>),
    /// Quarantine a stored message: no view of this node shows it until it is released (admin
    /// only).
    Quarantine {
        /// The message.
        id: MessageId,
        /// Why.
        reason: String,
        /// Reply, once the quarantine is durable.
        reply: oneshot::Sender<Result<crate::views::QuarantineView>>,
    },
    /// End a message's quarantine (admin only).
    Release {
        /// The message.
        id: MessageId,
        /// Reply, once the release is durable.
        reply: oneshot::Sender<Result<crate::views::QuarantineView>>,
    },
    /// The quarantines in force (admin only).
    Quarantined(oneshot::Sender<Result<Vec<crate::views::QuarantineView>>>),
    /// Run the inner command as `who` instead of as the admin: only granted groups are
    /// visible, and TLP:RED messages only to their named recipients.
    As(Principal, Box<Command>),
}

/// A message to post.
#[derive(Debug, Clone)]
pub struct Post {
    /// Posting officer (replaced by the requesting officer's name when posted through
    /// [`NodeHandle::as_officer`]).
    pub officer: String,
    /// Named recipients `OFFICER@NODE`; required for TLP:RED.
    pub recipients: Vec<String>,
    /// Subject (of a note; unused with a record).
    pub subject: String,
    /// Body (of a note; unused with a record).
    pub body: String,
    /// A structured record to post instead of the subject and body (boxed: records are large
    /// and commands travel through channels).
    pub record: Option<Box<Record>>,
    /// Handling code.
    pub handling: Handling,
    /// Reply-to.
    pub reply_to: Option<MessageId>,
    /// Attachments uploaded by the posting officer (`POST /v1/attachments`) to name in it.
    pub attachments: Vec<AttachmentId>,
}

/// One post of [`Scoped::post_each`].
#[derive(Debug)]
pub struct PostItem {
    /// What to post.
    pub post: Post,
    /// The audit record to write once the message is stored, before its flush.
    pub audit: Option<crate::audit::PostAudit>,
    /// Answered with the message id once the message and its audit record are durable.
    pub reply: oneshot::Sender<Result<MessageId>>,
}

/// A cheap handle to send commands to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    pub(super) tx: mpsc::Sender<Command>,
    /// Queries go here, not to the actor (see [`super::reads`]).
    pub(super) reads: Arc<super::reads::Reads>,
}

impl NodeHandle {
    /// Sends a command built around a reply channel and waits for the answer. A command sent
    /// this way runs as the node's admin; only the typed door ([`Scoped`]) calls it, wrapping
    /// the command in the principal it acts for.
    pub(super) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .await
            .map_err(|_| Error::ShuttingDown)?;
        rx.await.map_err(|_| {
            if self.tx.is_closed() {
                Error::ShuttingDown
            } else {
                // The node runs on, but handling this request failed (see `Actor::isolated`).
                Error::Internal("the node failed while handling this request; the fault is in its log, and the node goes on")
            }
        })
    }
}

impl crate::metrics::Source for NodeHandle {
    fn snapshot(&self) -> futures_util::future::BoxFuture<'_, Result<crate::metrics::Snapshot>> {
        Box::pin(async move { self.as_admin().metrics().await })
    }
}

/// What a node reports to observers (the benchmark, tests): ids only, in batches, never needed
/// to run a node. Sent on a bounded broadcast channel only while someone subscribes; a slow
/// subscriber loses events (`RecvError::Lagged`), the node never waits for it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeEvent {
    /// Messages received from peers are durably stored here (flushed); their `Ack`s are queued.
    Durable {
        /// The messages.
        ids: Arc<[MessageId]>,
    },
    /// A peer acknowledged that it durably stored these messages.
    Acked {
        /// The peer.
        peer: NodeId,
        /// The messages.
        ids: Arc<[MessageId]>,
    },
}

/// Messages to the actor from its own helper tasks.
#[derive(Debug)]
pub(super) enum Internal {
    ConnUp {
        peer: NodeId,
        conn: quinn::Connection,
        initiator: NodeId,
    },
    ConnDown {
        peer: NodeId,
        id: u64,
    },
    DialFailed {
        peer: NodeId,
        error: String,
    },
    Durable {
        ids: Vec<MessageId>,
        failed: Vec<MessageId>,
        /// What the written messages name, already in the attachment index.
        named: Vec<FetchWanted>,
    },
    /// A batch of local posts was written (or failed to be): one input for the whole batch.
    /// With each post, why its audit record could not be written, if it could not.
    PostsStored {
        posts: Vec<(Sealed, oneshot::Sender<Result<MessageId>>, Option<Error>)>,
        result: std::result::Result<(), String>,
        /// Whether the batch was applied to the store (else [`Internal::PostsStaged`] was
        /// never sent for it).
        staged: bool,
    },
    /// A batch of local posts was applied to the store with its audit records; its flush
    /// runs (see [`posting`]). `ticket`: its write.
    PostsStaged {
        ticket: Option<crate::store::DurableTicket>,
    },
    /// Envelopes read ahead for a sync response (see [`ReadAhead`]).
    ReadAhead {
        key: ReadKey,
        envelopes: Vec<Vec<u8>>,
    },
    ControlStored {
        event: Vec<u8>,
        result: Result<()>,
        reply: ControlReply,
    },
    /// New keys are on disk (see `trust::Actor::rotate_keys`).
    KeysRotated(Box<trust::Rotated>),
    /// Close these connections made under keys rotated away from.
    CloseRotated(Vec<(NodeId, u64)>),
    /// A peer asks for chunks of an attachment: may it have them?
    ServeAttachment {
        peer: NodeId,
        request: liaison_protocol::transfer::ChunkRequest,
        reply: oneshot::Sender<Option<AttachmentRef>>,
    },
    /// A fetch ended.
    FetchDone {
        id: AttachmentId,
        result: Result<()>,
    },
}

#[derive(Debug)]
pub(super) enum ControlReply {
    Created(oneshot::Sender<Result<GroupId>>),
    /// A change asked for through the API: the group as it is then, with these warnings.
    Changed(oneshot::Sender<Result<GroupView>>, Vec<String>),
    /// A change the node made on its own (a revoked member removed, a rotated member moved, a
    /// timed key rotation): logged, nobody waits.
    Quiet,
}

// ----- the typed door: commands that change or report on the node ----------------------------

impl Scoped {
    /// The node's status.
    pub async fn status(&self) -> Result<Status> {
        self.ask(Command::Status).await
    }

    /// The tracked peers: pinned, admitted by a roster, or both.
    pub async fn peers(&self) -> Result<Vec<PeerView>> {
        self.ask(Command::Peers).await
    }

    /// Pins a peer; answers once the pin is on disk. A name or node id already pinned is
    /// refused (see [`Scoped::replace_peer`]).
    pub async fn add_peer(&self, name: String, node: NodeId, address: String) -> Result<PeerView> {
        self.ask(|reply| Command::AddPeer {
            name,
            node,
            address,
            reply,
        })
        .await?
    }

    /// Pins a peer in place of the pin that has its name or its node id.
    pub async fn replace_peer(
        &self,
        name: String,
        node: NodeId,
        address: String,
    ) -> Result<PeerView> {
        self.ask(|reply| Command::ReplacePeer {
            name,
            node,
            address,
            reply,
        })
        .await?
    }

    /// Unpins a peer (by name or node id) and drops its connection, once that is on disk.
    pub async fn remove_peer(&self, peer: String) -> Result<()> {
        self.ask(|reply| Command::RemovePeer { peer, reply })
            .await?
    }

    /// Takes a federation roster (its encoded bytes).
    pub async fn load_roster(&self, bytes: Vec<u8>) -> Result<RosterLoaded> {
        self.ask(|reply| Command::LoadRoster { bytes, reply })
            .await?
    }

    /// The federation rosters in force.
    pub async fn rosters(&self) -> Result<Vec<RosterView>> {
        self.ask(Command::Rosters).await
    }

    /// Moves this node to new keys (only the exchange key with `exchange_only`).
    pub async fn rotate_keys(&self, exchange_only: bool) -> Result<Rotated> {
        self.ask(|reply| Command::RotateKeys {
            exchange_only,
            reply,
        })
        .await?
    }

    /// The groups this handle's principal may see.
    pub async fn groups(&self) -> Result<Vec<GroupView>> {
        self.ask(Command::Groups).await
    }

    /// One group (by id or name) this handle's principal may see.
    pub async fn group(&self, group: String) -> Result<GroupView> {
        self.ask(|reply| Command::Group { group, reply }).await?
    }

    /// Creates a group owned by this node; answers with its id once durable.
    pub async fn create_group(&self, name: String) -> Result<GroupId> {
        self.ask(|reply| Command::CreateGroup { name, reply })
            .await?
    }

    /// Adds a member to a group this node owns.
    pub async fn add_member(&self, group: String, peer: String, role: Role) -> Result<GroupView> {
        self.ask(|reply| Command::AddMember {
            group,
            peer,
            role,
            reply,
        })
        .await?
    }

    /// Removes a member from a group this node owns.
    pub async fn remove_member(&self, group: String, peer: String) -> Result<GroupView> {
        self.ask(|reply| Command::RemoveMember { group, peer, reply })
            .await?
    }

    /// Posts a message (as this handle's officer, whatever `post.officer` says, unless the
    /// handle acts as the admin); answers with its id once durable.
    pub async fn post(&self, group: String, post: Post) -> Result<MessageId> {
        self.ask(|reply| Command::Post { group, post, reply })
            .await?
    }

    /// Posts several messages to one group, in order, each answered on its own channel;
    /// returns once every item is taken.
    pub async fn post_each(&self, group: String, items: Vec<PostItem>) -> Result<()> {
        self.ask(|reply| Command::PostEach {
            group,
            items,
            reply,
        })
        .await
    }

    /// An attachment this handle's principal may open, once held whole here
    /// ([`Error::NotYet`] while it is fetched).
    pub async fn attachment(&self, id: AttachmentId) -> Result<AttachmentRef> {
        self.ask(|reply| Command::Attachment { id, reply }).await?
    }

    /// What the metrics endpoint shows.
    pub async fn metrics(&self) -> Result<crate::metrics::Snapshot> {
        self.ask(Command::Metrics).await
    }

    /// Quarantines a stored message (admin only), once durable.
    pub async fn quarantine(&self, id: MessageId, reason: String) -> Result<QuarantineView> {
        self.ask(|reply| Command::Quarantine { id, reason, reply })
            .await?
    }

    /// Ends a message's quarantine (admin only), once durable.
    pub async fn release(&self, id: MessageId) -> Result<QuarantineView> {
        self.ask(|reply| Command::Release { id, reply }).await?
    }

    /// The quarantines in force (admin only).
    pub async fn quarantined(&self) -> Result<Vec<QuarantineView>> {
        self.ask(Command::Quarantined).await?
    }
}
