//! The one error type callers can act on, and its single mapping to `tonic::Status`.
//!
//! Internal failures keep their cause chain for the log and reach clients only
//! as a generic message; everything else names what the caller must change.

use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is malformed or out of range.
    #[error("invalid argument `{field}`: {message}")]
    InvalidArgument { field: String, message: String },
    /// The operation does not fit the current state (e.g. deleting a resource with children).
    #[error("{0}")]
    FailedPrecondition(String),
    /// No such thing (or the caller may not know it exists).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The thing exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Missing, malformed, expired or revoked credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated, but not allowed.
    #[error("{0}")]
    PermissionDenied(String),
    /// A quota or rate limit was hit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// NATS (or another dependency) is unreachable; retrying later may work.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: a bug or an unexpected dependency failure.
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::InvalidArgument`] for `field`.
    pub fn invalid(field: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::InvalidArgument { field: field.into(), message: message.to_string() }
    }

    /// An [`Error::NotFound`] naming the kind and id, e.g. `resource 01H...`.
    pub fn not_found(kind: &str, id: impl fmt::Display) -> Self {
        Error::NotFound { what: format!("{kind} {id}") }
    }

    /// An [`Error::Internal`] from any error, with context.
    pub fn internal(context: &'static str, err: impl Into<anyhow::Error>) -> Self {
        Error::Internal(err.into().context(context))
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        use tonic::Status;
        match err {
            Error::InvalidArgument { .. } => Status::invalid_argument(err.to_string()),
            Error::FailedPrecondition(m) => Status::failed_precondition(m),
            Error::NotFound { .. } => Status::not_found(err.to_string()),
            Error::AlreadyExists(_) => Status::already_exists(err.to_string()),
            Error::Unauthenticated(m) => Status::unauthenticated(m),
            Error::PermissionDenied(m) => Status::permission_denied(m),
            Error::ResourceExhausted(m) => Status::resource_exhausted(m),
            Error::Unavailable(m) => Status::unavailable(m),
            Error::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                Status::internal("internal error; see the server log")
            }
        }
    }
}
