//! The exit codes of `ferry`, the one place they are defined. They are stable: scripts may
//! rely on them, and a code keeps its meaning in later versions.
//!
//! | code | constant       | meaning                                                                 |
//! |------|----------------|-------------------------------------------------------------------------|
//! | 0    | `SUCCESS`      | success                                                                 |
//! | 1    | `INTERNAL`     | unexpected error (a bug, an answer the CLI does not understand)         |
//! | 2    | `USAGE`        | usage error: bad arguments, missing token, invalid `--server` URL        |
//! | 3    | `NOT_FOUND`    | the server has no such thing (HTTP 404)                                  |
//! | 4    | `CONFLICT`     | the change clashes with existing state, e.g. a name is taken (HTTP 409), or a key has already signed a file |
//! | 5    | `UNAUTHORIZED` | no valid admin token, or a device credential was used (HTTP 401)         |
//! | 6    | `FORBIDDEN`    | the token's role does not allow this (HTTP 403)                          |
//! | 7    | `UNREACHABLE`  | the server cannot be reached, or the connection broke                    |
//! | 8    | `REJECTED`     | the server rejected the input: invalid name, size or hash mismatch, too large (HTTP 400, 411, 413, 415, 416, 422) |
//! | 9    | `SERVER_ERROR` | the server failed (HTTP 5xx)                                             |
//! | 10   | `LOCAL_FILE`   | a local file cannot be read or written (or exists and `--force` was not given) |
//! | 11   | `INVALID_METADATA` | signed metadata is refused: by the server (HTTP 400 `invalid_metadata`) or by a local check (`ferry metadata verify`, a file that does not parse) |
//! | 12   | `WRONG_PASSPHRASE` | a sealed key does not open: wrong passphrase, or the key file was modified |
//!
//! The README's "Exit codes" table documents these; a test keeps the two in step.

use std::path::{Path, PathBuf};

use ferry_api::ErrorCode;
use ferry_client::ClientError;
use ferry_tuf::sealed::SealError;
use ferry_tuf::TufError;

/// Success.
pub const SUCCESS: u8 = 0;
/// Unexpected error.
pub const INTERNAL: u8 = 1;
/// Usage error (also what clap exits with).
pub const USAGE: u8 = 2;
/// HTTP 404.
pub const NOT_FOUND: u8 = 3;
/// HTTP 409.
pub const CONFLICT: u8 = 4;
/// HTTP 401, or a credential of the wrong kind.
pub const UNAUTHORIZED: u8 = 5;
/// HTTP 403.
pub const FORBIDDEN: u8 = 6;
/// The server cannot be reached.
pub const UNREACHABLE: u8 = 7;
/// The server rejected the input.
pub const REJECTED: u8 = 8;
/// HTTP 5xx.
pub const SERVER_ERROR: u8 = 9;
/// A local file cannot be read or written.
pub const LOCAL_FILE: u8 = 10;
/// Signed metadata is refused, by the server or by a local check.
pub const INVALID_METADATA: u8 = 11;
/// A sealed key does not open with the passphrase given.
pub const WRONG_PASSPHRASE: u8 = 12;

/// A mistake in how `ferry` was called that clap cannot see (e.g. no token anywhere).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A local file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", .path.display())]
pub struct LocalFileError {
    /// "read", "write", ...
    pub action: &'static str,
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// Metadata that a local check refuses (e.g. `ferry metadata verify` counts too few signatures).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MetadataRefused(pub String);

/// A change that clashes with the state of a local file (e.g. a key that already signed it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LocalConflict(pub String);

/// Shorthand for an [`anyhow::Error`] holding a [`UsageError`].
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// Wraps an IO error on `path` as a [`LocalFileError`].
pub fn local_file(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> anyhow::Error {
    let path = path.to_owned();
    move |source| LocalFileError { action, path, source }.into()
}

/// The error for a key file that exists when `--force` was not given: nothing is replaced.
pub fn exists(path: &Path) -> anyhow::Error {
    let source = std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "it already exists; pass --force to replace it (the old key is then lost) or choose another name",
    );
    LocalFileError { action: "write", path: path.to_owned(), source }.into()
}

/// How a failure is reported: exit code, a stable code word for `--json`, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Process exit code.
    pub exit_code: u8,
    /// The server's error code, or a word naming the kind of local failure.
    pub code: String,
    /// The message for people.
    pub message: String,
}

