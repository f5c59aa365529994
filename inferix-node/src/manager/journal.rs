//! Results received while the task database is away, kept on the
//! manager's disk until the database records them, so that a manager that
//! crashes during an outage loses no rendered frame: the restarted manager
//! reads them back and records them before it reconciles leases.
//!
//! One file per result, written to a temporary name, synced, renamed into
//! place and the folder synced: a crash leaves either the whole entry or
//! none.

use std::path::{Path, PathBuf};

use inferix_core::ids::{NodeId, TaskId};
use inferix_core::task::TaskResult;
use inferix_core::ContentHash;
use serde::{Deserialize, Serialize};
use tracing::warn;

/// One journalled result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Entry {
    pub(super) task: TaskId,
    pub(super) worker: NodeId,
    pub(super) result: TaskResult,
}

/// The journal folder.
#[derive(Debug, Clone)]
pub(super) struct ResultJournal {
    dir: PathBuf,
}

impl ResultJournal {
    pub(super) fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, task: TaskId, attempt: u32) -> PathBuf {
        let name = ContentHash::of(format!("{task}/{attempt}").as_bytes()).to_hex();
        self.dir.join(format!("{name}.json"))
    }

    /// Writes `entry` durably.
    pub(super) async fn write(&self, entry: &Entry) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        let path = self.path(entry.task, entry.result.attempt);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_synced(&dir, &path, &bytes))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Forgets the entry of `task`'s `attempt` once the database has it.
    pub(super) async fn remove(&self, task: TaskId, attempt: u32) {
        let path = self.path(task, attempt);
        if let Err(e) = tokio::fs::remove_file(&path).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!(path = %path.display(), error = %e, "journal entry not removed");
            }
        }
    }

    /// Every entry on disk; an unreadable one is set aside (renamed
    /// `.bad`) with a warning rather than stopping the manager.
    pub(super) async fn load(&self) -> Vec<Entry> {
        let Ok(mut dir) = tokio::fs::read_dir(&self.dir).await else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while let Ok(Some(item)) = dir.next_entry().await {
            let path = item.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let parsed = tokio::fs::read(&path)
                .await
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(entry) => out.push(entry),
                Err(e) => {
                    warn!(path = %path.display(), error = %e, "unreadable journal entry set aside");
                    let _ = tokio::fs::rename(&path, path.with_extension("bad")).await;
                }
            }
        }
        out.sort_by_key(|e| (e.task, e.result.attempt));
        out
    }
}

fn write_synced(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    inferix_core::fs::create_private_dir(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use inferix_core::ids::JobId;

    fn entry(index: u32, attempt: u32) -> Entry {
        Entry {
            task: TaskId::new(JobId::random(), index),
            worker: NodeId(7),
            result: TaskResult {
                worker: NodeId(7),
                frames: Vec::new(),
                render_ms: 5,
                attempt,
                scene: ContentHash::of(b"scene"),
                device_class: "cpu".into(),
                public_key: vec![1; 32],
                signature: vec![2; 64],
            },
        }
    }

    #[tokio::test]
    async fn entries_survive_until_removed_and_garbage_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let journal = ResultJournal::new(dir.path().join("journal"));
        assert!(journal.load().await.is_empty(), "no folder yet: nothing");
        let (a, b) = (entry(0, 1), entry(1, 2));
        journal.write(&a).await.unwrap();
        journal.write(&b).await.unwrap();
        // A second process reading the same folder sees both.
        let again = ResultJournal::new(dir.path().join("journal"));
        let mut loaded = again.load().await;
        loaded.sort_by_key(|e| e.task.index);
        assert_eq!(loaded, vec![a.clone(), b.clone()]);
        again.remove(a.task, a.result.attempt).await;
        // Removing twice, or what was never written, is harmless.
        again.remove(a.task, a.result.attempt).await;
        std::fs::write(dir.path().join("journal").join("torn.json"), b"{\"task\":").unwrap();
        assert_eq!(journal.load().await, vec![b]);
        assert!(dir.path().join("journal").join("torn.bad").exists());
    }
}
