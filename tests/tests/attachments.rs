//! Photos attached to records travel between real nodes: uploaded through the API with their
//! EXIF GPS position removed, encrypted and stored on the author's node, fetched by a member's
//! node over QUIC streams and served, decrypted, to its officers; refused to a node that is
//! not a member, to an officer without a grant, and when over the size limit.

use std::io::Cursor;
use std::path::Path;

use liaison_node::api::{AddUser, NewUser};
use liaison_node::attachments::Uploaded;
use liaison_node::client::Client;
use liaison_node::daemon::RunningNode;
use liaison_node::datadir::DataDir;
use liaison_node::error::Error;
use liaison_node::views::{Created, MessageView};
use liaison_protocol::attachment::AttachmentId;
use liaison_protocol::transfer::{ChunkRequest, ChunkResponse, MAX_RESPONSE_LEN};
use liaison_protocol::{MessageId, Role};
use liaison_tests::hostile::Hostile;
use liaison_tests::nodes::{pin, start_with};
use liaison_tests::photos::photo_with_gps;
use liaison_tests::{create_group, holds, knows_group, peer, peer_ready, wait_until};

fn admin(node: &RunningNode, dir: &Path) -> Client {
    let token = DataDir::new(dir).admin_token().expect("admin token");
    Client::new(&format!("http://{}", node.api_addr), token.to_string()).expect("client")
}

async fn officer(admin: &Client, node: &RunningNode, name: &str, grants: &[String]) -> Client {
    let user: NewUser = admin
        .post(
            "/v1/users",
            &AddUser {
                name: name.into(),
                grants: grants.to_vec(),
                login: None,
                operator: false,
            },
        )
        .await
        .expect("add officer");
    Client::new(&format!("http://{}", node.api_addr), user.token).expect("client")
}

