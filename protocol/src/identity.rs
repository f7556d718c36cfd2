//! Node identities: the ed25519 identity key, the node id (its public key), the X25519 key that
//! receives group keys, and the signed node descriptor.
//!
//! Secrets are zeroized on drop and their `Debug` prints only the public half, in short form.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{OnceLock, PoisonError, RwLock};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hpke::{Deserializable, Kem as _, Serializable};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::codec::{self, MAX_DESCRIPTOR_LEN};
use crate::error::{DecodeError, ParseError, Rejection, UsageError};

/// The HPKE KEM used to wrap epoch keys.
pub(crate) type Kem = hpke::kem::X25519HkdfSha256;

/// Milliseconds since the Unix epoch, as carried on the wire. Time is always an input.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// This time plus `ms` milliseconds, saturating.
    pub fn plus_millis(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

/// Writes `bytes` as lowercase hex.
fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

/// Parses exactly `N` bytes of hex.
pub(crate) fn parse_hex<const N: usize>(
    s: &str,
    what: &'static str,
) -> Result<[u8; N], ParseError> {
    let mut out = [0u8; N];
    if s.len() != N * 2 {
        return Err(ParseError {
            what,
            reason: "wrong length",
        });
    }
    hex::decode_to_slice(s, &mut out).map_err(|_| ParseError {
        what,
        reason: "not hexadecimal",
    })?;
    Ok(out)
}

/// Defines a fixed-size identifier with hex `Display`/`FromStr` and a short form for logs.
macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        pub struct $name(pub(crate) [u8; $len]);

        impl $name {
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
            /// The first 8 hex characters, for logs.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl From<[u8; $len]> for $name {
            fn from(bytes: [u8; $len]) -> Self {
                $name(bytes)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::identity::write_hex_pub(f, &self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::error::ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $crate::identity::parse_hex::<$len>(s, $what).map($name)
            }
        }
    };
}
pub(crate) use hex_id;

#[doc(hidden)]
pub fn write_hex_pub(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    write_hex(f, bytes)
}

/// A node's id: its ed25519 public identity key, always the canonical encoding of a curve
/// point outside the small-order subgroup (WIRE.md §2.1).
///
/// Text form: 64 lowercase hex characters; [`NodeId::short`] gives the first 8 for logs.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct NodeId([u8; 32]);

impl NodeId {
    /// Checks that `bytes` is a valid node id: the canonical encoding (RFC 8032 §5.1.2) of a
    /// point on edwards25519 that is not of small order.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<NodeId, DecodeError> {
        cached_verifying_key(&bytes).map_err(|_| DecodeError::InvalidField {
            field: "node id",
            reason: "not an ed25519 public key",
        })?;
        Ok(NodeId(bytes))
    }

    /// The raw public key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 hex characters, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// The ed25519 verifying key.
    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, Rejection> {
        cached_verifying_key(&self.0).map_err(|_| Rejection::BadSignature("node id"))
    }

    /// Verifies `signature` by this key over `domain || message`, strictly (WIRE.md §2.2): `S`
    /// must be below the group order, `R` must not be of small order, and the encoding of
    /// `[S]B - [k]A` must equal `R` byte for byte.
    pub fn verify(
        &self,
        domain: &[u8],
        message: &[u8],
        signature: &[u8; 64],
        what: &'static str,
    ) -> Result<(), Rejection> {
        let key = self.verifying_key()?;
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        let mut input = Vec::with_capacity(domain.len() + message.len());
        input.extend_from_slice(domain);
        input.extend_from_slice(message);
        key.verify_strict(&input, &sig)
            .map_err(|_| Rejection::BadSignature(what))
    }
}

/// Most public keys kept decompressed by [`cached_verifying_key`].
const MAX_CACHED_KEYS: usize = 4096;

/// `VerifyingKey::from_bytes`, remembered: decompressing the curve point costs about a fifth of
/// a signature check, and a node decodes and checks the same few authors' keys over and over
/// (every header and receipt names one). Process-wide, bounded by [`MAX_CACHED_KEYS`] and
/// emptied when full, so keys from hostile input cost memory only up to that bound. Only valid
/// keys are kept; an invalid one is decompressed (and refused) every time.
fn cached_verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey, ed25519_dalek::SignatureError> {
    static CACHE: OnceLock<RwLock<HashMap<[u8; 32], VerifyingKey>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| RwLock::new(HashMap::new()));
    if let Some(key) = cache
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(bytes)
    {
        return Ok(*key);
    }
    let key = VerifyingKey::from_bytes(bytes)?;
    // Only canonical encodings of points outside the small-order subgroup (WIRE.md §2.1).
    if key.is_weak() || key.to_edwards().compress().as_bytes() != bytes {
        return Err(ed25519_dalek::SignatureError::new());
    }
    let mut keys = cache.write().unwrap_or_else(PoisonError::into_inner);
    if keys.len() >= MAX_CACHED_KEYS {
        keys.clear();
    }
    keys.insert(*bytes, key);
    Ok(key)
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = <[u8; 32]>::deserialize(d)?;
        NodeId::from_bytes(bytes).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

