//! Messages: writing a batch (duplicate and conflict checks, the envelope log, the author
//! index, the id index), repairing damaged ones, and reading messages back by id, by place
//! and by group.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use liaison_protocol::{GroupId, MessageId, Place};

use super::durability::DurableTicket;
use super::envelope_log::{self, encode_frame, message_parts, Kind, Location};
use super::keys::{
    author_key, author_key_at, author_space, place_of, seq_of, AuthorKey, BY_AUTHOR_KEY_LEN,
    GROUP_LEN, ID_LEN, PART_BY_AUTHOR, SEQ_SPACE_LEN,
};
use super::runs::{author_runs, encode_record, numbered, parse_run, record_id, Record, MAX_RUN};
use super::{Engine, Store, StoreError};

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// Its id.
    pub id: MessageId,
    /// Where it sits in its author's sequence.
    pub place: Place,
    /// The envelope, exactly as received.
    pub envelope: Vec<u8>,
    /// Small opaque metadata blob (the node keeps when the message arrived).
    pub meta: Vec<u8>,
    /// Its creation time from its header, in milliseconds since the Unix epoch: where it sits
    /// in its group's listing (see [`Store::listing`]).
    pub created_at: u64,
    /// The message it answers, from its content (which the store does not open): where it
    /// sits in the reply index (see [`Store::replies`]).
    pub reply_to: Option<MessageId>,
}

/// Outcome of storing one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The message was new and has been stored (durably, once the insert
    /// call returned).
    New,
    /// A message with this id is already stored; nothing was written.
    Duplicate,
    /// Its place is already taken by a different message; nothing was written. The author
    /// equivocated (or the sender lies).
    Conflict,
    /// The message was stored, but its envelope had been found damaged: it is stored again
    /// and no longer waits to be fetched (see [`Store::damaged`]).
    Repaired,
}

impl Store {
    /// Stores several messages in one batch and waits once until all are durable. Returns one
    /// outcome per input, in order (a later copy of an id earlier in the same batch is a
    /// [`Inserted::Duplicate`]).
    ///
    /// Idempotent: a message whose id is stored already is a [`Inserted::Duplicate`], one whose
    /// place holds another id a [`Inserted::Conflict`]; neither writes anything. The call still
    /// waits until the stored originals are durable, so any outcome may be acknowledged.
    ///
    /// Refused with [`StoreError::DiskFull`] while the file system has less free space than
    /// the store keeps.
    pub async fn insert_messages(
        &self,
        batch: Vec<NewMessage>,
    ) -> Result<Vec<Inserted>, StoreError> {
        let (messages, started) = (batch.len(), Instant::now());
        let (outcomes, ticket) = self.stage_messages(batch).await?;
        let applied = started.elapsed();
        if let Some(ticket) = ticket {
            self.wait_for(ticket).await?;
        }
        tracing::trace!(
            messages,
            ?applied,
            durable = ?started.elapsed(),
            "message batch stored"
        );
        Ok(outcomes)
    }

    /// Applies a batch as [`Store::insert_messages`] does, without waiting: the outcomes are
    /// final, but nothing is durable until [`Store::wait_for`] on the ticket returns (`None`
    /// for an empty batch). Writes made between this call and that wait (the audit records of
    /// the posts in the batch) join the same flush.
    pub async fn stage_messages(
        &self,
        batch: Vec<NewMessage>,
    ) -> Result<(Vec<Inserted>, Option<DurableTicket>), StoreError> {
        self.stage_messages_after(batch, None).await
    }

