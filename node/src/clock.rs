//! The node's wall clock: the one place that reads the system time, in the protocol's
//! [`Timestamp`] (milliseconds since the Unix epoch). Everything that stamps a record (the
//! actor, accounts, the audit log, backups) reads it here, so no module needs another's.

use std::time::{SystemTime, UNIX_EPOCH};

use liaison_protocol::Timestamp;

/// Milliseconds since the Unix epoch, now (0 for a clock set before 1970).
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp(ms)
}
