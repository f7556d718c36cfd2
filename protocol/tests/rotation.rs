//! A member that rotates its identity key learns its group under the new key, whichever of
//! the two comes first: the owner's `Rekey` event, or the connection from the new key.
//!
//! Two sync engines, the owner O and the member M, exchange frames directly (in order, no
//! loss). M rotates while the link is down; O moves M to its new key; the link comes up with
//! M's new key. M must then hold the `Rekey` and be a member under its new key, and neither
//! side may count the other as faulty.

use std::collections::BTreeMap;

use liaison_protocol::group::Change;
use liaison_protocol::identity::Descriptor;
use liaison_protocol::message::Handling;
use liaison_protocol::sync::{Archive, Config, Engine, Event, LocalDraft, Policy};
use liaison_protocol::{
    Content, ExchangeSecret, GroupId, IdentityKey, MessageId, NodeId, Payload, Role, Timestamp,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const T0: Timestamp = Timestamp(1_767_225_600_000);

/// Holds nothing: the test exchanges control events only.
struct NoMessages;

impl Archive for NoMessages {
    fn envelopes(&self, _: &GroupId, _: &NodeId, _: u64, _: u64, _: u64, _: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }

    fn message_origin(&self, _: &MessageId) -> Option<(GroupId, NodeId)> {
        None
    }
}

fn descriptor(identity: &IdentityKey, exchange: &ExchangeSecret, name: &str) -> Vec<u8> {
    Descriptor {
        node: identity.node_id(),
        name: name.into(),
        addresses: vec![format!("{name}.example:7400")],
        exchange_key: exchange.public(),
        valid_from: T0,
        valid_until: T0.plus_millis(86_400_000),
    }
    .sign(identity)
    .expect("signs")
    .to_bytes()
    .expect("encodes")
}

fn engine(seed: u8, name: &str) -> Engine {
    let identity = IdentityKey::from_seed(&[seed; 32]);
    let exchange = ExchangeSecret::from_seed(&[seed + 1; 32]);
    let d = descriptor(&identity, &exchange, name);
    Engine::new(identity, exchange, d, Config::default())
}

/// Two engines and the frames between them.
struct Pair {
    owner: Engine,
    member: Engine,
    /// What each side counted against the other.
    rejected: Vec<String>,
}

impl Pair {
    fn connect(&mut self, now: Timestamp) {
        let (o, m) = (self.owner.node_id(), self.member.node_id());
        self.owner.handle_connected(now, m);
        self.member.handle_connected(now, o);
        self.pump(now);
    }

    fn disconnect(&mut self) {
        let (o, m) = (self.owner.node_id(), self.member.node_id());
        self.owner.handle_disconnected(&m);
        self.member.handle_disconnected(&o);
        while self.owner.poll_transmit().is_some() || self.member.poll_transmit().is_some() {}
    }

    /// Delivers frames both ways until neither side has anything more to send.
    fn pump(&mut self, now: Timestamp) {
        for _ in 0..1000 {
            let mut moved = false;
            while let Some(t) = self.owner.poll_transmit() {
                moved = true;
                let from = self.owner.node_id();
                assert_eq!(t.peer, self.member.node_id(), "sent to an old key");
                self.member.handle_frame(now, from, &t.frame, &NoMessages);
            }
            while let Some(t) = self.member.poll_transmit() {
                moved = true;
                let from = self.member.node_id();
                assert_eq!(t.peer, self.owner.node_id());
                self.owner.handle_frame(now, from, &t.frame, &NoMessages);
            }
            for engine in [&mut self.owner, &mut self.member] {
                while let Some(event) = engine.poll_event() {
                    if let Event::Rejected { peer, reason } = event {
                        self.rejected.push(format!("{peer}: {reason}"));
                    }
                }
            }
            if !moved {
                return;
            }
        }
        panic!("the engines never went quiet");
    }
}

/// O creates a group with M, M rotates, and O learns of the rotation; `rekey_first` says
/// whether O applies the `Rekey` before the link with M's new key comes up or after.
fn rotate(rekey_first: bool) {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let mut pair = Pair {
        owner: engine(0x10, "rilo-wca"),
        member: engine(0x20, "customs-nl"),
        rejected: Vec::new(),
    };
    let (gid, genesis) = pair
        .owner
        .propose_create("rilo-wca", "ops", T0, &mut rng)
        .expect("creates");
    pair.owner
        .commit_local_control(T0, &genesis)
        .expect("applies");
    let old = pair.member.node_id();
    let add = pair
        .owner
        .propose(
            &gid,
            Change::Add {
                member: old,
                name: "customs-nl".into(),
                role: Role::Member,
                exchange_key: ExchangeSecret::from_seed(&[0x21; 32]).public(),
            },
            T0,
            &mut rng,
        )
        .expect("adds");
    pair.owner.commit_local_control(T0, &add).expect("applies");
    pair.connect(T0);
    assert_eq!(
        pair.member.group(&gid).map(|g| g.role(&old)),
        Some(Some(Role::Member)),
        "the member holds the group"
    );
    pair.disconnect();

    // M moves to new keys; O learns of it (as from the rotation statement) and moves M.
    let now = T0.plus_millis(1_000);
    let identity = IdentityKey::from_seed(&[0x30; 32]);
    let exchange = ExchangeSecret::from_seed(&[0x31; 32]);
    let new = identity.node_id();
    let new_exchange = exchange.public();
    let d = descriptor(&identity, &exchange, "customs-nl");
    pair.member.rotate_keys(identity, exchange, d);
    let mut rotated = BTreeMap::new();
    rotated.insert(new, old);
    pair.owner.set_policy(Policy {
        rotated,
        ..Policy::default()
    });
    let rekey = pair
        .owner
        .propose(
            &gid,
            Change::Rekey {
                member: old,
                node: new,
                exchange_key: new_exchange,
            },
            now,
            &mut rng,
        )
        .expect("proposes the move");
    if rekey_first {
        pair.owner
            .commit_local_control(now, &rekey)
            .expect("applies");
        pair.connect(now);
    } else {
        pair.connect(now);
        pair.owner
            .commit_local_control(now, &rekey)
            .expect("applies");
        pair.pump(now);
    }

    let held = pair.member.group(&gid).expect("the member holds the group");
    assert_eq!(held.seq(), pair.owner.group(&gid).expect("owner").seq());
    assert_eq!(
        held.role(&new),
        Some(Role::Member),
        "a member under its new key"
    );
    assert_eq!(held.role(&old), None);
    assert!(pair.rejected.is_empty(), "blamed: {:?}", pair.rejected);
    let content = Content {
        officer: "officer".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: "after the rotation".into(),
            body: String::new(),
        },
    };
    pair.member
        .seal(
            &gid,
            LocalDraft {
                now,
                handling: Handling::Green,
                expires_at: None,
                content: &content,
            },
            &mut rng,
        )
        .expect("the rotated member posts under its new key");
}

#[test]
fn a_rotated_member_learns_a_move_made_before_it_reconnects() {
    rotate(true);
}

#[test]
fn a_rotated_member_asking_before_its_move_is_not_blamed() {
    rotate(false);
}
