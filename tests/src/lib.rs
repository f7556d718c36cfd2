//! Shared helpers for the multi-node integration tests: real nodes in-process, each with its own
//! temporary data directory, sled store, QUIC endpoint on 127.0.0.1 port 0 and API.
#![allow(missing_docs)]

pub mod browser;
pub mod hostile;
pub mod logs;
pub mod nodes;
pub mod photos;
pub mod relay;

use std::path::PathBuf;

use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::demo;
use liaison_node::node::Command;
use liaison_node::Result;
use liaison_protocol::message::MessageId;
use liaison_protocol::{GroupId, Handling};

pub use liaison_node::demo::{
    create_group, holds, knows_group, peer, peer_ready, post, wait_until,
};

/// Sync interval used by the tests: short, so catch-up through a third node is quick.
pub const SYNC_MS: u64 = 200;

/// A set of running nodes under one temporary directory.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub nodes: Vec<Option<RunningNode>>,
    names: Vec<String>,
}

impl Cluster {
    /// Starts nodes with these names.
    pub async fn start(names: &[&str]) -> Cluster {
        let root = tempfile::tempdir().expect("temp dir");
        let nodes = demo::start_nodes(root.path(), names, SYNC_MS)
            .await
            .expect("nodes start");
        Cluster {
            root,
            nodes: nodes.into_iter().map(Some).collect(),
            names: names.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// The running node `i`.
    pub fn node(&self, i: usize) -> &RunningNode {
        self.nodes[i].as_ref().expect("node is running")
    }

    /// Node `i`'s data directory.
    pub fn dir(&self, i: usize) -> PathBuf {
        self.root.path().join(&self.names[i])
    }

    /// Pins nodes `a` and `b` to each other and waits until both see the other connected.
    pub async fn link(&self, a: usize, b: usize) {
        peer(self.node(a), self.node(b)).await.expect("peer add");
        self.wait_linked(a, b).await;
    }

    /// Waits until `a` and `b` are connected and have exchanged descriptors.
    pub async fn wait_linked(&self, a: usize, b: usize) {
        let (na, nb) = (self.node(a), self.node(b));
        wait_until("link", || peer_ready(&na.handle, &nb.name))
            .await
            .expect("a sees b");
        wait_until("link", || peer_ready(&nb.handle, &na.name))
            .await
            .expect("b sees a");
    }

    /// Stops node `i` gracefully.
    pub async fn stop(&mut self, i: usize) {
        let n = self.nodes[i].take().expect("node is running");
        n.shutdown().await.expect("clean shutdown");
    }

    /// Starts node `i` again from its data directory.
    pub async fn restart(&mut self, i: usize) {
        let n = liaison_node::daemon::start(&DataDir::new(self.dir(i)))
            .await
            .expect("restart");
        self.nodes[i] = Some(n);
    }

    /// Waits until node `i` holds message `id`.
    pub async fn wait_holds(&self, i: usize, id: MessageId) {
        let n = self.node(i);
        wait_until("message delivery", || holds(&n.handle, id))
            .await
            .unwrap_or_else(|e| panic!("{} never received {}: {e}", n.name, id.short()));
    }

    /// Posts a message from node `i`.
    pub async fn post(&self, i: usize, group: GroupId, text: &str) -> Result<MessageId> {
        post(self.node(i), group, "officer", text, text, Handling::Green).await
    }

    /// The ids of the messages node `i` lists in `group`.
    pub async fn inbox(&self, i: usize, group: GroupId) -> Vec<String> {
        self.node(i)
            .handle
            .ask(|reply| Command::Inbox {
                group: Some(group.to_string()),
                reply,
            })
            .await
            .expect("node up")
            .expect("inbox")
            .into_iter()
            .map(|m| m.id)
            .collect()
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_some() {
                self.stop(i).await;
            }
        }
    }
}
