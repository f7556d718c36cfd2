//! The audit log's records and the officer accounts, as the node encodes them.

use super::durability::DurableTicket;
use super::keys::{TREE_AUDIT, TREE_USERS};
use super::{Store, StoreError};

impl Store {
    /// Writes audit record `seq` (big-endian key) unless one exists, and returns a ticket to
    /// wait on with [`Store::wait_for`]. Records are write-once: an existing `seq` is an error.
    pub fn append_audit(&self, seq: u64, record: &[u8]) -> Result<DurableTicket, StoreError> {
        self.check_writable()?;
        let swapped = self
            .inner
            .audit
            .compare_and_swap(seq.to_be_bytes(), None as Option<&[u8]>, Some(record))
            .map_err(|e| self.engine("appending an audit record", e))?;
        if swapped.is_err() {
            return Err(self.corrupt(TREE_AUDIT, format!("audit record {seq} already exists")));
        }
        Ok(DurableTicket(self.note_written()))
    }

    /// Audit records with `seq >= from`, in order.
    pub fn audit_records(&self, from: u64) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.audit.range(from.to_be_bytes()..) {
            let (k, v) = item.map_err(|e| self.engine("reading the audit log", e))?;
            out.push((self.audit_seq(&k)?, v.to_vec()));
        }
        Ok(out)
    }

    /// The last audit record.
    pub fn last_audit(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match self
            .inner
            .audit
            .last()
            .map_err(|e| self.engine("reading the audit log", e))?
        {
            None => Ok(None),
            Some((k, v)) => Ok(Some((self.audit_seq(&k)?, v.to_vec()))),
        }
    }

    fn audit_seq(&self, k: &[u8]) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(self.array(TREE_AUDIT, k)?))
    }

    /// Stores (or replaces) the account `name` and waits until it is durable.
    pub async fn put_user(&self, name: &str, record: &[u8]) -> Result<(), StoreError> {
        self.check_writable()?;
        self.inner
            .users
            .insert(name.as_bytes(), record)
            .map_err(|e| self.engine("writing an account", e))?;
        self.wait_durable(self.note_written()).await
    }

    /// Removes the account `name`; whether it existed.
    pub async fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.check_writable()?;
        let old = self
            .inner
            .users
            .remove(name.as_bytes())
            .map_err(|e| self.engine("removing an account", e))?;
        self.wait_durable(self.note_written()).await?;
        Ok(old.is_some())
    }

    /// Every account, by name.
    pub fn users(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.users.iter() {
            let (k, v) = item.map_err(|e| self.engine("reading accounts", e))?;
            let name = String::from_utf8(k.to_vec())
                .map_err(|_| self.corrupt(TREE_USERS, "account name is not UTF-8".into()))?;
            out.push((name, v.to_vec()));
        }
        Ok(out)
    }
}
