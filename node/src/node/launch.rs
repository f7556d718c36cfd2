//! How the actor is built: the sync engine restored from the store, the peers and the
//! federation view loaded, and the actor and its acceptor spawned into the daemon's tasks
//! ([`launch`]). What the daemon hands over is [`Parts`].

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use liaison_protocol::identity::Descriptor;
use liaison_protocol::message::{self, Place};
use liaison_protocol::sync::{self, Engine};
use liaison_protocol::{ExchangeSecret, GroupId, GroupState, IdentityKey};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use crate::attachments::transfer::Connections;
use crate::attachments::Attachments;
use crate::clock::now;
use crate::config::Config;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::store::{Described, Store};
use crate::transport::{AllowList, Transport};

use super::archive::Origins;
use super::command::{NodeEvent, NodeHandle};
use super::dial::Acceptor;
use super::peers::PeerTable;
use super::writes::Writes;
use super::Actor;
use super::{posting, quarantine, reads};

/// Capacity of the command channel from the API.
pub(super) const COMMAND_QUEUE: usize = 256;

/// Capacity of the inbound frame channel from all connections.
pub(super) const INBOUND_QUEUE: usize = 1024;

/// What the daemon hands the node's actor: the opened store and bound transport, and where
/// the actor reports (see [`crate::daemon`], which composes them).
pub(crate) struct Parts {
    /// The data directory.
    pub(crate) dir: DataDir,
    /// The node's configuration.
    pub(crate) config: Config,
    /// This node's identity key.
    pub(crate) identity: IdentityKey,
    /// This node's exchange key.
    pub(crate) exchange: ExchangeSecret,
    /// The store.
    pub(crate) store: Store,
    /// Attachment files and their index.
    pub(crate) attachments: Arc<Attachments>,
    /// The bound QUIC endpoint.
    pub(crate) transport: Arc<Transport>,
    /// The transport's allow-list, which the peer table keeps.
    pub(crate) allow: AllowList,
    /// The bound API address (shown in the node's status).
    pub(crate) api_addr: SocketAddr,
    /// The node's metrics.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// Observer hook (see [`NodeEvent`]).
    pub(crate) events: broadcast::Sender<NodeEvent>,
    /// Cancelled when the node shuts down.
    pub(crate) shutdown: CancellationToken,
}

/// Builds the sync engine from the store, brings the store's read indexes in line with it
/// ([`relist`]), and starts the actor and the acceptor in `tasks` (each under `span`);
/// returns the handle that reaches the actor.
pub(crate) async fn launch(
    parts: Parts,
    tasks: &mut tokio::task::JoinSet<()>,
    span: &tracing::Span,
) -> Result<NodeHandle> {
    let Parts {
        dir,
        config,
        identity,
        exchange,
        store,
        attachments,
        transport,
        allow,
        api_addr,
        metrics,
        events,
        shutdown,
    } = parts;
    let node_id = identity.node_id();
    let quic_addr = transport.local_addr()?;
    let advertised = advertised_address(&config, quic_addr);
    let descriptor = Descriptor {
        node: node_id,
        name: config.name.clone(),
        addresses: vec![advertised],
        exchange_key: exchange.public(),
        valid_from: now(),
        valid_until: now().plus_millis(365 * 24 * 3600 * 1000),
    }
    .sign(&identity)?
    .to_bytes()?;
    let engine_config = sync::Config {
        sync_interval_ms: config.sync.interval_ms,
        max_strikes: config.sync.max_strikes,
        relay: config.sync.relay,
        max_clock_skew_ms: config.sync.max_clock_skew_ms,
        max_groups_per_owner: config.sync.max_groups_per_owner,
        max_controls_per_group: config.sync.max_controls_per_group,
        max_author_bytes_per_day: config.sync.max_author_bytes_per_day,
        ..sync::Config::default()
    };
    let mut engine = Engine::new(
        IdentityKey::from_seed(&identity.seed()),
        exchange,
        descriptor,
        engine_config,
    );
    let previous = dir.previous_keys()?;
    let mut own_rotations = Vec::with_capacity(previous.len());
    for (old_identity, old_exchange, statement) in previous {
        engine.add_previous_keys(old_identity, old_exchange);
        own_rotations.push(statement);
    }
    restore(&mut engine, &store)?;
    relist(&store, &engine).await?;
    let restoring = crate::restored::at_start(&dir, &node_id)?;
    engine.set_restoring(restoring.is_some());
    let trust = crate::federation::Trust::new(&config.federation)?;
    let rotate_after = config.groups.rotate_after().map_err(Error::Invalid)?;

    let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
    let (internal_tx, internal_rx) = mpsc::channel(COMMAND_QUEUE);
    let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
    let (publisher, snapshots) = reads::Publisher::new(node_id, config.name.clone());
    let new_messages = broadcast::channel(1024).0;
    let handle = NodeHandle {
        tx: cmd_tx,
        reads: Arc::new(reads::Reads::new(
            store.clone(),
            attachments.clone(),
            snapshots,
            new_messages.clone(),
        )),
    };
    let mut actor = Actor {
        name: config.name.clone(),
        me: node_id,
        engine,
        store,
        transport: transport.clone(),
        peers: PeerTable::new(allow),
        internal_tx: internal_tx.clone(),
        inbound_tx,
        shutdown: shutdown.clone(),
        config,
        quic_addr,
        api_addr,
        pending_writes: 0,
        writes: Writes::default(),
        quarantined: quarantine::Quarantined::new(),
        new_messages,
        reads: publisher,
        events,
        local_posts: Vec::new(),
        post_rounds: posting::Rounds::default(),
        received: Vec::new(),
        received_writes: 0,
        origins: Origins::default(),
        read_ahead: RefCell::default(),
        faults: 0,
        attachments,
        connections: Connections::default(),
        accepted_attachments: HashMap::new(),
        posted_attachments: HashMap::new(),
        fetching: HashSet::new(),
        fetch_queue: std::collections::VecDeque::new(),
        trust,
        dir,
        rotate_after,
        expiry_logged: None,
        rotating: false,
        quiet_pending: HashSet::new(),
        metrics,
        restoring,
    };
    actor.load_peers()?;
    actor.load_directory()?;
    actor.resume_fetches();
    actor.load_quarantine()?;
    actor.load_federation(own_rotations)?;
    // Published before the handle is returned: a query that comes before the actor's first
    // loop turn would otherwise see the empty snapshot, no group, and call a stored message
    // not here.
    actor.snapshot();

    tasks.spawn(
        Acceptor {
            transport: transport.clone(),
            tx: internal_tx.clone(),
            shutdown: shutdown.clone(),
        }
        .run()
        .instrument(info_span!(parent: span, "accept")),
    );
    tasks.spawn(
        actor
            .run(cmd_rx, internal_rx, inbound_rx)
            .instrument(span.clone()),
    );
    Ok(handle)
}