    /// [`Store::stage_messages`] for a batch that must never be durable unless the write behind
    /// `after` is: refused, with nothing applied, if a flush failed before that write was on
    /// disk (the store is failed now, or was reopened with that write lost). Checked under the
    /// writer lock, right before the batch is applied. A node writes its own messages in
    /// sequence order this way while the flush of the previous batch still runs: a batch
    /// whose predecessor was lost is never kept, so its own sequence never has a gap.
    pub async fn stage_messages_after(
        &self,
        batch: Vec<NewMessage>,
        after: Option<DurableTicket>,
    ) -> Result<(Vec<Inserted>, Option<DurableTicket>), StoreError> {
        if batch.is_empty() {
            return Ok((Vec::new(), None));
        }
        self.check_writable()?;
        self.check_free_space()?;
        let outcomes = self
            .blocking("inserting messages", move |store| {
                let engine = store.engine()?;
                let _writer = engine.lock_writer();
                if let Some(after) = after {
                    store.check_not_lost(after)?;
                }
                engine.apply_messages(&batch)
            })
            .await;
        self.note_write(&outcomes);
        let outcomes = outcomes?;
        Ok((outcomes, Some(DurableTicket(self.note_written(false)))))
    }
}

impl Engine {
    /// Appends the messages that are neither duplicates nor conflicts to the log with one
    /// write, then writes their author index runs in one atomic batch and adds them to the id
    /// index; one outcome per message, in order. A message whose envelope was found damaged is
    /// written again in its place. Does not wait for durability. Call with the writer lock.
    pub(super) fn apply_messages(&self, batch: &[NewMessage]) -> Result<Vec<Inserted>, StoreError> {
        let log_start = self.log_end.load(Ordering::Acquire);
        // The frames to append, back to back from `log_start`.
        let mut frames = Vec::new();
        // Earlier messages of this batch, which the tree does not show yet.
        let mut ids = HashSet::new();
        // The new messages' records by place in their author's sequence space: the runs.
        let mut records: BTreeMap<AuthorKey, Vec<u8>> = BTreeMap::new();
        // Damaged messages stored again: their places and new records.
        let mut repairs: BTreeMap<AuthorKey, Vec<u8>> = BTreeMap::new();
        let mut outcomes = Vec::with_capacity(batch.len());
        // The new messages' listing entries, and their reply entries.
        let mut listed = Vec::new();
        let mut replies = Vec::new();
        let places: Vec<AuthorKey> = batch.iter().map(|m| author_key(&m.place)).collect();
        let taken = self.held_among(&places)?;
        for (m, key) in batch.iter().zip(places) {
            if ids.contains(&m.id) {
                outcomes.push(Inserted::Duplicate);
                continue;
            }
            let repair = match self.locate(&m.id)? {
                // Stored already: a duplicate, unless its envelope was found damaged and this
                // copy is for its place.
                Some(at) if at == key && self.is_damaged(&key, &m.id)? => true,
                Some(_) => {
                    outcomes.push(Inserted::Duplicate);
                    continue;
                }
                None => {
                    let existing = match records.get(&key) {
                        Some(record) => Some(record_id(record)),
                        None => taken.get(&key).copied(),
                    };
                    if existing.is_some() {
                        outcomes.push(Inserted::Conflict);
                        continue;
                    }
                    false
                }
            };
            let meta_len = u32::try_from(m.meta.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes();
            let mut record = Vec::new();
            encode_frame(
                &mut frames,
                log_start,
                Kind::Message,
                &[m.id.as_bytes(), &key[1..], &meta_len, &m.meta, &m.envelope],
            )
            .and_then(|loc| encode_record(&mut record, &m.id, &loc, &m.meta))
            .ok_or_else(|| {
                self.corrupt(
                    PART_BY_AUTHOR,
                    "message metadata or envelope too long for the log".into(),
                )
            })?;
            ids.insert(m.id);
            if repair {
                repairs.insert(key, record);
                outcomes.push(Inserted::Repaired);
            } else {
                records.insert(key, record);
                listed.push((m.place.group, m.created_at, m.id));
                if let Some(parent) = m.reply_to {
                    replies.push((m.place.group, parent, m.id));
                }
                outcomes.push(Inserted::New);
            }
        }
        if frames.is_empty() {
            return Ok(outcomes);
        }
        self.append(log_start, &frames)?;
        let mut writes = sled::Batch::default();
        for (key, run, _) in author_runs(&records, MAX_RUN) {
            writes.insert(&key[..], run);
        }
        for (run_key, run) in self.repaired_runs(&repairs)? {
            writes.insert(run_key, run);
        }
        self.list_new(&mut writes, &listed)?;
        Engine::reply_new(&mut writes, replies);
        self.messages
            .apply_batch(writes)
            .map_err(|e| self.engine("inserting messages", e))?;
        if !repairs.is_empty() {
            let mut cleared = sled::Batch::default();
            for key in repairs.keys() {
                cleared.remove(&key[..]);
            }
            self.damaged
                .apply_batch(cleared)
                .map_err(|e| self.engine("clearing repaired messages", e))?;
            tracing::info!(
                path = %self.path.display(),
                repaired = repairs.len(),
                "damaged messages fetched again and stored"
            );
        }
        self.index_records(&records);
        Ok(outcomes)
    }

    /// Appends `frames` (encoded for `start`, the log end) to the log and publishes the new
    /// end. Call with the writer lock.
    pub(super) fn append(&self, start: u64, frames: &[u8]) -> Result<(), StoreError> {
        self.log
            .write_at(start, frames)
            .map_err(|e| self.engine("appending to the envelope log", e))?;
        // Published before the entries pointing here are written: a flush that sees one of
        // them syncs these bytes, and one that does not may still cover them.
        self.log_end
            .store(start.saturating_add(frames.len() as u64), Ordering::Release);
        Ok(())
    }

    /// Adds the records just written to the id index.
    pub(super) fn index_records(&self, records: &BTreeMap<AuthorKey, Vec<u8>>) {
        let mut index = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, record) in records {
            index.insert(&record_id(record), key);
        }
    }

