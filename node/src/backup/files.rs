//! The files of a backup and of a data directory: paths kept inside their root, listings with
//! sizes and BLAKE3 sums, bounded reads, and writes that are synced and never follow links.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use super::*;
use crate::error::{Error, Result};

/// A manifest path as a relative path of normal components only.
pub(super) fn safe_relative(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && path.len() <= 1024
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if !ok {
        return Err(Error::Corrupt(format!(
            "the manifest lists a path outside the backup: {path:?}"
        )));
    }
    Ok(p.to_path_buf())
}

pub(super) fn entry_for(root: &Path, rel: &str) -> Result<FileEntry> {
    let path = root.join(rel);
    let mut file =
        File::open(&path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileEntry {
        path: rel.to_owned(),
        bytes,
        blake3: hasher.finalize().to_hex().to_string(),
    })
}

/// Every file under `root`, as entries, sorted by path.
pub(super) fn list_files(root: &Path) -> Result<Vec<FileEntry>> {
    let mut out = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let here = root.join(&rel);
        for entry in fs::read_dir(&here)
            .map_err(|e| Error::io(format!("cannot list {}", here.display()), e))?
        {
            let entry = entry.map_err(|e| Error::io("cannot list the backup", e))?;
            let sub = rel.join(entry.file_name());
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("cannot list the backup", e))?;
            if kind.is_dir() {
                todo.push(sub);
            } else {
                let name = sub
                    .to_str()
                    .ok_or_else(|| Error::Invalid(format!("{} is not UTF-8", sub.display())))?
                    .to_owned();
                out.push(entry_for(root, &name)?);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

pub(super) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file =
        File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if bytes.len() as u64 > max {
        return Err(Error::Corrupt(format!(
            "{} is larger than {max} bytes",
            path.display()
        )));
    }
    Ok(bytes)
}

pub(super) fn mkdir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}

pub(super) fn mkdir_all(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))
}

pub(super) fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let mut source =
        File::open(from).map_err(|e| Error::io(format!("cannot open {}", from.display()), e))?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| Error::io(format!("cannot create {}", to.display()), e))?;
    std::io::copy(&mut source, &mut target).map_err(|e| {
        Error::io(
            format!("cannot copy {} to {}", from.display(), to.display()),
            e,
        )
    })?;
    target
        .sync_all()
        .map_err(|e| Error::io(format!("cannot sync {}", to.display()), e))
}

pub(super) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync {}", dir.display()), e))
}
