//! Pages of messages, newest first, read from the store's listing index.
//!
//! A page is read by a reverse range scan of each group's listing below the cursor, merging
//! the groups by (creation time, id); each entry is opened once, and one the caller may not
//! see (withheld, quarantined, TLP:RED for others, a damaged envelope) is passed over while
//! scanning, so a page still fills up to its limit. A scan stops after `MAX_SCAN_PER_ITEM` (8)
//! entries per message asked for (and at least `MIN_SCAN`, 1,024): the page is then shorter, and
//! its cursor says where the scan stopped, so the next page goes on from there.
//!
//! A cursor is the (creation time, id) of the last entry scanned: every message stored when
//! paging began sits at one fixed position, so paging neither repeats nor skips one, whatever
//! arrives meanwhile (a message arriving with an older creation time than the cursor shows
//! on a later page; one newer than the first page's start shows on none of this walk).

use liaison_protocol::{GroupId, MessageId};

use super::view::Ctx;
use crate::accounts::Principal;
use crate::error::{Error, Result};
use crate::store::Listed;
use crate::views::MessagePage;

/// Messages per page unless the caller asks otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// Most messages per page.
pub const MAX_LIMIT: usize = 1000;
/// Entries scanned per message asked for, at most, before a short page is answered.
const MAX_SCAN_PER_ITEM: usize = 8;
/// Entries a page may scan whatever its limit.
const MIN_SCAN: usize = 1024;

/// A page asked for.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Group id or name; all visible groups when `None`.
    pub group: Option<String>,
    /// Messages per page ([`DEFAULT_LIMIT`] when `None`; 1 to [`MAX_LIMIT`]).
    pub limit: Option<usize>,
    /// The `next` cursor of the previous page; the newest messages when `None`.
    pub before: Option<String>,
}

/// Where a page ends, as the opaque text the API hands out: the creation time (16 hex digits)
/// and id (64 hex digits) of the last entry scanned.
pub(crate) fn cursor_text(at: &Listed) -> String {
    format!("{:016x}{}", at.created_at, at.id)
}

/// Parses a cursor handed out by [`cursor_text`].
pub(crate) fn parse_cursor(text: &str) -> Result<Listed> {
    let bad = || {
        Error::Invalid(format!(
            "cursor {text:?} is not one this node handed out: pass the `next` of the previous page"
        ))
    };
    if text.len() != 16 + 64 || !text.is_char_boundary(16) {
        return Err(bad());
    }
    let created_at = u64::from_str_radix(&text[..16], 16).map_err(|_| bad())?;
    let id: MessageId = text[16..].parse().map_err(|_| bad())?;
    Ok(Listed { created_at, id })
}

/// The limit asked for, checked.
pub(crate) fn check_limit(limit: Option<usize>) -> Result<usize> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Error::Invalid(format!(
            "limit {n} is out of range: 1 to {MAX_LIMIT} messages per page"
        ))),
    }
}

impl Ctx<'_> {
    /// A page of the messages of `groups` that `who` may see, newest first.
    pub(crate) fn page(
        &self,
        who: &Principal,
        groups: &[GroupId],
        limit: usize,
        before: Option<Listed>,
    ) -> Result<MessagePage> {
        let mut scans = Vec::with_capacity(groups.len());
        for g in groups {
            scans.push(self.store.listing(g, before)?.peekable());
        }
        let max_scan = limit.saturating_mul(MAX_SCAN_PER_ITEM).max(MIN_SCAN);
        let mut messages = Vec::new();
        let mut last: Option<Listed> = None;
        let mut scanned = 0usize;
        let more = loop {
            // The newest head among the groups' scans.
            let mut best: Option<(usize, Listed)> = None;
            for (i, scan) in scans.iter_mut().enumerate() {
                match scan.peek() {
                    None => {}
                    Some(Err(_)) => {
                        if let Some(Err(e)) = scan.next() {
                            return Err(e.into());
                        }
                    }
                    Some(Ok(head)) if best.is_none_or(|(_, b)| *head > b) => {
                        best = Some((i, *head));
                    }
                    Some(Ok(_)) => {}
                }
            }
            let Some((i, entry)) = best else {
                break false;
            };
            if messages.len() >= limit || scanned >= max_scan {
                break true;
            }
            scans[i].next();
            scanned += 1;
            last = Some(entry);
            #[cfg(test)]
            super::super::faults::at_listing(&groups[i]);
            match self.read(who, &entry.id, false) {
                Ok(view) => messages.push(view),
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(id = %entry.id.short(), error = %e, "cannot show a stored message");
                }
            }
        };
        Ok(MessagePage {
            messages,
            next: if more {
                last.as_ref().map(cursor_text)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_cursor_reads_back_and_anything_else_is_refused() {
        let at = Listed {
            created_at: 1_700_000_000_123,
            id: MessageId::from([7u8; 32]),
        };
        assert_eq!(parse_cursor(&cursor_text(&at)).unwrap(), at);
        for bad in [
            "",
            "zz",
            &cursor_text(&at)[1..],
            &format!("{}0", cursor_text(&at)),
        ] {
            assert!(
                matches!(parse_cursor(bad), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(parse_cursor(&format!("g{}", &cursor_text(&at)[1..])).is_err());
    }

    #[test]
    fn the_limit_is_one_to_a_thousand() {
        assert_eq!(check_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(check_limit(Some(1)).unwrap(), 1);
        assert_eq!(check_limit(Some(MAX_LIMIT)).unwrap(), MAX_LIMIT);
        assert!(check_limit(Some(0)).is_err());
        assert!(check_limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
