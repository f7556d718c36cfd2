//! Property tests of the one codec: every wire type round-trips to the same value and the same
//! bytes, and no input — random, truncated, extended, re-versioned or oversized — makes a
//! decoder panic or accept something it should not.

use std::fmt::Debug;

use liaison_protocol::codec::{
    decode, encode, MAX_CONTROL_LEN, MAX_DESCRIPTOR_LEN, MAX_ENVELOPE_LEN, MAX_FRAME_LEN,
    MAX_RECEIPT_LEN, WIRE_VERSION,
};
use liaison_protocol::frame::{HeldRange, SyncRequest, SyncResponse, VectorEntry};
use liaison_protocol::group::{Change, ControlEvent, SignedControl, WrappedKey};
use liaison_protocol::identity::NodeRef;
use liaison_protocol::identity::{Descriptor, SignedDescriptor};
use liaison_protocol::message::{Envelope, Header};
use liaison_protocol::receipt::{Receipt, SignedReceipt};
use liaison_protocol::roster::{
    AuthorityId, AuthorityKey, Entry, Kind, Revocation, Roster, Rotation, SignedRoster,
    SignedRotation,
};
use liaison_protocol::{Content, Recipient, Rejection};
use liaison_protocol::{
    DecodeError, ExchangeKey, Frame, GroupId, Handling, IdentityKey, MessageId, NodeId, Payload,
    Role, Timestamp,
};
use proptest::collection::vec;
use proptest::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

// ----- strategies ---------------------------------------------------------------------------

fn node_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 32]>().prop_map(|seed| IdentityKey::from_seed(&seed).node_id())
}

fn group_id() -> impl Strategy<Value = GroupId> {
    any::<[u8; 16]>().prop_map(GroupId::from)
}

fn message_id() -> impl Strategy<Value = MessageId> {
    any::<[u8; 32]>().prop_map(MessageId::from)
}

fn exchange_key() -> impl Strategy<Value = ExchangeKey> {
    any::<[u8; 32]>().prop_map(ExchangeKey::from)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    any::<u64>().prop_map(Timestamp)
}

fn sig() -> impl Strategy<Value = [u8; 64]> {
    vec(any::<u8>(), 64).prop_map(|v| {
        let mut out = [0u8; 64];
        out.copy_from_slice(&v);
        out
    })
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

fn byte_list() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(bytes(48), 0..4)
}

fn text() -> impl Strategy<Value = String> {
    // Any Unicode, including multi-byte characters.
    ".{0,12}"
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Member), Just(Role::Reader)]
}

fn handling() -> impl Strategy<Value = Handling> {
    prop_oneof![
        Just(Handling::Clear),
        Just(Handling::Green),
        Just(Handling::Amber),
        Just(Handling::AmberStrict),
        Just(Handling::Red),
    ]
}

fn descriptor() -> impl Strategy<Value = Descriptor> {
    (
        node_id(),
        text(),
        vec(text(), 0..3),
        exchange_key(),
        timestamp(),
        timestamp(),
    )
        .prop_map(
            |(node, name, addresses, exchange_key, valid_from, valid_until)| Descriptor {
                node,
                name,
                addresses,
                exchange_key,
                valid_from,
                valid_until,
            },
        )
}

fn signed_descriptor() -> impl Strategy<Value = SignedDescriptor> {
    (bytes(96), sig()).prop_map(|(body, signature)| SignedDescriptor { body, signature })
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (text(), node_id(), text(), exchange_key()).prop_map(
            |(name, owner, owner_name, owner_key)| Change::Create {
                name,
                owner,
                owner_name,
                owner_key
            }
        ),
        (node_id(), text(), role(), exchange_key()).prop_map(
            |(member, name, role, exchange_key)| Change::Add {
                member,
                name,
                role,
                exchange_key
            }
        ),
        node_id().prop_map(|member| Change::Remove { member }),
        Just(Change::Rotate),
        (node_id(), node_id(), exchange_key()).prop_map(|(member, node, exchange_key)| {
            Change::Rekey {
                member,
                node,
                exchange_key,
            }
        }),
    ]
}

