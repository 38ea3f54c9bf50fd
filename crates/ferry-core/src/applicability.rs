//! Which releases apply to a device now.
//!
//! The server gathers the device's facts and the releases approved or declined for its groups,
//! and this module decides, per release, whether to offer it and, if not, why. Keeping the "why"
//! lets administrators ask why a device is not getting a release.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::{Release, ReleaseId, ReleaseKind};
use crate::names::{PlatformName, ProductName};
use crate::rollout::{Refusal, RolloutId};
use crate::version::Version;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// What a device has told the server about itself.
#[derive(Debug, Clone, Copy)]
pub struct DeviceFacts<'a> {
    /// The one platform the device runs.
    pub platform: Option<&'a PlatformName>,
    /// Installed software version per product.
    pub installed: &'a BTreeMap<ProductName, Version>,
    /// Installed configuration-bundle version per product.
    pub configs: &'a BTreeMap<ProductName, Version>,
}

impl DeviceFacts<'_> {
    fn installed_for(&self, release: &Release) -> Option<&Version> {
        let line = if release.kind.is_config() { self.configs } else { self.installed };
        line.get(&release.product)
    }
}

/// The approval in force for a release across the device's groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// Approved for install; an optional deadline (unix seconds) after which it installs
    /// without consent.
    Install {
        /// Unix seconds.
        deadline: Option<i64>,
    },
    /// Declined for at least one of the device's groups.
    Decline,
    /// Not approved, but a staged rollout targets the device and has not granted it the
    /// release (yet).
    Staged(Staged),
    /// Not approved for any of the device's groups.
    NotApproved,
}

/// Why a staged rollout has not granted a device its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Staged {
    /// The rollout.
    pub rollout: RolloutId,
    /// The device's wave in it (0-based).
    pub wave: u32,
    /// Why not now; none when the device is admitted and is granted at its next check-in
    /// if the rollout's limits allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<Refusal>,
}

impl Approval {
    /// Combines the approvals of several groups (and rollouts): a decline anywhere wins (the
    /// conservative choice), then install with the earliest deadline, then a rollout's wait.
    pub fn combine(self, other: Approval) -> Approval {
        use Approval::*;
        match (self, other) {
            (Decline, _) | (_, Decline) => Decline,
            (Install { deadline: a }, Install { deadline: b }) => Install {
                deadline: match (a, b) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                },
            },
            (i @ Install { .. }, _) | (_, i @ Install { .. }) => i,
            (s @ Staged(_), _) | (_, s @ Staged(_)) => s,
            (NotApproved, NotApproved) => NotApproved,
        }
    }
}

/// A release under consideration with its combined approval.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The release.
    pub release: &'a Release,
    /// Its approval for this device.
    pub approval: Approval,
}

/// The outcome for one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Verdict {
    /// Offered to the device.
    Offer {
        /// Unix seconds after which it installs without consent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deadline: Option<i64>,
    },
    /// The device's platform is not among the release's platforms (or is unknown).
    WrongPlatform,
    /// The device already runs this version.
    AlreadyInstalled,
    /// The installed version is listed as needing no update.
    NoUpdateNeeded,
    /// The device runs a newer version.
    NewerInstalled,
    /// A patch whose range does not include the installed version (or nothing is installed).
    OutsidePatchRange,
    /// Not approved for any of the device's groups.
    NotApproved,
    /// Declined for one of the device's groups.
    Declined,
    /// A staged rollout targets the device but has not granted it the release.
    AwaitingRollout(Staged),
    /// Archived by an administrator: offered to no device.
    Archived,
    /// Marked bad by an administrator: offered to no device, and devices running it are told
    /// to go back to the version they kept.
    MarkedBad,
    /// Another offered release replaces it.
    Superseded {
        /// The release that replaces it.
        by: ReleaseId,
    },
}

/// The decision for one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Decision {
    /// The release.
    pub release: ReleaseId,
    /// What was decided.
    #[serde(flatten)]
    pub verdict: Verdict,
}

