//! Rust failures turned into the exception classes of `inferix.errors`.
//!
//! The classes are plain Python (so they can also derive from the built-in
//! `ValueError`, `ConnectionError`, …); Rust looks them up by name when it
//! raises, which keeps one definition for the stubs, the docs and the code.

use std::any::Any;

use inferix_core::blob::BlobError;
use inferix_core::protocol::ErrorCode;
use inferix_local::LocalNetworkError;
use inferix_node::ClientError;
use inferix_transport::TransportError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// Which exception class of `inferix.errors` to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `InferixError`, the base: failures with no finer class.
    Inferix,
    /// `InvalidInput`: an argument of the wrong type or value.
    InvalidInput,
    /// `SceneNotFound`: the scene file does not exist.
    SceneNotFound,
    /// `ConnectionError`: the manager cannot be reached or went away.
    Connection,
    /// `AuthenticationError`: the manager refused the token or identity.
    Authentication,
    /// `QuoteError`: the manager refused to price or accept the job.
    Quote,
    /// `JobNotFound`: no such job on this manager.
    JobNotFound,
    /// `Timeout`: a wait ran past its limit.
    Timeout,
    /// `InternalError`: a bug, including a Rust panic.
    Internal,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Self::Inferix => "InferixError",
            Self::InvalidInput => "InvalidInput",
            Self::SceneNotFound => "SceneNotFound",
            Self::Connection => "ConnectionError",
            Self::Authentication => "AuthenticationError",
            Self::Quote => "QuoteError",
            Self::JobNotFound => "JobNotFound",
            Self::Timeout => "Timeout",
            Self::Internal => "InternalError",
        }
    }
}

/// A failure on its way to Python: the class and a message for the user.
#[derive(Debug)]
pub(crate) struct Error {
    kind: Kind,
    message: String,
}

impl Error {
    /// An error of `kind` saying `message`.
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Shorthand for [`Kind::InvalidInput`].
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(Kind::InvalidInput, message)
    }

    /// A panic caught at the boundary, so Python sees an exception instead
    /// of the process aborting.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Self::new(
            Kind::Internal,
            format!("internal error (Rust panic): {what}"),
        )
    }

    /// A client failure; `during` names the operation for the message and
    /// decides what an invalid request means (a refused quote or submit is
    /// a [`Kind::Quote`]).
    pub(crate) fn client(e: ClientError, during: Op) -> Self {
        let kind = match &e {
            ClientError::Refused { code, .. } => match code {
                ErrorCode::Unauthorized => Kind::Authentication,
                ErrorCode::NotFound => Kind::JobNotFound,
                ErrorCode::InvalidRequest | ErrorCode::TooLarge => match during {
                    Op::Quote | Op::Submit => Kind::Quote,
                    _ => Kind::InvalidInput,
                },
                ErrorCode::PaymentRequired | ErrorCode::LimitExceeded => Kind::Quote,
                ErrorCode::Forbidden => Kind::Authentication,
                ErrorCode::VersionMismatch => Kind::Connection,
                ErrorCode::Internal | ErrorCode::UnexpectedMessage => Kind::Internal,
                _ => Kind::Inferix,
            },
            ClientError::Transport(t) => transport_kind(t),
            // For a client the blob backend is the manager connection.
            ClientError::Blob(BlobError::Backend(_)) => Kind::Connection,
            ClientError::Blob(BlobError::TooLarge { .. }) => Kind::InvalidInput,
            ClientError::UnknownSceneFormat(_) => Kind::InvalidInput,
            ClientError::Io { source, .. } if during == Op::Upload => match source.kind() {
                std::io::ErrorKind::NotFound => Kind::SceneNotFound,
                _ => Kind::InvalidInput,
            },
            ClientError::Unexpected(_) => Kind::Internal,
            _ => Kind::Inferix,
        };
        Self::new(kind, format!("{}: {e}", during.describe()))
    }

    /// A local network that did not start.
    pub(crate) fn local(e: LocalNetworkError) -> Self {
        let kind = match &e {
            LocalNetworkError::Invalid(_) => Kind::InvalidInput,
            LocalNetworkError::Transport(t) => transport_kind(t),
            _ => Kind::Inferix,
        };
        Self::new(kind, format!("cannot start the local network: {e}"))
    }
}

fn transport_kind(t: &TransportError) -> Kind {
    match t {
        TransportError::Refused(_) => Kind::Authentication,
        _ => Kind::Connection,
    }
}

/// The client operation a failure happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Connecting and saying hello.
    Connect,
    /// Uploading the scene file.
    Upload,
    /// Asking for a quote.
    Quote,
    /// Submitting a job.
    Submit,
    /// Reading a job's status or events.
    Status,
    /// Downloading frames.
    Download,
    /// Cancelling a job.
    Cancel,
    /// Pausing or resuming a job.
    Pause,
    /// Claiming frames are bad.
    Claim,
}

impl Op {
    fn describe(self) -> &'static str {
        match self {
            Self::Connect => "cannot connect to the manager",
            Self::Upload => "cannot upload the scene",
            Self::Quote => "quote failed",
            Self::Submit => "submit failed",
            Self::Status => "cannot read the job",
            Self::Download => "download failed",
            Self::Pause => "cannot pause or resume the job",
            Self::Claim => "claim failed",
            Self::Cancel => "cancel failed",
        }
    }
}

fn class<'py>(py: Python<'py>, kind: Kind) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("inferix.errors")?
        .getattr(kind.class_name())?
        .cast_into::<PyType>()?)
}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        Python::attach(|py| match class(py, e.kind) {
            Ok(ty) => PyErr::from_type(ty, e.message),
            Err(lookup) => lookup,
        })
    }
}