fn authority() -> impl Strategy<Value = AuthorityId> {
    any::<[u8; 32]>().prop_map(|seed| AuthorityKey::from_seed(&seed).id())
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Customs),
        Just(Kind::Police),
        Just(Kind::Academia),
        Just(Kind::Rilo),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (node_id(), text(), text(), text(), kind(), vec(text(), 0..3)).prop_map(
        |(node, name, organisation, country, kind, addresses)| Entry {
            node,
            name,
            organisation,
            country,
            kind,
            addresses,
        },
    )
}

fn revocation() -> impl Strategy<Value = Revocation> {
    (node_id(), timestamp(), text()).prop_map(|(node, at, reason)| Revocation { node, at, reason })
}

fn roster() -> impl Strategy<Value = Roster> {
    (
        authority(),
        text(),
        any::<u64>(),
        timestamp(),
        timestamp(),
        vec(entry(), 0..3),
        vec(revocation(), 0..3),
    )
        .prop_map(
            |(authority, federation, version, issued_at, valid_until, entries, revocations)| {
                Roster {
                    authority,
                    federation,
                    version,
                    issued_at,
                    valid_until,
                    entries,
                    revocations,
                }
            },
        )
}

fn signed_roster() -> impl Strategy<Value = SignedRoster> {
    (bytes(200), sig()).prop_map(|(body, signature)| SignedRoster { body, signature })
}

fn rotation() -> impl Strategy<Value = Rotation> {
    (node_id(), node_id(), exchange_key(), timestamp()).prop_map(|(old, new, exchange_key, at)| {
        Rotation {
            old,
            new,
            exchange_key,
            at,
        }
    })
}

fn signed_rotation() -> impl Strategy<Value = SignedRotation> {
    (bytes(104), sig(), sig()).prop_map(|(body, old_signature, new_signature)| SignedRotation {
        body,
        old_signature,
        new_signature,
    })
}

fn wrapped_key() -> impl Strategy<Value = WrappedKey> {
    (node_id(), any::<[u8; 32]>(), bytes(64)).prop_map(|(member, enc, ciphertext)| WrappedKey {
        member,
        enc,
        ciphertext,
    })
}

fn control_event() -> impl Strategy<Value = ControlEvent> {
    (
        group_id(),
        any::<u64>(),
        any::<[u8; 32]>(),
        timestamp(),
        change(),
        vec(wrapped_key(), 0..3),
    )
        .prop_map(
            |(group, seq, prev, created_at, change, keys)| ControlEvent {
                group,
                seq,
                prev,
                created_at,
                change,
                keys,
            },
        )
}

fn signed_control() -> impl Strategy<Value = SignedControl> {
    (bytes(128), sig()).prop_map(|(body, signature)| SignedControl { body, signature })
}

fn header() -> impl Strategy<Value = Header> {
    (
        (
            any::<u8>(),
            group_id(),
            any::<u64>(),
            node_id(),
            any::<u64>(),
        ),
        (
            timestamp(),
            handling(),
            proptest::option::of(timestamp()),
            any::<[u8; 24]>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
        ),
    )
        .prop_map(
            |(
                (version, group, epoch, author, seq),
                (created_at, handling, expires_at, nonce, commitment, ciphertext_hash),
            )| Header {
                version,
                group,
                epoch,
                author,
                seq,
                created_at,
                handling,
                expires_at,
                nonce,
                commitment,
                ciphertext_hash,
            },
        )
}

