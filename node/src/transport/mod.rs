//! QUIC transport between nodes.
//!
//! One [`Transport`] is a single UDP endpoint that both listens and dials. Connections run over
//! TLS 1.3 (nothing else is offered) with raw public keys (RFC 7250): each side presents its
//! ed25519 node identity key and both sides authenticate each other in the handshake.
//!
//! * [`Transport::connect`] accepts only the key pinned for the node being dialled.
//! * [`Transport::accept`] accepts only keys on the [`AllowList`], which can change at runtime;
//!   a change applies to the next handshake. Established connections are not closed when a key
//!   is removed: close them yourself if needed.
//!
//! Any other key fails the TLS handshake, so it never reaches the application. ALPN
//! [`ALPN`] is required on both sides, there is no session resumption and no 0-RTT data, and the
//! number of concurrent streams and the receive windows per peer are bounded
//! ([`TransportConfig`]).
//!
//! In TLS 1.3 the dialler finishes its handshake one flight before the listener has checked the
//! dialler's key. So that [`Transport::connect`] only returns connections the listener accepted,
//! the listener opens one unidirectional stream carrying a short confirmation as soon as it
//! accepts, and `connect` waits for it. This stream is consumed by the transport: the
//! application never sees it.
//!
//! Messages travel as length-prefixed frames: [`write_frame`] and [`read_frame`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use quinn::crypto::rustls::{HandshakeData, QuicClientConfig, QuicServerConfig};
use quinn::{Connection, ConnectionError, Endpoint, Incoming, VarInt};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use tokio::sync::{mpsc, Mutex};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

mod allow;
mod error;
mod frame;
mod tls;

#[cfg(test)]
mod tests;

pub use allow::AllowList;
use error::AcceptError;
pub use error::TransportError;
pub use frame::{read_frame, write_frame, FrameError};

/// ALPN protocol identifier, required on every connection.
pub const ALPN: &[u8] = b"liaison/1";

/// Application close code used by [`Transport::close`].
pub const CLOSE_SHUTDOWN: u32 = 0;

/// Application close code used when the transport drops a connection right after the
/// handshake (e.g. the peer's key left the allow-list meanwhile).
pub const CLOSE_REFUSED: u32 = 1;

/// Contents of the confirmation stream the listener opens on every accepted connection.
const CONFIRMATION: &[u8] = b"liaison/1 accepted";

/// Server name handed to quinn when dialling. It is not sent (SNI is disabled) and not checked:
/// peers are identified by their raw public key only.
const SERVER_NAME: &str = "liaison-node";

/// Handshakes the listener runs at the same time; further incoming connections are refused.
const MAX_PENDING_HANDSHAKES: usize = 256;

/// Accepted connections waiting for [`Transport::accept`].
const ACCEPT_QUEUE: usize = 32;

/// Smallest and largest per-stream receive window.
const MIN_STREAM_WINDOW: usize = 64 * 1024;
const MAX_STREAM_WINDOW: usize = 1024 * 1024;

/// Largest receive window for one connection (all its streams together).
const MAX_CONNECTION_WINDOW: u64 = 16 * 1024 * 1024;

/// Short, log-friendly form of a node key: its first 8 hex characters.
pub(crate) fn short_key(key: &[u8; 32]) -> String {
    hex::encode(&key[..4])
}

/// Tunables of the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportConfig {
    /// Interval of QUIC keep-alive pings on idle connections. Must be shorter than
    /// `idle_timeout`. Default 5 s.
    pub keep_alive: Duration,
    /// A connection with no traffic for this long is closed; also bounds how long a handshake
    /// may take. Default 30 s.
    pub idle_timeout: Duration,
    /// Concurrent streams a peer may open, per direction kind (unidirectional and
    /// bidirectional separately). At least 1. Default 8.
    pub max_streams: u32,
    /// Largest frame the node expects to read, in bytes. It sizes the per-stream receive window
    /// (clamped to 64 KiB–1 MiB); pass it to [`read_frame`]. At most `u32::MAX`. Default 4 MiB,
    /// the protocol's largest frame.
    pub max_frame_len: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            max_streams: 8,
            max_frame_len: 4 * 1024 * 1024,
        }
    }
}

