//! Group control events: only the owner's, only in order, replays harmless, conflicts and
//! malformed key lists refused — and a refused event never changes the state.

use ed25519_dalek::Signer;
use liaison_protocol::codec;
use liaison_protocol::group::{
    decode_control, Applied, Change, ControlEvent, LocalKeys, SignedControl, WrappedKey,
    CONTROL_DOMAIN,
};
use liaison_protocol::identity::Descriptor;
use liaison_protocol::sync::{Config, Engine, Event};
use liaison_protocol::{
    ExchangeSecret, Frame, GroupId, GroupState, IdentityKey, NodeId, Rejection, Role, Timestamp,
    UsageError,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const T0: Timestamp = Timestamp(1_767_225_600_000);
const WRAPPED_KEYS: Rejection =
    Rejection::InvalidControl("wrapped keys must be exactly one per member, sorted by node id");

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
    fn add(&self, role: Role) -> Change {
        Change::Add {
            member: self.id(),
            name: format!("node-{}", self.id().short()),
            role,
            exchange_key: self.exchange.public(),
        }
    }
}

struct Fixture {
    rng: ChaCha20Rng,
    gid: GroupId,
    owner: Node,
    member: Node,
    other: Node,
    genesis: Vec<u8>,
}

fn fixture() -> Fixture {
    let mut rng = ChaCha20Rng::from_seed([7; 32]);
    let owner = Node::new(1);
    let gid = GroupId::from([0x33; 16]);
    let genesis = GroupState::create(
        &owner.identity,
        "rilo-wca",
        owner.exchange.public(),
        gid,
        "Standing group",
        T0,
        &mut rng,
    )
    .expect("creates");
    Fixture {
        rng,
        gid,
        owner,
        member: Node::new(2),
        other: Node::new(3),
        genesis,
    }
}

impl Fixture {
    fn state(&self, node: &Node) -> GroupState {
        GroupState::from_genesis(&self.genesis, node.local()).expect("genesis")
    }
    fn propose(&mut self, state: &GroupState, change: Change) -> Vec<u8> {
        state
            .propose(&self.owner.identity, change, T0, &mut self.rng)
            .expect("proposes")
    }
}

/// Encodes `event` and signs it with `key` (whoever that is).
fn sign_event(event: &ControlEvent, key: &IdentityKey) -> Vec<u8> {
    let body = codec::encode(event).expect("encodes")[1..].to_vec();
    let mut input = CONTROL_DOMAIN.to_vec();
    input.extend_from_slice(&body);
    let signature = key.signing_key().sign(&input).to_bytes();
    codec::encode(&SignedControl { body, signature }).expect("encodes")
}

fn event_of(bytes: &[u8]) -> ControlEvent {
    decode_control(bytes).expect("decodes").1
}

/// A fingerprint of a state, to show that a refused event changed nothing.
fn snapshot(s: &GroupState) -> String {
    let keys: Vec<bool> = (1..=s.seq() + 1)
        .map(|e| s.epoch_key(e).is_some())
        .collect();
    format!("{} {} {:?} {:?}", s.seq(), s.epoch(), s.members(), keys)
}

#[test]
fn an_event_not_signed_by_the_owner_is_refused() {
    let mut f = fixture();
    let owner_state = f.state(&f.owner);
    let mut member_state = f.state(&f.member);
    let before = snapshot(&member_state);

    // A well-formed next event, re-signed by another node.
    let genuine = f.propose(&owner_state, f.member.add(Role::Member));
    let resigned = sign_event(&event_of(&genuine), &f.other.identity);
    assert_eq!(
        member_state.apply(&resigned, f.member.local()),
        Err(Rejection::NotOwner(f.gid))
    );
    // A node that forges its own chain under the same group id and proposes from it.
    let forged_genesis = GroupState::create(
        &f.other.identity,
        "intruder",
        f.other.exchange.public(),
        f.gid,
        "Standing group",
        T0,
        &mut f.rng,
    )
    .expect("creates");
    let forged = GroupState::from_genesis(&forged_genesis, f.other.local()).expect("genesis");
    let forged_add = forged
        .propose(
            &f.other.identity,
            f.member.add(Role::Member),
            T0,
            &mut f.rng,
        )
        .expect("proposes");
    assert_eq!(
        member_state.apply(&forged_add, f.member.local()),
        Err(Rejection::NotOwner(f.gid))
    );
    // The forged chain's own genesis conflicts with the real event 1.
    assert_eq!(
        member_state.apply(&forged_genesis, f.member.local()),
        Err(Rejection::ConflictingControl {
            group: f.gid,
            seq: 1
        })
    );
    assert_eq!(snapshot(&member_state), before);

    // The API refuses to propose for a non-owner.
    assert_eq!(
        member_state
            .propose(&f.member.identity, Change::Rotate, T0, &mut f.rng)
            .map(|_| ()),
        Err(UsageError::NotOwner(f.gid))
    );

    // A genesis naming one owner but signed by another, or with a damaged signature.
    let signed_by_other = sign_event(&event_of(&f.genesis), &f.other.identity);
    assert_eq!(
        GroupState::from_genesis(&signed_by_other, f.member.local()).map(|_| ()),
        Err(Rejection::NotOwner(f.gid))
    );
    let mut bytes = f.genesis.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        GroupState::from_genesis(&bytes, f.member.local()).map(|_| ()),
        Err(Rejection::NotOwner(f.gid))
    );

    // The genuine event still applies afterwards.
    assert!(matches!(
        member_state.apply(&genuine, f.member.local()),
        Ok(Applied::New {
            epoch: 2,
            have_key: true
        })
    ));
}

