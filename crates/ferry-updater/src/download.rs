//! Target downloads: streamed to `DEST/.partial+/NAME.part` (the partial file), never past the
//! signed length, resumed with a `Range` request after an interruption, and renamed to
//! `DEST/NAME` only once the length and every digest the metadata lists (that this client
//! knows) match. `NAME` is the target path escaped into one file name
//! ([`crate::persist::target_file_name`]); partial files live in their own directory
//! ([`crate::persist::PARTIAL_DIR`], a name no target file can have) so that one target's
//! partial download is never another target's file.
//!
//! Memory use is a few network chunks (`PIPELINE_DEPTH`) and one read buffer, whatever the
//! target's size. The socket is read on the runtime's thread, and the chunks are hashed on one
//! blocking thread and written on another, so the three overlap.
//!
//! A complete file is not synced to disk (see `Sink::open`); a file found in `DEST` is
//! hashed again before it is returned, and a caller keeping the path across a restart must
//! check it likewise ([`is_verified`]).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use ferry_tuf::TargetFile;
use reqwest::header::CONTENT_RANGE;
use reqwest::{Response, StatusCode, Url};
use ring::digest;
use tracing::{debug, info, warn};

use crate::error::{Error, Result};
use crate::fetch::{transport, Fetcher};
use crate::persist::{partial_file, promote, remove_optional, target_file_name, PARTIAL_DIR};

/// Read buffer for re-hashing a file already on disk.
const READ_BUFFER: usize = 64 * 1024;

/// Downloads `target` (listed as `path`) from `url` into `dest_dir`; see the module documentation.
pub(crate) async fn download(
    fetcher: &Fetcher,
    url: &Url,
    path: &str,
    target: &TargetFile,
    dest_dir: &Path,
    bandwidth_limit: Option<u64>,
) -> Result<PathBuf> {
    let name = target_file_name(path)?;
    let final_path = dest_dir.join(&name);
    if is_verified(&final_path, path, target).await? {
        debug!(target = path, file = %final_path.display(), "already downloaded and verified");
        return Ok(final_path);
    }
    let part = partial_file(dest_dir, &name);
    let partial_dir = dest_dir.join(PARTIAL_DIR);
    tokio::fs::create_dir_all(&partial_dir).await.map_err(Error::io(&partial_dir))?;
    let (digests, have) = resume_point(&part, path, target).await?;
    let (mut response, digests, have) = request(fetcher, url, &part, path, target, digests, have).await?;

    let mut sink = Sink::open(&part, digests, have, target.length);
    let received = receive(&mut response, &mut sink, url, path, target.length, bandwidth_limit).await;
    // The writer's error (e.g. a full disk) comes first: it is why the receiving stopped.
    let written = sink.finish(&part).await;
    let digests = match (received, written) {
        (Err(e @ Error::LengthExceeded { .. }), _) => {
            remove_optional(&part).await?;
            return Err(e);
        }
        (_, Err(e)) => return Err(e),
        // Interrupted: the partial file stays for the next attempt to resume.
        (Err(e), Ok(_)) => return Err(e),
        (Ok(()), Ok(digests)) => digests,
    };
    if let Err(e) = digests.verify() {
        remove_optional(&part).await?;
        return Err(e);
    }
    promote(&part, &final_path).await?;
    info!(target = path, file = %final_path.display(), "target downloaded and verified");
    Ok(final_path)
}

