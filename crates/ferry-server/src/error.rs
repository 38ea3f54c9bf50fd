//! The API's error type and its HTTP mapping. This is the only place that knows status codes
//! for errors.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ferry_api::{ErrorBody, ErrorCode, ErrorDetail};
use ferry_content::ContentError;
use ferry_store::StoreError;

use crate::trust::TrustError;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: ErrorCode,
    /// Human message.
    pub message: String,
    /// Seconds to wait before retrying, sent as `Retry-After` (with 429).
    pub retry_after: Option<u64>,
    /// The content's full length, sent as `Content-Range: bytes */LEN` (with 416).
    pub content_length: Option<u64>,
}

/// Result of an API handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// The HTTP status of every error code: each code has exactly one, decided here and nowhere
/// else (no wildcard: a new code must be given its status).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::InvalidJson
        | ErrorCode::InvalidName
        | ErrorCode::SizeMismatch
        | ErrorCode::HashMismatch
        | ErrorCode::InvalidMetadata => StatusCode::BAD_REQUEST,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::LengthRequired => StatusCode::LENGTH_REQUIRED,
        ErrorCode::Unauthorized | ErrorCode::WrongCredentialKind => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden | ErrorCode::NotEntitled | ErrorCode::DeviceRejected => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict | ErrorCode::OutOfOrder => StatusCode::CONFLICT,
        ErrorCode::RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with `code`, answered with the code's status ([`status_of`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status: status_of(code), code, message: message.into(), retry_after: None, content_length: None }
    }

    /// An error with the status a layer below the handlers already chose.
    fn with_status(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None, content_length: None }
    }

    /// 429 with code `rate_limited` and `Retry-After: secs` (at least 1).
    pub fn rate_limited(secs: u64, message: impl Into<String>) -> Self {
        let secs = secs.max(1);
        Self { retry_after: Some(secs), ..Self::new(ErrorCode::RateLimited, message) }
    }

    /// 400 with code `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// 400 with code `invalid_name`.
    pub fn invalid_name(message: impl ToString) -> Self {
        Self::new(ErrorCode::InvalidName, message.to_string())
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    /// 409 with code `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// 408 with code `request_timeout`: the request body sent nothing for `secs` seconds.
    pub fn body_timeout(secs: u64) -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body sent nothing for {secs} seconds (connections.body_timeout_secs); \
                 the request was cut, send it again"
            ),
        )
    }

    /// 415 with code `invalid_json`: the body is not declared as JSON the way the API reads it.
    pub fn not_json(content_type: Option<&str>) -> Self {
        let got = match content_type {
            Some(t) => format!("got Content-Type: {t}"),
            None => "got no Content-Type".to_owned(),
        };
        Self::new(
            ErrorCode::UnsupportedMediaType,
            format!("send the body as JSON with Content-Type: application/json (optionally with charset=utf-8); {got}"),
        )
    }

    /// 431 with code `headers_too_large`.
    pub fn headers_too_large(fields: usize, bytes: usize, max_fields: usize, max_bytes: usize) -> Self {
        Self::new(
            ErrorCode::HeadersTooLarge,
            format!(
                "the request has {fields} header fields in {bytes} bytes; the server accepts at most \
                 {max_fields} fields and {max_bytes} bytes: send fewer or shorter headers"
            ),
        )
    }

    /// 503 with code `unavailable`: the connection is one of the reserve, beyond
    /// `connections.max`.
    pub fn too_many_connections() -> Self {
        Self::new(ErrorCode::Unavailable, "the server has too many connections open (connections.max); retry later")
    }

    /// The error body for an answer that some layer below the handlers (the router, an
    /// extractor, a limit) gave with a status and no body, so that it too says what went wrong.
    pub fn for_bare_status(status: StatusCode, method: &axum::http::Method) -> Self {
        let (code, message) = match status {
            StatusCode::METHOD_NOT_ALLOWED => (
                ErrorCode::MethodNotAllowed,
                format!("this route does not accept {method}; the Allow header lists the methods it does"),
            ),
            StatusCode::NOT_FOUND => (ErrorCode::NotFound, "no such route or resource".to_owned()),
            StatusCode::PAYLOAD_TOO_LARGE => (ErrorCode::PayloadTooLarge, "the request body is too large".to_owned()),
            StatusCode::LENGTH_REQUIRED => {
                (ErrorCode::LengthRequired, "send the request body with a Content-Length header".to_owned())
            }
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
                (ErrorCode::HeadersTooLarge, "the request's header fields are too large".to_owned())
            }
            s if s.is_server_error() => {
                (ErrorCode::Internal, "internal server error; the server log has the details".to_owned())
            }
            s => (ErrorCode::BadRequest, format!("the request was refused ({s})")),
        };
        Self::with_status(status, code, message)
    }

    /// A byte range that lies outside content of `len` bytes.
    pub fn range_not_satisfiable(len: u64) -> Self {
        Self {
            content_length: Some(len),
            ..Self::new(
                ErrorCode::RangeNotSatisfiable,
                format!("the requested range is outside the content, which is {len} bytes"),
            )
        }
    }

    /// 500 with code `internal`; the detail is logged, not shown.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(ErrorCode::Internal, "internal server error; the server log has the details")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        if let Some(len) = self.content_length {
            if let Ok(value) = axum::http::HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(axum::http::header::CONTENT_RANGE, value);
            }
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::Conflict(m) => Self::conflict(m),
            StoreError::IdentityConflict(id) => Self::conflict(format!(
                "device id {id} is already enrolled by another machine; if this machine was re-imaged or cloned, \
                 give it a unique id, or ask an administrator to remove the old device"
            )),
            StoreError::OutOfOrder(m) => Self::new(ErrorCode::OutOfOrder, m),
            StoreError::Backend(m) => {
                tracing::error!(error = %m, "database error");
                Self::new(ErrorCode::Unavailable, "the database is unavailable; retry later")
            }
            StoreError::Corrupt(m) => Self::internal(format!("corrupt stored data: {m}")),
            // Only enrollment refuses a claim; the answer says how to prove one.
            StoreError::Refused(_) => Self::new(
                ErrorCode::Unauthorized,
                "the enrollment key is not valid for this device id; use a group's current enrollment key, or the \
                 key issued when this id was pre-authorised (ask an administrator)",
            ),
        }
    }
}

