//! Starting real nodes with a configuration the test chooses (short idle timeouts, few
//! strikes, ...), always on 127.0.0.1 with ports chosen by the system.

use std::net::SocketAddr;
use std::path::Path;

use liaison_node::config::Config;
use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_protocol::NodeId;

/// Creates a node named `name` in `root/name` with the tests' defaults (see [`crate::SYNC_MS`]),
/// lets `tweak` change the config, writes `node.toml` and starts the node.
pub async fn start_with(root: &Path, name: &str, tweak: impl FnOnce(&mut Config)) -> RunningNode {
    let dir = DataDir::new(root.join(name));
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut config = Config::new(name, any, any);
    config.sync.interval_ms = crate::SYNC_MS;
    config.transport.redial_min_ms = 100;
    config.transport.redial_max_ms = 2_000;
    tweak(&mut config);
    dir.init(&config, &mut rand_core::OsRng).expect("init node");
    liaison_node::daemon::start(&dir).await.expect("start node")
}

/// Starts node `name` again from `root/name`.
pub async fn restart(root: &Path, name: &str) -> RunningNode {
    liaison_node::daemon::start(&DataDir::new(root.join(name)))
        .await
        .expect("restart node")
}

/// Pins `node` (named `name`) at `address` on `on`.
pub async fn pin(on: &RunningNode, name: &str, node: NodeId, address: SocketAddr) {
    let (name, address) = (name.to_owned(), address.to_string());
    on.handle
        .as_admin()
        .add_peer(name, node, address)
        .await
        .expect("pin peer");
}

/// Whether `on` has a live connection to its peer `name`.
pub async fn connected(on: &RunningNode, name: &str) -> bool {
    match on.handle.as_admin().peers().await {
        Ok(peers) => peers
            .iter()
            .any(|p| p.name == name && p.state == "connected"),
        Err(_) => false,
    }
}

/// Number of messages in `on`'s store, as its status reports it.
pub async fn message_count(on: &RunningNode) -> usize {
    on.handle
        .as_admin()
        .status()
        .await
        .expect("node up")
        .messages
}
