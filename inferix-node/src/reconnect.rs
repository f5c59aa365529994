//! How workers and verifiers keep reaching a manager: one policy for both.
//!
//! A node is given one manager address or several (comma-separated). It
//! talks to one at a time; when that one is unreachable or the session
//! drops, it moves to the next, waiting between attempts with exponential
//! backoff and full jitter, so that a thousand nodes cut off by one outage
//! do not all knock again at the same instant. A session that got as far as
//! the manager's welcome starts the next backoff afresh.

use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tracing::debug;

use crate::NodeError;

/// A node that holds sessions with a manager: a worker or a verifier.
#[async_trait::async_trait]
pub(crate) trait SessionNode: Sync {
    /// Role name for logs.
    fn role(&self) -> &'static str;
    /// Connects to `links.address()`, says hello, calls `links.connected()`
    /// once welcomed, and serves the session until it ends: `Ok` when
    /// `shutdown` turned true, an error when the session was lost.
    async fn session(
        &self,
        links: &mut Reconnect,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), NodeError>;
}

/// Holds sessions with the managers `links` lists until `shutdown` turns
/// true or a manager refuses the node (token, version), moving to the next
/// manager after a backoff whenever a session is lost.
pub(crate) async fn follow(
    node: &dyn SessionNode,
    mut links: Reconnect,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        match node.session(&mut links, &mut shutdown).await {
            Ok(()) => return Ok(()),
            Err(NodeError::Refused(m)) => return Err(NodeError::Refused(m)),
            Err(e) => {
                debug!(role = node.role(), manager = %links.address(), error = %e, "session lost; reconnecting")
            }
        }
        let delay = links.failed();
        if !Reconnect::pause(delay, &mut shutdown).await {
            return Ok(());
        }
    }
}

/// The addresses a node follows and the delay before its next attempt.
#[derive(Debug, Clone)]
pub(crate) struct Reconnect {
    addresses: Vec<String>,
    current: usize,
    min: Duration,
    max: Duration,
    /// Upper bound of the next jittered delay.
    ceiling: Duration,
}

impl Reconnect {
    /// Follows the comma-separated `addresses`, waiting between `min` and
    /// `max` (before jitter) between attempts.
    pub(crate) fn new(addresses: &str, min: Duration, max: Duration) -> Reconnect {
        let mut list: Vec<String> = addresses
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if list.is_empty() {
            // Let the transport report the empty address as unreachable.
            list.push(addresses.to_string());
        }
        let min = min.max(Duration::from_millis(1));
        Reconnect {
            addresses: list,
            current: 0,
            min,
            max: max.max(min),
            ceiling: min,
        }
    }

    /// The manager to try now.
    pub(crate) fn address(&self) -> &str {
        &self.addresses[self.current]
    }

    /// The manager welcomed this node: the next failure waits the least.
    pub(crate) fn connected(&mut self) {
        self.ceiling = self.min;
    }

    /// The attempt or the session failed: the next attempt goes to the next
    /// manager, after a delay drawn uniformly below a ceiling that doubles
    /// with every failure in a row.
    pub(crate) fn failed(&mut self) -> Duration {
        self.current = (self.current + 1) % self.addresses.len();
        let delay = jittered(self.ceiling, &mut rand::thread_rng());
        self.ceiling = (self.ceiling * 2).min(self.max);
        delay
    }

    /// Waits `delay` unless `shutdown` turns true first (then false).
    pub(crate) async fn pause(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
        if *shutdown.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.changed() => false,
        }
    }
}

/// A delay uniformly drawn from [ceiling / 2, ceiling]: half is a floor so
/// a node never spins, half is jitter so nodes spread out.
fn jittered(ceiling: Duration, rng: &mut impl Rng) -> Duration {
    let half = ceiling / 2;
    half + Duration::from_nanos(rng.gen_range(0..=half.as_nanos().min(u64::MAX as u128) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_managers_are_tried_in_turn() {
        let mut r = Reconnect::new(
            " a@1:1, b@2:2 ,,c@3:3",
            Duration::from_millis(10),
            Duration::from_secs(1),
        );
        let mut seen = vec![r.address().to_string()];
        for _ in 0..3 {
            r.failed();
            seen.push(r.address().to_string());
        }
        assert_eq!(seen, ["a@1:1", "b@2:2", "c@3:3", "a@1:1"]);
    }

    #[test]
    fn delays_double_up_to_the_maximum_and_restart_after_a_welcome() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(800));
        let mut r = Reconnect::new("m", min, max);
        let mut ceilings = Vec::new();
        for _ in 0..6 {
            let ceiling = r.ceiling;
            let d = r.failed();
            assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} outside its window");
            ceilings.push(ceiling.as_millis());
        }
        assert_eq!(ceilings, [100, 200, 400, 800, 800, 800]);
        r.connected();
        let d = r.failed();
        assert!(d <= min, "a welcome restarts the backoff: {d:?}");
    }

    #[test]
    fn jitter_spreads_nodes_out() {
        let mut rng = rand::thread_rng();
        let ceiling = Duration::from_secs(8);
        let delays: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| jittered(ceiling, &mut rng)).collect();
        assert!(delays.len() > 40, "delays barely differ: {delays:?}");
        assert!(delays.iter().all(|d| *d >= ceiling / 2 && *d <= ceiling));
    }

    #[tokio::test]
    async fn a_pause_ends_early_on_shutdown() {
        let (stop, mut stopped) = watch::channel(false);
        let waiter =
            tokio::spawn(
                async move { Reconnect::pause(Duration::from_secs(3600), &mut stopped).await },
            );
        stop.send(true).unwrap();
        assert!(!waiter.await.unwrap(), "shutdown interrupts the wait");
    }
}