/// The address shown to peers: `advertise`, or the bound address with an unspecified IP
/// shown as loopback.
pub fn advertised_address(config: &Config, bound: SocketAddr) -> String {
    if let Some(a) = &config.advertise {
        return a.clone();
    }
    let mut addr = bound;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr.to_string()
}

/// Rebuilds the engine's groups and version vectors from the store.
pub(super) fn restore(engine: &mut Engine, store: &Store) -> Result<()> {
    for group in store.groups()? {
        let events = store.control_events(&group)?;
        // Apply the contiguous prefix; anything after a gap is fetched again from peers.
        let mut chain = Vec::new();
        for (i, (seq, bytes)) in events.into_iter().enumerate() {
            if seq != i as u64 + 1 {
                break;
            }
            chain.push(bytes);
        }
        let gid = group;
        while !chain.is_empty() {
            match engine.restore_group(chain.clone()) {
                Ok(_) => break,
                Err(e) => {
                    warn!(group = %gid.short(), error = %e, "stored control event unusable; refetching");
                    chain.pop();
                }
            }
        }
        engine.restore_held(store.held(&group)?);
    }
    // Messages found damaged: fetched again from peers (see `Actor::refetch_damaged`).
    let damaged: Vec<Place> = store.damaged()?.into_iter().map(|(_, p)| p).collect();
    engine.handle_lost(&damaged);
    Ok(())
}

/// Brings the store's listing and reply indexes in line with its messages before anything is
/// listed (see `store::listing` and `store::replies`): a data directory written before an
/// index existed, or a crash recovery that indexed messages from the envelope log again, is
/// relisted here, on the blocking pool, before the API answers. Whom a message answers is in
/// its content, opened with the group states `engine` restored.
async fn relist(store: &Store, engine: &Engine) -> Result<()> {
    let listed = store.listed_count()?;
    let held = store.message_count() as u64;
    let whole = store.replies_whole()?;
    if listed == held && whole {
        return Ok(());
    }
    let states: HashMap<GroupId, GroupState> =
        engine.groups().map(|s| (s.id(), s.clone())).collect();
    let s = store.clone();
    let report = tokio::task::spawn_blocking(move || {
        s.relist(|bytes| {
            let (envelope, header, id) = message::decode(bytes).ok()?;
            let created_at = header.created_at.0;
            let reply_to = states.get(&header.group).and_then(|state| {
                let verified = message::Verified {
                    id,
                    header,
                    envelope,
                };
                message::open(&verified, state).ok()?.reply_to
            });
            Some(Described {
                created_at,
                reply_to,
            })
        })
    })
    .await
    .map_err(|e| Error::Corrupt(format!("rebuilding the listing index failed: {e}")))??;
    info!(
        listed,
        held,
        replies_were_whole = whole,
        added = report.added,
        removed = report.removed,
        replies = report.replies,
        unreadable = report.unreadable,
        "listing and reply indexes brought in line with the stored messages"
    );
    Ok(())
}
