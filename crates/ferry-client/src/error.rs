//! The client's one error type and the parsing of error answers.

use std::path::PathBuf;

use ferry_api::{ErrorBody, ErrorCode};

/// How much of a body that is not an [`ErrorBody`] is kept in the message.
const RAW_BODY_LIMIT: usize = 200;
/// How much of a server's error message, or of a decoder's complaint, is kept: a real one is
/// a sentence or two; more would only flood a terminal or a log.
pub(crate) const MESSAGE_LIMIT: usize = 500;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status. `code` and `message` come from its
    /// [`ErrorBody`]; when the body is not one (a proxy's page, an empty answer), `code` is
    /// [`ErrorCode::Internal`] and `message` describes the raw answer.
    #[error("{message} (http {status}, {})", .code.as_str())]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable machine-readable code.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// No connection could be made, or the server did not answer in time.
    #[error(
        "cannot reach the ferry server at {url}: {}; is `ferry serve` running and is --server right?",
        root_cause(.source)
    )]
    Unreachable {
        /// The URL requested.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The connection broke while a request or answer was under way.
    #[error("the connection to {url} broke: {}; retry", root_cause(.source))]
    Transfer {
        /// The URL requested.
        url: String,
        /// The transport error.
        source: reqwest::Error,
    },
    /// The server's answer could not be understood.
    #[error("unexpected answer from {url}: {detail}; are the server and this client the same version?")]
    Decode {
        /// The URL requested.
        url: String,
        /// What was wrong with it.
        detail: String,
    },
    /// Downloaded content does not have the digest it was requested by.
    #[error(
        "downloaded content has sha256 {actual} but {expected} was requested; the file was removed, retry the download"
    )]
    Integrity {
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A local file could not be read or written.
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        /// What was being done: "read", "write", "open", ...
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The token or device credential cannot be sent.
    #[error("the credential is not usable: {reason}; check --token, the token file or FERRY_TOKEN")]
    InvalidCredential {
        /// What is wrong with it.
        reason: String,
    },
    /// The server URL is not usable.
    #[error("invalid server url {url:?}: {reason}; use e.g. http://127.0.0.1:8080")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status, for errors the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable error code, for errors the server answered.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// For a server that could not be reached: the URL tried and the innermost cause
    /// ("connection refused"), for a caller that words its own advice (the device agent names
    /// its `server_url` setting rather than `--server`).
    pub fn unreachable(&self) -> Option<(&str, String)> {
        match self {
            Self::Unreachable { url, source } => Some((url, root_cause(source))),
            _ => None,
        }
    }

    /// Builds the error for a non-success answer from its status and body text.
    pub fn from_response_body(status: u16, body: &str) -> Self {
        if let Ok(parsed) = serde_json::from_str::<ErrorBody>(body) {
            let message = printable(&parsed.error.message, MESSAGE_LIMIT);
            return Self::Api { status, code: parsed.error.code, message };
        }
        let message = if body.trim().is_empty() {
            format!("the server answered http {status} without an explanation")
        } else {
            format!(
                "the server answered http {status} with a body that is not a ferry error: {}",
                printable(body.trim(), RAW_BODY_LIMIT)
            )
        };
        Self::Api { status, code: ErrorCode::Internal, message }
    }

    /// Builds the error for a non-success answer to `HEAD`, which carries no body: the code is
    /// inferred from the status.
    pub fn from_bodiless_status(status: u16) -> Self {
        let code = match status {
            400 => ErrorCode::BadRequest,
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            409 => ErrorCode::Conflict,
            416 => ErrorCode::RangeNotSatisfiable,
            503 => ErrorCode::Unavailable,
            _ => ErrorCode::Internal,
        };
        let message = format!(
            "the server answered http {status} ({}) to a HEAD request, which carries no explanation",
            code.as_str().replace('_', " ")
        );
        Self::Api { status, code, message }
    }

    /// Classifies a transport error of reqwest.
    pub(crate) fn transport(url: &reqwest::Url, source: reqwest::Error) -> Self {
        let url = url.to_string();
        if source.is_connect() || source.is_timeout() {
            Self::Unreachable { url, source }
        } else if source.is_decode() {
            Self::Decode { url, detail: root_cause(&source) }
        } else {
            Self::Transfer { url, source }
        }
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { action, path: path.to_owned(), source }
    }
}

/// The innermost error's message: reqwest's own text ("error sending request") says less
/// than its cause ("connection refused").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// `s` fit for a terminal or a log line: control characters (escape sequences, newlines,
/// carriage returns that would overwrite what was printed) become spaces, and text beyond
/// `max_chars` characters is cut off with `…`.
pub(crate) fn printable(s: &str, max_chars: usize) -> String {
    let cut = truncate(s, max_chars);
    cut.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

fn truncate(s: &str, max_chars: usize) -> String {
    match s.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_parsed() {
        let e = ClientError::from_response_body(
            404,
            r#"{"error":{"code":"not_found","message":"product vpn does not exist"}}"#,
        );
        match &e {
            ClientError::Api { status, code, message } => {
                assert_eq!((*status, *code), (404, ErrorCode::NotFound));
                assert_eq!(message, "product vpn does not exist");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(e.to_string(), "product vpn does not exist (http 404, not_found)");
    }

    #[test]
    fn other_bodies_become_internal_with_truncated_text() {
        let html = format!("<html>{}</html>", "x".repeat(1000));
        let e = ClientError::from_response_body(502, &html);
        assert_eq!(e.code(), Some(ErrorCode::Internal));
        assert_eq!(e.status(), Some(502));
        let text = e.to_string();
        assert!(text.contains("not a ferry error: <html>xxx"), "{text}");
        assert!(text.len() < 400, "{text}");
    }

    #[test]
    fn empty_bodies_are_explained() {
        let e = ClientError::from_response_body(401, "");
        assert!(e.to_string().contains("answered http 401 without an explanation"), "{e}");
    }

    #[test]
    fn messages_are_cut_and_lose_control_characters() {
        let long = format!(r#"{{"error":{{"code":"conflict","message":"bad\u001b[2J\r{}"}}}}"#, "y".repeat(100_000));
        let e = ClientError::from_response_body(409, &long);
        let text = e.to_string();
        assert!(text.starts_with("bad [2J yyy"), "{text}");
        assert!(text.chars().count() < MESSAGE_LIMIT + 40, "{} characters", text.len());
        assert!(!text.chars().any(char::is_control), "{text:?}");
        let raw = ClientError::from_response_body(404, "<html>\u{1b}]0;owned\u{7}\n</html>");
        assert!(!raw.to_string().chars().any(char::is_control), "{raw}");
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("ab", 2), "ab");
    }
}
