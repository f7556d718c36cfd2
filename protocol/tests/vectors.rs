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

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use ed25519_dalek::{Signer, SigningKey};
use hpke::{Deserializable, Kem as _, OpModeR, Serializable};
use liaison_protocol::attachment::{self, AttachmentId, AttachmentKey, AttachmentRef};
use liaison_protocol::codec;
use liaison_protocol::frame::{HeldRange, SyncRequest, VectorEntry};
use liaison_protocol::group::{decode_control, Change, Cutoff, LocalKeys};
use liaison_protocol::identity::Descriptor;
use liaison_protocol::message::{self, Draft};
use liaison_protocol::receipt::Receipt;
use liaison_protocol::record::codes::MessageRef;
use liaison_protocol::record::{Feedback, Outcome, Record};
use liaison_protocol::{
    Content, ExchangeSecret, Frame, GroupId, GroupState, Handling, IdentityKey, Payload, Timestamp,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

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
const GENESIS_RNG_SEED: [u8; 32] = [0x05; 32];
const SEAL_RNG_SEED: [u8; 32] = [0x07; 32];
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
    v.push(("descriptor", desc_bytes));

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
        .u32(4) // Change::RemoveWithCutoff
        .raw(member_id.as_bytes())
        .u64(2)
        .u64(2)
        .u64(5)
        .u64(4)
        .u64(1)
        .done();
    assert_eq!(encoded, expect);
    v.push(("change-remove-with-cutoff", encoded));
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
    ] {
        let row = format!("| `{name}` | {value} |");
        assert!(WIRE_MD.contains(&row), "WIRE.md lacks the row {row}");
    }
}
