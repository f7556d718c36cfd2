//! Descriptors shared through peers' directories: every node ends up with the newest descriptor
//! of every other node, however their copies crossed, and a descriptor never bounces back to the
//! peer that sent it.

use liaison_protocol::identity::{Descriptor, SignedDescriptor};
use liaison_protocol::sync::{Archive, Config, Engine, Event};
use liaison_protocol::{ExchangeSecret, Frame, GroupId, IdentityKey, MessageId, NodeId, Timestamp};

const T0: Timestamp = Timestamp(1_767_225_600_000);

struct NoArchive;

impl Archive for NoArchive {
    fn envelopes(&self, _: &GroupId, _: &NodeId, _: u64, _: u64, _: u64, _: usize) -> Vec<Vec<u8>> {
        Vec::new()
    }
    fn message_origin(&self, _: &MessageId) -> Option<(GroupId, NodeId)> {
        None
    }
}

fn descriptor(seed: u8, name: &str, valid_from: Timestamp) -> Vec<u8> {
    let identity = IdentityKey::from_seed(&[seed; 32]);
    let exchange = ExchangeSecret::from_seed(&[seed ^ 0x5a; 32]);
    Descriptor {
        node: identity.node_id(),
        name: name.to_owned(),
        addresses: vec![format!("192.0.2.{seed}:7400")],
        exchange_key: exchange.public(),
        valid_from,
        valid_until: valid_from.plus_millis(365 * 86_400_000),
    }
    .sign(&identity)
    .expect("signs")
    .to_bytes()
    .expect("encodes")
}

fn engine(seed: u8, name: &str, now: Timestamp) -> Engine {
    Engine::new(
        IdentityKey::from_seed(&[seed; 32]),
        ExchangeSecret::from_seed(&[seed ^ 0x5a; 32]),
        descriptor(seed, name, now),
        Config::default(),
    )
}

/// Moves every frame between two connected engines until neither sends anything more, or
/// `limit` frames went across; returns the `Directory` frames that went across and each
/// engine's `Event::Directory` count.
fn pump(nodes: &mut [Engine; 2], now: Timestamp, limit: usize) -> (usize, [usize; 2]) {
    let ids = [nodes[0].node_id(), nodes[1].node_id()];
    let mut directory_frames = 0;
    let mut learned = [0, 0];
    let mut moved = 0;
    loop {
        let mut idle = true;
        for from in 0..2 {
            let to = 1 - from;
            while let Some(event) = nodes[from].poll_event() {
                match event {
                    Event::Directory { .. } => learned[from] += 1,
                    Event::Rejected { reason, .. } => panic!("rejected: {reason}"),
                    _ => {}
                }
            }
            while let Some(t) = nodes[from].poll_transmit() {
                assert_eq!(t.peer, ids[to]);
                idle = false;
                moved += 1;
                if matches!(Frame::decode(&t.frame), Ok(Frame::Directory { .. })) {
                    directory_frames += 1;
                }
                nodes[to].handle_frame(now, ids[from], &t.frame, &NoArchive);
            }
        }
        if idle || moved >= limit {
            return (directory_frames, learned);
        }
    }
}

/// Two nodes that hold different descriptors of a third meet: each sends the other its copy,
/// at the same time. Without an order between descriptors each took the other's copy and sent
/// it on, and the two copies swapped back and forth for ever (a hub at 40–65 % of a core). The
/// stale copy here is what a node restarted while the third was down still held from before;
/// the third then restarted and signed a new one (stop A, restart X, start A).
#[test]
fn crossing_copies_of_a_descriptor_settle_on_the_newest() {
    let old = descriptor(3, "node-a", T0);
    let new = descriptor(3, "node-a", T0.plus_millis(60_000));
    let now = T0.plus_millis(120_000);
    let a = IdentityKey::from_seed(&[3; 32]).node_id();
    for (first, second) in [(&old, &new), (&new, &old)] {
        let mut nodes = [engine(1, "hub", now), engine(2, "node-x", now)];
        nodes[0].restore_descriptor(now, first.clone());
        nodes[1].restore_descriptor(now, second.clone());
        let (x, hub) = (nodes[1].node_id(), nodes[0].node_id());
        nodes[0].handle_connected(now, x);
        nodes[1].handle_connected(now, hub);
        let (frames, learned) = pump(&mut nodes, now, 10_000);
        // Each sends its directory once; the one holding the old copy takes the new one and
        // forwards it to nobody (its only peer sent it).
        assert_eq!(frames, 2, "descriptors kept bouncing");
        assert_eq!(learned.iter().sum::<usize>(), 1);
        for node in &nodes {
            let held: Vec<&[u8]> = node
                .directory()
                .filter(|d| SignedDescriptor::verify(d, now).is_ok_and(|d| d.node == a))
                .collect();
            assert_eq!(held, vec![new.as_slice()]);
        }
    }
}

