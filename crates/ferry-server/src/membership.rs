//! A device's effective groups: the groups whose approvals apply to it now.
//!
//! They are its static groups (set by enrollment key or by an administrator), the dynamic
//! groups whose filter matches it now, and every ancestor of those. Everything that decides
//! what a device gets (offers, downloads, the director, the "why" report, the check-in
//! schedule) goes through [`effective_groups`], so a device that stops matching a filter loses
//! the group's approvals at its next check-in.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ferry_core::filter::{DeviceView, Filter};
use ferry_core::groups::MAX_GROUP_DEPTH;
use ferry_core::{Device, DeviceId, Group, GroupName};
use ferry_store::DeviceFilter;

use crate::error::ApiResult;
use crate::state::AppState;

/// The groups with their filters parsed once, built from one cached read of the groups.
pub struct GroupIndex {
    groups: Arc<HashMap<GroupName, Group>>,
    dynamic: Vec<(GroupName, Filter)>,
    windows: HashMap<GroupName, ferry_core::window::Windows>,
}

impl GroupIndex {
    /// Parses the filters of `groups`. A stored filter that no longer parses (the language
    /// only ever grows, so this means a damaged row) matches no device and is logged.
    pub fn new(groups: Arc<HashMap<GroupName, Group>>) -> Self {
        let mut dynamic: Vec<(GroupName, Filter)> = groups
            .values()
            .filter_map(|g| {
                let text = g.filter.as_deref()?;
                match Filter::parse(text) {
                    Ok(f) => Some((g.name.clone(), f)),
                    Err(e) => {
                        tracing::error!(group = %g.name, error = %e, "stored group filter does not parse; it matches nothing");
                        None
                    }
                }
            })
            .collect();
        dynamic.sort_by(|a, b| a.0.cmp(&b.0));
        let windows = groups
            .values()
            .filter_map(|g| {
                let w = g.window.as_ref()?;
                match ferry_core::window::Windows::parse(&w.time_zone, &w.periods) {
                    Ok(parsed) => Some((g.name.clone(), parsed)),
                    Err(e) => {
                        tracing::error!(group = %g.name, error = %e, "stored maintenance window does not parse; it is ignored");
                        None
                    }
                }
            })
            .collect();
        Self { groups, dynamic, windows }
    }

    /// When a device in `groups` (its effective groups) may next be granted an update by a
    /// staged rollout: `Some(now)` inside a window, a later time outside all of them, `None`
    /// when none of its groups has a window (no restriction). With several windows, any open
    /// one will do.
    pub fn window_opens(&self, groups: &[GroupName], now: i64) -> Option<i64> {
        groups.iter().filter_map(|g| self.windows.get(g)).filter_map(|w| w.next_open(now)).min()
    }

    /// The groups `groups` was built from.
    pub fn groups(&self) -> &Arc<HashMap<GroupName, Group>> {
        &self.groups
    }

    /// The device's effective groups at `now`, sorted and without repeats.
    pub fn effective(&self, device: &Device, now: i64) -> Vec<GroupName> {
        let view = DeviceView::from(device);
        let direct = device
            .groups
            .iter()
            .chain(self.dynamic.iter().filter(|(_, f)| f.matches(&view, now)).map(|(name, _)| name));
        let mut all = BTreeSet::new();
        for group in direct {
            self.with_ancestors(group, &mut all);
        }
        all.into_iter().collect()
    }

    /// `group` and its ancestors.
    pub fn closure(&self, group: &GroupName) -> BTreeSet<GroupName> {
        let mut all = BTreeSet::new();
        self.with_ancestors(group, &mut all);
        all
    }

    /// Adds `group` and its ancestors to `into`. Stops at a group already added (also
    /// guarding against a cycle that concurrent updates could have stored) and after
    /// [`MAX_GROUP_DEPTH`] levels.
    fn with_ancestors(&self, group: &GroupName, into: &mut BTreeSet<GroupName>) {
        let mut at = Some(group.clone());
        for _ in 0..MAX_GROUP_DEPTH {
            let Some(name) = at else { return };
            at = self.groups.get(&name).and_then(|g| g.parent.clone());
            if !into.insert(name) {
                return;
            }
        }
    }
}

/// The device's effective groups now: static, dynamic and inherited (sorted).
pub async fn effective_groups(st: &AppState, device: &Device) -> ApiResult<Vec<GroupName>> {
    let index = st.catalogue.group_index(st.store.as_ref()).await?;
    Ok(index.effective(device, st.clock.now()))
}

/// How many devices `filter` matches now, and the first `limit` of them in id order.
pub async fn preview(st: &AppState, filter: &Filter, limit: usize) -> ApiResult<(u64, Vec<DeviceId>)> {
    const PAGE: u32 = 1000;
    let now = st.clock.now();
    let (mut count, mut first) = (0u64, Vec::new());
    let mut after = None;
    loop {
        let page = st
            .store
            .list_devices(&DeviceFilter { status: None, group: None, conflicts_only: false, after, limit: PAGE })
            .await?;
        for device in &page {
            if filter.matches(&DeviceView::from(device), now) {
                count += 1;
                if first.len() < limit {
                    first.push(device.id.clone());
                }
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = Some(last.id.clone()),
            _ => return Ok((count, first)),
        }
    }
}
