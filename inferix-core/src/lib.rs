//! Inferix core: the domain model and pure logic of the render network.
//!
//! Nothing here opens a socket or owns a runtime; node crates compose these
//! parts with concrete transports, stores and renderers. The pluggable
//! traits ([`store::TaskStore`], [`blob::BlobStore`], [`scheduler::Scheduler`],
//! [`renderer::Renderer`]) each ship a conformance suite.

pub mod account;
#[cfg(feature = "runtime")]
pub mod blob;
pub mod fs;
pub mod ids;
pub mod image;
pub mod job;
pub mod job_file;
pub mod ledger;
pub mod outputs;
pub mod por;
pub mod protocol;
pub mod renderer;
pub mod scheduler;
#[cfg(any(test, feature = "testing"))]
pub mod signer_conformance;
pub mod store;
pub mod task;
pub mod tiles;
pub mod time;
pub mod verify;

mod hash;
pub use hash::{ContentHash, ParseHashError};