/// A descriptor equal in order to the one held (same `valid_from`, other bytes) is ignored,
/// and one learned from a peer is never sent back to it.
#[test]
fn an_equal_or_older_descriptor_is_ignored_and_none_goes_back_to_its_sender() {
    let now = T0.plus_millis(120_000);
    let held = descriptor(3, "node-a", T0.plus_millis(60_000));
    let same_time = descriptor(3, "node-a-renamed", T0.plus_millis(60_000));
    let older = descriptor(3, "node-a", T0);
    let mut hub = engine(1, "hub", now);
    hub.restore_descriptor(now, held.clone());
    let x = engine(2, "node-x", now).node_id();
    let y = engine(4, "node-y", now).node_id();
    hub.handle_connected(now, x);
    hub.handle_connected(now, y);
    while hub.poll_transmit().is_some() {}
    for other in [&same_time, &older] {
        let frame = Frame::Directory {
            descriptors: vec![other.clone()],
        }
        .encode()
        .expect("encodes");
        hub.handle_frame(now, x, &frame, &NoArchive);
        assert!(
            hub.poll_transmit().is_none(),
            "an ignored copy was forwarded"
        );
        while let Some(event) = hub.poll_event() {
            assert!(!matches!(event, Event::Directory { .. }));
        }
    }
    let newer = descriptor(3, "node-a", T0.plus_millis(90_000));
    let frame = Frame::Directory {
        descriptors: vec![newer.clone()],
    }
    .encode()
    .expect("encodes");
    hub.handle_frame(now, x, &frame, &NoArchive);
    let mut to = Vec::new();
    while let Some(t) = hub.poll_transmit() {
        to.push(t.peer);
    }
    assert_eq!(
        to,
        vec![y],
        "forwarded to the other peer only, not back to its sender"
    );
    assert!(hub.directory().any(|d| d == newer.as_slice()));
}

/// A peer whose clock runs a few seconds ahead signs its descriptor "valid from" a moment that
/// has not come yet here: that is still its valid descriptor (it used to be refused, so the
/// peer could never be admitted to a group: "has not connected yet").
#[test]
fn a_peer_clock_seconds_ahead_is_accepted() {
    let now = T0;
    let mut hub = engine(1, "hub", now);
    let ahead = engine(2, "node-x", now.plus_millis(3_000));
    let x = ahead.node_id();
    hub.handle_connected(now, x);
    let hello = Frame::Hello {
        descriptor: descriptor(2, "node-x", now.plus_millis(3_000)),
    }
    .encode()
    .expect("encodes");
    hub.handle_frame(now, x, &hello, &NoArchive);
    let mut described = false;
    while let Some(event) = hub.poll_event() {
        match event {
            Event::PeerDescriptor { peer, .. } => described = peer == x,
            Event::Rejected { reason, .. } => panic!("rejected: {reason}"),
            _ => {}
        }
    }
    assert!(described);
    // Far in the future is still refused.
    let far = Frame::Hello {
        descriptor: descriptor(2, "node-x", now.plus_millis(3_600_000)),
    }
    .encode()
    .expect("encodes");
    hub.handle_frame(now, x, &far, &NoArchive);
    let rejected = std::iter::from_fn(|| hub.poll_event())
        .filter(|e| matches!(e, Event::Rejected { .. }))
        .count();
    assert_eq!(rejected, 1);
}
