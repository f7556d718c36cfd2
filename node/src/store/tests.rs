//! The store's unit tests. Long on purpose (~1,700 lines): the tests share the fixtures at
//! its top (a store in a temporary directory, messages and receipts made to order, damaged
//! files), and each names the guarantee it checks.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};

use liaison_protocol::{GroupId, IdentityKey, MessageId, NodeId, Place};

use super::envelope_log::{self, Location};
use super::keys::*;
use super::runs::*;
use super::*;

static G1: LazyLock<GroupId> = LazyLock::new(|| GroupId::from([1; 16]));
static G2: LazyLock<GroupId> = LazyLock::new(|| GroupId::from([2; 16]));
/// Two authors, `A1` sorting before `A2` (as the store orders node ids, by their bytes).
static AUTHORS: LazyLock<[NodeId; 2]> = LazyLock::new(|| {
    let mut two = [1u8, 2].map(|n| IdentityKey::from_seed(&[n; 32]).node_id());
    two.sort();
    two
});
static A1: LazyLock<NodeId> = LazyLock::new(|| AUTHORS[0]);
static A2: LazyLock<NodeId> = LazyLock::new(|| AUTHORS[1]);

fn id(n: u64) -> MessageId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[31] = 0x55;
    MessageId::from(id)
}

fn at(group: &GroupId, author: &NodeId, epoch: u64, seq: u64) -> Place {
    Place {
        group: *group,
        author: *author,
        epoch,
        seq,
    }
}

/// What the node does not call, for the tests' reading.
impl Store {
    async fn insert_message(&self, m: NewMessage) -> Result<Inserted, StoreError> {
        Ok(self.insert_messages(vec![m]).await?[0])
    }

    /// The open database.
    fn e(&self) -> Arc<Engine> {
        self.engine().unwrap()
    }

    fn flush_count(&self) -> u64 {
        self.inner.state.borrow().flushes
    }

    fn message_by_seq(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        seq: u64,
    ) -> Result<Option<MessageId>, StoreError> {
        self.e()
            .held_at(&author_key(&at(group, author, epoch, seq)))
    }

    /// Up to `limit` held `(seq, id)` pairs of a sequence space from `from_seq` on.
    fn author_seqs(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, MessageId)>, StoreError> {
        let mut out = Vec::new();
        if limit > 0 {
            self.e()
                .each_held(&at(group, author, epoch, from_seq), |seq, record| {
                    out.push((seq, record.id));
                    Ok(out.len() < limit)
                })?;
        }
        Ok(out)
    }

    fn held_seqs(
        &self,
        group: &GroupId,
        author: &NodeId,
        epoch: u64,
    ) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .author_seqs(group, author, epoch, 0, usize::MAX)?
            .into_iter()
            .map(|(seq, _)| seq)
            .collect())
    }

    /// Every `(author, epoch)` of `group` with the end of its contiguous prefix of seqs.
    fn authors(&self, group: &GroupId) -> Result<Vec<(NodeId, u64, u64)>, StoreError> {
        let mut out: Vec<(NodeId, u64, u64)> = Vec::new();
        for p in self.held(group)? {
            match out.last_mut() {
                Some((a, e, n)) if (*a, *e) == (p.author, p.epoch) => {
                    if p.seq == *n + 1 {
                        *n = p.seq;
                    }
                }
                _ => out.push((p.author, p.epoch, u64::from(p.seq == 1))),
            }
        }
        Ok(out)
    }

    /// The places held in `group` as `(author, epoch, seq)`.
    fn held_triples(&self, group: &GroupId) -> Result<Vec<(NodeId, u64, u64)>, StoreError> {
        Ok(self
            .held(group)?
            .into_iter()
            .map(|p| (p.author, p.epoch, p.seq))
            .collect())
    }

    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.e().meta.get(key).unwrap().map(|v| v.to_vec()))
    }
}

/// The error of `result`, which must be [`StoreError::Corrupt`] naming `tree`.
#[track_caller]
fn corrupt_in<T: std::fmt::Debug>(result: Result<T, StoreError>, tree: &str) -> StoreError {
    match result {
        Err(err) if matches!(&err, StoreError::Corrupt { tree: t, .. } if *t == tree) => err,
        other => panic!("expected {tree} to be reported corrupt: {other:?}"),
    }
}

/// Message `n` at seq `n` of author A1, epoch 1 (as `insert_seqs` stores them).
fn placed(n: u64) -> (MessageId, Place) {
    (id(n), at(&G1, &A1, 1, n))
}

/// A receipt of `receiver` naming messages `messages` of G1 (see [`placed`]).
fn receipt(receiver: NodeId, messages: &[u64], bytes: &[u8]) -> NewReceipt {
    NewReceipt {
        receiver,
        messages: messages.iter().map(|n| placed(*n)).collect(),
        bytes: bytes.to_vec(),
    }
}

/// The receipts stored for message `n` of G1, ascending by receiver, then bytes.
fn receipts_of(store: &Store, n: u64) -> Vec<(NodeId, Vec<u8>)> {
    let mut found = store.receipts(&placed(n).1).unwrap();
    found.sort();
    found
}

fn msg(n: u64, group: GroupId, author: NodeId, seq: u64) -> NewMessage {
    msg_in(n, group, author, 1, seq)
}

fn msg_in(n: u64, group: GroupId, author: NodeId, epoch: u64, seq: u64) -> NewMessage {
    NewMessage {
        id: id(n),
        place: at(&group, &author, epoch, seq),
        envelope: format!("envelope {n}").into_bytes(),
        meta: format!("meta {n}").into_bytes(),
        created_at: n,
        reply_to: None,
    }
}

fn open_tmp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