impl TransportConfig {
    /// Checks the values and turns them into quinn's transport configuration.
    fn to_quinn(&self) -> Result<quinn::TransportConfig, TransportError> {
        let invalid = |why: String| Err(TransportError::InvalidConfig(why));
        if self.keep_alive.is_zero() {
            return invalid("keep_alive must be greater than zero".into());
        }
        if self.idle_timeout.is_zero() {
            return invalid("idle_timeout must be greater than zero".into());
        }
        if self.keep_alive >= self.idle_timeout {
            return invalid(format!(
                "keep_alive ({:?}) must be shorter than idle_timeout ({:?})",
                self.keep_alive, self.idle_timeout
            ));
        }
        if self.max_streams == 0 {
            return invalid("max_streams must be at least 1".into());
        }
        if u32::try_from(self.max_frame_len).is_err() {
            return invalid(format!(
                "max_frame_len ({}) must not exceed {} bytes",
                self.max_frame_len,
                u32::MAX
            ));
        }
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            TransportError::InvalidConfig(format!(
                "idle_timeout ({:?}) is too large",
                self.idle_timeout
            ))
        })?;

        let stream_window = self
            .max_frame_len
            .saturating_add(4)
            .clamp(MIN_STREAM_WINDOW, MAX_STREAM_WINDOW);
        let stream_window = u32::try_from(stream_window).unwrap_or(u32::MAX);
        let connection_window = (u64::from(stream_window) * u64::from(self.max_streams))
            .clamp(u64::from(stream_window), MAX_CONNECTION_WINDOW);
        let connection_window = VarInt::from_u64(connection_window)
            .map_err(|_| TransportError::InvalidConfig("receive window out of range".into()))?;

        let mut config = quinn::TransportConfig::default();
        config
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(idle))
            .max_concurrent_bidi_streams(VarInt::from_u32(self.max_streams))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_streams))
            .stream_receive_window(VarInt::from_u32(stream_window))
            .receive_window(connection_window)
            .send_window(connection_window.into_inner())
            .datagram_receive_buffer_size(None);
        Ok(config)
    }
}

/// A QUIC endpoint that listens for and dials other nodes.
///
/// Must be created within a Tokio runtime. Dropping it stops accepting connections; use
/// [`Transport::close`] and [`Transport::wait_idle`] for an orderly shutdown.
pub struct Transport {
    endpoint: Endpoint,
    provider: Arc<CryptoProvider>,
    /// The TLS identity and its key; replaced by [`Transport::set_identity`].
    identity: RwLock<(Arc<CertifiedKey>, [u8; 32])>,
    allow: AllowList,
    quic: Arc<quinn::TransportConfig>,
    confirm_timeout: Duration,
    accepted: Mutex<mpsc::Receiver<(Connection, [u8; 32])>>,
    acceptor: JoinHandle<()>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("local_addr", &self.endpoint.local_addr().ok())
            .field("local_key", &short_key(&self.local_key()))
            .finish_non_exhaustive()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        // Also aborts the handshakes in progress.
        self.acceptor.abort();
    }
}

impl Transport {
    /// Binds a UDP endpoint on `addr` (port 0 picks a free port) that identifies itself with
    /// `identity` and accepts incoming connections from keys on `allow`.
    ///
    /// Incoming handshakes run in the background as soon as the endpoint exists; completed
    /// connections wait for [`Transport::accept`].
    ///
    /// # Errors
    ///
    /// [`TransportError::NoRuntime`] outside a Tokio runtime,
    /// [`TransportError::InvalidConfig`] for unusable `config` values,
    /// [`TransportError::Bind`] if the UDP socket cannot be bound, and
    /// [`TransportError::Identity`] / [`TransportError::Tls`] if the TLS setup fails.
    pub fn bind(
        addr: SocketAddr,
        identity: &SigningKey,
        allow: AllowList,
        config: TransportConfig,
    ) -> Result<Self, TransportError> {
        tokio::runtime::Handle::try_current().map_err(|_| TransportError::NoRuntime)?;
        let certified = tls::certified_key(identity)?;
        Self::bind_with(
            addr,
            certified,
            identity.verifying_key().to_bytes(),
            allow,
            config,
        )
    }

