//! Checking a drafted next version of a targets role before anyone signs it.
//!
//! A draft comes from the server, which a publisher's offline keys must not trust blindly: a
//! compromised server could slip other targets, other hashes for published targets, or other
//! delegations into it. So before a draft is signed (or written for an offline signer) it is
//! compared with the version of the role the server publishes (verified from the root up with
//! [`crate::TrustedSet`]), and it may differ only by the releases asked for, a version one up and
//! a fresh expiry.

use std::collections::BTreeSet;

use crate::metadata::{Delegations, TargetFile, Targets};
use crate::time::{format_expires, parse_expires};

/// How far past the requested expiry a draft may expire: clocks differ.
pub const EXPIRY_SLACK_SECS: i64 = 86_400;

/// What a draft may hold beyond the published version.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The target paths of the releases asked for: the only entries the draft may add.
    pub allowed: &'a BTreeSet<String>,
    /// Whether the draft must list every one of them (the releases were named, not defaulted).
    pub complete: bool,
    /// Unix seconds.
    pub now: i64,
    /// Days until the draft should expire.
    pub expires_days: u32,
}

/// Why a draft is refused: each difference found, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftRefused(pub Vec<String>);

impl std::fmt::Display for DraftRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("; "))
    }
}

impl std::error::Error for DraftRefused {}

/// Checks `draft`, the next version of a targets role, against `current`, the version
/// published now (`None`: none is). The draft must be the next version; keep the delegations
/// and every published entry exactly as they are; add only entries of the releases asked for
/// (all of them, when they were named); and expire in the future, no later than the days asked
/// for (plus a day for clocks that differ). Returns the target paths it adds.
pub fn check_draft(
    current: Option<&Targets>,
    draft: &Targets,
    expected: &Expected<'_>,
) -> Result<Vec<String>, DraftRefused> {
    let mut problems = Vec::new();
    let next = current.map_or(1, |c| c.version.saturating_add(1));
    if draft.version != next {
        problems.push(match current {
            Some(c) => format!(
                "it is version {} but the published version is {}, so the next is {next}",
                draft.version, c.version
            ),
            None => format!("it is version {} but no version is published yet, so the first is 1", draft.version),
        });
    }

    let published_delegations = current.and_then(|c| c.delegations.as_ref());
    if published_delegations != draft.delegations.as_ref() {
        problems.push(format!(
            "it changes the delegations ({}); only `ferry targets delegate` changes them",
            delegation_changes(published_delegations, draft.delegations.as_ref())
        ));
    }
    let no_fields = serde_json::Map::new();
    let published_fields = current.map_or(&no_fields, |c| &c.unrecognized);
    if published_fields != &draft.unrecognized {
        let mut names: BTreeSet<&String> = published_fields.keys().chain(draft.unrecognized.keys()).collect();
        names.retain(|name| published_fields.get(*name) != draft.unrecognized.get(*name));
        let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
        problems.push(format!("it changes the field(s) {}", names.join(", ")));
    }

    for (path, entry) in current.map(|c| &c.targets).into_iter().flatten() {
        match draft.targets.get(path) {
            None => problems.push(format!("it removes the published target {path}")),
            Some(drafted) if drafted != entry => {
                problems.push(format!("it changes the published target {path} ({})", entry_changes(entry, drafted)));
            }
            Some(_) => {}
        }
    }
    let mut added = Vec::new();
    for path in draft.targets.keys().filter(|p| current.is_none_or(|c| !c.targets.contains_key(*p))) {
        if expected.allowed.contains(path) {
            added.push(path.clone());
        } else {
            problems.push(format!("it adds the target {path}, which belongs to none of the releases asked for"));
        }
    }
    if expected.complete {
        for path in expected.allowed.iter().filter(|p| !draft.targets.contains_key(*p)) {
            problems.push(format!("it leaves out the target {path} of a release asked for"));
        }
    }

    let latest = expected.now + i64::from(expected.expires_days) * 86_400 + EXPIRY_SLACK_SECS;
    match parse_expires(&draft.expires) {
        Err(_) => problems.push(format!("its expiry {:?} is not a TUF time", draft.expires)),
        Ok(at) if at <= expected.now => problems.push(format!("it expired at {}", draft.expires)),
        Ok(at) if at > latest => problems.push(format!(
            "it expires at {}, later than the {} day(s) asked for (by {})",
            draft.expires,
            expected.expires_days,
            format_expires(latest)
        )),
        Ok(_) => {}
    }
    if problems.is_empty() {
        Ok(added)
    } else {
        Err(DraftRefused(problems))
    }
}

