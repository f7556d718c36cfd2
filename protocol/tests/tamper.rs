//! Tampering is detected, and only members of an epoch can write into it or read it.
//!
//! Forgeries that `message::seal` refuses to make are built by hand here, the way an attacker
//! with the same knowledge would: a non-member or a reader *forges a group state* with the real
//! group's id in which it is the owner (so `seal` works and produces a perfectly well-formed,
//! correctly signed envelope for that group id and epoch), or *re-signs a genuine header* under
//! its own name, or — for a reader, who holds the real epoch key — *builds the envelope from
//! the wire specification* (WIRE.md) with the real key, so that the only thing wrong with it
//! is the author's role.

use ed25519_dalek::Signer;
use hpke::{aead::ChaCha20Poly1305 as HpkeAead, kdf::HkdfSha256, kem::X25519HkdfSha256};
use hpke::{Deserializable, OpModeR};
use liaison_protocol::codec;
use liaison_protocol::group::{decode_control, Change, LocalKeys, EPOCH_KEY_INFO};
use liaison_protocol::message::{
    self, Draft, Envelope, Header, ENVELOPE_DOMAIN, HEADER_VERSION, MESSAGE_KEY_CONTEXT,
};
use liaison_protocol::{
    Content, ExchangeSecret, GroupId, GroupState, Handling, IdentityKey, NodeId, Payload,
    Rejection, Role, Timestamp, UsageError,
};
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const T0: Timestamp = Timestamp(1_767_225_600_000);

struct Node {
    identity: IdentityKey,
    exchange: ExchangeSecret,
}

impl Node {
    fn new(n: u8) -> Node {
        Node {
            identity: IdentityKey::from_seed(&[n; 32]),
            exchange: ExchangeSecret::from_seed(&[n ^ 0x80; 32]),
        }
    }
    fn id(&self) -> NodeId {
        self.identity.node_id()
    }
    fn local(&self) -> Option<LocalKeys<'_>> {
        Some(LocalKeys {
            node: self.id(),
            exchange: &self.exchange,
        })
    }
}

/// A group's chain of control events, as made by its owner.
struct Chain {
    events: Vec<Vec<u8>>,
}

impl Chain {
    fn create(owner: &Node, id: GroupId, rng: &mut ChaCha20Rng) -> Chain {
        let genesis = GroupState::create(
            &owner.identity,
            "owner",
            owner.exchange.public(),
            id,
            "Operation Heritage 2026",
            T0,
            rng,
        )
        .expect("creates");
        Chain {
            events: vec![genesis],
        }
    }

    /// `node`'s view of the group after the first `upto` events.
    fn view(&self, node: &Node, upto: usize) -> GroupState {
        let mut state = GroupState::from_genesis(&self.events[0], node.local()).expect("genesis");
        for e in &self.events[1..upto] {
            state.apply(e, node.local()).expect("applies");
        }
        state
    }

    fn latest(&self, node: &Node) -> GroupState {
        self.view(node, self.events.len())
    }

    fn push(&mut self, owner: &Node, change: Change, rng: &mut ChaCha20Rng) -> u64 {
        let state = self.latest(owner);
        let event = state
            .propose(&owner.identity, change, T0, rng)
            .expect("proposes");
        self.events.push(event);
        self.events.len() as u64
    }

    fn add(&mut self, owner: &Node, member: &Node, role: Role, rng: &mut ChaCha20Rng) -> u64 {
        self.push(
            owner,
            Change::Add {
                member: member.id(),
                name: format!("node-{}", member.id().short()),
                role,
                exchange_key: member.exchange.public(),
            },
            rng,
        )
    }
}

fn content(text: &str) -> Content {
    Content {
        officer: "j.doe".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: text.into(),
            body: "seizure of 3 icons at the border".into(),
        },
    }
}

fn seal(state: &GroupState, author: &Node, seq: u64, rng: &mut ChaCha20Rng) -> Vec<u8> {
    message::seal(
        state,
        &author.identity,
        Draft {
            seq,
            now: T0,
            handling: Handling::Amber,
            expires_at: None,
            content: &content("hi"),
        },
        rng,
    )
    .expect("seals")
    .bytes
}

