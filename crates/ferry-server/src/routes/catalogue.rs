//! Admin routes for the catalogue: products, platforms, content, releases and approvals.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ferry_api::{
    ApprovalSpec, ContentInfo, ErrorCode, MarkBadSpec, PlatformSpec, ProductSpec, ReleaseSpec, SHA256_HEADER,
};
use ferry_core::catalogue::MAX_BAD_REASON;
use ferry_core::{
    Approval, ApprovalAction, GroupName, Platform, PlatformName, Product, ProductName, Release, ReleaseChange,
    ReleaseId, Role, Sha256,
};
use futures::TryStreamExt;
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

type S = State<Arc<AppState>>;

const MAX_DESCRIPTION: usize = 4096;

fn check_description(d: &str) -> ApiResult<()> {
    if d.len() > MAX_DESCRIPTION {
        return Err(ApiError::bad_request(format!("description is {} bytes; the limit is {MAX_DESCRIPTION}", d.len())));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/products", tag = "catalogue", responses((status = 200, body = [Product])))]
pub async fn list_products(State(st): S, admin: Admin) -> ApiResult<Json<Vec<Product>>> {
    admin.require(Role::Viewer)?;
    Ok(Json(st.store.list_products().await?))
}

#[utoipa::path(post, path = "/api/v1/products", tag = "catalogue", request_body = ProductSpec,
    responses((status = 201, body = Product), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn create_product(
    State(st): S,
    admin: Admin,
    Json(spec): Json<ProductSpec>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    admin.require(Role::Admin)?;
    check_description(&spec.description)?;
    let product = Product { name: spec.name, description: spec.description, created_at: st.clock.now() };
    st.store.create_product(&product).await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[utoipa::path(get, path = "/api/v1/products/{name}", tag = "catalogue", params(("name" = String, Path)),
    responses((status = 200, body = Product), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn get_product(State(st): S, admin: Admin, Path(name): Path<ProductName>) -> ApiResult<Json<Product>> {
    admin.require(Role::Viewer)?;
    let p = st.store.get_product(&name).await?;
    Ok(Json(p.ok_or_else(|| ApiError::not_found(format!("product {name} does not exist")))?))
}

#[utoipa::path(get, path = "/api/v1/platforms", tag = "catalogue", responses((status = 200, body = [Platform])))]
pub async fn list_platforms(State(st): S, admin: Admin) -> ApiResult<Json<Vec<Platform>>> {
    admin.require(Role::Viewer)?;
    Ok(Json(st.store.list_platforms().await?))
}

#[utoipa::path(post, path = "/api/v1/platforms", tag = "catalogue", request_body = PlatformSpec,
    responses((status = 201, body = Platform), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn create_platform(
    State(st): S,
    admin: Admin,
    Json(spec): Json<PlatformSpec>,
) -> ApiResult<(StatusCode, Json<Platform>)> {
    admin.require(Role::Admin)?;
    check_description(&spec.description)?;
    let platform = Platform { name: spec.name, description: spec.description, created_at: st.clock.now() };
    st.store.create_platform(&platform).await?;
    Ok((StatusCode::CREATED, Json(platform)))
}

#[utoipa::path(get, path = "/api/v1/platforms/{name}", tag = "catalogue", params(("name" = String, Path)),
    responses((status = 200, body = Platform), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn get_platform(State(st): S, admin: Admin, Path(name): Path<PlatformName>) -> ApiResult<Json<Platform>> {
    admin.require(Role::Viewer)?;
    let p = st.store.get_platform(&name).await?;
    Ok(Json(p.ok_or_else(|| ApiError::not_found(format!("platform {name} does not exist")))?))
}

/// Streams an upload into the content store. The body is never held in memory; its length
/// must match `Content-Length` and, when the client sends `x-ferry-sha256`, its digest too.
#[utoipa::path(post, path = "/api/v1/content", tag = "catalogue",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    params(("x-ferry-sha256" = Option<String>, Header, description = "expected sha256")),
    responses((status = 201, body = ContentInfo), (status = 200, body = ContentInfo, description = "already stored"),
        (status = 400, body = ferry_api::ErrorBody), (status = 411, body = ferry_api::ErrorBody), (status = 413, body = ferry_api::ErrorBody)))]
pub async fn upload_content(State(st): S, admin: Admin, headers: HeaderMap, body: Body) -> ApiResult<Response> {
    admin.require(Role::Admin)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .ok_or_else(|| ApiError::new(ErrorCode::LengthRequired, "send the artifact's size in Content-Length"))?;
    let limit = st.config.limits.artifact_bytes;
    if declared > limit {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the upload is {declared} bytes; limits.artifact_bytes is {limit}"),
        ));
    }
    let expected = match headers.get(SHA256_HEADER) {
        Some(v) => Some(Sha256::parse(v.to_str().unwrap_or_default()).map_err(ApiError::invalid_name)?),
        None => None,
    };
    if let Some(expected) = &expected {
        // Deduplication before transfer: identical content is not stored twice.
        if st.content.len(expected).await? == Some(declared) {
            st.store.record_content(expected, declared, st.clock.now()).await?;
            let info = ContentInfo { sha256: expected.clone(), length: declared, created: false };
            return Ok((StatusCode::OK, Json(info)).into_response());
        }
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let out = st.content.put(declared, expected.as_ref(), Box::pin(stream)).await?;
    st.store.record_content(&out.sha256, out.length, st.clock.now()).await?;
    let status = if out.created { StatusCode::CREATED } else { StatusCode::OK };
    let info = ContentInfo { sha256: out.sha256, length: out.length, created: out.created };
    Ok((status, Json(info)).into_response())
}

#[utoipa::path(head, path = "/api/v1/content/{sha256}", tag = "catalogue", params(("sha256" = String, Path)),
    responses((status = 200, description = "stored; Content-Length is its size"), (status = 404)))]
pub async fn head_content(State(st): S, admin: Admin, Path(sha): Path<Sha256>) -> ApiResult<Response> {
    admin.require(Role::Viewer)?;
    match st.content.len(&sha).await? {
        Some(len) => Ok((StatusCode::OK, [(header::CONTENT_LENGTH, len.to_string())]).into_response()),
        None => Err(ApiError::not_found(format!("no content with sha256 {sha}"))),
    }
}

/// Filter of `GET /releases`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ReleaseQuery {
    /// Only releases of this product.
    pub product: Option<ProductName>,
}

#[utoipa::path(get, path = "/api/v1/releases", tag = "catalogue", params(ReleaseQuery),
    responses((status = 200, body = [Release])))]
pub async fn list_releases(State(st): S, admin: Admin, Query(q): Query<ReleaseQuery>) -> ApiResult<Json<Vec<Release>>> {
    admin.require(Role::Viewer)?;
    Ok(Json(st.store.list_releases(q.product.as_ref()).await?))
}

#[utoipa::path(post, path = "/api/v1/releases", tag = "catalogue", request_body = ReleaseSpec,
    responses((status = 201, body = Release), (status = 400, body = ferry_api::ErrorBody),
        (status = 404, body = ferry_api::ErrorBody), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn create_release(
    State(st): S,
    admin: Admin,
    Json(spec): Json<ReleaseSpec>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    admin.require(Role::Admin)?;
    let release = spec.into_release();
    release.check().map_err(|e| ApiError::bad_request(e.to_string()))?;
    for a in &release.artifacts {
        match st.content.len(&a.sha256).await? {
            None => {
                return Err(ApiError::bad_request(format!(
                "artifact {}: no content with sha256 {} has been uploaded; upload it first (ferry content upload FILE)",
                a.name, a.sha256
            )))
            }
            Some(len) if len != a.length => {
                return Err(ApiError::new(
                    ErrorCode::SizeMismatch,
                    format!("artifact {} declares length {} but its content is {len} bytes", a.name, a.length),
                ))
            }
            Some(len) => st.store.record_content(&a.sha256, len, st.clock.now()).await?,
        }
    }
    let created = st.store.create_release(&release, st.clock.now()).await?;
    tracing::info!(release = %created.id, product = %created.product, version = %created.version, by = %admin.name, "release published");
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/releases/{id}", tag = "catalogue", params(("id" = i64, Path)),
    responses((status = 200, body = Release), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn get_release(State(st): S, admin: Admin, Path(id): Path<i64>) -> ApiResult<Json<Release>> {
    admin.require(Role::Viewer)?;
    Ok(Json(load_release(&st, ReleaseId(id)).await?))
}

/// Deletes a release that no device can have been offered: never approved for install and
/// never reported on by a device. A release listed in the image repository's signed targets
/// metadata is refused as well, because devices that trust that metadata may still fetch its
/// content; archive those instead. The content stays in the content store.
#[utoipa::path(delete, path = "/api/v1/releases/{id}", tag = "catalogue", params(("id" = i64, Path)),
    responses((status = 204), (status = 404, body = ferry_api::ErrorBody), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn delete_release(State(st): S, admin: Admin, Path(id): Path<i64>) -> ApiResult<StatusCode> {
    admin.require(Role::Admin)?;
    let release = load_release(&st, ReleaseId(id)).await?;
    let signed = crate::trust::image::signed_index(st.store.as_ref()).await?;
    if let Some(path) = release.artifacts.iter().map(|a| release.target_path(&a.name)).find(|p| signed.contains_key(p))
    {
        return Err(ApiError::conflict(format!(
            "release {id} is published in the signed targets metadata ({path}), so devices may fetch it; \
             archive it instead (ferry release archive {id})"
        )));
    }
    st.store.delete_release(release.id).await?;
    tracing::info!(release = id, product = %release.product, version = %release.version, by = %admin.name, "release deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Changes a release's notes and/or archives or unarchives it. An archived release stays in
/// the catalogue with its content but is offered to no device and its content is no longer
/// served to devices.
#[utoipa::path(patch, path = "/api/v1/releases/{id}", tag = "catalogue", params(("id" = i64, Path)),
    request_body = ReleaseChange,
    responses((status = 200, body = Release), (status = 400, body = ferry_api::ErrorBody),
        (status = 404, body = ferry_api::ErrorBody)))]
pub async fn update_release(
    State(st): S,
    admin: Admin,
    Path(id): Path<i64>,
    Json(change): Json<ReleaseChange>,
) -> ApiResult<Json<Release>> {
    admin.require(Role::Admin)?;
    if change.notes.is_none() && change.archived.is_none() {
        return Err(ApiError::bad_request("nothing to change: give notes and/or archived"));
    }
    if let Some(notes) = &change.notes {
        if notes.len() > ferry_core::catalogue::MAX_NOTES {
            return Err(ApiError::bad_request(
                ferry_core::catalogue::ReleaseError::NotesTooLong(notes.len()).to_string(),
            ));
        }
    }
    let release = st.store.update_release(ReleaseId(id), &change).await?;
    tracing::info!(release = id, archived = release.archived, notes = change.notes.is_some(), by = %admin.name, "release changed");
    Ok(Json(release))
}

/// Marks a release bad: it is withdrawn from every offer (its content is no longer served to
/// devices) and every device running it is told, in its signed director metadata, to go back
/// to the version it kept. Marking again returns the release as first marked. There is no
/// undo: publish a fixed release instead.
#[utoipa::path(post, path = "/api/v1/releases/{id}/mark-bad", tag = "catalogue", params(("id" = i64, Path)),
    request_body = MarkBadSpec,
    responses((status = 200, body = Release), (status = 400, body = ferry_api::ErrorBody),
        (status = 404, body = ferry_api::ErrorBody)))]
pub async fn mark_release_bad(
    State(st): S,
    admin: Admin,
    Path(id): Path<i64>,
    Json(body): Json<MarkBadSpec>,
) -> ApiResult<Json<Release>> {
    admin.require(Role::Operator)?;
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "a reason is required: say what is wrong with the release (ferry release mark-bad ID --reason TEXT)",
        ));
    }
    if reason.len() > MAX_BAD_REASON {
        return Err(ApiError::bad_request(format!(
            "the reason is {} bytes; the limit is {MAX_BAD_REASON}: say briefly what is wrong and link to details",
            reason.len()
        )));
    }
    let before = load_release(&st, ReleaseId(id)).await?;
    let release = st.store.mark_release_bad(before.id, reason, &admin.name, st.clock.now()).await?;
    if before.bad.is_none() {
        tracing::warn!(release = id, product = %release.product, version = %release.version, by = %admin.name, reason, "release marked bad");
    }
    crate::marked_bad::on_marked_bad(&st, &release).await?;
    Ok(Json(release))
}

