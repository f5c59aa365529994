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

/// The behaviour every [`Clock`] must show (feature `testing`): the manager
/// orders leases, deadlines and payments by it, so it never runs
/// backwards, and it moves on when time passes.
#[cfg(all(feature = "runtime", any(test, feature = "testing")))]
pub mod conformance {
    use super::Clock;

    /// Runs every case; `pass_time` lets some time pass (real or, for a
    /// paused runtime, virtual) and returns how long, in milliseconds.
    pub async fn test_all<F, Fut>(clock: &dyn Clock, pass_time: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = u64>,
    {
        readings_never_go_backwards(clock);
        time_moves_on_when_it_passes(clock, pass_time).await;
    }

    /// A thousand readings in a row never decrease.
    pub fn readings_never_go_backwards(clock: &dyn Clock) {
        let mut last = clock.now_ms();
        for _ in 0..1000 {
            let now = clock.now_ms();
            assert!(now >= last, "the clock went back from {last} to {now}");
            last = now;
        }
    }

    /// After `pass_time`, the clock reads at least that much later.
    pub async fn time_moves_on_when_it_passes<F, Fut>(clock: &dyn Clock, pass_time: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = u64>,
    {
        let before = clock.now_ms();
        let passed = pass_time().await;
        let after = clock.now_ms();
        assert!(
            after >= before + passed,
            "{passed} ms passed but the clock moved from {before} to {after}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_system_clock_passes_the_clock_suite() {
        // Time passes for real: until a monotonic clock has seen 2 ms go.
        conformance::test_all(&SystemClock, || async {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(2) {
                tokio::task::yield_now().await;
            }
            start.elapsed().as_millis() as u64
        })
        .await;
        // Milliseconds since 1970, not since boot.
        assert!(SystemClock.now_ms() > 1_600_000_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_tokio_clock_passes_the_clock_suite_in_virtual_time() {
        let clock = TokioClock::starting_at(5_000);
        assert_eq!(clock.now_ms(), 5_000);
        conformance::test_all(&clock, || async {
            tokio::time::advance(std::time::Duration::from_secs(90)).await;
            90_000
        })
        .await;
    }
}
