//! `ferry-agent logs [RELEASE] [--json]`: lists the handler logs the agent keeps (install,
//! health check and rollback output, each capped), or prints those of one release.

use std::path::{Path, PathBuf};

use ferry_agent::config::Config;
use ferry_agent::exit::{Exit, Failure};
use ferry_core::ReleaseId;
use serde_json::json;

use crate::Outcome;

/// Options of `logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print the logs of this release (its id, a number); without it, list the log files.
    #[arg(value_parser = super::release_id)]
    release: Option<ReleaseId>,
    /// Print one JSON object instead of text: `{"dir", "logs": [{"file", "release", "step",
    /// "bytes"}]}`, with each log's `text` when a release is given.
    #[arg(long)]
    json: bool,
}

/// One log file: `RELEASE-STEP.log` (`PRODUCT-rollback.log` for `ferry-agent rollback`).
struct Log {
    path: PathBuf,
    release: Option<ReleaseId>,
    step: Option<String>,
    bytes: u64,
}

impl Log {
    fn new(path: PathBuf) -> Self {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (owner, step) = name.strip_suffix(".log").and_then(|s| s.rsplit_once('-')).unzip();
        let release = owner.and_then(|o| ReleaseId::parse(o).ok());
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Self { path, release, step: step.map(str::to_owned), bytes }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({"file": self.path, "release": self.release, "step": self.step, "bytes": self.bytes})
    }
}

/// Runs the subcommand.
pub fn run(config_path: &Path, args: &Args) -> Outcome {
    let result = logs(config_path, args);
    if let (Err(failure), true) = (&result, args.json) {
        println!("{:#}", json!({"exit": failure.exit.code(), "result": failure.exit.word(), "error": failure.message}));
    }
    result
}

fn logs(config_path: &Path, args: &Args) -> Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    let dir = config.state_dir.join("logs");
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Failure::new(Exit::State, format!("{}: {e}", dir.display()))),
    };
    files.sort();
    let logs: Vec<Log> = files.into_iter().map(Log::new).collect();
    let Some(release) = args.release else {
        if args.json {
            let list: Vec<_> = logs.iter().map(Log::to_json).collect();
            println!("{:#}", json!({"dir": dir, "logs": list}));
        } else if logs.is_empty() {
            println!("no handler logs in {}", dir.display());
        }
        for log in logs.iter().filter(|_| !args.json) {
            println!("{}\t{} bytes", log.path.display(), log.bytes);
        }
        return Ok(if logs.is_empty() { Exit::NothingToDo } else { Exit::Success });
    };
    let mine: Vec<&Log> = logs.iter().filter(|l| l.release == Some(release)).collect();
    if mine.is_empty() {
        return Err(Failure::new(
            Exit::NothingToDo,
            format!("no handler logs for release {release} in {}", dir.display()),
        ));
    }
    let mut shown = Vec::new();
    for log in mine {
        let bytes =
            std::fs::read(&log.path).map_err(|e| Failure::new(Exit::State, format!("{}: {e}", log.path.display())))?;
        let text = String::from_utf8_lossy(&bytes);
        if args.json {
            let mut value = log.to_json();
            value["text"] = json!(text);
            shown.push(value);
        } else {
            println!("==> {} <==", log.path.display());
            println!("{text}");
        }
    }
    if args.json {
        println!("{:#}", json!({"dir": dir, "release": release, "logs": shown}));
    }
    Ok(Exit::Success)
}
