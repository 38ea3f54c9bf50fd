//! Axum extractors whose rejections are [`ApiError`]s, so malformed input always gets the JSON
//! error body with a stable code.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::ApiError;

/// JSON body or response. A body is read only when its Content-Type is JSON as
/// [`is_json_media_type`] accepts it.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request.headers().get(CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)"));
        if !content_type.is_some_and(is_json_media_type) {
            return Err(ApiError::not_json(content_type));
        }
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        Ok(Self(value))
    }
}

/// Whether a Content-Type is `application/json`, alone or with the one parameter
/// `charset=utf-8` (names and values case-insensitive, the value may be quoted). Other `+json`
/// types, other charsets and other parameters are refused: the server would read them as
/// UTF-8 JSON all the same, and a client is better told at once. Since exactly one form is
/// accepted, a general media-type parser would add nothing.
pub fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.map(str::trim).filter(|p| !p.is_empty()).all(|param| {
            param.split_once('=').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("charset")
                    && value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
        })
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters, validated by their types' `Deserialize`.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// Query parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);