/// Re-encodes `header` and signs it as `signer`, keeping the ciphertext.
fn resign(header: &Header, ciphertext: Vec<u8>, signer: &IdentityKey) -> Vec<u8> {
    let header_bytes = codec::encode(header).expect("encodes")[1..].to_vec();
    let mut input = ENVELOPE_DOMAIN.to_vec();
    input.extend_from_slice(&header_bytes);
    let signature = signer.signing_key().sign(&input).to_bytes();
    codec::encode(&Envelope {
        header: header_bytes,
        signature,
        ciphertext,
    })
    .expect("encodes")
}

fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// Unwraps `node`'s copy of the key of epoch `seq` from the control event, by WIRE.md.
fn unwrap_epoch_key(event: &[u8], node: &Node) -> [u8; 32] {
    let (_, ev) = decode_control(event).expect("decodes");
    let wrapped = ev
        .keys
        .iter()
        .find(|k| k.member == node.id())
        .expect("a key for the node");
    let sk = <X25519HkdfSha256 as hpke::Kem>::PrivateKey::from_bytes(&node.exchange.to_bytes()[..])
        .expect("secret");
    let enc = <X25519HkdfSha256 as hpke::Kem>::EncappedKey::from_bytes(&wrapped.enc).expect("enc");
    let mut info = EPOCH_KEY_INFO.to_vec();
    info.extend_from_slice(ev.group.as_bytes());
    info.extend_from_slice(&ev.seq.to_be_bytes());
    let key = hpke::single_shot_open::<HpkeAead, HkdfSha256, X25519HkdfSha256>(
        &OpModeR::Base,
        &sk,
        &enc,
        &info,
        &wrapped.ciphertext,
        node.id().as_bytes(),
    )
    .expect("unwraps");
    key.try_into().expect("32 bytes")
}

/// Builds a complete envelope from the wire specification with an epoch key in hand.
fn build_envelope(
    epoch_key: &[u8; 32],
    group: GroupId,
    epoch: u64,
    author: &Node,
    seq: u64,
    body: &Content,
) -> Vec<u8> {
    use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
    let nonce = [0x5a; 24];
    let msg_key = derive(
        MESSAGE_KEY_CONTEXT,
        &[
            epoch_key,
            &nonce,
            group.as_bytes(),
            &epoch.to_be_bytes(),
            author.id().as_bytes(),
            &seq.to_be_bytes(),
        ],
    );
    let mut header = Header {
        version: HEADER_VERSION,
        group,
        epoch,
        author: author.id(),
        seq,
        created_at: T0,
        handling: Handling::Green,
        expires_at: None,
        nonce,
        commitment: derive(message::COMMITMENT_CONTEXT, &[&msg_key]),
        ciphertext_hash: [0; 32],
    };
    let pre = codec::encode(&header).expect("encodes")[1..].to_vec();
    let aad = &pre[..pre.len() - 32];
    let plain = codec::encode(body).expect("encodes");
    let ciphertext = chacha20poly1305::ChaCha20Poly1305::new((&msg_key).into())
        .encrypt((&[0u8; 12]).into(), AeadPayload { msg: &plain, aad })
        .expect("encrypts");
    header.ciphertext_hash = derive(message::CIPHERTEXT_CONTEXT, &[&ciphertext]);
    resign(&header, ciphertext, &author.identity)
}

/// Owner O, member M, reader R, and a node X that is never a member.
struct Fixture {
    rng: ChaCha20Rng,
    gid: GroupId,
    owner: Node,
    member: Node,
    reader: Node,
    outsider: Node,
    chain: Chain,
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::from_seed([42; 32]);
    let owner = Node::new(1);
    let member = Node::new(2);
    let reader = Node::new(3);
    let outsider = Node::new(4);
    let gid = GroupId::from([0x11; 16]);
    let mut chain = Chain::create(&owner, gid, &mut rng);
    chain.add(&owner, &member, Role::Member, &mut rng);
    chain.add(&owner, &reader, Role::Reader, &mut rng);
    Fixture {
        rng,
        gid,
        owner,
        member,
        reader,
        outsider,
        chain,
    }
}

/// The byte ranges of an encoded envelope: (header, signature, ciphertext).
fn regions(bytes: &[u8]) -> (std::ops::Range<usize>, std::ops::Range<usize>, usize) {
    let hlen = u64::from_be_bytes(bytes[1..9].try_into().expect("8")) as usize;
    let header = 9..9 + hlen;
    let sig = header.end..header.end + 64;
    let ct_start = sig.end + 8;
    (header, sig, ct_start)
}

