//! Reading messages back: by id, by place, by group, and the envelopes a peer asks for.

use liaison_protocol::{GroupId, MessageId, Place};

use super::keys::{author_key, author_key_at};
use super::*;

impl Store {
    /// The stored envelope of a message. A damaged one is an error (and is marked for fetching
    /// again, see [`Store::damaged`]).
    pub fn message(&self, id: &MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        let engine = self.engine()?;
        engine.stored_message(id, |key, record| engine.read_envelope(&key, &record))
    }

    /// Hands the stored envelope of a message to `read`.
    pub fn with_envelope<T>(
        &self,
        id: &MessageId,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.message(id)?.map(|envelope| read(&envelope)))
    }

    /// The metadata blob stored with a message.
    pub fn message_meta(&self, id: &MessageId) -> Result<Option<Vec<u8>>, StoreError> {
        self.engine()?
            .stored_message(id, |_, record| Ok(record.meta.to_vec()))
    }

    /// Whether a message with this id is stored.
    pub fn has_message(&self, id: &MessageId) -> Result<bool, StoreError> {
        Ok(self.engine()?.locate(id)?.is_some())
    }

    /// Envelopes of the author of `after` in its group and epoch with a seq above
    /// `after.seq`, ascending by seq, stopping before their total size would exceed
    /// `max_bytes` (but returning at least one if any exists). Serves
    /// `liaison_protocol::sync::Archive::envelopes`. A damaged envelope is left out (and
    /// marked for fetching again, see [`Store::damaged`]): what is intact is still served.
    pub fn envelopes_after(
        &self,
        after: &Place,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let Some(first) = after.seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let engine = self.engine()?;
        let from = Place {
            seq: first,
            ..*after
        };
        let from_key = author_key(&from);
        let mut out = Vec::new();
        let mut total = 0usize;
        engine.each_held(&from, |seq, record| {
            // The envelope's own length: the frame's, less its head, the metadata and its
            // length.
            let envelope = (record.loc.len as usize).saturating_sub(
                envelope_log::HEAD_LEN + envelope_log::MESSAGE_HEAD_LEN + record.meta.len(),
            );
            total = total.saturating_add(envelope);
            if total > max_bytes && !out.is_empty() {
                return Ok(false);
            }
            match engine.read_envelope(&author_key_at(&from_key, seq), record) {
                Ok(envelope) => out.push(envelope),
                Err(StoreError::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Envelopes of the author of `after` in its group and epoch with a seq above `after.seq`
    /// and at most `through`, ascending by seq, within `max_bytes` as
    /// [`Store::envelopes_after`]; an envelope that cannot be read back intact (damaged: its
    /// checksum fails) is left out instead of failing the read (and is marked for fetching
    /// again, see [`Store::damaged`]), so that one damaged envelope does not keep the others
    /// from a peer, which gets that one from another. Returns the envelopes and how many were
    /// left out.
    pub fn readable_envelopes(
        &self,
        after: &Place,
        through: u64,
        max_bytes: usize,
    ) -> Result<(Vec<Vec<u8>>, usize), StoreError> {
        let Some(first) = after.seq.checked_add(1) else {
            return Ok((Vec::new(), 0));
        };
        let engine = self.engine()?;
        let from = Place {
            seq: first,
            ..*after
        };
        let from_key = author_key(&from);
        let mut out = Vec::new();
        let mut skipped = 0;
        let mut total = 0usize;
        engine.each_held(&from, |seq, record| {
            if seq > through {
                return Ok(false);
            }
            let envelope = (record.loc.len as usize).saturating_sub(
                envelope_log::HEAD_LEN + envelope_log::MESSAGE_HEAD_LEN + record.meta.len(),
            );
            if total.saturating_add(envelope) > max_bytes && !out.is_empty() {
                return Ok(false);
            }
            match engine.read_envelope(&author_key_at(&from_key, seq), record) {
                Ok(bytes) => {
                    total = total.saturating_add(envelope);
                    out.push(bytes);
                }
                Err(StoreError::Corrupt { .. }) => skipped += 1,
                Err(e) => return Err(e),
            }
            Ok(true)
        })?;
        Ok((out, skipped))
    }

    /// The place of every message held in `group`, ascending. Rebuilds the sync engine's
    /// version vectors at start-up.
    pub fn held(&self, group: &GroupId) -> Result<Vec<Place>, StoreError> {
        let mut out = Vec::new();
        self.engine()?
            .each_in_group(group, |place, _| out.push(place))?;
        Ok(out)
    }

    /// The ids of every message held in `group`, ordered by place.
    pub fn group_messages(&self, group: &GroupId) -> Result<Vec<MessageId>, StoreError> {
        let mut out = Vec::new();
        self.engine()?.each_in_group(group, |_, id| out.push(id))?;
        Ok(out)
    }

    /// Number of stored messages (the size of the id index; O(1)).
    pub fn message_count(&self) -> usize {
        self.engine().map(|e| e.message_count()).unwrap_or(0)
    }
}
