//! A member removed from a group keeps the keys of the epochs it was in. Here it goes on
//! posting into them — seq 1,000,000, dated 2020, TLP:RED with recipients and a claimed officer —
//! after the owner removed it. The owner's removal carries its cut-off (the removed member's
//! highest seq per epoch that it held), and every node keeps only what lies at or below it: the
//! owner refuses the rest and relays none of it, and a member that took such a message before it
//! learned of the removal hides it afterwards. The views say that the author was removed.

use liaison_node::clock::now;
use liaison_node::daemon::RunningNode;
use liaison_node::node::Command;
use liaison_protocol::message::{self, Content, Draft, Handling, MessageId, Payload, Recipient};
use liaison_protocol::{Frame, GroupId, Role, Timestamp};
use liaison_tests::hostile::{Hostile, Session};
use liaison_tests::logs::{self, Logs};
use liaison_tests::{create_group, knows_group, nodes, peer_ready, wait_until};

/// 2020-01-01T00:00:00Z.
const IN_2020: Timestamp = Timestamp(1_577_836_800_000);

/// A message mallory seals as a member of the group `controls` describe (its view of it).
fn seal(
    h: &Hostile,
    controls: &[Vec<u8>],
    seq: u64,
    created_at: Timestamp,
    handling: Handling,
) -> message::Sealed {
    let state = h.group_state(controls);
    let content = Content {
        officer: "j.doe".into(),
        recipients: vec![Recipient {
            officer: "analyst".into(),
            node: state.owner(),
        }],
        reply_to: None,
        payload: Payload::Text {
            subject: "Corrected seizure report".into(),
            body: format!("seq {seq}: what mallory wants on record"),
        },
    };
    message::seal(
        &state,
        &h.identity,
        Draft {
            seq,
            now: created_at,
            handling,
            expires_at: None,
            content: &content,
        },
        &mut rand_core::OsRng,
    )
    .expect("seal")
}

fn push(sealed: &message::Sealed) -> Frame {
    Frame::Push {
        envelopes: vec![sealed.bytes.clone()],
    }
}

async fn stores(node: &RunningNode, id: MessageId) -> bool {
    node.store.has_message(&id).expect("store")
}

/// Whether `node` shows message `id` (its inbox and `read`). The two are separate requests, so
/// a removal applied between them can make one sample disagree; they must agree once the node's
/// state holds still.
async fn shows(node: &RunningNode, group: GroupId, id: MessageId) -> bool {
    let mut last = None;
    for _ in 0..50 {
        let inbox = node
            .handle
            .ask(|reply| Command::Inbox {
                group: Some(group.to_string()),
                reply,
            })
            .await
            .expect("up")
            .expect("inbox");
        let listed = inbox.iter().any(|m| m.id == id.to_string());
        let read = matches!(
            node.handle.ask(|reply| Command::Read { id, reply }).await,
            Ok(Ok(_))
        );
        if listed == read {
            return listed;
        }
        last = Some((listed, read));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "inbox and read keep disagreeing about {} (listed, read): {last:?}",
        id.short()
    );
}