/// Classifies an error of a command.
pub fn classify(err: &anyhow::Error) -> Failure {
    let (exit_code, code) = err
        .chain()
        .find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<ClientError>() {
                Some(for_client_error(e))
            } else if cause.is::<UsageError>() {
                Some((USAGE, "usage".to_owned()))
            } else if cause.is::<LocalFileError>() {
                Some((LOCAL_FILE, "local_file".to_owned()))
            } else if let Some(e) = cause.downcast_ref::<SealError>() {
                Some(for_seal_error(e))
            } else if cause.is::<MetadataRefused>() || cause.is::<TufError>() {
                Some((INVALID_METADATA, "invalid_metadata".to_owned()))
            } else if cause.is::<LocalConflict>() {
                Some((CONFLICT, "conflict".to_owned()))
            } else {
                None
            }
        })
        .unwrap_or((INTERNAL, "internal".to_owned()));
    Failure { exit_code, code, message: message(err) }
}

fn for_client_error(err: &ClientError) -> (u8, String) {
    let word = str::to_owned;
    match err {
        ClientError::Api { status, code, .. } => (for_status(*status, *code), code.as_str().to_owned()),
        ClientError::Unreachable { .. } => (UNREACHABLE, word("unreachable")),
        ClientError::Transfer { .. } => (UNREACHABLE, word("connection_broken")),
        ClientError::Decode { .. } => (INTERNAL, word("invalid_response")),
        ClientError::Integrity { .. } => (INTERNAL, word("integrity")),
        ClientError::Io { .. } => (LOCAL_FILE, word("local_file")),
        ClientError::InvalidUrl { .. } | ClientError::InvalidCredential { .. } => (USAGE, word("usage")),
    }
}

/// Failures to open a sealed key: a wrong passphrase has its own code, so that a script can
/// ask again; a missing passphrase or a file that is no sealed key is a usage error.
fn for_seal_error(err: &SealError) -> (u8, String) {
    let word = str::to_owned;
    match err {
        SealError::WrongPassphraseOrTampered => (WRONG_PASSPHRASE, word("wrong_passphrase")),
        SealError::EmptyPassphrase | SealError::PassphraseEnv { .. } | SealError::NotSealedKey => {
            (USAGE, word("usage"))
        }
        SealError::Crypto(_) | SealError::OutOfMemory { .. } | SealError::SecretTooLarge { .. } => {
            (INTERNAL, word("internal"))
        }
        // Unreadable passphrase files and damaged, oversized or future-version key files.
        _ => (LOCAL_FILE, word("local_file")),
    }
}

/// The exit code for an error answer of the server.
pub fn for_status(status: u16, code: ErrorCode) -> u8 {
    match code {
        ErrorCode::WrongCredentialKind => return UNAUTHORIZED,
        ErrorCode::InvalidMetadata => return INVALID_METADATA,
        _ => {}
    }
    match status {
        401 => UNAUTHORIZED,
        403 => FORBIDDEN,
        404 => NOT_FOUND,
        409 => CONFLICT,
        // The upload stalled long enough for the server to cut it: a network problem.
        408 => UNREACHABLE,
        400 | 411 | 413 | 415 | 416 | 422 => REJECTED,
        500..=599 => SERVER_ERROR,
        _ => INTERNAL,
    }
}

