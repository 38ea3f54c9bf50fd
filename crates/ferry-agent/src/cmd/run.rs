//! `ferry-agent run`: the daemon. Checks at start (so after every boot, once the service
//! starts), then when the server says, with the server's jitter; after a failure it backs off
//! exponentially with full jitter, up to [`MAX_BACKOFF`] (see [`next_delay`]). A release whose
//! install failed or was rolled back is held back by the agent's state, so the checks that
//! follow do not install it again ([`ferry_agent::state::State::held_back`]). SIGTERM or SIGINT
//! stops it at once:
//! the state machine makes stopping mid-update as safe as a crash, and the next start resumes.
//! The state directory's lock is held only during a check, so `ferry-agent install` and
//! `rollback` can run between checks.
//!
//! While it sleeps until the next check it keeps one long poll open to the server (the wake
//! channel, `checkin.wake_channel`): when the server answers that an administrator asked for a
//! check (`ferry device check-now`), it checks at once. A server without the channel (404) is
//! not asked again until after the next check; other failures back off like failed checks.

use std::path::Path;
use std::time::Duration;

use ferry_agent::config::Config;
use ferry_agent::cycle::{Agent, Report};
use ferry_agent::exit::{Exit, Failure};
use rand::Rng as _;
use tokio::signal::unix::{signal, SignalKind};

use crate::Outcome;

/// First retry delay after a failed check.
pub const BASE_BACKOFF: Duration = Duration::from_secs(5);
/// Longest delay between failed checks.
pub const MAX_BACKOFF: Duration = Duration::from_secs(900);
/// Delay before the next check after an update ended, to take the next one.
pub const AFTER_UPDATE: Duration = Duration::from_secs(1);
/// Delay used when the server has not said (it always does on success).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// Longest one long poll of the wake channel asks the server to hold it: below the HTTP
/// client's 60-second read timeout.
pub const WAKE_WAIT_SECS: u64 = 50;
/// A wait the server answers sooner than this without waking the device counts as a failure,
/// so that a server answering at once is not asked again in a tight loop.
const WAKE_MIN_WAIT: Duration = Duration::from_secs(1);

/// Options of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the random delay before the first check (`checkin.initial_jitter_secs`).
    #[arg(long)]
    no_initial_jitter: bool,
}

/// Runs the subcommand until SIGTERM or SIGINT.
pub fn run(config_path: &Path, args: &Args) -> Outcome {
    let config = Config::load(config_path).map_err(|e| Failure::new(Exit::Config, e))?;
    crate::init_logging(&config);
    let initial = if args.no_initial_jitter { Duration::ZERO } else { jitter(config.initial_jitter) };
    let agent = Agent::new(config)?;
    crate::runtime()?.block_on(daemon(agent, initial))
}

