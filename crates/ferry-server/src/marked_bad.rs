//! Marking a release bad (`POST /api/v1/releases/{id}/mark-bad`).
//!
//! The mark itself withdraws the release everywhere: `ferry_core::applicability` decides
//! `marked_bad` before anything else, so check-in, download entitlement and the "why" report
//! agree. Each device that reports running the release is told, in its signed director
//! metadata, to go back to the version it kept ([`rollback_instructions`], added to the chain
//! by `trust::director`). There is no undo: an administrator publishes a fixed release.

use ferry_core::{Device, Release};
use ferry_tuf::{RollbackInstruction, VersionLine};

use crate::error::ApiResult;
use crate::state::AppState;

/// What follows at once from marking `release` bad, beyond the stored mark; the mark-bad route
/// calls it after every mark, a repeated one included, so it must be idempotent.
///
/// Every active rollout of the release is cancelled, with the cause recorded in its timeline.
/// Offers, downloads and director instructions need nothing here: they follow from the mark,
/// and the check-in cache is dropped at once so that the very next check-in sees it.
pub async fn on_marked_bad(st: &AppState, release: &Release) -> ApiResult<()> {
    for rollout in st.store.list_rollouts(Some(release.id), true).await? {
        crate::rollouts::stop_for_bad_release(st, rollout).await?;
    }
    st.catalogue.invalidate();
    tracing::debug!(release = %release.id, "release withdrawn from every offer");
    Ok(())
}

/// The rollback instructions for `device`: one for each release in `bad` whose version the
/// device reports installed on that release's product and version line. The device acts on one
/// only when it runs exactly that release (id, version and counter) and kept the version
/// before it.
pub fn rollback_instructions(device: &Device, bad: &[Release]) -> Vec<RollbackInstruction> {
    bad.iter()
        .filter(|r| {
            let line = if r.kind.is_config() { &device.configs } else { &device.installed };
            line.get(&r.product) == Some(&r.version)
        })
        .map(|r| RollbackInstruction {
            product: r.product.clone(),
            kind: VersionLine::of(r.kind),
            release: r.id,
            version: r.version.clone(),
            counter: r.counter,
        })
        .collect()
}
