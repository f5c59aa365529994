//! The task stores the benchmarks run on: each run opens a fresh, empty
//! one, and PostgreSQL schemas are dropped when the benchmarks are done.

use std::sync::Arc;

use inferix_core::store::TaskStore;
use inferix_storage::{open_task_store, Backoff, OpenOptions, PostgresOptions, PostgresTaskStore};

use crate::BenchError;

/// Which store a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// `MemoryTaskStore`.
    Memory,
    /// `SqliteTaskStore` on a file (WAL).
    Sqlite,
    /// `PostgresTaskStore` in a fresh schema.
    Postgres,
}

impl StoreKind {
    /// The store's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Memory => "in-memory",
            StoreKind::Sqlite => "SQLite",
            StoreKind::Postgres => "PostgreSQL",
        }
    }
}

/// Opens a fresh, empty store of `kind` (files under `dir`).
pub async fn open_store(
    kind: StoreKind,
    dir: &std::path::Path,
    pg_url: Option<&str>,
) -> Result<Arc<dyn TaskStore>, BenchError> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let url = match kind {
        StoreKind::Memory => "memory:".to_string(),
        StoreKind::Sqlite => format!("sqlite:{}", dir.join(format!("bench-{n}.db")).display()),
        StoreKind::Postgres => {
            let url = pg_url.ok_or_else(|| BenchError::Setup("no PostgreSQL URL".into()))?;
            // A schema of its own: every run starts from an empty store.
            let schema = format!(
                "bench_{}_{}_{n}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis())
                    .unwrap_or(0)
            );
            let options = PostgresOptions::new(url).with_schema(schema);
            let store = PostgresTaskStore::open_with_retry(options, Backoff::default())
                .await
                .map_err(|e| BenchError::Setup(format!("{}: {e}", kind.name())))?;
            // Kept to drop the schema when the benchmarks are done.
            BENCH_SCHEMAS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(store.clone());
            return Ok(Arc::new(store));
        }
    };
    open_task_store(&url, &OpenOptions::default())
        .await
        .map_err(|e| BenchError::Setup(format!("{}: {e}", kind.name())))
}

/// PostgreSQL stores the benchmarks opened, whose schemas are dropped
/// when they are done.
static BENCH_SCHEMAS: std::sync::Mutex<Vec<PostgresTaskStore>> = std::sync::Mutex::new(Vec::new());

/// Drops the PostgreSQL schemas opened by [`open_store`]: a benchmark run
/// leaves nothing behind in the database it was pointed at.
pub async fn drop_bench_schemas() {
    let schemas = std::mem::take(&mut *BENCH_SCHEMAS.lock().unwrap_or_else(|e| e.into_inner()));
    for store in schemas {
        let name = format!("{store:?}");
        if let Err(e) = store.drop_schema().await {
            eprintln!("benchmark schema left in the database ({name}): {e}");
        }
    }
}
