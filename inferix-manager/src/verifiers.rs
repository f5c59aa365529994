//! The connected verifiers and how loaded each one is.
//!
//! A verifier's `busy` counts the offers the manager still waits for from
//! it; it goes down when the verdict arrives, and also when the manager
//! stops waiting (the vote was drawn again elsewhere, the round ended), so
//! a verifier that once missed a deadline is not taken for busy forever.
//!
//! A verifier announces the scene formats it renders, and is seated only
//! on rounds whose re-renders it can do. A claim that turns out false (it
//! answered "inconclusive" for a format it announced, too often in a row)
//! costs it that format for as long as the manager runs, reconnections
//! included: a verifier cannot collect seats it then declines.

use std::collections::{BTreeMap, HashMap, HashSet};

use inferix_core::ids::NodeId;
use inferix_core::renderer::SceneFormat;

/// What the manager knows of one verifier.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifierInfo {
    /// Scene formats it re-renders (crop challenges, flat frames, clean
    /// pixels, claims); empty for a verifier that only checks files.
    pub formats: Vec<SceneFormat>,
    /// Lowered each time its verdict disagrees with a round's outcome.
    pub reputation: f64,
    /// Offers it has not answered yet that the manager still waits for.
    pub busy: usize,
    /// Inconclusive answers in a row for each format it announced; reset
    /// by a conclusive one.
    pub inconclusive: Vec<(SceneFormat, u32)>,
    /// The account that runs it, when it joined with an account's key:
    /// it never checks the work of that account's workers.
    pub operator: Option<String>,
}

/// What a verifier brings when it joins besides its formats.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifierStanding {
    /// The account that runs it; `None` for a node the manager's own
    /// operator admitted with the node token (it is its own operator).
    pub operator: Option<String>,
    /// Its account's verifier reputation, kept across reconnections and
    /// restarts by the driver (1.0 for a node without an account).
    pub reputation: f64,
}

impl Default for VerifierStanding {
    fn default() -> Self {
        Self {
            operator: None,
            reputation: 1.0,
        }
    }
}

/// Whether a node run by `a` may judge the work of one run by `b`
/// (`None` is a node of its own): never within one account.
pub fn independent(a: &Option<String>, b: &Option<String>) -> bool {
    a.is_none() || b.is_none() || a != b
}

impl VerifierInfo {
    /// Whether it re-renders scenes of `format`.
    pub fn renders(&self, format: SceneFormat) -> bool {
        self.formats.contains(&format)
    }
}

/// Inconclusive answers in a row after which a verifier loses a format.
pub const MAX_INCONCLUSIVE_IN_A_ROW: u32 = 3;

/// Connected verifiers, in id order (so every choice is deterministic).
#[derive(Debug, Default)]
pub struct VerifierPool {
    slots: BTreeMap<NodeId, VerifierInfo>,
    /// Formats verifiers lost by failing to render them, kept across
    /// their reconnections.
    revoked: HashMap<NodeId, Vec<SceneFormat>>,
    /// Verifiers caught passing a known-bad result: never seated again.
    banned: HashSet<NodeId>,
}

impl VerifierPool {
    /// Adds (or, on a reconnection, resets) a verifier that announces
    /// `formats`, less those it lost before.
    pub fn join(&mut self, id: NodeId, formats: Vec<SceneFormat>) {
        self.join_as(id, formats, VerifierStanding::default());
    }

    /// Adds a verifier run by `standing.operator`. Its reputation is the
    /// lower of its account's and what it had here before, so neither a
    /// reconnection nor a new account record restores a lowered one.
    pub fn join_as(
        &mut self,
        id: NodeId,
        mut formats: Vec<SceneFormat>,
        standing: VerifierStanding,
    ) {
        let reputation = if self.banned.contains(&id) {
            0.0
        } else {
            self.slots
                .get(&id)
                .map_or(1.0, |v| v.reputation)
                .min(standing.reputation.clamp(0.0, 1.0))
        };
        if let Some(lost) = self.revoked.get(&id) {
            formats.retain(|f| !lost.contains(f));
        }
        formats.dedup();
        self.slots.insert(
            id,
            VerifierInfo {
                formats,
                reputation,
                busy: 0,
                inconclusive: Vec::new(),
                operator: standing.operator,
            },
        );
    }

    /// Records whether `id` could check a result needing `format`; returns
    /// true when this answer cost it the format.
    pub fn record_check(&mut self, id: NodeId, format: SceneFormat, conclusive: bool) -> bool {
        let Some(v) = self.slots.get_mut(&id) else {
            return false;
        };
        if !v.renders(format) {
            return false;
        }
        let pos = match v.inconclusive.iter().position(|(f, _)| *f == format) {
            Some(p) => p,
            None => {
                v.inconclusive.push((format, 0));
                v.inconclusive.len() - 1
            }
        };
        if conclusive {
            v.inconclusive[pos].1 = 0;
            return false;
        }
        v.inconclusive[pos].1 += 1;
        if v.inconclusive[pos].1 < MAX_INCONCLUSIVE_IN_A_ROW {
            return false;
        }
        v.formats.retain(|f| *f != format);
        v.inconclusive.remove(pos);
        self.revoked.entry(id).or_default().push(format);
        true
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

    /// Seats `id` on nothing from now on, reconnections included.
    pub fn ban(&mut self, id: NodeId) {
        self.banned.insert(id);
        if let Some(v) = self.slots.get_mut(&id) {
            v.reputation = 0.0;
        }
    }

    /// Whether `id` was banned.
    pub fn is_banned(&self, id: &NodeId) -> bool {
        self.banned.contains(id)
    }

    /// Multiplies `id`'s reputation by `factor`.
    pub fn penalise(&mut self, id: NodeId, factor: f64) {
        if let Some(v) = self.slots.get_mut(&id) {
            v.reputation *= factor;
        }
    }
}
