//! The `liaison` command line: `init`, `id`, `run` and `demo` work directly; every other
//! command drives a running node through its local API.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::client::{segment, Client};
use crate::config::Config;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::views::{self, Created, GroupView, MessageView, PeerView, ReceiptView, Status};

mod backup;
mod batch;

/// Prints one line for a person on standard output, through [`say_line`].
macro_rules! say {
    () => {
        say_line("")
    };
    ($($arg:tt)*) => {
        say_line(&format!($($arg)*))
    };
}

/// Liaison: a federated node for exchanging enforcement intelligence in closed user groups.
#[derive(Debug, Parser)]
#[command(
    name = "liaison",
    version,
    long_version = LONG_VERSION,
    long_about = None,
    after_help = EXIT_CODES.as_str()
)]
pub struct Cli {
    /// The node's data directory.
    #[arg(
        long,
        global = true,
        env = "LIAISON_DATA",
        default_value = "./liaison-data"
    )]
    pub data: PathBuf,
    /// Bearer token for the API (default: the admin token in the data directory).
    #[arg(long, global = true, env = "LIAISON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Log lines on standard error as human-readable text or as one JSON object per line
    /// (for journald, Loki, Elasticsearch). Colours only when standard error is a terminal;
    /// `RUST_LOG` sets the level (e.g. `RUST_LOG=liaison_node=debug`).
    #[arg(
        long,
        global = true,
        env = "LIAISON_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Cmd,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a new node: data directory, keys, admin token, config and store.
    Init {
        /// The node's name, shown to peers (e.g. "customs-nl").
        #[arg(long)]
        name: String,
        /// UDP address for QUIC (port 0: pick a free port at each start).
        #[arg(long, default_value = crate::config::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// TCP address of the local HTTP API (port 0: pick a free port at each start).
        #[arg(long, default_value = crate::config::DEFAULT_API)]
        api: SocketAddr,
        /// The `HOST:PORT` peers dial (a host name or an address); written to node.toml.
        #[arg(long)]
        advertise: Option<String>,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print `NAME NODE_ID HOST:PORT`, the line another node's `peer add` takes.
    Id,
    /// A federation authority's tools; they need no node and no network, so the key can stay
    /// offline.
    #[command(subcommand)]
    Authority(AuthorityCmd),
    /// Federation rosters on this node.
    #[command(subcommand)]
    Roster(RosterCmd),
    /// This node's keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Run the node in the foreground until SIGINT or SIGTERM.
    Run,
    /// Pinned peers.
    #[command(subcommand)]
    Peer(PeerCmd),
    /// Check or rebuild the store (works directly on the data directory; stop the node first).
    #[command(subcommand)]
    Store(StoreCmd),
    /// Closed user groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Post a message to a group; prints its id once it is durably stored.
    Send {
        /// Group id or name.
        group: String,
        /// Post a structured record from this file: the form `liaison record template KIND`
        /// prints, filled in (lines starting with // are comments).
        #[arg(long, conflicts_with_all = ["body", "file", "subject"])]
        record: Option<PathBuf>,
        /// The message this replies to (feedback must reply to an alert or a request).
        #[arg(long, value_name = "ID")]
        reply_to: Option<String>,
        /// Subject line.
        #[arg(long, default_value = "")]
        subject: String,
        /// TLP 2.0 handling code: clear, green, amber, amber+strict, red.
        #[arg(long, default_value = "green")]
        handling: String,
        /// A named recipient `OFFICER@NODE` (repeatable; required for red).
        #[arg(long = "to", value_name = "OFFICER@NODE")]
        to: Vec<String>,
        /// Read the body from this file.
        #[arg(long, conflicts_with = "body")]
        file: Option<PathBuf>,
        /// Attach this file (repeatable): a photo or a document, at most the node's
        /// `[attachments] max_mb`. Image metadata (EXIF GPS position, serial numbers) is
        /// removed unless --keep-metadata is given.
        #[arg(long, value_name = "FILE")]
        attach: Vec<PathBuf>,
        /// Keep the attachments' image metadata as it is (GPS position, camera serial numbers).
        #[arg(long, requires = "attach")]
        keep_metadata: bool,
        /// The body; `-` reads standard input.
        body: Option<String>,
        /// Post every line of this JSON-lines file instead (a message, or a record with its
        /// `kind`, a line); prints a JSON line per item: its file line and its id or its error.
        #[arg(
            long,
            value_name = "FILE.jsonl",
            conflicts_with_all = ["record", "body", "file", "subject", "attach", "reply_to", "to"]
        )]
        batch: Option<PathBuf>,
        /// Print the new message's id and group as one JSON document (not with `--batch`,
        /// which prints JSON lines).
        #[arg(long, conflicts_with = "batch")]
        json: bool,
    },
    /// Attachments of messages.
    #[command(subcommand)]
    Attachment(AttachmentCmd),
    /// Structured records: their kinds, schemas and templates.
    #[command(subcommand)]
    Record(RecordCmd),
    /// The thread a message belongs to: an alert with its feedback, a request with its
    /// answers, and the state of each alert and request.
    Thread {
        /// A message of the thread.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Counts of a group's messages by kind, commodity, outcome, month and state.
    Stats {
        /// Group id or name.
        group: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List messages, newest first, one page at a time.
    Inbox {
        /// Only this group (id or name).
        group: Option<String>,
        /// Messages per page (1 to 1000; 100 by default).
        #[arg(long)]
        limit: Option<usize>,
        /// Where to go on from: the cursor the previous page printed.
        #[arg(long)]
        before: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one message with its body.
    Read {
        /// Message id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delivery receipts of a message.
    Receipts {
        /// Message id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Node status.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Officer accounts (admin token needed).
    #[command(subcommand)]
    User(UserCmd),
    /// Export a group's messages as JSON lines, or its records as one CSV per kind, leaving
    /// out what a handling code keeps in and the nominal section of records.
    Export {
        /// Group id or name.
        group: String,
        /// Output format: `jsonl` (one message per line), or `csv` (needs `--kind` or `--out`).
        #[arg(long, default_value = "jsonl", value_parser = ["jsonl", "csv"])]
        format: String,
        /// With `--format csv`: print the CSV of this kind of record.
        #[arg(long)]
        kind: Option<String>,
        /// With `--format csv`: write `KIND.csv` for every kind present into this directory.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the nominal section (persons, companies) of records.
        #[arg(long)]
        include_nominal: bool,
    },
    /// The audit log (admin token needed).
    Audit {
        /// Only records at or after this time (RFC 3339, e.g. 2026-11-22T10:00:00Z) or this
        /// long ago (e.g. 2h, 30min).
        #[arg(long)]
        since: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// `verify`: check the hash chain and name the first broken record. `checkpoint`:
        /// have the node sign the chain's head now, and write it to `--out`; keep it where
        /// whoever can write the node's store cannot change it.
        #[arg(value_parser = ["verify", "checkpoint"])]
        action: Option<String>,
        /// With `checkpoint`: the file to write the signed checkpoint to.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// With `verify`: also check that the log still holds the record this checkpoint
        /// signed (a history rewritten before it, hashes recomputed and all, does not).
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Take a stored message out of this node's views, or put it back (admin token needed).
    #[command(subcommand)]
    Quarantine(QuarantineCmd),
    /// Stream new messages as they arrive (Ctrl-C stops).
    Watch {
        /// Only this group (id or name).
        group: Option<String>,
        /// Print one JSON document per message.
        #[arg(long)]
        json: bool,
    },
    /// Run a demo federation of four nodes on loopback.
    Demo {
        /// Stop after the transcript; exit non-zero if any step failed.
        #[arg(long)]
        exit: bool,
    },
    /// Measure what a node sustains against this machine's limits (real nodes on loopback):
    /// runs the `liaison-bench` executable beside this one with the same arguments
    /// (`liaison bench --help` for its options).
    #[command(disable_help_flag = true)]
    Bench {
        /// The benchmark's arguments (`--quick`, `--json PATH`, `--scale [N]`, `--help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Write a consistent copy of this node's data into a new directory DEST, while the node
    /// runs (writes pause only while the store's index is exported) or while it is stopped.
    Backup {
        /// The directory to create (never overwritten).
        dest: PathBuf,
        /// Also copy the key files and the admin token, encrypted with a passphrase.
        #[arg(long)]
        with_keys: bool,
        /// A file whose first line is the passphrase (else $LIAISON_BACKUP_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Make the data directory (`--data`, absent or empty; the node stopped) from a backup.
    /// On its next start the node learns its own state from its peers before it posts.
    Restore {
        /// The backup directory.
        src: Option<PathBuf>,
        /// A file whose first line is the passphrase of the keys (else
        /// $LIAISON_BACKUP_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// Restore everything but the keys (put them in place yourself).
        #[arg(long)]
        without_keys: bool,
        /// Let the node post at once on its next start, without first learning its own
        /// sequence numbers from its peers: only if no peer can ever be reached. Without SRC,
        /// it removes the mark a restore left in a stopped node's data directory.
        #[arg(long)]
        skip_catch_up: bool,
    },
    /// Print a shell completion script, e.g. `liaison completions bash >
    /// /usr/share/bash-completion/completions/liaison`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write manual pages (`liaison.1` and one `liaison-COMMAND.1` per command) into a
    /// directory, e.g. `/usr/share/man/man1`.
    Man {
        /// The directory (created if missing).
        dir: PathBuf,
    },
}

/// `liaison authority ...`.
#[derive(Debug, Subcommand)]
pub enum AuthorityCmd {
    /// Make an authority key (never overwrites one); prints the public key nodes trust.
    Init {
        /// Where to write the key (mode 0600).
        #[arg(long, default_value = crate::authority::DEFAULT_KEY)]
        key: PathBuf,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Sign a roster written as TOML (see `liaison authority --help` and the README).
    Sign {
        /// The roster file.
        roster: PathBuf,
        /// The authority key.
        #[arg(long, default_value = crate::authority::DEFAULT_KEY)]
        key: PathBuf,
        /// Where to write the signed roster (default: the roster file with extension
        /// `.roster`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Check a signed roster against the authority it names and print it.
    Show {
        /// The signed roster file.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `liaison roster ...`.
#[derive(Debug, Subcommand)]
pub enum RosterCmd {
    /// Give the running node a signed roster file; it passes it on to its peers.
    Load {
        /// The signed roster file (`liaison authority sign` writes it).
        file: PathBuf,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// The rosters in force and how this node treats each entry.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `liaison key ...`.
#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Move this node to new keys; peers and the groups it is in follow.
    Rotate {
        /// Only the exchange key (to which group keys are wrapped), not the identity.
        #[arg(long)]
        exchange_only: bool,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
}
/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, `span`s.
    Json,
}

/// `liaison --version`: the release and the formats it speaks and stores, so that an operator
/// can tell whether two nodes interoperate and whether a data directory can be opened.
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nwire format ",
    "1",
    "\nstore format ",
    "4"
);

/// The end of `liaison --help`: the exit codes, from the one table of errors
/// ([`crate::error::ANSWERS`]).
static EXIT_CODES: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(crate::error::exit_codes_help);

/// `liaison peer ...`.
#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Pin a peer: `liaison peer add $(liaison --data OTHER id)`.
    Add {
        /// A name for the peer (a-z, 0-9, '.', '-', '_').
        name: String,
        /// Its node id.
        node_id: String,
        /// Its QUIC address, `HOST:PORT` (a host name or an address).
        address: String,
        /// Replace the pin that already has this name or node id.
        #[arg(long)]
        replace: bool,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List pinned peers with their connection state.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Unpin a peer and drop its connection.
    Remove {
        /// Peer name or node id.
        peer: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `liaison quarantine ...`.
#[derive(Debug, Subcommand)]
pub enum QuarantineCmd {
    /// Quarantine a stored message: it stays stored and synced, but no view of this node (inbox,
    /// read, export, thread, stats, watch) shows it until it is released.
    Add {
        /// The message id.
        id: String,
        /// Why (kept with the quarantine and shown).
        #[arg(long)]
        reason: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// The messages quarantined on this node.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// End a message's quarantine: the views show it again.
    Release {
        /// The message id.
        id: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `liaison user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Make an officer account; prints its token once (only a hash is kept).
    Add {
        /// The officer's name (letters, digits, '.', '-', '_').
        name: String,
        /// Grant a group: `GROUP[:read|:post]` (repeatable; default access read).
        #[arg(long = "grant", value_name = "GROUP[:read|:post]")]
        grants: Vec<String>,
        /// Also issue a one-time enrolment link for the web workspace (the officer sets a
        /// password with it).
        #[arg(long, conflicts_with = "password")]
        enrol: bool,
        /// Also issue a one-time password for the web workspace (changed at first login).
        #[arg(long)]
        password: bool,
        /// Give the officer the web workspace's operator pages.
        #[arg(long)]
        operator: bool,
        /// Print the account, its token (and one-time login) as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Grant an officer a group: `GROUP[:read|:post]`.
    Grant {
        /// The officer.
        name: String,
        /// `GROUP[:read|:post]`.
        grant: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Revoke an officer's grant of a group.
    Revoke {
        /// The officer.
        name: String,
        /// Group id or name.
        group: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List officer accounts and their grants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove an officer account.
    Remove {
        /// The officer.
        name: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `liaison store ...`.
#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Check the whole store: every message against its envelope, every envelope against the
    /// index.
    ///
    /// Stop the node first (`liaison store check` refuses a store in use). Opening the store
    /// repairs what a start repairs (half-written files sled left, a damaged `conf` or snapshot,
    /// index entries the envelope log holds and the index lost); then every envelope is read and
    /// its checksum checked. Damaged messages are marked: the node fetches them again from the
    /// peers that hold them when it next runs. Nothing else is changed.
    ///
    /// Exits 0 if the store is sound, 1 if anything is damaged or missing; the report says what,
    /// and whether `liaison store rebuild` would help.
    Check {
        /// Print the report as one JSON document (the exit code is the same).
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the store's index (sled's files) from the envelope log.
    ///
    /// Stop the node first. Use it when `liaison store check` reports entries the index lacks,
    /// or when sled's files are damaged in a way a start does not repair. The envelope log
    /// holds every message, control event and audit record with a checksum, so they all come
    /// back. sled's files are moved into `store/set-aside-SECONDS/`, never deleted. What only
    /// sled holds — peer pins, officer accounts, delivery receipts, marks of damaged messages —
    /// is copied from the old index if it still opens; if it does not, pin the peers and make
    /// the accounts again (receipts come back from peers).
    ///
    /// A start rebuilds the index by itself when sled's files do not open at all.
    Rebuild {
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
}

/// `liaison group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a group owned by this node; prints its id.
    Create {
        /// The group's name.
        name: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Add a peer to a group this node owns.
    ///
    /// This node passes the group's messages to the members it is connected to, and they pass
    /// them on to the members they are connected to. It can see only its own connections: if
    /// the new member is neither a peer of this node (pinned, or in a roster with an address)
    /// nor connected to it now, it is added with a warning, as it receives the group's
    /// messages only if a member it is connected to passes them on.
    Add {
        /// Group id or name.
        group: String,
        /// Peer name or node id.
        peer: String,
        /// member (posts and reads) or reader (reads only).
        #[arg(long, default_value = "member")]
        role: String,
        /// Print the group as it is now (with any warning) as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Remove a member from a group this node owns.
    Remove {
        /// Group id or name.
        group: String,
        /// Peer name or node id.
        peer: String,
        /// Print what was done as one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List groups.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a group and its members.
    Show {
        /// Group id or name.
        group: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let dir = DataDir::new(&cli.data);
    let token = cli.token.clone();
    let client = || Client::for_data_dir(&dir, token.clone());
    match cli.command {
        Cmd::Init {
            name,
            listen,
            api,
            advertise,
            json,
        } => {
            let mut config = Config::new(&name, listen, api);
            config.advertise = advertise;
            // Check the values as a loaded file would be checked.
            Config::parse(&config.to_toml(), &dir.config_path())?;
            let identity = dir.init(&config, &mut rand_core::OsRng)?;
            drop(crate::store::Store::open(&dir.store_path())?);
            if json {
                return print_json(&serde_json::json!({
                    "name": name,
                    "node_id": identity.node_id().to_string(),
                    "data": dir.root(),
                    "config": dir.config_path(),
                    "token_file": dir.token_path(),
                }));
            }
            say!(
                "initialised node {name} ({}) in {}",
                identity.node_id(),
                dir.root().display()
            );
            say!("admin token: {}", dir.token_path().display());
            Ok(())
        }
        Cmd::Id => {
            let config = dir.config()?;
            let (identity, _) = dir.keys()?;
            let bound = dir
                .runtime()
                .map(|r| r.quic)
                .filter(|_| config.listen.port() == 0)
                .unwrap_or(config.listen);
            say!(
                "{} {} {}",
                config.name,
                identity.node_id(),
                crate::node::advertised_address(&config, bound)
            );
            Ok(())
        }
        Cmd::Run => run_daemon(&dir).await,
        Cmd::Demo { exit } => crate::demo::run(exit).await,
        Cmd::Bench { args } => bench(&args).await,
        Cmd::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "liaison", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man { dir } => write_man_pages(&dir),
        Cmd::Backup {
            dest,
            with_keys,
            passphrase_file,
        } => {
            let passphrase = crate::backup::Passphrase {
                file: passphrase_file,
            };
            backup::take(&dir, client, &dest, with_keys, &passphrase).await
        }
        Cmd::Restore {
            src,
            passphrase_file,
            without_keys,
            skip_catch_up,
        } => {
            let passphrase = crate::backup::Passphrase {
                file: passphrase_file,
            };
            backup::restore(
                &dir,
                src.as_deref(),
                &passphrase,
                without_keys,
                skip_catch_up,
            )
            .await
        }
        Cmd::Peer(cmd) => peer(&client()?, cmd).await,
        Cmd::Authority(cmd) => authority(cmd),
        Cmd::Roster(cmd) => roster(&client()?, cmd).await,
        Cmd::Key(KeyCmd::Rotate {
            exchange_only,
            json,
        }) => {
            let r: views::Rotated = client()?
                .post("/v1/key/rotate", &views::RotateKeys { exchange_only })
                .await?;
            if json {
                return print_json(&r);
            }
            if r.old_node_id == r.node_id {
                say!("new exchange key for node {}", r.node_id);
            } else {
                say!("node {} is now {}", r.old_node_id, r.node_id);
            }
            say!(
                "{} owned group(s) moved; peers follow the signed rotation statement",
                r.groups_moved
            );
            Ok(())
        }
        Cmd::Store(cmd) => store(&dir, cmd),
        Cmd::Group(cmd) => group(&client()?, cmd).await,
        Cmd::Send {
            group,
            batch: Some(path),
            ..
        } => batch::send(&client()?, &group, &path).await,
        Cmd::Send {
            group,
            record: Some(path),
            reply_to,
            handling,
            to,
            attach,
            keep_metadata,
            json,
            ..
        } => {
            let mut body = record_body(&path, handling, to, reply_to)?;
            let client = client()?;
            let ids = upload_all(&client, &attach, keep_metadata).await?;
            if let Some(object) = body.as_object_mut() {
                object.insert("attachments".into(), ids.into());
            }
            let created: Created = client
                .post(&format!("/v1/groups/{}/records", segment(&group)), &body)
                .await?;
            posted(&created, &group, json)
        }
        Cmd::Send {
            group,
            record: None,
            reply_to,
            subject,
            handling,
            to,
            file,
            attach,
            keep_metadata,
            body,
            batch: None,
            json,
        } => {
            let body = match (file, body.as_deref()) {
                (Some(path), _) => std::fs::read_to_string(&path)
                    .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?,
                (None, Some("-")) => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|e| Error::io("cannot read standard input", e))?;
                    s
                }
                (None, Some(b)) => b.to_owned(),
                (None, None) => {
                    return Err(Error::Invalid(
                        "no message body: give BODY, --file PATH, or - for standard input".into(),
                    ))
                }
            };
            let client = client()?;
            let attachments = upload_all(&client, &attach, keep_metadata).await?;
            let created: Created = client
                .post(
                    &format!("/v1/groups/{}/messages", segment(&group)),
                    &views::PostMessage {
                        subject,
                        body,
                        handling: Some(handling),
                        to,
                        reply_to,
                        attachments,
                    },
                )
                .await?;
            posted(&created, &group, json)
        }
        Cmd::Record(cmd) => record_cmd(cmd),
        Cmd::Attachment(AttachmentCmd::Get {
            id,
            out,
            wait,
            thumbnail,
        }) => {
            let path = match thumbnail {
                Some(max) => format!("/v1/attachments/{}/thumbnail?max={max}", segment(&id)),
                None => format!("/v1/attachments/{}", segment(&id)),
            };
            attachment_get(&client()?, &path, out, wait).await
        }
        Cmd::Thread { id, json } => {
            let t: views::ThreadView = client()?
                .get(&format!("/v1/messages/{}/thread", segment(&id)))
                .await?;
            if json {
                return print_json(&t);
            }
            for e in &t.entries {
                let state = match (&e.state, &e.closed_by, &e.outcome) {
                    (Some(s), Some(by), _) => format!("  [{s}: {by}]"),
                    (Some(s), None, _) => format!("  [{s}]"),
                    (None, _, Some(o)) => format!("  [{o}]"),
                    _ => String::new(),
                };
                say!(
                    "{}{}  {}  {:<15} {}  {}{}",
                    "  ".repeat(e.depth),
                    e.id.get(..16).unwrap_or(&e.id),
                    e.created_at,
                    e.kind,
                    e.author,
                    e.summary,
                    state
                );
            }
            if let Some(parent) = &t.root_replies_to {
                say!("(the first message replies to {parent}, which is not shown here)");
            }
            Ok(())
        }
        Cmd::Stats { group, json } => {
            let s: views::StatsView = client()?
                .get(&format!("/v1/groups/{}/stats", segment(&group)))
                .await?;
            if json {
                return print_json(&s);
            }
            say!("messages  {}", s.messages);
            for (title, map) in [
                ("by kind", &s.by_kind),
                ("by commodity", &s.by_commodity),
                ("by outcome", &s.by_outcome),
                ("by state", &s.by_state),
                ("by month", &s.by_month),
            ] {
                if map.is_empty() {
                    continue;
                }
                say!("{title}:");
                for (k, n) in map {
                    say!("  {k:<24} {n}");
                }
            }
            Ok(())
        }
        Cmd::Inbox {
            group,
            limit,
            before,
            json,
        } => {
            let mut query = Vec::new();
            if let Some(g) = &group {
                query.push(format!("group={}", segment(g)));
            }
            if let Some(n) = limit {
                query.push(format!("limit={n}"));
            }
            if let Some(c) = &before {
                query.push(format!("before={}", segment(c)));
            }
            let path = if query.is_empty() {
                "/v1/messages".to_owned()
            } else {
                format!("/v1/messages?{}", query.join("&"))
            };
            let page: crate::views::MessagePage = client()?.get(&path).await?;
            let more = page.next.as_ref().map(|next| {
                let mut again = String::from("liaison inbox");
                if let Some(g) = &group {
                    again.push_str(&format!(" {g:?}"));
                }
                if let Some(n) = limit {
                    again.push_str(&format!(" --limit {n}"));
                }
                format!("more: {again} --before {next}")
            });
            if json {
                // The messages alone on stdout; where the next page starts, on stderr.
                if let Some(more) = &more {
                    eprintln!("{more}");
                }
                return print_json(&page.messages);
            }
            if page.messages.is_empty() {
                say!("no messages");
            }
            for m in &page.messages {
                say!("{}", message_line(m));
            }
            if let Some(more) = &more {
                say!("{more}");
            }
            Ok(())
        }
        Cmd::Read { id, json } => {
            let m: MessageView = client()?
                .get(&format!("/v1/messages/{}", segment(&id)))
                .await?;
            if json {
                return print_json(&m);
            }
            say!("Message:  {}", m.id);
            say!("Group:    {} ({})", m.group_name, m.group_id);
            say!(
                "From:     {} [{}] ({})",
                m.author_name,
                m.officer,
                m.author_id
            );
            say!("Date:     {}", m.created_at);
            say!("Handling: TLP:{}", m.handling.to_uppercase());
            say!("Kind:     {}", m.kind);
            say!("Subject:  {}", m.subject);
            if let Some(parent) = &m.reply_to {
                say!("Reply to: {parent}");
            }
            for a in &m.attachments {
                say!(
                    "Attached: {} {} ({}, {} bytes{})",
                    a.id,
                    a.name,
                    a.media_type,
                    a.size,
                    if a.held { "" } else { ", fetched when opened" }
                );
            }
            if let Some(why) = &m.unreadable {
                say!();
                say!("(kept, not readable here: {why})");
            }
            say!();
            say!("{}", m.body.unwrap_or_default());
            Ok(())
        }
        Cmd::Receipts { id, json } => {
            let r: Vec<ReceiptView> = client()?
                .get(&format!("/v1/messages/{}/receipts", segment(&id)))
                .await?;
            if json {
                return print_json(&r);
            }
            if r.is_empty() {
                say!("no receipts yet");
            }
            for x in &r {
                say!("{:<20} {}  {}", x.receiver_name, x.stored_at, x.receiver_id);
            }
            Ok(())
        }
        Cmd::User(cmd) => {
            let web = dir.runtime().and_then(|r| r.web);
            user(&client()?, cmd, web.as_deref()).await
        }
        Cmd::Export {
            group,
            format,
            kind,
            out,
            include_nominal,
        } => {
            let v: views::ExportView = client()?
                .get(&format!(
                    "/v1/groups/{}/export{}",
                    segment(&group),
                    if include_nominal {
                        "?include_nominal=true"
                    } else {
                        ""
                    }
                ))
                .await?;
            if format == "csv" {
                export_csv(&v, kind, out)?;
            } else {
                for m in &v.exported {
                    let line =
                        serde_json::to_string(m).map_err(|e| Error::Invalid(e.to_string()))?;
                    emit_line(&line);
                }
            }
            let withheld = v.exported.iter().filter(|m| m.nominal_withheld).count();
            if withheld > 0 {
                eprintln!(
                    "nominal data left out of {withheld} record(s); --include-nominal keeps it"
                );
            }
            for r in &v.refused {
                eprintln!(
                    "not exported: {} (TLP:{}): {}",
                    r.id,
                    r.handling.to_uppercase(),
                    r.reason
                );
            }
            if !v.refused.is_empty() {
                eprintln!(
                    "{} message(s) exported, {} kept in by their handling code",
                    v.exported.len(),
                    v.refused.len()
                );
            }
            Ok(())
        }
        Cmd::Audit {
            since,
            json,
            action,
            out,
            checkpoint,
        } => match action.as_deref() {
            Some("checkpoint") => {
                let out = out.ok_or_else(|| {
                    Error::Invalid("audit checkpoint needs --out FILE to write it to".into())
                })?;
                audit_checkpoint(&client()?, &out, json).await
            }
            Some(_) => audit_verify(&client()?, checkpoint.as_deref(), json).await,
            None => audit(&client()?, since, json).await,
        },
        Cmd::Quarantine(cmd) => quarantine(&client()?, cmd).await,
        Cmd::Watch { group, json } => watch(&client()?, group, json).await,
        Cmd::Status { json } => {
            let s: Status = client()?.get("/v1/status").await?;
            if json {
                return print_json(&s);
            }
            say!("node      {} ({})", s.name, s.node_id);
            say!("quic      {}", s.quic_addr);
            say!("api       {}", s.api_addr);
            say!("peers     {} pinned, {} connected", s.peers, s.connected);
            say!("groups    {}", s.groups);
            say!("messages  {}", s.messages);
            for r in &s.rosters {
                say!(
                    "roster    {} version {} ({}), {} entries, {} revoked, valid until {}",
                    r.federation,
                    r.version,
                    r.state,
                    r.entries,
                    r.revoked,
                    r.valid_until
                );
            }
            if let Some(w) = &s.roster_warning {
                say!("warning   {w}");
            }
            if let Some(r) = &s.restore {
                say!("{}", backup::status_line(r));
            }
            let free = s
                .store
                .free_bytes
                .map_or("unknown".into(), |b| format!("{} MiB", b / (1024 * 1024)));
            say!(
                "store     {} ({free} free, keeps {} MiB)",
                if s.store.healthy {
                    "healthy"
                } else {
                    "NEEDS ATTENTION"
                },
                s.store.min_free_bytes / (1024 * 1024)
            );
            if let Some(at) = &s.store.last_flush {
                say!(
                    "          last flush {at} ({} since start)",
                    s.store.flushes
                );
            }
            for problem in s.store.problems.iter().chain(&s.store.repaired_at_start) {
                say!("          {problem}");
            }
            if s.faults > 0 {
                say!(
                    "faults    {} inputs failed inside the node (each alone; see its log)",
                    s.faults
                );
            }
            Ok(())
        }
    }
}

/// `liaison store check|rebuild`, on the store of `dir` directly.
fn store(dir: &DataDir, cmd: StoreCmd) -> Result<()> {
    use crate::store::Store;
    let options = dir.config()?.store.options();
    let path = dir.store_path();
    match cmd {
        StoreCmd::Check { json } => {
            let r = Store::check(&path, &options)?;
            if json {
                let mut value =
                    serde_json::to_value(&r).map_err(|e| Error::Invalid(e.to_string()))?;
                if let Some(object) = value.as_object_mut() {
                    object.insert("sound".into(), r.is_sound().into());
                }
                print_json(&value)?;
                return if r.is_sound() {
                    Ok(())
                } else {
                    Err(Error::Corrupt("the store is damaged".into()))
                };
            }
            say!("store     {}", path.display());
            say!("messages  {} in the index", r.messages);
            say!(
                "log       {} frames; {} damaged stretches ({} bytes), {} of them in no \
                 message's place{}",
                r.frames,
                r.damaged_stretches,
                r.damaged_bytes,
                r.unused_stretches,
                if r.unused_stretches > 0 {
                    " (bytes no longer read, or control events and audit records the index \
                     holds; a rebuild cannot bring those back)"
                } else {
                    ""
                }
            );
            say!(
                "damaged   {} messages, marked: the node fetches them again from peers when it runs",
                r.damaged
            );
            say!(
                "missing   {} entries the envelope log holds and the index lacks{}",
                r.unindexed,
                if r.unindexed > 0 {
                    ": run `liaison store rebuild`"
                } else {
                    ""
                }
            );
            for line in opened_lines(&r.opened) {
                say!("opening   {line}");
            }
            if r.is_sound() {
                say!("result    sound");
                Ok(())
            } else {
                Err(Error::Corrupt(
                    "the store is damaged (see above); start the node to fetch damaged messages \
                     again from peers"
                        .into(),
                ))
            }
        }
        StoreCmd::Rebuild { json } => {
            let r = Store::rebuild(&path, &options)?;
            if json {
                return print_json(&r);
            }
            say!(
                "rebuilt the index of {} from the envelope log: {} messages",
                path.display(),
                r.messages
            );
            for line in opened_lines(&r.opened) {
                say!("          {line}");
            }
            if r.salvaged {
                say!("peer pins, accounts and receipts: copied from the old index");
            } else {
                say!(
                    "peer pins, accounts and receipts: lost (the old index does not open); pin \
                     the peers and make the accounts again"
                );
            }
            Ok(())
        }
    }
}

/// What opening the store repaired, in words.
fn opened_lines(opened: &crate::store::OpenReport) -> Vec<String> {
    let health_like = crate::views::StoreStatus::of(&crate::store::Health::from_report(opened));
    health_like.repaired_at_start
}

/// `liaison attachment ...`.
#[derive(Debug, Subcommand)]
pub enum AttachmentCmd {
    /// Save an attachment of a message you may read, decrypted; waits while this node fetches
    /// it from the group's nodes.
    Get {
        /// Attachment id (listed by `liaison read MESSAGE_ID`).
        id: String,
        /// Write it to this file (default: standard output).
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Give up after this many seconds if it is still being fetched.
        #[arg(long, default_value_t = 120)]
        wait: u64,
        /// Save a thumbnail of the photo, this many pixels on its longer edge (16 to 1024),
        /// made by this node, instead of the photo.
        #[arg(long, value_name = "PIXELS")]
        thumbnail: Option<u32>,
    },
}

/// `liaison record ...`.
#[derive(Debug, Subcommand)]
pub enum RecordCmd {
    /// The kinds of record and their schema versions.
    Kinds,
    /// Print a commented example of a kind to fill in and send with `send --record`.
    Template {
        /// note, seizure, cultural_object, alert, request or feedback.
        kind: String,
    },
    /// Print the JSON Schema of a kind.
    Schema {
        /// note, seizure, cultural_object, alert, request or feedback.
        kind: String,
    },
}

fn record_cmd(cmd: RecordCmd) -> Result<()> {
    use liaison_protocol::record::{self, RecordKind};
    let kind = |k: &str| {
        k.parse::<RecordKind>()
            .map_err(|e| Error::Invalid(e.to_string()))
    };
    match cmd {
        RecordCmd::Kinds => {
            for k in RecordKind::ALL {
                say!("{:<16} schema {}  {}", k.as_str(), k.schema(), k.title());
            }
            Ok(())
        }
        RecordCmd::Template { kind: k } => {
            print!("{}", record::template(kind(&k)?));
            Ok(())
        }
        RecordCmd::Schema { kind: k } => print_json(&record::json_schema(kind(&k)?)),
    }
}

/// Uploads each file for the post that follows; reports on standard error what was removed
/// from each. The ids, in order.
async fn upload_all(
    client: &Client,
    files: &[PathBuf],
    keep_metadata: bool,
) -> Result<Vec<String>> {
    let mut ids = Vec::with_capacity(files.len());
    for path in files {
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Invalid(format!("{}: not a file name", path.display())))?;
        let uploaded: crate::attachments::Uploaded = client
            .post_bytes(
                &format!(
                    "/v1/attachments?name={}&keep_metadata={keep_metadata}",
                    segment(name)
                ),
                bytes,
            )
            .await
            .map_err(|e| match e {
                Error::TooLarge(m) => Error::TooLarge(format!("{}: {m}", path.display())),
                Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
                other => other,
            })?;
        if !uploaded.removed.is_empty() {
            eprintln!(
                "{}: removed {}",
                path.display(),
                uploaded.removed.join(", ")
            );
        }
        ids.push(uploaded.id);
    }
    Ok(ids)
}

/// `liaison attachment get`: asks until the node holds the attachment whole, at most `wait`
/// seconds.
async fn attachment_get(
    client: &Client,
    path: &str,
    out: Option<PathBuf>,
    wait: u64,
) -> Result<()> {
    use std::io::Write;
    let started = std::time::Instant::now();
    let (bytes, _) = loop {
        match client.get_bytes(path).await {
            Err(Error::NotYet(m)) if started.elapsed().as_secs() < wait => {
                tracing::debug!(%m, "waiting for the attachment");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            other => break other?,
        }
    };
    match out {
        Some(path) => std::fs::write(&path, &bytes)
            .map_err(|e| Error::io(format!("cannot write {}", path.display()), e)),
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| Error::io("cannot write standard output", e)),
    }
}

/// Reads a record file (a filled-in template; `-` is standard input) into the API's
/// `POST /v1/groups/{group}/records` body.
fn record_body(
    path: &std::path::Path,
    handling: String,
    to: Vec<String>,
    reply_to: Option<String>,
) -> Result<serde_json::Value> {
    let text = if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Error::io("cannot read standard input", e))?;
        s
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?
    };
    let mut value: serde_json::Value =
        serde_json::from_str(&liaison_protocol::record::strip_comments(&text))
            .map_err(|e| Error::Invalid(format!("{} is not JSON: {e}", path.display())))?;
    let Some(object) = value.as_object_mut() else {
        return Err(Error::Invalid(format!(
            "{}: expected {{\"kind\": ..., \"record\": {{...}}}}, as `liaison record template KIND` prints",
            path.display()
        )));
    };
    object.insert("handling".into(), handling.into());
    object.insert("to".into(), to.into());
    if let Some(r) = reply_to {
        object.insert("reply_to".into(), r.into());
    }
    Ok(value)
}

async fn peer(client: &Client, cmd: PeerCmd) -> Result<()> {
    match cmd {
        PeerCmd::Add {
            name,
            node_id,
            address,
            replace,
            json,
        } => {
            let p: PeerView = client
                .post(
                    "/v1/peers",
                    &views::AddPeer {
                        name,
                        node_id,
                        address,
                        replace,
                    },
                )
                .await?;
            if json {
                return print_json(&p);
            }
            say!("pinned {} ({}) at {}", p.name, p.node_id, p.address);
            Ok(())
        }
        PeerCmd::List { json } => {
            let peers: Vec<PeerView> = client.get("/v1/peers").await?;
            if json {
                return print_json(&peers);
            }
            if peers.is_empty() {
                say!("no peers: pin one with `liaison peer add NAME NODE_ID HOST:PORT`");
            }
            for p in &peers {
                say!(
                    "{:<20} {:<12} {:<10} {:<22} {}{}",
                    p.name,
                    p.state,
                    p.source,
                    p.address,
                    p.node_id,
                    p.blocked
                        .as_deref()
                        .or(p.last_error.as_deref())
                        .map(|e| format!("  ({e})"))
                        .unwrap_or_default()
                );
            }
            Ok(())
        }
        PeerCmd::Remove { peer, json } => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/peers/{}", segment(&peer)))
                .await?;
            if json {
                return print_json(&serde_json::json!({ "removed": peer }));
            }
            say!("removed {peer}");
            Ok(())
        }
    }
}

fn authority(cmd: AuthorityCmd) -> Result<()> {
    match cmd {
        AuthorityCmd::Init { key, json } => {
            let id = crate::authority::init(&key, &mut rand_core::OsRng)?;
            if json {
                return print_json(&serde_json::json!({
                    "authority": id.to_string(),
                    "key": key,
                }));
            }
            eprintln!(
                "authority key written to {}; keep it offline. Every node of the federation lists this public key in federation.authorities:",
                key.display()
            );
            say!("{id}");
            Ok(())
        }
        AuthorityCmd::Sign {
            roster,
            key,
            out,
            json,
        } => {
            let (r, path) =
                crate::authority::sign(&key, &roster, out.as_deref(), crate::clock::now())?;
            if json {
                return print_json(&serde_json::json!({
                    "federation": r.federation,
                    "version": r.version,
                    "entries": r.entries.len(),
                    "revocations": r.revocations.len(),
                    "valid_until": views::rfc3339(r.valid_until.0),
                    "out": path,
                }));
            }
            say!(
                "signed {} version {}: {} node(s), {} revoked, valid until {} -> {}",
                r.federation,
                r.version,
                r.entries.len(),
                r.revocations.len(),
                views::rfc3339(r.valid_until.0),
                path.display()
            );
            Ok(())
        }
        AuthorityCmd::Show { file, json } => {
            let (r, _) = crate::authority::read_signed(&file)?;
            if json {
                let value = serde_json::json!({
                    "authority": r.authority.to_string(),
                    "federation": r.federation,
                    "version": r.version,
                    "issued_at": views::rfc3339(r.issued_at.0),
                    "valid_until": views::rfc3339(r.valid_until.0),
                    "entries": r.entries.iter().map(|e| serde_json::json!({
                        "node_id": e.node.to_string(),
                        "name": e.name,
                        "organisation": e.organisation,
                        "country": e.country,
                        "kind": e.kind.to_string(),
                        "addresses": e.addresses,
                    })).collect::<Vec<_>>(),
                    "revocations": r.revocations.iter().map(|x| serde_json::json!({
                        "node_id": x.node.to_string(),
                        "at": views::rfc3339(x.at.0),
                        "reason": x.reason,
                    })).collect::<Vec<_>>(),
                });
                return print_json(&value);
            }
            say!(
                "{} version {} by authority {}",
                r.federation,
                r.version,
                r.authority
            );
            say!(
                "issued {}, valid until {}",
                views::rfc3339(r.issued_at.0),
                views::rfc3339(r.valid_until.0)
            );
            for e in &r.entries {
                say!(
                    "  {:<20} {:<8} {} {:<30} {}",
                    e.name,
                    e.kind,
                    e.country,
                    e.organisation,
                    e.node
                );
            }
            for x in &r.revocations {
                say!(
                    "  revoked {} from {}: {}",
                    x.node,
                    views::rfc3339(x.at.0),
                    x.reason
                );
            }
            Ok(())
        }
    }
}

async fn roster(client: &Client, cmd: RosterCmd) -> Result<()> {
    match cmd {
        RosterCmd::Load { file, json } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
            let r: views::RosterLoaded = client
                .post(
                    "/v1/roster",
                    &views::LoadRoster {
                        roster: hex::encode(bytes),
                    },
                )
                .await?;
            if json {
                return print_json(&r);
            }
            match r.outcome.as_str() {
                "new" => say!(
                    "{} version {} in force: {} joined, {} left, {} newly revoked",
                    r.federation,
                    r.version,
                    r.joined.len(),
                    r.left.len(),
                    r.revoked.len()
                ),
                _ => say!(
                    "{} version {} was already in force",
                    r.federation,
                    r.version
                ),
            }
            Ok(())
        }
        RosterCmd::Show { json } => {
            let rosters: Vec<crate::federation::RosterView> = client.get("/v1/roster").await?;
            if json {
                return print_json(&rosters);
            }
            if rosters.is_empty() {
                say!("no roster: `liaison roster load FILE`, or wait for a peer to pass one on");
            }
            for r in &rosters {
                say!(
                    "{} version {} ({}), valid until {}, authority {}",
                    r.federation,
                    r.version,
                    r.state,
                    r.valid_until,
                    r.authority
                );
                for e in &r.entries {
                    say!(
                        "  {:<20} {:<8} {} {:<24} {}",
                        e.name,
                        e.kind,
                        e.country,
                        e.standing,
                        e.node_id
                    );
                }
                for x in &r.revocations {
                    say!("  revoked {} from {}: {}", x.node_id, x.at, x.reason);
                }
            }
            Ok(())
        }
    }
}

async fn quarantine(client: &Client, cmd: QuarantineCmd) -> Result<()> {
    match cmd {
        QuarantineCmd::Add { id, reason, json } => {
            let q: views::QuarantineView = client
                .post("/v1/quarantine", &views::QuarantineRequest { id, reason })
                .await?;
            if json {
                return print_json(&q);
            }
            say!("quarantined {} ({})", q.id, q.reason);
            Ok(())
        }
        QuarantineCmd::List { json } => {
            let list: Vec<views::QuarantineView> = client.get("/v1/quarantine").await?;
            if json {
                return print_json(&list);
            }
            if list.is_empty() {
                say!("no message is quarantined");
            }
            for q in &list {
                say!("{}  {}  {}", q.id, q.at, q.reason);
            }
            Ok(())
        }
        QuarantineCmd::Release { id, json } => {
            let q: views::QuarantineView = client
                .delete(&format!("/v1/quarantine/{}", segment(&id)))
                .await?;
            if json {
                return print_json(&q);
            }
            say!("released {}", q.id);
            Ok(())
        }
    }
}

async fn group(client: &Client, cmd: GroupCmd) -> Result<()> {
    match cmd {
        GroupCmd::Create { name, json } => {
            let c: Created = client
                .post("/v1/groups", &views::CreateGroup { name: name.clone() })
                .await?;
            if json {
                return print_json(&serde_json::json!({ "id": c.id, "name": name }));
            }
            say!("{}", c.id);
            Ok(())
        }
        GroupCmd::Add {
            group,
            peer,
            role,
            json,
        } => {
            let g: GroupView = client
                .post(
                    &format!("/v1/groups/{}/members", segment(&group)),
                    &views::AddMember {
                        peer: peer.clone(),
                        role: Some(role.clone()),
                    },
                )
                .await?;
            if json {
                return print_json(&g);
            }
            say!("added {peer} to {} as {role} (epoch {})", g.name, g.epoch);
            for w in &g.warnings {
                eprintln!("warning: {w}");
            }
            Ok(())
        }
        GroupCmd::Remove { group, peer, json } => {
            let g: GroupView = client
                .delete(&format!(
                    "/v1/groups/{}/members/{}",
                    segment(&group),
                    segment(&peer)
                ))
                .await?;
            if json {
                return print_json(&g);
            }
            say!("removed {peer} from {} (epoch {})", g.name, g.epoch);
            Ok(())
        }
        GroupCmd::List { json } => {
            let groups: Vec<GroupView> = client.get("/v1/groups").await?;
            if json {
                return print_json(&groups);
            }
            if groups.is_empty() {
                say!("no groups");
            }
            for g in &groups {
                say!(
                    "{}  {:<30} owner {:<16} {:<8} {} members, epoch {}",
                    g.id,
                    g.name,
                    g.owner_name,
                    g.role,
                    g.members.len(),
                    g.epoch
                );
            }
            Ok(())
        }
        GroupCmd::Show { group, json } => {
            let g: GroupView = client
                .get(&format!("/v1/groups/{}", segment(&group)))
                .await?;
            if json {
                return print_json(&g);
            }
            say!("group   {} ({})", g.name, g.id);
            say!("owner   {} ({})", g.owner_name, g.owner_id);
            say!("epoch   {}", g.epoch);
            say!("you     {}", g.role);
            for m in &g.members {
                say!("  {:<20} {:<7} {}", m.name, m.role, m.node_id);
            }
            Ok(())
        }
    }
}

async fn user(client: &Client, cmd: UserCmd, web: Option<&str>) -> Result<()> {
    use crate::api::{AddUser, GrantBody, NewUser, UserView};
    match cmd {
        UserCmd::Add {
            name,
            grants,
            enrol,
            password,
            operator,
            json,
        } => {
            let login = match (enrol, password) {
                (true, _) => Some("enrol".to_owned()),
                (_, true) => Some("password".to_owned()),
                _ => None,
            };
            let body = AddUser {
                name,
                grants,
                login,
                operator,
            };
            let u: NewUser = client.post("/v1/users", &body).await?;
            if json {
                let mut value =
                    serde_json::to_value(&u).map_err(|e| Error::Invalid(e.to_string()))?;
                if let (Some(code), Some(object)) = (&u.enrolment_code, value.as_object_mut()) {
                    let base = web.unwrap_or("https://WORKSPACE/").trim_end_matches('/');
                    object.insert(
                        "enrolment_link".into(),
                        format!("{base}/enrol#{code}").into(),
                    );
                }
                return print_json(&value);
            }
            eprintln!(
                "officer {} created; give them this API token (it is not shown again):",
                u.user.name
            );
            say!("{}", u.token);
            if let Some(code) = &u.enrolment_code {
                let base = web.unwrap_or("https://WORKSPACE/").trim_end_matches('/');
                eprintln!(
                    "web enrolment link (valid 72 hours, once; hand it over through a trusted channel):"
                );
                say!("{base}/enrol#{code}");
            }
            if let Some(p) = &u.password {
                eprintln!("one-time web password (the officer chooses a new one at first login):");
                say!("{p}");
            }
            Ok(())
        }
        UserCmd::Grant { name, grant, json } => {
            let u: UserView = client
                .post(
                    &format!("/v1/users/{}/grants", segment(&name)),
                    &GrantBody { grant },
                )
                .await?;
            if json {
                return print_json(&u);
            }
            say!("{}: {}", u.name, format_grants(&u));
            Ok(())
        }
        UserCmd::Revoke { name, group, json } => {
            let u: UserView = client
                .delete(&format!(
                    "/v1/users/{}/grants/{}",
                    segment(&name),
                    segment(&group)
                ))
                .await?;
            if json {
                return print_json(&u);
            }
            say!("{}: {}", u.name, format_grants(&u));
            Ok(())
        }
        UserCmd::List { json } => {
            let users: Vec<UserView> = client.get("/v1/users").await?;
            if json {
                return print_json(&users);
            }
            if users.is_empty() {
                say!("no officers: add one with `liaison user add NAME --grant GROUP:post`");
            }
            for u in &users {
                say!("{:<20} {}", u.name, format_grants(u));
            }
            Ok(())
        }
        UserCmd::Remove { name, json } => {
            let _: serde_json::Value = client
                .delete(&format!("/v1/users/{}", segment(&name)))
                .await?;
            if json {
                return print_json(&serde_json::json!({ "removed": name }));
            }
            say!("removed {name}");
            Ok(())
        }
    }
}

fn format_grants(u: &crate::api::UserView) -> String {
    if u.grants.is_empty() {
        return "no grants".to_owned();
    }
    u.grants
        .iter()
        .map(|(g, a)| format!("{g}:{a}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `liaison audit checkpoint --out FILE`.
async fn audit_checkpoint(client: &Client, out: &Path, json: bool) -> Result<()> {
    use crate::audit::checkpoint::Checkpoint;
    let c: Checkpoint = client
        .post("/v1/audit/checkpoint", &serde_json::json!({}))
        .await?;
    let text = serde_json::to_string_pretty(&c).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(out, format!("{text}\n"))
        .map_err(|e| Error::io(format!("cannot write {}", out.display()), e))?;
    if json {
        return print_json(&c);
    }
    say!(
        "checkpoint of audit record {} signed at {} written to {}",
        c.seq,
        views::rfc3339(c.at_ms),
        out.display()
    );
    Ok(())
}

/// `liaison audit verify [--checkpoint FILE]`.
async fn audit_verify(client: &Client, checkpoint: Option<&Path>, json: bool) -> Result<()> {
    use crate::audit::checkpoint::Checkpoint;
    use crate::audit::Verification;
    let v: Verification = match checkpoint {
        None => client.get("/v1/audit/verify").await?,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
            let c: Checkpoint = serde_json::from_str(&text).map_err(|e| {
                Error::Invalid(format!(
                    "{} is not an audit checkpoint: {e}",
                    path.display()
                ))
            })?;
            client.post("/v1/audit/verify", &c).await?
        }
    };
    if json {
        return print_json(&v);
    }
    match v.first_broken {
        None => {
            match v.checkpoint {
                Some(seq) => say!(
                    "audit log intact: {} records; record {seq} is the one the checkpoint signed",
                    v.records
                ),
                None => say!("audit log intact: {} records", v.records),
            }
            Ok(())
        }
        Some(seq) => Err(Error::Corrupt(format!(
            "audit log broken at record {seq} of {}: {}",
            v.records,
            v.reason.unwrap_or_default()
        ))),
    }
}

async fn audit(client: &Client, since: Option<String>, json: bool) -> Result<()> {
    use crate::audit::AuditRecord;
    let since_ms = match since {
        None => 0,
        Some(text) => parse_since(&text)?,
    };
    // The node streams a JSON array, one record per line: taken and printed a line at a time,
    // so that a long log is never held whole.
    let mut lines = client
        .lines(&format!("/v1/audit?since_ms={since_ms}"))
        .await?;
    let mut closed = false;
    while let Some(line) = lines.next().await? {
        let item = line.trim().trim_end_matches(',');
        match item {
            "" => continue,
            "[" | "]" => {
                closed = item == "]";
                if json {
                    emit_line(item);
                }
                continue;
            }
            _ => {}
        }
        let r: AuditRecord = serde_json::from_str(item)
            .map_err(|e| Error::Invalid(format!("unexpected audit record from the node: {e}")))?;
        if json {
            emit_line(line.trim());
            continue;
        }
        say!(
            "{:>6} {} {:<20} {:<14} {:<12} {}",
            r.seq,
            views::rfc3339(r.at_ms),
            r.actor,
            r.action,
            r.outcome,
            r.target
        );
    }
    if !closed {
        return Err(Error::Invalid(
            "the node's audit log answer broke off before its end (see the node's log)".into(),
        ));
    }
    Ok(())
}

fn parse_since(text: &str) -> Result<u64> {
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        let d = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| Error::Invalid("--since is before 1970".into()))?;
        return Ok(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = u64::try_from(ago.as_millis()).unwrap_or(u64::MAX);
        return Ok(crate::clock::now().0.saturating_sub(ago));
    }
    Err(Error::Invalid(format!(
        "--since {text:?} is neither a time (2026-11-22T10:00:00Z) nor a duration (2h)"
    )))
}

async fn watch(client: &Client, group: Option<String>, json: bool) -> Result<()> {
    let path = match &group {
        Some(g) => format!("/v1/events?group={}", segment(g)),
        None => "/v1/events".to_owned(),
    };
    let mut events = client.events(&path).await?;
    while let Some(data) = events.next().await? {
        let Ok(m) = serde_json::from_str::<MessageView>(&data) else {
            continue;
        };
        if json {
            let line = serde_json::to_string(&m).map_err(|e| Error::Invalid(e.to_string()))?;
            emit_line(&line);
        } else {
            say!("{}", message_line(&m));
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    Err(Error::NotRunning(format!(
        "the node closed the event stream ({}): it stopped",
        client.base()
    )))
}

/// One line per message, as `inbox` and `watch` print them.
fn message_line(m: &MessageView) -> String {
    format!(
        "{}  {}  {:<12} {:<20} {} [{}] {}",
        m.id.get(..16).unwrap_or(&m.id),
        m.created_at,
        m.handling.to_uppercase(),
        m.group_name,
        m.author_name,
        m.officer,
        m.subject
    )
}

/// Writes the records of an export as CSV: one kind to standard output, or every kind present
/// to `DIR/KIND.csv`.
fn export_csv(v: &views::ExportView, kind: Option<String>, out: Option<PathBuf>) -> Result<()> {
    use liaison_protocol::RecordKind;
    let csv = |kind: &str| {
        crate::records::csv(kind, &v.exported).map_err(|e| Error::Invalid(format!("CSV: {e}")))
    };
    match (kind, out) {
        (Some(k), None) => {
            let k: RecordKind = k.parse().map_err(|e| Error::Invalid(format!("{e}")))?;
            print!("{}", csv(k.as_str())?);
            Ok(())
        }
        (None, Some(dir)) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            for k in RecordKind::ALL {
                if !v.exported.iter().any(|m| m.kind == k.as_str()) {
                    continue;
                }
                let path = dir.join(format!("{}.csv", k.as_str()));
                std::fs::write(&path, csv(k.as_str())?)
                    .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        _ => Err(Error::Invalid(
            "--format csv needs either --kind KIND (to standard output) or --out DIR".into(),
        )),
    }
}

/// `text` as it may be shown on a terminal: every control character but line feed and tab
/// (escape sequences a remote author could use to repaint the screen, or a TLP label) and
/// every bidirectional formatting character is shown as its code, `\u{1b}`.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char =
        |c: char| c != '\n' && c != '\t' && liaison_protocol::fields::is_refused_char(c);
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Prints `text` and a newline for a person, made [`terminal_safe`].
pub(crate) fn say_line(text: &str) {
    emit_line(&terminal_safe(text));
}

/// Prints `text` and a newline as it is (JSON, which escapes what it must). A reader that has
/// gone (`liaison inbox | head`) ends the command quietly, as for other Unix tools.
fn emit_line(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// What `send` prints: the new message's id, or with `--json` the id and the group as named.
fn posted(created: &Created, group: &str, json: bool) -> Result<()> {
    if json {
        return print_json(&serde_json::json!({ "id": created.id, "group": group }));
    }
    say!("{}", created.id);
    Ok(())
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Invalid(e.to_string()))?;
    emit_line(&text);
    Ok(())
}

/// Runs the node in the foreground until SIGINT or SIGTERM.
async fn run_daemon(dir: &DataDir) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Watched before the node starts, so that no signal finds the default action (which ends
    // the process) once the node answers.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io("cannot watch SIGTERM", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot watch SIGINT", e))?;
    // There is nothing to reload on SIGHUP: peers, groups and officers change at once through
    // the API and live in the store, and `node.toml` holds addresses and limits bound at
    // start. A SIGHUP (a `kill -HUP` meant for another daemon, a closed terminal) is logged and
    // the node runs on.
    let mut hup = signal(SignalKind::hangup()).map_err(|e| Error::io("cannot watch SIGHUP", e))?;
    let node = crate::daemon::start(dir).await?;
    say!(
        "{} running: node {} quic {} api {}",
        node.name,
        node.node_id,
        node.quic_addr,
        node.api_addr
    );
    if let Some(url) = &node.web_url {
        say!("web workspace: {url}");
    }
    if let Some(addr) = node.metrics_addr {
        println!("metrics: http://{addr}/metrics");
    }
    if let Some(fingerprint) = &node.web_fingerprint {
        say!(
            "web certificate (self-signed) SHA-256 fingerprint: {fingerprint}\n  \
             officers compare it with what their browser shows before they accept it"
        );
    }
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
            _ = hup.recv() => tracing::info!(
                "SIGHUP: nothing to reload (peers and officers take effect at once through the \
                 API; node.toml is read at start): running on"
            ),
        }
    }
    node.shutdown().await
}

/// Writes `liaison.1` and one page per command (and per subcommand, `liaison-group-add.1`) into
/// `dir`; hidden commands get none.
fn write_man_pages(dir: &std::path::Path) -> Result<()> {
    fn write(dir: &std::path::Path, command: &clap::Command) -> Result<()> {
        // After `build`, a subcommand's display name is its full path: `liaison-group-add`.
        let name = command.get_display_name().unwrap_or(command.get_name());
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command.clone())
            .render(&mut page)
            .map_err(|e| Error::io(format!("render {}", path.display()), e))?;
        std::fs::write(&path, page)
            .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        // clap's generated `help` subcommands repeat what each page already says.
        let pages = command
            .get_subcommands()
            .filter(|c| !c.is_hide_set() && c.get_name() != "help");
        for sub in pages {
            write(dir, sub)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let mut command = <Cli as clap::CommandFactory>::command();
    command.build();
    write(dir, &command)
}

/// `liaison bench ARGS`: the benchmark is its own executable, `liaison-bench`, built beside
/// `liaison` (`cargo build --release -p liaison-bench`); this runs it with the same arguments
/// and the same standard input and output, and fails as it fails.
async fn bench(args: &[std::ffi::OsString]) -> Result<()> {
    let me = std::env::current_exe().map_err(|e| Error::io("cannot find this executable", e))?;
    let exe = me.with_file_name(format!("liaison-bench{}", std::env::consts::EXE_SUFFIX));
    if !exe.is_file() {
        return Err(Error::Invalid(format!(
            "`liaison bench` runs {}, which is not there; build it with `cargo build --release \
             -p liaison-bench` (it is built beside liaison)",
            exe.display()
        )));
    }
    let status = tokio::process::Command::new(&exe)
        .args(args)
        .status()
        .await
        .map_err(|e| Error::io(format!("cannot run {}", exe.display()), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{} failed ({status})",
            exe.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn remote_text_cannot_drive_the_terminal() {
        assert_eq!(
            terminal_safe("\u{1b}[2K\rTLP:CLEAR"),
            "\\u{1b}[2K\\u{d}TLP:CLEAR"
        );
        assert_eq!(terminal_safe("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(
            terminal_safe("two\nlines\tand a tab"),
            "two\nlines\tand a tab"
        );
        assert!(matches!(
            terminal_safe("Saisie à Anvers"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    /// `--version` states the formats this build really speaks and stores.
    #[test]
    fn long_version_names_the_real_formats() {
        let want = format!(
            "{}\nwire format {}\nstore format {}",
            env!("CARGO_PKG_VERSION"),
            liaison_protocol::codec::WIRE_VERSION,
            crate::store::STORE_FORMAT
        );
        assert_eq!(super::LONG_VERSION, want);
    }
}
