//! Control events: each group's membership changes, by seq.

use liaison_protocol::GroupId;

use super::envelope_log::{encode_frame, Kind};
use super::keys::{group_seq_key, successor, CONTROL_KEY_LEN, GROUP_LEN, TREE_CONTROL};
use super::{Engine, Store, StoreError};

/// Outcome of storing a control event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlInserted {
    /// The event was new and has been stored.
    New,
    /// The identical event was already stored at this `(group, seq)`.
    Duplicate,
    /// A different event is already stored at this `(group, seq)`;
    /// nothing was written.
    Conflict,
}

impl Store {
    /// Stores control event `seq` of `group` unless that slot is taken, and
    /// waits until it is durable.
    pub async fn insert_control(
        &self,
        group: &GroupId,
        seq: u64,
        bytes: &[u8],
    ) -> Result<ControlInserted, StoreError> {
        self.check_writable()?;
        let outcome = self.engine().and_then(|engine| {
            let _writer = engine.lock_writer();
            engine.insert_control(group, seq, bytes)
        });
        self.note_write(&outcome);
        let outcome = outcome?;
        self.wait_durable(self.note_written(false)).await?;
        Ok(outcome)
    }

    /// All control events of `group` as `(seq, bytes)`, ascending by seq.
    pub fn control_events(&self, group: &GroupId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        self.engine()?.control_events(group)
    }

    /// Groups that have at least one control event, ascending.
    pub fn groups(&self) -> Result<Vec<GroupId>, StoreError> {
        self.engine()?.groups()
    }
}

impl Engine {
    /// Stores control event `seq` of `group` in the log and its index unless that slot is
    /// taken. Call with the writer lock.
    pub(super) fn insert_control(
        &self,
        group: &GroupId,
        seq: u64,
        bytes: &[u8],
    ) -> Result<ControlInserted, StoreError> {
        let key = group_seq_key(group, seq);
        let write = |e| self.engine("writing a control event", e);
        match self.control.get(key).map_err(write)? {
            Some(held) if held.as_ref() == bytes => return Ok(ControlInserted::Duplicate),
            Some(_) => return Ok(ControlInserted::Conflict),
            None => {}
        }
        let start = self.log_end.load(std::sync::atomic::Ordering::Acquire);
        let mut frame = Vec::new();
        encode_frame(&mut frame, start, Kind::Control, &[&key, bytes])
            .ok_or_else(|| self.corrupt(TREE_CONTROL, "control event too long".into()))?;
        self.append(start, &frame)?;
        self.control.insert(key, bytes).map_err(write)?;
        self.control_count
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(ControlInserted::New)
    }

    /// Indexes control event `seq` of `group` found in the log, unless it is held (see
    /// `recovery::replay`); whether it was added.
    pub(super) fn restore_control(
        &self,
        group: &GroupId,
        seq: u64,
        bytes: &[u8],
    ) -> Result<bool, StoreError> {
        let swapped = self
            .control
            .compare_and_swap(group_seq_key(group, seq), None::<&[u8]>, Some(bytes))
            .map_err(|e| self.engine("restoring a control event", e))?;
        if swapped.is_ok() {
            self.control_count
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(swapped.is_ok())
    }

    pub(super) fn control_events(
        &self,
        group: &GroupId,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.control.scan_prefix(group.as_bytes()) {
            let (k, v) = item.map_err(|e| self.engine("reading control events", e))?;
            let seq = self.parse_control_key(&k)?.1;
            out.push((seq, v.to_vec()));
        }
        Ok(out)
    }

    pub(super) fn groups(&self) -> Result<Vec<GroupId>, StoreError> {
        let tree = &self.control;
        let mut out = Vec::new();
        let mut cursor: Vec<u8> = Vec::new();
        loop {
            let key = match tree.range(cursor.as_slice()..).next() {
                None => break,
                Some(item) => {
                    item.map_err(|e| self.engine("reading control events", e))?
                        .0
                }
            };
            let group = self.parse_control_key(&key)?.0;
            out.push(group);
            match successor(group.as_bytes()) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(out)
    }

    pub(super) fn parse_control_key(&self, k: &[u8]) -> Result<(GroupId, u64), StoreError> {
        if k.len() != CONTROL_KEY_LEN {
            return Err(self.bad_key_len(TREE_CONTROL, k.len(), CONTROL_KEY_LEN));
        }
        let group = self.array(TREE_CONTROL, &k[..GROUP_LEN])?;
        let seq = u64::from_be_bytes(self.array(TREE_CONTROL, &k[GROUP_LEN..])?);
        Ok((GroupId::from(group), seq))
    }
}
