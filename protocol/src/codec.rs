//! The one bounded codec every wire object goes through.
//!
//! Every top-level object is encoded as one version byte ([`WIRE_VERSION`]) followed by its
//! bincode 2 encoding in one fixed configuration: fixed-width big-endian integers, lengths as
//! `u64`, and a hard size limit. Decoding checks the version byte, never reads or allocates past
//! the limit, and rejects trailing bytes, so a given value has exactly one encoding.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::DecodeError;

/// The version byte that starts every encoded wire object.
pub const WIRE_VERSION: u8 = 1;

/// The largest frame two nodes exchange, in bytes (length prefix not counted).
pub const MAX_FRAME_LEN: usize = 4 * 1024 * 1024;

/// The largest message envelope, in bytes.
pub const MAX_ENVELOPE_LEN: usize = 600 * 1024;

/// The largest decrypted message content (the encoded [`crate::message::Content`]), in bytes.
pub const MAX_CONTENT_LEN: usize = 512 * 1024;

/// The largest group control event, in bytes.
pub const MAX_CONTROL_LEN: usize = 256 * 1024;

/// The largest encoded node descriptor, in bytes.
pub const MAX_DESCRIPTOR_LEN: usize = 4 * 1024;

/// The largest encoded delivery receipt, in bytes (room for [`crate::receipt::MAX_RECEIPT_MESSAGES`] ids).
pub const MAX_RECEIPT_LEN: usize = 33 * 1024;

/// The largest encoded federation roster, in bytes.
pub const MAX_ROSTER_LEN: usize = 2 * 1024 * 1024;

/// The largest encoded key rotation statement, in bytes.
pub const MAX_ROTATION_LEN: usize = 512;

type Config = bincode::config::Configuration<
    bincode::config::BigEndian,
    bincode::config::Fixint,
    bincode::config::Limit<MAX_FRAME_LEN>,
>;

const CONFIG: Config = bincode::config::standard()
    .with_big_endian()
    .with_fixed_int_encoding()
    .with_limit::<MAX_FRAME_LEN>();

/// Encodes `value` as the version byte followed by its bincode encoding.
///
/// Encoding a wire type cannot fail for values built through this crate's constructors; an
/// error here means a value exceeds [`MAX_FRAME_LEN`].
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, crate::error::UsageError> {
    let mut out = Vec::with_capacity(64);
    out.push(WIRE_VERSION);
    bincode::serde::encode_into_std_write(value, &mut out, CONFIG)
        .map_err(|e| crate::error::UsageError::Encode(e.to_string()))?;
    Ok(out)
}

/// Decodes one object of type `T` from exactly `bytes`, which must be at most `max` long.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    decode_bare(after_version(bytes, max)?, max)
}

/// Checks the size limit and the version byte of an encoded object; returns what follows it.
fn after_version(bytes: &[u8], max: usize) -> Result<&[u8], DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if version != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    Ok(rest)
}

/// Decodes one object from exactly `bytes`, which carry no version byte: the form of a signed
/// body embedded in an outer object whose version byte was already checked.
pub(crate) fn decode_bare<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice::<T, _>(bytes, CONFIG)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(DecodeError::TrailingBytes(bytes.len() - used));
    }
    Ok(value)
}

/// Decodes one object of type `T` from the start of `bytes` (version byte first), ignoring
/// whatever follows it: for reading the leading fields of an object without decoding the rest.
pub(crate) fn decode_prefix<T: DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<T, DecodeError> {
    bincode::serde::decode_from_slice::<T, _>(after_version(bytes, max)?, CONFIG)
        .map(|(value, _)| value)
        .map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Encodes `value` without the version byte: the form used for the inputs of signatures and
/// hashes over parts of an object (see WIRE.md).
pub(crate) fn encode_bare<T: Serialize>(value: &T) -> Result<Vec<u8>, crate::error::UsageError> {
    bincode::serde::encode_to_vec(value, CONFIG)
        .map_err(|e| crate::error::UsageError::Encode(e.to_string()))
}

/// serde helpers for fixed-size byte arrays longer than serde's built-in 32.
pub(crate) mod bytes64 {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::ser::SerializeTuple;
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8; 64], s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(64)?;
        for b in v {
            t.serialize_element(b)?;
        }
        t.end()
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 64], D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = [u8; 64];
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 64], A::Error> {
                let mut out = [0u8; 64];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| A::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        d.deserialize_tuple(64, V)
    }
}

/// serde helpers that encode a `Vec<u8>` as one length-prefixed byte string.
///
/// The encoding is the same as the default for `Vec<u8>` (a `u64` length, then the bytes); this
/// only makes it fast.
pub(crate) mod bytes {
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }

    /// The same for a list of byte strings.
    pub(crate) mod list {
        use serde::de::{SeqAccess, Visitor};
        use serde::ser::SerializeSeq;
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Serialize, Deserialize)]
        struct B(#[serde(with = "super")] Vec<u8>);

        #[derive(Serialize)]
        struct R<'a>(#[serde(with = "super")] &'a Vec<u8>);

        pub(crate) fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(v.len()))?;
            for item in v {
                seq.serialize_element(&R(item))?;
            }
            seq.end()
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Vec<Vec<u8>>, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Vec<Vec<u8>>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a list of byte strings")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(256));
                    while let Some(B(b)) = seq.next_element()? {
                        out.push(b);
                    }
                    Ok(out)
                }
            }
            d.deserialize_seq(V)
        }
    }
}
