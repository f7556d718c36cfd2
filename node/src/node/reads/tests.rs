//! The read model against real nodes (QUIC on loopback, temp dirs, sled).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use liaison_protocol::{GroupId, Handling, MessageId, Role};

use super::PageRequest;
use crate::accounts::{Access, Principal};
use crate::daemon::{start, RunningNode};
use crate::demo::{create_group, init_node, knows_group, peer, peer_ready, post, wait_until};
use crate::error::Error;
use crate::node::command::Command;
use crate::node::{faults, NodeEvent, Post};

/// Generous: only a node that holds the ack behind the listing comes near it.
const ACK_WAIT: Duration = Duration::from_secs(60);

async fn two_nodes(root: &std::path::Path) -> (RunningNode, RunningNode, GroupId) {
    let a = start(&init_node(root, "a", 200).unwrap()).await.unwrap();
    let b = start(&init_node(root, "b", 200).unwrap()).await.unwrap();
    peer(&a, &b).await.unwrap();
    for (x, y) in [(&a, &b), (&b, &a)] {
        wait_until("the link", || peer_ready(&x.handle, &y.name))
            .await
            .unwrap();
    }
    let g = create_group(&a, "ops", &[(&b, Role::Member)])
        .await
        .unwrap();
    wait_until("b to know the group", || knows_group(&b.handle, g))
        .await
        .unwrap();
    (a, b, g)
}

fn page(group: GroupId, limit: usize, before: Option<String>) -> PageRequest {
    PageRequest {
        group: Some(group.to_string()),
        limit: Some(limit),
        before,
    }
}

