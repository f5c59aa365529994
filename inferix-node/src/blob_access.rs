//! Which blobs each connection to a manager may read.
//!
//! Knowing a blob's hash is not enough to read it: a peer reads what the
//! manager handed it (a lease's scene and environment, a verification's
//! frames and scenes, the accepted frames and scene of a job whose status
//! it was sent) and what it uploaded itself. Anything else is answered as
//! a blob that does not exist. The grants live as long as the connection.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use inferix_core::protocol::Message;
use inferix_core::ContentHash;

/// A connection's number on its manager.
pub(crate) type ConnId = u64;

/// Blobs one connection may hold grants for at once; the oldest grant goes
/// first. A job's status grants each of its frames, so this bounds the
/// memory one watcher of huge jobs costs (32 MiB at most), and a client
/// that downloads right after asking for status is never short.
pub(crate) const MAX_GRANTS_PER_CONNECTION: usize = 1 << 20;

#[derive(Default)]
struct Readable {
    set: HashSet<ContentHash>,
    order: VecDeque<ContentHash>,
}

/// Admitted connections and the blobs each may read, shared by the manager
/// loop (which admits and grants) and each connection's reader (which
/// serves blobs).
#[derive(Clone, Default)]
pub(crate) struct BlobAccess {
    inner: Arc<Mutex<HashMap<ConnId, Readable>>>,
    limit: Option<usize>,
}

impl BlobAccess {
    /// Access with a smaller grant limit (tests of eviction).
    #[cfg(test)]
    fn with_limit(limit: usize) -> Self {
        Self {
            inner: Arc::default(),
            limit: Some(limit),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnId, Readable>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `conn` as admitted (its hello was answered with a welcome).
    pub(crate) fn admit(&self, conn: ConnId) {
        self.lock().entry(conn).or_default();
    }

    /// Forgets `conn` and its grants.
    pub(crate) fn forget(&self, conn: ConnId) {
        self.lock().remove(&conn);
    }

    /// Whether `conn` was admitted.
    pub(crate) fn is_admitted(&self, conn: ConnId) -> bool {
        self.lock().contains_key(&conn)
    }

    /// Lets `conn`, when admitted, read `hashes`.
    pub(crate) fn grant(&self, conn: ConnId, hashes: impl IntoIterator<Item = ContentHash>) {
        let limit = self.limit.unwrap_or(MAX_GRANTS_PER_CONNECTION);
        let mut g = self.lock();
        let Some(r) = g.get_mut(&conn) else {
            return;
        };
        for h in hashes {
            if r.set.insert(h) {
                r.order.push_back(h);
            }
        }
        while r.order.len() > limit {
            if let Some(old) = r.order.pop_front() {
                r.set.remove(&old);
            }
        }
    }

    /// Whether `conn` may read `hash`.
    pub(crate) fn may_read(&self, conn: ConnId, hash: ContentHash) -> bool {
        self.lock()
            .get(&conn)
            .is_some_and(|r| r.set.contains(&hash))
    }

    /// Grants `conn` the blobs that a message the manager sends it names.
    pub(crate) fn grant_named_in(&self, conn: ConnId, body: &Message) {
        let named = blobs_named_in(body);
        if !named.is_empty() {
            self.grant(conn, named);
        }
    }
}

/// The blobs a message from the manager hands to its receiver.
fn blobs_named_in(body: &Message) -> Vec<ContentHash> {
    match body {
        Message::TaskOffer(a) => std::iter::once(a.scene.blob)
            .chain(a.environment.as_ref().map(|e| e.blob))
            .collect(),
        Message::VerifyOffer(v) => v
            .frames
            .iter()
            .map(|f| f.blob)
            .chain(v.scene.as_ref().map(|s| s.blob))
            .chain(v.clean_scene.as_ref().map(|s| s.blob))
            .chain(v.environment.as_ref().map(|e| e.blob))
            .collect(),
        Message::StatusReply(s) => s
            .frames
            .iter()
            .map(|f| f.blob)
            .chain(std::iter::once(s.job.spec.scene.blob))
            .chain(s.job.spec.environment.as_ref().map(|e| e.blob))
            .chain(s.job.outputs.iter().filter_map(|o| o.blob()))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> ContentHash {
        ContentHash::of(&[n])
    }

    #[test]
    fn only_admitted_connections_hold_grants_and_the_oldest_go_first() {
        let access = BlobAccess::with_limit(2);
        access.grant(1, [h(1)]);
        assert!(!access.may_read(1, h(1)), "not admitted yet");
        access.admit(1);
        access.grant(1, [h(1), h(2), h(1)]);
        assert!(access.may_read(1, h(1)) && access.may_read(1, h(2)));
        assert!(!access.may_read(2, h(1)), "grants are per connection");
        access.grant(1, [h(3)]);
        assert!(!access.may_read(1, h(1)), "evicted");
        assert!(access.may_read(1, h(3)));
        access.forget(1);
        assert!(!access.is_admitted(1) && !access.may_read(1, h(3)));
    }
}
