//! Content download for devices, with conditional and range requests as RFC 9110 describes
//! (sections 13 and 14): strong `ETag` = the quoted sha256, `If-None-Match` → 304, a single
//! byte range → 206, `If-Range` that does not match → the whole content, no satisfiable range
//! → 416 with `Content-Range: bytes */LENGTH`. Several ranges are answered with the whole
//! content, which the RFC allows. The body streams from the content store.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;
use ferry_api::ErrorCode;
use ferry_core::Sha256;

use crate::auth::DeviceAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::offers;
use crate::state::AppState;

/// What a `Range` header asks of content of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// Send everything (no range, an invalid header, or several ranges).
    Full,
    /// Send bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// No requested range overlaps the content.
    Unsatisfiable,
}

/// Interprets a `Range` header value for content of `len` bytes (RFC 9110 §14.1.2).
pub fn answer_range(value: &str, len: u64) -> RangeAnswer {
    let Some((unit, set)) = value.split_once('=') else { return RangeAnswer::Full };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Full;
    }
    let mut satisfiable = Vec::new();
    for spec in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((first, last)) = spec.split_once('-') else { return RangeAnswer::Full };
        let num =
            |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten();
        match (first.is_empty(), num(first), num(last)) {
            // suffix-range: the last N bytes
            (true, _, Some(n)) => {
                if n > 0 && len > 0 {
                    satisfiable.push((len.saturating_sub(n), len - 1));
                }
            }
            // int-range: first-last or first-
            (false, Some(f), l) => {
                if !last.is_empty() && l.is_none() {
                    return RangeAnswer::Full;
                }
                if l.is_some_and(|l| l < f) {
                    return RangeAnswer::Full; // invalid spec: ignore the header
                }
                if f < len {
                    satisfiable.push((f, l.map_or(len - 1, |l| l.min(len - 1))));
                }
            }
            _ => return RangeAnswer::Full,
        }
    }
    match satisfiable.as_slice() {
        [] => RangeAnswer::Unsatisfiable,
        [(start, end)] => RangeAnswer::Partial { start: *start, end: *end },
        _ => RangeAnswer::Full,
    }
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag)
}

#[utoipa::path(get, path = "/device/v1/content/{sha256}", tag = "device", params(("sha256" = String, Path)),
    responses((status = 200, description = "the content"), (status = 206, description = "the requested range"),
        (status = 304), (status = 403, body = ferry_api::ErrorBody), (status = 416, body = ferry_api::ErrorBody)))]
pub async fn download(
    State(st): State<Arc<AppState>>,
    DeviceAuth { device, .. }: DeviceAuth,
    method: Method,
    Path(sha): Path<Sha256>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let eval = offers::evaluate(&st, &device).await?;
    let entitled = eval.offered().iter().any(|(r, _)| r.artifacts.iter().any(|a| a.sha256 == sha));
    if !entitled {
        return Err(ApiError::new(
            ErrorCode::NotEntitled,
            format!("no release offered to this device contains content {sha}"),
        ));
    }
    serve_content(&st, &method, &sha, &headers).await
}

/// Answers a GET or HEAD for content the caller is entitled to, honouring conditional and
/// range headers.
pub async fn serve_content(st: &AppState, method: &Method, sha: &Sha256, headers: &HeaderMap) -> ApiResult<Response> {
    let len = st.content.len(sha).await?.ok_or_else(|| ApiError::not_found(format!("no content with sha256 {sha}")))?;
    let etag = format!("\"{sha}\"");
    let header_str = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());

    let mut resp = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CACHE_CONTROL, "private, max-age=31536000, immutable");
    if header_str(header::IF_NONE_MATCH).is_some_and(|l| etag_matches(l, &etag)) {
        return resp.status(StatusCode::NOT_MODIFIED).body(Body::empty()).map_err(ApiError::internal);
    }
    // If-Range with an entity tag must match strongly; a date never matches (no Last-Modified).
    let range_applies = header_str(header::IF_RANGE).is_none_or(|v| v == etag);
    let answer = match header_str(header::RANGE) {
        Some(r) if range_applies => answer_range(r, len),
        _ => RangeAnswer::Full,
    };
    let (status, start, count) = match answer {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial { start, end } => {
            resp = resp.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => return Err(ApiError::range_not_satisfiable(len)),
    };
    resp = resp
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, count);
    let body = if method == Method::HEAD || count == 0 {
        Body::empty()
    } else {
        Body::from_stream(st.content.read_range(sha, start, count).await?)
    };
    resp.body(body).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    #[test]
    fn single_ranges() {
        assert_eq!(answer_range("bytes=0-99", 1000), Partial { start: 0, end: 99 });
        assert_eq!(answer_range("bytes=500-", 1000), Partial { start: 500, end: 999 });
        assert_eq!(answer_range("bytes=900-5000", 1000), Partial { start: 900, end: 999 });
        assert_eq!(answer_range("bytes=-100", 1000), Partial { start: 900, end: 999 });
        assert_eq!(answer_range("BYTES=0-0", 1), Partial { start: 0, end: 0 });
    }

    #[test]
    fn a_suffix_longer_than_the_content_means_all_of_it() {
        assert_eq!(answer_range("bytes=-5000", 1000), Partial { start: 0, end: 999 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(answer_range("bytes=1000-", 1000), Unsatisfiable);
        assert_eq!(answer_range("bytes=2000-3000", 1000), Unsatisfiable);
        assert_eq!(answer_range("bytes=-0", 1000), Unsatisfiable);
        assert_eq!(answer_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(answer_range("bytes=-5", 0), Unsatisfiable);
    }

    #[test]
    fn invalid_headers_are_ignored() {
        for h in ["bytes=5-1", "bytes=a-b", "items=0-1", "bytes", "bytes=1-2-3", "bytes=--1", "bytes=0-x"] {
            assert_eq!(answer_range(h, 1000), Full, "{h}");
        }
    }

    #[test]
    fn several_ranges_get_the_whole_content() {
        assert_eq!(answer_range("bytes=0-1, 5-6", 1000), Full);
        // An unsatisfiable part of a set is dropped.
        assert_eq!(answer_range("bytes=0-1, 5000-6000", 1000), Partial { start: 0, end: 1 });
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }
}
