//! What one client can make the server hold, and for how long. Any pod in the cluster can open
//! a connection to the webhook's port (unless a NetworkPolicy stops it), and with
//! `failurePolicy: Fail` a webhook that stops answering stops every Flyte task, so:
//!
//! - **connections**: at most `max_connections` are served at once; past that the accept loop
//!   waits (the kernel's listen backlog is the queue) until one ends;
//! - **time**: the TLS handshake and the request head have 10 s each, and the whole body must
//!   arrive within `body_timeout` of the head (a slow drip gets 408 and the connection closes);
//! - **size**: a body over `max_body` is refused (413) from its `Content-Length`, before any of
//!   it is read, or as soon as a chunked body passes it;
//! - **bytes in flight**: every body being read or reviewed holds its size against one global
//!   budget (`in_flight_bytes`), reserved from `Content-Length` before reading (a chunked body
//!   reserves as it arrives). Past the budget the request is refused at once with 503 and a
//!   one-line reason. Bodies over [`LARGE_BODY`] may together use only three quarters of it, so
//!   a few 8 MiB bodies cannot crowd out the ordinary reviews of a few KiB;
//! - **reviews at once**: at most `max_in_flight` reviews are parsed and answered at a time;
//!   up to `max_queued` more wait for a slot (until the body deadline), and past that the
//!   request is refused with 503. Bodies over [`LARGE_BODY`] are reviewed one at a time (a
//!   review can take several times its body's size while it parses: up to ~30× for a JSON
//!   tree of small numbers, on admission's second, untyped parse) and on the blocking pool, so the async workers keep reading,
//!   handshaking and answering small reviews.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::{Body, Bytes, Incoming};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// Bodies larger than this are "large": they share three quarters of the byte budget.
pub const LARGE_BODY: usize = 1 << 20;
/// Bodies up to this size are reviewed inline on the async workers; larger on the blocking pool.
pub const INLINE_REVIEW: usize = 256 << 10;
/// Largest request head (hyper's read buffer), far above what the API server sends.
pub const MAX_HEAD: usize = 64 << 10;

/// The server's limits (`webhook serve` flags; defaults in [`Limits::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Time for the whole body to arrive, from the end of the request head.
    pub body_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Reviews parsed and answered at once.
    pub max_in_flight: usize,
    /// Requests waiting for a review slot; more are refused with 503.
    pub max_queued: usize,
    /// Bytes of request bodies held at once (being read or reviewed); past it, 503.
    pub in_flight_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body: 8 << 20,
            body_timeout: Duration::from_secs(10),
            max_connections: 256,
            max_in_flight: 16,
            max_queued: 256,
            in_flight_bytes: 32 << 20,
        }
    }
}

/// Limits that cannot work together.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// A limit is zero.
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    /// The largest body allowed would never fit in the large bodies' share of the budget.
    #[error(
        "--in-flight-bytes ({budget}) must be at least 4/3 of --max-body-bytes ({max_body}): \
         large bodies share three quarters of it"
    )]
    Budget {
        /// The budget.
        budget: usize,
        /// The body limit.
        max_body: usize,
    },
}

impl Limits {
    /// Checks that the limits can work together.
    pub fn check(&self) -> Result<(), LimitsError> {
        for (name, value) in [
            ("--max-body-bytes", self.max_body),
            ("--max-connections", self.max_connections),
            ("--max-in-flight", self.max_in_flight),
            ("--in-flight-bytes", self.in_flight_bytes),
        ] {
            if value == 0 {
                return Err(LimitsError::Zero(name));
            }
        }
        if self.body_timeout.is_zero() {
            return Err(LimitsError::Zero("--body-timeout-seconds"));
        }
        let room = if self.max_body > LARGE_BODY {
            large_share(self.in_flight_bytes)
        } else {
            self.in_flight_bytes
        };
        if room < self.max_body {
            return Err(LimitsError::Budget {
                budget: self.in_flight_bytes,
                max_body: self.max_body,
            });
        }
        Ok(())
    }
}

