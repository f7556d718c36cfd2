//! The audit log's records and the officer accounts, as the node encodes them. Audit records
//! are framed in the envelope log too, so that they survive the loss of sled's files.

use super::durability::DurableTicket;
use super::envelope_log::{encode_frame, Kind};
use super::keys::{TREE_AUDIT, TREE_USERS};
use super::{Engine, Store, StoreError};

impl Store {
    /// Writes audit record `seq` (big-endian key) unless one exists, and returns a ticket to
    /// wait on with [`Store::wait_for`]. Records are write-once: an existing `seq` is an error.
    ///
    /// Not refused while the disk is nearly full ([`StoreError::DiskFull`]): every read is
    /// audited, and reads go on.
    pub fn append_audit(&self, seq: u64, record: &[u8]) -> Result<DurableTicket, StoreError> {
        self.check_writable()?;
        let written = self.engine().and_then(|engine| {
            let _writer = engine.lock_writer();
            engine.append_audit(seq, record)
        });
        self.note_write(&written);
        written?;
        Ok(DurableTicket(self.note_written(false)))
    }

    /// Audit records with `seq >= from`, in order.
    pub fn audit_records(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let engine = self.engine()?;
        let mut out = Vec::new();
        for item in engine.audit.range(from.to_be_bytes()..) {
            let (k, v) = item.map_err(|e| engine.engine("reading the audit log", e))?;
            out.push((engine.audit_seq(&k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// At most `limit` audit records with `seq >= from`, in order: a page of the log, for
    /// readers that must not hold the whole log in memory.
    pub fn audit_page(&self, from: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let engine = self.engine()?;
        let mut out = Vec::new();
        for item in engine.audit.range(from.to_be_bytes()..).take(limit) {
            let (k, v) = item.map_err(|e| engine.engine("reading the audit log", e))?;
            out.push((engine.audit_seq(&k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// The last audit record.
    pub fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let engine = self.engine()?;
        match engine
            .audit
            .last()
            .map_err(|e| engine.engine("reading the audit log", e))?
        {
            None => Ok(None),
            Some((k, v)) => Ok(Some((engine.audit_seq(&k)?, v.to_vec()))),
        }
    }

    /// Stores (or replaces) the account `name` and waits until it is durable.
    pub async fn put_user(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        self.check_writable()?;
        let engine = self.engine()?;
        engine
            .users
            .insert(name.as_bytes(), record)
            .map_err(|e| engine.engine("writing an account", e))?;
        self.wait_durable(self.note_written(true)).await
    }

    /// Removes the account `name`; whether it existed.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.check_writable()?;
        let engine = self.engine()?;
        let old = engine
            .users
            .remove(name.as_bytes())
            .map_err(|e| engine.engine("removing an account", e))?;
        self.wait_durable(self.note_written(true)).await?;
        Ok(old.is_some())
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let engine = self.engine()?;
        let mut out = Vec::new();
        for item in engine.users.iter() {
            let (k, v) = item.map_err(|e| engine.engine("reading accounts", e))?;
            let name = String::from_utf8(k.to_vec())
                .map_err(|_| engine.corrupt(TREE_USERS, "account name is not UTF-8".into()))?;
            out.push((name, v.to_vec()));
        }
        Ok(out)
    }
}

impl Engine {
    /// Writes audit record `seq` to the log and its index. Call with the writer lock.
    pub(super) fn append_audit(&self, seq: u64, record: &[u8]) -> Result<(), StoreError> {
        let key = seq.to_be_bytes();
        let write = |e| self.engine("appending an audit record", e);
        if self.audit.get(key).map_err(write)?.is_some() {
            return Err(self.corrupt(TREE_AUDIT, format!("audit record {seq} already exists")));
        }
        let start = self.log_end.load(std::sync::atomic::Ordering::Acquire);
        let mut frame = Vec::new();
        encode_frame(&mut frame, start, Kind::Audit, &[&key, record])
            .ok_or_else(|| self.corrupt(TREE_AUDIT, "audit record too long".into()))?;
        self.append(start, &frame)?;
        self.audit.insert(key, record).map_err(write)?;
        self.last_audit
            .fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    /// Indexes audit record `seq` found in the log, unless it is held (see
    /// `recovery::replay`); whether it was added.
    pub(super) fn restore_audit(&self, seq: u64, record: &[u8]) -> Result<bool, StoreError> {
        let swapped = self
            .audit
            .compare_and_swap(seq.to_be_bytes(), None::<&[u8]>, Some(record))
            .map_err(|e| self.engine("restoring an audit record", e))?;
        if swapped.is_ok() {
            self.last_audit
                .fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
        }
        Ok(swapped.is_ok())
    }

    pub(super) fn audit_seq(&self, k: &[u8]) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array(TREE_AUDIT, k)?))
    }
}
