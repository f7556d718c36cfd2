//! The test vectors of WIRE.md, recomputed from their seeds.
//!
//! Every ```` ```hex NAME ```` block of WIRE.md is parsed at test time and compared with the
//! value computed here, so the document and the code cannot drift apart. Each value is
//! computed twice where it can be: once by the crate, once by a small independent encoder
//! written from WIRE.md (big-endian writer, BLAKE3, ChaCha20-Poly1305, ed25519, HPKE), and
//! the two must agree byte for byte.
//!
//! To print the blocks after a deliberate format change:
//! `LIAISON_PRINT_VECTORS=1 cargo test -p liaison-protocol --test vectors -- --nocapture`.

use std::collections::BTreeMap;

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hpke::{Deserializable, Kem as _, OpModeR, Serializable};
use liaison_protocol::attachment::{self, AttachmentId, AttachmentKey, AttachmentRef};
use liaison_protocol::codec;
use liaison_protocol::frame::{HeldRange, SyncRequest, SyncResponse, VectorEntry};
use liaison_protocol::group::{decode_control, Applied, Change, Cutoff, LocalKeys};
use liaison_protocol::identity::{Descriptor, SignedDescriptor};
use liaison_protocol::message::{self, Draft};
use liaison_protocol::receipt::Receipt;
use liaison_protocol::record;
use liaison_protocol::record::check::{self, Check, Checker};
use liaison_protocol::record::codes::MessageRef;
use liaison_protocol::record::{Feedback, Outcome, Record};
use liaison_protocol::roster::{
    Admission, AuthorityKey, Entry, Federation, Kind, Revocation, Roster, RosterUpdate, Rotation,
    RotationUpdate, SignedRoster,
};
use liaison_protocol::transfer::{self, ChunkRequest, ChunkResponse};
use liaison_protocol::{
    Content, ExchangeKey, ExchangeSecret, Frame, GroupId, GroupState, Handling, IdentityKey,
    NodeId, Payload, Recipient, Rejection, Role, Timestamp,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha512};

type Kem = hpke::kem::X25519HkdfSha256;

const WIRE_MD: &str = include_str!("../WIRE.md");

/// 2026-01-01T00:00:00Z in milliseconds.
const T0: u64 = 1_767_225_600_000;

/// The ```` ```hex NAME ```` blocks of WIRE.md, whitespace removed.
fn document_vectors() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut lines = WIRE_MD.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.trim().strip_prefix("```hex ") else {
            continue;
        };
        let mut hex_text = String::new();
        for body in lines.by_ref() {
            if body.trim() == "```" {
                break;
            }
            hex_text.extend(body.chars().filter(|c| !c.is_whitespace()));
        }
        let bytes = hex::decode(&hex_text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            out.insert(name.trim().to_owned(), bytes).is_none(),
            "{name} twice"
        );
    }
    out
}

/// A writer of the encoding described in WIRE.md, independent of bincode and serde.
#[derive(Default)]
struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn raw(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.u64(v.len() as u64).raw(v)
    }
    fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }
    fn done(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

fn sign(seed: &[u8; 32], domain: &[u8], body: &[u8]) -> [u8; 64] {
    let mut input = domain.to_vec();
    input.extend_from_slice(body);
    SigningKey::from_bytes(seed).sign(&input).to_bytes()
}

/// RNG bytes `[from, from + N)` of ChaCha20Rng seeded with `seed`.
fn rng_bytes<const N: usize>(seed: [u8; 32], from: usize) -> [u8; N] {
    let mut rng = ChaCha20Rng::from_seed(seed);
    let mut skip = vec![0u8; from];
    rng.fill_bytes(&mut skip);
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

const OWNER_ID_SEED: [u8; 32] = [0x01; 32];
const OWNER_X_SEED: [u8; 32] = [0x02; 32];
const MEMBER_ID_SEED: [u8; 32] = [0x03; 32];
const MEMBER_X_SEED: [u8; 32] = [0x04; 32];
const GENESIS_RNG_SEED: [u8; 32] = [0x05; 32];
const READER_ID_SEED: [u8; 32] = [0x06; 32];
const SEAL_RNG_SEED: [u8; 32] = [0x07; 32];
const READER_X_SEED: [u8; 32] = [0x08; 32];
const ADD_MEMBER_RNG_SEED: [u8; 32] = [0x09; 32];
const ADD_READER_RNG_SEED: [u8; 32] = [0x0a; 32];
const ROTATE_RNG_SEED: [u8; 32] = [0x0b; 32];
const REMOVE_RNG_SEED: [u8; 32] = [0x0c; 32];
const SEAL_RED_RNG_SEED: [u8; 32] = [0x0d; 32];
const SEAL_STRICT_RNG_SEED: [u8; 32] = [0x0e; 32];
const AUTHORITY_SEED: [u8; 32] = [0x10; 32];
const REVOKED_ID_SEED: [u8; 32] = [0x11; 32];
const NEW_MEMBER_ID_SEED: [u8; 32] = [0x12; 32];
const NEW_MEMBER_X_SEED: [u8; 32] = [0x13; 32];
const OWNER_NEW_X_SEED: [u8; 32] = [0x14; 32];
const REKEY_MEMBER_RNG_SEED: [u8; 32] = [0x15; 32];
const NEW_OWNER_ID_SEED: [u8; 32] = [0x16; 32];
const NEW_OWNER_X_SEED: [u8; 32] = [0x17; 32];
const REKEY_OWNER_RNG_SEED: [u8; 32] = [0x18; 32];
const ROTATE_AFTER_REKEY_RNG_SEED: [u8; 32] = [0x19; 32];
const REMOVE_WITH_CUTOFF_RNG_SEED: [u8; 32] = [0x1a; 32];
const DAY_MS: u64 = 86_400_000;

/// The order of the ed25519 base point, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// A control event as WIRE.md §4 describes it, to be rebuilt independently.
struct ExpectControl<'a> {
    seq: u64,
    prev: [u8; 32],
    created_at: u64,
    /// The encoded `Change`, variant index first.
    change: Vec<u8>,
    /// The members of the new epoch with their exchange keys, in node-id order.
    members: &'a [(NodeId, ExchangeKey)],
    rng_seed: [u8; 32],
    /// The identity seed of the key that signs it (the owner's at the time).
    signer_seed: [u8; 32],
}

/// Checks `bytes` against an independent construction of the event from WIRE.md: the epoch
/// key and each ephemeral HPKE key drawn from the RNG in order, the body written field by
/// field, the owner's signature. Returns the epoch key.
fn check_control(bytes: &[u8], e: &ExpectControl<'_>, w: &mut W) -> [u8; 32] {
    let (signed, event) = decode_control(bytes).expect("decodes");
    let epoch_key: [u8; 32] = rng_bytes(e.rng_seed, 0);
    assert_eq!(event.keys.len(), e.members.len());
    w.raw(&GROUP_ID)
        .u64(e.seq)
        .raw(&e.prev)
        .u64(e.created_at)
        .raw(&e.change)
        .u64(e.members.len() as u64);
    for (i, (wrapped, (node, _))) in event.keys.iter().zip(e.members).enumerate() {
        assert_eq!(wrapped.member, *node);
        let ikm: [u8; 32] = rng_bytes(e.rng_seed, 32 + 32 * i);
        let (_, eph_pub) = Kem::derive_keypair(&ikm);
        assert_eq!(wrapped.enc[..], eph_pub.to_bytes()[..]);
        assert_eq!(wrapped.ciphertext.len(), 48);
        w.raw(node.as_bytes())
            .raw(&wrapped.enc)
            .bytes(&wrapped.ciphertext);
    }
    let body = w.done();
    assert_eq!(signed.body, body);
    let signature = sign(&e.signer_seed, b"liaison/v1/control\0", &body);
    assert_eq!(bytes, w.u8(1).bytes(&body).raw(&signature).done());
    epoch_key
}

/// Unwraps the epoch key of event `seq` wrapped to `member` with its X25519 secret, by HPKE
/// directly (the member's side of §4).
fn unwrap_as(bytes: &[u8], seq: u64, member: NodeId, secret: &ExchangeSecret) -> [u8; 32] {
    let (_, event) = decode_control(bytes).expect("decodes");
    let wrapped = event
        .keys
        .iter()
        .find(|k| k.member == member)
        .expect("wrapped to the member");
    let mut info = b"liaison/v1/epoch-key".to_vec();
    info.extend_from_slice(&GROUP_ID);
    info.extend_from_slice(&seq.to_be_bytes());
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&secret.to_bytes()[..]).expect("sk");
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc).expect("enc");
    let opened =
        hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info,
            &wrapped.ciphertext,
            member.as_bytes(),
        )
        .expect("unwraps");
    opened.try_into().expect("32 bytes")
}

/// An envelope as WIRE.md §5 describes it, to be rebuilt independently.
struct ExpectEnvelope<'a> {
    author_seed: [u8; 32],
    epoch: u64,
    epoch_key: [u8; 32],
    seq: u64,
    created_at: u64,
    handling: u32,
    expires_at: Option<u64>,
    plaintext: &'a [u8],
    rng_seed: [u8; 32],
}

/// Rebuilds an envelope from WIRE.md §5 and checks `bytes` against it; returns the message key
/// and the message id.
fn check_envelope(bytes: &[u8], e: &ExpectEnvelope<'_>, w: &mut W) -> ([u8; 32], [u8; 32]) {
    let author = SigningKey::from_bytes(&e.author_seed).verifying_key();
    let nonce: [u8; 24] = rng_bytes(e.rng_seed, 0);
    let msg_key = derive(
        "liaison/v1/message-key",
        &[
            &e.epoch_key,
            &nonce,
            &GROUP_ID,
            &e.epoch.to_be_bytes(),
            author.as_bytes(),
            &e.seq.to_be_bytes(),
        ],
    );
    let commitment = derive("liaison/v1/key-commitment", &[&msg_key]);
    w.u8(1)
        .raw(&GROUP_ID)
        .u64(e.epoch)
        .raw(author.as_bytes())
        .u64(e.seq)
        .u64(e.created_at)
        .u32(e.handling);
    match e.expires_at {
        None => w.u8(0),
        Some(t) => w.u8(1).u64(t),
    };
    let aad = w.raw(&nonce).raw(&commitment).done();
    let ciphertext = chacha20poly1305::ChaCha20Poly1305::new((&msg_key).into())
        .encrypt(
            (&[0u8; 12]).into(),
            AeadPayload {
                msg: e.plaintext,
                aad: &aad,
            },
        )
        .expect("encrypts");
    assert_eq!(ciphertext.len(), e.plaintext.len() + 16);
    let ct_hash = derive("liaison/v1/ciphertext", &[&ciphertext]);
    let header = w.raw(&aad).raw(&ct_hash).done();
    let signature = sign(&e.author_seed, b"liaison/v1/envelope\0", &header);
    let envelope = w
        .u8(1)
        .bytes(&header)
        .raw(&signature)
        .bytes(&ciphertext)
        .done();
    assert_eq!(bytes, envelope);
    (msg_key, derive("liaison/v1/message-id", &[&header]))
}

