//! Message envelopes: seal (encrypt once, commit to the key, sign the header) and open (limits,
//! signature, the author's right to post, decryption, commitment).
//!
//! ```text
//! epoch key ──derive(nonce, group, epoch, author, seq)──▶ message key ──▶ ChaCha20-Poly1305
//!                                                          │                (AAD = header
//!                                                          └─▶ commitment    minus ct hash)
//! header (…, commitment, ciphertext hash) ──ed25519(author)──▶ signature
//! message id = BLAKE3-derive("liaison/v1/message-id", header bytes)
//! ```

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload as AeadPayload};
use chacha20poly1305::ChaCha20Poly1305;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::attachment::AttachmentRef;
use crate::codec::{self, MAX_CONTENT_LEN, MAX_ENVELOPE_LEN};
use crate::error::{Rejection, UsageError};
use crate::group::{GroupId, GroupState};
use crate::identity::{hex_id, IdentityKey, NodeId, Timestamp};
use crate::record::{FieldError, Readable, Record, MAX_ATTACHMENTS};

hex_id!(
    /// A message's id: the BLAKE3 hash of its signed header. Text form: 64 hex characters.
    MessageId,
    32,
    "message id"
);

/// The header format version carried inside every header.
pub const HEADER_VERSION: u8 = 1;
/// Domain-separation prefix of envelope header signatures.
pub const ENVELOPE_DOMAIN: &[u8] = b"liaison/v1/envelope\0";
/// BLAKE3 key-derivation context of message ids.
pub const MESSAGE_ID_CONTEXT: &str = "liaison/v1/message-id";
/// BLAKE3 key-derivation context of per-message keys.
pub const MESSAGE_KEY_CONTEXT: &str = "liaison/v1/message-key";
/// BLAKE3 key-derivation context of key commitments.
pub const COMMITMENT_CONTEXT: &str = "liaison/v1/key-commitment";
/// BLAKE3 key-derivation context of ciphertext hashes.
pub const CIPHERTEXT_CONTEXT: &str = "liaison/v1/ciphertext";

/// Longest officer name (of the author or a recipient), in bytes.
pub const MAX_OFFICER_LEN: usize = crate::fields::MAX_TEXT_LEN;
/// Longest subject, in bytes.
pub const MAX_SUBJECT_LEN: usize = 512;
/// Most named recipients of one message.
pub const MAX_RECIPIENTS: usize = 64;

/// The Traffic Light Protocol 2.0 handling code of a message. Variants are only ever appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Handling {
    /// TLP:CLEAR — no limit on disclosure.
    Clear,
    /// TLP:GREEN — the community, not public channels.
    Green,
    /// TLP:AMBER — the recipients' organisations and their clients, need to know.
    Amber,
    /// TLP:AMBER+STRICT — the recipients' organisations only.
    AmberStrict,
    /// TLP:RED — the named recipients only.
    Red,
}

impl fmt::Display for Handling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Handling::Clear => "clear",
            Handling::Green => "green",
            Handling::Amber => "amber",
            Handling::AmberStrict => "amber+strict",
            Handling::Red => "red",
        })
    }
}

impl std::str::FromStr for Handling {
    type Err = crate::error::ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().trim_start_matches("tlp:") {
            "clear" => Ok(Handling::Clear),
            "green" => Ok(Handling::Green),
            "amber" => Ok(Handling::Amber),
            "amber+strict" | "amber-strict" => Ok(Handling::AmberStrict),
            "red" => Ok(Handling::Red),
            _ => Err(crate::error::ParseError {
                what: "handling code",
                reason: "expected clear, green, amber, amber+strict or red",
            }),
        }
    }
}

/// Where a message sits: the `seq`-th message of `author` in `epoch` of `group`. One place
/// holds at most one message: an author that signs two messages for one place equivocates.
///
/// Ordered by group, author, epoch and seq, as the bytes of the ids and the numbers compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The group.
    pub group: GroupId,
    /// The author node.
    pub author: NodeId,
    /// The epoch the message was sealed in.
    pub epoch: u64,
    /// The author's sequence number in this group and epoch, from 1.
    pub seq: u64,
}