fn verdict_alone(device: &DeviceFacts<'_>, c: &Candidate<'_>) -> Verdict {
    use std::cmp::Ordering::*;
    let r = c.release;
    if r.bad.is_some() {
        return Verdict::MarkedBad;
    }
    if r.archived {
        return Verdict::Archived;
    }
    if !device.platform.is_some_and(|p| r.platforms.contains(p)) {
        return Verdict::WrongPlatform;
    }
    let installed = device.installed_for(r);
    if let Some(inst) = installed {
        if *inst == r.version {
            return Verdict::AlreadyInstalled;
        }
        if r.no_update_versions.contains(inst) {
            return Verdict::NoUpdateNeeded;
        }
        if inst.cmp_rank(&r.version) != Less {
            return Verdict::NewerInstalled;
        }
    }
    if r.kind == ReleaseKind::Patch {
        let in_range = match (&r.applies_to, installed) {
            (Some(range), Some(inst)) => range.contains(inst),
            _ => false,
        };
        if !in_range {
            return Verdict::OutsidePatchRange;
        }
    }
    match c.approval {
        Approval::Install { deadline } => Verdict::Offer { deadline },
        Approval::Decline => Verdict::Declined,
        Approval::Staged(staged) => Verdict::AwaitingRollout(staged),
        Approval::NotApproved => Verdict::NotApproved,
    }
}

/// Whether a device needs a release, ignoring approvals: the rollout's bookkeeping counts
/// the devices that need it or already run it, and no others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// It would be offered if approved.
    Needs,
    /// It runs this version already.
    Has,
    /// It does not apply (platform, newer version installed, patch range, archived).
    NotApplicable,
}

/// See [`Need`].
pub fn need(device: &DeviceFacts<'_>, release: &Release) -> Need {
    match verdict_alone(device, &Candidate { release, approval: Approval::Install { deadline: None } }) {
        Verdict::Offer { .. } => Need::Needs,
        Verdict::AlreadyInstalled => Need::Has,
        _ => Need::NotApplicable,
    }
}

/// Whether `a` should be offered in preference to `b` (same product and line).
fn preferred(a: &Release, b: &Release) -> bool {
    if a.supersedes.contains(&b.version) {
        return true;
    }
    if b.supersedes.contains(&a.version) {
        return false;
    }
    // The newest wins; at the same rank a patch (a smaller download) beats a full release.
    match a.version.cmp_rank(&b.version) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            (a.kind == ReleaseKind::Patch, std::cmp::Reverse(a.id))
                > (b.kind == ReleaseKind::Patch, std::cmp::Reverse(b.id))
        }
    }
}

/// Whether an offered release `a` makes offering `b` as well unnecessary: `a` installs
/// without consent at least as soon as `b` would. A required release installs at the next
/// maintenance window, any release at its deadline; an optional one without a deadline never
/// installs without consent, so anything covers it.
fn covers(a: (&Release, Option<i64>), b: (&Release, Option<i64>)) -> bool {
    let (a, a_deadline) = a;
    let (b, b_deadline) = b;
    (a.required || !b.required) && b_deadline.is_none_or(|b| a_deadline.is_some_and(|a| a <= b))
}

/// The most preferred of `indexes` (see [`preferred`]), by a linear scan so that an explicit
/// `supersedes` that contradicts the version order cannot upset a sort.
fn most_preferred(candidates: &[Candidate<'_>], indexes: &[usize]) -> Option<usize> {
    indexes
        .iter()
        .copied()
        .reduce(|best, i| if preferred(candidates[i].release, candidates[best].release) { i } else { best })
}

/// The offered indexes of each product line (product, is_config), in candidate order.
fn lines<'c>(candidates: &[Candidate<'c>], decisions: &[Decision]) -> Vec<Vec<usize>> {
    let mut lines: Vec<((&'c ProductName, bool), Vec<usize>)> = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if !matches!(decisions[i].verdict, Verdict::Offer { .. }) {
            continue;
        }
        let key = (&c.release.product, c.release.kind.is_config());
        match lines.iter_mut().find(|(k, _)| *k == key) {
            Some((_, line)) => line.push(i),
            None => lines.push((key, vec![i])),
        }
    }
    lines.into_iter().map(|(_, line)| line).collect()
}

