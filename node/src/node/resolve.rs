//! Short message ids: `inbox` and `watch` print the first 16 hex digits of an id, and `read`,
//! `receipts` and `thread` take any unambiguous prefix of at least [`MIN_PREFIX`] digits, as git
//! does with commits.
//!
//! A prefix is looked up among the messages of the groups the caller may read by the read
//! model ([`Scoped::resolve_id`](super::Scoped::resolve_id)), never on the actor.

/// The fewest hex digits a short id may have.
pub const MIN_PREFIX: usize = 8;

/// Whether `text` is a short id: [`MIN_PREFIX`] to 63 lowercase hex digits.
pub fn is_prefix(text: &str) -> bool {
    (MIN_PREFIX..64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
