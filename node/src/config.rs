//! The node's configuration: `node.toml` in the data directory.
//!
//! Every field has a default except `name`; unknown fields are errors, so a typo is caught
//! rather than silently ignored. Anything that weakens security is named `danger_*`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use liaison_protocol::roster::AuthorityId;
use liaison_protocol::NodeId;
use serde::{Deserialize, Serialize};

/// The default QUIC listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7400";
/// The default HTTP API address.
pub const DEFAULT_API: &str = "127.0.0.1:7480";

/// The contents of `node.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This node's name, shown to peers and officers.
    pub name: String,
    /// UDP address of the QUIC endpoint. Port 0 picks a free port at start-up.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Address (`HOST:PORT`) that `liaison id` prints for peers to dial. Defaults to the
    /// listen address, with an unspecified IP shown as 127.0.0.1.
    #[serde(default)]
    pub advertise: Option<String>,
    /// TCP address of the local HTTP API. Port 0 picks a free port at start-up.
    #[serde(default = "default_api")]
    pub api: SocketAddr,
    /// Serve the API on a non-loopback address. The API carries bearer tokens in clear text.
    #[serde(default)]
    pub danger_api_non_loopback: bool,
    /// Exchange with peers.
    #[serde(default)]
    pub sync: SyncConfig,
    /// The QUIC transport.
    #[serde(default)]
    pub transport: TransportSection,
    /// The officers' web workspace.
    #[serde(default)]
    pub web: WebConfig,
    /// The store.
    #[serde(default)]
    pub store: StoreSection,
    /// Attachments: what is fetched eagerly, how fast they are served.
    #[serde(default)]
    pub attachments: AttachmentsSection,
    /// The Prometheus metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsSection,
    /// Federation authorities and their rosters.
    #[serde(default)]
    pub federation: FederationSection,
    /// Groups this node owns.
    #[serde(default)]
    pub groups: GroupsSection,
}

/// The `[federation]` section: which authorities this node trusts (see WIRE.md §12).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationSection {
    /// Public keys (64 hex characters) of the authorities whose rosters this node takes.
    pub authorities: Vec<String>,
    /// A roster file to take at every start (relative to the data directory), besides the
    /// rosters the node already holds and those its peers send.
    pub roster: Option<String>,
    /// How long after a roster's `valid_until` its entries are still admitted for new
    /// connections, in milliseconds.
    pub expiry_grace_ms: u64,
    /// How long before a roster's `valid_until` the node starts warning, in milliseconds.
    pub warn_before_ms: u64,
    /// Node ids (64 hex characters) of roster entries this node refuses to admit.
    pub refuse: Vec<String>,
}

impl Default for FederationSection {
    fn default() -> Self {
        FederationSection {
            authorities: Vec::new(),
            roster: None,
            expiry_grace_ms: 24 * 3600 * 1000,
            warn_before_ms: 14 * 24 * 3600 * 1000,
            refuse: Vec::new(),
        }
    }
}

/// The `[metrics]` section: Prometheus metrics on a listener of their own (see
/// `node/src/metrics.rs` and `docs/operations.md`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// TCP address serving `GET /metrics` without a token; none (the default) serves no
    /// metrics. The metrics name peers and groups and count traffic, but carry no message,
    /// key or token: bind it to loopback or a management network that only the Prometheus
    /// server reaches. Port 0 picks a free port at start-up.
    pub listen: Option<SocketAddr>,
}

/// The `[attachments]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttachmentsSection {
    /// Largest attachment an officer may upload here, in MiB (at most 50, the protocol's
    /// limit).
    pub max_mb: u64,
    /// Attachments up to this size (MiB) are fetched as soon as their message arrives; larger
    /// ones when an officer opens them (or a peer asks this node for them). 0 fetches nothing
    /// eagerly.
    pub eager_max_mb: u64,
}

impl Default for AttachmentsSection {
    fn default() -> Self {
        AttachmentsSection {
            max_mb: 50,
            eager_max_mb: 25,
        }
    }
}

impl FederationSection {
    /// The authority keys, parsed.
    pub fn authority_ids(&self) -> Result<Vec<AuthorityId>, String> {
        self.authorities
            .iter()
            .map(|a| {
                a.parse::<AuthorityId>()
                    .map_err(|e| format!("federation.authorities: {a:?}: {e}"))
            })
            .collect()
    }

    /// The refused node ids, parsed.
    pub fn refused_ids(&self) -> Result<Vec<NodeId>, String> {
        self.refuse
            .iter()
            .map(|n| {
                n.parse::<NodeId>()
                    .map_err(|e| format!("federation.refuse: {n:?}: {e}"))
            })
            .collect()
    }
}

/// The `[groups]` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupsSection {
    /// Open a new key epoch in every group this node owns once the current one is this old
    /// (a duration such as `"7days"` or `"12h"`); unset: only membership changes do.
    pub rotate_after: Option<String>,
}

