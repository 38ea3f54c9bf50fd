//! What a device is offered now: the store's approved releases for the device's groups,
//! decided by `ferry_core::applicability`. Shared by check-in, download entitlement and the
//! admin "why" report, so the three can never disagree.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_core::applicability::{self, Approval, Candidate, Decision, DeviceFacts, Verdict};
use ferry_core::{Release, ReleaseId};
use ferry_store::{Approval as StoredApproval, ApprovalAction, Device};

use crate::error::ApiResult;
use crate::state::AppState;

/// The decisions for one device.
pub struct Evaluation {
    approved: Arc<Vec<(Release, Vec<StoredApproval>)>>,
    combined: Vec<Approval>,
    /// One decision per candidate release.
    pub decisions: Vec<Decision>,
}

/// Decides what `device` is offered.
pub async fn evaluate(st: &AppState, device: &Device) -> ApiResult<Evaluation> {
    let approved = if device.groups.is_empty() {
        Arc::new(Vec::new())
    } else {
        st.catalogue.approved(st.store.as_ref(), &device.groups).await?
    };
    let combined = approved
        .iter()
        .map(|(_, approvals)| {
            approvals
                .iter()
                .filter(|a| device.groups.contains(&a.group))
                .map(|a| match a.action {
                    ApprovalAction::Install => Approval::Install { deadline: a.deadline },
                    ApprovalAction::Decline => Approval::Decline,
                })
                .fold(Approval::NotApproved, Approval::combine)
        })
        .collect();
    let mut eval = Evaluation { approved, combined, decisions: Vec::new() };
    let facts =
        DeviceFacts { platform: device.platform.as_ref(), installed: &device.installed, configs: &device.configs };
    eval.decisions = applicability::decide(&facts, &eval.candidates());
    Ok(eval)
}

impl Evaluation {
    fn candidates(&self) -> Vec<Candidate<'_>> {
        self.approved.iter().zip(&self.combined).map(|((r, _), a)| Candidate { release: r, approval: *a }).collect()
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
