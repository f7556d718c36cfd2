//! `liaison backup` and `liaison restore`: a consistent copy of a node's data, taken while it
//! runs or while it is stopped, and a data directory made from one.
//!
//! A backup is a directory:
//!
//! ```text
//! DEST/manifest.json                 versions, node id, time, every file's size and BLAKE3
//! DEST/node.toml                     the configuration
//! DEST/store/index.export            the store's index (see `store::backup`)
//! DEST/store/envelopes-v4.log        the envelope log, up to the snapshot's end
//! DEST/store/attachments-v1/...      attachment files held whole, and their index
//! DEST/keys.enc                      only with --with-keys: the key files, encrypted
//! ```
//!
//! The data part is written by whoever holds the store: the running node (through
//! `POST /v1/backup`, into `DEST.partial`), or the CLI itself when the node is stopped. The
//! CLI then adds the keys and the manifest and renames `DEST.partial` to `DEST`, so a
//! directory named `DEST` is always a whole backup. Keys are encrypted with a key derived
//! from a passphrase (Argon2id) and sealed with ChaCha20-Poly1305; the header and the node id
//! are authenticated with them, so a keys file cannot be moved to another node's backup.
//!
//! `liaison restore` checks the manifest and every checksum, and decrypts the keys, before
//! it writes anything; it builds the data directory beside an absent target (inside an
//! existing empty one, which may be a mount point) and renames it into place, opens the store once to check it, and leaves a marker (`restored.json`, see
//! [`crate::restored`]) that makes the node learn its own sequence numbers and group state
//! from its peers before it posts again.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::store::{Store, StoreError};

mod files;
mod keys;

use files::*;
use keys::*;

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// The layout of a backup this version writes and reads.
pub const BACKUP_FORMAT: u32 = 1;
/// The encrypted keys' file name.
pub const KEYS_FILE: &str = "keys.enc";
/// The environment variable a passphrase may come from (for scripts; a file is preferred).
pub const PASSPHRASE_ENV: &str = "LIAISON_BACKUP_PASSPHRASE";
/// The shortest passphrase accepted when keys are written.
pub const MIN_PASSPHRASE: usize = 12;

const EXPORT: &str = "store/index.export";
const LOG: &str = "store/envelopes-v4.log";
const ATTACHMENTS: &str = crate::attachments::files::DIR;
/// The largest manifest read (it lists every attachment file).
const MAX_MANIFEST: u64 = 64 * 1024 * 1024;
/// The largest keys file read.
const MAX_KEYS: u64 = 1024 * 1024;

/// The key files of a data directory that `--with-keys` carries (those present).
const KEY_FILES: [&str; 7] = [
    "identity.key",
    "exchange.key",
    "previous.keys",
    "rotation.next",
    "admin.token",
    "web-tls/cert.pem",
    "web-tls/key.pem",
];

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FileEntry {
    /// Its path inside the backup, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its BLAKE3 hash, hex.
    pub blake3: String,
}

/// What the holder of the store wrote (the answer of `POST /v1/backup`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DataPart {
    /// The node's id.
    pub node_id: String,
    /// The node's name.
    pub node_name: String,
    /// When the snapshot began (ms since the Unix epoch): what the node acknowledged before is
    /// in it.
    pub created_at_ms: u64,
    /// The envelope log's length copied.
    pub log_end: u64,
    /// Messages in the store at the snapshot.
    pub messages: u64,
    /// How long the node's writes waited while the store's index was exported (µs).
    #[serde(default)]
    pub writes_paused_us: u64,
    /// The files written.
    pub files: Vec<FileEntry>,
}

/// `POST /v1/backup`: where the node writes the data part.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BackupRequest {
    /// An absolute path that does not exist yet, on a file system the node may write.
    pub into: String,
}

/// `DEST/manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// [`BACKUP_FORMAT`].
    pub format: u32,
    /// The release that wrote it.
    pub liaison_version: String,
    /// The store format of the index and log ([`crate::store::STORE_FORMAT`]).
    pub store_format: u32,
    /// The wire format the node spoke ([`liaison_protocol::codec::WIRE_VERSION`]).
    pub wire_format: u8,
    /// What the data part says.
    #[serde(flatten)]
    pub data: DataPart,
    /// Whether `keys.enc` is there.
    pub keys: bool,
}