impl GroupsSection {
    /// [`GroupsSection::rotate_after`] as a duration.
    pub fn rotate_after(&self) -> Result<Option<Duration>, String> {
        self.rotate_after
            .as_deref()
            .map(|text| {
                humantime::parse_duration(text)
                    .map_err(|e| format!("groups.rotate_after {text:?}: {e}"))
            })
            .transpose()
    }
}

/// The default address of the web workspace.
pub const DEFAULT_WEB: &str = "127.0.0.1:7443";

/// The `[web]` section: the officers' web workspace (see `node/src/web/`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// Serve the workspace at all.
    pub enabled: bool,
    /// TCP address of the workspace. On loopback it is served over plain HTTP unless a
    /// certificate is given; any other address is served over HTTPS only.
    pub listen: SocketAddr,
    /// The organisation's certificate chain (PEM). With `tls_key`, the workspace is served
    /// over HTTPS with it; without, an address beyond loopback gets a self-signed certificate
    /// kept in `DATA/web-tls/`, whose SHA-256 fingerprint `liaison run` prints.
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key of `tls_cert` (PEM).
    pub tls_key: Option<std::path::PathBuf>,
    /// Every officer must confirm a TOTP code at login (officers without one set it up at
    /// their next login).
    pub require_totp: bool,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: u64,
    /// A session ends this many minutes after login, however active.
    pub session_absolute_minutes: u64,
    /// Failed logins of one officer name, in a row, before it is locked.
    pub lockout_after: u32,
    /// How long a locked officer name stays locked, in minutes.
    pub lockout_minutes: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 7443)),
            tls_cert: None,
            tls_key: None,
            require_totp: false,
            session_idle_minutes: 30,
            session_absolute_minutes: 12 * 60,
            lockout_after: 5,
            lockout_minutes: 15,
        }
    }
}

impl WebConfig {
    /// Whether the workspace is served over HTTPS: always beyond loopback, and whenever the
    /// operator gave a certificate.
    pub fn https(&self) -> bool {
        !self.listen.ip().is_loopback() || self.tls_cert.is_some()
    }
}

/// The `[store]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// Memory for the store engine's page cache, in MiB.
    pub cache_mb: u64,
    /// Free disk space the store keeps, in MiB: below it new messages (posts and messages
    /// from peers) are refused, while reads, their audit records and everything else small
    /// go on. 0 turns the check off.
    pub min_free_mb: u64,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            cache_mb: crate::store::DEFAULT_CACHE_BYTES / (1024 * 1024),
            min_free_mb: crate::store::DEFAULT_MIN_FREE_BYTES / (1024 * 1024),
        }
    }
}

impl StoreSection {
    /// The store's options.
    pub fn options(&self) -> crate::store::StoreOptions {
        crate::store::StoreOptions {
            cache_bytes: self.cache_mb.saturating_mul(1024 * 1024),
            min_free_bytes: self.min_free_mb.saturating_mul(1024 * 1024),
        }
    }
}

/// The `[sync]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// How often to exchange version vectors with each connected peer, in milliseconds.
    pub interval_ms: u64,
    /// Forward messages received from their author to other connected members at once, as a
    /// group owner always does.
    pub relay: bool,
    /// Rejected inputs tolerated from a peer within an hour before its connection is
    /// dropped (and dropped again at once if it reconnects meanwhile).
    pub max_strikes: u32,
    /// How far ahead of this node's clock a time signed by another node may be, in
    /// milliseconds: messages created, or receipts stored, further in the future are refused.
    pub max_clock_skew_ms: u64,
    /// Most groups of one owner this node joins.
    pub max_groups_per_owner: usize,
    /// Most control events (membership changes, key rotations) this node applies per group.
    pub max_controls_per_group: usize,
    /// Most message bytes this node takes from one author per day.
    pub max_author_bytes_per_day: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let engine = liaison_protocol::sync::Config::default();
        SyncConfig {
            interval_ms: 5_000,
            relay: false,
            max_strikes: 16,
            max_clock_skew_ms: engine.max_clock_skew_ms,
            max_groups_per_owner: engine.max_groups_per_owner,
            max_controls_per_group: engine.max_controls_per_group,
            max_author_bytes_per_day: engine.max_author_bytes_per_day,
        }
    }
}

/// The `[transport]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransportSection {
    /// QUIC keep-alive interval, in milliseconds.
    pub keep_alive_ms: u64,
    /// Idle timeout after which a silent connection is closed, in milliseconds.
    pub idle_timeout_ms: u64,
    /// First redial delay after a failed connection attempt, in milliseconds (doubles up to
    /// `redial_max_ms`).
    pub redial_min_ms: u64,
    /// Longest redial delay, in milliseconds.
    pub redial_max_ms: u64,
}

impl Default for TransportSection {
    fn default() -> Self {
        TransportSection {
            keep_alive_ms: 5_000,
            idle_timeout_ms: 30_000,
            redial_min_ms: 500,
            redial_max_ms: 30_000,
        }
    }
}

impl TransportSection {
    /// The keep-alive interval.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_millis(self.keep_alive_ms)
    }
    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7400))
}

