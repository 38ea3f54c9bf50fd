//! `ferry-agent`, the device agent: small, boring, impossible to brick.
//!
//! The binary (`src/main.rs`) is the CLI; this library is everything it runs.
//! - [`cycle`]: one check: enroll, check in, deliver events, refresh the signed metadata,
//!   choose an offer ([`plan`]) and run the job ([`engine`]).
//! - [`instructed`]: which of the director's signed rollback instructions to obey.
//! - [`net`]: the HTTP client (proxy, timeouts), the stored credential, error classes.
//! - [`lock`]: one agent per state directory.
//! - [`config`]: the TOML configuration, its validation and the documented default file.
//! - [`state`]: the persistent update state machine and what a restart does in each phase.
//! - [`events`]: the on-disk queue of status events, with sequence numbers that survive
//!   restarts.
//! - [`handler`]: the built-in `dir` handler and external commands (installs, health checks).
//! - [`maintenance`]: maintenance windows.
//! - [`exit`]: the CLI's stable exit codes.
//! - [`atomic`]: crash-safe file writes.
//!
//! Verification of metadata and downloads is `ferry-updater`'s; the agent installs only files
//! it has verified.

pub mod atomic;
pub mod config;
pub mod cycle;
pub mod engine;
pub mod events;
pub mod exit;
pub mod handler;
pub mod instructed;
pub mod lock;
pub mod maintenance;
pub mod net;
pub mod plan;
pub mod state;
