//! Signed metadata over HTTP: the admin side (online keys, pushing signed root and targets,
//! drafting the next targets, status), and the image and director repositories as TUF clients
//! fetch them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::Response;
use ferry_api::trust::{
    DirectorRotated, DraftQuery, NextOnlineKeys, OnlineKeys, Published, RoleStatus, SignedMetadata, TargetsDraft,
    TrustStatus, UnsignedRelease,
};
use ferry_core::{Release, ReleaseId, Role};
use ferry_store::Repo;
use serde::Deserialize;

use crate::auth::{require_accepted, Admin, Caller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::offers;
use crate::state::AppState;
use crate::trust::image::{self, TOP_LEVEL};
use crate::trust::{director, keys, TrustError};

type S = State<Arc<AppState>>;

/// Delegated roles are per product (docs/trust.md), so a role name follows the product-name rule,
/// which keeps it safe in a file name and a URL; the top-level role names are taken.
fn check_role_name(role: &str) -> ApiResult<()> {
    ferry_core::ProductName::new(role).map_err(ApiError::invalid_name)?;
    if TOP_LEVEL.contains(&role) {
        return Err(ApiError::invalid_name(format!(
            "{role:?} is a top-level role; a delegated role needs another name (a product name)"
        )));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/trust/online-keys", tag = "trust",
    responses((status = 200, description = "the server's online public keys, by role", body = OnlineKeys)))]
pub async fn online_keys(State(st): S, admin: Admin) -> ApiResult<Json<OnlineKeys>> {
    admin.require(Role::Viewer)?;
    let dir = st.config.keys_dir();
    let next = |name| keys::next_key(&dir, name).map_err(ApiError::internal);
    let next = match (next(keys::SNAPSHOT)?, next(keys::TIMESTAMP)?) {
        (Some(snapshot), Some(timestamp)) => {
            Some(NextOnlineKeys { snapshot: snapshot.public().clone(), timestamp: timestamp.public().clone() })
        }
        _ => None,
    };
    let k = st.keys();
    Ok(Json(OnlineKeys {
        snapshot: k.snapshot.public().clone(),
        timestamp: k.timestamp.public().clone(),
        director_root: k.director_root.public().clone(),
        director: k.director.public().clone(),
        next,
    }))
}

#[utoipa::path(post, path = "/api/v1/trust/image/online-keys/next", tag = "trust",
    responses((status = 200, description = "the online public keys with the image repository's snapshot and \
    timestamp keys replaced by the keys waiting to take over; list them in the next root", body = OnlineKeys)))]
pub async fn next_online_keys(State(st): S, admin: Admin) -> ApiResult<Json<OnlineKeys>> {
    admin.require(Role::Admin)?;
    // Not while a root push decides whether it lists the waiting keys and promotes them, and one
    // request at a time, so that concurrent requests make and return the same keys.
    let _rotation = st.rotation.write().await;
    let dir = st.config.keys_dir();
    let snapshot = keys::next_key_or_create(&dir, keys::SNAPSHOT).map_err(ApiError::internal)?;
    let timestamp = keys::next_key_or_create(&dir, keys::TIMESTAMP).map_err(ApiError::internal)?;
    let k = st.keys();
    Ok(Json(OnlineKeys {
        snapshot: snapshot.public().clone(),
        timestamp: timestamp.public().clone(),
        director_root: k.director_root.public().clone(),
        director: k.director.public().clone(),
        next: None,
    }))
}

#[utoipa::path(post, path = "/api/v1/trust/director/rotate", tag = "trust",
    responses((status = 200, description = "the director's new root version and keys", body = DirectorRotated)))]
pub async fn rotate_director(State(st): S, admin: Admin) -> ApiResult<Json<DirectorRotated>> {
    admin.require(Role::Admin)?;
    let root_version = director::rotate(&st, st.clock.now()).await?;
    let k = st.keys();
    Ok(Json(DirectorRotated {
        root_version,
        director_root: k.director_root.public().clone(),
        director: k.director.public().clone(),
    }))
}

#[utoipa::path(put, path = "/api/v1/trust/image/root", tag = "trust", request_body(content = SignedMetadata,
    description = "signed root metadata, exactly as signed"), responses((status = 201, body = Published),
    (status = 400, body = ferry_api::ErrorBody), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn push_root(State(st): S, admin: Admin, body: Bytes) -> ApiResult<(StatusCode, Json<Published>)> {
    admin.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(image::push_root(&st, &body, st.clock.now()).await?)))
}

#[utoipa::path(put, path = "/api/v1/trust/image/targets", tag = "trust", request_body(content = SignedMetadata,
    description = "signed top-level targets metadata, exactly as signed"), responses((status = 201, body = Published),
    (status = 400, body = ferry_api::ErrorBody), (status = 409, body = ferry_api::ErrorBody)))]
