//! The audit trail: every post, read, list, membership change, grant, export and refused access,
//! appended to the store as a hash chain.
//!
//! Record `n` carries the hash of record `n - 1` (`prev`; all zero for record 1) and its own
//! `hash = BLAKE3-derive("liaison/v1/audit-record", prev || JSON(seq, at_ms, actor, action,
//! target, outcome))`. Changing, inserting or removing a record in the middle breaks the chain
//! at that record, which [`verify`] names.

use std::sync::Arc;

use liaison_protocol::MessageId;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::accounts::Principal;
use crate::error::{Error, Result};
use crate::store::{DurableTicket, NewMessage, Store};

pub mod checkpoint;
pub mod read;
pub mod refused;

/// BLAKE3 key-derivation context of audit record hashes.
pub const AUDIT_CONTEXT: &str = "liaison/v1/audit-record";

/// One audit record as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Who: `admin`, `officer:NAME`, or `unknown` for a request without a valid token.
    pub actor: String,
    /// What: `post`, `read`, `list`, `group.add`, `user.grant`, `export`, `auth`, ...
    pub action: String,
    /// On what: a group, message, peer or account.
    pub target: String,
    /// `ok`, `denied: ...` or `error: ...`.
    pub outcome: String,
    /// Hash of the previous record, hex.
    pub prev: String,
    /// Hash of this record, hex.
    pub hash: String,
}

#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at_ms: u64,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
}

fn record_hash(prev: &[u8; 32], r: &AuditRecord) -> Result<[u8; 32]> {
    let body = serde_json::to_vec(&Hashed {
        seq: r.seq,
        at_ms: r.at_ms,
        actor: &r.actor,
        action: &r.action,
        target: &r.target,
        outcome: &r.outcome,
    })
    .map_err(|e| Error::Invalid(format!("cannot encode an audit record: {e}")))?;
    let mut h = blake3::Hasher::new_derive_key(AUDIT_CONTEXT);
    h.update(prev);
    h.update(&body);
    Ok(*h.finalize().as_bytes())
}

/// The node's audit log. Appends are serialised; their flushes are shared (group commit).
///
/// What it guarantees, and what the API answers by:
///
/// - Every record is written to the store's log (handed to the operating system) before the
///   request it describes is answered: a node process that is killed keeps the record of every
///   answered request.
/// - A request that changes state (or is refused one) is answered only once its record, and
///   every record written before it, is on disk ([`AuditLog::append`]). A post's record is
///   written with the message and made durable by the same flush
///   ([`stage_posts`]).
/// - A read-only request ([`is_read_only`]) does not wait for a flush of its own
///   ([`AuditLog::append_read`]): the flush its record starts runs while the answer goes out,
///   and the record is on disk before the next state-changing request is answered (if it
///   cannot be made so, that request is refused). Only a power loss or an operating-system
///   crash in between can lose it.
#[derive(Debug)]
pub struct AuditLog {
    store: Store,
    head: Mutex<Head>,
}

#[derive(Debug)]
struct Head {
    seq: u64,
    hash: [u8; 32],
    /// The last read-only record that nothing has waited for yet.
    unsettled: Option<DurableTicket>,
}

/// A record written to the store but not yet known to be on disk: pass it to
/// [`AuditLog::settle`] before answering the request it describes.
#[derive(Debug)]
#[must_use]
pub struct Staged {
    ticket: DurableTicket,
    /// The newest read-only record written before it that nothing had waited for.
    reads: Option<DurableTicket>,
}

/// The outcome an audit record gives a request that `error` refused (`None`: it succeeded):
/// `ok`, `denied: ...` (forbidden, or hidden from an officer) or `error: ...`.
pub fn outcome(who: &Principal, error: Option<&Error>) -> String {
    match error {
        None => "ok".to_owned(),
        Some(Error::Forbidden(m)) => format!("denied: {m}"),
        Some(Error::NotFound(m)) if *who != Principal::Admin => format!("denied: {m}"),
        Some(e) => format!("error: {e}"),
    }
}

