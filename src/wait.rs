//! Waiting for something slow (a vCenter task, a library sync, a file transfer, a Horizon push):
//! one pace for every wait.
//!
//! The first looks come soon, since quick operations finish quickly; later ones come less often
//! (a quarter of the time waited so far, never more than `max` apart), so a long wait does not
//! flood the server.

use std::time::Duration;

use tokio::time::Instant;

/// A wait under way: when it started, how long it may take, and how far apart looks may be.
#[derive(Clone, Copy, Debug)]
pub struct Waiting {
    started: Instant,
    limit: Duration,
    max: Duration,
}

impl Waiting {
    /// A wait that starts now and gives up after `limit`, looking at most `max` apart.
    pub fn new(limit: Duration, max: Duration) -> Waiting {
        Waiting { started: Instant::now(), limit, max }
    }

    /// Sleeps until the next look; `false` once the limit is reached (the caller says what
    /// timed out).
    pub async fn next(&self) -> bool {
        let elapsed = self.started.elapsed();
        if elapsed >= self.limit {
            return false;
        }
        let pause = (elapsed / 4).min(self.max).max(self.max.min(Duration::from_millis(50)));
        tokio::time::sleep(pause.min(self.limit - elapsed)).await;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Looks come soon at first, then further apart up to `max`, and stop at the limit.
    #[tokio::test(start_paused = true)]
    async fn looks_slow_down_and_stop_at_the_limit() {
        let waiting = Waiting::new(Duration::from_secs(10), Duration::from_secs(2));
        let start = tokio::time::Instant::now();
        let mut looks = Vec::new();
        while waiting.next().await {
            looks.push(start.elapsed());
        }
        let gaps: Vec<Duration> = looks.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(looks.first(), Some(&Duration::from_millis(50)), "the first look comes soon");
        // The last pause is cut short by the limit.
        let before_last = &gaps[..gaps.len() - 1];
        assert!(before_last.windows(2).all(|g| g[0] <= g[1]), "looks never come closer: {gaps:?}");
        assert!(gaps.iter().all(|g| *g <= Duration::from_secs(2)), "never more than max apart: {gaps:?}");
        assert_eq!(looks.last(), Some(&Duration::from_secs(10)), "the last look is at the limit");
    }
}