/// `a + b` for 256-bit little-endian integers (no overflow for the values used here).
fn add_le(a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0);
    out
}

/// `k = SHA-512(R || A || M) mod L`, as WIRE.md §2.2 writes it.
fn challenge(r: &[u8; 32], a: &[u8; 32], m: &[u8]) -> Scalar {
    let mut h = Sha512::new();
    h.update(r);
    h.update(a);
    h.update(m);
    Scalar::from_bytes_mod_order_wide(&h.finalize().into())
}
const GROUP_ID: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

/// Computes every vector, checking each against the independent construction.
fn compute() -> Vec<(&'static str, Vec<u8>)> {
    let mut v: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let mut w = W::default();

    // ----- identities ----------------------------------------------------------------------
    let owner = IdentityKey::from_seed(&OWNER_ID_SEED);
    let owner_x = ExchangeSecret::from_seed(&OWNER_X_SEED);
    let member = IdentityKey::from_seed(&MEMBER_ID_SEED);
    let owner_id = owner.node_id();
    assert_eq!(
        owner_id.as_bytes(),
        SigningKey::from_bytes(&OWNER_ID_SEED)
            .verifying_key()
            .as_bytes()
    );
    let (_, x_pub) = Kem::derive_keypair(&OWNER_X_SEED);
    assert_eq!(owner_x.public().as_bytes()[..], x_pub.to_bytes()[..]);
    v.push(("owner-node-id", owner_id.as_bytes().to_vec()));
    v.push(("owner-exchange-key", owner_x.public().as_bytes().to_vec()));
    v.push(("member-node-id", member.node_id().as_bytes().to_vec()));

    // ----- descriptor ------------------------------------------------------------------------
    let desc = Descriptor {
        node: owner_id,
        name: "rilo-wca".into(),
        addresses: vec!["192.0.2.10:4433".into()],
        exchange_key: owner_x.public(),
        valid_from: Timestamp(T0),
        valid_until: Timestamp(T0 + 365 * 86_400_000),
    };
    let signed = desc.sign(&owner).expect("signs");
    let desc_bytes = signed.to_bytes().expect("encodes");
    let body = w
        .raw(owner_id.as_bytes())
        .str("rilo-wca")
        .u64(1)
        .str("192.0.2.10:4433")
        .raw(owner_x.public().as_bytes())
        .u64(T0)
        .u64(T0 + 365 * 86_400_000)
        .done();
    assert_eq!(signed.body, body);
    let signature = sign(&OWNER_ID_SEED, b"liaison/v1/descriptor\0", &body);
    let expect = w.u8(1).bytes(&body).raw(&signature).done();
    assert_eq!(desc_bytes, expect);
    assert_eq!(
        liaison_protocol::identity::SignedDescriptor::verify(&desc_bytes, Timestamp(T0)),
        Ok(desc)
    );
    v.push(("descriptor", desc_bytes.clone()));

    // ----- genesis control event --------------------------------------------------------------
    let gid = GroupId::from(GROUP_ID);
    let mut rng = ChaCha20Rng::from_seed(GENESIS_RNG_SEED);
    let genesis = GroupState::create(
        &owner,
        "rilo-wca",
        owner_x.public(),
        gid,
        "Operation Heritage 2026",
        Timestamp(T0),
        &mut rng,
    )
    .expect("creates");
    let (signed_control, event) = decode_control(&genesis).expect("decodes");
    assert_eq!(event.keys.len(), 1);
    let wrapped = &event.keys[0];
    // The epoch key is the RNG's first 32 bytes; the HPKE ephemeral key is DeriveKeyPair of
    // the next 32.
    let epoch_key: [u8; 32] = rng_bytes(GENESIS_RNG_SEED, 0);
    let ikm: [u8; 32] = rng_bytes(GENESIS_RNG_SEED, 32);
    let (_, eph_pub) = Kem::derive_keypair(&ikm);
    assert_eq!(wrapped.enc[..], eph_pub.to_bytes()[..]);
    let mut info = b"liaison/v1/epoch-key".to_vec();
    info.extend_from_slice(&GROUP_ID);
    info.extend_from_slice(&1u64.to_be_bytes());
    let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&owner_x.to_bytes()[..]).expect("sk");
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc).expect("enc");
    let opened =
        hpke::single_shot_open::<hpke::aead::ChaCha20Poly1305, hpke::kdf::HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info,
            &wrapped.ciphertext,
            owner_id.as_bytes(),
        )
        .expect("unwraps");
    assert_eq!(opened, epoch_key);
    assert_eq!(wrapped.ciphertext.len(), 48);
    let body = w
        .raw(&GROUP_ID)
        .u64(1)
        .raw(&[0; 32])
        .u64(T0)
        .u32(0) // Change::Create
        .str("Operation Heritage 2026")
        .raw(owner_id.as_bytes())
        .str("rilo-wca")
        .raw(owner_x.public().as_bytes())
        .u64(1) // one wrapped key
        .raw(owner_id.as_bytes())
        .raw(&wrapped.enc)
        .bytes(&wrapped.ciphertext)
        .done();
    assert_eq!(signed_control.body, body);
    let signature = sign(&OWNER_ID_SEED, b"liaison/v1/control\0", &body);
    assert_eq!(genesis, w.u8(1).bytes(&body).raw(&signature).done());
    let chain_hash = derive("liaison/v1/control-hash", &[&genesis]);
    v.push(("genesis", genesis.clone()));
    v.push(("genesis-chain-hash", chain_hash.to_vec()));
    v.push(("epoch-1-key", epoch_key.to_vec()));

    // ----- sealed envelope ----------------------------------------------------------------------
    let state = GroupState::from_genesis(
        &genesis,
        Some(LocalKeys {
            node: owner_id,
            exchange: &owner_x,
        }),
    )
    .expect("genesis");
    let content = Content {
        officer: "j.doe".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: "Seizure".into(),
            body: "3 icons".into(),
        },
    };
    let mut rng = ChaCha20Rng::from_seed(SEAL_RNG_SEED);
    let sealed = message::seal(
        &state,
        &owner,
        Draft {
            seq: 1,
            now: Timestamp(T0 + 60_000),
            handling: Handling::Amber,
            expires_at: None,
            content: &content,
        },
        &mut rng,
    )
    .expect("seals");
    let plain = w
        .u8(1)
        .str("j.doe")
        .u64(0)
        .u8(0) // reply_to: None
        .u32(0) // Payload::Text
        .str("Seizure")
        .str("3 icons")
        .done();
    assert_eq!(plain, codec::encode(&content).expect("encodes"));
    let nonce: [u8; 24] = rng_bytes(SEAL_RNG_SEED, 0);
    let msg_key = derive(
        "liaison/v1/message-key",
        &[
            &epoch_key,
            &nonce,
            &GROUP_ID,
            &1u64.to_be_bytes(),
            owner_id.as_bytes(),
            &1u64.to_be_bytes(),
        ],
    );
    let commitment = derive("liaison/v1/key-commitment", &[&msg_key]);
    let aad = w
        .u8(1) // header version
        .raw(&GROUP_ID)
        .u64(1) // epoch
        .raw(owner_id.as_bytes())
        .u64(1) // seq
        .u64(T0 + 60_000)
        .u32(2) // Handling::Amber
        .u8(0) // expires_at: None
        .raw(&nonce)
        .raw(&commitment)
        .done();
    let ciphertext = chacha20poly1305::ChaCha20Poly1305::new((&msg_key).into())
        .encrypt(
            (&[0u8; 12]).into(),
            AeadPayload {
                msg: &plain,
                aad: &aad,
            },
        )
        .expect("encrypts");
    assert_eq!(ciphertext.len(), plain.len() + 16);
    let ct_hash = derive("liaison/v1/ciphertext", &[&ciphertext]);
    let header = w.raw(&aad).raw(&ct_hash).done();
    let signature = sign(&OWNER_ID_SEED, b"liaison/v1/envelope\0", &header);
    let envelope = w
        .u8(1)
        .bytes(&header)
        .raw(&signature)
        .bytes(&ciphertext)
        .done();
    assert_eq!(sealed.bytes, envelope);
    let id = derive("liaison/v1/message-id", &[&header]);
    assert_eq!(sealed.id.as_bytes(), &id);
    let (_, opened) = message::verify_and_open(&sealed.bytes, &state).expect("opens");
    assert_eq!(opened, content);
    v.push(("content", plain));
    v.push(("message-key", msg_key.to_vec()));
    v.push(("envelope", sealed.bytes.clone()));
    v.push(("message-id", id.to_vec()));

    // ----- receipt ----------------------------------------------------------------------------
    let receipt = Receipt::sign(&member, gid, &[sealed.id], Timestamp(T0 + 61_000)).expect("signs");
    let body = w
        .raw(gid.as_bytes())
        .raw(member.node_id().as_bytes())
        .u64(T0 + 61_000)
        .u64(1)
        .raw(&id)
        .done();
    let signature = sign(&MEMBER_ID_SEED, b"liaison/v1/receipt\0", &body);
    assert_eq!(receipt, w.u8(1).bytes(&body).raw(&signature).done());
    assert!(Receipt::verify(&receipt).is_ok());
    v.push(("receipt", receipt));

    // ----- the group past its first event -------------------------------------------------------
    let member_id = member.node_id();
    let member_x = ExchangeSecret::from_seed(&MEMBER_X_SEED);
    let reader = IdentityKey::from_seed(&READER_ID_SEED);
    let reader_id = reader.node_id();
    let reader_x = ExchangeSecret::from_seed(&READER_X_SEED);
    v.push(("member-exchange-key", member_x.public().as_bytes().to_vec()));
    v.push(("reader-node-id", reader_id.as_bytes().to_vec()));
    v.push(("reader-exchange-key", reader_x.public().as_bytes().to_vec()));
    let owner_keys = LocalKeys {
        node: owner_id,
        exchange: &owner_x,
    };
    let member_keys = LocalKeys {
        node: member_id,
        exchange: &member_x,
    };
    let reader_keys = LocalKeys {
        node: reader_id,
        exchange: &reader_x,
    };
    let mut owner_state = state.clone();
    let mut member_state = GroupState::from_genesis(&genesis, Some(member_keys)).expect("genesis");
    let mut reader_state = GroupState::from_genesis(&genesis, Some(reader_keys)).expect("genesis");
    let sorted = |mut m: Vec<(NodeId, ExchangeKey)>| {
        m.sort_by_key(|(n, _)| *n.as_bytes());
        m
    };
    let all = sorted(vec![
        (owner_id, owner_x.public()),
        (member_id, member_x.public()),
        (reader_id, reader_x.public()),
    ]);
    let owner_and_member = sorted(vec![
        (owner_id, owner_x.public()),
        (member_id, member_x.public()),
    ]);
    let control = |state: &GroupState, change: Change, at: u64, seed: [u8; 32]| {
        let mut rng = ChaCha20Rng::from_seed(seed);
        state
            .propose(&owner, change, Timestamp(at), &mut rng)
            .expect("proposes")
    };
    // Event 2 adds the member: two wrapped keys, a non-zero chain link.
    let c2 = control(
        &owner_state,
        Change::Add {
            member: member_id,
            name: "customs-nl".into(),
            role: Role::Member,
            exchange_key: member_x.public(),
        },
        T0 + 1_000,
        ADD_MEMBER_RNG_SEED,
    );
    let change = w
        .u32(1)
        .raw(member_id.as_bytes())
        .str("customs-nl")
        .u32(0)
        .raw(member_x.public().as_bytes())
        .done();
    let epoch_2_key = check_control(
        &c2,
        &ExpectControl {
            seq: 2,
            prev: chain_hash,
            created_at: T0 + 1_000,
            change,
            members: &owner_and_member,
            rng_seed: ADD_MEMBER_RNG_SEED,
            signer_seed: OWNER_ID_SEED,
        },
        &mut w,
    );
    assert_eq!(unwrap_as(&c2, 2, member_id, &member_x), epoch_2_key);
    assert_eq!(unwrap_as(&c2, 2, owner_id, &owner_x), epoch_2_key);
    owner_state.apply(&c2, Some(owner_keys)).expect("applies");
    member_state.apply(&c2, Some(member_keys)).expect("applies");
    reader_state.apply(&c2, Some(reader_keys)).expect("applies");
    v.push(("control-2", c2.clone()));
    v.push(("epoch-2-key", epoch_2_key.to_vec()));

    // Event 2 as an owner could also have signed it: the member's wrapped ciphertext empty.
    // Nobody but the member can tell, so every node applies it (§4); the member holds no key.
    let (signed_c2, event_c2) = decode_control(&c2).expect("decodes");
    let member_ct = &event_c2
        .keys
        .iter()
        .find(|k| k.member == member_id)
        .expect("wrapped to the member")
        .ciphertext;
    let at = signed_c2
        .body
        .windows(8 + member_ct.len())
        .position(|win| win[..8] == 48u64.to_be_bytes() && win[8..] == member_ct[..])
        .expect("the member's ciphertext in the body");
    let mut body = signed_c2.body[..at].to_vec();
    body.extend_from_slice(&0u64.to_be_bytes());
    body.extend_from_slice(&signed_c2.body[at + 8 + member_ct.len()..]);
    let signature = sign(&OWNER_ID_SEED, b"liaison/v1/control\0", &body);
    let unopenable = w.u8(1).bytes(&body).raw(&signature).done();
    for (keys, opens) in [(member_keys, false), (owner_keys, true)] {
        let mut fresh = GroupState::from_genesis(&genesis, Some(keys)).expect("genesis");
        assert_eq!(
            fresh.apply(&unopenable, Some(keys)),
            Ok(Applied::New {
                epoch: 2,
                have_key: opens
            })
        );
        assert_eq!(fresh.role(&member_id), Some(Role::Member));
        assert_eq!(fresh.epoch_key(2).is_some(), opens);
    }
    v.push(("control-2-unopenable", unopenable));

    // Event 3 adds a reader: three wrapped keys.
    let c3 = control(
        &owner_state,
        Change::Add {
            member: reader_id,
            name: "museum-rmo".into(),
            role: Role::Reader,
            exchange_key: reader_x.public(),
        },
        T0 + 2_000,
        ADD_READER_RNG_SEED,
    );
    let change = w
        .u32(1)
        .raw(reader_id.as_bytes())
        .str("museum-rmo")
        .u32(1)
        .raw(reader_x.public().as_bytes())
        .done();
    check_control(
        &c3,
        &ExpectControl {
            seq: 3,
            prev: derive("liaison/v1/control-hash", &[&c2]),
            created_at: T0 + 2_000,
            change,
            members: &all,
            rng_seed: ADD_READER_RNG_SEED,
            signer_seed: OWNER_ID_SEED,
        },
        &mut w,
    );
    owner_state.apply(&c3, Some(owner_keys)).expect("applies");
    member_state.apply(&c3, Some(member_keys)).expect("applies");
    reader_state.apply(&c3, Some(reader_keys)).expect("applies");
    v.push(("control-3", c3.clone()));

    // Event 4 rotates the key.
    let c4 = control(&owner_state, Change::Rotate, T0 + 3_000, ROTATE_RNG_SEED);
    let epoch_4_key = check_control(
        &c4,
        &ExpectControl {
            seq: 4,
            prev: derive("liaison/v1/control-hash", &[&c3]),
            created_at: T0 + 3_000,
            change: w.u32(3).done(),
            members: &all,
            rng_seed: ROTATE_RNG_SEED,
            signer_seed: OWNER_ID_SEED,
        },
        &mut w,
    );
    assert_eq!(unwrap_as(&c4, 4, reader_id, &reader_x), epoch_4_key);
    owner_state.apply(&c4, Some(owner_keys)).expect("applies");
    member_state.apply(&c4, Some(member_keys)).expect("applies");
    reader_state.apply(&c4, Some(reader_keys)).expect("applies");
    v.push(("control-4", c4.clone()));

    // ----- envelopes with optional fields, recipients, RED and AMBER+STRICT (epoch 4) ---------
    let red_content = Content {
        officer: "a.jansen".into(),
        recipients: vec![Recipient {
            officer: "j.doe".into(),
            node: owner_id,
        }],
        reply_to: Some(sealed.id),
        payload: Payload::Text {
            subject: "Controlled delivery".into(),
            body: "Container MSKU 1234565, ETA 3 January".into(),
        },
    };
    let red_plain = w
        .u8(1)
        .str("a.jansen")
        .u64(1)
        .str("j.doe")
        .raw(owner_id.as_bytes())
        .u8(1)
        .raw(&id)
        .u32(0)
        .str("Controlled delivery")
        .str("Container MSKU 1234565, ETA 3 January")
        .done();
    assert_eq!(red_plain, codec::encode(&red_content).expect("encodes"));
    let red = message::seal(
        &member_state,
        &member,
        Draft {
            seq: 1,
            now: Timestamp(T0 + 5_000),
            handling: Handling::Red,
            expires_at: Some(Timestamp(T0 + 5_000 + 7 * DAY_MS)),
            content: &red_content,
        },
        &mut ChaCha20Rng::from_seed(SEAL_RED_RNG_SEED),
    )
    .expect("seals");
    let (_, red_id) = check_envelope(
        &red.bytes,
        &ExpectEnvelope {
            author_seed: MEMBER_ID_SEED,
            epoch: 4,
            epoch_key: epoch_4_key,
            seq: 1,
            created_at: T0 + 5_000,
            handling: 4,
            expires_at: Some(T0 + 5_000 + 7 * DAY_MS),
            plaintext: &red_plain,
            rng_seed: SEAL_RED_RNG_SEED,
        },
        &mut w,
    );
    assert_eq!(red.id.as_bytes(), &red_id);
    for state in [&owner_state, &member_state, &reader_state] {
        let (_, opened) = message::verify_and_open(&red.bytes, state).expect("opens");
        assert_eq!(opened, red_content);
    }
    v.push(("content-red", red_plain));
    v.push(("envelope-red", red.bytes.clone()));
    v.push(("message-id-red", red_id.to_vec()));

    let strict_content = Content {
        officer: "j.doe".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: "Request for assistance".into(),
            body: "Check bill of lading 7781".into(),
        },
    };
    let strict_plain = codec::encode(&strict_content).expect("encodes");
    assert_eq!(
        strict_plain,
        w.u8(1)
            .str("j.doe")
            .u64(0)
            .u8(0)
            .u32(0)
            .str("Request for assistance")
            .str("Check bill of lading 7781")
            .done()
    );
    let strict = message::seal(
        &owner_state,
        &owner,
        Draft {
            seq: 1,
            now: Timestamp(T0 + 6_000),
            handling: Handling::AmberStrict,
            expires_at: None,
            content: &strict_content,
        },
        &mut ChaCha20Rng::from_seed(SEAL_STRICT_RNG_SEED),
    )
    .expect("seals");
    let (_, strict_id) = check_envelope(
        &strict.bytes,
        &ExpectEnvelope {
            author_seed: OWNER_ID_SEED,
            epoch: 4,
            epoch_key: epoch_4_key,
            seq: 1,
            created_at: T0 + 6_000,
            handling: 3,
            expires_at: None,
            plaintext: &strict_plain,
            rng_seed: SEAL_STRICT_RNG_SEED,
        },
        &mut w,
    );
    let (_, opened) = message::verify_and_open(&strict.bytes, &reader_state).expect("opens");
    assert_eq!(opened, strict_content);
    v.push(("envelope-amber-strict", strict.bytes.clone()));
    v.push(("message-id-amber-strict", strict_id.to_vec()));

    // A receipt by the reader, a member of epoch 4, naming both (ids ascending).
    let receipt_several =
        Receipt::sign(&reader, gid, &[red.id, strict.id], Timestamp(T0 + 7_000)).expect("signs");
    let mut ids = [red_id, strict_id];
    ids.sort_unstable();
    let body = w
        .raw(gid.as_bytes())
        .raw(reader_id.as_bytes())
        .u64(T0 + 7_000)
        .u64(2)
        .raw(&ids[0])
        .raw(&ids[1])
        .done();
    let signature = sign(&READER_ID_SEED, b"liaison/v1/receipt\0", &body);
    assert_eq!(receipt_several, w.u8(1).bytes(&body).raw(&signature).done());
    assert!(Receipt::verify(&receipt_several).is_ok());
    v.push(("receipt-several", receipt_several.clone()));

    // Event 5 removes the reader.
    let c5 = control(
        &owner_state,
        Change::Remove { member: reader_id },
        T0 + 8_000,
        REMOVE_RNG_SEED,
    );
    check_control(
        &c5,
        &ExpectControl {
            seq: 5,
            prev: derive("liaison/v1/control-hash", &[&c4]),
            created_at: T0 + 8_000,
            change: w.u32(2).raw(reader_id.as_bytes()).done(),
            members: &owner_and_member,
            rng_seed: REMOVE_RNG_SEED,
            signer_seed: OWNER_ID_SEED,
        },
        &mut w,
    );
    owner_state.apply(&c5, Some(owner_keys)).expect("applies");
    member_state.apply(&c5, Some(member_keys)).expect("applies");
    reader_state.apply(&c5, Some(reader_keys)).expect("applies");
    assert_eq!(reader_state.role(&reader_id), None);
    assert!(reader_state.epoch_key(5).is_none());
    v.push(("control-5", c5.clone()));
    v.push((
        "control-5-chain-hash",
        derive("liaison/v1/control-hash", &[&c5]).to_vec(),
    ));

    // ----- frames -----------------------------------------------------------------------------
    let request = Frame::SyncRequest(SyncRequest {
        group: gid,
        control_seq: 1,
        vector: vec![VectorEntry {
            author: owner_id.into(),
            epoch: 1,
            high: 1,
        }],
        ranges: vec![HeldRange {
            author: owner_id.into(),
            epoch: 1,
            first: 3,
            last: 4,
        }],
        max_bytes: 65_536,
    })
    .encode()
    .expect("encodes");
    let expect = w
        .u8(1)
        .u32(3) // Frame::SyncRequest
        .raw(&GROUP_ID)
        .u64(1) // control_seq
        .u64(1) // one vector entry
        .raw(owner_id.as_bytes())
        .u64(1)
        .u64(1)
        .u64(1) // one held range
        .raw(owner_id.as_bytes())
        .u64(1)
        .u64(3)
        .u64(4)
        .u64(65_536) // max_bytes
        .done();
    assert_eq!(request, expect);
    v.push(("frame-sync-request", request));
    let ack = Frame::Ack {
        ids: vec![sealed.id],
    }
    .encode()
    .expect("encodes");
    assert_eq!(ack, w.u8(1).u32(2).u64(1).raw(&id).done());
    v.push(("frame-ack", ack));

    // Frames carrying nested objects: each nested object keeps its own version byte.
    let hello = Frame::Hello {
        descriptor: desc_bytes.clone(),
    }
    .encode()
    .expect("encodes");
    assert_eq!(hello, w.u8(1).u32(0).bytes(&desc_bytes).done());
    assert_eq!(desc_bytes[0], 1);
    v.push(("frame-hello", hello));

    let member_desc = Descriptor {
        node: member_id,
        name: "customs-nl".into(),
        addresses: vec![
            "[2001:db8::7]:7400".into(),
            "node.customs.example:7400".into(),
        ],
        exchange_key: member_x.public(),
        valid_from: Timestamp(T0),
        valid_until: Timestamp(T0 + 365 * DAY_MS),
    };
    let member_desc_bytes = member_desc
        .sign(&member)
        .expect("signs")
        .to_bytes()
        .expect("encodes");
    let body = w
        .raw(member_id.as_bytes())
        .str("customs-nl")
        .u64(2)
        .str("[2001:db8::7]:7400")
        .str("node.customs.example:7400")
        .raw(member_x.public().as_bytes())
        .u64(T0)
        .u64(T0 + 365 * DAY_MS)
        .done();
    let signature = sign(&MEMBER_ID_SEED, b"liaison/v1/descriptor\0", &body);
    assert_eq!(
        member_desc_bytes,
        w.u8(1).bytes(&body).raw(&signature).done()
    );
    let directory = Frame::Directory {
        descriptors: vec![member_desc_bytes.clone()],
    }
    .encode()
    .expect("encodes");
    assert_eq!(
        directory,
        w.u8(1).u32(7).u64(1).bytes(&member_desc_bytes).done()
    );
    v.push(("frame-directory", directory));

    let push = Frame::Push {
        envelopes: vec![red.bytes.clone(), strict.bytes.clone()],
    }
    .encode()
    .expect("encodes");
    assert_eq!(
        push,
        w.u8(1)
            .u32(1)
            .u64(2)
            .bytes(&red.bytes)
            .bytes(&strict.bytes)
            .done()
    );
    v.push(("frame-push", push));

    let receipts = Frame::Receipts {
        receipts: vec![receipt_several.clone()],
    }
    .encode()
    .expect("encodes");
    assert_eq!(
        receipts,
        w.u8(1).u32(5).u64(1).bytes(&receipt_several).done()
    );
    v.push(("frame-receipts", receipts));

    let control_frame = Frame::Control {
        group: gid,
        events: vec![c2.clone()],
    }
    .encode()
    .expect("encodes");
    assert_eq!(
        control_frame,
        w.u8(1).u32(6).raw(&GROUP_ID).u64(1).bytes(&c2).done()
    );
    v.push(("frame-control", control_frame));

    let response = Frame::SyncResponse(SyncResponse {
        group: gid,
        controls: vec![c5.clone()],
        envelopes: vec![sealed.bytes.clone()],
        more: true,
    })
    .encode()
    .expect("encodes");
    assert_eq!(
        response,
        w.u8(1)
            .u32(4)
            .raw(&GROUP_ID)
            .u64(1)
            .bytes(&c5)
            .u64(1)
            .bytes(&sealed.bytes)
            .u8(1)
            .done()
    );
    v.push(("frame-sync-response", response));

    // ----- strict signature verification: negative vectors (WIRE.md §2.2) ---------------------
    // S + L instead of S: refused by rule 2; a verifier that reduces S mod L accepts it.
    let mut s_plus_l = desc_bytes.clone();
    let sig_at = s_plus_l.len() - 64;
    let s: [u8; 32] = s_plus_l[sig_at + 32..].try_into().expect("32");
    let s2 = add_le(&s, &L);
    s_plus_l[sig_at + 32..].copy_from_slice(&s2);
    assert_eq!(
        Scalar::from_bytes_mod_order(s2),
        Scalar::from_bytes_mod_order(s)
    );
    assert_eq!(
        SignedDescriptor::verify(&s_plus_l, Timestamp(T0)),
        Err(Rejection::BadSignature("descriptor"))
    );
    v.push(("negative-descriptor-s-plus-l", s_plus_l));

    // R the neutral element (small order) with S = k·a, over the body of the `receipt` vector:
    // the cofactorless equation holds, so a verifier without rule 3 (ed25519-dalek's `verify`)
    // accepts it.
    let receipt_body = w
        .raw(gid.as_bytes())
        .raw(member_id.as_bytes())
        .u64(T0 + 61_000)
        .u64(1)
        .raw(&id)
        .done();
    let neutral: [u8; 32] = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    let mut signed_message = b"liaison/v1/receipt\0".to_vec();
    signed_message.extend_from_slice(&receipt_body);
    let k = challenge(&neutral, member_id.as_bytes(), &signed_message);
    let a = SigningKey::from_bytes(&MEMBER_ID_SEED).to_scalar();
    let forged_s = k * a;
    let mut forged = neutral.to_vec();
    forged.extend_from_slice(forged_s.as_bytes());
    let forged: [u8; 64] = forged.try_into().expect("64");
    let lax = VerifyingKey::from_bytes(member_id.as_bytes()).expect("key");
    assert!(lax
        .verify(
            &signed_message,
            &ed25519_dalek::Signature::from_bytes(&forged)
        )
        .is_ok());
    let small_r = w.u8(1).bytes(&receipt_body).raw(&forged).done();
    assert_eq!(
        Receipt::verify(&small_r),
        Err(Rejection::BadSignature("receipt"))
    );
    v.push(("negative-receipt-small-order-r", small_r));

    // A descriptor whose node is the neutral element (a small-order key), signed with R = B,
    // S = 1: [S]B - [k]A = B for every message, so a verifier without rule 1 accepts it. The
    // node id does not decode.
    let basepoint = ED25519_BASEPOINT_POINT.compress().to_bytes();
    let rogue_body = w
        .raw(&neutral)
        .str("rogue")
        .u64(0)
        .raw(owner_x.public().as_bytes())
        .u64(T0)
        .u64(T0 + 365 * DAY_MS)
        .done();
    let mut rogue_sig = basepoint.to_vec();
    rogue_sig.extend_from_slice(Scalar::ONE.as_bytes());
    let rogue_sig: [u8; 64] = rogue_sig.try_into().expect("64");
    let mut signed_message = b"liaison/v1/descriptor\0".to_vec();
    signed_message.extend_from_slice(&rogue_body);
    let lax = VerifyingKey::from_bytes(&neutral).expect("decodes as a point");
    assert!(lax
        .verify(
            &signed_message,
            &ed25519_dalek::Signature::from_bytes(&rogue_sig)
        )
        .is_ok());
    let rogue = w.u8(1).bytes(&rogue_body).raw(&rogue_sig).done();
    assert!(matches!(
        SignedDescriptor::verify(&rogue, Timestamp(T0)),
        Err(Rejection::Decode(liaison_protocol::DecodeError::Malformed(
            _
        )))
    ));
    v.push(("negative-descriptor-small-order-key", rogue));

    // y = p + 3: a non-canonical encoding of a point of large order (the point with y = 3),
    // which a check for small order alone lets through.
    let mut non_canonical = [0xffu8; 32];
    non_canonical[0] = 0xf0;
    non_canonical[31] = 0x7f;
    let point = CompressedEdwardsY(non_canonical)
        .decompress()
        .expect("on the curve");
    assert!(!point.is_small_order());
    assert!(VerifyingKey::from_bytes(&non_canonical).is_ok_and(|k| !k.is_weak()));
    assert!(NodeId::from_bytes(non_canonical).is_err());
    v.push(("negative-node-id-non-canonical", non_canonical.to_vec()));

    // ----- federation: a roster, rotation statements, groups following a rotation ----------
    let authority = AuthorityKey::from_seed(&AUTHORITY_SEED);
    let authority_id = authority.id();
    assert_eq!(
        authority_id.as_bytes(),
        SigningKey::from_bytes(&AUTHORITY_SEED)
            .verifying_key()
            .as_bytes()
    );
    v.push(("authority-key", authority_id.as_bytes().to_vec()));
    let revoked_id = IdentityKey::from_seed(&REVOKED_ID_SEED).node_id();
    let mut entries = vec![
        Entry {
            node: owner_id,
            name: "rilo-wca".into(),
            organisation: "RILO Western Europe".into(),
            country: "BE".into(),
            kind: Kind::Rilo,
            addresses: vec!["192.0.2.10:4433".into()],
        },
        Entry {
            node: member_id,
            name: "customs-nl".into(),
            organisation: "Dutch Customs".into(),
            country: "NL".into(),
            kind: Kind::Customs,
            addresses: vec!["[2001:db8::7]:7400".into()],
        },
        Entry {
            node: reader_id,
            name: "museum-rmo".into(),
            organisation: "Rijksmuseum van Oudheden".into(),
            country: "NL".into(),
            kind: Kind::Academia,
            addresses: vec![],
        },
    ];
    entries.sort_by_key(|e| e.node);
    let roster = Roster {
        authority: authority_id,
        federation: "WCO Europe".into(),
        version: 1,
        issued_at: Timestamp(T0),
        valid_until: Timestamp(T0 + 90 * DAY_MS),
        entries: entries.clone(),
        revocations: vec![Revocation {
            node: revoked_id,
            at: Timestamp(T0 - DAY_MS),
            reason: "key compromised".into(),
        }],
    };
    let roster_bytes = authority.sign(&roster).expect("signs");
    w.raw(authority_id.as_bytes())
        .str("WCO Europe")
        .u64(1)
        .u64(T0)
        .u64(T0 + 90 * DAY_MS)
        .u64(3);
    for e in &entries {
        let kind = match e.kind {
            Kind::Customs => 0,
            Kind::Police => 1,
            Kind::Academia => 2,
            Kind::Rilo => 3,
        };
        w.raw(e.node.as_bytes())
            .str(&e.name)
            .str(&e.organisation)
            .str(&e.country)
            .u32(kind)
            .u64(e.addresses.len() as u64);
        for a in &e.addresses {
            w.str(a);
        }
    }
    let body = w
        .u64(1)
        .raw(revoked_id.as_bytes())
        .u64(T0 - DAY_MS)
        .str("key compromised")
        .done();
    let signature = sign(&AUTHORITY_SEED, b"liaison/v1/roster\0", &body);
    assert_eq!(roster_bytes, w.u8(1).bytes(&body).raw(&signature).done());
    assert_eq!(
        SignedRoster::verify(&roster_bytes, &[authority_id]),
        Ok(roster)
    );
    v.push(("roster", roster_bytes.clone()));

    // The member moves to a new identity key and exchange key.
    let new_member = IdentityKey::from_seed(&NEW_MEMBER_ID_SEED);
    let new_member_id = new_member.node_id();
    let new_member_x = ExchangeSecret::from_seed(&NEW_MEMBER_X_SEED);
    let rotation = Rotation {
        old: member_id,
        new: new_member_id,
        exchange_key: new_member_x.public(),
        at: Timestamp(T0 + 10 * DAY_MS),
    };
    let rotation_bytes = rotation.sign(&member, &new_member).expect("signs");
    let body = w
        .raw(member_id.as_bytes())
        .raw(new_member_id.as_bytes())
        .raw(new_member_x.public().as_bytes())
        .u64(T0 + 10 * DAY_MS)
        .done();
    let old_sig = sign(&MEMBER_ID_SEED, b"liaison/v1/rotation\0", &body);
    let new_sig = sign(&NEW_MEMBER_ID_SEED, b"liaison/v1/rotation\0", &body);
    assert_eq!(
        rotation_bytes,
        w.u8(1).bytes(&body).raw(&old_sig).raw(&new_sig).done()
    );
    assert_eq!(Rotation::verify(&rotation_bytes), Ok(rotation));
    v.push(("new-member-node-id", new_member_id.as_bytes().to_vec()));
    v.push(("rotation", rotation_bytes.clone()));
    // The same statement with the old key's signature in both places: whoever holds only the
    // old key cannot prove it holds the new one (§12.4), so it is refused.
    let one_signer = w.u8(1).bytes(&body).raw(&old_sig).raw(&old_sig).done();
    assert_eq!(
        Rotation::verify(&one_signer),
        Err(Rejection::BadSignature("rotation"))
    );
    v.push(("negative-rotation-old-key-only", one_signer));

    // The owner moves to a new exchange key only.
    let owner_new_x = ExchangeSecret::from_seed(&OWNER_NEW_X_SEED);
    let exchange_rotation = Rotation {
        old: owner_id,
        new: owner_id,
        exchange_key: owner_new_x.public(),
        at: Timestamp(T0 + 11 * DAY_MS),
    };
    let exchange_rotation_bytes = exchange_rotation.sign(&owner, &owner).expect("signs");
    let body = w
        .raw(owner_id.as_bytes())
        .raw(owner_id.as_bytes())
        .raw(owner_new_x.public().as_bytes())
        .u64(T0 + 11 * DAY_MS)
        .done();
    let sig = sign(&OWNER_ID_SEED, b"liaison/v1/rotation\0", &body);
    assert_eq!(
        exchange_rotation_bytes,
        w.u8(1).bytes(&body).raw(&sig).raw(&sig).done()
    );
    assert_eq!(
        Rotation::verify(&exchange_rotation_bytes),
        Ok(exchange_rotation)
    );
    v.push(("rotation-exchange", exchange_rotation_bytes));

    // Event 6: the owner moves the member to its new keys.
    let c6 = control(
        &owner_state,
        Change::Rekey {
            member: member_id,
            node: new_member_id,
            exchange_key: new_member_x.public(),
        },
        T0 + 10 * DAY_MS + 1_000,
        REKEY_MEMBER_RNG_SEED,
    );
    let after_member_rekey = sorted(vec![
        (owner_id, owner_x.public()),
        (new_member_id, new_member_x.public()),
    ]);
    let epoch_6_key = check_control(
        &c6,
        &ExpectControl {
            seq: 6,
            prev: derive("liaison/v1/control-hash", &[&c5]),
            created_at: T0 + 10 * DAY_MS + 1_000,
            change: w
                .u32(4)
                .raw(member_id.as_bytes())
                .raw(new_member_id.as_bytes())
                .raw(new_member_x.public().as_bytes())
                .done(),
            members: &after_member_rekey,
            rng_seed: REKEY_MEMBER_RNG_SEED,
            signer_seed: OWNER_ID_SEED,
        },
        &mut w,
    );
    assert_eq!(unwrap_as(&c6, 6, new_member_id, &new_member_x), epoch_6_key);
    owner_state.apply(&c6, Some(owner_keys)).expect("applies");
    v.push(("control-6", c6.clone()));

    // Event 7: the owner moves itself to a new identity key, signed with its old key; event 8,
    // a Rotate, is signed by the new one.
    let new_owner = IdentityKey::from_seed(&NEW_OWNER_ID_SEED);
    let new_owner_id = new_owner.node_id();
    let new_owner_x = ExchangeSecret::from_seed(&NEW_OWNER_X_SEED);
    let c7 = control(
        &owner_state,
        Change::Rekey {
            member: owner_id,
            node: new_owner_id,
            exchange_key: new_owner_x.public(),
        },
        T0 + 12 * DAY_MS,
        REKEY_OWNER_RNG_SEED,
    );
    let after_owner_rekey = sorted(vec![
        (new_owner_id, new_owner_x.public()),
        (new_member_id, new_member_x.public()),
    ]);
    check_control(
        &c7,
        &ExpectControl {
            seq: 7,
            prev: derive("liaison/v1/control-hash", &[&c6]),
            created_at: T0 + 12 * DAY_MS,
            change: w
                .u32(4)
                .raw(owner_id.as_bytes())
                .raw(new_owner_id.as_bytes())
                .raw(new_owner_x.public().as_bytes())
                .done(),
            members: &after_owner_rekey,
            rng_seed: REKEY_OWNER_RNG_SEED,
            signer_seed: OWNER_ID_SEED,
        },
        &mut w,
    );
    owner_state.apply(&c7, Some(owner_keys)).expect("applies");
    assert_eq!(owner_state.owner(), new_owner_id);
    let c8 = owner_state
        .propose(
            &new_owner,
            Change::Rotate,
            Timestamp(T0 + 12 * DAY_MS + 1_000),
            &mut ChaCha20Rng::from_seed(ROTATE_AFTER_REKEY_RNG_SEED),
        )
        .expect("the new owner proposes");
    check_control(
        &c8,
        &ExpectControl {
            seq: 8,
            prev: derive("liaison/v1/control-hash", &[&c7]),
            created_at: T0 + 12 * DAY_MS + 1_000,
            change: w.u32(3).done(),
            members: &after_owner_rekey,
            rng_seed: ROTATE_AFTER_REKEY_RNG_SEED,
            signer_seed: NEW_OWNER_ID_SEED,
        },
        &mut w,
    );
    // The old owner key no longer signs events.
    assert!(owner_state
        .propose(&owner, Change::Rotate, Timestamp(T0), &mut rng)
        .is_err());
    owner_state.apply(&c8, None).expect("applies");
    // Messages signed under the old keys stay valid: their authors were members then.
    assert!(message::verify(&red.bytes, &owner_state).is_ok());
    assert!(message::verify(&sealed.bytes, &owner_state).is_ok());
    // Event 9: the new owner removes the member's new key the way the reference node removes a
    // member, with its cut-off (seq 2 in epoch 6; nothing in epochs 7 and 8): one wrapped key.
    let c9 = owner_state
        .propose(
            &new_owner,
            Change::RemoveWithCutoff {
                member: new_member_id,
                cutoff: vec![Cutoff { epoch: 6, seq: 2 }],
            },
            Timestamp(T0 + 13 * DAY_MS),
            &mut ChaCha20Rng::from_seed(REMOVE_WITH_CUTOFF_RNG_SEED),
        )
        .expect("the new owner removes");
    check_control(
        &c9,
        &ExpectControl {
            seq: 9,
            prev: derive("liaison/v1/control-hash", &[&c8]),
            created_at: T0 + 13 * DAY_MS,
            change: w
                .u32(5) // Change::RemoveWithCutoff
                .raw(new_member_id.as_bytes())
                .u64(1) // one cut-off entry
                .u64(6)
                .u64(2)
                .done(),
            members: &[(new_owner_id, new_owner_x.public())],
            rng_seed: REMOVE_WITH_CUTOFF_RNG_SEED,
            signer_seed: NEW_OWNER_ID_SEED,
        },
        &mut w,
    );
    owner_state.apply(&c9, None).expect("applies");
    assert_eq!(owner_state.role(&new_member_id), None);
    // §4: the member's seqs above 2 in epoch 6, and every seq in epochs 7 and 8, are beyond the
    // cut-off; messages its earlier key signed are not (the removal names the new key).
    assert_eq!(owner_state.cutoff(&new_member_id, 6), Some(2));
    assert!(!owner_state.beyond_cutoff(&new_member_id, 6, 2));
    assert!(owner_state.beyond_cutoff(&new_member_id, 6, 3));
    assert!(owner_state.beyond_cutoff(&new_member_id, 8, 1));
    assert_eq!(owner_state.cutoff(&member_id, 4), None);
    assert!(message::verify(&red.bytes, &owner_state).is_ok());
    v.push(("control-7", c7));
    v.push(("control-8", c8));
    v.push(("control-9", c9));

    // Roster version 2 confirms the member's rotation (its entry names the new key), revokes
    // the reader, and leaves out the revocation of version 1, which is not forgotten (§12.2).
    let mut entries_2 = vec![
        entries
            .iter()
            .find(|e| e.node == owner_id)
            .expect("the owner's entry")
            .clone(),
        Entry {
            node: new_member_id,
            ..entries
                .iter()
                .find(|e| e.node == member_id)
                .expect("the member's entry")
                .clone()
        },
    ];
    entries_2.sort_by_key(|e| e.node);
    let roster_2 = Roster {
        authority: authority_id,
        federation: "WCO Europe".into(),
        version: 2,
        issued_at: Timestamp(T0 + 30 * DAY_MS),
        valid_until: Timestamp(T0 + 120 * DAY_MS),
        entries: entries_2.clone(),
        revocations: vec![Revocation {
            node: reader_id,
            at: Timestamp(T0 + 20 * DAY_MS),
            reason: "left the federation".into(),
        }],
    };
    let roster_2_bytes = authority.sign(&roster_2).expect("signs");
    w.raw(authority_id.as_bytes())
        .str("WCO Europe")
        .u64(2)
        .u64(T0 + 30 * DAY_MS)
        .u64(T0 + 120 * DAY_MS)
        .u64(2);
    for e in &entries_2 {
        let kind = match e.kind {
            Kind::Customs => 0,
            Kind::Police => 1,
            Kind::Academia => 2,
            Kind::Rilo => 3,
        };
        w.raw(e.node.as_bytes())
            .str(&e.name)
            .str(&e.organisation)
            .str(&e.country)
            .u32(kind)
            .u64(e.addresses.len() as u64);
        for a in &e.addresses {
            w.str(a);
        }
    }
    let body = w
        .u64(1)
        .raw(reader_id.as_bytes())
        .u64(T0 + 20 * DAY_MS)
        .str("left the federation")
        .done();
    let signature = sign(&AUTHORITY_SEED, b"liaison/v1/roster\0", &body);
    assert_eq!(roster_2_bytes, w.u8(1).bytes(&body).raw(&signature).done());
    // Taking version 1, the member's rotation, then version 2, as §12.2 and §12.4 describe.
    let mut federation = Federation::new(vec![authority_id]);
    assert!(matches!(
        federation.take_roster(&roster_bytes),
        Ok(RosterUpdate::New { version: 1, .. })
    ));
    assert!(matches!(
        federation.take_rotation(&rotation_bytes),
        Ok(RotationUpdate::New(_))
    ));
    let mut left = vec![member_id, reader_id];
    left.sort_unstable();
    assert_eq!(
        federation.take_roster(&roster_2_bytes),
        Ok(RosterUpdate::New {
            version: 2,
            previous: Some(1),
            revoked: vec![reader_id],
            joined: vec![new_member_id],
            left,
        })
    );
    assert_eq!(
        federation.take_roster(&roster_bytes),
        Ok(RosterUpdate::Older {
            offered: 1,
            held: 2
        })
    );
    let now = Timestamp(T0 + 30 * DAY_MS);
    assert!(federation.revocation(&revoked_id).is_some());
    assert!(matches!(
        federation.admission(&reader_id, now, DAY_MS),
        Admission::Revoked(_)
    ));
    assert_eq!(
        federation.admission(&member_id, now, DAY_MS),
        Admission::Rotated { new: new_member_id }
    );
    assert!(matches!(
        federation.admission(&new_member_id, now, DAY_MS),
        Admission::Member { .. }
    ));
    assert_eq!(
        federation.resolve_name("customs-nl"),
        Ok(Some(new_member_id))
    );
    assert_eq!(federation.resolve_name("museum-rmo"), Ok(None));
    v.push(("roster-2", roster_2_bytes));

    let roster_frame = Frame::Roster {
        rosters: vec![roster_bytes.clone()],
    }
    .encode()
    .expect("encodes");
    assert_eq!(
        roster_frame,
        w.u8(1).u32(8).u64(1).bytes(&roster_bytes).done()
    );
    v.push(("frame-roster", roster_frame));
    let rotation_frame = Frame::Rotation {
        statements: vec![rotation_bytes.clone()],
    }
    .encode()
    .expect("encodes");
    assert_eq!(
        rotation_frame,
        w.u8(1).u32(9).u64(1).bytes(&rotation_bytes).done()
    );
    v.push(("frame-rotation", rotation_frame));

    // ----- the test RNG ---------------------------------------------------------------------
    let mut first = [0u8; 64];
    ChaCha20Rng::from_seed(GENESIS_RNG_SEED).fill_bytes(&mut first);
    v.push(("rng-05", first.to_vec()));

    // ----- records (§10) --------------------------------------------------------------------
    let feedback = Record::Feedback(Feedback {
        outcome: Outcome::SeizureMade,
        seizure_report: Some(MessageRef::from(sealed.id)),
        comment: Some("3 icons".into()),
    });
    let attachment = AttachmentRef {
        id: AttachmentId::from([0x11; 32]),
        key: AttachmentKey::from_bytes([0x22; 32]),
        size: 25,
        media_type: "image/jpeg".into(),
        name: "icon.jpg".into(),
    };
    let content = Content {
        officer: "j.doe".into(),
        recipients: vec![],
        reply_to: Some(sealed.id),
        payload: feedback.to_payload(vec![attachment]).expect("valid"),
    };
    let body = w
        .u32(0) // Outcome::SeizureMade
        .u8(1)
        .str(&hex::encode(id))
        .u8(1)
        .str("3 icons")
        .done();
    let plain = w
        .u8(1)
        .str("j.doe")
        .u64(0)
        .u8(1)
        .raw(&id) // reply_to
        .u32(1) // Payload::Record
        .raw(&5u16.to_be_bytes()) // kind: feedback
        .raw(&1u16.to_be_bytes()) // schema 1
        .bytes(&body)
        .u64(1) // one attachment
        .raw(&[0x11; 32])
        .raw(&[0x22; 32])
        .u64(25)
        .str("image/jpeg")
        .str("icon.jpg")
        .done();
    assert_eq!(codec::encode(&content).expect("encodes"), plain);
    assert_eq!(content.check(), Ok(()));
    let decoded: Content = codec::decode(&plain, codec::MAX_CONTENT_LEN).expect("decodes");
    assert_eq!(
        liaison_protocol::record::read(&decoded.payload),
        Ok(liaison_protocol::Readable::Known(feedback))
    );
    v.push(("content-feedback", plain));

    // ----- attachments (§11) ------------------------------------------------------------------
    let key = AttachmentKey::from_bytes([0x0a; 32]);
    let plain = b"liaison attachment vector";
    let (aid, cipher) = attachment::seal_all(&key, plain).expect("seals");
    let mut nonce = [0u8; 12];
    nonce[11] = 1; // chunk 0, the last
    let expect = chacha20poly1305::ChaCha20Poly1305::new((&[0x0a; 32]).into())
        .encrypt(
            (&nonce).into(),
            AeadPayload {
                msg: plain,
                aad: b"liaison/v1/attachment",
            },
        )
        .expect("encrypts");
    assert_eq!(cipher, expect);
    assert_eq!(
        aid.as_bytes(),
        &derive("liaison/v1/attachment-id", &[&cipher])
    );
    v.push(("attachment-ciphertext", cipher));
    v.push(("attachment-id", aid.as_bytes().to_vec()));
    let plain: Vec<u8> = (0..70_000u32).map(|n| (n % 251) as u8).collect();
    let (aid, cipher) = attachment::seal_all(&key, &plain).expect("seals");
    let mut expect = Vec::new();
    for (i, (chunk, last)) in [(&plain[..65_536], 0u8), (&plain[65_536..], 1)]
        .into_iter()
        .enumerate()
    {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(i as u64).to_be_bytes());
        nonce[11] = last;
        expect.extend(
            chacha20poly1305::ChaCha20Poly1305::new((&[0x0a; 32]).into())
                .encrypt(
                    (&nonce).into(),
                    AeadPayload {
                        msg: chunk,
                        aad: b"liaison/v1/attachment",
                    },
                )
                .expect("encrypts"),
        );
    }
    assert_eq!(cipher, expect);
    assert_eq!(
        aid.as_bytes(),
        &derive("liaison/v1/attachment-id", &[&cipher])
    );
    v.push(("attachment-id-two-chunks", aid.as_bytes().to_vec()));

    // ----- a removal with the owner's cut-off (the change alone) -----------------------------
    let member_id = member.node_id();
    let change = Change::RemoveWithCutoff {
        member: member_id,
        cutoff: vec![Cutoff { epoch: 2, seq: 5 }, Cutoff { epoch: 4, seq: 1 }],
    };
    let mut encoded = codec::encode(&change).expect("encodes");
    encoded.remove(0); // A change is part of a control event's body: no version byte.
    let expect = w
        .u32(5) // Change::RemoveWithCutoff
        .raw(member_id.as_bytes())
        .u64(2)
        .u64(2)
        .u64(5)
        .u64(4)
        .u64(1)
        .done();
    assert_eq!(encoded, expect);
    v.push(("change-remove-with-cutoff", encoded));

    // ----- attachment transfer (§13) ----------------------------------------------------------
    let request = ChunkRequest {
        attachment: aid,
        message: liaison_protocol::MessageId::from(id),
        first: 1,
        count: 1,
    };
    let bytes = request.to_bytes().expect("encodes");
    assert_eq!(
        bytes,
        W::default()
            .u8(1)
            .raw(aid.as_bytes())
            .raw(&id)
            .u64(1)
            .u32(1)
            .done()
    );
    v.push(("chunk-request", bytes));
    let total = cipher.len() as u64;
    assert_eq!(total, 70_032);
    assert_eq!(
        transfer::range_len(plain.len() as u64, 1, 1),
        Some(total - 65_552)
    );
    let chunks = ChunkResponse::Chunks {
        first: 1,
        count: 1,
        total,
    }
    .to_bytes()
    .expect("encodes");
    assert_eq!(
        chunks,
        W::default().u8(1).u32(0).u64(1).u32(1).u64(total).done()
    );
    v.push(("chunk-response-chunks", chunks));
    for (name, response, index) in [
        ("chunk-response-missing", ChunkResponse::Missing, 1),
        ("chunk-response-unavailable", ChunkResponse::Unavailable, 2),
    ] {
        let bytes = response.to_bytes().expect("encodes");
        assert_eq!(bytes, W::default().u8(1).u32(index).done());
        v.push((name, bytes));
    }
    v
}

