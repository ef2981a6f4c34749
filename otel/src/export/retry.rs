//! Exponential backoff with jitter, bounded in attempts and in time.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How failed exports are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Calls in all, the first one included (1 means no retry).
    pub max_attempts: u32,
    /// Wait before the first retry; doubled for each next one.
    pub initial_backoff: Duration,
    /// Longest single wait.
    pub max_backoff: Duration,
    /// No retry starts once this much time has passed since the first call.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, waits of about 0.5, 1, 2 and 4 s, given up after 30 s.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): `initial · 2^retry`, capped, then jittered
    /// to a uniform value in [half, full].
    pub fn backoff(&self, retry: u32) -> Duration {
        let full = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let half = full / 2;
        half + full.mul_f64(rand::random::<f64>() * 0.5)
    }
}

/// What a failed call says about retrying.
pub trait Retryable {
    /// Whether the same request may succeed later.
    fn is_retryable(&self) -> bool;
    /// How long the server asked us to wait, if it did.
    fn retry_after(&self) -> Option<Duration>;
}

/// Run `call` until it succeeds, fails with a non-retryable error, or the policy's attempts or
/// time run out; the last error is returned. A server's requested delay replaces the computed
/// backoff (still capped by `max_backoff`).
pub async fn retry<T, E, F, Fut>(policy: &RetryPolicy, mut call: F) -> Result<T, E>
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut attempt = 1;
    loop {
        let error = match call().await {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        if !error.is_retryable() || attempt >= policy.max_attempts {
            return Err(error);
        }
        let wait = error.retry_after().map_or_else(
            || policy.backoff(attempt - 1),
            |after| after.min(policy.max_backoff),
        );
        if started.elapsed() + wait > policy.max_elapsed {
            return Err(error);
        }
        tracing::debug!(
            attempt,
            wait_ms = wait.as_millis() as u64,
            "otlp export failed, retrying"
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq)]
    struct Fail {
        retryable: bool,
    }

    impl Retryable for Fail {
        fn is_retryable(&self) -> bool {
            self.retryable
        }
        fn retry_after(&self) -> Option<Duration> {
            None
        }
    }

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            max_elapsed: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for (retry, lo, hi) in [
            (0, 250, 500),
            (1, 500, 1000),
            (2, 1000, 2000),
            (3, 2000, 4000),
            (9, 2500, 5000),
            (40, 2500, 5000),
        ] {
            let b = p.backoff(retry).as_millis();
            assert!((lo..=hi).contains(&b), "retry {retry}: {b} ms");
        }
    }

    #[tokio::test]
    async fn retries_until_success() {
        let calls = Cell::new(0);
        let result = retry(&fast(5), || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n < 3 {
                    Err(Fail { retryable: true })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test]
    async fn stops_at_max_attempts_and_on_permanent_errors() {
        let calls = Cell::new(0);
        let result: Result<(), Fail> = retry(&fast(3), || {
            calls.set(calls.get() + 1);
            async { Err(Fail { retryable: true }) }
        })
        .await;
        assert_eq!((result, calls.get()), (Err(Fail { retryable: true }), 3));

        calls.set(0);
        let result: Result<(), Fail> = retry(&fast(3), || {
            calls.set(calls.get() + 1);
            async { Err(Fail { retryable: false }) }
        })
        .await;
        assert_eq!((result, calls.get()), (Err(Fail { retryable: false }), 1));
    }

    #[tokio::test]
    async fn stops_when_time_runs_out() {
        let policy = RetryPolicy {
            max_elapsed: Duration::from_millis(2),
            max_backoff: Duration::from_millis(50),
            initial_backoff: Duration::from_millis(50),
            max_attempts: 100,
        };
        let calls = Cell::new(0);
        let result: Result<(), Fail> = retry(&policy, || {
            calls.set(calls.get() + 1);
            async { Err(Fail { retryable: true }) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.get(), 1);
    }
}
