//! Frames as they arrive from a peer: decoding never panics, and whatever decodes has exactly
//! one encoding (re-encoding gives back the same bytes).
#![no_main]

use liaison_protocol::Frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let again = frame.encode().expect("a decoded frame encodes");
        assert_eq!(again, data, "two encodings of one frame");
        let _ = frame.kind();
    }
});
