//! What can go wrong while updating: one error type whose messages say which file or URL is
//! concerned and what to do.

use std::path::PathBuf;

use ferry_tuf::uptane::CrossCheckError;
use ferry_tuf::TufError;

/// An updater failure. Whatever the variant, nothing unverified has been promoted: trusted
/// metadata on disk is only ever replaced by metadata that verified, and a target only leaves its
/// partial file once its length and digests matched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Metadata was refused by the TUF client workflow (bad signature, expired, rolled back,
    /// not what the referencing metadata says…).
    #[error("{file} refused: {source}")]
    Tuf {
        /// The metadata file concerned (`timestamp.json`, `3.root.json`, `2.gw.json`…).
        file: String,
        /// Why.
        source: TufError,
    },
    /// The server answered with an unexpected HTTP status.
    #[error("GET {url} answered HTTP {status}; check the repository URL and the device's credential")]
    Http {
        /// The URL requested.
        url: String,
        /// The status received.
        status: u16,
    },
    /// The request failed before or while the answer arrived (connection, TLS, timeout). A
    /// target download interrupted this way keeps its partial file and resumes next time.
    #[error("GET {url} failed: {source}")]
    Transport {
        /// The URL requested.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// A metadata file was larger than its size cap; the download was stopped at the cap.
    #[error("{what} is larger than the {cap}-byte limit; the repository may be attacking (endless data)")]
    TooLarge {
        /// The file.
        what: String,
        /// The cap in bytes.
        cap: u64,
    },
    /// The server sent more bytes than the target's signed length; the download was stopped and
    /// its partial file deleted.
    #[error("{target}: the server sent more than the {length} bytes the signed metadata gives (endless data attack?)")]
    LengthExceeded {
        /// The target path.
        target: String,
        /// The signed length.
        length: u64,
    },
    /// The server's answer ended before the target's signed length; the partial file is kept and
    /// the next download resumes it.
    #[error("{target}: the download ended after {received} of {length} bytes; try again to resume it")]
    Truncated {
        /// The target path.
        target: String,
        /// Bytes in the partial file now.
        received: u64,
        /// The signed length.
        length: u64,
    },
    /// The downloaded target's digest differs from the signed one; its partial file was deleted.
    #[error("{target}: {algorithm} digest {actual} differs from the signed {expected}; the download was discarded")]
    HashMismatch {
        /// The target path.
        target: String,
        /// The hash algorithm.
        algorithm: String,
        /// The signed digest.
        expected: String,
        /// The digest of what was received.
        actual: String,
    },
    /// The target's metadata lists no digest this client can check (sha256 or sha512).
    #[error("{target}: the metadata lists no sha256 or sha512 digest, so the download cannot be verified")]
    NoKnownHash {
        /// The target path.
        target: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// There is no trusted root to start from.
    #[error("no trusted root at {}: {source}; install the repository's root.json there first (init)", path.display())]
    NoTrustedRoot {
        /// Where it was looked for.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// No role trusted for the path lists it.
    #[error("target {0} is not listed by the repository's signed metadata")]
    NotFound(String),
    /// The system clock reads earlier than the earliest plausible time: it has not been set.
    #[error(
        "the system clock reads {now} (Unix seconds), before {earliest}: it is not set; \
         set the time (NTP or RTC) before checking for updates, since metadata expiry depends on it"
    )]
    ClockNotSet {
        /// The clock's reading.
        now: i64,
        /// The earliest time accepted.
        earliest: i64,
    },
    /// The configuration cannot work (a URL that cannot be joined, a target name that cannot be
    /// a file name, no target base URL).
    #[error("{0}")]
    Config(String),
    /// The director and the image repository disagree, or the director's metadata is for
    /// another device.
    #[error(transparent)]
    CrossCheck(#[from] CrossCheckError),
}

impl Error {
    pub(crate) fn tuf(file: impl Into<String>) -> impl FnOnce(TufError) -> Self {
        let file = file.into();
        move |source| Self::Tuf { file, source }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
