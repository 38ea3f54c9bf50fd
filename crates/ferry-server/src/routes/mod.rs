//! The HTTP routes. Handlers are thin: validate, call the store and the core, map errors.

pub mod catalogue;
pub mod device;
pub mod devices;
pub mod download;
pub mod groups;
pub mod health;
pub mod pilot;
pub mod rollouts;
pub mod tokens;
pub mod trust;
pub mod wake;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, head, post, put};
use axum::Router;
use ferry_api::{ADMIN_PREFIX, DEVICE_PREFIX};

use crate::error::ApiError;
use crate::state::AppState;

/// Admin requests that may change the catalogue, groups or approvals drop the check-in cache
/// once they have been handled.
async fn invalidate_after_writes(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let writes = !matches!(*request.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    let response = next.run(request).await;
    if writes {
        state.catalogue.invalidate();
    }
    response
}

/// Most header fields a request may carry. hyper refuses more than 100 itself, with a bare 431
/// before any route runs; below that, this limit answers with the JSON error body.
pub const MAX_HEADER_FIELDS: usize = 64;
/// Most bytes a request's header fields may take (names, values, `": "` and line ends), as in
/// common proxies (nginx: 4 × 8 KiB). hyper's own limit, a far larger read buffer, answers a
/// bare 431 only beyond it.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Keeps every error answer in the API's shape: refuses oversized request heads with 431 and
/// the JSON error body, and gives that body to any 4xx/5xx answer a layer below the handlers
/// produced without one (axum's 405 with its `Allow` header, a body limit's 413), keeping the
/// answer's status and headers.
async fn json_errors(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
    use axum::response::IntoResponse as _;

    let headers = request.headers();
    let bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum();
    if headers.len() > MAX_HEADER_FIELDS || bytes > MAX_HEADER_BYTES {
        return ApiError::headers_too_large(headers.len(), bytes, MAX_HEADER_FIELDS, MAX_HEADER_BYTES).into_response();
    }
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || response.headers().contains_key(CONTENT_TYPE) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let (json, body) = ApiError::for_bare_status(status, &method).into_response().into_parts();
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.extend(json.headers);
    axum::response::Response::from_parts(parts, body)
}

/// Builds the whole router.
pub fn router(state: Arc<AppState>) -> Router {
    let json_limit = state.config.limits.json_body_bytes;
    let admin = Router::new()
        .route("/whoami", get(tokens::whoami))
        .route("/openapi.json", get(crate::openapi::serve_document))
        .route("/products", get(catalogue::list_products).post(catalogue::create_product))
        .route("/products/{name}", get(catalogue::get_product))
        .route("/platforms", get(catalogue::list_platforms).post(catalogue::create_platform))
        .route("/platforms/{name}", get(catalogue::get_platform))
        // Uploads stream to disk and enforce limits.artifact_bytes themselves.
        .route("/content", post(catalogue::upload_content).layer(DefaultBodyLimit::disable()))
        .route("/content/{sha256}", head(catalogue::head_content))
        .route("/releases", get(catalogue::list_releases).post(catalogue::create_release))
        .route(
            "/releases/{id}",
            get(catalogue::get_release).patch(catalogue::update_release).delete(catalogue::delete_release),
        )
        .route("/releases/{id}/mark-bad", post(catalogue::mark_release_bad))
        .route("/releases/{id}/approvals", get(catalogue::release_approvals))
        .route("/releases/{id}/test-results", get(pilot::test_results))
        .route("/releases/{id}/approvals/{group}", put(catalogue::set_approval).delete(catalogue::delete_approval))
        .route("/approvals", get(catalogue::list_approvals))
        .route("/rollouts", get(rollouts::list_rollouts).post(rollouts::create_rollout))
        .route("/rollouts/{id}", get(rollouts::get_rollout))
        .route("/rollouts/{id}/{action}", post(rollouts::act))
        .route("/groups", get(groups::list_groups).post(groups::create_group))
        .route("/groups/preview", post(groups::preview))
        .route("/groups/{name}", get(groups::get_group).patch(groups::update_group))
        .route("/groups/{name}/enrollment-key", post(groups::rotate_enrollment_key))
        .route("/devices", get(devices::list_devices).post(devices::preauthorize))
        .route("/devices/{id}", get(devices::get_device))
        .route("/devices/{id}/accept", post(devices::accept))
        .route("/devices/{id}/reject", post(devices::reject))
        .route("/devices/{id}/groups", put(devices::set_groups))
        .route("/devices/{id}/events", get(devices::events))
        .route("/devices/{id}/applicability", get(devices::applicability))
        .route("/devices/{id}/test", put(pilot::set_test))
        .route("/devices/{id}/check-now", post(wake::check_now))
        .route("/tokens", get(tokens::list_tokens).post(tokens::create_token))
        .route("/tokens/{id}", axum::routing::delete(tokens::revoke_token))
        .route("/trust/online-keys", get(trust::online_keys))
        .route("/trust/image/online-keys/next", post(trust::next_online_keys))
        .route("/trust/director/rotate", post(trust::rotate_director))
        .route("/trust/image/root", put(trust::push_root))
        .route("/trust/image/targets", put(trust::push_targets))
        .route("/trust/image/roles/{role}", put(trust::push_delegated))
        .route("/trust/image/draft", get(trust::draft))
        .route("/trust/image/status", get(trust::status))
        .layer(axum::middleware::from_fn_with_state(state.clone(), invalidate_after_writes));
    let device = Router::new()
        .route("/enroll", post(device::enroll))
        .route("/checkin", post(device::checkin))
        .route("/events", post(device::events))
        .route("/wait", get(wake::wait))
        .route("/content/{sha256}", get(download::download));
    Router::new()
        .route("/livez", get(health::livez))
        .route("/readyz", get(health::readyz))
        .nest(ADMIN_PREFIX, admin)
        .nest(DEVICE_PREFIX, device)
        .route("/tuf/image/{file}", get(trust::image_metadata))
        .route("/tuf/image/targets/{*path}", get(trust::image_target))
        .route("/tuf/director/{file}", get(trust::director_metadata))
        .fallback(|| async {
            ApiError::not_found("no such route; the admin API is under /api/v1 (see /api/v1/openapi.json)")
        })
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn(json_errors))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