impl FromStr for NodeId {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = parse_hex::<32>(s, "node id")?;
        NodeId::from_bytes(bytes).map_err(|_| ParseError {
            what: "node id",
            reason: "not an ed25519 public key",
        })
    }
}

/// A node id as its 32 bytes, not checked to be a curve point: for ids that a receiver only
/// compares with the ids it knows and never verifies a signature with (the authors in a sync
/// request's vector). Decoding a [`NodeId`] decompresses a curve point (about a fifth of a
/// signature check); a request can name tens of thousands of authors.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeRef(pub [u8; 32]);

impl NodeRef {
    /// Whether this names `node`.
    pub fn is(&self, node: &NodeId) -> bool {
        self.0 == node.0
    }
}

impl From<NodeId> for NodeRef {
    fn from(node: NodeId) -> Self {
        NodeRef(node.0)
    }
}

impl From<&NodeId> for NodeRef {
    fn from(node: &NodeId) -> Self {
        NodeRef(node.0)
    }
}

impl fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeRef({})", hex::encode(&self.0[..4]))
    }
}

/// A node's ed25519 identity key. Zeroized on drop; `Debug` shows only the node id.
pub struct IdentityKey(SigningKey);

impl IdentityKey {
    /// Makes the key from a 32-byte secret seed (from a CSPRNG, or a test's fixed seed).
    pub fn from_seed(seed: &[u8; 32]) -> IdentityKey {
        IdentityKey(SigningKey::from_bytes(seed))
    }

    /// Makes a fresh key from `rng`.
    pub fn generate<R: rand_core::CryptoRng + rand_core::RngCore>(rng: &mut R) -> IdentityKey {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        IdentityKey::from_seed(&seed)
    }

    /// The 32-byte secret seed, for storing the key. Handle with care.
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        NodeId(self.0.verifying_key().to_bytes())
    }

    /// The underlying ed25519 key, for the TLS layer.
    pub fn signing_key(&self) -> &SigningKey {
        &self.0
    }

    /// Signs `domain || message`.
    pub(crate) fn sign(&self, domain: &[u8], message: &[u8]) -> [u8; 64] {
        let mut input = Vec::with_capacity(domain.len() + message.len());
        input.extend_from_slice(domain);
        input.extend_from_slice(message);
        self.0.sign(&input).to_bytes()
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.node_id().short())
    }
}

/// A node's X25519 public key, to which epoch keys are wrapped.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExchangeKey(pub(crate) [u8; 32]);

impl ExchangeKey {
    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub(crate) fn hpke(&self) -> Result<<Kem as hpke::Kem>::PublicKey, UsageError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0)
            .map_err(|e| UsageError::Wrap(e.to_string()))
    }
}

impl From<[u8; 32]> for ExchangeKey {
    fn from(bytes: [u8; 32]) -> Self {
        ExchangeKey(bytes)
    }
}

impl fmt::Debug for ExchangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExchangeKey({})", hex::encode(&self.0[..4]))
    }
}

/// A node's X25519 secret key. Zeroized on drop; `Debug` shows only the public key.
pub struct ExchangeSecret {
    secret: Zeroizing<[u8; 32]>,
    public: ExchangeKey,
}

impl ExchangeSecret {
    /// Derives the key pair deterministically from a 32-byte seed (RFC 9180 DeriveKeyPair).
    pub fn from_seed(seed: &[u8; 32]) -> ExchangeSecret {
        let (sk, pk) = Kem::derive_keypair(seed);
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&sk.to_bytes());
        let mut public = [0u8; 32];
        public.copy_from_slice(&pk.to_bytes());
        ExchangeSecret {
            secret,
            public: ExchangeKey(public),
        }
    }

    /// Makes a fresh key from `rng`.
    pub fn generate<R: rand_core::CryptoRng + rand_core::RngCore>(rng: &mut R) -> ExchangeSecret {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        ExchangeSecret::from_seed(&seed)
    }

    /// Restores the key from the secret scalar bytes written by [`ExchangeSecret::to_bytes`].
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<ExchangeSecret, DecodeError> {
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes).map_err(|_| {
            DecodeError::InvalidField {
                field: "exchange secret",
                reason: "not an X25519 secret key",
            }
        })?;
        let pk = <Kem as hpke::Kem>::sk_to_pk(&sk);
        let mut public = [0u8; 32];
        public.copy_from_slice(&pk.to_bytes());
        Ok(ExchangeSecret {
            secret: Zeroizing::new(*bytes),
            public: ExchangeKey(public),
        })
    }

    /// The secret scalar bytes, for storing the key. Handle with care.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        self.secret.clone()
    }

    /// The public half.
    pub fn public(&self) -> ExchangeKey {
        self.public
    }

    pub(crate) fn hpke(&self) -> Result<<Kem as hpke::Kem>::PrivateKey, Rejection> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(self.secret.as_ref())
            .map_err(|_| Rejection::DecryptFailed)
    }
}

impl fmt::Debug for ExchangeSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExchangeSecret(public {:?})", self.public)
    }
}

