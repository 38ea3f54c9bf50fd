//! The director's rollback instructions: which one the agent obeys now. No IO.
//!
//! The server marks a release bad; the director metadata of each device that reports running
//! it then names it in its top-level `custom.rollback` (`ferry_tuf::DirectorInstructions`),
//! signed with the chain and bound to the device. The agent reads the instructions only from
//! a chain it has just verified, and obeys one only towards its own kept version:
//!
//! - the installed record on the instruction's version line must be exactly the named release
//!   (same release id, version and counter), otherwise the instruction is ignored: it concerns
//!   a release this device does not run (any more);
//! - a version must be kept before it ([`crate::state::Installed::kept`]), otherwise there is
//!   nothing to go back to and the instruction is ignored (an administrator publishes a fixed
//!   release, which the device installs as usual);
//! - no job may be in progress (one job at a time); the instruction is looked at again at the
//!   next check.
//!
//! Obeying starts a rollback job ([`crate::engine::Engine::begin_rollback`] with
//! [`RollbackCause::Instructed`](crate::state::RollbackCause::Instructed)): it installs
//! nothing, downloads nothing, and only that job moves the release-counter floor down, to the
//! kept version's counter. Its end holds the release back, so no check installs it again by
//! itself.

use ferry_tuf::RollbackInstruction;

use crate::state::State;

/// What the agent does with one instruction now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Roll back: the device runs exactly this release and kept the version before it.
    Obey,
    /// Not now: a job is in progress (on this product, or another: one job at a time). The
    /// instruction is looked at again at the next check.
    Busy(String),
    /// Never, as things stand: the device does not run this release, or kept nothing before it.
    Ignore(String),
}

/// Decides what to do with `instruction` in `state`.
pub fn verdict(instruction: &RollbackInstruction, state: &State) -> Verdict {
    let RollbackInstruction { product, kind, release, version, counter } = instruction;
    let named = format!("{product} {version} (release {release})");
    let Some(installed) = state.installed_line(product, kind.kind()) else {
        return Verdict::Ignore(format!(
            "it names {named}, but no {} of {product} is installed here",
            line(instruction)
        ));
    };
    let exact = installed.release == Some(*release)
        && installed.version == *version
        && installed.release_counter == Some(*counter);
    if !exact {
        let runs = installed.release.map_or_else(String::new, |r| format!(" (release {r})"));
        return Verdict::Ignore(format!("it names {named}, but this device runs {}{runs}", installed.version));
    }
    if installed.kept.is_none() {
        return Verdict::Ignore(format!(
            "it names {named}, which this device runs, but no version before it is kept to go back to; \
             it stays until the server offers a fixed release"
        ));
    }
    match &state.job {
        Some(job) => Verdict::Busy(format!(
            "it names {named}, but a job on {} runs ({}); looking again at the next check",
            job.product(),
            job.phase.name()
        )),
        None => Verdict::Obey,
    }
}

/// The first instruction to obey now, if any; every other one with why it is not obeyed now.
pub fn choose<'i>(
    instructions: &'i [RollbackInstruction],
    state: &State,
) -> (Option<&'i RollbackInstruction>, Vec<(&'i RollbackInstruction, Verdict)>) {
    let mut obey = None;
    let mut others = Vec::new();
    for instruction in instructions {
        match verdict(instruction, state) {
            Verdict::Obey if obey.is_none() => obey = Some(instruction),
            // One job at a time: the next one is obeyed at the next check.
            Verdict::Obey => others.push((instruction, Verdict::Busy("another rollback starts first".to_owned()))),
            other => others.push((instruction, other)),
        }
    }
    (obey, others)
}

/// Whether an instruction waits for this device: one it would obey, or obey once its job ends.
/// A check refreshes the director metadata while one does, so that it is obeyed as soon as it
/// can be even when the server has no newer metadata.
pub fn pending(instructions: &[RollbackInstruction], state: &State) -> bool {
    instructions.iter().any(|i| matches!(verdict(i, state), Verdict::Obey | Verdict::Busy(_)))
}