    /// [`Transport::bind`] with an already built TLS identity.
    fn bind_with(
        addr: SocketAddr,
        identity: Arc<CertifiedKey>,
        local_key: [u8; 32],
        allow: AllowList,
        config: TransportConfig,
    ) -> Result<Self, TransportError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| TransportError::NoRuntime)?;
        let quic = Arc::new(config.to_quinn()?);
        let provider = tls::provider();

        let server = Self::server(&provider, &identity, &allow, &quic)?;

        let endpoint = {
            // quinn picks up the runtime from the current context.
            let _guard = runtime.enter();
            Endpoint::server(server, addr)
                .map_err(|source| TransportError::Bind { addr, source })?
        };

        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = runtime.spawn(accept_loop(
            endpoint.clone(),
            allow.clone(),
            tx,
            config.idle_timeout,
        ));
        info!(
            addr = ?endpoint.local_addr().ok(),
            key = %short_key(&local_key),
            "QUIC transport listening"
        );
        Ok(Self {
            endpoint,
            provider,
            identity: RwLock::new((identity, local_key)),
            allow,
            quic,
            confirm_timeout: config.idle_timeout,
            accepted: Mutex::new(rx),
            acceptor,
        })
    }

    /// The listener's QUIC configuration for `identity`.
    fn server(
        provider: &Arc<CryptoProvider>,
        identity: &Arc<CertifiedKey>,
        allow: &AllowList,
        quic: &Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ServerConfig, TransportError> {
        let tls_server = tls::server_config(provider.clone(), identity.clone(), allow.clone())?;
        let crypto = QuicServerConfig::try_from(tls_server)
            .map_err(|e| TransportError::InvalidConfig(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(quic.clone());
        Ok(server)
    }

    /// The node key this endpoint presents.
    pub fn local_key(&self) -> [u8; 32] {
        self.identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
    }

    /// Presents `identity` from now on, to the peers it dials and to those that dial it (after
    /// a key rotation). Established connections keep the key they were made with.
    pub fn set_identity(&self, identity: &SigningKey) -> Result<(), TransportError> {
        let certified = tls::certified_key(identity)?;
        let server = Self::server(&self.provider, &certified, &self.allow, &self.quic)?;
        self.endpoint.set_server_config(Some(server));
        *self
            .identity
            .write()
            .unwrap_or_else(PoisonError::into_inner) =
            (certified, identity.verifying_key().to_bytes());
        info!(key = %short_key(&self.local_key()), "QUIC transport presents a new key");
        Ok(())
    }

    /// The address the endpoint is bound to (with the actual port if port 0 was requested).
    ///
    /// # Errors
    ///
    /// [`TransportError::LocalAddr`] if the socket cannot report its address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        self.endpoint
            .local_addr()
            .map_err(TransportError::LocalAddr)
    }

    /// Dials the node at `addr`, which must present the node key `expected`.
    ///
    /// Returns once the peer has accepted the connection, i.e. our key passed its allow-list.
    /// Takes at most about twice the idle timeout (handshake, then the peer's confirmation).
    ///
    /// # Errors
    ///
    /// [`TransportError::KeyMismatch`] if the peer presents another key than `expected`,
    /// [`TransportError::Refused`] if the peer refuses the handshake (typically: our key is not
    /// on its allow-list), [`TransportError::Handshake`] if the peer is unreachable or the
    /// handshake fails otherwise (e.g. a bad signature), [`TransportError::Unconfirmed`] /
    /// [`TransportError::Protocol`] if the peer does not behave like a liaison node, and
    /// [`TransportError::Connect`] if the endpoint is closed.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        expected: [u8; 32],
    ) -> Result<Connection, TransportError> {
        let verifier = Arc::new(tls::PinnedServerVerifier::new(expected, &self.provider));
        let identity = self
            .identity
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone();
        let tls_client = tls::client_config(self.provider.clone(), identity, verifier.clone())?;
        let crypto = QuicClientConfig::try_from(tls_client)
            .map_err(|e| TransportError::InvalidConfig(e.to_string()))?;
        let mut client = quinn::ClientConfig::new(Arc::new(crypto));
        client.transport_config(self.quic.clone());

        let connecting = self
            .endpoint
            .connect_with(client, addr, SERVER_NAME)
            .map_err(|source| TransportError::Connect { addr, source })?;
        let conn = match connecting.await {
            Ok(conn) => conn,
            Err(source) => {
                if let Some(presented) = verifier.mismatch() {
                    return Err(TransportError::KeyMismatch {
                        addr,
                        presented: short_key(&presented),
                        pinned: short_key(&expected),
                    });
                }
                return Err(self.handshake_error(addr, source));
            }
        };

        let protocol_error = |reason: String| {
            conn.close(
                VarInt::from_u32(CLOSE_REFUSED),
                b"transport protocol violation",
            );
            TransportError::Protocol { addr, reason }
        };
        // rustls already enforced both; checked again so a regression cannot slip through.
        if !alpn_is_liaison(&conn) {
            return Err(protocol_error("ALPN liaison/1 was not negotiated".into()));
        }
        if peer_key(&conn) != Some(expected) {
            return Err(protocol_error(
                "the authenticated key is not the pinned one".into(),
            ));
        }

        match tokio::time::timeout(self.confirm_timeout, read_confirmation(&conn)).await {
            Ok(Ok(())) => {
                debug!(peer = %short_key(&expected), %addr, "connected");
                Ok(conn)
            }
            Ok(Err(Confirmation::Lost(source))) => Err(self.handshake_error(addr, source)),
            Ok(Err(Confirmation::Invalid(reason))) => Err(protocol_error(reason)),
            Err(_) => {
                conn.close(VarInt::from_u32(CLOSE_REFUSED), b"no confirmation");
                Err(TransportError::Unconfirmed {
                    addr,
                    timeout: self.confirm_timeout,
                })
            }
        }
    }

    /// Maps a connection failure while dialling to the most useful error.
    fn handshake_error(&self, addr: SocketAddr, source: ConnectionError) -> TransportError {
        match &source {
            // TLS alerts travel as QUIC CRYPTO_ERROR codes 0x100-0x1ff.
            ConnectionError::ConnectionClosed(close)
                if (0x100..0x200).contains(&u64::from(close.error_code)) =>
            {
                TransportError::Refused {
                    addr,
                    reason: String::from_utf8_lossy(&close.reason).into_owned(),
                    local_key: short_key(&self.local_key()),
                }
            }
            _ => TransportError::Handshake { addr, source },
        }
    }

    /// The next incoming connection whose handshake completed, with the peer's key (which was
    /// on the allow-list). `None` once the endpoint is closed.
    ///
    /// Handshake failures are logged (peer address and reason) and skipped, never returned.
    /// Cancel-safe: dropping the future loses no connection.
    pub async fn accept(&self) -> Option<(Connection, [u8; 32])> {
        self.accepted.lock().await.recv().await
    }

    /// Closes the endpoint and all its connections with [`CLOSE_SHUTDOWN`]; pending and future
    /// [`Transport::accept`] calls return `None` and [`Transport::connect`] fails.
    pub fn close(&self) {
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"node shutting down");
    }

    /// Waits until every connection of the endpoint is fully closed (after [`Transport::close`],
    /// lets the close notifications reach the peers).
    pub async fn wait_idle(&self) {
        self.endpoint.wait_idle().await;
    }
}

