//! Tests of the actor that need its insides: bounded store reads per frame, faults kept to
//! one input, the origins cache.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::{Cell, RefCell};

use liaison_protocol::message::{Content, Draft, Handling, Payload, Sealed};
use liaison_protocol::sync::Archive;
use liaison_protocol::{Role, Timestamp};
use rand_core::OsRng;

use super::archive::{StoreArchive, MAX_ORIGINS, MAX_RECEIPT_READS};
use super::command::Command;
use super::*;
use crate::daemon::start;

/// Messages sealed by one author in a group of its own, and that group.
fn sealed_messages(count: u64) -> (GroupId, NodeId, Vec<Sealed>) {
    let gid = GroupId::from([7u8; 16]);
    let (identity, state) = crate::demo::solo_group(gid).unwrap();
    let content = Content {
        officer: "o".into(),
        recipients: Vec::new(),
        reply_to: None,
        payload: Payload::Text {
            subject: "s".into(),
            body: "b".into(),
        },
    };
    let sealed = (1..=count)
        .map(|seq| {
            let draft = Draft {
                seq,
                now: Timestamp(2),
                handling: Handling::Green,
                expires_at: None,
                content: &content,
            };
            message::seal(&state, &identity, draft, &mut OsRng).unwrap()
        })
        .collect();
    (gid, identity.node_id(), sealed)
}

#[tokio::test(flavor = "multi_thread")]
async fn receipts_of_one_frame_cause_a_bounded_number_of_store_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (gid, author, sealed) = sealed_messages(MAX_RECEIPT_READS as u64 + 10);
    let batch = sealed
        .iter()
        .map(|s| NewMessage {
            id: s.id,
            place: s.header.place(),
            created_at: s.header.created_at.0,
            envelope: s.bytes.clone(),
            meta: 1u64.to_be_bytes().to_vec(),
            reply_to: None,
        })
        .collect();
    store.insert_messages(batch).await.unwrap();
    let recent = sealed.last().unwrap();
    let mut origins = Origins::default();
    origins.insert(recent.id, recent.header.place());
    let ahead = RefCell::new(ReadAhead::default());
    let archive = |origins| StoreArchive {
        store: &store,
        origins,
        learned: RefCell::new(Vec::new()),
        ahead: &ahead,
        receipt_reads: Cell::new(0),
    };

    // One frame: the store answers the first MAX_RECEIPT_READS lookups, decoding only the
    // headers; the recently stored message is known without a read.
    let frame = archive(&origins);
    let found: Vec<bool> = sealed
        .iter()
        .map(|s| frame.receipt_origin(&s.id) == Some((gid, author)))
        .collect();
    assert!(found[..MAX_RECEIPT_READS].iter().all(|f| *f));
    assert_eq!(found.iter().filter(|f| **f).count(), MAX_RECEIPT_READS + 1);
    assert!(found[sealed.len() - 1]);
    assert_eq!(frame.receipt_reads.get(), MAX_RECEIPT_READS + 1);
    // What the reads found is kept, place included, for indexing receipts.
    let learned = frame.learned.borrow().clone();
    assert_eq!(learned.len(), MAX_RECEIPT_READS);
    assert!(learned
        .iter()
        .zip(&sealed)
        .all(|((id, o), s)| *id == s.id && *o == s.header.place()));
    // Duplicate envelopes are not bounded: saying "not held" there would blame the sender.
    assert!(sealed
        .iter()
        .all(|s| frame.message_origin(&s.id) == Some((gid, author))));
    // The next frame starts afresh; an unknown id is simply not held.
    let next = archive(&origins);
    assert_eq!(next.receipt_origin(&sealed[0].id), Some((gid, author)));
    assert_eq!(next.receipt_origin(&MessageId::from([0u8; 32])), None);
}

/// One command and one peer's frame whose handling panics (faults injected for the test):
/// each fails alone, the caller gets an error that says so, and both nodes go on serving
/// commands and taking frames. The actor used to die with the first, after which every
/// call answered "shutting down" and no frame was handled, until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_one_command_or_frame_fails_it_alone() {
    use crate::demo::{create_group, holds, init_node, knows_group, peer, post, wait_until};
    let root = tempfile::tempdir().unwrap();
    let a = start(&init_node(root.path(), "a", 200).unwrap())
        .await
        .unwrap();
    let b = start(&init_node(root.path(), "b", 200).unwrap())
        .await
        .unwrap();
    peer(&a, &b).await.unwrap();
    for (x, y) in [(&a, &b), (&b, &a)] {
        wait_until("the link", || crate::demo::peer_ready(&x.handle, &y.name))
            .await
            .unwrap();
    }
    let g = create_group(&a, "ops", &[(&b, Role::Member)])
        .await
        .unwrap();
    wait_until("b to know the group", || knows_group(&b.handle, g))
        .await
        .unwrap();

    // A command: a reply to this message reads it on the actor, and reading it panics on
    // `a`. A query of the read model that panics fails alone too.
    let first = post(&a, g, "j.doe", "first", "one", Handling::Green)
        .await
        .unwrap();
    faults::panic_at_view(first);
    let reply_to_first = Post {
        officer: "j.doe".into(),
        recipients: Vec::new(),
        subject: "re".into(),
        body: "re".into(),
        record: None,
        handling: Handling::Green,
        reply_to: Some(first),
        attachments: Vec::new(),
    };
    let replied = a
        .handle
        .ask(|reply| Command::Post {
            group: g.to_string(),
            post: reply_to_first,
            reply,
        })
        .await;
    assert!(matches!(replied, Err(Error::Internal(_))), "{replied:?}");
    let read = a.handle.as_admin().read(first).await;
    assert!(matches!(read, Err(Error::Internal(_))), "{read:?}");
    assert_eq!(a.handle.ask(Command::Status).await.unwrap().faults, 1);

    // A frame: `b` fails taking a's next message; the one after arrives as usual, and the
    // failed one with the next sync.
    faults::panic_at_accept(a.node_id);
    let second = post(&a, g, "j.doe", "second", "two", Handling::Green)
        .await
        .unwrap();
    let third = post(&a, g, "j.doe", "third", "three", Handling::Green)
        .await
        .unwrap();
    for id in [third, second] {
        wait_until("b to take a's messages", || holds(&b.handle, id))
            .await
            .unwrap();
    }
    assert_eq!(b.handle.ask(Command::Status).await.unwrap().faults, 1);
    assert!(holds(&a.handle, second).await);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[test]
fn origins_keep_at_least_the_latest_generation() {
    let (group, author, _) = sealed_messages(0);
    let origin = |n: u64| Place {
        group,
        author,
        epoch: 1,
        seq: n,
    };
    let id = |n: u64| {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        MessageId::from(b)
    };
    let mut origins = Origins::default();
    let total = 2 * MAX_ORIGINS as u64 + 1;
    for n in 0..total {
        origins.insert(id(n), origin(n));
    }
    // The first generation was forgotten; every one of the latest MAX_ORIGINS is there.
    assert_eq!(origins.get(&id(0)), None);
    assert_eq!(origins.get(&id(MAX_ORIGINS as u64 - 1)), None);
    for n in total - MAX_ORIGINS as u64..total {
        assert_eq!(origins.get(&id(n)), Some(&origin(n)));
    }
    origins.remove(&id(total - 1));
    assert_eq!(origins.get(&id(total - 1)), None);
}
