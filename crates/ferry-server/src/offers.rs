//! What a device is offered now: the store's approved releases for the device's effective
//! groups (`membership`: static, dynamic and inherited), decided by
//! `ferry_core::applicability`. Shared by check-in, download entitlement and the admin "why"
//! report (which adds the device's other releases, never offered), so the three
//! can never disagree.
//!
//! A test device (marked itself, or a member of a test group) is also considered for every
//! signed release that is not archived, and one that no group of its approves or declines is
//! decided as if approved for install without a deadline: its pilot ring. A release approved
//! only for other groups counts as well, so a test device runs ahead of every rollout.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ferry_core::applicability::{self, Approval, Candidate, Decision, DeviceFacts, Verdict};
use ferry_core::{Approval as StoredApproval, ApprovalAction, Device, GroupName, ProductName, Release, ReleaseId};

use crate::error::ApiResult;
use crate::membership::effective_groups;
use crate::state::AppState;

/// The decisions for one device.
pub struct Evaluation {
    approved: Arc<Vec<(Release, Vec<StoredApproval>)>>,
    /// Releases only rollouts bring (approved for none of the device's groups).
    staged: Vec<Release>,
    combined: Vec<Approval>,
    /// One decision per candidate release.
    pub decisions: Vec<Decision>,
    /// Whether the device is a test device.
    pub test: bool,
    /// An active emergency rollout targets the device with a release it does not run yet.
    pub emergency: bool,
    /// The candidates considered only because the device is a test device (no group of its
    /// approves or declines them), in candidate order.
    pub pilot: Vec<ReleaseId>,
}

/// Decides what `device` is offered. Read-only: rollouts count the grants the device has.
pub async fn evaluate(st: &AppState, device: &Device) -> ApiResult<Evaluation> {
    let groups = effective_groups(st, device).await?;
    let test = is_test(st, device, &groups).await?;
    let approved = approved_for(st, &groups, test).await?;
    let eligible = if test { approved.len() } else { 0 };
    let rollouts = crate::rollouts::approvals_for(st, device, &groups, None).await?;
    Ok(decide(device, &groups, approved, test, eligible, rollouts))
}

/// As [`evaluate`], at check-in: a rollout whose wave has reached the device grants it the
/// release now if its limits allow (decided in the database).
pub async fn evaluate_at_checkin(st: &AppState, device: &Device, now: i64) -> ApiResult<Evaluation> {
    let groups = effective_groups(st, device).await?;
    let test = is_test(st, device, &groups).await?;
    let approved = approved_for(st, &groups, test).await?;
    let eligible = if test { approved.len() } else { 0 };
    let rollouts = crate::rollouts::approvals_for(st, device, &groups, Some(now)).await?;
    Ok(decide(device, &groups, approved, test, eligible, rollouts))
}

/// Whether `device` is a test device: marked itself, or a member (static, dynamic or
/// inherited) of a test group (cached).
pub async fn is_test(st: &AppState, device: &Device, groups: &[GroupName]) -> ApiResult<bool> {
    if device.test || groups.is_empty() {
        return Ok(device.test);
    }
    let all = st.catalogue.groups(st.store.as_ref()).await?;
    Ok(groups.iter().any(|name| all.get(name).is_some_and(|g| g.test)))
}

/// As [`evaluate`], for the "why" report: also decides every other release of the device's
/// products (those it reports installed and those with a release approved or declined for its
/// groups), so that an administrator sees why each is not offered (not approved, declined,
/// archived, wrong platform, ...). Those releases carry no install approval, so they are never
/// offered and change no other decision: the offers are exactly [`evaluate`]'s. Releases
/// approved for install but held back because no signed targets metadata lists them yet are
/// returned apart, in id order.
pub async fn explain(st: &AppState, device: &Device) -> ApiResult<(Evaluation, Vec<ReleaseId>)> {
    let groups = effective_groups(st, device).await?;
    let test = is_test(st, device, &groups).await?;
    let approved = approved_for(st, &groups, test).await?;
    // The approvals as stored, before the signed-release gate of the cache.
    let stored: HashMap<ReleaseId, Vec<StoredApproval>> = if groups.is_empty() {
        HashMap::new()
    } else {
        st.store.approved_releases(&groups).await?.into_iter().map(|(r, a)| (r.id, a)).collect()
    };
    let mut products: BTreeSet<ProductName> = device
        .installed
        .keys()
        .chain(device.configs.keys())
        .chain(approved.iter().map(|(r, _)| &r.product))
        .cloned()
        .collect();
    let known: HashSet<ReleaseId> = approved.iter().map(|(r, _)| r.id).collect();
    let releases = st.store.list_releases(None).await?;
    products.extend(releases.iter().filter(|r| stored.contains_key(&r.id)).map(|r| r.product.clone()));
    let mut all = approved.as_ref().clone();
    let mut awaiting_signature = Vec::new();
    for release in releases {
        if !products.contains(&release.product) || known.contains(&release.id) {
            continue;
        }
        let approvals = stored.get(&release.id).cloned().unwrap_or_default();
        if approvals.iter().any(|a| a.action == ApprovalAction::Install && groups.contains(&a.group)) {
            awaiting_signature.push(release.id);
        } else {
            all.push((release, approvals));
        }
    }
    awaiting_signature.sort();
    // Only the releases a test device may be offered without an approval are promoted, not
    // the archived or unsigned ones added above for the report.
    let eligible = if test { approved.len() } else { 0 };
    let rollouts = crate::rollouts::approvals_for(st, device, &groups, None).await?;
    Ok((decide(device, &groups, Arc::new(all), test, eligible, rollouts), awaiting_signature))
}

