//! Federation rosters, revocations and key rotation statements.
//!
//! A **federation authority** (the WCO secretariat, a RILO for a regional federation) holds an
//! [`AuthorityKey`]. It signs a [`Roster`]: a numbered document listing the nodes it admits —
//! each with a unique name, organisation, country, kind and addresses — and the nodes it
//! revoked, with when and why. A node configured with the authority's [`AuthorityId`] accepts
//! the roster's members as peers without pinning each one, refuses revoked nodes, and resolves
//! names only against rosters and its own pins.
//!
//! A node moves to new keys with a [`Rotation`] statement signed by its old identity key (and
//! by the new one, proving it holds it); the next roster confirms it.
//!
//! [`Federation`] is the state a node keeps: the newest roster of each authority it trusts,
//! every revocation it has seen (revocations are never forgotten), and the rotation statements
//! it has learned. It is pure: time is an argument, and it never touches the network.
//!
//! ```text
//! authority key ──sign──▶ SignedRoster ──▶ Federation::take_roster ──▶ members, names, revoked
//! old key + new key ──sign──▶ SignedRotation ──▶ Federation::take_rotation ──▶ old → new
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::codec::{self, MAX_ROSTER_LEN, MAX_ROTATION_LEN};
use crate::error::{ParseError, Rejection, UsageError};
use crate::fields;
use crate::identity::{ExchangeKey, IdentityKey, NodeId, Timestamp};

/// Domain-separation prefix of roster signatures.
pub const ROSTER_DOMAIN: &[u8] = b"liaison/v1/roster\0";
/// Domain-separation prefix of rotation statement signatures.
pub const ROTATION_DOMAIN: &[u8] = b"liaison/v1/rotation\0";
/// The most entries (and, separately, revocations) one roster lists.
pub const MAX_ROSTER_ENTRIES: usize = 4096;
/// The most addresses one roster entry lists.
pub const MAX_ENTRY_ADDRESSES: usize = 4;
/// The longest revocation reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;
/// The most rotation statements a node keeps.
pub const MAX_ROTATIONS: usize = 4096;
/// The most identity rotations followed from one node id to its newest key.
pub(crate) const MAX_ROTATION_CHAIN: usize = 64;

/// A federation authority's public key: a valid node id (WIRE.md §2.1) used only to sign
/// rosters. Text form: 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthorityId(NodeId);

impl AuthorityId {
    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The first 8 hex characters, for logs.
    pub fn short(&self) -> String {
        self.0.short()
    }
}

impl fmt::Display for AuthorityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for AuthorityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityId({})", self.short())
    }
}

impl FromStr for AuthorityId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<NodeId>()
            .map(AuthorityId)
            .map_err(|e| ParseError {
                what: "authority key",
                reason: e.reason,
            })
    }
}

/// An authority's signing key. Zeroized on drop; `Debug` shows only the public key.
pub struct AuthorityKey(IdentityKey);

impl AuthorityKey {
    /// Makes the key from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> AuthorityKey {
        AuthorityKey(IdentityKey::from_seed(seed))
    }

    /// Makes a fresh key from `rng`.
    pub fn generate<R: rand_core::CryptoRng + rand_core::RngCore>(rng: &mut R) -> AuthorityKey {
        AuthorityKey(IdentityKey::generate(rng))
    }

    /// The 32-byte secret seed, for storing the key. Handle with care.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        self.0.seed()
    }

    /// The public key nodes are configured with.
    pub fn id(&self) -> AuthorityId {
        AuthorityId(self.0.node_id())
    }

    /// Checks `roster` and signs it; returns the encoded [`SignedRoster`]. The roster must
    /// name this key as its authority.
    pub fn sign(&self, roster: &Roster) -> Result<Vec<u8>, UsageError> {
        if roster.authority != self.id() {
            return Err(UsageError::Invalid {
                field: "roster",
                reason: "it names another authority than the signing key".into(),
            });
        }
        roster.check().map_err(|reason| UsageError::Invalid {
            field: "roster",
            reason: reason.into(),
        })?;
        let body = codec::encode_bare(roster)?;
        let signature = self.0.sign(ROSTER_DOMAIN, &body);
        let bytes = codec::encode(&SignedRoster { body, signature })?;
        if bytes.len() > MAX_ROSTER_LEN {
            return Err(UsageError::Invalid {
                field: "roster",
                reason: format!("{} bytes exceed the limit of {MAX_ROSTER_LEN}", bytes.len()),
            });
        }
        Ok(bytes)
    }
}

