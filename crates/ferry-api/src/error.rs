//! The error body of every failed request.

use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A stable, machine-readable error code. New codes may be added; existing ones keep meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed in a way no more specific code covers.
    BadRequest,
    /// The body is not valid JSON or does not match the expected shape.
    InvalidJson,
    /// The body is not sent as `application/json` where JSON is expected.
    UnsupportedMediaType,
    /// A name, version or digest failed validation.
    InvalidName,
    /// The body exceeds the configured limit.
    PayloadTooLarge,
    /// The request's header fields are too many or too large.
    HeadersTooLarge,
    /// The route exists but does not accept this method (the `Allow` header lists those it does).
    MethodNotAllowed,
    /// An upload needs a `Content-Length` header.
    LengthRequired,
    /// The uploaded body's size differs from the declared size.
    SizeMismatch,
    /// The uploaded body's SHA-256 differs from the expected one.
    HashMismatch,
    /// No credential, or an unknown or revoked one.
    Unauthorized,
    /// A device credential on an admin route, or an admin token on a device route.
    WrongCredentialKind,
    /// The token's role does not allow this action.
    Forbidden,
    /// The device is not allowed to download this content.
    NotEntitled,
    /// The addressed thing does not exist.
    NotFound,
    /// The change clashes with existing state.
    Conflict,
    /// An event arrived out of order.
    OutOfOrder,
    /// The requested byte range lies outside the content.
    RangeNotSatisfiable,
    /// The device was rejected by an administrator.
    DeviceRejected,
    /// Too many requests of this kind; retry after the `Retry-After` header's seconds.
    RateLimited,
    /// Signed metadata failed verification or breaks the repository's rules.
    InvalidMetadata,
    /// The server's storage is unavailable, or it has too many connections open.
    Unavailable,
    /// The request body stopped arriving before it was complete.
    RequestTimeout,
    /// A bug or unexpected failure on the server.
    Internal,
}

impl ErrorCode {
    /// The snake-case name, as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidJson => "invalid_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidName => "invalid_name",
            Self::PayloadTooLarge => "payload_too_large",
            Self::HeadersTooLarge => "headers_too_large",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::LengthRequired => "length_required",
            Self::SizeMismatch => "size_mismatch",
            Self::HashMismatch => "hash_mismatch",
            Self::Unauthorized => "unauthorized",
            Self::WrongCredentialKind => "wrong_credential_kind",
            Self::Forbidden => "forbidden",
            Self::NotEntitled => "not_entitled",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::OutOfOrder => "out_of_order",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::DeviceRejected => "device_rejected",
            Self::RateLimited => "rate_limited",
            Self::InvalidMetadata => "invalid_metadata",
            Self::Unavailable => "unavailable",
            Self::RequestTimeout => "request_timeout",
            Self::Internal => "internal",
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorDetail {
    /// Stable code for programs.
    pub code: ErrorCode,
    /// Explanation for people: what is wrong and what to do.
    pub message: String,
}
