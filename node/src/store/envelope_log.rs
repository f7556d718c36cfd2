//! The envelope log: one append-only file in the store's directory that holds, in checksummed
//! frames, every envelope the store keeps (with the metadata stored beside it), every control
//! event and every audit record. sled keeps small index entries that say where each frame
//! lies; the log alone is enough to rebuild them (see `recovery`).
//!
//! A frame is
//!
//! ```text
//! magic(4) ‖ kind(1) ‖ len(4) ‖ checksum(16) ‖ body(len)
//! ```
//!
//! with [`MAGIC`], the kind of what the body holds ([`Kind`]), the body's length (big-endian)
//! and the first 16 bytes of the BLAKE3 hash of `kind ‖ len ‖ body`. A [`Location`] names a
//! frame by offset, whole length and that checksum; every read checks all three. Frames lie
//! back to back; a stretch that is not a frame (a torn tail, damage) is skipped by a scan,
//! which finds the next frame by its magic and checksum.
//!
//! The store decides where to append (it tracks the end under its writer lock) and when to
//! sync; this module only does the file I/O and the framing. sled 0.34 owns `db`, `conf`,
//! `blobs/` and `snap.*` in the same directory and leaves any other file alone (it lists the
//! directory only to find its own snapshots, by prefix).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Name of the log file inside the store's directory.
pub(super) const FILE_NAME: &str = "envelopes-v4.log";
/// The unframed log of development builds before this layout.
pub(super) const RETIRED_FILE_NAME: &str = "envelopes-v3.log";
/// First bytes of every frame.
pub(super) const MAGIC: [u8; 4] = [0xe7, b'L', b'V', b'4'];
/// Length of a checksum: the first 16 bytes of a BLAKE3 hash.
pub(super) const CHECKSUM_LEN: usize = 16;
/// magic ‖ kind ‖ len ‖ checksum.
pub(super) const HEAD_LEN: usize = 4 + 1 + 4 + CHECKSUM_LEN;
/// Longest frame body: far above any envelope, control event or audit record, and what a
/// scan allocates at most for one frame.
pub(super) const MAX_BODY: usize = 16 * 1024 * 1024;
/// Length of an encoded [`Location`]: offset(8) ‖ len(4) ‖ checksum(16).
pub(super) const LOCATION_LEN: usize = 8 + 4 + CHECKSUM_LEN;
/// How much a scan reads at once.
const SCAN_CHUNK: usize = 1024 * 1024;

/// What a frame holds. Values are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// id(32) ‖ place(64: group ‖ author ‖ epoch ‖ seq) ‖ meta_len(4) ‖ metadata ‖ envelope: a
    /// stored message, with what its index entry needs, so that the store rebuilds its index
    /// without decoding envelopes.
    Message = 1,
    /// group(16) ‖ seq(8) ‖ event: a control event.
    Control = 2,
    /// seq(8) ‖ record: an audit record.
    Audit = 3,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Message),
            2 => Some(Kind::Control),
            3 => Some(Kind::Audit),
            _ => None,
        }
    }
}

/// Where a frame lies in the log, and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Location {
    /// Offset of its first byte.
    pub(super) offset: u64,
    /// Its whole length in bytes, head included.
    pub(super) len: u32,
    /// The checksum its head carries.
    pub(super) checksum: [u8; CHECKSUM_LEN],
}

impl Location {
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

/// The checksum of a frame of `kind` with `body`.
fn checksum(kind: u8, body_parts: &[&[u8]]) -> [u8; CHECKSUM_LEN] {
    let len: usize = body_parts.iter().map(|p| p.len()).sum();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(&(len as u32).to_be_bytes());
    for part in body_parts {
        hasher.update(part);
    }
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECKSUM_LEN]);
    out
}