    /// The runs holding the places of `repairs`, each with their records replaced, by run key.
    fn repaired_runs(
        &self,
        repairs: &BTreeMap<AuthorKey, Vec<u8>>,
    ) -> Result<BTreeMap<Vec<u8>, Vec<u8>>, StoreError> {
        let mut runs: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (key, new) in repairs {
            let Some((k, v)) = self.run_at_or_below(key)? else {
                continue;
            };
            let value = runs.get(k.as_ref()).cloned().unwrap_or_else(|| v.to_vec());
            let (first, records) = self.run(&k, &value)?;
            let mut rebuilt = Vec::with_capacity(value.len() + new.len());
            for (seq, record) in numbered(first, &records) {
                if seq == seq_of(key) {
                    rebuilt.extend_from_slice(new);
                } else {
                    encode_record(&mut rebuilt, &record.id, &record.loc, record.meta).ok_or_else(
                        || self.corrupt(PART_BY_AUTHOR, "metadata over 4 GiB".into()),
                    )?;
                }
            }
            runs.insert(k.to_vec(), rebuilt);
        }
        Ok(runs)
    }

    /// Which of `places` (author index keys) hold a message, and its id: per sequence space,
    /// one range read over the runs that can hold the seqs asked about, unless they are
    /// spread too far apart for that to be cheap, then one lookup per seq.
    pub(super) fn held_among(
        &self,
        places: &[AuthorKey],
    ) -> Result<HashMap<AuthorKey, MessageId>, StoreError> {
        let mut spaces: BTreeMap<&[u8], BTreeSet<u64>> = BTreeMap::new();
        for key in places {
            spaces
                .entry(&key[..1 + SEQ_SPACE_LEN])
                .or_default()
                .insert(seq_of(key));
        }
        let mut held = HashMap::new();
        for (space, seqs) in spaces {
            let (Some(&low), Some(&high)) = (seqs.first(), seqs.last()) else {
                continue;
            };
            let mut at = [0u8; BY_AUTHOR_KEY_LEN];
            at[..1 + SEQ_SPACE_LEN].copy_from_slice(space);
            let key = |seq: u64| author_key_at(&at, seq);
            // A range read visits every run between the seqs asked about: at most one per seq
            // in between.
            let dense = (high - low) / 4 <= (seqs.len() + MAX_RUN) as u64;
            if !dense {
                for &seq in &seqs {
                    if let Some(id) = self.held_at(&key(seq))? {
                        held.insert(key(seq), id);
                    }
                }
                continue;
            }
            let start = match self.run_at_or_below(&key(low))? {
                Some((k, _)) => k.to_vec(),
                None => key(low).to_vec(),
            };
            for item in self.messages.range(start..=key(high).to_vec()) {
                let (k, v) = item.map_err(|e| self.engine("reading the author index", e))?;
                let (first, records) = self.run(&k, &v)?;
                for (seq, record) in numbered(first, &records) {
                    if seqs.contains(&seq) {
                        held.insert(key(seq), record.id);
                    }
                }
            }
        }
        Ok(held)
    }

