//! The on-disk queue of status events waiting to be sent to the server.
//!
//! # File
//!
//! `STATE_DIR/events.jsonl`, one JSON object per line, appended and fsync'd one event at a time:
//! - `{"event":{"key":…,"seq":…,"release":…,"state":…,…}}`: a queued event, the server's
//!   [`NewEvent`] plus the optional idempotency `key` the agent pushed it with;
//! - `{"meta":{"last_seq":…,"last_key":…,"dropped":…}}`: the first line after a rewrite, so
//!   that sequence numbers and the last key survive the queue being emptied.
//!
//! A crash can only tear the last line (appends are sequential): a final line without its
//! newline is ignored and cut off when the queue is opened. Delivered events are removed by
//! rewriting the file atomically ([`EventQueue::ack`]).
//!
//! # Sequence numbers
//!
//! The server requires a per-device `seq` that only increases; it skips a `seq` it already has
//! (a retry) and refuses one below its highest. Each new event gets
//! `max(last_seq + 1, at × 1000)`: one more than the last, and never below the event's time in
//! milliseconds. The clock floor means that even if the queue file is lost, later events still
//! rank above everything sent before (as for the director's versions in ARCHITECTURE.md);
//! gaps are allowed by the server.
//!
//! # Bounded size
//!
//! The file stays under `max_bytes` (default [`DEFAULT_MAX_BYTES`]). When an event would not
//! fit, the oldest *non-critical* events (downloading progress, downloaded, installing,
//! deferred) are dropped first; only if that is not enough are the oldest critical ones
//! (installed, reboot pending, committed, failed, rolled back) dropped. The count of dropped
//! events is kept in the file. Messages and error codes are cut to the server's limits when
//! queued, so an event the server would refuse for its size can never block the queue.
//!
//! # Exactly one event per transition
//!
//! The state machine pushes a phase's event with a key naming the job and the phase
//! ([`event_key`]). Pushing the same key as the last keyed push is a no-op, so a restart that
//! repeats "queue the event of the phase I am in" never queues it twice.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ferry_api::EventBatch;
use ferry_core::{DeviceState, NewEvent, ReleaseId};
use serde::{Deserialize, Serialize};

use crate::atomic::{self, IoError};

/// The queue's file name inside the state directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// Default size bound of the queue file.
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// Smallest size bound accepted: room for a few of the largest events.
pub const MIN_MAX_BYTES: u64 = 64 * 1024;
/// Longest message the server accepts, in bytes.
pub const MAX_MESSAGE_BYTES: usize = ferry_api::MAX_EVENT_MESSAGE_BYTES;
/// Longest error code the server accepts, in bytes.
pub const MAX_ERROR_CODE_BYTES: usize = ferry_api::MAX_SHORT_TEXT_BYTES;
/// Most events the server accepts in one batch.
pub const MAX_BATCH: usize = ferry_api::MAX_EVENTS_PER_BATCH;

/// An event to queue; the queue assigns its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// The release it concerns.
    pub release: ReleaseId,
    /// The new state.
    pub state: DeviceState,
    /// Bytes downloaded, or percent.
    pub progress: Option<i64>,
    /// Machine-readable error code.
    pub error_code: Option<String>,
    /// Message or log excerpt.
    pub message: Option<String>,
    /// Unix seconds on the device's clock.
    pub at: i64,
}

/// What [`EventQueue::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued with this `seq`; `dropped` older events made room for it.
    Queued {
        /// The event's sequence number.
        seq: i64,
        /// Events dropped to stay within the size bound.
        dropped: u64,
    },
    /// The key equals the last keyed push: already queued, nothing done.
    Repeat,
}

/// The idempotency key of a job's event: release, job start and state.
pub fn event_key(release: ReleaseId, job_started_at: i64, state: DeviceState) -> String {
    format!("{release}/{job_started_at}/{}", state.as_str())
}

/// Whether losing this event would hide an outcome from the server.
pub fn is_critical(state: DeviceState) -> bool {
    !matches!(
        state,
        DeviceState::Downloading | DeviceState::Downloaded | DeviceState::Installing | DeviceState::Deferred
    )
}

