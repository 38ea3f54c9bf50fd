//! Admin routes for staged rollouts.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ferry_api::{RolloutActionRequest, RolloutDetail, RolloutSpec};
use ferry_core::rollout::{policy, Action, Cause, Rollout, RolloutId, RolloutState, TimelineEntry};
use ferry_core::{ReleaseId, Role};
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::rollouts;
use crate::routes::catalogue::load_release;
use crate::state::AppState;

type S = State<Arc<AppState>>;

const MAX_NOTE: usize = 1024;

fn rollout_id(id: i64) -> ApiResult<RolloutId> {
    if id < 1 {
        return Err(ApiError::bad_request(format!("{id} is not a rollout id: rollout ids are positive whole numbers")));
    }
    Ok(RolloutId(id))
}

async fn detail(st: &AppState, rollout: Rollout) -> ApiResult<RolloutDetail> {
    let release = load_release(st, rollout.release).await?;
    let progress = rollouts::progress(st, &rollout, &release, st.clock.now()).await?;
    let timeline = st.store.rollout_timeline(rollout.id).await?;
    Ok(RolloutDetail { product: release.product, version: release.version, waves: progress.waves, timeline, rollout })
}

#[utoipa::path(post, path = "/api/v1/rollouts", tag = "rollouts", request_body = RolloutSpec,
    responses((status = 201, body = RolloutDetail), (status = 400, body = ferry_api::ErrorBody),
        (status = 404, body = ferry_api::ErrorBody, description = "the release or a target group does not exist"),
        (status = 409, body = ferry_api::ErrorBody, description = "the release is archived")))]
pub async fn create_rollout(
    State(st): S,
    admin: Admin,
    Json(spec): Json<RolloutSpec>,
) -> ApiResult<(StatusCode, Json<RolloutDetail>)> {
    admin.require(Role::Operator)?;
    let now = st.clock.now();
    let mut targets = spec.targets;
    targets.sort();
    targets.dedup();
    let plan = Rollout {
        id: RolloutId(0),
        release: spec.release,
        targets,
        waves: spec.waves,
        limits: spec.limits,
        commit_timeout_secs: spec.commit_timeout_secs,
        emergency: spec.emergency,
        state: RolloutState::Running,
        wave: 0,
        wave_started_at: now,
        created_by: admin.name.clone(),
        created_at: now,
        revision: 0,
    };
    policy::check_plan(&plan).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let release = load_release(&st, spec.release).await?;
    if release.archived {
        return Err(ApiError::conflict(format!(
            "release {} is archived and offered to no device; `ferry release unarchive {}` first",
            release.id, release.id
        )));
    }
    for group in plan.targets.iter().chain(plan.waves.iter().filter_map(|w| w.group.as_ref())) {
        if st.store.get_group(group).await?.is_none() {
            return Err(ApiError::not_found(format!("group {group} does not exist; `ferry group list` shows them")));
        }
    }
    let created = TimelineEntry {
        at: now,
        state: RolloutState::Running,
        wave: 0,
        cause: Cause::Created,
        by: Some(admin.name.clone()),
    };
    let rollout = st.store.create_rollout(&plan, &created).await?;
    tracing::info!(rollout = %rollout.id, release = %rollout.release, by = %admin.name, "rollout created");
    if rollout.emergency {
        // Reach the target now, through the wake channel, rather than at each next check-in.
        let devices = rollouts::target_devices(&st, &rollout).await?;
        let woken = st.wakeups.wake(st.store.as_ref(), &devices, now).await?;
        tracing::info!(rollout = %rollout.id, devices = devices.len(), waiting_here = woken.len(), "emergency: devices woken");
    }
    Ok((StatusCode::CREATED, Json(detail(&st, rollout).await?)))
}

/// Filter of `GET /rollouts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct RolloutQuery {
    /// Only rollouts of this release.
    pub release: Option<i64>,
    /// Only running, gated or paused rollouts.
    #[serde(default)]
    pub active: bool,
}

#[utoipa::path(get, path = "/api/v1/rollouts", tag = "rollouts", params(RolloutQuery),
    responses((status = 200, body = [Rollout])))]
pub async fn list_rollouts(State(st): S, admin: Admin, Query(q): Query<RolloutQuery>) -> ApiResult<Json<Vec<Rollout>>> {
    admin.require(Role::Viewer)?;
    Ok(Json(st.store.list_rollouts(q.release.map(ReleaseId), q.active).await?))
}

#[utoipa::path(get, path = "/api/v1/rollouts/{id}", tag = "rollouts", params(("id" = i64, Path)),
    responses((status = 200, body = RolloutDetail), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn get_rollout(State(st): S, admin: Admin, Path(id): Path<i64>) -> ApiResult<Json<RolloutDetail>> {
    admin.require(Role::Viewer)?;
    let rollout = rollouts::load(&st, rollout_id(id)?).await?;
    Ok(Json(detail(&st, rollout).await?))
}

#[utoipa::path(post, path = "/api/v1/rollouts/{id}/{action}", tag = "rollouts",
    params(("id" = i64, Path), ("action" = Action, Path, description = "pause, resume, advance or cancel")),
    request_body = RolloutActionRequest,
    responses((status = 200, body = RolloutDetail), (status = 404, body = ferry_api::ErrorBody),
        (status = 409, body = ferry_api::ErrorBody, description = "the action does not apply in the rollout's state")))]
pub async fn act(
    State(st): S,
    admin: Admin,
    Path((id, action)): Path<(i64, Action)>,
    Json(body): Json<RolloutActionRequest>,
) -> ApiResult<Json<RolloutDetail>> {
    admin.require(Role::Operator)?;
    let note = body.note;
    if note.len() > MAX_NOTE {
        return Err(ApiError::bad_request(format!("note is {} bytes; the limit is {MAX_NOTE}", note.len())));
    }
    let rollout = rollouts::act(&st, rollout_id(id)?, action, &note, &admin.name).await?;
    Ok(Json(detail(&st, rollout).await?))
}