impl fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AuthorityKey({})", self.id().short())
    }
}

/// What kind of organisation runs a node. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A customs administration.
    Customs,
    /// A police force.
    Police,
    /// A museum, university or other academia partner.
    Academia,
    /// A regional intelligence liaison office.
    Rilo,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Customs => "customs",
            Kind::Police => "police",
            Kind::Academia => "academia",
            Kind::Rilo => "rilo",
        })
    }
}

impl FromStr for Kind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "customs" => Ok(Kind::Customs),
            "police" => Ok(Kind::Police),
            "academia" => Ok(Kind::Academia),
            "rilo" => Ok(Kind::Rilo),
            _ => Err(ParseError {
                what: "kind",
                reason: "expected customs, police, academia or rilo",
            }),
        }
    }
}

/// One admitted node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The node.
    pub node: NodeId,
    /// Its name, unique in the roster (a node name, WIRE.md §2.3).
    pub name: String,
    /// The organisation that runs it (printable text, 1 to 128 bytes).
    pub organisation: String,
    /// Its country (two ASCII capital letters).
    pub country: String,
    /// What kind of organisation it is.
    pub kind: Kind,
    /// Where it can be dialled (at most [`MAX_ENTRY_ADDRESSES`] addresses, WIRE.md §2.3).
    pub addresses: Vec<String>,
}

/// One revoked node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The node.
    pub node: NodeId,
    /// From when on what it signs is refused.
    pub at: Timestamp,
    /// Why (printable text, at most [`MAX_REASON_LEN`] bytes).
    pub reason: String,
}

/// The signed body of a roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    /// The authority that signs it.
    pub authority: AuthorityId,
    /// The federation's name (printable text, 1 to 128 bytes).
    pub federation: String,
    /// Strictly increasing with every roster the authority issues, from 1.
    pub version: u64,
    /// When the authority issued it.
    pub issued_at: Timestamp,
    /// After this time the roster admits no new connections (see WIRE.md §12).
    pub valid_until: Timestamp,
    /// The admitted nodes, strictly ascending by node id, names unique.
    pub entries: Vec<Entry>,
    /// The revoked nodes, strictly ascending by node id, none of them also an entry.
    pub revocations: Vec<Revocation>,
}

/// A roster with the authority's signature, kept as the exact bytes signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRoster {
    /// The [`Roster`], encoded without the version byte.
    #[serde(with = "crate::codec::bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature by `authority` over [`ROSTER_DOMAIN`] `||` body.
    #[serde(with = "crate::codec::bytes64")]
    pub signature: [u8; 64],
}

