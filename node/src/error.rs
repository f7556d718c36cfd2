//! The node's error type: what went wrong, with context an operator can act on.
//!
//! How an error crosses the local API and how it ends the `liaison` CLI is one table,
//! [`ANSWERS`]: the API answers an error with its row's HTTP status, the CLI's client turns a
//! status back into the row's error, and the CLI exits with the row's exit code.

use axum::http::StatusCode;
use liaison_protocol::{FieldError, Rejection, UsageError};

use crate::store::StoreError;

/// An error of the node.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] crate::transport::TransportError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Something named does not exist (or the caller may not know it exists).
    #[error("{0}")]
    NotFound(String),
    /// The node a command was meant for is not running: nothing answers at its API address.
    #[error("{0}")]
    NotRunning(String),
    /// The request is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A record is invalid: each problem at its JSON pointer.
    #[error("invalid record: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidRecord(Vec<liaison_protocol::FieldError>),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller is not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// What was sent is larger than this node accepts.
    #[error("{0}")]
    TooLarge(String),
    /// What was asked for is not here yet (an attachment being fetched): ask again later.
    #[error("{0}")]
    NotYet(String),
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
    /// Handling the request failed inside the node (a fault, logged there); the node goes on.
    #[error("{0}")]
    Internal(&'static str),
    /// Stored data could not be read back.
    #[error("corrupt data: {0}")]
    Corrupt(String),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<UsageError> for Error {
    fn from(e: UsageError) -> Self {
        match e {
            UsageError::NotAMember(_)
            | UsageError::ReaderMayNotPost(_)
            | UsageError::NotOwner(_) => Error::Forbidden(e.to_string()),
            UsageError::AlreadyMember(_)
            | UsageError::SequenceUnconfirmed(_)
            | UsageError::RestorePending(_)
            | UsageError::NameTaken(_) => Error::Conflict(e.to_string()),
            UsageError::NoSuchMember(_) => Error::NotFound(e.to_string()),
            UsageError::InvalidRecord(fields) => Error::InvalidRecord(fields),
            _ => Error::Invalid(e.to_string()),
        }
    }
}

impl From<Rejection> for Error {
    fn from(e: Rejection) -> Self {
        Error::Corrupt(e.to_string())
    }
}

/// The node's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Each kind of error, as the API answers it and as the CLI ends with it: one row per kind,
/// each with its own HTTP status, so that the CLI tells a status back into its kind.
pub const ANSWERS: [Answer; 10] = [
    Answer::new(Kind::Invalid, 400, 1, "the request is invalid"),
    Answer::new(Kind::InvalidRecord, 422, 1, "a record is invalid"),
    Answer::new(
        Kind::NotRunning,
        0,
        3,
        "the node is not running (start it with `liaison run`)",
    ),
    Answer::new(
        Kind::Refused,
        403,
        4,
        "the token is wrong, or may not do this",
    ),
    Answer::new(Kind::NotFound, 404, 5, "not found"),
    Answer::new(Kind::Conflict, 409, 6, "conflicts with the node's state"),
    Answer::new(Kind::TooLarge, 413, 1, "too large"),
    Answer::new(
        Kind::Unavailable,
        503,
        7,
        "not yet, or not now: try again later",
    ),
    Answer::new(Kind::DiskFull, 507, 1, "the node's disk is full"),
    Answer::new(
        Kind::Failed,
        500,
        1,
        "any other failure (the node's log says more)",
    ),
];

/// The exit code of a command line the CLI cannot parse (clap's).
pub const EXIT_USAGE: u8 = 2;

/// One row of [`ANSWERS`].
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The kind of error.
    pub kind: Kind,
    /// The HTTP status the API answers it with (0: never answered, it happens in the CLI).
    pub status: u16,
    /// The exit code the CLI ends with.
    pub exit: u8,
    /// What it means, for the CLI's help.
    pub means: &'static str,
}

impl Answer {
    const fn new(kind: Kind, status: u16, exit: u8, means: &'static str) -> Answer {
        Answer {
            kind,
            status,
            exit,
            means,
        }
    }
}

/// The kinds of error of [`ANSWERS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`Error::Invalid`], and what the CLI cannot tell apart from it.
    Invalid,
    /// [`Error::InvalidRecord`].
    InvalidRecord,
    /// [`Error::NotRunning`].
    NotRunning,
    /// [`Error::Forbidden`]: a token the node does not know (401 from the API), or one that
    /// may not do this (403).
    Refused,
    /// [`Error::NotFound`].
    NotFound,
    /// [`Error::Conflict`].
    Conflict,
    /// [`Error::TooLarge`].
    TooLarge,
    /// [`Error::NotYet`], [`Error::ShuttingDown`], and a store that refuses writes for now.
    Unavailable,
    /// A store whose disk is full.
    DiskFull,
    /// Anything else: a fault of the node, logged there.
    Failed,
}

impl Error {
    /// This error's kind (its row of [`ANSWERS`]).
    pub fn kind(&self) -> Kind {
        match self {
            Error::Invalid(_) => Kind::Invalid,
            Error::InvalidRecord(_) => Kind::InvalidRecord,
            Error::NotRunning(_) => Kind::NotRunning,
            Error::Forbidden(_) => Kind::Refused,
            Error::NotFound(_) => Kind::NotFound,
            Error::Conflict(_) => Kind::Conflict,
            Error::TooLarge(_) => Kind::TooLarge,
            Error::NotYet(_) | Error::ShuttingDown => Kind::Unavailable,
            Error::Store(e) if e.is_disk_full() => Kind::DiskFull,
            Error::Store(StoreError::FlushFailed { .. } | StoreError::Reopening { .. }) => {
                Kind::Unavailable
            }
            _ => Kind::Failed,
        }
    }

