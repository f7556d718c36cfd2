//! Group control events, as received from peers and replayed from the store at start-up:
//! decoding, adopting a group from its event 1, and applying an event to an existing group
//! never panic. Each input is tried as it is, and as a patch over a valid next event, so that
//! mutations also reach the checks behind the owner's signature.
#![no_main]

use std::sync::OnceLock;

use liaison_protocol::group::{self, Change, GroupState, LocalKeys, Role};
use liaison_protocol::{ExchangeSecret, GroupId, IdentityKey, Timestamp};
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

struct Fixture {
    owner: IdentityKey,
    exchange: ExchangeSecret,
    state: GroupState,
    next: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let owner = IdentityKey::from_seed(&[1; 32]);
        let exchange = ExchangeSecret::from_seed(&[2; 32]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let genesis = GroupState::create(
            &owner,
            "owner",
            exchange.public(),
            GroupId::from([3; 16]),
            "fuzz",
            Timestamp(1),
            &mut rng,
        )
        .expect("create");
        let local = Some(LocalKeys {
            node: owner.node_id(),
            exchange: &exchange,
        });
        let state = GroupState::from_genesis(&genesis, local).expect("genesis");
        let member = IdentityKey::from_seed(&[4; 32]).node_id();
        let next = state
            .propose(
                &owner,
                Change::Add {
                    member,
                    name: "member".into(),
                    role: Role::Reader,
                    exchange_key: ExchangeSecret::from_seed(&[5; 32]).public(),
                },
                Timestamp(2),
                &mut rng,
            )
            .expect("propose");
        Fixture {
            owner,
            exchange,
            state,
            next,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let local = Some(LocalKeys {
        node: f.owner.node_id(),
        exchange: &f.exchange,
    });
    let _ = group::decode_control(data);
    let _ = GroupState::from_genesis(data, local);
    let _ = f.state.clone().apply(data, local);
    if let [a, b, patch @ ..] = data {
        let mut bytes = f.next.clone();
        let at = usize::from(u16::from_be_bytes([*a, *b])) % bytes.len();
        for (i, x) in patch.iter().enumerate() {
            if let Some(byte) = bytes.get_mut(at + i) {
                *byte ^= x;
            }
        }
        let _ = f.state.clone().apply(&bytes, local);
    }
});
