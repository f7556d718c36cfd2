//! Signed node descriptors, from `Hello` and `Directory` frames and from the store: decoding
//! and verifying never panic, at any time.
#![no_main]

use liaison_protocol::identity::SignedDescriptor;
use liaison_protocol::Timestamp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = data
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes);
    let _ = SignedDescriptor::verify(data, Timestamp(now));
    let _ = SignedDescriptor::verify(data, Timestamp(1_700_000_000_000));
});
