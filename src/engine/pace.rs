//! Pacing a body: nginx's `limit_rate` and `limit_rate_after`, per response.
//!
//! The first `after` bytes of a body go at full speed; from there on a token bucket on
//! tokio's timer decides how many bytes each read may return:
//!
//! * **Absolute schedule.** Credit is computed from when pacing began (`epoch`):
//!   `granule + rate × (now − epoch) − paced`, so timer lateness (tokio's timer ticks in
//!   milliseconds) never accumulates: a late wake-up returns more bytes. Over a few
//!   seconds the rate is exact to within one granule.
//! * **Burst size.** Each wake-up returns at least one *granule* — 50 ms of rate (at
//!   least 1 byte) — or the rest of the body, whichever is smaller: at 1 KiB/s a read
//!   returns ~51 bytes, 20 times a second, never a 64 KiB chunk at once. Pacing starts
//!   with one granule of credit, so the first paced bytes leave without delay. A paced
//!   body therefore wakes at most ~20 times a second plus once per full read buffer.
//! * **A slow reader is not charged twice.** Time spent waiting for the client (hyper
//!   not polling the body because the socket is full) earns credit like any other time,
//!   up to one second of rate (nginx's allowance too): a client that stalls catches up
//!   at full speed afterwards, so its average stays at the rate whenever it can. Credit
//!   beyond one second is dropped, so nobody banks minutes of bandwidth.
//! * **Nothing blocks, nothing spins, nothing is allocated per chunk**: a read with too
//!   little credit arms one `Sleep` (allocated once per paced body, then `reset`) and
//!   returns `Pending`; the timer wakes the task when the next granule is due.
//!
//! Empty bodies (304, 412, 416) have nothing to pace; HEAD bodies are never read.
//! Pacing only sizes reads: the truncation guard and the end-of-body check run on every
//! read exactly as for an unpaced body.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A per-response rate limit (nginx's `limit_rate` and `limit_rate_after`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimit {
    /// Bytes per second once `after` bytes are sent; 0: no limit (the default).
    pub bytes_per_second: u64,
    /// Bytes sent at full speed before the limit applies (default 0).
    pub after: u64,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        bytes_per_second: 0,
        after: 0,
    };

    /// `bytes_per_second` from the first byte.
    pub fn new(bytes_per_second: u64) -> RateLimit {
        RateLimit {
            bytes_per_second,
            after: 0,
        }
    }

    /// The same limit, applying after `bytes` sent at full speed.
    pub fn after(self, bytes: u64) -> RateLimit {
        RateLimit {
            after: bytes,
            ..self
        }
    }

    /// Whether there is no limit (`bytes_per_second == 0`).
    pub fn is_off(&self) -> bool {
        self.bytes_per_second == 0
    }
}

/// How long a granule lasts: the least credit a paced read waits for.
const GRANULE: Duration = Duration::from_millis(50);
/// The most credit a stalled reader keeps.
const CAPACITY: Duration = Duration::from_secs(1);

/// The pacing state of one body.
#[derive(Debug)]
pub(crate) struct Pace {
    rate: u64,
    after: u64,
    granule: u64,
    capacity: u64,
    /// When pacing began, moved forward when credit beyond the capacity is dropped.
    epoch: Option<Instant>,
    /// Bytes returned since pacing began.
    paced: u64,
    /// The one timer of this body, made on first use.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Clone for Pace {
    /// A clone paces on its own: same limit, fresh schedule, no timer yet.
    fn clone(&self) -> Pace {
        Pace::new(RateLimit {
            bytes_per_second: self.rate,
            after: self.after,
        })
    }
}

impl Pace {
    /// The state for `limit`; `limit.bytes_per_second` must be > 0.
    pub(crate) fn new(limit: RateLimit) -> Pace {
        let rate = limit.bytes_per_second.max(1);
        let granule = bytes_in(rate, GRANULE).max(1);
        Pace {
            rate,
            after: limit.after,
            granule,
            capacity: bytes_in(rate, CAPACITY).max(granule),
            epoch: None,
            paced: 0,
            sleep: None,
        }
    }

