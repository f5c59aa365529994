//! Whom a connection to an address without `<id>@` trusts. A node sends
//! its admission token to whatever answers, so an unpinned address is only
//! as safe as the network path to it: operators pin (`<id>@host:port`, as
//! `inferix manager` prints it), or a node remembers the first identity it
//! met at an address and refuses any other one later (trust on first use,
//! as SSH's `known_hosts`).

use std::path::{Path, PathBuf};

use super::*;

/// How [`QuicTransport::connect`] treats an address that names no node id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerTrust {
    /// Any server that proves some key (the default for embedders that
    /// know their network).
    #[default]
    Any,
    /// Refuse: every address must name the server's id.
    PinnedOnly,
    /// Trust on first use: the file keeps `host id` lines; an address met
    /// before is pinned to the id recorded, a new one is recorded.
    KnownHosts(PathBuf),
}

/// The id recorded for `host` in the known-hosts file at `path`.
pub(super) fn known_id(path: &Path, host: &str) -> Result<Option<NodeId>, TransportError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if let (Some(h), Some(id)) = (words.next(), words.next()) {
            if h == host {
                return id
                    .parse::<NodeId>()
                    .map(Some)
                    .map_err(|e| io_err(path, format!("bad id for {host}: {e}")));
            }
        }
    }
    Ok(None)
}

/// Records that `host` answered as `id`.
pub(super) fn remember(path: &Path, host: &str, id: NodeId) -> Result<(), TransportError> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        inferix_core::fs::create_private_dir(dir).map_err(|e| io_err(dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(|e| io_err(path, e))?;
    writeln!(f, "{host} {id}").map_err(|e| io_err(path, e))?;
    f.sync_all().map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TransportError {
    TransportError::Io(format!("{}: {e}", path.display()))
}