/// Writes the data part of a backup of `store` (open in this process) and `dir` into `into`,
/// which must not exist. Blocking.
pub fn write_data(store: &Store, dir: &DataDir, into: &Path) -> Result<DataPart> {
    if !into.is_absolute() {
        return Err(Error::Invalid(format!(
            "the backup path {} is not absolute",
            into.display()
        )));
    }
    let config = dir.config()?;
    let node_id = dir.node_id()?;
    let created_at_ms = crate::clock::now().0;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(into)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Conflict(format!(
                "{} exists; a backup never overwrites anything",
                into.display()
            )),
            _ => Error::io(format!("cannot create {}", into.display()), e),
        })?;
    let written = copy_data(store, dir, into);
    if written.is_err() {
        // Nothing half-written is left behind to be taken for a backup.
        let _ = fs::remove_dir_all(into);
    }
    let snapshot = written?;
    Ok(DataPart {
        node_id: node_id.to_string(),
        node_name: config.name,
        created_at_ms,
        log_end: snapshot.0.log_end,
        messages: snapshot.0.messages,
        writes_paused_us: snapshot.0.paused_us,
        files: snapshot.1,
    })
}

/// The files of [`write_data`], in `into` (created).
fn copy_data(
    store: &Store,
    dir: &DataDir,
    into: &Path,
) -> Result<(crate::store::Snapshot, Vec<FileEntry>)> {
    mkdir(&into.join("store"))?;
    let snapshot = store.snapshot(&into.join(EXPORT), &into.join(LOG))?;
    copy_file(&dir.config_path(), &into.join("node.toml"))?;
    // Attachments held whole (written to a temporary name and renamed, so a name is always a
    // whole file) and the log naming them; unfinished transfers are fetched again.
    let from = store.path().join(ATTACHMENTS);
    if from.is_dir() {
        mkdir(&into.join(ATTACHMENTS))?;
        let named = from.join("named.log");
        if named.exists() {
            copy_file(&named, &into.join(ATTACHMENTS).join("named.log"))?;
        }
        let whole = from.join("whole");
        if whole.is_dir() {
            mkdir(&into.join(ATTACHMENTS).join("whole"))?;
            for entry in fs::read_dir(&whole)
                .map_err(|e| Error::io(format!("cannot list {}", whole.display()), e))?
            {
                let entry = entry.map_err(|e| Error::io("cannot list attachments", e))?;
                let name = entry.file_name();
                copy_file(
                    &entry.path(),
                    &into.join(ATTACHMENTS).join("whole").join(&name),
                )?;
            }
        }
    }
    let files = list_files(into)?;
    sync_dir(into)?;
    Ok((snapshot, files))
}

/// How `liaison backup` gets a passphrase.
#[derive(Debug, Clone, Default)]
pub struct Passphrase {
    /// A file holding it (its first line).
    pub file: Option<PathBuf>,
}

impl Passphrase {
    /// The passphrase: the file's first line, else [`PASSPHRASE_ENV`]; `None` if neither.
    pub fn read(&self) -> Result<Option<Zeroizing<String>>> {
        if let Some(path) = &self.file {
            let text = Zeroizing::new(fs::read_to_string(path).map_err(|e| {
                Error::io(
                    format!("cannot read the passphrase file {}", path.display()),
                    e,
                )
            })?);
            let line = text.lines().next().unwrap_or("");
            return Ok(Some(Zeroizing::new(line.to_owned())));
        }
        match std::env::var(PASSPHRASE_ENV) {
            Ok(v) => Ok(Some(Zeroizing::new(v))),
            Err(_) => Ok(None),
        }
    }
}

/// Finishes a backup whose data part lies in `partial`: adds the keys (if `passphrase`) and
/// the manifest, syncs, and renames it to `dest`.
pub fn finish(
    dir: &DataDir,
    data: DataPart,
    partial: &Path,
    dest: &Path,
    passphrase: Option<&str>,
) -> Result<Manifest> {
    let mut data = data;
    if let Some(passphrase) = passphrase {
        let node_id = dir.node_id()?;
        let mut bundle = KeyBundle::default();
        for name in KEY_FILES {
            let path = dir.root().join(name);
            match fs::read(&path) {
                Ok(bytes) => {
                    bundle.files.push((name.to_owned(), hex::encode(bytes)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
            }
        }
        let sealed = seal_keys(
            &bundle,
            passphrase,
            node_id.as_bytes(),
            &mut rand_core::OsRng,
        )?;
        write_new(&partial.join(KEYS_FILE), &sealed, 0o600)?;
        data.files.push(entry_for(partial, KEYS_FILE)?);
    }
    let manifest = Manifest {
        format: BACKUP_FORMAT,
        liaison_version: env!("CARGO_PKG_VERSION").to_owned(),
        store_format: crate::store::STORE_FORMAT,
        wire_format: liaison_protocol::codec::WIRE_VERSION,
        data,
        keys: passphrase.is_some(),
    };
    let text = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Invalid(format!("cannot encode the manifest: {e}")))?;
    write_new(&partial.join(MANIFEST), &text, 0o600)?;
    sync_dir(partial)?;
    if dest.exists() {
        return Err(Error::Conflict(format!(
            "{} appeared while the backup was written; the backup is left in {}",
            dest.display(),
            partial.display()
        )));
    }
    fs::rename(partial, dest).map_err(|e| {
        Error::io(
            format!("cannot rename {} to {}", partial.display(), dest.display()),
            e,
        )
    })?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    Ok(manifest)
}

/// The path beside `dest` where a backup is written before it is complete.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    dest.with_file_name(name)
}

/// Checks that `dest` and its `.partial` do not exist; returns `dest` made absolute.
pub fn check_dest(dest: &Path) -> Result<PathBuf> {
    let dest = std::path::absolute(dest)
        .map_err(|e| Error::io(format!("cannot resolve {}", dest.display()), e))?;
    if dest.file_name().is_none() {
        return Err(Error::Invalid(format!(
            "{} does not name a directory to create",
            dest.display()
        )));
    }
    if dest.symlink_metadata().is_ok() {
        return Err(Error::Conflict(format!(
            "{} exists; a backup never overwrites anything (choose a new name)",
            dest.display()
        )));
    }
    let partial = partial_path(&dest);
    if partial.symlink_metadata().is_ok() {
        return Err(Error::Conflict(format!(
            "{} exists: an interrupted backup; remove it, or choose another name",
            partial.display()
        )));
    }
    Ok(dest)
}

/// What [`restore`] put in place.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The manifest of the backup.
    pub manifest: Manifest,
    /// Whether key files were restored.
    pub keys: bool,
    /// Messages in the restored store.
    pub messages: usize,
}