impl Roster {
    /// Checks every rule of WIRE.md §12.1 that needs nothing but the roster.
    pub fn check(&self) -> Result<(), &'static str> {
        fields::check_printable(&self.federation, 1, fields::MAX_TEXT_LEN)
            .map_err(|_| "the federation name is not 1 to 128 bytes of printable text")?;
        if self.version == 0 {
            return Err("versions start at 1");
        }
        if self.valid_until < self.issued_at {
            return Err("valid_until is before issued_at");
        }
        if self.entries.len() > MAX_ROSTER_ENTRIES || self.revocations.len() > MAX_ROSTER_ENTRIES {
            return Err("more than 4096 entries or revocations");
        }
        if self.entries.windows(2).any(|w| w[0].node >= w[1].node) {
            return Err("entries are not strictly ascending by node id");
        }
        if self.revocations.windows(2).any(|w| w[0].node >= w[1].node) {
            return Err("revocations are not strictly ascending by node id");
        }
        let mut names = BTreeSet::new();
        for e in &self.entries {
            fields::check_node_name(&e.name).map_err(|e| e.0)?;
            if !names.insert(e.name.as_str()) {
                return Err("two entries share a name");
            }
            fields::check_printable(&e.organisation, 1, fields::MAX_TEXT_LEN)
                .map_err(|_| "an organisation is not 1 to 128 bytes of printable text")?;
            fields::check_country(&e.country).map_err(|e| e.0)?;
            if e.addresses.len() > MAX_ENTRY_ADDRESSES {
                return Err("an entry lists more than 4 addresses");
            }
            for a in &e.addresses {
                fields::check_address(a).map_err(|e| e.0)?;
            }
        }
        for r in &self.revocations {
            fields::check_printable(&r.reason, 0, MAX_REASON_LEN)
                .map_err(|_| "a revocation reason is not at most 256 bytes of printable text")?;
            if self.entry(&r.node).is_some() {
                return Err("a node is both an entry and revoked");
            }
        }
        Ok(())
    }

    /// The entry of `node`.
    pub fn entry(&self, node: &NodeId) -> Option<&Entry> {
        self.entries
            .binary_search_by(|e| e.node.cmp(node))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// The entry named `name`.
    pub fn named(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The revocation of `node`.
    pub fn revocation(&self, node: &NodeId) -> Option<&Revocation> {
        self.revocations
            .binary_search_by(|r| r.node.cmp(node))
            .ok()
            .and_then(|i| self.revocations.get(i))
    }
}

impl SignedRoster {
    /// Decodes a roster and checks it completely: limits and encoding, that its authority is
    /// one of `authorities` ([`Rejection::UnknownAuthority`] otherwise), the signature
    /// (WIRE.md §2.2), and the rules of [`Roster::check`]. Time is not checked: whether a
    /// roster is still valid is the caller's decision (see [`Federation::admission`]).
    pub fn verify(bytes: &[u8], authorities: &[AuthorityId]) -> Result<Roster, Rejection> {
        let signed: SignedRoster = codec::decode(bytes, MAX_ROSTER_LEN)?;
        let roster: Roster = codec::decode_bare(&signed.body, MAX_ROSTER_LEN)?;
        if !authorities.contains(&roster.authority) {
            return Err(Rejection::UnknownAuthority(roster.authority));
        }
        roster
            .authority
            .0
            .verify(ROSTER_DOMAIN, &signed.body, &signed.signature, "roster")?;
        roster.check().map_err(Rejection::InvalidRoster)?;
        Ok(roster)
    }
}

/// A node's statement that it moves from the key `old` to the key `new` (an identity
/// rotation), or, when `new == old`, to a new exchange key only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The key the node had.
    pub old: NodeId,
    /// The key it has from now on (equal to `old` for an exchange key rotation).
    pub new: NodeId,
    /// Its exchange key from now on.
    pub exchange_key: ExchangeKey,
    /// When it rotated.
    pub at: Timestamp,
}

/// A rotation statement with both signatures, kept as the exact bytes signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRotation {
    /// The [`Rotation`], encoded without the version byte.
    #[serde(with = "crate::codec::bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature by `old` over [`ROTATION_DOMAIN`] `||` body.
    #[serde(with = "crate::codec::bytes64")]
    pub old_signature: [u8; 64],
    /// ed25519 signature by `new` over the same bytes: proof that the node holds the new key.
    #[serde(with = "crate::codec::bytes64")]
    pub new_signature: [u8; 64],
}

impl Rotation {
    /// Signs the statement with the old key and the new one; returns the encoded
    /// [`SignedRotation`].
    pub fn sign(&self, old: &IdentityKey, new: &IdentityKey) -> Result<Vec<u8>, UsageError> {
        if old.node_id() != self.old || new.node_id() != self.new {
            return Err(UsageError::Invalid {
                field: "rotation",
                reason: "the signing keys are not the statement's old and new keys".into(),
            });
        }
        let body = codec::encode_bare(self)?;
        let old_signature = old.sign(ROTATION_DOMAIN, &body);
        let new_signature = new.sign(ROTATION_DOMAIN, &body);
        codec::encode(&SignedRotation {
            body,
            old_signature,
            new_signature,
        })
    }

    /// Decodes a rotation statement and checks both signatures.
    pub fn verify(bytes: &[u8]) -> Result<Rotation, Rejection> {
        let signed: SignedRotation = codec::decode(bytes, MAX_ROTATION_LEN)?;
        let rotation: Rotation = codec::decode_bare(&signed.body, MAX_ROTATION_LEN)?;
        rotation.old.verify(
            ROTATION_DOMAIN,
            &signed.body,
            &signed.old_signature,
            "rotation",
        )?;
        rotation.new.verify(
            ROTATION_DOMAIN,
            &signed.body,
            &signed.new_signature,
            "rotation",
        )?;
        Ok(rotation)
    }

