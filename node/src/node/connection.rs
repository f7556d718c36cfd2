//! One task per live connection ([`Connection::run`]): a writer that sends the actor's frames on
//! one unidirectional stream, and a reader that takes the peer's streams, checks the
//! signatures of what each frame carries on the blocking pool ([`check_frame`]) and hands the
//! frames to the actor in the order read. Attachment chunk requests on bidirectional streams
//! are served beside it. When the connection ends the actor hears [`Internal::ConnDown`].

use std::sync::Arc;

use liaison_protocol::sync;
use liaison_protocol::NodeId;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::attachments::transfer as attachment_transfer;
use crate::attachments::Attachments;
use crate::transport;

use super::command::Internal;

/// Fewest signed items checked per task on the blocking pool (see [`check_frame`]): a push of a
/// few dozen messages is checked by one task, and frames run side by side instead
/// ([`CHECKS_IN_FLIGHT`] per stream); a sync response of hundreds is spread over the cores.
/// With 8, pushes were split in two and the end-to-end benchmark spent about 4 % more CPU per
/// message (nine alternating pairs): one more hand-off to the pool per frame, and each task's
/// checks start with cold caches.
pub(super) const CHECK_CHUNK_MIN: usize = 64;

/// Frames of one stream being checked at once while the next are read (see `check_frame`).
pub(super) const CHECKS_IN_FLIGHT: usize = 4;

/// A frame from a connection on its way to the actor.
#[derive(Debug)]
pub(super) enum Inbound {
    /// Bytes that do not decode: the engine rejects them (a strike against the peer).
    Raw(Vec<u8>),
    /// A decoded frame with the signatures of what it carries already checked.
    Split(sync::SplitFrame, Vec<sync::Checked>),
}

/// A frame, the peer it came from and the id of its connection.
pub(super) type InboundFrame = (NodeId, u64, Inbound);

/// Decodes a frame and checks the signatures of the envelopes or receipts it carries on tokio's
/// blocking pool, spread over up to `cores` tasks, so that the actor only finishes the checks
/// that need its state (membership, decryption). Frames keep their order: the connection's
/// reader starts the checks of up to [`CHECKS_IN_FLIGHT`] frames while it reads on, and hands
/// them to the actor in the order read.
pub(super) async fn check_frame(bytes: Vec<u8>, cores: usize) -> Inbound {
    // Decoding walks the whole frame (up to 4 MiB of items): on the blocking pool too, never
    // on an async worker.
    let decoded = tokio::task::spawn_blocking(move || {
        let split = sync::SplitFrame::decode(&bytes).ok();
        (bytes, split)
    })
    .await;
    let Ok((bytes, split)) = decoded else {
        // The runtime is shutting down.
        return Inbound::Raw(Vec::new());
    };
    let Some((split, items)) = split else {
        return Inbound::Raw(bytes);
    };
    if items.is_empty() {
        return Inbound::Split(split, Vec::new());
    }
    let carried = split.carried();
    let per_task = items.len().div_ceil(cores.max(1)).max(CHECK_CHUNK_MIN);
    let count = items.len();
    let mut items = items.into_iter();
    let mut tasks = Vec::new();
    loop {
        let chunk: Vec<Vec<u8>> = items.by_ref().take(per_task).collect();
        if chunk.is_empty() {
            break;
        }
        tasks.push(tokio::task::spawn_blocking(move || {
            chunk
                .into_iter()
                .map(|item| carried.check(item))
                .collect::<Vec<_>>()
        }));
    }
    let mut checked = Vec::with_capacity(count);
    for task in tasks {
        match task.await {
            Ok(part) => checked.extend(part),
            // A check task failed (the runtime is shutting down): let the engine do it all.
            Err(_) => return Inbound::Raw(bytes),
        }
    }
    Inbound::Split(split, checked)
}