fn check_flip(bytes: &[u8], i: usize, xor: u8, group: &GroupState) -> Result<(), String> {
    let mut t = bytes.to_vec();
    t[i] ^= xor;
    let (header, sig, ct_start) = regions(bytes);
    let got = message::verify_and_open(&t, group).map(|(v, c)| (v.id, c));
    let ok = match &got {
        Ok(_) => false,
        // The version byte and the two length prefixes: the encoding breaks.
        Err(Rejection::Decode(_)) if !header.contains(&i) && !sig.contains(&i) && i < ct_start => {
            true
        }
        // Inside the header: the header no longer decodes, or its signature fails.
        Err(Rejection::Decode(_) | Rejection::InvalidHeader(_) | Rejection::BadSignature(_))
            if header.contains(&i) =>
        {
            true
        }
        Err(Rejection::BadSignature("envelope")) if sig.contains(&i) => true,
        Err(Rejection::CiphertextMismatch) if i >= ct_start => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("byte {i} ^ {xor:#04x}: {got:?}"))
    }
}

#[test]
fn every_single_byte_flip_is_detected() {
    let mut f = fixture();
    let state = f.chain.latest(&f.member);
    let bytes = seal(&state, &f.member, 1, &mut f.rng);
    let receiver = f.chain.latest(&f.owner);
    assert!(message::verify_and_open(&bytes, &receiver).is_ok());
    for i in 0..bytes.len() {
        for xor in [0x01, 0x80, 0xff] {
            check_flip(&bytes, i, xor, &receiver).expect("tampering detected");
        }
    }
    // Cutting the envelope short anywhere fails too.
    for n in 0..bytes.len() {
        assert!(message::verify_and_open(&bytes[..n], &receiver).is_err());
    }
}

