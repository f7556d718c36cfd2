//! Attachments on the node: photos and documents of a message, stored and moved apart from it.
//!
//! - An upload (`POST /v1/attachments`, `liaison send --attach`) gets its media type from its
//!   content, loses its image metadata unless the uploader keeps it explicitly ([`media`]), is
//!   encrypted in chunks under a fresh key and stored whole, durably, before it is answered
//!   ([`files`]). It waits, in memory, for the uploader to post the message that names it:
//!   the key never leaves the node, only the message carries it.
//! - Once a message naming attachments is durably stored here (posted or received), the index
//!   [`named`] records which message names which attachment, so that an officer who may read
//!   one of those messages may open the attachment, and so that a restart knows what to fetch.
//! - Peers fetch attachments chunk range by chunk range on streams of their own ([`transfer`],
//!   WIRE.md §13); a node fetches those of the messages it receives at once up to
//!   `[attachments] eager_max_mb`, larger ones when an officer opens them.
//!
//! The files are blocking I/O; the node runs them on Tokio's blocking pool.

pub mod files;
pub mod media;
pub mod named;
pub mod transfer;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use liaison_protocol::attachment::{
    check_name, chunk_span, open_chunk, seal_chunk, AttachmentId, AttachmentKey, AttachmentRef,
    IdHasher, MAX_ATTACHMENT_LEN,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use files::{Files, Finished, Partial};
pub use named::Named;

/// Uploads waiting for their message, at most.
const MAX_PENDING: usize = 256;
/// How long an upload waits for its message before it may be dropped.
const PENDING_FOR: Duration = Duration::from_secs(3600);

/// What the configuration says of attachments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Largest upload, in bytes (at most the protocol's 50 MiB).
    pub max_bytes: u64,
    /// Attachments up to this size are fetched as soon as their message is stored.
    pub eager_max_bytes: u64,
}

impl Options {
    /// The options the `[attachments]` section of the configuration sets.
    pub fn of(section: &crate::config::AttachmentsSection) -> Options {
        Options {
            max_bytes: section.max_mb.saturating_mul(1024 * 1024),
            eager_max_bytes: section.eager_max_mb.saturating_mul(1024 * 1024),
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_bytes: MAX_ATTACHMENT_LEN,
            eager_max_bytes: 25 * 1024 * 1024,
        }
    }
}

/// An upload, as its uploader sees it: everything but the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// The attachment id, to name in the message posted next.
    pub id: String,
    /// Bytes stored (after metadata removal).
    pub size: u64,
    /// The media type found from the content.
    pub media_type: String,
    /// The file name.
    pub name: String,
    /// What was removed from it (GPS position, serial numbers, ...); empty if nothing.
    pub removed: Vec<String>,
}

#[derive(Debug)]
struct Pending {
    reference: AttachmentRef,
    owner: String,
    since: Instant,
}

/// The attachments of one node.
#[derive(Debug)]
pub struct Attachments {
    files: Files,
    named: Named,
    options: Options,
    pending: Mutex<HashMap<AttachmentId, Pending>>,
    traffic: Traffic,
}

/// Attachment bytes moved since the node started (ciphertext, as stored and sent), for the
/// node's metrics.
#[derive(Debug, Default)]
pub struct Traffic {
    /// Uploaded here by officers (plaintext after metadata removal).
    pub uploaded: std::sync::atomic::AtomicU64,
    /// Fetched from peers and stored.
    pub fetched: std::sync::atomic::AtomicU64,
    /// Served to peers.
    pub served: std::sync::atomic::AtomicU64,
}

