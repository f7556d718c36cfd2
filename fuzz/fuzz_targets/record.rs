//! Record payloads, as they come out of a decrypted message: reading a record of any kind code
//! and schema version from any body never panics, and a record that reads is valid and encodes
//! back to exactly the bytes it came from. Input that is UTF-8 is also read as the JSON form of
//! every kind (the API's and the CLI's input), and the template comment stripper.
#![no_main]

use liaison_protocol::record::{self, Readable, Record, RecordKind};
use liaison_protocol::{Payload, RecordData};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let [k, s, body @ ..] = data {
        // Mostly codes this build knows, sometimes others.
        let kind = u16::from(*k % 8);
        let schema = u16::from(*s % 3);
        let payload = Payload::Record(RecordData {
            kind,
            schema,
            body: body.to_vec(),
            attachments: vec![],
        });
        if let Ok(Readable::Known(r)) = record::read(&payload) {
            assert_eq!(r.validate(), Ok(()));
            match r.to_payload(vec![]) {
                Ok(Payload::Record(again)) => assert_eq!(again.body, body),
                Ok(Payload::Text { .. }) => assert_eq!(r.kind(), RecordKind::Note),
                Err(e) => panic!("a record that read does not encode: {e}"),
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let json = record::strip_comments(text);
        for kind in RecordKind::ALL {
            if let Ok(r) = Record::from_json(kind, &json) {
                assert_eq!(r.validate(), Ok(()));
                assert_eq!(Record::from_value(kind, r.to_json_value()), Ok(r));
            }
        }
    }
});
