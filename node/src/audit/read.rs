//! Reading the audit log without holding it: pages from the store, the streamed answer of
//! `GET /v1/audit`, and the chain check, record by record.
//!
//! Memory is bounded by [`PAGE`] records whatever the log's length: the store is read a page
//! at a time (on the blocking pool where an async task asks), and nothing keeps what was read.

use axum::body::Bytes;
use futures_util::Stream;

use super::{record_hash, AuditRecord, Verification};
use crate::error::{Error, Result};
use crate::store::Store;

/// Records read from the store at a time.
pub const PAGE: usize = 512;

/// Decodes stored record `seq`.
pub fn decode(seq: u64, bytes: &[u8]) -> Result<AuditRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Corrupt(format!("audit record {seq} is unreadable: {e}")))
}

/// At most [`PAGE`] records with `seq >= from`, in order.
pub fn page(store: &Store, from: u64) -> Result<Vec<AuditRecord>> {
    store
        .audit_page(from, PAGE)?
        .into_iter()
        .map(|(seq, bytes)| decode(seq, &bytes))
        .collect()
}

/// Every record with `seq >= from`, in order, read a page at a time as the iterator is taken
/// (call it on the blocking pool); it ends after the first error, which it yields.
pub fn records(store: Store, from: u64) -> impl Iterator<Item = Result<AuditRecord>> {
    let mut next = Some(from);
    let mut buffered = std::collections::VecDeque::new();
    std::iter::from_fn(move || {
        if buffered.is_empty() {
            let from = next?;
            match page(&store, from) {
                Ok(records) => {
                    next = records.last().map(|r| r.seq.saturating_add(1));
                    buffered.extend(records);
                }
                Err(e) => {
                    next = None;
                    return Some(Err(e));
                }
            }
        }
        buffered.pop_front().map(Ok)
    })
}

/// The answer of `GET /v1/audit`: a JSON array of the records at or after `since_ms`, oldest
/// first, one record per line (`[`, then a record and `,` per line, then `]`), read a page at a
/// time as the client takes it. A store error midway ends the body early (the client sees an
/// incomplete array).
pub fn json_array(store: Store, since_ms: u64) -> impl Stream<Item = std::io::Result<Bytes>> {
    /// Where the answer is: the next seq to read and whether a record was written yet.
    enum At {
        Start,
        Next { from: u64, first: bool },
        Done,
    }
    futures_util::stream::unfold(At::Start, move |at| {
        let store = store.clone();
        async move {
            let (from, first) = match at {
                At::Done => return None,
                At::Start => {
                    let next = At::Next {
                        from: 1,
                        first: true,
                    };
                    return Some((Ok(Bytes::from_static(b"[\n")), next));
                }
                At::Next { from, first } => (from, first),
            };
            let read = tokio::task::spawn_blocking(move || page(&store, from))
                .await
                .map_err(|_| Error::ShuttingDown)
                .and_then(|r| r);
            let records = match read {
                Ok(records) => records,
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), At::Done)),
            };
            let Some(last) = records.last().map(|r| r.seq) else {
                let end = if first { "]\n" } else { "\n]\n" };
                return Some((Ok(Bytes::from(end)), At::Done));
            };
            let mut buf = Vec::new();
            let mut first = first;
            for r in records.iter().filter(|r| r.at_ms >= since_ms) {
                if !first {
                    buf.extend_from_slice(b",\n");
                }
                first = false;
                if let Err(e) = serde_json::to_writer(&mut buf, r) {
                    return Some((Err(std::io::Error::other(e)), At::Done));
                }
            }
            let next = At::Next {
                from: last.saturating_add(1),
                first,
            };
            Some((Ok(Bytes::from(buf)), next))
        }
    })
}

/// A signed head the chain is checked against: record `seq` must have hash `hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The record's number.
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