impl From<ContentError> for ApiError {
    fn from(e: ContentError) -> Self {
        match e {
            ContentError::SizeMismatch { .. } => Self::new(ErrorCode::SizeMismatch, e.to_string()),
            ContentError::HashMismatch { .. } => Self::new(ErrorCode::HashMismatch, e.to_string()),
            ContentError::NotFound(_) => Self::not_found(e.to_string()),
            ContentError::Body(_) => Self::bad_request(e.to_string()),
            ContentError::Io { .. } => Self::internal(e),
        }
    }
}

impl From<TrustError> for ApiError {
    fn from(e: TrustError) -> Self {
        let code = match &e {
            TrustError::Refused { .. } | TrustError::OutsideDelegation { .. } => ErrorCode::InvalidMetadata,
            TrustError::NoRoot
            | TrustError::NoTopLevelTargets { .. }
            | TrustError::NotDelegated { .. }
            | TrustError::PublishRaced { .. }
            | TrustError::RotationRaced { .. } => ErrorCode::Conflict,
            TrustError::NotEntitled { .. } => ErrorCode::NotEntitled,
            TrustError::PerDevice => ErrorCode::Forbidden,
        };
        Self::new(code, e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::BytesRejection(_) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(ErrorCode::PayloadTooLarge, "the request body exceeds limits.json_body_bytes")
            }
            JsonRejection::MissingJsonContentType(_) => Self::not_json(None),
            other => Self::new(ErrorCode::InvalidJson, lower_first(&other.body_text())),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::invalid_name(lower_first(&r.body_text()))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request(lower_first(&r.body_text()))
    }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;

    /// An answer a lower layer gave with a bare status keeps that status, and where the status
    /// has a code of its own the code's status is the same one.
    #[test]
    fn bare_statuses_agree_with_their_codes() {
        for status in [
            StatusCode::METHOD_NOT_ALLOWED,
            StatusCode::NOT_FOUND,
            StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::LENGTH_REQUIRED,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            StatusCode::INTERNAL_SERVER_ERROR,
        ] {
            let e = ApiError::for_bare_status(status, &axum::http::Method::GET);
            assert_eq!(e.status, status);
            assert_eq!(status_of(e.code), status, "{:?}", e.code);
        }
        let odd = ApiError::for_bare_status(StatusCode::IM_A_TEAPOT, &axum::http::Method::GET);
        assert_eq!(odd.status, StatusCode::IM_A_TEAPOT, "an unmapped status is kept");
    }

    #[test]
    fn a_range_outside_the_content_names_its_length() {
        let response = ApiError::range_not_satisfiable(10).into_response();
        assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(response.headers()[axum::http::header::CONTENT_RANGE], "bytes */10");
    }
}