fn default_api() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7480))
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the expected fields.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, naming the line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// A fresh config with defaults.
    pub fn new(name: &str, listen: SocketAddr, api: SocketAddr) -> Config {
        Config {
            name: name.to_owned(),
            listen,
            advertise: None,
            api,
            danger_api_non_loopback: false,
            sync: SyncConfig::default(),
            transport: TransportSection::default(),
            // A node whose API takes a free port (tests, the demo) takes one for the web too.
            web: WebConfig {
                listen: if api.port() == 0 {
                    SocketAddr::new(api.ip(), 0)
                } else {
                    WebConfig::default().listen
                },
                ..WebConfig::default()
            },
            store: StoreSection::default(),
            attachments: AttachmentsSection::default(),
            federation: FederationSection::default(),
            groups: GroupsSection::default(),
            metrics: MetricsSection::default(),
        }
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and checks config text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.display().to_string(),
            message: one_line(&e.to_string()),
        })?;
        config.check().map_err(|message| ConfigError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if let Err(e) = liaison_protocol::fields::check_node_name(&self.name) {
            return Err(format!("name {:?}: {e}", self.name));
        }
        if let Some(a) = &self.advertise {
            if let Err(e) = liaison_protocol::fields::check_address(a) {
                return Err(format!("advertise {a:?}: {e}"));
            }
        }
        self.federation.authority_ids()?;
        self.federation.refused_ids()?;
        if let Some(Duration::ZERO) = self.groups.rotate_after()? {
            return Err("groups.rotate_after must be longer than zero".into());
        }
        if !self.api.ip().is_loopback() && !self.danger_api_non_loopback {
            return Err(format!(
                "api address {} is not loopback; set danger_api_non_loopback = true to allow it",
                self.api
            ));
        }
        if self.web.tls_cert.is_some() != self.web.tls_key.is_some() {
            return Err("web.tls_cert and web.tls_key go together: give both or neither".into());
        }
        if self.web.session_idle_minutes == 0
            || self.web.session_absolute_minutes < self.web.session_idle_minutes
        {
            return Err(
                "web.session_idle_minutes must be positive and at most web.session_absolute_minutes"
                    .into(),
            );
        }
        if self.web.lockout_after == 0 || self.web.lockout_minutes == 0 {
            return Err("web.lockout_after and web.lockout_minutes must be positive".into());
        }
        if self.sync.max_strikes == 0 {
            return Err(
                "sync.max_strikes must be at least 1: a peer that misbehaves must be disconnected \
                 at some point"
                    .into(),
            );
        }
        if self.sync.interval_ms < 10 {
            return Err("sync.interval_ms must be at least 10".into());
        }
        if self.transport.idle_timeout_ms <= self.transport.keep_alive_ms {
            return Err("transport.idle_timeout_ms must exceed transport.keep_alive_ms".into());
        }
        if self.transport.redial_min_ms == 0
            || self.transport.redial_max_ms < self.transport.redial_min_ms
        {
            return Err(
                "transport.redial_min_ms must be positive and at most redial_max_ms".into(),
            );
        }
        if !(4..=1024 * 1024).contains(&self.store.cache_mb) {
            return Err("store.cache_mb must be between 4 and 1048576".into());
        }
        Ok(())
    }

    /// Renders the config as commented TOML, as `init` writes it. Without an `advertise`
    /// address it writes a commented-out line to fill in.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        let advertise = if self.advertise.is_none() {
            "# The HOST:PORT peers dial (`liaison id` prints it); without it, the listen address.\n\
             # advertise = \"node.example.org:7400\"\n\n"
        } else {
            ""
        };
        format!(
            "# Liaison node configuration. Reference: config/node.example.toml.\n\
             # Changes take effect when the node is restarted.\n\n{advertise}{body}"
        )
    }
}

fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip() {
        let c = Config::new("rilo", default_listen(), default_api());
        let back = Config::parse(&c.to_toml(), Path::new("node.toml")).expect("parses");
        assert_eq!(back.name, "rilo");
        assert_eq!(back.listen, default_listen());
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = Config::parse("name = \"x\"\nlisten = 12\n", Path::new("/d/node.toml"))
            .expect_err("bad type");
        let msg = err.to_string();
        assert!(msg.contains("/d/node.toml"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn example_configs_parse() {
        for (name, text) in [
            (
                "node.example.toml",
                include_str!("../../config/node.example.toml"),
            ),
            ("demo.toml", include_str!("../../config/demo.toml")),
        ] {
            Config::parse(text, Path::new(name)).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn unknown_fields_and_remote_api_refused() {
        assert!(Config::parse("name = \"x\"\nlisen = \"1.2.3.4:5\"\n", Path::new("n")).is_err());
        let err = Config::parse("name = \"x\"\napi = \"0.0.0.0:7480\"\n", Path::new("n"))
            .expect_err("remote api");
        assert!(err.to_string().contains("danger_api_non_loopback"));
    }
}
