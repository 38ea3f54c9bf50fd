//! The device API: enrollment, check-in and status events.

use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use ferry_api::{
    CheckinRequest, CheckinResponse, DirectorPointer, EnrollRequest, EnrollResponse, ErrorCode, EventBatch, Offer,
    OfferedArtifact, DEVICE_ENROLLMENT_KEY_PREFIX, DEVICE_PREFIX, DEVICE_TOKEN_PREFIX,
};
use ferry_core::device::boot_transition;
use ferry_core::schedule::next_checkin_delay;
use ferry_core::window::delay_towards_window;
use ferry_core::{AppendOutcome, Device, DeviceStatus, NewEvent, ReleaseId};
use ferry_store::{CheckinRecord, Enrollment, StoreError};

use crate::auth::{hash_secret, new_secret, require_accepted, DeviceAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::offers;
use crate::state::AppState;
use crate::trust::director;

type S = State<Arc<AppState>>;

/// Devices told to come back when their maintenance window opens arrive spread over its first
/// five minutes.
const WINDOW_ARRIVAL_SPREAD_SECS: u64 = 300;

/// Most events accepted in one batch.
pub const MAX_EVENTS: usize = ferry_api::MAX_EVENTS_PER_BATCH;
const MAX_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTE_KEY: usize = 64;
const MAX_ATTRIBUTE_VALUE: usize = 1024;
const MAX_SHORT_TEXT: usize = ferry_api::MAX_SHORT_TEXT_BYTES;
const MAX_MESSAGE: usize = ferry_api::MAX_EVENT_MESSAGE_BYTES;

/// The one answer to every enrollment whose key does not prove the claim: a wrong group key, a
/// wrong or missing device key for a pre-authorised id, no key for an enrolled id. It does not
/// say which, so a stranger cannot learn whether an id exists.
fn not_proven() -> ApiError {
    // The same answer as the store's refusal of an unproven claim (see `error.rs`).
    StoreError::Refused("no valid enrollment key".to_owned()).into()
}

#[utoipa::path(post, path = "/device/v1/enroll", tag = "device", request_body = EnrollRequest,
    responses((status = 201, body = EnrollResponse), (status = 401, body = ferry_api::ErrorBody),
        (status = 409, body = ferry_api::ErrorBody, description = "the id is already enrolled by another machine"),
        (status = 429, body = ferry_api::ErrorBody, description = "too many enrollments; see Retry-After")))]
pub async fn enroll(
    State(st): S,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    Json(req): Json<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    st.enrollments.check(peer.ip())?;
    let (status, groups, secret_hash) = match &req.enrollment_key {
        // A pre-authorised device's own key: the store checks it against the id's.
        Some(key) if key.starts_with(DEVICE_ENROLLMENT_KEY_PREFIX) => {
            (DeviceStatus::Accepted, Vec::new(), Some(hash_secret(key)))
        }
        Some(key) => {
            let group = st.store.group_by_enrollment_key(&hash_secret(key)).await?.ok_or_else(not_proven)?;
            (DeviceStatus::Accepted, vec![group.name], None)
        }
        None if !st.config.enrollment.allow_keyless => {
            return Err(ApiError::new(
                ErrorCode::Unauthorized,
                "this server enrolls devices only with an enrollment key; set enrollment_key (or \
                 enrollment_key_file) in agent.toml to a group's key or to the key issued when this id was \
                 pre-authorised",
            ));
        }
        None => (DeviceStatus::Pending, Vec::new(), None),
    };
    let credential = new_secret(DEVICE_TOKEN_PREFIX);
    let enrollment = Enrollment {
        id: req.device_id.clone(),
        credential_hash: hash_secret(&credential),
        status,
        groups,
        origin: format!("enrollment from {peer}"),
        now: st.clock.now(),
        secret_hash,
    };
    let device = st.store.enroll_device(&enrollment).await?;
    tracing::info!(device = %device.id, status = device.status.as_str(), %peer, "device enrolled");
    Ok((StatusCode::CREATED, Json(EnrollResponse { device_id: device.id, credential, status: device.status })))
}

fn too_long(what: &str, len: usize, max: usize) -> ApiError {
    ApiError::bad_request(format!("{what} is {len} bytes; the limit is {max}"))
}