/// The authenticated node key of the peer of `conn`: the ed25519 key in the single raw public
/// key the peer presented. `None` if the handshake has not completed or the identity is not
/// exactly one ed25519 SubjectPublicKeyInfo.
pub fn peer_key(conn: &Connection) -> Option<[u8; 32]> {
    let identity = conn.peer_identity()?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    match certs.as_slice() {
        [spki] => tls::parse_ed25519_spki(spki.as_ref()),
        _ => None,
    }
}

fn alpn_is_liaison(conn: &Connection) -> bool {
    conn.handshake_data()
        .and_then(|data| data.downcast::<HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .is_some_and(|protocol| protocol == ALPN)
}

/// How waiting for the listener's confirmation failed.
enum Confirmation {
    Lost(ConnectionError),
    Invalid(String),
}

/// Reads the confirmation stream the listener opens once it accepted the connection.
async fn read_confirmation(conn: &Connection) -> Result<(), Confirmation> {
    let mut recv = conn.accept_uni().await.map_err(Confirmation::Lost)?;
    match recv.read_to_end(CONFIRMATION.len()).await {
        Ok(bytes) if bytes == CONFIRMATION => Ok(()),
        Ok(_) => Err(Confirmation::Invalid("unexpected confirmation".into())),
        Err(quinn::ReadToEndError::Read(quinn::ReadError::ConnectionLost(e))) => {
            Err(Confirmation::Lost(e))
        }
        Err(e) => Err(Confirmation::Invalid(format!(
            "cannot read the confirmation: {e}"
        ))),
    }
}

/// Takes incoming connections off the endpoint and runs their handshakes concurrently,
/// queueing the accepted ones for [`Transport::accept`]. Ends when the endpoint is closed.
async fn accept_loop(
    endpoint: Endpoint,
    allow: AllowList,
    accepted: mpsc::Sender<(Connection, [u8; 32])>,
    confirm_timeout: Duration,
) {
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if handshakes.len() >= MAX_PENDING_HANDSHAKES {
                    warn!(
                        remote = %incoming.remote_address(),
                        "refusing incoming connection: too many handshakes in progress"
                    );
                    incoming.refuse();
                    continue;
                }
                handshakes.spawn(handshake(
                    incoming,
                    allow.clone(),
                    accepted.clone(),
                    confirm_timeout,
                ));
            }
            Some(done) = handshakes.join_next(), if !handshakes.is_empty() => {
                if let Err(e) = done {
                    warn!(error = %e, "incoming handshake task failed");
                }
            }
        }
    }
    drop(accepted);
    // The endpoint is closed: the remaining handshakes fail promptly.
    while handshakes.join_next().await.is_some() {}
    debug!("QUIC transport stopped accepting");
}