/// Whether the action an audit record names only reads: its request need not wait for a flush
/// of its own (see [`AuditLog`]). Anything not named here waits.
pub fn is_read_only(action: &str) -> bool {
    matches!(
        action,
        "read"
            | "list"
            | "watch"
            | "thread"
            | "stats"
            | "export"
            | "receipts"
            | "attachment"
            | "attachment.thumbnail"
            | "group.list"
            | "group.show"
            | "user.list"
            | "audit.read"
            | "audit.verify"
            | "quarantine.list"
    )
}

impl AuditLog {
    /// Opens the log kept in `store`, continuing its chain.
    pub fn open(store: Store) -> Result<AuditLog> {
        let (seq, hash) = match store.last_audit()? {
            None => (0, [0u8; 32]),
            Some((seq, bytes)) => {
                let r: AuditRecord = serde_json::from_slice(&bytes)
                    .map_err(|e| Error::Corrupt(format!("audit record {seq}: {e}")))?;
                let mut hash = [0u8; 32];
                hex::decode_to_slice(&r.hash, &mut hash)
                    .map_err(|_| Error::Corrupt(format!("audit record {seq}: bad hash")))?;
                (seq, hash)
            }
        };
        Ok(AuditLog {
            store,
            head: Mutex::new(Head {
                seq,
                hash,
                unsettled: None,
            }),
        })
    }

    /// Appends a record and waits until it, and every record before it, is on disk.
    pub async fn append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<()> {
        let staged = self.stage(actor, action, target, outcome).await?;
        self.settle(staged).await
    }

