//! Quarantine: the admin takes a stored message out of every view of this node without
//! deleting it.
//!
//! A quarantined message stays in the store (it is evidence, and its author's sequence keeps no
//! gap) and is still served to members that sync it; this node alone stops reading it. Every
//! view ([`Actor::read`], and through it the inbox, exports, threads, statistics and the event
//! stream) refuses it before it decodes a byte of it, so a message that breaks a view can be
//! set aside while the fault is found. Quarantines persist in the store's meta values
//! (`quarantine/ID`, JSON); a release keeps the record, marked released.

use std::collections::HashMap;

use liaison_protocol::MessageId;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::{now, Actor};
use crate::accounts::Principal;
use crate::error::{Error, Result};
use crate::views::{rfc3339, QuarantineView};

/// Meta key prefix of quarantine records.
const PREFIX: &str = "quarantine/";

/// Longest reason kept, in characters.
pub(super) const MAX_REASON_CHARS: usize = 500;

/// A quarantine as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Quarantine {
    /// Whether it is in force (false once released).
    quarantined: bool,
    /// Why, in the admin's words.
    pub(super) reason: String,
    /// When it was set (or released), in milliseconds since the Unix epoch.
    pub(super) at_ms: u64,
}

/// The quarantines in force, by message.
pub(super) type Quarantined = HashMap<MessageId, Quarantine>;

impl Actor {
    /// Loads the quarantines in force from the store (at start-up).
    pub(super) fn load_quarantine(&mut self) -> Result<()> {
        for (key, bytes) in self.store.meta_prefix(PREFIX)? {
            let id: MessageId = key[PREFIX.len()..]
                .parse()
                .map_err(|e| Error::Corrupt(format!("quarantine key {key:?}: {e}")))?;
            let record: Quarantine = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Corrupt(format!("quarantine record of {id}: {e}")))?;
            if record.quarantined {
                self.quarantined.insert(id, record);
            }
        }
        Ok(())
    }

    /// The quarantines in force, oldest first.
    pub(super) fn quarantine_list(&self, who: &Principal) -> Result<Vec<QuarantineView>> {
        admin(who)?;
        let mut out: Vec<QuarantineView> =
            self.quarantined.iter().map(|(id, q)| view(id, q)).collect();
        out.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Quarantines stored message `id` (answered once the record is durable).
    pub(super) fn quarantine(
        &mut self,
        who: &Principal,
        id: MessageId,
        reason: String,
        reply: oneshot::Sender<Result<QuarantineView>>,
    ) {
        let record = admin(who).and_then(|()| {
            let reason = check_reason(reason)?;
            if !self.store.has_message(&id)? {
                return Err(Error::NotFound(format!("no message {id} on this node")));
            }
            Ok(Quarantine {
                quarantined: true,
                reason,
                at_ms: now().0,
            })
        });
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        warn!(id = %id.short(), reason = %record.reason, "message quarantined by the admin: no view of this node shows it");
        self.quarantined.insert(id, record.clone());
        self.persist_quarantine(id, record, reply);
    }

    /// Ends the quarantine of `id` (answered once the record is durable).
    pub(super) fn release(
        &mut self,
        who: &Principal,
        id: MessageId,
        reply: oneshot::Sender<Result<QuarantineView>>,
    ) {
        if let Err(e) = admin(who) {
            let _ = reply.send(Err(e));
            return;
        }
        let Some(mut record) = self.quarantined.remove(&id) else {
            let _ = reply.send(Err(Error::NotFound(format!(
                "message {id} is not quarantined on this node"
            ))));
            return;
        };
        info!(id = %id.short(), "quarantine released by the admin");
        record.quarantined = false;
        record.at_ms = now().0;
        self.persist_quarantine(id, record, reply);
    }

    fn persist_quarantine(
        &mut self,
        id: MessageId,
        record: Quarantine,
        reply: oneshot::Sender<Result<QuarantineView>>,
    ) {
        let stored = match serde_json::to_vec(&record) {
            Ok(bytes) => self.store.put_meta(&format!("{PREFIX}{id}"), &bytes),
            Err(e) => {
                let _ = reply.send(Err(Error::Invalid(format!("quarantine record: {e}"))));
                return;
            }
        };
        self.writes.spawn(async move {
            let result = stored
                .await
                .map(|()| view(&id, &record))
                .map_err(Error::from);
            let _ = reply.send(result);
        });
    }
}

fn admin(who: &Principal) -> Result<()> {
    if *who == Principal::Admin {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "quarantine needs the node's admin token".into(),
        ))
    }
}

fn check_reason(reason: String) -> Result<String> {
    let reason = reason.trim().to_owned();
    if reason.is_empty() {
        return Err(Error::Invalid(
            "a quarantine needs a reason (--reason TEXT): it is kept with it and shown".into(),
        ));
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Error::Invalid(format!(
            "the reason is longer than {MAX_REASON_CHARS} characters"
        )));
    }
    if reason.chars().any(char::is_control) {
        return Err(Error::Invalid("the reason holds control characters".into()));
    }
    Ok(reason)
}

fn view(id: &MessageId, q: &Quarantine) -> QuarantineView {
    QuarantineView {
        id: id.to_string(),
        quarantined: q.quarantined,
        reason: q.reason.clone(),
        at: rfc3339(q.at_ms),
        at_ms: q.at_ms,
    }
}