/// Appends a frame of `kind` whose body is `parts` back to back to `out`, which is to be
/// written at `base` in the log; returns where the frame lies, or `None` (with nothing
/// appended) if the body is longer than [`MAX_BODY`].
pub(super) fn encode_frame(
    out: &mut Vec<u8>,
    base: u64,
    kind: Kind,
    parts: &[&[u8]],
) -> Option<Location> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len > MAX_BODY {
        return None;
    }
    let sum = checksum(kind as u8, parts);
    let offset = base.checked_add(out.len() as u64)?;
    out.reserve(HEAD_LEN + len);
    out.extend_from_slice(&MAGIC);
    out.push(kind as u8);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    out.extend_from_slice(&sum);
    for part in parts {
        out.extend_from_slice(part);
    }
    Some(Location {
        offset,
        len: (HEAD_LEN + len) as u32,
        checksum: sum,
    })
}

/// A frame read back and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Frame {
    pub(super) kind: Kind,
    pub(super) body: Vec<u8>,
}

/// Checks that `bytes` is one whole frame; `None` if it is not.
fn parse_frame(bytes: &[u8]) -> Option<(Kind, [u8; CHECKSUM_LEN], &[u8])> {
    let (head, body) = bytes.split_at_checked(HEAD_LEN)?;
    let (magic, head) = head.split_first_chunk::<4>()?;
    let (kind, head) = head.split_first()?;
    let (len, sum) = head.split_first_chunk::<4>()?;
    let sum: [u8; CHECKSUM_LEN] = sum.try_into().ok()?;
    if *magic != MAGIC || usize::try_from(u32::from_be_bytes(*len)).ok()? != body.len() {
        return None;
    }
    (checksum(*kind, &[body]) == sum).then_some((Kind::from_byte(*kind)?, sum, body))
}

/// Length of a message's place in its frame: group ‖ author ‖ epoch ‖ seq.
pub(super) const PLACE_LEN: usize = 16 + 32 + 8 + 8;
/// What a message frame's body holds before the metadata: id ‖ place ‖ meta_len.
pub(super) const MESSAGE_HEAD_LEN: usize = 32 + PLACE_LEN + 4;

/// The parts of a message frame's body.
#[derive(Debug, Clone, Copy)]
pub(super) struct MessageParts<'a> {
    pub(super) id: [u8; 32],
    /// group ‖ author ‖ epoch ‖ seq: an author index key without its prefix.
    pub(super) place: [u8; PLACE_LEN],
    pub(super) meta: &'a [u8],
    pub(super) envelope: &'a [u8],
}

/// The parts of a message frame's body; `None` if it is not one.
pub(super) fn message_parts(body: &[u8]) -> Option<MessageParts<'_>> {
    let (id, rest) = body.split_first_chunk::<32>()?;
    let (place, rest) = rest.split_first_chunk::<PLACE_LEN>()?;
    let (meta_len, rest) = rest.split_first_chunk::<4>()?;
    let (meta, envelope) =
        rest.split_at_checked(usize::try_from(u32::from_be_bytes(*meta_len)).ok()?)?;
    Some(MessageParts {
        id: *id,
        place: *place,
        meta,
        envelope,
    })
}

/// Why the bytes at a [`Location`] are not the frame it describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// The frame runs past the end of the file (or of what has been written).
    Short,
    /// The bytes are there but are not the frame (its head, length or checksum differ).
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

/// What a scan finds at a stretch of the log.
#[derive(Debug)]
pub(super) enum Scanned {
    /// A whole frame.
    Frame { loc: Location, frame: Frame },
    /// Bytes that are not a frame: from `offset`, `len` of them.
    Damaged { offset: u64, len: u64 },
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

    /// Reads the frame at `loc` and checks it. A frame ending past `end` (the end of what has
    /// been written) is [`Fault::Short`] without being read, so a corrupt length cannot make
    /// this allocate more than the log holds.
    pub(super) fn read(&self, loc: &Location, end: u64) -> io::Result<Result<Frame, Fault>> {
        if loc.end() > end {
            return Ok(Err(Fault::Short));
        }
        let len = usize::try_from(loc.len).map_err(io::Error::other)?;
        let mut buf = vec![0u8; len];
        match self.file.read_exact_at(&mut buf, loc.offset) {
            Ok(()) => Ok(match parse_frame(&buf) {
                Some((kind, sum, _)) if sum == loc.checksum => {
                    buf.drain(..HEAD_LEN);
                    Ok(Frame { kind, body: buf })
                }
                _ => Err(Fault::Mismatch),
            }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(Err(Fault::Short)),
            Err(e) => Err(context(&self.path, "reading", e)),
        }
    }

    /// Reads the log from `from` to `end` frame by frame.
    pub(super) fn scan(&self, from: u64, end: u64) -> Scan<'_> {
        Scan {
            log: self,
            pos: from,
            end,
            buf: Vec::new(),
            buf_at: from,
        }
    }

