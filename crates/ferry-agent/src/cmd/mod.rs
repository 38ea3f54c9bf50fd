//! One module per subcommand: an `Args` (or `Command`) type and `run()`.

pub mod check;
pub mod config;
pub mod install;
pub mod logs;
pub mod notify;
pub mod rollback;
pub mod run;
pub mod status;

use ferry_core::ReleaseId;

/// Parses a release id argument, saying what one looks like and where to find them.
pub fn release_id(s: &str) -> Result<ReleaseId, String> {
    ReleaseId::parse(s).map_err(|e| {
        format!(
            "{e}; `ferry-agent notify` lists the releases waiting for consent, `ferry-agent status` those held back"
        )
    })
}