/// A listing in flight on `b` (parked mid-scan by a fault hook until the test lets it go)
/// does not hold the ack of a message `a` pushes to `b`: `a` learns that `b` stored it while
/// the listing still runs. With listings on the actor, the actor itself would be parked and
/// the ack would never come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_is_not_held_behind_a_listing() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, g) = two_nodes(root.path()).await;
    let first = post(&a, g, "j.doe", "first", "one", Handling::Green)
        .await
        .unwrap();
    wait_until("b to hold the first", || {
        crate::demo::holds(&b.handle, first)
    })
    .await
    .unwrap();

    faults::park_listings(g);
    let scoped = b.handle.as_admin();
    let listing = tokio::spawn(async move { scoped.inbox(page(g, 100, None)).await });
    wait_until("the listing to park mid-scan", || async {
        faults::listings_parked(g) > 0
    })
    .await
    .unwrap();

    let mut events = a.subscribe();
    let pushed = post(&a, g, "j.doe", "second", "two", Handling::Green)
        .await
        .unwrap();
    let acked = tokio::time::timeout(ACK_WAIT, async {
        loop {
            match events.recv().await {
                Ok(NodeEvent::Acked { peer, ids })
                    if peer == b.node_id && ids.contains(&pushed) =>
                {
                    return;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await;
    let still_listing = !listing.is_finished();
    faults::release_listings(g);
    assert!(acked.is_ok(), "b's ack was held behind the listing");
    assert!(
        still_listing,
        "the ack came while the listing was in flight"
    );
    let listed = listing.await.unwrap().unwrap();
    assert!(listed.messages.iter().any(|m| m.id == first.to_string()));
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// Paging a group with a small limit while this node posts and a peer delivers more: every
/// message held when paging began appears exactly once, newest first, and no message twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_is_stable_under_concurrent_arrivals() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, g) = two_nodes(root.path()).await;
    let mut before_paging = Vec::new();
    for n in 0..30 {
        let (node, officer) = if n % 3 == 0 {
            (&b, "k.lee")
        } else {
            (&a, "j.doe")
        };
        before_paging.push(
            post(node, g, officer, &format!("m{n}"), "body", Handling::Green)
                .await
                .unwrap(),
        );
    }
    for id in &before_paging {
        wait_until("a to hold every message", || {
            crate::demo::holds(&a.handle, *id)
        })
        .await
        .unwrap();
    }

    let (a_handle, b_handle) = (a.handle.clone(), b.handle.clone());
    let posting = tokio::spawn(async move {
        for n in 0..20 {
            let (node, officer) = if n % 2 == 0 {
                (&a_handle, "j.doe")
            } else {
                (&b_handle, "k.lee")
            };
            let post = Post {
                officer: officer.into(),
                recipients: Vec::new(),
                subject: format!("later {n}"),
                body: "body".into(),
                record: None,
                handling: Handling::Green,
                reply_to: None,
                attachments: Vec::new(),
            };
            node.ask(|reply| Command::Post {
                group: g.to_string(),
                post,
                reply,
            })
            .await
            .unwrap()
            .unwrap();
        }
    });

    let scoped = a.handle.as_admin();
    let mut seen: Vec<(u64, String)> = Vec::new();
    let mut before = None;
    loop {
        let p = scoped.inbox(page(g, 4, before)).await.unwrap();
        seen.extend(p.messages.iter().map(|m| (m.created_at_ms, m.id.clone())));
        match p.next {
            Some(next) => before = Some(next),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    posting.await.unwrap();

    let unique: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(unique.len(), seen.len(), "a message shown twice: {seen:?}");
    for pair in seen.windows(2) {
        assert!(pair[0] > pair[1], "not newest first: {pair:?}");
    }
    for id in &before_paging {
        assert!(unique.contains(&id.to_string()), "{id} was skipped");
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// A cursor this node did not hand out and a limit out of range are refused; TLP:RED for
/// others, quarantined messages and groups without a grant never show in a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_refuse_bad_requests_and_show_only_what_the_caller_may_see() {
    let root = tempfile::tempdir().unwrap();
    let a = start(&init_node(root.path(), "a", 200).unwrap())
        .await
        .unwrap();
    let g = create_group(&a, "ops", &[]).await.unwrap();
    let green = post(&a, g, "j.doe", "green", "g", Handling::Green)
        .await
        .unwrap();
    let red = Post {
        officer: "j.doe".into(),
        recipients: vec!["m.roe@a".into()],
        subject: "red".into(),
        body: "r".into(),
        record: None,
        handling: Handling::Red,
        reply_to: None,
        attachments: Vec::new(),
    };
    let red: MessageId = a
        .handle
        .ask(|reply| Command::Post {
            group: g.to_string(),
            post: red,
            reply,
        })
        .await
        .unwrap()
        .unwrap();
    let bad = post(&a, g, "j.doe", "bad", "b", Handling::Green)
        .await
        .unwrap();
    a.handle
        .ask(|reply| Command::Quarantine {
            id: bad,
            reason: "breaks a view".into(),
            reply,
        })
        .await
        .unwrap()
        .unwrap();

    let admin = a.handle.as_admin();
    for before in [
        "",
        "nope",
        &"0".repeat(81),
        &format!("{}{}", "z".repeat(16), green),
    ] {
        let refused = admin.inbox(page(g, 10, Some(before.to_owned()))).await;
        assert!(
            matches!(refused, Err(Error::Invalid(_))),
            "{before:?}: {refused:?}"
        );
    }
    for limit in [0, 1001] {
        let refused = admin.inbox(page(g, limit, None)).await;
        assert!(
            matches!(refused, Err(Error::Invalid(_))),
            "{limit}: {refused:?}"
        );
    }

    let officer = |name: &str, grants: BTreeMap<GroupId, Access>| Principal::Officer {
        name: name.into(),
        grants,
    };
    let ids = |p: &crate::views::MessagePage| -> Vec<String> {
        p.messages.iter().map(|m| m.id.clone()).collect()
    };
    let granted = BTreeMap::from([(g, Access::Read)]);
    // j.doe posted the RED message, m.roe is named on it, k.lee is neither.
    for (name, sees_red) in [("j.doe", true), ("m.roe", true), ("k.lee", false)] {
        let scoped = a.handle.as_officer(officer(name, granted.clone()));
        for request in [page(g, 1, None), PageRequest::default()] {
            let mut shown = Vec::new();
            let mut request = request;
            loop {
                let p = scoped.inbox(request.clone()).await.unwrap();
                shown.extend(ids(&p));
                match p.next {
                    Some(next) => request.before = Some(next),
                    None => break,
                }
            }
            assert!(shown.contains(&green.to_string()), "{name}");
            assert_eq!(shown.contains(&red.to_string()), sees_red, "{name}");
            assert!(!shown.contains(&bad.to_string()), "{name}: quarantined");
        }
    }
    // No grant: the group is unknown, and a listing of all groups is empty.
    let revoked = a.handle.as_officer(officer("k.lee", BTreeMap::new()));
    assert!(matches!(
        revoked.inbox(page(g, 10, None)).await,
        Err(Error::NotFound(_))
    ));
    let all = revoked.inbox(PageRequest::default()).await.unwrap();
    assert!(all.messages.is_empty() && all.next.is_none());
    a.shutdown().await.unwrap();
}

/// More heavy queries at once than one principal may run are refused, not queued; another
/// principal is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heavy_queries_are_bounded_per_principal() {
    let root = tempfile::tempdir().unwrap();
    let a = start(&init_node(root.path(), "a", 200).unwrap())
        .await
        .unwrap();
    let g = create_group(&a, "ops", &[]).await.unwrap();
    post(&a, g, "j.doe", "one", "1", Handling::Green)
        .await
        .unwrap();
    faults::park_listings(g);
    let mut parked = Vec::new();
    for _ in 0..super::MAX_HEAVY_PER_PRINCIPAL {
        let scoped = a.handle.as_admin();
        parked.push(tokio::spawn(async move {
            scoped.inbox(page(g, 10, None)).await
        }));
    }
    let all_parked = wait_until("every permit to be taken", || async {
        faults::listings_parked(g) == super::MAX_HEAVY_PER_PRINCIPAL
    })
    .await;
    let busy = a.handle.as_admin().stats(g.to_string()).await;
    let other = a
        .handle
        .as_officer(Principal::Officer {
            name: "j.doe".into(),
            grants: BTreeMap::from([(g, Access::Read)]),
        })
        .stats(g.to_string())
        .await;
    faults::release_listings(g);
    all_parked.unwrap();
    assert!(matches!(busy, Err(Error::Busy(_))), "{busy:?}");
    assert!(other.is_ok(), "{other:?}");
    for p in parked {
        p.await.unwrap().unwrap();
    }
    a.shutdown().await.unwrap();
}

/// Not a test but a measure, run by hand (`cargo test -p liaison-node --lib -- --ignored
/// measure_a_page --nocapture`): the first page of a group of 10,000 messages against a read of
/// the whole group. Prints the times; asserts nothing about them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measure, not a test"]
async fn measure_a_page_of_ten_thousand() {
    const MESSAGES: usize = 10_000;
    let root = tempfile::tempdir().unwrap();
    let a = start(&init_node(root.path(), "a", 200).unwrap())
        .await
        .unwrap();
    let g = create_group(&a, "ops", &[]).await.unwrap();
    for chunk in 0..MESSAGES / 500 {
        let mut answers = Vec::new();
        let mut items = Vec::new();
        for n in 0..500 {
            let (reply, answer) = tokio::sync::oneshot::channel();
            answers.push(answer);
            items.push(crate::node::PostItem {
                post: Post {
                    officer: "j.doe".into(),
                    recipients: Vec::new(),
                    subject: format!("message {}", chunk * 500 + n),
                    body: "a body of a few words".into(),
                    record: None,
                    handling: Handling::Green,
                    reply_to: None,
                    attachments: Vec::new(),
                },
                audit: None,
                reply,
            });
        }
        a.handle
            .ask(|reply| Command::PostEach {
                group: g.to_string(),
                items,
                reply,
            })
            .await
            .unwrap();
        for answer in answers {
            answer.await.unwrap().unwrap();
        }
    }
    let admin = a.handle.as_admin();
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let p = admin.inbox(page(g, 100, None)).await.unwrap();
        let first = started.elapsed();
        let started = std::time::Instant::now();
        let mut before = p.next.clone();
        let mut pages = 1;
        while let Some(cursor) = before {
            let p = admin.inbox(page(g, 1000, Some(cursor))).await.unwrap();
            before = p.next;
            pages += 1;
        }
        let walk = started.elapsed();
        let started = std::time::Instant::now();
        let stats = admin.stats(g.to_string()).await.unwrap();
        let whole = started.elapsed();
        println!(
            "{MESSAGES} messages: first page of 100 {first:?}; every page of 1,000 ({pages}) {walk:?}; \
             statistics (a read of the whole group with records) {whole:?} for {} messages",
            stats.messages
        );
    }
    a.shutdown().await.unwrap();
}

/// An export sent one message at a time exports and refuses what the whole export does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_export_is_the_whole_export() {
    let root = tempfile::tempdir().unwrap();
    let a = start(&init_node(root.path(), "a", 200).unwrap())
        .await
        .unwrap();
    let g = create_group(&a, "ops", &[]).await.unwrap();
    for (n, handling) in [
        Handling::Green,
        Handling::AmberStrict,
        Handling::Red,
        Handling::Amber,
    ]
    .into_iter()
    .enumerate()
    {
        let post = Post {
            officer: "j.doe".into(),
            recipients: vec!["m.roe@a".into()],
            subject: format!("m{n}"),
            body: "b".into(),
            record: None,
            handling,
            reply_to: None,
            attachments: Vec::new(),
        };
        a.handle
            .ask(|reply| Command::Post {
                group: g.to_string(),
                post,
                reply,
            })
            .await
            .unwrap()
            .unwrap();
    }
    let officer = a.handle.as_officer(Principal::Officer {
        name: "j.doe".into(),
        grants: BTreeMap::from([(g, Access::Read)]),
    });
    let whole = officer.export(g.to_string(), false).await.unwrap();
    let mut streamed = officer.export_stream(g.to_string(), false).await.unwrap();
    assert_eq!(streamed.group_id, whole.group_id);
    assert_eq!(streamed.exported, whole.exported.len());
    let mut sent = Vec::new();
    while let Some(view) = streamed.next().await {
        sent.push(serde_json::to_value(view.unwrap()).unwrap());
    }
    let want: Vec<serde_json::Value> = whole
        .exported
        .iter()
        .map(|v| serde_json::to_value(v).unwrap())
        .collect();
    assert_eq!(sent, want);
    assert_eq!(
        serde_json::to_value(&streamed.refused).unwrap(),
        serde_json::to_value(&whole.refused).unwrap()
    );
    assert_eq!(whole.exported.len(), 2, "green and amber");
    assert_eq!(whole.refused.len(), 2, "amber+strict and j.doe's own red");
    a.shutdown().await.unwrap();
}

/// A thread is read from its own messages, found through the reply index, never from its
/// group: a message of the group outside the thread, whose every view panics (a fault hook),
/// does not stop it. Replies sealed on either node are in it on both, oldest first and at
/// their depths. A node restarted on a store without the reply index (a data directory
/// written before it existed) indexes the replies again before it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_reads_its_own_messages_not_its_group() {
    let root = tempfile::tempdir().unwrap();
    let (a, b, g) = two_nodes(root.path()).await;
    let holds = |node: &RunningNode, id: MessageId| {
        let handle = node.handle.clone();
        wait_until("a message to arrive", move || {
            let handle = handle.clone();
            async move { crate::demo::holds(&handle, id).await }
        })
    };
    let answer = |node: &RunningNode, to: MessageId, subject: &str| {
        let scoped = node.handle.as_admin();
        let post = Post {
            officer: "j.doe".into(),
            recipients: Vec::new(),
            subject: subject.into(),
            body: "an answer".into(),
            record: None,
            handling: Handling::Green,
            reply_to: Some(to),
            attachments: Vec::new(),
        };
        async move { scoped.post(g.to_string(), post).await.unwrap() }
    };
    let top = post(&a, g, "j.doe", "top", "the root", Handling::Green)
        .await
        .unwrap();
    let aside = post(
        &a,
        g,
        "j.doe",
        "aside",
        "not in the thread",
        Handling::Green,
    )
    .await
    .unwrap();
    holds(&b, top).await.unwrap();
    let first = answer(&b, top, "first answer").await;
    holds(&a, first).await.unwrap();
    let second = answer(&a, top, "second answer").await;
    let below = answer(&a, first, "answer to the first").await;
    for id in [aside, second, below] {
        holds(&b, id).await.unwrap();
    }
    let want = [(top, 0), (first, 1), (below, 2), (second, 1)];
    let shape = |t: crate::views::ThreadView| -> Vec<(String, usize)> {
        t.entries.into_iter().map(|e| (e.id, e.depth)).collect()
    };
    let want: Vec<(String, usize)> = want.iter().map(|(id, d)| (id.to_string(), *d)).collect();

    super::super::faults::panic_at_view(aside);
    for node in [&a, &b] {
        for from in [top, below, second] {
            let thread = node.handle.as_admin().thread(from).await.unwrap();
            assert_eq!(thread.root, top.to_string());
            assert_eq!(shape(thread), want, "{} from {from}", node.name);
        }
    }

    a.shutdown().await.unwrap();
    let dir = crate::datadir::DataDir::new(root.path().join("a"));
    {
        let store = crate::store::Store::open(&dir.store_path()).unwrap();
        store.forget_replies().await.unwrap();
        assert!(store.replies(&g, &top).unwrap().is_empty());
    }
    let a = start(&dir).await.unwrap();
    assert!(a.store.replies_whole().unwrap());
    let thread = a.handle.as_admin().thread(below).await.unwrap();
    assert_eq!(shape(thread), want);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