/// The signed header of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// [`HEADER_VERSION`].
    pub version: u8,
    /// The group.
    pub group: GroupId,
    /// The epoch whose key encrypts the body.
    pub epoch: u64,
    /// The author node.
    pub author: NodeId,
    /// The author's sequence number in this group and epoch, from 1, never reused.
    pub seq: u64,
    /// When the author made it.
    pub created_at: Timestamp,
    /// The TLP handling code.
    pub handling: Handling,
    /// When the content expires, if ever.
    pub expires_at: Option<Timestamp>,
    /// Random input to the per-message key.
    pub nonce: [u8; 24],
    /// Commitment to the per-message key.
    pub commitment: [u8; 32],
    /// BLAKE3 hash of the ciphertext. The last field: the AEAD's associated data is the
    /// encoded header without these 32 bytes.
    pub ciphertext_hash: [u8; 32],
}

impl Header {
    /// Where the message sits in its author's sequence.
    pub fn place(&self) -> Place {
        Place {
            group: self.group,
            author: self.author,
            epoch: self.epoch,
            seq: self.seq,
        }
    }
}

/// A message as it travels and is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The [`Header`], encoded without the version byte: the exact bytes signed.
    #[serde(with = "crate::codec::bytes")]
    pub header: Vec<u8>,
    /// ed25519 signature by the author over [`ENVELOPE_DOMAIN`] `||` header.
    #[serde(with = "crate::codec::bytes64")]
    pub signature: [u8; 64],
    /// The encrypted [`Content`].
    #[serde(with = "crate::codec::bytes")]
    pub ciphertext: Vec<u8>,
}

/// What a message says. Variants are only ever appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Free text: a note without attachments (variant 0, the only one before records).
    Text {
        /// The subject line.
        subject: String,
        /// The body.
        body: String,
    },
    /// A structured record and its attachments (variant 1); see [`crate::record`].
    Record(RecordData),
}

/// A record as it travels: its kind and schema version, its body, its attachments.
///
/// A receiver that knows the kind and version decodes the body exactly and validates it
/// ([`crate::record::read`]); one that does not keeps the message and shows it as a record it
/// cannot read yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordData {
    /// The kind's code ([`crate::record::RecordKind::code`]); codes are only ever appended.
    pub kind: u16,
    /// The schema version the body is written in (from 1).
    pub schema: u16,
    /// The record's bare bincode encoding (no version byte).
    #[serde(with = "crate::codec::bytes")]
    pub body: Vec<u8>,
    /// The attachments (at most [`crate::record::MAX_ATTACHMENTS`]).
    pub attachments: Vec<AttachmentRef>,
}

impl Payload {
    /// The attachments it names.
    pub fn attachments(&self) -> &[AttachmentRef] {
        match self {
            Payload::Text { .. } => &[],
            Payload::Record(data) => &data.attachments,
        }
    }
}

/// A named recipient of a message: an officer's account on one node, named by node id so that
/// no other node can claim it by taking the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Recipient {
    /// The officer's account name on that node.
    pub officer: String,
    /// The node.
    pub node: NodeId,
}

/// The decrypted content of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    /// The posting officer's name at the author node.
    pub officer: String,
    /// Named recipients, for TLP:RED (WIRE.md §5: who sees what).
    pub recipients: Vec<Recipient>,
    /// The message this replies to.
    pub reply_to: Option<MessageId>,
    /// What it says.
    pub payload: Payload,
}

