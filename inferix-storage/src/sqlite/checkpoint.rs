//! WAL checkpoints on a thread of their own.
//!
//! SQLite copies the write-ahead log back into the database (and syncs it)
//! inside whichever commit pushes the log past its limit, so every few
//! hundred commits one of the manager's writes also paid for copying and
//! syncing the pages of all the others. A connection of its own checkpoints
//! the log in the background instead; SQLite lets a passive checkpoint run
//! beside writers. The commits keep checkpointing themselves only if the
//! log outgrows a much larger limit (the thread fell behind).

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::Connection;

use super::{sql_err, StoreError, BUSY_TIMEOUT};

/// How often the log is checkpointed.
const INTERVAL: Duration = Duration::from_millis(100);

/// Log pages past which a commit checkpoints itself (SQLite's default is
/// 1,000): a safety net, reached only when the thread falls behind.
pub(super) const COMMIT_CHECKPOINT_PAGES: i64 = 16_000;

/// Stops its thread when the last store handle drops it.
pub(super) struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`; `done` hears of each
    /// checkpoint that ran.
    pub(super) fn spawn(path: &Path, done: Option<mpsc::Sender<()>>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(sql_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("inferix-sqlite-checkpoint".into())
            .spawn(move || loop {
                match stopped.recv_timeout(INTERVAL) {
                    Err(RecvTimeoutError::Timeout) => {
                        // A busy or failed checkpoint is retried next time;
                        // the commits' own limit bounds the log meanwhile.
                        let ran = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                        if let (Ok(()), Some(done)) = (ran, &done) {
                            let _ = done.send(());
                        }
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Self { _stop: stop })
    }
}
