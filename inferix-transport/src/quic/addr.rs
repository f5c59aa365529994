//! Peer addresses: an optional pinned node id before `@`, then a host.

use super::*;

/// Splits `"<node id>@host:port"` into the pinned id and `"host:port"`.
pub(super) fn parse_addr(addr: &str) -> Result<(Option<NodeId>, &str), TransportError> {
    match addr.split_once('@') {
        Some((id, host)) => {
            let id = id
                .parse::<NodeId>()
                .map_err(|e| TransportError::Unreachable(format!("{addr}: {e}")))?;
            Ok((Some(id), host))
        }
        None => Ok((None, addr)),
    }
}

pub(super) async fn resolve(host: &str) -> Result<SocketAddr, TransportError> {
    tokio::net::lookup_host(host)
        .await
        .map_err(|e| TransportError::Unreachable(format!("{host}: {e}")))?
        .next()
        .ok_or_else(|| TransportError::Unreachable(format!("{host}: no address")))
}
