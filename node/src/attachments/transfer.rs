//! Attachment chunks between nodes on QUIC streams of their own (WIRE.md §13): the holder's
//! side ([`serve_stream`]) and the fetcher's ([`fetch`]), around the protocol's sans-IO
//! [`Download`] plan.
//!
//! One request and one answer per bidirectional stream. Whether a peer may have an
//! attachment is the actor's decision (it holds the groups); the holder then answers from its
//! files. The fetcher checks every chunk with the attachment key before it writes it, writes
//! and syncs before it counts a chunk held, and turns the partial file whole only once it
//! hashes to the attachment id, so a fetch broken off anywhere resumes by asking only for
//! what is missing.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use liaison_protocol::attachment::{chunk_count, AttachmentRef};
use liaison_protocol::transfer::{
    check_range, range_len, Ask, ChunkRequest, ChunkResponse, Download, DownloadConfig,
    MAX_REQUEST_LEN, MAX_RESPONSE_LEN,
};
use liaison_protocol::{MessageId, NodeId};
use quinn::{RecvStream, SendStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{Attachments, Finished, Partial};
use crate::clock::now;
use crate::error::{Error, Result};
use crate::transport::{read_frame, write_frame};

/// The live connection to each peer, kept by the node: what a fetch asks through.
pub type Connections = Arc<Mutex<HashMap<NodeId, quinn::Connection>>>;

/// Longest wait for one answer (a peer that stops answering is asked no more for it).
const ASK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a fetch looks again for connected peers when none can be asked.
const REFRESH: Duration = Duration::from_millis(250);
/// A fetch that makes no progress for this long gives up (it is started again when an
/// officer opens the attachment, a peer asks for it, or the node restarts).
const GIVE_UP: Duration = Duration::from_secs(600);

/// The holder's side of one stream: reads the request, asks `authorize` whether the peer may
/// have the attachment (its reference if so), and answers from the files.
pub async fn serve_stream<F, Fut>(
    mut send: SendStream,
    mut recv: RecvStream,
    attachments: Arc<Attachments>,
    authorize: F,
) -> std::result::Result<(), String>
where
    F: FnOnce(ChunkRequest) -> Fut,
    Fut: Future<Output = Option<AttachmentRef>>,
{
    let bytes = match read_frame(&mut recv, MAX_REQUEST_LEN).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Err("the stream ended before a chunk request".into()),
        Err(e) => {
            let _ = send.reset(1u32.into());
            return Err(format!("unreadable chunk request: {e}"));
        }
    };
    let request = match ChunkRequest::decode(&bytes) {
        Ok(r) => r,
        Err(e) => {
            // An undecodable request closes the stream (WIRE.md §13).
            let _ = send.reset(1u32.into());
            return Err(format!("invalid chunk request: {e}"));
        }
    };
    let (response, cipher) = match authorize(request).await {
        None => (ChunkResponse::Unavailable, Vec::new()),
        Some(reference) => {
            let att = attachments.clone();
            tokio::task::spawn_blocking(move || answer(&att, &reference, &request))
                .await
                .map_err(|e| format!("serving task failed: {e}"))?
                .map_err(|e| e.to_string())?
        }
    };
    let header = response.to_bytes().map_err(|e| e.to_string())?;
    write_frame(&mut send, &header)
        .await
        .map_err(|e| e.to_string())?;
    if !cipher.is_empty() {
        send.write_all(&cipher).await.map_err(|e| e.to_string())?;
        attachments.note_served(cipher.len() as u64);
    }
    send.finish().map_err(|e| e.to_string())?;
    // Wait until the peer has the bytes (or goes away) before the stream is dropped.
    let _ = send.stopped().await;
    Ok(())
}

/// The answer to `request` for an attachment the requester may have: chunks held from its
/// first on (whole or in part), or `Missing`.
fn answer(
    attachments: &Attachments,
    reference: &AttachmentRef,
    request: &ChunkRequest,
) -> Result<(ChunkResponse, Vec<u8>)> {
    let size = reference.size;
    let chunks = chunk_count(size);
    if request.first >= chunks {
        return Ok((ChunkResponse::Unavailable, Vec::new()));
    }
    let total = reference.ciphertext_len();
    let files = attachments.files();
    let available = u64::from(request.count).min(chunks - request.first);
    let count = u32::try_from(available).unwrap_or(request.count);
    if files.whole_len(&reference.id) == Some(total) {
        let span = liaison_protocol::attachment::chunk_span(size, request.first)
            .ok_or_else(|| Error::Invalid("chunk past the end".into()))?;
        let len = range_len(size, request.first, count)
            .ok_or_else(|| Error::Invalid("range past the end".into()))?;
        let cipher = files.read_whole(&reference.id, span.cipher_offset, len as usize)?;
        let response = ChunkResponse::Chunks {
            first: request.first,
            count,
            total,
        };
        return Ok((response, cipher));
    }
    match files.existing_partial(&reference.id)? {
        Some(partial) if partial.total() == total => {
            let run = partial.run_from(request.first, count);
            if run == 0 {
                return Ok((ChunkResponse::Missing, Vec::new()));
            }
            let cipher = partial.read_range(request.first, run)?;
            Ok((
                ChunkResponse::Chunks {
                    first: request.first,
                    count: run,
                    total,
                },
                cipher,
            ))
        }
        _ => Ok((ChunkResponse::Missing, Vec::new())),
    }
}

/// One attachment to fetch.
#[derive(Debug, Clone)]
pub struct Job {
    /// What the message says of it.
    pub reference: AttachmentRef,
    /// A message naming it, which the peers asked must hold.
    pub message: MessageId,
    /// The peers that may hold it, in order of preference.
    pub peers: Vec<NodeId>,
}