#[tokio::test(flavor = "multi_thread")]
async fn store_insert_is_idempotent_and_detects_conflicts() {
    let (_dir, store) = open_tmp();
    let m = msg(1, *G1, *A1, 1);
    assert_eq!(
        store.insert_message(m.clone()).await.unwrap(),
        Inserted::New
    );
    assert_eq!(
        store.insert_message(m.clone()).await.unwrap(),
        Inserted::Duplicate
    );

    // Same (group, author, seq), different id: conflict, nothing written.
    let other = msg(2, *G1, *A1, 1);
    assert_eq!(
        store.insert_message(other).await.unwrap(),
        Inserted::Conflict
    );
    assert_eq!(store.message(&id(2)).unwrap(), None);
    assert_eq!(store.message_meta(&id(2)).unwrap(), None);

    assert_eq!(store.message(&id(1)).unwrap(), Some(m.envelope.clone()));
    assert_eq!(store.message_meta(&id(1)).unwrap(), Some(m.meta.clone()));
    assert!(store.has_message(&id(1)).unwrap());
    assert_eq!(store.message_by_seq(&G1, &A1, 1, 1).unwrap(), Some(id(1)));
    assert_eq!(store.message_by_seq(&G1, &A1, 1, 2).unwrap(), None);
    assert_eq!(store.message_count(), 1);
    assert_eq!(store.group_messages(&G1).unwrap(), vec![id(1)]);

    // Same seq in another group or by another author is fine.
    assert_eq!(
        store.insert_message(msg(3, *G2, *A1, 1)).await.unwrap(),
        Inserted::New
    );
    assert_eq!(
        store.insert_message(msg(4, *G1, *A2, 1)).await.unwrap(),
        Inserted::New
    );
    assert_eq!(store.message_count(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn store_batch_insert_reports_each_message() {
    let (_dir, store) = open_tmp();
    store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap();
    let flushes = store.flush_count();
    let out = store
        .insert_messages(vec![
            msg(1, *G1, *A1, 1), // already stored
            msg(2, *G1, *A1, 2),
            msg(3, *G1, *A1, 2), // conflicts with 2 in the same batch
            msg(2, *G1, *A1, 2), // duplicate of 2 in the same batch
            msg(4, *G1, *A1, 3),
        ])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            Inserted::Duplicate,
            Inserted::New,
            Inserted::Conflict,
            Inserted::Duplicate,
            Inserted::New
        ]
    );
    assert!(store.flush_count() > flushes);
    assert_eq!(store.message_count(), 3);
    assert_eq!(store.held_seqs(&G1, &A1, 1).unwrap(), vec![1, 2, 3]);
    assert_eq!(store.insert_messages(Vec::new()).await.unwrap(), Vec::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn store_ranges_sort_numerically() {
    let (_dir, store) = open_tmp();
    // Insert seqs 1..=300 of A1 in a scrambled order, plus a gap for A2.
    let mut seqs: Vec<u64> = (1..=300).collect();
    seqs.reverse();
    seqs.swap(0, 150);
    let batch: Vec<_> = seqs.iter().map(|&s| msg(s, *G1, *A1, s)).collect();
    store.insert_messages(batch).await.unwrap();
    for s in [1, 2, 4, 256] {
        store
            .insert_message(msg(1000 + s, *G1, *A2, s))
            .await
            .unwrap();
    }
    // A message in another group must not leak into G1's ranges.
    store.insert_message(msg(5000, *G2, *A1, 7)).await.unwrap();

    let got = store.author_seqs(&G1, &A1, 1, 250, 10).unwrap();
    let got_seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
    assert_eq!(got_seqs, (250..260).collect::<Vec<_>>());
    assert!(got.iter().all(|(s, i)| *i == id(*s)));
    let all = store.author_seqs(&G1, &A1, 1, 0, usize::MAX).unwrap();
    assert_eq!(all.len(), 300);
    assert!(all.windows(2).all(|w| w[0].0 + 1 == w[1].0));
    assert_eq!(store.author_seqs(&G1, &A1, 1, 301, 10).unwrap(), vec![]);

    assert_eq!(store.held_seqs(&G1, &A2, 1).unwrap(), vec![1, 2, 4, 256]);
    assert_eq!(
        store.authors(&G1).unwrap(),
        vec![(*A1, 1, 300), (*A2, 1, 2)]
    );
    assert_eq!(store.authors(&G2).unwrap(), vec![(*A1, 1, 0)]);
    assert_eq!(store.authors(&GroupId::from([9; 16])).unwrap(), vec![]);

    // A group's messages: by author, then seq (numerically), and only that group's.
    let mut expected: Vec<MessageId> = (1..=300).map(id).collect();
    expected.extend([1, 2, 4, 256].map(|s| id(1000 + s)));
    assert_eq!(store.group_messages(&G1).unwrap(), expected);
    assert_eq!(store.group_messages(&G2).unwrap(), vec![id(5000)]);
    assert_eq!(
        store.group_messages(&GroupId::from([9; 16])).unwrap(),
        Vec::<MessageId>::new()
    );

    // Control events: 255 < 256 < 65536.
    for seq in [65536u64, 256, 1, 255] {
        store
            .insert_control(&G1, seq, &seq.to_le_bytes())
            .await
            .unwrap();
    }
    let events = store.control_events(&G1).unwrap();
    let ev_seqs: Vec<u64> = events.iter().map(|(s, _)| *s).collect();
    assert_eq!(ev_seqs, vec![1, 255, 256, 65536]);
    assert_eq!(events[2].1, 256u64.to_le_bytes().to_vec());
}

#[tokio::test(flavor = "multi_thread")]
async fn store_control_events_and_groups() {
    let (_dir, store) = open_tmp();
    assert_eq!(store.groups().unwrap(), Vec::<GroupId>::new());
    let g_max = GroupId::from([0xff; 16]);
    assert_eq!(
        store.insert_control(&G2, 1, b"a").await.unwrap(),
        ControlInserted::New
    );
    assert_eq!(
        store.insert_control(&G2, 1, b"a").await.unwrap(),
        ControlInserted::Duplicate
    );
    assert_eq!(
        store.insert_control(&G2, 1, b"b").await.unwrap(),
        ControlInserted::Conflict
    );
    store.insert_control(&G2, 2, b"c").await.unwrap();
    store.insert_control(&G1, 7, b"d").await.unwrap();
    store.insert_control(&g_max, u64::MAX, b"e").await.unwrap();
    assert_eq!(store.groups().unwrap(), vec![*G1, *G2, g_max]);
    assert_eq!(
        store.control_events(&G2).unwrap(),
        vec![(1, b"a".to_vec()), (2, b"c".to_vec())]
    );
    assert_eq!(
        store.control_events(&GroupId::from([3; 16])).unwrap(),
        vec![]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_receipts_peers_and_meta() {
    let (_dir, store) = open_tmp();
    insert_seqs(&store, 1..=3).await;
    store
        .insert_receipts(vec![receipt(*A2, &[1], b"r2"), receipt(*A1, &[1], b"r1")])
        .await
        .unwrap();
    store
        .insert_receipts(vec![receipt(*A1, &[2], b"other")])
        .await
        .unwrap();
    // One receipt covers many. A later receipt of the same receiver whose run starts at the
    // same seq replaces the earlier one there.
    store
        .insert_receipts(vec![receipt(*A2, &[1, 3], b"r2-read")])
        .await
        .unwrap();
    assert_eq!(
        receipts_of(&store, 1),
        vec![(*A1, b"r1".to_vec()), (*A2, b"r2-read".to_vec())]
    );
    // Runs starting elsewhere add up: a receiver may have more than one receipt for a message.
    store
        .insert_receipts(vec![receipt(*A1, &[1, 2], b"r1-again")])
        .await
        .unwrap();
    assert_eq!(
        receipts_of(&store, 2),
        vec![(*A1, b"other".to_vec()), (*A1, b"r1-again".to_vec())]
    );
    assert_eq!(receipts_of(&store, 3), vec![(*A2, b"r2-read".to_vec())]);
    assert_eq!(receipts_of(&store, 4), vec![]);
    // Only messages held here, where the receipt's sender says, are indexed; a receipt
    // naming none of them is not kept.
    let mut misplaced = receipt(*A1, &[2], b"misplaced");
    misplaced.messages[0].1.seq = 3;
    store
        .insert_receipts(vec![
            receipt(*A1, &[3, 4], b"half"),
            receipt(*A1, &[5], b"none"),
            misplaced,
        ])
        .await
        .unwrap();
    assert_eq!(
        receipts_of(&store, 3),
        vec![(*A1, b"half".to_vec()), (*A2, b"r2-read".to_vec())]
    );
    assert_eq!(
        receipts_of(&store, 2),
        vec![(*A1, b"other".to_vec()), (*A1, b"r1-again".to_vec())]
    );
    assert_eq!(receipts_of(&store, 4), vec![]);
    assert_eq!(receipts_of(&store, 5), vec![]);
    for gone in [&b"none"[..], b"misplaced"] {
        let key = blake3::hash(gone);
        assert_eq!(store.e().receipt_blobs.get(key.as_bytes()).unwrap(), None);
    }

    store.put_peer(&A2, b"peer2").await.unwrap();
    store.put_peer(&A1, b"peer1").await.unwrap();
    assert_eq!(
        store.peers().unwrap(),
        vec![(*A1, b"peer1".to_vec()), (*A2, b"peer2".to_vec())]
    );
    assert!(store.remove_peer(&A1).await.unwrap());
    assert!(!store.remove_peer(&A1).await.unwrap());
    assert_eq!(store.peers().unwrap(), vec![(*A2, b"peer2".to_vec())]);

    store.put_meta("node.name", b"alpha").await.unwrap();
    assert_eq!(store.meta("node.name").unwrap(), Some(b"alpha".to_vec()));
    assert_eq!(store.meta("missing").unwrap(), None);
    let err = store
        .put_meta("store/next-local-order", b"x")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReservedKey { .. }), "{err}");

    // Written in call order, whatever order the writers wait in: a task that stores an older
    // roster and runs late must not overwrite a newer one.
    let older = store.put_meta("roster/a", b"version 1");
    let newer = store.put_meta("roster/a", b"version 2");
    newer.await.unwrap();
    older.await.unwrap();
    assert_eq!(store.meta("roster/a").unwrap(), Some(b"version 2".to_vec()));
}

#[tokio::test(flavor = "multi_thread")]
async fn store_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let first_order;
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap();
        store
            .insert_messages(vec![msg(2, *G1, *A1, 2), msg(3, *G2, *A2, 5)])
            .await
            .unwrap();
        store.insert_control(&G1, 1, b"create").await.unwrap();
        store
            .insert_receipts(vec![receipt(*A2, &[1], b"ack")])
            .await
            .unwrap();
        store.put_peer(&A2, b"peer").await.unwrap();
        store.put_meta("k", b"v").await.unwrap();
        store.flush().await.unwrap();
        first_order = store.group_messages(&G1).unwrap();
        assert_eq!(first_order.len(), 2);
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.message_count(), 3);
    assert_eq!(store.message(&id(3)).unwrap(), Some(b"envelope 3".to_vec()));
    assert_eq!(
        store.message_meta(&id(2)).unwrap(),
        Some(b"meta 2".to_vec())
    );
    assert_eq!(store.message_by_seq(&G2, &A2, 1, 5).unwrap(), Some(id(3)));
    assert_eq!(store.authors(&G1).unwrap(), vec![(*A1, 1, 2)]);
    assert_eq!(store.group_messages(&G1).unwrap(), first_order);
    assert_eq!(
        store.control_events(&G1).unwrap(),
        vec![(1, b"create".to_vec())]
    );
    assert_eq!(store.groups().unwrap(), vec![*G1]);
    assert_eq!(receipts_of(&store, 1), vec![(*A2, b"ack".to_vec())]);
    assert_eq!(store.peers().unwrap(), vec![(*A2, b"peer".to_vec())]);
    assert_eq!(store.meta("k").unwrap(), Some(b"v".to_vec()));
    // Idempotence holds across restarts.
    assert_eq!(
        store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap(),
        Inserted::Duplicate
    );
    store.insert_message(msg(4, *G1, *A1, 3)).await.unwrap();
    assert_eq!(
        store.group_messages(&G1).unwrap(),
        vec![id(1), id(2), id(4)]
    );
    assert_eq!(store.message_count(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn store_second_open_reports_in_use() {
    let (dir, store) = open_tmp();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("in use by another process"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    // A clone does not release the lock; dropping every handle does.
    let clone = store.clone();
    drop(store);
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::InUse { .. })
    ));
    drop(clone);
    Store::open(dir.path()).unwrap();
}

#[test]
fn store_open_outside_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NoRuntime { .. }), "{err:?}");
}

