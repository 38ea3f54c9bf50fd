//! Content on a local file system: `ROOT/sha256/ab/abcdef…`, temporary files in `ROOT/tmp`.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::Sha256;
use futures::StreamExt;
use sha2::Digest;
use tokio::sync::mpsc;

use crate::{ByteStream, ContentError, ContentStore, PutOutcome, Result};

/// Chunk size for reads: large enough that per-chunk overhead does not limit throughput, small
/// enough that a buffer stays in the CPU cache between the read that fills it and the socket
/// write that copies it out. 128 KiB to 512 KiB measured alike, 1 MiB at half the speed
/// (BENCHMARKS.md).
const READ_CHUNK: usize = 256 * 1024;
/// Chunks read ahead of the socket.
const READ_AHEAD: usize = 2;

/// A content store in a directory.
#[derive(Debug, Clone)]
pub struct FsContentStore {
    root: PathBuf,
}

fn io(action: &'static str) -> impl FnOnce(std::io::Error) -> ContentError {
    move |source| ContentError::Io { action, source }
}

impl FsContentStore {
    /// Opens (creating if needed) a store rooted at `root`, and removes temporary files left by
    /// uploads that were interrupted by a crash.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let store = Self { root };
        let tmp = store.tmp_dir();
        create_private_dir(&store.root.join("sha256")).map_err(io("creating its directories"))?;
        let _ = tokio::fs::remove_dir_all(&tmp).await;
        create_private_dir(&tmp).map_err(io("creating its temporary directory"))?;
        Ok(store)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The path content with this digest is stored at. The digest is validated hex, so the
    /// path cannot leave the store.
    pub fn path_of(&self, sha256: &Sha256) -> PathBuf {
        let hex = sha256.as_str();
        self.root.join("sha256").join(&hex[..2]).join(hex)
    }
}

/// Creates `dir` and its missing parents, accessible only by the owner (0700). Content, like
/// everything else in the server's data directory, is read by the server alone (it serves it
/// over HTTP), so files are 0600 and directories 0700.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// The blocking half of an upload: writes and hashes chunks into a new file readable only by
/// the owner (0600; the rename keeps the mode), then syncs.
fn write_and_hash(path: &Path, mut chunks: mpsc::Receiver<Bytes>) -> std::io::Result<(u64, [u8; 32])> {
    let mut create = std::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut create, 0o600);
    let mut file = create.open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut written = 0u64;
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        written += chunk.len() as u64;
    }
    file.sync_all()?;
    Ok((written, hasher.finalize().into()))
}

#[async_trait]
impl ContentStore for FsContentStore {
    async fn put(&self, declared_len: u64, expected: Option<&Sha256>, mut body: ByteStream) -> Result<PutOutcome> {
        let tmp = self.tmp_dir().join(format!("upload-{:016x}", rand::random::<u64>()));
        // Hashing and writing run on a blocking thread so that a multi-GiB upload does not
        // occupy an async worker; the channel bounds memory to a few chunks.
        let (tx, rx) = mpsc::channel::<Bytes>(8);
        let writer = {
            let tmp = tmp.clone();
            tokio::task::spawn_blocking(move || write_and_hash(&tmp, rx))
        };
        let mut received = 0u64;
        let fed: Result<()> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(ContentError::Body)?;
                received += chunk.len() as u64;
                if received > declared_len {
                    return Err(ContentError::SizeMismatch { declared: declared_len, received });
                }
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Ok(())
        }
        .await;
        drop(tx);
        let written = writer
            .await
            .map_err(|e| ContentError::Io { action: "writing an upload", source: std::io::Error::other(e) })?;
        let outcome = fed.and_then(|()| {
            let (length, digest) = written.map_err(io("writing an upload"))?;
            if length != declared_len {
                return Err(ContentError::SizeMismatch { declared: declared_len, received: length });
            }
            let sha256 = Sha256::from_bytes(digest);
            if let Some(expected) = expected {
                if *expected != sha256 {
                    return Err(ContentError::HashMismatch { expected: expected.clone(), actual: sha256 });
                }
            }
            Ok((sha256, length))
        });
        let (sha256, length) = match outcome {
            Ok(v) => v,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        let dest = self.path_of(&sha256);
        if tokio::fs::try_exists(&dest).await.map_err(io("checking for existing content"))? {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Ok(PutOutcome { sha256, length, created: false });
        }
        let promote = {
            let (tmp, dest) = (tmp.clone(), dest.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                let dir = dest.parent().expect("content paths have a parent");
                create_private_dir(dir)?;
                Ok(ferry_fs::rename(&tmp, &dest)?)
            })
        };
        match promote.await {
            Ok(Ok(())) => Ok(PutOutcome { sha256, length, created: true }),
            Ok(Err(e)) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(ContentError::Io { action: "promoting an upload", source: e })
            }
            Err(e) => Err(ContentError::Io { action: "promoting an upload", source: std::io::Error::other(e) }),
        }
    }

    async fn len(&self, sha256: &Sha256) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path_of(sha256)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ContentError::Io { action: "reading content metadata", source: e }),
        }
    }

    async fn read_range(&self, sha256: &Sha256, start: u64, len: u64) -> Result<ByteStream> {
        let path = self.path_of(sha256);
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
            let mut f = std::fs::File::open(path)?;
            f.seek(SeekFrom::Start(start))?;
            Ok(f)
        })
        .await
        .map_err(|e| ContentError::Io { action: "opening content", source: std::io::Error::other(e) })?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ContentError::NotFound(sha256.clone()),
            _ => ContentError::Io { action: "opening content", source: e },
        })?;
        // One blocking reader per download, a couple of chunks ahead of the socket: large
        // sequential reads without holding the file in memory, into buffers that come back
        // once the socket has taken their bytes.
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            let mut reader = file.take(len);
            let pool = BufferPool::default();
            loop {
                let mut buf = pool.take();
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let chunk = Bytes::from_owner(PooledChunk { buf, len: n, pool: pool.clone() });
                        if tx.blocking_send(Ok(chunk)).is_err() {
                            break; // the client went away
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
        });
        Ok(Box::pin(tokio_stream_from(rx)))
    }

    async fn delete(&self, sha256: &Sha256) -> Result<bool> {
        match tokio::fs::remove_file(self.path_of(sha256)).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ContentError::Io { action: "deleting content", source: e }),
        }
    }
}

