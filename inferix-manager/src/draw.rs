//! Keyed draws: every random choice the manager makes (who sits on a
//! round or a claim panel, which verifier gets a known-bad result, which
//! pass is audited) comes from a keyed hash, so the same key always draws
//! the same way and nobody without the key can predict or steer it.

use inferix_core::ids::{NodeId, TaskId};

/// One of the `candidates` (with their weights, in a fixed order), drawn
/// with probability proportional to its weight by one keyed draw on
/// `task` and `seat`: the same candidates in the same order always give
/// the same choice, and nobody without the key can predict it. It costs
/// one hash whatever the number of candidates, where a ticket per
/// candidate cost a hash each, which made a round's draw grow with the
/// verifiers connected. A weight that is not a positive finite number
/// counts as the smallest.
pub(crate) fn weighted_pick<I>(
    key: &[u8; 32],
    task: TaskId,
    seat: usize,
    candidates: impl Fn() -> I,
) -> Option<NodeId>
where
    I: Iterator<Item = (NodeId, f64)>,
{
    let weight = |w: f64| {
        if w.is_finite() && w > 0.0 {
            w.clamp(MIN_WEIGHT, 1.0 / MIN_WEIGHT)
        } else {
            MIN_WEIGHT
        }
    };
    let total: f64 = candidates().map(|(_, w)| weight(w)).sum();
    if total <= 0.0 {
        return None;
    }
    let x = keyed_u64(
        key,
        &[
            b"seat",
            &task.job.0.to_le_bytes(),
            &task.index.to_le_bytes(),
            &(seat as u64).to_le_bytes(),
        ],
    );
    // In [0, total).
    let mut left = (x >> 11) as f64 / (1u64 << 53) as f64 * total;
    let mut last = None;
    for (id, w) in candidates() {
        left -= weight(w);
        last = Some(id);
        if left < 0.0 {
            return Some(id);
        }
    }
    // Rounding left a sliver past the last candidate: it is the last's.
    last
}

/// The weight below which a candidate counts as almost never drawn.
const MIN_WEIGHT: f64 = 1e-9;

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

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::ids::JobId;

    #[test]
    fn picks_follow_the_weights_and_the_same_draw_picks_the_same() {
        let key = [7u8; 32];
        // The lowest id has the smallest weight: its place in the order
        // gives it nothing.
        let pool = [(NodeId(1), 0.25), (NodeId(9), 0.5), (NodeId(5), 0.25)];
        let seats = 40_000;
        let mut counts = [0usize; 3];
        for seat in 0..seats {
            let task = TaskId::new(JobId(3), (seat % 97) as u32);
            let a = weighted_pick(&key, task, seat, || pool.iter().copied()).unwrap();
            let b = weighted_pick(&key, task, seat, || pool.iter().copied()).unwrap();
            assert_eq!(a, b, "the same draw picks the same");
            counts[pool.iter().position(|(id, _)| *id == a).unwrap()] += 1;
        }
        for ((_, w), n) in pool.iter().zip(counts) {
            let share = n as f64 / seats as f64;
            // Three standard deviations at these sizes is under 0.008.
            assert!((share - w).abs() < 0.01, "weight {w}: share {share}");
        }
    }

    #[test]
    fn nobody_to_pick_is_none_and_odd_weights_count_as_the_smallest() {
        let key = [1u8; 32];
        let task = TaskId::new(JobId(1), 0);
        assert_eq!(weighted_pick(&key, task, 0, std::iter::empty), None);
        let pool = [(NodeId(1), f64::NAN), (NodeId(2), 1.0), (NodeId(3), -4.0)];
        for seat in 0..1_000 {
            assert_eq!(
                weighted_pick(&key, task, seat, || pool.iter().copied()),
                Some(NodeId(2))
            );
        }
        let odd = [(NodeId(4), f64::INFINITY)];
        assert_eq!(
            weighted_pick(&key, task, 0, || odd.iter().copied()),
            Some(NodeId(4))
        );
    }
}
