//! What the actor reports to the metrics endpoint ([`crate::metrics`]): taken on request, from
//! the state the actor already keeps, so that nothing is counted twice or computed between
//! scrapes.

use super::Actor;
use crate::metrics::{LagEntry, Snapshot};
use crate::views::Status;

impl Actor {
    /// The gauges' values now.
    pub(super) fn metrics_snapshot(&self) -> Snapshot {
        let mut peers: Vec<(&'static str, i64)> = Vec::new();
        for entry in self.peers.entries.values() {
            let state = if self.peers.conns.contains_key(&entry.node) {
                "connected"
            } else if entry.last_error.is_some() {
                "disconnected"
            } else {
                "connecting"
            };
            match peers.iter_mut().find(|(s, _)| *s == state) {
                Some((_, n)) => *n += 1,
                None => peers.push((state, 1)),
            }
        }
        let lag = self
            .engine
            .lag()
            .map(|(peer, group, lag)| LagEntry {
                peer: self
                    .peers
                    .entries
                    .get(&peer)
                    .map_or_else(|| peer.short(), |p| p.record.name.clone()),
                group: group.short(),
                lacks: lag.lacks,
                peer_lacks: lag.peer_lacks,
            })
            .collect();
        let health = self.store.health();
        Snapshot {
            peers,
            lag,
            relayed: self.engine.counters().relayed,
            messages: self.store.message_count() as u64,
            free_bytes: health.free_bytes,
            event_streams: self.new_messages.receiver_count() as u64,
        }
    }
}

impl Actor {
    pub(super) fn status(&self) -> Status {
        Status {
            node_id: self.me.to_string(),
            name: self.name.clone(),
            quic_addr: self.quic_addr.to_string(),
            api_addr: self.api_addr.to_string(),
            peers: self.peers.entries.len(),
            connected: self.peers.conns.len(),
            groups: self.engine.groups().count(),
            messages: self.store.message_count(),
            in_flight: self.engine.in_flight(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            faults: self.faults,
            store: crate::views::StoreStatus::of(&self.store.health()),
            rosters: self.roster_status(),
            roster_warning: self.roster_warning(),
            restore: self.restore_status(),
        }
    }
}
