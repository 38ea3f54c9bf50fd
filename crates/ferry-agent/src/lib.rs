//! `ferry-agent`, the device agent: small, boring, impossible to brick (SPEC R5).
//!
//! This library holds the agent's offline foundations; the binary (`src/main.rs`) is its CLI.
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
pub mod events;
pub mod exit;
pub mod handler;
pub mod maintenance;
pub mod state;