/// Decides every candidate. Per product line (software and configuration separately) the
/// release that supersedes or outranks the others is offered. A release the device must
/// install without consent (required, or approved with a deadline) is offered as well unless
/// an offered release already installs without consent as soon: an optional newer release
/// never hides a required older one, so the device reaches at least the required version by
/// its deadline and may go further with consent. The rest are marked superseded by the
/// line's preferred release.
pub fn decide(device: &DeviceFacts<'_>, candidates: &[Candidate<'_>]) -> Vec<Decision> {
    let mut decisions: Vec<Decision> =
        candidates.iter().map(|c| Decision { release: c.release.id, verdict: verdict_alone(device, c) }).collect();
    let deadline = |decisions: &[Decision], i: usize| match decisions[i].verdict {
        Verdict::Offer { deadline } => deadline,
        _ => None,
    };
    for line in lines(candidates, &decisions) {
        let Some(best) = most_preferred(candidates, &line) else { continue };
        let mut offered = vec![best];
        let mut rest: Vec<usize> = line.into_iter().filter(|&i| i != best).collect();
        loop {
            let uncovered: Vec<usize> = rest
                .iter()
                .copied()
                .filter(|&i| {
                    !offered.iter().any(|&o| {
                        covers(
                            (candidates[o].release, deadline(&decisions, o)),
                            (candidates[i].release, deadline(&decisions, i)),
                        )
                    })
                })
                .collect();
            let Some(next) = most_preferred(candidates, &uncovered) else { break };
            offered.push(next);
            rest.retain(|&i| i != next);
        }
        for i in rest {
            decisions[i].verdict = Verdict::Superseded { by: candidates[best].release.id };
        }
    }
    decisions
}

