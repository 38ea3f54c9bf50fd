//! Admin routes for test devices (a pilot ring): marking a device as one, and how a release
//! went on the test devices that reported on it.

use std::sync::Arc;

use axum::extract::State;
use ferry_api::{DeviceTest, StateCount, TestDeviceResult, TestResults};
use ferry_core::{Device, DeviceId, DeviceState, ReleaseId, Role};

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// Marks a device as a test device, or not. A test device is also offered every signed
/// release no group of its approves or declines.
#[utoipa::path(put, path = "/api/v1/devices/{id}/test", tag = "devices", params(("id" = String, Path)),
    request_body = DeviceTest, responses((status = 200, body = Device), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn set_test(
    State(st): S,
    admin: Admin,
    Path(id): Path<DeviceId>,
    Json(body): Json<DeviceTest>,
) -> ApiResult<Json<Device>> {
    admin.require(Role::Operator)?;
    st.store.set_device_test(&id, body.test).await?;
    tracing::info!(device = %id, test = body.test, by = %admin.name, "device test flag changed");
    let device = st.store.get_device(&id).await?;
    Ok(Json(device.ok_or_else(|| ApiError::not_found(format!("device {id} does not exist")))?))
}

/// The latest state of a release on each test device that reported on it, and how many are
/// in each state.
#[utoipa::path(get, path = "/api/v1/releases/{id}/test-results", tag = "catalogue", params(("id" = i64, Path)),
    responses((status = 200, body = TestResults), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn test_results(State(st): S, admin: Admin, Path(id): Path<i64>) -> ApiResult<Json<TestResults>> {
    admin.require(Role::Viewer)?;
    let release = ReleaseId(id);
    if st.store.get_release(release).await?.is_none() {
        return Err(ApiError::not_found(format!("release {id} does not exist; `ferry release list` shows the ids")));
    }
    let states = st.store.release_test_states(release).await?;
    let counts = DeviceState::ALL
        .into_iter()
        .filter_map(|state| {
            let devices = states.iter().filter(|(_, s)| s.state == state).count() as u64;
            (devices > 0).then_some(StateCount { state, devices })
        })
        .collect();
    let devices = states
        .into_iter()
        .map(|(device, s)| TestDeviceResult {
            device,
            state: s.state,
            error_code: s.error_code,
            updated_at: s.updated_at,
        })
        .collect();
    Ok(Json(TestResults { release, counts, devices }))
}