/// Runs `n` concurrent single-message inserts released together and returns
/// how many flushes they used. Checks that each insert returned only after a
/// flush that completed after the insert started.
async fn concurrent_inserts(store: &Store, n: u64) -> u64 {
    let start_flushes = store.flush_count();
    let barrier = Arc::new(tokio::sync::Barrier::new(n as usize));
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let before = store.flush_count();
            let outcome = store.insert_message(msg(i, *G1, *A1, i + 1)).await.unwrap();
            // The flush covering this insert started after the write, so it
            // cannot be counted in `before`; it must have completed by now.
            let after = store.flush_count();
            assert!(
                after > before,
                "insert {i} returned before a covering flush ({before} -> {after})"
            );
            outcome
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), Inserted::New);
    }
    assert_eq!(store.message_count(), n as usize);
    assert_eq!(store.authors(&G1).unwrap(), vec![(*A1, 1, n)]);
    store.flush_count() - start_flushes
}

#[tokio::test(flavor = "multi_thread")]
async fn store_group_commit_batches_flushes() {
    const N: u64 = 200;
    let (_dir, store) = open_tmp();
    let flushes = concurrent_inserts(&store, N).await;
    eprintln!("{N} concurrent inserts used {flushes} flushes");
    assert!(flushes >= 1);
    assert!(
        flushes <= N / 4,
        "{flushes} flushes for {N} inserts: group commit is not batching"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_group_commit_batches_flushes_on_slow_disk() {
    const N: u64 = 200;
    let (_dir, store) = open_tmp();
    store
        .inner
        .shared
        .flush_delay_ms
        .store(20, Ordering::Release);
    let flushes = concurrent_inserts(&store, N).await;
    eprintln!("{N} concurrent inserts on a slow disk used {flushes} flushes");
    assert!(flushes >= 1);
    assert!(
        flushes <= N / 10,
        "{flushes} flushes for {N} inserts: group commit is not batching"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_durable_wait_requires_flush_started_after_write() {
    let (_dir, store) = open_tmp();
    store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap();
    // Take tickets by hand: each wait returns only once the published
    // durable mark (the `written` snapshot taken when a flush started)
    // reaches the ticket.
    for _ in 0..20 {
        let ticket = store.note_written(false);
        store.wait_durable(ticket).await.unwrap();
        assert!(store.inner.state.borrow().flushed >= ticket);
    }
    // Concurrent waiters share flushes.
    let before = store.flush_count();
    let waits: Vec<_> = (0..50)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move {
                let t = s.note_written(false);
                s.wait_durable(t).await.unwrap();
                assert!(s.inner.state.borrow().flushed >= t);
            })
        })
        .collect();
    for w in waits {
        w.await.unwrap();
    }
    assert!(store.flush_count() - before <= 50);
}

/// Waits until the store has reopened its database `n` times after failed flushes.
async fn reopened(store: &Store, n: u64) {
    let mut state = store.inner.state.clone();
    while state.borrow_and_update().reopened < n {
        state.changed().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn store_flush_failure_refuses_writes_until_the_store_reopens() {
    let (_dir, store) = open_tmp();
    store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap();
    store
        .inner
        .shared
        .fail_next_flush
        .store(true, Ordering::SeqCst);
    let err = store.insert_message(msg(2, *G1, *A1, 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::FlushFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("injected flush failure"), "{err}");
    // Failed: writes and flushes are refused, the store says so, and reads go on.
    let err = store.put_meta("k", b"v").await.unwrap_err();
    assert!(matches!(err, StoreError::FlushFailed { .. }), "{err:?}");
    assert!(matches!(
        store.flush().await,
        Err(StoreError::FlushFailed { .. })
    ));
    let health = store.health();
    assert!(!health.is_healthy());
    assert!(health.failed.unwrap().contains("injected"));
    assert_eq!(store.meta("k").unwrap(), None);
    assert!(store.message(&id(1)).unwrap().is_some());
    // The store reopens its database by itself (recovering as at a start), and takes writes
    // again.
    reopened(&store, 1).await;
    assert!(store.health().failed.is_none());
    store.put_meta("k", b"v").await.unwrap();
    assert_eq!(
        store.insert_message(msg(3, *G1, *A1, 3)).await.unwrap(),
        Inserted::New
    );
    for n in [1, 3] {
        assert!(store.message(&id(n)).unwrap().is_some());
    }
}

/// A batch staged after another is refused, with nothing applied, once a failed flush lost the
/// one it follows: while the store is failed, and after it reopened; one whose predecessor is
/// durable is taken.
#[tokio::test(flavor = "multi_thread")]
async fn store_batch_after_a_lost_batch_is_refused() {
    let (_dir, store) = open_tmp();
    let (_, first) = store
        .stage_messages(vec![msg(1, *G1, *A1, 1)])
        .await
        .unwrap();
    let first = first.unwrap();
    store.wait_for(first).await.unwrap();
    store
        .inner
        .shared
        .fail_next_flush
        .store(true, Ordering::SeqCst);
    let (_, lost) = store
        .stage_messages(vec![msg(3, *G1, *A1, 3)])
        .await
        .unwrap();
    let lost = lost.unwrap();
    assert!(matches!(
        store.wait_for(lost).await,
        Err(StoreError::FlushFailed { .. })
    ));
    // Failed: refused.
    let err = store
        .stage_messages_after(vec![msg(4, *G1, *A1, 4)], Some(lost))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FlushFailed { .. }), "{err:?}");
    // Reopened: still refused, as its predecessor was lost; nothing of it was applied.
    reopened(&store, 1).await;
    let err = store
        .stage_messages_after(vec![msg(4, *G1, *A1, 4)], Some(lost))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::FlushFailed { .. }), "{err:?}");
    assert!(store.message(&id(4)).unwrap().is_none());
    // A batch following a durable one is taken.
    let (_, ticket) = store
        .stage_messages_after(vec![msg(5, *G1, *A1, 5)], Some(first))
        .await
        .unwrap();
    store.wait_for(ticket.unwrap()).await.unwrap();
    assert!(store.message(&id(5)).unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn store_corrupt_entries_are_errors_not_panics() {
    let (_dir, store) = open_tmp();
    store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap();
    // A short key under G1's prefix in the author index.
    store
        .e()
        .messages
        .insert(
            [&author_space(&G1)[..], &[0xa1; 3]].concat(),
            &id(9).as_bytes()[..],
        )
        .unwrap();
    let err = corrupt_in(store.authors(&G1), PART_BY_AUTHOR);
    assert!(err.to_string().contains(PART_BY_AUTHOR), "{err}");

    // A value that is not a message id.
    store
        .e()
        .messages
        .insert(author_key(&at(&G2, &A1, 1, 1)), &b"short"[..])
        .unwrap();
    corrupt_in(store.group_messages(&G2), PART_BY_AUTHOR);

    // A record whose metadata length runs past the end of its run.
    let mut record = Vec::new();
    encode_record(&mut record, &id(7), &location(&store, 1), b"meta 7").unwrap();
    record.truncate(record.len() - 1);
    store
        .e()
        .messages
        .insert(author_key(&at(&G1, &A2, 1, 1)), record)
        .unwrap();
    corrupt_in(store.message_by_seq(&G1, &A2, 1, 1), PART_BY_AUTHOR);
    corrupt_in(store.held_seqs(&G1, &A2, 1), PART_BY_AUTHOR);
    // The id index does not know it, so by id it is not there.
    assert_eq!(store.message_meta(&id(7)).unwrap(), None);

    // Malformed keys in control, receipts and peers.
    store.e().control.insert(&b"bad"[..], &b"x"[..]).unwrap();
    corrupt_in(store.groups(), TREE_CONTROL);
    store
        .e()
        .receipt_runs
        .insert(
            [&seq_space(&placed(1).1)[1..], &1u64.to_be_bytes()[..]].concat(),
            &b"x"[..],
        )
        .unwrap();
    corrupt_in(store.receipts(&placed(1).1), TREE_RECEIPT_RUNS);
    store.e().peers.insert(&b"p"[..], &b"x"[..]).unwrap();
    corrupt_in(store.peers(), TREE_PEERS);
}

/// Writes messages (two groups, in batches), control events and audit records, flushed.
async fn fill(store: &Store) {
    for b in 0..10 {
        insert_seqs(store, b * 50 + 1..=b * 50 + 50).await;
    }
    store
        .insert_messages((1..=20).map(|n| msg(10_000 + n, *G2, *A2, n)).collect())
        .await
        .unwrap();
    for (group, seq) in [(*G1, 1), (*G1, 2), (*G2, 1)] {
        store
            .insert_control(&group, seq, format!("event {seq}").as_bytes())
            .await
            .unwrap();
    }
    for seq in 1..=30 {
        let ticket = store
            .append_audit(seq, format!("audit {seq}").as_bytes())
            .unwrap();
        store.wait_for(ticket).await.unwrap();
    }
    store.flush().await.unwrap();
}

/// Everything `fill` wrote is there and readable.
fn assert_filled(store: &Store) {
    assert_eq!(store.message_count(), 520);
    assert_eq!(
        store.held_seqs(&G1, &A1, 1).unwrap(),
        (1..=500).collect::<Vec<_>>()
    );
    for n in [1, 250, 500, 10_001, 10_020] {
        assert_eq!(
            store.message(&id(n)).unwrap(),
            Some(format!("envelope {n}").into_bytes()),
            "{n}"
        );
        assert_eq!(
            store.message_meta(&id(n)).unwrap(),
            Some(format!("meta {n}").into_bytes())
        );
    }
    assert_eq!(store.groups().unwrap(), vec![*G1, *G2]);
    assert_eq!(store.control_events(&G1).unwrap().len(), 2);
    let audit = store.audit_records(0).unwrap();
    assert_eq!(audit.len(), 30);
    assert_eq!(audit[29], (30, b"audit 30".to_vec()));
}

/// Damage to sled's files that its own recovery passes over (it opens, and silently holds
/// less) is found by the counts the watermark records, and the envelope log gives back what
/// was lost: messages, control events, audit records.
#[tokio::test(flavor = "multi_thread")]
async fn store_damage_to_sleds_files_is_found_and_repaired_from_the_log() {
    for offset in [0u64, 64 * 1024, 256 * 1024, u64::MAX] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            fill(&store).await;
        }
        let db = dir.path().join("db");
        let len = std::fs::metadata(&db).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        std::os::unix::fs::FileExt::write_all_at(
            &file,
            &[0x5a; 8192],
            offset.min(len.saturating_sub(8192)),
        )
        .unwrap();
        drop(file);
        let store = Store::open(dir.path()).unwrap();
        assert_filled(&store);
    }

    // Entries lost while the watermark stayed: found by the counts.
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        fill(&store).await;
        let e = store.e();
        e.messages
            .remove(author_key(&at(&G1, &A1, 1, 51)))
            .unwrap()
            .unwrap();
        e.audit.remove(30u64.to_be_bytes()).unwrap().unwrap();
        e.control
            .remove(keys::group_seq_key(&G2, 1))
            .unwrap()
            .unwrap();
        e.db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let opened = store.health().opened;
    assert!(opened.index_damaged, "{opened:?}");
    assert_eq!(opened.replayed, 50 + 1 + 1);
    assert_filled(&store);
}

