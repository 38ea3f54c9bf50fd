//! The HTTP routes. Handlers are thin: validate, call the store and the core, map errors.

pub mod catalogue;
pub mod device;
pub mod devices;
pub mod download;
pub mod groups;
pub mod health;
pub mod tokens;
pub mod trust;

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
        .route("/releases/{id}/approvals", get(catalogue::release_approvals))
        .route("/releases/{id}/approvals/{group}", put(catalogue::set_approval).delete(catalogue::delete_approval))
        .route("/approvals", get(catalogue::list_approvals))
        .route("/groups", get(groups::list_groups).post(groups::create_group))
        .route("/groups/{name}", get(groups::get_group).patch(groups::update_group))
        .route("/groups/{name}/enrollment-key", post(groups::rotate_enrollment_key))
        .route("/devices", get(devices::list_devices).post(devices::preauthorize))
        .route("/devices/{id}", get(devices::get_device))
        .route("/devices/{id}/accept", post(devices::accept))
        .route("/devices/{id}/reject", post(devices::reject))
        .route("/devices/{id}/groups", put(devices::set_groups))
        .route("/devices/{id}/events", get(devices::events))
        .route("/devices/{id}/applicability", get(devices::applicability))
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
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
