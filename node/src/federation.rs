//! The node's place in its federations: the rosters of the authorities it trusts, the
//! revocations and rotation statements it has seen, and what follows from them for this node —
//! which nodes are admitted as peers besides its pins, what a roster name stands for, and what
//! the sync engine must refuse (see WIRE.md §12).
//!
//! [`Trust`] wraps the protocol's pure [`Federation`] with this node's configuration (trusted
//! authorities, locally refused entries, the expiry grace period). It does no I/O: the actor
//! stores what it takes (meta keys [`ROSTER_PREFIX`] and [`ROTATION_PREFIX`]) and applies what
//! it answers. Pins are the actor's; a local pin overrides a roster entry, a revocation
//! overrides a pin.

use std::collections::{BTreeMap, BTreeSet};

use liaison_protocol::roster::{Admission, Entry, Federation, Kind, RosterUpdate, RotationUpdate};
use liaison_protocol::sync::Policy;
use liaison_protocol::{ExchangeKey, NodeId, Rejection, Timestamp};
use serde::{Deserialize, Serialize};

use crate::config::FederationSection;
use crate::error::{Error, Result};

/// Meta key prefix of the rosters in force, one per authority (`federation/roster/HEX`).
pub const ROSTER_PREFIX: &str = "federation/roster/";
/// Meta key prefix of rotation statements (`federation/rotation/OLD/NEW/AT`).
pub const ROTATION_PREFIX: &str = "federation/rotation/";

/// This node's federation view.
#[derive(Debug, Clone)]
pub struct Trust {
    view: Federation,
    refused: BTreeSet<NodeId>,
    grace_ms: u64,
    warn_before_ms: u64,
}

/// How the rosters in force stand in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No roster is held.
    None,
    /// Every roster is valid for longer than the warning period.
    Valid,
    /// The earliest roster ends within the warning period.
    Expiring(Timestamp),
    /// A roster ended; its entries admit no new connection once the grace period is over.
    Expired(Timestamp),
}

/// One roster in force, as `liaison roster show` and the status print it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RosterView {
    /// The authority's key.
    pub authority: String,
    /// The federation's name.
    pub federation: String,
    /// Its version.
    pub version: u64,
    /// When it was issued, RFC 3339.
    pub issued_at: String,
    /// Its end of validity, RFC 3339.
    pub valid_until: String,
    /// `valid`, `expiring`, `expired (grace)` or `expired`.
    pub state: String,
    /// Its entries.
    pub entries: Vec<RosterEntryView>,
    /// Its revocations.
    pub revocations: Vec<RevocationView>,
}

/// One roster entry, with how this node treats it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RosterEntryView {
    /// Node id.
    pub node_id: String,
    /// Roster name.
    pub name: String,
    /// Organisation.
    pub organisation: String,
    /// Country.
    pub country: String,
    /// Kind.
    pub kind: String,
    /// Addresses.
    pub addresses: Vec<String>,
    /// `admitted`, `refused here`, `rotated to ID`, `expired`, `revoked`.
    pub standing: String,
}

/// One revocation.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationView {
    /// Node id.
    pub node_id: String,
    /// From when on, RFC 3339.
    pub at: String,
    /// Why.
    pub reason: String,
}

impl Trust {
    /// A view trusting the authorities of `config`, holding no roster yet.
    pub fn new(config: &FederationSection) -> Result<Trust> {
        let authorities = config.authority_ids().map_err(Error::Invalid)?;
        let refused = config.refused_ids().map_err(Error::Invalid)?;
        Ok(Trust {
            view: Federation::new(authorities),
            refused: refused.into_iter().collect(),
            grace_ms: config.expiry_grace_ms,
            warn_before_ms: config.warn_before_ms,
        })
    }

    /// The protocol's view underneath.
    pub fn view(&self) -> &Federation {
        &self.view
    }

    /// Whether this node trusts any authority at all.
    pub fn enabled(&self) -> bool {
        !self.view.authorities().is_empty()
    }

    /// Takes a roster (see [`Federation::take_roster`]).
    pub fn take_roster(&mut self, bytes: &[u8]) -> Result<RosterUpdate, Rejection> {
        self.view.take_roster(bytes)
    }

    /// Takes a rotation statement (see [`Federation::take_rotation`]).
    pub fn take_rotation(&mut self, bytes: &[u8]) -> Result<RotationUpdate, Rejection> {
        self.view.take_rotation(bytes)
    }

    /// How `node` stands at `now`, with this node's grace period.
    pub fn admission(&self, node: &NodeId, now: Timestamp) -> Admission {
        self.view.admission(node, now, self.grace_ms)
    }

    /// Why `node` may not be a peer at all, pinned or not: revoked, rotated away from, or
    /// refused here. `None` if nothing stands against it.
    pub fn blocked(&self, node: &NodeId) -> Option<String> {
        if let Some(r) = self.view.revocation(node) {
            return Some(format!("revoked ({})", r.reason));
        }
        if let Some(r) = self.view.rotated_to(node) {
            return Some(format!("rotated to {}", r.new.short()));
        }
        if self.refused.contains(node) {
            return Some("refused here".into());
        }
        None
    }

