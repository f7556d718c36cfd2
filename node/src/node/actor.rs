//! The actor loop: one task that owns the sync engine and the store handle and does one thing
//! at a time. [`Actor::run`] waits for the next input (internal message, peer frame, command,
//! store damage notice, the engine's timer, the federation tick), in that priority, takes what
//! else is already waiting, and drains the engine's output once per round. Each input runs
//! isolated ([`Actor::isolated`]): a fault fails that input alone.
//!
//! This file says what each input does and hands the work to its owner: the peer table
//! ([`super::peers`]), the writes ([`super::writes`]), posting and membership
//! ([`super::posting`], [`super::membership`]), the archive ([`super::archive`]).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use liaison_protocol::message::Place;
use liaison_protocol::sync::Event;
use liaison_protocol::GroupId;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::accounts::Principal;
use crate::clock::now;
use crate::error::Error;
use crate::store::NewMessage;

use super::archive::StoreArchive;
use super::command::{Command, Internal, NodeEvent};
use super::connection::{Inbound, InboundFrame};
use super::peers::DIRECTORY_PREFIX;
use super::{trust, Actor};

/// Inputs the actor takes from its queues, when they are already waiting, before it drains the
/// engine once: one drain then stores many messages with one write and sends one frame per peer
/// for all of them.
pub(super) const MAX_BATCH_INPUTS: usize = 64;

/// Messages accepted with attachments and waiting for the store, at most (beyond it their
/// attachments are fetched when opened).
pub(super) const MAX_PENDING_ATTACHMENTS: usize = 4096;