impl Content {
    /// Checks the limits of every field and, for a record of a kind and schema this build
    /// knows, the record itself ([`crate::record::read`]): what an author's node checks before
    /// sealing and every receiver after opening.
    pub fn check(&self) -> Result<(), Vec<FieldError>> {
        self.check_limits()
            .map_err(|reason| vec![FieldError::new("", reason)])?;
        if let Payload::Record(data) = &self.payload {
            if data.attachments.len() > MAX_ATTACHMENTS {
                return Err(vec![FieldError::new(
                    "/attachments",
                    format!("at most {MAX_ATTACHMENTS} attachments"),
                )]);
            }
            for (i, a) in data.attachments.iter().enumerate() {
                a.check()
                    .map_err(|reason| vec![FieldError::new(format!("/attachments/{i}"), reason)])?;
            }
        }
        let readable = crate::record::read(&self.payload)?;
        if let Readable::Known(Record::Feedback(_)) = readable {
            if self.reply_to.is_none() {
                return Err(vec![FieldError::new(
                    "/reply_to",
                    "feedback answers an alert or a request: it needs reply_to",
                )]);
            }
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), String> {
        crate::fields::check_officer_name(&self.officer).map_err(|e| e.0.to_owned())?;
        if self.recipients.len() > MAX_RECIPIENTS {
            return Err(format!("more than {MAX_RECIPIENTS} recipients"));
        }
        for r in &self.recipients {
            crate::fields::check_officer_name(&r.officer).map_err(|e| format!("recipient: {e}"))?;
        }
        match &self.payload {
            Payload::Text { subject, .. } if subject.len() > MAX_SUBJECT_LEN => {
                Err(format!("subject over {MAX_SUBJECT_LEN} bytes"))
            }
            // Control characters would reach officers' terminals as escape sequences: a
            // subject that repaints its line, a TLP label rewritten.
            Payload::Text { subject, .. } if subject.chars().any(char::is_control) => {
                Err("subject holds a control character".to_owned())
            }
            Payload::Text { body, .. }
                if body
                    .chars()
                    .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) =>
            {
                Err(
                    "text holds a control character other than line feed, carriage return and tab"
                        .to_owned(),
                )
            }
            Payload::Text { .. } | Payload::Record(_) => Ok(()),
        }
    }
}

/// A sealed message, ready to store and send.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// Its id.
    pub id: MessageId,
    /// The parsed header.
    pub header: Header,
    /// The encoded envelope.
    pub bytes: Vec<u8>,
}

/// An envelope whose signature and author have been checked against a group state.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its id.
    pub id: MessageId,
    /// The parsed header.
    pub header: Header,
    /// The envelope.
    pub envelope: Envelope,
}

/// What the author asks to post.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    /// The author's sequence number in the group's current epoch (from 1).
    pub seq: u64,
    /// Creation time.
    pub now: Timestamp,
    /// Handling code.
    pub handling: Handling,
    /// Expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// The content.
    pub content: &'a Content,
}

fn derive(context: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context);
    for p in parts {
        h.update(p);
    }
    *h.finalize().as_bytes()
}

/// The message id of a header given as its exact signed bytes.
pub fn message_id(header_bytes: &[u8]) -> MessageId {
    MessageId(derive(MESSAGE_ID_CONTEXT, &[header_bytes]))
}

fn message_key(key: &[u8; 32], h: &Header) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(derive(
        MESSAGE_KEY_CONTEXT,
        &[
            key,
            &h.nonce,
            h.group.as_bytes(),
            &h.epoch.to_be_bytes(),
            h.author.as_bytes(),
            &h.seq.to_be_bytes(),
        ],
    ))
}

fn commitment(msg_key: &[u8; 32]) -> [u8; 32] {
    derive(COMMITMENT_CONTEXT, &[msg_key])
}

/// The AEAD's fixed nonce: every message key is used exactly once.
const AEAD_NONCE: [u8; 12] = [0; 12];

