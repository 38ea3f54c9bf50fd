//! Which offered release to install now: a pure function of the server's offers, what the
//! director assigned (already cross-checked against the image repository), what is installed,
//! the releases held back, the handlers and consent. No IO.
//!
//! The server's offers say what is *wanted* (with release notes, deadline and consent rules);
//! only the signed director assignment says what may be installed, and the job is built from the
//! image repository's signed entry, never from the offer. An offer the director does not (yet)
//! assign is skipped: the server lists releases before their signatures reach this device.
//!
//! For each offer, in the server's order:
//! - already installed at that version: skipped;
//! - held back because its job failed or was rolled back here, by the agent or by
//!   `ferry-agent rollback` ([`State::held_back`]), and not consented to since: skipped (the
//!   server was told how it ended);
//! - more than one artifact, no signed assignment, a release counter below what is installed
//!   on its version line, or no handler: refused with a reason (nothing is downloaded);
//! - optional, without consent (`ferry-agent install`) and before its deadline: waits for
//!   consent;
//! - otherwise it is the job to start. Whether it must then wait (a required release outside the
//!   maintenance window, before its deadline, is downloaded now and installed when the window
//!   opens) is the engine's decision, made again each time the job is driven.
//!
//! The first startable offer wins; one job runs at a time.

use std::collections::BTreeSet;

use ferry_api::Offer;
use ferry_core::{ArtifactName, ReleaseId, Sha256};
use ferry_tuf::FerryTarget;
use ferry_updater::VerifiedTarget;

use crate::config::Config;
use crate::state::{State, Target};

/// What to do with the offers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The job to start.
    pub start: Option<Target>,
    /// Optional releases waiting for `ferry-agent install`.
    pub awaiting_consent: Vec<ReleaseId>,
    /// Offers that cannot be installed, with a code and a reason.
    pub refused: Vec<Refusal>,
    /// Offers the director does not assign (yet).
    pub unassigned: Vec<ReleaseId>,
    /// Offers held back after they failed or were rolled back on this device.
    pub held_back: Vec<ReleaseId>,
}

/// An offer the agent will not install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The release.
    pub release: ReleaseId,
    /// Machine-readable reason: `unsupported_release`, `counter_below_installed`,
    /// `no_handler`, `malformed_target`.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

/// What the decision depends on besides the offers.
#[derive(Debug, Clone, Copy)]
pub struct Circumstances<'a> {
    /// Unix seconds now.
    pub now: i64,
    /// Releases the user consented to.
    pub consent: &'a BTreeSet<ReleaseId>,
}

/// Decides, see the module documentation.
pub fn plan(
    offers: &[Offer],
    assigned: &[VerifiedTarget],
    state: &State,
    config: &Config,
    at: Circumstances<'_>,
) -> Plan {
    let mut plan = Plan::default();
    for offer in offers {
        let installed = state.installed_line(&offer.product, offer.kind);
        if installed.is_some_and(|i| i.version == offer.version) {
            continue;
        }
        let held = state.held_back(&offer.product, offer.kind).is_some_and(|h| h.release == offer.release);
        if held && !at.consent.contains(&offer.release) {
            plan.held_back.push(offer.release);
            continue;
        }
        let refuse = |code, message: String| Refusal { release: offer.release, code, message };
        let [artifact] = offer.artifacts.as_slice() else {
            plan.refused.push(refuse(
                "unsupported_release",
                format!(
                    "{} {} has {} artifacts; this agent installs releases of exactly one",
                    offer.product,
                    offer.version,
                    offer.artifacts.len()
                ),
            ));
            continue;
        };
        let path = format!("{}/{}/{}", offer.product, offer.version, artifact.artifact.name);
        let Some(verified) = assigned.iter().find(|v| v.path == path) else {
            plan.unassigned.push(offer.release);
            continue;
        };
        let target = match target_of(offer, &artifact.artifact.name, verified) {
            Ok(t) => t,
            Err(message) => {
                plan.refused.push(refuse("malformed_target", message));
                continue;
            }
        };
        if let Some(floor) = installed.and_then(|i| i.release_counter) {
            if target.release_counter < floor {
                plan.refused.push(refuse(
                    "counter_below_installed",
                    format!(
                        "{path} has release counter {} below the installed {floor}; refusing an older release",
                        target.release_counter
                    ),
                ));
                continue;
            }
        }
        if config.handler_for(&offer.product, offer.kind).is_none() {
            plan.refused.push(refuse(
                "no_handler",
                format!("no [[handler]] installs {} releases of {}", offer.kind.as_str(), offer.product),
            ));
            continue;
        }
        let consented = at.consent.contains(&offer.release);
        let past_deadline = offer.deadline.is_some_and(|d| d <= at.now);
        if !target.required && !past_deadline && !consented {
            plan.awaiting_consent.push(offer.release);
            continue;
        }
        if plan.start.is_none() {
            plan.start = Some(target);
        }
    }
    plan
}