/// What differs between two delegations, briefly.
fn delegation_changes(old: Option<&Delegations>, new: Option<&Delegations>) -> String {
    let (old, new) = match (old, new) {
        (None, Some(new)) => {
            let names: Vec<&str> = new.roles.iter().map(|r| r.name.as_str()).collect();
            return format!(
                "it adds delegations to {}",
                if names.is_empty() { "no role".to_owned() } else { names.join(", ") }
            );
        }
        (Some(_), None) => return "it removes every delegation".to_owned(),
        (Some(old), Some(new)) => (old, new),
        (None, None) => return "none".to_owned(),
    };
    let mut changes = Vec::new();
    for role in &new.roles {
        match old.roles.iter().find(|r| r.name == role.name) {
            None => changes.push(format!("role {} added", role.name)),
            Some(before) if before != role => changes.push(format!("role {} changed", role.name)),
            Some(_) => {}
        }
    }
    for role in old.roles.iter().filter(|r| !new.roles.iter().any(|n| n.name == r.name)) {
        changes.push(format!("role {} removed", role.name));
    }
    let names = |d: &Delegations| d.roles.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
    if changes.is_empty() && names(old) != names(new) {
        changes.push("roles reordered".to_owned());
    }
    if old.keys != new.keys {
        changes.push("keys changed".to_owned());
    }
    if old.unrecognized != new.unrecognized {
        changes.push("other fields changed".to_owned());
    }
    changes.join(", ")
}

