//! One module per subcommand: an `Args` (or `Command`) type and `run()`.

pub mod check;
pub mod config;
pub mod install;
pub mod logs;
pub mod notify;
pub mod rollback;
pub mod run;
pub mod status;