/// The job's target from the offer's identity and the image repository's signed entry.
fn target_of(offer: &Offer, artifact: &ArtifactName, verified: &VerifiedTarget) -> Result<Target, String> {
    let path = &verified.path;
    let ferry = FerryTarget::of(&verified.target).map_err(|e| format!("{path}: the signed entry: {e}"))?;
    let sha256 = verified
        .target
        .sha256()
        .and_then(|h| Sha256::parse(&h.to_ascii_lowercase()).ok())
        .ok_or_else(|| format!("{path}: the signed entry has no valid sha256"))?;
    let media_type = ferry.media_type.unwrap_or_else(|| "application/octet-stream".to_owned());
    let required = ferry.required.unwrap_or(offer.required);
    let reboot = ferry.reboot.unwrap_or(offer.reboot);
    Ok(Target {
        release: offer.release,
        product: offer.product.clone(),
        kind: offer.kind,
        version: offer.version.clone(),
        release_counter: ferry.release_counter,
        target_path: path.clone(),
        artifact: artifact.clone(),
        length: verified.target.length,
        sha256,
        media_type,
        required,
        reboot,
        deadline: offer.deadline,
    })
}

#[cfg(test)]
mod tests {
    use ferry_api::OfferedArtifact;
    use ferry_core::{Artifact, Classification, ProductName, RebootBehaviour, ReleaseKind, Version};
    use ferry_tuf::TargetFile;
    use serde_json::json;

    use super::*;
    use crate::state::Installed;

    const SHA: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn config() -> Config {
        let text = r#"
server_url = "http://127.0.0.1:1"
platform = "linux-x86_64"
device_id = "dev-1"
state_dir = "/var/lib/ferry-agent"
[trust]
image_root = "/etc/i.json"
director_root = "/etc/d.json"
[[handler]]
product = "app"
type = "dir"
root = "/opt/app"
"#;
        Config::parse(text).unwrap()
    }

    fn offer(id: i64, product: &str, version: &str, required: bool) -> Offer {
        Offer {
            release: ReleaseId(id),
            product: ProductName::new(product).unwrap(),
            version: Version::new(version).unwrap(),
            kind: ReleaseKind::Full,
            required,
            deadline: None,
            reboot: RebootBehaviour::None,
            classification: Classification::default(),
            notes: String::new(),
            artifacts: vec![OfferedArtifact {
                artifact: Artifact {
                    name: ArtifactName::new("app.tar.gz").unwrap(),
                    length: 10,
                    sha256: Sha256::parse(SHA).unwrap(),
                    media_type: "application/gzip".into(),
                    custom: Default::default(),
                },
                url: String::new(),
            }],
        }
    }

    fn verified(product: &str, version: &str, counter: i64, required: bool) -> VerifiedTarget {
        let custom = json!({"ferry": {"product": product, "version": version, "release_counter": counter,
            "required": required, "reboot": "none", "media_type": "application/gzip", "platforms": ["linux-x86_64"]}});
        VerifiedTarget {
            path: format!("{product}/{version}/app.tar.gz"),
            target: TargetFile::new(10, SHA, Some(custom)),
            image_role: "targets".into(),
            director_custom: None,
        }
    }