#[test]
fn wire_md_test_vectors_match() {
    let computed = compute();
    if std::env::var_os("LIAISON_PRINT_VECTORS").is_some() {
        for (name, bytes) in &computed {
            println!("```hex {name}");
            for chunk in bytes.chunks(32) {
                println!("{}", hex::encode(chunk));
            }
            println!("```\n");
        }
    }
    let documented = document_vectors();
    let names: Vec<&str> = computed.iter().map(|(n, _)| *n).collect();
    let listed: Vec<&str> = documented.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted, "WIRE.md lists other vectors than computed");
    for (name, bytes) in computed {
        assert_eq!(
            hex::encode(&documented[name]),
            hex::encode(&bytes),
            "vector {name} differs from WIRE.md"
        );
    }
}

#[test]
fn wire_md_states_the_constants() {
    // The domain strings, contexts and limits WIRE.md names are the crate's.
    for needle in [
        "liaison/v1/descriptor\\0",
        "liaison/v1/control\\0",
        "liaison/v1/envelope\\0",
        "liaison/v1/receipt\\0",
        "liaison/v1/roster\\0",
        "liaison/v1/rotation\\0",
        "liaison/v1/control-hash",
        "liaison/v1/epoch-key",
        "liaison/v1/message-id",
        "liaison/v1/message-key",
        "liaison/v1/key-commitment",
        "liaison/v1/ciphertext",
        "liaison/v1/attachment-id",
        "liaison/v1/attachment",
    ] {
        assert!(WIRE_MD.contains(needle), "WIRE.md lacks {needle}");
    }
    assert_eq!(
        liaison_protocol::identity::DESCRIPTOR_DOMAIN,
        b"liaison/v1/descriptor\0"
    );
    assert_eq!(
        liaison_protocol::group::CONTROL_DOMAIN,
        b"liaison/v1/control\0"
    );
    assert_eq!(message::ENVELOPE_DOMAIN, b"liaison/v1/envelope\0");
    assert_eq!(
        liaison_protocol::roster::ROSTER_DOMAIN,
        b"liaison/v1/roster\0"
    );
    assert_eq!(
        liaison_protocol::roster::ROTATION_DOMAIN,
        b"liaison/v1/rotation\0"
    );
    assert_eq!(
        liaison_protocol::receipt::RECEIPT_DOMAIN,
        b"liaison/v1/receipt\0"
    );
    assert_eq!(
        liaison_protocol::group::CONTROL_HASH_CONTEXT,
        "liaison/v1/control-hash"
    );
    assert_eq!(
        liaison_protocol::group::EPOCH_KEY_INFO,
        b"liaison/v1/epoch-key"
    );
    assert_eq!(message::MESSAGE_ID_CONTEXT, "liaison/v1/message-id");
    assert_eq!(message::MESSAGE_KEY_CONTEXT, "liaison/v1/message-key");
    assert_eq!(message::COMMITMENT_CONTEXT, "liaison/v1/key-commitment");
    assert_eq!(message::CIPHERTEXT_CONTEXT, "liaison/v1/ciphertext");
    assert_eq!(
        attachment::ATTACHMENT_ID_CONTEXT,
        "liaison/v1/attachment-id"
    );
    assert_eq!(attachment::CHUNK_AAD, b"liaison/v1/attachment");
    assert_eq!(attachment::CHUNK_LEN, 65_536);
    assert_eq!(attachment::MAX_ATTACHMENT_LEN, 52_428_800);
    for (name, value) in [
        ("MAX_RANGE_CHUNKS", transfer::MAX_RANGE_CHUNKS as usize),
        ("MAX_REQUEST_LEN", transfer::MAX_REQUEST_LEN),
        ("MAX_RESPONSE_LEN", transfer::MAX_RESPONSE_LEN),
    ] {
        let found = WIRE_MD
            .lines()
            .any(|l| l.starts_with(&format!("| `{name}`")) && l.contains(&format!("| {value} ")));
        assert!(found, "WIRE.md lacks the row of {name} = {value}");
    }
    for (code, kind) in [
        (0, "note"),
        (1, "seizure"),
        (2, "cultural_object"),
        (3, "alert"),
        (4, "request"),
        (5, "feedback"),
    ] {
        let row = format!("| {code}    | `{kind}`");
        assert!(WIRE_MD.contains(&row), "WIRE.md lacks the row {row}");
        let k: liaison_protocol::RecordKind = kind.parse().expect("a kind");
        assert_eq!(k.code(), code);
    }
    for (name, value) in [
        ("MAX_FRAME_LEN", codec::MAX_FRAME_LEN),
        ("MAX_ENVELOPE_LEN", codec::MAX_ENVELOPE_LEN),
        ("MAX_CONTENT_LEN", codec::MAX_CONTENT_LEN),
        ("MAX_CONTROL_LEN", codec::MAX_CONTROL_LEN),
        ("MAX_DESCRIPTOR_LEN", codec::MAX_DESCRIPTOR_LEN),
        ("MAX_RECEIPT_LEN", codec::MAX_RECEIPT_LEN),
        ("MAX_ROSTER_LEN", codec::MAX_ROSTER_LEN),
        ("MAX_ROTATION_LEN", codec::MAX_ROTATION_LEN),
    ] {
        let row = format!("| `{name}` | {value} |");
        assert!(WIRE_MD.contains(&row), "WIRE.md lacks the row {row}");
    }
}

