//! Which stored messages name which attachment: `named.log`, an append-only file of fixed
//! records, read into memory when the node starts.
//!
//! ```text
//! record (80 bytes) = attachment id [32] ‖ message id [32] ‖ plaintext size u64 BE ‖ check [8]
//! check             = the first 8 bytes of BLAKE3(the 72 bytes before it)
//! ```
//!
//! Records are appended and synced *before* the messages naming them are stored (posted or
//! received): a record may name a message a crash kept from being stored, never the other way
//! round. A record holds no key: the key is only ever in the message, which the node opens
//! when it needs it. The log answers "which message lets an officer open attachment X" and,
//! after a restart, "which attachments should be fetched". A torn record at the end (a crash
//! during an append) is cut off when the log is opened; a record whose check fails is skipped
//! with a warning.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError, RwLock};

use liaison_protocol::attachment::AttachmentId;
use liaison_protocol::MessageId;
use tracing::warn;

use crate::error::{Error, Result};

const RECORD: usize = 80;
/// Most messages remembered per attachment (a forwarded photo may be named many times; any
/// one that the officer may read opens it).
const MAX_MESSAGES: usize = 1024;

/// What the log knows of one attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its plaintext size, as the messages state it.
    pub size: u64,
    /// Messages naming it, oldest first.
    pub messages: Vec<MessageId>,
}

/// The log and its contents in memory.
#[derive(Debug)]
pub struct Named {
    file: Mutex<File>,
    map: RwLock<HashMap<AttachmentId, Entry>>,
}

fn check(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0; 8];
    out.copy_from_slice(&blake3::hash(bytes).as_bytes()[..8]);
    out
}

impl Named {
    /// Opens (creating) the log at `path` and reads it.
    pub fn open(path: &Path) -> Result<Named> {
        let context = || format!("cannot open the attachment index {}", path.display());
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| Error::io(context(), e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(context(), e))?;
        let whole = bytes.len() - bytes.len() % RECORD;
        if whole != bytes.len() {
            warn!(
                path = %path.display(),
                bytes = bytes.len() - whole,
                "the attachment index ends in a torn record; cutting it off"
            );
            file.set_len(whole as u64)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(context(), e))?;
        }
        let mut map: HashMap<AttachmentId, Entry> = HashMap::new();
        for record in bytes[..whole].chunks_exact(RECORD) {
            if record[72..] != check(&record[..72]) {
                warn!(path = %path.display(), "skipping a damaged record of the attachment index");
                continue;
            }
            let (Ok(a), Ok(m), Ok(size)) = (
                <[u8; 32]>::try_from(&record[..32]),
                <[u8; 32]>::try_from(&record[32..64]),
                <[u8; 8]>::try_from(&record[64..72]),
            ) else {
                continue;
            };
            let entry = map.entry(AttachmentId::from(a)).or_insert(Entry {
                size: u64::from_be_bytes(size),
                messages: Vec::new(),
            });
            let m = MessageId::from(m);
            if entry.messages.len() < MAX_MESSAGES && !entry.messages.contains(&m) {
                entry.messages.push(m);
            }
        }
        Ok(Named {
            file: Mutex::new(file),
            map: RwLock::new(map),
        })
    }

    /// Records that `message` names `attachment` of `size` bytes (appended, not yet synced).
    /// Returns whether it was new.
    pub fn add(&self, attachment: AttachmentId, message: MessageId, size: u64) -> Result<bool> {
        {
            let map = self.map.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = map.get(&attachment) {
                if e.messages.contains(&message) || e.messages.len() >= MAX_MESSAGES {
                    return Ok(false);
                }
            }
        }
        let mut record = Vec::with_capacity(RECORD);
        record.extend_from_slice(attachment.as_bytes());
        record.extend_from_slice(message.as_bytes());
        record.extend_from_slice(&size.to_be_bytes());
        let c = check(&record);
        record.extend_from_slice(&c);
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write_all(&record)
            .map_err(|e| Error::io("cannot append to the attachment index", e))?;
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(attachment).or_insert(Entry {
            size,
            messages: Vec::new(),
        });
        if !entry.messages.contains(&message) {
            entry.messages.push(message);
        }
        Ok(true)
    }

    /// Syncs what was appended.
    pub fn sync(&self) -> Result<()> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .sync_data()
            .map_err(|e| Error::io("cannot sync the attachment index", e))
    }

    /// What is known of `attachment`.
    pub fn entry(&self, attachment: &AttachmentId) -> Option<Entry> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(attachment)
            .cloned()
    }

    /// Every attachment named, with its size and first message.
    pub fn all(&self) -> Vec<(AttachmentId, u64, MessageId)> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(|(a, e)| Some((*a, e.size, *e.messages.first()?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("named.log");
        let (a, b) = (AttachmentId::from([1; 32]), AttachmentId::from([2; 32]));
        let (m, n) = (MessageId::from([3; 32]), MessageId::from([4; 32]));
        {
            let named = Named::open(&path).expect("opens");
            assert!(named.add(a, m, 10).expect("adds"));
            assert!(!named.add(a, m, 10).expect("adds"), "once");
            assert!(named.add(a, n, 10).expect("adds"));
            assert!(named.add(b, n, 20).expect("adds"));
            named.sync().expect("syncs");
        }
        let mut bytes = std::fs::read(&path).expect("reads");
        bytes.extend_from_slice(&[9; 30]);
        // Damage the record of (b, n).
        bytes[2 * RECORD + 70] ^= 1;
        std::fs::write(&path, &bytes).expect("writes");
        let named = Named::open(&path).expect("opens again");
        assert_eq!(
            named.entry(&a),
            Some(Entry {
                size: 10,
                messages: vec![m, n]
            })
        );
        assert_eq!(named.entry(&b), None);
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len(),
            3 * RECORD as u64
        );
    }
}
