//! The daemon: composes a node from its parts and owns their tasks, in the manner of
//! mini-redis's `server`. [`start`] opens the store and the attachment files, binds the QUIC
//! endpoint, the API, the web workspace and the metrics endpoint, hands the store and the
//! transport to the node's actor ([`crate::node`]), and spawns the front doors around it:
//!
//! ```text
//!  daemon::start ─┬─ store, attachments, transport (bound here)
//!                 ├─ node::launch ──▶ actor + acceptor      (the node's own tasks)
//!                 ├─ api::serve ─────┐
//!                 ├─ web::serve ─────┼─▶ NodeHandle (the typed door)
//!                 ├─ metrics::serve ─┘
//!                 └─ upload sweeper
//! ```
//!
//! Every task is spawned into one `JoinSet` with the node's span; [`RunningNode::shutdown`]
//! cancels them all and joins every one before it flushes the store. The actor never sees the
//! API or the web workspace: they reach it only through its handle.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use liaison_protocol::NodeId;

use crate::attachments::Attachments;
use crate::datadir::{DataDir, Runtime};
use crate::error::{Error, Result};
use crate::node::{NodeEvent, NodeHandle};
use crate::store::Store;
use crate::transport::{AllowList, Transport, TransportConfig};

/// Batches of [`NodeEvent`]s buffered per subscriber.
const EVENT_QUEUE: usize = 4096;

/// How often the files of uploads never posted are looked for (see
/// [`Attachments::sweep_unposted`]).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Opens the store, binds the endpoints and starts every task of the node in `dir`.
pub async fn start(dir: &DataDir) -> Result<RunningNode> {
    let config = dir.config()?;
    dir.check_permissions()?;
    let (identity, exchange) = dir.keys()?;
    let store = Store::open_with(&dir.store_path(), &config.store.options())?;
    let attachments = Arc::new(Attachments::open(
        &dir.store_path(),
        crate::attachments::Options::of(&config.attachments),
    )?);
    let node_id = identity.node_id();
    let allow = AllowList::new();
    let transport_config = TransportConfig {
        keep_alive: config.transport.keep_alive(),
        idle_timeout: config.transport.idle_timeout(),
        ..TransportConfig::default()
    };
    let transport = Arc::new(Transport::bind(
        config.listen,
        identity.signing_key(),
        allow.clone(),
        transport_config,
    )?);
    let quic_addr = transport.local_addr()?;
    let api_listener = tokio::net::TcpListener::bind(config.api)
        .await
        .map_err(|e| Error::io(format!("cannot bind the API on {}", config.api), e))?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the API address", e))?;
    let web_listener = if config.web.enabled {
        Some(crate::web::bind(
            &config.web,
            &dir.root().join("web-tls"),
            &config.name,
        )?)
    } else {
        None
    };
    let web_url = web_listener.as_ref().map(crate::web::Listener::url);
    let web_fingerprint = web_listener
        .as_ref()
        .and_then(|l| l.self_signed_fingerprint().map(str::to_owned));

    let accounts = Arc::new(crate::accounts::Accounts::load(
        store.clone(),
        &dir.admin_token()?,
    )?);
    let audit = Arc::new(crate::audit::AuditLog::open(store.clone())?);
    let metrics = Arc::new(crate::metrics::Metrics::new(&store, attachments.clone()));
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(crate::metrics::bind(addr).await?),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(l) => Some(
            l.local_addr()
                .map_err(|e| Error::io("cannot read the metrics address", e))?,
        ),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let (events, _) = broadcast::channel(EVENT_QUEUE);
    let mut tasks = JoinSet::new();
    let span = info_span!("node", node = %node_id.short(), name = %config.name);

    let handle = crate::node::launch(
        crate::node::Parts {
            dir: dir.clone(),
            config: config.clone(),
            identity,
            exchange,
            store: store.clone(),
            attachments: attachments.clone(),
            transport,
            allow,
            api_addr,
            metrics: metrics.clone(),
            events: events.clone(),
            shutdown: shutdown.clone(),
        },
        &mut tasks,
        &span,
    )
    .await?;
    if let Some(listener) = web_listener {
        let parts = crate::web::Parts {
            node: handle.clone(),
            accounts: accounts.clone(),
            audit: audit.clone(),
            node_name: config.name.clone(),
            config: config.web.clone(),
            attachments: attachments.clone(),
        };
        tasks.spawn(crate::web::serve(listener, parts, shutdown.clone()).instrument(span.clone()));
    }
    tasks.spawn(
        sweep_unposted(attachments.clone(), shutdown.clone())
            .instrument(info_span!(parent: &span, "sweep")),
    );
    if let Some(listener) = metrics_listener {
        tasks.spawn(
            crate::metrics::serve(
                listener,
                metrics.clone(),
                Arc::new(handle.clone()),
                shutdown.clone(),
            )
            .instrument(span.clone()),
        );
    }
    tasks.spawn(
        crate::api::serve(
            api_listener,
            handle.clone(),
            accounts.clone(),
            audit,
            attachments,
            dir.clone(),
            metrics,
            shutdown.clone(),
        )
        .instrument(span.clone()),
    );
    dir.write_runtime(&Runtime {
        quic: quic_addr,
        api: api_addr,
        pid: std::process::id(),
        web: web_url.clone(),
    })?;
    info!(parent: &span, %quic_addr, %api_addr, ?metrics_addr, "node started");
    Ok(RunningNode {
        handle,
        node_id,
        name: config.name,
        quic_addr,
        api_addr,
        metrics_addr,
        web_url,
        web_fingerprint,
        store,
        accounts,
        shutdown,
        tasks,
        dir: dir.clone(),
        events,
    })
}

