//! Attachments: photos and documents of a message, encrypted apart from it and named by the
//! hash of their ciphertext.
//!
//! ```text
//! plaintext ──split into 64 KiB chunks──▶ ChaCha20-Poly1305(key, nonce = index ‖ last flag)
//!                                           │
//!          ciphertext = chunk 0 ‖ chunk 1 ‖ … ──BLAKE3-derive("liaison/v1/attachment-id")──▶ id
//! ```
//!
//! The author's node draws a fresh random key per attachment and puts it, with the id, size,
//! media type and file name, in an [`AttachmentRef`] inside the message's encrypted content:
//! exactly those who can open the message can open its attachments. The ciphertext travels and
//! is stored on its own, once per node however many messages name it; anyone can check that
//! bytes are the ciphertext of an id, only holders of the key can read them. Chunks are
//! numbered and the last one is marked, so chunks cannot be reordered, dropped or cut off
//! without failing authentication; each chunk opens on its own, so a range of the plaintext
//! is read without decrypting the rest.

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::ChaCha20Poly1305;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{Rejection, UsageError};
use crate::identity::hex_id;

hex_id!(
    /// An attachment's id: the BLAKE3 hash of its ciphertext. Text form: 64 hex characters.
    AttachmentId,
    32,
    "attachment id"
);

/// The largest attachment, in plaintext bytes (50 MiB).
pub const MAX_ATTACHMENT_LEN: u64 = 50 * 1024 * 1024;
/// Plaintext bytes per chunk; every chunk but the last holds exactly this many.
pub const CHUNK_LEN: usize = 64 * 1024;
/// Bytes the AEAD adds to each chunk.
pub const TAG_LEN: usize = 16;
/// Longest file name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Longest media type, in bytes.
pub const MAX_MEDIA_TYPE_LEN: usize = 127;
/// BLAKE3 key-derivation context of attachment ids.
pub const ATTACHMENT_ID_CONTEXT: &str = "liaison/v1/attachment-id";
/// The associated data of every chunk.
pub const CHUNK_AAD: &[u8] = b"liaison/v1/attachment";

/// The secret key of one attachment. Zeroized on drop; compared in constant time; never
/// printed.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct AttachmentKey([u8; 32]);

impl AttachmentKey {
    /// A fresh random key.
    pub fn generate<R: rand_core::CryptoRng + rand_core::RngCore>(rng: &mut R) -> AttachmentKey {
        let mut k = [0u8; 32];
        rng.fill_bytes(&mut k);
        AttachmentKey(k)
    }

    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> AttachmentKey {
        AttachmentKey(bytes)
    }

    /// The raw bytes (secret).
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for AttachmentKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for AttachmentKey {}

impl std::fmt::Debug for AttachmentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AttachmentKey(..)")
    }
}

/// What a message says of one of its attachments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentRef {
    /// The ciphertext's hash.
    pub id: AttachmentId,
    /// The key that opens it.
    pub key: AttachmentKey,
    /// Plaintext length in bytes, at most [`MAX_ATTACHMENT_LEN`].
    pub size: u64,
    /// Media type, as found from the content by the author's node (`image/jpeg`).
    pub media_type: String,
    /// The file name (no path).
    pub name: String,
}

impl AttachmentRef {
    /// Why this reference is out of its limits, if it is.
    pub fn check(&self) -> Result<(), String> {
        if self.size > MAX_ATTACHMENT_LEN {
            return Err(format!(
                "attachment {} is {} bytes, over the limit of {MAX_ATTACHMENT_LEN}",
                self.name, self.size
            ));
        }
        check_media_type(&self.media_type)?;
        check_name(&self.name)
    }

    /// Length of its ciphertext.
    pub fn ciphertext_len(&self) -> u64 {
        ciphertext_len(self.size)
    }
}

/// Why `s` is not a media type `type/subtype` of at most [`MAX_MEDIA_TYPE_LEN`] bytes, if it
/// is not.
pub fn check_media_type(s: &str) -> Result<(), String> {
    let ok = s.len() <= MAX_MEDIA_TYPE_LEN
        && matches!(s.split_once('/'), Some((t, st)) if !t.is_empty() && !st.is_empty())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'/' | b'.' | b'+' | b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("{s:?} is not a media type (image/jpeg)"))
    }
}

