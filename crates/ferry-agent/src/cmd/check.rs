//! `ferry-agent check [--json]`: one check now (see `ferry_agent::cycle`), with the exit code
//! saying what happened.

use std::path::Path;

use ferry_agent::config::Config;
use ferry_agent::cycle::{Agent, Report};
use ferry_agent::exit::{Exit, Failure};
use serde_json::json;

use crate::Outcome;

/// Options of `check`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(config_path: &Path, args: &Args) -> Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    crate::init_logging(&config);
    let agent = Agent::new(config)?;
    let result = crate::runtime()?.block_on(agent.check());
    print(&result, args.json);
    result.map(|r| r.exit)
}

/// Prints a check's report (or failure) as text or JSON.
pub fn print(result: &Result<Report, Failure>, json: bool) {
    match (result, json) {
        (Ok(report), false) => println!("{}", report.summary),
        (Ok(report), true) => {
            let plan = report.plan.as_ref();
            let value = json!({
                "exit": report.exit.code(),
                "result": report.exit.word(),
                "summary": report.summary,
                "next_checkin_secs": report.next_checkin.map(|d| d.as_secs()),
                "awaiting_consent": plan.map(|p| p.awaiting_consent.iter().map(|r| r.0).collect::<Vec<_>>()),
                "unassigned": plan.map(|p| p.unassigned.iter().map(|r| r.0).collect::<Vec<_>>()),
                "held_back": plan.map(|p| p.held_back.iter().map(|r| r.0).collect::<Vec<_>>()),
                "refused": plan.map(|p| p.refused.iter().map(|r| json!({"release": r.release.0, "code": r.code, "message": r.message})).collect::<Vec<_>>()),
            });
            println!("{value:#}");
        }
        (Err(failure), true) => {
            let value = json!({"exit": failure.exit.code(), "result": failure.exit.word(), "error": failure.message});
            println!("{value:#}");
        }
        (Err(_), false) => {}
    }
}
