//! Federation rosters from peers, files and the store: decoding, verifying and taking them into
//! a federation view never panic. The authority a roster names is trusted on a second pass, so
//! the signature check and every rule of WIRE.md §12.1 are reached too.
#![no_main]

use liaison_protocol::roster::{Federation, SignedRoster};
use liaison_protocol::{Rejection, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Err(Rejection::UnknownAuthority(authority)) = SignedRoster::verify(data, &[]) else {
        return;
    };
    let _ = SignedRoster::verify(data, &[authority]);
    let mut federation = Federation::new(vec![authority]);
    let _ = federation.take_roster(data);
    let _ = federation.take_roster(data);
    for (node, _) in federation.revocations().clone() {
        let _ = federation.admission(&node, Timestamp(u64::MAX), u64::MAX);
    }
    let _ = federation.names();
});
