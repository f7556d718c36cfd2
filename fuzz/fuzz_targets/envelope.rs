//! Message envelopes, as pushed by peers and read back from the store: decoding and the full
//! receiver check (signature, membership, ciphertext hash, commitment, decryption) never panic,
//! against a real group whose key this fuzzer holds. Each input is tried as it is, and as a
//! patch over a valid envelope of that group, so that mutations also reach the checks behind
//! the signature.
#![no_main]

use std::sync::OnceLock;

use liaison_protocol::group::{GroupState, LocalKeys};
use liaison_protocol::message::{self, Content, Draft, Handling, Payload, Recipient};
use liaison_protocol::{ExchangeSecret, GroupId, IdentityKey, Timestamp};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

struct Fixture {
    group: GroupState,
    envelope: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let owner = IdentityKey::from_seed(&[1; 32]);
        let exchange = ExchangeSecret::from_seed(&[2; 32]);
        let event = GroupState::create(
            &owner,
            "owner",
            exchange.public(),
            GroupId::from([3; 16]),
            "fuzz",
            Timestamp(1),
            &mut rng,
        )
        .expect("create");
        let local = LocalKeys {
            node: owner.node_id(),
            exchange: &exchange,
        };
        let group = GroupState::from_genesis(&event, Some(local)).expect("genesis");
        let content = Content {
            officer: "officer".into(),
            recipients: vec![Recipient {
                officer: "a".into(),
                node: owner.node_id(),
            }],
            reply_to: None,
            payload: Payload::Text {
                subject: "subject".into(),
                body: "body".into(),
            },
        };
        let sealed = message::seal(
            &group,
            &owner,
            Draft {
                seq: 1,
                now: Timestamp(2),
                handling: Handling::Amber,
                expires_at: Some(Timestamp(3)),
                content: &content,
            },
            &mut rng,
        )
        .expect("seal");
        message::verify_and_open(&sealed.bytes, &group).expect("the fixture is valid");
        Fixture {
            group,
            envelope: sealed.bytes,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = message::decode(data);
    let _ = message::verify_and_open(data, &f.group);
    if let [a, b, patch @ ..] = data {
        let mut bytes = f.envelope.clone();
        let at = usize::from(u16::from_be_bytes([*a, *b])) % bytes.len();
        for (i, x) in patch.iter().enumerate() {
            if let Some(byte) = bytes.get_mut(at + i) {
                *byte ^= x;
            }
        }
        let _ = message::verify_and_open(&bytes, &f.group);
    }
});
