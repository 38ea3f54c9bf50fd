//! `ferry-agent rollback PRODUCT [--config-bundle] [--json]`: goes back to the version kept before the installed
//! one. It is a rollback job of the engine ([`Engine::begin_rollback`]): saved before the
//! handler runs, resumed after a crash, reported to the server as `rolled_back` at the next
//! check, and ending with the left release held back like any rolled-back release, so that
//! `check` and `run` do not install it again by themselves; `ferry-agent install` does. Run again
//! after it was cut short, it finishes the same rollback (as the next check would).

use std::path::Path;

use ferry_agent::config::Config;
use ferry_agent::cycle::{forget_consent, now};
use ferry_agent::engine::{Engine, Rest};
use ferry_agent::events::{EventQueue, DEFAULT_MAX_BYTES};
use ferry_agent::exit::{Exit, Failure};
use ferry_agent::lock::StateLock;
use ferry_agent::state::{Outcome, RollbackCause, StateStore};
use ferry_core::{ProductName, ReleaseKind};
use serde_json::json;

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
pub fn run(config_path: &Path, args: &Args) -> crate::Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    crate::init_logging(&config);
    let _lock = StateLock::try_acquire(&config.state_dir)?;
    let mut store = StateStore::new(&config.state_dir);
    let (mut state, _) = store.load().map_err(|e| Failure::new(Exit::State, e))?;
    let kind = if args.config_bundle { ReleaseKind::Config } else { ReleaseKind::Full };
    // The same rollback, cut short (the agent was killed): finish it.
    let resumes =
        state.job.as_ref().is_some_and(|j| j.is_rollback() && *j.product() == args.product && j.kind() == kind);
    if let (Some(job), false) = (&state.job, resumes) {
        let what = if job.is_rollback() { "a rollback" } else { "an update" };
        let direction = if job.is_rollback() { "from" } else { "to" };
        return Err(Failure::new(
            Exit::Busy,
            format!(
                "{what} of {} {direction} {} is in progress ({}); let it finish first (`ferry-agent check` resumes it)",
                job.product(),
                job.version(),
                job.phase.name()
            ),
        ));
    }
    let (from, left) = match &state.job {
        Some(job) => (Some(job.version().clone()), job.release()),
        None => {
            state.installed_line(&args.product, kind).map_or((None, None), |i| (Some(i.version.clone()), i.release))
        }
    };
    // Nothing installed or kept is said by `begin_rollback`; a missing handler, before any change.
    let can_start = state.installed_line(&args.product, kind).is_some_and(|i| i.kept.is_some());
    if config.handler_for(&args.product, kind).is_none() && (resumes || can_start) {
        return Err(Failure::new(
            Exit::Config,
            format!("no [[handler]] installs {} releases of {}", kind.as_str(), args.product),
        ));
    }
    let mut events =
        EventQueue::open(&config.events_file(), DEFAULT_MAX_BYTES).map_err(|e| Failure::new(Exit::State, e))?;
    let mut engine = Engine::new(&config, &mut store, &mut state, &mut events, now());
    if !resumes {
        engine.begin_rollback(&args.product, kind, RollbackCause::Requested)?;
    }
    let rest = crate::runtime()?.block_on(engine.drive(None))?;
    let from = from.expect("a rollback began from an installed version");
    match rest {
        Rest::Idle(Some(Outcome::RolledBack { .. })) => {
            // An old consent must not undo the hold.
            if let Some(release) = left {
                forget_consent(&config.state_dir, release);
            }
        }
        Rest::Idle(Some(Outcome::Failed { message, .. })) => return Err(Failure::new(Exit::InstallFailed, message)),
        other => return Err(Failure::new(Exit::Internal, format!("the rollback stopped unfinished: {other:?}"))),
    }
    let kept = state.installed_line(&args.product, kind).map(|i| i.version.clone()).expect("the kept version");
    if args.json {
        println!(
            "{:#}",
            json!({"exit": 0, "result": "success", "product": args.product, "version": kept, "from": from})
        );
    } else {
        println!("{} is back at {kept} (from {from}); the server hears of it at the next check", args.product);
    }
    Ok(Exit::Success)
}
