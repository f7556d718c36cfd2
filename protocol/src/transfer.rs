//! Attachment transfer between nodes: chunk ranges requested and answered on their own streams,
//! outside the frames of the sync exchange.
//!
//! ```text
//!  requester                                   holder
//!     │ ── open a bidirectional stream ──────────▶ │
//!     │ ── u32 len ‖ ChunkRequest, finish ───────▶ │  may the requester have it? (membership)
//!     │ ◀── u32 len ‖ ChunkResponse ────────────── │
//!     │ ◀── the ciphertext of `count` chunks ───── │  (only after `Chunks`)
//! ```
//!
//! A request names the attachment, a message naming it that the requester holds (the holder
//! serves only a member of that message's group, in an epoch the member may read) and a range
//! of chunks. The holder answers with the chunks from the start of the range that it holds
//! ([`ChunkResponse::Chunks`], their raw ciphertext following), with
//! [`ChunkResponse::Missing`] when it lacks the first one (it may be fetching it), or with
//! [`ChunkResponse::Unavailable`] — also what a node that may not have the attachment hears,
//! so that it learns nothing.
//!
//! The requester checks every chunk with the attachment's key before it keeps it
//! ([`check_range`]): each chunk is authenticated on its own (its index and last-chunk flag are
//! in the nonce), so a bad chunk is caught when it arrives, not after 50 MiB. The whole file is
//! checked against its id once complete.
//!
//! [`Download`] is the requester's plan, a sans-IO state machine: the node tells it which
//! peers may serve (`add_peer`, `remove_peer`), asks it for the next request
//! ([`Download::poll_request`]), reports each answer ([`Download::handle_stored`],
//! [`Download::handle_missing`], [`Download::handle_unavailable`], [`Download::handle_failed`])
//! and sleeps until [`Download::poll_timeout`]. It keeps no clock and draws no randomness, so
//! the same inputs give the same requests.
//!
//! Call order: `Download::new`, then any number of `add_peer`; then loop: drain
//! `poll_request(now)` and send each request; wait for an answer or `poll_timeout()`; report the
//! answer with `handle_*(now, ..)`; until `is_complete()`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::attachment::{chunk_count, chunk_span, open_chunk, AttachmentId, AttachmentKey};
use crate::codec;
use crate::error::{DecodeError, Rejection, UsageError};
use crate::identity::{NodeId, Timestamp};
use crate::message::MessageId;

/// Most chunks one request may ask for (4 MiB of plaintext).
pub const MAX_RANGE_CHUNKS: u32 = 64;
/// Largest encoded [`ChunkRequest`] (it is 85 bytes).
pub const MAX_REQUEST_LEN: usize = 128;
/// Largest encoded [`ChunkResponse`] (it is at most 25 bytes).
pub const MAX_RESPONSE_LEN: usize = 64;

/// "Send me chunks `first .. first + count` of `attachment`, which `message` names."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The attachment.
    pub attachment: AttachmentId,
    /// A message naming it, held by the requester: the holder checks that the requester may
    /// read it.
    pub message: MessageId,
    /// The first chunk wanted (from 0).
    pub first: u64,
    /// How many chunks, 1 to [`MAX_RANGE_CHUNKS`].
    pub count: u32,
}

impl ChunkRequest {
    /// The wire form: version byte, then the fields.
    pub fn to_bytes(&self) -> Result<Vec<u8>, UsageError> {
        self.check().map_err(|reason| UsageError::Invalid {
            field: "chunk request",
            reason: reason.to_owned(),
        })?;
        codec::encode(self)
    }

    /// Decodes a request: exactly, within [`MAX_REQUEST_LEN`], with `count` in range.
    pub fn decode(bytes: &[u8]) -> Result<ChunkRequest, DecodeError> {
        let request: ChunkRequest = codec::decode(bytes, MAX_REQUEST_LEN)?;
        request
            .check()
            .map_err(|reason| DecodeError::InvalidField {
                field: "count",
                reason,
            })?;
        Ok(request)
    }

