//! Messages travel between real nodes: delivery, encryption at rest, catch-up, relaying.

use liaison_protocol::{Handling, Role};
use liaison_tests::{create_group, knows_group, post, wait_until, Cluster};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn files_contain(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if contains(&std::fs::read(&path).expect("read file"), needle) {
                return true;
            }
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_and_store_no_plaintext() {
    let mut c = Cluster::start(&["owner", "second", "third"]).await;
    c.link(0, 1).await;
    c.link(0, 2).await;
    c.link(1, 2).await;
    let g = create_group(
        c.node(0),
        "ops",
        &[(c.node(1), Role::Member), (c.node(2), Role::Member)],
    )
    .await
    .expect("group");
    for i in 1..3 {
        let n = c.node(i);
        wait_until("group", || knows_group(&n.handle, g))
            .await
            .expect("member knows group");
    }
    let secret = "SECRET-PLAINTEXT-7c1f9a marker body";
    let id = c.post(1, g, secret).await.expect("post");
    c.wait_holds(0, id).await;
    c.wait_holds(2, id).await;
    for i in 0..3 {
        let m = c
            .node(i)
            .handle
            .ask(|reply| liaison_node::node::Command::Read { id, reply })
            .await
            .expect("up")
            .expect("read");
        assert_eq!(m.body.as_deref(), Some(secret));
        assert_eq!(m.author_name, "second");
    }
    for i in 0..3 {
        c.stop(i).await;
        assert!(
            !files_contain(&c.dir(i).join("store"), b"SECRET-PLAINTEXT-7c1f9a"),
            "node {i}'s store holds the plaintext"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_node_catches_up_without_loss_or_duplicates() {
    let mut c = Cluster::start(&["owner", "member", "sleeper"]).await;
    c.link(0, 1).await;
    c.link(0, 2).await;
    let g = create_group(
        c.node(0),
        "ops",
        &[(c.node(1), Role::Member), (c.node(2), Role::Member)],
    )
    .await
    .expect("group");
    for i in 1..3 {
        let n = c.node(i);
        wait_until("group", || knows_group(&n.handle, g))
            .await
            .expect("member knows group");
    }
    let before = c.post(1, g, "before the stop").await.expect("post");
    c.wait_holds(2, before).await;
    c.stop(2).await;
    let mut ids = vec![before];
    for i in 0..25 {
        ids.push(
            c.post(1, g, &format!("while stopped {i}"))
                .await
                .expect("post"),
        );
        ids.push(
            c.post(0, g, &format!("owner while stopped {i}"))
                .await
                .expect("post"),
        );
    }
    // Over 2 MiB of large messages: the catch-up takes several sync responses, the later ones
    // read ahead by the answering node while the sleeper checks the earlier ones.
    let large = "x".repeat(200 * 1024);
    for i in 0..12 {
        ids.push(
            post(
                c.node(1),
                g,
                "officer",
                &format!("large {i}"),
                &large,
                Handling::Green,
            )
            .await
            .expect("post"),
        );
    }
    c.restart(2).await;
    c.wait_linked(0, 2).await;
    for id in &ids {
        c.wait_holds(2, *id).await;
    }
    let inbox = c.inbox(2, g).await;
    let mut sorted = inbox.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), inbox.len(), "duplicates in the inbox");
    assert_eq!(
        inbox.len(),
        ids.len(),
        "inbox holds exactly the posted messages"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_reachable_only_through_a_third_receives_everything() {
    // owner — hub — leaf: leaf is peered with hub only; hub is not the owner, so traffic to
    // and from the leaf moves by the hub's periodic sync.
    let c = Cluster::start(&["owner", "hub", "leaf"]).await;
    c.link(0, 1).await;
    c.link(1, 2).await;
    // The owner knows the leaf only from the hub's directory of signed descriptors.
    let g = create_group(c.node(0), "ops", &[(c.node(1), Role::Member)])
        .await
        .expect("group");
    let owner = c.node(0);
    let leaf_id = c.node(2).node_id.to_string();
    wait_until("the owner to admit the leaf", || async {
        let (group, peer) = (g.to_string(), leaf_id.clone());
        owner
            .handle
            .as_admin()
            .add_member(group, peer, Role::Member)
            .await
            .is_ok()
    })
    .await
    .expect("the owner admits a node it knows through the hub");
    let leaf = c.node(2);
    wait_until("group reaches the leaf", || knows_group(&leaf.handle, g))
        .await
        .expect("leaf learns the group through the hub");
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(
            c.post(0, g, &format!("from owner {i}"))
                .await
                .expect("post"),
        );
    }
    let from_leaf = c.post(2, g, "from the leaf").await.expect("leaf posts");
    for id in &ids {
        c.wait_holds(2, *id).await;
    }
    c.wait_holds(0, from_leaf).await;
    c.shutdown().await;
}