/// The longest node name, in bytes.
pub const MAX_NAME_LEN: usize = crate::fields::MAX_NODE_NAME_LEN;
/// The most addresses a descriptor lists.
pub const MAX_ADDRESSES: usize = 8;
/// The longest address, in bytes.
pub const MAX_ADDRESS_LEN: usize = crate::fields::MAX_ADDRESS_LEN;

/// What a node publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The node this describes.
    pub node: NodeId,
    /// A human-readable name (at most [`MAX_NAME_LEN`] bytes).
    pub name: String,
    /// Addresses the node listens on, as `HOST:PORT` text.
    pub addresses: Vec<String>,
    /// The X25519 key to wrap group keys to.
    pub exchange_key: ExchangeKey,
    /// Not valid before this time.
    pub valid_from: Timestamp,
    /// Not valid after this time.
    pub valid_until: Timestamp,
}

/// A descriptor with its signature, kept as the exact bytes that were signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDescriptor {
    /// The descriptor, encoded without the version byte.
    #[serde(with = "crate::codec::bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature by `node` over [`DESCRIPTOR_DOMAIN`] `||` body.
    #[serde(with = "crate::codec::bytes64")]
    pub signature: [u8; 64],
}

/// Domain-separation prefix of descriptor signatures.
pub const DESCRIPTOR_DOMAIN: &[u8] = b"liaison/v1/descriptor\0";

impl Descriptor {
    fn check(&self) -> Result<(), &'static str> {
        crate::fields::check_node_name(&self.name).map_err(|e| e.0)?;
        if self.addresses.len() > MAX_ADDRESSES {
            return Err("more than 8 addresses");
        }
        for address in &self.addresses {
            crate::fields::check_address(address).map_err(|e| e.0)?;
        }
        if self.valid_until < self.valid_from {
            return Err("validity ends before it starts");
        }
        Ok(())
    }

    /// Whether this descriptor replaces `held`, an earlier one of the same node: descriptors
    /// are ordered by `valid_from` (the node sets it to its clock each time it signs one), the
    /// later one wins, and of two with the same `valid_from` the one held stays. Without an
    /// order, two nodes holding different descriptors of a third would replace each other's
    /// copy back and forth for ever.
    pub fn supersedes(&self, held: &Descriptor) -> bool {
        self.valid_from > held.valid_from
    }

    /// Signs this descriptor with `key`, which must be the key of `self.node`.
    pub fn sign(&self, key: &IdentityKey) -> Result<SignedDescriptor, UsageError> {
        if key.node_id() != self.node {
            return Err(UsageError::Invalid {
                field: "descriptor",
                reason: "signing key is not the described node's".into(),
            });
        }
        self.check().map_err(|r| UsageError::Invalid {
            field: "descriptor",
            reason: r.into(),
        })?;
        let body = codec::encode_bare(self)?;
        let signature = key.sign(DESCRIPTOR_DOMAIN, &body);
        Ok(SignedDescriptor { body, signature })
    }
}

impl SignedDescriptor {
    /// Encodes for the wire.
    pub fn to_bytes(&self) -> Result<Vec<u8>, UsageError> {
        codec::encode(self)
    }

    /// Decodes, checks limits and verifies the signature; `now` checks validity, allowing the
    /// clocks of signer and receiver to differ by up to [`DEFAULT_MAX_CLOCK_SKEW_MS`].
    pub fn verify(bytes: &[u8], now: Timestamp) -> Result<Descriptor, Rejection> {
        Self::verify_within(bytes, now, DEFAULT_MAX_CLOCK_SKEW_MS)
    }

    /// [`SignedDescriptor::verify`] with the clock difference tolerated given: the descriptor
    /// is valid at `now` if `valid_from <= now + skew_ms` and `now <= valid_until + skew_ms`.
    /// A node signs its descriptor with `valid_from` set to its own clock when it starts, so a
    /// node whose clock runs a few seconds ahead must not look "not yet valid" to its peers.
    pub fn verify_within(
        bytes: &[u8],
        now: Timestamp,
        skew_ms: u64,
    ) -> Result<Descriptor, Rejection> {
        let signed: SignedDescriptor = codec::decode(bytes, MAX_DESCRIPTOR_LEN)?;
        let desc: Descriptor = codec::decode_bare(&signed.body, MAX_DESCRIPTOR_LEN)?;
        desc.node.verify(
            DESCRIPTOR_DOMAIN,
            &signed.body,
            &signed.signature,
            "descriptor",
        )?;
        desc.check().map_err(Rejection::InvalidDescriptor)?;
        if now.plus_millis(skew_ms) < desc.valid_from || now > desc.valid_until.plus_millis(skew_ms)
        {
            return Err(Rejection::InvalidDescriptor("not valid at this time"));
        }
        Ok(desc)
    }
}

/// How far apart two nodes' clocks may be before a time one of them signed counts as in the
/// future for the other: the default of the sync engine's `max_clock_skew_ms`, and what
/// [`SignedDescriptor::verify`] tolerates.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