    fn check(&self) -> Result<(), &'static str> {
        if self.count == 0 || self.count > MAX_RANGE_CHUNKS {
            return Err("a request asks for 1 to 64 chunks");
        }
        if self.first.checked_add(u64::from(self.count)).is_none() {
            return Err("the range runs past the last chunk index");
        }
        Ok(())
    }
}

/// The holder's answer to a [`ChunkRequest`]. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkResponse {
    /// The ciphertext of chunks `first .. first + count` follows on the stream, exactly
    /// [`range_len`] bytes. `count` is at least 1 and at most what was asked; `total` is the
    /// length of the whole ciphertext.
    Chunks {
        /// The first chunk sent: the one asked for.
        first: u64,
        /// How many follow.
        count: u32,
        /// The length of the attachment's whole ciphertext.
        total: u64,
    },
    /// The holder may serve the attachment but lacks the first chunk asked for (it may be
    /// fetching it): ask again later.
    Missing,
    /// Nothing of it is served to the requester here: the holder does not hold the message or
    /// the attachment, or the requester may not have them.
    Unavailable,
}

impl ChunkResponse {
    /// The wire form: version byte, then the variant.
    pub fn to_bytes(&self) -> Result<Vec<u8>, UsageError> {
        codec::encode(self)
    }

    /// Decodes a response exactly, within [`MAX_RESPONSE_LEN`].
    pub fn decode(bytes: &[u8]) -> Result<ChunkResponse, DecodeError> {
        let response: ChunkResponse = codec::decode(bytes, MAX_RESPONSE_LEN)?;
        if let ChunkResponse::Chunks { count, .. } = response {
            if count == 0 || count > MAX_RANGE_CHUNKS {
                return Err(DecodeError::InvalidField {
                    field: "count",
                    reason: "a response carries 1 to 64 chunks",
                });
            }
        }
        Ok(response)
    }
}

/// The plaintext size of an attachment whose ciphertext is `total` bytes long, if `total` is
/// the length of a ciphertext at all.
pub fn plain_size(total: u64) -> Option<u64> {
    let per_chunk = (crate::attachment::CHUNK_LEN + crate::attachment::TAG_LEN) as u64;
    let chunks = total.div_ceil(per_chunk).max(1);
    let size = total.checked_sub(chunks * crate::attachment::TAG_LEN as u64)?;
    (crate::attachment::ciphertext_len(size) == total).then_some(size)
}

/// Bytes of ciphertext in chunks `first .. first + count` of an attachment of `size` plaintext
/// bytes; `None` if the range runs past the last chunk.
pub fn range_len(size: u64, first: u64, count: u32) -> Option<u64> {
    if count == 0 {
        return Some(0);
    }
    let last = first.checked_add(u64::from(count) - 1)?;
    let from = chunk_span(size, first)?;
    let to = chunk_span(size, last)?;
    Some(to.cipher_offset + to.cipher_len - from.cipher_offset)
}

/// Checks that `cipher` is exactly chunks `first ..` of the attachment of `size` plaintext
/// bytes sealed with `key`, each chunk authenticated at its index with its last-chunk flag.
/// Returns how many chunks it holds.
pub fn check_range(
    key: &AttachmentKey,
    size: u64,
    first: u64,
    cipher: &[u8],
) -> Result<u32, Rejection> {
    let mut at = 0usize;
    let mut index = first;
    let mut count = 0u32;
    while at < cipher.len() {
        let span = chunk_span(size, index).ok_or(Rejection::CiphertextMismatch)?;
        let len = usize::try_from(span.cipher_len).map_err(|_| Rejection::CiphertextMismatch)?;
        let chunk = cipher
            .get(at..at + len)
            .ok_or(Rejection::CiphertextMismatch)?;
        open_chunk(key, index, span.last, chunk)?;
        at += len;
        index += 1;
        count += 1;
    }
    if count == 0 {
        return Err(Rejection::CiphertextMismatch);
    }
    Ok(count)
}

/// Which chunks of an attachment are held: one bit per chunk, chunk `i` in bit `7 - i % 8` of
/// byte `i / 8` (the form kept beside a partial file).
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkSet {
    count: u64,
    held: u64,
    bits: Vec<u8>,
}