#[test]
fn the_test_rng_is_the_chacha20_keystream() {
    // WIRE.md §9: the RNG is the ChaCha20 keystream of RFC 8439 with key = seed, a zero nonce
    // and the block counter from 0, consumed in order; every draw is a multiple of 4 bytes.
    for seed in [GENESIS_RNG_SEED, SEAL_RNG_SEED, [0xa5; 32]] {
        let mut keystream = vec![0u8; 4096];
        chacha20::ChaCha20::new(&seed.into(), &[0u8; 12].into()).apply_keystream(&mut keystream);
        let mut rng = ChaCha20Rng::from_seed(seed);
        let mut drawn = Vec::new();
        for size in [32usize, 24, 32, 32, 16].iter().cycle() {
            if drawn.len() + size > keystream.len() {
                break;
            }
            let mut out = vec![0u8; *size];
            rng.fill_bytes(&mut out);
            drawn.extend_from_slice(&out);
        }
        assert_eq!(drawn[..], keystream[..drawn.len()]);
    }
}

#[test]
fn non_canonical_point_encodings_are_refused_as_node_ids() {
    // WIRE.md §2.1: y in [p, 2^255) with either sign bit, and the two encodings of x = 0 with
    // the sign bit set. Some decode to points of large order, so the small-order rule alone
    // would let them through; the canonical rule refuses every one.
    let mut encodings = Vec::new();
    for t in 0u8..19 {
        // p + t = 2^255 - 19 + t, little-endian, then both sign bits.
        let mut y = [0xffu8; 32];
        y[0] = 0xed + t;
        y[31] = 0x7f;
        encodings.push(y);
        let mut negative = y;
        negative[31] |= 0x80;
        encodings.push(negative);
    }
    let mut one = [0u8; 32];
    one[0] = 1;
    one[31] = 0x80;
    encodings.push(one);
    let mut minus_one = [0xffu8; 32];
    minus_one[0] = 0xec;
    encodings.push(minus_one); // y = p - 1 with the sign bit set (0x7f | 0x80 = 0xff)
    let mut large_order = 0;
    for bytes in encodings {
        if let Some(point) = CompressedEdwardsY(bytes).decompress() {
            if !point.is_small_order() {
                large_order += 1;
            }
            assert_ne!(point.compress().to_bytes(), bytes);
        }
        assert!(NodeId::from_bytes(bytes).is_err(), "{}", hex::encode(bytes));
    }
    assert!(large_order > 0);
}