/// Checks the audit chain in `store` a page at a time and names the first broken record; with
/// an `anchor` (a signed checkpoint's head), also that record `anchor.seq` is still the one the
/// checkpoint signed, which recomputed hashes cannot fake.
pub fn verify(store: &Store, anchor: Option<Anchor>) -> Result<Verification> {
    let mut prev = [0u8; 32];
    let mut expected = 1u64;
    let mut broken: Option<(u64, String)> = None;
    let mut anchored = anchor.is_none();
    let mut count = 0u64;
    loop {
        let page = store.audit_page(expected, PAGE)?;
        if page.is_empty() {
            break;
        }
        for (seq, bytes) in page {
            if broken.is_none() {
                broken = check(seq, expected, &bytes, &mut prev)?;
                if let (None, Some(a)) = (&broken, anchor) {
                    if seq == a.seq {
                        anchored = true;
                        if prev != a.hash {
                            broken = Some((
                                a.seq,
                                format!(
                                    "record {} is not the one the checkpoint signed: the log was \
                                     rewritten at or before it",
                                    a.seq
                                ),
                            ));
                        }
                    }
                }
            }
            expected = seq.saturating_add(1);
            count += 1;
        }
    }
    let last = expected - 1;
    if broken.is_none() && !anchored {
        if let Some(a) = anchor {
            broken = Some((
                last + 1,
                format!(
                    "the log ends at record {last}, before record {} that the checkpoint \
                     signed: records were removed",
                    a.seq
                ),
            ));
        }
    }
    Ok(match broken {
        None => Verification {
            records: count,
            intact: true,
            first_broken: None,
            reason: None,
            checkpoint: anchor.map(|a| a.seq),
        },
        Some((seq, reason)) => Verification {
            records: count,
            intact: false,
            first_broken: Some(seq),
            reason: Some(reason),
            checkpoint: anchor.map(|a| a.seq),
        },
    })
}

/// Checks stored record `seq` (expected to be number `expected`) against the chain so far;
/// moves `prev` on to its hash if it holds, else says why it is broken.
fn check(
    seq: u64,
    expected: u64,
    bytes: &[u8],
    prev: &mut [u8; 32],
) -> Result<Option<(u64, String)>> {
    if seq != expected {
        return Ok(Some((expected, format!("record {expected} is missing"))));
    }
    let r: AuditRecord = match serde_json::from_slice(bytes) {
        Ok(r) => r,
        Err(e) => return Ok(Some((seq, format!("record is unreadable: {e}")))),
    };
    if r.seq != seq {
        return Ok(Some((seq, format!("record claims number {}", r.seq))));
    }
    if r.prev != hex::encode(*prev) {
        return Ok(Some((seq, "does not link to the previous record".into())));
    }
    let hash = record_hash(prev, &r)?;
    if r.hash != hex::encode(hash) {
        return Ok(Some((
            seq,
            "content does not match its hash (altered)".into(),
        )));
    }
    *prev = hash;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;
    use crate::audit::AuditLog;

    /// The streamed answer body of [`json_array`].
    async fn body(store: &Store, since_ms: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut chunks = std::pin::pin!(json_array(store.clone(), since_ms));
        while let Some(chunk) = chunks.next().await {
            out.extend_from_slice(&chunk.expect("chunk"));
        }
        out
    }

    /// Across several pages the streamed answer is one JSON array with every record once, in
    /// order, a record per line; the check walks them all, and against an anchor finds a
    /// different hash at its record and a log that ends before it.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_log_is_streamed_and_checked_across_pages() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("store")).expect("store");
        let log = AuditLog::open(store.clone()).expect("log");
        let n = PAGE as u64 * 2 + 7;
        for i in 0..n {
            log.append_read("admin", "read", &format!("m{i}"), "ok")
                .await
                .expect("append");
        }
        let v = verify(&store, None).expect("verify");
        assert!(v.intact, "{v:?}");
        assert_eq!(v.records, n);

        let text = body(&store, 0).await;
        let records: Vec<AuditRecord> = serde_json::from_slice(&text).expect("a JSON array");
        assert_eq!(records.len() as u64, n);
        assert!(records.iter().zip(1..).all(|(r, seq)| r.seq == seq));
        let lines = text.split(|b| *b == b'\n').filter(|l| l.starts_with(b"{"));
        assert_eq!(lines.count() as u64, n);
        let none: Vec<AuditRecord> =
            serde_json::from_slice(&body(&store, u64::MAX).await).expect("an empty array");
        assert!(none.is_empty());

        let walked: Vec<u64> = super::records(store.clone(), 1)
            .map(|r| r.expect("record").seq)
            .collect();
        assert_eq!(walked, (1..=n).collect::<Vec<_>>());

        let (seq, hash) = log.head().await;
        assert!(
            verify(&store, Some(Anchor { seq, hash }))
                .expect("verify")
                .intact
        );
        let moved = Anchor {
            seq: 600,
            hash: [9; 32],
        };
        let broken = verify(&store, Some(moved)).expect("verify");
        assert_eq!(broken.first_broken, Some(600), "{broken:?}");
        let beyond = verify(&store, Some(Anchor { seq: n + 5, hash })).expect("verify");
        assert!(!beyond.intact, "{beyond:?}");
        assert_eq!(beyond.first_broken, Some(n + 1), "{beyond:?}");
    }
}
