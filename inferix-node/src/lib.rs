//! Embeddable Inferix nodes.
//!
//! [`ManagerNode`], [`WorkerNode`], [`VerifierNode`] and [`Client`] are each
//! built from the pluggable parts of `inferix-core` (store, blob store,
//! scheduler, renderer) and a transport, so an embedder can run any of them
//! inside its own service or swap any part. The nodes depend on no
//! renderer: `inferix-local` composes a whole network in one process with
//! the GPU path tracer.

mod blob_access;
mod blob_cache;
mod blob_service;
pub mod client;
mod frame_codec;
pub mod manager;
pub mod node_metrics;
mod outbound;
pub mod outputs;
mod reconnect;
pub mod remote_blob;
pub mod renderers;
mod rpc;
mod session;
pub mod verifier;
pub mod worker;

pub use client::{Client, ClientError};
pub use manager::metrics::ManagerMetrics;
pub use manager::{ManagerBuilder, ManagerConfig, ManagerHandle, ManagerNode};
pub use node_metrics::NodeMetrics;
pub use remote_blob::RemoteBlobStore;
pub use renderers::RendererSet;
pub use verifier::{VerifierConfig, VerifierNode};
pub use worker::{WorkerConfig, WorkerNode};

use inferix_transport::TransportError;

/// Why a node stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// Connection trouble.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The manager refused this node (token, version).
    #[error("refused by the manager: {0}")]
    Refused(String),
    /// The peer closed the connection.
    #[error("disconnected")]
    Disconnected,
    /// The peer broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
}

/// A file name safe to join to a folder: no separators, no parent hops.
pub(crate) fn safe_file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() {
        "scene".into()
    } else {
        trimmed.to_string()
    }
}