/// Encrypts `draft` for `group`'s current epoch as `author` and signs it.
pub fn seal<R: rand_core::CryptoRng + rand_core::RngCore>(
    group: &GroupState,
    author: &IdentityKey,
    draft: Draft<'_>,
    rng: &mut R,
) -> Result<Sealed, UsageError> {
    let epoch = group.epoch();
    let me = author.node_id();
    if draft.seq == 0 {
        return Err(UsageError::Invalid {
            field: "seq",
            reason: "sequence numbers start at 1".into(),
        });
    }
    check_draft(group, &me, draft.content)?;
    let key = group
        .epoch_key(epoch)
        .ok_or(UsageError::NoEpochKey(group.id()))?;
    let plain = Zeroizing::new(codec::encode(draft.content)?);
    let mut nonce = [0u8; 24];
    rng.fill_bytes(&mut nonce);
    let mut header = Header {
        version: HEADER_VERSION,
        group: group.id(),
        epoch,
        author: me,
        seq: draft.seq,
        created_at: draft.now,
        handling: draft.handling,
        expires_at: draft.expires_at,
        nonce,
        commitment: [0; 32],
        ciphertext_hash: [0; 32],
    };
    let msg_key = message_key(key.bytes(), &header);
    header.commitment = commitment(&msg_key);
    let pre = codec::encode_bare(&header)?;
    let aad = &pre[..pre.len() - 32];
    let ciphertext = ChaCha20Poly1305::new((&*msg_key).into())
        .encrypt((&AEAD_NONCE).into(), AeadPayload { msg: &plain, aad })
        .map_err(|_| UsageError::Encode("encryption failed".into()))?;
    header.ciphertext_hash = derive(CIPHERTEXT_CONTEXT, &[&ciphertext]);
    let header_bytes = codec::encode_bare(&header)?;
    let signature = author.sign(ENVELOPE_DOMAIN, &header_bytes);
    let id = message_id(&header_bytes);
    let bytes = codec::encode(&Envelope {
        header: header_bytes,
        signature,
        ciphertext,
    })?;
    if bytes.len() > MAX_ENVELOPE_LEN {
        return Err(UsageError::Invalid {
            field: "message",
            reason: format!(
                "{} bytes exceed the envelope limit of {MAX_ENVELOPE_LEN}",
                bytes.len()
            ),
        });
    }
    Ok(Sealed { id, header, bytes })
}

/// What [`seal`] checks before it seals: that `author` may post in `group`'s current epoch,
/// and that the content is within its limits. A node checks a post with it when it accepts
/// it, and seals it later.
pub fn check_draft(
    group: &GroupState,
    author: &NodeId,
    content: &Content,
) -> Result<(), UsageError> {
    match group.role(author) {
        None => return Err(UsageError::NotAMember(group.id())),
        Some(crate::group::Role::Reader) => return Err(UsageError::ReaderMayNotPost(group.id())),
        Some(crate::group::Role::Member) => {}
    }
    content.check().map_err(UsageError::InvalidRecord)?;
    let len = codec::encode(content)?.len();
    if len > MAX_CONTENT_LEN {
        return Err(UsageError::Invalid {
            field: "content",
            reason: format!("{len} bytes exceed the limit of {MAX_CONTENT_LEN}"),
        });
    }
    Ok(())
}

/// Decodes an envelope and its header (limits and encoding only; no signature check).
pub fn decode(bytes: &[u8]) -> Result<(Envelope, Header, MessageId), Rejection> {
    let envelope: Envelope = codec::decode(bytes, MAX_ENVELOPE_LEN)?;
    let header = decode_header_bytes(&envelope.header)?;
    let id = message_id(&envelope.header);
    Ok((envelope, header, id))
}

/// Decodes the signed header bytes of an envelope and checks its fields.
fn decode_header_bytes(bytes: &[u8]) -> Result<Header, Rejection> {
    let header: Header = codec::decode_bare(bytes, MAX_ENVELOPE_LEN)?;
    if header.version != HEADER_VERSION {
        return Err(Rejection::InvalidHeader("unsupported header version"));
    }
    if header.seq == 0 {
        return Err(Rejection::InvalidHeader("sequence number 0"));
    }
    if header.epoch == 0 {
        return Err(Rejection::InvalidHeader("epoch 0"));
    }
    Ok(header)
}

/// The header of an envelope, read without decoding (or copying) the rest of it: for envelopes
/// already checked and stored, whose group and author are wanted. Checks the header's encoding
/// and fields as [`decode`] does, but neither the rest of the envelope nor any signature.
pub fn decode_header(bytes: &[u8]) -> Result<Header, Rejection> {
    /// The leading field of an [`Envelope`].
    #[derive(Deserialize)]
    struct Head {
        #[serde(with = "crate::codec::bytes")]
        header: Vec<u8>,
    }
    let head: Head = codec::decode_prefix(bytes, MAX_ENVELOPE_LEN)?;
    decode_header_bytes(&head.header)
}

