//! Wait: the one way unlatch waits for something outside it (the database
//! to accept a connection, another replica's guard, a live lock). Each try
//! that does not get there is followed by [`Wait::again`]: past the
//! deadline, the caller's error; otherwise its progress line when due, then
//! a pause. A TERM or INT ends the wait at once, during a try
//! ([`or_stop`]) or a pause: exit 128+n.
//!
//! The tries stay plain code in their loops, rather than closures given to
//! a generic poller: each borrows a connection, and ends its loop in ways
//! of its own (a missing database, a stale lock to heal).
//!
//! May touch: nothing but the clock.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::exit::Failure;
use crate::process::Stop;

/// How often a long wait says how it is going.
pub const PACE: Duration = Duration::from_secs(5);

/// A wait under way, from the moment it was made.
pub struct Wait {
    started: Instant,
    limit: Duration,
    pace: Duration,
    said: Option<Instant>,
}

impl Wait {
    /// A wait of at most `limit`, saying how it goes every `pace` (the
    /// first time at once; `Duration::MAX`: once).
    pub fn new(limit: Duration, pace: Duration) -> Wait {
        Wait {
            started: Instant::now(),
            limit,
            pace,
            said: None,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn limit(&self) -> Duration {
        self.limit
    }

    pub fn remaining(&self) -> Duration {
        self.limit.saturating_sub(self.elapsed())
    }

    /// After a try that did not get there: the error `timed_out` makes once
    /// the limit has passed; otherwise logs `progress` (given the time
    /// waited so far) when due, and pauses `pause`, never past the limit.
    pub async fn again(
        &mut self,
        pause: Duration,
        stop: &mut Stop,
        progress: impl FnOnce(Duration) -> String,
        timed_out: impl FnOnce() -> anyhow::Error,
    ) -> anyhow::Result<()> {
        if self.elapsed() >= self.limit {
            return Err(timed_out());
        }
        if self.said.is_none_or(|t| t.elapsed() >= self.pace) {
            log::info!("{}", progress(self.elapsed()));
            self.said = Some(Instant::now());
        }
        let pause = pause.min(self.remaining());
        if pause.is_zero() {
            return Ok(());
        }
        or_stop(tokio::time::sleep(pause), stop).await
    }
}

/// `work`'s outcome, unless a TERM or INT comes first: then exit 128+n.
pub async fn or_stop<T>(work: impl Future<Output = T>, stop: &mut Stop) -> anyhow::Result<T> {
    tokio::select! {
        done = work => Ok(done),
        n = stop.signalled() => Err(Failure::signal(n).into()),
    }
}
