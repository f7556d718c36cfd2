//! A node restored from a backup learns what it authored after the backup before it authors
//! again (`Engine::set_restoring`).
//!
//! The owner O made a group alone, was backed up, then added the member M. Restored from the
//! backup, O holds only event 1 and believes it is alone: a change it made now would be a
//! second event 2, which M refuses (the chain forks). In restoring mode O refuses to change the
//! group or post until M has told it what it holds and a sync interval has passed, and its
//! next change is event 3, which M takes.

use liaison_protocol::group::Change;
use liaison_protocol::identity::Descriptor;
use liaison_protocol::message::Handling;
use liaison_protocol::sync::{Archive, Config, Engine, Event, LocalDraft};
use liaison_protocol::{
    Content, ExchangeSecret, GroupId, IdentityKey, MessageId, NodeId, Payload, Role, Timestamp,
    UsageError,
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

fn engine(seed: u8, name: &str) -> Engine {
    let identity = IdentityKey::from_seed(&[seed; 32]);
    let exchange = ExchangeSecret::from_seed(&[seed + 1; 32]);
    let d = Descriptor {
        node: identity.node_id(),
        name: name.into(),
        addresses: vec![format!("{name}.example:7400")],
        exchange_key: exchange.public(),
        valid_from: T0,
        valid_until: T0.plus_millis(86_400_000),
    }
    .sign(&identity)
    .expect("signs")
    .to_bytes()
    .expect("encodes");
    Engine::new(identity, exchange, d, Config::default())
}

/// Delivers frames both ways until neither side has anything more to send; what each side
/// refused.
fn pump(a: &mut Engine, b: &mut Engine, now: Timestamp) -> Vec<String> {
    let mut rejected = Vec::new();
    for _ in 0..1000 {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            let from = a.node_id();
            b.handle_frame(now, from, &t.frame, &NoMessages);
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            let from = b.node_id();
            a.handle_frame(now, from, &t.frame, &NoMessages);
        }
        for e in [&mut *a, &mut *b] {
            while let Some(event) = e.poll_event() {
                if let Event::Rejected { peer, reason } = event {
                    rejected.push(format!("{peer}: {reason}"));
                }
            }
        }
        if !moved {
            return rejected;
        }
    }
    panic!("the engines never went quiet");
}

fn add(name: &str, seed: u8) -> Change {
    Change::Add {
        member: IdentityKey::from_seed(&[seed; 32]).node_id(),
        name: name.into(),
        role: Role::Member,
        exchange_key: ExchangeSecret::from_seed(&[seed + 1; 32]).public(),
    }
}

fn post(e: &mut Engine, group: &GroupId, now: Timestamp) -> Result<u64, UsageError> {
    let content = Content {
        officer: "duty officer".into(),
        recipients: vec![],
        reply_to: None,
        payload: Payload::Text {
            subject: "s".into(),
            body: "after the restore".into(),
        },
    };
    let draft = LocalDraft {
        now,
        handling: Handling::Green,
        expires_at: None,
        content: &content,
    };
    let mut rng = ChaCha20Rng::from_seed([9; 32]);
    e.seal(group, draft, &mut rng).map(|s| s.header.seq)
}

#[test]
fn a_restored_owner_learns_its_later_events_before_it_changes_the_group() {
    let mut rng = ChaCha20Rng::from_seed([5; 32]);
    let mut owner = engine(0x10, "rilo-wca");
    let mut member = engine(0x20, "customs-nl");
    let (gid, genesis) = owner
        .propose_create("rilo-wca", "ops", T0, &mut rng)
        .expect("creates");
    owner.commit_local_control(T0, &genesis).expect("applies");
    // The backup holds event 1 only.
    let backup = vec![genesis.clone()];
    let event2 = owner
        .propose(&gid, add("customs-nl", 0x20), T0, &mut rng)
        .expect("adds");
    owner.commit_local_control(T0, &event2).expect("applies");
    owner.handle_connected(T0, member.node_id());
    member.handle_connected(T0, owner.node_id());
    assert!(pump(&mut owner, &mut member, T0).is_empty());
    assert_eq!(member.group(&gid).map(|g| g.seq()), Some(2));
    drop(owner);

    // Without restoring mode, the restored owner would fork its chain at once.
    let mut careless = engine(0x10, "rilo-wca");
    careless.restore_group(backup.clone()).expect("restores");
    let fork = careless
        .propose(&gid, add("museum-be", 0x40), T0, &mut rng)
        .expect("proposes");
    careless.commit_local_control(T0, &fork).expect("applies");
    assert_eq!(
        careless.group(&gid).map(|g| g.seq()),
        Some(2),
        "a second event 2"
    );

    // In restoring mode it waits.
    let mut restored = engine(0x10, "rilo-wca");
    restored.restore_group(backup).expect("restores");
    restored.set_restoring(true);
    let now = T0.plus_millis(60_000);
    let progress = restored.restore_progress(now).expect("restoring");
    assert!(!progress.heard);
    assert_eq!(progress.pending, vec![gid]);
    assert!(matches!(
        restored.propose(&gid, add("museum-be", 0x40), now, &mut rng),
        Err(UsageError::RestorePending(g)) if g == gid
    ));
    assert!(matches!(
        post(&mut restored, &gid, now),
        Err(UsageError::RestorePending(_))
    ));

    // The member connects: the owner learns event 2 from it, but waits a sync interval more
    // (other connected peers may yet speak of groups joined after the backup).
    member.handle_disconnected(&restored.node_id());
    restored.handle_connected(now, member.node_id());
    member.handle_connected(now, restored.node_id());
    assert!(pump(&mut restored, &mut member, now).is_empty());
    assert_eq!(
        restored.group(&gid).map(|g| g.seq()),
        Some(2),
        "event 2 learned"
    );
    let progress = restored.restore_progress(now).expect("restoring");
    assert!(progress.heard);
    assert_eq!(progress.pending, vec![gid]);
    assert!(matches!(
        restored.propose(&gid, add("museum-be", 0x40), now, &mut rng),
        Err(UsageError::RestorePending(_))
    ));

    let later = now.plus_millis(Config::default().sync_interval_ms);
    let progress = restored.restore_progress(later).expect("restoring");
    assert!(progress.pending.is_empty(), "{progress:?}");
    let event3 = restored
        .propose(&gid, add("museum-be", 0x40), later, &mut rng)
        .expect("adds");
    restored
        .commit_local_control(later, &event3)
        .expect("applies");
    assert!(pump(&mut restored, &mut member, later).is_empty());
    assert_eq!(
        member.group(&gid).map(|g| g.seq()),
        Some(3),
        "the member takes event 3"
    );
    assert_eq!(
        post(&mut restored, &gid, later),
        Ok(1),
        "epoch 3 starts at seq 1"
    );

    restored.set_restoring(false);
    assert!(restored.restore_progress(later).is_none());
}