/// The message of an error and its causes, joined by `: `. Client errors already name their
/// cause, so the chain stops there; a cause whose text the message already holds is skipped.
fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
        if cause.is::<ClientError>() || cause.is::<LocalFileError>() {
            break;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: ErrorCode) -> anyhow::Error {
        ClientError::Api { status, code, message: "m".into() }.into()
    }

    #[test]
    fn server_errors_map_by_status() {
        let cases = [
            (404, ErrorCode::NotFound, NOT_FOUND),
            (409, ErrorCode::Conflict, CONFLICT),
            (409, ErrorCode::OutOfOrder, CONFLICT),
            (401, ErrorCode::Unauthorized, UNAUTHORIZED),
            (401, ErrorCode::WrongCredentialKind, UNAUTHORIZED),
            (403, ErrorCode::WrongCredentialKind, UNAUTHORIZED),
            (403, ErrorCode::Forbidden, FORBIDDEN),
            (403, ErrorCode::NotEntitled, FORBIDDEN),
            (400, ErrorCode::InvalidName, REJECTED),
            (400, ErrorCode::InvalidMetadata, INVALID_METADATA),
            (400, ErrorCode::HashMismatch, REJECTED),
            (400, ErrorCode::SizeMismatch, REJECTED),
            (411, ErrorCode::LengthRequired, REJECTED),
            (413, ErrorCode::PayloadTooLarge, REJECTED),
            (416, ErrorCode::RangeNotSatisfiable, REJECTED),
            (422, ErrorCode::InvalidJson, REJECTED),
            (408, ErrorCode::RequestTimeout, UNREACHABLE),
            (500, ErrorCode::Internal, SERVER_ERROR),
            (503, ErrorCode::Unavailable, SERVER_ERROR),
            (502, ErrorCode::Internal, SERVER_ERROR),
            (405, ErrorCode::BadRequest, INTERNAL),
        ];
        for (status, code, exit) in cases {
            let f = classify(&api(status, code));
            assert_eq!(f.exit_code, exit, "{status} {code:?}");
            assert_eq!(f.code, code.as_str());
        }
    }

    #[test]
    fn local_failures_map_to_their_codes() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = local_file("read", Path::new("/x/notes.md"))(io());
        let f = classify(&e);
        assert_eq!((f.exit_code, f.code.as_str()), (LOCAL_FILE, "local_file"));
        assert_eq!(f.message, "cannot read /x/notes.md: no such file");

        let e: anyhow::Error = ClientError::Io { action: "open", path: "/a".into(), source: io() }.into();
        assert_eq!(classify(&e).exit_code, LOCAL_FILE);

        assert_eq!(classify(&usage("no token")).exit_code, USAGE);
        let e: anyhow::Error = ClientError::InvalidUrl { url: "x".into(), reason: "no scheme".into() }.into();
        assert_eq!(classify(&e).exit_code, USAGE);
        assert_eq!(classify(&anyhow::anyhow!("boom")).exit_code, INTERNAL);
        let e = exists(Path::new("root.key"));
        assert_eq!(classify(&e).exit_code, LOCAL_FILE);
        assert!(classify(&e).message.contains("pass --force"), "{}", classify(&e).message);
        // A plain IO error is not assumed to be about a local file.
        assert_eq!(classify(&anyhow::Error::new(io())).exit_code, INTERNAL);
    }

    #[test]
    fn key_and_metadata_failures_have_their_own_codes() {
        let e = anyhow::Error::new(SealError::WrongPassphraseOrTampered).context("cannot open root.key");
        let f = classify(&e);
        assert_eq!((f.exit_code, f.code.as_str()), (WRONG_PASSPHRASE, "wrong_passphrase"));
        assert!(f.message.starts_with("cannot open root.key: wrong passphrase"), "{}", f.message);
        assert_eq!(classify(&SealError::NotSealedKey.into()).exit_code, USAGE);
        let e = SealError::PassphraseFileEmpty { path: "/p".into() };
        assert_eq!(classify(&e.into()).exit_code, LOCAL_FILE);
        assert_eq!(classify(&TufError::malformed("root", "x").into()).exit_code, INVALID_METADATA);
        assert_eq!(classify(&MetadataRefused("x".into()).into()).exit_code, INVALID_METADATA);
        assert_eq!(classify(&LocalConflict("x".into()).into()).exit_code, CONFLICT);
    }

    #[test]
    fn context_keeps_the_classification_and_joins_messages() {
        let e = api(404, ErrorCode::NotFound).context("cannot approve release 7");
        let f = classify(&e);
        assert_eq!(f.exit_code, NOT_FOUND);
        assert_eq!(f.message, "cannot approve release 7: m (http 404, not_found)");
    }

    #[test]
    fn repeated_causes_are_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot listen on 1.2.3.4:80: {0}")]
        struct Wrapper(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let f = classify(&anyhow::Error::new(Wrapper(io)));
        assert_eq!(f.message, "cannot listen on 1.2.3.4:80: address in use");
    }
}

#[cfg(test)]
mod readme_table {
    /// The README's exit-code table lists exactly the codes defined here.
    #[test]
    fn matches_the_readme() {
        let readme = include_str!("../../../README.md");
        let table = readme.split("### Exit codes").nth(1).expect("README has an exit-code table");
        let documented: Vec<u8> = table
            .lines()
            .skip_while(|l| !l.starts_with("| code"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split('|').next().unwrap().trim().parse().unwrap())
            .collect();
        let defined = [
            super::SUCCESS,
            super::INTERNAL,
            super::USAGE,
            super::NOT_FOUND,
            super::CONFLICT,
            super::UNAUTHORIZED,
            super::FORBIDDEN,
            super::UNREACHABLE,
            super::REJECTED,
            super::SERVER_ERROR,
            super::LOCAL_FILE,
            super::INVALID_METADATA,
            super::WRONG_PASSPHRASE,
        ];
        assert_eq!(documented, defined);
    }
}