#[test]
fn an_event_out_of_order_is_refused() {
    let mut f = fixture();
    let mut owner_state = f.state(&f.owner);
    let e2 = f.propose(&owner_state, f.member.add(Role::Member));
    owner_state.apply(&e2, f.owner.local()).expect("applies");
    let e3 = f.propose(&owner_state, f.other.add(Role::Reader));
    owner_state.apply(&e3, f.owner.local()).expect("applies");
    let e4 = f.propose(&owner_state, Change::Rotate);

    let mut state = f.state(&f.member);
    let before = snapshot(&state);
    assert_eq!(
        state.apply(&e3, f.member.local()),
        Err(Rejection::OutOfOrder {
            group: f.gid,
            expected: 2,
            got: 3
        })
    );
    assert_eq!(
        state.apply(&e4, f.member.local()),
        Err(Rejection::OutOfOrder {
            group: f.gid,
            expected: 2,
            got: 4
        })
    );
    assert_eq!(snapshot(&state), before);

    // Event 0 and a later event presented as a genesis are refused too.
    let mut zero = event_of(&e2);
    zero.seq = 0;
    assert_eq!(
        state.apply(&sign_event(&zero, &f.owner.identity), f.member.local()),
        Err(Rejection::InvalidControl("sequence number 0"))
    );
    assert_eq!(
        GroupState::from_genesis(&e2, f.member.local()).map(|_| ()),
        Err(Rejection::InvalidControl("event 1 must create the group"))
    );
    let mut late_create = event_of(&f.genesis);
    late_create.seq = 2;
    assert_eq!(
        GroupState::from_genesis(
            &sign_event(&late_create, &f.owner.identity),
            f.member.local()
        )
        .map(|_| ()),
        Err(Rejection::OutOfOrder {
            group: f.gid,
            expected: 1,
            got: 2
        })
    );

    // In order, they all apply; the member gets keys from its epoch on.
    for (e, epoch) in [(&e2, 2), (&e3, 3), (&e4, 4)] {
        assert_eq!(
            state.apply(e, f.member.local()),
            Ok(Applied::New {
                epoch,
                have_key: true
            })
        );
    }
    assert!(state.epoch_key(1).is_none());
    assert_eq!(state.role(&f.other.id()), Some(Role::Reader));
}

#[test]
fn a_replayed_event_is_a_duplicate_and_a_different_one_conflicts() {
    let mut f = fixture();
    let owner_state = f.state(&f.owner);
    let e2 = f.propose(&owner_state, f.member.add(Role::Member));
    let mut state = f.state(&f.member);
    state.apply(&e2, f.member.local()).expect("applies");
    let after = snapshot(&state);

    // The identical event, and the identical genesis: nothing changes.
    assert_eq!(state.apply(&e2, f.member.local()), Ok(Applied::Duplicate));
    assert_eq!(
        state.apply(&f.genesis, f.member.local()),
        Ok(Applied::Duplicate)
    );
    assert_eq!(snapshot(&state), after);

    // Another event at seq 2 (the owner changed its mind, or an attacker replays a variant):
    // a different change, or the same change with fresh key material.
    let alternative = f.propose(&owner_state, f.other.add(Role::Member));
    let same_change = f.propose(&owner_state, f.member.add(Role::Member));
    assert_ne!(same_change, e2);
    for e in [&alternative, &same_change] {
        assert_eq!(
            state.apply(e, f.member.local()),
            Err(Rejection::ConflictingControl {
                group: f.gid,
                seq: 2
            })
        );
    }
    // A re-signed copy of the same body is a different byte string, hence a conflict too.
    let mut bytes = e2.clone();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        state.apply(&bytes, f.member.local()),
        Err(Rejection::ConflictingControl {
            group: f.gid,
            seq: 2
        })
    );
    assert_eq!(snapshot(&state), after);
}

