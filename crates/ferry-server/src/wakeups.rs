//! The wake-up channel: reaching a device's agent within seconds instead of at its next
//! check-in.
//!
//! An agent keeps one long poll open between check-ins (`GET /device/v1/wait`). While it waits
//! the request costs an entry in [`Wakeups`]' registry (a `Notify` per waiting device) and its
//! connection: no task of its own, no timer beyond the request's own deadline, no database
//! query. A wake-up is a row in the store (`WakeStore`), so that every server sharing the
//! database sees it: the server that took `check-now` wakes its own waiter at once, and every
//! server polls the store for new requests once a second (one query per server, however many
//! devices wait) and wakes its waiters. A device takes (deletes) its requests when it is told,
//! so it is told once even when several servers saw the request; a request made while it was
//! not waiting is delivered by its next wait, if that starts within [`Wakeups::KEEP_SECS`]:
//! the poll keeps the requests of that window in memory (the first poll after a start reads
//! them all), so starting a wait reads nothing from the database either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::DeviceId;
use ferry_store::Store;
use tokio::sync::Notify;

/// Most wake requests read by one poll query.
const POLL_BATCH: u32 = 1000;
/// How many seconds back each poll also reads the requests not delivered yet, whatever their id.
const RECHECK_SECS: i64 = 5;

struct Waiting {
    notify: Arc<Notify>,
    /// Requests of this device held open (a reconnecting agent may briefly hold two).
    requests: usize,
}

#[derive(Default)]
struct Inner {
    waiting: HashMap<DeviceId, Waiting>,
    /// Requests held open, all devices together.
    total: usize,
    /// Devices with a wake request this server knows of and has not delivered, with when it
    /// was made.
    pending: HashMap<DeviceId, i64>,
    /// The highest wake request id polled so far.
    cursor: i64,
}

/// The registry of waiting devices, and the wake requests they have not been told of yet.
pub struct Wakeups {
    inner: Mutex<Inner>,
    max_waiters: usize,
    closed: AtomicBool,
    shutdown: Notify,
}

/// One request waiting for its device's wake-up; leaves the registry when dropped, so also
/// when the client goes away and the request is dropped unanswered.
pub struct Waiter<'a> {
    wakeups: &'a Wakeups,
    device: DeviceId,
    notify: Arc<Notify>,
}

impl Wakeups {
    /// How often every server polls the store for wake requests.
    pub const POLL_EVERY: Duration = Duration::from_secs(1);
    /// How long a wake request waits for its device: one older than this is not delivered.
    pub const KEEP_SECS: i64 = 600;

    /// A registry holding at most `max_waiters` waiting requests.
    pub fn new(max_waiters: usize) -> Self {
        Self { inner: Mutex::default(), max_waiters, closed: AtomicBool::new(false), shutdown: Notify::new() }
    }