/// The release, or 404.
pub async fn load_release(st: &AppState, id: ReleaseId) -> ApiResult<Release> {
    st.store
        .get_release(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("release {id} does not exist; `ferry release list` shows the ids")))
}

#[utoipa::path(get, path = "/api/v1/releases/{id}/approvals", tag = "approvals", params(("id" = i64, Path)),
    responses((status = 200, body = [Approval])))]
pub async fn release_approvals(State(st): S, admin: Admin, Path(id): Path<i64>) -> ApiResult<Json<Vec<Approval>>> {
    admin.require(Role::Viewer)?;
    load_release(&st, ReleaseId(id)).await?;
    Ok(Json(st.store.list_approvals(Some(ReleaseId(id)), None).await?))
}

/// Filter of `GET /approvals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ApprovalQuery {
    /// Only approvals for this group.
    pub group: Option<GroupName>,
}

#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", params(ApprovalQuery),
    responses((status = 200, body = [Approval])))]
pub async fn list_approvals(
    State(st): S,
    admin: Admin,
    Query(q): Query<ApprovalQuery>,
) -> ApiResult<Json<Vec<Approval>>> {
    admin.require(Role::Viewer)?;
    Ok(Json(st.store.list_approvals(None, q.group.as_ref()).await?))
}

/// Earliest and latest deadline accepted, relative to now: a day back (a deadline set "now"
/// from a slightly slow clock is fine), five years ahead. Outside that it is a unit mistake
/// (milliseconds for seconds) or a typo, which would force installs at once or never.
const DEADLINE_PAST_SECS: i64 = 86_400;
const DEADLINE_FUTURE_SECS: i64 = 5 * 366 * 86_400;