/// One live connection to a peer: sends what the actor queues for it, reads and checks what the
/// peer sends, serves attachment chunk requests, and tells the actor when it ends.
#[derive(Debug)]
pub(super) struct Connection {
    /// The QUIC connection.
    pub(super) conn: quinn::Connection,
    /// The peer at the other end.
    pub(super) peer: NodeId,
    /// Its id in the peer table.
    pub(super) id: u64,
    /// Frames the actor queues for the peer (bounded).
    pub(super) outbound: mpsc::Receiver<Vec<u8>>,
    /// Checked frames to the actor.
    pub(super) inbound: mpsc::Sender<InboundFrame>,
    /// To the actor ([`Internal::ConnDown`], attachment authorisation).
    pub(super) internal: mpsc::Sender<Internal>,
    /// Cancelled when the node shuts down.
    pub(super) shutdown: CancellationToken,
    /// Attachment files, for chunk requests.
    pub(super) attachments: Arc<Attachments>,
}

impl Connection {
    /// Runs until the connection ends or the node shuts down.
    pub(super) async fn run(self) {
        let Connection {
            conn,
            peer,
            id,
            mut outbound,
            inbound,
            internal,
            shutdown,
            attachments,
        } = self;
        let max = liaison_protocol::codec::MAX_FRAME_LEN;
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let writer = {
            let conn = conn.clone();
            async move {
                let mut send = conn.open_uni().await.map_err(|e| e.to_string())?;
                while let Some(frame) = outbound.recv().await {
                    transport::write_frame(&mut send, &frame)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }
        };
        let reader = {
            let conn = conn.clone();
            let internal = internal.clone();
            async move {
                let mut streams = tokio::task::JoinSet::new();
                // Attachment streams being served; they end with the connection.
                let mut serving = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        // Attachment chunk requests (WIRE.md §13); QUIC bounds how many at once.
                        accepted = conn.accept_bi() => {
                            let (send, recv) = accepted.map_err(|e| e.to_string())?;
                            let internal = internal.clone();
                            let attachments = attachments.clone();
                            serving.spawn(async move {
                                let authorize = |request| async move {
                                    let (reply, answer) = oneshot::channel();
                                    internal
                                        .send(Internal::ServeAttachment { peer, request, reply })
                                        .await
                                        .ok()?;
                                    answer.await.ok().flatten()
                                };
                                if let Err(e) =
                                    attachment_transfer::serve_stream(send, recv, attachments, authorize)
                                        .await
                                {
                                    debug!(error = %e, "attachment stream ended");
                                }
                            });
                        }
                        accepted = conn.accept_uni() => {
                            let mut recv = accepted.map_err(|e| e.to_string())?;
                            let inbound = inbound.clone();
                            streams.spawn(async move {
                                // Frames are checked while the next ones are read, at most
                                // CHECKS_IN_FLIGHT at once, and handed on in the order read.
                                let (checks_tx, mut checks_rx) =
                                    mpsc::channel::<tokio::task::JoinHandle<Inbound>>(CHECKS_IN_FLIGHT);
                                let read = async move {
                                    loop {
                                        match transport::read_frame(&mut recv, max).await {
                                            Ok(Some(frame)) => {
                                                let check = tokio::spawn(check_frame(frame, cores));
                                                if checks_tx.send(check).await.is_err() {
                                                    return Ok(());
                                                }
                                            }
                                            Ok(None) => return Ok(()),
                                            Err(e) => return Err(e.to_string()),
                                        }
                                    }
                                };
                                let forward = async move {
                                    while let Some(check) = checks_rx.recv().await {
                                        let Ok(frame) = check.await else {
                                            return; // The runtime is shutting down.
                                        };
                                        if inbound.send((peer, id, frame)).await.is_err() {
                                            return;
                                        }
                                    }
                                };
                                let (read, ()) = tokio::join!(read, forward);
                                read
                            });
                        }
                        Some(done) = streams.join_next() => {
                            if let Ok(Err(e)) = done {
                                return Err::<(), String>(e);
                            }
                        }
                        Some(_) = serving.join_next() => {}
                    }
                }
            }
        };
        let outcome = tokio::select! {
            () = shutdown.cancelled() => Ok(()),
            r = writer => r,
            r = reader => r,
            e = conn.closed() => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => debug!("connection finished"),
            Err(e) => {
                info!(reason = %e, "connection closed");
                conn.close(6u32.into(), b"stream error");
            }
        }
        let _ = internal.send(Internal::ConnDown { peer, id }).await;
    }
}
