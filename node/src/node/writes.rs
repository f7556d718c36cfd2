//! The writes owner: every store write the actor starts is spawned into one [`Writes`] set,
//! so that nothing is fire-and-forget and shutdown joins them all ([`Writes::join`]). Writes
//! whose outcome the actor waits for send it back as an [`Internal`] message.

use std::collections::HashSet;
use std::future::Future;

use futures_util::future::BoxFuture;
use liaison_protocol::message::MessageId;
use tokio::task::JoinSet;
use tracing::{warn, Instrument};

use crate::clock::now;
use crate::error::Result;

use super::attached;
use super::attached::FetchWanted;
use super::command::{Internal, NodeEvent};
use super::Actor;

/// Message batches of each kind (received, posted here) being written at once. What arrives
/// meanwhile waits and goes into the next batch: under load, batches grow instead of writes
/// queueing up, so one store batch and one flush cover many messages.
pub(super) const MAX_WRITES_IN_FLIGHT: usize = 4;

/// The store work the actor has started and not yet seen finish: writes (messages, control
/// events, receipts, pins, directory entries, keys, quarantines), reads ahead for sync answers
/// and attachment fetches. Finished tasks are reaped as the actor goes; at shutdown the actor
/// joins every one before the store's last flush, so no write started is lost or cut short.
#[derive(Debug, Default)]
pub(super) struct Writes {
    set: JoinSet<()>,
}

impl Writes {
    /// Starts `work` off the actor, under the actor's span.
    pub(super) fn spawn(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        self.set.spawn(work.instrument(tracing::Span::current()));
    }

    /// Waits, off the actor, for a write to be durable, and logs `what` if it is not.
    pub(super) fn log_failure(
        &mut self,
        stored: BoxFuture<'static, Result<()>>,
        what: &'static str,
    ) {
        self.spawn(async move {
            if let Err(e) = stored.await {
                warn!(error = %e, "{what}");
            }
        });
    }

    /// Forgets the tasks that have finished (a panic in one is logged).
    pub(super) fn reap(&mut self) {
        while let Some(done) = self.set.try_join_next() {
            if let Err(e) = done {
                if e.is_panic() {
                    tracing::error!(error = %e, "a store task failed");
                }
            }
        }
    }

    /// Waits for every task started (shutdown).
    pub(super) async fn join(&mut self) {
        while self.set.join_next().await.is_some() {}
    }
}

impl Actor {
    /// Writes the messages accepted from peers that wait for the store as one batch, unless
    /// [`MAX_WRITES_IN_FLIGHT`] batches are being written already.
    pub(super) fn store_received(&mut self) {
        if self.received.is_empty() || self.received_writes >= MAX_WRITES_IN_FLIGHT {
            return;
        }
        self.received_writes += 1;
        let batch = std::mem::take(&mut self.received);
        self.pending_writes += 1;
        let named: Vec<FetchWanted> = batch
            .iter()
            .filter_map(|m| {
                let (from, place, refs) = self.accepted_attachments.remove(&m.id)?;
                Some(FetchWanted::named_by(m.id, place, refs, Some(from)))
            })
            .flatten()
            .collect();
        let store = self.store.clone();
        let attachments = self.attachments.clone();
        let tx = self.internal_tx.clone();
        self.writes.spawn(async move {
            let ids: Vec<MessageId> = batch.iter().map(|m| m.id).collect();
            if let Err(e) = attached::index_ahead(&attachments, &named).await {
                warn!(error = %e, "cannot index the attachments of received messages; they are not stored now and are asked for again");
                let _ = tx
                    .send(Internal::Durable {
                        ids: Vec::new(),
                        failed: ids,
                        named: Vec::new(),
                    })
                    .await;
                return;
            }
            let (durable, failed) = match store.insert_messages(batch).await {
                Ok(outcomes) => {
                    let mut durable = Vec::new();
                    let mut failed = Vec::new();
                    for (id, outcome) in ids.into_iter().zip(outcomes) {
                        if outcome == crate::store::Inserted::Conflict {
                            warn!(id = %id.short(), "an author used one sequence number twice; keeping the first");
                            failed.push(id);
                        } else {
                            durable.push(id);
                        }
                    }
                    (durable, failed)
                }
                Err(e) => {
                    warn!(error = %e, "cannot store received messages");
                    (Vec::new(), ids)
                }
            };
            let _ = tx
                .send(Internal::Durable {
                    ids: durable,
                    failed,
                    named,
                })
                .await;
        });
    }

    // ----- engine output -----------------------------------------------------------------

    /// A batch of received messages was written (or failed): the engine hears which are
    /// durable and which must be fetched again; observers and feeds hear of the stored ones.
    pub(super) fn on_durable(
        &mut self,
        ids: Vec<MessageId>,
        failed: Vec<MessageId>,
        named: Vec<FetchWanted>,
    ) {
        self.pending_writes = self.pending_writes.saturating_sub(1);
        self.received_writes = self.received_writes.saturating_sub(1);
        if !failed.is_empty() {
            self.engine.handle_store_failed(&failed);
            for id in &failed {
                self.origins.remove(id);
                self.accepted_attachments.remove(id);
            }
        }
        // Written, and indexed before that: fetch the eager ones.
        let written: HashSet<MessageId> = ids.iter().copied().collect();
        self.fetch_eager(
            named
                .into_iter()
                .filter(|w| written.contains(&w.message))
                .collect(),
        );
        self.metrics.stored_from_peers(ids.len());
        self.engine.handle_durable(now(), &ids);
        if self.events.receiver_count() > 0 && !ids.is_empty() {
            let _ = self.events.send(NodeEvent::Durable {
                ids: ids.as_slice().into(),
            });
        }
        self.publish_fresh(ids.iter().map(|id| (*id, None)));
    }
}
