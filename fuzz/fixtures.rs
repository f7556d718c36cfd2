//! The groups the `envelope` and `control` targets hold keys for, built the same way every
//! time (fixed seeds), so that the seed corpora can carry real envelopes and control events of
//! exactly these groups (they are written by `protocol/tests/fuzz_seeds.rs`, which includes
//! this file too). Each target uses one of the two fixtures.
#![allow(dead_code)]

use liaison_protocol::group::{Change, GroupState, LocalKeys, Role};
use liaison_protocol::message::{self, Content, Draft, Handling, Payload, Recipient};
use liaison_protocol::{ExchangeSecret, GroupId, IdentityKey, Timestamp};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

/// The owner of both fixture groups.
pub fn owner() -> IdentityKey {
    IdentityKey::from_seed(&[1; 32])
}

/// The owner's key exchange secret.
pub fn exchange() -> ExchangeSecret {
    ExchangeSecret::from_seed(&[2; 32])
}

/// The owner's keys, as a member applying events holds them.
pub fn local<'a>(owner: &IdentityKey, exchange: &'a ExchangeSecret) -> LocalKeys<'a> {
    LocalKeys {
        node: owner.node_id(),
        exchange,
    }
}

/// The group of the `envelope` target: its owner alone, one epoch. Returns the group, the
/// owner, and the RNG as it stands after making the group (the envelopes are sealed with it).
pub fn envelope_group() -> (GroupState, IdentityKey, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let owner = owner();
    let exchange = exchange();
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
    let group = GroupState::from_genesis(&event, Some(local(&owner, &exchange))).expect("genesis");
    (group, owner, rng)
}

/// The valid envelope the `envelope` target patches its inputs over: sequence number 1,
/// TLP:AMBER, a text from `officer` to one named recipient.
pub fn envelope() -> (GroupState, Vec<u8>) {
    let (group, owner, mut rng) = envelope_group();
    let sealed = seal(
        &group,
        &owner,
        1,
        Handling::Amber,
        text("subject", "body"),
        &mut rng,
    );
    (group, sealed)
}

/// A text payload from `officer` to officer `a` at the fixture's owner node.
pub fn text(subject: &str, body: &str) -> Content {
    Content {
        officer: "officer".into(),
        recipients: vec![Recipient {
            officer: "a".into(),
            node: owner().node_id(),
        }],
        reply_to: None,
        payload: Payload::Text {
            subject: subject.into(),
            body: body.into(),
        },
    }
}

/// `content` sealed into `group` by `owner` as message `seq`, at time 2, expiring at 3.
pub fn seal(
    group: &GroupState,
    owner: &IdentityKey,
    seq: u64,
    handling: Handling,
    content: Content,
    rng: &mut ChaCha8Rng,
) -> Vec<u8> {
    let sealed = message::seal(
        group,
        owner,
        Draft {
            seq,
            now: Timestamp(2),
            handling,
            expires_at: Some(Timestamp(3)),
            content: &content,
        },
        rng,
    )
    .expect("seal");
    message::verify_and_open(&sealed.bytes, group).expect("the fixture is valid");
    sealed.bytes
}

/// The `control` target's group and what it patches its inputs over: the group's first event
/// (`genesis`), the group after it (`state`), and a valid next event that adds a reader
/// (`next`).
pub struct ControlFixture {
    /// The owner.
    pub owner: IdentityKey,
    /// The owner's key exchange secret.
    pub exchange: ExchangeSecret,
    /// Event 1, which created the group.
    pub genesis: Vec<u8>,
    /// The group after event 1.
    pub state: GroupState,
    /// Event 2, valid after `state`.
    pub next: Vec<u8>,
}

/// The `control` target's fixture (see [`ControlFixture`]).
pub fn control() -> ControlFixture {
    let owner = owner();
    let exchange = exchange();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
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
    let state =
        GroupState::from_genesis(&genesis, Some(local(&owner, &exchange))).expect("genesis");
    let next = state
        .propose(
            &owner,
            Change::Add {
                member: IdentityKey::from_seed(&[4; 32]).node_id(),
                name: "member".into(),
                role: Role::Reader,
                exchange_key: ExchangeSecret::from_seed(&[5; 32]).public(),
            },
            Timestamp(2),
            &mut rng,
        )
        .expect("propose");
    ControlFixture {
        owner,
        exchange,
        genesis,
        state,
        next,
    }
}