/// An index entry that is not a run of records, and a malformed watermark, are dropped when
/// the store opens; the log gives back what they held.
#[tokio::test(flavor = "multi_thread")]
async fn store_malformed_index_entries_are_dropped_and_restored_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        fill(&store).await;
        let e = store.e();
        e.messages
            .insert(
                author_key(&at(&G1, &A1, 1, 51)),
                &[7u8; RECORD_HEAD_LEN - 1][..],
            )
            .unwrap();
        e.messages
            .insert([&author_space(&G1)[..], &[0xa1; 3]].concat(), &b"short"[..])
            .unwrap();
        e.messages.insert(KEY_WATERMARK, &b"xyz"[..]).unwrap();
        e.db.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.health().opened.index_damaged);
    assert_filled(&store);
}

/// sled's files gone altogether (or set aside by `rebuild`): the whole index comes back from
/// the log; what only sled held (peers) does not.
#[tokio::test(flavor = "multi_thread")]
async fn store_index_is_rebuilt_from_the_log_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        fill(&store).await;
        store.put_peer(&A2, b"peer").await.unwrap();
    }
    for name in ["db", "conf", "blobs"] {
        let path = dir.path().join(name);
        if path.is_dir() {
            std::fs::remove_dir_all(path).unwrap();
        } else {
            std::fs::remove_file(path).unwrap();
        }
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.health().opened.replayed, 520 + 3 + 30);
    assert_filled(&store);
    assert_eq!(store.peers().unwrap(), vec![]);
    drop(store);

    // `rebuild` sets the index aside, rebuilds it, and keeps what only sled held.
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_peer(&A2, b"peer").await.unwrap();
        assert_eq!(
            store.insert_message(msg(9999, *G2, *A1, 1)).await.unwrap(),
            Inserted::New
        );
    }
    let report = Store::rebuild(dir.path(), &StoreOptions::default()).unwrap();
    assert!(report.salvaged);
    assert_eq!(report.messages, 521);
    assert_eq!(report.opened.set_aside.len(), 1);
    assert!(report.opened.set_aside[0].join("db").exists());
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.peers().unwrap(), vec![(*A2, b"peer".to_vec())]);
    assert_eq!(
        store.message(&id(9999)).unwrap(),
        Some(b"envelope 9999".to_vec())
    );
}

