//! Property tests of the record decoders: any body under any kind code and schema version reads
//! without panicking, and what reads is valid and canonical (it encodes back to the same
//! bytes); records with arbitrary text in their fields either fail validation or travel through
//! the wire form and JSON unchanged.

use liaison_protocol::record::{self, Readable, Record, RecordKind};
use liaison_protocol::{Payload, RecordData};
use proptest::prelude::*;

fn payload(kind: u16, schema: u16, body: Vec<u8>) -> Payload {
    Payload::Record(RecordData {
        kind,
        schema,
        body,
        attachments: vec![],
    })
}

/// The encoded body of the example of `kind`.
fn example_body(kind: RecordKind) -> Vec<u8> {
    body_of(&Record::example(kind))
}

fn check_read(kind: u16, schema: u16, body: Vec<u8>) {
    if let Ok(Readable::Known(r)) = record::read(&payload(kind, schema, body.clone())) {
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(body_of(&r), body, "not canonical");
    }
}

/// The body `r` encodes to (with an attachment, so that a note is a record too).
fn body_of(r: &Record) -> Vec<u8> {
    let attachment = liaison_protocol::attachment::AttachmentRef {
        id: [1; 32].into(),
        key: liaison_protocol::attachment::AttachmentKey::from_bytes([2; 32]),
        size: 1,
        media_type: "image/png".into(),
        name: "a.png".into(),
    };
    match r.to_payload(vec![attachment]) {
        Ok(Payload::Record(d)) => d.body,
        other => panic!("{other:?}"),
    }
}

proptest! {
    #[test]
    fn any_body_reads_or_fails_cleanly(kind in 0u16..8, schema in 0u16..3, body in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_read(kind, schema, body);
    }

    #[test]
    fn mutated_example_bodies(kind in 0usize..6, flips in proptest::collection::vec((any::<u16>(), any::<u8>()), 1..6), cut in any::<u16>()) {
        let kind = RecordKind::ALL[kind];
        let mut body = example_body(kind);
        for (at, x) in flips {
            let i = usize::from(at) % body.len();
            body[i] ^= x;
        }
        check_read(kind.code(), 1, body.clone());
        body.truncate(usize::from(cut) % (body.len() + 1));
        check_read(kind.code(), 1, body);
    }

    #[test]
    fn arbitrary_text_validates_or_travels_unchanged(text in "\\PC{0,300}", code in "[A-Z0-9a-z.-]{0,12}") {
        let mut records = Vec::new();
        if let Record::Seizure(mut s) = Record::example(RecordKind::Seizure) {
            s.items[0].description = text.clone();
            s.items[0].hs_code = Some(code.as_str().into());
            s.identifiers.containers = vec![code.as_str().into()];
            records.push(Record::Seizure(s));
        }
        if let Record::Alert(mut a) = Record::example(RecordKind::Alert) {
            a.title = text.clone();
            a.valid_until = Some(code.as_str().into());
            records.push(Record::Alert(a));
        }
        if let Record::CulturalObject(mut o) = Record::example(RecordKind::CulturalObject) {
            o.maker = Some(text.clone());
            o.country_of_origin = Some(code.as_str().into());
            records.push(Record::CulturalObject(o));
        }
        for r in records {
            match r.validate() {
                Ok(()) => {
                    let p = r.to_payload(vec![]).expect("a valid record encodes");
                    prop_assert_eq!(record::read(&p), Ok(Readable::Known(r.clone())));
                    prop_assert_eq!(Record::from_value(r.kind(), r.to_json_value()), Ok(r));
                }
                Err(errors) => {
                    prop_assert!(!errors.is_empty());
                    prop_assert!(errors.iter().all(|e| e.pointer.starts_with('/')));
                }
            }
        }
    }
}
