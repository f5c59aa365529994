//! The workers connected to one manager, with the idle ones kept in the
//! order they became idle.
//!
//! Dispatch runs after nearly every message, so it must cost what it hands
//! out, not the size of the network: the idle set is maintained as workers
//! take and return tasks instead of being rebuilt from every worker on
//! every dispatch. A worker's task is changed only through [`WorkerPool`],
//! which keeps the idle set true.

use std::collections::{btree_map, BTreeMap, BTreeSet};

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::scheduler::WorkerInfo;

/// One connected worker.
pub(crate) struct WorkerSlot {
    pub(crate) conn: u64,
    pub(crate) info: WorkerInfo,
    /// When the worker last showed life on its task (offer or progress).
    pub(crate) last_progress: u64,
    pub(crate) last_seen: u64,
    /// When its current task was leased (for finish-time estimates).
    pub(crate) busy_since: u64,
    /// Frames of its current task.
    pub(crate) busy_frames: usize,
    task: Option<TaskId>,
    idle_since: u64,
}

impl WorkerSlot {
    /// The task it holds, if any.
    pub(crate) fn task(&self) -> Option<TaskId> {
        self.task
    }
}

/// Connected workers by id, and the idle ones by how long they have waited.
#[derive(Default)]
pub(crate) struct WorkerPool {
    slots: BTreeMap<NodeId, WorkerSlot>,
    idle: BTreeSet<(u64, NodeId)>,
    busy: BTreeSet<NodeId>,
}

impl WorkerPool {
    /// Adds a worker that just said hello (idle from `now`), replacing any
    /// slot it had.
    pub(crate) fn join(&mut self, conn: u64, info: WorkerInfo, now: u64) {
        let id = info.id;
        self.leave(id);
        self.idle.insert((now, id));
        self.slots.insert(
            id,
            WorkerSlot {
                conn,
                info,
                last_progress: now,
                last_seen: now,
                busy_since: now,
                busy_frames: 0,
                task: None,
                idle_since: now,
            },
        );
    }

    /// Removes a worker; returns its slot (with the task it held).
    pub(crate) fn leave(&mut self, id: NodeId) -> Option<WorkerSlot> {
        let slot = self.slots.remove(&id)?;
        self.idle.remove(&(slot.idle_since, id));
        self.busy.remove(&id);
        Some(slot)
    }

    /// Marks `id` busy with `task`; false when it is not connected or not idle.
    pub(crate) fn assign(&mut self, id: NodeId, task: TaskId, frames: usize, now: u64) -> bool {
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        if slot.task.is_some() {
            return false;
        }
        self.idle.remove(&(slot.idle_since, id));
        self.busy.insert(id);
        slot.task = Some(task);
        slot.busy_since = now;
        slot.busy_frames = frames;
        slot.last_progress = now;
        true
    }

    /// Frees `id` if it holds `task`; it is then the most recently idle.
    pub(crate) fn release(&mut self, id: NodeId, task: TaskId, now: u64) {
        if let Some(slot) = self.slots.get_mut(&id) {
            if slot.task == Some(task) {
                slot.task = None;
                slot.idle_since = now;
                self.idle.insert((now, id));
                self.busy.remove(&id);
            }
        }
    }

    pub(crate) fn get(&self, id: &NodeId) -> Option<&WorkerSlot> {
        self.slots.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &NodeId) -> Option<&mut WorkerSlot> {
        self.slots.get_mut(id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.idle.len()
    }

    pub(crate) fn busy_count(&self) -> usize {
        self.busy.len()
    }

    pub(crate) fn values(&self) -> btree_map::Values<'_, NodeId, WorkerSlot> {
        self.slots.values()
    }

    pub(crate) fn iter(&self) -> btree_map::Iter<'_, NodeId, WorkerSlot> {
        self.slots.iter()
    }

    /// Idle workers, longest idle first.
    pub(crate) fn idle(&self) -> impl Iterator<Item = &WorkerSlot> + '_ {
        self.idle.iter().filter_map(|(_, id)| self.slots.get(id))
    }

    /// Busy workers with the task each holds.
    pub(crate) fn busy(&self) -> impl Iterator<Item = (&WorkerSlot, TaskId)> + '_ {
        self.busy
            .iter()
            .filter_map(|id| self.slots.get(id))
            .filter_map(|w| w.task.map(|t| (w, t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::ids::JobId;

    fn info(id: u128) -> WorkerInfo {
        WorkerInfo {
            id: NodeId(id),
            ib: 1.0,
            reputation: 1.0,
            tags: vec![],
        }
    }

    fn idle_ids(p: &WorkerPool) -> Vec<u128> {
        p.idle().map(|w| w.info.id.0).collect()
    }

    #[test]
    fn idle_set_follows_assignments_releases_and_departures() {
        let mut p = WorkerPool::default();
        let t = |i| TaskId::new(JobId(1), i);
        p.join(10, info(1), 5);
        p.join(11, info(2), 3);
        p.join(12, info(3), 7);
        assert_eq!(idle_ids(&p), vec![2, 1, 3], "longest idle first");
        assert!(p.assign(NodeId(2), t(0), 1, 8));
        assert!(
            !p.assign(NodeId(2), t(1), 1, 8),
            "a busy worker takes no second task"
        );
        assert!(!p.assign(NodeId(9), t(1), 1, 8), "unknown worker");
        assert_eq!(idle_ids(&p), vec![1, 3]);
        p.release(NodeId(2), t(5), 9);
        assert_eq!(
            idle_ids(&p),
            vec![1, 3],
            "releasing another task frees nothing"
        );
        p.release(NodeId(2), t(0), 9);
        assert_eq!(
            idle_ids(&p),
            vec![1, 3, 2],
            "freed workers wait at the back"
        );
        assert!(p.assign(NodeId(3), t(1), 1, 10));
        assert_eq!(p.busy_count(), 1);
        let gone = p.leave(NodeId(3)).expect("connected");
        assert_eq!(gone.task(), Some(t(1)));
        p.leave(NodeId(1));
        assert_eq!(idle_ids(&p), vec![2]);
        assert_eq!(p.idle_count(), 1);
        assert_eq!(p.busy().count(), 0);
        assert_eq!(p.busy_count(), 0);
        // Rejoining replaces the old slot without a stale idle entry.
        p.join(13, info(2), 20);
        assert_eq!(idle_ids(&p), vec![2]);
        assert_eq!(p.get(&NodeId(2)).map(|w| w.conn), Some(13));
    }
}