fn large_share(budget: usize) -> usize {
    budget / 4 * 3
}

/// Why a request was turned away; the status and the one-line body say it to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than `max_body`.
    TooLarge,
    /// Not all there within `body_timeout`.
    BodyTimeout,
    /// The byte budget is spent.
    ByteBudget,
    /// Every review slot is taken and the queue is full (or the wait outlived the deadline).
    QueueFull,
    /// The body could not be read (the client went away, a framing error).
    Unreadable,
}

impl Refusal {
    /// HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::ByteBudget | Self::QueueFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unreadable => StatusCode::BAD_REQUEST,
        }
    }

    /// Short reason, the response body.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "body too large\n",
            Self::BodyTimeout => "body not received in time\n",
            Self::ByteBudget => "busy: too many request bytes in flight, retry\n",
            Self::QueueFull => "busy: too many reviews queued, retry\n",
            Self::Unreadable => "could not read the body\n",
        }
    }

    /// `flyte_secret_webhook_refused_total` label, if counted there.
    pub fn metric(self) -> Option<&'static str> {
        match self {
            Self::TooLarge => Some("too_large"),
            Self::BodyTimeout => Some("body_timeout"),
            Self::ByteBudget => Some("byte_budget"),
            Self::QueueFull => Some("queue_full"),
            Self::Unreadable => None,
        }
    }
}

/// The global in-flight byte budget.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
        }
    }

    /// Bytes held now.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// An empty reservation, grown as the body's size becomes known.
    pub fn reserve(&self) -> Reservation<'_> {
        Reservation {
            budget: self,
            bytes: 0,
        }
    }
}

/// Bytes one request holds against the [`Budget`]; given back on drop.
#[derive(Debug)]
pub struct Reservation<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Reservation<'_> {
    /// Grows the reservation to `total` bytes, if the budget allows: a request over
    /// [`LARGE_BODY`] only while all bodies together stay within three quarters of it.
    pub fn grow_to(&mut self, total: usize) -> Result<(), Refusal> {
        let Some(more) = total.checked_sub(self.bytes).filter(|m| *m > 0) else {
            return Ok(());
        };
        let cap = if total > LARGE_BODY {
            large_share(self.budget.limit)
        } else {
            self.budget.limit
        };
        self.budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|after| *after <= cap)
            })
            .map_err(|_| Refusal::ByteBudget)?;
        self.bytes = total;
        Ok(())
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// Review slots with a bounded queue.
#[derive(Debug)]
pub struct Gate {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Gate {
    /// `slots` reviews at once, `max_waiting` more queued.
    pub fn new(slots: usize, max_waiting: usize) -> Self {
        Self {
            slots: Semaphore::new(slots),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    /// A review slot: at once if one is free, else after waiting in the queue until
    /// `deadline`; refused when the queue is full or the deadline passes.
    pub async fn enter(&self, deadline: Instant) -> Result<SemaphorePermit<'_>, Refusal> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        let queued = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.max_waiting).then_some(w + 1)
            });
        if queued.is_err() {
            return Err(Refusal::QueueFull);
        }
        // Leaves the queue however the wait ends (the connection may be dropped meanwhile).
        struct Leave<'a>(&'a AtomicUsize);
        impl Drop for Leave<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _leave = Leave(&self.waiting);
        match tokio::time::timeout_at(deadline, self.slots.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) | Err(_) => Err(Refusal::QueueFull),
        }
    }
}

