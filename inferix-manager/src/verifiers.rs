//! The connected verifiers and how loaded each one is.
//!
//! A verifier's `busy` counts the offers the manager still waits for from
//! it; it goes down when the verdict arrives, and also when the manager
//! stops waiting (the vote was drawn again elsewhere, the round ended), so
//! a verifier that once missed a deadline is not taken for busy forever.

use std::collections::BTreeMap;

use inferix_core::ids::NodeId;

/// What the manager knows of one verifier.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifierInfo {
    /// Whether it re-renders crop challenges.
    pub renders: bool,
    /// Lowered each time its verdict disagrees with a round's outcome.
    pub reputation: f64,
    /// Offers it has not answered yet that the manager still waits for.
    pub busy: usize,
}

/// Connected verifiers, in id order (so every choice is deterministic).
#[derive(Debug, Default)]
pub struct VerifierPool {
    slots: BTreeMap<NodeId, VerifierInfo>,
}

impl VerifierPool {
    /// Adds (or, on a reconnection, resets) a verifier.
    pub fn join(&mut self, id: NodeId, renders: bool) {
        let reputation = self.slots.get(&id).map_or(1.0, |v| v.reputation);
        self.slots.insert(
            id,
            VerifierInfo {
                renders,
                reputation,
                busy: 0,
            },
        );
    }

    /// Removes a verifier; returns whether it was there.
    pub fn leave(&mut self, id: NodeId) -> bool {
        self.slots.remove(&id).is_some()
    }

    /// One verifier.
    pub fn get(&self, id: &NodeId) -> Option<&VerifierInfo> {
        self.slots.get(id)
    }

    /// Whether `id` is connected.
    pub fn contains(&self, id: &NodeId) -> bool {
        self.slots.contains_key(id)
    }

    /// Whether no verifier is connected.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Connected verifiers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Every verifier, in id order.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &VerifierInfo)> {
        self.slots.iter()
    }

    /// Counts one more offer sent to `id`.
    pub fn assign(&mut self, id: NodeId) {
        if let Some(v) = self.slots.get_mut(&id) {
            v.busy += 1;
        }
    }

    /// Counts one offer of `id` answered or no longer waited for.
    pub fn release(&mut self, id: NodeId) {
        if let Some(v) = self.slots.get_mut(&id) {
            v.busy = v.busy.saturating_sub(1);
        }
    }

    /// Multiplies `id`'s reputation by `factor`.
    pub fn penalise(&mut self, id: NodeId, factor: f64) {
        if let Some(v) = self.slots.get_mut(&id) {
            v.reputation *= factor;
        }
    }

    /// The least busy verifier that renders, other than those in `not`:
    /// claim re-renders redraw whole frames, so only renderers can check
    /// them.
    pub fn least_busy_renderer(&self, not: &[NodeId]) -> Option<NodeId> {
        self.slots
            .iter()
            .filter(|(id, v)| v.renders && !not.contains(id))
            .min_by_key(|(_, v)| v.busy)
            .map(|(id, _)| *id)
    }
}