impl std::fmt::Debug for ChunkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkSet({} of {})", self.held, self.count)
    }
}

impl ChunkSet {
    /// No chunk of `count` held.
    pub fn empty(count: u64) -> ChunkSet {
        ChunkSet {
            count,
            held: 0,
            bits: vec![0; bitmap_len(count)],
        }
    }

    /// Every chunk of `count` held.
    pub fn full(count: u64) -> ChunkSet {
        let mut set = ChunkSet::empty(count);
        for i in 0..count {
            set.insert(i);
        }
        set
    }

    /// A set read back from its bytes; they must be exactly as long as `count` needs, with the
    /// bits past `count` clear.
    pub fn from_bytes(count: u64, bytes: &[u8]) -> Result<ChunkSet, DecodeError> {
        if bytes.len() != bitmap_len(count) {
            return Err(DecodeError::InvalidField {
                field: "chunk set",
                reason: "length does not match the number of chunks",
            });
        }
        let mut set = ChunkSet {
            count,
            held: 0,
            bits: bytes.to_vec(),
        };
        let spare = (set.bits.len() as u64) * 8 - count;
        if spare > 0 {
            let mask = (1u16 << spare) as u8 - 1;
            if set.bits.last().is_some_and(|b| b & mask != 0) {
                return Err(DecodeError::InvalidField {
                    field: "chunk set",
                    reason: "bits set past the last chunk",
                });
            }
        }
        set.held = set.bits.iter().map(|b| u64::from(b.count_ones())).sum();
        Ok(set)
    }

    /// The bytes (see the type's documentation).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bits
    }

    /// The number of chunks of the attachment.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The number of chunks held.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// Whether every chunk is held.
    pub fn is_complete(&self) -> bool {
        self.held == self.count
    }

    /// Whether chunk `index` is held.
    pub fn contains(&self, index: u64) -> bool {
        index < self.count
            && self
                .bits
                .get((index / 8) as usize)
                .is_some_and(|b| b & (0x80 >> (index % 8)) != 0)
    }

    /// Marks chunk `index` held; returns whether it was not. Indices past the end are ignored.
    pub fn insert(&mut self, index: u64) -> bool {
        if index >= self.count || self.contains(index) {
            return false;
        }
        if let Some(b) = self.bits.get_mut((index / 8) as usize) {
            *b |= 0x80 >> (index % 8);
            self.held += 1;
        }
        true
    }

    /// How many chunks from `first` on are held without a gap, at most `max`.
    pub fn run_from(&self, first: u64, max: u32) -> u32 {
        let mut n = 0;
        while n < max && self.contains(first + u64::from(n)) {
            n += 1;
        }
        n
    }
}

fn bitmap_len(count: u64) -> usize {
    usize::try_from(count.div_ceil(8)).unwrap_or(usize::MAX)
}

/// Tunables of a [`Download`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadConfig {
    /// Chunks per request, 1 to [`MAX_RANGE_CHUNKS`].
    pub range_chunks: u32,
    /// Requests in flight to one peer at once.
    pub per_peer: usize,
    /// Requests in flight in all.
    pub in_flight: usize,
    /// First wait before asking a peer again after `Missing` or a failed stream, in ms;
    /// doubles on each further one, up to `retry_max_ms`.
    pub retry_min_ms: u64,
    /// Longest wait, in ms; also the wait after `Unavailable`.
    pub retry_max_ms: u64,
}

impl Default for DownloadConfig {
    fn default() -> Self {
        DownloadConfig {
            range_chunks: 16,
            per_peer: 4,
            in_flight: 8,
            retry_min_ms: 200,
            retry_max_ms: 5_000,
        }
    }
}

/// A request the node should send, to `peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Whom to ask.
    pub peer: NodeId,
    /// What to ask.
    pub request: ChunkRequest,
}

/// One peer that may serve the attachment.
#[derive(Debug, Clone, Copy, Default)]
struct Source {
    /// Order of preference (lower first): the order peers were added in.
    rank: u64,
    in_flight: usize,
    /// Not asked before this time.
    wait_until: Option<Timestamp>,
    /// The current retry wait, in ms (0: none yet).
    backoff_ms: u64,
}

