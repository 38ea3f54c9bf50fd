//! Liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ferry_api::Health;

use crate::extract::Json;
use crate::state::AppState;

#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, body = Health)))]
pub async fn livez() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(st): State<Arc<AppState>>) -> (StatusCode, Json<Health>) {
    match st.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(Health { status: "ok".into() })),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, Json(Health { status: format!("database unavailable: {e}") })),
    }
}
