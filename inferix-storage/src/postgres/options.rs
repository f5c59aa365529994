//! How a PostgreSQL store is opened: the URL, its schema, pool size,
//! connect timeout and retry backoff.

use super::*;

/// How [`PostgresTaskStore::open_with_retry`] spaces its attempts: the
/// delay starts at `initial`, doubles up to `max`, and attempts stop once
/// `max_elapsed` has passed since the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Longest delay between two attempts.
    pub max: Duration,
    /// Give up after this long.
    pub max_elapsed: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s, for up to a minute: long enough for a
    /// database started alongside the manager to come up.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

/// Where the store's tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Schema {
    /// The connection's default (`public` on a stock server).
    Default,
    /// A schema of this name, created on open if missing.
    Named(String),
}

impl Schema {
    pub(super) fn name(&self) -> &str {
        match self {
            Schema::Default => "public",
            Schema::Named(n) => n,
        }
    }
}

/// How to reach the database. Build with [`PostgresOptions::new`] and the
/// `with_*` methods.
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// `postgres://user[:password]@host[:port]/database` or a libpq
    /// key=value string; its `sslmode` and `sslrootcert` select TLS (see
    /// the [module](super#tls) docs).
    pub url: String,
    /// Schema for the tables; `None` uses the connection's default.
    pub schema: Option<String>,
    /// Connections kept in the pool (not counting the notification one).
    pub pool_size: usize,
    /// Limit on establishing one connection.
    pub connect_timeout: Duration,
    /// Password that replaces the URL's, so that it need not appear in a
    /// URL on a command line (read it from a file or the environment).
    pub password: Option<String>,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("url", &"<redacted>")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("password", &self.password.as_ref().map(|_| ".."))
            .finish()
    }
}

impl PostgresOptions {
    /// Default options for `url`: default schema, 8 pooled connections,
    /// 10 s connect timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            pool_size: 8,
            connect_timeout: Duration::from_secs(10),
            password: None,
        }
    }

    /// Connects with `password` instead of the URL's.
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// Keeps the tables in `schema` (created if missing): a lower-case
    /// identifier of at most 48 characters.
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets the number of pooled connections (at least 1).
    pub fn with_pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Sets the limit on establishing one connection.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

/// Checks that `name` can be spliced into SQL and a channel name as is.
pub(super) fn validate_schema(name: &str) -> Result<(), PostgresError> {
    let bad = |reason| {
        Err(PostgresError::InvalidSchema {
            schema: name.to_string(),
            reason,
        })
    };
    let mut chars = name.chars();
    match chars.next() {
        None => return bad("empty"),
        Some(c) if !(c.is_ascii_lowercase() || c == '_') => {
            return bad("must start with a lower-case letter or underscore")
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return bad("only lower-case letters, digits and underscores are allowed");
    }
    // The notification channel `inferix_tasks_<schema>` must fit in
    // PostgreSQL's 63-byte identifiers.
    if name.len() > 48 {
        return bad("longer than 48 characters");
    }
    if name.starts_with("pg_") {
        return bad("the pg_ prefix is reserved");
    }
    Ok(())
}

/// Host, port and database of `config`, for messages.
pub(super) fn describe_target(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}