/// What sled leaves half-made when it fails — a snapshot cut short by a full disk
/// (spacejam/sled#1527), a damaged `conf` or snapshot — no longer stops the store from
/// opening.
#[tokio::test(flavor = "multi_thread")]
async fn store_opens_over_what_sled_left_half_made() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        fill(&store).await;
    }
    // Opening again makes sled write a snapshot.
    drop(Store::open(dir.path()).unwrap());
    let snapshots = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("snap."))
            .collect();
        names.sort();
        names
    };
    let snapshot = snapshots().pop().expect("sled wrote a snapshot");

    // An empty snapshot left by a full disk, named to be read first.
    let leftover = "snap.FFFFFFFFFFFFFFFF.generating";
    std::fs::write(dir.path().join(leftover), b"").unwrap();
    assert!(
        sled::open(dir.path()).is_err(),
        "sled itself does not open over it"
    );
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.health().opened.removed, vec![leftover.to_owned()]);
    assert_filled(&store);
    drop(store);

    // A damaged conf is set aside, and sled writes it anew.
    let conf = dir.path().join("conf");
    let mut bytes = std::fs::read(&conf).unwrap();
    bytes[14] = b'9';
    std::fs::write(&conf, &bytes).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let opened = store.health().opened;
    assert_eq!(opened.set_aside.len(), 1);
    assert!(opened.set_aside[0].join("conf").exists());
    assert_filled(&store);
    drop(store);

    // A damaged snapshot is set aside, and sled replays its log.
    let snapshot = snapshots().pop().unwrap_or(snapshot);
    let path = dir.path().join(&snapshot);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let store = Store::open(dir.path()).unwrap();
    let opened = store.health().opened;
    assert!(
        opened.set_aside.iter().any(|d| d.join(&snapshot).exists()),
        "{opened:?}"
    );
    assert_filled(&store);
}