    /// Cuts the file to `len` bytes (not synced).
    pub(super) fn truncate(&self, len: u64) -> io::Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| context(&self.path, "truncating", e))
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

/// A scan of the log: yields every frame and every stretch of bytes that is not one, in order.
#[derive(Debug)]
pub(super) struct Scan<'a> {
    log: &'a EnvelopeLog,
    /// Where the next frame should start.
    pos: u64,
    end: u64,
    /// Bytes of the log from `buf_at`.
    buf: Vec<u8>,
    buf_at: u64,
}

impl Scan<'_> {
    /// The log's bytes from `at`, at least `len` of them if the log has them (fewer only at
    /// its end).
    fn bytes(&mut self, at: u64, len: usize) -> io::Result<&[u8]> {
        let want_end = at.saturating_add(len as u64).min(self.end);
        let have_end = self.buf_at + self.buf.len() as u64;
        if at < self.buf_at || want_end > have_end {
            let read_len = usize::try_from((want_end - at).max(SCAN_CHUNK as u64))
                .map_err(io::Error::other)?
                .min(usize::try_from(self.end.saturating_sub(at)).map_err(io::Error::other)?);
            self.buf.resize(read_len, 0);
            self.buf_at = at;
            let mut filled = 0;
            while filled < read_len {
                match self
                    .log
                    .file
                    .read_at(&mut self.buf[filled..], at + filled as u64)
                {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(context(&self.log.path, "reading", e)),
                }
            }
            self.buf.truncate(filled);
        }
        let start = usize::try_from(at - self.buf_at).map_err(io::Error::other)?;
        Ok(self.buf.get(start..).unwrap_or_default())
    }

    /// The frame at `at`, if a whole one lies there.
    fn frame_at(&mut self, at: u64) -> io::Result<Option<(Location, Frame)>> {
        let head = self.bytes(at, HEAD_LEN)?;
        let Some(len) = head
            .get(..HEAD_LEN)
            .filter(|h| h[..4] == MAGIC)
            .and_then(|h| h[5..9].try_into().ok())
            .map(|len: [u8; 4]| u32::from_be_bytes(len) as usize)
            .filter(|len| *len <= MAX_BODY)
        else {
            return Ok(None);
        };
        let whole = self.bytes(at, HEAD_LEN + len)?;
        let Some((kind, sum, body)) = whole.get(..HEAD_LEN + len).and_then(parse_frame) else {
            return Ok(None);
        };
        let frame = Frame {
            kind,
            body: body.to_vec(),
        };
        let loc = Location {
            offset: at,
            len: (HEAD_LEN + len) as u32,
            checksum: sum,
        };
        Ok(Some((loc, frame)))
    }

    /// The offset of the next whole frame after `at`, or the end.
    fn next_frame_after(&mut self, at: u64) -> io::Result<u64> {
        let mut from = at + 1;
        while from < self.end {
            let window = self.bytes(from, SCAN_CHUNK)?;
            let Some(i) = window.windows(MAGIC.len()).position(|w| w == MAGIC) else {
                // The last bytes may hold the start of a magic cut by the window.
                let step = window.len().saturating_sub(MAGIC.len() - 1).max(1);
                from += step as u64;
                continue;
            };
            let candidate = from + i as u64;
            if self.frame_at(candidate)?.is_some() {
                return Ok(candidate);
            }
            from = candidate + 1;
        }
        Ok(self.end)
    }
}

