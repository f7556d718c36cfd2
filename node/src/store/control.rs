//! Control events: each group's membership changes, by seq.

use liaison_protocol::GroupId;

use super::keys::{group_seq_key, successor, CONTROL_KEY_LEN, GROUP_LEN, TREE_CONTROL};
use super::{Store, StoreError};

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
        let key = group_seq_key(group, seq);
        let cas = self
            .inner
            .control
            .compare_and_swap(key, None::<&[u8]>, Some(bytes))
            .map_err(|e| self.engine("writing a control event", e))?;
        let outcome = match cas {
            Ok(()) => ControlInserted::New,
            Err(e) if e.current.as_deref() == Some(bytes) => ControlInserted::Duplicate,
            Err(_) => ControlInserted::Conflict,
        };
        self.wait_durable(self.note_written()).await?;
        Ok(outcome)
    }

    /// All control events of `group` as `(seq, bytes)`, ascending by seq.
    pub fn control_events(&self, group: &GroupId) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.control.scan_prefix(group.as_bytes()) {
            let (k, v) = item.map_err(|e| self.engine("reading control events", e))?;
            let seq = self.parse_control_key(&k)?.1;
            out.push((seq, v.to_vec()));
        }
        Ok(out)
    }

    /// Groups that have at least one control event, ascending.
    pub fn groups(&self) -> Result<Vec<GroupId>, StoreError> {
        let tree = &self.inner.control;
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

    fn parse_control_key(&self, k: &[u8]) -> Result<(GroupId, u64), StoreError> {
        if k.len() != CONTROL_KEY_LEN {
            return Err(self.bad_key_len(TREE_CONTROL, k.len(), CONTROL_KEY_LEN));
        }
        let group = self.array(TREE_CONTROL, &k[..GROUP_LEN])?;
        let seq = u64::from_be_bytes(self.array(TREE_CONTROL, &k[GROUP_LEN..])?);
        Ok((GroupId::from(group), seq))
    }
}
