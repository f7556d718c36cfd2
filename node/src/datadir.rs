//! The data directory: configuration, keys, the admin token, the store and the runtime file.
//!
//! ```text
//! DATA/node.toml       configuration (see config/node.example.toml)
//! DATA/identity.key    ed25519 identity seed, hex, mode 0600
//! DATA/exchange.key    X25519 secret, hex, mode 0600
//! DATA/previous.keys   keys from before each rotation, with the rotation statement, mode 0600
//! DATA/rotation.next   a rotation being made (finished at the next start if interrupted)
//! DATA/admin.token     admin bearer token, mode 0600
//! DATA/store/          the store: the sled database and the envelope log
//! DATA/runtime.json    addresses actually bound by the running node (removed at shutdown)
//! DATA/restored.json   left by `liaison restore` until the node caught up (crate::restored)
//! ```

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use liaison_protocol::{ExchangeSecret, IdentityKey, NodeId};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::{Error, Result};

/// Paths inside one node's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What the running node writes so that the CLI and `liaison id` find it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Runtime {
    /// The bound QUIC address.
    pub quic: SocketAddr,
    /// The bound API address.
    pub api: SocketAddr,
    /// The daemon's process id.
    pub pid: u32,
    /// The web workspace's URL, when it is served.
    #[serde(default)]
    pub web: Option<String>,
}

