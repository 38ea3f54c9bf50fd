//! Install handlers (SPEC R5.3, R5.4): the built-in [`dir`] handler and external [`command`]s,
//! which also run health checks. Which handler installs a release is the configuration's
//! choice ([`crate::config::Config::handler_for`]).

pub mod command;
pub mod dir;