fn envelope() -> impl Strategy<Value = Envelope> {
    (bytes(200), sig(), bytes(128)).prop_map(|(header, signature, ciphertext)| Envelope {
        header,
        signature,
        ciphertext,
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    (text(), ".{0,64}").prop_map(|(subject, body)| Payload::Text { subject, body })
}

fn recipient() -> impl Strategy<Value = Recipient> {
    (text(), node_id()).prop_map(|(officer, node)| Recipient { officer, node })
}

fn content() -> impl Strategy<Value = Content> {
    (
        text(),
        vec(recipient(), 0..3),
        proptest::option::of(message_id()),
        payload(),
    )
        .prop_map(|(officer, recipients, reply_to, payload)| Content {
            officer,
            recipients,
            reply_to,
            payload,
        })
}

fn receipt() -> impl Strategy<Value = Receipt> {
    (group_id(), node_id(), timestamp(), vec(message_id(), 0..4)).prop_map(
        |(group, receiver, stored_at, messages)| Receipt {
            group,
            receiver,
            stored_at,
            messages,
        },
    )
}

fn signed_receipt() -> impl Strategy<Value = SignedReceipt> {
    (bytes(96), sig()).prop_map(|(body, signature)| SignedReceipt { body, signature })
}

fn vector_entry() -> impl Strategy<Value = VectorEntry> {
    // Any 32 bytes: a vector's authors are compared, never decompressed.
    (any::<[u8; 32]>(), any::<u64>(), any::<u64>()).prop_map(|(author, epoch, high)| VectorEntry {
        author: NodeRef(author),
        epoch,
        high,
    })
}

fn held_range() -> impl Strategy<Value = HeldRange> {
    (any::<[u8; 32]>(), any::<u64>(), 1..u64::MAX, any::<u64>()).prop_map(
        |(author, epoch, first, len)| HeldRange {
            author: NodeRef(author),
            epoch,
            first,
            last: first.saturating_add(len % 1000),
        },
    )
}

fn sync_request() -> impl Strategy<Value = SyncRequest> {
    (
        group_id(),
        any::<u64>(),
        vec(vector_entry(), 0..4),
        vec(held_range(), 0..4),
        any::<u64>(),
    )
        .prop_map(|(group, control_seq, mut vector, mut ranges, max_bytes)| {
            vector.sort_by_key(|e| (e.author, e.epoch));
            vector.dedup_by_key(|e| (e.author, e.epoch));
            ranges.sort_by_key(|r| (r.author, r.epoch, r.first));
            ranges.dedup_by_key(|r| (r.author, r.epoch));
            SyncRequest {
                group,
                control_seq,
                vector,
                ranges,
                max_bytes,
            }
        })
}

fn sync_response() -> impl Strategy<Value = SyncResponse> {
    (group_id(), byte_list(), byte_list(), any::<bool>()).prop_map(
        |(group, controls, envelopes, more)| SyncResponse {
            group,
            controls,
            envelopes,
            more,
        },
    )
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        bytes(96).prop_map(|descriptor| Frame::Hello { descriptor }),
        byte_list().prop_map(|envelopes| Frame::Push { envelopes }),
        vec(message_id(), 0..4).prop_map(|ids| Frame::Ack { ids }),
        sync_request().prop_map(Frame::SyncRequest),
        sync_response().prop_map(Frame::SyncResponse),
        byte_list().prop_map(|receipts| Frame::Receipts { receipts }),
        (group_id(), byte_list()).prop_map(|(group, events)| Frame::Control { group, events }),
        byte_list().prop_map(|descriptors| Frame::Directory { descriptors }),
        byte_list().prop_map(|rosters| Frame::Roster { rosters }),
        byte_list().prop_map(|statements| Frame::Rotation { statements }),
    ]
}

// ----- the properties -----------------------------------------------------------------------

/// Everything the codec promises about one value: round trip to the same value and bytes,
/// every truncation an error, trailing bytes, other version bytes and oversized input refused.
fn check_codec<T>(value: &T) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = encode(value).expect("encodes");
    prop_assert_eq!(bytes[0], WIRE_VERSION);
    let back: T = decode(&bytes, MAX_FRAME_LEN).expect("decodes");
    prop_assert_eq!(&back, value);
    prop_assert_eq!(encode(&back).expect("re-encodes"), bytes.clone());

    // Every strict prefix is refused (never panics, never yields a value).
    prop_assert_eq!(decode::<T>(&[], MAX_FRAME_LEN), Err(DecodeError::Empty));
    for n in 1..bytes.len() {
        prop_assert!(
            decode::<T>(&bytes[..n], MAX_FRAME_LEN).is_err(),
            "prefix of {} of {} bytes decoded",
            n,
            bytes.len()
        );
    }

    // Trailing bytes are refused, whatever they are.
    for extra in [&[0u8][..], &[1, 2, 3], &[0xff; 9]] {
        let mut longer = bytes.clone();
        longer.extend_from_slice(extra);
        prop_assert_eq!(
            decode::<T>(&longer, MAX_FRAME_LEN),
            Err(DecodeError::TrailingBytes(extra.len()))
        );
    }

    // Any other version byte is refused before anything else is read.
    for version in [0u8, 2, 0x7f, 0xff] {
        let mut other = bytes.clone();
        other[0] = version;
        prop_assert_eq!(
            decode::<T>(&other, MAX_FRAME_LEN),
            Err(DecodeError::UnsupportedVersion(version))
        );
    }

    // Input one byte over the caller's limit is refused before decoding.
    prop_assert_eq!(
        decode::<T>(&bytes, bytes.len() - 1),
        Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: bytes.len() - 1
        })
    );
    prop_assert!(decode::<T>(&bytes, bytes.len()).is_ok());
    Ok(())
}