impl DataDir {
    /// The data directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> DataDir {
        DataDir { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `node.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("node.toml")
    }
    fn identity_path(&self) -> PathBuf {
        self.root.join("identity.key")
    }
    fn exchange_path(&self) -> PathBuf {
        self.root.join("exchange.key")
    }
    fn previous_path(&self) -> PathBuf {
        self.root.join("previous.keys")
    }
    fn rotation_path(&self) -> PathBuf {
        self.root.join("rotation.next")
    }
    /// `admin.token`.
    pub fn token_path(&self) -> PathBuf {
        self.root.join("admin.token")
    }
    /// The sled database directory.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }
    fn runtime_path(&self) -> PathBuf {
        self.root.join("runtime.json")
    }

    /// Creates a new node: directory, keys, admin token, config. Refuses to touch an existing
    /// node.
    pub fn init<R: rand_core::CryptoRng + rand_core::RngCore>(
        &self,
        config: &Config,
        rng: &mut R,
    ) -> Result<IdentityKey> {
        if self.config_path().exists() || self.identity_path().exists() {
            return Err(Error::Conflict(format!(
                "a node already exists in {}; choose another --data directory",
                self.root.display()
            )));
        }
        fs::create_dir_all(&self.root)
            .map_err(|e| Error::io(format!("cannot create {}", self.root.display()), e))?;
        fs::set_permissions(&self.root, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(format!("cannot restrict {}", self.root.display()), e))?;
        let identity = IdentityKey::generate(rng);
        let exchange = ExchangeSecret::generate(rng);
        write_secret(&self.identity_path(), &hex::encode(*identity.seed()))?;
        write_secret(&self.exchange_path(), &hex::encode(*exchange.to_bytes()))?;
        let mut token = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(token.as_mut());
        write_secret(
            &self.token_path(),
            &format!("lsn_admin_{}", hex::encode(*token)),
        )?;
        write_new(&self.config_path(), config.to_toml().as_bytes(), 0o600)?;
        Ok(identity)
    }

    /// Reads `node.toml`.
    pub fn config(&self) -> Result<Config> {
        let path = self.config_path();
        if !path.exists() {
            return Err(Error::NotFound(format!(
                "no node in {}: run `liaison init --name NAME` first, or pass --data",
                self.root.display()
            )));
        }
        Ok(Config::load(&path)?)
    }

    /// Moves the node to new keys, as `statement` (a signed rotation statement) says. The
    /// rotation is written as a whole to `rotation.next` first and then carried out; a rotation
    /// interrupted by a crash is finished by the next [`DataDir::keys`]. The current keys go to
    /// `previous.keys` with the statement, so that the node can still read what was wrapped to
    /// them.
    pub fn rotate_keys(
        &self,
        identity: &IdentityKey,
        exchange: &ExchangeSecret,
        statement: &[u8],
    ) -> Result<()> {
        let text = Zeroizing::new(format!(
            "{} {} {}\n",
            hex::encode(*identity.seed()),
            hex::encode(*exchange.to_bytes()),
            hex::encode(statement)
        ));
        replace_secret(&self.rotation_path(), text.as_bytes())?;
        self.finish_rotation()
    }

    /// Carries out a rotation written to `rotation.next`, if there is one; idempotent.
    fn finish_rotation(&self) -> Result<()> {
        let path = self.rotation_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let mut parts = text.split_whitespace();
        let (Some(seed), Some(secret), Some(statement), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Corrupt(format!(
                "{} is not a rotation (remove it to keep the current keys)",
                path.display()
            )));
        };
        let new_identity = IdentityKey::from_seed(&*hex32(seed, &path)?);
        let current_seed = read_hex32(&self.identity_path())?;
        let current_secret = read_hex32(&self.exchange_path())?;
        if IdentityKey::from_seed(&current_seed).node_id() != new_identity.node_id()
            || hex::encode(*current_secret) != secret
        {
            // Not carried out yet: the current keys join the previous ones first.
            let mut previous = match fs::read_to_string(self.previous_path()) {
                Ok(t) => Zeroizing::new(t),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Zeroizing::new(String::new()),
                Err(e) => {
                    return Err(Error::io(
                        format!("cannot read {}", self.previous_path().display()),
                        e,
                    ))
                }
            };
            let line = format!(
                "{} {} {}",
                hex::encode(*current_seed),
                hex::encode(*current_secret),
                statement
            );
            if !previous.lines().any(|l| l.trim() == line) {
                previous.push_str(&line);
                previous.push('\n');
                replace_secret(&self.previous_path(), previous.as_bytes())?;
            }
            replace_secret(&self.identity_path(), seed.as_bytes())?;
            replace_secret(&self.exchange_path(), secret.as_bytes())?;
        }
        fs::remove_file(&path)
            .map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
        sync_dir(&self.root)
    }

    /// The keys this node had before each rotation, oldest first, each with the statement
    /// that moved it away from them.
    pub fn previous_keys(&self) -> Result<Vec<(IdentityKey, ExchangeSecret, Vec<u8>)>> {
        let path = self.previous_path();
        let text = match fs::read_to_string(&path) {
            Ok(t) => Zeroizing::new(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut parts = line.split_whitespace();
            let (Some(seed), Some(secret), Some(statement)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(Error::Corrupt(format!(
                    "{}: a line is not SEED SECRET STATEMENT",
                    path.display()
                )));
            };
            let identity = IdentityKey::from_seed(&*hex32(seed, &path)?);
            let exchange = ExchangeSecret::from_bytes(&*hex32(secret, &path)?)
                .map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))?;
            let statement = hex::decode(statement).map_err(|_| {
                Error::Corrupt(format!("{}: a statement is not hex", path.display()))
            })?;
            out.push((identity, exchange, statement));
        }
        Ok(out)
    }

    /// Reads the node's keys (finishing a rotation that was interrupted).
    pub fn keys(&self) -> Result<(IdentityKey, ExchangeSecret)> {
        self.finish_rotation()?;
        let seed = read_hex32(&self.identity_path())?;
        let exchange = read_hex32(&self.exchange_path())?;
        let exchange = ExchangeSecret::from_bytes(&exchange)
            .map_err(|e| Error::Corrupt(format!("{}: {e}", self.exchange_path().display())))?;
        Ok((IdentityKey::from_seed(&seed), exchange))
    }

    /// The identity key as `identity.key` holds it now (a rotation replaces it).
    pub fn identity_key(&self) -> Result<IdentityKey> {
        Ok(IdentityKey::from_seed(&*read_hex32(&self.identity_path())?))
    }

    /// The node id of this data directory's node, from its identity key.
    pub fn node_id(&self) -> Result<NodeId> {
        Ok(self.identity_key()?.node_id())
    }

    /// Reads the admin token; an empty or short one is refused (it would let anyone in).
    pub fn admin_token(&self) -> Result<Zeroizing<String>> {
        let path = self.token_path();
        let text = Zeroizing::new(fs::read_to_string(&path).map_err(|e| {
            Error::io(format!("cannot read the admin token {}", path.display()), e)
        })?);
        let token = Zeroizing::new(text.trim().to_owned());
        if token.len() < MIN_TOKEN_LEN {
            return Err(Error::Invalid(format!(
                "the admin token in {} is {}: it must be at least {MIN_TOKEN_LEN} characters; \
                 write a new random one, e.g. `echo lsn_admin_$(openssl rand -hex 32) > {}`",
                path.display(),
                if token.is_empty() {
                    "empty"
                } else {
                    "too short"
                },
                path.display()
            )));
        }
        Ok(token)
    }

    /// Refuses to run a node whose secrets other users of the machine could change or read:
    /// the data directory must not be writable by group or others (they could swap the keys
    /// or the store), and the key and token files must be the owner's alone. Each refusal says
    /// the command that fixes it.
    pub fn check_permissions(&self) -> Result<()> {
        let open = |path: &Path, what: &str, forbidden: u32, fix: u32| -> Result<()> {
            let meta = fs::metadata(path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & forbidden != 0 {
                return Err(Error::Invalid(format!(
                    "{what} {} is open to other users of this machine (mode {mode:o}); \
                     run `chmod {fix:o} {}`",
                    path.display(),
                    path.display()
                )));
            }
            Ok(())
        };
        open(&self.root, "the data directory", 0o022, 0o700)?;
        for (path, what) in [
            (self.identity_path(), "the identity key"),
            (self.exchange_path(), "the exchange key"),
            (self.token_path(), "the admin token"),
        ] {
            open(&path, what, 0o077, 0o600)?;
        }
        Ok(())
    }

    /// Writes the runtime file.
    pub fn write_runtime(&self, runtime: &Runtime) -> Result<()> {
        let path = self.runtime_path();
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(runtime).map_err(|e| Error::Invalid(e.to_string()))?;
        fs::write(&tmp, text)
            .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
        fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
    }

    /// Reads the runtime file, if the node is (or was last) running.
    pub fn runtime(&self) -> Option<Runtime> {
        let text = fs::read(self.runtime_path()).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Removes the runtime file.
    pub fn clear_runtime(&self) {
        let _ = fs::remove_file(self.runtime_path());
    }
}

fn write_secret(path: &Path, text: &str) -> Result<()> {
    write_new(path, text.as_bytes(), 0o600)
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}

/// The shortest admin token a node accepts (`lsn_admin_` and 64 hex digits are made).
pub const MIN_TOKEN_LEN: usize = 32;

/// Replaces `path` with `bytes` (mode 0600): a temporary file written and synced, then renamed
/// over it.
fn replace_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_new(&tmp, bytes, 0o600)?;
    fs::rename(&tmp, path).map_err(|e| Error::io(format!("cannot replace {}", path.display()), e))
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot sync {}", dir.display()), e))
}

fn hex32(text: &str, path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), out.as_mut()).map_err(|_| {
        Error::Corrupt(format!(
            "{} holds a key that is not 32 bytes of hex",
            path.display()
        ))
    })?;
    Ok(out)
}

fn read_hex32(path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read key file {}", path.display()), e))?,
    );
    let mut out = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), out.as_mut()).map_err(|_| {
        Error::Corrupt(format!(
            "{} does not hold a 32-byte hex key",
            path.display()
        ))
    })?;
    Ok(out)
}