/// Why `s` is not a file name (1 to [`MAX_NAME_LEN`] bytes, no path separators or control
/// characters, not `.` or `..`), if it is not.
pub fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > MAX_NAME_LEN
        || s == "."
        || s == ".."
        || s.chars().any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(format!(
            "{s:?} is not a file name (1 to {MAX_NAME_LEN} bytes, no '/', '\\' or control characters)"
        ));
    }
    Ok(())
}

/// The number of chunks of a plaintext of `size` bytes (at least one: an empty file is one
/// empty last chunk).
pub fn chunk_count(size: u64) -> u64 {
    size.div_ceil(CHUNK_LEN as u64).max(1)
}

/// Length of the ciphertext of a plaintext of `size` bytes.
pub fn ciphertext_len(size: u64) -> u64 {
    size + chunk_count(size) * TAG_LEN as u64
}

/// Where chunk `index` of a plaintext of `size` bytes lies: (offset in the ciphertext, its
/// ciphertext length, offset in the plaintext, its plaintext length). `None` past the end.
pub fn chunk_span(size: u64, index: u64) -> Option<ChunkSpan> {
    let count = chunk_count(size);
    if index >= count {
        return None;
    }
    let plain_offset = index * CHUNK_LEN as u64;
    let plain_len = (size - plain_offset).min(CHUNK_LEN as u64);
    Some(ChunkSpan {
        index,
        last: index + 1 == count,
        cipher_offset: index * (CHUNK_LEN + TAG_LEN) as u64,
        cipher_len: plain_len + TAG_LEN as u64,
        plain_offset,
        plain_len,
    })
}

/// Where one chunk lies in the plaintext and the ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkSpan {
    /// Its index, from 0.
    pub index: u64,
    /// Whether it is the last chunk.
    pub last: bool,
    /// Its offset in the ciphertext.
    pub cipher_offset: u64,
    /// Its ciphertext length (plaintext and tag).
    pub cipher_len: u64,
    /// Its offset in the plaintext.
    pub plain_offset: u64,
    /// Its plaintext length.
    pub plain_len: u64,
}

fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Encrypts chunk `index` (the `last` one or not) of an attachment.
pub fn seal_chunk(
    key: &AttachmentKey,
    index: u64,
    last: bool,
    plain: &[u8],
) -> Result<Vec<u8>, UsageError> {
    if plain.len() > CHUNK_LEN || (!last && plain.len() != CHUNK_LEN) {
        return Err(UsageError::Invalid {
            field: "chunk",
            reason: format!("every chunk but the last holds exactly {CHUNK_LEN} bytes"),
        });
    }
    ChaCha20Poly1305::new(key.bytes().into())
        .encrypt(
            (&chunk_nonce(index, last)).into(),
            AeadPayload {
                msg: plain,
                aad: CHUNK_AAD,
            },
        )
        .map_err(|_| UsageError::Encode("attachment encryption failed".into()))
}

/// Decrypts chunk `index` (the `last` one or not) of an attachment.
pub fn open_chunk(
    key: &AttachmentKey,
    index: u64,
    last: bool,
    cipher: &[u8],
) -> Result<Vec<u8>, Rejection> {
    if cipher.len() < TAG_LEN || cipher.len() > CHUNK_LEN + TAG_LEN {
        return Err(Rejection::DecryptFailed);
    }
    ChaCha20Poly1305::new(key.bytes().into())
        .decrypt(
            (&chunk_nonce(index, last)).into(),
            AeadPayload {
                msg: cipher,
                aad: CHUNK_AAD,
            },
        )
        .map_err(|_| Rejection::DecryptFailed)
}

/// Computes an attachment's id from its ciphertext, fed in any number of pieces.
#[derive(Debug, Clone)]
pub struct IdHasher(blake3::Hasher);

