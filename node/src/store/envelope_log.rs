//! The envelope log: one append-only file in the store's directory that holds the envelope
//! bytes of every message, so that sled keeps only small index entries.
//!
//! The file is a plain concatenation of envelopes, with no framing: where an envelope starts,
//! how long it is and its checksum live in the message's index entry (a [`Location`]). Every
//! read checks the checksum. The store decides where to append (it tracks the end under its
//! writer lock) and when to sync; this module only does the file I/O.
//!
//! sled 0.34 owns `db`, `conf`, `blobs/` and `snap.*` in the same directory and leaves any
//! other file alone (it lists the directory only to find its own snapshots, by prefix).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Name of the log file inside the store's directory.
pub(super) const FILE_NAME: &str = "envelopes-v3.log";
/// Length of an envelope's checksum: the first 16 bytes of its BLAKE3 hash.
pub(super) const CHECKSUM_LEN: usize = 16;
/// Length of an encoded [`Location`]: offset(8) ‖ len(4) ‖ checksum(16).
pub(super) const LOCATION_LEN: usize = 8 + 4 + CHECKSUM_LEN;

/// Where an envelope lies in the log, and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// Offset of its first byte.
    pub(super) offset: u64,
    /// Its length in bytes.
    pub(super) len: u32,
    /// [`checksum`] of its bytes.
    pub(super) checksum: [u8; CHECKSUM_LEN],
}

impl Location {
    /// The location of `envelope` appended at `offset`; `None` if it is 4 GiB or longer.
    pub(super) fn new(offset: u64, envelope: &[u8]) -> Option<Location> {
        Some(Location {
            offset,
            len: u32::try_from(envelope.len()).ok()?,
            checksum: checksum(envelope),
        })
    }

    /// Offset just past its last byte.
    pub(super) fn end(&self) -> u64 {
        self.offset.saturating_add(u64::from(self.len))
    }

    /// offset(8, big-endian) ‖ len(4, big-endian) ‖ checksum(16).
    pub(super) fn encode(&self) -> [u8; LOCATION_LEN] {
        let mut out = [0u8; LOCATION_LEN];
        out[..8].copy_from_slice(&self.offset.to_be_bytes());
        out[8..12].copy_from_slice(&self.len.to_be_bytes());
        out[12..].copy_from_slice(&self.checksum);
        out
    }

    /// Reads what [`Location::encode`] wrote; `None` unless `b` is exactly [`LOCATION_LEN`] bytes.
    pub(super) fn decode(b: &[u8]) -> Option<Location> {
        let b: &[u8; LOCATION_LEN] = b.try_into().ok()?;
        let (offset, rest) = b.split_first_chunk::<8>()?;
        let (len, checksum) = rest.split_first_chunk::<4>()?;
        Some(Location {
            offset: u64::from_be_bytes(*offset),
            len: u32::from_be_bytes(*len),
            checksum: checksum.try_into().ok()?,
        })
    }
}

/// The checksum kept for an envelope: the first [`CHECKSUM_LEN`] bytes of its BLAKE3 hash.
pub(super) fn checksum(envelope: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&blake3::hash(envelope).as_bytes()[..CHECKSUM_LEN]);
    out
}

/// Why the bytes at a [`Location`] are not the envelope it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// The record runs past the end of the file (or of what has been written).
    Short,
    /// The bytes are there but do not match the checksum.
    Mismatch,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Short => "runs past the end of the envelope log",
            Fault::Mismatch => "does not match its checksum",
        })
    }
}

/// The open log file. Reads and writes take an explicit offset (`pread`/`pwrite`), so one
/// handle serves every thread.
#[derive(Debug)]
pub(super) struct EnvelopeLog {
    file: File,
    path: PathBuf,
    /// Test hook: make the next sync fail.
    #[cfg(test)]
    pub(super) fail_next_sync: std::sync::atomic::AtomicBool,
}

impl EnvelopeLog {
    /// Opens the log in directory `dir`, creating it if needed. A new file is synced together
    /// with its directory entry, so that a later `sync` of its contents cannot be undone by the
    /// file itself going missing.
    pub(super) fn open(dir: &Path) -> io::Result<EnvelopeLog> {
        let path = dir.join(FILE_NAME);
        let mut options = OpenOptions::new();
        options.read(true).write(true).mode(0o600);
        let file = match options.clone().create_new(true).open(&path) {
            Ok(file) => {
                file.sync_all()
                    .and_then(|()| File::open(dir)?.sync_all())
                    .map_err(|e| context(&path, "creating", e))?;
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => options
                .open(&path)
                .map_err(|e| context(&path, "opening", e))?,
            Err(e) => return Err(context(&path, "creating", e)),
        };
        Ok(EnvelopeLog {
            file,
            path,
            #[cfg(test)]
            fail_next_sync: Default::default(),
        })
    }

    /// Current length of the file.
    pub(super) fn len(&self) -> io::Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| context(&self.path, "measuring", e))
    }

    /// Writes `bytes` at `offset` (not synced).
    pub(super) fn write_at(&self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file
            .write_all_at(bytes, offset)
            .map_err(|e| context(&self.path, "appending to", e))
    }

    /// Reads the envelope at `loc` and checks it against its checksum. A record ending past
    /// `end` (the end of what has been written) is [`Fault::Short`] without being read, so a
    /// corrupt length cannot make this allocate more than the log holds.
    pub(super) fn read(&self, loc: &Location, end: u64) -> io::Result<Result<Vec<u8>, Fault>> {
        if loc.end() > end {
            return Ok(Err(Fault::Short));
        }
        let len = usize::try_from(loc.len).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        match self.file.read_exact_at(&mut buf, loc.offset) {
            Ok(()) if checksum(&buf) == loc.checksum => Ok(Ok(buf)),
            Ok(()) => Ok(Err(Fault::Mismatch)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Err(Fault::Short)),
            Err(e) => Err(context(&self.path, "reading", e)),
        }
    }

    /// Makes everything written so far durable (`fdatasync`; it includes the file's length).
    pub(super) fn sync(&self) -> io::Result<()> {
        #[cfg(test)]
        if self
            .fail_next_sync
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            return Err(context(
                &self.path,
                "syncing",
                io::Error::other("injected failure"),
            ));
        }
        self.file
            .sync_data()
            .map_err(|e| context(&self.path, "syncing", e))
    }
}

/// `e` with what was being done to which file.
fn context(path: &Path, op: &str, e: io::Error) -> io::Error {
    let name = path.file_name().unwrap_or(path.as_os_str());
    io::Error::new(
        e.kind(),
        format!("{op} the envelope log {}: {e}", name.to_string_lossy()),
    )
}