async fn daemon(agent: Agent, initial: Duration) -> Outcome {
    let mut term = signal(SignalKind::terminate()).map_err(|e| Failure::new(Exit::Internal, e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| Failure::new(Exit::Internal, e))?;
    tracing::info!(server = %agent.config().server_url, state_dir = %agent.config().state_dir.display(), "ferry-agent started");
    let mut delay = initial;
    let mut failures: u32 = 0;
    loop {
        if !delay.is_zero() {
            tracing::debug!(secs = delay.as_secs(), "next check");
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = woken(&agent) => tracing::info!("the server asked for a check now"),
            _ = term.recv() => return stopped("SIGTERM"),
            _ = int.recv() => return stopped("SIGINT"),
        }
        let result = tokio::select! {
            r = agent.check() => r,
            _ = term.recv() => return stopped("SIGTERM"),
            _ = int.recv() => return stopped("SIGINT"),
        };
        match &result {
            Ok(report) => tracing::info!(result = report.exit.word(), "{}", report.summary),
            Err(failure) => tracing::warn!(result = failure.exit.word(), "{failure}"),
        }
        delay = next_delay(&result, &mut failures);
        if failures > 0 {
            tracing::warn!(failures, retry_in_secs = delay.as_secs(), "backing off");
        }
    }
}

/// The wait before the next check after `result`, counting consecutive failures in
/// `failures`. A check that failed, or whose update failed, was rolled back or did not verify,
/// backs off ([`backoff`]); the release of a failed or rolled-back update is held back by then,
/// so the next check does not install it again. A commit checks again soon, for the next
/// update; any other result resets the count and waits for the server's interval.
pub fn next_delay(result: &Result<Report, Failure>, failures: &mut u32) -> Duration {
    let exit = match result {
        Ok(report) => report.exit,
        Err(failure) => failure.exit,
    };
    match (result, exit) {
        (Err(_), _) | (Ok(_), Exit::RolledBack | Exit::InstallFailed | Exit::VerificationFailed) => {
            *failures = failures.saturating_add(1);
            backoff(*failures)
        }
        (Ok(_), Exit::Updated) => {
            *failures = 0;
            AFTER_UPDATE
        }
        (Ok(report), _) => {
            *failures = 0;
            report.next_checkin.unwrap_or(DEFAULT_INTERVAL)
        }
    }
}

/// Resolves when the server asks for a check through the wake channel; never when the channel
/// is off, the device is not enrolled yet or the server does not offer it.
async fn woken(agent: &Agent) {
    if !agent.config().wake_channel {
        return std::future::pending().await;
    }
    let mut failures: u32 = 0;
    loop {
        let started = tokio::time::Instant::now();
        let pause = match agent.wait_for_wake(WAKE_WAIT_SECS).await {
            Ok(Some(answer)) if answer.wake => return,
            Ok(Some(answer)) => match answer.retry_after_secs {
                Some(secs) => {
                    tracing::debug!(secs, "the server has no room for the wake channel now");
                    Duration::from_secs(secs.max(1))
                }
                None if started.elapsed() < WAKE_MIN_WAIT => {
                    failures = failures.saturating_add(1);
                    backoff(failures)
                }
                None => {
                    failures = 0;
                    Duration::ZERO
                }
            },
            Ok(None) => return std::future::pending().await,
            Err(ferry_client::ClientError::Api { status: 404, .. }) => {
                tracing::debug!("the server offers no wake channel; checking on schedule only");
                return std::future::pending().await;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = backoff(failures);
                tracing::debug!(error = %e, retry_in_secs = pause.as_secs(), "wake channel failed");
                pause
            }
        };
        tokio::time::sleep(pause).await;
    }
}

fn stopped(signal: &str) -> Outcome {
    tracing::info!("{signal}: stopping; an update in progress resumes at the next start");
    Ok(Exit::Success)
}

/// A uniformly random delay in `[0, max]`.
fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return max;
    }
    Duration::from_millis(rand::thread_rng().gen_range(0..=max.as_millis() as u64))
}

/// Full-jitter exponential backoff: random in `[0, min(MAX, BASE × 2^(failures-1))]`, at least a second.
pub fn backoff(failures: u32) -> Duration {
    let exp = BASE_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    jitter(exp.min(MAX_BACKOFF)).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(exit: Exit) -> Result<Report, Failure> {
        Ok(Report { exit, summary: String::new(), next_checkin: Some(Duration::from_secs(3600)), plan: None })
    }

    /// Updates that keep failing (a download that never verifies, a handler that cannot start)
    /// back off like an unreachable server, instead of a check every second; a success resets.
    #[test]
    fn failed_updates_back_off_and_a_success_resets() {
        let mut failures = 0;
        for (n, exit) in [Exit::VerificationFailed, Exit::InstallFailed, Exit::RolledBack].into_iter().enumerate() {
            let delay = next_delay(&report(exit), &mut failures);
            assert_eq!(failures, n as u32 + 1, "{exit:?}");
            assert!(delay <= BASE_BACKOFF.saturating_mul(1 << n), "{exit:?}: {delay:?}");
        }
        assert!(next_delay(&Err(Failure::new(Exit::Unreachable, "down")), &mut failures) >= Duration::from_secs(1));
        assert_eq!(failures, 4);
        assert_eq!(next_delay(&report(Exit::NothingToDo), &mut failures), Duration::from_secs(3600));
        assert_eq!(failures, 0);
        next_delay(&report(Exit::RolledBack), &mut failures);
        assert_eq!(next_delay(&report(Exit::Updated), &mut failures), AFTER_UPDATE);
        assert_eq!(failures, 0);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for failures in 1..40 {
            let cap = BASE_BACKOFF.saturating_mul(1 << (failures - 1).min(16)).min(MAX_BACKOFF);
            for _ in 0..20 {
                let d = backoff(failures);
                assert!(d <= cap.max(Duration::from_secs(1)), "{failures}: {d:?} > {cap:?}");
                assert!(d >= Duration::from_secs(1));
            }
        }
    }
}
