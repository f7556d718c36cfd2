//! # liaison-protocol
//!
//! The pure core of Liaison, a federated node for exchanging enforcement intelligence: wire
//! types and their one bounded codec, node identities and signatures, closed user groups with
//! owner-signed control events and HPKE-wrapped epoch keys, sealed message envelopes, delivery
//! receipts, federation rosters with revocation and key rotation, and the sync engine that
//! decides what two nodes send each other.
//!
//! This crate does no I/O: no sockets, files, clocks, threads or global randomness. Time is
//! passed in as [`identity::Timestamp`], randomness as a `rand_core` RNG, and stored messages
//! are read through the [`sync::Archive`] trait the node implements, so every behaviour is
//! deterministic under test. The wire format is specified in `WIRE.md` beside this crate.
//!
//! ```text
//!   node (tokio, quinn, sled) ── bytes, now ──▶ sync::Engine ── frames, events, timeout ──▶ node
//!                                                 │
//!                      group::GroupState ◀────────┼───────▶ message::{seal, verify, open}
//!                                                 ▼
//!                                          codec (bincode 2, bounded)
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// What is `pub` is the crate's API, and every type of it can be printed in a test's failure.
#![warn(unreachable_pub, missing_debug_implementations)]

pub mod attachment;
pub mod codec;
pub mod error;
pub mod fields;
pub mod frame;
pub mod group;
pub mod identity;
pub mod message;
pub mod receipt;
pub mod record;
pub mod roster;
pub mod sync;
pub mod transfer;

pub use error::{DecodeError, ParseError, Rejection, UsageError};
pub use frame::Frame;
pub use group::{GroupId, GroupState, Role};
pub use identity::{ExchangeKey, ExchangeSecret, IdentityKey, NodeId, Timestamp};
pub use message::{Content, Handling, MessageId, Payload, Place, Recipient, RecordData};
pub use record::{FieldError, Readable, Record, RecordKind};
