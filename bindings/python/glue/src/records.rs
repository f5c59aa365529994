//! The value objects `inferix.Client` and `inferix.Job` return: quotes,
//! job statuses and events.

use inferix_core::protocol::{JobEvent, JobStatus, Quote};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A price for a job, before it is submitted.
#[pyclass(module = "inferix", name = "Quote", frozen, get_all, eq)]
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PyQuote {
    /// Estimated work in IB-minutes (minutes on the reference machine).
    estimated_ibm: f64,
    /// Price of one IB-minute, in micro-credits.
    price_per_ibm: u64,
    /// Total price in micro-credits.
    total_price: u64,
    /// Frames in the job.
    frames: u64,
    /// Tasks the job splits into.
    tasks: u64,
}

impl From<Quote> for PyQuote {
    fn from(q: Quote) -> Self {
        Self {
            estimated_ibm: q.estimated_ibm,
            price_per_ibm: q.price_per_ibm,
            total_price: q.total_price,
            frames: q.frames,
            tasks: q.tasks,
        }
    }
}

#[pymethods]
impl PyQuote {
    fn __repr__(&self) -> String {
        format!(
            "Quote(total_price={}, estimated_ibm={:.4}, price_per_ibm={}, frames={}, tasks={})",
            self.total_price, self.estimated_ibm, self.price_per_ibm, self.frames, self.tasks
        )
    }
}

/// A snapshot of a job.
#[pyclass(module = "inferix", name = "JobStatus", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct PyJobStatus {
    /// Job id.
    id: String,
    /// "active", "paused", "completed", "failed" or "cancelled".
    state: String,
    /// Frames accepted so far.
    frames_done: u64,
    /// Frames in the job.
    frames_total: u64,
    /// Why the job is not progressing, if it waits.
    waiting_reason: Option<String>,
    /// Price agreed at submission, in micro-credits.
    price: u64,
    /// Tasks per status as (status, count) pairs; see `tasks` for a dict.
    counts: Vec<(String, usize)>,
}

impl From<JobStatus> for PyJobStatus {
    fn from(s: JobStatus) -> Self {
        Self {
            id: s.job.id.to_string(),
            state: s.job.state.as_str().to_string(),
            frames_done: s.frames.len() as u64,
            frames_total: s.job.spec.frames.len(),
            waiting_reason: s.job.waiting_reason,
            price: s.job.quoted_price,
            counts: s
                .counts
                .into_iter()
                .map(|(st, n)| (st.as_str().to_string(), n))
                .collect(),
        }
    }
}

#[pymethods]
impl PyJobStatus {
    /// Tasks per status, e.g. `{"queued": 2, "accepted": 4}`.
    #[getter]
    fn tasks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in &self.counts {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// Whether the job can change no more.
    #[getter]
    fn finished(&self) -> bool {
        matches!(self.state.as_str(), "completed" | "failed" | "cancelled")
    }

    fn __repr__(&self) -> String {
        format!(
            "JobStatus(id={:?}, state={:?}, frames={}/{})",
            self.id, self.state, self.frames_done, self.frames_total
        )
    }
}

/// Something that happened to a job.
#[pyclass(module = "inferix", name = "Event", frozen, get_all)]
#[derive(Debug, Clone)]
pub(crate) struct PyEvent {
    /// "accepted", "rejected", "requeued", "waiting", "completed",
    /// "failed" or "cancelled".
    kind: String,
    /// Task concerned, for task events.
    task: Option<String>,
    /// Worker concerned, for verdicts.
    worker: Option<String>,
    /// Frames accepted so far ("accepted" events).
    accepted_frames: Option<u64>,
    /// Frames in the job ("accepted" events).
    total_frames: Option<u64>,
    /// Why: the verifiers' reasons, the re-queue or failure cause.
    reasons: Vec<String>,
}

impl From<&JobEvent> for PyEvent {
    fn from(ev: &JobEvent) -> Self {
        let mut e = PyEvent {
            kind: String::new(),
            task: None,
            worker: None,
            accepted_frames: None,
            total_frames: None,
            reasons: Vec::new(),
        };
        match ev {
            JobEvent::TaskAccepted {
                task,
                worker,
                accepted_frames,
                total_frames,
            } => {
                e.kind = "accepted".into();
                e.task = Some(task.to_string());
                e.worker = Some(worker.to_string());
                e.accepted_frames = Some(*accepted_frames);
                e.total_frames = Some(*total_frames);
            }
            JobEvent::TaskRejected {
                task,
                worker,
                reasons,
            } => {
                e.kind = "rejected".into();
                e.task = Some(task.to_string());
                e.worker = Some(worker.to_string());
                e.reasons = reasons.clone();
            }
            JobEvent::TaskRequeued { task, reason } => {
                e.kind = "requeued".into();
                e.task = Some(task.to_string());
                e.reasons = vec![reason.clone()];
            }
            JobEvent::Waiting { reason } => {
                e.kind = "waiting".into();
                e.reasons = vec![reason.clone()];
            }
            JobEvent::Completed { .. } => e.kind = "completed".into(),
            JobEvent::Failed { reason } => {
                e.kind = "failed".into();
                e.reasons = vec![reason.clone()];
            }
            JobEvent::Cancelled => e.kind = "cancelled".into(),
            JobEvent::ClaimSettled {
                upheld, evidence, ..
            } => {
                e.kind = if *upheld {
                    "claim_upheld".into()
                } else {
                    "claim_rejected".into()
                };
                e.reasons = evidence.clone();
            }
            JobEvent::OutputsFinished { failed, .. } => {
                e.kind = "outputs_finished".into();
                e.reasons = vec![format!("{failed} outputs failed")];
            }
        }
        e
    }
}

pub(crate) fn is_final(ev: &JobEvent) -> bool {
    matches!(
        ev,
        JobEvent::Completed { .. } | JobEvent::Failed { .. } | JobEvent::Cancelled
    )
}

#[pymethods]
impl PyEvent {
    /// Whether this event ends the job ("completed", "failed", "cancelled").
    #[getter]
    fn is_final(&self) -> bool {
        matches!(self.kind.as_str(), "completed" | "failed" | "cancelled")
    }

    fn __repr__(&self) -> String {
        let mut s = format!("Event(kind={:?}", self.kind);
        if let Some(t) = &self.task {
            s.push_str(&format!(", task={t:?}"));
        }
        if let (Some(a), Some(t)) = (self.accepted_frames, self.total_frames) {
            s.push_str(&format!(", frames={a}/{t}"));
        }
        if !self.reasons.is_empty() {
            s.push_str(&format!(", reasons={:?}", self.reasons));
        }
        s.push(')');
        s
    }
}
