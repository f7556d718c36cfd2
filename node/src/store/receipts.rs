//! Delivery receipts: each stored once, indexed by the runs of consecutive seqs it names (see
//! the store's module docs).

use std::collections::{BTreeMap, BTreeSet};

use liaison_protocol::{MessageId, NodeId, Place};

use super::keys::{
    author_key, seq_space, ID_LEN, RECEIPT_RUN_KEY_LEN, SEQ_LEN, SEQ_SPACE_LEN, TREE_RECEIPT_BLOBS,
    TREE_RECEIPT_RUNS,
};
use super::runs::{author_runs, first_plus};
use super::{Engine, Store, StoreError};

/// Most seqs one receipt run covers: a receipt names at most this many messages.
const MAX_RECEIPT_RUN: usize = liaison_protocol::receipt::MAX_RECEIPT_MESSAGES;

/// A stored receipt: the node that signed it and its exact bytes.
pub type StoredReceipt = (NodeId, Vec<u8>);

/// A receipt to store with [`Store::insert_receipts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReceipt {
    /// The node that signed it.
    pub receiver: NodeId,
    /// The messages it names that this node holds, and where each sits (index entries are
    /// written for those the author index confirms).
    pub messages: Vec<(MessageId, Place)>,
    /// The exact receipt bytes.
    pub bytes: Vec<u8>,
}

impl Store {
    /// Stores receipts — each once, however many messages it names — and, per message named
    /// that the store holds and receiver, which receipt that is (replacing an earlier one);
    /// waits until all of it is durable. A receipt that names no message held here is not
    /// stored. The blobs are written before the index, so an index entry never points to a
    /// missing blob.
    pub async fn insert_receipts(&self, receipts: Vec<NewReceipt>) -> Result<(), StoreError> {
        if receipts.is_empty() {
            return Ok(());
        }
        self.check_writable()?;
        self.blocking("writing receipts", move |store| {
            let store = store.engine()?;
            let mut blobs = sled::Batch::default();
            let mut index = sled::Batch::default();
            for r in &receipts {
                let key = blake3::hash(&r.bytes);
                // The named messages the author index holds where the receipt's sender says,
                // by place: one index entry per run of consecutive seqs.
                let places: Vec<_> = r.messages.iter().map(|(_, at)| author_key(at)).collect();
                let found = store.held_among(&places)?;
                let mut held = BTreeMap::new();
                for ((id, _), at) in r.messages.iter().zip(places) {
                    if found.get(&at) == Some(id) {
                        held.insert(at, *id.as_bytes());
                    }
                }
                for (first, _, n) in author_runs(&held, MAX_RECEIPT_RUN) {
                    let last = first_plus(&first, n);
                    let mut k = [0u8; RECEIPT_RUN_KEY_LEN];
                    k[..SEQ_SPACE_LEN + SEQ_LEN].copy_from_slice(&first[1..]);
                    k[SEQ_SPACE_LEN + SEQ_LEN..].copy_from_slice(r.receiver.as_bytes());
                    let mut v = [0u8; SEQ_LEN + ID_LEN];
                    v[..SEQ_LEN].copy_from_slice(&last.to_be_bytes());
                    v[SEQ_LEN..].copy_from_slice(key.as_bytes());
                    index.insert(&k[..], &v[..]);
                }
                if !held.is_empty() {
                    blobs.insert(key.as_bytes(), r.bytes.as_slice());
                }
            }
            store
                .receipt_blobs
                .apply_batch(blobs)
                .and_then(|()| store.receipt_runs.apply_batch(index))
                .map_err(|e| store.engine("writing receipts", e))
        })
        .await?;
        self.wait_durable(self.note_written(true)).await
    }

    /// All receipts naming the message at `place` as `(receiver, bytes)`, ascending by
    /// receiver; a receiver may have sent more than one.
    pub fn receipts(&self, place: &Place) -> Result<Vec<StoredReceipt>, StoreError> {
        let engine = self.engine()?;
        engine.receipts(place)
    }
}

impl Engine {
    fn receipts(&self, place: &Place) -> Result<Vec<StoredReceipt>, StoreError> {
        let op = "reading receipts";
        let mut found = BTreeSet::new();
        // Receipt runs holding the seq start at most a receipt's length below it.
        let space = &seq_space(place)[1..];
        let low = place.seq.saturating_sub(MAX_RECEIPT_RUN as u64 - 1);
        let start = [space, &low.to_be_bytes()[..]].concat();
        let end = [space, &place.seq.to_be_bytes()[..], &[0xff; ID_LEN][..]].concat();
        for item in self.receipt_runs.range(start..=end) {
            let (k, v) = item.map_err(|e| self.engine(op, e))?;
            if k.len() != RECEIPT_RUN_KEY_LEN || v.len() != SEQ_LEN + ID_LEN {
                return Err(self.corrupt(
                    TREE_RECEIPT_RUNS,
                    format!("entry of {} and {} bytes", k.len(), v.len()),
                ));
            }
            let last = u64::from_be_bytes(self.array(TREE_RECEIPT_RUNS, &v[..SEQ_LEN])?);
            if last >= place.seq {
                found.insert((
                    self.array::<ID_LEN>(TREE_RECEIPT_RUNS, &k[SEQ_SPACE_LEN + SEQ_LEN..])?,
                    self.array::<ID_LEN>(TREE_RECEIPT_RUNS, &v[SEQ_LEN..])?,
                ));
            }
        }
        let mut out = Vec::with_capacity(found.len());
        for (receiver, blob) in found {
            let receiver = NodeId::from_bytes(receiver).map_err(|_| {
                self.corrupt(
                    TREE_RECEIPT_RUNS,
                    format!("receiver {} is not a node id", hex::encode(receiver)),
                )
            })?;
            let bytes = self
                .receipt_blobs
                .get(blob)
                .map_err(|e| self.engine(op, e))?
                .ok_or_else(|| {
                    self.corrupt(
                        TREE_RECEIPT_BLOBS,
                        format!("indexed receipt {} is missing", hex::encode(blob)),
                    )
                })?;
            out.push((receiver, bytes.to_vec()));
        }
        Ok(out)
    }
}
