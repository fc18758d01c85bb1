//! The lab's latency clock: wakes each waiting request at its deadline, to within the OS's
//! timer slack (tens of microseconds).
//!
//! tokio's timer counts whole milliseconds and rounds a deadline up to the next one, and its
//! driver wakes a little after that: a 20 ms sleep lasts about 21.5 ms. The lab promises
//! `--latency MS` per request, and the plan benchmark compares wall time with a bound made of
//! that latency, so the lab keeps its word on a thread of its own that sleeps until the
//! earliest deadline.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;

/// A handle to the clock thread; the thread ends when the last handle is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Clock {
    requests: mpsc::Sender<Wake>,
}

#[derive(Debug)]
struct Wake {
    at: Instant,
    /// Tells apart wakes of the same instant (a heap needs a total order; senders have none).
    seq: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Wake {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Wake {}
impl PartialOrd for Wake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Wake {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

impl Clock {
    /// Starts the clock thread.
    pub(crate) fn start() -> std::io::Result<Clock> {
        let (requests, incoming) = mpsc::channel::<Wake>();
        std::thread::Builder::new().name("lab-clock".into()).spawn(move || run(&incoming))?;
        Ok(Clock { requests })
    }

    /// Waits until `at`. Should the clock thread be gone, returns at once.
    pub(crate) async fn sleep_until(&self, at: Instant) {
        let (wake, woken) = oneshot::channel();
        if self.requests.send(Wake { at, seq: 0, wake }).is_ok() {
            let _ = woken.await;
        }
    }
}

fn run(incoming: &mpsc::Receiver<Wake>) {
    let mut due: BinaryHeap<Reverse<Wake>> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let now = Instant::now();
        while due.peek().is_some_and(|Reverse(w)| w.at <= now) {
            if let Some(Reverse(w)) = due.pop() {
                // The request may have gone (its client hung up): nothing to wake then.
                let _ = w.wake.send(());
            }
        }
        let next = match due.peek() {
            Some(Reverse(w)) => incoming.recv_timeout(w.at.saturating_duration_since(now)),
            None => incoming.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(mut wake) => {
                seq += 1;
                wake.seq = seq;
                due.push(Reverse(wake));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Every handle is gone; wake whoever still waits and stop.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                for Reverse(w) in due.drain() {
                    let _ = w.wake.send(());
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sleepers_wake_at_their_deadlines_in_order() {
        let clock = Clock::start().expect("clock thread");
        let start = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for ms in [30u64, 10, 20] {
            let (clock, tx) = (clock.clone(), tx.clone());
            tokio::spawn(async move {
                clock.sleep_until(start + Duration::from_millis(ms)).await;
                let _ = tx.send((ms, start.elapsed()));
            });
        }
        drop(tx);
        let mut woken = Vec::new();
        while let Some(w) = rx.recv().await {
            woken.push(w);
        }
        let order: Vec<u64> = woken.iter().map(|(ms, _)| *ms).collect();
        assert_eq!(order, [10, 20, 30]);
        for (ms, elapsed) in woken {
            assert!(elapsed >= Duration::from_millis(ms), "woke at {elapsed:?}, before its {ms} ms");
        }
    }
}
