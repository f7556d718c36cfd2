//! Small node-level values by name (the node's directory of other nodes, among others).

use super::keys::TREE_META;
use super::{Store, StoreError, RESERVED_META_PREFIX};

impl Store {
    /// Stores (or replaces) a small node-level value and waits until it is
    /// durable. Keys starting with [`RESERVED_META_PREFIX`] are refused.
    pub async fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
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
        self.wait_durable(self.note_written(true)).await
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
