//! How quinn's connection, read and write errors become transport errors,
//! and the reasons carried by CONNECTION_CLOSE.

use super::*;

pub(super) fn reason_bytes(reason: &str) -> &[u8] {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason.as_bytes()[..end]
}

/// Whether a QUIC transport error code is a TLS alert (RFC 9001 §4.8),
/// i.e. the peer's TLS stack refused us.
pub(super) fn is_tls_alert(code: quinn::TransportErrorCode) -> bool {
    (0x100..0x200).contains(&u64::from(code))
}

/// What a failure while connecting means to the caller.
pub(super) fn connect_error(addr: &str, e: ConnectionError) -> TransportError {
    match e {
        ConnectionError::ConnectionClosed(c) if is_tls_alert(c.error_code) => {
            TransportError::Refused(format!("{addr} refused the handshake: {c}"))
        }
        // A listener at its connection limits turns connections away
        // before the handshake.
        ConnectionError::ConnectionClosed(c)
            if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            TransportError::Refused(format!(
                "{addr} refused the connection (too many connections)"
            ))
        }
        ConnectionError::ApplicationClosed(c) => TransportError::Refused(format!(
            "{addr} closed the connection: {}",
            String::from_utf8_lossy(&c.reason)
        )),
        ConnectionError::TimedOut => TransportError::Unreachable(format!("{addr}: no answer")),
        ConnectionError::TransportError(t) if is_tls_alert(t.code) => {
            TransportError::Refused(format!("handshake with {addr} failed: {t}"))
        }
        other => TransportError::Io(format!("{addr}: {other}")),
    }
}

/// What the end of a connection means to a receiver: `None` for an orderly
/// close, an error otherwise.
pub(super) fn closed_result(e: ConnectionError) -> Result<Option<Envelope>, TransportError> {
    match e {
        ConnectionError::LocallyClosed => Ok(None),
        ConnectionError::ApplicationClosed(c) if c.error_code == VarInt::from_u32(code::CLOSED) => {
            Ok(None)
        }
        ConnectionError::ApplicationClosed(c) => Err(TransportError::Closed(Some(format!(
            "peer closed the connection with code {}: {}",
            c.error_code,
            String::from_utf8_lossy(&c.reason)
        )))),
        ConnectionError::TimedOut => Err(TransportError::Closed(Some(
            "peer stopped answering (idle timeout)".into(),
        ))),
        other => Err(TransportError::Closed(Some(other.to_string()))),
    }
}

pub(super) fn read_error(e: ReadError) -> Result<Option<Envelope>, TransportError> {
    match e {
        ReadError::ConnectionLost(c) => closed_result(c),
        ReadError::Reset(code) => Err(TransportError::Closed(Some(format!(
            "peer reset the stream (code {code})"
        )))),
        other => Err(TransportError::Io(other.to_string())),
    }
}

pub(super) fn write_error(e: WriteError) -> TransportError {
    match e {
        WriteError::ConnectionLost(c) => match closed_result(c) {
            Ok(_) => TransportError::Closed(None),
            Err(e) => e,
        },
        WriteError::Stopped(code) => {
            TransportError::Closed(Some(format!("peer stopped reading (code {code})")))
        }
        other => TransportError::Io(other.to_string()),
    }
}

pub(super) fn preamble_read_error(e: ReadExactError) -> Result<(), ConnectionOrOther> {
    match e {
        ReadExactError::ReadError(ReadError::ConnectionLost(c)) => {
            Err(ConnectionOrOther::Connection(c))
        }
        other => Err(ConnectionOrOther::Other(format!(
            "reading the preamble: {other}"
        ))),
    }
}

pub(super) fn preamble_write_error(e: WriteError) -> Result<(), ConnectionOrOther> {
    match e {
        WriteError::ConnectionLost(c) => Err(ConnectionOrOther::Connection(c)),
        other => Err(ConnectionOrOther::Other(format!(
            "writing the preamble: {other}"
        ))),
    }
}

/// A failure while setting a connection up.
pub(super) enum ConnectionOrOther {
    Connection(ConnectionError),
    Other(String),
}

impl From<ConnectionError> for ConnectionOrOther {
    fn from(e: ConnectionError) -> Self {
        Self::Connection(e)
    }
}
