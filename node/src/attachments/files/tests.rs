//! The attachment files: writing, reading back, damage and sweeping.

use super::*;
use liaison_protocol::attachment::{seal_all, AttachmentKey, CHUNK_LEN, TAG_LEN};

fn sealed(len: usize) -> (AttachmentId, Vec<u8>) {
    let plain: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
    seal_all(&AttachmentKey::from_bytes([3; 32]), &plain).expect("seals")
}

#[test]
fn a_partial_survives_reopening_and_becomes_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (id, cipher) = sealed(3 * CHUNK_LEN + 5);
    let total = cipher.len() as u64;
    let chunk = CHUNK_LEN + TAG_LEN;
    {
        let files = Files::open(dir.path()).expect("opens");
        let p = files.partial(&id, total).expect("partial");
        p.write_range(1, 2, &cipher[chunk..3 * chunk])
            .expect("writes");
        assert!(
            p.write_range(0, 2, &cipher[..chunk]).is_err(),
            "wrong length"
        );
    }
    let files = Files::open(dir.path()).expect("opens again");
    assert_eq!(files.partial_ids().expect("lists"), vec![id]);
    let p = files
        .existing_partial(&id)
        .expect("reads")
        .expect("on disk");
    assert_eq!(p.held().held(), 2);
    assert_eq!(p.run_from(1, 64), 2);
    assert_eq!(p.read_range(1, 2).expect("reads"), cipher[chunk..3 * chunk]);
    p.write_range(0, 1, &cipher[..chunk]).expect("writes");
    p.write_range(3, 1, &cipher[3 * chunk..]).expect("writes");
    assert_eq!(files.finish(&p).expect("finishes"), Finished::Whole);
    assert_eq!(files.whole_len(&id), Some(total));
    assert!(files.check_whole(&id).expect("hashes"));
    assert!(files.partial_ids().expect("lists").is_empty());
    assert_eq!(files.read_whole(&id, 0, 10).expect("reads"), cipher[..10]);
}

#[test]
fn chunks_that_do_not_hash_to_the_id_are_dropped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = Files::open(dir.path()).expect("opens");
    let (id, _) = sealed(10);
    let (_, other) = sealed(11);
    let p = files.partial(&id, other.len() as u64).expect("partial");
    p.write_range(0, 1, &other).expect("writes");
    assert_eq!(files.finish(&p).expect("finishes"), Finished::Mismatch);
    assert!(files.partial_ids().expect("lists").is_empty());
    assert_eq!(files.whole_len(&id), None);
}

#[test]
fn a_damaged_held_record_starts_afresh() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (id, cipher) = sealed(2 * CHUNK_LEN);
    {
        let files = Files::open(dir.path()).expect("opens");
        let p = files.partial(&id, cipher.len() as u64).expect("partial");
        p.write_range(0, 1, &cipher[..CHUNK_LEN + TAG_LEN])
            .expect("writes");
    }
    let held = dir
        .path()
        .join(DIR)
        .join(PARTIAL)
        .join(format!("{id}.held"));
    fs::write(&held, b"LAH1garbage").expect("damages");
    let files = Files::open(dir.path()).expect("opens");
    assert!(files.existing_partial(&id).expect("reads").is_none());
    let p = files.partial(&id, cipher.len() as u64).expect("afresh");
    assert_eq!(p.held().held(), 0);
}

#[test]
fn uploads_land_whole_and_tmp_is_emptied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = Files::open(dir.path()).expect("opens");
    let (id, cipher) = sealed(100);
    let (path, mut file) = files.temp_file().expect("tmp");
    file.write_all(&cipher).expect("writes");
    files.commit_upload(&path, file, &id).expect("commits");
    let (_, mut left) = files.temp_file().expect("tmp");
    left.write_all(b"half").expect("writes");
    drop(files);
    let files = Files::open(dir.path()).expect("opens again");
    assert_eq!(files.wholes().expect("lists"), vec![id]);
    let tmp = fs::read_dir(files.root().join(TMP)).expect("lists").count();
    assert_eq!(tmp, 0);
    files.remove_whole(&id).expect("removes");
    assert!(files.wholes().expect("lists").is_empty());
}
