//! `ferry-agent logs [RELEASE]`: lists the handler logs the agent keeps (install, health check
//! and rollback output, each capped), or prints those of one release.

use std::path::Path;

use ferry_agent::config::Config;
use ferry_agent::exit::{Exit, Failure};

use crate::Outcome;

/// Options of `logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the logs of this release (its id); without it, list the log files.
    release: Option<i64>,
}

/// Runs the subcommand.
pub fn run(config_path: &Path, args: &Args) -> Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    let dir = config.state_dir.join("logs");
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Failure::new(Exit::State, format!("{}: {e}", dir.display()))),
    };
    files.sort();
    let Some(release) = args.release else {
        if files.is_empty() {
            println!("no handler logs in {}", dir.display());
            return Ok(Exit::NothingToDo);
        }
        for f in &files {
            let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            println!("{}\t{size} bytes", f.display());
        }
        return Ok(Exit::Success);
    };
    let prefix = format!("{release}-");
    let mine: Vec<_> =
        files.iter().filter(|f| f.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&prefix))).collect();
    if mine.is_empty() {
        return Err(Failure::new(
            Exit::NothingToDo,
            format!("no handler logs for release {release} in {}", dir.display()),
        ));
    }
    for f in mine {
        println!("==> {} <==", f.display());
        let text = std::fs::read(f).map_err(|e| Failure::new(Exit::State, format!("{}: {e}", f.display())))?;
        println!("{}", String::from_utf8_lossy(&text));
    }
    Ok(Exit::Success)
}
