//! What a device is offered now: the store's approved releases for the device's groups,
//! decided by `ferry_core::applicability`. Shared by check-in, download entitlement and the
//! admin "why" report, so the three can never disagree.

use std::collections::HashMap;

use ferry_core::applicability::{self, Approval, Candidate, Decision, DeviceFacts, Verdict};
use ferry_core::{Release, ReleaseId};
use ferry_store::{ApprovalAction, Device};

use crate::error::ApiResult;
use crate::state::AppState;

/// The decisions for one device.
pub struct Evaluation {
    candidates: Vec<(Release, Approval)>,
    /// One decision per candidate release.
    pub decisions: Vec<Decision>,
}

/// Decides what `device` is offered.
pub async fn evaluate(st: &AppState, device: &Device) -> ApiResult<Evaluation> {
    let approved =
        if device.groups.is_empty() { Vec::new() } else { st.store.approved_releases(&device.groups).await? };
    let candidates: Vec<(Release, Approval)> = approved
        .into_iter()
        .map(|(release, approvals)| {
            let combined = approvals
                .iter()
                .filter(|a| device.groups.contains(&a.group))
                .map(|a| match a.action {
                    ApprovalAction::Install => Approval::Install { deadline: a.deadline },
                    ApprovalAction::Decline => Approval::Decline,
                })
                .fold(Approval::NotApproved, Approval::combine);
            (release.clone(), combined)
        })
        .collect();
    let facts =
        DeviceFacts { platform: device.platform.as_ref(), installed: &device.installed, configs: &device.configs };
    let cs: Vec<Candidate<'_>> = candidates.iter().map(|(r, a)| Candidate { release: r, approval: *a }).collect();
    let decisions = applicability::decide(&facts, &cs);
    Ok(Evaluation { candidates, decisions })
}

impl Evaluation {
    /// Offered releases in install order, each with its deadline.
    pub fn offered(&self) -> Vec<(&Release, Option<i64>)> {
        let cs: Vec<Candidate<'_>> =
            self.candidates.iter().map(|(r, a)| Candidate { release: r, approval: *a }).collect();
        let deadlines: HashMap<ReleaseId, Option<i64>> = self
            .decisions
            .iter()
            .filter_map(|d| match d.verdict {
                Verdict::Offer { deadline } => Some((d.release, deadline)),
                _ => None,
            })
            .collect();
        applicability::offers(&cs, &self.decisions)
            .into_iter()
            .map(|r| (r, deadlines.get(&r.id).copied().flatten()))
            .collect()
    }
}
