//! The listing index's tests: positions in runs, cursors, splits under a reader, relists.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use liaison_protocol::{NodeId, Place};

use super::*;
use crate::store::NewMessage;

fn message(n: u64, group: GroupId, created_at: u64) -> NewMessage {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    NewMessage {
        id: MessageId::from(id),
        place: Place {
            group,
            author: NodeId::from_bytes([9; 32]).unwrap(),
            epoch: 1,
            seq: n,
        },
        envelope: created_at.to_be_bytes().to_vec(),
        meta: Vec::new(),
        created_at,
        reply_to: None,
    }
}

/// A store in a temporary directory, which lives as long as the directory kept with it.
fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

/// What a node reads from an envelope `message` made: its creation time, and no parent.
fn describe(envelope: &[u8]) -> Option<Described> {
    Some(Described {
        created_at: u64::from_be_bytes(envelope.try_into().ok()?),
        reply_to: None,
    })
}

fn listed(store: &Store, group: &GroupId, before: Option<Listed>) -> Vec<Listed> {
    store
        .listing(group, before)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A group's listing is newest first (ties by id), below a cursor when given, and holds
/// no other group's messages.
#[tokio::test]
async fn a_listing_is_newest_first_below_the_cursor() {
    let (_dir, store) = open();
    let (g, other) = (GroupId::from([1; 16]), GroupId::from([2; 16]));
    let batch = vec![
        message(1, g, 30),
        message(2, g, 10),
        message(3, g, 20),
        message(4, g, 20),
        message(5, other, 15),
    ];
    store.insert_messages(batch.clone()).await.unwrap();
    let all = listed(&store, &g, None);
    let times: Vec<u64> = all.iter().map(|l| l.created_at).collect();
    assert_eq!(times, [30, 20, 20, 10]);
    assert_eq!(all[1].id, batch[3].id, "ties: the greater id first");
    assert_eq!(listed(&store, &g, Some(all[1])), all[2..]);
    assert_eq!(listed(&store, &other, None).len(), 1);
    assert_eq!(store.listed_count().unwrap(), 5);
    // A duplicate lists nothing new.
    store.insert_messages(vec![batch[0].clone()]).await.unwrap();
    assert_eq!(store.listed_count().unwrap(), 5);
}

/// A store whose listing index lacks entries (written before the index existed) or holds
/// entries of messages no longer held is brought in line by `relist`.
#[tokio::test]
async fn relist_adds_missing_entries_and_drops_stale_ones() {
    let (_dir, store) = open();
    let g = GroupId::from([1; 16]);
    let batch: Vec<NewMessage> = (1..=6).map(|n| message(n, g, 100 + n)).collect();
    store.insert_messages(batch.clone()).await.unwrap();
    // As a data directory of before the index: no entries, no count; and one stale entry.
    let engine = store.engine().unwrap();
    let mut wipe = sled::Batch::default();
    for item in engine.messages.scan_prefix([P_LISTING]) {
        wipe.remove(item.unwrap().0);
    }
    wipe.remove(KEY_LISTED);
    let stale = message(99, g, 500);
    let (k, v) = listing_run_entry(
        &g,
        &[Listed {
            created_at: stale.created_at,
            id: stale.id,
        }],
    );
    wipe.insert(k, v);
    engine.messages.apply_batch(wipe).unwrap();
    assert_eq!(store.listed_count().unwrap(), 0);

    let report = store.relist(describe).unwrap();
    assert_eq!(
        report,
        RelistReport {
            added: 6,
            removed: 1,
            replies: 0,
            unreadable: 0
        }
    );
    assert_eq!(store.listed_count().unwrap(), 6);
    let ids: Vec<MessageId> = listed(&store, &g, None).iter().map(|l| l.id).collect();
    let want: Vec<MessageId> = batch.iter().rev().map(|m| m.id).collect();
    assert_eq!(ids, want);
    // In line now: nothing to do.
    let again = store.relist(|_| None).unwrap();
    assert_eq!(again, RelistReport::default());
}

/// The listing runs of `group`: how many positions each holds.
fn runs(store: &Store, group: &GroupId) -> Vec<usize> {
    let engine = store.engine().unwrap();
    engine
        .messages
        .scan_prefix(group_prefix(group))
        .map(|item| {
            let (k, v) = item.unwrap();
            engine.listing_run(&k, &v).unwrap().len()
        })
        .collect()
}

/// Every page of `group`'s listing, `size` positions each, each below the last one of the
/// page before.
fn paged(store: &Store, group: &GroupId, size: usize) -> Vec<Listed> {
    let mut all: Vec<Listed> = Vec::new();
    loop {
        let page: Vec<Listed> = store
            .listing(group, all.last().copied())
            .unwrap()
            .take(size)
            .collect::<Result<_, _>>()
            .unwrap();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Positions are kept in runs, not an entry per message: messages stored in creation
/// order fill runs to the brim; messages arriving out of order land in the runs that hold
/// their times, which split without leaving runs of one. Listing and paging see every
/// position in order whatever the runs.
#[tokio::test]
async fn positions_are_kept_in_runs_that_split_as_they_fill() {
    let (_dir, store) = open();
    let (g, other) = (GroupId::from([1; 16]), GroupId::from([2; 16]));
    // 200 messages in creation order, seven a batch, with another group's in between.
    let in_order: Vec<NewMessage> = (1..=200).map(|n| message(n, g, 10 * n)).collect();
    for (i, batch) in in_order.chunks(7).enumerate() {
        let mut batch = batch.to_vec();
        batch.push(message(1000 + i as u64, other, 5));
        store.insert_messages(batch).await.unwrap();
    }
    let full = 200 / MAX_LISTING_RUN;
    let mut want = vec![MAX_LISTING_RUN; full];
    want.push(200 % MAX_LISTING_RUN);
    assert_eq!(runs(&store, &g), want);
    let all = listed(&store, &g, None);
    let times: Vec<u64> = all.iter().map(|l| l.created_at).collect();
    assert_eq!(times, (1..=200).rev().map(|n| 10 * n).collect::<Vec<_>>());
    // A cursor anywhere: the runs hold messages 1–32, 33–64, …, 193–200, so index 7 of the
    // listing is the first position of the last run and index 8 the last of the one below.
    for i in [0, 1, 7, 8, 39, 40, 100, 198, 199] {
        assert_eq!(listed(&store, &g, Some(all[i])), all[i + 1..], "below {i}");
    }

    // 150 more, created between the first ones, arriving in a scrambled order, five a
    // batch, one of them twice.
    let mut late: Vec<NewMessage> = (0..150u64)
        .map(|i| (i * 97) % 150)
        .map(|i| message(300 + i, g, 10 * (i + 1) + 5))
        .collect();
    late.push(late[3].clone());
    for batch in late.chunks(5) {
        store.insert_messages(batch.to_vec()).await.unwrap();
    }
    assert_eq!(store.listed_count().unwrap(), 200 + 150 + 29);
    let mut want: Vec<u64> = (1..=200)
        .map(|n| 10 * n)
        .chain((1..=150).map(|n| 10 * n + 5))
        .collect();
    want.sort_unstable_by(|a, b| b.cmp(a));
    let all = listed(&store, &g, None);
    assert_eq!(all.iter().map(|l| l.created_at).collect::<Vec<_>>(), want);
    for size in [1, 7, 50] {
        assert_eq!(paged(&store, &g, size), all, "pages of {size}");
    }
    let sizes = runs(&store, &g);
    assert!(
        sizes.iter().all(|n| (2..=MAX_LISTING_RUN).contains(n)),
        "{sizes:?}"
    );
    assert!(
        sizes.len() < 350 / 8,
        "{} runs for 350 positions",
        sizes.len()
    );
    assert_eq!(listed(&store, &other, None).len(), 29);
}

/// A listing read while a batch splits a run below where it stands still lists every
/// position held when it began: the split moves the run's upper half to a key above the
/// run, between it and what the reader has read.
#[tokio::test]
async fn a_listing_read_while_runs_split_misses_nothing() {
    let (_dir, store) = open();
    let g = GroupId::from([1; 16]);
    let fill: Vec<NewMessage> = (1..=2048).map(|n| message(n, g, 10 * n)).collect();
    for batch in fill.chunks(256) {
        store.insert_messages(batch.to_vec()).await.unwrap();
    }
    let engine = store.engine().unwrap();
    let runs_now = || -> Vec<Vec<Listed>> {
        engine
            .messages
            .scan_prefix(group_prefix(&g))
            .map(|item| {
                let (k, v) = item.unwrap();
                engine.listing_run(&k, &v).unwrap()
            })
            .collect()
    };
    let mut split = 0;
    for n in 0.. {
        let runs = runs_now();
        // The lowest full run with a run above it.
        let Some(i) = (0..runs.len() - 1).find(|&i| runs[i].len() == MAX_LISTING_RUN) else {
            break;
        };
        let (run, above) = (&runs[i], &runs[i + 1]);
        let held = listed(&store, &g, Some(above[0]));
        let mut listing = store.listing(&g, Some(above[1])).unwrap();
        assert_eq!(listing.next().unwrap().unwrap(), above[0]);
        // A message created in the middle of the run arrives: the run splits in two.
        let late = message(10_000 + n, g, run[MAX_LISTING_RUN / 2].created_at + 1);
        store.insert_messages(vec![late]).await.unwrap();
        assert_eq!(runs_now().len(), runs.len() + 1, "the run split");
        split += 1;
        let rest: Vec<Listed> = listing.collect::<Result<_, _>>().unwrap();
        assert!(
            rest.windows(2).all(|w| w[0] > w[1]),
            "newest first, once each"
        );
        let missed: Vec<&Listed> = held.iter().filter(|at| !rest.contains(at)).collect();
        assert!(
            missed.is_empty(),
            "split {n}: {} positions missed",
            missed.len()
        );
    }
    assert!(split >= 32, "{split} runs split");
}

/// The one entry per message of development builds is moved into runs without a message
/// opened, entries of messages no longer held are dropped, and their count goes.
#[tokio::test]
async fn relist_moves_entries_of_development_builds_into_runs() {
    let (_dir, store) = open();
    let g = GroupId::from([1; 16]);
    let batch: Vec<NewMessage> = (1..=6).map(|n| message(n, g, 100 + n)).collect();
    store.insert_messages(batch.clone()).await.unwrap();
    // Its reply index whole, so that no message needs describing for it.
    store.relist(describe).unwrap();
    assert!(store.replies_whole().unwrap());
    let earlier_key = |m: &NewMessage| {
        let mut k = vec![P_LISTING_ENTRIES];
        k.extend_from_slice(g.as_bytes());
        k.extend_from_slice(&m.created_at.to_be_bytes());
        k.extend_from_slice(m.id.as_bytes());
        k
    };
    let engine = store.engine().unwrap();
    let mut earlier = sled::Batch::default();
    for item in engine.messages.scan_prefix([P_LISTING]) {
        earlier.remove(item.unwrap().0);
    }
    earlier.remove(KEY_LISTED);
    for m in batch.iter().chain([&message(99, g, 500)]) {
        earlier.insert(earlier_key(m), &[][..]);
    }
    earlier.insert(KEY_LISTED_ENTRIES, &7u64.to_be_bytes()[..]);
    engine.messages.apply_batch(earlier).unwrap();
    // What the node compares with its count of messages, to relist at start.
    assert_eq!(store.listed_count().unwrap(), 0);

    let report = store.relist(|_| panic!("a message opened")).unwrap();
    assert_eq!((report.added, report.removed, report.unreadable), (6, 1, 0));
    assert_eq!(store.listed_count().unwrap(), 6);
    let ids: Vec<MessageId> = listed(&store, &g, None).iter().map(|l| l.id).collect();
    let want: Vec<MessageId> = batch.iter().rev().map(|m| m.id).collect();
    assert_eq!(ids, want);
    assert_eq!(engine.messages.scan_prefix([P_LISTING_ENTRIES]).count(), 0);
    assert!(engine.messages.get(KEY_LISTED_ENTRIES).unwrap().is_none());
}

/// A run that is not whole positions in order is reported corrupt, not listed.
#[tokio::test]
async fn a_damaged_run_is_reported_corrupt() {
    let (_dir, store) = open();
    let g = GroupId::from([1; 16]);
    store
        .insert_messages((1..=3).map(|n| message(n, g, n)).collect())
        .await
        .unwrap();
    let engine = store.engine().unwrap();
    let (k, v) = engine
        .messages
        .scan_prefix([P_LISTING])
        .next()
        .unwrap()
        .unwrap();
    for damaged in [&v[..v.len() - 1], &v[POSITION_LEN..]] {
        engine.messages.insert(&k, damaged).unwrap();
        let err = store
            .listing(&g, None)
            .unwrap()
            .find_map(Result::err)
            .unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    }
}

/// What the listing costs the write path: 64,000 messages of one group applied in batches
/// of 256 without waiting for flushes, once in creation order from one author, once from
/// 16 authors whose messages interleave in time, each author's whole history in turn (as a
/// new member's catch-up fetches them). Prints microseconds per message and the tree's
/// entry count; asserts nothing about them. Run with `--release --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measure, not a test"]
async fn measure_the_listing_on_the_write_path() {
    const MESSAGES: u64 = 64_000;
    for authors in [1, 16, 128] {
        let (_dir, store) = open();
        let g = GroupId::from([1; 16]);
        let per = MESSAGES / authors;
        let ids: Vec<NodeId> = (0u8..=255)
            .filter_map(|b| NodeId::from_bytes([b; 32]).ok())
            .collect();
        let ids = &ids;
        let all: Vec<NewMessage> = (0..authors)
            .flat_map(|a| {
                (0..per).map(move |s| {
                    let n = a * per + s + 1;
                    let mut m = message(n, g, 1_000 + s * authors + a);
                    m.place.author = ids[a as usize];
                    m.place.seq = s + 1;
                    m
                })
            })
            .collect();
        let engine = store.engine().unwrap();
        let start = std::time::Instant::now();
        for batch in all.chunks(256) {
            engine.apply_messages(batch).unwrap();
        }
        let took = start.elapsed();
        store.flush().await.unwrap();
        println!(
            "{} author(s): {:.2} µs a message, {} entries in messages-v4, {} listed",
            authors,
            took.as_secs_f64() * 1e6 / MESSAGES as f64,
            engine.messages.len(),
            store.listing(&g, None).unwrap().count(),
        );
    }
}