impl Default for IdHasher {
    fn default() -> Self {
        IdHasher(blake3::Hasher::new_derive_key(ATTACHMENT_ID_CONTEXT))
    }
}

impl IdHasher {
    /// A hasher with nothing fed yet.
    pub fn new() -> IdHasher {
        IdHasher::default()
    }

    /// Feeds the next ciphertext bytes.
    pub fn update(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.update(bytes);
        self
    }

    /// The id of everything fed.
    pub fn finish(&self) -> AttachmentId {
        AttachmentId(*self.0.finalize().as_bytes())
    }
}

/// Encrypts a whole plaintext held in memory: its id and ciphertext. (Nodes stream large files
/// through [`seal_chunk`] and [`IdHasher`] instead.)
pub fn seal_all(key: &AttachmentKey, plain: &[u8]) -> Result<(AttachmentId, Vec<u8>), UsageError> {
    let size = plain.len() as u64;
    if size > MAX_ATTACHMENT_LEN {
        return Err(UsageError::Invalid {
            field: "attachment",
            reason: format!("{size} bytes exceed the limit of {MAX_ATTACHMENT_LEN}"),
        });
    }
    let mut out = Vec::with_capacity(ciphertext_len(size) as usize);
    let mut index = 0;
    while let Some(span) = chunk_span(size, index) {
        let from = span.plain_offset as usize;
        let to = from + span.plain_len as usize;
        out.extend_from_slice(&seal_chunk(key, index, span.last, &plain[from..to])?);
        index += 1;
    }
    let id = IdHasher::new().update(&out).finish();
    Ok((id, out))
}

/// Decrypts a whole ciphertext held in memory, checking that it is the one `reference` names.
pub fn open_all(reference: &AttachmentRef, cipher: &[u8]) -> Result<Vec<u8>, Rejection> {
    if cipher.len() as u64 != reference.ciphertext_len() {
        return Err(Rejection::CiphertextMismatch);
    }
    if IdHasher::new().update(cipher).finish() != reference.id {
        return Err(Rejection::CiphertextMismatch);
    }
    let mut out = Vec::with_capacity(reference.size as usize);
    let mut index = 0;
    while let Some(span) = chunk_span(reference.size, index) {
        let from = span.cipher_offset as usize;
        let to = from + span.cipher_len as usize;
        out.extend_from_slice(&open_chunk(
            &reference.key,
            index,
            span.last,
            &cipher[from..to],
        )?);
        index += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(key: &AttachmentKey, plain: &[u8]) -> (AttachmentRef, Vec<u8>) {
        let (id, cipher) = seal_all(key, plain).expect("seals");
        (
            AttachmentRef {
                id,
                key: key.clone(),
                size: plain.len() as u64,
                media_type: "application/octet-stream".into(),
                name: "x.bin".into(),
            },
            cipher,
        )
    }

    #[test]
    fn round_trip_at_chunk_boundaries() {
        let key = AttachmentKey::from_bytes([9; 32]);
        for len in [0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1, 3 * CHUNK_LEN] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (r, cipher) = reference(&key, &plain);
            assert_eq!(cipher.len() as u64, ciphertext_len(len as u64));
            assert_eq!(open_all(&r, &cipher).expect("opens"), plain, "{len}");
        }
    }

    #[test]
    fn truncation_and_reordering_fail() {
        let key = AttachmentKey::from_bytes([9; 32]);
        let plain = vec![7u8; 2 * CHUNK_LEN];
        let (r, cipher) = reference(&key, &plain);
        // Cut after the first chunk: the first chunk is not marked last.
        let first = &cipher[..CHUNK_LEN + TAG_LEN];
        assert!(open_chunk(&key, 0, true, first).is_err());
        // The second chunk at index 0.
        let second = &cipher[CHUNK_LEN + TAG_LEN..];
        assert!(open_chunk(&key, 0, false, second).is_err());
        let mut flipped = cipher.clone();
        flipped[5] ^= 1;
        assert_eq!(open_all(&r, &flipped), Err(Rejection::CiphertextMismatch));
    }
}
