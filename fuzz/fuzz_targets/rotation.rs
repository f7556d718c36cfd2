//! Key rotation statements from peers and the store: decoding, verifying and taking them into a
//! federation view never panic.
#![no_main]

use liaison_protocol::roster::{Federation, Rotation};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Rotation::verify(data);
    let mut federation = Federation::new(Vec::new());
    if let Ok(liaison_protocol::roster::RotationUpdate::New(r)) = federation.take_rotation(data) {
        let _ = federation.newest(&r.old);
        let _ = federation.exchange_key(&r.new);
    }
});