/// Decoding arbitrary bytes as `T` never panics, and whatever does decode re-encodes to the
/// exact same bytes (each value has one encoding).
fn check_arbitrary<T>(bytes: &[u8]) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    if let Ok(value) = decode::<T>(bytes, MAX_FRAME_LEN) {
        prop_assert_eq!(encode(&value).expect("re-encodes"), bytes.to_vec());
    }
    Ok(())
}

fn check_all_types(bytes: &[u8]) -> Result<(), TestCaseError> {
    check_arbitrary::<Frame>(bytes)?;
    check_arbitrary::<SyncRequest>(bytes)?;
    check_arbitrary::<SyncResponse>(bytes)?;
    check_arbitrary::<VectorEntry>(bytes)?;
    check_arbitrary::<Descriptor>(bytes)?;
    check_arbitrary::<SignedDescriptor>(bytes)?;
    check_arbitrary::<ControlEvent>(bytes)?;
    check_arbitrary::<SignedControl>(bytes)?;
    check_arbitrary::<Change>(bytes)?;
    check_arbitrary::<WrappedKey>(bytes)?;
    check_arbitrary::<Header>(bytes)?;
    check_arbitrary::<Envelope>(bytes)?;
    check_arbitrary::<Content>(bytes)?;
    check_arbitrary::<Payload>(bytes)?;
    check_arbitrary::<Receipt>(bytes)?;
    check_arbitrary::<SignedReceipt>(bytes)?;
    check_arbitrary::<Roster>(bytes)?;
    check_arbitrary::<SignedRoster>(bytes)?;
    check_arbitrary::<Rotation>(bytes)?;
    check_arbitrary::<SignedRotation>(bytes)?;
    // The typed entry points of the crate, which also decode the signed bodies.
    let _ = Frame::decode(bytes);
    let _ = liaison_protocol::message::decode(bytes);
    let _ = liaison_protocol::group::decode_control(bytes);
    let _ = Receipt::verify(bytes);
    let _ = SignedDescriptor::verify(bytes, Timestamp(0));
    let _ = SignedRoster::verify(bytes, &[AuthorityKey::from_seed(&[1; 32]).id()]);
    let _ = Rotation::verify(bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn frame_round_trips(v in frame()) { check_codec(&v)?; }

    #[test]
    fn sync_request_round_trips(v in sync_request()) { check_codec(&v)?; }

    #[test]
    fn sync_response_round_trips(v in sync_response()) { check_codec(&v)?; }

    #[test]
    fn vector_entry_round_trips(v in vector_entry()) { check_codec(&v)?; }

    #[test]
    fn descriptor_round_trips(v in descriptor()) { check_codec(&v)?; }

    #[test]
    fn signed_descriptor_round_trips(v in signed_descriptor()) { check_codec(&v)?; }

    #[test]
    fn control_event_round_trips(v in control_event()) { check_codec(&v)?; }

    #[test]
    fn change_round_trips(v in change()) { check_codec(&v)?; }

    #[test]
    fn wrapped_key_round_trips(v in wrapped_key()) { check_codec(&v)?; }

    #[test]
    fn signed_control_round_trips(v in signed_control()) { check_codec(&v)?; }

    #[test]
    fn header_round_trips(v in header()) { check_codec(&v)?; }

    #[test]
    fn envelope_round_trips(v in envelope()) { check_codec(&v)?; }

    #[test]
    fn content_round_trips(v in content()) { check_codec(&v)?; }

    #[test]
    fn payload_round_trips(v in payload()) { check_codec(&v)?; }

    #[test]
    fn receipt_round_trips(v in receipt()) { check_codec(&v)?; }

    #[test]
    fn signed_receipt_round_trips(v in signed_receipt()) { check_codec(&v)?; }

    #[test]
    fn roster_round_trips(v in roster()) { check_codec(&v)?; }

    #[test]
    fn signed_roster_round_trips(v in signed_roster()) { check_codec(&v)?; }

    #[test]
    fn rotation_round_trips(v in rotation()) { check_codec(&v)?; }

    #[test]
    fn signed_rotation_round_trips(v in signed_rotation()) { check_codec(&v)?; }

    #[test]
    fn role_and_handling_round_trip(r in role(), h in handling(), t in timestamp()) {
        check_codec(&r)?;
        check_codec(&h)?;
        check_codec(&t)?;
    }

    /// Random bytes: nothing panics, and anything accepted is canonical.
    #[test]
    fn random_bytes_never_panic(bytes in bytes(512)) {
        check_all_types(&bytes)?;
    }

    /// Random bytes behind the right version byte and a plausible enum tag, to get past the
    /// first checks and into the body of each frame variant.
    #[test]
    fn random_frame_bodies_never_panic(variant in 0u32..11, body in bytes(512)) {
        let mut bytes = vec![WIRE_VERSION];
        bytes.extend_from_slice(&variant.to_be_bytes());
        bytes.extend_from_slice(&body);
        check_all_types(&bytes)?;
    }

    /// Valid encodings with a few bytes overwritten, inserted or removed.
    #[test]
    fn mutated_frames_never_panic(
        v in frame(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..4),
    ) {
        let mut bytes = encode(&v).expect("encodes");
        for (at, byte, op) in edits {
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); if bytes.is_empty() { bytes.push(byte); } }
            }
        }
        check_all_types(&bytes)?;
    }

    /// A control event built by the crate goes through the typed decoder exactly.
    #[test]
    fn decode_control_splits_body(ev in control_event(), signature in sig()) {
        let body = encode(&ev).expect("encodes")[1..].to_vec();
        let signed = SignedControl { body, signature };
        let bytes = encode(&signed).expect("encodes");
        let (s, e) = liaison_protocol::group::decode_control(&bytes).expect("decodes");
        prop_assert_eq!(s, signed);
        prop_assert_eq!(e, ev);
    }

    /// An envelope body is decoded with its header by `message::decode`; the header keeps its
    /// exact bytes so that the signature covers what was received.
    #[test]
    fn message_decode_splits_header(mut h in header(), env in envelope()) {
        h.version = 1;
        h.seq = h.seq.max(1);
        h.epoch = h.epoch.max(1);
        let header_bytes = encode(&h).expect("encodes")[1..].to_vec();
        let env = Envelope { header: header_bytes.clone(), ..env };
        let bytes = encode(&env).expect("encodes");
        let (e, back, id) = liaison_protocol::message::decode(&bytes).expect("decodes");
        prop_assert_eq!(e, env);
        prop_assert_eq!(back, h);
        prop_assert_eq!(id, liaison_protocol::message::message_id(&header_bytes));
    }
}