/// The releases approved or declined for the device's effective groups, and for a test
/// device every other release it may be offered (cached).
async fn approved_for(
    st: &AppState,
    groups: &[GroupName],
    test: bool,
) -> ApiResult<Arc<Vec<(Release, Vec<StoredApproval>)>>> {
    Ok(if test {
        st.catalogue.piloted(st.store.as_ref(), groups).await?
    } else if groups.is_empty() {
        Arc::new(Vec::new())
    } else {
        st.catalogue.approved(st.store.as_ref(), groups).await?
    })
}

/// Decides the candidates `approved`, combining per release the approvals of `groups` (the
/// device's effective groups: a decline anywhere wins, else install with the earliest
/// deadline); of those that no group of the device approves or declines, the first
/// `eligible` are taken as approved for install (a test device's). What rollouts give the
/// device is combined with the group approvals (a decline for one of its groups still wins
/// over a rollout's grant).
fn decide(
    device: &Device,
    groups: &[GroupName],
    approved: Arc<Vec<(Release, Vec<StoredApproval>)>>,
    test: bool,
    eligible: usize,
    rollouts: crate::rollouts::RolloutOffers,
) -> Evaluation {
    let mut pilot = Vec::new();
    let mut combined: Vec<Approval> = approved
        .iter()
        .enumerate()
        .map(|(i, (release, approvals))| {
            let combined = approvals
                .iter()
                .filter(|a| groups.contains(&a.group))
                .map(|a| match a.action {
                    ApprovalAction::Install => Approval::Install { deadline: a.deadline },
                    ApprovalAction::Decline => Approval::Decline,
                })
                .fold(Approval::NotApproved, Approval::combine);
            match combined {
                // A test device takes what no group of its decided on, as if approved.
                Approval::NotApproved if i < eligible => {
                    pilot.push(release.id);
                    Approval::Install { deadline: None }
                }
                decided => decided,
            }
        })
        .collect();
    let mut staged = Vec::new();
    for (release, approval) in rollouts.approvals {
        match approved.iter().position(|(r, _)| r.id == release.id) {
            Some(i) => combined[i] = combined[i].combine(approval),
            None => {
                staged.push(release);
                combined.push(approval);
            }
        }
    }
    let mut eval =
        Evaluation { approved, staged, combined, decisions: Vec::new(), test, emergency: rollouts.emergency, pilot };
    let facts =
        DeviceFacts { platform: device.platform.as_ref(), installed: &device.installed, configs: &device.configs };
    eval.decisions = applicability::decide(&facts, &eval.candidates());
    eval
}

impl Evaluation {
    fn candidates(&self) -> Vec<Candidate<'_>> {
        self.approved
            .iter()
            .map(|(r, _)| r)
            .chain(&self.staged)
            .zip(&self.combined)
            .map(|(r, a)| Candidate { release: r, approval: *a })
            .collect()
    }

    /// The earliest time a maintenance window opens for a release a rollout holds back from
    /// the device because its window is closed.
    pub fn window_opens(&self) -> Option<i64> {
        self.decisions
            .iter()
            .filter_map(|d| match &d.verdict {
                Verdict::AwaitingRollout(applicability::Staged {
                    refusal: Some(ferry_core::rollout::Refusal::OutsideWindow { opens_at }),
                    ..
                }) => Some(*opens_at),
                _ => None,
            })
            .min()
    }

    /// Offered releases in install order, each with its deadline.
    pub fn offered(&self) -> Vec<(&Release, Option<i64>)> {
        let deadlines: HashMap<ReleaseId, Option<i64>> = self
            .decisions
            .iter()
            .filter_map(|d| match d.verdict {
                Verdict::Offer { deadline } => Some((d.release, deadline)),
                _ => None,
            })
            .collect();
        applicability::offers(&self.candidates(), &self.decisions)
            .into_iter()
            .map(|r| (r, deadlines.get(&r.id).copied().flatten()))
            .collect()
    }
}
