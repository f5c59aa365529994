//! The workers connected to one manager, with the idle ones kept in the
//! order they became idle.
//!
//! Dispatch runs after nearly every message, so it must cost what it hands
//! out, not the size of the network: the idle set is maintained as workers
//! take and return tasks instead of being rebuilt from every worker on
//! every dispatch. A worker's task is changed only through [`WorkerPool`],
//! which keeps the idle set true.

use std::collections::{btree_map, BTreeMap, BTreeSet, HashMap};

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::scheduler::WorkerInfo;

/// One connected worker.
pub struct WorkerSlot {
    /// The driver's id of its connection.
    pub conn: u64,
    /// What the scheduler knows of it.
    pub info: WorkerInfo,
    /// When the worker last showed life on its task (offer or progress).
    pub last_progress: u64,
    /// When it last sent anything (heartbeats included).
    pub last_seen: u64,
    /// When its current task was leased (for finish-time estimates).
    pub busy_since: u64,
    /// Frames of its current task.
    pub busy_frames: usize,
    /// The index it announced; `info.ib` is this capped by its measured
    /// speed (see [`crate::speed`]).
    pub declared_ib: f64,
    task: Option<TaskId>,
    idle_since: u64,
    /// Lost a lease without a word: not offered work until it speaks.
    silent: bool,
    /// Its operator asked that it take no new task (it finishes its own).
    drained: bool,
}

/// Where a connected worker stands, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerState {
    /// Waiting for a task.
    Idle,
    /// Rendering a task.
    Busy,
    /// Lost a lease without a word; offered nothing until it speaks.
    Silent,
    /// Drained by an operator, still finishing its task.
    Draining,
    /// Drained by an operator, with nothing left to finish.
    Drained,
}

impl WorkerState {
    /// Its name in listings and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Silent => "silent",
            Self::Draining => "draining",
            Self::Drained => "drained",
        }
    }
}

impl WorkerSlot {
    /// Where it stands: silence first, then a drain, then its task.
    pub fn state(&self) -> WorkerState {
        match (self.silent, self.drained, self.task.is_some()) {
            (true, _, _) => WorkerState::Silent,
            (false, true, true) => WorkerState::Draining,
            (false, true, false) => WorkerState::Drained,
            (false, false, true) => WorkerState::Busy,
            (false, false, false) => WorkerState::Idle,
        }
    }

    /// The task it holds, if any.
    pub fn task(&self) -> Option<TaskId> {
        self.task
    }

    /// Whether it lost a lease without being heard from since it was
    /// leased (see [`WorkerPool::silence`]).
    pub fn is_silent(&self) -> bool {
        self.silent
    }
}

/// An index as a key that sorts like the number (indices are not negative).
type IbOrder = u64;

fn ib_order(ib: f64) -> IbOrder {
    // Non-negative floats sort as their bits do; NaN counts as 0.
    ib.max(0.0).to_bits()
}

/// Connected workers by id, and the idle ones by how long they have waited.
#[derive(Default)]
pub struct WorkerPool {
    slots: BTreeMap<NodeId, WorkerSlot>,
    idle: BTreeSet<(u64, NodeId)>,
    busy: BTreeSet<NodeId>,
    /// The busy workers by index: a dispatch compares a task's idle
    /// worker only with the busy ones faster than it, and with workers
    /// alike there are none, so the comparison costs nothing.
    busy_by_ib: BTreeSet<(IbOrder, NodeId)>,
    /// Each worker's measured index, kept across its reconnections: a
    /// worker cannot shed a slow measurement by reconnecting.
    measured: HashMap<NodeId, f64>,
    /// The index each worker's admission probe showed, until it is
    /// measured on tasks.
    probed: HashMap<NodeId, f64>,
}

impl WorkerPool {
    /// Adds a worker that just said hello (idle from `now`), replacing any
    /// slot it had.
    pub fn join(&mut self, conn: u64, mut info: WorkerInfo, now: u64) {
        let id = info.id;
        self.leave(id);
        self.idle.insert((now, id));
        let declared_ib = info.ib;
        info.ib = self.effective(id, declared_ib);
        self.slots.insert(
            id,
            WorkerSlot {
                conn,
                info,
                last_progress: now,
                last_seen: now,
                busy_since: now,
                busy_frames: 0,
                declared_ib,
                task: None,
                idle_since: now,
                silent: false,
                drained: false,
            },
        );
    }

    /// Records how fast `id` did `work_ibm` IB-minutes of work that took
    /// `elapsed_ms` from lease to result, and caps its index by it.
    /// Returns its index now.
    pub fn observe_speed(&mut self, id: NodeId, work_ibm: f64, elapsed_ms: u64) -> Option<f64> {
        let sample = crate::speed::ib_sample(work_ibm, elapsed_ms)?;
        let measured = crate::speed::blend(self.measured.get(&id).copied(), sample);
        self.measured.insert(id, measured);
        let ib = crate::speed::effective_ib(self.slots.get(&id)?.declared_ib, Some(measured));
        self.set_ib(id, ib);
        Some(ib)
    }

    /// The index measured for `id`: on its tasks once it finished one,
    /// else by its admission probe.
    pub fn measured_ib(&self, id: &NodeId) -> Option<f64> {
        self.measured
            .get(id)
            .or_else(|| self.probed.get(id))
            .copied()
    }

    /// Records the index `id`'s admission probe showed (see
    /// [`crate::speed::probe_ib`]), before it joins: until it finishes a
    /// task, its announced index is capped by it.
    pub fn admission_speed(&mut self, id: NodeId, ib: f64) {
        self.probed.insert(id, ib);
        if let Some(declared) = self.slots.get(&id).map(|s| s.declared_ib) {
            let effective = self.effective(id, declared);
            self.set_ib(id, effective);
        }
    }