/// A bare body is the top-level encoding without its version byte.
#[test]
fn signed_bodies_are_bare_encodings() {
    let key = IdentityKey::from_seed(&[7; 32]);
    let desc = Descriptor {
        node: key.node_id(),
        name: "node".into(),
        addresses: vec!["127.0.0.1:4433".into()],
        exchange_key: ExchangeKey::from([9; 32]),
        valid_from: Timestamp(1),
        valid_until: Timestamp(2),
    };
    let signed = desc.sign(&key).expect("signs");
    assert_eq!(signed.body, encode(&desc).expect("encodes")[1..]);
    let bytes = signed.to_bytes().expect("encodes");
    assert_eq!(SignedDescriptor::verify(&bytes, Timestamp(1)), Ok(desc));
    let group = GroupId::from([7; 16]);
    let receipt =
        Receipt::sign(&key, group, &[MessageId::from([3; 32])], Timestamp(5)).expect("signs");
    let verified = Receipt::verify(&receipt).expect("verifies");
    let signed: SignedReceipt = decode(&receipt, MAX_RECEIPT_LEN).expect("decodes");
    assert_eq!(signed.body, encode(&verified).expect("encodes")[1..]);
}

/// A receipt names 1 to `MAX_RECEIPT_MESSAGES` ids, each once, in ascending order: signing
/// sorts and deduplicates, the largest one fits `MAX_RECEIPT_LEN`, and a receiver refuses any
/// other shape even when the signature over it is valid.
#[test]
fn receipts_name_sorted_distinct_ids() {
    use liaison_protocol::receipt::{MAX_RECEIPT_MESSAGES, RECEIPT_DOMAIN};

    let key = IdentityKey::from_seed(&[4; 32]);
    let group = GroupId::from([7; 16]);
    let id = |n: u16| {
        let mut b = [0u8; 32];
        b[..2].copy_from_slice(&n.to_be_bytes());
        MessageId::from(b)
    };
    let bytes =
        Receipt::sign(&key, group, &[id(9), id(2), id(9), id(5)], Timestamp(1)).expect("signs");
    let r = Receipt::verify(&bytes).expect("verifies");
    assert_eq!(r.messages, vec![id(2), id(5), id(9)]);
    assert!(r.covers(&id(5)) && !r.covers(&id(4)));
    assert_eq!(r.receiver, key.node_id());

    let most: Vec<MessageId> = (0..MAX_RECEIPT_MESSAGES as u16).map(id).collect();
    let bytes = Receipt::sign(&key, group, &most, Timestamp(1)).expect("the most fits");
    assert!(bytes.len() <= MAX_RECEIPT_LEN);
    assert_eq!(
        Receipt::verify(&bytes).expect("verifies").messages.len(),
        most.len()
    );
    let too_many: Vec<MessageId> = (0..=MAX_RECEIPT_MESSAGES as u16).map(id).collect();
    assert!(Receipt::sign(&key, group, &too_many, Timestamp(1)).is_err());
    assert!(Receipt::sign(&key, group, &[], Timestamp(1)).is_err());

    // Validly signed but malformed: empty, unsorted, repeated.
    for messages in [vec![], vec![id(2), id(1)], vec![id(1), id(1)]] {
        let body = encode(&Receipt {
            group,
            receiver: key.node_id(),
            stored_at: Timestamp(1),
            messages: messages.clone(),
        })
        .expect("encodes")[1..]
            .to_vec();
        let signature = ed25519_dalek::Signer::sign(
            key.signing_key(),
            &[RECEIPT_DOMAIN, body.as_slice()].concat(),
        )
        .to_bytes();
        let bytes = encode(&SignedReceipt { body, signature }).expect("encodes");
        assert!(
            matches!(Receipt::verify(&bytes), Err(Rejection::Decode(_))),
            "{messages:?} accepted"
        );
    }
}

