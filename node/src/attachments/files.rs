//! Where attachments lie on disk, outside the store engine, in `STORE/attachments-v1/`:
//!
//! ```text
//! whole/ID          the ciphertext of attachment ID, checked against ID (its BLAKE3 hash)
//! partial/ID.data   a ciphertext being fetched, chunks at their final offsets (sparse)
//! partial/ID.held   "LAH1" ‖ ciphertext length (u64 BE) ‖ one bit per chunk held
//! tmp/              uploads being encrypted; emptied at every start
//! named.log         which messages name which attachment (see `named.rs`)
//! ```
//!
//! Content-addressed: an attachment is stored once however many messages name it.
//!
//! The rules that make a fetch resumable and nothing acknowledged lost:
//! - a chunk is marked held only after its bytes are synced (`fdatasync` of the data file,
//!   then the bit written and the held file synced), so after a crash every bit set names a
//!   chunk on disk; a bit left unset only costs fetching that chunk again;
//! - a partial becomes whole only after every chunk is held and the whole file hashes to its
//!   id; then it is renamed into `whole/` and the directory synced;
//! - an upload is encrypted into `tmp/`, synced, renamed into `whole/` and the directory
//!   synced before the upload is answered.
//!
//! All of it is blocking file I/O: callers run it on the blocking pool.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use liaison_protocol::attachment::{chunk_count, chunk_span, AttachmentId, IdHasher};
use liaison_protocol::transfer::{plain_size, range_len, ChunkSet};
use tracing::warn;

use crate::error::{Error, Result};

/// The directory name under the store directory.
pub const DIR: &str = "attachments-v1";
const WHOLE: &str = "whole";
const PARTIAL: &str = "partial";
const TMP: &str = "tmp";
const HELD_MAGIC: &[u8; 4] = b"LAH1";
const HELD_HEADER: u64 = 12;

/// The attachment files of one node.
#[derive(Debug)]
pub struct Files {
    root: PathBuf,
    /// Partials open now, shared by the fetch that fills one and the peers it serves.
    partials: Mutex<HashMap<AttachmentId, Arc<Partial>>>,
}

/// What became of a partial that held every chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// It hashed to its id and is whole now.
    Whole,
    /// Its chunks open with the key but do not hash to the id: dropped.
    Mismatch,
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |e| Error::io(context, e)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("cannot sync directory {}", dir.display())))
}

