//! The tokio runtime behind every Python call, and the one way Python
//! threads block on it: without the GIL, with panics caught.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::errors::{Error, Kind};

static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The process-wide runtime; local networks keep running on it between
/// Python calls.
pub(crate) fn runtime() -> Result<&'static tokio::runtime::Runtime, Error> {
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("inferix")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::new(Kind::Internal, format!("cannot start the runtime: {e}")))
}

/// Runs the future made by `make` to completion with the GIL released, so
/// other Python threads run meanwhile; a panic becomes `InternalError`.
pub(crate) fn blocking<T, F, Fut>(py: Python<'_>, make: F) -> Result<T, Error>
where
    T: Send,
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<T, Error>>,
{
    py.detach(move || {
        let rt = runtime()?;
        std::panic::catch_unwind(AssertUnwindSafe(|| rt.block_on(make())))
            .unwrap_or_else(|panic| Err(Error::from_panic(panic)))
    })
}

/// Like [`blocking`] for waits that may be long: Ctrl-C (any pending Python
/// signal) interrupts it, and `limit` bounds it with a `Timeout` error
/// carrying `what`.
pub(crate) fn interruptible<T, Fut>(
    py: Python<'_>,
    fut: Fut,
    limit: Option<Duration>,
    what: impl Fn() -> String,
) -> PyResult<T>
where
    T: Send,
    Fut: Future<Output = Result<T, Error>> + Send,
{
    /// How often Python gets a chance to deliver signals.
    const SLICE: Duration = Duration::from_millis(100);
    let deadline = limit.map(|l| Instant::now() + l);
    let mut fut = Box::pin(fut);
    loop {
        let slice = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::new(Kind::Timeout, what()).into());
                }
                left.min(SLICE)
            }
            None => SLICE,
        };
        let step = fut.as_mut();
        let done = blocking(py, move || async move {
            Ok(tokio::time::timeout(slice, step).await.ok())
        })?;
        if let Some(result) = done {
            return Ok(result?);
        }
        py.check_signals()?;
    }
}
