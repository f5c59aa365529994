//! Why a PostgreSQL store failed, and how server and pool errors map to
//! the store's typed errors.

use super::*;

/// Why a PostgreSQL store could not be opened or subscribed to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The connection URL does not parse.
    #[error("invalid PostgreSQL connection URL: {reason}")]
    InvalidUrl {
        /// Parser message (the URL itself is left out: it may hold a
        /// password).
        reason: String,
    },
    /// The schema name is not a plain identifier.
    #[error("invalid schema name {schema:?}: {reason}")]
    InvalidSchema {
        /// The name given.
        schema: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No connection could be made (server down or starting, wrong
    /// port, no free connection slot); retrying later may succeed.
    #[error("PostgreSQL at {target} unreachable after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// Host, port and database (no credentials).
        target: String,
        /// Connection attempts made.
        attempts: u32,
        /// The last attempt's error.
        reason: String,
    },
    /// The server answered but refused the session (unknown database or
    /// role, bad password, not allowed by its access rules): retrying
    /// will not help until the configuration changes.
    #[error("PostgreSQL at {target} refused the connection: {reason}")]
    Refused {
        /// Host, port and database (no credentials).
        target: String,
        /// The server's message.
        reason: String,
    },
    /// A root certificate file named by `sslrootcert` is missing,
    /// unreadable, or holds no usable PEM certificate.
    #[error("root certificate file {}: {reason}", path.display())]
    RootCert {
        /// The file, as the connection string names it.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The `sslmode` checks the server's chain against a CA that only
    /// `sslrootcert` can name.
    #[error("sslmode={sslmode} needs sslrootcert=PATH naming the server's CA certificate")]
    MissingRootCert {
        /// The mode asked for.
        sslmode: &'static str,
    },
    /// TLS cannot be set up on this machine (no system root
    /// certificates, no usable protocol version).
    #[error("TLS to PostgreSQL cannot be set up: {reason}")]
    TlsConfig {
        /// What is missing.
        reason: String,
    },
    /// The TLS handshake failed: a certificate the settings reject (wrong
    /// CA, wrong host name, expired) or a server without TLS. Retrying
    /// will not help until the server or the settings change.
    #[error("TLS with PostgreSQL at {target} failed: {reason}")]
    Tls {
        /// Host, port and database (no credentials).
        target: String,
        /// The TLS layer's message.
        reason: String,
    },
    /// The database was migrated by a newer build; this one refuses to
    /// write to a schema it does not know.
    #[error("schema {schema} is at version {found}, newer than this build knows ({known})")]
    SchemaTooNew {
        /// Schema name.
        schema: String,
        /// Version recorded in the database.
        found: u32,
        /// Newest version this build has.
        known: u32,
    },
    /// A migration failed; its transaction was rolled back, so the schema
    /// is as it was before the open.
    #[error("migration {version} ({name}) of schema {schema} failed: {reason}")]
    Migration {
        /// Schema name.
        schema: String,
        /// Migration version (0: the bookkeeping around migrations).
        version: u32,
        /// Migration name or step.
        name: String,
        /// Server message.
        reason: String,
    },
}

impl From<PostgresError> for StoreError {
    fn from(e: PostgresError) -> Self {
        match e {
            PostgresError::Unreachable { .. } => StoreError::Unavailable(e.to_string()),
            e => StoreError::Backend(e.to_string()),
        }
    }
}

/// Sorts a failed first connection into retryable or not: a rejected TLS
/// handshake is final, and a server that answered with an error code
/// refused the session, except while it is starting up or out of
/// connection slots.
pub(super) fn connect_error(target: &str, e: &deadpool_postgres::PoolError) -> PostgresError {
    if let deadpool_postgres::PoolError::Backend(pg) = e {
        if let Some(reason) = tls::tls_failure(pg) {
            return PostgresError::Tls {
                target: target.to_string(),
                reason,
            };
        }
        if let Some(code) = pg.code() {
            if *code != SqlState::CANNOT_CONNECT_NOW && *code != SqlState::TOO_MANY_CONNECTIONS {
                return PostgresError::Refused {
                    target: target.to_string(),
                    reason: migrate::describe(pg),
                };
            }
        }
    }
    PostgresError::Unreachable {
        target: target.to_string(),
        attempts: 1,
        reason: pool_reason(e),
    }
}

pub(super) fn pool_reason(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => migrate::describe(e),
        e => e.to_string(),
    }
}

/// Maps a query error: lost connections are `Unavailable` (retry later),
/// everything else is a backend error.
pub(super) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    let transient = match e.code() {
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
        }
        None => {
            e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>())
        }
    };
    if transient {
        StoreError::Unavailable(migrate::describe(&e))
    } else {
        StoreError::Backend(migrate::describe(&e))
    }
}

pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}
