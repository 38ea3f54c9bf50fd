//! Admin routes for devices: listing, detail, pre-authorisation, acceptance, groups, events.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ferry_api::{
    ApplicabilityReport, DeviceDetail, DeviceGroups, PreauthorizeSpec, PreauthorizedDevice,
    DEVICE_ENROLLMENT_KEY_PREFIX,
};
use ferry_core::{Device, DeviceId, DeviceStatus, Event, GroupName, ReleaseId, Role};
use ferry_store::DeviceFilter;
use serde::Deserialize;

use crate::auth::{hash_secret, new_secret, Admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::membership::effective_groups;
use crate::offers;
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// How many recent events `GET /devices/{id}` includes.
const DETAIL_EVENTS: u32 = 50;

async fn load(st: &AppState, id: &DeviceId) -> ApiResult<Device> {
    st.store.get_device(id).await?.ok_or_else(|| ApiError::not_found(format!("device {id} does not exist")))
}

/// Filter of `GET /devices`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DeviceQuery {
    /// Only devices in this status.
    pub status: Option<DeviceStatus>,
    /// Only members of this group.
    pub group: Option<GroupName>,
    /// Only devices whose identity is claimed by more than one machine.
    #[serde(default)]
    pub conflicts: bool,
    /// Only ids after this one (pagination).
    pub after: Option<DeviceId>,
    /// At most this many (default and maximum 1000).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/devices", tag = "devices", params(DeviceQuery),
    responses((status = 200, body = [Device])))]
pub async fn list_devices(State(st): S, admin: Admin, Query(q): Query<DeviceQuery>) -> ApiResult<Json<Vec<Device>>> {
    admin.require(Role::Viewer)?;
    let filter = DeviceFilter {
        status: q.status,
        group: q.group,
        conflicts_only: q.conflicts,
        after: q.after,
        limit: q.limit.unwrap_or(1000).min(1000),
    };
    Ok(Json(st.store.list_devices(&filter).await?))
}

/// Pre-authorises an id and issues the key only its device may enroll with: knowing the id
/// is not enough to take it. Asked again while the device has not enrolled, it issues a new
/// key (the old one stops working) and replaces the groups.
#[utoipa::path(post, path = "/api/v1/devices", tag = "devices", request_body = PreauthorizeSpec,
    responses((status = 201, body = PreauthorizedDevice), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn preauthorize(
    State(st): S,
    admin: Admin,
    Json(spec): Json<PreauthorizeSpec>,
) -> ApiResult<(StatusCode, Json<PreauthorizedDevice>)> {
    admin.require(Role::Operator)?;
    refuse_dynamic(&st, &spec.groups).await?;
    let enrollment_key = new_secret(DEVICE_ENROLLMENT_KEY_PREFIX);
    let device =
        st.store.preauthorize_device(&spec.id, &spec.groups, &hash_secret(&enrollment_key), st.clock.now()).await?;
    tracing::info!(device = %spec.id, by = %admin.name, "device pre-authorised");
    Ok((StatusCode::CREATED, Json(PreauthorizedDevice { device, enrollment_key })))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = DeviceDetail), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn get_device(State(st): S, admin: Admin, Path(id): Path<DeviceId>) -> ApiResult<Json<DeviceDetail>> {
    admin.require(Role::Viewer)?;
    let device = load(&st, &id).await?;
    let releases = st.store.device_release_states(&id).await?;
    let events = st.store.list_events(&id, None, DETAIL_EVENTS).await?;
    let effective_groups = effective_groups(&st, &device).await?;
    Ok(Json(DeviceDetail { device, releases, events, effective_groups }))
}

async fn set_status(st: &AppState, admin: &Admin, id: &DeviceId, status: DeviceStatus) -> ApiResult<Json<Device>> {
    admin.require(Role::Operator)?;
    let device = load(st, id).await?;
    if device.status == DeviceStatus::Preauthorized {
        return Err(ApiError::conflict(format!(
            "device {id} is pre-authorised and has not enrolled yet; it is accepted when it enrolls"
        )));
    }
    st.store.set_device_status(id, status).await?;
    tracing::info!(device = %id, status = status.as_str(), by = %admin.name, "device status changed");
    Ok(Json(load(st, id).await?))
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/accept", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = Device), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn accept(State(st): S, admin: Admin, Path(id): Path<DeviceId>) -> ApiResult<Json<Device>> {
    set_status(&st, &admin, &id, DeviceStatus::Accepted).await
}

#[utoipa::path(post, path = "/api/v1/devices/{id}/reject", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = Device), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn reject(State(st): S, admin: Admin, Path(id): Path<DeviceId>) -> ApiResult<Json<Device>> {
    set_status(&st, &admin, &id, DeviceStatus::Rejected).await
}

#[utoipa::path(put, path = "/api/v1/devices/{id}/groups", tag = "devices", params(("id" = String, Path)),
    request_body = DeviceGroups, responses((status = 200, body = Device), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn set_groups(
    State(st): S,
    admin: Admin,
    Path(id): Path<DeviceId>,
    Json(body): Json<DeviceGroups>,
) -> ApiResult<Json<Device>> {
    admin.require(Role::Operator)?;
    if body.groups.len() > 64 {
        return Err(ApiError::bad_request("a device can be in at most 64 groups"));
    }
    refuse_dynamic(&st, &body.groups).await?;
    st.store.set_device_groups(&id, &body.groups).await?;
    Ok(Json(load(&st, &id).await?))
}

/// Refuses to make a device a static member of a dynamic group: its filter alone decides.
async fn refuse_dynamic(st: &AppState, groups: &[GroupName]) -> ApiResult<()> {
    for name in groups {
        if let Some(filter) = st.store.get_group(name).await?.and_then(|g| g.filter) {
            return Err(ApiError::conflict(format!(
                "group {name} is dynamic (filter: {filter}); its members are the devices the filter matches, \
                 so devices cannot be put in it: change the filter, or use a static group"
            )));
        }
    }
    Ok(())
}

/// Filter of `GET /devices/{id}/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventQuery {
    /// Only events of this release.
    pub release: Option<i64>,
    /// At most this many (default 100, maximum 1000).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/events", tag = "devices", params(("id" = String, Path), EventQuery),
    responses((status = 200, body = [Event]), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn events(
    State(st): S,
    admin: Admin,
    Path(id): Path<DeviceId>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<Vec<Event>>> {
    admin.require(Role::Viewer)?;
    load(&st, &id).await?;
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(Json(st.store.list_events(&id, q.release.map(ReleaseId), limit).await?))
}

#[utoipa::path(get, path = "/api/v1/devices/{id}/applicability", tag = "devices", params(("id" = String, Path)),
    responses((status = 200, body = ApplicabilityReport), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn applicability(
    State(st): S,
    admin: Admin,
    Path(id): Path<DeviceId>,
) -> ApiResult<Json<ApplicabilityReport>> {
    admin.require(Role::Viewer)?;
    let device = load(&st, &id).await?;
    let (eval, awaiting_signature) = offers::explain(&st, &device).await?;
    let groups = effective_groups(&st, &device).await?;
    Ok(Json(ApplicabilityReport {
        device: id,
        groups,
        decisions: eval.decisions,
        awaiting_signature,
        test: eval.test,
        pilot: eval.pilot,
    }))
}