impl Traffic {
    fn add(counter: &std::sync::atomic::AtomicU64, bytes: u64) {
        counter.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Attachments {
    /// Opens the attachment files under `store_dir` and reads their index.
    pub fn open(store_dir: &Path, options: Options) -> Result<Attachments> {
        let files = Files::open(store_dir)?;
        let named = Named::open(&files.named_path())?;
        Ok(Attachments {
            files,
            named,
            options: Options {
                max_bytes: options.max_bytes.min(MAX_ATTACHMENT_LEN),
                ..options
            },
            pending: Mutex::new(HashMap::new()),
            traffic: Traffic::default(),
        })
    }

    /// Attachment bytes moved since the node started.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Notes `bytes` fetched from a peer and stored.
    pub(crate) fn note_fetched(&self, bytes: u64) {
        Traffic::add(&self.traffic.fetched, bytes);
    }

    /// Notes `bytes` served to a peer.
    pub(crate) fn note_served(&self, bytes: u64) {
        Traffic::add(&self.traffic.served, bytes);
    }

    /// The options in force.
    pub fn options(&self) -> Options {
        self.options
    }

    /// The files.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// The index of messages naming attachments.
    pub fn named(&self) -> &Named {
        &self.named
    }

    /// The refusal of an upload of `len` bytes, if it is over the limit.
    pub fn check_len(&self, len: u64) -> Result<()> {
        if len > self.options.max_bytes {
            return Err(Error::TooLarge(format!(
                "the attachment is {len} bytes, over this node's limit of {} bytes \
                 ({} MiB, [attachments] max_mb)",
                self.options.max_bytes,
                self.options.max_bytes / (1024 * 1024)
            )));
        }
        Ok(())
    }

    /// Makes `bytes` an attachment of `owner`: media type from the content, image metadata
    /// removed unless `keep_metadata`, encrypted under a fresh key, stored whole and synced.
    /// It waits for `owner` to post a message naming it ([`Attachments::pending`]).
    pub fn upload(
        &self,
        owner: &str,
        name: &str,
        bytes: Vec<u8>,
        keep_metadata: bool,
    ) -> Result<Uploaded> {
        check_name(name).map_err(|e| Error::Invalid(format!("attachment name: {e}")))?;
        self.check_len(bytes.len() as u64)?;
        let prepared = media::prepare(bytes, keep_metadata)?;
        self.check_len(prepared.bytes.len() as u64)?;
        let key = AttachmentKey::generate(&mut rand_core::OsRng);
        let size = prepared.bytes.len() as u64;
        let (tmp, mut file) = self.files.temp_file()?;
        let mut hasher = IdHasher::new();
        let mut index = 0;
        while let Some(span) = chunk_span(size, index) {
            let from = span.plain_offset as usize;
            let to = from + span.plain_len as usize;
            let cipher = seal_chunk(&key, index, span.last, &prepared.bytes[from..to])?;
            hasher.update(&cipher);
            file.write_all(&cipher)
                .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
            index += 1;
        }
        let id = hasher.finish();
        self.files.commit_upload(&tmp, file, &id)?;
        Traffic::add(&self.traffic.uploaded, size);
        let reference = AttachmentRef {
            id,
            key,
            size,
            media_type: prepared.media_type.clone(),
            name: name.to_owned(),
        };
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.retain(|_, p| p.since.elapsed() < PENDING_FOR);
        if pending.len() >= MAX_PENDING {
            return Err(Error::Conflict(format!(
                "{MAX_PENDING} uploads are waiting for their message on this node: post them \
                 (or wait an hour) before uploading more"
            )));
        }
        pending.insert(
            id,
            Pending {
                reference,
                owner: owner.to_owned(),
                since: Instant::now(),
            },
        );
        Ok(Uploaded {
            id: id.to_string(),
            size,
            media_type: prepared.media_type,
            name: name.to_owned(),
            removed: prepared.removed,
        })
    }

    /// The reference of upload `id` of `owner`, waiting for its message.
    pub fn pending(&self, owner: &str, id: &AttachmentId) -> Result<AttachmentRef> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.get(id) {
            Some(p) if p.owner == owner && p.since.elapsed() >= PENDING_FOR => {
                Err(Error::Invalid(format!(
                    "attachment {id} was uploaded more than an hour ago and was not posted: \
                     upload the file again"
                )))
            }
            Some(p) if p.owner == owner => Ok(p.reference.clone()),
            _ => Err(Error::Invalid(format!(
                "attachment {id} is not an upload of {owner} waiting for its message on this \
                 node: upload the file first (POST /v1/attachments), then name its id"
            ))),
        }
    }

    /// Forgets uploads whose message is stored.
    pub fn posted(&self, ids: &[AttachmentId]) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        for id in ids {
            pending.remove(id);
        }
    }