fn check_deadline(deadline: i64, now: i64) -> ApiResult<()> {
    if (now - DEADLINE_PAST_SECS..=now + DEADLINE_FUTURE_SECS).contains(&deadline) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "deadline {deadline} is not a plausible time: give unix seconds between one day ago ({}) and five years \
         from now ({})",
        now - DEADLINE_PAST_SECS,
        now + DEADLINE_FUTURE_SECS
    )))
}

#[utoipa::path(put, path = "/api/v1/releases/{id}/approvals/{group}", tag = "approvals",
    params(("id" = i64, Path), ("group" = String, Path)), request_body = ApprovalSpec,
    responses((status = 200, body = Approval), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn set_approval(
    State(st): S,
    admin: Admin,
    Path((id, group)): Path<(i64, GroupName)>,
    Json(spec): Json<ApprovalSpec>,
) -> ApiResult<Json<Approval>> {
    admin.require(Role::Operator)?;
    if spec.action == ApprovalAction::Decline && spec.deadline.is_some() {
        return Err(ApiError::bad_request("a deadline only applies to install approvals"));
    }
    if let Some(deadline) = spec.deadline {
        check_deadline(deadline, st.clock.now())?;
    }
    load_release(&st, ReleaseId(id)).await?;
    if st.store.get_group(&group).await?.is_none() {
        return Err(ApiError::not_found(format!("group {group} does not exist")));
    }
    let approval = Approval {
        release: ReleaseId(id),
        group,
        action: spec.action,
        deadline: spec.deadline,
        approved_by: admin.name.clone(),
        approved_at: st.clock.now(),
    };
    st.store.set_approval(&approval).await?;
    tracing::info!(release = id, group = %approval.group, action = approval.action.as_str(), by = %admin.name, "approval set");
    Ok(Json(approval))
}

#[utoipa::path(delete, path = "/api/v1/releases/{id}/approvals/{group}", tag = "approvals",
    params(("id" = i64, Path), ("group" = String, Path)),
    responses((status = 204), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn delete_approval(
    State(st): S,
    admin: Admin,
    Path((id, group)): Path<(i64, GroupName)>,
) -> ApiResult<StatusCode> {
    admin.require(Role::Operator)?;
    if st.store.delete_approval(ReleaseId(id), &group).await? {
        tracing::info!(release = id, group = %group, by = %admin.name, "approval removed");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("release {id} has no approval for group {group}")))
    }
}