/// One value of a ```` ```fields ```` line: quoted strings (escapes `\u{HEX}`, `\t`, `\n`,
/// `\r`, `\"`, `\\`), each optionally followed by `* N`, concatenated.
fn parse_field_value(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => continue,
            '"' => {}
            other => panic!("unexpected {other:?} in {text}"),
        }
        let mut piece = String::new();
        loop {
            match chars
                .next()
                .unwrap_or_else(|| panic!("unterminated: {text}"))
            {
                '"' => break,
                '\\' => match chars.next() {
                    Some('t') => piece.push('\t'),
                    Some('n') => piece.push('\n'),
                    Some('r') => piece.push('\r'),
                    Some('"') => piece.push('"'),
                    Some('\\') => piece.push('\\'),
                    Some('u') => {
                        assert_eq!(chars.next(), Some('{'), "{text}");
                        let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                        let code = u32::from_str_radix(&hex, 16).expect("hex");
                        piece.push(char::from_u32(code).expect("a character"));
                    }
                    other => panic!("unknown escape {other:?} in {text}"),
                },
                c => piece.push(c),
            }
        }
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        let mut times = 1;
        if chars.peek() == Some(&'*') {
            chars.next();
            while chars.peek() == Some(&' ') {
                chars.next();
            }
            let mut n = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                n.push(d);
            }
            times = n.parse().expect("a count");
        }
        out.push_str(&piece.repeat(times));
    }
    out
}

