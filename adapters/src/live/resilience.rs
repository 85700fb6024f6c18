//! Riding out a stack's outages: retries with capped exponential backoff and jitter (and the
//! stack's own `Retry-After`), and a circuit breaker per stack.
//!
//! Every attempt is one of three things: an answer, a final failure (the stack answered, and
//! its answer is a `stack_error` for the account: a 404, a non-zero exit, output that does not
//! parse), or a transient failure (refused or reset connections, timeouts, HTTP 429 and 5xx,
//! lost database connections). Transient failures are retried, at most `retries` times per
//! account while the stack is answering others. After `breaker_failures` consecutive transient
//! failures the breaker opens: nothing more is sent, one request at a time probes the stack
//! every `probe_interval`, and everything resumes once a probe is answered. Failures seen
//! while the breaker is open are not charged to the account (its request is held until the
//! stack is back), at most `UNCHARGED_FAILURES_MAX` times per account, so a stack that keeps
//! flapping cannot hold an account forever. A stack still down `outage_max` after its breaker
//! opened ends every waiting request with an outage failure (`StackFailure::outage`), which the
//! runner turns into no outcome at all: the run stops and the accounts stay pending.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::outcome::StackFailure;

/// Failures per account that are not charged to its retries because the stack was down.
pub const UNCHARGED_FAILURES_MAX: u32 = 64;

/// How a stack's failures are retried and waited out. Defaults are documented in README.md.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resilience {
    /// Retries per account (or per command invocation) of a transient failure.
    pub retries: u32,
    /// The first retry's delay; each next one doubles, up to `backoff_max`, with ±50 % jitter.
    pub backoff: Duration,
    pub backoff_max: Duration,
    /// Consecutive transient failures that open the breaker.
    pub breaker_failures: u32,
    /// How often an open breaker lets one request through to probe the stack.
    pub probe_interval: Duration,
    /// How long a stack may stay down (breaker open) before the run stops.
    pub outage_max: Duration,
}

impl Default for Resilience {
    fn default() -> Resilience {
        Resilience {
            retries: 3,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            breaker_failures: 10,
            probe_interval: Duration::from_secs(1),
            outage_max: Duration::from_secs(300),
        }
    }
}

impl Resilience {
    /// The delay before retry number `retry` (0-based): base × 2^retry, capped, ±50 % jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponential = self
            .backoff
            .saturating_mul(1u32 << retry.min(16))
            .min(self.backoff_max);
        exponential.mul_f64(0.5 + fastrand::f64())
    }
}

/// One attempt's outcome.
pub(crate) enum Attempt<T> {
    Done(T),
    /// The stack answered; the failure is final for the account.
    Fail(String),
    /// A failure that may pass, with how long the stack asked to wait (`Retry-After`).
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
}

impl<T> Attempt<T> {
    pub(crate) fn transient(message: impl Into<String>) -> Attempt<T> {
        Attempt::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// A circuit breaker for one stack, shared by every request to it.
pub(crate) struct Breaker {
    side: String,
    policy: Resilience,
    state: Mutex<State>,
    closed: Notify,
}

#[derive(Default)]
struct State {
    consecutive: u32,
    open_since: Option<Instant>,
    probing: bool,
    next_probe: Option<Instant>,
}

/// What `admit` let through: an ordinary request, or the one probing an open breaker.
#[must_use]
pub(crate) struct Admission<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        // A probe whose request was abandoned frees the slot for the next one.
        if self.probe {
            let mut s = self.breaker.lock();
            s.probing = false;
        }
    }
}