#[test]
fn the_header_alone_reads_as_the_whole_envelope_does() {
    let mut f = fixture();
    let state = f.chain.latest(&f.member);
    let bytes = seal(&state, &f.member, 7, &mut f.rng);
    let (_, header, _) = message::decode(&bytes).expect("decode");
    assert_eq!(message::decode_header(&bytes), Ok(header.clone()));
    // Only the header is read: what follows it may be cut off.
    let (head, _, _) = regions(&bytes);
    assert_eq!(message::decode_header(&bytes[..head.end]), Ok(header));
    // A header cut short, a wrong version byte or a header that does not decode are errors.
    assert!(message::decode_header(&bytes[..head.end - 1]).is_err());
    assert!(message::decode_header(&[]).is_err());
    let mut other = bytes.clone();
    other[0] ^= 0xff;
    assert!(message::decode_header(&other).is_err());
    let mut broken = bytes.clone();
    broken[head.start] ^= 0xff;
    assert!(message::decode_header(&broken).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any position, any non-zero change, checked by a member and by the reader.
    #[test]
    fn any_byte_change_is_detected(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut f = fixture();
        let state = f.chain.latest(&f.member);
        let bytes = seal(&state, &f.member, 1, &mut f.rng);
        let i = at.index(bytes.len());
        for node in [&f.owner, &f.reader] {
            let view = f.chain.latest(node);
            prop_assert_eq!(check_flip(&bytes, i, xor, &view), Ok(()));
        }
    }
}

#[test]
fn a_non_member_cannot_post() {
    let mut f = fixture();
    let real = f.chain.latest(&f.owner);
    assert_eq!(real.epoch(), 3);

    // seal refuses: the outsider is not in the group.
    let outsider_view = f.chain.latest(&f.outsider);
    assert!(matches!(
        message::seal(
            &outsider_view,
            &f.outsider.identity,
            Draft {
                seq: 1,
                now: T0,
                handling: Handling::Red,
                expires_at: None,
                content: &content("x")
            },
            &mut f.rng
        ),
        Err(UsageError::NotAMember(_))
    ));
    assert_eq!(outsider_view.epoch_key(3).map(|_| ()), None);

    // Forgery 1: a group state with the real id in which the outsider is the owner, advanced
    // to the real epoch (and one beyond), so that `seal` makes a well-formed signed envelope.
    let mut forged = Chain::create(&f.outsider, f.gid, &mut f.rng);
    forged.push(&f.outsider, Change::Rotate, &mut f.rng);
    forged.push(&f.outsider, Change::Rotate, &mut f.rng);
    let forged_state = forged.latest(&f.outsider);
    assert_eq!(forged_state.id(), f.gid);
    assert_eq!(forged_state.epoch(), 3);
    let fake = seal(&forged_state, &f.outsider, 1, &mut f.rng);
    for node in [&f.owner, &f.member, &f.reader] {
        assert_eq!(
            message::verify_and_open(&fake, &f.chain.latest(node)).map(|_| ()),
            Err(Rejection::NotAMember {
                group: f.gid,
                author: f.outsider.id(),
                epoch: 3
            })
        );
    }
    forged.push(&f.outsider, Change::Rotate, &mut f.rng);
    let ahead = seal(&forged.latest(&f.outsider), &f.outsider, 1, &mut f.rng);
    assert_eq!(
        message::verify_and_open(&ahead, &real).map(|_| ()),
        Err(Rejection::UnknownEpoch {
            group: f.gid,
            epoch: 4
        })
    );

    // Forgery 2: a genuine member's header re-signed under the outsider's name.
    let genuine = seal(&f.chain.latest(&f.member), &f.member, 1, &mut f.rng);
    let (env, mut header, _) = message::decode(&genuine).expect("decodes");
    header.author = f.outsider.id();
    let resigned = resign(&header, env.ciphertext, &f.outsider.identity);
    assert!(message::verify(&resigned, &real).is_err());
    assert_eq!(
        message::verify_and_open(&resigned, &real).map(|_| ()),
        Err(Rejection::NotAMember {
            group: f.gid,
            author: f.outsider.id(),
            epoch: 3
        })
    );

    // Forgery 3: the genuine header, author unchanged, signed by the outsider's key.
    let (env, header, _) = message::decode(&genuine).expect("decodes");
    let wrong_key = resign(&header, env.ciphertext, &f.outsider.identity);
    assert_eq!(
        message::verify_and_open(&wrong_key, &real).map(|_| ()),
        Err(Rejection::BadSignature("envelope"))
    );

    // Forgery 4: a forged message into an old epoch is refused just the same.
    let old = Chain::create(&f.outsider, f.gid, &mut f.rng);
    let first = seal(&old.latest(&f.outsider), &f.outsider, 1, &mut f.rng);
    assert!(matches!(
        message::verify_and_open(&first, &real),
        Err(Rejection::NotAMember { epoch: 1, .. })
    ));
}

#[test]
fn a_reader_cannot_post() {
    let mut f = fixture();
    let reader_view = f.chain.latest(&f.reader);
    assert_eq!(reader_view.role(&f.reader.id()), Some(Role::Reader));
    assert!(matches!(
        message::seal(
            &reader_view,
            &f.reader.identity,
            Draft {
                seq: 1,
                now: T0,
                handling: Handling::Clear,
                expires_at: None,
                content: &content("x")
            },
            &mut f.rng
        ),
        Err(UsageError::ReaderMayNotPost(_))
    ));

    // The reader holds the real epoch key: it builds an envelope from the wire spec with it.
    let epoch_key = unwrap_epoch_key(&f.chain.events[2], &f.reader);
    // The same construction by a member is accepted (so the builder is right) ...
    let epoch_key_m = unwrap_epoch_key(&f.chain.events[2], &f.member);
    assert_eq!(epoch_key, epoch_key_m);
    let by_member = build_envelope(&epoch_key, f.gid, 3, &f.member, 1, &content("ok"));
    let owner_view = f.chain.latest(&f.owner);
    let (_, opened) = message::verify_and_open(&by_member, &owner_view).expect("accepted");
    assert_eq!(opened, content("ok"));
    // ... and by the reader it is refused for the role alone.
    let by_reader = build_envelope(&epoch_key, f.gid, 3, &f.reader, 1, &content("no"));
    for node in [&f.owner, &f.member, &f.reader] {
        assert_eq!(
            message::verify_and_open(&by_reader, &f.chain.latest(node)).map(|_| ()),
            Err(Rejection::ReaderMayNotPost {
                group: f.gid,
                author: f.reader.id(),
                epoch: 3
            })
        );
    }

    // A forged state in which the reader is owner (and so a member) does not help either.
    let mut forged = Chain::create(&f.reader, f.gid, &mut f.rng);
    forged.push(&f.reader, Change::Rotate, &mut f.rng);
    forged.push(&f.reader, Change::Rotate, &mut f.rng);
    let fake = seal(&forged.latest(&f.reader), &f.reader, 1, &mut f.rng);
    assert!(matches!(
        message::verify_and_open(&fake, &owner_view),
        Err(Rejection::ReaderMayNotPost { epoch: 3, .. })
    ));
}

#[test]
fn a_removed_member_is_cut_off() {
    let mut f = fixture();
    let removed = Node::new(5);
    f.chain.add(&f.owner, &removed, Role::Member, &mut f.rng); // epoch 4
    let before = seal(&f.chain.latest(&f.member), &f.member, 1, &mut f.rng);
    let removal = f.chain.push(
        &f.owner,
        Change::Remove {
            member: removed.id(),
        },
        &mut f.rng,
    ); // epoch 5
    assert_eq!(removal, 5);
    let after = seal(&f.chain.latest(&f.member), &f.member, 1, &mut f.rng);
    let rotated = f.chain.push(&f.owner, Change::Rotate, &mut f.rng); // epoch 6
    let later = seal(&f.chain.latest(&f.owner), &f.owner, 1, &mut f.rng);

    // The removed node applies every event, including its own removal.
    let view = f.chain.latest(&removed);
    assert_eq!(view.epoch(), rotated);
    assert!(view.role(&removed.id()).is_none());
    assert!(view.epoch_key(4).is_some());
    assert!(view.epoch_key(5).is_none() && view.epoch_key(6).is_none());
    let (_, c) = message::verify_and_open(&before, &view).expect("its own epoch");
    assert_eq!(c, content("hi"));
    for (bytes, epoch) in [(&after, 5), (&later, 6)] {
        assert_eq!(
            message::verify_and_open(bytes, &view).map(|_| ()),
            Err(Rejection::NoEpochKey {
                group: f.gid,
                epoch
            })
        );
    }
    // A removed node that never got its removal event cannot even place them.
    let stale = f.chain.view(&removed, 4);
    assert_eq!(
        message::verify_and_open(&after, &stale).map(|_| ()),
        Err(Rejection::UnknownEpoch {
            group: f.gid,
            epoch: 5
        })
    );

    // It cannot post into the new epochs: seal refuses, and forgeries are refused.
    assert!(matches!(
        message::seal(
            &view,
            &removed.identity,
            Draft {
                seq: 1,
                now: T0,
                handling: Handling::Clear,
                expires_at: None,
                content: &content("x")
            },
            &mut f.rng
        ),
        Err(UsageError::NotAMember(_))
    ));
    let owner_view = f.chain.latest(&f.owner);
    let (env, mut header, _) = message::decode(&after).expect("decodes");
    header.author = removed.id();
    let resigned = resign(&header, env.ciphertext, &removed.identity);
    assert!(matches!(
        message::verify_and_open(&resigned, &owner_view),
        Err(Rejection::NotAMember { epoch: 5, .. })
    ));
    let mut forged = Chain::create(&removed, f.gid, &mut f.rng);
    for _ in 1..6 {
        forged.push(&removed, Change::Rotate, &mut f.rng);
    }
    let fake = seal(&forged.latest(&removed), &removed, 1, &mut f.rng);
    for node in [&f.owner, &f.member, &f.reader] {
        assert!(matches!(
            message::verify_and_open(&fake, &f.chain.latest(node)),
            Err(Rejection::NotAMember { epoch: 6, .. })
        ));
    }
    // Even with an old epoch key in hand, it cannot write a message into a new epoch.
    let old_key = unwrap_epoch_key(&f.chain.events[3], &removed);
    let built = build_envelope(&old_key, f.gid, 6, &removed, 1, &content("x"));
    assert!(matches!(
        message::verify_and_open(&built, &owner_view),
        Err(Rejection::NotAMember { epoch: 6, .. })
    ));
}

#[test]
fn a_later_member_reads_only_its_own_epochs() {
    let mut f = fixture();
    let early = seal(&f.chain.latest(&f.member), &f.member, 1, &mut f.rng); // epoch 3
    let late = Node::new(6);
    let added = f.chain.add(&f.owner, &late, Role::Reader, &mut f.rng); // epoch 4
    let first = seal(&f.chain.latest(&f.member), &f.member, 1, &mut f.rng);
    f.chain.push(&f.owner, Change::Rotate, &mut f.rng); // epoch 5
    let second = seal(&f.chain.latest(&f.owner), &f.owner, 1, &mut f.rng);

    let view = f.chain.latest(&late);
    assert_eq!(
        view.epochs_of(&late.id()).collect::<Vec<_>>(),
        vec![added, 5]
    );
    for epoch in 1..added {
        assert!(view.epoch_key(epoch).is_none());
    }
    assert_eq!(
        message::verify_and_open(&early, &view).map(|_| ()),
        Err(Rejection::NoEpochKey {
            group: f.gid,
            epoch: 3
        })
    );
    for bytes in [&first, &second] {
        let (_, c) = message::verify_and_open(bytes, &view).expect("opens");
        assert_eq!(c, content("hi"));
    }
}

#[test]
fn key_commitment_and_associated_data_are_bound() {
    let mut f = fixture();
    let bytes = seal(&f.chain.latest(&f.member), &f.member, 1, &mut f.rng);
    let receiver = f.chain.latest(&f.owner);
    let (env, header, _) = message::decode(&bytes).expect("decodes");

    // The author changes the commitment and signs again: the signature, membership and
    // ciphertext hash all check out, the commitment does not.
    let mut h = header.clone();
    h.commitment[0] ^= 1;
    let forged = resign(&h, env.ciphertext.clone(), &f.member.identity);
    assert!(message::verify(&forged, &receiver).is_ok());
    assert_eq!(
        message::verify_and_open(&forged, &receiver).map(|_| ()),
        Err(Rejection::CommitmentMismatch)
    );

    // A different nonce derives a different message key: the commitment no longer matches.
    let mut h = header.clone();
    h.nonce[5] ^= 1;
    let forged = resign(&h, env.ciphertext.clone(), &f.member.identity);
    assert_eq!(
        message::verify_and_open(&forged, &receiver).map(|_| ()),
        Err(Rejection::CommitmentMismatch)
    );

    // A header field outside the key derivation (the handling code) is bound by the AEAD's
    // associated data.
    let mut h = header.clone();
    h.handling = Handling::Clear;
    let forged = resign(&h, env.ciphertext.clone(), &f.member.identity);
    assert!(message::verify(&forged, &receiver).is_ok());
    assert_eq!(
        message::verify_and_open(&forged, &receiver).map(|_| ()),
        Err(Rejection::DecryptFailed)
    );

    // A changed ciphertext with a matching hash, re-signed: the AEAD tag fails.
    let mut ct = env.ciphertext.clone();
    ct[0] ^= 1;
    let mut h = header.clone();
    h.ciphertext_hash = derive(message::CIPHERTEXT_CONTEXT, &[&ct]);
    let forged = resign(&h, ct, &f.member.identity);
    assert_eq!(
        message::verify_and_open(&forged, &receiver).map(|_| ()),
        Err(Rejection::DecryptFailed)
    );

    // Unchanged, re-signing reproduces the original bytes (ed25519 is deterministic).
    assert_eq!(resign(&header, env.ciphertext, &f.member.identity), bytes);
}

#[test]
fn a_message_for_another_group_or_version_is_refused() {
    let mut f = fixture();
    let bytes = seal(&f.chain.latest(&f.member), &f.member, 1, &mut f.rng);
    let (env, header, _) = message::decode(&bytes).expect("decodes");
    let receiver = f.chain.latest(&f.owner);

    let mut h = header.clone();
    h.group = GroupId::from([0x22; 16]);
    let other = resign(&h, env.ciphertext.clone(), &f.member.identity);
    assert_eq!(
        message::verify_and_open(&other, &receiver).map(|_| ()),
        Err(Rejection::UnknownGroup(h.group))
    );
    for (version, seq, epoch, why) in [
        (2, 1, 3, "unsupported header version"),
        (1, 0, 3, "sequence number 0"),
        (1, 1, 0, "epoch 0"),
    ] {
        let mut h = header.clone();
        h.version = version;
        h.seq = seq;
        h.epoch = epoch;
        let bad = resign(&h, env.ciphertext.clone(), &f.member.identity);
        assert_eq!(
            message::verify_and_open(&bad, &receiver).map(|_| ()),
            Err(Rejection::InvalidHeader(why))
        );
    }
    // An envelope with a trailing byte inside its header is refused before the signature.
    let mut header_bytes = env.header.clone();
    header_bytes.push(0);
    let padded = codec::encode(&Envelope {
        header: header_bytes,
        ..env
    })
    .expect("encodes");
    assert!(matches!(
        message::verify_and_open(&padded, &receiver),
        Err(Rejection::Decode(
            liaison_protocol::DecodeError::TrailingBytes(1)
        ))
    ));
}