/// Checks, in order: limits and decoding, the author's signature (`verify_strict`), that the
/// author may post in the header's epoch, and the ciphertext hash. Needs no epoch key.
pub fn verify(bytes: &[u8], group: &GroupState) -> Result<Verified, Rejection> {
    let (envelope, header, id) = decode(bytes)?;
    check_signature(&envelope, &header)?;
    let verified = Verified {
        id,
        header,
        envelope,
    };
    check_author(&verified, group)?;
    Ok(verified)
}

/// The author's signature over a decoded envelope's header (`verify_strict`): the part of
/// [`verify`] that needs no group state, so that it can run on any thread.
pub fn check_signature(envelope: &Envelope, header: &Header) -> Result<(), Rejection> {
    header.author.verify(
        ENVELOPE_DOMAIN,
        &envelope.header,
        &envelope.signature,
        "envelope",
    )
}

/// The rest of [`verify`], after [`check_signature`]: that the author may post in the header's
/// epoch of `group`, and the ciphertext hash.
pub fn check_author(verified: &Verified, group: &GroupState) -> Result<(), Rejection> {
    let (header, envelope) = (&verified.header, &verified.envelope);
    if header.group != group.id() {
        return Err(Rejection::UnknownGroup(header.group));
    }
    if group.members_at(header.epoch).is_none() {
        return Err(Rejection::UnknownEpoch {
            group: header.group,
            epoch: header.epoch,
        });
    }
    match group.role_at(&header.author, header.epoch) {
        None => {
            return Err(Rejection::NotAMember {
                group: header.group,
                author: header.author,
                epoch: header.epoch,
            })
        }
        Some(crate::group::Role::Reader) => {
            return Err(Rejection::ReaderMayNotPost {
                group: header.group,
                author: header.author,
                epoch: header.epoch,
            })
        }
        Some(crate::group::Role::Member) => {}
    }
    if group.beyond_cutoff(&header.author, header.epoch, header.seq) {
        return Err(Rejection::BeyondCutoff {
            group: header.group,
            author: header.author,
            epoch: header.epoch,
            seq: header.seq,
        });
    }
    if derive(CIPHERTEXT_CONTEXT, &[&envelope.ciphertext]) != header.ciphertext_hash {
        return Err(Rejection::CiphertextMismatch);
    }
    Ok(())
}

/// Decrypts a verified envelope with the epoch key this node holds, checking the key
/// commitment first.
pub fn open(verified: &Verified, group: &GroupState) -> Result<Content, Rejection> {
    let h = &verified.header;
    let key = group.epoch_key(h.epoch).ok_or(Rejection::NoEpochKey {
        group: h.group,
        epoch: h.epoch,
    })?;
    let msg_key = message_key(key.bytes(), h);
    if commitment(&msg_key) != h.commitment {
        return Err(Rejection::CommitmentMismatch);
    }
    let header_bytes = &verified.envelope.header;
    let aad = &header_bytes[..header_bytes.len().saturating_sub(32)];
    let plain = Zeroizing::new(
        ChaCha20Poly1305::new((&*msg_key).into())
            .decrypt(
                (&AEAD_NONCE).into(),
                AeadPayload {
                    msg: &verified.envelope.ciphertext,
                    aad,
                },
            )
            .map_err(|_| Rejection::DecryptFailed)?,
    );
    let content: Content = codec::decode(&plain, MAX_CONTENT_LEN)?;
    content.check().map_err(Rejection::InvalidContent)?;
    Ok(content)
}

/// [`verify`] then [`open`]: everything a receiving member checks.
pub fn verify_and_open(bytes: &[u8], group: &GroupState) -> Result<(Verified, Content), Rejection> {
    let verified = verify(bytes, group)?;
    let content = open(&verified, group)?;
    Ok((verified, content))
}
