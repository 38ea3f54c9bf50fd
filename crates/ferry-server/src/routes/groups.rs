//! Admin routes for groups: static and dynamic (a filter), their place in the group tree
//! (a parent), their enrollment keys, and the preview of a filter.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ferry_api::{
    EnrollmentKey, FilterPreview, FilterPreviewSpec, GroupCreated, GroupSpec, GroupUpdate, GroupView,
    ENROLLMENT_KEY_PREFIX,
};
use ferry_core::filter::Filter;
use ferry_core::groups::check_parent;
use ferry_core::{Group, GroupName, Role};
use ferry_store::DeviceFilter;

use crate::auth::{hash_secret, new_secret, Admin};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;

type S = State<Arc<AppState>>;

/// Shortest and longest accepted check-in intervals: a minute to thirty days.
const INTERVAL_RANGE: std::ops::RangeInclusive<u64> = 60..=30 * 24 * 3600;

/// A maintenance window must parse: a known IANA time zone and periods as documented.
fn check_window(window: &ferry_core::MaintenanceWindow) -> ApiResult<()> {
    ferry_core::window::Windows::parse(&window.time_zone, &window.periods)
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(format!("window: {e}")))
}

fn view(g: Group) -> GroupView {
    GroupView {
        has_enrollment_key: g.enrollment_key_hash.is_some(),
        name: g.name,
        description: g.description,
        checkin_interval_secs: g.checkin_interval_secs,
        checkin_jitter: g.checkin_jitter,
        created_at: g.created_at,
        test: g.test,
        filter: g.filter,
        parent: g.parent,
        window: g.window,
    }
}

/// How many matching device ids a preview lists.
const PREVIEW_IDS: usize = 100;

/// Parses a filter, refusing it with its position and what was expected.
fn parse_filter(text: &str) -> ApiResult<Filter> {
    Filter::parse(text).map_err(|e| {
        ApiError::bad_request(format!("invalid filter {e} (the filter language is described in the README)"))
    })
}

/// Refuses a parent that does not exist, would close a cycle or make the tree too deep.
async fn check_new_parent(st: &AppState, group: &GroupName, parent: &GroupName) -> ApiResult<()> {
    let groups = st.store.list_groups().await?;
    if !groups.iter().any(|g| g.name == *parent) {
        return Err(ApiError::not_found(format!("parent group {parent} does not exist; create it first")));
    }
    let parents: BTreeMap<GroupName, Option<GroupName>> = groups.into_iter().map(|g| (g.name, g.parent)).collect();
    check_parent(&parents, group, parent)
        .map_err(|e| ApiError::conflict(format!("cannot make {parent} the parent of {group}: {e}")))
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
    if let Some(filter) = &spec.filter {
        parse_filter(filter)?;
    }
    if let Some(parent) = &spec.parent {
        check_new_parent(&st, &spec.name, parent).await?;
    }
    if let Some(window) = &spec.window {
        check_window(window)?;
    }
    // A dynamic group gets no key: enrolling with one would make a static member.
    let key = spec.filter.is_none().then(|| new_secret(ENROLLMENT_KEY_PREFIX));
    let group = Group {
        name: spec.name,
        description: spec.description,
        checkin_interval_secs: spec.checkin_interval_secs.unwrap_or(st.config.checkin.interval_secs),
        checkin_jitter: spec.checkin_jitter.unwrap_or(st.config.checkin.jitter),
        enrollment_key_hash: key.as_deref().map(hash_secret),
        created_at: st.clock.now(),
        test: false,
        filter: spec.filter,
        parent: spec.parent,
        window: spec.window,
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
    match update.filter.as_deref() {
        None => {}
        Some("") => group.filter = None,
        Some(text) => {
            parse_filter(text)?;
            let members = DeviceFilter { group: Some(name.clone()), limit: 1, ..DeviceFilter::default() };
            if !st.store.list_devices(&members).await?.is_empty() {
                return Err(ApiError::conflict(format!(
                    "group {name} has static members; a dynamic group's members are the devices its filter \
                     matches: move its devices to another group (ferry device groups) or create a new dynamic group"
                )));
            }
            group.filter = Some(text.to_owned());
            // Enrolling with the key would make static members.
            group.enrollment_key_hash = None;
        }
    }
    match update.parent.as_deref() {
        None => {}
        Some("") => group.parent = None,
        Some(text) => {
            let parent = GroupName::new(text).map_err(ApiError::invalid_name)?;
            check_new_parent(&st, &name, &parent).await?;
            group.parent = Some(parent);
        }
    }
    if update.clear_window && update.window.is_some() {
        return Err(ApiError::bad_request("give a new window or clear_window, not both"));
    }
    if let Some(window) = update.window {
        check_window(&window)?;
        group.window = Some(window);
    }
    if update.clear_window {
        group.window = None;
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
    if let Some(filter) = &group.filter {
        return Err(ApiError::conflict(format!(
            "group {name} is dynamic (filter: {filter}) and takes no enrollment key: devices enrolling with \
             a key would become static members; enroll them into a static group and let the filter select them"
        )));
    }
    let key = new_secret(ENROLLMENT_KEY_PREFIX);
    group.enrollment_key_hash = Some(hash_secret(&key));
    st.store.update_group(&group).await?;
    tracing::info!(group = %name, by = %admin.name, "enrollment key rotated");
    Ok(Json(EnrollmentKey { group: name, enrollment_key: key }))
}

#[utoipa::path(post, path = "/api/v1/groups/preview", tag = "groups", request_body = FilterPreviewSpec,
    responses((status = 200, body = FilterPreview), (status = 400, body = ferry_api::ErrorBody)))]
pub async fn preview(
    State(st): S,
    admin: Admin,
    Json(spec): Json<FilterPreviewSpec>,
) -> ApiResult<Json<FilterPreview>> {
    admin.require(Role::Viewer)?;
    let filter = parse_filter(&spec.filter)?;
    let (count, devices) = crate::membership::preview(&st, &filter, PREVIEW_IDS).await?;
    Ok(Json(FilterPreview { count, devices }))
}