/// A node started by [`start`]: its addresses, and the tasks that shutdown joins.
#[derive(Debug)]
pub struct RunningNode {
    /// Commands to the node.
    pub handle: NodeHandle,
    /// This node's id.
    pub node_id: NodeId,
    /// This node's name.
    pub name: String,
    /// The bound QUIC address.
    pub quic_addr: SocketAddr,
    /// The bound API address.
    pub api_addr: SocketAddr,
    /// The bound metrics address, when metrics are served (`[metrics] listen`).
    pub metrics_addr: Option<SocketAddr>,
    /// The web workspace's URL, when it is served.
    pub web_url: Option<String>,
    /// The SHA-256 fingerprint of the workspace's self-signed certificate, if it has one.
    pub web_fingerprint: Option<String>,
    /// The store (for tests and the benchmark; the node owns it).
    pub store: Store,
    /// Officer accounts (for the demo and tests that make officers directly).
    pub accounts: Arc<crate::accounts::Accounts>,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    dir: DataDir,
    events: broadcast::Sender<NodeEvent>,
}

impl RunningNode {
    /// Stops the node: stops accepting, finishes in-flight writes, flushes, closes connections.
    pub async fn shutdown(mut self) -> Result<()> {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.store.flush().await?;
        self.dir.clear_runtime();
        info!(node = %self.node_id.short(), "stopped");
        Ok(())
    }

    /// A token that is cancelled when the node shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Reports of durable storage and acknowledgements from now on (see [`NodeEvent`]).
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }
}

/// Deletes, at start and then every [`SWEEP_EVERY`], the files of uploads no message names
/// and that no longer wait for one, on the blocking pool.
async fn sweep_unposted(attachments: Arc<Attachments>, shutdown: CancellationToken) {
    loop {
        let a = attachments.clone();
        match tokio::task::spawn_blocking(move || a.sweep_unposted()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => info!(files = n, "deleted the files of uploads never posted"),
            Ok(Err(e)) => warn!(error = %e, "cannot delete the files of uploads never posted"),
            Err(_) => return,
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
