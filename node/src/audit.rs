//! The audit trail: every post, read, list, membership change, grant, export and refused access,
//! appended to the store as a hash chain.
//!
//! Record `n` carries the hash of record `n - 1` (`prev`; all zero for record 1) and its own
//! `hash = BLAKE3-derive("liaison/v1/audit-record", prev || JSON(seq, at_ms, actor, action,
//! target, outcome))`. Changing, inserting or removing a record in the middle breaks the chain
//! at that record, which [`verify`] names.

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::error::{Error, Result};
use crate::store::Store;

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
#[derive(Debug)]
pub struct AuditLog {
    store: Store,
    head: Mutex<(u64, [u8; 32])>,
}

impl AuditLog {
    /// Opens the log kept in `store`, continuing its chain.
    pub fn open(store: Store) -> Result<AuditLog> {
        let head = match store.last_audit()? {
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
            head: Mutex::new(head),
        })
    }

    /// Appends a record and waits until it is on disk.
    pub async fn append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<()> {
        let ticket = {
            let mut head = self.head.lock().await;
            let mut record = AuditRecord {
                seq: head.0 + 1,
                at_ms: crate::node::now().0,
                actor: actor.to_owned(),
                action: action.to_owned(),
                target: target.to_owned(),
                outcome: outcome.to_owned(),
                prev: hex::encode(head.1),
                hash: String::new(),
            };
            let hash = record_hash(&head.1, &record)?;
            record.hash = hex::encode(hash);
            let bytes = serde_json::to_vec(&record)
                .map_err(|e| Error::Invalid(format!("cannot encode an audit record: {e}")))?;
            let ticket = self.store.append_audit(record.seq, &bytes)?;
            *head = (record.seq, hash);
            ticket
        };
        self.store.wait_for(ticket).await?;
        Ok(())
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
}

/// Checks the audit chain in `store` and names the first broken record.
pub fn verify(store: &Store) -> Result<Verification> {
    let records = store.audit_records(1)?;
    let total = records.len() as u64;
    let mut prev = [0u8; 32];
    let broken = |seq: u64, reason: String| Verification {
        records: total,
        intact: false,
        first_broken: Some(seq),
        reason: Some(reason),
    };
    for (i, (seq, bytes)) in records.into_iter().enumerate() {
        let expected = i as u64 + 1;
        if seq != expected {
            return Ok(broken(expected, format!("record {expected} is missing")));
        }
        let r: AuditRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return Ok(broken(seq, format!("record is unreadable: {e}"))),
        };
        if r.seq != seq {
            return Ok(broken(seq, format!("record claims number {}", r.seq)));
        }
        if r.prev != hex::encode(prev) {
            return Ok(broken(seq, "does not link to the previous record".into()));
        }
        let hash = record_hash(&prev, &r)?;
        if r.hash != hex::encode(hash) {
            return Ok(broken(
                seq,
                "content does not match its hash (altered)".into(),
            ));
        }
        prev = hash;
    }
    Ok(Verification {
        records: total,
        intact: true,
        first_broken: None,
        reason: None,
    })
}