    /// Hands the place and record of message `id` to `take`, if the message is stored.
    pub(super) fn stored_message<T>(
        &self,
        id: &MessageId,
        take: impl FnOnce(AuthorKey, Record<'_>) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let Some(key) = self.candidate(id) else {
            return Ok(None);
        };
        match self.record_at(&key, |record| (record.id == *id).then(|| take(key, record)))? {
            Some(Some(taken)) => taken.map(Some),
            _ => Ok(None),
        }
    }

    /// Where the id index says message `id` is, if anywhere; [`Engine::held_at`] confirms it.
    fn candidate(&self, id: &MessageId) -> Option<AuthorKey> {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .candidate(id)
    }

    /// The author index key of message `id`, if it is stored.
    pub(super) fn locate(&self, id: &MessageId) -> Result<Option<AuthorKey>, StoreError> {
        let Some(key) = self.candidate(id) else {
            return Ok(None);
        };
        Ok((self.held_at(&key)? == Some(*id)).then_some(key))
    }

    /// Number of stored messages.
    pub(super) fn message_count(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    /// Bytes the id index holds.
    pub(super) fn id_index_bytes(&self) -> usize {
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .heap_bytes()
    }

    /// Reads the envelope of the record held at `key` from the log and checks it; a damaged
    /// one is marked for fetching again and reported as [`StoreError::Corrupt`].
    pub(super) fn read_envelope(
        &self,
        key: &AuthorKey,
        record: &Record<'_>,
    ) -> Result<Vec<u8>, StoreError> {
        match self.read_frame(&record.loc)? {
            Ok(envelope) => Ok(envelope),
            Err(fault) => {
                self.mark_damaged(key, &record.id)?;
                Err(self.corrupt(
                    envelope_log::FILE_NAME,
                    format!(
                        "the envelope of message {} at offset {} ({} bytes) {fault}; it is \
                         fetched again from peers that hold it",
                        record.id, record.loc.offset, record.loc.len
                    ),
                ))
            }
        }
    }

    /// The envelope in the message frame at `loc`, or why it cannot be read.
    pub(super) fn read_frame(
        &self,
        loc: &Location,
    ) -> Result<Result<Vec<u8>, envelope_log::Fault>, StoreError> {
        // Loaded after the record was read, so it covers the frame's bytes.
        let end = self.log_end.load(Ordering::Acquire);
        let frame = match self.log.read(loc, end) {
            Ok(Ok(frame)) => frame,
            Ok(Err(fault)) => return Ok(Err(fault)),
            Err(e) => return Err(self.engine("reading an envelope", e)),
        };
        match (frame.kind, message_parts(&frame.body)) {
            (Kind::Message, Some(parts)) => Ok(Ok(parts.envelope.to_vec())),
            _ => Ok(Err(envelope_log::Fault::Mismatch)),
        }
    }

    /// The id held at `key` (an author index key naming one seq).
    pub(super) fn held_at(&self, key: &AuthorKey) -> Result<Option<MessageId>, StoreError> {
        self.record_at(key, |record| record.id)
    }

    /// Hands the record held at `key` (an author index key naming one seq) to `take`: the run
    /// holding a seq is the one starting at the highest key not above it, if it reaches that
    /// far.
    fn record_at<T>(
        &self,
        key: &AuthorKey,
        take: impl FnOnce(Record<'_>) -> T,
    ) -> Result<Option<T>, StoreError> {
        let Some((k, v)) = self.run_at_or_below(key)? else {
            return Ok(None);
        };
        let (first, records) = self.run(&k, &v)?;
        // `first` is at most the seq asked for: the key is not above it.
        let held = usize::try_from(seq_of(key) - first)
            .ok()
            .and_then(|n| records.get(n));
        Ok(held.map(|record| take(*record)))
    }

    /// The author index entry with the highest key not above `key` in its author's sequence
    /// space: the only run that can hold `key`'s seq.
    fn run_at_or_below(
        &self,
        key: &AuthorKey,
    ) -> Result<Option<(sled::IVec, sled::IVec)>, StoreError> {
        let space = &key[..1 + SEQ_SPACE_LEN];
        self.messages
            .range(space..=&key[..])
            .next_back()
            .transpose()
            .map_err(|e| self.engine("reading the author index", e))
    }

    /// Calls `each(seq, record)` for the held messages of `from`'s sequence space with seq
    /// `from.seq` or above, ascending, until it returns `false`.
    pub(super) fn each_held(
        &self,
        from: &Place,
        mut each: impl FnMut(u64, &Record<'_>) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let read = |e| self.engine("reading the author index", e);
        let from_key = author_key(from);
        let end = author_key_at(&from_key, u64::MAX);
        // Start at the run holding `from` when it starts below it.
        let start = match self.run_at_or_below(&from_key)? {
            Some((k, _)) => k.to_vec(),
            None => from_key.to_vec(),
        };
        for item in self.messages.range(start..=end.to_vec()) {
            let (k, v) = item.map_err(read)?;
            let (first, records) = self.run(&k, &v)?;
            for (seq, record) in numbered(first, &records) {
                if seq >= from.seq && !each(seq, record)? {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Calls `each(place, id)` for every held message of `group`, ordered by place.
    pub(super) fn each_in_group(
        &self,
        group: &GroupId,
        mut each: impl FnMut(Place, MessageId),
    ) -> Result<(), StoreError> {
        for item in self.messages.scan_prefix(author_space(group)) {
            let (k, v) = item.map_err(|e| self.engine("reading the author index", e))?;
            let place = self.place_of(&k)?;
            let (first, records) = self.run(&k, &v)?;
            for (seq, record) in numbered(first, &records) {
                each(Place { seq, ..place }, record.id);
            }
        }
        Ok(())
    }

    /// The place an author index key read back names.
    pub(super) fn place_of(&self, k: &[u8]) -> Result<Place, StoreError> {
        let key: &AuthorKey = k
            .try_into()
            .map_err(|_| self.bad_key_len(PART_BY_AUTHOR, k.len(), BY_AUTHOR_KEY_LEN))?;
        place_of(key).ok_or_else(|| {
            self.corrupt(
                PART_BY_AUTHOR,
                format!(
                    "key names author {}, which is not a node id",
                    hex::encode(&key[1 + GROUP_LEN..1 + GROUP_LEN + ID_LEN])
                ),
            )
        })
    }

    /// An author index entry: a run of held messages, as its first seq and the records of
    /// that seq and the ones after it.
    pub(super) fn run<'v>(
        &self,
        k: &[u8],
        v: &'v [u8],
    ) -> Result<(u64, Vec<Record<'v>>), StoreError> {
        let key: &AuthorKey = k
            .try_into()
            .map_err(|_| self.bad_key_len(PART_BY_AUTHOR, k.len(), BY_AUTHOR_KEY_LEN))?;
        let first = seq_of(key);
        let records = parse_run(v).filter(|records| {
            records
                .len()
                .checked_sub(1)
                .and_then(|last| first.checked_add(u64::try_from(last).ok()?))
                .is_some()
        });
        records
            .ok_or_else(|| {
                self.corrupt(
                    PART_BY_AUTHOR,
                    format!(
                        "value has {} bytes, expected message records of seqs from {first}",
                        v.len()
                    ),
                )
            })
            .map(|records| (first, records))
    }
}