/// The typed decoders enforce their own limits before reading anything.
#[test]
fn typed_decoders_refuse_oversized_input() {
    fn too_large(len: usize, max: usize) -> DecodeError {
        DecodeError::TooLarge { len, max }
    }
    let frame = vec![WIRE_VERSION; MAX_FRAME_LEN + 1];
    assert_eq!(
        Frame::decode(&frame),
        Err(too_large(MAX_FRAME_LEN + 1, MAX_FRAME_LEN))
    );
    let env = vec![WIRE_VERSION; MAX_ENVELOPE_LEN + 1];
    assert_eq!(
        liaison_protocol::message::decode(&env).map(|_| ()),
        Err(Rejection::Decode(too_large(
            MAX_ENVELOPE_LEN + 1,
            MAX_ENVELOPE_LEN
        )))
    );
    let control = vec![WIRE_VERSION; MAX_CONTROL_LEN + 1];
    assert_eq!(
        liaison_protocol::group::decode_control(&control).map(|_| ()),
        Err(Rejection::Decode(too_large(
            MAX_CONTROL_LEN + 1,
            MAX_CONTROL_LEN
        )))
    );
    let desc = vec![WIRE_VERSION; MAX_DESCRIPTOR_LEN + 1];
    assert_eq!(
        SignedDescriptor::verify(&desc, Timestamp(0)),
        Err(Rejection::Decode(too_large(
            MAX_DESCRIPTOR_LEN + 1,
            MAX_DESCRIPTOR_LEN
        )))
    );
    let receipt = vec![WIRE_VERSION; MAX_RECEIPT_LEN + 1];
    assert_eq!(
        Receipt::verify(&receipt),
        Err(Rejection::Decode(too_large(
            MAX_RECEIPT_LEN + 1,
            MAX_RECEIPT_LEN
        )))
    );
}

