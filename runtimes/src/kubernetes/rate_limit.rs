//! The client-side rate limit: QPS and burst (as client-go's flow control),
//! applied as a tower layer under the kube client so every request
//! (creations, deletions, lists, watches, node look-ups) is admitted by one
//! limiter, in every mode. Upstream applies it only in-cluster (#606), which
//! let an out-of-cluster deployment flood the API server.
//!
//! The limiter is governor's GCRA, which admits exactly what a token bucket
//! of `burst` tokens refilled at `qps` per second would. It reads tokio's
//! clock and waits on tokio's timers (not governor's `until_ready`, whose
//! timer runs on wall time), so the limit holds on tokio's paused clock too.

use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::Clock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// governor's clock over tokio's: the same instants as `tokio::time`, paused
/// or not.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

pub type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock>;

/// `burst` requests at once, then `qps` per second. A non-finite or
/// non-positive `qps` is replaced by a very small rate rather than disabling
/// the limit, and `burst` is at least 1 so a request can always eventually
/// pass. A fractional `qps` is kept (one request every `1 / qps` seconds).
pub fn quota(qps: f64, burst: u32) -> Quota {
    let qps = if qps.is_finite() && qps > 0.0 {
        qps
    } else {
        0.001
    };
    // At least a nanosecond: governor refuses an empty period.
    let period = Duration::from_nanos((1e9 / qps).round().max(1.0) as u64);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// Shares one limiter between every clone of the service.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    limiter: Arc<Limiter>,
}

impl RateLimitLayer {
    pub fn new(qps: f64, burst: u32) -> RateLimitLayer {
        RateLimitLayer {
            limiter: Arc::new(RateLimiter::direct_with_clock(
                quota(qps, burst),
                TokioClock,
            )),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            limiter: self.limiter.clone(),
            permit: false,
            sleep: None,
        }
    }
}

/// The service: `poll_ready` waits until the limiter admits a request,
/// `call` spends that admission.
///
/// kube's `Client` puts a buffer in front of its service, so one task polls
/// this service and requests are admitted in order.
pub struct RateLimit<S> {
    inner: S,
    limiter: Arc<Limiter>,
    permit: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Clone> Clone for RateLimit<S> {
    fn clone(&self) -> Self {
        // A clone starts without the permit its original may hold.
        RateLimit {
            inner: self.inner.clone(),
            limiter: self.limiter.clone(),
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
        // Bounded: each turn either is admitted, or arms a timer for the
        // earliest instant the limiter could admit and returns Pending until
        // it fires.
        while !self.permit {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            match self.limiter.check() {
                Ok(()) => self.permit = true,
                Err(not_until) => {
                    let at = Instant::from_std(not_until.earliest_possible());
                    self.sleep = Some(Box::pin(tokio::time::sleep_until(at)));
                }
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

    /// Checks on tokio's paused clock, moved by hand: exact, whatever the
    /// machine's load.
    #[tokio::test(start_paused = true)]
    async fn limiter_allows_burst_then_qps() {
        let limiter = RateLimiter::direct_with_clock(quota(10.0, 3), TokioClock);
        let wait = |limiter: &Limiter| match limiter.check() {
            Ok(()) => Duration::ZERO,
            Err(not_until) => not_until.wait_time_from(TokioClock.now()),
        };
        for _ in 0..3 {
            assert_eq!(limiter.check(), Ok(()));
        }
        assert_eq!(wait(&limiter), Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(wait(&limiter), Duration::from_millis(50));
        tokio::time::advance(Duration::from_millis(50)).await;
        assert_eq!(limiter.check(), Ok(()));
        // Idle time never earns more than the burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert_eq!(limiter.check(), Ok(()));
        }
        assert!(limiter.check().is_err());
    }

    #[test]
    fn degenerate_settings_still_limit() {
        for qps in [f64::NAN, f64::INFINITY, 0.0, -5.0] {
            let q = quota(qps, 0);
            assert_eq!(q.burst_size().get(), 1, "{qps}");
            assert_eq!(q.replenish_interval(), Duration::from_secs(1000), "{qps}");
        }
        // Rates past a request per nanosecond still have a period.
        assert_eq!(quota(1e12, 1).replenish_interval(), Duration::from_nanos(1));
        // Fractional rates are kept.
        assert_eq!(quota(0.5, 1).replenish_interval(), Duration::from_secs(2));
        assert_eq!(quota(2.5, 7).burst_size().get(), 7);
    }

    #[tokio::test(start_paused = true)]
    async fn service_waits_for_admission() {
        let svc = tower::service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) });
        let mut svc = RateLimitLayer::new(2.0, 2).layer(svc);
        let start = Instant::now();
        let mut admitted = Vec::new();
        for i in 0..6 {
            std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
            assert_eq!(svc.call(i).await.unwrap(), i);
            admitted.push(Instant::now() - start);
        }
        // 2 at once, then 4 more at 2 per second.
        let ms = [0, 0, 500, 1000, 1500, 2000].map(Duration::from_millis);
        assert_eq!(admitted, ms);
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_limit() {
        let svc = tower::service_fn(|x: u32| async move { Ok::<_, std::convert::Infallible>(x) });
        let layer = RateLimitLayer::new(1.0, 1);
        let (mut a, mut b) = (layer.layer(svc), layer.layer(svc));
        let start = Instant::now();
        std::future::poll_fn(|cx| a.poll_ready(cx)).await.unwrap();
        a.call(0).await.unwrap();
        std::future::poll_fn(|cx| b.poll_ready(cx)).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }
}
