//! Small node-level values by name (the node's directory of other nodes, among others).

use std::future::Future;

use super::keys::TREE_META;
use super::{Store, StoreError, RESERVED_META_PREFIX};

impl Store {
    /// Stores (or replaces) a small node-level value at once, and returns a future that
    /// resolves once it is durable. The write happens in this call, not when the future is
    /// first polled: values written one after the other under one key end in the order of
    /// the calls (a newer roster is never overwritten by an older one whose task ran later),
    /// whoever awaits what and when. Keys starting with [`RESERVED_META_PREFIX`] are refused.
    pub fn put_meta(
        &self,
        key: &str,
        value: &[u8],
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let written = self.write_meta(key, value);
        let store = self.clone();
        async move { store.wait_durable(written?).await }
    }

    /// Writes a meta value (not yet durable); the ticket to wait for.
    fn write_meta(&self, key: &str, value: &[u8]) -> Result<u64, StoreError> {
        if key.starts_with(RESERVED_META_PREFIX) {
            return Err(StoreError::ReservedKey {
                key: key.to_owned(),
            });
        }
        self.check_writable()?;
        let engine = self.engine()?;
        engine
            .meta
            .insert(key.as_bytes(), value)
            .map_err(|e| engine.engine("writing a meta value", e))?;
        Ok(self.note_written(true))
    }

    /// Every meta value whose key starts with `prefix`, in key order.
    pub fn meta_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let engine = self.engine()?;
        let mut out = Vec::new();
        for item in engine.meta.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item.map_err(|e| engine.engine("reading meta values", e))?;
            let key = String::from_utf8(k.to_vec())
                .map_err(|_| engine.corrupt(TREE_META, "meta key is not UTF-8".into()))?;
            out.push((key, v.to_vec()));
        }
        Ok(out)
    }
}
