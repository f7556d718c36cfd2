//! Attachment transfer from peers: chunk requests and responses, and chunk ranges checked
//! against a key, never panic, and what decodes encodes back to the same bytes.
#![no_main]

use liaison_protocol::attachment::AttachmentKey;
use liaison_protocol::transfer::{check_range, ChunkRequest, ChunkResponse, ChunkSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = ChunkRequest::decode(data) {
        assert_eq!(request.to_bytes().ok().as_deref(), Some(data));
    }
    if let Ok(response) = ChunkResponse::decode(data) {
        assert_eq!(response.to_bytes().ok().as_deref(), Some(data));
    }
    if let Some((&first, rest)) = data.split_first() {
        let key = AttachmentKey::from_bytes([7; 32]);
        let size = rest.len() as u64 * 3;
        let _ = check_range(&key, size, u64::from(first), rest);
        let count = u64::from(first) * 8;
        let _ = ChunkSet::from_bytes(count, rest);
    }
});
