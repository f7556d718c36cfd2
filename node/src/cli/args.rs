//! The command line's shape: `liaison` and its commands, as clap parses them.

use super::*;

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
pub(super) const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\nwire format ",
    "1",
    "\nstore format ",
    "4"
);

/// The end of `liaison --help`: the exit codes, from the one table of errors
/// ([`crate::error::ANSWERS`]).
pub(super) static EXIT_CODES: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(crate::error::exit_codes_help);