/// Asks `client` for attachment `id` until its node holds it (it answers 503 meanwhile).
async fn fetched(client: &Client, id: &str) -> (Vec<u8>, String) {
    let path = format!("/v1/attachments/{id}");
    let last = std::sync::Mutex::new(None);
    wait_until("the attachment", || async {
        match client.get_bytes(&path).await {
            Ok(got) => {
                *last.lock().expect("not poisoned") = Some(got);
                true
            }
            Err(Error::NotYet(_)) => false,
            Err(e) => panic!("fetching the attachment failed: {e}"),
        }
    })
    .await
    .expect("the member's node fetches the attachment");
    let got = last.lock().expect("not poisoned").take();
    got.expect("fetched")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_crosses_without_its_gps_and_only_to_members() {
    let root = tempfile::tempdir().expect("temp dir");
    let one_mib = |c: &mut liaison_node::config::Config| c.attachments.max_mb = 1;
    let a = start_with(root.path(), "customs-a", one_mib).await;
    let b = start_with(root.path(), "customs-b", one_mib).await;
    peer(&a, &b).await.expect("pin a and b");
    wait_until("link", || peer_ready(&a.handle, &b.name))
        .await
        .expect("a sees b");
    let g = create_group(&a, "ops", &[(&b, Role::Member)])
        .await
        .expect("group");
    wait_until("group", || knows_group(&b.handle, g))
        .await
        .expect("b knows the group");
    let (admin_a, admin_b) = (
        admin(&a, &root.path().join("customs-a")),
        admin(&b, &root.path().join("customs-b")),
    );

    // An officer on A uploads a photo carrying a GPS position: it is removed, and said so.
    let poster = officer(&admin_a, &a, "j.doe", &[format!("{g}:post")]).await;
    let (photo, clean) = photo_with_gps(320, 240);
    let uploaded: Uploaded = poster
        .post_bytes("/v1/attachments?name=seizure.jpg", photo.clone())
        .await
        .expect("upload");
    assert_eq!(uploaded.media_type, "image/jpeg");
    assert!(
        uploaded.removed.iter().any(|r| r.contains("GPS position")),
        "{:?}",
        uploaded.removed
    );
    assert_eq!(uploaded.size, clean.len() as u64);

    // Nobody else may name it in a post.
    let other = officer(&admin_a, &a, "k.roe", &[format!("{g}:post")]).await;
    let stolen = other
        .post::<_, Created>(
            &format!("/v1/groups/{g}/records"),
            &serde_json::json!({
                "kind": "note",
                "record": {"subject": "not mine", "body": ""},
                "attachments": [uploaded.id],
            }),
        )
        .await;
    assert!(matches!(stolen, Err(Error::Invalid(_))), "{stolen:?}");

    // The record that names it.
    let created: Created = poster
        .post(
            &format!("/v1/groups/{g}/records"),
            &serde_json::json!({
                "kind": "note",
                "record": {"subject": "Seized crate", "body": "photo attached"},
                "handling": "amber",
                "attachments": [uploaded.id],
            }),
        )
        .await
        .expect("post the record");
    let message: MessageId = created.id.parse().expect("message id");
    wait_until("delivery", || holds(&b.handle, message))
        .await
        .expect("b receives the record");

    // B's node fetches the photo over QUIC; its officer reads it, decrypted, without EXIF.
    let reader_b = officer(&admin_b, &b, "m.rossi", &[format!("{g}:read")]).await;
    let read: MessageView = reader_b
        .get(&format!("/v1/messages/{message}"))
        .await
        .expect("read on b");
    assert_eq!(read.attachments.len(), 1);
    assert_eq!(read.attachments[0].id, uploaded.id);
    assert_eq!(read.attachments[0].name, "seizure.jpg");
    let (bytes, media_type) = fetched(&reader_b, &uploaded.id).await;
    assert_eq!(media_type, "image/jpeg");
    assert_eq!(bytes, clean, "the image data arrives byte for byte");
    assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
    assert!(
        exif::Reader::new()
            .read_from_container(&mut Cursor::new(&bytes))
            .is_err(),
        "no EXIF left"
    );
    let decoded = image::load_from_memory(&bytes).expect("a JPEG still");
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    let (on_a, _) = admin_a
        .get_bytes(&format!("/v1/attachments/{}", uploaded.id))
        .await
        .expect("the author's node serves it too");
    assert_eq!(on_a, bytes);

    // Part of it, by byte range (a large file fetched in parts, or resumed).
    let token = DataDir::new(root.path().join("customs-b"))
        .admin_token()
        .expect("token");
    let url = format!("http://{}/v1/attachments/{}", b.api_addr, uploaded.id);
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client");
    let ranged = |range: &'static str| {
        http.get(&url)
            .bearer_auth(token.as_str())
            .header("Range", range)
            .send()
    };
    let part = ranged("bytes=100-1099").await.expect("a range");
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100-1099/{}", clean.len()).as_str()
    );
    assert_eq!(
        part.bytes().await.expect("body").as_ref(),
        &clean[100..1100]
    );
    let tail = ranged("bytes=-10").await.expect("a suffix");
    assert_eq!(tail.status(), 206);
    assert_eq!(
        tail.bytes().await.expect("body").as_ref(),
        &clean[clean.len() - 10..]
    );
    let beyond = http
        .get(&url)
        .bearer_auth(token.as_str())
        .header("Range", format!("bytes={}-", clean.len() + 5))
        .send()
        .await
        .expect("a range beyond");
    assert_eq!(beyond.status(), 416);
    assert_eq!(
        beyond.headers()["content-range"],
        format!("bytes */{}", clean.len()).as_str()
    );

    // B's node makes the thumbnail itself, from the photo it fetched.
    let (thumb, thumb_type) = reader_b
        .get_bytes(&format!("/v1/attachments/{}/thumbnail?max=64", uploaded.id))
        .await
        .expect("thumbnail");
    assert_eq!(thumb_type, "image/jpeg");
    let small = image::load_from_memory(&thumb).expect("the thumbnail decodes");
    assert_eq!((small.width(), small.height()), (64, 48));

    // An officer of B without a grant to the group gets nothing, as if it did not exist.
    let outsider = officer(&admin_b, &b, "no.grant", &[]).await;
    let refused = outsider
        .get_bytes(&format!("/v1/attachments/{}", uploaded.id))
        .await;
    match refused {
        Err(Error::NotFound(m)) => assert!(m.contains("that you may open"), "{m}"),
        other => panic!("an officer without a grant got {other:?}"),
    }

    // TLP:RED applies to attachments as to their message: only the named recipient opens it.
    let red_upload: Uploaded = poster
        .post_bytes("/v1/attachments?name=informant.jpg", photo.clone())
        .await
        .expect("upload");
    let red: Created = poster
        .post(
            &format!("/v1/groups/{g}/records"),
            &serde_json::json!({
                "kind": "note",
                "record": {"subject": "For m.rossi only", "body": ""},
                "handling": "red",
                "to": ["m.rossi@customs-b"],
                "attachments": [red_upload.id],
            }),
        )
        .await
        .expect("post the red record");
    let red_message: MessageId = red.id.parse().expect("message id");
    let red_path = format!("/v1/messages/{red_message}");
    wait_until("delivery", || async {
        reader_b.get::<MessageView>(&red_path).await.is_ok()
    })
    .await
    .expect("b receives the red record, shown to its recipient");
    let (red_bytes, _) = fetched(&reader_b, &red_upload.id).await;
    assert_eq!(red_bytes, clean);
    let colleague = officer(&admin_b, &b, "l.bianchi", &[format!("{g}:read")]).await;
    match colleague
        .get_bytes(&format!("/v1/attachments/{}", red_upload.id))
        .await
    {
        Err(Error::NotFound(_)) => {}
        other => panic!("an officer not named on a TLP:RED message got {other:?}"),
    }
    assert!(
        colleague
            .get_bytes(&format!("/v1/attachments/{}", uploaded.id))
            .await
            .is_ok(),
        "the same officer opens the AMBER one"
    );

    // Over the node's limit (1 MiB here): refused with the limit named, nothing stored.
    let big = vec![7u8; 1024 * 1024 + 1];
    match poster
        .post_bytes::<Uploaded>("/v1/attachments?name=big.bin", big)
        .await
    {
        Err(Error::TooLarge(m)) => assert!(m.contains("max_mb"), "{m}"),
        other => panic!("an oversized upload got {other:?}"),
    }

    // A node that is not a member of the group, though a pinned peer of A, asks A for the
    // chunks over QUIC naming the right message: it hears `Unavailable`, like for anything
    // A does not have.
    let stranger = Hostile::new("stranger");
    pin(&a, "stranger", stranger.node_id(), stranger.addr()).await;
    let session = stranger.connect(&a).await;
    let attachment: AttachmentId = uploaded.id.parse().expect("attachment id");
    for (message, attachment) in [
        (message, attachment),
        (MessageId::from([9; 32]), attachment),
        (message, AttachmentId::from([9; 32])),
    ] {
        let request = ChunkRequest {
            attachment,
            message,
            first: 0,
            count: 1,
        };
        let (mut send, mut recv) = session.conn.open_bi().await.expect("open a stream");
        liaison_node::transport::write_frame(&mut send, &request.to_bytes().expect("encode"))
            .await
            .expect("send the request");
        send.finish().expect("finish");
        let header = liaison_node::transport::read_frame(&mut recv, MAX_RESPONSE_LEN)
            .await
            .expect("an answer")
            .expect("a header");
        assert_eq!(
            ChunkResponse::decode(&header).expect("decodes"),
            ChunkResponse::Unavailable
        );
        let rest = recv.read_to_end(1024).await.expect("the stream ends");
        assert!(rest.is_empty(), "no ciphertext follows");
    }

    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}

