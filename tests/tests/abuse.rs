//! What one pinned peer can make a node spend, and how the node holds it to account: times in
//! the future, sync requests naming tens of thousands of authors or concerning it in no way,
//! groups and control events without end, an author's bytes without end — each refused with a
//! strike, and strikes that survive a reconnect. And a time far ahead that is valid (an expiry
//! in year 10000), which every view must still show.

use liaison_node::clock::now;
use liaison_node::config::Config;
use liaison_node::daemon::RunningNode;
use liaison_node::node::Command;
use liaison_protocol::frame::{SyncRequest, VectorEntry, MAX_VECTOR_ENTRIES};
use liaison_protocol::group::{Change, GroupState};
use liaison_protocol::identity::{NodeRef, SignedDescriptor};
use liaison_protocol::message::{self, Content, Draft, Handling, MessageId, Payload};
use liaison_protocol::receipt::Receipt;
use liaison_protocol::{ExchangeKey, Frame, GroupId, Role, Timestamp};
use liaison_tests::hostile::{Hostile, Session};
use liaison_tests::logs::{self, Logs};
use liaison_tests::{create_group, nodes, peer_ready, wait_until};
use quinn::ConnectionError;
use rand_core::{OsRng, RngCore};

/// 10000-01-01T00:00:00Z: a time `humantime` cannot print.
const YEAR_10000: Timestamp = Timestamp(253_402_300_800_000);

struct Scene {
    _root: tempfile::TempDir,
    target: RunningNode,
    h: Hostile,
    logs: Logs,
}

impl Scene {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Scene {
        let logs = logs::capture();
        let root = tempfile::tempdir().expect("temp dir");
        let target = nodes::start_with(root.path(), "target", tweak).await;
        let h = Hostile::new("mallory");
        nodes::pin(&target, "mallory", h.node_id(), h.addr()).await;
        Scene {
            _root: root,
            target,
            h,
            logs,
        }
    }

    /// A fresh connection from mallory, once any earlier one is gone.
    async fn session(&self) -> Session {
        wait_until("the old connection to go", || async {
            !nodes::connected(&self.target, "mallory").await
        })
        .await
        .expect("old connection gone");
        let mut s = self.h.connect(&self.target).await;
        s.hello(&self.h).await;
        s
    }

    fn needles(&self, reason: &str) -> [String; 4] {
        [
            format!("node={}", self.target.node_id.short()),
            "rejected input from peer".to_owned(),
            format!("peer={}", self.h.node_id().short()),
            reason.to_owned(),
        ]
    }

    fn count(&self, reason: &str) -> usize {
        let n = self.needles(reason);
        self.logs.count(&[&n[0], &n[1], &n[2], &n[3]])
    }

    /// Sends `frame` and waits until the target logs a refusal of mallory's input for `reason`.
    async fn refused(&self, s: &mut Session, frame: &Frame, reason: &str) {
        let before = self.count(reason);
        s.send(frame).await;
        let n = self.needles(reason);
        self.logs
            .wait_for(before, &[&n[0], &n[1], &n[2], &n[3]])
            .await;
    }

    /// A group of the target's with mallory as member; its control events as mallory fetched
    /// them.
    async fn group_with_mallory(&self, s: &mut Session) -> (GroupId, Vec<Vec<u8>>) {
        wait_until("mallory's descriptor", || {
            peer_ready(&self.target.handle, "mallory")
        })
        .await
        .expect("known");
        let g = create_group(&self.target, "ops", &[]).await.expect("group");
        let (group, peer) = (g.to_string(), "mallory".to_owned());
        self.target
            .handle
            .as_admin()
            .add_member(group, peer, Role::Member)
            .await
            .expect("mallory admitted");
        let controls = s.fetch_controls(g).await;
        (g, controls)
    }

    fn stores(&self, id: MessageId) -> bool {
        self.target.store.has_message(&id).expect("store")
    }

    async fn shutdown(self) {
        self.target.shutdown().await.expect("stop");
    }
}

fn seal(
    h: &Hostile,
    controls: &[Vec<u8>],
    seq: u64,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    body_len: usize,
) -> message::Sealed {
    let content = Content {
        officer: "mallory".into(),
        recipients: Vec::new(),
        reply_to: None,
        payload: Payload::Text {
            subject: format!("seq {seq}"),
            body: "x".repeat(body_len),
        },
    };
    message::seal(
        &h.group_state(controls),
        &h.identity,
        Draft {
            seq,
            now: created_at,
            handling: Handling::Green,
            expires_at,
            content: &content,
        },
        &mut OsRng,
    )
    .expect("seal")
}

