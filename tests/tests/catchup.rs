//! Catch-up that cannot silently stall: past a gap in an author's sequence, after the author is
//! restored from a backup, and through a relay that cannot serve one of the messages.

use std::path::Path;

use liaison_node::clock::now;
use liaison_node::daemon::RunningNode;
use liaison_node::node::Command;
use liaison_protocol::message::{self, Content, Draft, Handling, MessageId, Payload};
use liaison_protocol::{Frame, GroupId, Role};
use liaison_tests::hostile::Hostile;
use liaison_tests::{create_group, knows_group, logs, nodes, peer_ready, wait_until, Cluster};

async fn stored_count(node: &RunningNode, ids: &[MessageId]) -> usize {
    ids.iter()
        .filter(|id| node.store.has_message(id).expect("store"))
        .count()
}

async fn wait_stored(node: &RunningNode, ids: &[MessageId], what: &str) {
    if wait_until(what, || async {
        stored_count(node, ids).await == ids.len()
    })
    .await
    .is_err()
    {
        panic!(
            "{}: {} of {} messages for {what}",
            node.name,
            stored_count(node, ids).await,
            ids.len()
        );
    }
}

/// An author whose sequence has a gap (seq 3 was never stored: lost in a crash, or left by an
/// older version) posts 400 messages of 4 KiB after it. A member that was away catches up
/// through the owner: everything after the gap arrives. A request used to state only the
/// contiguous prefix, so each answer brought the same first MiB after the gap, for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_in_an_authors_sequence_does_not_stop_catch_up() {
    let _ = logs::capture();
    let mut c = Cluster::start(&["owner", "late"]).await;
    c.link(0, 1).await;
    let h = Hostile::new("author");
    nodes::pin(c.node(0), "author", h.node_id(), h.addr()).await;
    let mut s = h.connect(c.node(0)).await;
    s.hello(&h).await;
    wait_until("the author's descriptor", || {
        peer_ready(&c.node(0).handle, "author")
    })
    .await
    .expect("known");
    let g = create_group(c.node(0), "ops", &[(c.node(1), Role::Member)])
        .await
        .expect("group");
    let (group, peer) = (g.to_string(), "author".to_owned());
    c.node(0)
        .handle
        .as_admin()
        .add_member(group, peer, Role::Member)
        .await
        .expect("author admitted");
    wait_until("the late member to know the group", || {
        knows_group(&c.node(1).handle, g)
    })
    .await
    .expect("known");
    let controls = s.fetch_controls(g).await;
    c.stop(1).await;

    let state = h.group_state(&controls);
    let mut ids = Vec::new();
    let mut frame = Vec::new();
    for seq in (1..=401u64).filter(|s| *s != 3) {
        let content = Content {
            officer: "officer".into(),
            recipients: Vec::new(),
            reply_to: None,
            payload: Payload::Text {
                subject: format!("report {seq}"),
                body: "x".repeat(4096),
            },
        };
        let sealed = message::seal(
            &state,
            &h.identity,
            Draft {
                seq,
                now: now(),
                handling: Handling::Green,
                expires_at: None,
                content: &content,
            },
            &mut rand_core::OsRng,
        )
        .expect("seal");
        ids.push(sealed.id);
        frame.push(sealed.bytes);
        if frame.len() == 50 {
            s.send(&Frame::Push {
                envelopes: std::mem::take(&mut frame),
            })
            .await;
        }
    }
    s.send(&Frame::Push { envelopes: frame }).await;
    wait_stored(c.node(0), &ids, "the owner to store the author's posts").await;
    s.close();

    c.restart(1).await;
    c.wait_linked(0, 1).await;
    wait_stored(c.node(1), &ids, "catch-up past the gap").await;
    c.shutdown().await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

async fn post(c: &Cluster, i: usize, g: GroupId, text: &str) -> MessageId {
    c.post(i, g, text).await.expect("post")
}