/// Whether the reference implementation accepts `value` under the WIRE.md §2.3 rule `rule`.
fn field_rule_accepts(rule: &str, value: &str) -> bool {
    use liaison_protocol::fields;
    let text = |subject: &str, body: &str| Content {
        officer: "j.doe".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: subject.into(),
            body: body.into(),
        },
    };
    match rule {
        "node-name" => fields::check_node_name(value).is_ok(),
        "printable" => {
            let group = fields::check_group_name(value).is_ok();
            assert_eq!(group, fields::check_officer_name(value).is_ok());
            assert_eq!(
                group,
                fields::check_printable(value, 1, fields::MAX_TEXT_LEN).is_ok()
            );
            group
        }
        "address" => fields::check_address(value).is_ok(),
        "country" => fields::check_country(value).is_ok(),
        "subject" => text(value, "").check().is_ok(),
        "text-body" => text("s", value).check().is_ok(),
        "media-type" => attachment::check_media_type(value).is_ok(),
        "file-name" => attachment::check_name(value).is_ok(),
        // The value rules of records (§10).
        "short-text" | "free-text" => {
            let max = if rule == "short-text" {
                record::NAME_MAX
            } else {
                record::TEXT_MAX
            };
            let mut c = Checker::new();
            c.text_here(value, 1, max);
            c.finish().is_ok()
        }
        "country-code" => check::country(value).is_ok(),
        "currency" => check::currency(value).is_ok(),
        "date" => check::date(value).is_ok(),
        "decimal" => check::decimal(value).is_ok(),
        "container" => check::container_number(value).is_ok(),
        "imo" => check::imo_number(value).is_ok(),
        "air-waybill" => check::air_waybill(value).is_ok(),
        "hs-code" => check::hs_code(value).is_ok(),
        "locode" => check::locode(value).is_ok(),
        "voyage" => check::reference(value, 17).is_ok(),
        "bill-of-lading" => check::reference(value, 35).is_ok(),
        "message-ref" => {
            let mut c = Checker::new();
            MessageRef::from(value).check(&mut c);
            c.finish().is_ok()
        }
        other => panic!("WIRE.md names an unknown field rule {other}"),
    }
}

