//! Per-stack limits: work in flight (a semaphore) and requests per second (evenly spaced
//! start times).

use std::time::Duration;

use tokio::sync::{Mutex, Semaphore, SemaphorePermit};
use tokio::time::Instant;

pub(crate) struct Limiter {
    in_flight: Semaphore,
    interval: Option<Duration>,
    next_start: Mutex<Instant>,
}

impl Limiter {
    pub(crate) fn new(concurrency: usize, rate_per_second: u32) -> Limiter {
        Limiter {
            in_flight: Semaphore::new(concurrency.max(1)),
            interval: (rate_per_second > 0).then(|| Duration::from_secs(1) / rate_per_second),
            next_start: Mutex::new(Instant::now()),
        }
    }

    /// Waits for a free slot and for the rate limit; the slot is held until the permit drops.
    pub(crate) async fn acquire(&self) -> SemaphorePermit<'_> {
        // The semaphore is never closed.
        let permit = self
            .in_flight
            .acquire()
            .await
            .unwrap_or_else(|_| unreachable!("the semaphore is never closed"));
        if let Some(interval) = self.interval {
            let start = {
                let mut next = self.next_start.lock().await;
                let now = Instant::now();
                let start = (*next).max(now);
                *next = start + interval;
                start
            };
            tokio::time::sleep_until(start).await;
        }
        permit
    }
}