    /// The HTTP status the API answers this error with.
    pub fn status(&self) -> StatusCode {
        let status = answer(self.kind()).status;
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The exit code the CLI ends with on this error.
    pub fn exit_code(&self) -> u8 {
        answer(self.kind()).exit
    }

    /// The error an API answer with `status` (not a success) stands for, with the node's
    /// `message` and, for an invalid record, the `fields` at fault. A wrong token (401) is
    /// refused like a token that may not do this.
    pub fn from_status(status: u16, message: String, fields: Vec<FieldError>) -> Error {
        let status = if status == 401 { 403 } else { status };
        let kind = ANSWERS
            .iter()
            .find(|a| a.status == status)
            .map_or(Kind::Failed, |a| a.kind);
        match kind {
            Kind::InvalidRecord if !fields.is_empty() => Error::InvalidRecord(fields),
            Kind::Refused => Error::Forbidden(message),
            Kind::NotFound => Error::NotFound(message),
            Kind::Conflict => Error::Conflict(message),
            Kind::TooLarge => Error::TooLarge(message),
            Kind::Unavailable => Error::NotYet(message),
            Kind::NotRunning => Error::NotRunning(message),
            Kind::Invalid | Kind::InvalidRecord | Kind::DiskFull | Kind::Failed => {
                Error::Invalid(message)
            }
        }
    }
}

/// `kind`'s row of [`ANSWERS`].
fn answer(kind: Kind) -> Answer {
    ANSWERS
        .iter()
        .find(|a| a.kind == kind)
        .copied()
        .unwrap_or(Answer::new(Kind::Failed, 500, 1, ""))
}

/// The exit codes of the CLI, for its `--help`: one line per code, from [`ANSWERS`].
pub fn exit_codes_help() -> String {
    let mut out = String::from("Exit codes:\n  0  success\n");
    let mut codes: Vec<(u8, Vec<&str>)> = Vec::new();
    for a in ANSWERS {
        match codes.iter_mut().find(|(c, _)| *c == a.exit) {
            Some((_, means)) => means.push(a.means),
            None => codes.push((a.exit, vec![a.means])),
        }
    }
    codes.push((EXIT_USAGE, vec!["the command line is not understood"]));
    codes.sort_by_key(|(c, _)| *c);
    for (code, means) in codes {
        out.push_str(&format!("  {code}  {}\n", means.join("; ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_one_row_and_every_status_one_kind() {
        let kinds = [
            Kind::Invalid,
            Kind::InvalidRecord,
            Kind::NotRunning,
            Kind::Refused,
            Kind::NotFound,
            Kind::Conflict,
            Kind::TooLarge,
            Kind::Unavailable,
            Kind::DiskFull,
            Kind::Failed,
        ];
        for kind in kinds {
            assert_eq!(
                ANSWERS.iter().filter(|a| a.kind == kind).count(),
                1,
                "{kind:?}"
            );
        }
        for a in ANSWERS {
            assert_eq!(ANSWERS.iter().filter(|b| b.status == a.status).count(), 1);
            assert_ne!(a.exit, 0, "{:?} exits as a success", a.kind);
            assert_ne!(a.exit, EXIT_USAGE, "{:?} exits as a usage error", a.kind);
        }
    }

    /// What the API answers, the CLI's client reads back as the same kind of error (the kinds
    /// the CLI has no error of its own for read back as invalid, and exit alike).
    #[test]
    fn an_answered_error_reads_back_as_its_kind() {
        let errors = [
            Error::Invalid("x".into()),
            Error::InvalidRecord(vec![FieldError::new("/a", "b")]),
            Error::Forbidden("x".into()),
            Error::NotFound("x".into()),
            Error::Conflict("x".into()),
            Error::TooLarge("x".into()),
            Error::NotYet("x".into()),
            Error::ShuttingDown,
            Error::Internal("x"),
        ];
        for e in errors {
            let fields = match &e {
                Error::InvalidRecord(f) => f.clone(),
                _ => Vec::new(),
            };
            let back = Error::from_status(e.status().as_u16(), e.to_string(), fields);
            let want = match e.kind() {
                Kind::Failed | Kind::DiskFull => Kind::Invalid,
                k => k,
            };
            assert_eq!(back.kind(), want, "{e:?} came back as {back:?}");
            assert_eq!(back.exit_code(), e.exit_code(), "{e:?}");
        }
        // A token the node does not know is refused like one that may not do this.
        let wrong = Error::from_status(401, "wrong bearer token".into(), Vec::new());
        assert_eq!(wrong.kind(), Kind::Refused);
        let down = Error::NotRunning("down".into());
        assert_eq!(down.exit_code(), 3);
    }

    #[test]
    fn the_help_names_every_exit_code() {
        let help = exit_codes_help();
        for a in ANSWERS {
            assert!(help.contains(&format!("  {}  ", a.exit)), "{help}");
            assert!(help.contains(a.means), "{help}");
        }
        assert!(help.contains(&format!("  {EXIT_USAGE}  ")), "{help}");
    }

    /// The README's table of exit codes has a row for every code, and no other.
    #[test]
    fn the_readme_lists_every_exit_code() {
        let readme = include_str!("../../README.md");
        let mut listed: Vec<u8> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| exit code |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.split('|').nth(1)?.trim().parse().ok())
            .collect();
        listed.sort_unstable();
        let mut codes: Vec<u8> = ANSWERS.iter().map(|a| a.exit).collect();
        codes.extend([0, EXIT_USAGE]);
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(listed, codes, "README.md's exit codes");
    }
}