fn check_checkin(req: &CheckinRequest) -> ApiResult<()> {
    if req.attributes.len() > MAX_ATTRIBUTES {
        return Err(ApiError::bad_request(format!(
            "{} attributes sent; the limit is {MAX_ATTRIBUTES}",
            req.attributes.len()
        )));
    }
    for (k, v) in &req.attributes {
        if k.is_empty() || k.len() > MAX_ATTRIBUTE_KEY {
            return Err(ApiError::bad_request(format!("attribute name {k:?} must be 1 to {MAX_ATTRIBUTE_KEY} bytes")));
        }
        if v.len() > MAX_ATTRIBUTE_VALUE {
            return Err(too_long(&format!("attribute {k}"), v.len(), MAX_ATTRIBUTE_VALUE));
        }
    }
    if req.installed.len() + req.configs.len() > 1024 {
        return Err(ApiError::bad_request("at most 1024 installed products can be reported"));
    }
    for (what, v) in [("agent_version", &req.agent_version), ("boot_id", &req.boot_id)] {
        if let Some(v) = v {
            if v.len() > MAX_SHORT_TEXT {
                return Err(too_long(what, v.len(), MAX_SHORT_TEXT));
            }
        }
    }
    Ok(())
}

/// What this check-in would store; compared with the device to skip unchanged writes.
fn checkin_changes(device: &Device, req: CheckinRequest, at: i64) -> CheckinRecord {
    let boot = boot_transition(device.boot_id.as_deref(), device.prev_boot_id.as_deref(), req.boot_id.as_deref());
    CheckinRecord {
        platform: req.platform.or_else(|| device.platform.clone()),
        installed: req.installed,
        configs: req.configs,
        attributes: req.attributes,
        agent_version: req.agent_version.or_else(|| device.agent_version.clone()),
        boot_id: boot.boot_id,
        prev_boot_id: boot.prev_boot_id,
        last_contact: at,
        conflict: boot.conflict,
    }
}

fn unchanged(device: &Device, rec: &CheckinRecord) -> bool {
    rec.conflict.is_none()
        && rec.platform == device.platform
        && rec.installed == device.installed
        && rec.configs == device.configs
        && rec.attributes == device.attributes
        && rec.agent_version == device.agent_version
        && rec.boot_id == device.boot_id
        && rec.prev_boot_id == device.prev_boot_id
}

/// The check-in interval for a device: the shortest of its groups', else the default.
async fn schedule(st: &AppState, device: &Device) -> ApiResult<(u64, f64)> {
    let groups = st.catalogue.groups(st.store.as_ref()).await?;
    let mut best: Option<(u64, f64)> = None;
    for name in &crate::membership::effective_groups(st, device).await? {
        if let Some(g) = groups.get(name) {
            if best.is_none_or(|(i, _)| g.checkin_interval_secs < i) {
                best = Some((g.checkin_interval_secs, g.checkin_jitter));
            }
        }
    }
    Ok(best.unwrap_or((st.config.checkin.interval_secs, st.config.checkin.jitter)))
}

#[utoipa::path(post, path = "/device/v1/checkin", tag = "device", request_body = CheckinRequest,
    responses((status = 200, body = CheckinResponse), (status = 401, body = ferry_api::ErrorBody)))]
pub async fn checkin(
    State(st): S,
    DeviceAuth { mut device, director: stamp }: DeviceAuth,
    Json(req): Json<CheckinRequest>,
) -> ApiResult<Json<CheckinResponse>> {
    check_checkin(&req)?;
    let at = st.clock.now();
    let director_seen = req.director_version;
    let record = checkin_changes(&device, req, at);
    if unchanged(&device, &record) {
        st.contacts.record(&device.id, at);
    } else {
        if let Some(conflict) = &record.conflict {
            tracing::warn!(device = %device.id, conflict, "identity conflict");
        }
        st.store.record_checkin(&device.id, &record).await?;
        device.platform = record.platform;
        device.installed = record.installed;
        device.configs = record.configs;
        device.attributes = record.attributes;
    }
    // Dynamic groups see the device as it is now, just in contact.
    device.last_contact = Some(at);
    let (interval, jitter) = schedule(&st, &device).await?;
    let mut delay = next_checkin_delay(interval, jitter, rand::random::<f64>());
    let (offers, director) = if device.status == DeviceStatus::Accepted {
        let eval = offers::evaluate_at_checkin(&st, &device, at).await?;
        if eval.emergency {
            delay = delay.min(crate::rollouts::EMERGENCY_CHECKIN_SECS);
        }
        // A rollout waits for the device's maintenance window: come back as it opens.
        if let Some(opens_at) = eval.window_opens() {
            let until = opens_at.saturating_sub(at).max(0) as u64;
            delay = delay_towards_window(delay, until, WINDOW_ARRIVAL_SPREAD_SECS, rand::random::<f64>());
        }
        let offers = eval.offered().into_iter().map(|(r, deadline)| offer(r, deadline)).collect();
        let version = director::current_version(&st, &device, stamp.as_ref(), &eval, director_seen, at).await?;
        (offers, Some(director_pointer(version)))
    } else {
        (Vec::new(), None)
    };
    Ok(Json(CheckinResponse {
        device_id: device.id,
        status: device.status,
        next_checkin_secs: delay,
        next_checkin_at: at + delay as i64,
        offers,
        director,
    }))
}