/// Which parts of a target entry differ.
fn entry_changes(old: &TargetFile, new: &TargetFile) -> String {
    let mut parts = Vec::new();
    if old.length != new.length {
        parts.push(format!("length {} -> {}", old.length, new.length));
    }
    if old.hashes != new.hashes {
        parts.push("hashes".to_owned());
    }
    if old.custom != new.custom {
        parts.push("custom".to_owned());
    }
    if old.unrecognized != new.unrecognized {
        parts.push("other fields".to_owned());
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::{KeyKind, SigningKey};
    use crate::metadata::DelegatedRole;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    fn entry(product: &str, version: &str, digest: char) -> TargetFile {
        let custom = json!({ "ferry": { "product": product, "version": version, "release_counter": 1 } });
        TargetFile::new(1000, &digest.to_string().repeat(64), Some(custom))
    }

    /// Targets metadata `version` expiring 365 days from [`NOW`], listing `entries`.
    fn targets(version: u64, entries: &[(&str, TargetFile)]) -> Targets {
        let mut t = Targets::new(version, format_expires(NOW + 365 * DAY));
        t.targets = entries.iter().map(|(path, e)| ((*path).to_owned(), e.clone())).collect();
        t
    }

    fn delegation(name: &str) -> Delegations {
        let key = SigningKey::generate(KeyKind::Ed25519).unwrap().public().clone();
        Delegations {
            keys: [(key.key_id(), key.clone())].into(),
            roles: vec![DelegatedRole {
                name: name.to_owned(),
                keyids: vec![key.key_id()],
                threshold: 1,
                terminating: false,
                paths: Some(vec![format!("{name}/*/*")]),
                path_hash_prefixes: None,
            }],
            unrecognized: Default::default(),
        }
    }

    fn paths(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    const OLD: &str = "vpn-client/4.0/vpn-client-4.0.bin";
    const NEW: &str = "vpn-client/5.0/vpn-client-5.0.bin";

    /// Published version 3 with vpn-client 4.0 and a delegation, and the draft of version 4
    /// adding vpn-client 5.0, as the server makes it.
    fn published_and_draft() -> (Targets, Targets) {
        let mut current = targets(3, &[(OLD, entry("vpn-client", "4.0", 'a'))]);
        current.delegations = Some(delegation("gateway"));
        let mut draft = current.clone();
        draft.version = 4;
        draft.expires = format_expires(NOW + 365 * DAY);
        draft.targets.insert(NEW.to_owned(), entry("vpn-client", "5.0", 'b'));
        (current, draft)
    }

    fn check(
        current: Option<&Targets>,
        draft: &Targets,
        allowed: &BTreeSet<String>,
    ) -> Result<Vec<String>, DraftRefused> {
        check_draft(current, draft, &Expected { allowed, complete: true, now: NOW, expires_days: 365 })
    }

    /// Asserts a refusal with exactly one problem, containing each of `words`.
    #[track_caller]
    fn assert_refused(result: Result<Vec<String>, DraftRefused>, words: &[&str]) {
        let refused = result.expect_err("the draft must be refused");
        assert_eq!(refused.0.len(), 1, "{refused}");
        for word in words {
            assert!(refused.0[0].contains(word), "{word:?} not in {refused}");
        }
    }

    #[test]
    fn a_good_draft_is_accepted_and_lists_what_it_adds() {
        let (current, draft) = published_and_draft();
        assert_eq!(check(Some(&current), &draft, &paths(&[NEW])), Ok(vec![NEW.to_owned()]));
        // A release already signed, asked for again, is carried over unchanged and adds nothing.
        assert_eq!(check(Some(&current), &draft, &paths(&[OLD, NEW])), Ok(vec![NEW.to_owned()]));
        // Renewing the expiry only: nothing asked for, nothing added.
        let mut renewal = current.clone();
        renewal.version = 4;
        renewal.expires = format_expires(NOW + 30 * DAY);
        let expected = Expected { allowed: &BTreeSet::new(), complete: true, now: NOW, expires_days: 30 };
        assert_eq!(check_draft(Some(&current), &renewal, &expected), Ok(vec![]));
    }

    #[test]
    fn a_first_draft_is_version_1_with_only_the_releases_asked_for() {
        let first = targets(1, &[(NEW, entry("vpn-client", "5.0", 'b'))]);
        assert_eq!(check(None, &first, &paths(&[NEW])), Ok(vec![NEW.to_owned()]));
        assert_refused(
            check(None, &targets(2, &[(NEW, entry("vpn-client", "5.0", 'b'))]), &paths(&[NEW])),
            &["version 2", "no version is published"],
        );
        let extra = targets(1, &[(NEW, entry("vpn-client", "5.0", 'b')), (OLD, entry("vpn-client", "4.0", 'a'))]);
        assert_refused(
            check(None, &extra, &paths(&[NEW])),
            &["adds the target vpn-client/4.0/", "none of the releases"],
        );
        let mut delegating = first.clone();
        delegating.delegations = Some(delegation("gateway"));
        assert_refused(check(None, &delegating, &paths(&[NEW])), &["delegations", "adds delegations to gateway"]);
    }

    #[test]
    fn an_entry_of_no_release_asked_for_is_refused() {
        let (current, mut draft) = published_and_draft();
        draft.targets.insert("vpn-client/6.0/evil.bin".to_owned(), entry("vpn-client", "6.0", 'e'));
        assert_refused(check(Some(&current), &draft, &paths(&[NEW])), &["adds the target vpn-client/6.0/evil.bin"]);
        // Nothing asked for (`--no-releases`): nothing may be added.
        let (current, draft) = published_and_draft();
        assert_refused(check(Some(&current), &draft, &BTreeSet::new()), &[NEW]);
    }

    #[test]
    fn a_changed_or_removed_published_entry_is_refused() {
        let (current, draft) = published_and_draft();
        let mut rehashed = draft.clone();
        rehashed.targets.insert(OLD.to_owned(), entry("vpn-client", "4.0", 'f'));
        assert_refused(
            check(Some(&current), &rehashed, &paths(&[NEW])),
            &["changes the published target", OLD, "hashes"],
        );
        // Even for a release asked for again.
        assert_refused(check(Some(&current), &rehashed, &paths(&[OLD, NEW])), &[OLD, "hashes"]);

        let mut longer = draft.clone();
        longer.targets.get_mut(OLD).unwrap().length += 1;
        assert_refused(check(Some(&current), &longer, &paths(&[NEW])), &[OLD, "length 1000 -> 1001"]);
        let mut recustomised = draft.clone();
        recustomised.targets.get_mut(OLD).unwrap().custom = Some(json!({ "ferry": { "release_counter": 9 } }));
        assert_refused(check(Some(&current), &recustomised, &paths(&[NEW])), &[OLD, "custom"]);

        let mut removed = draft.clone();
        removed.targets.remove(OLD);
        assert_refused(check(Some(&current), &removed, &paths(&[NEW])), &["removes the published target", OLD]);
    }

    #[test]
    fn a_delegation_change_is_refused() {
        let (current, draft) = published_and_draft();
        let mut added = draft.clone();
        added.delegations.as_mut().unwrap().roles.push(delegation("evil").roles.remove(0));
        assert_refused(check(Some(&current), &added, &paths(&[NEW])), &["changes the delegations", "role evil added"]);

        let mut rekeyed = draft.clone();
        let other = delegation("gateway");
        let delegations = rekeyed.delegations.as_mut().unwrap();
        delegations.keys = other.keys;
        delegations.roles = other.roles;
        assert_refused(check(Some(&current), &rekeyed, &paths(&[NEW])), &["role gateway changed", "keys changed"]);

        let mut widened = draft.clone();
        widened.delegations.as_mut().unwrap().roles[0].paths = Some(vec!["*/*/*".to_owned()]);
        assert_refused(check(Some(&current), &widened, &paths(&[NEW])), &["role gateway changed"]);

        let mut dropped = draft.clone();
        dropped.delegations = None;
        assert_refused(check(Some(&current), &dropped, &paths(&[NEW])), &["removes every delegation"]);
    }

    #[test]
    fn a_draft_that_is_not_the_next_version_is_refused() {
        let (current, draft) = published_and_draft();
        for version in [1, 3, 5] {
            let mut wrong = draft.clone();
            wrong.version = version;
            assert_refused(
                check(Some(&current), &wrong, &paths(&[NEW])),
                &[&format!("it is version {version}"), "published version is 3, so the next is 4"],
            );
        }
    }

    #[test]
    fn an_expiry_past_or_beyond_the_days_asked_for_is_refused() {
        let (current, mut draft) = published_and_draft();
        draft.expires = format_expires(NOW - 1);
        assert_refused(check(Some(&current), &draft, &paths(&[NEW])), &["expired"]);
        draft.expires = format_expires(NOW + 365 * DAY + EXPIRY_SLACK_SECS + 1);
        assert_refused(check(Some(&current), &draft, &paths(&[NEW])), &["later than the 365 day(s) asked for"]);
        // Within a day's slack for clocks that differ: accepted.
        draft.expires = format_expires(NOW + 365 * DAY + EXPIRY_SLACK_SECS);
        assert!(check(Some(&current), &draft, &paths(&[NEW])).is_ok());
    }

    #[test]
    fn a_release_asked_for_must_be_in_the_draft_when_named() {
        let (current, draft) = published_and_draft();
        let missing = "vpn-client/5.0/extra.bin";
        assert_refused(check(Some(&current), &draft, &paths(&[NEW, missing])), &["leaves out", missing]);
        // By default (every unsigned release), the paths of all releases are merely allowed.
        let expected = Expected { allowed: &paths(&[NEW, missing]), complete: false, now: NOW, expires_days: 365 };
        assert_eq!(check_draft(Some(&current), &draft, &expected), Ok(vec![NEW.to_owned()]));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let (current, mut draft) = published_and_draft();
        draft.version = 9;
        draft.targets.remove(OLD);
        draft.unrecognized.insert("x-extra".to_owned(), json!(1));
        let refused = check(Some(&current), &draft, &paths(&[NEW])).unwrap_err();
        assert_eq!(refused.0.len(), 3, "{refused}");
        assert!(refused.to_string().contains("x-extra"), "{refused}");
    }
}
