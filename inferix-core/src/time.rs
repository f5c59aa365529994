//! Time as a value passed in, so logic can be driven by tests and
//! simulations without real clocks.

use std::sync::Arc;

/// A source of "now" in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Current time.
    fn now_ms(&self) -> u64;
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Time that follows the tokio runtime's clock (which tests can pause and
/// advance) from a fixed epoch.
#[cfg(feature = "runtime")]
#[derive(Debug, Clone)]
pub struct TokioClock {
    start: tokio::time::Instant,
    epoch_ms: u64,
}

#[cfg(feature = "runtime")]
impl TokioClock {
    /// A clock reading `epoch_ms` now.
    pub fn starting_at(epoch_ms: u64) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            epoch_ms,
        }
    }
}

#[cfg(feature = "runtime")]
impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        self.epoch_ms + self.start.elapsed().as_millis() as u64
    }
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;