fn rejections(logs: &Logs, on: &RunningNode, from: &Hostile, reason: &str) -> usize {
    logs.count(&[
        &format!("node={}", on.node_id.short()),
        "rejected input from peer",
        &format!("peer={}", from.node_id().short()),
        reason,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_cannot_add_to_the_record_and_members_converge_on_the_owners_view() {
    let logs = logs::capture();
    let root = tempfile::tempdir().expect("temp dir");
    // No periodic sync during the test: the owner must not fetch seq 3 from the member before
    // it removes mallory (it then would hold it, and its cut-off would include it).
    let quiet = |c: &mut liaison_node::config::Config| c.sync.interval_ms = 600_000;
    let owner = nodes::start_with(root.path(), "owner", quiet).await;
    let member = nodes::start_with(root.path(), "member", quiet).await;
    let mallory = Hostile::new("mallory");
    liaison_tests::peer(&owner, &member).await.expect("peer");
    for (a, b) in [(&owner, &member), (&member, &owner)] {
        wait_until("link", || peer_ready(&a.handle, &b.name))
            .await
            .expect("linked");
    }
    // Both honest nodes have pinned mallory (it is a customs administration they work with).
    for node in [&owner, &member] {
        nodes::pin(node, "mallory", mallory.node_id(), mallory.addr()).await;
    }
    let mut to_owner: Session = mallory.connect(&owner).await;
    to_owner.hello(&mallory).await;
    let mut to_member: Session = mallory.connect(&member).await;
    to_member.hello(&mallory).await;
    for node in [&owner, &member] {
        wait_until("mallory's descriptor", || {
            peer_ready(&node.handle, "mallory")
        })
        .await
        .expect("mallory known");
    }
    let g = create_group(
        &owner,
        "Operation Heritage 2026",
        &[(&member, Role::Member)],
    )
    .await
    .expect("group");
    let (group, peer) = (g.to_string(), "mallory".to_owned());
    owner
        .handle
        .as_admin()
        .add_member(group, peer, Role::Member)
        .await
        .expect("mallory admitted");
    wait_until("the member to know the group", || {
        knows_group(&member.handle, g)
    })
    .await
    .expect("group known");
    let controls = to_owner.fetch_controls(g).await;
    let epoch = controls.len() as u64;

    // Mallory posts 1 and 2 to the owner, which relays them; and 3 to the member only.
    let first = seal(&mallory, &controls, 1, now(), Handling::Amber);
    let second = seal(&mallory, &controls, 2, now(), Handling::Amber);
    for sealed in [&first, &second] {
        to_owner.send(&push(sealed)).await;
    }
    let third = seal(&mallory, &controls, 3, now(), Handling::Amber);
    to_member.send(&push(&third)).await;
    for id in [first.id, second.id, third.id] {
        wait_until("the member to take mallory's posts", || stores(&member, id))
            .await
            .expect("stored");
    }
    assert!(shows(&member, g, third.id).await);

    // The owner removes mallory: its cut-off is seq 2, the highest it holds.
    let (group, peer) = (g.to_string(), "mallory".to_owned());
    let view = owner
        .handle
        .as_admin()
        .remove_member(group, peer)
        .await
        .expect("mallory removed");
    assert!(view
        .removed
        .iter()
        .any(|r| r.node_id == mallory.node_id().to_string() && r.removed_in_epoch == epoch + 1));

    // The member learns of the removal and hides seq 3, which it took before.
    wait_until(
        "the member to hide what lies beyond the cut-off",
        || async { !shows(&member, g, third.id).await },
    )
    .await
    .expect("seq 3 hidden");
    // Mallory keeps posting into its old epoch: seq 1,000,000, dated 2020, TLP:RED.
    let rogue = seal(&mallory, &controls, 1_000_000, IN_2020, Handling::Red);
    let before = rejections(&logs, &owner, &mallory, "beyond the owner's cut-off");
    to_owner.send(&push(&rogue)).await;
    to_member.send(&push(&rogue)).await;
    logs.wait_for(
        before,
        &[
            &format!("node={}", owner.node_id.short()),
            "rejected input from peer",
            &format!("peer={}", mallory.node_id().short()),
            "beyond the owner's cut-off",
        ],
    )
    .await;
    wait_until("the member to refuse it too", || async {
        rejections(&logs, &member, &mallory, "beyond the owner's cut-off") > 0
    })
    .await
    .expect("member refuses");
    // Nothing of it is stored anywhere, and the owner relayed none of it.
    for node in [&owner, &member] {
        assert!(!stores(node, rogue.id).await, "{} stored it", node.name);
        assert!(!shows(node, g, rogue.id).await);
    }
    assert!(!stores(&owner, third.id).await, "the owner took seq 3");

    // Both show the owner's view: mallory's 1 and 2, marked as written by a removed member.
    for node in [&owner, &member] {
        for id in [first.id, second.id] {
            assert!(
                shows(node, g, id).await,
                "{} lost {}",
                node.name,
                id.short()
            );
            let read = node
                .handle
                .ask(|reply| Command::Read { id, reply })
                .await
                .expect("up")
                .expect("read");
            assert_eq!(read.author_removed_in_epoch, Some(epoch + 1));
        }
        assert!(!shows(node, g, third.id).await);
    }
    to_owner.close();
    to_member.close();
    owner.shutdown().await.expect("stop");
    member.shutdown().await.expect("stop");
}
