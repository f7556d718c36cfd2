//! The read model: officer queries (pages, one message, receipts, threads, statistics,
//! exports, short ids, the live feed) answered beside the actor, never on it.
//!
//! ```text
//!  Actor ── snapshot() at every loop turn ──▶ watch<Arc<Snapshot>> ──┐
//!                                                                   ▼
//!  Scoped::inbox/read/… ── permit per principal ──▶ blocking pool: Ctx { snapshot, store }
//! ```
//!
//! The actor publishes what views need from it as a `Snapshot` (see `snapshot`); a query
//! takes the latest one and reads the store on tokio's blocking pool, so a listing of a big
//! group delays no peer's acknowledgement and no post. Heavy queries (pages, threads,
//! statistics, exports, short-id lookups) take a permit of their principal
//! ([`MAX_HEAVY_PER_PRINCIPAL`] at once), event streams one of [`MAX_STREAMS_PER_PRINCIPAL`];
//! a request beyond either is refused with [`Error::Busy`] instead of queueing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use liaison_protocol::MessageId;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};

use super::door::Scoped;
use super::feed::Fresh;
use crate::accounts::Principal;
use crate::attachments::Attachments;
use crate::error::{Error, Result};
use crate::store::Store;
use crate::views::{ExportView, MessagePage, MessageView, ReceiptView, StatsView, ThreadView};

pub mod page;
mod records;
pub(crate) mod snapshot;
#[cfg(test)]
mod tests;
pub(crate) mod view;

pub use page::PageRequest;
pub(crate) use snapshot::{Publisher, Snapshot};
use view::Ctx;

/// Heavy queries (pages, threads, statistics, exports, short ids) one principal may run at
/// once.
pub const MAX_HEAVY_PER_PRINCIPAL: usize = 4;
/// Event streams one principal may hold open at once.
pub const MAX_STREAMS_PER_PRINCIPAL: usize = 8;

/// The read model of a running node (see the module docs).
#[derive(Debug)]
pub(crate) struct Reads {
    store: Store,
    attachments: Arc<Attachments>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    feed: broadcast::Sender<Arc<Fresh>>,
    heavy: Limits,
    streams: Limits,
}

/// Permits per principal.
#[derive(Debug)]
struct Limits {
    per_principal: usize,
    what: &'static str,
    held: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Messages in an export stream waiting for the reader, at most.
const EXPORT_QUEUE: usize = 16;

/// An export under way (see [`Scoped::export_stream`]): what it will send, then each exported
/// message as it is opened. Holds one of its principal's heavy-query permits until dropped.
#[derive(Debug)]
pub struct ExportStream {
    /// The group.
    pub group_id: String,
    /// How many messages it exports.
    pub exported: usize,
    /// The messages a handling code keeps in.
    pub refused: Vec<crate::views::Refused>,
    rx: tokio::sync::mpsc::Receiver<Result<MessageView>>,
    /// What sends on `rx`, kept to send the same plan again ([`ExportStream::again`]).
    source: ExportSource,
    _permit: OwnedSemaphorePermit,
}

/// The messages an export sends, and for whom.
#[derive(Debug, Clone)]
struct ExportSource {
    reads: Arc<Reads>,
    who: Principal,
    ids: Arc<[MessageId]>,
    include_nominal: bool,
}

impl ExportSource {
    /// Opens each planned message on the blocking pool, sending it as the reader takes it.
    fn send(&self) -> tokio::sync::mpsc::Receiver<Result<MessageView>> {
        let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_QUEUE);
        let source = self.clone();
        let snap = self.reads.snapshot.borrow().clone();
        tokio::task::spawn_blocking(move || {
            let ctx = Ctx {
                snap: &snap,
                store: &source.reads.store,
                attachments: &source.reads.attachments,
            };
            for id in source.ids.iter() {
                let view = match ctx.read(&source.who, id, true) {
                    Ok(mut view) => {
                        if !source.include_nominal {
                            view.nominal_withheld = crate::records::withhold_nominal(&mut view);
                        }
                        Ok(view)
                    }
                    // Quarantined or withheld since the plan was made.
                    Err(Error::NotFound(_)) => continue,
                    Err(e) => Err(e),
                };
                let failed = view.is_err();
                if tx.blocking_send(view).is_err() || failed {
                    return;
                }
            }
        });
        rx
    }
}

impl ExportStream {
    /// The next exported message, oldest first; `None` once all were sent.
    pub async fn next(&mut self) -> Option<Result<MessageView>> {
        self.rx.recv().await
    }

    /// The same export from its first message again, as planned (no message that arrived
    /// since is in it), under the same permit: for a reader that needs two passes, as a CSV
    /// export does (its header first names every field).
    pub fn again(self) -> ExportStream {
        ExportStream {
            rx: self.source.send(),
            ..self
        }
    }
}

/// A subscription to the live feed, holding one of its principal's stream permits.
#[derive(Debug)]
pub struct Feed {
    rx: broadcast::Receiver<Arc<Fresh>>,
    _permit: OwnedSemaphorePermit,
}

impl Feed {
    /// The next message that became durable here (see [`broadcast::Receiver::recv`]).
    pub async fn recv(&mut self) -> std::result::Result<Arc<Fresh>, broadcast::error::RecvError> {
        self.rx.recv().await
    }
}

impl Reads {
    /// The read model over `store`, fed by the actor's snapshots and live feed.
    pub(crate) fn new(
        store: Store,
        attachments: Arc<Attachments>,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        feed: broadcast::Sender<Arc<Fresh>>,
    ) -> Reads {
        Reads {
            store,
            attachments,
            snapshot,
            feed,
            heavy: Limits::new(MAX_HEAVY_PER_PRINCIPAL, "queries"),
            streams: Limits::new(MAX_STREAMS_PER_PRINCIPAL, "event streams"),
        }
    }