    /// Whether this moves the identity key (and not only the exchange key).
    pub fn is_identity(&self) -> bool {
        self.old != self.new
    }
}

/// What [`Federation::take_roster`] did with a valid roster.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RosterUpdate {
    /// A newer roster, now in force for its authority.
    New {
        /// Its version.
        version: u64,
        /// The version it replaced, if any.
        previous: Option<u64>,
        /// Nodes revoked by it that were not revoked before.
        revoked: Vec<NodeId>,
        /// Entries it has that the roster it replaced did not.
        joined: Vec<NodeId>,
        /// Entries the roster it replaced had that it does not.
        left: Vec<NodeId>,
    },
    /// The roster in force, again (the same bytes).
    Known,
    /// An older roster than the one in force: refused, and no fault of the sender's (it may
    /// not have received the newer one yet).
    Older {
        /// The version offered.
        offered: u64,
        /// The version in force.
        held: u64,
    },
}

/// What [`Federation::take_rotation`] did with a valid statement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationUpdate {
    /// New: follow it.
    New(Rotation),
    /// Already known (or superseded by a newer exchange key rotation).
    Known,
}

/// How a node stands with the federation, as [`Federation::admission`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// An entry of a roster in force (directly or through a rotation statement of an entry).
    Member {
        /// The authority whose roster lists it.
        authority: AuthorityId,
        /// Its entry (for a rotated node, the entry of the key it rotated from).
        entry: Entry,
    },
    /// Revoked by an authority: refused in every way from `at` on.
    Revoked(Revocation),
    /// Its identity key was replaced by a rotation statement: it is now `new`.
    Rotated {
        /// The key it rotated to.
        new: NodeId,
    },
    /// Listed only by rosters that expired more than the grace period ago.
    Expired {
        /// The latest end of validity among them.
        valid_until: Timestamp,
    },
    /// Not in any roster.
    Unknown,
}

#[derive(Debug, Clone)]
struct Held {
    roster: Roster,
    bytes: Vec<u8>,
}

/// A node's view of its federations: the newest valid roster of each trusted authority, every
/// revocation seen, and the rotation statements learned. See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Federation {
    authorities: Vec<AuthorityId>,
    rosters: BTreeMap<AuthorityId, Held>,
    /// Every revocation seen in any roster taken, kept when a later roster drops it.
    revoked: BTreeMap<NodeId, Revocation>,
    /// Identity rotations, by the key rotated from.
    rotations: BTreeMap<NodeId, (Rotation, Vec<u8>)>,
    /// The newest exchange key rotation of each node.
    exchange: BTreeMap<NodeId, (Rotation, Vec<u8>)>,
}

impl Federation {
    /// A federation view trusting these authorities, holding nothing yet.
    pub fn new(authorities: Vec<AuthorityId>) -> Federation {
        Federation {
            authorities,
            ..Federation::default()
        }
    }

    /// The trusted authorities.
    pub fn authorities(&self) -> &[AuthorityId] {
        &self.authorities
    }

    /// Takes a roster (from a file, the store or a peer). Refuses rosters of untrusted
    /// authorities, bad signatures and broken rules ([`SignedRoster::verify`]), and a roster
    /// with the version in force but other bytes ([`Rejection::ConflictingRoster`]: the
    /// authority signed two different rosters under one version). An older version is
    /// reported, not taken.
    pub fn take_roster(&mut self, bytes: &[u8]) -> Result<RosterUpdate, Rejection> {
        let roster = SignedRoster::verify(bytes, &self.authorities)?;
        let authority = roster.authority;
        let held = self.rosters.get(&authority);
        if let Some(held) = held {
            if roster.version < held.roster.version {
                return Ok(RosterUpdate::Older {
                    offered: roster.version,
                    held: held.roster.version,
                });
            }
            if roster.version == held.roster.version {
                return if held.bytes == bytes {
                    Ok(RosterUpdate::Known)
                } else {
                    Err(Rejection::ConflictingRoster {
                        authority,
                        version: roster.version,
                    })
                };
            }
        }
        let previous = held.map(|h| h.roster.version);
        let before: BTreeSet<NodeId> = held
            .map(|h| h.roster.entries.iter().map(|e| e.node).collect())
            .unwrap_or_default();
        let after: BTreeSet<NodeId> = roster.entries.iter().map(|e| e.node).collect();
        let mut revoked = Vec::new();
        for r in &roster.revocations {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.revoked.entry(r.node) {
                revoked.push(r.node);
                slot.insert(r.clone());
            }
        }
        let update = RosterUpdate::New {
            version: roster.version,
            previous,
            revoked,
            joined: after.difference(&before).copied().collect(),
            left: before.difference(&after).copied().collect(),
        };
        self.rosters.insert(
            authority,
            Held {
                roster,
                bytes: bytes.to_vec(),
            },
        );
        Ok(update)
    }