impl Files {
    /// Opens (creating) the attachment directories under `store_dir`; empties `tmp/`.
    pub fn open(store_dir: &Path) -> Result<Files> {
        let root = store_dir.join(DIR);
        for sub in [WHOLE, PARTIAL, TMP] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(io(format!("cannot create {}", dir.display())))?;
        }
        let tmp = root.join(TMP);
        for entry in fs::read_dir(&tmp).map_err(io(format!("cannot list {}", tmp.display())))? {
            let path = entry.map_err(io("cannot list tmp/"))?.path();
            if let Err(e) = fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot remove an unfinished upload");
            }
        }
        sync_dir(&root)?;
        Ok(Files {
            root,
            partials: Mutex::new(HashMap::new()),
        })
    }

    /// The directory holding everything.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The index file's path.
    pub fn named_path(&self) -> PathBuf {
        self.root.join("named.log")
    }

    fn whole_path(&self, id: &AttachmentId) -> PathBuf {
        self.root.join(WHOLE).join(id.to_string())
    }

    fn data_path(&self, id: &AttachmentId) -> PathBuf {
        self.root.join(PARTIAL).join(format!("{id}.data"))
    }

    fn held_path(&self, id: &AttachmentId) -> PathBuf {
        self.root.join(PARTIAL).join(format!("{id}.held"))
    }

    /// The ciphertext length of a whole attachment held here.
    pub fn whole_len(&self, id: &AttachmentId) -> Option<u64> {
        fs::metadata(self.whole_path(id)).ok().map(|m| m.len())
    }

    /// When the whole attachment `id` was last written (its upload or the end of its fetch).
    pub fn whole_modified(&self, id: &AttachmentId) -> Option<std::time::SystemTime> {
        fs::metadata(self.whole_path(id))
            .and_then(|m| m.modified())
            .ok()
    }

    /// The ids of the whole attachments held.
    pub fn wholes(&self) -> Result<Vec<AttachmentId>> {
        list_ids(&self.root.join(WHOLE), "")
    }

    /// The ids of the partial attachments on disk.
    pub fn partial_ids(&self) -> Result<Vec<AttachmentId>> {
        list_ids(&self.root.join(PARTIAL), ".held")
    }

    /// Removes a whole attachment (an upload no message names).
    pub fn remove_whole(&self, id: &AttachmentId) -> Result<()> {
        let path = self.whole_path(id);
        fs::remove_file(&path).map_err(io(format!("cannot remove {}", path.display())))?;
        sync_dir(&self.root.join(WHOLE))
    }

    /// A new file in `tmp/` for an upload being encrypted.
    pub fn temp_file(&self) -> Result<(PathBuf, File)> {
        let mut name = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut name);
        let path = self.root.join(TMP).join(hex::encode(name));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(format!("cannot create {}", path.display())))?;
        Ok((path, file))
    }

    /// Makes the upload in `tmp` (written through `file`) the whole attachment `id`, durably.
    pub fn commit_upload(&self, tmp: &Path, file: File, id: &AttachmentId) -> Result<()> {
        file.sync_all()
            .map_err(io(format!("cannot sync {}", tmp.display())))?;
        drop(file);
        let to = self.whole_path(id);
        fs::rename(tmp, &to).map_err(io(format!("cannot move the upload to {}", to.display())))?;
        sync_dir(&self.root.join(WHOLE))
    }

    /// Reads `len` bytes at `offset` of whole attachment `id`.
    pub fn read_whole(&self, id: &AttachmentId, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.whole_path(id);
        let file = File::open(&path).map_err(io(format!("cannot open {}", path.display())))?;
        let mut buf = vec![0; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(io(format!("cannot read {}", path.display())))?;
        Ok(buf)
    }

    /// Hashes whole attachment `id` and says whether it is intact.
    pub fn check_whole(&self, id: &AttachmentId) -> Result<bool> {
        let path = self.whole_path(id);
        let file = File::open(&path).map_err(io(format!("cannot open {}", path.display())))?;
        Ok(hash_file(file, &path)? == *id)
    }

    /// The partial of `id` open now, or on disk, if any.
    pub fn existing_partial(&self, id: &AttachmentId) -> Result<Option<Arc<Partial>>> {
        let mut open = self.partials.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = open.get(id) {
            return Ok(Some(p.clone()));
        }
        if !self.held_path(id).exists() {
            return Ok(None);
        }
        match Partial::open(self.data_path(id), self.held_path(id), *id, None)? {
            Some(p) => {
                let p = Arc::new(p);
                open.insert(*id, p.clone());
                Ok(Some(p))
            }
            None => Ok(None),
        }
    }

    /// The partial of `id`, a ciphertext of `total` bytes: the one open or on disk, or a new
    /// one holding nothing. One on disk of another length, or damaged, is started afresh.
    pub fn partial(&self, id: &AttachmentId, total: u64) -> Result<Arc<Partial>> {
        let mut open = self.partials.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = open.get(id) {
            if p.total == total {
                return Ok(p.clone());
            }
        }
        let (data, held) = (self.data_path(id), self.held_path(id));
        let p = match Partial::open(data.clone(), held.clone(), *id, Some(total))? {
            Some(p) => p,
            None => Partial::create(data, held, *id, total)?,
        };
        sync_dir(&self.root.join(PARTIAL))?;
        let p = Arc::new(p);
        open.insert(*id, p.clone());
        Ok(p)
    }

    /// Drops the partial of `id` (its chunks did not hash to the id).
    pub fn discard_partial(&self, id: &AttachmentId) -> Result<()> {
        self.partials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        for path in [self.held_path(id), self.data_path(id)] {
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Error::io(format!("cannot remove {}", path.display()), e));
                }
            }
        }
        sync_dir(&self.root.join(PARTIAL))
    }

    /// Turns a partial holding every chunk into a whole attachment if it hashes to its id.
    pub fn finish(&self, partial: &Partial) -> Result<Finished> {
        let id = partial.id;
        if !partial.held().is_complete() {
            return Err(Error::Invalid(format!(
                "attachment {} is not complete",
                id.short()
            )));
        }
        let data = self.data_path(&id);
        let file = File::open(&data).map_err(io(format!("cannot open {}", data.display())))?;
        if hash_file(file, &data)? != id {
            self.discard_partial(&id)?;
            return Ok(Finished::Mismatch);
        }
        let to = self.whole_path(&id);
        fs::rename(&data, &to).map_err(io(format!("cannot move {}", data.display())))?;
        sync_dir(&self.root.join(WHOLE))?;
        self.partials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        let held = self.held_path(&id);
        fs::remove_file(&held).map_err(io(format!("cannot remove {}", held.display())))?;
        sync_dir(&self.root.join(PARTIAL))?;
        Ok(Finished::Whole)
    }
}

