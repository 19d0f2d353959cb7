//! The client-side rate limit: a token bucket (QPS and burst, as client-go's
//! flow control), applied as a tower layer under the kube client so every
//! request (creations, deletions, lists, watches, node look-ups) takes a
//! token, in every mode. Upstream applies it only in-cluster (#606), which
//! let an out-of-cluster deployment flood the API server.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// A token bucket: `burst` tokens at most, refilled at `qps` per second.
///
/// Pure: the caller passes the current instant, so the arithmetic is tested
/// without a clock.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket. A non-finite or non-positive `qps` is replaced by a
    /// very small rate rather than disabling the limit, and `burst` is at
    /// least 1 so a request can always eventually pass.
    pub fn new(qps: f64, burst: u32) -> TokenBucket {
        let qps = if qps.is_finite() && qps > 0.0 {
            qps
        } else {
            0.001
        };
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        }
        self.last = Some(now);
    }

    /// Takes a token if one is available at `now`; otherwise says how long
    /// until one is (nothing is taken then).
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            // Round up to a whole millisecond so a waiter never wakes a
            // hair too early and spins.
            let secs = missing / self.qps;
            Err(Duration::from_millis((secs * 1000.0).ceil().max(1.0) as u64))
        }
    }
}

/// Shares one bucket between every clone of the service.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    bucket: Arc<Mutex<TokenBucket>>,
}

impl RateLimitLayer {
    pub fn new(qps: f64, burst: u32) -> RateLimitLayer {
        RateLimitLayer {
            bucket: Arc::new(Mutex::new(TokenBucket::new(qps, burst))),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            bucket: self.bucket.clone(),
            permit: false,
            sleep: None,
        }
    }
}

/// The service: `poll_ready` waits for a token, `call` spends it.
///
/// kube's `Client` puts a buffer in front of its service, so one task polls
/// this service and requests are admitted in order.
pub struct RateLimit<S> {
    inner: S,
    bucket: Arc<Mutex<TokenBucket>>,
    permit: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        // A clone starts without the permit its original may hold.
        RateLimit {
            inner: self.inner.clone(),
            bucket: self.bucket.clone(),
            permit: false,
            sleep: None,
        }
    }
}

impl<S, R> Service<R> for RateLimit<S>
where
    S: Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Bounded: each turn either takes the token, or arms a timer for the
        // exact wait and returns Pending until it fires.
        while !self.permit {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            let now = Instant::now();
            // A poisoned lock only means another holder panicked mid-update;
            // the bucket's numbers are still usable.
            let acquired = match self.bucket.lock() {
                Ok(mut bucket) => bucket.try_acquire(now),
                Err(poisoned) => poisoned.into_inner().try_acquire(now),
            };
            match acquired {
                Ok(()) => self.permit = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.permit = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_burst_then_qps() {
        let mut bucket = TokenBucket::new(10.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.try_acquire(t0), Ok(()));
        }
        assert_eq!(bucket.try_acquire(t0), Err(Duration::from_millis(100)));
        assert_eq!(
            bucket.try_acquire(t0 + Duration::from_millis(50)),
            Err(Duration::from_millis(50))
        );
        assert_eq!(bucket.try_acquire(t0 + Duration::from_millis(100)), Ok(()));
        // Refill never exceeds the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.try_acquire(later), Ok(()));
        }
        assert!(bucket.try_acquire(later).is_err());
    }

    #[test]
    fn degenerate_settings_still_limit() {
        let bucket = TokenBucket::new(f64::NAN, 0);
        assert_eq!(bucket.burst, 1.0);
        assert!(bucket.qps > 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn service_waits_for_tokens() {
        let svc = tower::service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) });
        let mut svc = RateLimitLayer::new(2.0, 2).layer(svc);
        let start = Instant::now();
        for i in 0..6 {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
            assert_eq!(svc.call(i).await.unwrap(), i);
        }
        // 2 at once, then 4 more at 2 per second.
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
    }
}