/// The plan of one attachment download; see the module documentation.
#[derive(Debug)]
pub struct Download {
    attachment: AttachmentId,
    message: MessageId,
    size: u64,
    held: ChunkSet,
    /// Ranges asked and not yet answered: first chunk -> (peer, count).
    asked: BTreeMap<u64, (NodeId, u32)>,
    sources: BTreeMap<NodeId, Source>,
    next_rank: u64,
    config: DownloadConfig,
}

impl Download {
    /// A download of `attachment` (of `size` plaintext bytes), named by `message`, of which the
    /// chunks in `held` are already stored.
    pub fn new(
        attachment: AttachmentId,
        message: MessageId,
        size: u64,
        held: ChunkSet,
        config: DownloadConfig,
    ) -> Result<Download, UsageError> {
        if held.count() != chunk_count(size) {
            return Err(UsageError::Invalid {
                field: "held",
                reason: format!(
                    "{} chunks held for an attachment of {} chunks",
                    held.count(),
                    chunk_count(size)
                ),
            });
        }
        if config.range_chunks == 0
            || config.range_chunks > MAX_RANGE_CHUNKS
            || config.per_peer == 0
            || config.in_flight == 0
        {
            return Err(UsageError::Invalid {
                field: "download config",
                reason: "range_chunks 1 to 64, per_peer and in_flight at least 1".into(),
            });
        }
        Ok(Download {
            attachment,
            message,
            size,
            held,
            asked: BTreeMap::new(),
            sources: BTreeMap::new(),
            next_rank: 0,
            config,
        })
    }

    /// The attachment.
    pub fn attachment(&self) -> AttachmentId {
        self.attachment
    }

    /// Its plaintext size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunks held.
    pub fn held(&self) -> &ChunkSet {
        &self.held
    }

    /// Whether every chunk is held.
    pub fn is_complete(&self) -> bool {
        self.held.is_complete()
    }

    /// Whether `peer` may be asked (it was added and not removed).
    pub fn has_peer(&self, peer: &NodeId) -> bool {
        self.sources.contains_key(peer)
    }

    /// Whether no peer may be asked.
    pub fn has_no_peers(&self) -> bool {
        self.sources.is_empty()
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.asked.len()
    }

    /// `peer` may serve the attachment; peers added first are asked first. Adding a peer
    /// again changes nothing.
    pub fn add_peer(&mut self, peer: NodeId) {
        if self.sources.contains_key(&peer) {
            return;
        }
        let rank = self.next_rank;
        self.next_rank += 1;
        self.sources.insert(
            peer,
            Source {
                rank,
                ..Source::default()
            },
        );
    }

    /// `peer` is gone (disconnected): what was asked of it is asked again elsewhere.
    pub fn remove_peer(&mut self, peer: &NodeId) {
        self.sources.remove(peer);
        self.asked.retain(|_, (p, _)| p != peer);
    }

    /// The next request to send, if any: the first range of chunks neither held nor asked,
    /// to the preferred peer with room that is not waiting.
    pub fn poll_request(&mut self, now: Timestamp) -> Option<Ask> {
        if self.asked.len() >= self.config.in_flight || self.held.is_complete() {
            return None;
        }
        let (first, count) = self.next_range()?;
        let peer = self
            .sources
            .iter()
            .filter(|(_, s)| {
                s.in_flight < self.config.per_peer && s.wait_until.is_none_or(|t| t <= now)
            })
            .min_by_key(|(_, s)| (s.in_flight, s.rank))
            .map(|(p, _)| *p)?;
        if let Some(s) = self.sources.get_mut(&peer) {
            s.in_flight += 1;
            s.wait_until = None;
        }
        self.asked.insert(first, (peer, count));
        Some(Ask {
            peer,
            request: ChunkRequest {
                attachment: self.attachment,
                message: self.message,
                first,
                count,
            },
        })
    }

