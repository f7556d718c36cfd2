//! A benchmark node in its own process, as every node runs in a deployment.
//!
//! The end-to-end phase runs the receiving node as a child `liaison-bench bench-node` process, so
//! that the two nodes share nothing but the machine: not a tokio runtime, and not sled 0.34's
//! process-wide lock, which every write batch of every store in a process takes (with both
//! nodes in one process, each node's writes waited for the other's).
//!
//! The parent drives the child over pipes, one line per message:
//!
//! ```text
//!  child → parent   ready NODE_ID QUIC_ADDR      once the node runs
//!                   durable ID ID …               the node's NodeEvent::Durable, as it happens
//!                   lagged N                      N batches of durable ids were lost
//!                   ok | yes | no | error TEXT    the reply to the last command
//!  parent → child   peer NAME NODE_ID ADDR        pin a peer
//!                   knows GROUP_ID                whether the node holds the group
//!                   (end of input)                stop the node (flushing) and exit
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use liaison_protocol::message::MessageId;
use liaison_protocol::{GroupId, NodeId};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{broadcast, mpsc};

use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::error::{Error, Result};
use liaison_node::node::NodeEvent;

/// How long the parent waits for a reply, for the child to start, or for it to stop.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Batches of durable ids buffered for the parent's subscribers.
const EVENT_QUEUE: usize = 4096;

/// Serves the node in `dir` to a parent `liaison bench` over standard input and output (the
/// hidden `liaison-bench bench-node` command). Returns when standard input ends, after the node
/// stopped and flushed.
pub async fn serve(dir: &DataDir) -> Result<()> {
    let node = liaison_node::daemon::start(dir).await?;
    // Written straight to the pipe, not through tokio's stdout (which hands every write to a
    // blocking thread): the parent stamps each report when it reads it. The parent reads all
    // the time, so a write waits only as long as the pipe is full.
    let send = |line: &[u8]| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        // Fails only when the parent has gone; it stops the node by closing the input.
        let _ = out.write_all(line).and_then(|()| out.flush());
    };
    send(format!("ready {} {}\n", node.node_id, node.quic_addr).as_bytes());

    let mut events = node.subscribe();
    let forward = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(NodeEvent::Durable { ids }) => {
                    // Hex by table, not through `Display`: this runs for every message the
                    // benchmark sends, in the process it measures.
                    let mut line = Vec::with_capacity(8 + ids.len() * 65);
                    line.extend_from_slice(b"durable");
                    let mut hex = [0u8; 64];
                    for id in ids.iter() {
                        line.push(b' ');
                        if hex::encode_to_slice(id.as_bytes(), &mut hex).is_ok() {
                            line.extend_from_slice(&hex);
                        }
                    }
                    line.push(b'\n');
                    send(&line);
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    // The parent stops forwarding, so that its collectors fail loudly.
                    send(format!("lagged {n}\n").as_bytes());
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    // The node stops (and flushes) however the input ends.
    let input = loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let reply = match command(&node, &line).await {
                    Ok(reply) => reply,
                    Err(e) => format!("error {e}"),
                };
                send((reply + "\n").as_bytes());
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(Error::io("cannot read standard input", e)),
        }
    };
    forward.abort();
    node.shutdown().await?;
    input
}

/// Runs one command line from the parent; returns the reply line (without newline).
async fn command(node: &RunningNode, line: &str) -> Result<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["peer", name, id, address] => {
            let node_id: NodeId = id
                .parse()
                .map_err(|e| Error::Invalid(format!("bad node id: {e}")))?;
            let (name, address) = ((*name).to_owned(), (*address).to_owned());
            node.handle
                .as_admin()
                .add_peer(name, node_id, address)
                .await?;
            Ok("ok".into())
        }
        ["knows", group] => {
            let known = liaison_node::demo::knows_group(&node.handle, parse_group(group)?).await;
            Ok(if known { "yes" } else { "no" }.into())
        }
        _ => Err(Error::Invalid(format!("unknown command {line:?}"))),
    }
}

fn parse_group(text: &str) -> Result<GroupId> {
    text.parse()
        .map_err(|e| Error::Invalid(format!("bad group id: {e}")))
}

/// A node running in a child `liaison-bench bench-node` process.
pub struct NodeProcess {
    /// The node's name.
    pub name: String,
    /// The node's id.
    pub node_id: NodeId,
    /// Its bound QUIC address.
    pub quic_addr: SocketAddr,
    pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    replies: mpsc::UnboundedReceiver<String>,
    /// Never read: only for [`broadcast::Receiver::resubscribe`]. The reader task holds the
    /// only sender, so subscribers see the channel close when the child's reports end.
    events: broadcast::Receiver<NodeEvent>,
}

