//! `ferry-agent config default` and `ferry-agent config check [FILE]`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ferry_agent::config::{Config, DEFAULT_CONFIG};
use ferry_agent::exit::{Exit, Failure};

use crate::Outcome;

/// What to do with configuration.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the documented default configuration (every key, with its default or an example).
    Default,
    /// Check a configuration file: syntax, every value, that the files it names can be read,
    /// and that no other user can write to the state directory or a handler's root. Lists
    /// every problem at once. Exits 0 when the agent can use it, 6 otherwise.
    Check {
        /// The file; default: the `--config` file.
        file: Option<PathBuf>,
    },
}

/// Runs the subcommand.
pub fn run(config_path: &Path, command: Command) -> Outcome {
    match command {
        Command::Default => {
            print!("{DEFAULT_CONFIG}");
            Ok(Exit::Success)
        }
        Command::Check { file } => check(file.as_deref().unwrap_or(config_path)),
    }
}

/// Every problem at once: the values, the files named, and the directories the agent would
/// write to (a syntax error stops before the values can be read).
fn check(path: &Path) -> Outcome {
    let config = Config::load_checked(path).map_err(|e| Failure::new(Exit::Config, e))?;
    let handlers = config.handlers.len();
    println!(
        "{}: valid ({} handler{}, state in {})",
        path.display(),
        handlers,
        if handlers == 1 { "" } else { "s" },
        config.state_dir.display()
    );
    if handlers == 0 {
        println!("note: no [[handler]] is configured, so no release can be installed");
    }
    Ok(Exit::Success)
}
