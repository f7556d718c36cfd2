//! Delivery receipts from peers and from the store: decoding and verifying never panic.
#![no_main]

use liaison_protocol::receipt::Receipt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = Receipt::verify(data);
});