impl NodeProcess {
    /// Creates node `name` under `root` and starts it in a child process of this executable.
    /// The child is killed if this value is dropped before [`NodeProcess::stop`].
    pub async fn spawn(root: &Path, name: &str, sync_interval_ms: u64) -> Result<NodeProcess> {
        let dir = liaison_node::demo::init_node(root, name, sync_interval_ms)?;
        let exe = std::env::current_exe()
            .map_err(|e| Error::io("cannot find the liaison-bench executable", e))?;
        let mut child = tokio::process::Command::new(&exe)
            .arg("bench-node")
            .arg("--data")
            .arg(dir.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("cannot start {}", exe.display()), e))?;
        let pid = child
            .id()
            .ok_or_else(|| Error::Invalid("the node process exited at once".into()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error::Invalid("no pipe from the node process".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(STEP_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| Error::Invalid(format!("node process {name} did not start")))?
            .map_err(|e| Error::io("cannot read from the node process", e))?
            .ok_or_else(|| {
                Error::Invalid(format!("node process {name} exited before it was ready"))
            })?;
        let (node_id, quic_addr) = parse_ready(&first)?;

        let (events_tx, events) = broadcast::channel(EVENT_QUEUE);
        let (reply_tx, replies) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("lagged ") {
                    tracing::error!(line, "the node process lost durable reports");
                    break;
                }
                if let Some(ids) = line.strip_prefix("durable ") {
                    let ids: Option<Vec<MessageId>> =
                        ids.split(' ').map(|id| id.parse().ok()).collect();
                    let Some(ids) = ids else {
                        tracing::error!(line, "unreadable report from the node process");
                        break;
                    };
                    // No subscriber yet is fine: nobody waits for these ids.
                    let _ = events_tx.send(NodeEvent::Durable {
                        ids: Arc::from(ids),
                    });
                } else if reply_tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(NodeProcess {
            name: name.to_owned(),
            node_id,
            quic_addr,
            pid,
            child,
            stdin,
            replies,
            events,
        })
    }

    /// Reports of the node, as [`RunningNode::subscribe`] gives them (each stamped by the
    /// parent when it reads the line, a pipe hop after the child's store flushed).
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.resubscribe()
    }

    /// Pins `peer` on the child's node.
    pub async fn add_peer(&mut self, peer: &RunningNode) -> Result<()> {
        let reply = self
            .ask(&format!(
                "peer {} {} {}",
                peer.name, peer.node_id, peer.quic_addr
            ))
            .await?;
        match reply.as_str() {
            "ok" => Ok(()),
            other => Err(self.refused("pinning a peer", other)),
        }
    }

    /// Whether the child's node holds `group`.
    pub async fn knows_group(&mut self, group: GroupId) -> Result<bool> {
        let reply = self.ask(&format!("knows {group}")).await?;
        match reply.as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(self.refused("asking for a group", other)),
        }
    }

    /// CPU seconds the child has used so far.
    pub fn cpu_seconds(&self) -> f64 {
        super::cpu_seconds(&self.pid.to_string())
    }

    /// Peak resident set of the child so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        super::peak_rss(&self.pid.to_string())
    }

    /// Stops the node (it flushes its store) and waits for the process to exit cleanly.
    pub async fn stop(mut self) -> Result<()> {
        drop(self.stdin.take());
        let status = tokio::time::timeout(STEP_TIMEOUT, self.child.wait())
            .await
            .map_err(|_| Error::Invalid(format!("node process {} did not stop", self.name)))?
            .map_err(|e| Error::io("cannot wait for the node process", e))?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Invalid(format!(
                "node process {} exited with {status}",
                self.name
            )))
        }
    }

    async fn ask(&mut self, line: &str) -> Result<String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| Error::Invalid("the node process is stopping".into()))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .map_err(|e| Error::io(format!("cannot write to node process {}", self.name), e))?;
        tokio::time::timeout(STEP_TIMEOUT, self.replies.recv())
            .await
            .map_err(|_| Error::Invalid(format!("node process {} did not answer", self.name)))?
            .ok_or_else(|| Error::Invalid(format!("node process {} exited", self.name)))
    }

    fn refused(&self, what: &str, reply: &str) -> Error {
        let reason = reply.strip_prefix("error ").unwrap_or(reply);
        Error::Invalid(format!("node process {}: {what}: {reason}", self.name))
    }
}

/// Parses `ready NODE_ID QUIC_ADDR`.
fn parse_ready(line: &str) -> Result<(NodeId, SocketAddr)> {
    let bad = || {
        Error::Invalid(format!(
            "unexpected first line from a node process: {line:?}"
        ))
    };
    let mut words = line.split_whitespace();
    if words.next() != Some("ready") {
        return Err(bad());
    }
    let node_id = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    let addr = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
    Ok((node_id, addr))
}
