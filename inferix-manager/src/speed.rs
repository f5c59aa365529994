//! Worker speed as the manager measures it, not as the worker declares it.
//!
//! A worker announces its Inferix Bench index (IB) at hello, and the
//! scheduler weighs it by that index: a worker that announces ten times
//! its speed would win ten times its share of leases. So the manager times
//! every task from lease to result and divides the task's work, in the
//! IB-minutes its quote priced, by that time. The running measure caps
//! the announced index: a worker is never taken for faster than
//! [`MEASURED_SLACK`] times what it showed. Announcing less than it
//! measures is taken at its word (it only costs the worker leases).
//!
//! The measure is only as good as the quote's work estimate, but a quote
//! that is off by a factor is off by it for every worker of the job, so
//! the order of workers by speed, which is what the scheduler uses, holds.

/// How much faster than measured a worker may be taken for: room for the
/// quote's estimate being low and for a slow first frame.
pub const MEASURED_SLACK: f64 = 2.0;

/// How much faster than its admission probe showed a worker may be taken
/// for until it finishes a task. The probe is a tiny frame whose time is
/// mostly the round trip, loading the scene and, on a fresh node,
/// compiling kernels: it shows an honest machine tens of times slower than
/// it is, so it bounds only gross lies (announcing the most allowed, a
/// hundred thousand, is taken as a hundred times what the probe showed)
/// and never slows an honest worker's first leases.
pub const PROBE_SLACK: f64 = 100.0;

/// Weight of the newest sample in the running measure.
const NEWEST_WEIGHT: f64 = 0.3;

/// The index shown by `work_ibm` IB-minutes done in `elapsed_ms`; `None`
/// for measurements that say nothing (no work, no time).
pub fn ib_sample(work_ibm: f64, elapsed_ms: u64) -> Option<f64> {
    if !(work_ibm.is_finite() && work_ibm > 0.0) || elapsed_ms == 0 {
        return None;
    }
    Some(work_ibm * 60_000.0 / elapsed_ms as f64)
}

/// The index shown by rendering the admission probe in `node_ms` (from
/// sending it to the answer), where the manager's own renderer, of index
/// `reference_ib`, took `reference_ms`: the probe is a benchmark whose
/// answer the manager knows. `None` for times that say nothing.
pub fn probe_ib(reference_ib: f64, reference_ms: u64, node_ms: u64) -> Option<f64> {
    if !(reference_ib.is_finite() && reference_ib > 0.0) || reference_ms == 0 || node_ms == 0 {
        return None;
    }
    Some(reference_ib * reference_ms as f64 / node_ms as f64)
}

/// The running measure after `sample` (the first sample stands alone).
pub fn blend(previous: Option<f64>, sample: f64) -> f64 {
    match previous {
        Some(p) => p + NEWEST_WEIGHT * (sample - p),
        None => sample,
    }
}

/// The index the scheduler uses: the announced one, capped by the
/// measured one when there is one.
pub fn effective_ib(declared: f64, measured: Option<f64>) -> f64 {
    match measured {
        Some(m) if m.is_finite() => declared.min(m * MEASURED_SLACK),
        _ => declared,
    }
}

/// As [`effective_ib`], with the admission probe's index (`probed`)
/// capping a worker that has not finished a task yet.
pub fn effective_ib_probed(declared: f64, measured: Option<f64>, probed: Option<f64>) -> f64 {
    match (measured, probed) {
        (Some(_), _) => effective_ib(declared, measured),
        (None, Some(p)) if p.is_finite() => declared.min(p * PROBE_SLACK),
        _ => declared,
    }
}

/// The work, in IB-minutes, of `frames` frames of a job of `job_frames`
/// frames quoted at `quoted_price` at `price_per_ibm`.
pub fn task_work_ibm(quoted_price: u64, price_per_ibm: u64, frames: usize, job_frames: u64) -> f64 {
    if price_per_ibm == 0 || job_frames == 0 {
        return 0.0;
    }
    quoted_price as f64 / price_per_ibm as f64 * frames as f64 / job_frames as f64
}
