//! Ferry's content store.
//!
//! Content is addressed by its SHA-256, so identical artifacts are stored once. Writes stream:
//! the body is hashed while it is written to a temporary file, checked against the declared
//! length and the expected digest, made durable, and only then promoted under its digest.
//! Readers therefore never see partial content, and a crash leaves at most a stray temporary
//! file, which [`FsContentStore::open`] removes.

mod fs;

pub use fs::FsContentStore;

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use ferry_core::Sha256;
use futures::Stream;

/// A stream of bytes, as produced by an HTTP body or a file reader.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A content store failure.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// The body was longer or shorter than declared.
    #[error("the upload was declared as {declared} bytes but {received} arrived; send the exact Content-Length")]
    SizeMismatch {
        /// Declared length.
        declared: u64,
        /// Bytes received (when too long: at least this many).
        received: u64,
    },
    /// The body's digest differs from the expected one.
    #[error(
        "the upload's sha256 is {actual} but {expected} was expected; the file changed or was corrupted in transit"
    )]
    HashMismatch {
        /// Expected digest.
        expected: Sha256,
        /// Actual digest.
        actual: Sha256,
    },
    /// No content with this digest.
    #[error("no content with sha256 {0}")]
    NotFound(Sha256),
    /// Reading the body failed (e.g. the client went away).
    #[error("reading the upload failed: {0}")]
    Body(std::io::Error),
    /// The file system failed.
    #[error("content store {action} failed: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// Result of a content store operation.
pub type Result<T> = std::result::Result<T, ContentError>;

/// What [`ContentStore::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// Digest of the content.
    pub sha256: Sha256,
    /// Its length.
    pub length: u64,
    /// False when the content was already stored.
    pub created: bool,
}

/// Where artifacts live. The filesystem implementation is the default; object storage can
/// implement the same trait.
#[async_trait]
pub trait ContentStore: Send + Sync + 'static {
    /// Streams `body` into the store. The body must be exactly `declared_len` bytes and, when
    /// `expected` is given, hash to it; otherwise nothing is stored.
    async fn put(&self, declared_len: u64, expected: Option<&Sha256>, body: ByteStream) -> Result<PutOutcome>;

    /// The length of stored content, or `None`.
    async fn len(&self, sha256: &Sha256) -> Result<Option<u64>>;

    /// Streams `len` bytes starting at `start`. The caller checks the range against the length.
    async fn read_range(&self, sha256: &Sha256, start: u64, len: u64) -> Result<ByteStream>;

    /// Removes content; returns whether it existed.
    async fn delete(&self, sha256: &Sha256) -> Result<bool>;
}
