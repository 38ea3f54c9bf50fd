//! Credentials: admin tokens with roles and per-device credentials.
//!
//! Secrets are 256-bit random values with a kind prefix (`ferry_adm_`, `ferry_dev_`,
//! `ferry_enr_`). The store keeps only their SHA-256: with that much entropy a fast hash is as
//! safe as a slow one, and it keeps authentication off the hot path's CPU budget. The prefix
//! lets the server tell a misplaced credential from an unknown one.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use ferry_api::{ErrorCode, ADMIN_TOKEN_PREFIX, DEVICE_TOKEN_PREFIX};
use ferry_core::{Device, DeviceStatus, Role};
use ferry_store::{CredentialMatch, DirectorStamp};
use sha2::Digest;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A fresh secret: `prefix` followed by 64 hex digits of randomness.
pub fn new_secret(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

/// The stored form of a secret: hex SHA-256.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

fn wrong_kind(message: &str) -> ApiError {
    ApiError::new(ErrorCode::WrongCredentialKind, message)
}

/// The caller of an admin route.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Token name.
    pub name: String,
    /// Token role.
    pub role: Role,
}

impl Admin {
    /// Refuses the request unless the token's role is at least `role`.
    pub fn require(&self, role: Role) -> ApiResult<()> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "token {:?} has role {}; this action needs {} or higher",
                    self.name,
                    self.role.as_str(),
                    role.as_str()
                ),
            ))
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let token = bearer(parts)
            .ok_or_else(|| unauthorized("this route needs an admin token: send Authorization: Bearer ferry_adm_…"))?;
        if token.starts_with(DEVICE_TOKEN_PREFIX) {
            return Err(wrong_kind("a device credential cannot be used on admin routes; use an admin token"));
        }
        if !token.starts_with(ADMIN_TOKEN_PREFIX) {
            return Err(unauthorized("the admin token is not valid; tokens start with ferry_adm_"));
        }
        let stored = state.store.admin_token_by_hash(&hash_secret(token)).await?;
        let stored = stored.ok_or_else(|| unauthorized("the admin token is unknown or revoked"))?;
        Ok(Admin { name: stored.name, role: stored.role })
    }
}

/// The device calling a device route.
#[derive(Debug, Clone)]
pub struct DeviceAuth {
    /// The device.
    pub device: Device,
    /// Its current director version, loaded with the credential (see [`director::current_version`](crate::trust::director::current_version)).
    pub director: Option<DirectorStamp>,
}

impl FromRequestParts<Arc<AppState>> for DeviceAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        let token = bearer(parts).ok_or_else(|| {
            unauthorized("this route needs a device credential: send Authorization: Bearer ferry_dev_…")
        })?;
        if token.starts_with(ADMIN_TOKEN_PREFIX) {
            return Err(wrong_kind("an admin token cannot be used on device routes; use the device's credential"));
        }
        if !token.starts_with(DEVICE_TOKEN_PREFIX) {
            return Err(unauthorized("the device credential is not valid; credentials start with ferry_dev_"));
        }
        let found = state.credentials.find(hash_secret(token)).await?;
        let CredentialMatch { device, director } =
            found.ok_or_else(|| unauthorized("the device credential is unknown; enroll again"))?;
        if device.status == DeviceStatus::Rejected {
            return Err(ApiError::new(ErrorCode::DeviceRejected, "this device was rejected by an administrator"));
        }
        Ok(DeviceAuth { device, director })
    }
}

/// Refuses a device an administrator has not accepted: a pending device may check in (to
/// learn that it is accepted) but reads no update metadata and reports no events, so that a
/// device enrolled without a key costs the server nothing more until someone vouches for it.
pub fn require_accepted(device: &Device, what: &str) -> ApiResult<()> {
    if device.status == DeviceStatus::Accepted {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::Forbidden,
        format!(
            "device {} is {} and cannot {what} until an administrator accepts it (`ferry device accept {}`)",
            device.id,
            device.status.as_str(),
            device.id
        ),
    ))
}

/// The caller of a route open to both kinds of credential (the TUF repositories' metadata).
#[derive(Debug, Clone)]
pub enum Caller {
    /// An admin token (any role).
    Admin(Admin),
    /// A device credential.
    Device(Box<Device>),
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> ApiResult<Self> {
        match bearer(parts) {
            Some(t) if t.starts_with(DEVICE_TOKEN_PREFIX) => {
                Ok(Self::Device(Box::new(DeviceAuth::from_request_parts(parts, state).await?.device)))
            }
            Some(_) => Ok(Self::Admin(Admin::from_request_parts(parts, state).await?)),
            None => Err(unauthorized(
                "this route needs a device credential or an admin token: send Authorization: Bearer …",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_hash_stably() {
        let a = new_secret(ADMIN_TOKEN_PREFIX);
        let b = new_secret(ADMIN_TOKEN_PREFIX);
        assert!(a.starts_with("ferry_adm_") && a.len() == 10 + 64);
        assert_ne!(a, b);
        assert_eq!(hash_secret(&a), hash_secret(&a));
        assert_ne!(hash_secret(&a), hash_secret(&b));
        assert_eq!(hash_secret(&a).len(), 64);
    }
}