/// The read buffers of one download. A chunk handed to the HTTP layer returns its buffer here
/// when it is dropped (its bytes are in the socket), so a download cycles through the same
/// few buffers: already initialised (no zeroing per chunk) and still in the CPU cache when they
/// are filled again. Allocating and zeroing a fresh buffer per chunk cost about a quarter of
/// the download throughput (BENCHMARKS.md).
#[derive(Clone, Default)]
struct BufferPool(Arc<Mutex<Vec<Vec<u8>>>>);

impl BufferPool {
    /// A free buffer of [`READ_CHUNK`] bytes, or a new one.
    fn take(&self) -> Vec<u8> {
        self.0.lock().ok().and_then(|mut free| free.pop()).unwrap_or_else(|| vec![0; READ_CHUNK])
    }
}

/// A chunk of a download: the first `len` bytes of a pooled buffer.
struct PooledChunk {
    buf: Vec<u8>,
    len: usize,
    pool: BufferPool,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.0.lock() {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

fn tokio_stream_from<T: Send + 'static>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures::stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from_static(c)))))
    }

    fn sha(data: &[u8]) -> Sha256 {
        Sha256::from_bytes(sha2::Sha256::digest(data).into())
    }

    async fn read_all(s: &FsContentStore, d: &Sha256, start: u64, len: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut st = s.read_range(d, start, len).await.unwrap();
        while let Some(c) = st.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn stores_streams_and_deduplicates() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsContentStore::open(dir.path()).await.unwrap();
        let expected = sha(b"hello world");
        let out = s.put(11, Some(&expected), body(vec![b"hello ", b"world"])).await.unwrap();
        assert_eq!(out, PutOutcome { sha256: expected.clone(), length: 11, created: true });
        let again = s.put(11, None, body(vec![b"hello world"])).await.unwrap();
        assert!(!again.created);
        assert_eq!(s.len(&expected).await.unwrap(), Some(11));
        assert_eq!(read_all(&s, &expected, 6, 5).await, b"world");
        assert_eq!(read_all(&s, &expected, 0, 11).await, b"hello world");
        assert!(s.delete(&expected).await.unwrap());
        assert_eq!(s.len(&expected).await.unwrap(), None);
    }

    #[tokio::test]
    async fn refuses_wrong_size_or_hash_and_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsContentStore::open(dir.path()).await.unwrap();
        let short = s.put(12, None, body(vec![b"hello world"])).await.unwrap_err();
        assert!(matches!(short, ContentError::SizeMismatch { declared: 12, received: 11 }), "{short}");
        let long = s.put(5, None, body(vec![b"hello", b" world"])).await.unwrap_err();
        assert!(matches!(long, ContentError::SizeMismatch { declared: 5, .. }), "{long}");
        let wrong = sha(b"something else");
        let bad = s.put(11, Some(&wrong), body(vec![b"hello world"])).await.unwrap_err();
        assert!(matches!(bad, ContentError::HashMismatch { .. }), "{bad}");
        assert_eq!(s.len(&sha(b"hello world")).await.unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temporary files left behind");
    }

    #[tokio::test]
    async fn a_broken_body_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsContentStore::open(dir.path()).await.unwrap();
        let broken: ByteStream = Box::pin(futures::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")),
        ]));
        let err = s.put(100, None, broken).await.unwrap_err();
        assert!(matches!(err, ContentError::Body(_)), "{err}");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn open_removes_leftovers_of_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("tmp/upload-dead"), b"partial").unwrap();
        FsContentStore::open(dir.path()).await.unwrap();
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn downloads_read_in_large_chunks_into_a_few_reused_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsContentStore::open(dir.path()).await.unwrap();
        let data: Vec<u8> = (0..4 * 1024 * 1024 + 5).map(|i| (i % 251) as u8).collect();
        let digest = sha(&data);
        s.put(data.len() as u64, Some(&digest), body(vec![data.clone().leak()])).await.unwrap();
        let mut stream = s.read_range(&digest, 3, data.len() as u64 - 3).await.unwrap();
        let (mut out, mut sizes, mut buffers) = (Vec::new(), Vec::new(), std::collections::BTreeSet::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            out.extend_from_slice(&chunk);
            sizes.push(chunk.len());
            buffers.insert(chunk.as_ptr() as usize);
            // dropped here, as the HTTP layer drops a chunk once the socket took it
        }
        assert_eq!(out, &data[3..], "the range's bytes, in order");
        let (last, full) = sizes.split_last().unwrap();
        assert!(full.iter().all(|&n| n == 256 * 1024), "256 KiB reads: {sizes:?}");
        assert_eq!(*last, 2, "{sizes:?}");
        assert!(buffers.len() <= READ_AHEAD + 2, "{} buffers for {} chunks", buffers.len(), sizes.len());
    }

    #[tokio::test]
    async fn missing_content_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsContentStore::open(dir.path()).await.unwrap();
        let err = s.read_range(&sha(b"nope"), 0, 1).await.err().unwrap();
        assert!(matches!(err, ContentError::NotFound(_)));
    }
}