    fn at(now: i64, consent: &BTreeSet<ReleaseId>) -> Circumstances<'_> {
        Circumstances { now, consent }
    }

    #[test]
    fn a_required_assigned_release_starts_from_the_signed_entry() {
        let none = BTreeSet::new();
        let p = plan(
            &[offer(1, "app", "1.0", true)],
            &[verified("app", "1.0", 7, true)],
            &State::default(),
            &config(),
            at(0, &none),
        );
        let target = p.start.unwrap();
        assert_eq!(target.release_counter, 7);
        assert_eq!(target.target_path, "app/1.0/app.tar.gz");
        assert_eq!(target.media_type, "application/gzip");
    }

    #[test]
    fn unassigned_optional_and_unhandled_offers_do_not_start() {
        let none = BTreeSet::new();
        let offers = [offer(1, "app", "1.0", true), offer(2, "app", "1.1", false), offer(3, "other", "1.0", true)];
        let assigned = [verified("app", "1.1", 2, false), verified("other", "1.0", 1, true)];
        let p = plan(&offers, &assigned, &State::default(), &config(), at(0, &none));
        assert_eq!(p.start, None);
        assert_eq!(p.unassigned, vec![ReleaseId(1)]);
        assert_eq!(p.awaiting_consent, vec![ReleaseId(2)]);
        assert_eq!(p.refused.iter().map(|r| r.code).collect::<Vec<_>>(), vec!["no_handler"]);
    }

    #[test]
    fn consent_or_a_passed_deadline_starts_an_optional_release() {
        let consent = BTreeSet::from([ReleaseId(2)]);
        let assigned = [verified("app", "1.1", 2, false)];
        let p = plan(&[offer(2, "app", "1.1", false)], &assigned, &State::default(), &config(), at(0, &consent));
        assert_eq!(p.start.map(|t| t.release), Some(ReleaseId(2)), "consent installs it");
        let mut late = offer(2, "app", "1.1", false);
        late.deadline = Some(100);
        let none = BTreeSet::new();
        let p = plan(&[late.clone()], &assigned, &State::default(), &config(), at(99, &none));
        assert!(p.start.is_none());
        let p = plan(&[late], &assigned, &State::default(), &config(), at(100, &none));
        assert_eq!(p.start.map(|t| t.release), Some(ReleaseId(2)), "the deadline passed");
    }

    #[test]
    fn a_required_release_offered_beside_a_newer_optional_one_installs_unless_the_newer_is_consented() {
        // The server offers a line's preferred release first and a required older one after it.
        let offers = [offer(2, "app", "6.1", false), offer(1, "app", "6.0", true)];
        let assigned = [verified("app", "6.1", 2, false), verified("app", "6.0", 1, true)];
        let none = BTreeSet::new();
        let p = plan(&offers, &assigned, &State::default(), &config(), at(0, &none));
        assert_eq!(p.start.map(|t| t.release), Some(ReleaseId(1)));
        assert_eq!(p.awaiting_consent, vec![ReleaseId(2)]);
        let consent = BTreeSet::from([ReleaseId(2)]);
        let p = plan(&offers, &assigned, &State::default(), &config(), at(0, &consent));
        assert_eq!(p.start.map(|t| t.release), Some(ReleaseId(2)), "straight to the consented newer one");
    }

    #[test]
    fn a_lower_counter_than_installed_is_refused_and_the_installed_version_skipped() {
        let none = BTreeSet::new();
        let mut state = State::default();
        state.installed.insert(
            ProductName::new("app").unwrap(),
            Installed {
                version: Version::new("2.0").unwrap(),
                release: None,
                release_counter: Some(5),
                kept: None,
                committed_at: 0,
            },
        );
        let offers = [offer(1, "app", "2.0", true), offer(2, "app", "1.0", true)];
        let assigned = [verified("app", "2.0", 5, true), verified("app", "1.0", 4, true)];
        let p = plan(&offers, &assigned, &state, &config(), at(0, &none));
        assert_eq!(p.start, None);
        assert_eq!(p.refused.len(), 1);
        assert_eq!(p.refused[0].code, "counter_below_installed");
        assert_eq!(p.refused[0].release, ReleaseId(2));
    }

    /// Release 1, app 1.0, held back with `outcome`.
    fn app_1_0_held(outcome: crate::state::Outcome) -> crate::state::HeldBack {
        crate::state::HeldBack {
            release: ReleaseId(1),
            product: ProductName::new("app").unwrap(),
            kind: ReleaseKind::Full,
            version: Version::new("1.0").unwrap(),
            outcome,
            at: 0,
        }
    }

    /// Rolled back on the device by `ferry-agent rollback` or on the server's instruction (a
    /// release marked bad): offered and assigned again, it is still not installed by itself.
    #[test]
    fn a_release_rolled_back_on_the_device_waits_for_consent_even_when_required() {
        let none = BTreeSet::new();
        for code in ["rollback_requested", "rollback_instructed"] {
            let mut state = State::default();
            state.hold_back(app_1_0_held(crate::state::Outcome::RolledBack { code: code.into(), message: "m".into() }));
            let offers = [offer(1, "app", "1.0", true)];
            let assigned = [verified("app", "1.0", 1, true)];
            let p = plan(&offers, &assigned, &state, &config(), at(0, &none));
            assert_eq!((p.start, p.held_back), (None, vec![ReleaseId(1)]), "{code}");
            let consent = BTreeSet::from([ReleaseId(1)]);
            assert!(plan(&offers, &assigned, &state, &config(), at(0, &consent)).start.is_some(), "{code}");
        }
    }

    #[test]
    fn a_release_held_back_is_not_started_again_without_consent() {
        let none = BTreeSet::new();
        let mut state = State::default();
        state.hold_back(app_1_0_held(crate::state::Outcome::failed("install_failed", "damaged archive")));
        let assigned = [verified("app", "1.0", 1, true), verified("app", "1.1", 2, true)];
        let p = plan(&[offer(1, "app", "1.0", true)], &assigned, &state, &config(), at(0, &none));
        assert_eq!((p.start, p.held_back, p.awaiting_consent), (None, vec![ReleaseId(1)], vec![]));
        let consent = BTreeSet::from([ReleaseId(1)]);
        let p = plan(&[offer(1, "app", "1.0", true)], &assigned, &state, &config(), at(0, &consent));
        assert_eq!(p.start.map(|t| t.release), Some(ReleaseId(1)), "ferry-agent install retries it");
        let p = plan(&[offer(2, "app", "1.1", true)], &assigned, &state, &config(), at(0, &none));
        assert_eq!(p.start.map(|t| t.release), Some(ReleaseId(2)), "a newer release is installed");
    }

    #[test]
    fn multi_artifact_releases_are_refused() {
        let none = BTreeSet::new();
        let mut o = offer(1, "app", "1.0", true);
        o.artifacts.push(o.artifacts[0].clone());
        let p = plan(&[o], &[verified("app", "1.0", 1, true)], &State::default(), &config(), at(0, &none));
        assert_eq!(p.refused[0].code, "unsupported_release");
    }
}