impl Actor {
    pub(super) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut internal: mpsc::Receiver<Internal>,
        mut inbound: mpsc::Receiver<InboundFrame>,
    ) {
        let mut damage = self.store.damage_notices();
        let mut federation = tokio::time::interval(trust::TICK);
        federation.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let mut deadline = self.engine.poll_timeout();
            if let Some(first) = self.local_posts.iter().map(|p| p.wait_until).min() {
                // Posts waiting for their group's sequence numbers are retried at each drain
                // and refused once their wait is over.
                let left = first.saturating_duration_since(std::time::Instant::now());
                let at = now().plus_millis(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
                deadline = Some(deadline.map_or(at, |d| d.min(at)));
            }
            let sleep = async {
                match deadline {
                    Some(t) => {
                        let wait = t.0.saturating_sub(now().0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => break,
                Some(msg) = internal.recv() => self.isolated("internal", |a| a.on_internal(msg)),
                Some(frame) = inbound.recv() => self.isolated("frame", |a| a.on_inbound(frame)),
                Some(cmd) = commands.recv() => self.isolated("command", |a| a.on_command(cmd)),
                Ok(()) = damage.changed() => self.isolated("damage", Actor::refetch_damaged),
                () = sleep => self.isolated("timer", |a| a.engine.handle_timeout(now())),
                _ = federation.tick() => {
                    self.isolated("federation", Actor::federation_tick);
                    self.isolated("restore", Actor::restore_check);
                }
            }
            // Take what else is already waiting, in the same priority, before draining once.
            for _ in 0..MAX_BATCH_INPUTS {
                if let Ok(msg) = internal.try_recv() {
                    self.isolated("internal", |a| a.on_internal(msg));
                } else if let Ok(frame) = inbound.try_recv() {
                    self.isolated("frame", |a| a.on_inbound(frame));
                } else if let Ok(cmd) = commands.try_recv() {
                    self.isolated("command", |a| a.on_command(cmd));
                } else {
                    break;
                }
            }
            self.isolated("drain", Actor::drain);
            self.writes.reap();
            self.peers.reap();
            // Queries see what this turn changed (groups, names, trust, quarantines).
            self.isolated("publish", |a| drop(a.snapshot()));
        }
        // Shutdown: posts not yet sealed are refused; let in-flight store writes finish, then
        // close connections.
        for post in std::mem::take(&mut self.local_posts) {
            self.pending_writes = self.pending_writes.saturating_sub(1);
            let _ = post.reply.send(Err(Error::ShuttingDown));
        }
        while self.pending_writes > 0 {
            let Some(msg) = internal.recv().await else {
                break;
            };
            self.on_internal(msg);
            self.drain();
        }
        // Every store task started ends before the store's last flush (see `Writes`), and every
        // dialer and connection task before the endpoint closes; what they still send is taken
        // and no longer acted on.
        loop {
            tokio::select! {
                () = self.writes.join() => break,
                Some(_) = internal.recv() => {}
            }
        }
        loop {
            tokio::select! {
                done = self.peers.links.join_next() => if done.is_none() { break },
                Some(_) = internal.recv() => {}
            }
        }
        for (_, c) in self.peers.conns.drain() {
            c.conn.close(0u32.into(), b"shutting down");
        }
        self.transport.close();
        // Give peers a moment to receive the close; the draining period itself is not needed.
        let _ = tokio::time::timeout(Duration::from_millis(300), self.transport.wait_idle()).await;
    }

    /// Runs one step of the actor (one command, one frame, one internal message, the timer, a
    /// drain) so that a fault in it fails that step alone instead of the node: a panic is
    /// caught and logged, the step's reply channel is dropped on the way (its caller gets
    /// [`Error::Internal`]), and the actor goes on with the next input. No single input, be it
    /// a command or a peer's frame, may stop every later one from being served.
    pub(super) fn isolated(&mut self, step: &'static str, handle: impl FnOnce(&mut Actor)) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(self)));
        if let Err(panic) = result {
            self.note_fault(step, panic.as_ref());
        }
    }

    /// Logs and counts a panic caught while handling `step`.
    pub(super) fn note_fault(&mut self, step: &'static str, panic: &(dyn std::any::Any + Send)) {
        let reason = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        self.faults = self.faults.saturating_add(1);
        tracing::error!(
            step,
            %reason,
            faults = self.faults,
            "a fault while handling one input: that input failed, the node goes on (please report this with the log)"
        );
    }

    /// Makes the engine ask peers again for the messages the store found damaged.
    pub(super) fn refetch_damaged(&mut self) {
        match self.store.damaged() {
            Ok(damaged) => {
                let places: Vec<Place> = damaged.into_iter().map(|(_, p)| p).collect();
                warn!(
                    messages = places.len(),
                    "fetching damaged messages again from peers that hold them"
                );
                self.engine.handle_lost(&places);
            }
            Err(e) => warn!(error = %e, "cannot list damaged messages"),
        }
    }

    /// A frame from a live connection: to the engine, its signatures already checked.
    pub(super) fn on_inbound(&mut self, (peer, conn, frame): InboundFrame) {
        if self.peers.conns.get(&peer).is_none_or(|c| c.id != conn) {
            return;
        }
        let archive = StoreArchive {
            store: &self.store,
            origins: &self.origins,
            learned: RefCell::new(Vec::new()),
            ahead: &self.read_ahead,
            receipt_reads: Cell::new(0),
        };
        match frame {
            Inbound::Raw(bytes) => self.engine.handle_frame(now(), peer, &bytes, &archive),
            Inbound::Split(split, checked) => {
                self.engine
                    .handle_split(now(), peer, split, checked, &archive);
            }
        }
        for (id, origin) in archive.learned.into_inner() {
            self.origins.insert(id, origin);
        }
        self.read_ahead_wanted();
    }

    pub(super) fn drain(&mut self) {
        self.store_local_posts();
        let mut batch: Vec<NewMessage> = Vec::new();
        let mut controls: Vec<(GroupId, u64, Vec<u8>)> = Vec::new();
        let mut receipts: Vec<crate::store::NewReceipt> = Vec::new();
        while let Some(event) = self.engine.poll_event() {
            let accepted = match &event {
                Event::MessageAccepted { id, .. } => Some(*id),
                _ => None,
            };
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.on_event(event, &mut batch, &mut controls, &mut receipts);
            }));
            if let Err(panic) = step {
                self.note_fault("event", panic.as_ref());
                if let Some(id) = accepted {
                    // Not stored: forgotten by the engine, so that it is fetched again.
                    self.engine.handle_store_failed(&[id]);
                }
            }
        }
        if !controls.is_empty() {
            let store = self.store.clone();
            self.writes.spawn(async move {
                for (group, seq, event) in controls {
                    if let Err(e) = store.insert_control(&group, seq, &event).await {
                        warn!(group = %group.short(), seq, error = %e, "cannot store a control event");
                    }
                }
            });
        }
        if !receipts.is_empty() {
            let store = self.store.clone();
            self.writes.spawn(async move {
                if let Err(e) = store.insert_receipts(receipts).await {
                    warn!(error = %e, "cannot store receipts");
                }
            });
        }
        self.received.extend(batch);
        self.store_received();
        while let Some(t) = self.engine.poll_transmit() {
            if let Some(conn) = self.peers.conns.get(&t.peer) {
                if conn.tx.try_send(t.frame).is_err() {
                    debug!(peer = %t.peer.short(), "outbound queue full; frame dropped");
                }
            }
        }
    }

    /// Handles one event of the engine within a drain: what is to be stored joins `batch`,
    /// `controls` or `receipts`.
    pub(super) fn on_event(
        &mut self,
        event: Event,
        batch: &mut Vec<NewMessage>,
        controls: &mut Vec<(GroupId, u64, Vec<u8>)>,
        receipts: &mut Vec<crate::store::NewReceipt>,
    ) {
        match event {
            Event::MessageAccepted {
                from,
                id,
                header,
                envelope,
                attachments,
                reply_to,
            } => {
                debug!(peer = %from.short(), id = %id.short(), "message accepted");
                self.metrics.message_received();
                #[cfg(test)]
                super::faults::at_accept(&header.author);
                self.note_origin(id, &header);
                if !attachments.is_empty()
                    && self.accepted_attachments.len() < MAX_PENDING_ATTACHMENTS
                {
                    self.accepted_attachments
                        .insert(id, (from, header.place(), attachments));
                }
                batch.push(NewMessage {
                    id,
                    place: header.place(),
                    created_at: header.created_at.0,
                    envelope,
                    meta: now().0.to_be_bytes().to_vec(),
                    reply_to,
                });
            }
            Event::ControlApplied { group, seq, event } => {
                info!(group = %group.short(), seq, "control event applied");
                controls.push((group, seq, event));
            }
            Event::PeerDescriptor {
                peer,
                descriptor,
                bytes,
            } => self.on_descriptor(peer, *descriptor, &bytes),
            // This node's own receipts are not stored: they went to the author, and its
            // own store already says when it stored each message (see `receipts`). A
            // peer's may name messages still being written, which the store leaves out.
            // The engine found the origin of every message named (the store's author
            // index confirms each before indexing the receipt by place).
            Event::Receipt { receiver, .. } if receiver == self.me => {
                self.metrics.receipt(true);
            }
            Event::Receipt {
                group,
                receiver,
                messages,
                bytes,
            } => {
                self.metrics.receipt(false);
                let messages = messages
                    .iter()
                    .filter_map(|id| {
                        let o = self.origins.get(id).filter(|o| o.group == group)?;
                        Some((*id, *o))
                    })
                    .collect();
                receipts.push(crate::store::NewReceipt {
                    receiver,
                    messages,
                    bytes,
                });
            }
            Event::Directory {
                node,
                descriptor,
                bytes,
            } => {
                debug!(node = %node.short(), name = %descriptor.name, "directory entry learned");
                self.peers.directory.insert(node, *descriptor);
                let stored = self
                    .store
                    .put_meta(&format!("{DIRECTORY_PREFIX}{node}"), &bytes);
                self.writes.spawn(async move {
                    if let Err(e) = stored.await {
                        warn!(error = %e, "cannot store a directory entry");
                    }
                });
            }
            Event::Acked { peer, ids } => {
                debug!(peer = %peer.short(), count = ids.len(), "acknowledged");
                if self.events.receiver_count() > 0 {
                    let ids = ids.into();
                    let _ = self.events.send(NodeEvent::Acked { peer, ids });
                }
            }
            Event::Rejected { peer, reason } => {
                self.metrics.rejected(&reason);
                warn!(peer = %peer.short(), %reason, "rejected input from peer");
            }
            Event::Refused { peer, reason } => {
                info!(peer = %peer.short(), %reason, "refused input relayed by peer");
            }
            Event::Rosters { peer, rosters } => self.on_rosters(peer, rosters),
            Event::Rotations { peer, statements } => self.on_rotations(peer, statements),
            Event::OwnMessagesElsewhere {
                group,
                epoch,
                peer,
                held_by_peer,
                held_here,
            } => {
                warn!(
                    group = %group.short(),
                    epoch,
                    peer = %peer.short(),
                    held_by_peer,
                    held_here,
                    "a peer holds messages this node posted that its store lacks (restored from a backup, or its newest records lost); new posts continue after the peer's, and the missing ones are fetched back"
                );
            }
            Event::Disconnect { peer } => {
                warn!(peer = %peer.short(), "dropping peer after repeated invalid input");
                self.disconnect(&peer, 1, b"too many invalid frames");
            }
            _ => {}
        }
    }

    pub(super) fn on_internal(&mut self, msg: Internal) {
        match msg {
            Internal::ConnUp {
                peer,
                conn,
                initiator,
            } => self.on_conn_up(peer, conn, initiator),
            Internal::ConnDown { peer, id } => self.on_conn_down(peer, id),
            Internal::DialFailed { peer, error } => {
                if let Some(entry) = self.peers.entries.get_mut(&peer) {
                    entry.last_error = Some(error);
                }
            }
            Internal::Durable { ids, failed, named } => self.on_durable(ids, failed, named),
            Internal::ReadAhead { key, envelopes } => self.on_read_ahead(key, envelopes),
            Internal::PostsStaged { ticket } => self.on_posts_staged(ticket),
            Internal::PostsStored {
                posts,
                result,
                staged,
            } => self.on_posts_stored(posts, result, staged),
            Internal::KeysRotated(rotated) => self.on_keys_rotated(*rotated),
            Internal::CloseRotated(conns) => {
                for (peer, id) in conns {
                    if self.peers.conns.get(&peer).is_some_and(|c| c.id == id) {
                        self.disconnect(&peer, 4, b"key rotated");
                    }
                }
            }
            Internal::ControlStored {
                event,
                result,
                reply,
            } => self.on_control_stored(event, result, reply),
            Internal::ServeAttachment {
                peer,
                request,
                reply,
            } => {
                let _ = reply.send(self.serve_attachment(peer, &request));
            }
            Internal::FetchDone { id, result } => {
                self.fetching.remove(&id);
                match result {
                    Ok(()) => info!(attachment = %id.short(), "attachment held whole"),
                    Err(Error::ShuttingDown) => {}
                    Err(e) => {
                        warn!(attachment = %id.short(), error = %e, "attachment fetch stopped")
                    }
                }
                self.start_fetches();
            }
        }
    }

    pub(super) fn on_command(&mut self, cmd: Command) {
        self.on_command_as(&Principal::Admin, cmd);
    }

    pub(super) fn on_command_as(&mut self, who: &Principal, cmd: Command) {
        match cmd {
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Peers(reply) => {
                let _ = reply.send(
                    self.peers
                        .entries
                        .values()
                        .map(|p| self.peer_view(p))
                        .collect(),
                );
            }
            Command::AddPeer {
                name,
                node,
                address,
                reply,
            } => self.pin(name, node, address, false, reply),
            Command::ReplacePeer {
                name,
                node,
                address,
                reply,
            } => self.pin(name, node, address, true, reply),
            Command::LoadRoster { bytes, reply } => self.load_roster(bytes, reply),
            Command::Rosters(reply) => {
                let _ = reply.send(self.trust.views(&self.me, now()));
            }
            Command::RotateKeys {
                exchange_only,
                reply,
            } => self.rotate_keys(exchange_only, reply),
            Command::RemovePeer { peer, reply } => match self.remove_peer(&peer) {
                // Answer once the removal is on disk.
                Ok(node) => {
                    let store = self.store.clone();
                    self.writes.spawn(async move {
                        let result = store
                            .remove_peer(&node)
                            .await
                            .map(|_| ())
                            .map_err(Error::from);
                        let _ = reply.send(result);
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Command::Groups(reply) => {
                let groups: Vec<GroupId> = self
                    .engine
                    .groups()
                    .map(|g| g.id())
                    .filter(|g| who.access(g).is_some())
                    .collect();
                let _ = reply.send(
                    groups
                        .iter()
                        .filter_map(|g| self.group_view(g).ok())
                        .collect(),
                );
            }
            Command::Group { group, reply } => {
                let _ = reply.send(
                    self.resolve_visible_group(who, &group)
                        .and_then(|g| self.group_view(&g)),
                );
            }
            Command::CreateGroup { name, reply } => self.create_group(name, reply),
            Command::AddMember {
                group,
                peer,
                role,
                reply,
            } => self.change_member(&group, &peer, Some(role), reply),
            Command::RemoveMember { group, peer, reply } => {
                self.change_member(&group, &peer, None, reply);
            }
            Command::Post {
                group,
                mut post,
                reply,
            } => {
                if *who != Principal::Admin {
                    who.name().clone_into(&mut post.officer);
                }
                self.post(who, &group, post, None, reply);
            }
            Command::PostEach {
                group,
                items,
                reply,
            } => {
                for mut item in items {
                    if *who != Principal::Admin {
                        who.name().clone_into(&mut item.post.officer);
                    }
                    self.post(who, &group, item.post, item.audit, item.reply);
                }
                let _ = reply.send(());
            }
            Command::Attachment { id, reply } => {
                let _ = reply.send(self.open_attachment(who, &id));
            }
            Command::Metrics(reply) => {
                let _ = reply.send(self.metrics_snapshot());
            }
            Command::Quarantine { id, reason, reply } => self.quarantine(who, id, reason, reply),
            Command::Release { id, reply } => self.release(who, id, reply),
            Command::Quarantined(reply) => {
                let _ = reply.send(self.quarantine_list(who));
            }
            Command::As(inner_who, inner) => self.on_command_as(&inner_who, *inner),
        }
    }
}
