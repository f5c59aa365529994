//! How client commands print what the manager says: lines for people, and
//! with `--json` the records themselves for programs.

use inferix_core::job::JobState;
use inferix_core::protocol::{JobEvent, JobStatus, JobSummary, NodeSummary};

use crate::account_cli::credits;

/// Frames per minute and the time left, from frames accepted since the
/// job was submitted.
fn pace(done: u64, total: u64, elapsed_ms: u64) -> Option<(f64, u64)> {
    if done == 0 || elapsed_ms == 0 {
        return None;
    }
    let per_ms = done as f64 / elapsed_ms as f64;
    let left_ms = (total.saturating_sub(done)) as f64 / per_ms;
    Some((per_ms * 60_000.0, (left_ms / 1000.0).ceil() as u64))
}

/// `1h02m03s`, `4m05s`, `6s`.
pub(crate) fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

/// A job's status for people: state, progress with rate and time left,
/// tasks per state, why it waits, the price.
pub(crate) fn status_text(s: &JobStatus, now_ms: u64) -> String {
    let total = s.job.spec.frames.len();
    let done = s.frames.len() as u64;
    let percent = (done * 100).checked_div(total).unwrap_or(0);
    let mut out = format!("job {} {}\n", s.job.id, s.job.state.as_str());
    out += &format!("  frames accepted: {done}/{total} ({percent}%)\n");
    if s.job.state == JobState::Active {
        let elapsed = now_ms.saturating_sub(s.job.created_ms);
        if let Some((rate, left)) = pace(done, total, elapsed) {
            out += &format!(
                "  rate: {rate:.1} frames/min, about {} left\n",
                duration(left)
            );
        }
    }
    out += "  tasks:\n";
    for (st, n) in &s.counts {
        out += &format!("    {:<10} {n}\n", st.as_str());
    }
    if let Some(r) = &s.job.waiting_reason {
        out += &format!("  waiting: {r}\n");
    }
    for w in &s.job.warnings {
        out += &format!("  warning: {w}\n");
    }
    for o in &s.job.outputs {
        use inferix_core::outputs::OutputState;
        let state = match &o.state {
            OutputState::Pending => "pending".to_string(),
            OutputState::Ready { size, .. } => format!("ready, {size} bytes"),
            OutputState::Failed { reason } => format!("failed: {reason}"),
        };
        out += &format!("  output {}: {state}\n", o.name());
    }
    out += &format!("  price: {} credits\n", credits(s.job.quoted_price as i64));
    out
}

/// One event for people.
pub(crate) fn event_text(ev: &JobEvent) -> String {
    match ev {
        JobEvent::TaskAccepted {
            task,
            worker,
            accepted_frames,
            total_frames,
        } => format!("accepted {task} from {worker}: {accepted_frames}/{total_frames} frames"),
        JobEvent::TaskRejected {
            task,
            worker,
            reasons,
        } => format!("rejected {task} from {worker}: {}", reasons.join("; ")),
        JobEvent::TaskRequeued { task, reason } => format!("re-queued {task}: {reason}"),
        JobEvent::Waiting { reason } => format!("waiting: {reason}"),
        JobEvent::Completed { job } => format!("job {job} completed"),
        JobEvent::Failed { reason } => format!("job failed: {reason}"),
        JobEvent::Cancelled => "job cancelled".into(),
        JobEvent::ClaimSettled {
            claim,
            frames,
            upheld,
            evidence,
        } => format!(
            "claim {claim} on frames {frames:?} {}: {}",
            if *upheld { "upheld" } else { "rejected" },
            evidence.join("; ")
        ),
        JobEvent::OutputsFinished { job, failed: 0 } => format!("outputs of job {job} ready"),
        JobEvent::OutputsFinished { job, failed } => {
            format!("outputs of job {job} made; {failed} failed")
        }
    }
}

/// Jobs as a table.
pub(crate) fn jobs_table(jobs: &[JobSummary]) -> String {
    let mut out = format!(
        "{:<14} {:<16} {:<10} {:>13} {:>8} {:>16}\n",
        "JOB", "OWNER", "STATE", "FRAMES", "PRIORITY", "PRICE"
    );
    for j in jobs {
        out += &format!(
            "{:<14} {:<16} {:<10} {:>13} {:>8} {:>16}\n",
            j.id.to_string(),
            j.owner.as_deref().unwrap_or("-"),
            j.state.as_str(),
            format!("{}/{}", j.accepted_frames, j.frames),
            j.priority,
            credits(j.quoted_price as i64),
        );
    }
    out
}

/// Workers and verifiers as a table.
pub(crate) fn nodes_table(nodes: &[NodeSummary]) -> String {
    let mut out = format!(
        "{:<14} {:<8} {:<7} {:>8} {:>6} {:>16} {}\n",
        "NODE", "ROLE", "STATE", "IB", "REP", "STAKE", "TASK"
    );
    for n in nodes {
        let task = match (n.task, n.pending_verifications) {
            (Some(t), _) => t.to_string(),
            (None, 0) => "-".into(),
            (None, v) => format!("{v} verifications"),
        };
        out += &format!(
            "{:<14} {:<8} {:<7} {:>8.2} {:>6.2} {:>16} {task}\n",
            n.node.to_string(),
            format!("{:?}", n.role).to_lowercase(),
            n.state,
            n.declared_ib,
            n.reputation,
            credits(n.stake),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_clocks() {
        assert_eq!(duration(6), "6s");
        assert_eq!(duration(245), "4m05s");
        assert_eq!(duration(3723), "1h02m03s");
    }

    #[test]
    fn the_pace_comes_from_frames_done_since_submission() {
        // 10 of 40 frames in 5 minutes: 2 per minute, 15 minutes left.
        let (rate, left) = pace(10, 40, 300_000).unwrap();
        assert!((rate - 2.0).abs() < 1e-9);
        assert_eq!(left, 900);
        assert!(pace(0, 40, 300_000).is_none());
    }

    #[test]
    fn an_event_reads_as_a_sentence() {
        let t = event_text(&JobEvent::Waiting {
            reason: "no worker connected".into(),
        });
        assert_eq!(t, "waiting: no worker connected");
    }
}