    /// Runs `query` on the blocking pool against the latest snapshot.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        query: impl FnOnce(Ctx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let reads = self.clone();
        let snap = self.snapshot.borrow().clone();
        tokio::task::spawn_blocking(move || {
            query(Ctx {
                snap: &snap,
                store: &reads.store,
                attachments: &reads.attachments,
            })
        })
        .await
        .map_err(|_| {
            Error::Internal(
                "the node failed while handling this request; the fault is in its log, and the node goes on",
            )
        })?
    }

    /// Runs a heavy query for `who`, holding one of its permits.
    async fn heavy<T: Send + 'static>(
        self: &Arc<Self>,
        who: &Principal,
        query: impl FnOnce(Ctx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self.heavy.take(who)?;
        let result = self.run(query).await;
        drop(permit);
        result
    }
}

impl Limits {
    fn new(per_principal: usize, what: &'static str) -> Limits {
        Limits {
            per_principal,
            what,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A permit of `who`, or [`Error::Busy`] if it holds all of its own.
    fn take(&self, who: &Principal) -> Result<OwnedSemaphorePermit> {
        let key = match who {
            Principal::Admin => "admin".to_owned(),
            Principal::Officer { name, .. } => format!("officer {name}"),
        };
        let semaphore = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_principal)))
            .clone();
        semaphore.try_acquire_owned().map_err(|_| {
            Error::Busy(format!(
                "{} already has {} {} running on this node; wait for one to finish",
                who.name(),
                self.per_principal,
                self.what
            ))
        })
    }
}

/// Queries, answered by the read model without a round trip through the actor.
impl Scoped {
    fn reads(&self) -> &Arc<Reads> {
        &self.node().reads
    }

    /// A page of the messages the caller may see, newest first (see [`page`]).
    pub async fn inbox(&self, request: PageRequest) -> Result<MessagePage> {
        let limit = page::check_limit(request.limit)?;
        let before = request
            .before
            .as_deref()
            .map(page::parse_cursor)
            .transpose()?;
        let who = self.principal().clone();
        let reads = self.reads().clone();
        let snap = reads.snapshot.borrow().clone();
        let groups = match &request.group {
            Some(sel) => vec![snap.visible_group(&who, sel)?],
            None => snap.visible(&who),
        };
        self.reads()
            .heavy(&who.clone(), move |ctx| {
                ctx.page(&who, &groups, limit, before)
            })
            .await
    }

    /// One message with its body.
    pub async fn read(&self, id: MessageId) -> Result<MessageView> {
        let who = self.principal().clone();
        self.reads().run(move |ctx| ctx.read(&who, &id, true)).await
    }

    /// The one message whose id starts with `prefix` (8 to 63 lowercase hex digits), among
    /// those the caller may read.
    pub async fn resolve_id(&self, prefix: String) -> Result<MessageId> {
        let who = self.principal().clone();
        self.reads()
            .heavy(&who.clone(), move |ctx| ctx.resolve_id(&who, &prefix))
            .await
    }

    /// The receipts of one message.
    pub async fn receipts(&self, id: MessageId) -> Result<Vec<ReceiptView>> {
        let who = self.principal().clone();
        self.reads().run(move |ctx| ctx.receipts(&who, &id)).await
    }

    /// The thread a message belongs to.
    pub async fn thread(&self, id: MessageId) -> Result<ThreadView> {
        let who = self.principal().clone();
        self.reads()
            .heavy(&who.clone(), move |ctx| ctx.thread(&who, &id))
            .await
    }

    /// Counts of a group's messages by kind, commodity, outcome, month and state.
    pub async fn stats(&self, group: String) -> Result<StatsView> {
        let who = self.principal().clone();
        self.reads()
            .heavy(&who.clone(), move |ctx| ctx.stats(&who, &group))
            .await
    }

    /// The messages of a group that may be exported, and those a handling code keeps in.
    pub async fn export(&self, group: String, include_nominal: bool) -> Result<ExportView> {
        let who = self.principal().clone();
        self.reads()
            .heavy(&who.clone(), move |ctx| {
                ctx.export(&who, &group, include_nominal)
            })
            .await
    }

    /// An export of a group that sends one message at a time (as [`Scoped::export`] answers,
    /// without holding the group in memory): its plan is made first, from the messages'
    /// headers, then each planned message is opened as the reader takes it.
    pub async fn export_stream(
        &self,
        group: String,
        include_nominal: bool,
    ) -> Result<ExportStream> {
        let who = self.principal().clone();
        let permit = self.reads().heavy.take(&who)?;
        let planner = who.clone();
        let plan = self
            .reads()
            .run(move |ctx| ctx.export_plan(&planner, &group))
            .await?;
        let source = ExportSource {
            reads: self.reads().clone(),
            who,
            ids: plan.ids.into(),
            include_nominal,
        };
        Ok(ExportStream {
            group_id: plan.group.to_string(),
            exported: source.ids.len(),
            refused: plan.refused,
            rx: source.send(),
            source,
            _permit: permit,
        })
    }

    /// The live feed of messages as they are durably stored (see [`Fresh`]); filter each
    /// with [`Fresh::view_for`].
    pub fn subscribe(&self) -> Result<Feed> {
        let permit = self.reads().streams.take(self.principal())?;
        Ok(Feed {
            rx: self.reads().feed.subscribe(),
            _permit: permit,
        })
    }
}