    /// Registers a waiting request of `device`; `None` when `max_waiters` are waiting already
    /// or the server is shutting down.
    pub fn register(&self, device: &DeviceId) -> Option<Waiter<'_>> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let mut inner = self.inner.lock().expect("wakeups lock");
        if inner.total >= self.max_waiters {
            return None;
        }
        inner.total += 1;
        let entry = inner
            .waiting
            .entry(device.clone())
            .or_insert_with(|| Waiting { notify: Arc::new(Notify::new()), requests: 0 });
        entry.requests += 1;
        let notify = entry.notify.clone();
        Some(Waiter { wakeups: self, device: device.clone(), notify })
    }

    /// Requests held open now.
    pub fn waiting(&self) -> usize {
        self.inner.lock().expect("wakeups lock").total
    }

    /// Records wake requests for `devices` in the store, for every server, and wakes those
    /// waiting here at once. Returns the devices that were waiting here.
    pub async fn wake(&self, store: &dyn Store, devices: &[DeviceId], now: i64) -> ferry_store::Result<Vec<DeviceId>> {
        store.request_wakes(devices, now, now - Self::KEEP_SECS).await?;
        Ok(self.note(devices.iter().map(|d| (d, now))))
    }

    /// Notes wake requests as pending and wakes their devices' waiters here; returns the
    /// devices that had one.
    fn note<'d>(&self, requests: impl IntoIterator<Item = (&'d DeviceId, i64)>) -> Vec<DeviceId> {
        let mut inner = self.inner.lock().expect("wakeups lock");
        let mut woken = Vec::new();
        for (device, at) in requests {
            let slot = inner.pending.entry(device.clone()).or_insert(at);
            *slot = (*slot).max(at);
            if let Some(w) = inner.waiting.get(device) {
                w.notify.notify_waiters();
                woken.push(device.clone());
            }
        }
        woken
    }

    /// Reads the wake requests made since the last poll (by any server), and those of the last
    /// [`RECHECK_SECS`] not delivered yet, and wakes their devices waiting here; forgets pending
    /// requests older than [`Self::KEEP_SECS`]. One query, unless more than a thousand requests
    /// arrived since the last poll.
    ///
    /// Looking again at the recent ones closes a gap of the id cursor: on PostgreSQL a request
    /// can commit after one with a higher id was polled. Seeing an undelivered request again
    /// does no harm: a waiter takes it from the store, and only one taker gets it.
    pub async fn poll(&self, store: &dyn Store, now: i64) -> ferry_store::Result<()> {
        loop {
            let cursor = self.inner.lock().expect("wakeups lock").cursor;
            let batch = store.wake_requests_since(cursor, now - RECHECK_SECS, POLL_BATCH).await?;
            let recent = batch.iter().filter(|w| w.requested_at >= now - Self::KEEP_SECS);
            self.note(recent.map(|w| (&w.device, w.requested_at)));
            let mut inner = self.inner.lock().expect("wakeups lock");
            let last = batch.last().map_or(cursor, |w| w.id);
            inner.cursor = inner.cursor.max(last);
            // A full batch that moved the cursor may have more behind it.
            if batch.len() < POLL_BATCH as usize || last <= cursor {
                inner.pending.retain(|_, at| *at >= now - Self::KEEP_SECS);
                return Ok(());
            }
        }
    }

    /// Ends every wait (answered `wake: false`) and refuses new ones: the server is shutting
    /// down, and graceful shutdown waits for the requests in flight.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.shutdown.notify_waiters();
    }

    /// Whether [`Self::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Forgets the device's pending request; returns whether it had one made at or after `since`.
    fn take_pending(&self, device: &DeviceId, since: i64) -> bool {
        self.inner.lock().expect("wakeups lock").pending.remove(device).is_some_and(|at| at >= since)
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitEnd {
    /// A wake request was delivered (and taken from the store).
    Woken,
    /// The wait timed out.
    TimedOut,
    /// The server is shutting down.
    Closed,
}

impl Waiter<'_> {
    /// Waits until the device is woken, `timeout` passes or the server shuts down. A wake
    /// request made before the wait, up to [`Wakeups::KEEP_SECS`] ago, ends it at once. Reads
    /// the store only when this server knows of a request for the device: to take it, so that
    /// it is delivered once.
    pub async fn wait(
        &self,
        store: &dyn Store,
        timeout: Duration,
        now: impl Fn() -> i64,
    ) -> ferry_store::Result<WaitEnd> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let woken = self.notify.notified();
            let closed = self.wakeups.shutdown.notified();
            tokio::pin!(woken, closed);
            woken.as_mut().enable();
            closed.as_mut().enable();
            if self.wakeups.is_closed() {
                return Ok(WaitEnd::Closed);
            }
            let since = now() - Wakeups::KEEP_SECS;
            // Forgotten before taking: a request noted meanwhile stays pending for the next turn.
            if self.wakeups.take_pending(&self.device, since) {
                if store.take_wakes(&self.device, since).await? {
                    return Ok(WaitEnd::Woken);
                }
                // Another server, or an earlier wait, delivered it already.
                continue;
            }
            tokio::select! {
                () = &mut woken => {}
                () = &mut closed => return Ok(WaitEnd::Closed),
                () = tokio::time::sleep_until(deadline) => return Ok(WaitEnd::TimedOut),
            }
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut inner = self.wakeups.inner.lock().expect("wakeups lock");
        inner.total -= 1;
        if let Some(w) = inner.waiting.get_mut(&self.device) {
            w.requests -= 1;
            if w.requests == 0 {
                inner.waiting.remove(&self.device);
            }
        }
    }
}
