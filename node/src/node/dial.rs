//! The tasks that make connections: the [`Acceptor`] takes incoming connections whose key is on
//! the allow-list, and one [`Dialer`] per admitted peer dials it whenever it is not connected,
//! with backoff. Both hand a new connection to the actor ([`Internal::ConnUp`]), which settles
//! dial races in the peer table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use liaison_protocol::NodeId;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::transport::Transport;

use super::command::Internal;

/// Takes incoming connections (the transport let only allow-listed keys through) and hands each
/// to the actor, until shutdown.
#[derive(Debug)]
pub(super) struct Acceptor {
    /// The bound endpoint.
    pub(super) transport: Arc<Transport>,
    /// To the actor.
    pub(super) tx: mpsc::Sender<Internal>,
    /// Cancelled when the node shuts down.
    pub(super) shutdown: CancellationToken,
}

impl Acceptor {
    /// Accepts until shutdown or until the endpoint closes.
    pub(super) async fn run(self) {
        let Acceptor {
            transport,
            tx,
            shutdown,
        } = self;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => return,
                next = transport.accept() => next,
            };
            let Some((conn, key)) = next else {
                return;
            };
            let Ok(peer) = NodeId::from_bytes(key) else {
                conn.close(5u32.into(), b"invalid key");
                continue;
            };
            info!(peer = %peer.short(), remote = %conn.remote_address(), "incoming connection");
            if tx
                .send(Internal::ConnUp {
                    peer,
                    conn,
                    initiator: peer,
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// Dials one admitted peer whenever it is not connected, with exponential backoff between
/// failed attempts, until its token is cancelled (the peer is forgotten or re-admitted, or the
/// node shuts down).
#[derive(Debug)]
pub(super) struct Dialer {
    /// The bound endpoint.
    pub(super) transport: Arc<Transport>,
    /// This node (the initiator of what it dials).
    pub(super) me: NodeId,
    /// The peer dialled; only its pinned key is accepted.
    pub(super) peer: NodeId,
    /// `HOST:PORT`; empty for a roster entry without an address (it dials us).
    pub(super) address: String,
    /// Whether the peer is connected now (kept by the peer table).
    pub(super) connected: watch::Receiver<bool>,
    /// To the actor.
    pub(super) tx: mpsc::Sender<Internal>,
    /// Stops this dialer.
    pub(super) cancel: CancellationToken,
    /// First and shortest wait between attempts.
    pub(super) min_ms: u64,
    /// Longest wait between attempts.
    pub(super) max_ms: u64,
}

impl Dialer {
    /// Dials until cancelled.
    pub(super) async fn run(self) {
        let Dialer {
            transport,
            me,
            peer,
            address,
            mut connected,
            tx,
            cancel,
            min_ms,
            max_ms,
        } = self;
        if address.is_empty() {
            return; // A roster entry without an address: it dials us.
        }
        let mut backoff = min_ms;
        loop {
            // Wait while connected.
            while *connected.borrow_and_update() {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = connected.changed() => if changed.is_err() { return },
                }
            }
            // A host name is resolved again at every attempt: its address may have changed.
            let ipv6 = transport.local_addr().is_ok_and(|a| a.is_ipv6());
            let resolved = tokio::select! {
                () = cancel.cancelled() => return,
                r = resolve(&address, ipv6) => r,
            };
            let dialled = match resolved {
                Ok(addr) => tokio::select! {
                    () = cancel.cancelled() => return,
                    r = transport.connect(addr, *peer.as_bytes()) => r.map_err(|e| e.to_string()),
                },
                Err(e) => Err(e),
            };
            match dialled {
                Ok(conn) => {
                    backoff = min_ms;
                    if tx
                        .send(Internal::ConnUp {
                            peer,
                            conn,
                            initiator: me,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    // Give the actor a moment to register the connection before checking again.
                    let _ =
                        tokio::time::timeout(Duration::from_millis(min_ms), connected.changed())
                            .await;
                }
                Err(e) => {
                    debug!(%address, error = %e, "dial failed");
                    let _ = tx.send(Internal::DialFailed { peer, error: e }).await;
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_millis(backoff)) => {}
                        _ = connected.changed() => {}
                    }
                    backoff = (backoff * 2).min(max_ms);
                }
            }
        }
    }
}

/// The socket address `address` (`HOST:PORT`, WIRE.md §2.3) stands for: the first address a
/// host name resolves to in the family of the node's own socket (`ipv6`), which is the one it
/// can send to, or else the first one.
pub(super) async fn resolve(address: &str, ipv6: bool) -> std::result::Result<SocketAddr, String> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = liaison_protocol::fields::split_address(address) else {
        return Err(format!("{address:?} is not HOST:PORT"));
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv6() == ipv6)
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("{host} resolves to no address"))
}
