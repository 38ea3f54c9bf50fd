//! Typed async client of Ferry's HTTP API, used by the `ferry` CLI, the device agent and the
//! integration tests, so that the tests exercise the code users run.
//!
//! - [`AdminClient`] speaks the admin API (`/api/v1`) with an admin token (`ferry_adm_…`).
//! - [`DeviceClient`] speaks the device API (`/device/v1`) with a device credential
//!   (`ferry_dev_…`): enrollment, check-in, status events and resumable content downloads.
//!
//! Both return the wire types of `ferry-api` and the records of `ferry-store`, and fail with
//! one error type, [`ClientError`], whose [`ClientError::Api`] variant carries the server's
//! stable [`ferry_api::ErrorCode`]. Artifacts are streamed from and to disk, never held in
//! memory.

mod admin;
mod content;
mod device;
mod error;
mod http;

pub use admin::{AdminClient, DeviceQuery};
pub use content::hash_file;
pub use device::{check_device_credential, entity_tag, ContentRange, DeviceClient, Download, DownloadOutcome};
pub use error::ClientError;