fn push(sealed: &message::Sealed) -> Frame {
    Frame::Push {
        envelopes: vec![sealed.bytes.clone()],
    }
}

fn closed_with(err: &ConnectionError, code: u32) -> bool {
    matches!(err, ConnectionError::ApplicationClosed(c) if c.error_code == quinn::VarInt::from_u32(code))
}

/// A message created in year 10000 (which used to be stored and then crash every view), one
/// that expires before it was created, and a receipt stored in year 10000: each refused with a
/// strike and stored nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_in_the_future_are_refused_with_a_strike() {
    let sc = Scene::start(|_| {}).await;
    let mut s = sc.session().await;
    let (_, controls) = sc.group_with_mallory(&mut s).await;

    let future = seal(&sc.h, &controls, 1, YEAR_10000, None, 10);
    sc.refused(&mut s, &push(&future), "created_at").await;
    let backwards = seal(
        &sc.h,
        &controls,
        1,
        now(),
        Some(Timestamp(now().0 - 60_000)),
        10,
    );
    sc.refused(&mut s, &push(&backwards), "before created_at")
        .await;
    // Seconds ahead is a clock, not an attack.
    let ahead = seal(&sc.h, &controls, 1, Timestamp(now().0 + 3_000), None, 10);
    s.send(&push(&ahead)).await;
    s.expect(
        "the acknowledgement",
        |f| matches!(f, Frame::Ack { ids } if ids.contains(&ahead.id)),
    )
    .await;
    assert!(!sc.stores(future.id) && !sc.stores(backwards.id));
    assert!(sc.stores(ahead.id));

    let receipt = Receipt::sign(&sc.h.identity, h_group(&controls), &[ahead.id], YEAR_10000)
        .expect("receipt");
    sc.refused(
        &mut s,
        &Frame::Receipts {
            receipts: vec![receipt.clone()],
        },
        "stored_at",
    )
    .await;
    assert!(
        liaison_node::node::stored_receipts(&sc.target.store, &ahead.id)
            .expect("store")
            .expect("held")
            .iter()
            .all(|(_, bytes)| *bytes != receipt)
    );
    assert!(s.is_open(), "three strikes are not sixteen");
    sc.shutdown().await;
}

/// A message that expires in year 10000 is valid (it expires after it was created), and every
/// view of it used to panic the node's actor, for good: the time could not be formatted. The
/// inbox, a read and an export now show it, and the node goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_expiring_in_year_10000_is_shown_and_the_node_goes_on() {
    let sc = Scene::start(|_| {}).await;
    let mut s = sc.session().await;
    let (g, controls) = sc.group_with_mallory(&mut s).await;
    let far = seal(&sc.h, &controls, 1, now(), Some(YEAR_10000), 10);
    s.send(&push(&far)).await;
    s.expect(
        "the acknowledgement",
        |f| matches!(f, Frame::Ack { ids } if ids.contains(&far.id)),
    )
    .await;
    let expected = Some("+010000-01-01T00:00:00.000Z");
    let inbox = sc
        .target
        .handle
        .ask(|reply| Command::Inbox {
            group: Some(g.to_string()),
            reply,
        })
        .await
        .expect("the node answers")
        .expect("inbox");
    let listed = inbox
        .iter()
        .find(|m| m.id == far.id.to_string())
        .expect("listed");
    assert_eq!(listed.expires_at.as_deref(), expected);
    let id = far.id;
    let read = sc
        .target
        .handle
        .ask(|reply| Command::Read { id, reply })
        .await
        .expect("the node answers")
        .expect("read");
    assert_eq!(read.expires_at.as_deref(), expected);
    let export = sc
        .target
        .handle
        .ask(|reply| Command::Export {
            group: g.to_string(),
            include_nominal: false,
            reply,
        })
        .await
        .expect("the node answers")
        .expect("export");
    assert!(export
        .exported
        .iter()
        .any(|m| m.id == far.id.to_string() && m.expires_at.as_deref() == expected));
    // Still handling frames.
    let next = seal(&sc.h, &controls, 2, now(), None, 10);
    s.send(&push(&next)).await;
    s.expect(
        "the acknowledgement",
        |f| matches!(f, Frame::Ack { ids } if ids.contains(&next.id)),
    )
    .await;
    sc.shutdown().await;
}

fn h_group(controls: &[Vec<u8>]) -> GroupId {
    liaison_protocol::group::decode_control(&controls[0])
        .expect("event 1")
        .1
        .group
}

