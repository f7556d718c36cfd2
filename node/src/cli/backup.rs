//! `liaison backup DEST` and `liaison restore SRC` (see [`crate::backup`]).
//!
//! `backup` writes the data part itself when the node is stopped (it opens the store), and
//! asks the running node for it otherwise (`POST /v1/backup`); either way it then adds the
//! keys, if asked, and the manifest. `restore` works on a stopped node's data directory only.

use std::path::{Path, PathBuf};

use crate::backup::{self, Passphrase};
use crate::client::Client;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::store::{Store, StoreError};

/// `liaison backup`.
pub(super) async fn take(
    dir: &DataDir,
    client: impl FnOnce() -> Result<Client>,
    dest: &Path,
    with_keys: bool,
    passphrase: &Passphrase,
) -> Result<()> {
    let dest = backup::check_dest(dest)?;
    let secret = if with_keys {
        let Some(p) = passphrase.read()? else {
            return Err(Error::Invalid(format!(
                "--with-keys needs a passphrase: --passphrase-file FILE, or {}",
                backup::PASSPHRASE_ENV
            )));
        };
        if p.chars().count() < backup::MIN_PASSPHRASE {
            return Err(Error::Invalid(format!(
                "the passphrase is shorter than {} characters",
                backup::MIN_PASSPHRASE
            )));
        }
        Some(p)
    } else {
        None
    };
    let partial = backup::partial_path(&dest);
    let config = dir.config()?;
    // A running node is asked (opening its store here would first tidy sled's files under
    // it); a stopped one is copied directly.
    let running = dir.runtime().is_some_and(|r| pid_alive(r.pid));
    let opened = if running {
        Err(StoreError::InUse {
            path: dir.store_path(),
        })
    } else {
        Store::open_with(&dir.store_path(), &config.store.options())
    };
    let data = match opened {
        Ok(store) => {
            let d = dir.clone();
            let into = partial.clone();
            tokio::task::spawn_blocking(move || backup::write_data(&store, &d, &into))
                .await
                .unwrap_or(Err(Error::Internal("the backup task failed")))?
        }
        Err(StoreError::InUse { .. }) => {
            let request = backup::BackupRequest {
                into: partial
                    .to_str()
                    .ok_or_else(|| Error::Invalid(format!("{} is not UTF-8", partial.display())))?
                    .to_owned(),
            };
            client()?.post_slow("/v1/backup", &request).await?
        }
        Err(e) => return Err(e.into()),
    };
    let manifest = backup::finish(
        dir,
        data,
        &partial,
        &dest,
        secret.as_deref().map(|s| s.as_str()),
    )?;
    crate::cli::say_line(&format!(
        "backup of node {} ({} messages, {} files{}, writes paused {} ms) written to {}",
        manifest.data.node_id,
        manifest.data.messages,
        manifest.data.files.len(),
        if manifest.keys {
            ", keys encrypted"
        } else {
            ", without keys"
        },
        manifest.data.writes_paused_us / 1000,
        dest.display()
    ));
    Ok(())
}

/// `liaison restore`.
pub(super) async fn restore(
    dir: &DataDir,
    src: Option<&Path>,
    passphrase: &Passphrase,
    without_keys: bool,
    skip_catch_up: bool,
) -> Result<()> {
    let Some(src) = src else {
        if !skip_catch_up {
            return Err(Error::Invalid(
                "name the backup to restore (liaison restore SRC)".into(),
            ));
        }
        return skip(dir);
    };
    let secret = if without_keys {
        None
    } else {
        passphrase.read()?
    };
    let target: PathBuf = dir.root().to_path_buf();
    let src = src.to_path_buf();
    let secret_for_task = secret.clone();
    let restored = tokio::task::spawn_blocking(move || {
        backup::restore(
            &src,
            &target,
            secret_for_task.as_deref().map(|s| s.as_str()),
            without_keys,
        )
    })
    .await
    .unwrap_or(Err(Error::Internal("the restore task failed")))?;
    if skip_catch_up {
        crate::restored::clear(dir)?;
    }
    let m = &restored.manifest;
    crate::cli::say_line(&format!(
        "restored node {} ({}) from the backup taken {}: {} messages, into {}",
        m.data.node_id,
        m.data.node_name,
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(m.data.created_at_ms)
        ),
        restored.messages,
        dir.root().display()
    ));
    if !restored.keys {
        crate::cli::say_line(
            "the backup held no keys: put identity.key, exchange.key and admin.token (and \
             previous.keys, if the node rotated its keys) in place, mode 0600, before it starts",
        );
    }
    if skip_catch_up {
        crate::cli::say_line(
            "--skip-catch-up: the node will post at once; peers drop posts whose sequence \
             numbers they already hold",
        );
    } else {
        crate::cli::say_line(
            "on start the node learns from its peers which of its own messages and group \
             changes they hold, and posts again once they have told it (liaison status)",
        );
    }
    Ok(())
}

/// `liaison restore --skip-catch-up` without a backup: removes the mark of a stopped node.
fn skip(dir: &DataDir) -> Result<()> {
    if dir.runtime().is_some_and(|r| pid_alive(r.pid)) {
        return Err(Error::Conflict(
            "the node is running; stop it before skipping the restore catch-up".into(),
        ));
    }
    if crate::restored::clear(dir)? {
        crate::cli::say_line(
            "restore catch-up skipped: the node posts at once when it starts; peers drop posts \
             whose sequence numbers they already hold",
        );
    } else {
        crate::cli::say_line("this node was not waiting for a restore catch-up");
    }
    Ok(())
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The status line of a node restored from a backup that is still catching up.
pub(super) fn status_line(r: &crate::restored::RestoreStatus) -> String {
    let waiting = if r.heard_from_peer {
        format!(
            "{} group(s) not yet confirmed by a member",
            r.pending_groups.len()
        )
    } else {
        "no member has told it yet what it holds".to_owned()
    };
    format!(
        "restore   restored from a backup: learning its own messages and group changes from \
         its peers before it posts ({waiting})"
    )
}
