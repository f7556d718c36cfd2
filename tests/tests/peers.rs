//! Peers' descriptors between real nodes: restarts in any order settle on each node's newest
//! descriptor without frames bouncing between nodes, and a peer whose clock runs a few seconds
//! ahead is admitted to groups like any other.

use liaison_node::clock::now;
use liaison_protocol::identity::SignedDescriptor;
use liaison_protocol::{Frame, Role, Timestamp};
use liaison_tests::hostile::Hostile;
use liaison_tests::{logs, nodes, wait_until, Cluster};

/// The descriptor of `node` that `on` keeps in its directory (learned through peers), if any.
fn directory_entry(on: &liaison_node::daemon::RunningNode, node: &str) -> Option<Vec<u8>> {
    let key = format!("directory/{node}");
    on.store
        .meta_prefix(&key)
        .expect("store readable")
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// Stop A, restart X, start A: X comes back holding A's old descriptor (learned through the
/// hub before A stopped), the hub meanwhile learned A's new one. Both send their copy when they
/// reconnect; without an order between descriptors the two copies swapped back and forth
/// between them for ever (1,500–2,200 times a second). They must settle on A's new descriptor,
/// after which nothing about A is learned any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_settle_on_the_newest_descriptor_without_bouncing() {
    let logs = logs::capture();
    let mut c = Cluster::start(&["hub", "x", "a"]).await;
    let (hub, x, a) = (0, 1, 2);
    c.link(hub, x).await;
    c.link(hub, a).await;
    let a_id = c.node(a).node_id;
    wait_until("x to learn a's descriptor through the hub", || async {
        directory_entry(c.node(x), &a_id.to_string()).is_some()
    })
    .await
    .expect("x learns a");

    c.stop(a).await;
    c.stop(x).await;
    let restarted_at = now();
    c.restart(a).await;
    c.wait_linked(hub, a).await;
    c.restart(x).await;
    c.wait_linked(hub, x).await;
    // The line a node logs when it takes a descriptor of A from a peer's directory.
    let learned = format!("directory entry learned node={}", a_id.short());
    wait_until("x to hold a's new descriptor", || async {
        directory_entry(c.node(x), &a_id.to_string())
            .and_then(|d| SignedDescriptor::verify(&d, now()).ok())
            .is_some_and(|d| d.valid_from >= restarted_at)
    })
    .await
    .expect("x holds the new descriptor");
    // Settled: from here on nobody learns anything new about A.
    let settled = logs.count(&[&learned]);
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let later = logs.count(&[&learned]);
    assert_eq!(
        later - settled,
        0,
        "A's descriptors kept being exchanged after the nodes settled"
    );
    c.shutdown().await;
}

/// A peer whose clock is 3 s ahead signs its descriptor valid from 3 s in this node's future.
/// It used to be refused ("not valid at this time"), so `group add` answered 409 "has not
/// connected yet" while `peer list` showed it connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_clock_is_seconds_ahead_can_be_added_to_a_group() {
    let _logs = logs::capture();
    let root = tempfile::tempdir().expect("temp dir");
    let owner = nodes::start_with(root.path(), "owner", |_| {}).await;
    let ahead = Hostile::new("ahead");
    nodes::pin(&owner, "ahead", ahead.node_id(), ahead.addr()).await;
    let mut s = ahead.connect(&owner).await;
    s.send(&Frame::Hello {
        descriptor: ahead.descriptor_from(Timestamp(now().0 + 3_000)),
    })
    .await;
    wait_until("the owner to know the peer's descriptor", || {
        liaison_tests::peer_ready(&owner.handle, "ahead")
    })
    .await
    .expect("descriptor taken");
    let gid = liaison_tests::create_group(&owner, "ops", &[])
        .await
        .expect("group");
    let view = owner
        .handle
        .as_admin()
        .add_member(gid.to_string(), "ahead".into(), Role::Member)
        .await
        .expect("the peer is admitted");
    assert!(view.members.iter().any(|m| m.name == "ahead"));
    s.close();
    owner.shutdown().await.expect("stop");
}
