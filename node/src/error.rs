//! The node's error type: what went wrong, with context an operator can act on.

use liaison_protocol::{Rejection, UsageError};

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
    /// The caller already runs as many queries (or event streams) as one principal may at
    /// once: try again once one has finished.
    #[error("{0}")]
    Busy(String),
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
