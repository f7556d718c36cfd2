//! A node restored from a backup learns its own state from its peers before it authors
//! again (see [`crate::restored`]): the actor's side.

use tracing::info;

use super::{now, Actor};
use crate::restored::RestoreStatus;

impl Actor {
    /// Once every group is confirmed, removes the restore mark and lets the engine post freely.
    pub(super) fn restore_check(&mut self) {
        if self.restoring.is_none() {
            return;
        }
        let Some(progress) = self.engine.restore_progress(now()) else {
            return;
        };
        if !progress.heard || !progress.pending.is_empty() {
            return;
        }
        match crate::restored::clear(&self.dir) {
            Ok(_) => {
                self.restoring = None;
                self.engine.set_restoring(false);
                info!("restored node caught up: its peers told it which of its own messages and group changes they hold; posting resumes");
            }
            Err(e) => tracing::error!(error = %e, "cannot remove the restore mark; will retry"),
        }
    }

    /// The progress for the status, while restoring.
    pub(super) fn restore_status(&self) -> Option<RestoreStatus> {
        let marker = self.restoring.as_ref()?;
        let progress = self.engine.restore_progress(now())?;
        Some(RestoreStatus {
            backup_created_at_ms: marker.backup_created_at_ms,
            restored_at_ms: marker.restored_at_ms,
            heard_from_peer: progress.heard,
            pending_groups: progress.pending.iter().map(ToString::to_string).collect(),
        })
    }
}