    /// Sets a connected worker's index, keeping the busy index true.
    fn set_ib(&mut self, id: NodeId, ib: f64) {
        let Some(slot) = self.slots.get_mut(&id) else {
            return;
        };
        if slot.task.is_some() && self.busy_by_ib.remove(&(ib_order(slot.info.ib), id)) {
            self.busy_by_ib.insert((ib_order(ib), id));
        }
        slot.info.ib = ib;
    }

    fn effective(&self, id: NodeId, declared: f64) -> f64 {
        crate::speed::effective_ib_probed(
            declared,
            self.measured.get(&id).copied(),
            self.probed.get(&id).copied(),
        )
    }

    /// Removes a worker; returns its slot (with the task it held).
    pub fn leave(&mut self, id: NodeId) -> Option<WorkerSlot> {
        let slot = self.slots.remove(&id)?;
        self.idle.remove(&(slot.idle_since, id));
        self.busy.remove(&id);
        self.busy_by_ib.remove(&(ib_order(slot.info.ib), id));
        Some(slot)
    }

    /// Marks `id` busy with `task`; false when it is not connected or not idle.
    pub fn assign(&mut self, id: NodeId, task: TaskId, frames: usize, now: u64) -> bool {
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        if slot.task.is_some() {
            return false;
        }
        self.idle.remove(&(slot.idle_since, id));
        self.busy.insert(id);
        self.busy_by_ib.insert((ib_order(slot.info.ib), id));
        slot.task = Some(task);
        slot.busy_since = now;
        slot.busy_frames = frames;
        slot.last_progress = now;
        true
    }

    /// Frees `id` if it holds `task`; it is then the most recently idle
    /// (unless silenced: it waits until it is heard from).
    pub fn release(&mut self, id: NodeId, task: TaskId, now: u64) {
        if let Some(slot) = self.slots.get_mut(&id) {
            if slot.task == Some(task) {
                slot.task = None;
                slot.idle_since = now;
                if !slot.silent && !slot.drained {
                    self.idle.insert((now, id));
                }
                self.busy.remove(&id);
                self.busy_by_ib.remove(&(ib_order(slot.info.ib), id));
            }
        }
    }

    /// Keeps `id` out of dispatch until [`Self::heard`]: a worker whose
    /// lease ran out with no word from it since the lease began is frozen
    /// or cut off, and leasing it the next task would only lose that one
    /// too.
    pub fn silence(&mut self, id: NodeId) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.silent = true;
            self.idle.remove(&(slot.idle_since, id));
        }
    }

    /// Records that `id` sent something at `now`; a silenced worker
    /// without a task becomes idle again.
    pub fn heard(&mut self, id: NodeId, now: u64) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.last_seen = now;
            if slot.silent {
                slot.silent = false;
                if slot.task.is_none() && !slot.drained {
                    slot.idle_since = now;
                    self.idle.insert((now, id));
                }
            }
        }
    }

    /// Takes `id` out of dispatch for good (until [`Self::undrain`]): it
    /// finishes the task it holds and gets no other, as before a machine
    /// is serviced. False when it is not connected.
    pub fn drain(&mut self, id: NodeId) -> bool {
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        slot.drained = true;
        self.idle.remove(&(slot.idle_since, id));
        true
    }

    /// Puts a drained worker back into dispatch (idle from `now` when it
    /// holds no task). False when it is not connected.
    pub fn undrain(&mut self, id: NodeId, now: u64) -> bool {
        let Some(slot) = self.slots.get_mut(&id) else {
            return false;
        };
        if slot.drained {
            slot.drained = false;
            if slot.task.is_none() && !slot.silent {
                slot.idle_since = now;
                self.idle.insert((now, id));
            }
        }
        true
    }

    /// One worker.
    pub fn get(&self, id: &NodeId) -> Option<&WorkerSlot> {
        self.slots.get(id)
    }

    /// One worker, to update its times (not its task: see `assign`).
    pub fn get_mut(&mut self, id: &NodeId) -> Option<&mut WorkerSlot> {
        self.slots.get_mut(id)
    }

    /// Whether no worker is connected.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Workers without a task.
    pub fn idle_count(&self) -> usize {
        self.idle.len()
    }

    /// Workers with a task.
    pub fn busy_count(&self) -> usize {
        self.busy.len()
    }

    /// Every worker, in id order.
    pub fn values(&self) -> btree_map::Values<'_, NodeId, WorkerSlot> {
        self.slots.values()
    }

    /// Every worker with its id, in id order.
    pub fn iter(&self) -> btree_map::Iter<'_, NodeId, WorkerSlot> {
        self.slots.iter()
    }

    /// Idle workers, longest idle first.
    pub fn idle(&self) -> impl Iterator<Item = &WorkerSlot> + '_ {
        self.idle.iter().filter_map(|(_, id)| self.slots.get(id))
    }

    /// Busy workers faster than `ib`, fastest first, with the task each
    /// holds.
    pub fn busy_faster_than(&self, ib: f64) -> impl Iterator<Item = (&WorkerSlot, TaskId)> + '_ {
        let above = (
            std::ops::Bound::Excluded((ib_order(ib), NodeId(u128::MAX))),
            std::ops::Bound::Unbounded,
        );
        self.busy_by_ib
            .range(above)
            .rev()
            .filter_map(|(_, id)| self.slots.get(id))
            .filter_map(|w| w.task.map(|t| (w, t)))
    }

    /// Busy workers with the task each holds.
    pub fn busy(&self) -> impl Iterator<Item = (&WorkerSlot, TaskId)> + '_ {
        self.busy
            .iter()
            .filter_map(|id| self.slots.get(id))
            .filter_map(|w| w.task.map(|t| (w, t)))
    }
}
