//! `ferry-agent status [--json]`: what is installed, where the update in progress stands,
//! which releases are held back after they failed here, and how many status events wait to be
//! sent. Reads the state without changing anything, so it is safe while the agent runs.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_agent::config::Config;
use ferry_agent::events::{EventQueue, Summary};
use ferry_agent::exit::{Exit, Failure};
use ferry_agent::state::{self, HeldBack, Installed, Job, Phase, Source, State, StateStore, MAX_ATTEMPTS};
use ferry_core::time::format_unix;
use ferry_core::ProductName;
use serde_json::json;

use crate::Outcome;

/// Options of `status`.
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
    let (state, source) = StateStore::peek(&config.state_dir).map_err(|e| Failure::new(Exit::State, e))?;
    let events = EventQueue::inspect(&config.events_file()).map_err(|e| Failure::new(Exit::State, e))?;
    if args.json {
        println!("{:#}", to_json(&config, &state, &source, &events));
    } else {
        print_text(&config, &state, &source, &events);
    }
    match source {
        Source::Reset { reason } => Err(Failure::new(
            Exit::State,
            format!("{reason}; the agent will set both files aside and start afresh, keeping what the install directories show"),
        )),
        Source::Backup { reason } => {
            eprintln!("warning: {reason}; shown is the previous state from state.json.bak, which the agent resumes from");
            Ok(Exit::Success)
        }
        Source::Primary | Source::Fresh => Ok(Exit::Success),
    }
}

fn source_word(source: &Source) -> &'static str {
    match source {
        Source::Primary => "primary",
        Source::Backup { .. } => "backup",
        Source::Fresh => "fresh",
        Source::Reset { .. } => "reset",
    }
}

fn to_json(config: &Config, state: &State, source: &Source, events: &Summary) -> serde_json::Value {
    let problem = match source {
        Source::Backup { reason } | Source::Reset { reason } => Some(reason.as_str()),
        Source::Primary | Source::Fresh => None,
    };
    json!({
        "state_file": config.state_file(),
        "state_source": source_word(source),
        "state_problem": problem,
        "phase": state.phase_name(),
        "job": state.job,
        "installed": state.installed,
        "configs": state.configs,
        "held_back": state.held_back,
        "events": {
            "pending": events.pending,
            "last_seq": events.last_seq,
            "dropped": events.dropped,
            "oldest_at": events.oldest_at,
        },
    })
}

fn print_text(config: &Config, state: &State, source: &Source, events: &Summary) {
    let origin = match source {
        Source::Fresh => " (none yet: nothing installed by the agent)",
        Source::Backup { .. } => " (unreadable; showing state.json.bak)",
        Source::Reset { .. } => " (unreadable, and so is the backup)",
        Source::Primary => "",
    };
    println!("state:     {}{origin}", config.state_file().display());
    match &state.job {
        None => println!("update:    none in progress"),
        Some(job) => print_job(job),
    }
    print_lines("installed", &state.installed);
    print_lines("configs", &state.configs);
    for held in &state.held_back {
        print_held_back(held);
    }
    let mut queue = format!("{} waiting to be sent", events.pending);
    if let Some(at) = events.oldest_at {
        queue.push_str(&format!(", oldest from {}", format_unix(at)));
    }
    if events.dropped > 0 {
        queue.push_str(&format!("; {} dropped when the queue was full", events.dropped));
    }
    println!("events:    {queue}");
}

fn print_job(job: &Job) {
    let previous = job.previous.as_ref().map_or("nothing".to_owned(), ToString::to_string);
    let Some(t) = job.target() else {
        let from =
            job.release().map_or_else(|| job.version().to_string(), |r| format!("{} (release {r})", job.version()));
        println!(
            "rollback:  {} {} from {from} to {previous}, started {}",
            job.product(),
            job.kind().as_str(),
            format_unix(job.started_at)
        );
        println!("phase:     {}", describe(&job.phase));
        return;
    };
    println!(
        "update:    {} {} (release {}, {}{}), replacing {previous}, started {}",
        t.product,
        t.version,
        t.release,
        t.kind.as_str(),
        if t.required { ", required" } else { ", optional" },
        format_unix(job.started_at)
    );
    println!("phase:     {}", describe(&job.phase));
}

fn describe(phase: &Phase) -> String {
    match phase {
        Phase::Downloading { bytes } => format!("downloading ({bytes} bytes so far)"),
        Phase::Downloaded { deferred: None } => "downloaded and verified".to_owned(),
        Phase::Downloaded { deferred: Some(d) } => format!("downloaded, deferred: {}", deferral(d)),
        Phase::Installing { attempts } => format!("installing (attempt {attempts} of {MAX_ATTEMPTS})"),
        Phase::Switching => "switching to the new version".to_owned(),
        Phase::Installed { reboot_pending: true, .. } => "installed, waiting for a reboot".to_owned(),
        Phase::Installed { health_checks, .. } => format!("installed, health check {health_checks} of {MAX_ATTEMPTS}"),
        Phase::Committing => "committing".to_owned(),
        Phase::RollingBack { cause, attempts } => {
            format!("rolling back (attempt {attempts} of {MAX_ATTEMPTS}): {}", cause.message())
        }
        Phase::Reporting { outcome } => format!("finished: {}, reporting it", outcome.device_state().as_str()),
    }
}

fn deferral(d: &ferry_agent::state::Deferral) -> String {
    use ferry_agent::state::Deferral;
    match d {
        Deferral::Window => "outside the maintenance window".to_owned(),
        Deferral::RetryLater { not_before } => format!("the handler asked to retry after {}", format_unix(*not_before)),
    }
}

fn print_held_back(held: &HeldBack) {
    let how = match &held.outcome {
        state::Outcome::RolledBack { code, .. } => format!("rolled back ({code})"),
        state::Outcome::Failed { code, .. } => format!("failed ({code})"),
        state::Outcome::Committed => "committed".to_owned(),
    };
    let r = held.release;
    println!(
        "held back: {} {} (release {r}, {}): {how} {}; not installed again by itself; `ferry-agent logs {r}` shows why, `ferry-agent install {r}` tries it again",
        held.product,
        held.version,
        held.kind.as_str(),
        format_unix(held.at)
    );
}

fn print_lines(label: &str, lines: &BTreeMap<ProductName, Installed>) {
    if lines.is_empty() {
        println!("{:<10} none", format!("{label}:"));
        return;
    }
    println!("{label}:");
    for (product, installed) in lines {
        let mut detail = Vec::new();
        if let Some(release) = installed.release {
            detail.push(format!("release {release}"));
        }
        if let Some(kept) = &installed.kept {
            detail.push(format!("kept {kept}"));
        }
        detail.push(format!("committed {}", format_unix(installed.committed_at)));
        println!("  {product} {} ({})", installed.version, detail.join(", "));
    }
}