#[tokio::test(flavor = "multi_thread")]
async fn store_sequence_space_is_per_epoch() {
    let (_dir, store) = open_tmp();
    // Seq 1 in epoch 2 is a different slot from seq 1 in epoch 1.
    let out = store
        .insert_messages(vec![
            msg_in(1, *G1, *A1, 1, 1),
            msg_in(2, *G1, *A1, 1, 2),
            msg_in(3, *G1, *A1, 2, 1),
            msg_in(4, *G1, *A1, 2, 3),
            msg_in(5, *G1, *A1, 256, 1),
            msg_in(6, *G1, *A1, 2, 1), // conflicts with 3
        ])
        .await
        .unwrap();
    assert_eq!(out[..5], [Inserted::New; 5]);
    assert_eq!(out[5], Inserted::Conflict);
    assert_eq!(store.message_by_seq(&G1, &A1, 2, 1).unwrap(), Some(id(3)));
    assert_eq!(
        store.authors(&G1).unwrap(),
        vec![(*A1, 1, 2), (*A1, 2, 1), (*A1, 256, 1)]
    );
    assert_eq!(
        store.held_triples(&G1).unwrap(),
        vec![
            (*A1, 1, 1),
            (*A1, 1, 2),
            (*A1, 2, 1),
            (*A1, 2, 3),
            (*A1, 256, 1)
        ]
    );
    assert_eq!(store.held_seqs(&G1, &A1, 2).unwrap(), vec![1, 3]);
    assert_eq!(
        store.author_seqs(&G1, &A1, 2, 2, 10).unwrap(),
        vec![(3, id(4))]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_envelopes_after_respects_budget() {
    let (_dir, store) = open_tmp();
    let batch: Vec<_> = (1..=5).map(|s| msg(s, *G1, *A1, s)).collect();
    store.insert_messages(batch).await.unwrap();
    store
        .insert_message(msg_in(9, *G1, *A1, 2, 1))
        .await
        .unwrap();
    let len = b"envelope 1".len();
    let all = store
        .envelopes_after(&at(&G1, &A1, 1, 0), usize::MAX)
        .unwrap();
    assert_eq!(
        all,
        (1..=5)
            .map(|s| format!("envelope {s}").into_bytes())
            .collect::<Vec<_>>()
    );
    let two = store
        .envelopes_after(&at(&G1, &A1, 1, 2), 2 * len + 1)
        .unwrap();
    assert_eq!(two, vec![b"envelope 3".to_vec(), b"envelope 4".to_vec()]);
    // At least one envelope even if it alone exceeds the budget.
    assert_eq!(
        store.envelopes_after(&at(&G1, &A1, 1, 0), 1).unwrap(),
        vec![b"envelope 1".to_vec()]
    );
    assert_eq!(
        store
            .envelopes_after(&at(&G1, &A1, 1, 5), usize::MAX)
            .unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(
        store
            .envelopes_after(&at(&G1, &A1, 1, u64::MAX), 100)
            .unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert_eq!(
        store.envelopes_after(&at(&G1, &A1, 2, 0), 100).unwrap(),
        vec![b"envelope 9".to_vec()]
    );
    assert_eq!(
        store.envelopes_after(&at(&G1, &A2, 1, 0), 100).unwrap(),
        Vec::<Vec<u8>>::new()
    );
}

#[test]
fn store_successor_handles_carries() {
    assert_eq!(successor(&[1, 2]), Some(vec![1, 3]));
    assert_eq!(successor(&[1, 0xff]), Some(vec![2]));
    assert_eq!(successor(&[0xff, 0xff]), None);
    assert_eq!(successor(&[]), None);
}

/// Where the envelope of message `n` lies in the log.
fn location(store: &Store, n: u64) -> Location {
    store
        .e()
        .stored_message(&id(n), |_, record| Ok(record.loc))
        .unwrap()
        .unwrap()
}

/// The log watermark stored in the tree.
fn watermark(store: &Store) -> Option<u64> {
    let v = store.e().messages.get(KEY_WATERMARK).unwrap()?;
    Some(durability::Mark::decode(&v)?.end)
}

/// Number of keys in the key space `prefix` of the message tree.
fn keys_under(store: &Store, prefix: u8) -> usize {
    store.e().messages.scan_prefix([prefix]).count()
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join(envelope_log::FILE_NAME)
}

/// Garbles the byte of the closed store's envelope log at `garble` and cuts the log to
/// `cut` bytes.
fn damage_log(dir: &Path, garble: u64, cut: u64) {
    let log = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(dir))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&log, b"X", garble).unwrap();
    log.set_len(cut).unwrap();
}

/// Inserts messages `seqs` of author A1 in group G1 as one batch.
async fn insert_seqs(store: &Store, seqs: std::ops::RangeInclusive<u64>) {
    store
        .insert_messages(seqs.map(|n| msg(n, *G1, *A1, n)).collect())
        .await
        .unwrap();
}

fn log_len(dir: &Path) -> u64 {
    std::fs::metadata(log_path(dir)).unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn store_envelopes_live_in_the_log_and_the_watermark_follows_flushes() {
    let (dir, store) = open_tmp();
    assert_eq!(watermark(&store), Some(0));
    insert_seqs(&store, 1..=3).await;
    // One record per message, back to back, in the order of the batch.
    let locs: Vec<Location> = (1..=3).map(|n| location(&store, n)).collect();
    assert_eq!(locs[0].offset, 0);
    assert_eq!(locs[1].offset, locs[0].end());
    assert_eq!(locs[2].offset, locs[1].end());
    // Each in a frame: its metadata and envelope, checksummed.
    let bytes = std::fs::read(log_path(dir.path())).unwrap();
    let mut frames = Vec::new();
    for n in 1..=3 {
        let m = msg(n, *G1, *A1, n);
        let meta_len = (m.meta.len() as u32).to_be_bytes();
        envelope_log::encode_frame(
            &mut frames,
            0,
            envelope_log::Kind::Message,
            &[
                m.id.as_bytes(),
                &author_key(&m.place)[1..],
                &meta_len,
                &m.meta,
                &m.envelope,
            ],
        )
        .unwrap();
    }
    assert_eq!(bytes, frames);
    assert_eq!(watermark(&store), Some(locs[2].end()));
    // One author index entry holds the batch: no entry per message in the author index (the
    // tree holds it, the watermark, and the listing index: one run and its count).
    assert_eq!(store.e().messages.len(), 2 + 1 + 1);
    assert_eq!(keys_under(&store, P_AUTHOR), 1);
    assert_eq!(store.message_by_seq(&G1, &A1, 1, 2).unwrap(), Some(id(2)));
    assert_eq!(
        store.with_envelope(&id(2), <[u8]>::len).unwrap(),
        Some(b"envelope 2".len())
    );

    // A flush with no new envelope leaves the watermark where it is.
    store.put_meta("k", b"v").await.unwrap();
    assert_eq!(watermark(&store), Some(locs[2].end()));

    // Until a flush covers it, a batch lies past the watermark.
    let batch: Vec<_> = (4..=5).map(|n| msg(n, *G1, *A1, n)).collect();
    store.e().apply_messages(&batch).unwrap();
    assert_eq!(location(&store, 4).offset, locs[2].end());
    assert_eq!(watermark(&store), Some(locs[2].end()));
    store.flush().await.unwrap();
    assert_eq!(watermark(&store), Some(location(&store, 5).end()));
}

#[tokio::test(flavor = "multi_thread")]
async fn store_drops_entries_past_the_watermark_whose_envelopes_are_lost() {
    let dir = tempfile::tempdir().unwrap();
    let (synced, loc5, loc7);
    {
        let store = Store::open(dir.path()).unwrap();
        insert_seqs(&store, 1..=3).await;
        synced = watermark(&store).unwrap();
        insert_seqs(&store, 4..=7).await;
        (loc5, loc7) = (location(&store, 5), location(&store, 7));
        // As if sled had persisted the second batch on its own and the process had died
        // before the log was synced: the stored watermark still ends at the first batch.
        let mark = durability::Mark {
            end: synced,
            messages: 3,
            ..Default::default()
        };
        let m = &store.e().messages;
        m.insert(KEY_WATERMARK, &mark.encode()[..]).unwrap();
        store.e().db.flush().unwrap();
    }
    // Of the second batch's envelopes, 4 and 6 reached the disk, 5 came back garbled and 7
    // cut short.
    damage_log(dir.path(), loc5.offset + 2, loc7.offset + 3);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.message_count(), 5);
    for n in [1, 2, 3, 4, 6] {
        assert_eq!(
            store.message(&id(n)).unwrap(),
            Some(format!("envelope {n}").into_bytes())
        );
        assert_eq!(store.message_by_seq(&G1, &A1, 1, n).unwrap(), Some(id(n)));
    }
    for n in [5, 7] {
        assert_eq!(store.message(&id(n)).unwrap(), None);
        assert_eq!(store.message_meta(&id(n)).unwrap(), None);
        assert!(!store.has_message(&id(n)).unwrap());
        assert_eq!(store.message_by_seq(&G1, &A1, 1, n).unwrap(), None);
    }
    assert_eq!(store.held_seqs(&G1, &A1, 1).unwrap(), vec![1, 2, 3, 4, 6]);
    assert_eq!(store.authors(&G1).unwrap(), vec![(*A1, 1, 4)]);
    // Recovery synced what it kept and raised the watermark past it.
    assert_eq!(watermark(&store), Some(log_len(dir.path())));
    // The second batch's run of the author index became the runs of 4 and of 6.
    assert_eq!(keys_under(&store, P_AUTHOR), 3);
    assert_eq!(
        store
            .envelopes_after(&at(&G1, &A1, 1, 0), usize::MAX)
            .unwrap()
            .len(),
        5
    );

    // The dropped messages can be stored again; they go where the torn tail was cut off.
    assert_eq!(
        store
            .insert_messages(vec![msg(5, *G1, *A1, 5), msg(7, *G1, *A1, 7)])
            .await
            .unwrap(),
        vec![Inserted::New, Inserted::New]
    );
    assert_eq!(location(&store, 5).offset, loc7.offset);
    assert_eq!(store.message(&id(7)).unwrap(), Some(b"envelope 7".to_vec()));
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.message_count(), 7);
    assert_eq!(store.authors(&G1).unwrap(), vec![(*A1, 1, 7)]);
    assert_eq!(store.message(&id(5)).unwrap(), Some(b"envelope 5".to_vec()));
}

/// The author index keeps one entry per run of consecutive seqs written together; every
/// reader sees the messages one by one, whichever runs they sit in.
#[tokio::test(flavor = "multi_thread")]
async fn store_author_index_runs_read_like_single_entries() {
    let (_dir, store) = open_tmp();
    // One batch: seqs 1-3 and 5 of A1 (two runs), 2 of A2 (its own author space).
    store
        .insert_messages(vec![
            msg(3, *G1, *A1, 3),
            msg(1, *G1, *A1, 1),
            msg(2, *G1, *A1, 2),
            msg(5, *G1, *A1, 5),
            msg(1002, *G1, *A2, 2),
        ])
        .await
        .unwrap();
    assert_eq!(keys_under(&store, P_AUTHOR), 3);
    // The gap filled later, by a run of its own.
    insert_seqs(&store, 4..=4).await;
    // A run longer than one entry holds.
    let long = 6..=6 + MAX_RUN as u64;
    insert_seqs(&store, long.clone()).await;
    assert_eq!(keys_under(&store, P_AUTHOR), 6);
    let last = *long.end();

    let all: Vec<u64> = (1..=last).collect();
    assert_eq!(store.held_seqs(&G1, &A1, 1).unwrap(), all);
    for n in [1, 2, 3, 4, 5, 6, last - 1, last] {
        assert_eq!(store.message_by_seq(&G1, &A1, 1, n).unwrap(), Some(id(n)));
    }
    for n in [0, last + 1, u64::MAX] {
        assert_eq!(store.message_by_seq(&G1, &A1, 1, n).unwrap(), None);
    }
    assert_eq!(store.message_by_seq(&G1, &A2, 1, 1).unwrap(), None);
    assert_eq!(
        store.message_by_seq(&G1, &A2, 1, 2).unwrap(),
        Some(id(1002))
    );
    assert_eq!(
        store.authors(&G1).unwrap(),
        vec![(*A1, 1, last), (*A2, 1, 0)]
    );
    assert_eq!(
        store.held_triples(&G1).unwrap(),
        all.iter()
            .map(|&n| (*A1, 1, n))
            .chain([(*A2, 1, 2)])
            .collect::<Vec<_>>()
    );
    assert_eq!(store.group_messages(&G1).unwrap().len(), all.len() + 1);

    // Reading from the middle of a run.
    assert_eq!(
        store.author_seqs(&G1, &A1, 1, 2, 3).unwrap(),
        vec![(2, id(2)), (3, id(3)), (4, id(4))]
    );
    assert_eq!(store.author_seqs(&G1, &A1, 1, 2, 0).unwrap(), vec![]);
    let after = store
        .envelopes_after(&at(&G1, &A1, 1, 6), usize::MAX)
        .unwrap();
    assert_eq!(after.len(), (last - 6) as usize);
    assert_eq!(after[0], b"envelope 7".to_vec());
    // The byte budget stops inside a run.
    let two = store.envelopes_after(&at(&G1, &A1, 1, 1), 20).unwrap();
    assert_eq!(two, vec![b"envelope 2".to_vec(), b"envelope 3".to_vec()]);

    // A seq inside a run is taken: another message there conflicts, the same one is a
    // duplicate.
    assert_eq!(
        store
            .insert_messages(vec![msg(999, *G1, *A1, 2), msg(3, *G1, *A1, 3)])
            .await
            .unwrap(),
        vec![Inserted::Conflict, Inserted::Duplicate]
    );
    // The checks of one batch read the runs of its seqs together: near each other (one range
    // read across runs) or far apart (one lookup each).
    assert_eq!(
        store
            .insert_messages(vec![
                msg(4000, *G1, *A1, 6),
                msg(4001, *G1, *A1, last + 1),
                msg(4002, *G1, *A1, last),
            ])
            .await
            .unwrap(),
        vec![Inserted::Conflict, Inserted::New, Inserted::Conflict]
    );
    assert_eq!(
        store
            .insert_messages(vec![
                msg(4003, *G1, *A1, 1_000_000),
                msg(4004, *G1, *A1, 5),
                msg(4005, *G1, *A1, 4),
            ])
            .await
            .unwrap(),
        vec![Inserted::New, Inserted::Conflict, Inserted::Conflict]
    );
    assert_eq!(
        store.message_by_seq(&G1, &A1, 1, 1_000_000).unwrap(),
        Some(id(4003))
    );
    // A run may end at the last seq there is.
    let top = [u64::MAX - 1, u64::MAX];
    store
        .insert_messages(
            top.iter()
                .map(|&s| msg(2000 + s % 2, *G1, *A2, s))
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.author_seqs(&G1, &A2, 1, 3, 10).unwrap(),
        vec![(u64::MAX - 1, id(2000)), (u64::MAX, id(2001))]
    );
    assert_eq!(
        store.message_by_seq(&G1, &A2, 1, u64::MAX).unwrap(),
        Some(id(2001))
    );
    assert_eq!(
        store
            .envelopes_after(&at(&G1, &A2, 1, u64::MAX - 1), usize::MAX)
            .unwrap(),
        vec![b"envelope 2001".to_vec()]
    );
    assert_eq!(
        store.held_seqs(&G1, &A2, 1).unwrap(),
        [2].iter().copied().chain(top).collect::<Vec<_>>()
    );
    // Conflicts at the top of the seq space are found too.
    assert_eq!(
        store
            .insert_messages(vec![msg(2002, *G1, *A2, u64::MAX), msg(2003, *G1, *A2, 3)])
            .await
            .unwrap(),
        vec![Inserted::Conflict, Inserted::New]
    );

    // A value that is not whole records is corrupt, not a shorter run.
    let mut two = Vec::new();
    for n in [1, 2] {
        encode_record(&mut two, &id(3000 + n), &location(&store, n), b"m").unwrap();
    }
    two.push(0);
    store
        .e()
        .messages
        .insert(author_key(&at(&G2, &A1, 1, 1)), two)
        .unwrap();
    corrupt_in(store.message_by_seq(&G2, &A1, 1, 1), PART_BY_AUTHOR);
}

/// A damaged envelope is an error to read, marked for fetching again (and whoever watches is
/// told), left out of what is served to peers, and repaired when the message is stored again.
#[tokio::test(flavor = "multi_thread")]
async fn store_damaged_envelopes_are_marked_skipped_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (loc2, loc3, synced);
    {
        let store = Store::open(dir.path()).unwrap();
        insert_seqs(&store, 1..=3).await;
        (loc2, loc3) = (location(&store, 2), location(&store, 3));
        synced = watermark(&store).unwrap();
    }
    // Below the watermark: 2 garbled, 3 cut short.
    damage_log(dir.path(), loc2.offset + 30, loc3.offset + 1);

    let store = Store::open(dir.path()).unwrap();
    let notices = store.damage_notices();
    // Nothing is dropped: these envelopes were synced, so this is damage, not a crash.
    assert_eq!(store.message_count(), 3);
    assert!(store.has_message(&id(2)).unwrap());
    let err = corrupt_in(store.message(&id(2)), envelope_log::FILE_NAME);
    let text = err.to_string();
    assert!(text.contains(&id(2).to_string()), "{text}");
    assert!(text.contains(&format!("offset {}", loc2.offset)), "{text}");
    assert!(text.contains("checksum"), "{text}");
    let err = store.message(&id(3)).unwrap_err();
    assert!(err.to_string().contains("past the end"), "{err}");
    assert!(store.with_envelope(&id(2), |_| ()).is_err());
    // What is intact is still served to peers; the damaged are left out.
    assert_eq!(
        store
            .envelopes_after(&at(&G1, &A1, 1, 0), usize::MAX)
            .unwrap(),
        vec![b"envelope 1".to_vec()]
    );
    // The metadata and the undamaged envelope are still there.
    assert_eq!(
        store.message_meta(&id(2)).unwrap(),
        Some(b"meta 2".to_vec())
    );
    assert_eq!(store.message(&id(1)).unwrap(), Some(b"envelope 1".to_vec()));
    // Both are marked, to be fetched again, and whoever watches was told.
    let mut damaged = store.damaged().unwrap();
    damaged.sort();
    assert_eq!(
        damaged,
        vec![(id(2), at(&G1, &A1, 1, 2)), (id(3), at(&G1, &A1, 1, 3))]
    );
    assert!(notices.has_changed().unwrap());
    assert_eq!(store.health().damaged, 2);

    // New envelopes go past the watermark, not over what is missing below it.
    store.insert_message(msg(4, *G1, *A1, 4)).await.unwrap();
    assert_eq!(location(&store, 4).offset, synced);
    assert_eq!(store.message(&id(4)).unwrap(), Some(b"envelope 4".to_vec()));

    // Stored again (as when fetched from a peer), a damaged message is repaired in place.
    assert_eq!(
        store
            .insert_messages(vec![msg(2, *G1, *A1, 2), msg(3, *G1, *A1, 3)])
            .await
            .unwrap(),
        vec![Inserted::Repaired, Inserted::Repaired]
    );
    assert_eq!(
        store.insert_message(msg(2, *G1, *A1, 2)).await.unwrap(),
        Inserted::Duplicate
    );
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.damaged().unwrap(), vec![]);
    assert_eq!(store.message_count(), 4);
    assert_eq!(store.held_seqs(&G1, &A1, 1).unwrap(), vec![1, 2, 3, 4]);
    for n in 1..=4 {
        assert_eq!(
            store.message(&id(n)).unwrap(),
            Some(format!("envelope {n}").into_bytes())
        );
    }
    assert_eq!(
        store
            .envelopes_after(&at(&G1, &A1, 1, 0), usize::MAX)
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_envelope_location_past_the_log_is_corrupt_without_reading() {
    let (_dir, store) = open_tmp();
    store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap();
    // A length no log holds: refused before anything is allocated.
    let mut loc = location(&store, 1);
    loc.len = u32::MAX;
    let mut record = Vec::new();
    encode_record(&mut record, &id(1), &loc, b"meta 1").unwrap();
    store
        .e()
        .messages
        .insert(author_key(&at(&G1, &A1, 1, 1)), record)
        .unwrap();
    corrupt_in(store.message(&id(1)), envelope_log::FILE_NAME);
    assert_eq!(
        store.message_meta(&id(1)).unwrap(),
        Some(b"meta 1".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn store_log_sync_failure_blocks_writes() {
    let (_dir, store) = open_tmp();
    store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap();
    let synced = watermark(&store);
    let flushes = store.flush_count();
    store.e().log.fail_next_sync.store(true, Ordering::SeqCst);
    let err = store.insert_message(msg(2, *G1, *A1, 2)).await.unwrap_err();
    assert!(matches!(err, StoreError::FlushFailed { .. }), "{err:?}");
    assert!(err.to_string().contains("envelope log"), "{err}");
    // Neither the watermark nor sled moved on, and the store stays failed.
    assert_eq!(watermark(&store), synced);
    assert_eq!(store.flush_count(), flushes);
    for err in [
        store.put_meta("k", b"v").await.unwrap_err(),
        store.insert_message(msg(3, *G1, *A1, 3)).await.unwrap_err(),
        store.flush().await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::FlushFailed { .. }), "{err:?}");
    }
    assert!(store.message(&id(1)).unwrap().is_some());
    // Reopened, the store takes writes again.
    reopened(&store, 1).await;
    assert_eq!(
        store.insert_message(msg(3, *G1, *A1, 3)).await.unwrap(),
        Inserted::New
    );
}

/// One receipt becomes one index entry per run of consecutive seqs it names, whichever
/// messages of the run are asked about.
#[tokio::test(flavor = "multi_thread")]
async fn store_receipts_are_indexed_by_runs_of_seqs() {
    let (_dir, store) = open_tmp();
    insert_seqs(&store, 1..=2000).await;
    let named: Vec<u64> = (1..=700).chain(702..=1024).collect();
    store
        .insert_receipts(vec![receipt(*A2, &named, b"many")])
        .await
        .unwrap();
    // Runs 1-700 and 702-1024.
    assert_eq!(store.e().receipt_runs.len(), 2);
    for n in [1, 350, 700, 702, 1000, 1024] {
        assert_eq!(receipts_of(&store, n), vec![(*A2, b"many".to_vec())], "{n}");
    }
    for n in [701, 1025, 2000] {
        assert_eq!(receipts_of(&store, n), vec![], "{n}");
    }
    // A receipt of the same messages in another group, or of another author, is not theirs.
    let mut elsewhere = receipt(*A1, &[5], b"elsewhere");
    elsewhere.messages[0].1.group = *G2;
    store.insert_receipts(vec![elsewhere]).await.unwrap();
    assert_eq!(receipts_of(&store, 5), vec![(*A2, b"many".to_vec())]);
}

/// Message ids that share their first 8 bytes (which the id index is keyed by) are all
/// found, each by its own id, before and after a reopen.
#[tokio::test(flavor = "multi_thread")]
async fn store_finds_messages_whose_ids_share_their_first_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let twin = |last: u8| {
        let mut id = [0xcc; 32];
        id[31] = last;
        MessageId::from(id)
    };
    let messages: Vec<NewMessage> = (1..=3u8)
        .map(|n| NewMessage {
            id: twin(n),
            ..msg(u64::from(n), *G1, *A1, u64::from(n))
        })
        .collect();
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert_messages(messages[..2].to_vec()).await.unwrap();
        store.insert_message(messages[2].clone()).await.unwrap();
    }
    for reopen in [false, true] {
        let store = Store::open(dir.path()).unwrap();
        if reopen {
            // A fourth with the same first bytes, not stored, is not found.
            assert!(!store.has_message(&twin(4)).unwrap());
            assert_eq!(store.message(&twin(4)).unwrap(), None);
        }
        assert_eq!(store.message_count(), 3);
        for m in &messages {
            assert_eq!(store.message(&m.id).unwrap(), Some(m.envelope.clone()));
            assert_eq!(store.message_meta(&m.id).unwrap(), Some(m.meta.clone()));
        }
        // Each is a duplicate by its id, also when offered at another place.
        let again = NewMessage {
            place: Place {
                seq: 9,
                ..messages[1].place
            },
            ..messages[1].clone()
        };
        assert_eq!(
            store
                .insert_messages(vec![messages[2].clone(), again])
                .await
                .unwrap(),
            vec![Inserted::Duplicate, Inserted::Duplicate]
        );
        assert_eq!(store.held_seqs(&G1, &A1, 1).unwrap(), vec![1, 2, 3]);
    }
}