pub async fn push_targets(State(st): S, admin: Admin, body: Bytes) -> ApiResult<(StatusCode, Json<Published>)> {
    admin.require(Role::Admin)?;
    Ok((StatusCode::CREATED, Json(image::push_targets(&st, "targets", &body, st.clock.now()).await?)))
}

#[utoipa::path(put, path = "/api/v1/trust/image/roles/{role}", tag = "trust", params(("role" = String, Path)),
    request_body(content = SignedMetadata, description = "signed delegated targets metadata, exactly as signed"),
    responses((status = 201, body = Published), (status = 400, body = ferry_api::ErrorBody),
    (status = 409, body = ferry_api::ErrorBody)))]
pub async fn push_delegated(
    State(st): S,
    admin: Admin,
    Path(role): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Published>)> {
    admin.require(Role::Admin)?;
    check_role_name(&role)?;
    Ok((StatusCode::CREATED, Json(image::push_targets(&st, &role, &body, st.clock.now()).await?)))
}

#[utoipa::path(get, path = "/api/v1/trust/image/draft", tag = "trust", params(DraftQuery),
    responses((status = 200, description = "the next version, unsigned", body = TargetsDraft),
    (status = 400, body = ferry_api::ErrorBody), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn draft(State(st): S, admin: Admin, Query(q): Query<DraftQuery>) -> ApiResult<Json<TargetsDraft>> {
    admin.require(Role::Operator)?;
    let role = q.role.unwrap_or_else(|| "targets".to_owned());
    if role != "targets" {
        check_role_name(&role)?;
    }
    let days = q.expires_days.unwrap_or(365);
    if !(1..=3660).contains(&days) {
        return Err(ApiError::bad_request(format!("expires_days is {days}; use 1 to 3660")));
    }
    let index = st.catalogue.signed(st.store.as_ref()).await?;
    let releases: Vec<Release> = match q.releases.as_deref() {
        Some(list) => {
            let mut out = Vec::new();
            for id in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let id: i64 =
                    id.parse().map_err(|_| ApiError::bad_request(format!("release id {id:?} is not a number")))?;
                let release = st
                    .store
                    .get_release(ReleaseId(id))
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("release {id} does not exist")))?;
                out.push(release);
            }
            out
        }
        None => st.store.list_releases(None).await?.into_iter().filter(|r| !image::is_signed(r, &index)).collect(),
    };
    let explicit = q.releases.is_some();
    Ok(Json(image::draft(&st, &role, &releases, explicit, i64::from(days) * 86_400, st.clock.now()).await?))
}

#[utoipa::path(get, path = "/api/v1/trust/image/status", tag = "trust",
    responses((status = 200, description = "versions and expiries of the image repository, and releases awaiting a signature", body = TrustStatus)))]
pub async fn status(State(st): S, admin: Admin) -> ApiResult<Json<TrustStatus>> {
    admin.require(Role::Viewer)?;
    let mut roles = BTreeMap::new();
    for (role, version) in st.store.metadata_roles(Repo::Image).await? {
        let expires = st
            .store
            .get_metadata(Repo::Image, &role, version)
            .await?
            .and_then(|b| serde_json::from_slice::<Expiring>(&b).ok())
            .map(|file| file.signed.expires);
        roles.insert(role, RoleStatus { version, expires });
    }
    let index = st.catalogue.signed(st.store.as_ref()).await?;
    let unsigned_releases = st
        .store
        .list_releases(None)
        .await?
        .iter()
        .filter(|r| !image::is_signed(r, &index))
        .map(|r| UnsignedRelease { id: r.id, product: r.product.clone(), version: r.version.clone() })
        .collect();
    Ok(Json(TrustStatus { roles, unsigned_releases, require_signed_releases: st.config.trust.require_signed_releases }))
}

/// The expiry of any role's stored metadata file.
#[derive(Deserialize)]
struct Expiring {
    signed: Expires,
}

#[derive(Deserialize)]
struct Expires {
    expires: String,
}

/// A metadata file name as TUF clients ask for it.
enum MetaName<'a> {
    Latest(&'a str),
    Versioned(u64, &'a str),
}

fn parse_meta_name(file: &str) -> Option<MetaName<'_>> {
    let stem = file.strip_suffix(".json")?;
    if let Some((version, role)) = stem.split_once('.') {
        if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) {
            return Some(MetaName::Versioned(version.parse().ok()?, role));
        }
    }
    matches!(stem, "timestamp" | "root").then_some(MetaName::Latest(stem))
}