#[test]
fn wire_md_field_rule_examples_hold() {
    // Every line of the ```fields blocks of WIRE.md §2.3, against the crate's checks; every
    // rule has examples both ways.
    let mut seen: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut lines = WIRE_MD.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```fields" {
            continue;
        }
        for line in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            let (rule, rest) = line.split_once(' ').expect("a rule");
            let (verdict, value) = rest
                .trim_start()
                .split_once(' ')
                .expect("a verdict and a value");
            let value = parse_field_value(value);
            let expected = match verdict {
                "ok" => true,
                "no" => false,
                other => panic!("verdict {other:?} is neither ok nor no"),
            };
            assert_eq!(
                field_rule_accepts(rule, &value),
                expected,
                "WIRE.md says {rule} {verdict} {value:?}"
            );
            let counts = seen.entry(rule.to_owned()).or_default();
            if expected {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
    }
    let rules: Vec<&str> = seen.keys().map(String::as_str).collect();
    assert_eq!(
        rules,
        [
            "address",
            "air-waybill",
            "bill-of-lading",
            "container",
            "country",
            "country-code",
            "currency",
            "date",
            "decimal",
            "file-name",
            "free-text",
            "hs-code",
            "imo",
            "locode",
            "media-type",
            "message-ref",
            "node-name",
            "printable",
            "short-text",
            "subject",
            "text-body",
            "voyage"
        ]
    );
    for (rule, (ok, no)) in seen {
        assert!(ok > 0 && no > 0, "{rule}: examples both ways");
    }
    // The parser itself, so that a line cannot pass by being read wrongly.
    assert_eq!(parse_field_value(r#""a" * 3 "\u{e9}\t""#), "aaa\u{e9}\t");
    assert_eq!(parse_field_value(r#""\\\"""#), "\\\"");
}

/// The ```` ```codes NAME ```` blocks of WIRE.md: whitespace-separated codes.
fn document_codes(name: &str) -> Vec<String> {
    let mut lines = WIRE_MD.lines();
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.trim() != format!("```codes {name}") {
            continue;
        }
        for line in lines.by_ref() {
            if line.trim() == "```" {
                break;
            }
            out.extend(line.split_whitespace().map(str::to_owned));
        }
    }
    out
}

