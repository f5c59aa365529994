//! Keyed draws: every random choice the manager makes (who sits on a
//! round or a claim panel, which verifier gets a known-bad result, which
//! pass is audited) comes from a keyed hash, so the same key always draws
//! the same way and nobody without the key can predict or steer it.

use inferix_core::ids::{NodeId, TaskId};

/// A verifier's ticket for one seat of `task`'s round: an exponential
/// variate from a keyed hash, divided by its reputation, so the smallest
/// ticket wins with probability proportional to reputation (a weighted
/// draw), and the same key, task and seat always draw the same way.
pub(crate) fn draw(
    key: &[u8; 32],
    task: TaskId,
    seat: usize,
    verifier: NodeId,
    reputation: f64,
) -> f64 {
    let x = keyed_u64(
        key,
        &[
            &task.job.0.to_le_bytes(),
            &task.index.to_le_bytes(),
            &(seat as u64).to_le_bytes(),
            &verifier.0.to_le_bytes(),
        ],
    );
    // In (0, 1], never 0, so the logarithm is finite.
    let u = (x as f64 + 1.0) / (u64::MAX as f64 + 1.0);
    if reputation > 0.0 && reputation.is_finite() {
        -u.ln() / reputation
    } else {
        f64::INFINITY
    }
}

/// 64 bits of the keyed hash of `parts`: the same for the same key and
/// parts, unpredictable without the key. Every draw of the manager's
/// (seats, claim renderers, forced errors) comes from it.
pub(crate) fn keyed_u64(key: &[u8; 32], parts: &[&[u8]]) -> u64 {
    let mut bytes = Vec::with_capacity(32 + parts.iter().map(|p| p.len()).sum::<usize>());
    bytes.extend_from_slice(key);
    for p in parts {
        bytes.extend_from_slice(p);
    }
    let h = inferix_core::ContentHash::of(&bytes).0;
    u64::from_le_bytes(h[..8].try_into().expect("eight bytes"))
}

/// Total order on tickets for sorting.
#[derive(PartialEq)]
pub(crate) struct OrdF64(pub(crate) f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