/// The offered releases in install order: the releases of one product line together, the
/// preferred one first (so that a device that consented to it installs it rather than an
/// older required release offered beside it), and a release after the offered releases of the
/// products it depends on. Dependency cycles keep their catalogue order.
pub fn offers<'a>(candidates: &[Candidate<'a>], decisions: &[Decision]) -> Vec<&'a Release> {
    let mut pending: Vec<&Release> = Vec::new();
    for mut line in lines(candidates, decisions) {
        while let Some(i) = most_preferred(candidates, &line) {
            pending.push(candidates[i].release);
            line.retain(|&j| j != i);
        }
    }
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|r| {
            !r.dependencies.iter().any(|d| pending.iter().any(|o| o.id != r.id && o.product == d.product))
        });
        ordered.push(pending.remove(ready.unwrap_or(0)));
    }
    ordered
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::catalogue::*;

    fn release(id: i64, product: &str, version: &str, kind: ReleaseKind) -> Release {
        Release {
            id: ReleaseId(id),
            product: product.parse().unwrap(),
            version: version.parse().unwrap(),
            kind,
            platforms: vec!["linux-x86_64".parse().unwrap()],
            artifacts: vec![],
            required: false,
            reboot: RebootBehaviour::None,
            classification: Classification::Feature,
            notes: String::new(),
            dependencies: vec![],
            supersedes: vec![],
            no_update_versions: vec![],
            applies_to: None,
            counter: id,
            created_at: 0,
            archived: false,
            bad: None,
        }
    }

    fn installed(pairs: &[(&str, &str)]) -> BTreeMap<ProductName, Version> {
        pairs.iter().map(|(p, v)| (p.parse().unwrap(), v.parse().unwrap())).collect()
    }

    const APPROVED: Approval = Approval::Install { deadline: None };

    fn verdicts(device: &DeviceFacts<'_>, rs: &[(&Release, Approval)]) -> Vec<Verdict> {
        let cs: Vec<Candidate<'_>> = rs.iter().map(|(r, a)| Candidate { release: r, approval: *a }).collect();
        decide(device, &cs).into_iter().map(|d| d.verdict).collect()
    }

    #[test]
    fn each_reason_is_reported() {
        let linux: PlatformName = "linux-x86_64".parse().unwrap();
        let inst = installed(&[("agent", "2.0"), ("fw", "1.0")]);
        let none = BTreeMap::new();
        let dev = DeviceFacts { platform: Some(&linux), installed: &inst, configs: &none };

        let mut other_platform = release(1, "vpn", "1.0", ReleaseKind::Full);
        other_platform.platforms = vec!["windows-x86_64".parse().unwrap()];
        let same = release(2, "agent", "2.0", ReleaseKind::Full);
        let older = release(3, "agent", "1.9", ReleaseKind::Full);
        let mut revisions = release(4, "agent", "2.1", ReleaseKind::Full);
        revisions.no_update_versions = vec!["2.0".parse().unwrap()];
        let mut patch = release(5, "fw", "1.2", ReleaseKind::Patch);
        patch.applies_to = Some(VersionRange { min: Some("1.1".parse().unwrap()), max: None });
        let declined = release(6, "tool", "1.0", ReleaseKind::Full);
        let unapproved = release(7, "tool2", "1.0", ReleaseKind::Full);
        let mut archived = release(8, "tool3", "1.0", ReleaseKind::Full);
        archived.archived = true;
        // Marked bad wins over everything else, archived included.
        let mut bad = release(9, "tool4", "1.0", ReleaseKind::Full);
        bad.archived = true;
        bad.bad = Some(BadMark { at: 1, reason: "corrupts the cache".to_owned(), by: "ops".to_owned() });

        let got = verdicts(
            &dev,
            &[
                (&other_platform, APPROVED),
                (&same, APPROVED),
                (&older, APPROVED),
                (&revisions, APPROVED),
                (&patch, APPROVED),
                (&declined, Approval::Decline),
                (&unapproved, Approval::NotApproved),
                (&archived, APPROVED),
                (&bad, APPROVED),
            ],
        );
        assert_eq!(
            got,
            vec![
                Verdict::WrongPlatform,
                Verdict::AlreadyInstalled,
                Verdict::NewerInstalled,
                Verdict::NoUpdateNeeded,
                Verdict::OutsidePatchRange,
                Verdict::Declined,
                Verdict::NotApproved,
                Verdict::Archived,
                Verdict::MarkedBad,
            ]
        );
    }

    #[test]
    fn unknown_platform_gets_nothing() {
        let none = BTreeMap::new();
        let dev = DeviceFacts { platform: None, installed: &none, configs: &none };
        let r = release(1, "agent", "1.0", ReleaseKind::Full);
        assert_eq!(verdicts(&dev, &[(&r, APPROVED)]), vec![Verdict::WrongPlatform]);
    }

    #[test]
    fn patch_in_range_is_offered_and_beats_full_of_same_version() {
        let linux: PlatformName = "linux-x86_64".parse().unwrap();
        let inst = installed(&[("fw", "1.1.5")]);
        let none = BTreeMap::new();
        let dev = DeviceFacts { platform: Some(&linux), installed: &inst, configs: &none };
        let full = release(1, "fw", "1.2", ReleaseKind::Full);
        let mut patch = release(2, "fw", "1.2", ReleaseKind::Patch);
        patch.applies_to =
            Some(VersionRange { min: Some("1.1".parse().unwrap()), max: Some("1.1.9".parse().unwrap()) });
        assert_eq!(
            verdicts(&dev, &[(&full, APPROVED), (&patch, APPROVED)]),
            vec![Verdict::Superseded { by: ReleaseId(2) }, Verdict::Offer { deadline: None }]
        );
    }

    #[test]
    fn newest_wins_and_explicit_supersedes_is_honoured() {
        let linux: PlatformName = "linux-x86_64".parse().unwrap();
        let none = BTreeMap::new();
        let dev = DeviceFacts { platform: Some(&linux), installed: &none, configs: &none };
        let a = release(1, "agent", "1.0", ReleaseKind::Full);
        let b = release(2, "agent", "1.1", ReleaseKind::Full);
        assert_eq!(
            verdicts(&dev, &[(&a, APPROVED), (&b, APPROVED)]),
            vec![Verdict::Superseded { by: ReleaseId(2) }, Verdict::Offer { deadline: None }]
        );
        // An explicit supersedes overrides version rank (a re-issued build).
        let mut fix = release(3, "agent", "1.0.9", ReleaseKind::Full);
        fix.supersedes = vec!["1.1".parse().unwrap()];
        assert_eq!(
            verdicts(&dev, &[(&b, APPROVED), (&fix, APPROVED)]),
            vec![Verdict::Superseded { by: ReleaseId(3) }, Verdict::Offer { deadline: None }]
        );
    }

    #[test]
    fn config_bundles_have_their_own_line() {
        let linux: PlatformName = "linux-x86_64".parse().unwrap();
        let inst = installed(&[("vpn", "5.0")]);
        let cfg = installed(&[("vpn", "3")]);
        let dev = DeviceFacts { platform: Some(&linux), installed: &inst, configs: &cfg };
        let config = release(1, "vpn", "4", ReleaseKind::Config);
        let software = release(2, "vpn", "5.1", ReleaseKind::Full);
        assert_eq!(
            verdicts(&dev, &[(&config, APPROVED), (&software, APPROVED)]),
            vec![Verdict::Offer { deadline: None }, Verdict::Offer { deadline: None }]
        );
    }

    #[test]
    fn decline_wins_when_groups_disagree() {
        let install = Approval::Install { deadline: Some(50) };
        assert_eq!(install.combine(Approval::Decline), Approval::Decline);
        assert_eq!(Approval::NotApproved.combine(install), install);
        assert_eq!(install.combine(Approval::Install { deadline: Some(10) }), Approval::Install { deadline: Some(10) });
        assert_eq!(Approval::Install { deadline: None }.combine(install), Approval::Install { deadline: Some(50) });
    }

    fn linux() -> PlatformName {
        "linux-x86_64".parse().unwrap()
    }

    #[test]
    fn an_optional_newer_release_does_not_hide_a_required_older_one() {
        let linux = linux();
        let none = BTreeMap::new();
        let dev = DeviceFacts { platform: Some(&linux), installed: &none, configs: &none };
        let mut required = release(1, "vpn", "6.0", ReleaseKind::Full);
        required.required = true;
        let optional = release(2, "vpn", "6.1", ReleaseKind::Full);
        let by_deadline = Approval::Install { deadline: Some(1_000) };
        assert_eq!(
            verdicts(&dev, &[(&required, by_deadline), (&optional, APPROVED)]),
            vec![Verdict::Offer { deadline: Some(1_000) }, Verdict::Offer { deadline: None }]
        );
        // The newer one comes first, so a device that consented to it goes straight there.
        let cs = [
            Candidate { release: &required, approval: by_deadline },
            Candidate { release: &optional, approval: APPROVED },
        ];
        let order: Vec<_> = offers(&cs, &decide(&dev, &cs)).iter().map(|r| r.id).collect();
        assert_eq!(order, vec![ReleaseId(2), ReleaseId(1)]);

        // An optional release approved with a deadline must be reached by then, too.
        let older = release(3, "vpn", "5.0", ReleaseKind::Full);
        assert_eq!(
            verdicts(&dev, &[(&older, by_deadline), (&optional, APPROVED)]),
            vec![Verdict::Offer { deadline: Some(1_000) }, Verdict::Offer { deadline: None }]
        );
        // Once the newer release installs without consent as soon, it alone is offered.
        let mut newer_required = release(4, "vpn", "6.2", ReleaseKind::Full);
        newer_required.required = true;
        assert_eq!(
            verdicts(&dev, &[(&required, APPROVED), (&newer_required, APPROVED)]),
            vec![Verdict::Superseded { by: ReleaseId(4) }, Verdict::Offer { deadline: None }]
        );
        assert_eq!(
            verdicts(&dev, &[(&older, by_deadline), (&optional, Approval::Install { deadline: Some(999) })]),
            vec![Verdict::Superseded { by: ReleaseId(2) }, Verdict::Offer { deadline: Some(999) }]
        );
        // A later deadline on the newer one does not bring the device to the older one in time.
        assert_eq!(
            verdicts(&dev, &[(&older, by_deadline), (&optional, Approval::Install { deadline: Some(2_000) })]),
            vec![Verdict::Offer { deadline: Some(1_000) }, Verdict::Offer { deadline: Some(2_000) }]
        );
        // Optional releases below the preferred one stay superseded.
        let plain = release(5, "vpn", "5.5", ReleaseKind::Full);
        assert_eq!(
            verdicts(&dev, &[(&plain, APPROVED), (&required, APPROVED), (&optional, APPROVED)]),
            vec![
                Verdict::Superseded { by: ReleaseId(2) },
                Verdict::Offer { deadline: None },
                Verdict::Offer { deadline: None }
            ]
        );
    }

    fn arb_line() -> impl Strategy<Value = Vec<(u8, bool, Option<i64>)>> {
        prop::collection::vec((0u8..6, any::<bool>(), prop::option::of(0i64..4)), 1..7)
    }

    proptest! {
        /// Whatever the mix, the preferred release is offered and every release that must
        /// install without consent is offered or covered by an offered one that installs no
        /// later; at most one offer waits for consent.
        #[test]
        fn the_device_always_reaches_every_required_release(line in arb_line()) {
            let linux = linux();
            let none = BTreeMap::new();
            let dev = DeviceFacts { platform: Some(&linux), installed: &none, configs: &none };
            let releases: Vec<Release> = line
                .iter()
                .enumerate()
                .map(|(i, (minor, required, _))| {
                    let mut r = release(i as i64 + 1, "vpn", &format!("6.{minor}.{i}"), ReleaseKind::Full);
                    r.required = *required;
                    r
                })
                .collect();
            let cs: Vec<Candidate<'_>> = releases
                .iter()
                .zip(&line)
                .map(|(r, (_, _, deadline))| Candidate { release: r, approval: Approval::Install { deadline: *deadline } })
                .collect();
            let ds = decide(&dev, &cs);
            let offered: Vec<(&Release, Option<i64>)> = cs
                .iter()
                .zip(&ds)
                .filter_map(|(c, d)| match d.verdict { Verdict::Offer { deadline } => Some((c.release, deadline)), _ => None })
                .collect();
            let highest = releases.iter().max_by(|a, b| a.version.cmp(&b.version)).unwrap();
            prop_assert!(offered.iter().any(|(r, _)| r.id == highest.id));
            for (c, (_, _, deadline)) in cs.iter().zip(&line) {
                prop_assert!(offered.iter().any(|o| covers(*o, (c.release, *deadline))));
            }
            prop_assert!(offered.iter().filter(|(r, d)| !r.required && d.is_none()).count() <= 1);
        }
    }

    proptest! {
        /// A release marked bad is never offered, never named as the one that supersedes
        /// another, and the rest of its line is decided as if it did not exist: marking a
        /// release bad withdraws it and nothing else.
        #[test]
        fn a_bad_release_is_withdrawn_and_changes_nothing_else(line in arb_line(), bad in prop::collection::vec(any::<bool>(), 7)) {
            let linux = linux();
            let none = BTreeMap::new();
            let dev = DeviceFacts { platform: Some(&linux), installed: &none, configs: &none };
            let releases: Vec<Release> = line
                .iter()
                .enumerate()
                .map(|(i, (minor, required, _))| {
                    let mut r = release(i as i64 + 1, "vpn", &format!("6.{minor}.{i}"), ReleaseKind::Full);
                    r.required = *required;
                    if bad[i] {
                        r.bad = Some(BadMark { at: 0, reason: "bad".to_owned(), by: "ops".to_owned() });
                    }
                    r
                })
                .collect();
            let approval = |(_, _, deadline): &(u8, bool, Option<i64>)| Approval::Install { deadline: *deadline };
            let all: Vec<Candidate<'_>> =
                releases.iter().zip(&line).map(|(r, l)| Candidate { release: r, approval: approval(l) }).collect();
            let good: Vec<Candidate<'_>> = all.iter().copied().filter(|c| c.release.bad.is_none()).collect();
            let with_bad = decide(&dev, &all);
            let without = decide(&dev, &good);
            let mut rest = without.iter();
            for (c, d) in all.iter().zip(&with_bad) {
                if c.release.bad.is_some() {
                    prop_assert_eq!(&d.verdict, &Verdict::MarkedBad);
                } else {
                    prop_assert_eq!(Some(d), rest.next());
                }
                if let Verdict::Superseded { by } = d.verdict {
                    prop_assert!(releases.iter().any(|r| r.id == by && r.bad.is_none()));
                }
            }
        }
    }

    #[test]
    fn dependencies_come_first() {
        let linux: PlatformName = "linux-x86_64".parse().unwrap();
        let none = BTreeMap::new();
        let dev = DeviceFacts { platform: Some(&linux), installed: &none, configs: &none };
        let mut app = release(1, "app", "2.0", ReleaseKind::Full);
        app.dependencies = vec![Dependency { product: "runtime".parse().unwrap(), min_version: "3".parse().unwrap() }];
        let runtime = release(2, "runtime", "3.1", ReleaseKind::Full);
        let cs = [Candidate { release: &app, approval: APPROVED }, Candidate { release: &runtime, approval: APPROVED }];
        let ds = decide(&dev, &cs);
        let order: Vec<_> = offers(&cs, &ds).iter().map(|r| r.id).collect();
        assert_eq!(order, vec![ReleaseId(2), ReleaseId(1)]);
    }
}