/// Reads and checks the manifest of the backup in `src`, and every file it lists.
pub fn verify(src: &Path) -> Result<Manifest> {
    let path = src.join(MANIFEST);
    let text = read_bounded(&path, MAX_MANIFEST)?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| Error::Corrupt(format!("{} is not a backup manifest: {e}", path.display())))?;
    if manifest.format != BACKUP_FORMAT {
        return Err(Error::Invalid(format!(
            "the backup has layout {}; this version reads layout {BACKUP_FORMAT}",
            manifest.format
        )));
    }
    if manifest.store_format != crate::store::STORE_FORMAT {
        return Err(Error::Invalid(format!(
            "the backup holds store format {}; this version reads store format {} (restore it \
             with liaison {})",
            manifest.store_format,
            crate::store::STORE_FORMAT,
            manifest.liaison_version
        )));
    }
    if manifest.wire_format != liaison_protocol::codec::WIRE_VERSION {
        return Err(Error::Invalid(format!(
            "the backup was taken by a node speaking wire format {}; this version speaks {}",
            manifest.wire_format,
            liaison_protocol::codec::WIRE_VERSION
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for f in &manifest.data.files {
        let rel = safe_relative(&f.path)?;
        if !seen.insert(f.path.clone()) {
            return Err(Error::Corrupt(format!(
                "the manifest lists {} twice",
                f.path
            )));
        }
        let got = entry_for(src, &rel.to_string_lossy())?;
        if got.bytes != f.bytes || got.blake3 != f.blake3 {
            return Err(Error::Corrupt(format!(
                "{} does not match the manifest ({} bytes, BLAKE3 {}; the manifest says {} bytes, {}): the backup is damaged",
                src.join(&rel).display(),
                got.bytes,
                got.blake3,
                f.bytes,
                f.blake3
            )));
        }
    }
    for needed in [EXPORT, LOG, "node.toml"] {
        if !seen.contains(needed) {
            return Err(Error::Corrupt(format!(
                "the manifest does not list {needed}"
            )));
        }
    }
    if manifest.keys != seen.contains(KEYS_FILE) {
        return Err(Error::Corrupt(
            "the manifest and the files disagree about the keys".into(),
        ));
    }
    Ok(manifest)
}

/// Makes the data directory `target` (absent, or an empty directory) from the backup in
/// `src`. Everything is checked before anything is written; see the module docs. Must run
/// within a tokio runtime (the store is opened to check it). `passphrase` opens the keys; with
/// `without_keys` they are left out.
pub fn restore(
    src: &Path,
    target: &Path,
    passphrase: Option<&str>,
    without_keys: bool,
) -> Result<Restored> {
    let manifest = verify(src)?;
    let keys = match (manifest.keys && !without_keys, passphrase) {
        (true, Some(p)) => {
            let sealed = read_bounded(&src.join(KEYS_FILE), MAX_KEYS)?;
            let node_id: liaison_protocol::NodeId =
                manifest.data.node_id.parse().map_err(|e| {
                    Error::Corrupt(format!("the manifest's node id is invalid: {e}"))
                })?;
            let bundle = open_keys(&sealed, p, node_id.as_bytes())?;
            for (name, _) in &bundle.files {
                if !KEY_FILES.contains(&name.as_str()) {
                    return Err(Error::Corrupt(format!(
                        "the keys file holds {name}, which is not a key file"
                    )));
                }
            }
            Some(bundle)
        }
        (true, None) => {
            return Err(Error::Invalid(format!(
                "the backup holds encrypted keys: give its passphrase (--passphrase-file, or \
                 {PASSPHRASE_ENV}), or --without-keys to restore everything else"
            )))
        }
        (false, _) => None,
    };
    check_target(target)?;
    let target = std::path::absolute(target)
        .map_err(|e| Error::io(format!("cannot resolve {}", target.display()), e))?;
    // An existing (empty) target may be a mount point, or sit in a directory the node's user
    // may not write (`/var/lib`): the data is then built inside it and moved into place.
    let exists = target.exists();
    let staging = if exists {
        target.join(".restoring")
    } else {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".restoring");
        target.with_file_name(name)
    };
    if staging.symlink_metadata().is_ok() {
        return Err(Error::Conflict(format!(
            "{} exists: an interrupted restore; remove it first",
            staging.display()
        )));
    }
    let placed = build(src, &staging, &manifest, keys.as_ref())
        .and_then(|messages| place(&staging, &target, exists).map(|()| messages));
    let messages = match placed {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    Ok(Restored {
        manifest,
        keys: keys.is_some(),
        messages,
    })
}

/// Moves the data directory built in `staging` to `target`: renames it, or, into an existing
/// empty `target`, renames each of its entries and makes `target` the node's alone (0700).
fn place(staging: &Path, target: &Path, exists: bool) -> Result<()> {
    let rename = |from: &Path, to: &Path| {
        fs::rename(from, to).map_err(|e| {
            Error::io(
                format!("cannot rename {} to {}", from.display(), to.display()),
                e,
            )
        })
    };
    if !exists {
        rename(staging, target)?;
        return match target.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        };
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(target, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("cannot restrict {}", target.display()), e))?;
    for entry in fs::read_dir(staging)
        .map_err(|e| Error::io(format!("cannot list {}", staging.display()), e))?
    {
        let entry = entry.map_err(|e| Error::io("cannot list the restored data", e))?;
        rename(&entry.path(), &target.join(entry.file_name()))?;
    }
    fs::remove_dir(staging)
        .map_err(|e| Error::io(format!("cannot remove {}", staging.display()), e))?;
    sync_dir(target)
}

fn build(
    src: &Path,
    staging: &Path,
    manifest: &Manifest,
    keys: Option<&KeyBundle>,
) -> Result<usize> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(staging)
        .map_err(|e| Error::io(format!("cannot create {}", staging.display()), e))?;
    let dir = DataDir::new(staging);
    copy_file(&src.join("node.toml"), &dir.config_path())?;
    if let Some(bundle) = keys {
        for (name, hex_bytes) in &bundle.files {
            let bytes = Zeroizing::new(hex::decode(hex_bytes).map_err(|_| {
                Error::Corrupt(format!("the keys file holds {name} in a damaged form"))
            })?);
            let path = staging.join(name);
            if let Some(parent) = path.parent() {
                mkdir_all(parent)?;
            }
            write_new(&path, &bytes, 0o600)?;
        }
    }
    let store_dir = dir.store_path();
    mkdir(&store_dir)?;
    crate::store::import_snapshot(&store_dir, &src.join(EXPORT), &src.join(LOG))?;
    for f in &manifest.data.files {
        if f.path.starts_with(&format!("store/{ATTACHMENTS}/")) {
            let rel = safe_relative(&f.path)?;
            let to = staging.join(&rel);
            if let Some(parent) = to.parent() {
                mkdir_all(parent)?;
            }
            copy_file(&src.join(&rel), &to)?;
        }
    }
    crate::restored::mark(
        &dir,
        &crate::restored::Marker {
            node_id: manifest.data.node_id.clone(),
            backup_created_at_ms: manifest.data.created_at_ms,
            restored_at_ms: crate::clock::now().0,
        },
    )?;
    // Opened once: the recovery of a start runs, and the count is checked.
    let store = Store::open(&store_dir).map_err(|e| match e {
        StoreError::InUse { .. } => Error::from(e),
        other => Error::Corrupt(format!("the restored store does not open: {other}")),
    })?;
    let messages = store.message_count();
    drop(store);
    if (messages as u64) < manifest.data.messages {
        return Err(Error::Corrupt(format!(
            "the restored store holds {messages} messages, the backup {}",
            manifest.data.messages
        )));
    }
    sync_dir(staging)?;
    Ok(messages)
}

/// A data directory to restore into must be absent or an empty directory.
fn check_target(target: &Path) -> Result<()> {
    match fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Conflict(format!(
                    "{} is not empty; restore into a new or empty directory (nothing was changed)",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot read {}", target.display()), e)),
    }
}
