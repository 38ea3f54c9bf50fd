//! One module per subcommand: an `Args` (or `Command`) type and `run()`.

pub mod config;
pub mod status;