    /// Deletes the files of uploads that no stored message names and that no longer wait for
    /// their message: not a pending upload, and written more than twice the upload's hour
    /// (`PENDING_FOR`) ago. A restart forgets pending uploads, so their files go once old
    /// enough. A message names its files in the index (`named.log`) before it is stored, an
    /// upload stays pending until then, and a post may only name an upload younger than an
    /// hour ([`Attachments::pending`]): the second hour is the margin for a post under way,
    /// so a file a message names is never taken. Returns how many files were deleted.
    pub fn sweep_unposted(&self) -> Result<usize> {
        let pending: HashSet<AttachmentId> = self
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .copied()
            .collect();
        let mut removed = 0;
        for id in self.files.wholes()? {
            if pending.contains(&id) || self.named.entry(&id).is_some() {
                continue;
            }
            let old = self
                .files
                .whole_modified(&id)
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age >= 2 * PENDING_FOR);
            if old {
                self.files.remove_whole(&id)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Whether attachment `id` is held whole here.
    pub fn is_whole(&self, id: &AttachmentId) -> bool {
        self.files.whole_len(id).is_some()
    }

    /// The plaintext of the whole attachment `reference` names, checked against its id and
    /// decrypted chunk by chunk.
    pub fn read_plain(&self, reference: &AttachmentRef) -> Result<Vec<u8>> {
        let total = reference.ciphertext_len();
        if self.files.whole_len(&reference.id) != Some(total) {
            return Err(Error::NotFound(format!(
                "attachment {} is not held whole on this node",
                reference.id
            )));
        }
        let len = usize::try_from(total)
            .map_err(|_| Error::Invalid("the attachment is too large to read here".into()))?;
        let cipher = self.files.read_whole(&reference.id, 0, len)?;
        if IdHasher::new().update(&cipher).finish() != reference.id {
            return Err(Error::Corrupt(format!(
                "attachment {} on disk does not hash to its id",
                reference.id
            )));
        }
        let mut out = Vec::with_capacity(usize::try_from(reference.size).unwrap_or(0));
        let mut index = 0;
        while let Some(span) = chunk_span(reference.size, index) {
            let from = span.cipher_offset as usize;
            let to = from + span.cipher_len as usize;
            let plain =
                open_chunk(&reference.key, index, span.last, &cipher[from..to]).map_err(|e| {
                    Error::Corrupt(format!(
                        "attachment {} does not open with its key: {e}",
                        reference.id
                    ))
                })?;
            out.extend_from_slice(&plain);
            index += 1;
        }
        Ok(out)
    }
}

/// [`Attachments::read_plain`] of `reference` on the blocking pool, with the reference back:
/// what the API and the web workspace serve once the node has said the caller may open it.
pub async fn open_plain(
    attachments: std::sync::Arc<Attachments>,
    reference: AttachmentRef,
) -> Result<(Vec<u8>, AttachmentRef)> {
    tokio::task::spawn_blocking(move || {
        attachments
            .read_plain(&reference)
            .map(|plain| (plain, reference))
    })
    .await
    .map_err(|_| Error::ShuttingDown)?
}

/// An attachment's file name as it may stand in a `Content-Disposition` header: printable
/// ASCII without quotes or backslashes, anything else replaced by `_`.
pub fn header_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_stripped_encrypted_and_reads_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let att = Attachments::open(dir.path(), Options::default()).expect("opens");
        let (photo, clean) = media::tests::photo(40, 30, 1);
        let up = att
            .upload("alice", "photo.jpg", photo, false)
            .expect("uploads");
        assert_eq!(up.media_type, "image/jpeg");
        assert!(up.removed.iter().any(|r| r.contains("GPS position")));
        let id: AttachmentId = up.id.parse().expect("id");
        assert!(
            att.pending("bob", &id).is_err(),
            "only its uploader posts it"
        );
        let reference = att.pending("alice", &id).expect("pending");
        assert!(att.is_whole(&id));
        assert_eq!(att.read_plain(&reference).expect("reads"), clean);
        att.posted(&[id]);
        assert!(att.pending("alice", &id).is_err());
    }

    #[test]
    fn an_upload_over_the_limit_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let att = Attachments::open(
            dir.path(),
            Options {
                max_bytes: 1000,
                eager_max_bytes: 0,
            },
        )
        .expect("opens");
        let err = att
            .upload("alice", "big.bin", vec![0; 1001], false)
            .expect_err("too large");
        assert!(matches!(err, Error::TooLarge(_)), "{err}");
        assert!(err.to_string().contains("max_mb"), "{err}");
        assert!(att.files().wholes().expect("lists").is_empty());
    }
}