/// Sends the request: ranged from `have` when there is a prefix to resume, and once more
/// without a range if the server answers the range wrongly (a `Content-Range` not starting at
/// `have`, or 416). An answer of 200 restarts from zero. Returns the answer to stream and the
/// digests and length of what the partial file keeps.
async fn request(
    fetcher: &Fetcher,
    url: &Url,
    part: &Path,
    path: &str,
    target: &TargetFile,
    mut digests: Digests,
    mut have: u64,
) -> Result<(Response, Digests, u64)> {
    loop {
        let ranged = (have > 0).then_some(have);
        let answer = fetcher.get_target(url, ranged).await?;
        match (answer.status(), ranged) {
            (StatusCode::OK, _) => {
                if have > 0 {
                    debug!(target = path, "the server sent the whole file: restarting from zero");
                    return Ok((answer, Digests::new(path, target)?, 0));
                }
                return Ok((answer, digests, have));
            }
            (StatusCode::PARTIAL_CONTENT, Some(from)) if range_starts_at(&answer, from, target.length) => {
                info!(target = path, from, "resuming download");
                return Ok((answer, digests, have));
            }
            (StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE, Some(_)) => {
                warn!(target = path, "the server answered the range request wrongly: restarting from zero");
                remove_optional(part).await?;
                // `have` is 0 now, so the next round sends no range and ends the loop.
                (digests, have) = (Digests::new(path, target)?, 0);
            }
            (status, _) => return Err(Error::Http { url: url.to_string(), status: status.as_u16() }),
        }
    }
}

/// Whether `file` exists with the target's length and digests.
/// Whether `file` holds target `path` as `target` lists it: its length and every digest the
/// metadata lists that this client knows. A missing file is `false`.
pub async fn is_verified(file: &Path, path: &str, target: &TargetFile) -> Result<bool> {
    match tokio::fs::metadata(file).await {
        Ok(meta) if meta.is_file() && meta.len() == target.length => {}
        _ => return Ok(false),
    }
    let (digests, len) = hash_file(file, Digests::new(path, target)?).await?;
    Ok(len == target.length && digests.verify().is_ok())
}

/// Where to resume: the digests of the partial file's content and its length, or a fresh start
/// when there is none or it is longer than the target (then it is deleted). A partial file that is
/// already complete but does not verify is deleted too.
async fn resume_point(part: &Path, path: &str, target: &TargetFile) -> Result<(Digests, u64)> {
    let fresh = || Digests::new(path, target).map(|d| (d, 0));
    let len = match tokio::fs::symlink_metadata(part).await {
        Ok(meta) if meta.is_file() => meta.len(),
        // A link (or anything but a plain file) where the partial file goes is removed, never
        // followed: the download directory may be where a root-run client writes.
        Ok(_) => {
            remove_optional(part).await?;
            return fresh();
        }
        Err(_) => return fresh(),
    };
    if len == 0 || len > target.length {
        remove_optional(part).await?;
        return fresh();
    }
    let (digests, len) = hash_file(part, Digests::new(path, target)?).await?;
    if len == target.length {
        // Complete but not promoted (a crash, or content that does not verify): fetch it anew.
        remove_optional(part).await?;
        return fresh();
    }
    Ok((digests, len))
}

fn open_part(part: &Path, append: bool) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    if append {
        options.append(true);
    } else {
        // Created exclusively (which never goes through a symlink) after removing what is there.
        match std::fs::remove_file(part) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(part)(e)),
            _ => {}
        }
        options.write(true).create_new(true);
    }
    options.open(part).map_err(Error::io(part))
}

/// Chunks received but not yet hashed and written. With chunks of at most a few hundred KiB
/// this bounds the memory between the socket and the disk.
const PIPELINE_DEPTH: usize = 8;

/// The partial file being hashed and written, each on a blocking thread of its own: the
/// runtime thread reads the socket while one thread hashes what arrived and another writes it,
/// so that receiving, hashing and writing overlap instead of taking turns. Both threads share
/// each chunk (a [`Bytes`] is reference-counted), so nothing is copied.
struct Sink {
    to_hasher: tokio::sync::mpsc::Sender<Bytes>,
    to_writer: tokio::sync::mpsc::Sender<Bytes>,
    /// Ends with the digests of all the partial file holds.
    hasher: tokio::task::JoinHandle<Digests>,
    /// Ends once everything handed to it is written (and synced, when the transfer was cut).
    writer: tokio::task::JoinHandle<Result<()>>,
    /// Bytes handed to the writer (the partial file's length once it has written them).
    have: u64,
}