/// The sequence number after `last_seq` for an event at `at` (Unix seconds).
pub fn next_seq(last_seq: i64, at: i64) -> i64 {
    last_seq.saturating_add(1).max(at.saturating_mul(1000)).max(1)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Meta(Meta),
    Event(Queued),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Meta {
    last_seq: i64,
    last_key: Option<String>,
    dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Queued {
    key: Option<String>,
    #[serde(flatten)]
    event: NewEvent,
}

/// What a read of the queue file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Events waiting to be delivered.
    pub pending: usize,
    /// The highest sequence number assigned.
    pub last_seq: i64,
    /// Events dropped to respect the size bound, ever.
    pub dropped: u64,
    /// Device time of the oldest waiting event.
    pub oldest_at: Option<i64>,
    /// Complete lines that did not parse (disk corruption), skipped.
    pub corrupt_lines: usize,
    /// Whether the last line was torn (cut off at the next open).
    pub torn_tail: bool,
}

struct Parsed {
    meta: Meta,
    events: VecDeque<(Queued, u64)>,
    summary: Summary,
    /// Length of the complete lines: where a torn tail starts.
    complete_len: u64,
}

fn parse(bytes: &[u8]) -> Parsed {
    let complete_len = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut meta = Meta::default();
    let mut events = VecDeque::new();
    let mut corrupt_lines = 0;
    for line in bytes[..complete_len].split_inclusive(|b| *b == b'\n') {
        match serde_json::from_slice::<Line>(line) {
            Ok(Line::Meta(m)) => {
                meta.last_seq = meta.last_seq.max(m.last_seq);
                meta.last_key = m.last_key;
                meta.dropped = m.dropped;
            }
            Ok(Line::Event(q)) => {
                meta.last_seq = meta.last_seq.max(q.event.seq);
                if q.key.is_some() {
                    meta.last_key.clone_from(&q.key);
                }
                events.push_back((q, line.len() as u64));
            }
            Err(_) => corrupt_lines += 1,
        }
    }
    let summary = Summary {
        pending: events.len(),
        last_seq: meta.last_seq,
        dropped: meta.dropped,
        oldest_at: events.front().map(|(q, _)| q.event.at),
        corrupt_lines,
        torn_tail: complete_len < bytes.len(),
    };
    Parsed { meta, events, summary, complete_len: complete_len as u64 }
}

/// The queue, open for appending.
#[derive(Debug)]
pub struct EventQueue {
    path: PathBuf,
    file: File,
    meta: Meta,
    /// Waiting events with the length of their line.
    events: VecDeque<(Queued, u64)>,
    /// Current file length.
    len: u64,
    max_bytes: u64,
}

impl EventQueue {
    /// Opens (or creates) the queue at `path`, cutting off a torn last line. `max_bytes` is
    /// raised to [`MIN_MAX_BYTES`] if smaller.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, IoError> {
        let bytes = match atomic::read_private(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(IoError::on("read", path)(e)),
        };
        let parsed = parse(&bytes);
        if parsed.summary.corrupt_lines > 0 {
            tracing::warn!(path = %path.display(), lines = parsed.summary.corrupt_lines, "skipped unreadable event lines");
        }
        let file = atomic::open_append(path)?;
        if parsed.summary.torn_tail {
            file.set_len(parsed.complete_len)
                .and_then(|()| file.sync_all())
                .map_err(IoError::on("cut the torn last line of", path))?;
        }
        if bytes.is_empty() {
            atomic::sync_dir(atomic::parent_of(path))?;
        }
        Ok(Self {
            path: path.to_owned(),
            file,
            meta: parsed.meta,
            events: parsed.events,
            len: parsed.complete_len,
            max_bytes: max_bytes.max(MIN_MAX_BYTES),
        })
    }

    /// Reads the queue file without changing it (for `ferry-agent status`).
    pub fn inspect(path: &Path) -> Result<Summary, IoError> {
        match atomic::read_private(path) {
            Ok(bytes) => Ok(parse(&bytes).summary),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Summary::default()),
            Err(e) => Err(IoError::on("read", path)(e)),
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The highest sequence number assigned so far.
    pub fn last_seq(&self) -> i64 {
        self.meta.last_seq
    }

    /// Events dropped to respect the size bound, ever.
    pub fn dropped(&self) -> u64 {
        self.meta.dropped
    }

    /// Queues an event durably. With a `key` equal to the last keyed push, does nothing.
    pub fn push(&mut self, draft: EventDraft, key: Option<&str>) -> Result<Pushed, IoError> {
        if key.is_some() && key == self.meta.last_key.as_deref() {
            return Ok(Pushed::Repeat);
        }
        let seq = next_seq(self.meta.last_seq, draft.at);
        let queued = Queued {
            key: key.map(str::to_owned),
            event: NewEvent {
                seq,
                release: draft.release,
                state: draft.state,
                progress: draft.progress,
                error_code: draft.error_code.map(|c| cut(c, MAX_ERROR_CODE_BYTES)),
                message: draft.message.map(|m| cut(m, MAX_MESSAGE_BYTES)),
                at: draft.at,
            },
        };
        let line = to_line(&Line::Event(queued.clone()));
        let dropped = self.make_room(line.len() as u64)?;
        if let Err(e) = self.file.write_all(&line).and_then(|()| self.file.sync_data()) {
            // Never leave a partial line for the next append to glue onto.
            let _ = self.file.set_len(self.len);
            return Err(IoError::on("append to", &self.path)(e));
        }
        self.len += line.len() as u64;
        self.meta.last_seq = seq;
        if key.is_some() {
            self.meta.last_key = queued.key.clone();
        }
        self.events.push_back((queued, line.len() as u64));
        Ok(Pushed::Queued { seq, dropped })
    }

    /// The oldest waiting events, at most [`MAX_BATCH`], as the server's batch body.
    pub fn batch(&self) -> EventBatch {
        EventBatch { events: self.events.iter().take(MAX_BATCH).map(|(q, _)| q.event.clone()).collect() }
    }

    /// Removes the events up to and including `seq` (the server has them) by rewriting the file.
    pub fn ack(&mut self, seq: i64) -> Result<(), IoError> {
        let before = self.events.len();
        self.events.retain(|(q, _)| q.event.seq > seq);
        if self.events.len() != before {
            self.rewrite()?;
        }
        Ok(())
    }

    /// Drops events until a line of `incoming` bytes fits; rewrites the file if any went.
    fn make_room(&mut self, incoming: u64) -> Result<u64, IoError> {
        if self.len + incoming <= self.max_bytes {
            return Ok(0);
        }
        let meta_len = to_line(&Line::Meta(self.meta.clone())).len() as u64 + 32;
        let mut size: u64 = meta_len + self.events.iter().map(|(_, n)| n).sum::<u64>();
        let mut dropped = 0;
        for critical_too in [false, true] {
            while size + incoming > self.max_bytes {
                let Some(i) = self.events.iter().position(|(q, _)| critical_too || !is_critical(q.event.state)) else {
                    break;
                };
                let (_, n) = self.events.remove(i).expect("the index was just found");
                size -= n;
                dropped += 1;
            }
        }
        if dropped > 0 {
            tracing::warn!(dropped, "event queue full: dropped the oldest events");
        }
        self.meta.dropped += dropped;
        self.rewrite()?;
        Ok(dropped)
    }

    /// Replaces the file with a meta line and the waiting events, atomically.
    fn rewrite(&mut self) -> Result<(), IoError> {
        let mut bytes = to_line(&Line::Meta(self.meta.clone()));
        for (q, _) in &self.events {
            bytes.extend(to_line(&Line::Event(q.clone())));
        }
        atomic::write_file(&self.path, &bytes)?;
        self.file = atomic::open_append(&self.path)?;
        self.len = bytes.len() as u64;
        Ok(())
    }
}

fn to_line(line: &Line) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).expect("events serialise");
    bytes.push(b'\n');
    bytes
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(state: DeviceState, at: i64) -> EventDraft {
        EventDraft { release: ReleaseId(7), state, progress: None, error_code: None, message: None, at }
    }

    fn seqs(q: &EventQueue) -> Vec<i64> {
        q.batch().events.iter().map(|e| e.seq).collect()
    }

    fn queued(p: Pushed) -> i64 {
        match p {
            Pushed::Queued { seq, .. } => seq,
            Pushed::Repeat => panic!("expected a new event"),
        }
    }

    #[test]
    fn sequence_numbers_increase_and_never_fall_below_the_clock() {
        assert_eq!(next_seq(0, 0), 1);
        assert_eq!(next_seq(5, 0), 6);
        assert_eq!(next_seq(5, 1_700_000_000), 1_700_000_000_000);
        assert_eq!(next_seq(1_700_000_000_500, 1_700_000_000), 1_700_000_000_501, "a clock set back");
    }

    #[test]
    fn events_survive_a_restart_in_order_with_their_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        let a = queued(q.push(draft(DeviceState::Downloading, 100), None).unwrap());
        let b = queued(q.push(draft(DeviceState::Installing, 100), None).unwrap());
        assert!(b > a);
        drop(q);
        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(seqs(&q), [a, b]);
        let c = queued(q.push(draft(DeviceState::Installed, 100), None).unwrap());
        assert!(c > b, "numbering continues after a restart");
        let batch = q.batch();
        let states: Vec<_> = batch.events.iter().map(|e| e.state).collect();
        assert_eq!(states, [DeviceState::Downloading, DeviceState::Installing, DeviceState::Installed]);
    }

    #[test]
    fn acknowledged_events_go_and_numbering_survives_an_empty_queue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        let a = queued(q.push(draft(DeviceState::Downloading, 1), None).unwrap());
        let b = queued(q.push(draft(DeviceState::Downloaded, 1), None).unwrap());
        q.ack(a).unwrap();
        assert_eq!(seqs(&q), [b]);
        q.ack(b).unwrap();
        assert!(q.is_empty());
        drop(q);
        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert!(q.is_empty());
        assert_eq!(q.last_seq(), b);
        assert!(queued(q.push(draft(DeviceState::Installing, 1), None).unwrap()) > b);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        let a = queued(q.push(draft(DeviceState::Downloading, 1), None).unwrap());
        drop(q);
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"event\":{\"key\":null,\"seq\":99,\"rel").unwrap();
        drop(file);
        assert!(EventQueue::inspect(&path).unwrap().torn_tail);

        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(seqs(&q), [a]);
        let b = queued(q.push(draft(DeviceState::Downloaded, 1), None).unwrap());
        drop(q);
        let q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(seqs(&q), [a, b], "the new event was not glued to the torn line");
        let summary = EventQueue::inspect(&path).unwrap();
        assert_eq!((summary.pending, summary.corrupt_lines, summary.torn_tail), (2, 0, false));
    }

    #[test]
    fn a_repeated_key_is_queued_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let key = event_key(ReleaseId(7), 1000, DeviceState::Committed);
        assert_eq!(key, "7/1000/committed");
        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        queued(q.push(draft(DeviceState::Committed, 1), Some(&key)).unwrap());
        q.push(draft(DeviceState::Downloading, 1), None).unwrap();
        assert_eq!(q.push(draft(DeviceState::Committed, 1), Some(&key)).unwrap(), Pushed::Repeat);
        // Also after a restart, and after the event was delivered and the queue emptied.
        let last = q.last_seq();
        q.ack(last).unwrap();
        drop(q);
        let mut q = EventQueue::open(&path, DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(q.push(draft(DeviceState::Committed, 1), Some(&key)).unwrap(), Pushed::Repeat);
        assert!(q.is_empty());
        let other = event_key(ReleaseId(8), 2000, DeviceState::Committed);
        queued(q.push(draft(DeviceState::Committed, 1), Some(&other)).unwrap());
    }

    #[test]
    fn a_full_queue_drops_the_oldest_progress_events_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(EVENTS_FILE);
        let mut q = EventQueue::open(&path, MIN_MAX_BYTES).unwrap();
        let big = |state| EventDraft { message: Some("x".repeat(MAX_MESSAGE_BYTES)), ..draft(state, 1) };
        let failed = queued(q.push(big(DeviceState::Failed), None).unwrap());
        let mut total_dropped = 0;
        for _ in 0..40 {
            if let Pushed::Queued { dropped, .. } = q.push(big(DeviceState::Downloading), None).unwrap() {
                total_dropped += dropped;
            }
        }
        assert!(total_dropped > 0, "the bound was reached");
        assert!(std::fs::metadata(&path).unwrap().len() <= MIN_MAX_BYTES);
        assert_eq!(q.batch().events[0].seq, failed, "the critical event is kept");
        assert_eq!(q.dropped(), total_dropped);
        // With only critical events left to drop, the oldest goes.
        for _ in 0..40 {
            q.push(big(DeviceState::Committed), None).unwrap();
        }
        assert!(q.batch().events.iter().all(|e| e.state == DeviceState::Committed));
        drop(q);
        let summary = EventQueue::inspect(&path).unwrap();
        assert!(summary.dropped > total_dropped, "the count survives: {summary:?}");
    }

    #[test]
    fn oversized_texts_are_cut_to_what_the_server_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = EventQueue::open(&dir.path().join(EVENTS_FILE), DEFAULT_MAX_BYTES).unwrap();
        let long = EventDraft {
            error_code: Some("e".repeat(500)),
            message: Some("é".repeat(3000)),
            ..draft(DeviceState::Failed, 1)
        };
        q.push(long, None).unwrap();
        let event = &q.batch().events[0];
        assert_eq!(event.error_code.as_ref().unwrap().len(), MAX_ERROR_CODE_BYTES);
        let message = event.message.as_ref().unwrap();
        assert!(message.len() <= MAX_MESSAGE_BYTES && message.len() > MAX_MESSAGE_BYTES - 2);
    }

    #[test]
    fn a_batch_holds_at_most_what_the_server_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let mut q = EventQueue::open(&dir.path().join(EVENTS_FILE), DEFAULT_MAX_BYTES).unwrap();
        for _ in 0..MAX_BATCH + 10 {
            q.push(draft(DeviceState::Downloading, 1), None).unwrap();
        }
        let batch = q.batch();
        assert_eq!(batch.events.len(), MAX_BATCH);
        assert!(batch.events.windows(2).all(|w| w[0].seq < w[1].seq));
        let json = serde_json::to_value(&batch).unwrap();
        assert!(json["events"][0].get("key").is_none(), "the queue's key is not sent");
    }

    #[test]
    fn criticality() {
        assert!(!is_critical(DeviceState::Downloading) && !is_critical(DeviceState::Deferred));
        for s in [
            DeviceState::Installed,
            DeviceState::RebootPending,
            DeviceState::Committed,
            DeviceState::Failed,
            DeviceState::RolledBack,
        ] {
            assert!(is_critical(s), "{s:?}");
        }
    }
}