/// The next event (adding `other`) with its key list rewritten by `edit`, signed by the owner.
fn with_keys(
    f: &mut Fixture,
    e2: &[u8],
    edit: impl FnOnce(&mut Vec<WrappedKey>, &Fixture),
) -> Vec<u8> {
    let mut state = f.state(&f.owner);
    state.apply(e2, f.owner.local()).expect("applies");
    let e3 = f.propose(&state, f.other.add(Role::Reader));
    let mut ev = event_of(&e3);
    assert_eq!(ev.keys.len(), 3);
    edit(&mut ev.keys, f);
    sign_event(&ev, &f.owner.identity)
}

fn state_at_2(f: &mut Fixture) -> (GroupState, Vec<u8>) {
    let owner_state = f.state(&f.owner);
    let e2 = f.propose(&owner_state, f.member.add(Role::Member));
    let mut s = f.state(&f.member);
    s.apply(&e2, f.member.local()).expect("applies");
    (s, e2)
}

#[test]
fn a_key_list_that_does_not_match_the_members_is_refused() {
    let mut f = fixture();
    let outsider = Node::new(9);
    type Edit = Box<dyn Fn(&mut Vec<WrappedKey>, &Fixture)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "missing the new member",
            Box::new(|keys, f| keys.retain(|k| k.member != f.other.id())),
        ),
        (
            "missing the owner",
            Box::new(|keys, f| keys.retain(|k| k.member != f.owner.id())),
        ),
        ("empty", Box::new(|keys, _| keys.clear())),
        (
            "an extra non-member",
            Box::new(move |keys, _| {
                let mut extra = keys[0].clone();
                extra.member = outsider.id();
                keys.push(extra);
                keys.sort_by_key(|k| k.member);
            }),
        ),
        (
            "a non-member in place of a member",
            Box::new(|keys, f| {
                let i = keys
                    .iter()
                    .position(|k| k.member == f.member.id())
                    .expect("present");
                keys[i].member = Node::new(10).id();
                keys.sort_by_key(|k| k.member);
            }),
        ),
        (
            "a member twice",
            Box::new(|keys, _| {
                let dup = keys[0].clone();
                keys.insert(0, dup);
                keys.pop();
            }),
        ),
        ("unsorted", Box::new(|keys, _| keys.reverse())),
    ];
    let (state, e2) = state_at_2(&mut f);
    for (what, edit) in cases {
        let mut state = state.clone();
        let before = snapshot(&state);
        let bad = with_keys(&mut f, &e2, edit);
        assert_eq!(
            state.apply(&bad, f.member.local()),
            Err(WRAPPED_KEYS),
            "{what}"
        );
        assert_eq!(snapshot(&state), before, "{what}");
    }

    // Unchanged, it applies.
    let mut state = state.clone();
    let good = with_keys(&mut f, &e2, |_, _| {});
    assert!(state.apply(&good, f.member.local()).is_ok());

    // The same holds for the genesis: exactly the owner's key.
    let mut ev = event_of(&f.genesis);
    let mut extra = ev.keys[0].clone();
    extra.member = f.member.id();
    ev.keys.push(extra);
    ev.keys.sort_by_key(|k| k.member);
    assert_eq!(
        GroupState::from_genesis(&sign_event(&ev, &f.owner.identity), f.member.local()).map(|_| ()),
        Err(WRAPPED_KEYS)
    );
    ev.keys.clear();
    assert_eq!(
        GroupState::from_genesis(&sign_event(&ev, &f.owner.identity), f.member.local()).map(|_| ()),
        Err(WRAPPED_KEYS)
    );
}