/// A sync request's authors are compared as bytes, never decompressed: 60,000 of them that are
/// not even curve points are answered like any request (they used to fail to decode, after
/// most of a second of point decompression); more than a request may carry, or a request about
/// a group that does not concern the peer, is refused with a strike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_requests_are_bounded_and_irrelevant_ones_count_as_strikes() {
    let sc = Scene::start(|c| c.sync.max_strikes = 64).await;
    let mut s = sc.session().await;
    let (g, controls) = sc.group_with_mallory(&mut s).await;
    let mut authors: Vec<[u8; 32]> = (0..60_000)
        .map(|_| {
            let mut a = [0u8; 32];
            OsRng.fill_bytes(&mut a);
            a[31] |= 0x7f; // Most such values are no curve point.
            a
        })
        .collect();
    authors.sort_unstable();
    authors.dedup();
    let vector: Vec<VectorEntry> = authors
        .iter()
        .map(|a| VectorEntry {
            author: NodeRef(*a),
            epoch: 1,
            high: 7,
        })
        .collect();
    let request = |vector: Vec<VectorEntry>, group: GroupId, control_seq: u64| {
        Frame::SyncRequest(SyncRequest {
            group,
            control_seq,
            vector,
            ranges: Vec::new(),
            max_bytes: 0,
        })
    };
    s.clear();
    s.send(&request(vector.clone(), g, controls.len() as u64))
        .await;
    s.expect(
        "the answer",
        |f| matches!(f, Frame::SyncResponse(r) if r.group == g),
    )
    .await;
    assert_eq!(sc.count("sync request"), 0, "a valid request was refused");

    // More entries than a request may carry: refused before anything is looked up.
    let mut big = vector;
    while big.len() <= MAX_VECTOR_ENTRIES {
        let mut a = [0xffu8; 32];
        a[..8].copy_from_slice(&(big.len() as u64).to_be_bytes());
        big.push(VectorEntry {
            author: NodeRef(a),
            epoch: 1,
            high: 1,
        });
    }
    big.sort_by_key(|e| e.author);
    big.dedup_by_key(|e| e.author);
    sc.refused(&mut s, &request(big, g, 1), "too many vector entries")
        .await;
    // Unsorted: refused.
    let unsorted = vec![
        VectorEntry {
            author: NodeRef([2; 32]),
            epoch: 1,
            high: 1,
        },
        VectorEntry {
            author: NodeRef([1; 32]),
            epoch: 1,
            high: 1,
        },
    ];
    sc.refused(&mut s, &request(unsorted, g, 1), "not strictly ascending")
        .await;
    // A group neither node holds, and one of the target's that mallory does not belong to.
    sc.refused(
        &mut s,
        &request(Vec::new(), GroupId::from([9; 16]), 0),
        "neither node holds",
    )
    .await;
    let other = create_group(&sc.target, "other", &[]).await.expect("group");
    sc.refused(&mut s, &request(Vec::new(), other, 1), "not a member of")
        .await;
    assert!(s.is_open());
    sc.shutdown().await;
}

/// The target's exchange key, from the descriptor in its `Hello` to mallory.
async fn exchange_key_of_target(s: &mut Session) -> ExchangeKey {
    let hello = s
        .expect("the target's hello", |f| matches!(f, Frame::Hello { .. }))
        .await;
    let Frame::Hello { descriptor } = hello else {
        unreachable!()
    };
    SignedDescriptor::verify(&descriptor, now())
        .expect("valid descriptor")
        .exchange_key
}

/// Mallory's own group that adds the target, as the control events that make it.
fn mallory_group(h: &Hostile, target: &RunningNode, key: ExchangeKey) -> (GroupId, Vec<Vec<u8>>) {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    let gid = GroupId::from(id);
    let genesis = GroupState::create(
        &h.identity,
        "mallory",
        h.exchange.public(),
        gid,
        "spam",
        now(),
        &mut OsRng,
    )
    .expect("genesis");
    let state = GroupState::from_genesis(&genesis, None).expect("state");
    let add = state
        .propose(
            &h.identity,
            Change::Add {
                member: target.node_id,
                name: "target".into(),
                role: Role::Member,
                exchange_key: key,
            },
            now(),
            &mut OsRng,
        )
        .expect("add");
    (gid, vec![genesis, add])
}

async fn knows(node: &RunningNode, g: GroupId) -> bool {
    liaison_tests::knows_group(&node.handle, g).await
}