    /// Takes a rotation statement. Refuses one whose old key is revoked, and a second identity
    /// rotation of the same key to another new key ([`Rejection::ConflictingRotation`]: only a
    /// holder of a compromised key would sign two). An exchange key rotation replaces an older
    /// one of the same node.
    pub fn take_rotation(&mut self, bytes: &[u8]) -> Result<RotationUpdate, Rejection> {
        let rotation = Rotation::verify(bytes)?;
        if let Some(r) = self.revoked.get(&rotation.old) {
            if rotation.at >= r.at {
                return Err(Rejection::Revoked(rotation.old));
            }
        }
        if rotation.is_identity() {
            if let Some((known, _)) = self.rotations.get(&rotation.old) {
                return if *known == rotation {
                    Ok(RotationUpdate::Known)
                } else {
                    Err(Rejection::ConflictingRotation(rotation.old))
                };
            }
            if self.rotations.len() >= MAX_ROTATIONS {
                return Err(Rejection::InvalidRotation("too many rotations held"));
            }
            self.rotations
                .insert(rotation.old, (rotation.clone(), bytes.to_vec()));
        } else {
            if let Some((known, _)) = self.exchange.get(&rotation.old) {
                if known.at >= rotation.at {
                    return Ok(RotationUpdate::Known);
                }
            } else if self.exchange.len() >= MAX_ROTATIONS {
                return Err(Rejection::InvalidRotation("too many rotations held"));
            }
            self.exchange
                .insert(rotation.old, (rotation.clone(), bytes.to_vec()));
        }
        Ok(RotationUpdate::New(rotation))
    }

    /// The encoded rosters in force, one per authority, to share with peers.
    pub fn roster_bytes(&self) -> impl Iterator<Item = &[u8]> {
        self.rosters.values().map(|h| h.bytes.as_slice())
    }

    /// The encoded rotation statements held, to share with peers.
    pub fn rotation_bytes(&self) -> impl Iterator<Item = &[u8]> {
        self.rotations
            .values()
            .chain(self.exchange.values())
            .map(|(_, b)| b.as_slice())
    }

    /// The rosters in force.
    pub fn rosters(&self) -> impl Iterator<Item = &Roster> {
        self.rosters.values().map(|h| &h.roster)
    }

    /// The revocation of `node`, if any authority revoked it.
    pub fn revocation(&self, node: &NodeId) -> Option<&Revocation> {
        self.revoked.get(node)
    }

    /// Every revocation seen, by node.
    pub fn revocations(&self) -> &BTreeMap<NodeId, Revocation> {
        &self.revoked
    }

    /// Every identity rotation held, each from the key rotated from to the key rotated to.
    pub fn identity_rotations(&self) -> impl Iterator<Item = &Rotation> {
        self.rotations.values().map(|(r, _)| r)
    }

    /// The key `node` rotated to, if it did (one step).
    pub fn rotated_to(&self, node: &NodeId) -> Option<&Rotation> {
        self.rotations.get(node).map(|(r, _)| r)
    }

    /// The newest key of `node`: its identity rotations followed to the end.
    pub fn newest(&self, node: &NodeId) -> NodeId {
        let mut current = *node;
        for _ in 0..MAX_ROTATION_CHAIN {
            match self.rotations.get(&current) {
                Some((r, _)) => current = r.new,
                None => break,
            }
        }
        current
    }

