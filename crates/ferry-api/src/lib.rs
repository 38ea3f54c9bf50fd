//! Ferry's HTTP wire format, shared by the server, the typed client, the CLI and the agent.
//!
//! Admin routes live under [`ADMIN_PREFIX`], device routes under [`DEVICE_PREFIX`]. Every 4xx
//! and 5xx answer carries an [`ErrorBody`] with a stable [`ErrorCode`] and a human message.

mod error;
pub mod trust;
mod types;
pub mod unique;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use types::*;

/// Prefix of the admin API (versioned).
pub const ADMIN_PREFIX: &str = "/api/v1";
/// Prefix of the device API (versioned).
pub const DEVICE_PREFIX: &str = "/device/v1";
/// Header carrying the SHA-256 a client expects an upload to have.
pub const SHA256_HEADER: &str = "x-ferry-sha256";
/// Prefix of admin tokens, so that the server can tell a misplaced device credential apart.
pub const ADMIN_TOKEN_PREFIX: &str = "ferry_adm_";
/// Prefix of device credentials.
pub const DEVICE_TOKEN_PREFIX: &str = "ferry_dev_";
/// Prefix of group enrollment keys.
pub const ENROLLMENT_KEY_PREFIX: &str = "ferry_enr_";
/// Prefix of the per-device enrollment key issued when an id is pre-authorised; the server
/// tells it from a group's key by this prefix.
pub const DEVICE_ENROLLMENT_KEY_PREFIX: &str = "ferry_pre_";

/// Most status events accepted in one `POST /device/v1/events` batch.
pub const MAX_EVENTS_PER_BATCH: usize = 256;
/// Longest event message (or log excerpt) accepted, in bytes.
pub const MAX_EVENT_MESSAGE_BYTES: usize = 4096;
/// Longest short text accepted from a device (an event's error code, agent version, boot id), in bytes.
pub const MAX_SHORT_TEXT_BYTES: usize = 128;
