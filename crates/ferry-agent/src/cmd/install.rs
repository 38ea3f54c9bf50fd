//! `ferry-agent install RELEASE [--json]`: consent to an optional release and
//! install it now. The consent is recorded in `STATE_DIR/consent.json` first, so that when the
//! daemon is in the middle of a check (exit 14) it installs the release at its next one.

use std::path::Path;

use ferry_agent::config::Config;
use ferry_agent::cycle::{read_json, write_json, Agent, Consent, CONSENT_FILE};
use ferry_agent::exit::{Exit, Failure};
use ferry_core::ReleaseId;

use crate::Outcome;

/// Options of `install`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The release id (a number), as `ferry-agent notify` or `ferry-agent status` shows it.
    #[arg(value_parser = super::release_id)]
    release: ReleaseId,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(config_path: &Path, args: &Args) -> Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    crate::init_logging(&config);
    let release = args.release;
    let path = config.state_dir.join(CONSENT_FILE);
    std::fs::create_dir_all(&config.state_dir)
        .map_err(|e| Failure::new(Exit::State, format!("{}: {e}", config.state_dir.display())))?;
    let mut consent = read_json::<Consent>(&path).unwrap_or_default();
    consent.declined.remove(&release);
    consent.releases.insert(release);
    write_json(&path, &consent)?;
    let agent = Agent::new(config)?;
    let result = crate::runtime()?.block_on(agent.check());
    match &result {
        Err(f) if f.exit == Exit::Busy => {
            let message =
                format!("consent to release {release} recorded; the running agent installs it at its next check");
            if args.json {
                println!(
                    "{:#}",
                    serde_json::json!({"exit": Exit::Deferred.code(), "result": "deferred", "summary": message})
                );
            } else {
                println!("{message}");
            }
            return Ok(Exit::Deferred);
        }
        Ok(report) if report.exit == Exit::NothingToDo || report.exit == Exit::Deferred => {
            let offered = report.plan.as_ref().is_some_and(|p| {
                p.awaiting_consent.contains(&release)
                    || p.unassigned.contains(&release)
                    || p.refused.iter().any(|r| r.release == release)
            });
            if !offered {
                let failure = Failure::new(
                    Exit::NothingToDo,
                    format!("release {release} is not offered to this device; `ferry-agent notify` lists what is"),
                );
                super::check::print(&Err(failure.clone()), args.json);
                return Err(failure);
            }
        }
        _ => {}
    }
    super::check::print(&result, args.json);
    result.map(|r| r.exit)
}