/// Format 4 is the first format: a store holding data in a tree of an earlier development
/// layout is refused with a clear error, not opened as if empty; an empty one is dropped.
#[tokio::test(flavor = "multi_thread")]
async fn store_refuses_layouts_of_development_builds() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("receipts-v2").unwrap();
        db.flush().unwrap();
    }
    {
        let store = Store::open(dir.path()).unwrap();
        let names = store.e().db.tree_names();
        assert!(!names.iter().any(|n| n.as_ref() == b"receipts-v2"));
    }
    {
        let db = sled::open(dir.path()).unwrap();
        let old = db.open_tree("messages-v3").unwrap();
        old.insert(b"w", &0u64.to_be_bytes()[..]).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Unsupported {
                tree: "messages-v3",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("new data directory"), "{err}");
}

/// Below the free-space floor new messages are refused with a clear error; what reads need
/// (their audit records) and small writes go on.
#[tokio::test(flavor = "multi_thread")]
async fn store_refuses_new_messages_below_the_free_space_floor() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        min_free_bytes: u64::MAX,
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), &options).unwrap();
    let err = store.insert_message(msg(1, *G1, *A1, 1)).await.unwrap_err();
    assert!(matches!(err, StoreError::DiskFull { .. }), "{err:?}");
    assert!(err.is_disk_full());
    assert!(err.to_string().contains("reads go on"), "{err}");
    assert_eq!(store.message_count(), 0);
    let ticket = store.append_audit(1, b"read").unwrap();
    store.wait_for(ticket).await.unwrap();
    store.put_meta("k", b"v").await.unwrap();
    let health = store.health();
    assert!(health.low_space() && !health.is_healthy(), "{health:?}");
}

/// `check` reads every frame and every index entry: a damaged envelope is counted and marked,
/// to be fetched again when the node runs.
#[tokio::test(flavor = "multi_thread")]
async fn store_check_finds_and_marks_damaged_envelopes() {
    let dir = tempfile::tempdir().unwrap();
    let loc;
    {
        let store = Store::open(dir.path()).unwrap();
        fill(&store).await;
        loc = location(&store, 250);
    }
    let report = Store::check(dir.path(), &StoreOptions::default()).unwrap();
    assert!(report.is_sound(), "{report:?}");
    assert_eq!((report.messages, report.frames), (520, 520 + 3 + 30));

    damage_log(dir.path(), loc.offset + 40, log_len(dir.path()));
    let report = Store::check(dir.path(), &StoreOptions::default()).unwrap();
    assert!(!report.is_sound());
    assert_eq!(report.damaged, 1);
    assert_eq!((report.damaged_stretches, report.unused_stretches), (1, 0));
    assert_eq!(report.frames, 520 + 3 + 30 - 1);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.damaged().unwrap(),
        vec![(id(250), at(&G1, &A1, 1, 250))]
    );
}
