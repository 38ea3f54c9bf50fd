//! Admin routes for groups and their enrollment keys.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ferry_api::{EnrollmentKey, GroupCreated, GroupSpec, GroupUpdate, GroupView, ENROLLMENT_KEY_PREFIX};
use ferry_core::{Group, GroupName, Role};

use crate::auth::{hash_secret, new_secret, Admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// Shortest and longest accepted check-in intervals: a minute to thirty days.
const INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 60..=30 * 24 * 3600;

fn view(g: Group) -> GroupView {
    GroupView {
        has_enrollment_key: g.enrollment_key_hash.is_some(),
        name: g.name,
        description: g.description,
        checkin_interval_secs: g.checkin_interval_secs,
        checkin_jitter: g.checkin_jitter,
        created_at: g.created_at,
        test: g.test,
    }
}

fn check_schedule(interval: Option<u64>, jitter: Option<f64>) -> ApiResult<()> {
    if let Some(i) = interval {
        if !INTERVAL_RANGE.contains(&i) {
            return Err(ApiError::bad_request(format!(
                "checkin_interval_secs is {i}; it must be between 60 (a minute) and 2592000 (30 days)"
            )));
        }
    }
    if let Some(j) = jitter {
        if !(0.0..=1.0).contains(&j) {
            return Err(ApiError::bad_request(format!("checkin_jitter is {j}; it must be between 0 and 1")));
        }
    }
    Ok(())
}

async fn load(st: &AppState, name: &GroupName) -> ApiResult<Group> {
    st.store.get_group(name).await?.ok_or_else(|| ApiError::not_found(format!("group {name} does not exist")))
}

#[utoipa::path(get, path = "/api/v1/groups", tag = "groups", responses((status = 200, body = [GroupView])))]
pub async fn list_groups(State(st): S, admin: Admin) -> ApiResult<Json<Vec<GroupView>>> {
    admin.require(Role::Viewer)?;
    Ok(Json(st.store.list_groups().await?.into_iter().map(view).collect()))
}

#[utoipa::path(post, path = "/api/v1/groups", tag = "groups", request_body = GroupSpec,
    responses((status = 201, body = GroupCreated), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn create_group(
    State(st): S,
    admin: Admin,
    Json(spec): Json<GroupSpec>,
) -> ApiResult<(StatusCode, Json<GroupCreated>)> {
    admin.require(Role::Admin)?;
    check_schedule(spec.checkin_interval_secs, spec.checkin_jitter)?;
    let key = new_secret(ENROLLMENT_KEY_PREFIX);
    let group = Group {
        name: spec.name,
        description: spec.description,
        checkin_interval_secs: spec.checkin_interval_secs.unwrap_or(st.config.checkin.interval_secs),
        checkin_jitter: spec.checkin_jitter.unwrap_or(st.config.checkin.jitter),
        enrollment_key_hash: Some(hash_secret(&key)),
        created_at: st.clock.now(),
        test: false,
    };
    st.store.create_group(&group).await?;
    Ok((StatusCode::CREATED, Json(GroupCreated { group: view(group), enrollment_key: key })))
}

#[utoipa::path(get, path = "/api/v1/groups/{name}", tag = "groups", params(("name" = String, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn get_group(State(st): S, admin: Admin, Path(name): Path<GroupName>) -> ApiResult<Json<GroupView>> {
    admin.require(Role::Viewer)?;
    Ok(Json(view(load(&st, &name).await?)))
}

#[utoipa::path(patch, path = "/api/v1/groups/{name}", tag = "groups", params(("name" = String, Path)),
    request_body = GroupUpdate, responses((status = 200, body = GroupView), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn update_group(
    State(st): S,
    admin: Admin,
    Path(name): Path<GroupName>,
    Json(update): Json<GroupUpdate>,
) -> ApiResult<Json<GroupView>> {
    admin.require(Role::Admin)?;
    check_schedule(update.checkin_interval_secs, update.checkin_jitter)?;
    let mut group = load(&st, &name).await?;
    if let Some(d) = update.description {
        group.description = d;
    }
    if let Some(i) = update.checkin_interval_secs {
        group.checkin_interval_secs = i;
    }
    if let Some(j) = update.checkin_jitter {
        group.checkin_jitter = j;
    }
    st.store.update_group(&group).await?;
    if let Some(test) = update.test {
        st.store.set_group_test(&name, test).await?;
        group.test = test;
    }
    Ok(Json(view(group)))
}

#[utoipa::path(post, path = "/api/v1/groups/{name}/enrollment-key", tag = "groups", params(("name" = String, Path)),
    responses((status = 200, body = EnrollmentKey), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn rotate_enrollment_key(
    State(st): S,
    admin: Admin,
    Path(name): Path<GroupName>,
) -> ApiResult<Json<EnrollmentKey>> {
    admin.require(Role::Admin)?;
    let mut group = load(&st, &name).await?;
    let key = new_secret(ENROLLMENT_KEY_PREFIX);
    group.enrollment_key_hash = Some(hash_secret(&key));
    st.store.update_group(&group).await?;
    tracing::info!(group = %name, by = %admin.name, "enrollment key rotated");
    Ok(Json(EnrollmentKey { group: name, enrollment_key: key }))
}