#[utoipa::path(get, path = "/tuf/image/{file}", tag = "trust", params(("file" = String, Path,
    description = "VERSION.ROLE.json, timestamp.json or root.json")),
    responses((status = 200, description = "the metadata file"), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn image_metadata(State(st): S, caller: Caller, Path(file): Path<String>) -> ApiResult<Response> {
    if let Caller::Device(device) = &caller {
        require_accepted(device, "read update metadata")?;
    }
    let missing = || ApiError::not_found(format!("the image repository has no {file}"));
    let (bytes, immutable) = match parse_meta_name(&file).ok_or_else(missing)? {
        MetaName::Latest(role) => {
            (st.store.latest_metadata(Repo::Image, role).await?.ok_or_else(missing)?.bytes, false)
        }
        MetaName::Versioned(version, role) => {
            (st.store.get_metadata(Repo::Image, role, version).await?.ok_or_else(missing)?, true)
        }
    };
    metadata_response(bytes, immutable)
}

fn metadata_response(bytes: Vec<u8>, immutable: bool) -> ApiResult<Response> {
    let cache = if immutable { "private, max-age=31536000, immutable" } else { "no-cache" };
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, cache)
        .body(Body::from(bytes))
        .map_err(ApiError::internal)
}

#[utoipa::path(get, path = "/tuf/image/targets/{path}", tag = "trust", params(("path" = String, Path,
    description = "DIR/HASH.NAME of a target listed in signed targets metadata")),
    responses((status = 200, description = "the target"), (status = 206, description = "a range"),
    (status = 403, body = ferry_api::ErrorBody), (status = 404, body = ferry_api::ErrorBody)))]
pub async fn image_target(
    State(st): S,
    caller: Caller,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let missing = || ApiError::not_found(format!("the image repository lists no target at {path}"));
    let (dir, file) = path.rsplit_once('/').map_or(("", path.as_str()), |(d, f)| (d, f));
    let (hash, name) = file.split_once('.').ok_or_else(missing)?;
    let target_path = if dir.is_empty() { name.to_owned() } else { format!("{dir}/{name}") };
    let index = st.catalogue.signed(st.store.as_ref()).await?;
    if index.get(&target_path).is_none_or(|t| t.sha256() != Some(hash)) {
        return Err(missing());
    }
    let sha = ferry_core::Sha256::parse(hash).map_err(|_| missing())?;
    if let Caller::Device(device) = &caller {
        let eval = offers::evaluate(&st, device).await?;
        if !eval.offered().iter().any(|(r, _)| r.artifacts.iter().any(|a| a.sha256 == sha)) {
            return Err(TrustError::NotEntitled { path: target_path }.into());
        }
    }
    crate::routes::download::serve_content(&st, &method, &sha, &headers).await
}

#[utoipa::path(get, path = "/tuf/director/{file}", tag = "trust", params(("file" = String, Path,
    description = "root.json or VERSION.root.json (any caller); timestamp.json, VERSION.snapshot.json or \
    VERSION.targets.json (the device's own, with its credential)")),
    responses((status = 200, description = "the metadata file"), (status = 403, body = ferry_api::ErrorBody),
    (status = 404, body = ferry_api::ErrorBody)))]
pub async fn director_metadata(State(st): S, caller: Caller, Path(file): Path<String>) -> ApiResult<Response> {
    if let Caller::Device(device) = &caller {
        require_accepted(device, "read update metadata")?;
    }
    let missing = || ApiError::not_found(format!("the director repository has no {file}"));
    let name = parse_meta_name(&file).ok_or_else(missing)?;
    match name {
        MetaName::Latest("root") => {
            let bytes = st.store.latest_metadata(Repo::Director, "root").await?.ok_or_else(missing)?.bytes;
            return metadata_response(bytes, false);
        }
        MetaName::Versioned(version, "root") => {
            let bytes = st.store.get_metadata(Repo::Director, "root", version).await?.ok_or_else(missing)?;
            return metadata_response(bytes, true);
        }
        _ => {}
    }
    let Caller::Device(device) = caller else {
        return Err(TrustError::PerDevice.into());
    };
    match name {
        MetaName::Latest(_) => {
            let eval = offers::evaluate(&st, &device).await?;
            let state = director::current(&st, &device, &eval, None, st.clock.now()).await?;
            metadata_response(state.files.timestamp, false)
        }
        MetaName::Versioned(version, role @ ("snapshot" | "targets")) => {
            let state =
                st.store.director_state(&device.id).await?.filter(|s| s.version == version).ok_or_else(|| {
                    ApiError::not_found(format!(
                        "director version {version} is not this device's current one; fetch timestamp.json again"
                    ))
                })?;
            let bytes = if role == "snapshot" { state.files.snapshot } else { state.files.targets };
            metadata_response(bytes, true)
        }
        MetaName::Versioned(..) => Err(missing()),
    }
}
