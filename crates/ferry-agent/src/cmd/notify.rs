//! `ferry-agent notify [--json]`: what waits for this device: optional releases
//! waiting for `ferry-agent install`, with their release notes, and the update in progress.
//! Reads what the last check saved; safe while the agent runs. Exits 0 when something waits,
//! 3 when nothing does.

use std::path::Path;

use ferry_agent::config::Config;
use ferry_agent::cycle::{read_json, SavedOffers, OFFERS_FILE};
use ferry_agent::exit::{Exit, Failure};
use ferry_agent::state::StateStore;
use ferry_core::time::format_unix;
use serde_json::json;

use crate::Outcome;

/// Options of `notify`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(config_path: &Path, args: &Args) -> Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    ferry_agent::lock::check_state_dir(&config.state_dir)?;
    let (state, _) = StateStore::peek(&config.state_dir).map_err(|e| Failure::new(Exit::State, e))?;
    let saved = read_json::<SavedOffers>(&config.state_dir.join(OFFERS_FILE)).unwrap_or_default();
    let waiting: Vec<_> = saved.offers.iter().filter(|o| saved.awaiting_consent.contains(&o.release)).collect();
    if args.json {
        let offers: Vec<_> = waiting
            .iter()
            .map(|o| {
                json!({"release": o.release.0, "product": o.product, "version": o.version, "kind": o.kind,
                    "classification": o.classification, "deadline": o.deadline, "reboot": o.reboot, "notes": o.notes})
            })
            .collect();
        let value = json!({
            "checked_at": (saved.at > 0).then_some(saved.at),
            "awaiting_consent": offers,
            "in_progress": state.job.as_ref().map(|j| json!({
                "release": j.release().map(|r| r.0), "product": j.product(), "version": j.version(),
                "job": if j.is_rollback() { "rollback" } else { "update" }, "phase": j.phase.name()})),
        });
        println!("{value:#}");
    } else {
        if saved.at == 0 {
            println!("no check yet: run `ferry-agent check`");
        }
        if let Some(job) = &state.job {
            let what = if job.is_rollback() { "rollback from " } else { "" };
            println!("in progress: {what}{} {} ({})", job.product(), job.version(), job.phase.name());
        }
        if waiting.is_empty() {
            println!("no optional update waits for consent");
        }
        for o in &waiting {
            let deadline =
                o.deadline.map(|d| format!(", installs by itself after {}", format_unix(d))).unwrap_or_default();
            println!("release {}: {} {} ({:?}{deadline})", o.release, o.product, o.version, o.classification);
            for line in o.notes.lines() {
                println!("    {line}");
            }
            println!("    install with: ferry-agent install {}", o.release);
        }
    }
    Ok(if waiting.is_empty() && state.job.is_none() { Exit::NothingToDo } else { Exit::Success })
}
