//! Short message ids: `inbox` and `watch` print the first 16 hex digits of an id, and `read`,
//! `receipts` and `thread` take any unambiguous prefix of at least [`MIN_PREFIX`] digits, as git
//! does with commits.
//!
//! A prefix is looked up among the messages of the groups the caller may read, on the
//! blocking pool (it reads the group's index from the store), never on the actor.

use liaison_protocol::{GroupId, MessageId};
use tokio::sync::oneshot;

use super::Actor;
use crate::accounts::Principal;
use crate::error::{Error, Result};

/// The fewest hex digits a short id may have.
pub const MIN_PREFIX: usize = 8;

/// Whether `text` is a short id: [`MIN_PREFIX`] to 63 lowercase hex digits.
pub fn is_prefix(text: &str) -> bool {
    (MIN_PREFIX..64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl Actor {
    /// Finds the one message whose id starts with `prefix` in a group `who` may read.
    pub(super) fn resolve_id(
        &self,
        who: &Principal,
        prefix: String,
        reply: oneshot::Sender<Result<MessageId>>,
    ) {
        if !is_prefix(&prefix) {
            let _ = reply.send(Err(Error::Invalid(format!(
                "{prefix:?} is not a message id: give its 64 hex digits, or at least its first \
                 {MIN_PREFIX}"
            ))));
            return;
        }
        let groups: Vec<GroupId> = self
            .engine
            .groups()
            .map(|g| g.id())
            .filter(|g| who.access(g).is_some())
            .collect();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut found: Vec<MessageId> = Vec::new();
            let result = (|| {
                for group in &groups {
                    for id in store.group_messages(group)? {
                        if id.to_string().starts_with(&prefix) && !found.contains(&id) {
                            found.push(id);
                        }
                    }
                }
                match found.as_slice() {
                    [one] => Ok(*one),
                    [] => Err(Error::NotFound(format!(
                        "no message whose id starts with {prefix} on this node"
                    ))),
                    many => Err(Error::Invalid(format!(
                        "{} messages have ids starting with {prefix}: give more digits",
                        many.len()
                    ))),
                }
            })();
            let _ = reply.send(result);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::is_prefix;

    #[test]
    fn a_short_id_is_8_to_63_lowercase_hex_digits() {
        assert!(is_prefix("0123abcd"));
        assert!(is_prefix(&"a".repeat(63)));
        assert!(!is_prefix("0123abc"), "too short");
        assert!(!is_prefix(&"a".repeat(64)), "a whole id");
        assert!(!is_prefix("0123ABCD"), "upper case");
        assert!(!is_prefix("0123abcz"));
    }
}
