//! The subcommands of `liaison peer|roster|key|authority|quarantine|user|store|group|attachment|record`.

use super::*;

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
