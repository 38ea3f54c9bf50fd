//! `ferry-agent rollback PRODUCT [--config-bundle] [--json]`: goes back to the version kept before the installed
//! one, through the product's handler, reports `rolled_back` to the server, and declines the
//! release so that it is not installed again without `ferry-agent install`.

use std::path::Path;

use ferry_agent::config::{Config, HandlerType};
use ferry_agent::cycle::{now, read_json, write_json, Consent, CONSENT_FILE};
use ferry_agent::events::{EventDraft, EventQueue, DEFAULT_MAX_BYTES};
use ferry_agent::exit::{Exit, Failure};
use ferry_agent::handler::command::{install_result, InstallResult, Invocation, Runner, Step};
use ferry_agent::handler::dir::DirHandler;
use ferry_agent::lock::StateLock;
use ferry_agent::state::{Installed, StateStore};
use ferry_core::{DeviceState, ProductName, ReleaseId, ReleaseKind};
use serde_json::json;

use crate::Outcome;

/// Options of `rollback`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The product to roll back.
    product: ProductName,
    /// Roll back the product's configuration bundle (its `config` releases) instead of its
    /// software. Not `--config`: that is the configuration file, before the command.
    #[arg(long)]
    config_bundle: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
pub fn run(config_path: &Path, args: &Args) -> Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    crate::init_logging(&config);
    let _lock = StateLock::try_acquire(&config.state_dir)?;
    let mut store = StateStore::new(&config.state_dir);
    let (mut state, _) = store.load().map_err(|e| Failure::new(Exit::State, e))?;
    if let Some(job) = &state.job {
        return Err(Failure::new(
            Exit::Busy,
            format!(
                "an update of {} to {} is in progress ({}); let it finish first",
                job.target.product,
                job.target.version,
                job.phase.name()
            ),
        ));
    }
    let kind = if args.config_bundle { ReleaseKind::Config } else { ReleaseKind::Full };
    let line = if args.config_bundle { &state.configs } else { &state.installed };
    let installed = line.get(&args.product).cloned().ok_or_else(|| {
        let what = if args.config_bundle { "configuration bundle" } else { "software" };
        Failure::new(
            Exit::NothingToDo,
            format!("the agent has installed no {what} of {}; `ferry-agent status` shows what it has", args.product),
        )
    })?;
    let kept = installed.kept.clone().ok_or_else(|| {
        Failure::new(
            Exit::NothingToDo,
            format!("no version of {} before {} is kept; nothing to roll back to", args.product, installed.version),
        )
    })?;
    let handler = config.handler_for(&args.product, kind).ok_or_else(|| {
        Failure::new(Exit::Config, format!("no [[handler]] installs {} releases of {}", kind.as_str(), args.product))
    })?;
    match &handler.handler_type {
        HandlerType::Dir { .. } => {
            let root = handler.dir_root(&args.product).expect("a dir handler has a root");
            DirHandler::new(root).rollback_to(&kept).map_err(|e| Failure::new(Exit::InstallFailed, e))?;
        }
        HandlerType::Command(spec) => {
            let invocation = Invocation {
                step: Step::Rollback,
                file: None,
                artifact: None,
                media_type: None,
                sha256: None,
                product: args.product.clone(),
                version: kept.clone(),
                previous_version: Some(installed.version.clone()),
                kind,
                release: installed.release.unwrap_or(ReleaseId(0)),
                attempt: 1,
                install_dir: None,
                state_dir: config.state_dir.clone(),
                work_dir: config.state_dir.join("work").join("rollback"),
            };
            let log = config.state_dir.join("logs").join(format!("{}-rollback.log", args.product));
            std::fs::create_dir_all(config.state_dir.join("logs")).map_err(|e| Failure::new(Exit::State, e))?;
            let report = crate::runtime()?
                .block_on(Runner::default().run(spec, &invocation, &log))
                .map_err(|e| Failure::new(Exit::InstallFailed, e))?;
            if !matches!(install_result(report.termination), InstallResult::Installed | InstallResult::RebootRequired) {
                return Err(Failure::new(
                    Exit::InstallFailed,
                    format!("the rollback command {}: {}", report.termination, report.excerpt),
                ));
            }
        }
    }
    let record =
        Installed { version: kept.clone(), release: None, release_counter: None, kept: None, committed_at: now() };
    let line = if args.config_bundle { &mut state.configs } else { &mut state.installed };
    line.insert(args.product.clone(), record);
    store.save(&state).map_err(|e| Failure::new(Exit::State, e))?;
    if let Some(release) = installed.release {
        let path = config.state_dir.join(CONSENT_FILE);
        let mut consent = read_json::<Consent>(&path).unwrap_or_default();
        consent.releases.remove(&release);
        consent.declined.insert(release);
        write_json(&path, &consent)?;
        let mut events =
            EventQueue::open(&config.events_file(), DEFAULT_MAX_BYTES).map_err(|e| Failure::new(Exit::State, e))?;
        let draft = EventDraft {
            release,
            state: DeviceState::RolledBack,
            progress: None,
            error_code: Some("rollback_requested".into()),
            message: Some(format!(
                "rolled back from {} to {} on the device (ferry-agent rollback)",
                installed.version, kept
            )),
            at: now(),
        };
        events.push(draft, None).map_err(|e| Failure::new(Exit::State, e))?;
    }
    let message = format!(
        "{} is back at {kept} (from {}); the server hears of it at the next check",
        args.product, installed.version
    );
    if args.json {
        println!(
            "{:#}",
            json!({"exit": 0, "result": "success", "product": args.product, "version": kept, "from": installed.version})
        );
    } else {
        println!("{message}");
    }
    Ok(Exit::Success)
}