    /// Appends the record of a read-only request: written to the store's log before this
    /// returns, on disk before the next [`AuditLog::settle`] returns (see [`AuditLog`]).
    pub async fn append_read(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<()> {
        // Settled by the next change's settle (see `write`), not here.
        let _unsettled = self.write(actor, action, target, outcome, true).await?;
        // On disk within one flush, though nobody waits for it.
        self.store.flush_soon();
        Ok(())
    }

    /// Appends a record without waiting for it to be on disk.
    pub async fn stage(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<Staged> {
        self.write(actor, action, target, outcome, false).await
    }

    /// Waits until a staged record, and every record written before it (those of read-only
    /// requests included), is on disk.
    pub async fn settle(&self, staged: Staged) -> Result<()> {
        self.store.wait_for(staged.ticket).await?;
        if let Some(reads) = staged.reads {
            // Covered by the same flushes unless a flush failed in between, which this wait
            // reports. Cleared once waited for, failed or not: a record that could not be made
            // durable refuses the requests waiting now, not every later one.
            let result = self.store.wait_for(reads).await;
            let mut head = self.head.lock().await;
            if head.unsettled == Some(reads) {
                head.unsettled = None;
            }
            result?;
        }
        Ok(())
    }

    async fn write(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        read_only: bool,
    ) -> Result<Staged> {
        let mut head = self.head.lock().await;
        let mut record = AuditRecord {
            seq: head.seq + 1,
            at_ms: crate::clock::now().0,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            prev: hex::encode(head.hash),
            hash: String::new(),
        };
        let hash = record_hash(&head.hash, &record)?;
        record.hash = hex::encode(hash);
        let bytes = serde_json::to_vec(&record)
            .map_err(|e| Error::Invalid(format!("cannot encode an audit record: {e}")))?;
        let ticket = self.store.append_audit(record.seq, &bytes)?;
        head.seq = record.seq;
        head.hash = hash;
        let reads = if read_only {
            head.unsettled.replace(ticket)
        } else {
            head.unsettled
        };
        Ok(Staged { ticket, reads })
    }

    /// Records at or after `since_ms`.
    pub fn records(&self, since_ms: u64) -> Result<Vec<AuditRecord>> {
        let mut out = Vec::new();
        for (seq, bytes) in self.store.audit_records(1)? {
            let r: AuditRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("audit record {seq} is unreadable: {e}")))?;
            if r.at_ms >= since_ms {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Checks the whole chain.
    pub fn verify(&self) -> Result<Verification> {
        verify(&self.store)
    }

    /// The number and hash of the last record (0 and all zero while the log is empty).
    pub async fn head(&self) -> (u64, [u8; 32]) {
        let head = self.head.lock().await;
        (head.seq, head.hash)
    }

    /// The store the log is kept in, for readers that page through it ([`read`]).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// The result of checking the audit chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// Whether every record is intact.
    pub intact: bool,
    /// The first broken record, if any.
    pub first_broken: Option<u64>,
    /// Why it is broken.
    pub reason: Option<String>,
    /// The record whose signed checkpoint the chain was checked against, if one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<u64>,
}

/// Checks the audit chain in `store` and names the first broken record (a page of records
/// in memory at a time; see [`read::verify`]).
pub fn verify(store: &Store) -> Result<Verification> {
    read::verify(store, None)
}

/// The audit record of one post, written by the node once the message is stored and made
/// durable by the same flush (see [`stage_posts`]).
#[derive(Debug)]
pub struct PostAudit {
    log: Arc<AuditLog>,
    actor: String,
    action: &'static str,
    target: String,
}

impl PostAudit {
    /// The record `actor` `action` `TARGET ID` `ok` of a post to `target` (a group as the caller
    /// named it), once stored as message `ID`.
    pub fn new(log: Arc<AuditLog>, actor: String, action: &'static str, target: String) -> Self {
        PostAudit {
            log,
            actor,
            action,
            target,
        }
    }
}

/// A batch of local posts applied to the store with their audit records written, nothing of
/// it known to be on disk yet: [`StagedPosts::settle`] waits for that. See [`stage_posts`].
#[derive(Debug)]
#[must_use]
pub struct StagedPosts {
    /// The messages' write (`None` for an empty batch).
    ticket: Option<DurableTicket>,
    /// Per post, its audit record as written (or why it could not be), if it has one.
    records: Vec<Option<(Arc<AuditLog>, Result<Staged>)>>,
}

impl StagedPosts {
    /// The ticket of the messages' write: a later batch passes it to
    /// [`Store::stage_messages_after`], so that it is never durable when this one was lost.
    pub fn ticket(&self) -> Option<DurableTicket> {
        self.ticket
    }

    /// Waits until the messages and their audit records are on disk (one flush covers both,
    /// and any batch staged meanwhile). Returns how the batch went, and per post whether its
    /// record was written and is durable. A record that cannot be written fails only its own
    /// post's answer (the message is stored, as the batch's result says).
    pub async fn settle(self, store: &Store) -> (std::result::Result<(), String>, Vec<Result<()>>) {
        if let Some(ticket) = self.ticket {
            if let Err(e) = store.wait_for(ticket).await {
                // The batch's error answers every post; no audit record is owed to the node.
                return (
                    Err(e.to_string()),
                    self.records.iter().map(|_| Ok(())).collect(),
                );
            }
        }
        let mut audited = Vec::with_capacity(self.records.len());
        for record in self.records {
            audited.push(match record {
                Some((log, Ok(staged))) => log.settle(staged).await,
                Some((_, Err(e))) => Err(e),
                None => Ok(()),
            });
        }
        (Ok(()), audited)
    }
}

/// Applies a batch of local posts (`posts`: each message's id and the audit record to write for
/// it) so that one flush covers the messages and their audit records: the messages are applied,
/// then the records written; [`StagedPosts::settle`] then waits for both. `after`: the write of
/// the batch staged before this one, if it may still be lost (see
/// [`Store::stage_messages_after`]). An error is the batch's: nothing of it was applied, and no
/// audit record is owed to the node.
pub async fn stage_posts<'a>(
    store: &Store,
    batch: Vec<NewMessage>,
    after: Option<DurableTicket>,
    posts: impl Iterator<Item = (MessageId, Option<&'a PostAudit>)>,
) -> std::result::Result<StagedPosts, String> {
    let posts: Vec<(MessageId, Option<&PostAudit>)> = posts.collect();
    let ticket = match store.stage_messages_after(batch, after).await {
        Ok((_, ticket)) => ticket,
        Err(e) => return Err(e.to_string()),
    };
    let mut records = Vec::with_capacity(posts.len());
    for (id, audit) in &posts {
        records.push(match audit {
            None => None,
            Some(a) => Some((
                a.log.clone(),
                a.log
                    .stage(&a.actor, a.action, &format!("{} {id}", a.target), "ok")
                    .await,
            )),
        });
    }
    Ok(StagedPosts { ticket, records })
}