/// A well-formed frame of exactly the limit is still decoded; one byte more is not.
#[test]
fn frame_limit_is_inclusive() {
    // Hello: version 1 + variant 4 + length 8 + descriptor bytes.
    let descriptor = vec![0u8; MAX_FRAME_LEN - 13];
    let frame = Frame::Hello { descriptor };
    let bytes = frame.encode().expect("fits");
    assert_eq!(bytes.len(), MAX_FRAME_LEN);
    assert_eq!(Frame::decode(&bytes), Ok(frame));
    let too_big = Frame::Hello {
        descriptor: vec![0u8; MAX_FRAME_LEN - 12],
    };
    assert!(too_big.encode().is_err());
}

/// Length prefixes that claim more than the input holds are errors, not allocations or panics.
#[test]
fn huge_length_prefixes_are_refused() {
    for variant in 0u32..8 {
        for len in [u64::MAX, u64::MAX / 2, 1 << 40, MAX_FRAME_LEN as u64, 100] {
            let mut bytes = vec![WIRE_VERSION];
            bytes.extend_from_slice(&variant.to_be_bytes());
            if variant == 3 || variant == 4 || variant == 6 {
                bytes.extend_from_slice(&[0xab; 16]); // a group id first
                if variant == 3 {
                    bytes.extend_from_slice(&1u64.to_be_bytes()); // control_seq
                }
            }
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[0u8; 8]);
            assert!(
                matches!(Frame::decode(&bytes), Err(DecodeError::Malformed(_))),
                "variant {variant} length {len}"
            );
        }
    }
}

/// Unknown enum variants and invalid tags are refused.
#[test]
fn unknown_variants_and_tags_are_refused() {
    // Frame variants beyond the last one (9, Rotation).
    for variant in [10u32, 11, 1000, u32::MAX] {
        let mut bytes = vec![WIRE_VERSION];
        bytes.extend_from_slice(&variant.to_be_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes());
        assert!(Frame::decode(&bytes).is_err(), "variant {variant}");
    }
    // A bool other than 0 or 1 in SyncResponse::more.
    let resp = Frame::SyncResponse(SyncResponse {
        group: GroupId::from([1; 16]),
        controls: vec![],
        envelopes: vec![],
        more: true,
    });
    let mut bytes = resp.encode().expect("encodes");
    let last = bytes.len() - 1;
    assert_eq!(bytes[last], 1);
    bytes[last] = 2;
    assert!(Frame::decode(&bytes).is_err());
    // An Option tag other than 0 or 1 in Content::reply_to.
    let content = Content {
        officer: String::new(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: String::new(),
            body: String::new(),
        },
    };
    let mut bytes = encode(&content).expect("encodes");
    // version 1 + officer len 8 + recipients len 8 = offset 17 for the option tag.
    assert_eq!(bytes[17], 0);
    bytes[17] = 2;
    assert!(decode::<Content>(&bytes, MAX_FRAME_LEN).is_err());
    // A node id that is not a curve point: refused where the id is a `NodeId` (it verifies
    // signatures), taken as bytes where it is only compared (a vector's `NodeRef`).
    let entry = (IdentityKey::from_seed(&[1; 32]).node_id(), 1u64);
    let mut bytes = encode(&entry).expect("encodes");
    let mut found_invalid = false;
    for b in 0..=255u8 {
        bytes[1..33].copy_from_slice(&[b; 32]);
        bytes[32] = 0x7f; // y just below 2^255: not all such values are on the curve
        if NodeId::from_bytes(bytes[1..33].try_into().expect("32")).is_err() {
            assert!(decode::<(NodeId, u64)>(&bytes, MAX_FRAME_LEN).is_err());
            assert!(decode::<(NodeRef, u64)>(&bytes, MAX_FRAME_LEN).is_ok());
            found_invalid = true;
        }
    }
    assert!(found_invalid);
    // Invalid UTF-8 in a string.
    let mut bytes = encode(&String::from("ab")).expect("encodes");
    bytes[9] = 0xff;
    assert!(decode::<String>(&bytes, MAX_FRAME_LEN).is_err());
}
