//! Group control events, as received from peers and replayed from the store at start-up:
//! decoding, adopting a group from its event 1, and applying an event to an existing group
//! never panic. Each input is tried as it is, and as a patch over a valid next event, so that
//! mutations also reach the checks behind the owner's signature.
#![no_main]

use std::sync::OnceLock;

use liaison_protocol::group::{self, GroupState};
use libfuzzer_sys::fuzz_target;

#[path = "../fixtures.rs"]
mod fixtures;

fn fixture() -> &'static fixtures::ControlFixture {
    static FIXTURE: OnceLock<fixtures::ControlFixture> = OnceLock::new();
    FIXTURE.get_or_init(fixtures::control)
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let local = Some(fixtures::local(&f.owner, &f.exchange));
    let _ = group::decode_control(data);
    let _ = GroupState::from_genesis(data, local);
    let _ = f.state.clone().apply(data, local);
    if let [a, b, patch @ ..] = data {
        let mut bytes = f.next.clone();
        let at = usize::from(u16::from_be_bytes([*a, *b])) % bytes.len();
        for (i, x) in patch.iter().enumerate() {
            if let Some(byte) = bytes.get_mut(at + i) {
                *byte ^= x;
            }
        }
        let _ = f.state.clone().apply(&bytes, local);
    }
});
