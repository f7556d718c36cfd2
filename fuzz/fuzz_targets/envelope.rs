//! Message envelopes, as pushed by peers and read back from the store: decoding and the full
//! receiver check (signature, membership, ciphertext hash, commitment, decryption) never panic,
//! against a real group whose key this fuzzer holds. Each input is tried as it is, and as a
//! patch over a valid envelope of that group, so that mutations also reach the checks behind
//! the signature.
#![no_main]

use std::sync::OnceLock;

use liaison_protocol::group::GroupState;
use liaison_protocol::message;
use libfuzzer_sys::fuzz_target;

#[path = "../fixtures.rs"]
mod fixtures;

struct Fixture {
    group: GroupState,
    envelope: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let (group, envelope) = fixtures::envelope();
        Fixture { group, envelope }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = message::decode(data);
    let _ = message::verify_and_open(data, &f.group);
    if let [a, b, patch @ ..] = data {
        let mut bytes = f.envelope.clone();
        let at = usize::from(u16::from_be_bytes([*a, *b])) % bytes.len();
        for (i, x) in patch.iter().enumerate() {
            if let Some(byte) = bytes.get_mut(at + i) {
                *byte ^= x;
            }
        }
        let _ = message::verify_and_open(&bytes, &f.group);
    }
});