#[test]
fn an_invalid_change_is_refused() {
    let mut f = fixture();
    let (mut state, e2) = state_at_2(&mut f);
    let before = snapshot(&state);
    let owner_state = {
        let mut s = f.state(&f.owner);
        s.apply(&e2, f.owner.local()).expect("applies");
        s
    };
    let valid = event_of(&f.propose(&owner_state, Change::Rotate));
    let member_id = f.member.id();
    let cases: Vec<(Change, Rejection)> = vec![
        (
            f.member.add(Role::Reader),
            Rejection::InvalidControl("adds an existing member"),
        ),
        (
            Change::Remove {
                member: f.other.id(),
            },
            Rejection::InvalidControl("removes a non-member"),
        ),
        (
            Change::Remove {
                member: f.owner.id(),
            },
            Rejection::InvalidControl("removes the owner"),
        ),
        (
            event_of(&f.genesis).change,
            Rejection::InvalidControl("create only as event 1"),
        ),
        (
            Change::Add {
                member: f.other.id(),
                name: String::new(),
                role: Role::Member,
                exchange_key: f.other.exchange.public(),
            },
            Rejection::InvalidControl("invalid member name"),
        ),
        (
            Change::Add {
                member: f.other.id(),
                name: "Upper-Case".into(),
                role: Role::Member,
                exchange_key: f.other.exchange.public(),
            },
            Rejection::InvalidControl("invalid member name"),
        ),
        (
            Change::Add {
                member: f.other.id(),
                name: format!("node-{}", f.member.id().short()),
                role: Role::Member,
                exchange_key: f.other.exchange.public(),
            },
            Rejection::InvalidControl("adds a member under another member's name"),
        ),
    ];
    for (change, why) in cases {
        let mut ev = valid.clone();
        ev.change = change;
        assert_eq!(
            state.apply(&sign_event(&ev, &f.owner.identity), f.member.local()),
            Err(why)
        );
    }
    // A broken chain link, and an event for another group.
    let mut ev = valid.clone();
    ev.prev[0] ^= 1;
    assert_eq!(
        state.apply(&sign_event(&ev, &f.owner.identity), f.member.local()),
        Err(Rejection::InvalidControl("prev does not match the chain"))
    );
    let mut ev = valid.clone();
    ev.group = GroupId::from([0x44; 16]);
    assert_eq!(
        state.apply(&sign_event(&ev, &f.owner.identity), f.member.local()),
        Err(Rejection::InvalidControl("event for another group"))
    );
    assert_eq!(snapshot(&state), before);
    assert!(state.role(&member_id).is_some());
    // The valid one applies.
    assert!(state
        .apply(&sign_event(&valid, &f.owner.identity), f.member.local())
        .is_ok());
}

#[test]
fn every_byte_of_a_control_event_is_protected() {
    let mut f = fixture();
    let (state, e2) = state_at_2(&mut f);
    let owner_state = {
        let mut s = f.state(&f.owner);
        s.apply(&e2, f.owner.local()).expect("applies");
        s
    };
    let e3 = f.propose(&owner_state, f.other.add(Role::Member));
    assert!(state.clone().apply(&e3, f.member.local()).is_ok());
    for i in 0..e3.len() {
        let mut t = e3.clone();
        t[i] ^= 0x41;
        let mut s = state.clone();
        assert!(s.apply(&t, f.member.local()).is_err(), "byte {i}");
        assert_eq!(s.seq(), 2);
    }
}

/// The sync engine turns a forged control event from a peer into a rejection of that peer.
#[test]
fn the_engine_rejects_a_forged_event_from_a_peer() {
    let mut f = fixture();
    let descriptor = |n: &Node| {
        Descriptor {
            node: n.id(),
            name: "node".into(),
            addresses: vec![],
            exchange_key: n.exchange.public(),
            valid_from: T0,
            valid_until: T0.plus_millis(1_000_000),
        }
        .sign(&n.identity)
        .expect("signs")
        .to_bytes()
        .expect("encodes")
    };
    let member = Node::new(2);
    let desc = descriptor(&member);
    let mut engine = Engine::new(member.identity, member.exchange, desc, Config::default());
    let (s, e2) = state_at_2(&mut f);
    engine
        .restore_group(vec![f.genesis.clone(), e2])
        .expect("restores");
    engine.handle_connected(T0, f.other.id());
    let forged = s
        .propose(&f.owner.identity, Change::Rotate, T0, &mut f.rng)
        .expect("proposes");
    let forged = sign_event(&event_of(&forged), &f.other.identity);
    let frame = Frame::Control {
        group: f.gid,
        events: vec![forged],
    }
    .encode()
    .expect("encodes");
    struct NoArchive;
    impl liaison_protocol::sync::Archive for NoArchive {
        fn envelopes(
            &self,
            _: &GroupId,
            _: &NodeId,
            _: u64,
            _: u64,
            _: u64,
            _: usize,
        ) -> Vec<Vec<u8>> {
            Vec::new()
        }
        fn message_origin(&self, _: &liaison_protocol::MessageId) -> Option<(GroupId, NodeId)> {
            None
        }
    }
    engine.handle_frame(T0, f.other.id(), &frame, &NoArchive);
    let mut rejected = Vec::new();
    while let Some(e) = engine.poll_event() {
        if let Event::Rejected { peer, reason } = e {
            rejected.push((peer, reason));
        }
    }
    assert_eq!(rejected, vec![(f.other.id(), Rejection::NotOwner(f.gid))]);
    assert_eq!(engine.group(&f.gid).map(GroupState::seq), Some(2));
}