/// Runs one incoming handshake to completion and queues the connection, or logs why not.
async fn handshake(
    incoming: Incoming,
    allow: AllowList,
    accepted: mpsc::Sender<(Connection, [u8; 32])>,
    confirm_timeout: Duration,
) {
    let remote = incoming.remote_address();
    match accept_incoming(incoming, &allow, confirm_timeout).await {
        Ok((conn, key)) => {
            debug!(peer = %short_key(&key), %remote, "accepted connection");
            if accepted.send((conn, key)).await.is_err() {
                debug!(%remote, "transport dropped; discarding accepted connection");
            }
        }
        Err(e) => warn!(%remote, reason = %e, "refused incoming connection"),
    }
}

async fn accept_incoming(
    incoming: Incoming,
    allow: &AllowList,
    confirm_timeout: Duration,
) -> Result<(Connection, [u8; 32]), AcceptError> {
    let conn = incoming.accept()?.await?;
    let refuse = |why: AcceptError| {
        conn.close(VarInt::from_u32(CLOSE_REFUSED), b"refused");
        why
    };
    if !alpn_is_liaison(&conn) {
        let got = conn
            .handshake_data()
            .and_then(|data| data.downcast::<HandshakeData>().ok())
            .and_then(|data| data.protocol)
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_else(|| "none".into());
        return Err(refuse(AcceptError::Alpn(got)));
    }
    let Some(key) = peer_key(&conn) else {
        return Err(refuse(AcceptError::NoKey));
    };
    if !allow.contains(&key) {
        return Err(refuse(AcceptError::NoLongerAllowed(short_key(&key))));
    }
    let confirm = async {
        let mut send = conn.open_uni().await.map_err(|e| e.to_string())?;
        send.write_all(CONFIRMATION)
            .await
            .map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())
    };
    match tokio::time::timeout(confirm_timeout, confirm).await {
        Ok(Ok(())) => Ok((conn, key)),
        Ok(Err(e)) => Err(refuse(AcceptError::Confirm(e))),
        Err(_) => Err(refuse(AcceptError::Confirm("timed out".into()))),
    }
}
