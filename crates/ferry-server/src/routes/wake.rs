//! The wake-up channel: `check-now` for administrators and the long poll devices keep open
//! between check-ins (see `crate::wakeups`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use ferry_api::{CheckNow, WakeAnswer};
use ferry_core::{DeviceId, Role};
use serde::Deserialize;

use crate::auth::{require_accepted, Admin, DeviceAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;
use crate::wakeups::WaitEnd;

type S = State<Arc<AppState>>;

/// Asks a device's agent to check in now: it is woken within about a second if it is waiting
/// on any server sharing the database, or at its next wait within ten minutes.
#[utoipa::path(post, path = "/api/v1/devices/{id}/check-now", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = CheckNow), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn check_now(State(st): S, admin: Admin, Path(id): Path<DeviceId>) -> ApiResult<Json<CheckNow>> {
    admin.require(Role::Operator)?;
    if st.store.get_device(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("device {id} does not exist; `ferry device list` shows the ids")));
    }
    let now = st.clock.now();
    let woken = st.wakeups.wake(st.store.as_ref(), std::slice::from_ref(&id), now).await?;
    tracing::info!(device = %id, by = %admin.name, waiting_here = !woken.is_empty(), "check-now requested");
    Ok(Json(CheckNow { device: id, requested_at: now, woken: !woken.is_empty() }))
}

/// Options of `GET /device/v1/wait`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct WaitQuery {
    /// Longest to wait, in seconds; at most (and by default) the server's `wake.wait_secs`.
    pub timeout_secs: Option<u64>,
}

/// The device's long poll: answered `wake: true` as soon as an administrator asks the device
/// to check in (or at once, when that was asked before the wait), else `wake: false` when the
/// wait times out. Too many devices waiting, or a server shutting down, answer at once with
/// `retry_after_secs`.
#[utoipa::path(get, path = "/device/v1/wait", tag = "device", params(WaitQuery),
    responses((status = 200, body = WakeAnswer), (status = 401, body = ferry_api::ErrorBody),
        (status = 403, body = ferry_api::ErrorBody)))]
pub async fn wait(
    State(st): S,
    DeviceAuth { device, .. }: DeviceAuth,
    Query(q): Query<WaitQuery>,
) -> ApiResult<Json<WakeAnswer>> {
    require_accepted(&device, "wait for a wake-up")?;
    let limit = st.config.wake.wait_secs;
    let busy = WakeAnswer { wake: false, retry_after_secs: Some(limit) };
    let Some(waiter) = st.wakeups.register(&device.id) else {
        return Ok(Json(busy));
    };
    let timeout = Duration::from_secs(q.timeout_secs.unwrap_or(limit).clamp(1, limit));
    Ok(Json(match waiter.wait(st.store.as_ref(), timeout, || st.clock.now()).await? {
        WaitEnd::Woken => WakeAnswer { wake: true, retry_after_secs: None },
        WaitEnd::TimedOut => WakeAnswer { wake: false, retry_after_secs: None },
        WaitEnd::Closed => busy,
    }))
}
