//! The reply-to check of a post: the parent is read through [`Actor::read`], so the caller's
//! grants and the TLP:RED rule apply exactly as to a listing. Threads and statistics are
//! queries of the read model (see `reads::records`).

use liaison_protocol::record::Record;
use liaison_protocol::{GroupId, MessageId};

use super::Actor;
use crate::accounts::Principal;
use crate::error::{Error, Result};

impl Actor {
    /// Checks a post's `reply_to`: the parent is a message of the same group that `who` may
    /// read on this node, and feedback answers an alert or a request.
    pub(super) fn check_reply(
        &self,
        who: &Principal,
        group: &GroupId,
        parent: &MessageId,
        record: Option<&Record>,
    ) -> Result<()> {
        let view = self.read(who, parent, false).map_err(|e| match e {
            Error::NotFound(_) => Error::Invalid(format!(
                "reply_to {parent}: no message of this group that you may read on this node"
            )),
            other => other,
        })?;
        if view.group_id != group.to_string() {
            return Err(Error::Invalid(format!(
                "reply_to {parent}: a message of group {}, not of this one",
                view.group_name
            )));
        }
        if let Some(Record::Feedback(_)) = record {
            if !matches!(view.kind.as_str(), "alert" | "request") {
                return Err(Error::Invalid(format!(
                    "feedback answers an alert or a request; {parent} is a {}",
                    view.kind
                )));
            }
        }
        Ok(())
    }
}