/// A peer may make a node join only so many of its groups, apply only so many control events
/// per group, and take only so many bytes of its messages a day; beyond, it is refused with a
/// strike, and nothing more is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_bound_groups_control_events_and_bytes_per_peer() {
    let sc = Scene::start(|c| {
        c.sync.max_strikes = 64;
        c.sync.max_groups_per_owner = 2;
        c.sync.max_controls_per_group = 5;
        c.sync.max_author_bytes_per_day = 48 * 1024;
    })
    .await;
    let mut s = sc.session().await;
    let key = exchange_key_of_target(&mut s).await;

    // Groups of one owner: two are joined, the third is refused.
    let mut groups = Vec::new();
    for _ in 0..2 {
        let (gid, events) = mallory_group(&sc.h, &sc.target, key);
        s.send(&Frame::Control {
            group: gid,
            events: events.clone(),
        })
        .await;
        wait_until("the target to join", || knows(&sc.target, gid))
            .await
            .expect("joined");
        groups.push((gid, events));
    }
    let (third, events) = mallory_group(&sc.h, &sc.target, key);
    sc.refused(
        &mut s,
        &Frame::Control {
            group: third,
            events,
        },
        "groups of one owner",
    )
    .await;
    assert!(!knows(&sc.target, third).await);

    // Control events of one group: five are applied, the sixth is refused.
    let (gid, mut events) = groups.remove(0);
    let mut state = GroupState::from_genesis(&events[0], None).expect("state");
    state.apply(&events[1], None).expect("applies");
    for _ in 0..4 {
        let next = state
            .propose(&sc.h.identity, Change::Rotate, now(), &mut OsRng)
            .expect("rotate");
        state.apply(&next, None).expect("applies");
        events.push(next);
    }
    assert_eq!(events.len(), 6);
    sc.refused(
        &mut s,
        &Frame::Control {
            group: gid,
            events: events[2..].to_vec(),
        },
        "control events of one group",
    )
    .await;
    let epoch = sc
        .target
        .handle
        .as_admin()
        .group(gid.to_string())
        .await
        .expect("group")
        .epoch;
    assert_eq!(epoch, 5, "events beyond the quota were applied");

    // Bytes of one author a day: three messages of 20 KiB fit in 48 KiB twice, not three times.
    let (g, controls) = sc.group_with_mallory(&mut s).await;
    let mut ids = Vec::new();
    for seq in 1..=2 {
        let m = seal(&sc.h, &controls, seq, now(), None, 20 * 1024);
        s.send(&push(&m)).await;
        s.expect(
            "an acknowledgement",
            |f| matches!(f, Frame::Ack { ids } if ids.contains(&m.id)),
        )
        .await;
        ids.push(m.id);
    }
    let over = seal(&sc.h, &controls, 3, now(), None, 20 * 1024);
    sc.refused(&mut s, &push(&over), "bytes of one author")
        .await;
    assert!(ids.iter().all(|id| sc.stores(*id)));
    assert!(!sc.stores(over.id));
    let _ = g;
    sc.shutdown().await;
}

/// Strikes belong to the peer, not to one connection: a peer that reconnects keeps them, and
/// one dropped for them is dropped again at once when it comes back. (They used to reset on
/// every reconnect, so a peer could send any number of bad frames, a few per connection.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strikes_survive_a_reconnect() {
    const STRIKES: u32 = 6;
    let sc = Scene::start(|c| c.sync.max_strikes = STRIKES).await;
    let bad = Frame::SyncRequest(SyncRequest {
        group: GroupId::from([7; 16]),
        control_seq: 0,
        vector: Vec::new(),
        ranges: Vec::new(),
        max_bytes: 0,
    });
    let mut s = sc.session().await;
    for _ in 0..STRIKES - 2 {
        sc.refused(&mut s, &bad, "neither node holds").await;
    }
    assert!(s.is_open());
    s.close();
    let mut s = sc.session().await;
    sc.refused(&mut s, &bad, "neither node holds").await;
    assert!(s.is_open(), "dropped one strike early");
    s.send(&bad).await;
    let why = s.closed().await;
    assert!(closed_with(&why, 1), "not dropped for its strikes: {why:?}");
    // Back at once: still over the limit, dropped again without another bad frame (the close
    // may come before the dialler saw its handshake complete, which fails it).
    wait_until("the old connection to go", || async {
        !nodes::connected(&sc.target, "mallory").await
    })
    .await
    .expect("gone");
    let dropped = [
        format!("node={}", sc.target.node_id.short()),
        "dropping peer after repeated invalid input".to_owned(),
        format!("peer={}", sc.h.node_id().short()),
    ];
    let before = sc.logs.count(&[&dropped[0], &dropped[1], &dropped[2]]);
    if let Some(why) = sc.h.connect_and_wait_closed(&sc.target).await {
        assert!(closed_with(&why, 1), "taken back with its strikes: {why:?}");
    }
    sc.logs
        .wait_for(before, &[&dropped[0], &dropped[1], &dropped[2]])
        .await;
    sc.shutdown().await;
}
