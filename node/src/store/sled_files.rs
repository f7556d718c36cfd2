//! sled's own files in the store's directory (`db`, `conf`, `blobs/`, `snap.*`): what it
//! leaves half-made when it fails, and setting damaged ones aside.
//!
//! - A snapshot is written to `snap.N.generating`, synced, then renamed to `snap.N`, and only
//!   then are older snapshots removed. A `.generating` file is therefore never needed: an
//!   earlier snapshot (or none, and sled replays its whole log) is still there. But sled 0.34
//!   reads it as the newest snapshot, and when a full disk cut it short, every later open
//!   fails as if the store were corrupt (spacejam/sled#1527). It is removed before sled opens.
//! - `conf` holds the three settings sled checks at open, which the store never changes. A
//!   damaged one is set aside before sled opens, and sled writes it again.
//! - A damaged snapshot makes sled's open fail: the newest is set aside and sled replays its
//!   log from the one before (or from the start).
//! - If sled still does not open, all its files are set aside, and the store rebuilds the
//!   index from the envelope log.
//!
//! Files are set aside in a directory `set-aside-SECONDS` beside them, never deleted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::open_error;
use super::health::OpenReport;
use super::StoreError;

/// The files sled owns in the store's directory.
/// sled's data file, in the store's directory.
pub(super) const DATA_FILE: &str = "db";
const SLED_FILES: [&str; 3] = [DATA_FILE, "conf", "blobs"];

/// Whether `path` is a file holding at least one byte.
pub(super) fn holds_data(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.len() > 0)
}

/// Removes the snapshots sled left half-written, and sets a damaged `conf` aside.
pub(super) fn clear_leftovers(dir: &Path, report: &mut OpenReport) -> Result<(), StoreError> {
    let io = |e| open_error(dir, e);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let name = entry.map_err(io)?.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            fs::remove_file(dir.join(&*name)).map_err(io)?;
            report.removed.push(name.into_owned());
        }
    }
    let conf = dir.join("conf");
    match fs::read(&conf) {
        // sled treats 8 bytes or fewer as no file and writes it anew.
        Ok(bytes) if bytes.len() > 8 && !conf_is_sound(&bytes) => {
            tracing::error!(path = %dir.display(), "sled's conf file is damaged; setting it aside");
            set_aside(dir, &["conf"], report)?;
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    Ok(())
}

/// Whether `bytes` is the `conf` sled writes for the store's settings: its text, then a
/// checksum that sled only warns about.
fn conf_is_sound(bytes: &[u8]) -> bool {
    let config = sled::Config::new();
    let expected = format!(
        "segment_size: {}\nuse_compression: {}\nversion: {}.{}\n",
        config.segment_size, config.use_compression, config.version.0, config.version.1
    );
    bytes.len() == expected.len() + 4 && bytes.starts_with(expected.as_bytes())
}

/// Sets the newest snapshot aside; whether there was one.
pub(super) fn set_snapshot_aside(dir: &Path, report: &mut OpenReport) -> Result<bool, StoreError> {
    let mut snapshots: Vec<String> = fs::read_dir(dir)
        .map_err(|e| open_error(dir, e))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("snap."))
        .collect();
    snapshots.sort();
    let Some(newest) = snapshots.pop() else {
        return Ok(false);
    };
    set_aside(dir, &[newest.as_str()], report)?;
    Ok(true)
}

/// Sets all of sled's files aside, so that sled starts empty and the index is rebuilt from
/// the envelope log.
pub(super) fn set_index_aside(dir: &Path, report: &mut OpenReport) -> Result<(), StoreError> {
    let mut names: Vec<String> = SLED_FILES.iter().map(|s| s.to_string()).collect();
    for entry in fs::read_dir(dir).map_err(|e| open_error(dir, e))? {
        let name = entry
            .map_err(|e| open_error(dir, e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("snap.") {
            names.push(name);
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    set_aside(dir, &names, report)?;
    report.rebuilt = true;
    Ok(())
}

/// Moves the files `names` of `dir` that exist into `dir/set-aside-SECONDS/` (made if needed),
/// and syncs both directories.
fn set_aside(dir: &Path, names: &[&str], report: &mut OpenReport) -> Result<(), StoreError> {
    let io = |e| open_error(dir, e);
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside: PathBuf = dir.join(format!("set-aside-{seconds}"));
    fs::create_dir_all(&aside).map_err(io)?;
    for name in names {
        let from = dir.join(name);
        if from.symlink_metadata().is_err() {
            continue;
        }
        fs::rename(&from, aside.join(name)).map_err(io)?;
    }
    for d in [&aside, &dir.to_path_buf()] {
        fs::File::open(d).and_then(|f| f.sync_all()).map_err(io)?;
    }
    if !report.set_aside.contains(&aside) {
        report.set_aside.push(aside);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sled_files_conf_as_sled_writes_it_is_sound() {
        let dir = tempfile::tempdir().unwrap();
        drop(sled::open(dir.path()).unwrap());
        let conf = fs::read(dir.path().join("conf")).unwrap();
        assert!(conf_is_sound(&conf));
        let mut garbled = conf.clone();
        garbled[15] ^= 0x01;
        assert!(!conf_is_sound(&garbled));
        assert!(!conf_is_sound(&conf[..conf.len() - 1]));
    }
}