    /// The first run of chunks neither held nor asked, at most `range_chunks` long.
    fn next_range(&self) -> Option<(u64, u32)> {
        let total = self.held.count();
        let mut i = 0;
        while i < total {
            if let Some((_, count)) = self.asked.get(&i) {
                i += u64::from(*count);
                continue;
            }
            if self.held.contains(i) {
                i += 1;
                continue;
            }
            let mut n = 1u32;
            while n < self.config.range_chunks {
                let next = i + u64::from(n);
                if next >= total || self.held.contains(next) || self.asked.contains_key(&next) {
                    break;
                }
                n += 1;
            }
            return Some((i, n));
        }
        None
    }

    /// When to call [`Download::poll_request`] again although no answer came: the earliest
    /// time a waiting peer may be asked, if work is left and no peer may be asked now.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        if self.held.is_complete() || self.next_range().is_none() {
            return None;
        }
        self.sources.values().filter_map(|s| s.wait_until).min()
    }

    /// `peer` sent `count` chunks from `first` (checked with [`check_range`]) and they are
    /// durably stored. Chunks asked in that request but not sent are asked again.
    pub fn handle_stored(&mut self, peer: &NodeId, first: u64, count: u32) {
        for i in first..first.saturating_add(u64::from(count)) {
            self.held.insert(i);
        }
        self.answered(peer, first);
        if let Some(s) = self.sources.get_mut(peer) {
            s.backoff_ms = 0;
        }
    }

    /// `peer` lacks chunk `first` for now: ask it again after a wait that grows while it
    /// keeps lacking.
    pub fn handle_missing(&mut self, now: Timestamp, peer: &NodeId, first: u64) {
        self.answered(peer, first);
        self.back_off(now, peer, false);
    }

    /// `peer` serves nothing of the attachment (it lacks the message, or refuses): ask it
    /// again only after the longest wait; it may receive the message later.
    pub fn handle_unavailable(&mut self, now: Timestamp, peer: &NodeId, first: u64) {
        self.answered(peer, first);
        self.back_off(now, peer, true);
    }

    /// The request for `first` to `peer` failed: the stream broke, or what came was not the
    /// attachment's chunks (the node logs which). Asked again after a wait.
    pub fn handle_failed(&mut self, now: Timestamp, peer: &NodeId, first: u64) {
        self.answered(peer, first);
        self.back_off(now, peer, false);
    }

    fn answered(&mut self, peer: &NodeId, first: u64) {
        if self.asked.get(&first).is_some_and(|(p, _)| p == peer) {
            self.asked.remove(&first);
            if let Some(s) = self.sources.get_mut(peer) {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
    }

    fn back_off(&mut self, now: Timestamp, peer: &NodeId, longest: bool) {
        let (min, max) = (self.config.retry_min_ms, self.config.retry_max_ms);
        if let Some(s) = self.sources.get_mut(peer) {
            s.backoff_ms = if longest {
                max
            } else if s.backoff_ms == 0 {
                min
            } else {
                s.backoff_ms.saturating_mul(2).min(max)
            };
            s.wait_until = Some(now.plus_millis(s.backoff_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attachment::{seal_all, CHUNK_LEN, TAG_LEN};
    use crate::identity::IdentityKey;

    fn peer(n: u8) -> NodeId {
        IdentityKey::from_seed(&[n; 32]).node_id()
    }

    fn download(size: u64) -> Download {
        Download::new(
            AttachmentId::from([1; 32]),
            MessageId::from([2; 32]),
            size,
            ChunkSet::empty(chunk_count(size)),
            DownloadConfig {
                range_chunks: 4,
                per_peer: 2,
                in_flight: 3,
                retry_min_ms: 100,
                retry_max_ms: 1_000,
            },
        )
        .expect("valid")
    }

    #[test]
    fn request_and_response_round_trip() {
        let request = ChunkRequest {
            attachment: AttachmentId::from([3; 32]),
            message: MessageId::from([4; 32]),
            first: 7,
            count: 64,
        };
        let bytes = request.to_bytes().expect("encodes");
        assert_eq!(bytes.len(), 1 + 32 + 32 + 8 + 4);
        assert_eq!(ChunkRequest::decode(&bytes), Ok(request));
        for response in [
            ChunkResponse::Chunks {
                first: 7,
                count: 3,
                total: 99,
            },
            ChunkResponse::Missing,
            ChunkResponse::Unavailable,
        ] {
            let bytes = response.to_bytes().expect("encodes");
            assert!(bytes.len() <= MAX_RESPONSE_LEN);
            assert_eq!(ChunkResponse::decode(&bytes), Ok(response));
        }
    }

    #[test]
    fn bad_counts_do_not_decode() {
        let mut request = ChunkRequest {
            attachment: AttachmentId::from([3; 32]),
            message: MessageId::from([4; 32]),
            first: 0,
            count: 1,
        };
        let mut bytes = request.to_bytes().expect("encodes");
        let at = bytes.len() - 4;
        bytes[at..].copy_from_slice(&0u32.to_be_bytes());
        assert!(ChunkRequest::decode(&bytes).is_err());
        bytes[at..].copy_from_slice(&65u32.to_be_bytes());
        assert!(ChunkRequest::decode(&bytes).is_err());
        request.count = 0;
        assert!(request.to_bytes().is_err());
        request.count = 2;
        request.first = u64::MAX;
        assert!(request.to_bytes().is_err());
        let mut response = ChunkResponse::Chunks {
            first: 0,
            count: 1,
            total: 17,
        }
        .to_bytes()
        .expect("encodes");
        let at = 1 + 4 + 8;
        response[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
        assert!(ChunkResponse::decode(&response).is_err());
        assert!(ChunkResponse::decode(&[1, 0, 0, 0, 3]).is_err());
        assert!(ChunkResponse::decode(&[1, 0, 0, 0, 1, 0]).is_err());
    }

    #[test]
    fn sizes_and_ranges() {
        let chunk = (CHUNK_LEN + TAG_LEN) as u64;
        for size in [
            0,
            1,
            CHUNK_LEN as u64,
            CHUNK_LEN as u64 + 1,
            5 * CHUNK_LEN as u64,
        ] {
            let total = crate::attachment::ciphertext_len(size);
            assert_eq!(plain_size(total), Some(size), "{size}");
        }
        assert_eq!(plain_size(15), None);
        assert_eq!(plain_size(chunk + 10), None);
        let size = 2 * CHUNK_LEN as u64 + 10;
        assert_eq!(range_len(size, 0, 3), Some(2 * chunk + 26));
        assert_eq!(range_len(size, 2, 1), Some(26));
        assert_eq!(range_len(size, 2, 2), None);
        assert_eq!(range_len(size, u64::MAX, 2), None);
    }

    #[test]
    fn ranges_are_checked_chunk_by_chunk() {
        let key = AttachmentKey::from_bytes([5; 32]);
        let plain: Vec<u8> = (0..3 * CHUNK_LEN + 9).map(|i| i as u8).collect();
        let size = plain.len() as u64;
        let (_, cipher) = seal_all(&key, &plain).expect("seals");
        let chunk = CHUNK_LEN + TAG_LEN;
        assert_eq!(check_range(&key, size, 0, &cipher), Ok(4));
        assert_eq!(check_range(&key, size, 1, &cipher[chunk..3 * chunk]), Ok(2));
        assert_eq!(check_range(&key, size, 3, &cipher[3 * chunk..]), Ok(1));
        // The right bytes at the wrong index, a cut chunk, a flipped bit, nothing.
        assert!(check_range(&key, size, 2, &cipher[chunk..2 * chunk]).is_err());
        assert!(check_range(&key, size, 0, &cipher[..chunk - 1]).is_err());
        let mut flipped = cipher[..chunk].to_vec();
        flipped[9] ^= 1;
        assert!(check_range(&key, size, 0, &flipped).is_err());
        assert!(check_range(&key, size, 0, &[]).is_err());
        let other = AttachmentKey::from_bytes([6; 32]);
        assert!(check_range(&other, size, 0, &cipher[..chunk]).is_err());
    }

    #[test]
    fn chunk_sets_read_back_exactly() {
        let mut set = ChunkSet::empty(10);
        assert!(set.insert(0));
        assert!(set.insert(9));
        assert!(!set.insert(9));
        assert!(!set.insert(10));
        assert_eq!(set.held(), 2);
        let again = ChunkSet::from_bytes(10, set.as_bytes()).expect("reads back");
        assert_eq!(again, set);
        assert!(ChunkSet::from_bytes(10, &[0]).is_err());
        assert!(ChunkSet::from_bytes(10, &[0, 0x20]).is_err());
        assert!(ChunkSet::full(10).is_complete());
        assert_eq!(ChunkSet::full(10).run_from(3, 64), 7);
        assert_eq!(set.run_from(0, 64), 1);
    }

    #[test]
    fn a_download_spreads_ranges_and_finishes() {
        let size = 10 * CHUNK_LEN as u64;
        let mut d = download(size);
        let (a, b) = (peer(1), peer(2));
        let now = Timestamp(1_000);
        assert_eq!(d.poll_request(now), None, "no peer yet");
        d.add_peer(a);
        d.add_peer(b);
        let asks: Vec<Ask> = std::iter::from_fn(|| d.poll_request(now)).collect();
        assert_eq!(asks.len(), 3, "in_flight bounds the requests");
        assert_eq!(
            asks.iter()
                .map(|x| (x.peer, x.request.first, x.request.count))
                .collect::<Vec<_>>(),
            vec![(a, 0, 4), (b, 4, 4), (a, 8, 2)]
        );
        // a sent only 2 of its first 4 chunks; the other 2 are asked again.
        d.handle_stored(&a, 0, 2);
        let next = d.poll_request(now).expect("more to ask");
        assert_eq!((next.request.first, next.request.count), (2, 2));
        d.handle_stored(&b, 4, 4);
        d.handle_stored(&a, 8, 2);
        d.handle_stored(&next.peer, 2, 2);
        assert!(d.is_complete());
        assert_eq!(d.poll_request(now), None);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn missing_and_unavailable_back_off() {
        let size = 2 * CHUNK_LEN as u64;
        let mut d = download(size);
        let a = peer(1);
        d.add_peer(a);
        let t = Timestamp(1_000);
        let ask = d.poll_request(t).expect("asks");
        d.handle_missing(t, &a, ask.request.first);
        assert_eq!(d.poll_request(t), None, "waits");
        assert_eq!(d.poll_timeout(), Some(Timestamp(1_100)));
        let ask = d.poll_request(Timestamp(1_100)).expect("asks again");
        d.handle_missing(Timestamp(1_100), &a, ask.request.first);
        assert_eq!(d.poll_timeout(), Some(Timestamp(1_300)), "doubled");
        let ask = d.poll_request(Timestamp(1_300)).expect("asks again");
        d.handle_unavailable(Timestamp(1_300), &a, ask.request.first);
        assert_eq!(d.poll_timeout(), Some(Timestamp(2_300)), "the longest wait");
        // A failed stream and a removed peer.
        let ask = d.poll_request(Timestamp(2_300)).expect("asks again");
        d.remove_peer(&a);
        assert_eq!(d.in_flight(), 0);
        d.handle_failed(Timestamp(2_300), &a, ask.request.first);
        assert!(d.has_no_peers());
        assert_eq!(d.poll_request(Timestamp(9_000)), None);
        assert!(!d.is_complete());
    }

    #[test]
    fn a_resumed_download_asks_only_what_it_lacks() {
        let size = 6 * CHUNK_LEN as u64;
        let mut held = ChunkSet::empty(6);
        for i in [0, 1, 2, 4] {
            held.insert(i);
        }
        let mut d = Download::new(
            AttachmentId::from([1; 32]),
            MessageId::from([2; 32]),
            size,
            held,
            DownloadConfig::default(),
        )
        .expect("valid");
        d.add_peer(peer(1));
        let asks: Vec<(u64, u32)> = std::iter::from_fn(|| d.poll_request(Timestamp(0)))
            .map(|a| (a.request.first, a.request.count))
            .collect();
        assert_eq!(asks, vec![(3, 1), (5, 1)]);
        assert!(Download::new(
            AttachmentId::from([1; 32]),
            MessageId::from([2; 32]),
            size,
            ChunkSet::empty(5),
            DownloadConfig::default(),
        )
        .is_err());
    }
}
