//! What goes wrong in the transport: errors for callers, and why an incoming connection was
//! dropped (only logged).

use std::net::SocketAddr;
use std::time::Duration;

use quinn::ConnectionError;

/// Errors of the transport. Node keys appear in their short form (first 8 hex characters).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// [`Transport::bind`] was called outside a Tokio runtime.
    #[error("the QUIC transport must be started from within a Tokio runtime")]
    NoRuntime,
    /// The transport configuration is unusable.
    #[error("invalid transport configuration: {0}")]
    InvalidConfig(String),
    /// The node identity key could not be turned into a TLS identity.
    #[error("cannot use the node identity key for TLS: {0}")]
    Identity(String),
    /// The TLS configuration could not be built.
    #[error("cannot build the TLS configuration: {0}")]
    Tls(rustls::Error),
    /// The UDP socket could not be bound.
    #[error("cannot listen on UDP {addr}: {source} (is the address in use or not local?)")]
    Bind {
        /// Address that was requested.
        addr: SocketAddr,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The local address of the endpoint could not be read.
    #[error("cannot read the local address of the QUIC endpoint: {0}")]
    LocalAddr(std::io::Error),
    /// The connection attempt could not even start (endpoint closed, invalid address, …).
    #[error("cannot start connecting to {addr}: {source}")]
    Connect {
        /// Address dialled.
        addr: SocketAddr,
        /// Underlying error.
        source: quinn::ConnectError,
    },
    /// The peer presented a different key than the one pinned for it.
    #[error(
        "peer at {addr} presented key {presented}… but key {pinned}… was pinned; \
         check the address and the node key configured for this peer"
    )]
    KeyMismatch {
        /// Address dialled.
        addr: SocketAddr,
        /// Short form of the key the peer presented.
        presented: String,
        /// Short form of the pinned key.
        pinned: String,
    },
    /// The peer refused our TLS handshake, typically because our key is not on its allow-list.
    #[error(
        "peer at {addr} refused the handshake ({reason}); if our key {local_key}… is not on its \
         allow-list, ask its operator to add it"
    )]
    Refused {
        /// Address dialled.
        addr: SocketAddr,
        /// Reason the peer gave.
        reason: String,
        /// Short form of this node's key.
        local_key: String,
    },
    /// The handshake failed or the connection was lost before the peer confirmed it.
    #[error("connection to {addr} failed during the handshake: {source}")]
    Handshake {
        /// Address dialled.
        addr: SocketAddr,
        /// Underlying error.
        source: ConnectionError,
    },
    /// The peer completed the TLS handshake but never confirmed the connection.
    #[error(
        "peer at {addr} did not confirm the connection within {timeout:?}; is it a liaison node?"
    )]
    Unconfirmed {
        /// Address dialled.
        addr: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
    /// The peer broke the transport protocol.
    #[error("peer at {addr} broke the transport protocol: {reason}")]
    Protocol {
        /// Address dialled.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}

/// Why an incoming connection was dropped; only logged.
#[derive(Debug, thiserror::Error)]
pub(super) enum AcceptError {
    #[error("handshake failed: {0}")]
    Handshake(#[from] ConnectionError),
    #[error("no usable peer key after the handshake")]
    NoKey,
    #[error("ALPN {0} was negotiated instead of liaison/1")]
    Alpn(String),
    #[error("key {0}… was removed from the allow-list during the handshake")]
    NoLongerAllowed(String),
    #[error("cannot send the connection confirmation: {0}")]
    Confirm(String),
}
