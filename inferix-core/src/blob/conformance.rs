//! The conformance suite every [`super::BlobStore`] backend runs.
