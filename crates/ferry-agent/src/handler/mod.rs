//! Install handlers: the built-in [`dir`] handler and external [`command`]s,
//! which also run health checks. Which handler installs a release is the configuration's
//! choice ([`crate::config::Config::handler_for`]).

pub mod command;
pub mod dir;