/// Every string of `len` capital letters, in order.
fn capital_strings(len: u32) -> Vec<String> {
    (0..26u32.pow(len))
        .map(|mut n| {
            let mut s = vec![b'A'; len as usize];
            for slot in s.iter_mut().rev() {
                *slot = b'A' + (n % 26) as u8;
                n /= 26;
            }
            String::from_utf8(s).expect("ASCII")
        })
        .collect()
}

#[test]
fn wire_md_lists_the_country_and_currency_codes_accepted() {
    // WIRE.md §10: the lists are exactly what the record checks accept among all strings of
    // two (countries) and three (currencies) capital letters.
    let countries: Vec<String> = capital_strings(2)
        .into_iter()
        .filter(|c| check::country(c).is_ok())
        .collect();
    let currencies: Vec<String> = capital_strings(3)
        .into_iter()
        .filter(|c| check::currency(c).is_ok())
        .collect();
    if std::env::var_os("LIAISON_PRINT_VECTORS").is_some() {
        for (name, codes) in [("country", &countries), ("currency", &currencies)] {
            println!("```codes {name}");
            for row in codes.chunks(16) {
                println!("{}", row.join(" "));
            }
            println!("```\n");
        }
    }
    assert_eq!(document_codes("country"), countries);
    assert_eq!(document_codes("currency"), currencies);
    assert_eq!(countries.len(), 249);
}

#[test]
fn wire_md_has_a_vector_of_every_frame_and_every_change() {
    // Every variant of `Frame` and of `Change` is shown by at least one vector of WIRE.md §9,
    // so a variant appended later without a vector fails here.
    let documented = document_vectors();
    let mut frames = std::collections::BTreeSet::new();
    for (name, bytes) in &documented {
        let Some(kind) = name.strip_prefix("frame-") else {
            continue;
        };
        let frame = Frame::decode(bytes).expect("a frame vector decodes");
        assert_eq!(frame.kind(), kind, "{name}");
        let index = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes"));
        frames.insert(index);
    }
    assert_eq!(frames, (0..10).collect());
    // The next index is not a frame yet: once it is, it needs a vector (and the range above).
    let mut unknown = documented["frame-ack"].clone();
    unknown[1..5].copy_from_slice(&10u32.to_be_bytes());
    assert!(Frame::decode(&unknown).is_err());

    let mut changes = std::collections::BTreeSet::new();
    for (name, bytes) in &documented {
        if name != "genesis" && !name.starts_with("control-") || name.ends_with("-chain-hash") {
            continue;
        }
        let (_, event) = decode_control(bytes).expect("a control vector decodes");
        changes.insert(match event.change {
            Change::Create { .. } => 0,
            Change::Add { .. } => 1,
            Change::Remove { .. } => 2,
            Change::Rotate => 3,
            Change::Rekey { .. } => 4,
            Change::RemoveWithCutoff { .. } => 5,
        });
    }
    assert_eq!(changes, (0..6).collect());
}

#[test]
fn wire_md_states_the_item_limits() {
    // The limits WIRE.md states in prose (§1, §4, §5, §6, §12), against the crate's constants;
    // whitespace is collapsed, as the prose wraps anywhere.
    use liaison_protocol::{frame, group, identity, receipt, roster};
    let text: String = WIRE_MD.split_whitespace().collect::<Vec<_>>().join(" ");
    for phrase in [
        format!(
            "at most {} envelopes in a `Push`",
            frame::MAX_FRAME_ENVELOPES
        ),
        format!(
            "{} control events in a `Control`",
            frame::MAX_FRAME_CONTROLS
        ),
        format!("{} ids in an `Ack`", frame::MAX_FRAME_ACKS),
        format!("{} receipts in a `Receipts`", frame::MAX_FRAME_RECEIPTS),
        format!(
            "{} descriptors in a `Directory`",
            frame::MAX_FRAME_DESCRIPTORS
        ),
        format!("{} rosters in a `Roster`", frame::MAX_FRAME_ROSTERS),
        format!("{} statements in a `Rotation`", frame::MAX_FRAME_ROTATIONS),
        format!(
            "at most {} vector entries and {} held ranges",
            frame::MAX_VECTOR_ENTRIES,
            frame::MAX_HELD_RANGES
        ),
        format!("at most {} addresses", identity::MAX_ADDRESSES),
        format!("at most {} members", group::MAX_MEMBERS),
        format!("at most {} recipients", message::MAX_RECIPIENTS),
        format!("a subject is at most {} bytes", message::MAX_SUBJECT_LEN),
        format!("1 to {} ids", receipt::MAX_RECEIPT_MESSAGES),
        format!(
            "at most {} entries and at most {} revocations",
            roster::MAX_ROSTER_ENTRIES,
            roster::MAX_ROSTER_ENTRIES
        ),
        format!("at most {} `addresses`", roster::MAX_ENTRY_ADDRESSES),
        format!("printable text of 0 to {} bytes", roster::MAX_REASON_LEN),
        format!("at most {} identity rotations", roster::MAX_ROTATIONS),
    ] {
        assert!(text.contains(&phrase), "WIRE.md lacks \"{phrase}\"");
    }
}