/// Reads the whole body by `deadline`, holding its bytes against `reservation` (from
/// `Content-Length` first, when there is one, so an over-budget body is refused unread).
/// A body that arrives as one frame (an AdmissionReview of a few KiB does) is kept as the
/// frame hyper read it into, not copied.
pub async fn read_body(
    mut body: Incoming,
    limits: &Limits,
    reservation: &mut Reservation<'_>,
    deadline: Instant,
) -> Result<Bytes, Refusal> {
    let declared = body.size_hint().exact();
    if let Some(len) = declared {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > limits.max_body {
            return Err(Refusal::TooLarge);
        }
        reservation.grow_to(len)?;
    }
    let capacity = declared.map_or(0, |len| usize::try_from(len).unwrap_or(0));
    let read = async {
        // The first frame as it is; from a second one on, all of them in one buffer.
        let mut first: Option<Bytes> = None;
        let mut joined: Vec<u8> = Vec::new();
        let mut total = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| Refusal::Unreadable)?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total += data.len();
            if total > limits.max_body {
                return Err(Refusal::TooLarge);
            }
            reservation.grow_to(total)?;
            if first.is_none() && joined.is_empty() {
                first = Some(data);
                continue;
            }
            if let Some(held) = first.take() {
                joined.reserve(capacity.max(total));
                joined.extend_from_slice(&held);
            }
            joined.extend_from_slice(&data);
        }
        Ok(first.unwrap_or_else(|| Bytes::from(joined)))
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or(Err(Refusal::BodyTimeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_leave_a_quarter_of_the_budget_to_small_ones() {
        let budget = Budget::new(32 << 20);
        let mut big: Vec<_> = (0..4).map(|_| budget.reserve()).collect();
        let results: Vec<_> = big.iter_mut().map(|r| r.grow_to(8 << 20)).collect();
        assert_eq!(
            results,
            [Ok(()), Ok(()), Ok(()), Err(Refusal::ByteBudget)],
            "three 8 MiB bodies fit in three quarters of 32 MiB, a fourth does not"
        );
        assert_eq!(budget.used(), 24 << 20);
        // Small bodies still have the last quarter.
        let mut small: Vec<_> = (0..128).map(|_| budget.reserve()).collect();
        for r in &mut small {
            r.grow_to(64 << 10).unwrap();
        }
        assert_eq!(budget.used(), 32 << 20);
        assert_eq!(
            budget.reserve().grow_to(1),
            Err(Refusal::ByteBudget),
            "the budget is spent"
        );
        drop(small);
        drop(big);
        assert_eq!(budget.used(), 0, "reservations give their bytes back");
    }

    #[test]
    fn a_reservation_grows_and_a_refused_growth_keeps_what_it_had() {
        let budget = Budget::new(4 << 20);
        let mut r = budget.reserve();
        r.grow_to(1000).unwrap();
        r.grow_to(500).unwrap();
        assert_eq!(budget.used(), 1000);
        assert_eq!(r.grow_to(4 << 20), Err(Refusal::ByteBudget));
        assert_eq!(budget.used(), 1000);
    }

    #[tokio::test]
    async fn the_queue_is_bounded() {
        let gate = Gate::new(1, 1);
        let far = Instant::now() + Duration::from_secs(30);
        let held = gate.enter(far).await.unwrap();
        let waiter = gate.enter(far);
        tokio::pin!(waiter);
        // The waiter queues (poll it once so it takes its place).
        assert!(futures_poll_once(waiter.as_mut()).await.is_none());
        assert_eq!(gate.enter(far).await.unwrap_err(), Refusal::QueueFull);
        drop(held);
        let slot = waiter.await.unwrap();
        // A wait that outlives its deadline is refused.
        let _held = slot;
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(gate.enter(soon).await.unwrap_err(), Refusal::QueueFull);
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(10), f)
            .await
            .ok()
    }

    #[test]
    fn limits_are_checked() {
        Limits::default().check().unwrap();
        let tight = Limits {
            in_flight_bytes: 8 << 20,
            ..Limits::default()
        };
        assert!(matches!(tight.check(), Err(LimitsError::Budget { .. })));
        let zero = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert!(matches!(zero.check(), Err(LimitsError::Zero(_))));
    }
}
