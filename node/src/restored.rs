//! The mark a restore leaves in a data directory, and what it makes the node do.
//!
//! `liaison restore` writes `DATA/restored.json`. A node that starts with it first learns from
//! its peers what it authored after the backup was taken — the highest of its own sequence
//! numbers each peer holds, and the control events of the groups it owns — and refuses to
//! post or change a group's membership until it has, group by group
//! (`sync::Engine::set_restoring`): a restored node that posted at once would reuse sequence
//! numbers its peers hold, and every peer would drop those posts. `liaison status` shows the
//! progress. Once every group is confirmed the node removes the mark; until then it stays,
//! across restarts.
//!
//! If no peer can ever be reached (every peer was lost too), `liaison restore --skip-catch-up`
//! on the stopped node removes the mark: the node then posts as after any start.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::datadir::DataDir;
use crate::error::{Error, Result};

/// The mark's file name in the data directory.
pub const MARKER: &str = "restored.json";

/// What the mark says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// The node the backup was taken of; a node with other keys refuses to start on it.
    pub node_id: String,
    /// When the backup was taken (ms since the Unix epoch).
    pub backup_created_at_ms: u64,
    /// When it was restored.
    pub restored_at_ms: u64,
}

/// A restored node's progress, in the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RestoreStatus {
    /// When the backup was taken (ms since the Unix epoch).
    pub backup_created_at_ms: u64,
    /// When it was restored.
    pub restored_at_ms: u64,
    /// Whether a member has told the node, since it started, what it holds of its messages.
    pub heard_from_peer: bool,
    /// The groups it may not post to or change yet (ids).
    pub pending_groups: Vec<String>,
}

fn path(dir: &DataDir) -> PathBuf {
    dir.root().join(MARKER)
}

/// Leaves the mark in `dir` (synced).
pub fn mark(dir: &DataDir, marker: &Marker) -> Result<()> {
    let text = serde_json::to_vec_pretty(marker)
        .map_err(|e| Error::Invalid(format!("cannot encode the restore mark: {e}")))?;
    let p = path(dir);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
        .map_err(|e| Error::io(format!("cannot create {}", p.display()), e))?;
    f.write_all(&text)
        .and_then(|()| f.sync_all())
        .and_then(|()| fs::File::open(dir.root())?.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", p.display()), e))
}

/// The mark in `dir`, if there is one.
pub fn read(dir: &DataDir) -> Result<Option<Marker>> {
    let p = path(dir);
    match fs::read(&p) {
        Ok(bytes) if bytes.len() <= 64 * 1024 => {
            serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::Corrupt(format!(
                    "{} is damaged ({e}); if the node was restored, restore it again",
                    p.display()
                ))
            })
        }
        Ok(_) => Err(Error::Corrupt(format!("{} is too large", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("cannot read {}", p.display()), e)),
    }
}

/// Removes the mark from `dir` (synced); whether there was one.
pub fn clear(dir: &DataDir) -> Result<bool> {
    let p = path(dir);
    match fs::remove_file(&p) {
        Ok(()) => {
            fs::File::open(dir.root())
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(format!("cannot sync {}", dir.root().display()), e))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("cannot remove {}", p.display()), e)),
    }
}

/// At start: the mark in `dir`, checked against the node's own id.
pub fn at_start(dir: &DataDir, me: &liaison_protocol::NodeId) -> Result<Option<Marker>> {
    let Some(marker) = read(dir)? else {
        return Ok(None);
    };
    if marker.node_id != me.to_string() {
        return Err(Error::Invalid(format!(
            "this data directory was restored from a backup of node {}, but its keys are node \
             {me}'s; put that node's key files in place",
            marker.node_id
        )));
    }
    Ok(Some(marker))
}