    /// How many bytes the read at body position `pos` may return, of the `want` it
    /// could (bounded by the buffer and the bytes left); `Pending` with the timer armed
    /// when too little credit is available. A read never spans the full-speed prefix
    /// and the paced rest.
    pub(crate) fn poll_allowance(
        &mut self,
        cx: &mut Context<'_>,
        pos: u64,
        want: u64,
    ) -> Poll<usize> {
        if want == 0 {
            return Poll::Ready(0);
        }
        let free = self.after.saturating_sub(pos);
        if free > 0 {
            return Poll::Ready(clamp(want.min(free)));
        }
        let now = Instant::now();
        let epoch = *self.epoch.get_or_insert(now);
        let mut credit = self.credit(epoch, now);
        if credit > self.capacity {
            // Drop what lies beyond the capacity: move the schedule's origin forward.
            let keep = self.capacity - self.granule;
            let moved = now.checked_sub(duration_for(self.rate, self.paced + keep));
            self.epoch = Some(moved.map_or(epoch, |m| m.max(epoch)));
            credit = self.capacity;
        }
        let threshold = want.min(self.granule);
        // At most two rounds: once the deadline has passed, the credit is there.
        for _ in 0..2 {
            if credit >= threshold {
                return Poll::Ready(clamp(credit.min(want)));
            }
            let epoch = self.epoch.unwrap_or(now);
            let deadline = epoch
                + duration_for(
                    self.rate,
                    (self.paced + threshold).saturating_sub(self.granule),
                );
            let sleep = match &mut self.sleep {
                Some(s) => {
                    s.as_mut().reset(deadline);
                    s
                }
                none => none.insert(Box::pin(tokio::time::sleep_until(deadline))),
            };
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            credit = self.credit(epoch, Instant::now());
        }
        // Unreachable in practice (the deadline is rounded up); never spin.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Records that the read at `pos` returned `n` bytes.
    pub(crate) fn consumed(&mut self, pos: u64, n: u64) {
        if pos >= self.after {
            self.paced += n;
        }
    }

    fn credit(&self, epoch: Instant, now: Instant) -> u64 {
        let earned = bytes_in(self.rate, now.saturating_duration_since(epoch));
        (self.granule + earned).saturating_sub(self.paced)
    }
}

/// Bytes sent at `rate` in `d` (rounded down).
fn bytes_in(rate: u64, d: Duration) -> u64 {
    let b = u128::from(rate).saturating_mul(d.as_nanos()) / 1_000_000_000;
    u64::try_from(b).unwrap_or(u64::MAX)
}

/// How long sending `bytes` at `rate` takes (rounded up to the nanosecond).
fn duration_for(rate: u64, bytes: u64) -> Duration {
    let ns = (u128::from(bytes) * 1_000_000_000).div_ceil(u128::from(rate));
    Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
}

fn clamp(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::body::SegmentBody;
    use bytes::Bytes;
    use tokio::io::AsyncReadExt;

    /// Reads the whole body with a 64 KiB buffer; returns the read sizes.
    async fn drain(mut body: SegmentBody) -> Vec<usize> {
        let mut buf = vec![0u8; 64 << 10];
        let mut sizes = Vec::new();
        loop {
            let n = body.read(&mut buf).await.unwrap();
            if n == 0 {
                return sizes;
            }
            sizes.push(n);
        }
    }

    fn body(len: usize) -> SegmentBody {
        SegmentBody::single(Bytes::from(vec![3u8; len]))
    }

    #[tokio::test(start_paused = true)]
    async fn four_mib_at_one_mib_per_second_take_four_seconds() {
        let start = Instant::now();
        let sizes = drain(body(4 << 20).limit_rate(RateLimit::new(1 << 20))).await;
        let took = start.elapsed().as_secs_f64();
        // One granule (50 ms) leaves at once: 3.95 s.
        assert!((3.9..=4.0).contains(&took), "took {took} s");
        assert_eq!(sizes.iter().sum::<usize>(), 4 << 20);
        // Never a whole 64 KiB buffer at once: granules of ~52 KiB.
        assert!(sizes.iter().all(|&n| n <= 53_000), "{:?}", &sizes[..4]);
        // ~20 reads a second, not a busy loop.
        assert!(sizes.len() <= 4 * 21 + 2, "{} reads", sizes.len());
    }

    #[tokio::test(start_paused = true)]
    async fn limit_rate_after_sends_a_prefix_at_full_speed() {
        let start = Instant::now();
        let limit = RateLimit::new(1 << 20).after(2 << 20);
        let sizes = drain(body(4 << 20).limit_rate(limit)).await;
        let took = start.elapsed().as_secs_f64();
        assert!((1.9..=2.0).contains(&took), "took {took} s");
        // The prefix goes in whole buffers, the paced rest in granules.
        assert_eq!(sizes[..32].iter().sum::<usize>(), 2 << 20);
        assert!(sizes[32..].iter().all(|&n| n <= 53_000));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_rates_send_small_reads() {
        let start = Instant::now();
        let sizes = drain(body(4096).limit_rate(RateLimit::new(1024))).await;
        let took = start.elapsed().as_secs_f64();
        assert!((3.9..=4.0).contains(&took), "took {took} s");
        assert!(sizes.iter().all(|&n| n <= 52), "{sizes:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_reader_catches_up_by_at_most_one_second() {
        let mut b = body(8 << 20).limit_rate(RateLimit::new(1 << 20));
        let mut buf = vec![0u8; 1 << 20];
        let start = Instant::now();
        let n = b.read(&mut buf).await.unwrap();
        assert!(n <= 53_000);
        // The client stalls for 3 s: one second of credit is kept, not three.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let mut got = 0;
        while got < (1 << 20) - 53_000 {
            got += b.read(&mut buf).await.unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_millis(3050),
            "caught up at full speed"
        );
        let before = Instant::now();
        let mut more = 0;
        while more < (1 << 20) {
            more += b.read(&mut buf).await.unwrap();
        }
        let took = before.elapsed().as_secs_f64();
        assert!((0.9..=1.1).contains(&took), "then paced again: {took} s");
    }

    #[tokio::test(start_paused = true)]
    async fn empty_bodies_are_never_delayed() {
        let start = Instant::now();
        assert!(drain(SegmentBody::empty().limit_rate(RateLimit::new(1)))
            .await
            .is_empty());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[test]
    fn arithmetic_rounds_the_safe_way() {
        assert_eq!(bytes_in(1000, Duration::from_millis(1)), 1);
        assert_eq!(bytes_in(999, Duration::from_millis(1)), 0);
        assert_eq!(duration_for(3, 1), Duration::from_nanos(333_333_334));
        assert_eq!(bytes_in(u64::MAX, Duration::from_secs(u64::MAX)), u64::MAX);
        let p = Pace::new(RateLimit::new(1));
        assert_eq!((p.granule, p.capacity), (1, 1));
        let p = Pace::new(RateLimit::new(1 << 20));
        assert_eq!((p.granule, p.capacity), (52_428, 1 << 20));
    }
}