fn list_ids(dir: &Path, suffix: &str) -> Result<Vec<AttachmentId>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(format!("cannot list {}", dir.display())))? {
        let entry = entry.map_err(io(format!("cannot list {}", dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str().and_then(|n| n.strip_suffix(suffix)) else {
            continue;
        };
        if let Ok(id) = name.parse() {
            out.push(id);
        }
    }
    Ok(out)
}

fn hash_file(mut file: File, path: &Path) -> Result<AttachmentId> {
    let mut hasher = IdHasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(io(format!("cannot read {}", path.display())))?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// An attachment being fetched: its data file and which chunks it holds.
#[derive(Debug)]
pub struct Partial {
    id: AttachmentId,
    /// Plaintext size.
    size: u64,
    /// Ciphertext length.
    total: u64,
    data: File,
    held_file: File,
    held: Mutex<ChunkSet>,
}

impl Partial {
    /// Opens a partial from disk; `None` if its held file is missing, damaged, or of another
    /// length than `total` (the caller starts afresh).
    fn open(
        data_path: PathBuf,
        held_path: PathBuf,
        id: AttachmentId,
        total: Option<u64>,
    ) -> Result<Option<Partial>> {
        let Ok(mut held_file) = OpenOptions::new().read(true).write(true).open(&held_path) else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        held_file
            .read_to_end(&mut bytes)
            .map_err(io(format!("cannot read {}", held_path.display())))?;
        let parsed = (|| {
            let header = bytes.get(..HELD_HEADER as usize)?;
            if &header[..4] != HELD_MAGIC {
                return None;
            }
            let stored_total = u64::from_be_bytes(header[4..12].try_into().ok()?);
            let size = plain_size(stored_total)?;
            if total.is_some_and(|t| t != stored_total) {
                return None;
            }
            let set =
                ChunkSet::from_bytes(chunk_count(size), &bytes[HELD_HEADER as usize..]).ok()?;
            Some((stored_total, size, set))
        })();
        let Some((total, size, held)) = parsed else {
            warn!(
                attachment = %id.short(),
                "the record of a partial attachment is damaged or of another length; fetching it afresh"
            );
            return Ok(None);
        };
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&data_path)
            .map_err(io(format!("cannot open {}", data_path.display())))?;
        let len = data
            .metadata()
            .map_err(io(format!("cannot read {}", data_path.display())))?
            .len();
        if len != total {
            if held.held() > 0 && len < total {
                // Bits are set only after their data was synced, which needs the file's full
                // length: a shorter file means the bits cannot be trusted.
                warn!(attachment = %id.short(), "a partial attachment's data file is short; fetching it afresh");
                return Ok(None);
            }
            data.set_len(total)
                .and_then(|()| data.sync_all())
                .map_err(io(format!("cannot size {}", data_path.display())))?;
        }
        Ok(Some(Partial {
            id,
            size,
            total,
            data,
            held_file,
            held: Mutex::new(held),
        }))
    }

    /// A new partial of a `total`-byte ciphertext holding nothing; both files synced.
    fn create(
        data_path: PathBuf,
        held_path: PathBuf,
        id: AttachmentId,
        total: u64,
    ) -> Result<Partial> {
        let size = plain_size(total).ok_or_else(|| {
            Error::Invalid(format!("{total} bytes is not the length of an attachment"))
        })?;
        let data = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&data_path)
            .map_err(io(format!("cannot create {}", data_path.display())))?;
        data.set_len(total)
            .and_then(|()| data.sync_all())
            .map_err(io(format!("cannot size {}", data_path.display())))?;
        let held = ChunkSet::empty(chunk_count(size));
        let mut held_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&held_path)
            .map_err(io(format!("cannot create {}", held_path.display())))?;
        let mut header = HELD_MAGIC.to_vec();
        header.extend_from_slice(&total.to_be_bytes());
        header.extend_from_slice(held.as_bytes());
        held_file
            .write_all(&header)
            .and_then(|()| held_file.sync_all())
            .map_err(io(format!("cannot write {}", held_path.display())))?;
        Ok(Partial {
            id,
            size,
            total,
            data,
            held_file,
            held: Mutex::new(held),
        })
    }

    /// The attachment.
    pub fn id(&self) -> AttachmentId {
        self.id
    }

    /// Its plaintext size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Its ciphertext length.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The chunks held.
    pub fn held(&self) -> ChunkSet {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many chunks from `first` are held without a gap, at most `max`.
    pub fn run_from(&self, first: u64, max: u32) -> u32 {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .run_from(first, max)
    }

    /// Stores `count` chunks from `first` (already checked with the key) durably: the data is
    /// written and synced, then their bits are set and the held file synced.
    pub fn write_range(&self, first: u64, count: u32, cipher: &[u8]) -> Result<()> {
        let span = chunk_span(self.size, first)
            .ok_or_else(|| Error::Invalid(format!("chunk {first} is past the end")))?;
        if range_len(self.size, first, count) != Some(cipher.len() as u64) {
            return Err(Error::Invalid(format!(
                "{} bytes are not chunks {first}..{} of attachment {}",
                cipher.len(),
                first + u64::from(count),
                self.id.short()
            )));
        }
        self.data
            .write_all_at(cipher, span.cipher_offset)
            .and_then(|()| self.data.sync_data())
            .map_err(io(format!("cannot write attachment {}", self.id.short())))?;
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let last = first + u64::from(count) - 1;
        for i in first..=last {
            held.insert(i);
        }
        let (from, to) = ((first / 8) as usize, (last / 8) as usize);
        let bytes = &held.as_bytes()[from..=to];
        self.held_file
            .write_all_at(bytes, HELD_HEADER + from as u64)
            .and_then(|()| self.held_file.sync_data())
            .map_err(io(format!(
                "cannot record the chunks of attachment {}",
                self.id.short()
            )))
    }

    /// The ciphertext of `count` chunks from `first` (all held).
    pub fn read_range(&self, first: u64, count: u32) -> Result<Vec<u8>> {
        let span = chunk_span(self.size, first)
            .ok_or_else(|| Error::Invalid(format!("chunk {first} is past the end")))?;
        let len = range_len(self.size, first, count)
            .ok_or_else(|| Error::Invalid(format!("chunks {first}.. run past the end")))?;
        let mut buf = vec![0; len as usize];
        self.data
            .read_exact_at(&mut buf, span.cipher_offset)
            .map_err(io(format!("cannot read attachment {}", self.id.short())))?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests;