impl Breaker {
    pub(crate) fn new(side: &str, policy: Resilience) -> Breaker {
        Breaker {
            side: side.to_owned(),
            policy,
            state: Mutex::new(State::default()),
            closed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until a request may be sent: at once while the breaker is closed; while it is
    /// open, until this request may probe or the stack answers again. An error once the
    /// stack has been down longer than `outage_max`.
    pub(crate) async fn admit(&self) -> Result<Admission<'_>, String> {
        loop {
            let notified = self.closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wake = {
                let mut s = self.lock();
                let Some(since) = s.open_since else {
                    return Ok(Admission {
                        breaker: self,
                        probe: false,
                    });
                };
                let now = Instant::now();
                let give_up = since + self.policy.outage_max;
                if now >= give_up {
                    return Err(format!(
                        "the {} stack has been down for more than {:.1} s (outage_max_ms)",
                        self.side,
                        self.policy.outage_max.as_secs_f64()
                    ));
                }
                let next_probe = s.next_probe.unwrap_or(now);
                if !s.probing && now >= next_probe {
                    s.probing = true;
                    return Ok(Admission {
                        breaker: self,
                        probe: true,
                    });
                }
                let wake = if s.probing {
                    now + self.policy.probe_interval
                } else {
                    next_probe
                };
                wake.min(give_up)
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = notified => {}
            }
        }
    }

    /// The stack answered (even with a final failure): the breaker closes.
    pub(crate) fn answered(&self, mut admission: Admission<'_>) {
        admission.probe = false;
        let mut s = self.lock();
        s.consecutive = 0;
        s.probing = false;
        if let Some(since) = s.open_since.take() {
            tracing::warn!(
                "the {} stack answers again after {:.1} s; resuming",
                self.side,
                since.elapsed().as_secs_f64()
            );
            s.next_probe = None;
            drop(s);
            self.closed.notify_waiters();
        }
    }

    /// A transient failure; true when the stack counts as down (the breaker is open), so the
    /// request is held until it is back rather than charged to the account.
    pub(crate) fn failed(&self, mut admission: Admission<'_>) -> bool {
        let probe = std::mem::take(&mut admission.probe);
        let mut s = self.lock();
        s.consecutive = s.consecutive.saturating_add(1);
        let now = Instant::now();
        if probe {
            s.probing = false;
            s.next_probe = Some(now + self.policy.probe_interval);
            return true;
        }
        if s.open_since.is_some() {
            return true;
        }
        if s.consecutive >= self.policy.breaker_failures.max(1) {
            s.open_since = Some(now);
            s.next_probe = Some(now + self.policy.probe_interval);
            tracing::warn!(
                "the {} stack failed {} times in a row: nothing more is sent; probing every {} ms for up to {} s",
                self.side,
                s.consecutive,
                self.policy.probe_interval.as_millis(),
                self.policy.outage_max.as_secs()
            );
            return true;
        }
        false
    }
}

/// Runs `attempt` until it answers, fails for good, runs out of retries, or the stack stays
/// down past its limit; returns the value and how many times it was retried.
pub(crate) async fn retrying<T, F, Fut>(
    breaker: &Breaker,
    mut attempt: F,
) -> Result<(T, u32), StackFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let policy = &breaker.policy;
    let (mut charged, mut uncharged) = (0u32, 0u32);
    loop {
        let retries = charged + uncharged;
        let admission = breaker.admit().await.map_err(|message| StackFailure {
            message,
            retries,
            outage: true,
        })?;
        match attempt().await {
            Attempt::Done(value) => {
                breaker.answered(admission);
                return Ok((value, retries));
            }
            Attempt::Fail(message) => {
                breaker.answered(admission);
                return Err(StackFailure {
                    message,
                    retries,
                    outage: false,
                });
            }
            Attempt::Transient {
                message,
                retry_after,
            } => {
                if breaker.failed(admission) && uncharged < UNCHARGED_FAILURES_MAX {
                    // The stack is down: wait for it (in `admit`), without charging the account.
                    uncharged += 1;
                    continue;
                }
                if charged >= policy.retries {
                    return Err(StackFailure {
                        message: format!("{message} (after {retries} retries)"),
                        retries,
                        outage: false,
                    });
                }
                let asked = retry_after.unwrap_or_default().min(policy.outage_max);
                tokio::time::sleep(policy.backoff(charged).max(asked)).await;
                charged += 1;
            }
        }
    }
}

/// A `Retry-After` header's value: delay seconds, or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let policy = Resilience {
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(400),
            ..Resilience::default()
        };
        for retry in 0..40 {
            let d = policy.backoff(retry);
            assert!(d <= Duration::from_millis(600), "{retry}: {d:?}");
        }
        assert!(policy.backoff(0) >= Duration::from_millis(50));
    }

    #[tokio::test]
    async fn an_open_breaker_holds_requests_and_gives_up_after_the_outage_limit() {
        let breaker = Breaker::new(
            "modern",
            Resilience {
                breaker_failures: 2,
                probe_interval: Duration::from_millis(30),
                outage_max: Duration::from_millis(300),
                ..Resilience::default()
            },
        );
        assert!(!breaker.failed(breaker.admit().await.unwrap()));
        assert!(breaker.failed(breaker.admit().await.unwrap()));
        // Open: the next request is the probe; it fails; a later one probes again.
        let probe = breaker.admit().await.unwrap();
        assert!(probe.probe);
        assert!(breaker.failed(probe));
        let started = Instant::now();
        let probe = breaker.admit().await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(25));
        breaker.answered(probe);
        assert!(!breaker.admit().await.unwrap().probe);
        // Down for good: every request ends once the limit has passed.
        assert!(!breaker.failed(breaker.admit().await.unwrap()));
        assert!(breaker.failed(breaker.admit().await.unwrap()));
        loop {
            match breaker.admit().await {
                Ok(a) => assert!(breaker.failed(a)),
                Err(e) => {
                    assert!(e.contains("has been down for more than"), "{e}");
                    break;
                }
            }
        }
    }
}