/// A reader's view of message `id` on `client`'s node, once it holds it.
async fn held(client: &Client, id: MessageId) -> bool {
    match client
        .get::<MessageView>(&format!("/v1/messages/{id}"))
        .await
    {
        Ok(m) => m.attachments.iter().all(|a| a.held) && !m.attachments.is_empty(),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attachment_is_relayed_by_a_member_that_is_fetching_it_itself() {
    // author — hub — leaf: the leaf is not connected to the author; the hub, a member,
    // fetches the photo from the author while it serves the leaf what it holds.
    let c = liaison_tests::Cluster::start(&["author", "hub", "leaf"]).await;
    c.link(0, 1).await;
    c.link(1, 2).await;
    let g = create_group(
        c.node(1),
        "ops",
        &[(c.node(0), Role::Member), (c.node(2), Role::Member)],
    )
    .await
    .expect("group");
    for i in [0, 2] {
        let n = c.node(i);
        wait_until("group", || knows_group(&n.handle, g))
            .await
            .expect("members know the group");
    }
    let author = admin(c.node(0), &c.dir(0));
    let leaf = admin(c.node(2), &c.dir(2));
    // A 20 MiB photo (noise does not compress) with a GPS position in its EXIF block:
    // hundreds of chunks, many ranges.
    let (photo, clean) = photo_with_gps(4_000, 3_000);
    assert!(
        clean.len() >= 20 * 1024 * 1024,
        "the test photo is {} bytes",
        clean.len()
    );
    let uploaded: Uploaded = author
        .post_bytes("/v1/attachments?name=container.jpg", photo)
        .await
        .expect("upload");
    assert_eq!(uploaded.media_type, "image/jpeg");
    assert!(
        uploaded.removed.iter().any(|r| r.contains("GPS position")),
        "{:?}",
        uploaded.removed
    );
    let created: Created = author
        .post(
            &format!("/v1/groups/{g}/messages"),
            &serde_json::json!({
                "subject": "Container",
                "body": "attached",
                "attachments": [uploaded.id],
            }),
        )
        .await
        .expect("post");
    let message: MessageId = created.id.parse().expect("id");
    c.wait_holds(2, message).await;
    let (bytes, media_type) = fetched(&leaf, &uploaded.id).await;
    assert_eq!(media_type, "image/jpeg");
    assert!(
        bytes == clean,
        "the photo arrives byte for byte, without its EXIF block"
    );
    assert!(
        exif::Reader::new()
            .read_from_container(&mut Cursor::new(&bytes))
            .is_err(),
        "no EXIF left"
    );
    assert!(held(&admin(c.node(1), &c.dir(1)), message).await);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_left_half_way_resumes_after_a_restart() {
    let root = tempfile::tempdir().expect("temp dir");
    let a = start_with(root.path(), "a", |_| {}).await;
    // B fetches nothing by itself: only what a restart finds half-fetched.
    let b = start_with(root.path(), "b", |c| c.attachments.eager_max_mb = 0).await;
    peer(&a, &b).await.expect("pin");
    wait_until("link", || peer_ready(&a.handle, &b.name))
        .await
        .expect("linked");
    let g = create_group(&a, "ops", &[(&b, Role::Member)])
        .await
        .expect("group");
    wait_until("group", || knows_group(&b.handle, g))
        .await
        .expect("b knows the group");
    let author = admin(&a, &root.path().join("a"));
    let document: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    let uploaded: Uploaded = author
        .post_bytes("/v1/attachments?name=report.pdf.bin", document.clone())
        .await
        .expect("upload");
    let created: Created = author
        .post(
            &format!("/v1/groups/{g}/messages"),
            &serde_json::json!({"subject": "Report", "body": "", "attachments": [uploaded.id]}),
        )
        .await
        .expect("post");
    let message: MessageId = created.id.parse().expect("id");
    wait_until("delivery", || holds(&b.handle, message))
        .await
        .expect("b holds the message");
    let b_dir = root.path().join("b");
    let reader = admin(&b, &b_dir);
    assert!(!held(&reader, message).await, "not fetched eagerly");
    b.shutdown().await.expect("b stops");

    // What a fetch stopped half-way leaves on disk: the first 8 of 16 chunks, synced and
    // marked held (the ciphertext is the author's file).
    let id: AttachmentId = uploaded.id.parse().expect("id");
    let cipher = std::fs::read(
        DataDir::new(root.path().join("a"))
            .store_path()
            .join(liaison_node::attachments::files::DIR)
            .join("whole")
            .join(id.to_string()),
    )
    .expect("the author's ciphertext");
    {
        let files = liaison_node::attachments::Files::open(&DataDir::new(&b_dir).store_path())
            .expect("b's files");
        let partial = files.partial(&id, cipher.len() as u64).expect("partial");
        let half = 8 * (liaison_protocol::attachment::CHUNK_LEN + 16);
        partial
            .write_range(0, 8, &cipher[..half])
            .expect("write half");
    }

    let b = liaison_tests::nodes::restart(root.path(), "b").await;
    let reader = admin(&b, &b_dir);
    wait_until("the fetch resumes and completes", || held(&reader, message))
        .await
        .expect("b completes the fetch it had started");
    let (bytes, _) = fetched(&reader, &uploaded.id).await;
    assert!(bytes == document);
    a.shutdown().await.expect("a stops");
    b.shutdown().await.expect("b stops");
}
