//! Liveness and readiness.

use std::sync::Arc;

use axum::extract::State;
use ferry_api::{ErrorCode, Health};

use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;

#[utoipa::path(get, path = "/livez", tag = "health", responses((status = 200, body = Health)))]
pub async fn livez() -> Json<Health> {
    Json(Health { status: "ok".into() })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = ferry_api::ErrorBody)))]
pub async fn readyz(State(st): State<Arc<AppState>>) -> ApiResult<Json<Health>> {
    match st.store.ping().await {
        Ok(()) => Ok(Json(Health { status: "ok".into() })),
        Err(e) => Err(ApiError::new(ErrorCode::Unavailable, format!("the database is unavailable: {e}"))),
    }
}
