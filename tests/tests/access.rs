//! Membership decides who receives what; the transport refuses unknown and wrong keys.

use liaison_node::error::Error;
use liaison_protocol::{Handling, Role};
use liaison_tests::{create_group, holds, knows_group, peer_ready, post, wait_until, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_gets_nothing_new_and_reader_cannot_post() {
    let c = Cluster::start(&["owner", "member", "removed", "reader"]).await;
    for i in 1..4 {
        c.link(0, i).await;
    }
    c.link(1, 2).await;
    let g = create_group(
        c.node(0),
        "ops",
        &[
            (c.node(1), Role::Member),
            (c.node(2), Role::Member),
            (c.node(3), Role::Reader),
        ],
    )
    .await
    .expect("group");
    for i in 1..4 {
        let n = c.node(i);
        wait_until("group", || knows_group(&n.handle, g))
            .await
            .expect("knows group");
    }
    let early = c.post(1, g, "before removal").await.expect("post");
    c.wait_holds(2, early).await;
    c.wait_holds(3, early).await;

    // A reader cannot post.
    let denied = post(c.node(3), g, "r", "s", "reader post", Handling::Green).await;
    assert!(matches!(denied, Err(Error::Forbidden(_))), "{denied:?}");

    // Remove node 2, then post from the owner and from member 1 (which is peered with 2).
    let (group, peer) = (g.to_string(), c.node(2).name.clone());
    c.node(0)
        .handle
        .as_admin()
        .remove_member(group, peer)
        .await
        .expect("remove");
    let n1 = c.node(1);
    wait_until("removal reaches member", || async {
        matches!(
            n1.handle.as_admin().group(g.to_string()).await,
            Ok(v) if v.members.len() == 3
        )
    })
    .await
    .expect("member applies the removal");
    let late_owner = c.post(0, g, "after removal, owner").await.expect("post");
    let late_member = c.post(1, g, "after removal, member").await.expect("post");
    c.wait_holds(3, late_owner).await;
    c.wait_holds(3, late_member).await;
    // Give the periodic sync several rounds to leak, if it would.
    tokio::time::sleep(std::time::Duration::from_millis(5 * liaison_tests::SYNC_MS)).await;
    assert!(!holds(&c.node(2).handle, late_owner).await);
    assert!(!holds(&c.node(2).handle, late_member).await);
    // The removed node can no longer post into the group either.
    let denied = post(c.node(2), g, "x", "s", "removed post", Handling::Green).await;
    assert!(denied.is_err(), "a removed member posted: {denied:?}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_wrong_keys_are_refused_in_the_handshake() {
    let c = Cluster::start(&["a", "b", "stranger"]).await;
    let (a, b, stranger) = (c.node(0), c.node(1), c.node(2));
    let pin = |on: &liaison_node::daemon::RunningNode,
               name: &str,
               node: liaison_protocol::NodeId,
               address: String| {
        let name = name.to_owned();
        let handle = on.handle.clone();
        async move {
            handle
                .as_admin()
                .add_peer(name, node, address)
                .await
                .expect("pin");
        }
    };
    // The stranger pins a, but a does not pin the stranger: a refuses it in the handshake.
    pin(stranger, "a", a.node_id, a.quic_addr.to_string()).await;
    // b pins a's node id at the stranger's address; the stranger pins b, so only b's check of
    // the presented key can fail.
    pin(b, "impostor", a.node_id, stranger.quic_addr.to_string()).await;
    pin(stranger, "b", b.node_id, b.quic_addr.to_string()).await;
    wait_until("the stranger's dial to be refused", || async {
        matches!(stranger.handle.as_admin().peers().await,
            Ok(p) if p.iter().any(|p| p.name == "a" && p.last_error.is_some()))
    })
    .await
    .expect("a refuses the stranger");
    wait_until("b's dial of the impostor to fail", || async {
        matches!(b.handle.as_admin().peers().await,
            Ok(p) if p.iter().any(|p| p.name == "impostor" && p.last_error.is_some()))
    })
    .await
    .expect("b refuses a node presenting another key than the pinned one");
    assert!(!peer_ready(&stranger.handle, "a").await);
    assert!(!peer_ready(&stranger.handle, "b").await);
    assert!(!peer_ready(&b.handle, "impostor").await);
    for n in [a, b, stranger] {
        let status = n.handle.as_admin().status().await.expect("up");
        assert_eq!(
            status.connected, 0,
            "{} has a connection it should have refused",
            n.name
        );
    }
    c.shutdown().await;
}
