//! Two nodes in one process exchange one message: each in its own temporary data directory,
//! on loopback with ports the system chooses. They pin each other, the first creates a group
//! and adds the second, posts a message, and the second prints it once it holds it.
//!
//! ```text
//! cargo run -p liaison-node --example two_nodes
//! ```
//!
//! The same steps, as an operator takes them with the `liaison` CLI, are in the README.

use std::net::SocketAddr;
use std::time::Duration;

use liaison_node::config::Config;
use liaison_node::daemon::{self, RunningNode};
use liaison_node::datadir::DataDir;
use liaison_node::node::{Command, Post, Scoped};
use liaison_node::views::MessageView;
use liaison_protocol::{GroupId, Handling, MessageId, Role};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let rilo = start(tmp.path(), "rilo-wca").await?;
    let customs = start(tmp.path(), "customs-nl").await?;
    // Commands in this example run as each node's operator (the admin token's principal).
    let (at_rilo, at_customs) = (rilo.handle.as_admin(), customs.handle.as_admin());

    pin(&at_rilo, &customs).await?;
    pin(&at_customs, &rilo).await?;
    wait("the nodes to connect", || connected(&at_rilo, "customs-nl")).await?;

    let group = create_group(&at_rilo, "Operation Heritage 2026", "customs-nl").await?;
    println!("rilo-wca created group {group} and added customs-nl");

    let id = post(
        &at_rilo,
        group,
        "Icons seized at Schiphol",
        "Three 18th-century icons.",
    )
    .await?;
    println!("rilo-wca posted {id}");

    let message = wait("customs-nl to hold the message", || read(&at_customs, id)).await?;
    println!(
        "customs-nl holds it: [{}] {} from {} ({}): {}\n  {}",
        message.handling.to_uppercase(),
        message.group_name,
        message.author_name,
        message.officer,
        message.subject,
        message.body.unwrap_or_default(),
    );

    customs.shutdown().await?;
    rilo.shutdown().await?;
    Ok(())
}

/// Creates node `name` in `root/name`, listening on loopback ports the system chooses, and
/// starts it.
async fn start(root: &std::path::Path, name: &str) -> Result<RunningNode> {
    let dir = DataDir::new(root.join(name));
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    dir.init(&Config::new(name, any, any), &mut rand_core::OsRng)?;
    Ok(daemon::start(&dir).await?)
}

/// Pins `peer` on the node behind `on` (as `liaison peer add NAME NODE_ID HOST:PORT` does).
async fn pin(on: &Scoped, peer: &RunningNode) -> Result<()> {
    on.add_peer(peer.name.clone(), peer.node_id, peer.quic_addr.to_string())
        .await?;
    Ok(())
}

/// Whether the node behind `on` is connected to its peer `name`.
async fn connected(on: &Scoped, name: &str) -> Result<Option<()>> {
    let peers = on.peers().await?;
    let up = peers
        .iter()
        .any(|p| p.name == name && p.state == "connected");
    Ok(up.then_some(()))
}

/// Creates a group and adds `member` (a pinned peer's name) to it as a member.
async fn create_group(on: &Scoped, name: &str, member: &str) -> Result<GroupId> {
    let group = on.create_group(name.to_owned()).await?;
    on.add_member(group.to_string(), member.to_owned(), Role::Member)
        .await?;
    Ok(group)
}

/// Posts a TLP:GREEN note to `group`.
async fn post(on: &Scoped, group: GroupId, subject: &str, body: &str) -> Result<MessageId> {
    let post = Post {
        officer: "analyst".into(),
        recipients: vec![],
        subject: subject.into(),
        body: body.into(),
        record: None,
        handling: Handling::Green,
        reply_to: None,
        attachments: vec![],
    };
    Ok(on.post(group.to_string(), post).await?)
}

/// Message `id`, if the node behind `on` holds it.
async fn read(on: &Scoped, id: MessageId) -> Result<Option<MessageView>> {
    Ok(on
        .node()
        .ask(|reply| Command::Read { id, reply })
        .await?
        .ok())
}

/// Asks `check` every 50 ms until it gives a value, for at most 30 s.
async fn wait<T, F>(what: &str, mut check: impl FnMut() -> F) -> Result<T>
where
    F: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..600 {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("gave up waiting for {what}").into())
}