enum Outcome {
    Stored(u32),
    Missing,
    Unavailable,
    Failed(String),
}

/// Fetches the attachment of `job` from the connected peers among `job.peers` until it is
/// whole here, then checks it against its id.
pub async fn fetch(
    attachments: Arc<Attachments>,
    connections: Connections,
    job: Job,
    cancel: CancellationToken,
) -> Result<()> {
    let id = job.reference.id;
    if attachments.is_whole(&id) {
        return Ok(());
    }
    let total = job.reference.ciphertext_len();
    let partial = {
        let att = attachments.clone();
        tokio::task::spawn_blocking(move || att.files().partial(&id, total))
            .await
            .map_err(|_| Error::ShuttingDown)??
    };
    let mut plan = Download::new(
        id,
        job.message,
        job.reference.size,
        partial.held(),
        DownloadConfig::default(),
    )?;
    let mut asks = tokio::task::JoinSet::new();
    let mut progress = Instant::now();
    while !plan.is_complete() {
        {
            let conns = connections.lock().unwrap_or_else(PoisonError::into_inner);
            for peer in &job.peers {
                let open = conns.get(peer).is_some_and(|c| c.close_reason().is_none());
                if open && !plan.has_peer(peer) {
                    plan.add_peer(*peer);
                } else if !open && plan.has_peer(peer) {
                    plan.remove_peer(peer);
                }
            }
        }
        while let Some(ask) = plan.poll_request(now()) {
            let conn = connections
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&ask.peer)
                .cloned();
            let Some(conn) = conn else {
                plan.handle_failed(now(), &ask.peer, ask.request.first);
                continue;
            };
            let (reference, partial) = (job.reference.clone(), partial.clone());
            asks.spawn(async move {
                let outcome = match tokio::time::timeout(
                    ASK_TIMEOUT,
                    ask_range(&conn, &ask, &reference, partial),
                )
                .await
                {
                    Ok(o) => o,
                    Err(_) => Outcome::Failed("no answer in time".into()),
                };
                (ask, outcome)
            });
        }
        if asks.is_empty() && plan.has_no_peers() && progress.elapsed() > GIVE_UP {
            return Err(Error::NotYet(format!(
                "no connected peer served attachment {} for {} s",
                id.short(),
                GIVE_UP.as_secs()
            )));
        }
        let wait = plan
            .poll_timeout()
            .map_or(REFRESH, |t| {
                Duration::from_millis(t.0.saturating_sub(now().0))
            })
            .min(REFRESH);
        tokio::select! {
            () = cancel.cancelled() => return Err(Error::ShuttingDown),
            Some(done) = asks.join_next() => {
                let Ok((ask, outcome)) = done else {
                    return Err(Error::ShuttingDown);
                };
                let first = ask.request.first;
                match outcome {
                    Outcome::Stored(count) => {
                        progress = Instant::now();
                        if let Some(len) = range_len(job.reference.size, first, count) {
                            attachments.note_fetched(len);
                        }
                        plan.handle_stored(&ask.peer, first, count);
                    }
                    Outcome::Missing => plan.handle_missing(now(), &ask.peer, first),
                    Outcome::Unavailable => plan.handle_unavailable(now(), &ask.peer, first),
                    Outcome::Failed(why) => {
                        warn!(peer = %ask.peer.short(), attachment = %id.short(), first, reason = %why, "attachment chunks refused");
                        plan.handle_failed(now(), &ask.peer, first);
                    }
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
    let att = attachments.clone();
    let finished = tokio::task::spawn_blocking(move || att.files().finish(&partial))
        .await
        .map_err(|_| Error::ShuttingDown)??;
    match finished {
        Finished::Whole => {
            debug!(attachment = %id.short(), "attachment fetched whole");
            Ok(())
        }
        Finished::Mismatch => Err(Error::Corrupt(format!(
            "the chunks of attachment {} open with its key but do not hash to its id; dropped",
            id.short()
        ))),
    }
}

/// Asks one peer for one range and stores what it sends, checked.
async fn ask_range(
    conn: &quinn::Connection,
    ask: &Ask,
    reference: &AttachmentRef,
    partial: Arc<Partial>,
) -> Outcome {
    let request = ask.request;
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        let bytes = request.to_bytes().map_err(|e| e.to_string())?;
        write_frame(&mut send, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        let header = read_frame(&mut recv, MAX_RESPONSE_LEN)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the stream ended without an answer")?;
        let response = ChunkResponse::decode(&header).map_err(|e| e.to_string())?;
        let (first, count, total) = match response {
            ChunkResponse::Missing => return Ok(Outcome::Missing),
            ChunkResponse::Unavailable => return Ok(Outcome::Unavailable),
            ChunkResponse::Chunks {
                first,
                count,
                total,
            } => (first, count, total),
        };
        if first != request.first || count > request.count || total != reference.ciphertext_len() {
            return Err(format!(
                "answered chunks {first}+{count} of a {total}-byte ciphertext to a request for \
                 {}+{} of {}",
                request.first,
                request.count,
                reference.ciphertext_len()
            ));
        }
        let len = range_len(reference.size, first, count).ok_or("chunks past the end")?;
        let mut cipher = vec![0u8; usize::try_from(len).map_err(|e| e.to_string())?];
        recv.read_exact(&mut cipher)
            .await
            .map_err(|e| e.to_string())?;
        let opened = check_range(&reference.key, reference.size, first, &cipher)
            .map_err(|e| format!("chunks do not open with the key: {e}"))?;
        if opened != count {
            return Err(format!("{opened} chunks arrived, {count} announced"));
        }
        tokio::task::spawn_blocking(move || partial.write_range(first, count, &cipher))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(Outcome::Stored(count))
    };
    match exchange.await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed(e),
    }
}