fn line(instruction: &RollbackInstruction) -> &'static str {
    match instruction.kind {
        ferry_tuf::VersionLine::Software => "software",
        ferry_tuf::VersionLine::Config => "configuration bundle",
    }
}

#[cfg(test)]
mod tests {
    use ferry_core::{ProductName, ReleaseId, ReleaseKind, Version};
    use ferry_tuf::VersionLine;

    use super::*;
    use crate::state::{Installed, Job, Kept, Phase, RollbackCause, RollbackOf, Work};

    fn product() -> ProductName {
        ProductName::new("app").unwrap()
    }

    fn instruction(release: i64, version: &str, counter: i64) -> RollbackInstruction {
        RollbackInstruction {
            product: product(),
            kind: VersionLine::Software,
            release: ReleaseId(release),
            version: Version::new(version).unwrap(),
            counter,
        }
    }

    /// Runs release 2 (1.1, counter 2), with release 1 (1.0) kept when `kept`.
    fn running_v2(kept: bool) -> State {
        let mut state = State::default();
        let kept = kept.then(|| Kept {
            version: Version::new("1.0").unwrap(),
            release: Some(ReleaseId(1)),
            release_counter: Some(1),
        });
        let installed = Installed {
            version: Version::new("1.1").unwrap(),
            release: Some(ReleaseId(2)),
            release_counter: Some(2),
            kept,
            committed_at: 0,
        };
        state.installed.insert(product(), installed);
        state
    }

    #[test]
    fn only_the_exact_installed_release_with_a_kept_version_is_obeyed() {
        let state = running_v2(true);
        assert_eq!(verdict(&instruction(2, "1.1", 2), &state), Verdict::Obey);
        for other in
            [instruction(3, "1.1", 2), instruction(2, "1.2", 2), instruction(2, "1.1", 7), instruction(1, "1.0", 1)]
        {
            assert!(matches!(verdict(&other, &state), Verdict::Ignore(_)), "{other:?}");
        }
        let config = RollbackInstruction { kind: VersionLine::Config, ..instruction(2, "1.1", 2) };
        let Verdict::Ignore(why) = verdict(&config, &state) else { panic!("another version line") };
        assert!(why.contains("no configuration bundle of app"), "{why}");
        let Verdict::Ignore(why) = verdict(&instruction(2, "1.1", 2), &running_v2(false)) else { panic!() };
        assert!(why.contains("no version before it is kept"), "{why}");
        assert!(!pending(&[instruction(2, "1.1", 2)], &running_v2(false)));
        assert!(pending(&[instruction(3, "2.0", 3), instruction(2, "1.1", 2)], &state));
    }

    #[test]
    fn a_job_in_progress_postpones_the_rollback() {
        let mut state = running_v2(true);
        let from = state.installed[&product()].as_kept();
        state.job = Some(Job {
            work: Work::Rollback { rollback: RollbackOf { product: product(), kind: ReleaseKind::Full, from } },
            previous: None,
            started_at: 0,
            phase: Phase::RollingBack { cause: RollbackCause::Requested, attempts: 1 },
        });
        let one = [instruction(2, "1.1", 2)];
        let (obey, others) = choose(&one, &state);
        assert_eq!(obey, None);
        assert!(matches!(&others[0].1, Verdict::Busy(why) if why.contains("rolling_back")), "{others:?}");
        assert!(pending(&[instruction(2, "1.1", 2)], &state), "looked at again at the next check");
    }

    #[test]
    fn one_rollback_at_a_time() {
        let mut state = running_v2(true);
        let mut config = state.installed[&product()].clone();
        config.release = Some(ReleaseId(5));
        config.release_counter = Some(5);
        state.configs.insert(product(), config);
        let both =
            [instruction(2, "1.1", 2), RollbackInstruction { kind: VersionLine::Config, ..instruction(5, "1.1", 5) }];
        let (obey, others) = choose(&both, &state);
        assert_eq!(obey, Some(&both[0]));
        assert!(matches!(others.as_slice(), [(_, Verdict::Busy(_))]), "{others:?}");
    }
}
