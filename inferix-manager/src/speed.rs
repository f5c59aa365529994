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

/// The work, in IB-minutes, of `frames` frames of a job of `job_frames`
/// frames quoted at `quoted_price` at `price_per_ibm`.
pub fn task_work_ibm(quoted_price: u64, price_per_ibm: u64, frames: usize, job_frames: u64) -> f64 {
    if price_per_ibm == 0 || job_frames == 0 {
        return 0.0;
    }
    quoted_price as f64 / price_per_ibm as f64 * frames as f64 / job_frames as f64
}