fn director_pointer(version: u64) -> DirectorPointer {
    DirectorPointer {
        metadata_url: "/tuf/director/".into(),
        version,
        image_metadata_url: "/tuf/image/".into(),
        image_targets_url: "/tuf/image/targets/".into(),
    }
}

fn offer(r: &ferry_core::Release, deadline: Option<i64>) -> Offer {
    Offer {
        release: r.id,
        product: r.product.clone(),
        version: r.version.clone(),
        kind: r.kind,
        required: r.required,
        deadline,
        reboot: r.reboot,
        classification: r.classification,
        notes: r.notes.clone(),
        artifacts: r
            .artifacts
            .iter()
            .map(|a| OfferedArtifact { url: format!("{DEVICE_PREFIX}/content/{}", a.sha256), artifact: a.clone() })
            .collect(),
    }
}

/// A device reports only on releases it has a part in: one it is offered now, one it reports
/// installed (on the release's line, software or configuration), or one it has reported on
/// before (a device rolling back after the offer was withdrawn still reports how it ends).
/// Anything else would let a device write history about releases it was never given.
async fn check_reportable(st: &AppState, device: &Device, events: &[NewEvent]) -> ApiResult<()> {
    let mut releases: Vec<ReleaseId> = events.iter().map(|e| e.release).collect();
    releases.sort();
    releases.dedup();
    if releases.is_empty() {
        return Ok(());
    }
    let eval = offers::evaluate(st, device).await?;
    let offered: Vec<ReleaseId> = eval.offered().iter().map(|(r, _)| r.id).collect();
    for id in releases {
        if offered.contains(&id) {
            continue;
        }
        let release = st.store.get_release(id).await?.ok_or_else(|| {
            ApiError::not_found(format!(
                "release {id} does not exist; events must name a release the device was offered"
            ))
        })?;
        let line = if release.kind.is_config() { &device.configs } else { &device.installed };
        if line.get(&release.product) == Some(&release.version) {
            continue;
        }
        if !st.store.list_events(&device.id, Some(id), 1).await?.is_empty() {
            continue;
        }
        return Err(ApiError::new(
            ErrorCode::NotEntitled,
            format!(
                "release {id} ({} {}) is not offered to this device, not installed on it, and it has reported \
                 nothing on it before; events are accepted only for such releases, and nothing of the batch \
                 was stored",
                release.product, release.version
            ),
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/device/v1/events", tag = "device", request_body = EventBatch,
    responses((status = 200, body = AppendOutcome),
        (status = 403, body = ferry_api::ErrorBody, description = "a pending device, or a release it has no part in"),
        (status = 409, body = ferry_api::ErrorBody, description = "out of order, or a known seq with other content")))]
pub async fn events(
    State(st): S,
    DeviceAuth { device, .. }: DeviceAuth,
    Json(batch): Json<EventBatch>,
) -> ApiResult<Json<AppendOutcome>> {
    require_accepted(&device, "report events")?;
    if batch.events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "{} events sent; send at most {MAX_EVENTS} per request",
            batch.events.len()
        )));
    }
    for e in &batch.events {
        if e.seq < 1 {
            return Err(ApiError::bad_request(format!("event seq {} must be at least 1", e.seq)));
        }
        if let Some(code) = &e.error_code {
            if code.len() > MAX_SHORT_TEXT {
                return Err(too_long("error_code", code.len(), MAX_SHORT_TEXT));
            }
        }
        if let Some(m) = &e.message {
            if m.len() > MAX_MESSAGE {
                return Err(too_long("message", m.len(), MAX_MESSAGE));
            }
        }
    }
    if batch.events.windows(2).any(|w| w[0].seq >= w[1].seq) {
        return Err(ApiError::new(ErrorCode::BadRequest, "events in a batch must have strictly increasing seq"));
    }
    check_reportable(&st, &device, &batch.events).await?;
    let outcome = st.store.append_events(&device.id, &batch.events, st.clock.now()).await?;
    Ok(Json(outcome))
}