/// A node restored from a backup lacks its latest messages, which its peer holds. Its next post
/// used to reuse the sequence number of the first one it lost: acknowledged by the API,
/// dropped by every peer, without a word. It must number after what its peers hold, and get the
/// lost ones back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restored_from_a_backup_does_not_reuse_sequence_numbers() {
    let _ = logs::capture();
    let mut c = Cluster::start(&["owner", "member"]).await;
    c.link(0, 1).await;
    let g = create_group(c.node(0), "ops", &[(c.node(1), Role::Member)])
        .await
        .expect("group");
    wait_until("group", || knows_group(&c.node(1).handle, g))
        .await
        .expect("known");
    let mut all = Vec::new();
    for k in 0..2 {
        all.push(post(&c, 1, g, &format!("before the backup {k}")).await);
    }
    wait_stored(c.node(0), &all, "delivery").await;
    c.stop(1).await;
    let backup = c.root.path().join("member-backup");
    copy_dir(&c.dir(1), &backup);
    c.restart(1).await;
    c.wait_linked(0, 1).await;
    for k in 0..3 {
        all.push(post(&c, 1, g, &format!("after the backup {k}")).await);
    }
    wait_stored(c.node(0), &all, "delivery").await;

    // Restore the member from its backup.
    c.stop(1).await;
    std::fs::remove_dir_all(c.dir(1)).expect("remove");
    copy_dir(&backup, &c.dir(1));
    c.restart(1).await;
    let after = post(&c, 1, g, "after the restore").await;
    let read = c
        .node(1)
        .handle
        .ask(|reply| Command::Read { id: after, reply })
        .await
        .expect("up")
        .expect("read");
    assert_eq!(read.seq, 6, "numbered after the five its peer holds");
    all.push(after);
    wait_stored(
        c.node(0),
        &all,
        "the owner to take the post made after the restore",
    )
    .await;
    wait_stored(
        c.node(1),
        &all,
        "the restored node to get its lost posts back",
    )
    .await;
    c.shutdown().await;
}

/// Flips one byte of the envelope `envelope` in place in the envelope log of the store at
/// `store` (which may be open).
fn damage(store: &Path, envelope: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let path = store.join("envelopes-v4.log");
    let log = std::fs::read(&path).expect("read the envelope log");
    let at = log
        .windows(envelope.len())
        .position(|w| w == envelope)
        .expect("the envelope is in the log");
    let byte = at + envelope.len() - 10;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the envelope log");
    file.seek(SeekFrom::Start(byte as u64)).expect("seek");
    file.write_all(&[log[byte] ^ 0x55]).expect("write");
    file.sync_all().expect("sync");
}

/// A relay with one damaged envelope among an author's 20 messages serves the other 19 (it used
/// to serve none of them: the one failed read failed the whole answer), and the catching-up node
/// gets the 20th from another peer that holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_through_a_relay_skips_what_it_cannot_serve() {
    let _ = logs::capture();
    let mut c = Cluster::start(&["author", "relay", "late"]).await;
    let (author, relay, late) = (0, 1, 2);
    c.link(author, relay).await;
    c.link(relay, late).await;
    let g = create_group(
        c.node(relay),
        "ops",
        &[(c.node(author), Role::Member), (c.node(late), Role::Member)],
    )
    .await
    .expect("group");
    for i in [author, late] {
        wait_until("group", || knows_group(&c.node(i).handle, g))
            .await
            .expect("known");
    }
    c.stop(late).await;
    let mut ids = Vec::new();
    for k in 0..20 {
        ids.push(post(&c, author, g, &format!("report {k}")).await);
    }
    wait_stored(c.node(relay), &ids, "the relay to store the posts").await;
    c.node(relay).store.flush().await.expect("flush");
    let victim = ids[9];
    let envelope = c
        .node(author)
        .store
        .message(&victim)
        .expect("store")
        .expect("held");
    damage(&c.dir(relay).join("store"), &envelope);
    assert!(
        c.node(relay).store.message(&victim).is_err(),
        "the damage was not detected"
    );

    // Through the relay alone: the 19 it can read.
    c.restart(late).await;
    c.wait_linked(relay, late).await;
    let intact: Vec<MessageId> = ids.iter().copied().filter(|id| *id != victim).collect();
    wait_stored(c.node(late), &intact, "catch-up through the damaged relay").await;
    // The 20th from the author.
    c.link(author, late).await;
    wait_stored(c.node(late), &ids, "the damaged one from another peer").await;
    c.shutdown().await;
}