impl Sink {
    /// Starts the hasher, adding to `digests` (those of the `have` bytes the partial file
    /// keeps), and the writer, which opens the partial file (appending when `have > 0`). If the
    /// open fails, the first [`Sink::write`] fails and [`Sink::finish`] says why.
    ///
    /// The writer syncs the file only when it ends short of `length`, so that a resume starts
    /// from bytes that are on the disk. A complete file is not synced: it is verified as it
    /// arrives and then used at once, and one found on disk after a crash is hashed again
    /// before anything uses it ([`download`] does so for a file it finds in its directory, and
    /// a caller that keeps the path across a restart must do the same). The sync would write
    /// the whole file out before the caller may go on, for nothing that check does not give.
    fn open(part: &Path, mut digests: Digests, have: u64, length: u64) -> Self {
        let path = part.to_path_buf();
        let (to_hasher, mut hasher_rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let (to_writer, mut writer_rx) = tokio::sync::mpsc::channel::<Bytes>(PIPELINE_DEPTH);
        let hasher = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = hasher_rx.blocking_recv() {
                digests.update(&chunk);
            }
            digests
        });
        let writer = tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut file = open_part(&path, have > 0)?;
            let mut written = have;
            while let Some(chunk) = writer_rx.blocking_recv() {
                file.write_all(&chunk).map_err(Error::io(&path))?;
                written += chunk.len() as u64;
            }
            if written < length {
                file.sync_all().map_err(Error::io(&path))?;
            }
            Ok(())
        });
        Self { to_hasher, to_writer, hasher, writer, have }
    }

    /// Hands `chunk` to the hasher and the writer. Fails only when the writer stopped (it
    /// failed to write); [`Sink::finish`] says why.
    async fn write(&mut self, chunk: Bytes) -> std::result::Result<(), WriterStopped> {
        let len = chunk.len() as u64;
        self.to_writer.send(chunk.clone()).await.map_err(|_| WriterStopped)?;
        // The hasher stops only when its thread panicked; `finish` reports that.
        self.to_hasher.send(chunk).await.map_err(|_| WriterStopped)?;
        self.have += len;
        Ok(())
    }

    /// Waits until everything handed over is written and hashed; returns the digests.
    async fn finish(self, path: &Path) -> Result<Digests> {
        let Sink { to_hasher, to_writer, hasher, writer, .. } = self;
        // The end of input for both threads.
        drop((to_hasher, to_writer));
        let joined = |e: tokio::task::JoinError| Error::io(path)(std::io::Error::other(e));
        writer.await.map_err(joined)??;
        hasher.await.map_err(joined)
    }
}

/// The writer thread ended early; its result says why.
struct WriterStopped;

/// Streams the answer's body into `sink`. Stops with [`Error::LengthExceeded`] before writing a
/// byte past `length`, and with [`Error::Truncated`] when the body ends short of it.
async fn receive(
    response: &mut Response,
    sink: &mut Sink,
    url: &Url,
    path: &str,
    length: u64,
    bandwidth_limit: Option<u64>,
) -> Result<()> {
    let mut throttle = bandwidth_limit.map(Throttle::new);
    while let Some(chunk) = response.chunk().await.map_err(|source| transport(url, source))? {
        if sink.have + chunk.len() as u64 > length {
            return Err(Error::LengthExceeded { target: path.to_owned(), length });
        }
        let len = chunk.len() as u64;
        if sink.write(chunk).await.is_err() {
            // The writer failed; `Sink::finish` returns its error.
            return Ok(());
        }
        if let Some(throttle) = &mut throttle {
            throttle.pace(len).await;
        }
    }
    if sink.have < length {
        return Err(Error::Truncated { target: path.to_owned(), received: sink.have, length });
    }
    Ok(())
}

/// Keeps a transfer's average rate at or under a limit: after each chunk, sleeps until the
/// bytes received so far would have taken that long at the limit.
struct Throttle {
    rate: u64,
    start: tokio::time::Instant,
    received: u64,
}

