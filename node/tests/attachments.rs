//! Attachments through the `liaison` binary: two daemons as real processes; an officer sends a
//! record with a photo carrying a GPS position, the other node's officer saves the photo,
//! decrypted and without its metadata.

mod common;

use std::io::Cursor;

use common::{eventually, init, json, liaison, link, ok, Daemon};

/// A JPEG of noise with an EXIF block holding a GPS latitude, and the same JPEG without it.
fn photo_with_gps() -> (Vec<u8>, Vec<u8>) {
    let mut seed = 0x2545_f491u32;
    let img = image::RgbImage::from_fn(200, 150, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        image::Rgb([seed as u8, (seed >> 8) as u8, (seed >> 16) as u8])
    });
    let mut clean = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut clean, 85)
        .encode_image(&img)
        .expect("encode");
    let clean = clean.into_inner();
    // TIFF (big-endian): IFD0 with a GPS IFD pointer; the GPS IFD with latitude ref "N".
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&[0, 1, 0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0]);
    tiff.extend_from_slice(&[0, 1, 0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend(tiff);
    let mut with = clean[..2].to_vec();
    with.extend_from_slice(&[0xFF, 0xE1]);
    with.extend_from_slice(&u16::try_from(app1.len() + 2).expect("short").to_be_bytes());
    with.extend_from_slice(&app1);
    with.extend_from_slice(&clean[2..]);
    (with, clean)
}

#[test]
fn send_attach_and_attachment_get() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    init(&a, "customs-fr");
    init(&b, "museum-it");
    let _da = Daemon::start(&a);
    let _db = Daemon::start(&b);
    link(&a, &b);
    ok(&a, &["group", "create", "heritage"]);
    ok(
        &a,
        &["group", "add", "heritage", "museum-it", "--role", "member"],
    );
    eventually("group reaches b", || {
        let groups = json(&b, &["group", "list", "--json"]);
        (groups.as_array()?.len() == 1).then_some(())
    });

    let (photo, clean) = photo_with_gps();
    let photo_path = tmp.path().join("amphora.jpg");
    std::fs::write(&photo_path, &photo).expect("write photo");
    let record_path = tmp.path().join("note.json");
    std::fs::write(
        &record_path,
        r#"{"kind": "note", "record": {"subject": "Amphora seized", "body": "see photo"}}"#,
    )
    .expect("write record");
    let sent = liaison(
        &a,
        &[
            "send",
            "heritage",
            "--record",
            record_path.to_str().expect("utf-8"),
            "--attach",
            photo_path.to_str().expect("utf-8"),
        ],
    );
    let stderr = String::from_utf8_lossy(&sent.stderr);
    assert!(sent.status.success(), "send failed: {stderr}");
    assert!(
        stderr.contains("GPS position"),
        "says what it removed: {stderr}"
    );
    let id = String::from_utf8(sent.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();

    let message = eventually("the record reaches b", || {
        let out = liaison(&b, &["read", &id, "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json"))
    });
    let attachment = message["attachments"][0]["id"]
        .as_str()
        .expect("the message names its attachment")
        .to_owned();
    assert_eq!(message["attachments"][0]["name"], "amphora.jpg");
    assert_eq!(message["attachments"][0]["media_type"], "image/jpeg");

    let out_path = tmp.path().join("saved.jpg");
    ok(
        &b,
        &[
            "attachment",
            "get",
            &attachment,
            "-o",
            out_path.to_str().expect("utf-8"),
        ],
    );
    let saved = std::fs::read(&out_path).expect("saved");
    assert_eq!(saved, clean, "the photo arrives whole, its EXIF block gone");
    assert!(!saved.windows(6).any(|w| w == b"Exif\0\0"));

    let thumb_path = tmp.path().join("thumb.jpg");
    ok(
        &b,
        &[
            "attachment",
            "get",
            &attachment,
            "--thumbnail",
            "50",
            "-o",
            thumb_path.to_str().expect("utf-8"),
        ],
    );
    let thumb = image::load_from_memory(&std::fs::read(&thumb_path).expect("thumbnail"))
        .expect("the thumbnail decodes");
    assert_eq!((thumb.width(), thumb.height()), (50, 38));

    // An unknown attachment is named as such.
    let missing = liaison(&b, &["attachment", "get", &"ab".repeat(32)]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no attachment"), "{err}");
}

/// The files of uploads never posted are deleted once they are two hours old (at start, then
/// hourly); a posted file of the same age stays, and still opens. The test makes the files old
/// by setting their modification time, and restarts the node to run the sweep.
#[test]
fn files_of_uploads_never_posted_are_deleted() {
    let tmp = tempfile::tempdir().expect("tmp");
    let a = tmp.path().join("a");
    init(&a, "customs-fr");
    let daemon = Daemon::start(&a);
    ok(&a, &["group", "create", "heritage"]);
    let posted = tmp.path().join("posted.txt");
    std::fs::write(&posted, b"named by a message").expect("write");
    let id = ok(
        &a,
        &[
            "send",
            "heritage",
            "--subject",
            "s",
            "b",
            "--attach",
            posted.to_str().expect("utf-8"),
        ],
    );
    let kept = json(&a, &["read", &id, "--json"])["attachments"][0]["id"]
        .as_str()
        .expect("attachment")
        .to_owned();
    // An upload through the API whose message never comes.
    let runtime: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.join("runtime.json")).expect("runtime.json"))
            .expect("json");
    let token = liaison_node::datadir::DataDir::new(&a)
        .admin_token()
        .expect("token")
        .to_string();
    let uploaded: serde_json::Value = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!(
            "http://{}/v1/attachments?name=draft.txt",
            runtime["api"].as_str().expect("api")
        ))
        .bearer_auth(token)
        .body("never posted")
        .send()
        .expect("upload")
        .json()
        .expect("json");
    let orphan = uploaded["id"].as_str().expect("id").to_owned();
    daemon.stop();

    let whole = a.join("store/attachments-v1/whole");
    let mut names: Vec<String> = std::fs::read_dir(&whole)
        .expect("whole files")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = vec![kept.clone(), orphan.clone()];
    expected.sort();
    assert_eq!(names, expected, "both files are on disk");
    // An hour and a half old: within the margin, both stay.
    let age = |secs: u64| {
        for name in &names {
            std::fs::File::options()
                .write(true)
                .open(whole.join(name))
                .expect("open")
                .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(secs))
                .expect("set mtime");
        }
    };
    age(5_400);
    Daemon::start(&a).stop();
    assert!(whole.join(&orphan).exists(), "deleted within the margin");
    age(7_300);
    let daemon = Daemon::start(&a);
    eventually("the unposted file is deleted", || {
        (!whole.join(&orphan).exists()).then_some(())
    });
    assert!(whole.join(&kept).exists(), "a posted file was deleted");
    let saved = tmp.path().join("saved.txt");
    ok(
        &a,
        &[
            "attachment",
            "get",
            &kept,
            "--wait",
            "0",
            "-o",
            saved.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(std::fs::read(&saved).expect("saved"), b"named by a message");
    daemon.stop();
}