    /// Every roster entry that could be a peer (this node excluded): the entries of the
    /// rosters in force and the keys they rotated to, with their entry. Entries stand for
    /// their node's newest key.
    pub fn entries(&self, me: &NodeId) -> BTreeMap<NodeId, Entry> {
        let mut out = BTreeMap::new();
        for roster in self.view.rosters() {
            for e in &roster.entries {
                let node = self.view.newest(&e.node);
                if node != *me && !out.contains_key(&node) {
                    out.insert(node, e.clone());
                }
            }
        }
        out
    }

    /// Whether `node` is admitted through a roster at `now` (not revoked, rotated away,
    /// refused here, or only in rosters expired past the grace period).
    pub fn admitted(&self, node: &NodeId, now: Timestamp) -> bool {
        self.blocked(node).is_none()
            && matches!(self.admission(node, now), Admission::Member { .. })
    }

    /// The roster name of `node`'s newest key, if a roster in force names it.
    pub fn name_of(&self, node: &NodeId) -> Option<String> {
        match self.view.admission(node, Timestamp(0), u64::MAX) {
            Admission::Member { entry, .. } => Some(entry.name),
            _ => None,
        }
    }

    /// The node a roster name stands for. `Err` says why a name is ambiguous.
    pub fn resolve_name(&self, name: &str) -> Result<Option<NodeId>> {
        self.view.resolve_name(name).map_err(|nodes| {
            Error::Invalid(format!(
                "rosters give the name {name:?} to {} different nodes; give the node id",
                nodes.len()
            ))
        })
    }

    /// The newest exchange key `node` announced in a rotation statement.
    pub fn exchange_key(&self, node: &NodeId) -> Option<ExchangeKey> {
        self.view.exchange_key(node)
    }

    /// What the sync engine must enforce.
    pub fn policy(&self) -> Policy {
        Policy {
            names: self.view.names(),
            revoked: self
                .view
                .revocations()
                .iter()
                .map(|(n, r)| (*n, r.at))
                .collect(),
            rotated: self
                .view
                .identity_rotations()
                .map(|r| (r.new, r.old))
                .collect(),
        }
    }

    /// How the rosters in force stand at `now`.
    pub fn expiry(&self, now: Timestamp) -> Expiry {
        let Some(until) = self.view.valid_until() else {
            return Expiry::None;
        };
        if now > until {
            Expiry::Expired(until)
        } else if now.plus_millis(self.warn_before_ms) >= until {
            Expiry::Expiring(until)
        } else {
            Expiry::Valid
        }
    }

    /// The rosters in force, for people.
    pub fn views(&self, me: &NodeId, now: Timestamp) -> Vec<RosterView> {
        self.view
            .rosters()
            .map(|r| {
                let state = if now <= r.valid_until {
                    if now.plus_millis(self.warn_before_ms) >= r.valid_until {
                        "expiring"
                    } else {
                        "valid"
                    }
                } else if now <= r.valid_until.plus_millis(self.grace_ms) {
                    "expired (grace)"
                } else {
                    "expired"
                };
                RosterView {
                    authority: r.authority.to_string(),
                    federation: r.federation.clone(),
                    version: r.version,
                    issued_at: crate::views::rfc3339(r.issued_at.0),
                    valid_until: crate::views::rfc3339(r.valid_until.0),
                    state: state.into(),
                    entries: r
                        .entries
                        .iter()
                        .map(|e| RosterEntryView {
                            node_id: e.node.to_string(),
                            name: e.name.clone(),
                            organisation: e.organisation.clone(),
                            country: e.country.clone(),
                            kind: e.kind.to_string(),
                            addresses: e.addresses.clone(),
                            standing: self.standing(&e.node, me, now),
                        })
                        .collect(),
                    revocations: r
                        .revocations
                        .iter()
                        .map(|x| RevocationView {
                            node_id: x.node.to_string(),
                            at: crate::views::rfc3339(x.at.0),
                            reason: x.reason.clone(),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    fn standing(&self, node: &NodeId, me: &NodeId, now: Timestamp) -> String {
        if node == me {
            return "this node".into();
        }
        if let Some(why) = self.blocked(node) {
            return why;
        }
        match self.admission(node, now) {
            Admission::Member { .. } => "admitted".into(),
            Admission::Expired { .. } => "expired".into(),
            Admission::Revoked(_) => "revoked".into(),
            Admission::Rotated { new } => format!("rotated to {}", new.short()),
            Admission::Unknown => "unknown".into(),
        }
    }
}

/// The kind of a roster entry as people write it (`customs`, `police`, `academia`, `rilo`).
pub fn parse_kind(text: &str) -> Result<Kind> {
    text.parse::<Kind>()
        .map_err(|e| Error::Invalid(e.to_string()))
}