impl Throttle {
    fn new(bytes_per_sec: u64) -> Self {
        Self { rate: bytes_per_sec.max(1), start: tokio::time::Instant::now(), received: 0 }
    }

    async fn pace(&mut self, bytes: u64) {
        self.received += bytes;
        let due = std::time::Duration::from_secs_f64(self.received as f64 / self.rate as f64);
        tokio::time::sleep_until(self.start + due).await;
    }
}

/// Whether a 206 answer's `Content-Range` starts at `from` and stays within `length`.
fn range_starts_at(response: &Response, from: u64, length: u64) -> bool {
    let Some(value) = response.headers().get(CONTENT_RANGE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let parse = || -> Option<(u64, u64, Option<u64>)> {
        let (span, total) = value.trim().strip_prefix("bytes ")?.split_once('/')?;
        let (start, end) = span.split_once('-')?;
        let total = if total == "*" { None } else { Some(total.parse().ok()?) };
        Some((start.parse().ok()?, end.parse().ok()?, total))
    };
    matches!(parse(), Some((start, end, total)) if start == from && start <= end && end < length
        && total.is_none_or(|t| t == length))
}

/// Hashes `file` from its start, adding to `digests`; returns them and the bytes read.
async fn hash_file(file: &Path, mut digests: Digests) -> Result<(Digests, u64)> {
    let path = file.to_path_buf();
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut reader = std::fs::File::open(&path).map_err(Error::io(&path))?;
        let mut buffer = vec![0; READ_BUFFER];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buffer).map_err(Error::io(&path))?;
            if n == 0 {
                return Ok((digests, total));
            }
            digests.update(&buffer[..n]);
            total += n as u64;
        }
    })
    .await
    .map_err(|e| Error::io(file)(std::io::Error::other(e)))?
}

/// Running digests for every algorithm the target lists that this client knows.
struct Digests {
    target: String,
    running: Vec<(String, String, digest::Context)>,
}

impl Digests {
    fn new(path: &str, target: &TargetFile) -> Result<Self> {
        let running: Vec<_> = target
            .hashes
            .iter()
            .filter_map(|(algorithm, expected)| {
                let alg = match algorithm.as_str() {
                    "sha256" => &digest::SHA256,
                    "sha512" => &digest::SHA512,
                    _ => return None,
                };
                Some((algorithm.clone(), expected.to_ascii_lowercase(), digest::Context::new(alg)))
            })
            .collect();
        if running.is_empty() {
            return Err(Error::NoKnownHash { target: path.to_owned() });
        }
        Ok(Self { target: path.to_owned(), running })
    }

    fn update(&mut self, bytes: &[u8]) {
        for (_, _, context) in &mut self.running {
            context.update(bytes);
        }
    }

    fn verify(self) -> Result<()> {
        for (algorithm, expected, context) in self.running {
            let actual = hex::encode(context.finish());
            if actual != expected {
                return Err(Error::HashMismatch { target: self.target, algorithm, expected, actual });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod throttle_tests {
    use super::Throttle;

    /// On tokio's paused clock (virtual time, no waiting): 10 000 bytes at 1 000 B/s take ten
    /// seconds however they are chunked, and pacing never runs ahead of the limit.
    #[tokio::test(start_paused = true)]
    async fn the_average_rate_stays_at_the_limit() {
        let start = tokio::time::Instant::now();
        let mut throttle = Throttle::new(1_000);
        let mut received = 0u64;
        for chunk in [1u64, 999, 3_000, 500, 4_500, 1_000] {
            throttle.pace(chunk).await;
            received += chunk;
            let elapsed = start.elapsed().as_secs_f64();
            assert!(elapsed >= received as f64 / 1_000.0 - 1e-6, "{received} bytes after {elapsed} s");
        }
        assert_eq!(start.elapsed().as_secs(), 10);
    }
}