impl Iterator for Scan<'_> {
    type Item = io::Result<Scanned>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let at = self.pos;
        let found = match self.frame_at(at) {
            Ok(found) => found,
            Err(e) => {
                self.pos = self.end;
                return Some(Err(e));
            }
        };
        Some(match found {
            Some((loc, frame)) => {
                self.pos = loc.end();
                Ok(Scanned::Frame { loc, frame })
            }
            None => match self.next_frame_after(at) {
                Ok(next) => {
                    self.pos = next;
                    Ok(Scanned::Damaged {
                        offset: at,
                        len: next - at,
                    })
                }
                Err(e) => {
                    self.pos = self.end;
                    Err(e)
                }
            },
        })
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn log_with(frames: &[(Kind, &[u8])]) -> (tempfile::TempDir, EnvelopeLog, Vec<Location>) {
        let dir = tempfile::tempdir().unwrap();
        let log = EnvelopeLog::open(dir.path()).unwrap();
        let mut bytes = Vec::new();
        let locs = frames
            .iter()
            .map(|(kind, body)| encode_frame(&mut bytes, 0, *kind, &[body]).unwrap())
            .collect();
        log.write_at(0, &bytes).unwrap();
        (dir, log, locs)
    }

    fn scan_all(log: &EnvelopeLog) -> Vec<Scanned> {
        let end = log.len().unwrap();
        log.scan(0, end).map(Result::unwrap).collect()
    }

    #[test]
    fn envelope_log_frames_read_back_and_scan_in_order() {
        let big = vec![7u8; SCAN_CHUNK + 10];
        let (_dir, log, locs) = log_with(&[
            (Kind::Message, b"one"),
            (Kind::Control, &big),
            (Kind::Audit, b""),
        ]);
        let end = log.len().unwrap();
        assert_eq!(locs[2].end(), end);
        let frame = log.read(&locs[1], end).unwrap().unwrap();
        assert_eq!((frame.kind, frame.body), (Kind::Control, big.clone()));
        let scanned = scan_all(&log);
        assert_eq!(scanned.len(), 3);
        for (s, loc) in scanned.iter().zip(&locs) {
            assert!(
                matches!(s, Scanned::Frame { loc: l, .. } if l == loc),
                "{s:?}"
            );
        }
        // Another frame's location, or a checksum that differs, is refused.
        let wrong = Location {
            checksum: locs[0].checksum,
            ..locs[2]
        };
        assert_eq!(log.read(&wrong, end).unwrap(), Err(Fault::Mismatch));
        assert_eq!(log.read(&locs[2], end - 1).unwrap(), Err(Fault::Short));
    }

    #[test]
    fn envelope_log_scan_skips_damage_and_finds_the_next_frame() {
        let (_dir, log, locs) = log_with(&[
            (Kind::Message, b"first"),
            (Kind::Message, b"second"),
            (Kind::Message, b"third"),
        ]);
        // One byte of the second frame's body garbled; the log ends in a torn frame.
        log.write_at(locs[1].offset + HEAD_LEN as u64 + 1, b"X")
            .unwrap();
        let mut torn = Vec::new();
        encode_frame(&mut torn, 0, Kind::Audit, &[b"torn"]).unwrap();
        log.write_at(locs[2].end(), &torn[..torn.len() - 2])
            .unwrap();
        let end = log.len().unwrap();
        assert_eq!(log.read(&locs[1], end).unwrap(), Err(Fault::Mismatch));
        let scanned = scan_all(&log);
        assert_eq!(scanned.len(), 4, "{scanned:?}");
        assert!(matches!(&scanned[0], Scanned::Frame { loc, .. } if *loc == locs[0]));
        assert!(matches!(
            scanned[1],
            Scanned::Damaged { offset, len } if offset == locs[1].offset && len == u64::from(locs[1].len)
        ));
        assert!(matches!(&scanned[2], Scanned::Frame { loc, .. } if *loc == locs[2]));
        assert!(matches!(
            scanned[3],
            Scanned::Damaged { offset, len } if offset == locs[2].end() && len == end - locs[2].end()
        ));
    }
}