    /// The newest exchange key `node` announced by a rotation statement, if any.
    pub fn exchange_key(&self, node: &NodeId) -> Option<ExchangeKey> {
        let from_identity = self
            .rotations
            .values()
            .filter(|(r, _)| r.new == *node)
            .map(|(r, _)| r)
            .max_by_key(|r| r.at);
        let own = self.exchange.get(node).map(|(r, _)| r);
        match (from_identity, own) {
            (Some(a), Some(b)) => Some(if b.at >= a.at { b } else { a }.exchange_key),
            (a, b) => a.or(b).map(|r| r.exchange_key),
        }
    }

    /// The roster entry of `node` and its authority, ignoring time: directly, or as the new
    /// key of an entry that rotated to it.
    fn entry(&self, node: &NodeId) -> Option<(AuthorityId, &Roster, &Entry)> {
        let direct = self
            .rosters
            .iter()
            .find_map(|(a, h)| h.roster.entry(node).map(|e| (*a, &h.roster, e)));
        if direct.is_some() {
            return direct;
        }
        // The key an entry rotated to inherits the entry until the next roster names it.
        let mut from = self
            .rotations
            .values()
            .find(|(r, _)| r.new == *node)
            .map(|(r, _)| r.old);
        for _ in 0..MAX_ROTATION_CHAIN {
            let old = from?;
            if let Some(found) = self
                .rosters
                .iter()
                .find_map(|(a, h)| h.roster.entry(&old).map(|e| (*a, &h.roster, e)))
            {
                return Some(found);
            }
            from = self
                .rotations
                .values()
                .find(|(r, _)| r.new == old)
                .map(|(r, _)| r.old);
        }
        None
    }

    /// How `node` stands at `now`, with `grace_ms` of tolerance past a roster's `valid_until`.
    /// Revocation wins over everything: a revoked node is refused even where an operator
    /// pinned it.
    pub fn admission(&self, node: &NodeId, now: Timestamp, grace_ms: u64) -> Admission {
        if let Some(r) = self.revoked.get(node) {
            return Admission::Revoked(r.clone());
        }
        if let Some((r, _)) = self.rotations.get(node) {
            return Admission::Rotated { new: r.new };
        }
        let Some((authority, roster, entry)) = self.entry(node) else {
            return Admission::Unknown;
        };
        // Another roster in force may list it too; the latest validity counts.
        let valid_until = self
            .rosters
            .values()
            .filter(|h| h.roster.entry(&entry.node).is_some())
            .map(|h| h.roster.valid_until)
            .max()
            .unwrap_or(roster.valid_until);
        if now > valid_until.plus_millis(grace_ms) {
            return Admission::Expired { valid_until };
        }
        Admission::Member {
            authority,
            entry: entry.clone(),
        }
    }

    /// The node that roster name `name` stands for (its newest key), if exactly one node
    /// answers to it across the rosters in force. `Err` lists the nodes when several do.
    pub fn resolve_name(&self, name: &str) -> Result<Option<NodeId>, Vec<NodeId>> {
        let mut found: Vec<NodeId> = self
            .rosters
            .values()
            .filter_map(|h| h.roster.named(name))
            .map(|e| self.newest(&e.node))
            .collect();
        found.sort_unstable();
        found.dedup();
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            _ => Err(found),
        }
    }

    /// Every roster name with the node it stands for (newest key), for refusing descriptors
    /// that claim a name the rosters give another node. A name that rosters give to several
    /// nodes maps to none of them and is left out.
    pub fn names(&self) -> BTreeMap<String, NodeId> {
        let mut out: BTreeMap<String, Option<NodeId>> = BTreeMap::new();
        for h in self.rosters.values() {
            for e in &h.roster.entries {
                let node = self.newest(&e.node);
                out.entry(e.name.clone())
                    .and_modify(|n| {
                        if *n != Some(node) {
                            *n = None;
                        }
                    })
                    .or_insert(Some(node));
            }
        }
        out.into_iter()
            .filter_map(|(name, node)| node.map(|n| (name, n)))
            .collect()
    }

    /// The earliest `valid_until` among the rosters in force.
    pub fn valid_until(&self) -> Option<Timestamp> {
        self.rosters.values().map(|h| h.roster.valid_until).min()
    }
}
